"""Training summaries, their paired comparisons, and sweeps, from the training records.

A training run gives one value per seed of each measurement (steps to target, AULC, roughness,
seconds per step...), so a variant's summary is a t-interval over its usable seeds and a pair of
variants is compared by the per-seed differences (harness.reports.estimates.paired_seed_comparison).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

from harness import stats
from harness.reports.estimates import paired_seed_comparison, t_estimate
from harness.reports.rows import (
    TRAINING_SUMMARY_METRICS,
    PairedResult,
    SweepPoint,
    SweepSummary,
    TrainingSummary,
    metric_of,
)
from harness.specs import Condition, Suite
from harness.store import Cell

# (variant, seed) -> its training record
TrainingCells = dict[tuple[str, int], Cell]

# compared between paired variants over seeds; steps to target is capped at the budget, see below
# (mean_val_loss: a denoiser's; mean_val_bpc: a language model's; aulc: a classifier's; a metric a run does not
# record is not compared)
TRAINING_COMPARISONS = ("steps_to_target", "aulc", "loss_roughness", "seconds_per_step", "mean_val_loss",
                        "mean_val_bpc", "flops_to_target", "energy_to_target")
# a "to target" measurement -> what a run that never reached the target counts at (its whole budget's)
_CAPS = {"steps_to_target": lambda r: r.get("budget_steps"),
         "flops_to_target": lambda r: None if r.get("step_flops") is None or r.get("budget_steps") is None
         else r["step_flops"] * r["budget_steps"],
         "energy_to_target": lambda r: r.get("energy")}


def usable(cell: Cell | None) -> bool:
    """A finished training run that did not diverge; a model loaded from weights (Variant.weights)
    was not trained, so it has no training measurements to summarise or compare."""
    return (cell is not None and cell.status == "done" and not cell.result.get("diverged")
            and cell.result.get("trained", True) is not False)


def training_summary(v: str, seeds: tuple[int, ...], train_by: TrainingCells, level: float) -> TrainingSummary:
    """Variant ``v``'s seeds: how many reached the target, diverged and failed, and a t-interval
    over its usable seeds of every measurement they all recorded (TRAINING_SUMMARY_METRICS)."""
    cells = [train_by.get((v, s)) for s in seeds]
    done = [c for c in cells if c is not None and usable(c)]
    all_reached = all(c.result["steps_to_target"] is not None for c in done)

    def est(metric: str) -> stats.Estimate | None:
        values = [c.result.get(metric) for c in done]  # older records lack the later measurements
        if (metric.endswith("_to_target") and not all_reached) or any(x is None for x in values):
            return None
        return t_estimate([float(x) for x in values if x is not None and np.isfinite(x)], level, 0,
                          metric_of(metric).bounds)

    return TrainingSummary(
        variant=v, n_seeds=len(seeds), reached=sum(c.result["steps_to_target"] is not None for c in done),
        diverged=sum(1 for c in cells if c is not None and c.result.get("diverged")),
        failed=sum(1 for c in cells if c is not None and c.status == "failed"),
        **{m: est(m) for m in TRAINING_SUMMARY_METRICS},
    )


def _training_value(cell: Cell, metric: str) -> float | None:
    """A training metric of one run; None when not recorded. A "to target" measurement of a run that never
    reached the target (right-censored) counts at its whole budget's: steps, FLOPs or energy (``_CAPS``)."""
    r = cell.result
    x = r.get(metric)
    if metric in _CAPS and r.get("steps_to_target") is None:
        x = _CAPS[metric](r)
    return None if x is None or not np.isfinite(x) else float(x)


def training_comparisons(pairs: list[tuple[str, str]], seeds: tuple[int, ...], train_by: TrainingCells,
                         level: float) -> list[PairedResult]:
    """Paired per-seed differences of training metrics (t-interval, sign-flip p-value); per-seed
    summaries have no example level, so the design's variance is the seeds' alone.

    Steps to target of a run that never reached it count as its budget: the compared quantity is
    steps to target capped at the budget, defined for every finished run, so a censored run stays
    in the test (the sign-flip test of capped values is exact under the null of no difference)."""
    out = []
    for v, base in pairs:
        common = [s for s in seeds if usable(train_by.get((v, s))) and usable(train_by.get((base, s)))]
        for metric in TRAINING_COMPARISONS:
            vals = [(_training_value(train_by[(v, s)], metric), _training_value(train_by[(base, s)], metric))
                    for s in common]
            if len(vals) < 2 or any(a is None or b is None for a, b in vals):
                continue  # older records without the measurement, or too few seeds to test
            a, b = (np.array(x, dtype=np.float64) for x in zip(*vals, strict=True))
            censored = sum(train_by[(n, s)].result["steps_to_target"] is None for n in (v, base) for s in common)
            method = "t-interval over per-seed differences" + (
                f"; {censored} censored run(s) counted at the budget" if metric in _CAPS and censored
                else "")
            out.append(paired_seed_comparison(v, base, None, metric, common, a, b, level, method))
    return out


# --- sweeps ---------------------------------------------------------------------------------------


def _converged(cell: Cell | None) -> bool:
    return usable(cell) and cell is not None and cell.result.get("steps_to_target") is not None


def sweep_families(suite: Suite) -> dict[tuple[str, str], list[Any]]:
    """(family, swept setting) -> the family's variants along that setting, in value order; only
    variants that override exactly one setting form a sweep."""
    out: dict[tuple[str, str], list[Any]] = defaultdict(list)
    for v in suite.variants:
        if len(v.train) == 1:
            out[(v.family, v.train[0][0])].append(v)
    return {k: sorted(vs, key=lambda v: v.train[0][1]) for k, vs in out.items() if len(vs) > 1}


def sweeps(suite: Suite, train_by: TrainingCells, level: float) -> tuple[SweepSummary, ...]:
    """Per variant family and swept setting: at each value, how many seeds converged (reached the
    target without diverging) and diverged, and the final held-out accuracy; and the range of
    values at which every seed converged."""
    out = []
    for (family, setting), vs in sweep_families(suite).items():
        points = []
        for v in vs:
            cells = [train_by.get((v.name, s)) for s in suite.seeds]
            done = [c for c in cells if usable(c)]
            points.append(SweepPoint(
                family, setting, v.train[0][1], v.name, len(suite.seeds), sum(_converged(c) for c in cells),
                sum(1 for c in cells if c is not None and c.result.get("diverged")),
                t_estimate([x for c in done if c is not None
                            and (x := c.result.get("final_val_accuracy")) is not None], level, 0,
                           metric_of("final_val_accuracy").bounds)))
        ok = [p.value for p in points if p.converged == p.n_seeds]
        out.append(SweepSummary(family, setting, tuple(points), (min(ok), max(ok)) if ok else None))
    return tuple(out)


def sweep_comparisons(suite: Suite, train_by: TrainingCells, level: float) -> list[PairedResult]:
    """Per seed, the share of a sweep's points at which the run converged, compared between each
    normalized family and its baseline family over seeds (condition "sweep:<setting>" in claims)."""
    fams = sweep_families(suite)
    pairs = {(v.family, b.family, v.train[0][0]) for v, b in suite.comparisons() if len(v.train) == 1}
    out = []
    for fam, base, setting in sorted(pairs):
        if (fam, setting) not in fams or (base, setting) not in fams or len(suite.seeds) < 2:
            continue
        if [v.train for v in fams[(fam, setting)]] != [v.train for v in fams[(base, setting)]]:
            continue  # the two families were swept over different values
        a, b = (np.array([np.mean([_converged(train_by.get((v.name, s))) for v in fams[(f, setting)]])
                          for s in suite.seeds]) for f in (fam, base))
        out.append(paired_seed_comparison(fam, base, Condition("sweep", setting), "converged_fraction",
                                          list(suite.seeds), a, b, level))
    return out
