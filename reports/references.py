"""Published results set beside the run's numbers: each suite reference (harness.specs.Reference)
judged on the run's records.

Each expected outcome (harness.specs.Expected) is observed on the report's data:

* a contrast (lower / higher / not-higher / not-lower) is a paired comparison, per seed and on the
  same example draws as every comparison of the report (harness.reports.estimates.paired_result;
  training metrics: per-seed differences, harness.reports.training.training_comparisons), judged
  by the rule the claims use (harness.reports.claims.decide_row: its interval against the
  boundary, 0 or the margin, and the two one-sided sign-flip tests of its per-seed differences
  against that boundary) on *unadjusted* p-values: a reference is a comparison with the
  literature, outside the claims' confirmatory family, and the report says so. Supported holds,
  contradicted fails, inconclusive is open; the p shown is the one-sided p of the side the
  estimate lies on;
* a value ("about", within a tolerance) holds when the estimate lies within the tolerance of the
  published value, fails when its whole interval lies outside that band, and is open otherwise.

A reference agrees when every expectation holds, disagrees when any fails, is undecided when some
are open, and is not comparable when the run lacks what an expectation needs (a variant, a
condition or a metric: a reduced size leaves some out), with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from harness import sequential, stats
from harness.reports.claims import CONTRADICTED, SUPPORTED, decide_row
from harness.reports.estimates import Resamples, paired_result
from harness.reports.rows import EstimateRow, PairedResult, metric_of
from harness.reports.training import TrainingCells, training_comparisons
from harness.specs import Condition, Expected, Reference

AGREES, DISAGREES, UNDECIDED, NOT_COMPARABLE = "agrees", "disagrees", "undecided", "not comparable"
HOLDS, FAILS, OPEN, MISSING = "holds", "fails", "open", "missing"


@dataclass(frozen=True)
class Observed:
    """What the run shows for one expected outcome: the contrast's difference (or the value's
    estimate) with its interval, the unadjusted one-sided p-value of a contrast against its
    boundary on the side its estimate lies (None for a value), the seeds
    behind it, and whether the expectation holds, fails, is open, or is missing (``why``)."""

    expected: Expected
    status: str
    value: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    p_value: float | None = None
    n_seeds: int = 0
    why: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"expected": self.expected.text(), "status": self.status, "value": self.value,
                "ci_low": self.ci_low, "ci_high": self.ci_high, "p_value": self.p_value, "n_seeds": self.n_seeds,
                "why": self.why}


@dataclass(frozen=True)
class ReferenceResult:
    reference: Reference
    agreement: str
    reason: str
    observed: tuple[Observed, ...]

    def to_dict(self) -> dict[str, Any]:
        r = self.reference
        return {"citation": r.citation, "setting": r.setting, "finding": r.finding, "differences": r.differences,
                "expected": [{**e.__dict__, "text": e.text()} for e in r.expected],
                "observed": [o.to_dict() for o in self.observed], "agreement": self.agreement, "reason": self.reason}


@dataclass(frozen=True)
class RunData:
    """What the references are judged on: the run's variants, the report's resampled evaluation
    values, its estimate rows (values, mCE included), its conditions by key, the training records
    and the seeds."""

    variants: tuple[str, ...]
    resampled: Resamples
    estimates: tuple[EstimateRow, ...]
    conditions: dict[str, Condition]
    train_by: TrainingCells
    seeds: tuple[int, ...]
    level: float
    interval: str


def _contrast(e: Expected, data: RunData) -> PairedResult | str:
    """The paired comparison behind a contrast, or why the run cannot give it."""
    base, base_cond = e.other
    if e.condition == "training":
        rows = [r for r in training_comparisons([(e.variant, base)], data.seeds, data.train_by, data.level)
                if r.metric == e.metric]
        return rows[0] if rows else (f"no training comparison of {e.metric} between {e.variant} and {base} "
                                     "(each needs at least two seeds that finished without diverging)")
    missing = [k for k in (e.condition, base_cond) if k not in data.conditions]
    if missing:
        return f"the run has no condition {missing[0]!r}"
    if metric_of(e.metric).level != "example":
        return f"{e.metric} has no per-example records to pair"
    result = paired_result(data.resampled, e.metric, (e.variant, data.conditions[e.condition]),
                           (base, data.conditions[base_cond]), data.level, data.interval)
    return result if result is not None else (
        f"no records of {e.metric} for both {e.variant} ({e.condition}) and {base} ({base_cond}) on common seeds "
        "and the same examples")


def observe(e: Expected, data: RunData) -> Observed:
    """One expected outcome on the run (see the module for the rules)."""
    alpha = 1 - data.level
    absent = [v for v in (e.variant, e.baseline) if v and v not in data.variants]
    if absent:  # a smaller size, or --variants, leaves it out (or the reference misspells it)
        return Observed(e, MISSING, why=f"the run has no variant {absent[0]!r}")
    if e.direction == "about":
        row = next((r for r in data.estimates if r.variant == e.variant and r.condition.key == e.condition
                    and r.metric == e.metric), None)
        if row is None:
            return Observed(e, MISSING, why=f"no estimate of {e.metric} for {e.variant} on {e.condition}")
        est = row.estimate
        assert e.value is not None
        low_band, high_band = e.value - e.margin, e.value + e.margin
        status = HOLDS if low_band <= est.value <= high_band else (
            FAILS if est.ci_high < low_band or est.ci_low > high_band else OPEN)
        return Observed(e, status, est.value, est.ci_low, est.ci_high, None, est.n_seeds)
    result = _contrast(e, data)
    if isinstance(result, str):
        return Observed(e, MISSING, why=result)
    c = result.comparison
    d = np.asarray(result.a, dtype=np.float64) - np.asarray(result.b, dtype=np.float64)  # (S,) per seed
    # both sides of the boundary as the claims orient them: each side's values exceed 0 on average under its alternative
    claimed, opposite = sequential.oriented(e.direction, e.margin, d)
    p_claimed, p_opposite = (stats.sign_flip_one_sided(x, 0.0, "greater") for x in (claimed, opposite))
    verdict = decide_row(e.direction, c.ci_low, c.ci_high, p_claimed < alpha, p_opposite < alpha, e.margin)
    status = HOLDS if verdict == SUPPORTED else FAILS if verdict == CONTRADICTED else OPEN
    shown = p_claimed if claimed.mean() > 0 else p_opposite  # the side the estimate lies on
    return Observed(e, status, c.diff, c.ci_low, c.ci_high, shown, c.n_seeds)


def judge(reference: Reference, data: RunData) -> ReferenceResult:
    """The run's agreement with one published result."""
    observed = tuple(observe(e, data) for e in reference.expected)
    statuses = [o.status for o in observed]
    n = len(observed)
    if MISSING in statuses:
        first = next(o for o in observed if o.status == MISSING)
        return ReferenceResult(reference, NOT_COMPARABLE, f"{first.why} ({first.expected.text()})", observed)
    if FAILS in statuses:
        return ReferenceResult(reference, DISAGREES, f"{statuses.count(FAILS)} of {n} expected outcomes fail",
                               observed)
    if OPEN in statuses:
        return ReferenceResult(reference, UNDECIDED, f"{statuses.count(OPEN)} of {n} expected outcomes are not "
                               "settled either way by this run's intervals", observed)
    return ReferenceResult(reference, AGREES, f"all {n} expected outcomes hold", observed)


def judge_all(references: tuple[Reference, ...], data: RunData) -> tuple[ReferenceResult, ...]:
    return tuple(judge(r, data) for r in references)
