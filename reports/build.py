"""Records -> Report: every estimate, paired comparison, training summary and sanity check.

A report is a pure function of the stored records (and of the statistical settings:
confidence level and number of resamples), so it can be rebuilt offline with other settings
and never touches a model. Renderers (Markdown, JSON, terminal) only format a :class:`Report`.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness import stats
from harness.seeding import derive_seed
from harness.specs import Condition, attack
from harness.store import Cell, Store

SCHEMA_VERSION = 1
MEAN_SHIFT = Condition("shift", "all")  # aggregate: mean accuracy over every shift and severity


@dataclass(frozen=True)
class EstimateRow:
    variant: str
    condition: Condition
    metric: str  # accuracy (higher is better), auroc (higher), fpr95 (lower)
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


@dataclass(frozen=True)
class TrainingRow:
    variant: str
    seed: int
    status: str
    result: dict[str, Any]
    error: str | None


@dataclass(frozen=True)
class TrainingSummary:
    """Per variant: how many seeds reached the target, and estimates over seeds (t-intervals)."""

    variant: str
    n_seeds: int
    reached: int
    diverged: int
    failed: int
    steps_to_target: stats.Estimate | None  # None unless every finished seed reached the target
    seconds_per_step: stats.Estimate | None
    final_val_accuracy: stats.Estimate | None


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # "pass", "fail" or "n/a"
    detail: str


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


# --- gathering -----------------------------------------------------------------------------


def _metric_names(cond: Condition) -> tuple[str, ...]:
    return ("auroc", "fpr95") if cond.kind == "ood" else ("accuracy",)


def _resampled(cells: list[Cell], cond: Condition, metric: str, n_resamples: int, seed: int) -> stats.Resampled:
    """Per-seed statistic of one variant on one condition; cells are in seed order."""
    if cond.kind == "ood":
        s_in = np.stack([c.arrays["score_in"] for c in cells])
        s_out = np.stack([c.arrays["score_out"] for c in cells])
        return stats.resample_two_sample(s_in, s_out, metric, n_resamples, seed)
    return stats.resample_mean(np.stack([c.arrays["correct"] for c in cells]).astype(np.float64), n_resamples, seed)


def _mean_shift_cells(by_cond: dict[str, Cell], shift_keys: list[str]) -> Cell | None:
    """One pseudo-cell whose per-example value is the mean correctness over every shifted
    version of that example (so the aggregate stays paired per example)."""
    if not shift_keys or any(k not in by_cond for k in shift_keys):
        return None
    first = by_cond[shift_keys[0]]
    mean = np.mean([by_cond[k].arrays["correct"] for k in shift_keys], axis=0)
    return Cell("", "eval", first.variant, first.seed, {}, {}, arrays={"correct": mean})


def _boot_seed(metric: str) -> int:
    """One resampling seed per metric, shared by every variant (that is what pairs them) and every
    condition (so an attack at eps = 0 gets exactly the clean interval)."""
    return derive_seed(0, metric) % 2**32


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


def build_report(run_dir: Path | str, level: float = 0.95, n_resamples: int = 2000) -> Report:
    """Build the report of a run directory from its stored records alone."""
    with Store(run_dir, create=False) as store:
        suite = store.get_meta("suite")
        prov = store.get_meta("provenance") or {}
        train_cells = list(store.cells("train"))
        eval_cells = [c for c in store.cells("eval") if c.status == "done"]
    if suite is None:
        from harness.errors import ConfigError

        raise ConfigError(f"{run_dir} holds no finished run (no suite recorded)", hint="run 'harness run' first")

    variants = tuple(suite["variants"])
    names = [v["name"] for v in variants]
    seeds = tuple(suite["seeds"])
    baseline_norm = suite["baseline_norm"]
    train_by = {(c.variant, c.seed): c for c in train_cells}
    # a diverged or failed training run has no model to evaluate: say so, and leave it out
    excluded = tuple(
        f"{v} seed {s}: " + ("not trained" if c is None else "diverged" if c.result.get("diverged") else
                             f"training failed ({(c.error or '').splitlines()[0]})" if c.status == "failed" else "")
        for v in names for s in seeds
        if (c := train_by.get((v, s))) is None or c.status == "failed" or c.result.get("diverged"))

    evals: dict[tuple[str, str], dict[int, Cell]] = defaultdict(dict)  # (variant, cond key) -> seed -> cell
    for c in eval_cells:
        assert c.condition is not None
        evals[(c.variant, Condition.from_dict(c.condition).key)][c.seed] = c

    conditions = _conditions(suite)
    shift_keys = [c.key for c in conditions if c.kind == "shift"]
    if shift_keys:
        for v in names:
            for s in seeds:
                cell = _mean_shift_cells({k: evals[(v, k)][s] for k in shift_keys if s in evals[(v, k)]}, shift_keys)
                if cell is not None:
                    evals[(v, MEAN_SHIFT.key)][s] = cell
        conditions.insert(1, MEAN_SHIFT)

    estimates: list[EstimateRow] = []
    resampled: dict[tuple[str, str, str], tuple[list[int], stats.Resampled]] = {}
    n_test = 0
    for cond in conditions:
        for metric in _metric_names(cond):
            boot_seed = _boot_seed(metric)
            for v in names:
                by_seed = evals.get((v, cond.key), {})
                have = [s for s in seeds if s in by_seed]
                if not have:
                    continue
                cells = [by_seed[s] for s in have]
                r = _resampled(cells, cond, metric, n_resamples, boot_seed)
                resampled[(v, cond.key, metric)] = (have, r)
                estimates.append(EstimateRow(v, cond, metric, stats.estimate(r, level, boot_seed)))
                if cond.kind == "clean":
                    n_test = r.n_examples

    pairs = _pairs(variants, baseline_norm)
    raw: list[tuple[str, str, Condition | None, str, stats.Comparison, tuple[int, ...]]] = []
    for cond in conditions:
        for metric in _metric_names(cond):
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
                raw.append((v, base, cond, metric, stats.compare(ra, rb, level, boot_seed), tuple(common)))

    summaries = tuple(_training_summary(v, seeds, train_by, level) for v in names)
    raw += _training_comparisons(pairs, seeds, train_by, level)
    adjusted = stats.holm([c[4].p_value for c in raw]) if raw else np.array([])
    comparisons = tuple(ComparisonRow(v, b, cond, m, cmp, float(p), sd)
                        for (v, b, cond, m, cmp, sd), p in zip(raw, adjusted, strict=True))

    training = tuple(TrainingRow(c.variant, c.seed, c.status, c.result, c.error)
                     for c in sorted(train_cells, key=lambda c: (names.index(c.variant) if c.variant in names
                                                                   else len(names), c.seed)))
    return Report(
        suite={**{k: suite[k] for k in ("name", "version", "description", "dataset", "baseline_norm", "claims")},
               "target_accuracy": suite["train"]["target_accuracy"]},
        seeds=seeds, variants=variants, level=level, n_resamples=n_resamples,
        estimates=tuple(estimates), comparisons=comparisons, training=training, training_summary=summaries,
        checks=tuple(_checks(evals, names, seeds, suite)), excluded=excluded, provenance=prov, n_test=n_test,
    )


def _conditions(suite: dict[str, Any]) -> list[Condition]:
    from harness.specs import AttackSpec, EvalSpec, Suite, TrainSpec, Variant

    ev = dict(suite["evaluation"])
    ev["attacks"] = tuple(AttackSpec(a["name"], tuple(a["eps"]), tuple(tuple(p) for p in a["params"]))
                          for a in ev["attacks"])
    for k in ("shifts", "severities", "ood_sets", "ood_scores"):
        ev[k] = tuple(ev[k])
    s = Suite(name=suite["name"], version=suite["version"], description=suite["description"],
              dataset=suite["dataset"], variants=tuple(Variant(v["name"], v["model"], v["norm"])
                                                       for v in suite["variants"]),
              seeds=tuple(suite["seeds"]), train=TrainSpec(**suite["train"]), evaluation=EvalSpec(**ev))
    return s.conditions()


def _pairs(variants: tuple[dict[str, Any], ...], baseline_norm: str) -> list[tuple[str, str]]:
    """(variant, baseline) names: same model, options and input handling, baseline's norm."""
    def same(a: dict[str, Any], b: dict[str, Any]) -> bool:
        return all(a[k] == b[k] for k in ("model", "standardize", "options"))

    return [(v["name"], b["name"]) for v in variants if v["norm"] != baseline_norm
            for b in variants if b["norm"] == baseline_norm and same(v, b)]


def _ok(cell: Cell | None) -> bool:
    return cell is not None and cell.status == "done" and not cell.result.get("diverged")


def _training_summary(v: str, seeds: tuple[int, ...], train_by: dict[tuple[str, int], Cell],
                      level: float) -> TrainingSummary:
    cells = [train_by.get((v, s)) for s in seeds]
    done = [c for c in cells if _ok(c)]
    steps = [c.result["steps_to_target"] for c in done if c.result["steps_to_target"] is not None]
    return TrainingSummary(
        variant=v, n_seeds=len(seeds), reached=len(steps),
        diverged=sum(1 for c in cells if c is not None and c.result.get("diverged")),
        failed=sum(1 for c in cells if c is not None and c.status == "failed"),
        steps_to_target=_t_estimate(steps, level, 0, (0, np.inf)) if len(steps) == len(done) else None,
        seconds_per_step=_t_estimate([c.result["seconds_per_step"] for c in done], level, 0, (0, np.inf)),
        final_val_accuracy=_t_estimate([c.result["final_val_accuracy"] for c in done], level, 0, (0, 1)),
    )


def _training_comparisons(pairs: list[tuple[str, str]], seeds: tuple[int, ...],
                          train_by: dict[tuple[str, int], Cell], level: float
                          ) -> list[tuple[str, str, None, str, stats.Comparison, tuple[int, ...]]]:
    """Paired per-seed differences of training metrics (t-interval, sign-flip p-value)."""
    out = []
    for v, base in pairs:
        common = [s for s in seeds if _ok(train_by.get((v, s))) and _ok(train_by.get((base, s)))]
        for metric in ("steps_to_target", "seconds_per_step"):
            vals = [(train_by[(v, s)].result[metric], train_by[(base, s)].result[metric]) for s in common]
            if len(vals) < 2 or any(a is None or b is None for a, b in vals):
                continue  # censored runs have no difference to test; the summary says how many reached
            d = np.array([a - b for a, b in vals], dtype=np.float64)
            low, high = stats.t_interval(d, level)
            p = stats.sign_flip_test(d)
            out.append((v, base, None, metric, stats.Comparison(
                float(d.mean()), low, high, level, p, "t-interval over per-seed differences",
                f"sign-flip permutation over seeds (exact, {2 ** len(d)} sign patterns)", len(d), 0), tuple(common)))
    return out


def _checks(evals: dict[tuple[str, str], dict[int, Cell]], names: list[str], seeds: tuple[int, ...],
            suite: dict[str, Any]) -> list[Check]:
    """Sanity checks on adversarial records, each with the numbers behind its verdict."""
    attacks = suite["evaluation"]["attacks"]
    if not attacks:
        return [Check("adversarial sanity checks", "n/a", "the suite runs no attack")]
    checks = []
    mismatch, total, n_zero = 0, 0, 0
    worst_ball, ball_cells = 0.0, 0
    nonmono: list[str] = []
    weaker: list[str] = []
    clean_key = Condition("clean").key
    for a in attacks:
        eps = sorted(a["eps"])
        params = tuple(tuple(p) for p in a["params"])
        for v in names:
            accs = []
            for e in eps:
                key = attack(a["name"], e, params).key
                cells = evals.get((v, key), {})
                for s, c in cells.items():
                    ball_cells += 1
                    worst_ball = max(worst_ball, float(c.arrays["linf"].max()) - e)
                    if e == 0 and s in evals.get((v, clean_key), {}):
                        n_zero += 1
                        clean = evals[(v, clean_key)][s].arrays["correct"]
                        mismatch += int((clean != c.arrays["correct"]).sum())
                        total += len(clean)
                if len(cells) == len(seeds):
                    accs.append((e, float(np.mean([c.arrays["correct"].mean() for c in cells.values()]))))
            for (e1, a1), (e2, a2) in zip(accs, accs[1:], strict=False):
                if a2 > a1 + 1e-12:
                    nonmono.append(f"{v} {a['name']} eps {e1}->{e2}: {100 * a1:.1f}% -> {100 * a2:.1f}%")
    checks.append(Check(
        "eps = 0 reproduces clean predictions", "n/a" if n_zero == 0 else "pass" if mismatch == 0 else "fail",
        f"{mismatch} of {total} per-example outcomes differ across {n_zero} (variant, seed, attack) records"
        if n_zero else "no attack was run at eps = 0"))
    checks.append(Check(
        "perturbations stay inside the eps-ball", "pass" if worst_ball <= 1e-6 else "fail",
        f"largest excess of |x_adv - x|_inf over eps: {max(worst_ball, 0.0):.2e} across {ball_cells} records"))
    checks.append(Check(
        "accuracy never rises with eps (mean over seeds)", "pass" if not nonmono else "fail",
        "; ".join(nonmono) if nonmono else "robust accuracy is non-increasing in eps for every variant and attack"))
    by_name = {a["name"]: a for a in attacks}
    if "fgsm" in by_name and "pgd-linf" in by_name:
        fg, pg = by_name["fgsm"], by_name["pgd-linf"]
        pg_params = tuple(tuple(p) for p in pg["params"])
        compared = 0
        for v in names:
            for e in sorted(set(fg["eps"]) & set(pg["eps"])):
                f_cells = evals.get((v, attack("fgsm", e, tuple(tuple(p) for p in fg["params"])).key), {})
                p_cells = evals.get((v, attack("pgd-linf", e, pg_params).key), {})
                common = [s for s in f_cells if s in p_cells]
                if not common:
                    continue
                compared += 1
                fa = np.mean([f_cells[s].arrays["correct"].mean() for s in common])
                pa = np.mean([p_cells[s].arrays["correct"].mean() for s in common])
                if pa > fa + 1e-12:
                    weaker.append(f"{v} eps {e}: PGD {100 * pa:.1f}% vs FGSM {100 * fa:.1f}%")
        checks.append(Check(
            "PGD is at least as strong as FGSM at every eps (mean over seeds)",
            "n/a" if not compared else "pass" if not weaker else "fail",
            "; ".join(weaker) if weaker else f"PGD accuracy <= FGSM accuracy in all {compared} (variant, eps) pairs"))
    return checks
