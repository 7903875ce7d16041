"""Verdicts on a suite's declared claims, read off the report's paired comparisons.

A claim (harness.specs.Claim) matches comparison rows by metric, condition pattern and the
variant's norm. The rule, one for every direction (:data:`RULE`):

* Each row (variant minus baseline) is tested against the claim's **boundary**: 0 for "lower" /
  "higher", the margin m for "not-higher" (the difference is below +m) and "not-lower" (above -m).
  It carries two one-sided sign-flip tests over its per-seed differences
  (harness.stats.sign_flip_one_sided): the **claimed side** (for "not-higher": H0 mean >= m against
  mean < m) and the **opposite side** (H0 mean <= m against mean > m).
* A row is supported when its interval lies strictly on the claimed side of the boundary and the
  claimed side's adjusted p is below alpha; contradicted when its interval lies strictly on the
  other side and the opposite side's adjusted p is below alpha; inconclusive otherwise. The p shown
  beside a row is the one its verdict rests on (the side the estimate lies on, when inconclusive).
* The claim is supported when every row is and every variant it names has a row, contradicted when
  any row is, inconclusive otherwise (with the seeds the rows' designs say would settle it), and
  "not evaluated" when no row matches.

Claims are declared before the run: they are the report's confirmatory family. Both one-sided tests
of every row any claim matches are adjusted together (Holm, or Benjamini-Hochberg with ``--adjust
bh``), not with the report's exploratory table of comparisons, whose adjusted p-values stay as they
are in that table. Two one-sided tests per row at the family's level are the two-sided test of the
row's boundary: with S seeds the one-sided floor is 1 / 2**S, times 2m for Holm's first step over
m rows, the same as the two-sided 2 / 2**S times m.

A run made with ``--until-settled`` (harness.runner.run_until_settled) looked at its claims after
each round of seeds. Its rows' tests are then the group-sequential ones of harness.sequential
(alpha spent over the looks, Holm across the same family), and a row's test counts as rejected
once that design rejected it at some look; the interval it must agree with is its repeated
confidence interval over the looks (harness.sequential.repeated_interval), which keeps its level at
a stopping point the data chose. The one-look design is the rule above with Holm's adjustment.

A claim judged on one seed cannot be settled by a seed-level test (its one-sided p is at least 1/2);
a verdict resting on a row with a caveat (one seed, an interval outside its validated range, fewer
seeds than the suite's) carries the caveat on the verdict itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

import numpy as np

from harness import sequential, stats
from harness.registry import metrics
from harness.specs import Claim, family_of

SUPPORTED, CONTRADICTED, INCONCLUSIVE, NOT_EVALUATED = "supported", "contradicted", "inconclusive", "not evaluated"
CLAIMED, OPPOSITE = "claimed", "opposite"

RULE = ("Each comparison a claim rests on is tested against the claim's boundary (0 for lower / higher, the margin "
        "for not-higher / not-lower) by two one-sided sign-flip tests over the per-seed differences, one per side, "
        "adjusted together across every comparison the claims rest on. A comparison supports the claim when its "
        "interval lies on the claimed side of the boundary and the claimed side's adjusted p is below {alpha}; it "
        "contradicts the claim when its interval lies on the other side and the other side's adjusted p is below "
        "{alpha}; otherwise it is inconclusive. A claim is supported when every comparison supports it, "
        "contradicted when one contradicts it, inconclusive otherwise.")

# an inconclusive claim whose rows would need more than this many times the run's seeds is said to be out of reach
AFFORDABLE = 5

# a one-sided hypothesis of the claims' family: (row index, boundary, the alternative says the difference is below)
Key = tuple[int, float, bool]


def rule(alpha: float) -> str:
    """:data:`RULE` at ``alpha``: the one statement of how claims are judged, as the reports print it."""
    return RULE.format(alpha=f"{alpha:.2g}")


@dataclass(frozen=True)
class Evidence:
    """One comparison row a claim rests on: variant minus baseline on a condition, tested against
    ``boundary``. ``p_value`` and ``p_adjusted`` belong to the one-sided test ``side`` ("claimed" or
    "opposite": the side the verdict rests on, or the estimate's side when inconclusive);
    ``p_adjusted`` is None in a sequential run (its tests are the design's, see ``decided_at``: the
    seeds at the look whose test rejected that side, None while open)."""

    variant: str
    baseline: str
    condition: str  # condition key, or "training"
    diff: float
    ci_low: float
    ci_high: float
    p_adjusted: float | None
    verdict: str
    seeds_needed: int | None
    p_value: float = 1.0
    side: str = CLAIMED
    boundary: float = 0.0
    n_seeds: int = 0
    decided_at: int | None = None
    caveat: str = ""
    interval: str = "fixed"  # "repeated" in a sequential run: the repeated confidence interval (harness.sequential)


@dataclass(frozen=True)
class Verdict:
    claim: Claim | str
    verdict: str
    reason: str
    evidence: tuple[Evidence, ...]
    caveat: str = ""  # why a supported or contradicted verdict is to be read with care ("" when nothing)

    def to_dict(self) -> dict[str, Any]:
        c = self.claim
        spec = {"text": c, "metric": None, "direction": None} if isinstance(c, str) else {
            "text": c.text, "metric": c.metric, "direction": c.direction, "condition": c.condition,
            "norms": list(c.norms), "margin": c.margin, "variants": list(c.variants)}
        return {**spec, "verdict": self.verdict, "reason": self.reason, "caveat": self.caveat,
                "evidence": [e.__dict__ for e in self.evidence]}


def decide_row(direction: str, ci_low: float, ci_high: float, claimed: bool, opposite: bool,
               margin: float = 0.0) -> str:
    """The verdict of one comparison (variant minus baseline) on a claim's ``direction`` (the
    module's rule): ``claimed`` / ``opposite`` say whether the one-sided test of that side of the
    boundary rejected its null (adjusted p below alpha, or the sequential design's rejection). An
    interval that touches the boundary settles nothing."""
    b = sequential.boundary(direction, margin)
    below, above = ci_high < b, ci_low > b
    on_claimed, on_opposite = (below, above) if sequential.claimed_below(direction) else (above, below)
    if on_claimed and claimed:
        return SUPPORTED
    return CONTRADICTED if on_opposite and opposite else INCONCLUSIVE


def row_verdict(direction: str, ci_low: float, ci_high: float, p_adjusted: float, alpha: float,
                margin: float = 0.0) -> str:
    """:func:`decide_row` with one p-value: ``p_adjusted`` is the adjusted p of the one-sided test,
    against the claim's boundary, of the side the interval lies on (the interval lies on one side
    at most, so one p decides). For "lower" / "higher" half the two-sided sign-flip p of the
    difference is that p; for a margin it must be the test against the margin."""
    return decide_row(direction, ci_low, ci_high, p_adjusted < alpha, p_adjusted < alpha, margin)


def _distance(direction: str, diff: float, margin: float) -> float:
    """How far the interval must be resolved from the estimate to decide the claim either way: the
    gap between the difference and the claim's boundary (0, or the margin)."""
    return abs(diff - sequential.boundary(direction, margin))


def _seeds_to_settle(claim: Claim, row: Any, alpha: float, factor: float) -> int | None:
    """Seeds that would settle ``row`` with 80% power (harness.stats.seeds_needed): its interval
    resolved from the boundary and the one-sided test of the side it lies on below alpha after the
    family's adjustment. ``factor`` is in two-sided terms: Holm over n one-sided tests multiplies the
    smallest one-sided p, at least 1 / 2**S, by n, which is n / 2 times the two-sided floor 2 / 2**S,
    so factor n / 2. None without the comparison's variance components (harness.stats.compare and
    harness.reports.estimates attach them), or with one seed (no seed variance to go on)."""
    c = row.comparison
    if c.components is None:
        return None
    return stats.seeds_needed(_distance(claim.direction, c.diff, claim.margin), c.components, 1 - alpha,
                              alpha=alpha, factor=factor, p_value=True)


def matches(claim: Claim, row: Any, norms: dict[str, str]) -> bool:
    """Whether comparison ``row`` (harness.reports.rows.ComparisonRow) is evidence for ``claim``."""
    key = "training" if row.condition is None else row.condition.key
    return (row.metric == claim.metric and fnmatchcase(key, claim.condition) and claim.names(row.variant)
            and (not claim.norms or norms.get(row.variant) in claim.norms))


def _key(row: int, claim: Claim, side: str) -> Key:
    below = sequential.claimed_below(claim.direction)
    return (row, sequential.boundary(claim.direction, claim.margin), below if side == CLAIMED else not below)


# --- the family's tests ---------------------------------------------------------------------------

# per row: the seeds it was compared on and its (S,) per-seed differences (variant minus baseline), in that order
PerSeed = Sequence[tuple[tuple[int, ...], np.ndarray] | None]


@dataclass(frozen=True)
class Record:
    """What a sequential run stored (harness.runner.run_until_settled): its design, the seeds of each
    look (each look's extend the one before), and why it stopped (None while it goes on)."""

    design: sequential.Design
    looks: tuple[tuple[int, ...], ...]
    stopped_because: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"design": self.design.to_dict(), "looks": [list(s) for s in self.looks],
                "stopped_because": self.stopped_because}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Record:
        return cls(sequential.Design.from_dict(d["design"]), tuple(tuple(int(s) for s in look) for look in d["looks"]),
                   d.get("stopped_because"))


@dataclass(frozen=True)
class RowLook:
    """One claim row at one look: both sides' one-sided p-values on the look's seeds (unadjusted),
    and the side the design had rejected by then (None: neither)."""

    claim: str
    variant: str
    baseline: str
    condition: str
    metric: str
    n_seeds: int
    p_claimed: float
    p_opposite: float
    decided: str | None


@dataclass(frozen=True)
class Look:
    """One look of a sequential run: its seeds, the family's error spent by then (the spending
    function at alpha), every claim row's p-values and decision, and what the run did next."""

    seeds: tuple[int, ...]
    alpha_spent: float
    rows: tuple[RowLook, ...]
    decision: str  # "continue", or at the last look why the run stopped ("settled", "max-seeds", ...)


@dataclass(frozen=True)
class Sequential:
    """A sequential run's design and looks, as the report states them (results.json's ``sequential``)."""

    design: sequential.Design
    looks: tuple[Look, ...]
    stopped_because: str | None
    caveat: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"design": self.design.name(), "alpha": self.design.alpha, "max_seeds": self.design.max_seeds,
                "spending": self.design.spending, "step": self.design.step,
                "looks": [{"seeds": list(k.seeds), "alpha_spent": k.alpha_spent, "decision": k.decision,
                           "p_values": [r.__dict__ for r in k.rows]} for k in self.looks],
                "stopped_because": self.stopped_because, "caveat": self.caveat}


@dataclass(frozen=True)
class Tests:
    """The claims' family of one-sided tests, per hypothesis (:data:`Key`): the raw p-value (on every
    seed the design looked at), the adjusted one (None in a sequential run) and the seeds at which
    the test rejected (None: not rejected); ``sequential`` the looks of a sequential run."""

    raw: dict[Key, float]
    adjusted: dict[Key, float] | None
    rejected: dict[Key, int | None]
    adjust: str = "holm"
    sequential: Sequential | None = None
    fractions: dict[int, tuple[float, ...]] = field(default_factory=dict)  # per row: information at its looks

    @property
    def size(self) -> int:
        return len(self.raw)


def _claim_rows(claims: Sequence[Claim | str], rows: list[Any], norms: dict[str, str]
                ) -> list[tuple[int, Claim, int]]:
    """(claim index, claim, row index) for every row each declared claim matches."""
    return [(k, c, i) for k, c in enumerate(claims) if isinstance(c, Claim)
            for i, r in enumerate(rows) if matches(c, r, norms)]


def _fallback_p(row: Any, key: Key) -> float:
    """A one-sided p for a row given without its per-seed differences: half the row's two-sided p of
    difference 0 on the side its estimate lies (the other side: 1); none against a margin."""
    _, b, below = key
    if b != 0:
        return 1.0
    on_side = row.comparison.diff < 0 if below else row.comparison.diff > 0
    return min(1.0, row.comparison.p_value / 2) if on_side else 1.0


def _ordered(seeds: tuple[int, ...], d: np.ndarray, looks: tuple[tuple[int, ...], ...]
             ) -> tuple[np.ndarray, tuple[int, ...]]:
    """A row's per-seed differences in the order its seeds joined the looks (seeds outside every
    look left out), and how many of them each look saw."""
    joined: dict[int, tuple[int, int]] = {}
    for j, look in enumerate(looks):
        for pos, s in enumerate(look):
            joined.setdefault(s, (j, pos))
    kept = sorted((joined[s], k) for k, s in enumerate(seeds) if s in joined)
    x = np.array([d[k] for _, k in kept], dtype=float)
    counts = tuple(sum(1 for (j, _), _ in kept if j <= look) for look in range(len(looks)))
    return x, counts


def family_tests(claims: Sequence[Claim | str], rows: list[Any], norms: dict[str, str], alpha: float,
                 adjust: str = "holm", per_seed: PerSeed | None = None, record: Record | None = None) -> Tests:
    """Both one-sided tests of every row some claim matches (the claims' confirmatory family, each
    hypothesis once): raw p-values from ``per_seed`` (per row: its seeds and (S,) per-seed
    differences; without them, :func:`_fallback_p`), adjusted (harness.stats.ADJUSTMENTS[adjust]) and
    rejected below ``alpha``; with a sequential ``record``, rejected by its design over its looks
    (harness.sequential.decide) instead."""
    keys = sorted({_key(i, c, side) for _, c, i in _claim_rows(claims, rows, norms) for side in (CLAIMED, OPPOSITE)})
    data = {}  # key -> oriented values (in the looks' order for a sequential record)
    counts: dict[int, tuple[int, ...]] = {}
    for key in keys:
        i, b, below = key
        if per_seed is None or per_seed[i] is None:
            continue
        seeds, d = per_seed[i]  # type: ignore[misc]
        d = np.asarray(d, dtype=float)
        if record is not None:
            d, counts[i] = _ordered(seeds, d, record.looks)
        data[key] = (b - d) if below else (d - b)
    raw = {k: stats.sign_flip_one_sided(data[k], 0.0, "greater") if k in data and data[k].size
           else _fallback_p(rows[k[0]], k) if k not in data else 1.0 for k in keys}
    if record is None:
        adjusted = dict(zip(keys, map(float, stats.ADJUSTMENTS[adjust][1](list(raw.values())))
                            if keys else (), strict=True))
        return Tests(raw, adjusted, {k: rows[k[0]].comparison.n_seeds if adjusted[k] < alpha else None
                                     for k in keys}, adjust)
    hyps = [sequential.Hypothesis(data.get(k, np.zeros(0)), counts.get(k[0], (0,) * len(record.looks)))
            for k in keys]
    design = record.design
    by_look = sequential.decide(hyps, design)  # (hypotheses, looks)
    rejected = {k: next((h.looks[j] for j in range(by_look.shape[1]) if by_look[n, j]), None)
                for n, (k, h) in enumerate(zip(keys, hyps, strict=True))}
    looked = {s for look in record.looks for s in look}
    later = sorted({s for row in (per_seed or ()) if row is not None for s in row[0] if s not in looked})
    caveat = (f"seeds {', '.join(map(str, later))} joined after the last look: they are in the intervals, not in the "
              "design's tests") if later else ""
    fractions = {i: tuple(n / design.max_seeds for j, n in enumerate(c) if n and (j == 0 or n > c[j - 1]))
                 for i, c in counts.items()}
    return Tests(raw, None, rejected, "holm", _looks(claims, rows, norms, record, keys, hyps, by_look, caveat),
                 {i: f for i, f in fractions.items() if f})


def _looks(claims: Sequence[Claim | str], rows: list[Any], norms: dict[str, str], record: Record, keys: list[Key],
           hyps: list[sequential.Hypothesis], by_look: np.ndarray, caveat: str = "") -> Sequential:
    """The looks of a sequential run as the report states them: per look and claim row, both sides'
    unadjusted p-values on the seeds seen by then, and the side rejected by then."""
    index = {k: n for n, k in enumerate(keys)}
    out = []
    for j, seeds in enumerate(record.looks):
        row_looks = []
        for _, c, i in _claim_rows(claims, rows, norms):
            r = rows[i]
            ck, ok = index[_key(i, c, CLAIMED)], index[_key(i, c, OPPOSITE)]
            n = hyps[ck].looks[j] if hyps[ck].looks else 0

            def p(h: sequential.Hypothesis, n: int = n) -> float:
                return stats.sign_flip_one_sided(h.x[:n], 0.0, "greater") if n else 1.0

            decided = CLAIMED if by_look[ck, j] else OPPOSITE if by_look[ok, j] else None
            row_looks.append(RowLook(c.text, r.variant, r.baseline, "training" if r.condition is None
                                     else r.condition.key, r.metric, n, p(hyps[ck]), p(hyps[ok]), decided))
        last = j == len(record.looks) - 1
        out.append(Look(seeds, record.design.spent(len(seeds)), tuple(row_looks),
                        (record.stopped_because or "continue") if last else "continue"))
    return Sequential(record.design, tuple(out), record.stopped_because, caveat)


# --- verdicts -------------------------------------------------------------------------------------


def _interval(i: int, row: Any, tests: Tests) -> tuple[float, float]:
    """The interval row ``i``'s verdict rests on: the comparison's own, or in a sequential run its repeated
    confidence interval over the row's looks (harness.sequential.repeated_interval), which keeps its level
    at a stopping point the data chose; clipped to the range of a difference of the metric."""
    c = row.comparison
    if tests.sequential is None:
        return c.ci_low, c.ci_high
    looks = tests.fractions.get(i)
    if not looks or not np.isfinite(c.ci_low) or not np.isfinite(c.ci_high):
        return c.ci_low, c.ci_high
    df = c.components.df if c.components is not None else c.n_seeds - 1
    low, high = sequential.repeated_interval(c.diff, c.ci_low, c.ci_high, c.level, df, looks,
                                             tests.sequential.design.spending)
    lowest, highest = metrics.get(row.metric).difference_bounds
    return float(max(low, lowest)), float(min(high, highest))


def _caveats(evidence: list[Evidence]) -> str:
    """The caveats of the rows a verdict rests on, each once."""
    return "; ".join(dict.fromkeys(e.caveat for e in evidence if e.caveat))


def judge(claim: Claim | str, rows: list[Any], norms: dict[str, str], alpha: float,
          expected: tuple[str, ...] = (), tests: Tests | None = None) -> Verdict:
    """The verdict on ``claim`` from report comparison rows (harness.reports.rows.ComparisonRow);
    ``norms`` maps variant names to their norm, ``alpha`` = 1 - the report's level, ``expected``
    names the variants that have a baseline to be compared with (those the claim's norms select
    must each have a row for the claim to be supported); ``tests`` the claims' family of one-sided
    tests (:func:`family_tests`; default: this claim's alone, Holm, from the rows' own p-values).

    The seeds to settle an inconclusive row allow for the family's adjustment: Holm multiplies the
    smallest of n one-sided p-values by n, so the exact sign-flip test's one-sided floor 1 / 2**S
    must reach alpha / n; Benjamini-Hochberg multiplies by at most n / k when the claim's k rows all
    reach that p."""
    if isinstance(claim, str):
        return Verdict(claim, NOT_EVALUATED, "stated as free text: declare it as a harness.specs.Claim "
                       "(metric, direction, condition) to get a verdict", ())
    if tests is None:
        tests = family_tests((claim,), rows, norms, alpha)
    matched = [i for i, r in enumerate(rows) if matches(claim, r, norms)]
    # in the two-sided terms of harness.stats.seeds_needed (see _seeds_to_settle)
    factor = tests.size / 2 / (len(matched) if tests.adjust == "bh" and matched else 1)
    evidence = []
    for i in matched:
        r = rows[i]
        key = "training" if r.condition is None else r.condition.key
        c = r.comparison
        ck, ok = _key(i, claim, CLAIMED), _key(i, claim, OPPOSITE)
        low, high = _interval(i, r, tests)
        verdict = decide_row(claim.direction, low, high, tests.rejected[ck] is not None,
                             tests.rejected[ok] is not None, claim.margin)
        side = CLAIMED if verdict == SUPPORTED else OPPOSITE if verdict == CONTRADICTED else (
            CLAIMED if tests.raw[ck] <= tests.raw[ok] else OPPOSITE)
        shown = ck if side == CLAIMED else ok
        caveat = "; ".join(x for x in (
            "judged on one seed: a seed-level test needs more" if c.n_seeds == 1 else "", c.caveat) if x)
        evidence.append(Evidence(r.variant, r.baseline, key, c.diff, low, high,
                                 None if tests.adjusted is None else tests.adjusted[shown], verdict,
                                 _seeds_to_settle(claim, r, alpha, factor) if c.n_seeds > 1 else None,
                                 tests.raw[shown], side, shown[1], c.n_seeds, tests.rejected[shown], caveat,
                                 "fixed" if tests.sequential is None else "repeated"))
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
        return Verdict(claim, SUPPORTED, f"all {len(evidence)} matching comparisons support it", tuple(evidence),
                       _caveats(evidence))
    if CONTRADICTED in verdicts:
        n = verdicts.count(CONTRADICTED)
        return Verdict(claim, CONTRADICTED, f"{n} of {len(evidence)} matching comparisons contradict it",
                       tuple(evidence), _caveats([e for e in evidence if e.verdict == CONTRADICTED]))
    open_rows = [e for e in evidence if e.verdict == INCONCLUSIVE]
    head = (f"{len(open_rows)} of {len(evidence)} matching comparisons are inconclusive" if open_rows
            else f"all {len(evidence)} matching comparisons support it")
    return Verdict(claim, INCONCLUSIVE, head + _hint(claim, open_rows, tests, alpha, factor) + absent,
                   tuple(evidence))


def _hint(claim: Claim, open_rows: list[Evidence], tests: Tests, alpha: float, factor: float) -> str:
    """What would settle the open rows: the seeds their designs say (allowing for the family), or
    why more seeds alone would not."""
    if not open_rows:
        return ""
    fewest = min(e.n_seeds for e in open_rows)
    if fewest < 2:
        need = stats.seeds_to_reach(alpha, factor)
        return ("; judged on one seed, and a seed-level test needs at least "
                + (f"{need} seeds here" if need is not None else "more seeds than any run can have"))
    needed = [e.seeds_needed for e in open_rows]
    seq = tests.sequential
    if seq is not None:
        seen = len(seq.looks[-1].seeds) if seq.looks else 0
        where = (f"; open after {len(seq.looks)} looks at {seen} seeds (the design's budget is "
                 f"{seq.design.max_seeds})")
        if all(n is not None for n in needed) and (most := max(n for n in needed if n is not None)) > seen:
            return where + f"; about {most} seeds would settle it in a fixed-sample run"
        return where
    if not all(n is not None for n in needed):
        return ("; more seeds alone would not settle it at the observed differences (too close to the claim's "
                "boundary for the test set's noise)")
    most = max(n for n in needed if n is not None)
    hint = f"; about {most} seeds would settle it at the observed differences"
    if most > AFFORDABLE * fewest:
        hint += (f": more than {AFFORDABLE} times this run's seeds, because the observed difference sits close to "
                 "the claim's boundary for how much it varies between seeds; a run of affordable size will not "
                 "settle it")
    if most == stats.seeds_to_reach(alpha, factor):
        hint += (f" (the fewest with which the exact sign-flip test can reach p < {alpha:g}"
                 + (f", {stats.ADJUSTMENTS[tests.adjust][0]}-adjusted over {tests.size} one-sided tests)"
                    if tests.size > 2 else ")"))
    return hint


def judged(claims: tuple[Claim | str, ...], rows: list[Any], norms: dict[str, str], alpha: float,
           expected: tuple[str, ...] = (), adjust: str = "holm", per_seed: PerSeed | None = None,
           record: Record | None = None) -> tuple[tuple[Verdict, ...], Sequential | None]:
    """Every claim's verdict (:func:`verdicts`), and a sequential run's looks (None for another run)."""
    tests = family_tests(claims, rows, norms, alpha, adjust, per_seed, record)
    return tuple(judge(c, rows, norms, alpha, expected, tests) for c in claims), tests.sequential


def verdicts(claims: tuple[Claim | str, ...], rows: list[Any], norms: dict[str, str], alpha: float,
             expected: tuple[str, ...] = (), adjust: str = "holm", per_seed: PerSeed | None = None,
             record: Record | None = None) -> tuple[Verdict, ...]:
    """Every claim's verdict, with the tests adjusted across the claims' family (see the module);
    ``per_seed`` (per row of ``rows``: its seeds and per-seed differences) gives the one-sided tests
    against each claim's boundary, ``record`` a sequential run's design and looks."""
    return judged(claims, rows, norms, alpha, expected, adjust, per_seed, record)[0]
