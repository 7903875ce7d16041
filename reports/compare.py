"""Two runs side by side: which estimates and paired comparisons moved beyond their intervals.

``compare_runs(a, b)`` matches the rows of two :class:`~harness.reports.rows.Report` objects (another
harness version, another suite version, another machine): estimates by (variant, condition,
metric), paired comparisons by (variant, baseline, condition, metric), sanity checks by name.
Rows present in one run only are listed as added (only in B) or removed (only in A).

"Changed beyond its interval": the two runs are independent experiments, so the difference
B − A gets a normal-approximation interval whose half-widths combine the two runs' half-widths
in quadrature, below and above the value separately (the runs' intervals need not be
symmetric), see :func:`diff_interval`; a row is flagged ``changed`` when that interval excludes
0. Matching is pure (two reports in, frozen rows out); ``to_json`` and ``print_comparison``
only format the result, and the CLI (``harness compare``) rebuilds both reports with the same
statistics first.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from harness import stats
from harness.errors import ConfigError
from harness.reports.rows import Report
from harness.reports.vocabulary import condition_label, fmt, fmt_interval, json_safe
from harness.specs import Condition

# what a row's status means: B − A's interval excludes 0 / contains it / cannot be computed
# (an interval is missing, e.g. one seed of a training metric) / the row is only in B / only in A
STATUSES = ("changed", "unchanged", "no interval", "added", "removed")


@dataclass(frozen=True)
class Interval:
    """One run's number: ``value`` with its interval [``ci_low``, ``ci_high``] over ``n_seeds`` seeds."""

    value: float
    ci_low: float
    ci_high: float
    n_seeds: int

    @classmethod
    def of(cls, x: stats.Estimate | stats.Comparison) -> Interval:
        value = x.value if isinstance(x, stats.Estimate) else x.diff
        return cls(value, x.ci_low, x.ci_high, x.n_seeds)


def diff_interval(a: Interval, b: Interval) -> tuple[float, float, float]:
    """(B − A, low, high): the difference of two independent runs' values and its interval.

    Each run's interval is read as value − z·se_low .. value + z·se_high at the shared level, so
    for independent runs the half-widths of B − A add in quadrature: below,
    sqrt((b.value − b.ci_low)² + (a.ci_high − a.value)²) (B low and A high make the difference
    small); above, sqrt((b.ci_high − b.value)² + (a.value − a.ci_low)²). Where the runs share
    seeds and test examples their numbers are positively correlated and this interval is wider
    than needed (a flag is then conservative). NaN bounds when either interval is NaN.
    """
    d = b.value - a.value
    below = math.hypot(b.value - b.ci_low, a.ci_high - a.value)
    above = math.hypot(b.ci_high - b.value, a.value - a.ci_low)
    return d, d - below, d + above


@dataclass(frozen=True)
class Change:
    """One matched row. ``kind`` is "estimate" (a variant's number) or "comparison" (a paired
    difference variant − ``baseline``); ``condition`` None is a training metric. ``a`` / ``b``
    are the runs' numbers (None where the row is missing from that run); ``diff`` = B − A and
    [``ci_low``, ``ci_high``] its interval (NaN unless both runs have the row), in the metric's
    own units and direction (the registered metric, harness.registry.metrics, says which way is better)."""

    kind: str
    variant: str
    baseline: str | None
    condition: Condition | None
    metric: str
    a: Interval | None
    b: Interval | None
    diff: float = math.nan
    ci_low: float = math.nan
    ci_high: float = math.nan

    @property
    def wall_clock(self) -> bool:
        """Whether the metric is measured in wall-clock time on each run's machine (the registered
        metric says): another machine, or other work on the same one, moves it, so a change is not
        an effect of the runs' settings alone."""
        from harness.registry import metrics

        return metrics.get(self.metric).wall_clock if self.metric in metrics.names() else False

    @property
    def status(self) -> str:
        """One of :data:`STATUSES`."""
        if self.a is None or self.b is None:
            return "added" if self.a is None else "removed"
        if math.isnan(self.ci_low) or math.isnan(self.ci_high):
            return "no interval"
        return "changed" if self.ci_low > 0 or self.ci_high < 0 else "unchanged"


@dataclass(frozen=True)
class CheckChange:
    """A sanity check in both runs: its status ("pass", "fail", "n/a") in A and in B, None where absent."""

    name: str
    a: str | None
    b: str | None
    detail_a: str | None
    detail_b: str | None

    @property
    def status(self) -> str:
        if self.a is None or self.b is None:
            return "added" if self.a is None else "removed"
        return "changed" if self.a != self.b else "unchanged"


@dataclass(frozen=True)
class RunInfo:
    """The header line of one run."""

    label: str  # the run directory as given
    suite: str  # name and version
    harness: str  # version and git commit
    seeds: tuple[int, ...]
    machine: str


@dataclass(frozen=True)
class Setting:
    """A setting that differs between the runs: ``name`` as a person says it (``epochs``,
    ``evaluation shifts``, ``torch_threads``), ``path`` the dotted path in the settings
    (``suite.train.epochs``)."""

    name: str
    a: str
    b: str
    path: str = ""


@dataclass(frozen=True)
class RunComparison:
    runs: tuple[RunInfo, RunInfo]
    same_suite: bool
    settings: tuple[Setting, ...]
    level: float
    rows: tuple[Change, ...]  # estimates, then paired comparisons; A's order, then rows only in B
    checks: tuple[CheckChange, ...]

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.rows)

    @property
    def changed(self) -> bool:
        """True when a row changed beyond its interval, was added or removed, or a check changed status;
        a wall-clock row (:attr:`Change.wall_clock`) that changed does not count: the machines did."""
        return (any(r.status in ("added", "removed") or (r.status == "changed" and not r.wall_clock)
                    for r in self.rows)
                or any(c.status != "unchanged" for c in self.checks))


# --- matching ------------------------------------------------------------------------------


def _key(c: Condition | None) -> str:
    return "training" if c is None else c.key


Where = tuple[str, str | None, Condition | None, str]  # variant, baseline, condition, metric
Rows = dict[tuple[str, ...], tuple[Where, stats.Estimate | stats.Comparison]]


def match_rows(kind: str, a: Rows, b: Rows) -> list[Change]:
    """Rows matched by key: ``a`` and ``b`` map a key to (where, estimate or comparison). A's
    order first, then the keys only in B."""
    out = []
    for key in [*a, *(k for k in b if k not in a)]:
        where = (a.get(key) or b[key])[0]
        ia = Interval.of(a[key][1]) if key in a else None
        ib = Interval.of(b[key][1]) if key in b else None
        diff, low, high = diff_interval(ia, ib) if ia is not None and ib is not None else (math.nan,) * 3
        variant, baseline, condition, metric = where
        out.append(Change(kind, variant, baseline, condition, metric, ia, ib, diff, low, high))
    return out


def _estimates(r: Report) -> Rows:
    return {(e.variant, e.condition.key, e.metric): ((e.variant, None, e.condition, e.metric), e.estimate)
            for e in r.estimates}


def _comparisons(r: Report) -> Rows:
    return {(c.variant, c.baseline, _key(c.condition), c.metric): ((c.variant, c.baseline, c.condition, c.metric),
                                                                   c.comparison)
            for c in r.comparisons}


def match_checks(a: Report, b: Report) -> list[CheckChange]:
    ca, cb = {c.name: c for c in a.checks}, {c.name: c for c in b.checks}
    return [CheckChange(n, getattr(ca.get(n), "status", None), getattr(cb.get(n), "status", None),
                        getattr(ca.get(n), "detail", None), getattr(cb.get(n), "detail", None))
            for n in [*ca, *(n for n in cb if n not in ca)]]


# --- header --------------------------------------------------------------------------------


def run_info(r: Report, label: str) -> RunInfo:
    p = r.provenance
    git = str(p.get("git") or "unknown")
    short = git[:10] + ("-dirty" if git.endswith("-dirty") else "")  # uncommitted changes matter here
    return RunInfo(label, f"{r.suite['name']} {r.suite['version']}", f"{p.get('harness', 'unknown')} (git {short})",
                   r.seeds,
                   f"{p.get('device', 'unknown device')} ({p.get('device_name', '?')}), {p.get('platform', '?')}, "
                   f"{p.get('torch_threads', '?')} torch threads")


def settings(r: Report) -> dict[str, Any]:
    """What determines a run's numbers besides its records: suite, variants, statistics, provenance.
    The command line is left out: what it changed (epochs, seeds, variants, size) is in the suite as
    run, named setting by setting, and the run directory in it differs between any two runs."""
    prov = {k: v for k, v in r.provenance.items() if k not in ("started", "command")}  # started always differs
    return {"suite": {k: v for k, v in r.suite.items() if k != "description"}, "seeds": list(r.seeds),
            "variants": {v["name"]: {k: x for k, x in v.items() if k != "name"} for v in r.variants},
            "test examples": r.n_test, "level": r.level, "resamples": r.n_resamples, "adjust": r.adjust,
            "interval": r.interval,
            "attacks": {a["name"]: {k: x for k, x in a.items() if k != "name"} for a in r.attack_settings},
            "provenance": prov}


_ABSENT = object()
# how a dotted settings path reads (the longest matching prefix is replaced): the recipe's fields by
# their own names ("epochs"), the battery's as "evaluation ...", the provenance's by theirs
_SPOKEN = (("suite.train.", ""), ("suite.evaluation.", "evaluation "), ("suite.", ""), ("provenance.", ""),
           ("variants.", "variant "), ("attacks.", "attack "))


def setting_name(path: str) -> str:
    """A settings path as a person says it: ``suite.train.epochs`` -> ``epochs``,
    ``provenance.versions.torch`` -> ``versions.torch``."""
    for prefix, spoken in _SPOKEN:
        if path.startswith(prefix):
            return spoken + path[len(prefix):]
    return path


def diff_settings(a: Any, b: Any, path: str = "") -> list[Setting]:
    """Every leaf where two nested settings dicts differ, as (its name, A's value, B's value, its
    dotted path); a key missing on one side is shown as "absent" with the other side's whole value."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [s for k in [*a, *(k for k in b if k not in a)]
                for s in diff_settings(a.get(k, _ABSENT), b.get(k, _ABSENT), f"{path}.{k}" if path else k)]
    return [] if a == b else [Setting(setting_name(path), _show(a), _show(b), path)]


def _show(x: Any) -> str:
    return "absent" if x is _ABSENT else x if isinstance(x, str) else json.dumps(x, sort_keys=True, default=str)


# --- the comparison ------------------------------------------------------------------------


def compare_runs(a: Report, b: Report, labels: tuple[str, str] = ("A", "B")) -> RunComparison:
    """Match two reports row by row and flag what changed beyond its interval (see the module
    docstring). Both reports must be built at the same confidence level; runs of different
    suites are compared where rows match, and ``same_suite`` says so."""
    for r, label in ((a, labels[0]), (b, labels[1])):
        if not r.estimates and not r.comparisons:
            raise ConfigError(f"{label} has no finished evaluation cells to compare",
                              hint=f"finish the run first: harness run {r.suite['name']} --run-dir {label}")
    if a.level != b.level:
        raise ConfigError(f"the reports have different confidence levels ({a.level:g} and {b.level:g})",
                          hint="build both reports with the same --level")
    rows = match_rows("estimate", _estimates(a), _estimates(b)) + match_rows(
        "comparison", _comparisons(a), _comparisons(b))
    return RunComparison((run_info(a, labels[0]), run_info(b, labels[1])), a.suite["name"] == b.suite["name"],
                         tuple(diff_settings(settings(a), settings(b))), a.level, tuple(rows),
                         tuple(match_checks(a, b)))


# --- output --------------------------------------------------------------------------------


def header_lines(cmp: RunComparison, width: int | None = None) -> list[str]:
    """Both runs (suite, harness, seeds, machine), a warning for runs of different suites, and
    one line per setting that differs; values longer than ``width`` characters are cut with "..."."""
    def cut(text: str) -> str:
        return text if width is None or len(text) <= width else text[:width - 3] + "..."

    lines = [f"{name}: {r.label}\n   {r.suite}, harness {r.harness}, seeds {', '.join(map(str, r.seeds))}\n"
             f"   {r.machine}" for name, r in zip("AB", cmp.runs, strict=True)]
    if not cmp.same_suite:
        lines.append(f"warning: these are runs of different suites ({cmp.runs[0].suite} and {cmp.runs[1].suite}); "
                     "only rows with the same variant, condition and metric are compared")
    lines += [f"differs: {s.name} {cut(s.a)} -> {cut(s.b)}" for s in cmp.settings]
    return lines


def _interval_json(i: Interval | None) -> dict[str, Any] | None:
    return None if i is None else {"value": i.value, "ci_low": i.ci_low, "ci_high": i.ci_high, "n_seeds": i.n_seeds}


def to_json(cmp: RunComparison) -> dict[str, Any]:
    """Machine-readable: the header and every row with its status (NaN written as null)."""
    return json_safe({
        "runs": [{"run_dir": r.label, "suite": r.suite, "harness": r.harness, "seeds": list(r.seeds),
                  "machine": r.machine} for r in cmp.runs],
        "same_suite": cmp.same_suite,
        "settings": [{"name": s.name, "path": s.path, "a": s.a, "b": s.b} for s in cmp.settings],
        "level": cmp.level,
        "interval": "B - A; normal approximation, each run's half-widths (below and above) combined in quadrature",
        "changed": cmp.changed,
        "rows": [{"kind": r.kind, "variant": r.variant, "baseline": r.baseline,
                  "condition": {"kind": "training"} if r.condition is None else r.condition.to_dict(),
                  "metric": r.metric, "a": _interval_json(r.a), "b": _interval_json(r.b), "diff": r.diff,
                  "ci_low": r.ci_low, "ci_high": r.ci_high, "status": r.status, "wall_clock": r.wall_clock}
                 for r in cmp.rows],
        "checks": [{"name": c.name, "a": c.a, "b": c.b, "detail_a": c.detail_a, "detail_b": c.detail_b,
                    "status": c.status} for c in cmp.checks],
    })


def summary_line(cmp: RunComparison) -> str:
    counts = ", ".join(f"{cmp.count(s)} {s}" for s in STATUSES)
    checks = sum(c.status != "unchanged" for c in cmp.checks)
    return f"{len(cmp.rows)} rows: {counts}; {checks} sanity check(s) changed status"


def _label(r: Change) -> str:
    who = r.variant if r.baseline is None else f"{r.variant} vs {r.baseline}"
    return f"{who}: {condition_label(r.condition)}, {r.metric}"


def _cell(i: Interval | None, metric: str, signed: bool) -> str:
    return "-" if i is None else f"{fmt(i.value, metric, signed)}\n{fmt_interval(i.ci_low, i.ci_high, metric, signed)}"


def print_comparison(cmp: RunComparison, console: Any = None, limit: int = 40) -> None:
    """The header, then a table of the rows that changed beyond their interval (at most
    ``limit``), the rows in one run only, and the sanity checks whose status changed, with rich;
    it reads at 80 columns (each number above its interval). The counts are :func:`summary_line`."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from harness.errors import printable

    def text(s: str, style: str = "") -> Text:  # names and paths as they are: no rich markup, no escape sequence
        return Text("\n".join(map(printable, s.split("\n"))), style=style)

    console = console or Console(stderr=True)
    for line in header_lines(cmp, width=60):
        console.print(text(line, "bold yellow" if line.startswith("warning") else ""))
    changed = [r for r in cmp.rows if r.status == "changed" and not r.wall_clock]
    timing = [r for r in cmp.rows if r.status == "changed" and r.wall_clock]
    t = Table(title=f"Changed beyond the interval ({len(changed)} of {len(cmp.rows)} rows): B - A with its "
                    f"{100 * cmp.level:g}% interval excludes 0", show_lines=True)
    for h in ("row", "A", "B", "B - A"):
        t.add_column(h, overflow="fold")
    for r in changed[:limit]:
        signed = r.kind == "comparison"
        t.add_row(text(_label(r)), _cell(r.a, r.metric, signed), _cell(r.b, r.metric, signed),
                  _cell(Interval(r.diff, r.ci_low, r.ci_high, 0), r.metric, True))
    if changed:
        console.print(t)
        if len(changed) > limit:
            console.print(f"... and {len(changed) - limit} more (--json lists every row)")
    else:
        console.print(f"No row changed beyond its interval ({len(cmp.rows)} rows).", highlight=False)
    if timing:  # apart from the effects: wall-clock time moves with the machine and what else ran on it
        console.print(text(f"timing, measured in wall-clock time on each run's machine (another machine or load "
                           f"moves it; not counted as a change): {len(timing)} rows moved, e.g. "
                           + "; ".join(f"{_label(r)} {fmt(r.a.value, r.metric)} -> {fmt(r.b.value, r.metric)}"
                                       for r in timing[:3] if r.a is not None and r.b is not None)))
    for status, where in (("added", "only in B"), ("removed", "only in A")):
        only = [r for r in cmp.rows if r.status == status]
        if only:
            console.print(text(f"{status} ({where}): {len(only)} rows, e.g. " + "; ".join(map(_label, only[:5]))))
    for c in cmp.checks:
        if c.status != "unchanged":
            console.print(text(f"check {c.status}: {c.name}: {c.a or 'absent'} -> {c.b or 'absent'}"
                               + (f" ({c.detail_b})" if c.detail_b else "")))
