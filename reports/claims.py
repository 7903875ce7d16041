"""Verdicts on a suite's declared claims, read off the report's paired comparisons.

A claim (harness.specs.Claim) matches comparison rows by metric, condition pattern and the
variant's norm. Each row is judged on its interval and its adjusted p-value:

* "lower" / "higher": supported when the interval lies on the claimed side of 0 and the adjusted
  p is below alpha; contradicted when both say the opposite side; otherwise inconclusive.
* "not-higher" / "not-lower" (no difference beyond ``margin``): supported when the interval rules
  out a difference beyond the margin in the excluded direction; contradicted when the interval
  lies beyond the margin and the adjusted p is below alpha; otherwise inconclusive.

The claim is supported when every row is and every variant it names has a row, contradicted
when any row is, inconclusive otherwise (with the seeds the rows' designs say would settle it,
allowing for the family's adjustment of the p-values below), and "not evaluated" when no row
matches.

Claims are declared before the run: they are the report's confirmatory family. Their rows' raw
p-values are adjusted together (Holm, or Benjamini-Hochberg with ``--adjust bh``) across every
row any claim matches, not across the report's whole exploratory table of comparisons, whose
adjusted p-values stay as they are in that table. A claim-free report adjusts nothing here.
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from harness import stats
from harness.specs import Claim, family_of

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


def _seeds_to_settle(claim: Claim, row: Any, alpha: float, factor: float) -> int | None:
    """Seeds that would settle ``row`` with 80% power (harness.stats.seeds_needed), its p-value
    multiplied by up to ``factor`` in the claims' family. A margin claim is supported by its
    interval alone, so on that side of the margin no p-value has to reach alpha. None without the
    comparison's variance components (harness.stats.compare and harness.reports.estimates attach them)."""
    c = row.comparison
    if c.components is None:
        return None
    needs_p = (claim.direction in ("lower", "higher") or (claim.direction == "not-higher" and c.diff > claim.margin)
               or (claim.direction == "not-lower" and c.diff < -claim.margin))
    return stats.seeds_needed(_distance(claim.direction, c.diff, claim.margin), c.components, 1 - alpha,
                              alpha=alpha, factor=factor, p_value=needs_p)


def matches(claim: Claim, row: Any, norms: dict[str, str]) -> bool:
    """Whether comparison ``row`` (harness.reports.rows.ComparisonRow) is evidence for ``claim``."""
    key = "training" if row.condition is None else row.condition.key
    return (row.metric == claim.metric and fnmatchcase(key, claim.condition) and claim.names(row.variant)
            and (not claim.norms or norms.get(row.variant) in claim.norms))


def judge(claim: Claim | str, rows: list[Any], norms: dict[str, str], alpha: float,
          expected: tuple[str, ...] = (), p_family: dict[int, float] | None = None, adjust: str = "holm") -> Verdict:
    """The verdict on ``claim`` from report comparison rows (harness.reports.rows.ComparisonRow);
    ``norms`` maps variant names to their norm, ``alpha`` = 1 - the report's level, ``expected``
    names the variants that have a baseline to be compared with (those the claim's norms select
    must each have a row for the claim to be supported); ``p_family`` maps a row's index in
    ``rows`` to its p-value adjusted (``adjust``, a key of harness.stats.ADJUSTMENTS) across the
    claims' family (default: the row's own p, adjusted across all of ``rows``).

    The seeds to settle an inconclusive row allow for that adjustment: Holm multiplies the smallest
    of m p-values by m, so the exact sign-flip test's floor 2 / 2**S must reach alpha / m;
    Benjamini-Hochberg multiplies by at most m / k when the claim's k rows all reach that p."""
    if isinstance(claim, str):
        return Verdict(claim, NOT_EVALUATED, "stated as free text: declare it as a harness.specs.Claim "
                       "(metric, direction, condition) to get a verdict", ())
    matched = [i for i, r in enumerate(rows) if matches(claim, r, norms)]
    family = len(rows) if p_family is None else len(p_family)
    factor = family / len(matched) if adjust == "bh" and matched else float(family)
    evidence = []
    for i in matched:
        r = rows[i]
        key = "training" if r.condition is None else r.condition.key
        c, p = r.comparison, r.p_adjusted if p_family is None else p_family[i]
        evidence.append(Evidence(r.variant, r.baseline, key, c.diff, c.ci_low, c.ci_high, p,
                                 row_verdict(claim.direction, c.ci_low, c.ci_high, p, alpha, claim.margin),
                                 _seeds_to_settle(claim, r, alpha, factor)))
    if claim.condition.startswith("sweep:"):  # a sweep's rows are per variant family (the name before "@")
        expected = tuple(dict.fromkeys(family_of(v) for v in expected))
    named = [v for v in expected if (not claim.norms or norms.get(v) in claim.norms)
             and claim.names(v)]
    missing = [v for v in named if all(e.variant != v for e in evidence)]
    absent = (f"; no comparison for {', '.join(missing)}" + (
        " (training metrics are compared over the seeds at which both variants finished without diverging, "
        "at least two)"
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
        most = max(n for n in needed if n is not None)
        hint = f"; about {most} seeds would settle it at the observed differences"
        if claim.direction in ("lower", "higher") and most == stats.seeds_to_reach(alpha, factor):
            hint += f" (the fewest with which the exact sign-flip test can reach p < {alpha:g}" + (
                f", {stats.ADJUSTMENTS[adjust][0]}-adjusted over {family} comparisons)" if family > 1
                else ")")
    else:
        hint = ("; more seeds alone would not settle it at the observed differences (too close to the claim's "
                "boundary for the test set's noise)")
    # every matching row may support it while a variant it names has no row: then that is what is open
    head = (f"{len(open_rows)} of {len(evidence)} matching comparisons are inconclusive" if open_rows
            else f"all {len(evidence)} matching comparisons support it")
    return Verdict(claim, INCONCLUSIVE, head + hint + absent, tuple(evidence))


def family_p_values(claims: tuple[Claim | str, ...], rows: list[Any], norms: dict[str, str],
                    adjust: str = "holm") -> dict[int, float]:
    """Row index -> raw p-value adjusted (harness.stats.ADJUSTMENTS[adjust]) across every row that
    some claim matches: the claims' confirmatory family, each row counted once."""
    family = sorted({i for c in claims if isinstance(c, Claim) for i, r in enumerate(rows) if matches(c, r, norms)})
    if not family:
        return {}
    adjusted = stats.ADJUSTMENTS[adjust][1]([rows[i].comparison.p_value for i in family])
    return {i: float(p) for i, p in zip(family, adjusted, strict=True)}


def verdicts(claims: tuple[Claim | str, ...], rows: list[Any], norms: dict[str, str], alpha: float,
             expected: tuple[str, ...] = (), adjust: str = "holm") -> tuple[Verdict, ...]:
    """Every claim's verdict, with p-values adjusted across the claims' family (see the module)."""
    p_family = family_p_values(claims, rows, norms, adjust)
    return tuple(judge(c, rows, norms, alpha, expected, p_family, adjust) for c in claims)
