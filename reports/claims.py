"""Verdicts on a suite's declared claims, read off the report's paired comparisons.

A claim (harness.specs.Claim) matches comparison rows by metric, condition pattern and the
variant's norm. Each row is judged on its interval and its adjusted p-value:

* "lower" / "higher": supported when the interval lies on the claimed side of 0 and the adjusted
  p is below alpha; contradicted when both say the opposite side; otherwise inconclusive.
* "not-higher" / "not-lower" (no difference beyond ``margin``): supported when the interval rules
  out a difference beyond the margin in the excluded direction; contradicted when the interval
  lies beyond the margin and the adjusted p is below alpha; otherwise inconclusive.

The claim is supported when every row is and every variant it names has a row, contradicted
when any row is, inconclusive otherwise (with the seeds the rows' designs say would settle it),
and "not evaluated" when no row matches.
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from harness import stats
from harness.specs import Claim

SUPPORTED, CONTRADICTED, INCONCLUSIVE, NOT_EVALUATED = "supported", "contradicted", "inconclusive", "not evaluated"


@dataclass(frozen=True)
class Evidence:
    """One comparison row a claim rests on: variant minus baseline on a condition."""

    variant: str
    baseline: str
    condition: str  # condition key, or "training"
    diff: float
    ci_low: float
    ci_high: float
    p_adjusted: float
    verdict: str
    seeds_needed: int | None


@dataclass(frozen=True)
class Verdict:
    claim: Claim | str
    verdict: str
    reason: str
    evidence: tuple[Evidence, ...]

    def to_dict(self) -> dict[str, Any]:
        c = self.claim
        spec = {"text": c, "metric": None, "direction": None} if isinstance(c, str) else {
            "text": c.text, "metric": c.metric, "direction": c.direction, "condition": c.condition,
            "norms": list(c.norms), "margin": c.margin, "variants": list(c.variants)}
        return {**spec, "verdict": self.verdict, "reason": self.reason,
                "evidence": [e.__dict__ for e in self.evidence]}


def row_verdict(direction: str, ci_low: float, ci_high: float, p_adjusted: float, alpha: float,
                margin: float = 0.0) -> str:
    """The verdict of one comparison (variant minus baseline) on a claim's ``direction``."""
    significant = p_adjusted < alpha
    if direction in ("lower", "higher"):
        below, above = ci_high < 0, ci_low > 0
        claimed, opposite = (below, above) if direction == "lower" else (above, below)
        if claimed and significant:
            return SUPPORTED
        return CONTRADICTED if opposite and significant else INCONCLUSIVE
    if direction == "not-higher":
        if ci_high <= margin:
            return SUPPORTED
        return CONTRADICTED if ci_low > margin and significant else INCONCLUSIVE
    if direction == "not-lower":
        if ci_low >= -margin:
            return SUPPORTED
        return CONTRADICTED if ci_high < -margin and significant else INCONCLUSIVE
    raise ValueError(f"unknown claim direction {direction!r}")


def _distance(direction: str, diff: float, margin: float) -> float:
    """How far the interval must be resolved from the estimate to decide the claim either way: the
    difference itself for lower / higher (from 0), the gap to the margin for not-higher / not-lower."""
    if direction in ("lower", "higher"):
        return abs(diff)
    return abs(margin - diff) if direction == "not-higher" else abs(diff + margin)


def _seeds_to_settle(claim: Claim, row: Any, level: float) -> int | None:
    c = row.comparison
    distance = _distance(claim.direction, c.diff, claim.margin)
    if c.components is None:  # training metrics: a t-interval over seeds, no example part
        return c.seeds_needed if claim.direction in ("lower", "higher") else None
    return stats.seeds_needed(distance, c.components, level)


def judge(claim: Claim | str, rows: list[Any], norms: dict[str, str], alpha: float,
          expected: tuple[str, ...] = ()) -> Verdict:
    """The verdict on ``claim`` from report comparison rows (reports.build.ComparisonRow);
    ``norms`` maps variant names to their norm, ``alpha`` = 1 - the report's level, ``expected``
    names the variants that have a baseline to be compared with (those the claim's norms select
    must each have a row for the claim to be supported)."""
    if isinstance(claim, str):
        return Verdict(claim, NOT_EVALUATED, "stated as free text: declare it as a harness.specs.Claim "
                       "(metric, direction, condition) to get a verdict", ())
    evidence = []
    for r in rows:
        key = "training" if r.condition is None else r.condition.key
        if r.metric != claim.metric or not fnmatchcase(key, claim.condition):
            continue
        if claim.norms and norms.get(r.variant) not in claim.norms:
            continue
        if not claim.names(r.variant):
            continue
        c = r.comparison
        evidence.append(Evidence(r.variant, r.baseline, key, c.diff, c.ci_low, c.ci_high, r.p_adjusted,
                                 row_verdict(claim.direction, c.ci_low, c.ci_high, r.p_adjusted, alpha, claim.margin),
                                 _seeds_to_settle(claim, r, 1 - alpha)))
    if claim.condition.startswith("sweep:"):  # a sweep's rows are per variant family (the name before "@")
        expected = tuple(dict.fromkeys(v.split("@", 1)[0] for v in expected))
    named = [v for v in expected if (not claim.norms or norms.get(v) in claim.norms)
             and claim.names(v)]
    missing = [v for v in named if all(e.variant != v for e in evidence)]
    absent = (f"; no comparison for {', '.join(missing)}" + (
        " (training metrics are compared only when every seed of both variants reached the target)"
        if claim.condition == "training" else "")) if missing else ""
    if not evidence:
        return Verdict(claim, NOT_EVALUATED, "no comparison in this report matches the claim's metric, condition "
                       "and norms" + absent, ())
    verdicts = [e.verdict for e in evidence]
    if all(v == SUPPORTED for v in verdicts) and not missing:
        return Verdict(claim, SUPPORTED, f"all {len(evidence)} matching comparisons support it", tuple(evidence))
    if CONTRADICTED in verdicts:
        n = verdicts.count(CONTRADICTED)
        return Verdict(claim, CONTRADICTED, f"{n} of {len(evidence)} matching comparisons contradict it",
                       tuple(evidence))
    open_rows = [e for e in evidence if e.verdict == INCONCLUSIVE]
    needed = [e.seeds_needed for e in open_rows]
    if not open_rows:
        hint = ""
    elif all(n is not None for n in needed):
        hint = f"; about {max(n for n in needed if n is not None)} seeds would settle it at the observed differences"
    else:
        hint = ("; more seeds alone would not settle it at the observed differences (too close to the claim's "
                "boundary for the test set's noise)")
    return Verdict(claim, INCONCLUSIVE, f"{len(open_rows)} of {len(evidence)} matching comparisons are inconclusive"
                   + hint + absent, tuple(evidence))


def verdicts(claims: tuple[Claim | str, ...], rows: list[Any], norms: dict[str, str], alpha: float,
             expected: tuple[str, ...] = ()) -> tuple[Verdict, ...]:
    return tuple(judge(c, rows, norms, alpha, expected) for c in claims)
