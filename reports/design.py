"""What a suite's design allows its claims before anything runs: the comparisons each claim will rest
on, the size of the claims' family, and the fewest seeds with which the sign-flip tests can settle
them (``harness show`` prints it, so a suite whose claims cannot reach a verdict says so, and what
would).

The rows are the ones a report of the suite makes (harness.reports.build): each (variant,
baseline) pair of :meth:`harness.specs.Suite.comparisons` on every evaluation condition and its
aggregates (the mean over shifts, the worst case over attacks) for the metrics the suite's task
compares there, on the training metrics, and on each sweep's converged fraction; the claims match
them exactly as they match a report's rows (harness.reports.claims.matches). A run may have fewer
(a variant whose runs all diverged has no training comparison), never more.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness import stats
from harness.reports.build import aggregate_conditions
from harness.reports.claims import matches
from harness.reports.training import TRAINING_COMPARISONS, sweep_families
from harness.specs import Claim, Condition, Suite
from harness.tasks import task_of


@dataclass(frozen=True)
class PlannedRow:
    """A comparison a report of the suite will make: ``variant`` minus its baseline on ``metric``
    under ``condition`` (None for a training metric)."""

    variant: str
    condition: Condition | None
    metric: str


def planned_rows(suite: Suite) -> list[PlannedRow]:
    """Every comparison row a full report of ``suite`` makes (see the module)."""
    from harness.registry import registry

    attacks = registry(task_of(suite).attack_kind)

    def norm_of(c: Condition) -> str:  # what the attack's eps measures, as its record will say
        atk = attacks.get(c.name)(eps=c.param("eps"), **{k: v for k, v in c.params if k != "eps"})
        return str(getattr(atk, "norm", "linf"))

    conditions = [c for c in suite.conditions() if c.kind != "check"]
    conditions += list(aggregate_conditions(conditions, norm_of))
    task = task_of(suite)
    pairs = suite.comparisons()
    rows = [PlannedRow(v.name, cond, metric) for cond in conditions for metric in task.compared(cond)
            for v, _ in pairs]
    rows += [PlannedRow(v.name, None, metric) for v, _ in pairs for metric in TRAINING_COMPARISONS]
    fams = sweep_families(suite)
    rows += [PlannedRow(fam, Condition("sweep", setting), "converged_fraction")
             for fam, _, setting in sorted({(v.family, b.family, v.train[0][0]) for v, b in pairs if len(v.train) == 1})
             if (fam, setting) in fams]
    return rows


@dataclass(frozen=True)
class ClaimsDesign:
    """How a suite's claims can be settled: the comparisons each claim rests on (in claim order),
    the family's size (rows any claim matches, each once) and the fewest seeds with which the exact
    sign-flip tests, two one-sided tests per row Holm-adjusted over the family, can reach ``alpha``
    (None when no number of seeds can)."""

    per_claim: tuple[int, ...]
    family: int
    fewest_seeds: int | None
    alpha: float

    def line(self, seeds: int) -> str:
        """For ``harness show``: what the design allows with ``seeds`` seeds."""
        if not self.family:
            return "no declared claim matches a comparison this suite makes"
        need = self.fewest_seeds
        head = (f"{self.family} comparisons in the claims' family; the sign-flip tests need at least {need} seeds to "
                f"reach p < {self.alpha:g} after Holm's adjustment" if need is not None else
                f"{self.family} comparisons in the claims' family: no number of seeds lets the sign-flip tests reach "
                f"p < {self.alpha:g} after Holm's adjustment")
        if need is None:
            return head
        if seeds >= need:
            return f"{head}; this size runs {seeds}: enough for a verdict where the effects are large enough"
        return (f"{head}; this size runs {seeds}, so its claims can only read inconclusive: run it with "
                f"--seeds {','.join(map(str, range(need)))} or with --until-settled")


def claims_design(suite: Suite, alpha: float = 0.05) -> ClaimsDesign:
    """The claims' family of ``suite`` and the fewest seeds that can settle it (see :class:`ClaimsDesign`)."""
    rows = planned_rows(suite)
    norms = {**{v.family: v.norm for v in suite.variants}, **{v.name: v.norm for v in suite.variants}}
    claims = [c for c in suite.claims if isinstance(c, Claim)]
    matched = [{i for i, r in enumerate(rows) if matches(c, r, norms)} for c in claims]
    family = len(set().union(*matched)) if matched else 0
    # each row is two one-sided tests with floor 1 / 2**S: Holm's first step over 2m of them is the
    # two-sided floor 2 / 2**S times m (harness.reports.claims)
    fewest = stats.seeds_to_reach(alpha, family) if family else None
    return ClaimsDesign(tuple(len(m) for m in matched), family, fewest, alpha)
