"""Records -> Report: reads a run directory's store and composes the report's parts.

A report is a pure function of the stored records (and of the statistical settings:
confidence level, number of resamples, interval method and p-value adjustment), so it can be
rebuilt offline with other settings and never touches a model. :func:`build_report` reads the
store, adds the aggregate conditions (:func:`_aggregates`: the mean over shifts, the worst case
over attacks), and composes what the other modules build: evaluation estimates and comparisons
(harness.reports.estimates), training summaries, comparisons and sweeps (harness.reports.training), curve data
(harness.reports.curves), the sanity battery (harness.reports.checks) and the claims' verdicts (harness.reports.claims).
The rows are harness.reports.rows'; the outputs (harness.reports.render) only format a :class:`Report`.
"""

from __future__ import annotations

import dataclasses
import shlex
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness import stats
from harness.errors import ConfigError, HarnessError
from harness.provenance import without_run_dir
from harness.reports import cache, curves, estimates, training
from harness.reports.checks import Check, Evals, Records, run_checks
from harness.reports.claims import Record, judged
from harness.reports.references import RunData, judge_all
from harness.reports.rows import (
    PARTIAL_SEEDS,
    ComparisonRow,
    Incomplete,
    PairedResult,
    Report,
    TrainingRow,
    mean_shift,
    metric_of,
)
from harness.specs import Condition, Suite, upgrade_suite_dict
from harness.store import Cell, DamagedRecord, Store, check_summary, describe
from harness.tasks import task_of

# --- reading the store ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Stored:
    """What a run directory's store holds: the suite as recorded (and parsed), the provenance, a
    denoise suite's judge, and every training and evaluation cell (failed ones included)."""

    suite: dict[str, Any]
    spec: Suite
    provenance: dict[str, Any]
    judge: dict[str, Any] | None
    train: list[Cell]
    evals: list[Cell]
    sequential: dict[str, Any] | None = None  # a sequential run's design and looks (harness.reports.claims.Record)
    incomplete: Incomplete | None = None  # what the run lacks of its plan (:func:`_incomplete`)
    cache_key: str | None = None  # the name of the values derived from these records (harness.reports.cache)
    derived: cache.Derived | None = None  # those values, when the run directory's cache holds them


def read(run_dir: Path | str, n_resamples: int | None = None) -> Stored:
    """The records of ``run_dir``, as of one moment: its store is opened read-only (a report never
    writes to it) and read in one snapshot (a run writing meanwhile neither blocks it nor shows half
    of its work). A ConfigError when it holds no finished run, or names the cell whose record fails
    its checks: its checksums (harness.store), or, for an evaluation, its stored summary against the
    one its arrays give (:func:`harness.store.check_summary`). With ``n_resamples``, the values a
    report with that many resamples derives from these records are looked up in the run directory's
    cache (harness.reports.cache) in the same snapshot; when they are there, the summaries, which
    the build that derived them checked on the same records, are not checked again."""
    with Store(run_dir, readonly=True) as store, store.snapshot():
        suite = store.get_meta("suite")
        prov = store.get_meta("provenance") or {}
        judge = store.get_meta("judge")
        looks = store.get_meta("sequential")
        name = None if n_resamples is None or suite is None else cache.key(
            suite, n_resamples, store.record_checksums("eval"))
        derived = None if name is None else cache.load(run_dir, name)
        train_cells = list(store.cells("train"))
        every_eval = list(store.cells("eval"))  # every array read and its checksum verified, cached or not
        if suite is None:
            raise ConfigError(f"{run_dir} holds no finished run (no suite recorded)", hint="run 'harness run' first")
        suite = upgrade_suite_dict(suite)  # an older version's field names read as today's
        spec = Suite.from_dict(suite)
        left = _incomplete(run_dir, store, spec, prov)
    summary = task_of(spec).eval_summary
    for c in every_eval if derived is None else ():
        if (problem := check_summary(c, summary)) is not None:
            raise DamagedRecord(Path(run_dir), describe(c.kind, c.variant, c.seed, c.condition), problem, c.key)
    return Stored(suite, spec, prov, judge, train_cells, every_eval, looks, left, name, derived)


# --- what the report leaves out -------------------------------------------------------------------


def _first_line(text: str | None) -> str:
    """The first line of a stored error (its exception type and message), or "no error recorded"."""
    return next((line for line in (text or "").splitlines() if line.strip()), "no error recorded")


def _some(keys: list[str], most: int = 3) -> str:
    return ", ".join(keys[:most]) + (f" and {len(keys) - most} more" if len(keys) > most else "")


def _unevaluated(names: list[str], seeds: tuple[int, ...], conditions: list[Condition],
                 usable: Callable[[str, int], bool], cells: list[Cell]) -> tuple[str, ...]:
    """What the report lacks of each usable model's evaluation (``usable(variant, seed)``: its
    training run is not excluded): every condition whose evaluation cell failed, with the first line
    of its error, and then, in one entry per model, the conditions with no record at all (an
    evaluation stops at its model's first failed condition; a run may have been interrupted). A
    later successful attempt replaces a failed cell, so a failure listed here is the latest word."""
    done: set[tuple[str, int, str]] = set()
    failed: dict[tuple[str, int, str], str] = {}
    for c in cells:
        if c.condition is not None:
            k = (c.variant, c.seed, Condition.from_dict(c.condition).key)
            if c.status == "done":
                done.add(k)
            else:
                failed[k] = _first_line(c.error)
    out: list[str] = []
    for v in names:
        for s in seeds:
            if not usable(v, s):
                continue  # listed with its training's reason
            left = [c.key for c in conditions if (v, s, c.key) not in done]
            out += [f"{v} seed {s}, {k}: evaluation failed ({failed[(v, s, k)]})" for k in left if (v, s, k) in failed]
            if never := [k for k in left if (v, s, k) not in failed]:
                out.append(f"{v} seed {s}: not evaluated on {_some(never)}")
    return tuple(out)


def _excluded(stored: Stored, names: list[str], seeds: tuple[int, ...],
              train_by: dict[tuple[str, int], Cell]) -> tuple[str, ...]:
    """Each model with no usable training run and why (a diverged or failed run has no model to
    evaluate), then what the usable models lack of their evaluation (:func:`_unevaluated`)."""
    unconverged_kept = stored.suite.get("evaluate_unconverged", True)

    def why(c: Cell | None) -> str:
        if c is None:
            return "not trained"
        if c.status == "failed":
            return f"training failed ({_first_line(c.error)})"
        if c.result.get("diverged"):
            return "diverged"
        if not unconverged_kept and c.result.get("steps_to_target") is None:
            return "did not reach the target (this suite evaluates converged runs only)"
        return ""

    return tuple(f"{v} seed {s}: {reason}" for v in names for s in seeds
                 if (reason := why(train_by.get((v, s))))) + _unevaluated(
        names, seeds, stored.spec.conditions(), lambda v, s: not why(train_by.get((v, s))), stored.evals)


# --- what the run has not done yet ---------------------------------------------------------------


def _finish_command(spec: Suite, provenance: dict[str, Any], run_dir: Path | str, device: str) -> str:
    """The command that runs a partial run's missing cells: the recorded `harness run` command line with
    ``--run-dir`` set to ``run_dir``, or (when the run was started from Python) one made from the stored suite."""
    argv = [str(a) for a in provenance.get("command") or []]
    first = next((i for i, a in enumerate(argv[1:], 1) if not a.startswith("-")), None)
    if argv and Path(argv[0]).name == "harness" and first is not None and argv[first] == "run":
        return shlex.join([*without_run_dir(argv), "--run-dir", str(run_dir)])
    s = spec
    size = [] if s.size == "full" else ["--size", s.size]
    return shlex.join(["harness", "run", s.name, "--run-dir", str(run_dir), *size,
                       "--seeds", ",".join(map(str, s.seeds)), "--variants", ",".join(v.name for v in s.variants),
                       "--epochs", str(s.train.epochs), "--device", device])


def _incomplete(run_dir: Path | str, store: Store, spec: Suite, provenance: dict[str, Any]) -> Incomplete | None:
    """What the run in ``run_dir`` lacks of its plan (harness.planning.plan of the stored suite on the stored
    device type), read from its open ``store`` in the snapshot the report reads: None when every planned cell
    is done. A plan that cannot be made (a variant's weights file gone) is said so, not guessed."""
    from harness.planning import plan

    # the device type the run recorded (older stores: the provenance's device)
    device = str(store.get_meta("device") or str(provenance.get("device") or "cpu").split(":")[0])
    command = _finish_command(spec, provenance, run_dir, device)
    try:
        units = plan(spec, store, device)
        done = store.done_keys()
    except HarnessError as exc:
        return Incomplete(0, 0, (), command, exc.message)
    # an attack sweep is redone whole, so a unit may list done cells: only those without a record count
    missing = [(u, keys) for u in units if (keys := [k for _, k, _ in u.evals if k not in done]) or u.need_train]
    if not missing:
        return None
    return Incomplete(sum(u.need_train for u, _ in missing), sum(len(keys) for _, keys in missing),
                      tuple((u.variant.name, u.seed) for u, _ in missing), command)


# --- aggregate conditions -------------------------------------------------------------------------


def _aggregate(cells: list[Cell | None], reduce: Callable[..., np.ndarray], array: str) -> Cell | None:
    """One pseudo-cell whose per-example value reduces the examples' outcomes (``array``) over
    several conditions (mean over shifts; all-correct over attacks), so the aggregate stays paired
    per example. None unless every condition has a record."""
    if not cells or any(c is None or array not in c.arrays for c in cells):
        return None
    first = cells[0]
    assert first is not None
    value = reduce(np.stack([c.arrays[array] for c in cells if c is not None]), axis=0)
    return Cell("", "eval", first.variant, first.seed, {}, {}, arrays={array: value})


def _checks(task: str, evals: Evals, names: list[str], suite: dict[str, Any],
            pairs: list[tuple[str, str]]) -> tuple[Check, ...]:
    """The sanity checks that apply to the task, on its per-example outcome (none: no rows)."""
    t = task_of(task)
    if not t.checks:
        return ()
    higher = metric_of(t.style.headline).higher_is_better
    return tuple(run_checks(Records(evals, names, suite, pairs, t.outcome, higher), t.checks))


def aggregate_conditions(conditions: list[Condition], norm_of: Callable[[Condition], str]
                         ) -> dict[Condition, list[str]]:
    """The aggregate conditions a report adds to ``conditions``, each with the keys it aggregates: the
    mean over every shift and severity per BatchNorm test-time mode, and per (norm, eps) the worst
    case over the attacks at that ball when there are several (``norm_of`` gives an attack
    condition's norm)."""
    out: dict[Condition, list[str]] = {}
    for mode in dict.fromkeys(c.bn_mode for c in conditions if c.kind == "shift"):  # one mean per BatchNorm mode
        out[mean_shift(mode)] = [c.key for c in conditions if c.kind == "shift" and c.bn_mode == mode]
    by_ball: dict[tuple[str, float], list[str]] = defaultdict(list)
    for c in conditions:
        if c.kind == "attack":
            by_ball[(norm_of(c), c.param("eps"))].append(c.key)
    for (norm, eps), keys in by_ball.items():
        if len(keys) > 1:
            out[Condition("attack", "worst-case", (("eps", eps), ("norm", norm)))] = keys
    return out


def _aggregates(conditions: list[Condition], evals: Evals, names: list[str], seeds: tuple[int, ...],
                task: str = "classify") -> list[Condition]:
    """Add aggregate conditions to ``evals`` and return them: the mean over every shift and
    severity (per BatchNorm test-time mode), and per (norm, eps) the worst case over every attack (an example counts as
    robust only if no attack broke it; a denoiser's worst case is its highest loss over the attacks)."""
    t = task_of(task)

    def worst(stacked: np.ndarray, axis: int = 0) -> np.ndarray:
        # the task's: a classifier keeps an example only if every attack left it correct; a denoiser its highest loss
        return t.worst_case(stacked)

    def norm_of(c: Condition) -> str:  # as the attack's cells recorded it
        return next((cell.result.get("norm", "linf") for v in names for cell in evals.get((v, c.key), {}).values()),
                    "linf")

    groups: dict[Condition, tuple[list[str], Callable[..., np.ndarray]]] = {
        agg: (keys, worst if agg.kind == "attack" else np.mean)
        for agg, keys in aggregate_conditions(conditions, norm_of).items()}
    array = t.outcome  # the per-example outcome both aggregates reduce (a classifier's correct, a denoiser's loss)
    for agg, (keys, reduce) in groups.items():
        for v in names:
            for s in seeds:
                cell = _aggregate([evals.get((v, k), {}).get(s) for k in keys], reduce, array)
                if cell is not None:
                    evals[(v, agg.key)][s] = cell
    return list(groups)


# --- the comparisons' adjusted p-values -----------------------------------------------------------


def _on_common_seeds(cmp: stats.Comparison, common: list[int], seeds: tuple[int, ...]) -> stats.Comparison:
    """``cmp``, made on ``common`` (the seeds where both variants have a usable record), with
    :data:`~harness.reports.rows.PARTIAL_SEEDS` added to its caveat when that is fewer than the suite's ``seeds``: the
    missing runs failed, diverged or never ran, which is not missing at random, so the interval
    answers for those seeds only. ``n_seeds`` and the row's seeds already say which."""
    if len(common) >= len(seeds):
        return cmp
    return dataclasses.replace(cmp, caveat="; ".join(x for x in (cmp.caveat, PARTIAL_SEEDS) if x))


def _comparison_row(raw: PairedResult, p_adjusted: float, level: float) -> ComparisonRow:
    """A comparison with its adjusted p-value and the probability of improvement over seed pairs."""
    spec = metric_of(raw.metric)
    pi = stats.probability_of_improvement(raw.a, raw.b, spec.higher_is_better)
    low, high = (stats.probability_of_improvement_interval(raw.a, raw.b, spec.higher_is_better, level)
                 if len(raw.a) > 1 else (None, None))
    return ComparisonRow(raw.variant, raw.baseline, raw.condition, raw.metric, raw.comparison, p_adjusted, raw.seeds,
                         spec.better, pi, low, high, tuple(map(float, raw.a)), tuple(map(float, raw.b)))


def _adjusted(raw: list[PairedResult], seeds: tuple[int, ...], adjust: str, level: float
              ) -> tuple[ComparisonRow, ...]:
    """Every comparison with its p-value adjusted across all of them; each pair is compared on the
    seeds where both have a usable record, and the row says when that is fewer than ``seeds``."""
    raw = [dataclasses.replace(r, comparison=_on_common_seeds(r.comparison, list(r.seeds), seeds)) for r in raw]
    adjusted = stats.ADJUSTMENTS[adjust][1]([r.comparison.p_value for r in raw]) if raw else np.array([])
    return tuple(_comparison_row(r, float(p), level) for r, p in zip(raw, adjusted, strict=True))


def _attack_settings(cells: list[Cell]) -> tuple[dict[str, Any], ...]:
    """Each attack's resolved settings as recorded at evaluation time, one row per attack and
    parameter set (eps aside), so the report states exactly what was run."""
    rows: dict[str, dict[str, Any]] = {}
    for c in cells:
        if c.condition and c.condition["kind"] == "attack" and "settings" in c.result:
            settings = {k: v for k, v in c.result["settings"].items() if k != "eps"}
            key = c.condition["name"] + repr(sorted(settings.items()))
            row = rows.setdefault(key, {"name": c.condition["name"], "class": c.result["attack"],
                                        "norm": c.result["norm"], **settings, "eps": set()})
            row["eps"].add(c.condition["params"]["eps"])
    return tuple({**r, "eps": sorted(r["eps"])} for r in rows.values())


# --- the report -----------------------------------------------------------------------------------


def build_report(run_dir: Path | str, level: float = 0.95, n_resamples: int = 2000, adjust: str = "holm",
                 interval: str = "auto", use_cache: bool = True) -> Report:
    """Build the report of a run directory from its stored records alone; ``adjust`` names the
    multiple-comparison adjustment of every p-value (see harness.stats.ADJUSTMENTS), ``interval``
    the interval method of every evaluation estimate and comparison (harness.stats.INTERVALS).
    The values derived from the per-example arrays (resamples, sanity checks, curves) are read from
    the run directory's cache when it holds those of these records, else derived and cached there
    (harness.reports.cache; ``use_cache=False`` derives them and leaves the cache alone)."""
    if adjust not in stats.ADJUSTMENTS:
        raise ConfigError(f"unknown p-value adjustment {adjust!r}", hint=f"use one of {', '.join(stats.ADJUSTMENTS)}")
    if interval not in stats.INTERVALS:
        raise ConfigError(f"unknown interval method {interval!r}", hint=f"use one of {', '.join(stats.INTERVALS)}")
    stored = read(run_dir, n_resamples if use_cache else None)
    suite, spec = stored.suite, stored.spec
    task = suite.get("task", "classify")
    variants = tuple(suite["variants"])
    names = [v["name"] for v in variants]
    seeds = tuple(suite["seeds"])
    pairs = [(v.name, b.name) for v, b in spec.comparisons()]
    train_by = {(c.variant, c.seed): c for c in stored.train}

    eval_cells = [c for c in stored.evals if c.status == "done"]
    evals: Evals = defaultdict(dict)  # (variant, cond key) -> seed -> cell
    for c in eval_cells:
        assert c.condition is not None
        evals[(c.variant, Condition.from_dict(c.condition).key)][c.seed] = c
    # checks are evidence for the sanity battery, not estimates; the mean over shifts follows clean
    conditions = [c for c in spec.conditions() if c.kind != "check"]
    extra = _aggregates(conditions, evals, names, seeds, task)
    conditions = conditions[:1] + [c for c in extra if c.kind == "shift"] + conditions[1:] + [
        c for c in extra if c.kind == "attack"]
    derived = stored.derived
    if derived is None:
        derived = cache.Derived(estimates.resample(conditions, evals, names, seeds, task, n_resamples),
                                _checks(task, evals, names, suite, pairs), curves.reliability(conditions, evals, names),
                                curves.roc(conditions, evals, names))
        if stored.cache_key is not None:
            cache.save(run_dir, stored.cache_key, derived)
    resampled = derived.resampled

    rows = estimates.evaluation_estimates(conditions, resampled, names, task, level, interval)
    rows += estimates.corruption_errors(conditions, resampled, pairs, names, level, interval)
    raw = estimates.evaluation_comparisons(conditions, resampled, pairs, task, level, interval)
    sample_rows, sample_raw = estimates.per_seed(conditions, evals, names, seeds, pairs, task, level)
    lira_rows, lira_raw = estimates.lira(conditions, evals, names, seeds, pairs, level)  # the membership design
    sample_rows, sample_raw = sample_rows + lira_rows, sample_raw + lira_raw
    raw += sample_raw + training.training_comparisons(pairs, seeds, train_by, level)
    raw += training.sweep_comparisons(spec, train_by, level)
    comparisons = _adjusted(raw, seeds, adjust, level)
    # a sequential run's claims are judged by its design, at the alpha it was run with
    record = None if stored.sequential is None else Record.from_dict(stored.sequential)
    claims, looks = judged(spec.claims, list(comparisons),
                           {**{v.family: v.norm for v in spec.variants}, **{v.name: v.norm for v in spec.variants}},
                           1 - level if record is None else record.design.alpha, tuple(v for v, _ in pairs), adjust,
                           [(r.seeds, r.a - r.b) for r in raw], record)

    loaded = {c.variant for c in stored.train if c.status == "done" and c.result.get("trained") is False}
    runs = tuple(TrainingRow(c.variant, c.seed, c.status, c.result, c.error)
                 for c in sorted(stored.train, key=lambda c: (names.index(c.variant) if c.variant in names
                                                                else len(names), c.seed)))
    target = task_of(task).report_target(suite)  # a classifier's target accuracy, a denoiser's target loss
    return Report(
        suite={**{k: suite[k] for k in ("name", "version", "description", "dataset", "baseline_norm", "claims")},
               "test_dataset": suite.get("test_dataset"), **target, "task": task,
               "bn_modes": list(suite["evaluation"].get("bn_modes", ["frozen"]))},
        seeds=seeds, variants=variants, level=level, n_resamples=n_resamples,
        estimates=tuple(rows + sample_rows), comparisons=comparisons, training=runs,
        training_summary=tuple(training.training_summary(v, seeds, train_by, level) for v in names
                               if v not in loaded),
        # the sanity checks that apply to the task (a denoise suite's battery has none yet)
        checks=derived.checks,
        excluded=_excluded(stored, names, seeds, train_by), provenance=stored.provenance, judge=stored.judge,
        n_test=estimates.n_test(resampled), adjust=adjust, attack_settings=_attack_settings(eval_cells),
        reliability=derived.reliability, interval=interval,
        claims=claims, sequential=looks,
        sweeps=training.sweeps(spec, train_by, level),
        curves=curves.curves(names, seeds, train_by, level), roc=derived.roc,
        incomplete=stored.incomplete,
        references=judge_all(spec.references, RunData(tuple(names), resampled, tuple(rows + sample_rows),
                                                      {c.key: c for c in conditions}, train_by, seeds, level,
                                                      interval)),
    )
