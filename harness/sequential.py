"""Seeds added in rounds until the claims settle, under a design that keeps the family-wise error.

``harness run SUITE --until-settled`` (:func:`harness.runner.run_until_settled`) trains the suite's
seeds, judges its claims, and adds seeds in rounds until every claim is supported or contradicted
or ``max_seeds`` is reached. Each round ends in a **look** at the data. Deciding at every look with
the fixed-sample rule would give a true null as many chances to be rejected as there are looks;
this module is the design that does not. It is pure numpy: per-seed differences in, decisions out.

* **Hypotheses.** Each comparison a claim rests on carries two one-sided hypotheses about its
  boundary (harness.reports.claims: 0 for "lower" / "higher", the margin for "not-higher" /
  "not-lower"): the claimed side (rejected: the claim's side is shown) and the opposite side
  (rejected: the other side is). :func:`oriented` turns the (S,) per-seed differences into the
  values whose mean is positive under each alternative.
* **One hypothesis over the looks** (:func:`first_crossings`): an exact permutational
  group-sequential test (Mehta, Patel, Senchaudhuri and Tsiatis 1994, Biometrics 50:1042). Under
  the null, given the magnitudes of the per-seed values, their signs are independent fair coins, so
  at look j (n_j seeds) every sign pattern of the first n_j seeds is equally likely. The test may
  have spent at most ``a(t_j)`` of its level ``a`` by then, ``a(.)`` a Lan-DeMets spending function
  (:data:`harness.stats.SPENDING`) of the information fraction t_j = n_j / max_seeds. At each look
  the rejection region is the largest set of the highest sums among the patterns not rejected at an
  earlier look whose probability fits in what is left, ``a(t_j)`` minus what the earlier regions
  took; it rejects when the observed pattern is in it. The probability of ever rejecting a true null
  is then the sum of the regions' probabilities, at most ``a(1) = a``, exactly (no normal
  approximation), for any symmetric distribution of the differences and any number of looks. The
  regions at a look depend only on the seeds seen by then, so a decision once made stays made.
  The sign patterns are enumerated up to 14 seeds at the last look and sampled beyond (20,000, with
  the observed one, as harness.stats.sign_flip_test does).
* **The family** (:func:`decide`): Holm's procedure, as the closed test of Bonferroni tests over the
  hypotheses (a subset J of them is rejected when one of its members' group-sequential tests rejects
  at level alpha / |J|), which Maurer and Bretz (2013, Statistics in Biopharmaceutical Research
  5:311) showed controls the family-wise error of group-sequential tests, under any dependence
  between the hypotheses. The closure is computed, not its shortcut, so it holds even where a
  test's rejection is not monotone in its level.
* **The intervals at the stopping point** (:func:`repeated_interval`): an interval computed as if the
  number of seeds had been fixed covers less at a stopping point the data chose, so a sequential
  run's claims rest on repeated confidence intervals (Jennison and Turnbull 1989), each look's
  interval widened to the nominal level of the two-sided group-sequential boundary of the same
  spending function (:func:`two_sided_boundaries`), which cover at every look at once.

The default spending is O'Brien-Fleming-type: it spends almost nothing early, so the last look's test
and interval stay close to the fixed ones (docs/statistics.md compares it with Pocock-type).

The fixed-sample rule (harness.reports.claims) is this design with one look: the one-sided
sign-flip p-values (harness.stats.sign_flip_one_sided), Holm-adjusted. tests/test_sequential.py
measures the family-wise error under the null across the looks, and the coverage of the intervals
at the stopping point, by simulation through these functions; docs/statistics.md has the table.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from scipy.special import ndtr

from harness import stats
from harness.errors import ConfigError

# sign patterns at the last look: enumerated up to 2**14, else sampled (harness.stats.sign_patterns)
_N_PATTERNS = 20000
_MOST_SEEDS = 64  # a look's statistics hold one column per seed for every pattern: 20,001 x 64 at most


@dataclass(frozen=True)
class Design:
    """A sequential design: family-wise error ``alpha``, at most ``max_seeds`` seeds, error spent by
    ``spending`` (a key of :data:`harness.stats.SPENDING`) over the information fraction seeds /
    max_seeds, and ``step`` seeds added per round after the first look."""

    alpha: float
    max_seeds: int
    spending: str = "obrien-fleming"
    step: int = 1

    def __post_init__(self) -> None:
        # 1 - 0.95 is 0.050000000000000044: rounded, a design stored and the same one asked again are equal
        object.__setattr__(self, "alpha", round(float(self.alpha), 12))
        if not 0 < self.alpha < 1:
            raise ConfigError(f"the sequential design's alpha {self.alpha} is not in (0, 1)",
                              hint="use a confidence level in (0, 1), e.g. --level 0.95")
        if not 1 <= self.max_seeds <= _MOST_SEEDS:
            raise ConfigError(f"--max-seeds {self.max_seeds} is not from 1 to {_MOST_SEEDS}",
                              hint=f"pass --max-seeds from the run's seeds to {_MOST_SEEDS}")
        if self.spending not in stats.SPENDING:
            raise ConfigError(f"unknown alpha-spending function {self.spending!r}",
                              hint=f"use one of {', '.join(stats.SPENDING)}")
        if self.step < 1:
            raise ConfigError(f"a round must add at least one seed, not {self.step}", hint="use a step >= 1")

    def spent(self, n_seeds: int, level: float | None = None) -> float:
        """The error a test at ``level`` (default alpha) may have spent by a look at ``n_seeds`` seeds."""
        return stats.SPENDING[self.spending][1](min(n_seeds, self.max_seeds) / self.max_seeds,
                                                self.alpha if level is None else level)

    def name(self) -> str:
        """The design in words, for reports."""
        return (f"group-sequential, {stats.SPENDING[self.spending][0]} alpha spending over seeds / {self.max_seeds}, "
                "exact sign-flip tests, Holm across the claims' one-sided tests")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Design:
        return cls(float(d["alpha"]), int(d["max_seeds"]), str(d.get("spending", "obrien-fleming")),
                   int(d.get("step", 1)))


def boundary(direction: str, margin: float) -> float:
    """The value a claim's difference (variant minus baseline) is tested against: 0 for "lower" /
    "higher", +margin for "not-higher", -margin for "not-lower"."""
    if direction in ("lower", "higher"):
        return 0.0
    if direction == "not-higher":
        return margin
    if direction == "not-lower":
        return -margin
    raise ValueError(f"unknown claim direction {direction!r}")


def claimed_below(direction: str) -> bool:
    """Whether the claim says the difference lies below its boundary ("lower", "not-higher")."""
    if direction not in ("lower", "higher", "not-higher", "not-lower"):
        raise ValueError(f"unknown claim direction {direction!r}")
    return direction in ("lower", "not-higher")


def oriented(direction: str, margin: float, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(claimed, opposite): the (S,) per-seed differences ``d`` as the values whose mean exceeds 0
    under each one-sided alternative about the claim's :func:`boundary`. For "not-higher" with margin
    m, claimed = m - d (H0: mean d >= m), opposite = d - m (H0: mean d <= m)."""
    x = (np.asarray(d, dtype=float) - boundary(direction, margin)) * (-1.0 if claimed_below(direction) else 1.0)
    return x, -x


def first_crossings(x: np.ndarray, looks: Sequence[int], levels: np.ndarray, design: Design,
                    seed: int = 0) -> np.ndarray:
    """For each level a of ``levels`` (L,), the index into ``looks`` of the first look at which the
    group-sequential test at level a rejects H0: mean(x) <= 0 (module docstring), or len(looks)
    when it never does. ``x`` (S,): the values, in the order the seeds joined; ``looks``: the seeds
    at each look, strictly increasing, the last at most S."""
    n_looks = len(looks)
    out = np.full(levels.size, n_looks)
    if n_looks == 0 or not np.any(x[:looks[-1]]):
        return out  # no data, or every value on the boundary: nothing speaks against the null
    if any(b <= a for a, b in zip(looks, looks[1:], strict=False)) or looks[0] < 1 or looks[-1] > len(x):
        raise ValueError(f"looks {list(looks)} must increase strictly, from 1 to the {len(x)} values")
    signs, exact = stats.sign_patterns(looks[-1], _N_PATTERNS, seed)
    n_patterns = len(signs)
    sums = np.cumsum(signs * x[:looks[-1]], axis=1)[:, [n - 1 for n in looks]]  # (P, looks); pattern 0 observed
    alive = np.ones((levels.size, n_patterns), dtype=np.bool_)  # not rejected at an earlier look, per level
    spent = np.zeros(levels.size)
    for j, n in enumerate(looks):
        allowed = np.array([design.spent(n, a) for a in levels]) - spent
        # the smallest region a look can take: one pattern of its n seeds (2**(S - n) of the last look's)
        least = 2.0 ** -n if exact else 1 / n_patterns
        active = np.flatnonzero((out == n_looks) & (allowed >= least - 1e-15))
        if active.size == 0:
            continue  # nothing fits yet (or every level has rejected): the look takes no region
        t = sums[:, j]
        slack = 1e-12 * float(np.abs(x[:n]).sum())  # sums of the same terms in another order tie
        order = np.argsort(-t, kind="stable")
        ranked = t[order]
        # tie groups of the ranked sums: a region takes a whole group or none of it
        ends = np.flatnonzero(np.append(ranked[:-1] - ranked[1:] > slack, True))  # each group's last position
        live = alive[active][:, order]
        mass = np.cumsum(live, axis=1, dtype=np.int32)[:, ends] / n_patterns  # (A, groups): P(alive, sum >= group's)
        room = allowed[active, None] + 1e-15
        observed = int(np.flatnonzero(order == 0)[0])  # pattern 0 (the observed signs) in the ranking
        cross = np.logical_and(live[:, observed], mass[:, int(np.searchsorted(ends, observed))] <= room[:, 0])
        out[active[cross]] = j
        # the region at this look: the top groups whose probability fits in what is left (mass grows with the
        # group, so the groups that fit are the first ones)
        top = (mass <= room).sum(axis=1)
        taken = np.where(top > 0, mass[np.arange(active.size), np.maximum(top - 1, 0)], 0.0)
        cut = np.where(top > 0, ends[np.maximum(top - 1, 0)], -1)  # last ranked position in the region
        alive[np.ix_(active, order)] = np.logical_and(live, np.arange(n_patterns)[None, :] > cut[:, None])
        spent[active] += taken
    return out


def closed_holm(first: np.ndarray, n_looks: int) -> np.ndarray:
    """(m, n_looks) bool: whether Holm's closed test has rejected hypothesis i by look j, from
    ``first`` (m, m): the first look at which hypothesis i's own test rejects at level alpha / s in
    column s - 1 (:func:`first_crossings`). An intersection of s hypotheses is rejected when one of
    them is at alpha / s; hypothesis i is rejected when every intersection holding it is, i.e. for
    every s, it rejects at alpha / s itself or fewer than s - 1 of the others do not."""
    m = first.shape[0]
    out = np.zeros((m, n_looks), dtype=bool)
    if m == 0:
        return out
    size = np.arange(1, m + 1)
    for j in range(n_looks):
        rejects = first <= j  # (m hypotheses, m sizes)
        not_others = (~rejects).sum(axis=0)[None, :] - ~rejects  # of the others, how many do not reject at that size
        out[:, j] = np.all(rejects | (not_others < size[None, :] - 1), axis=1)
    return out


def two_sided_boundaries(fractions: Sequence[float], alpha: float, spending: str = "obrien-fleming") -> np.ndarray:
    """(K,) two-sided group-sequential boundaries c_j on the z scale for looks at information
    ``fractions`` (increasing, in (0, 1]), each side spending ``alpha`` / 2 by ``spending``
    (harness.stats.SPENDING, a(t) per side): P(|Z_1| >= c_1) = 2 a(t_1) and P(|Z_i| < c_i for i < j,
    |Z_j| >= c_j) = 2 (a(t_j) - a(t_{j-1})) for the Brownian motion whose looks correlate as
    sqrt(t_i / t_j). Computed by the recursive numerical integration of Armitage, McPherson and Rowe
    (1969) on a grid of 0.01 with the trapezoid rule (Jennison and Turnbull 2000, ch. 19); inf where a
    look spends nothing."""
    return np.array(_boundaries(tuple(float(f) for f in fractions), float(alpha), spending))


@lru_cache(maxsize=256)  # a report asks for the same looks once per claim row
def _boundaries(t: tuple[float, ...], alpha: float, spending: str) -> tuple[float, ...]:
    if not t or any(b <= a for a, b in zip(t, t[1:], strict=False)) or t[0] <= 0 or t[-1] > 1 + 1e-12:
        raise ValueError(f"fractions {list(t)} must increase strictly within (0, 1]")
    grid = np.arange(-8.0, 8.0 + 1e-9, 0.01)  # W(t) for t <= 1: sd at most 1, so beyond 8 there is nothing
    step = grid[1] - grid[0]
    half = grid >= 0
    density = np.exp(-grid**2 / (2 * t[0])) / np.sqrt(2 * np.pi * t[0])  # W(t_1), nothing stopped yet
    spend = stats.SPENDING[spending][1]
    out = [np.inf] * len(t)
    before = 0.0
    for j, tj in enumerate(t):
        target = 2 * spend(min(tj, 1.0), alpha / 2) - before  # what this look may spend, both sides
        # the mass of the paths still going with |W| >= b for b at each grid point >= 0 (trapezoid rule;
        # the density is symmetric)
        mass = density * step
        tail = 2 * (np.cumsum(mass[::-1])[::-1] - mass / 2)[half]
        at = grid[half]
        if target > 0 and tail[0] > target:
            k = int(np.argmax(tail <= target))  # the first b whose tail fits
            b = float(np.interp(target, [tail[k], tail[k - 1]], [at[k], at[k - 1]]))  # between the grid points
            out[j] = b / np.sqrt(tj)
            before += target
            density = np.where(np.abs(grid) < b, density, 0.0)
        if j + 1 < len(t):  # carry the paths that go on to the next look
            sd = np.sqrt(t[j + 1] - tj)
            kernel = np.exp(-(grid[:, None] - grid[None, :]) ** 2 / (2 * sd**2)) / (np.sqrt(2 * np.pi) * sd)
            density = kernel @ density * step
    return tuple(out)


def repeated_level(fractions: Sequence[float], level: float, spending: str = "obrien-fleming") -> float:
    """The nominal two-sided coverage of a repeated confidence interval at the last of looks at
    information ``fractions``: 2 Phi(c_K) - 1 for the boundaries of :func:`two_sided_boundaries` that
    spend 1 - ``level``. Intervals at each look's nominal level cover the true value at every look at
    once with probability ``level`` (Jennison and Turnbull 1989, JRSS B 51:305), so also at a
    stopping point the data chose."""
    c = two_sided_boundaries(fractions, 1 - level, spending)[-1]
    return float(2 * ndtr(c) - 1) if np.isfinite(c) else 1.0


def repeated_interval(diff: float, ci_low: float, ci_high: float, level: float, df: float,
                      fractions: Sequence[float], spending: str = "obrien-fleming") -> tuple[float, float]:
    """A comparison's ``level`` interval (around ``diff``, t quantiles on ``df`` degrees of freedom)
    widened to the repeated confidence interval at the last of looks at ``fractions``: each side's
    distance from ``diff`` scaled by the ratio of the t quantiles at :func:`repeated_level` and at
    ``level``. A t-based interval on few seeds is an approximation to the normal theory behind the
    boundaries; tests/test_sequential.py measures its coverage at the stopping point."""
    nominal = repeated_level(fractions, level, spending)
    if nominal >= 1.0:
        return -np.inf, np.inf
    scale = stats.t_quantile(df, 0.5 + nominal / 2) / stats.t_quantile(df, 0.5 + level / 2)
    return diff - (diff - ci_low) * scale, diff + (ci_high - diff) * scale


@dataclass(frozen=True)
class Hypothesis:
    """One one-sided hypothesis over the looks: ``x`` (S,) the values whose mean exceeds 0 under its
    alternative (:func:`oriented`), in the order the seeds joined; ``looks`` its seeds at each of
    the design's looks (non-decreasing; a look that adds none of its seeds is no look for it)."""

    x: np.ndarray
    looks: tuple[int, ...]


def decide(hypotheses: Sequence[Hypothesis], design: Design, seed: int = 0) -> np.ndarray:
    """(m, looks) bool: whether each hypothesis is rejected by each look of the design, Holm across
    them (:func:`closed_holm`) over their group-sequential tests (:func:`first_crossings`)."""
    m = len(hypotheses)
    n_looks = max((len(h.looks) for h in hypotheses), default=0)
    levels = design.alpha / np.arange(1, m + 1)
    first = np.full((m, m), n_looks)
    for i, h in enumerate(hypotheses):
        own = [j for j, n in enumerate(h.looks) if n >= 1 and (j == 0 or n > h.looks[j - 1])]  # looks with new seeds
        if own:
            crossed = first_crossings(h.x, [h.looks[j] for j in own], levels, design, seed)
            first[i] = [own[c] if c < len(own) else n_looks for c in crossed]
    return closed_holm(first, n_looks)
