"""Records -> Report: every estimate, paired comparison, training summary and sanity check.

A report is a pure function of the stored records (and of the statistical settings:
confidence level and number of resamples), so it can be rebuilt offline with other settings
and never touches a model. Renderers (Markdown, JSON, terminal) only format a :class:`Report`.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness import stats
from harness.errors import ConfigError
from harness.seeding import derive_seed
from harness.specs import Condition, Suite, clean
from harness.store import Cell, Store
from reports.checks import Check, Evals, Records, run_checks
from reports.claims import Verdict, verdicts

SCHEMA_VERSION = 3  # 2: interval method, claims verdicts, caveats, power fields; 3: training measurements, sweeps
MEAN_SHIFT = Condition("shift", "all")  # aggregate: mean accuracy over every shift and severity


def mean_shift(bn_mode: str = "frozen") -> Condition:
    """The aggregate condition: mean accuracy over every shift and severity, in a BatchNorm mode."""
    return MEAN_SHIFT if bn_mode == "frozen" else Condition("shift", "all", (("bn", bn_mode),))


@dataclass(frozen=True)
class EstimateRow:
    variant: str
    condition: Condition
    metric: str  # accuracy, auroc (higher is better); fpr95, mce, relative_mce, ece, nll, brier, denoising_loss,
    # sample_fid, class_tv (lower)
    estimate: stats.Estimate


@dataclass(frozen=True)
class ComparisonRow:
    variant: str
    baseline: str
    condition: Condition | None  # None for training metrics
    metric: str
    comparison: stats.Comparison
    p_adjusted: float
    seeds: tuple[int, ...]
    better: str = "higher"  # which direction of the metric is better
    # P(a run of the variant beats a run of the baseline) over seed pairs, with its interval
    prob_improvement: float | None = None
    prob_improvement_low: float | None = None
    prob_improvement_high: float | None = None


@dataclass(frozen=True)
class TrainingRow:
    variant: str
    seed: int
    status: str
    result: dict[str, Any]
    error: str | None


@dataclass(frozen=True)
class TrainingSummary:
    """Per variant: how many seeds reached the target, and estimates over seeds (t-intervals).

    The estimates are over the finished, non-diverged seeds; steps and epochs to target only when
    every one of them reached it (otherwise ``reached`` says how many did). ``aulc`` is the mean
    held-out accuracy over the budget (higher is better), ``loss_roughness`` the sd of the
    step-to-step change of log(loss) (lower is smoother), ``grad_norm_median`` the median gradient
    norm of a step, ``peak_memory_bytes`` one training step's peak (see harness.training). A denoiser
    has ``final_val_loss`` and ``mean_val_loss`` (the held-out denoising loss at the end and averaged
    over the budget, lower is better) where a classifier has ``final_val_accuracy`` and ``aulc``;
    the other's stay None.
    """

    variant: str
    n_seeds: int
    reached: int
    diverged: int
    failed: int
    steps_to_target: stats.Estimate | None  # None unless every finished seed reached the target
    seconds_per_step: stats.Estimate | None
    final_val_accuracy: stats.Estimate | None
    epochs_to_target: stats.Estimate | None = None
    seconds_to_target: stats.Estimate | None = None
    aulc: stats.Estimate | None = None
    loss_roughness: stats.Estimate | None = None
    grad_norm_median: stats.Estimate | None = None
    grad_norm_max: stats.Estimate | None = None
    peak_memory_bytes: stats.Estimate | None = None
    final_val_loss: stats.Estimate | None = None
    mean_val_loss: stats.Estimate | None = None


TRAINING_SUMMARY_METRICS = ("steps_to_target", "epochs_to_target", "seconds_to_target", "seconds_per_step",
                            "final_val_accuracy", "aulc", "loss_roughness", "grad_norm_median", "grad_norm_max",
                            "peak_memory_bytes", "final_val_loss", "mean_val_loss")


@dataclass(frozen=True)
class SweepPoint:
    """One point of a sweep for one variant family: how its seeds' runs ended."""

    family: str  # the variant name without the point, e.g. mlp-batch
    setting: str  # the swept TrainSpec field, e.g. lr
    value: Any
    variant: str  # the variant at this point, e.g. mlp-batch@lr=0.1
    n_seeds: int
    converged: int  # reached the target without diverging
    diverged: int
    final_val_accuracy: stats.Estimate | None


@dataclass(frozen=True)
class SweepSummary:
    """A variant family over one swept setting: the points, and the range of values at which
    every seed converged (None when no point did)."""

    family: str
    setting: str
    points: tuple[SweepPoint, ...]
    converged_range: tuple[Any, Any] | None


@dataclass(frozen=True)
class Report:
    suite: dict[str, Any]
    seeds: tuple[int, ...]
    variants: tuple[dict[str, Any], ...]
    level: float
    n_resamples: int
    estimates: tuple[EstimateRow, ...]
    comparisons: tuple[ComparisonRow, ...]
    training: tuple[TrainingRow, ...]
    training_summary: tuple[TrainingSummary, ...]
    checks: tuple[Check, ...]
    excluded: tuple[str, ...]
    provenance: dict[str, Any]
    n_test: int
    adjust: str = "holm"  # the p-value adjustment, a key of harness.stats.ADJUSTMENTS
    attack_settings: tuple[dict[str, Any], ...] = ()
    reliability: tuple[dict[str, Any], ...] = ()
    curves: tuple[dict[str, Any], ...] = ()  # training curves per variant, see _curves
    roc: tuple[dict[str, Any], ...] = ()  # ROC curves per variant and OOD condition, see _roc
    interval: str = "auto"  # the interval method, a key of harness.stats.INTERVALS
    claims: tuple[Verdict, ...] = ()  # a verdict per declared claim
    sweeps: tuple[SweepSummary, ...] = ()  # per variant family and swept setting, see _sweeps
    judge: dict[str, Any] | None = None  # a denoise suite's judge classifier, as harness.runner.train_judge stored it


# --- gathering -----------------------------------------------------------------------------


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


PARTIAL_SEEDS = ("fewer seeds than the suite's: compared on the seeds where both variants have a usable record "
                 "(the others are listed as excluded)")


def _on_common_seeds(cmp: stats.Comparison, common: list[int], seeds: tuple[int, ...]) -> stats.Comparison:
    """``cmp``, made on ``common`` (the seeds where both variants have a usable record), with
    :data:`PARTIAL_SEEDS` added to its caveat when that is fewer than the suite's ``seeds``: the
    missing runs failed, diverged or never ran, which is not missing at random, so the interval
    answers for those seeds only. ``n_seeds`` and the row's seeds already say which."""
    if len(common) >= len(seeds):
        return cmp
    return dataclasses.replace(cmp, caveat="; ".join(x for x in (cmp.caveat, PARTIAL_SEEDS) if x))


CALIBRATION = ("ece", "nll", "brier")  # lower is better; on clean and shifted inputs
# metrics that are a per-example mean, and the array they average
_PER_EXAMPLE = {"accuracy": "correct", "nll": "loss", "brier": "brier", "denoising_loss": "denoise_loss"}
SAMPLE_METRICS = ("sample_fid", "class_tv")  # a denoiser's samples: one value per seed (lower is better)


OOD = ("auroc", "fpr95", "aupr_in", "aupr_out")
LOWER_IS_BETTER = frozenset({"fpr95", "mce", "relative_mce", "ece", "nll", "brier", "steps_to_target",
                             "seconds_per_step", "loss_roughness", "denoising_loss", "sample_fid", "class_tv",
                             "mean_val_loss", "final_val_loss"})


def _metric_names(cond: Condition, task: str = "classify") -> tuple[str, ...]:
    if cond.kind == "ood":
        return OOD
    if task == "denoise":  # a denoiser has a loss, no accuracy or calibration; samples are per seed (below)
        return () if cond.kind == "samples" else ("denoising_loss",)
    return ("accuracy", *CALIBRATION) if cond.kind in ("clean", "shift", "natural") else ("accuracy",)


def _resampled_ece(cells: list[Cell], metric: str, n_resamples: int, seed: int
               ) -> stats.Resampled | None:
    """Per-seed ECE of one variant on one condition (cells in seed order); None when the records
    lack what it needs. Per-example means and OOD metrics are resampled in batches by
    :func:`build_report`."""
    if metric != "ece" or any(k not in c.arrays for c in cells for k in ("confidence", "correct")):
        return None
    return stats.resample_ece(np.stack([c.arrays["confidence"] for c in cells]),
                              np.stack([c.arrays["correct"] for c in cells]).astype(np.float64), n_resamples, seed)


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


def _aggregates(conditions: list[Condition], evals: Evals, names: list[str], seeds: tuple[int, ...],
                task: str = "classify") -> list[Condition]:
    """Add aggregate conditions to ``evals`` and return them: the mean over every shift and
    severity (per BatchNorm test-time mode), and per (norm, eps) the worst case over every attack (an example counts as
    robust only if no attack broke it; a denoiser's worst case is its highest loss over the attacks)."""
    groups: dict[Condition, tuple[list[str], Callable[..., np.ndarray]]] = {}
    for mode in dict.fromkeys(c.bn_mode for c in conditions if c.kind == "shift"):  # one mean per BatchNorm mode
        keys = [c.key for c in conditions if c.kind == "shift" and c.bn_mode == mode]
        groups[mean_shift(mode)] = (keys, np.mean)
    by_ball: dict[tuple[str, float], list[str]] = defaultdict(list)
    for c in conditions:
        if c.kind == "attack":
            norm = next((cell.result.get("norm", "linf") for v in names
                         for cell in evals.get((v, c.key), {}).values()), "linf")
            by_ball[(norm, c.param("eps"))].append(c.key)
    # a classifier's worst case keeps an example only if every attack left it correct; a denoiser's is its highest loss
    worst = np.max if task == "denoise" else np.all
    for (norm, eps), keys in by_ball.items():
        if len(keys) > 1:
            groups[Condition("attack", "worst-case", (("eps", eps), ("norm", norm)))] = (keys, worst)
    array = "denoise_loss" if task == "denoise" else "correct"  # a denoiser's mean over shifts is of its loss
    for agg, (keys, reduce) in groups.items():
        for v in names:
            for s in seeds:
                cell = _aggregate([evals.get((v, k), {}).get(s) for k in keys], reduce, array)
                if cell is not None:
                    evals[(v, agg.key)][s] = cell
    return list(groups)


def _bounds(metric: str) -> tuple[float, float]:
    """The range of a metric's values: proportions and rates lie in [0, 1]; NLL and mCE are unbounded above."""
    return (0.0, np.inf) if metric in ("nll", "mce", "relative_mce", "denoising_loss", "sample_fid") else (0.0, 1.0)


def _boot_seed(metric: str) -> int:
    """One resampling seed per metric, shared by every variant (that is what pairs them) and every
    condition (so an attack at eps = 0 gets exactly the clean interval)."""
    return derive_seed(0, "ood" if metric in OOD else metric) % 2**32  # OOD metrics share one set of draws


def _subset(r: stats.Resampled, idx: list[int]) -> stats.Resampled:
    return stats.Resampled(r.point[idx], r.boot[:, idx], r.n_examples,
                           None if r.binary is None else r.binary[idx])


def _t_estimate(values: list[float], level: float, n_examples: int,
                bounds: tuple[float, float] = (-np.inf, np.inf)) -> stats.Estimate | None:
    """Mean over seeds with a t-interval, clipped to the metric's range (a proportion's to [0, 1])."""
    if not values:
        return None
    low, high = np.clip(stats.t_interval(values, level), *bounds)
    return stats.Estimate(float(np.mean(values)), float(low), float(high), level,
                          "t-interval over seeds" if len(values) > 1 else "one seed: no interval",
                          len(values), n_examples)


def build_report(run_dir: Path | str, level: float = 0.95, n_resamples: int = 2000, adjust: str = "holm",
                 interval: str = "auto") -> Report:
    """Build the report of a run directory from its stored records alone; ``adjust`` names the
    multiple-comparison adjustment of every p-value (see harness.stats.ADJUSTMENTS), ``interval``
    the interval method of every evaluation estimate and comparison (harness.stats.INTERVALS)."""
    if adjust not in stats.ADJUSTMENTS:
        raise ConfigError(f"unknown p-value adjustment {adjust!r}", hint=f"use one of {', '.join(stats.ADJUSTMENTS)}")
    if interval not in stats.INTERVALS:
        raise ConfigError(f"unknown interval method {interval!r}", hint=f"use one of {', '.join(stats.INTERVALS)}")
    with Store(run_dir, create=False) as store:
        suite = store.get_meta("suite")
        prov = store.get_meta("provenance") or {}
        judge = store.get_meta("judge")
        train_cells = list(store.cells("train"))
        every_eval = list(store.cells("eval"))
    eval_cells = [c for c in every_eval if c.status == "done"]
    if suite is None:
        raise ConfigError(f"{run_dir} holds no finished run (no suite recorded)", hint="run 'harness run' first")

    spec = Suite.from_dict(suite)
    variants = tuple(suite["variants"])
    names = [v["name"] for v in variants]
    seeds = tuple(suite["seeds"])
    train_by = {(c.variant, c.seed): c for c in train_cells}
    # a diverged or failed training run has no model to evaluate: say so, and leave it out
    unconverged_kept = suite.get("evaluate_unconverged", True)

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

    excluded = tuple(f"{v} seed {s}: {reason}" for v in names for s in seeds
                     if (reason := why(train_by.get((v, s))))) + _unevaluated(
        names, seeds, spec.conditions(), lambda v, s: not why(train_by.get((v, s))), every_eval)

    evals: dict[tuple[str, str], dict[int, Cell]] = defaultdict(dict)  # (variant, cond key) -> seed -> cell
    for c in eval_cells:
        assert c.condition is not None
        evals[(c.variant, Condition.from_dict(c.condition).key)][c.seed] = c

    # checks are evidence for the sanity battery, not estimates
    task = suite.get("task", "classify")
    conditions = [c for c in spec.conditions() if c.kind != "check"]
    extra = _aggregates(conditions, evals, names, seeds, task)
    conditions = conditions[:1] + [c for c in extra if c.kind == "shift"] + conditions[1:] + [
        c for c in extra if c.kind == "attack"]

    estimates: list[EstimateRow] = []
    resampled: dict[tuple[str, str, str], tuple[list[int], stats.Resampled]] = {}
    order: list[tuple[str, Condition, str]] = []
    means: dict[str, list[tuple[tuple[str, str, str], list[int], np.ndarray]]] = defaultdict(list)
    for cond in conditions:
        for metric in _metric_names(cond, task):
            for v in names:
                by_seed = evals.get((v, cond.key), {})
                have = [s for s in seeds if s in by_seed]
                cells = [by_seed[s] for s in have]
                if not have:
                    continue
                key = (v, cond.key, metric)
                if cond.kind != "ood" and metric in _PER_EXAMPLE:  # batched below, one product per metric
                    if all(_PER_EXAMPLE[metric] in c.arrays for c in cells):
                        values = np.stack([c.arrays[_PER_EXAMPLE[metric]] for c in cells]).astype(np.float64)
                        means[metric].append((key, have, values))
                        order.append((v, cond, metric))
                    continue
                if cond.kind == "ood":  # every OOD metric from one sort per seed and block
                    if metric == OOD[0]:
                        rs = stats.resample_ood(np.stack([c.arrays["score_in"] for c in cells]),
                                                np.stack([c.arrays["score_out"] for c in cells]), OOD, n_resamples,
                                                _boot_seed(metric))
                        resampled.update({(v, cond.key, m): (have, rs[m]) for m in OOD})
                    order.append((v, cond, metric))
                    continue
                r = _resampled_ece(cells, metric, n_resamples, _boot_seed(metric))
                if r is not None:
                    resampled[key] = (have, r)
                    order.append((v, cond, metric))
    for metric, jobs in means.items():
        for (key, have, _), r in zip(jobs, stats.resample_means([j[2] for j in jobs], n_resamples,
                                                                _boot_seed(metric)), strict=True):
            resampled[key] = (have, r)
    for v, cond, metric in order:
        r = resampled[(v, cond.key, metric)][1]
        estimates.append(EstimateRow(v, cond, metric, stats.estimate(r, level, _boot_seed(metric), interval,
                                                                     _bounds(metric))))
    n_test = next((r.n_examples for (_, k, _), (_, r) in resampled.items() if k == "clean"), 0)

    pairs = [(v.name, b.name) for v, b in spec.comparisons()]
    estimates += _corruption_errors(conditions, resampled, pairs, names, level, interval)
    # (variant, baseline, condition, metric, comparison, seeds, (S,) per-seed values of both)
    raw: list[tuple[str, str, Condition | None, str, stats.Comparison, tuple[int, ...],
                    tuple[np.ndarray, np.ndarray]]] = []
    for cond in conditions:
        # calibration is compared in-distribution only: under every shift it would triple the family
        for metric in (m for m in _metric_names(cond, task) if m not in CALIBRATION or cond == Condition("clean")):
            boot_seed = _boot_seed(metric)
            for v, base in pairs:
                if (v, cond.key, metric) not in resampled or (base, cond.key, metric) not in resampled:
                    continue
                (sa, ra), (sb, rb) = resampled[(v, cond.key, metric)], resampled[(base, cond.key, metric)]
                common = [s for s in sa if s in sb]
                if not common:
                    continue
                ra = _subset(ra, [sa.index(s) for s in common])
                rb = _subset(rb, [sb.index(s) for s in common])
                low, high = _bounds(metric)
                cmp = stats.compare(ra, rb, level, boot_seed, interval, bounds=(low - high, high - low))
                raw.append((v, base, cond, metric, cmp, tuple(common),
                            (ra.point, rb.point)))

    samples_est, samples_raw = _samples(conditions, evals, names, seeds, pairs, level)
    estimates += samples_est
    raw += samples_raw
    loaded = {c.variant for c in train_cells if c.status == "done" and c.result.get("trained") is False}
    summaries = tuple(_training_summary(v, seeds, train_by, level) for v in names if v not in loaded)
    raw += _training_comparisons(pairs, seeds, train_by, level)
    sweeps = _sweeps(spec, train_by, level)
    raw += _sweep_comparisons(spec, train_by, level)
    # every pair is compared on the seeds where both have a usable record: the row says when that is fewer
    raw = [(*r[:4], _on_common_seeds(r[4], list(r[5]), seeds), *r[5:]) for r in raw]
    adjusted = stats.ADJUSTMENTS[adjust][1]([c[4].p_value for c in raw]) if raw else np.array([])
    comparisons = tuple(_comparison_row(row, float(p), level) for row, p in zip(raw, adjusted, strict=True))

    training = tuple(TrainingRow(c.variant, c.seed, c.status, c.result, c.error)
                     for c in sorted(train_cells, key=lambda c: (names.index(c.variant) if c.variant in names
                                                                   else len(names), c.seed)))
    target = ({"target_loss": suite["diffusion"]["target_loss"]} if task == "denoise"
              else {"target_accuracy": suite["train"]["target_accuracy"]})  # a denoiser has no target accuracy
    return Report(
        suite={**{k: suite[k] for k in ("name", "version", "description", "dataset", "baseline_norm", "claims")},
               **target, "task": task, "bn_modes": list(suite["evaluation"].get("bn_modes", ["frozen"]))},
        seeds=seeds, variants=variants, level=level, n_resamples=n_resamples,
        estimates=tuple(estimates), comparisons=comparisons, training=training, training_summary=summaries,
        # the sanity checks are the classifiers' adversarial battery; a denoise suite runs none
        checks=() if task == "denoise" else tuple(run_checks(Records(evals, names, suite, pairs))),
        excluded=excluded, provenance=prov, judge=judge,
        n_test=n_test, adjust=adjust, attack_settings=_attack_settings(eval_cells),
        reliability=_reliability(conditions, evals, names), interval=interval,
        claims=verdicts(spec.claims, list(comparisons),
                        {**{v.family: v.norm for v in spec.variants}, **{v.name: v.norm for v in spec.variants}},
                        1 - level, tuple(v for v, _ in pairs), adjust),
        sweeps=sweeps,
        curves=_curves(names, seeds, train_by, level), roc=_roc(conditions, evals, names),
    )


def _samples(conditions: list[Condition], evals: Evals, names: list[str], seeds: tuple[int, ...],
             pairs: list[tuple[str, str]], level: float
             ) -> tuple[list[EstimateRow], list[tuple[str, str, Condition | None, str, stats.Comparison,
                                                      tuple[int, ...], tuple[np.ndarray, np.ndarray]]]]:
    """A denoise suite's sample metrics (SAMPLE_METRICS): one value per seed (a statistic of the
    seed's whole set of samples, with no per-example level), so a t-interval over seeds per
    variant and, per (variant, baseline) pair on at least two common seeds, the paired per-seed
    differences with a sign-flip test, as the training comparisons are made."""
    estimates: list[EstimateRow] = []
    raw: list[tuple[str, str, Condition | None, str, stats.Comparison, tuple[int, ...],
                    tuple[np.ndarray, np.ndarray]]] = []
    for cond in (c for c in conditions if c.kind == "samples"):
        for metric in SAMPLE_METRICS:
            values: dict[str, dict[int, float]] = {}
            for v in names:
                cells = evals.get((v, cond.key), {})
                values[v] = {s: float(c.result[metric]) for s in seeds if (c := cells.get(s)) is not None
                             and c.result.get(metric) is not None and np.isfinite(c.result[metric])}
                if values[v]:
                    n = int(next(c.result.get("n_samples", 0) for c in cells.values()))
                    est = _t_estimate(list(values[v].values()), level, n, _bounds(metric))
                    assert est is not None
                    estimates.append(EstimateRow(v, cond, metric, est))
            for v, base in pairs:
                common = [s for s in seeds if s in values.get(v, {}) and s in values.get(base, {})]
                if len(common) < 2:
                    continue
                a, b = (np.array([values[u][s] for s in common]) for u in (v, base))
                row = _paired_seed_comparison(v, base, metric, common, a, b, level)
                raw.append((v, base, cond, *row[3:]))  # type: ignore[arg-type]
    return estimates, raw


def _comparison_row(raw: tuple[str, str, Condition | None, str, stats.Comparison, tuple[int, ...],
                    tuple[np.ndarray, np.ndarray]], p_adjusted: float, level: float) -> ComparisonRow:
    """A comparison with its adjusted p-value and the probability of improvement over seed pairs."""
    v, base, cond, metric, cmp, seeds, (a, b) = raw
    higher = metric not in LOWER_IS_BETTER
    pi = stats.probability_of_improvement(a, b, higher)
    low, high = stats.probability_of_improvement_interval(a, b, higher, level) if len(a) > 1 else (None, None)
    return ComparisonRow(v, base, cond, metric, cmp, p_adjusted, seeds, "higher" if higher else "lower", pi, low,
                         high)


def _reliability(conditions: list[Condition], evals: Evals, names: list[str]) -> tuple[dict[str, Any], ...]:
    """Reliability-diagram data per variant on clean and each shifted input (running BatchNorm
    statistics), every seed's examples pooled: 15 equal-width confidence bins with their count,
    mean confidence and accuracy."""
    from harness.metrics import reliability_bins

    out = []
    for cond in conditions:
        if cond.kind not in ("clean", "shift") or cond.bn_mode != "frozen" or cond.name == "all":
            continue
        for v in names:
            cells = [c for c in evals.get((v, cond.key), {}).values() if "confidence" in c.arrays]
            if cells:
                bins = reliability_bins(np.concatenate([c.arrays["confidence"] for c in cells]),
                                        np.concatenate([c.arrays["correct"] for c in cells]))
                out.append({"variant": v, "condition": cond.to_dict(), **{k: a.tolist() for k, a in bins.items()}})
    return tuple(out)


MAX_CURVE_POINTS = 200  # per plotted curve: keeps results.json and every SVG small


def _thin(n: int, max_points: int = MAX_CURVE_POINTS) -> np.ndarray:
    """At most ``max_points`` indices into a length-``n`` curve, evenly spaced, first and last kept."""
    return np.arange(n) if n <= max_points else np.unique(np.linspace(0, n - 1, max_points).round().astype(int))


def _curves(names: list[str], seeds: tuple[int, ...], train_by: dict[tuple[str, int], Cell],
            level: float) -> tuple[dict[str, Any], ...]:
    """Training curves per variant over its finished, non-diverged seeds (as the training summary).

    ``steps`` (K,) are where the held-out accuracy was sampled; ``val_accuracy`` (K,) is its mean
    (``val_loss`` instead for a denoiser: its held-out denoising loss, lower is better, bands clipped at 0)
    over the seeds with a point at that step, ``val_low`` / ``val_high`` (K,) the t-interval over
    those seeds clipped to [0, 1] (NaN with one seed); ``loss_steps`` / ``loss`` (<= 200,) are the
    mean training loss over seeds, averaged over equal windows of steps (the window's last step),
    which both shrinks and smooths a per-step curve. Higher accuracy, lower loss is better.
    """
    out = []
    for v in names:
        cells = [c for s in seeds if (c := train_by.get((v, s))) is not None and _ok(c) and "loss" in c.arrays]
        if not cells:
            continue
        longest = max(cells, key=lambda c: len(c.arrays["curve_steps"])).arrays["curve_steps"]
        held_out = "curve_val_loss" if "curve_val_loss" in cells[0].arrays else "curve_val_accuracy"
        by_step = [[c.arrays[held_out][k] for c in cells if len(c.arrays["curve_steps"]) > k]
                   for k in range(len(longest))]
        bands = [np.clip(stats.t_interval(a, level), 0, np.inf if held_out == "curve_val_loss" else 1)
                 for a in by_step]
        n_loss = min(len(c.arrays["loss"]) for c in cells)  # equal for finished runs of one recipe
        loss = np.mean([c.arrays["loss"][:n_loss] for c in cells], axis=0)
        windows = np.array_split(np.arange(n_loss), min(n_loss, MAX_CURVE_POINTS)) if n_loss else []
        out.append({"variant": v, "n_seeds": len(cells), "steps": longest.tolist(),
                    ("val_loss" if held_out == "curve_val_loss" else "val_accuracy"):
                        [float(np.mean(a)) for a in by_step],
                    "val_low": [float(b[0]) for b in bands], "val_high": [float(b[1]) for b in bands],
                    "loss_steps": [int(w[-1]) + 1 for w in windows],  # steps count from 1
                    "loss": [float(loss[w].mean()) for w in windows]})
    return tuple(out)


def roc_curve(score_in: np.ndarray, score_out: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The ROC curve of (n_in,) in-distribution and (n_out,) OOD scores, higher meaning more
    in-distribution (in-distribution is the positive class): (fpr, tpr), each (T + 1,) from (0, 0)
    to (1, 1), one point per distinct score threshold, ties moved together."""
    scores = np.concatenate([score_in, score_out])
    is_in = np.concatenate([np.ones(len(score_in)), np.zeros(len(score_out))])
    order = np.argsort(-scores, kind="stable")
    last = np.r_[np.flatnonzero(np.diff(scores[order])), len(scores) - 1]  # last index of each tie group
    tp = np.cumsum(is_in[order])[last]
    fp = (last + 1) - tp
    return np.r_[0.0, fp / max(len(score_out), 1)], np.r_[0.0, tp / max(len(score_in), 1)]


def _roc(conditions: list[Condition], evals: Evals, names: list[str]) -> tuple[dict[str, Any], ...]:
    """ROC curves per variant and OOD condition, every seed's scores pooled: ``fpr`` / ``tpr``
    (<= 200,) thinned evenly along the curve, with the pooled counts ``n_in`` and ``n_out``."""
    out = []
    for cond in conditions:
        if cond.kind != "ood":
            continue
        for v in names:
            cells = [c for c in evals.get((v, cond.key), {}).values() if {"score_in", "score_out"} <= c.arrays.keys()]
            if cells:
                s_in = np.concatenate([c.arrays["score_in"] for c in cells])
                s_out = np.concatenate([c.arrays["score_out"] for c in cells])
                fpr, tpr = roc_curve(s_in, s_out)
                keep = _thin(len(fpr))
                out.append({"variant": v, "condition": cond.to_dict(), "n_seeds": len(cells), "n_in": len(s_in),
                            "n_out": len(s_out), "fpr": fpr[keep].tolist(), "tpr": tpr[keep].tolist()})
    return tuple(out)


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


def corruption_error(err: dict[str, np.ndarray], ref_err: dict[str, np.ndarray], groups: list[list[str]],
                     clean_key: str, relative: bool) -> np.ndarray:
    """Mean over corruptions of (sum over severities of a model's error) / (the same for the
    reference); ``relative`` subtracts each model's clean error from each term first.

    ``err`` and ``ref_err`` map a condition key to error arrays of one common shape (e.g. (S,)
    per seed, or (B, S) replicates); ``groups`` lists each corruption's severity keys. A zero
    denominator gives NaN. Lower is better; the reference scores 1.
    """
    def total(e: dict[str, np.ndarray], keys: list[str]) -> np.ndarray:
        return sum((e[k] - e[clean_key] if relative else e[k] for k in keys), np.zeros_like(e[clean_key]))

    ratios = []
    for keys in groups:
        den = total(ref_err, keys)
        ratios.append(total(err, keys) / np.where(den == 0, np.nan, den))
    return np.mean(ratios, axis=0)


def _errors(resampled: dict[tuple[str, str, str], tuple[list[int], stats.Resampled]], variant: str, keys: list[str],
            seeds: list[int]) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Error rates of ``variant`` on ``keys`` for ``seeds``: per seed (S,) and per replicate (B, S)."""
    point, boot = {}, {}
    for k in keys:
        have, r = resampled[(variant, k, "accuracy")]
        idx = [have.index(s) for s in seeds]
        point[k], boot[k] = 1 - r.point[idx], 1 - r.boot[:, idx]
    return point, boot


def _corruption_errors(conditions: list[Condition], resampled: dict[tuple[str, str, str], tuple[list[int],
                       stats.Resampled]], pairs: list[tuple[str, str]], names: list[str], level: float,
                       interval: str = "auto") -> list[EstimateRow]:
    """mCE and relative mCE per variant (and BatchNorm mode), normalised by the variant's reference:
    the same architecture with the baseline norm, as ImageNet-C normalises by AlexNet.

    Per corruption c: CE_c = sum over severities of the variant's error / the reference's error;
    relative CE_c does the same with each error minus the model's clean error. mCE is the mean of
    CE_c over corruptions (1 = as robust as the reference, lower is better). Computed per seed
    from the stored accuracy replicates, whose example draws are shared by all variants, so the
    interval resamples seeds and examples like every other estimate. The reference itself is 1.
    """
    reference = {v: b for v, b in pairs} | {b: b for _, b in pairs}
    out = []
    for mode in dict.fromkeys(c.bn_mode for c in conditions if c.kind == "shift"):
        by_name: dict[str, list[str]] = defaultdict(list)
        for c in conditions:
            if c.kind == "shift" and c.name != "all" and c.bn_mode == mode:
                by_name[c.name].append(c.key)
        clean_key = clean(mode).key
        for v in names:
            ref = reference.get(v)
            keys = [k for ks in by_name.values() for k in ks] + [clean_key]
            if ref is None or not by_name or any((u, k, "accuracy") not in resampled for u in (v, ref) for k in keys):
                continue
            seeds = [s for s in resampled[(v, clean_key, "accuracy")][0]
                     if all(s in resampled[(u, k, "accuracy")][0] for u in (v, ref) for k in keys)]
            if not seeds:
                continue
            errors = {u: _errors(resampled, u, keys, seeds) for u in (v, ref)}
            groups = list(by_name.values())
            n = resampled[(v, clean_key, "accuracy")][1].n_examples
            for metric, relative in (("mce", False), ("relative_mce", True)):
                point, boot = (corruption_error(errors[v][i], errors[ref][i], groups, clean_key, relative)
                               for i in (0, 1))
                if np.isfinite(point).all() and np.isfinite(boot).all():
                    r = stats.Resampled(point=point, boot=boot, n_examples=n, binary=None)
                    out.append(EstimateRow(v, mean_shift(mode), metric,
                                           stats.estimate(r, level, _boot_seed(metric), interval, _bounds(metric))))
    return out


def _ok(cell: Cell | None) -> bool:
    """A finished training run that did not diverge; a model loaded from weights (Variant.weights)
    was not trained, so it has no training measurements to summarise or compare."""
    return (cell is not None and cell.status == "done" and not cell.result.get("diverged")
            and cell.result.get("trained", True) is not False)


def _training_summary(v: str, seeds: tuple[int, ...], train_by: dict[tuple[str, int], Cell],
                      level: float) -> TrainingSummary:
    cells = [train_by.get((v, s)) for s in seeds]
    done = [c for c in cells if c is not None and _ok(c)]
    all_reached = all(c.result["steps_to_target"] is not None for c in done)

    def est(metric: str, bounds: tuple[float, float] = (0, np.inf)) -> stats.Estimate | None:
        values = [c.result.get(metric) for c in done]  # older records lack the later measurements
        if (metric.endswith("_to_target") and not all_reached) or any(x is None for x in values):
            return None
        return _t_estimate([float(x) for x in values if x is not None and np.isfinite(x)], level, 0, bounds)

    return TrainingSummary(
        variant=v, n_seeds=len(seeds), reached=sum(c.result["steps_to_target"] is not None for c in done),
        diverged=sum(1 for c in cells if c is not None and c.result.get("diverged")),
        failed=sum(1 for c in cells if c is not None and c.status == "failed"),
        **{m: est(m, (0, 1) if m in FRACTIONS else (0, np.inf))
           for m in TRAINING_SUMMARY_METRICS},
    )


FRACTIONS = frozenset({"aulc", "converged_fraction", "final_val_accuracy"})
# compared between paired variants over seeds; steps to target is capped at the budget, see below
# (mean_val_loss: a denoiser's; aulc: a classifier's; a metric a run does not record is not compared)
TRAINING_COMPARISONS = ("steps_to_target", "aulc", "loss_roughness", "seconds_per_step", "mean_val_loss")


def _capped_steps(cell: Cell) -> float | None:
    """Steps to target, a run that never reached it counted at its budget (right-censored)."""
    r = cell.result
    if r["steps_to_target"] is not None:
        return float(r["steps_to_target"])
    budget = r.get("budget_steps")
    return None if budget is None else float(budget)


def _training_value(cell: Cell, metric: str) -> float | None:
    """A training metric of one run (steps to target capped at the budget); None when not recorded."""
    x = _capped_steps(cell) if metric == "steps_to_target" else cell.result.get(metric)
    return None if x is None or not np.isfinite(x) else float(x)


def _paired_seed_comparison(v: str, base: str, metric: str, common: list[int], a: np.ndarray, b: np.ndarray,
                            level: float, method: str = "t-interval over per-seed differences"
                            ) -> tuple[str, str, None, str, stats.Comparison, tuple[int, ...],
                                       tuple[np.ndarray, np.ndarray]]:
    """A comparison of per-seed summaries (no example level): t-interval and sign-flip p-value;
    the interval of a fraction's difference is clipped to [-1, 1]."""
    d = a - b
    low, high = np.clip(stats.t_interval(d, level), *((-1, 1) if metric in FRACTIONS else (-np.inf, np.inf)))
    comps = stats.Components(float(d.var(ddof=1)) / len(d), 0.0, 0.0, len(d))
    return (v, base, None, metric, stats.Comparison(
        float(d.mean()), float(low), float(high), level, stats.sign_flip_test(d), method,
        f"sign-flip permutation over seeds (exact, {2 ** len(d)} sign patterns)", len(d), 0,
        effect_size=stats.effect_size(d), mde=stats.detectable_difference(comps, level),
        seeds_needed=stats.seeds_needed(float(d.mean()), comps, level), components=comps), tuple(common), (a, b))


def _training_comparisons(pairs: list[tuple[str, str]], seeds: tuple[int, ...],
                          train_by: dict[tuple[str, int], Cell], level: float
                          ) -> list[tuple[str, str, None, str, stats.Comparison, tuple[int, ...],
                                          tuple[np.ndarray, np.ndarray]]]:
    """Paired per-seed differences of training metrics (t-interval, sign-flip p-value); per-seed
    summaries have no example level, so the design's variance is the seeds' alone.

    Steps to target of a run that never reached it count as its budget: the compared quantity is
    steps to target capped at the budget, defined for every finished run, so a censored run stays
    in the test (the sign-flip test of capped values is exact under the null of no difference)."""
    out = []
    for v, base in pairs:
        common = [s for s in seeds if _ok(train_by.get((v, s))) and _ok(train_by.get((base, s)))]
        for metric in TRAINING_COMPARISONS:
            vals = [(_training_value(train_by[(v, s)], metric), _training_value(train_by[(base, s)], metric))
                    for s in common]
            if len(vals) < 2 or any(a is None or b is None for a, b in vals):
                continue  # older records without the measurement, or too few seeds to test
            a, b = (np.array(x, dtype=np.float64) for x in zip(*vals, strict=True))
            censored = sum(train_by[(n, s)].result["steps_to_target"] is None for n in (v, base) for s in common)
            method = "t-interval over per-seed differences" + (
                f"; {censored} censored run(s) counted at the budget" if metric == "steps_to_target" and censored
                else "")
            out.append(_paired_seed_comparison(v, base, metric, common, a, b, level, method))
    return out


def _converged(cell: Cell | None) -> bool:
    return _ok(cell) and cell is not None and cell.result.get("steps_to_target") is not None


def _families(suite: Suite) -> dict[tuple[str, str], list[Any]]:
    """(family, swept setting) -> the family's variants along that setting, in value order; only
    variants that override exactly one setting form a sweep."""
    out: dict[tuple[str, str], list[Any]] = defaultdict(list)
    for v in suite.variants:
        if len(v.train) == 1:
            out[(v.family, v.train[0][0])].append(v)
    return {k: sorted(vs, key=lambda v: v.train[0][1]) for k, vs in out.items() if len(vs) > 1}


def _sweeps(suite: Suite, train_by: dict[tuple[str, int], Cell], level: float) -> tuple[SweepSummary, ...]:
    """Per variant family and swept setting: at each value, how many seeds converged (reached the
    target without diverging) and diverged, and the final held-out accuracy; and the range of
    values at which every seed converged."""
    out = []
    for (family, setting), vs in _families(suite).items():
        points = []
        for v in vs:
            cells = [train_by.get((v.name, s)) for s in suite.seeds]
            done = [c for c in cells if _ok(c)]
            points.append(SweepPoint(
                family, setting, v.train[0][1], v.name, len(suite.seeds), sum(_converged(c) for c in cells),
                sum(1 for c in cells if c is not None and c.result.get("diverged")),
                _t_estimate([x for c in done if c is not None
                             and (x := c.result.get("final_val_accuracy")) is not None], level, 0, (0, 1))))
        ok = [p.value for p in points if p.converged == p.n_seeds]
        out.append(SweepSummary(family, setting, tuple(points), (min(ok), max(ok)) if ok else None))
    return tuple(out)


def _sweep_comparisons(suite: Suite, train_by: dict[tuple[str, int], Cell], level: float
                       ) -> list[tuple[str, str, Condition | None, str, stats.Comparison, tuple[int, ...],
                                       tuple[np.ndarray, np.ndarray]]]:
    """Per seed, the share of a sweep's points at which the run converged, compared between each
    normalized family and its baseline family over seeds (condition "sweep:<setting>" in claims)."""
    fams = _families(suite)
    pairs = {(v.family, b.family, v.train[0][0]) for v, b in suite.comparisons() if len(v.train) == 1}
    out: list[tuple[str, str, Condition | None, str, stats.Comparison, tuple[int, ...],
                    tuple[np.ndarray, np.ndarray]]] = []
    for fam, base, setting in sorted(pairs):
        if (fam, setting) not in fams or (base, setting) not in fams or len(suite.seeds) < 2:
            continue
        if [v.train for v in fams[(fam, setting)]] != [v.train for v in fams[(base, setting)]]:
            continue  # the two families were swept over different values
        a, b = (np.array([np.mean([_converged(train_by.get((v.name, s))) for v in fams[(f, setting)]])
                          for s in suite.seeds]) for f in (fam, base))
        row = _paired_seed_comparison(fam, base, "converged_fraction", list(suite.seeds), a, b, level)
        out.append((fam, base, Condition("sweep", setting), *row[3:]))  # type: ignore[arg-type]
    return out
