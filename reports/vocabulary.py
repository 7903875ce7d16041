"""The report's shared vocabulary: how a number, an interval, a p-value and a condition are written.

Every output (the report document, the figures, the terminal, ``harness compare``) writes numbers
through these functions, so they agree to the last digit; a metric's scale, unit and decimals are
its registered Metric's (harness.reports.rows.metric_of).
"""

from __future__ import annotations

import math
from typing import Any

from harness import stats
from harness.reports.rows import metric_of
from harness.specs import Condition

CAVEAT_MARK = "†"  # an interval outside the designs its method was validated for


def fmt(value: float | None, metric: str, signed: bool = False) -> str:
    """``value`` of ``metric`` in its display scale and decimals (accuracy 0.973 -> "97.3"); "n/a"
    for None or NaN; ``signed`` writes a sign (for differences)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    spec = metric_of(metric)
    return f"{spec.show(value):{'+' if signed else ''}.{spec.decimals}f}"


def fmt_interval(low: float, high: float, metric: str, signed: bool = False) -> str:
    if math.isnan(low) or math.isnan(high):
        return "[n/a]"
    return f"[{fmt(low, metric, signed)}, {fmt(high, metric, signed)}]"


def fmt_estimate(e: stats.Estimate | None, metric: str) -> str:
    """"value [low, high]", with :data:`CAVEAT_MARK` when the interval's design lies outside the
    range its method was validated for."""
    if e is None:
        return "n/a"
    return f"{fmt(e.value, metric)} {fmt_interval(e.ci_low, e.ci_high, metric)}{CAVEAT_MARK if e.caveat else ''}"


def fmt_p(p: float) -> str:
    return "n/a" if math.isnan(p) else f"{p:.3f}" if p >= 0.001 else "<0.001"


def condition_label(c: Condition | None) -> str:
    """A condition as the report names it ("gaussian-noise s3", "pgd-linf eps 0.1"); None is training."""
    if c is None:
        return "training"
    if c.kind == "sweep":
        return f"sweep over {c.name}"
    bn = "" if c.bn_mode == "frozen" else f" [BN {c.bn_mode}]"
    if c.kind == "clean":
        return "clean" + bn
    if c.kind == "shift":
        return ("all shifts (mean)" if c.name == "all" else f"{c.name} s{c.param('severity')}") + bn
    if c.kind == "natural":
        return f"{c.name} s{c.param('severity')} (pre-rendered)" if c.params else f"natural: {c.name}"
    if c.kind == "ood":
        return f"OOD {c.name} ({c.param('score')})"
    if c.kind == "samples":
        return "samples"
    if c.kind == "membership":
        return f"membership ({c.name} attack)"
    if c.kind == "cost":
        return "inference cost, BatchNorm folded" if dict(c.params).get("fold") else "inference cost"
    extra = ", ".join(f"{k} {v}" for k, v in c.params if k != "eps")
    return f"{c.name} eps {c.param('eps'):g}" + (f" ({extra})" if extra else "")


def json_safe(x: Any) -> Any:
    """``x`` with every NaN and infinity (not JSON) written as None, through dicts, lists and tuples."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [json_safe(v) for v in x]
    return x
