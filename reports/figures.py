"""The report's figures as hand-written SVG: no plotting dependency, a few kilobytes each.

Two drawing functions do all the work: :func:`line_chart` (lines with optional interval bands:
training curves, robust accuracy against eps, accuracy against severity, ROC curves,
reliability diagrams) and :func:`forest_plot` (one row per paired comparison, in panels with
their own axis). :func:`figures` turns a :class:`~harness.reports.rows.Report` into the list of
:class:`Figure` that the Markdown and HTML reports show. Names from suites and plugins reach
the SVG only through :func:`html.escape`, so a figure is safe to inline into HTML. Each variant
keeps one colour of the Okabe-Ito palette (colour-blind safe) in every figure.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

from harness.reports.rows import EstimateRow, Report, metric_of
from harness.reports.vocabulary import condition_label, fmt, fmt_interval, fmt_p
from harness.specs import Condition, clean, family_of
from harness.tasks import task_of

# Okabe & Ito (2008), ordered so the first colours are the most distinct on white; beyond eight
# variants the colours repeat with a dash pattern.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442")
DASHES = ("", "6 3", "2 2", "8 3 2 3")
REFERENCE = "#999999"  # chance and perfect-calibration diagonals
KIND_ORDER = ("clean", "shift", "natural", "ood", "attack", "samples", "training", "sweep")
KIND_TITLE = {"clean": "In-distribution", "shift": "Shifted inputs", "natural": "Natural shifts",
              "ood": "Out-of-distribution detection", "attack": "Adversarial", "samples": "Samples",
              "training": "Training", "sweep": "Training sweep"}
FONT = 'font-family="system-ui, sans-serif" font-size="11"'


@dataclass(frozen=True)
class Figure:
    """One figure of the report: ``svg`` is written to ``figures/<name>.svg`` and inlined in the
    HTML report; ``section`` names where it goes (summary, training, a condition kind, calibration)."""

    name: str  # [a-z0-9-] only: a file name
    title: str
    caption: str
    svg: str
    section: str


@dataclass(frozen=True)
class Series:
    """One line of a :func:`line_chart`: (N,) points, and optionally (N,) band edges ``low`` <= ``high``.
    NaN breaks the line (or band) at that point."""

    label: str
    x: tuple[float, ...]
    y: tuple[float, ...]
    low: tuple[float, ...] | None = None
    high: tuple[float, ...] | None = None
    color: str = PALETTE[0]
    dash: str = ""  # an SVG stroke-dasharray; "" is solid


@dataclass(frozen=True)
class ForestRow:
    label: str
    value: float  # in the panel's display units; NaN draws no mark
    low: float
    high: float
    color: str
    note: str  # the numbers, printed right of the plot


@dataclass(frozen=True)
class ForestPanel:
    header: str
    axis_label: str
    rows: tuple[ForestRow, ...]


# --- drawing -------------------------------------------------------------------------------


def _e(text: object) -> str:
    return escape(str(text), quote=True)


def _short(text: str, n: int) -> str:
    """Cut a label to ``n`` characters (before escaping, so no entity is cut in half)."""
    return text if len(text) <= n else text[:n - 1] + "\u2026"


def _f(v: float) -> str:
    return f"{v:.1f}"


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About ``n`` round tick values (steps of 1, 2 or 5 times a power of ten) covering [lo, hi]."""
    if not hi > lo:
        return [lo]
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step - 1e-9)
    return [round(k * step, 12) for k in range(first, math.floor(hi / step + 1e-9) + 1)]


def _extent(values: Sequence[float], include: Sequence[float] = ()) -> tuple[float, float]:
    """(low, high) of the finite values and ``include``, widened to round ticks; never empty."""
    finite = [v for v in (*values, *include) if math.isfinite(v)]
    lo, hi = (min(finite), max(finite)) if finite else (0.0, 1.0)
    if hi - lo < 1e-12:
        lo, hi = lo - max(abs(lo), 1.0) * 0.05, hi + max(abs(hi), 1.0) * 0.05
    ticks = nice_ticks(lo, hi)
    step = ticks[1] - ticks[0] if len(ticks) > 1 else hi - lo
    return min(ticks[0], math.floor(lo / step) * step), max(ticks[-1], math.ceil(hi / step) * step)


def _scaler(lo: float, hi: float, a: float, b: float) -> Callable[[float], float]:
    """The linear map of data [lo, hi] onto pixels [a, b] (b < a for a y axis)."""
    return lambda v: a + (v - lo) / (hi - lo) * (b - a)


def _runs(ok: Sequence[bool]) -> list[list[int]]:
    """Indices grouped into runs of consecutive True values."""
    out: list[list[int]] = []
    for i, good in enumerate(ok):
        if good:
            if out and out[-1][-1] == i - 1:
                out[-1].append(i)
            else:
                out.append([i])
    return out


def _svg(width: float, height: float, title: str, body: list[str]) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width:g} {height:g}" width="{width:g}" '
            f'height="{height:g}" role="img" {FONT}><title>{_e(title)}</title>'
            f'<text x="8" y="16" font-size="12" font-weight="bold">{_e(_short(title, 90))}</text>'
            + "".join(body) + "</svg>")


def line_chart(title: str, series: Sequence[Series], x_label: str, y_label: str,
               x_range: tuple[float, float] | None = None, y_range: tuple[float, float] | None = None) -> str:
    """An SVG line chart: one ``<g class="series">`` per series (band ``path.band`` under its
    ``polyline.line``, circles on short series), axes with round ticks, a legend on the right.
    Ranges default to the data's (bands included); y values outside ``y_range`` are drawn at its edge."""
    plot_w, plot_h, left, top, legend_w = 300, 200, 52, 28, 150
    width = left + plot_w + 16 + legend_w
    height = max(top + plot_h + 42, top + 16 * len(series) + 8)
    xs = [v for s in series for v in s.x]
    ys = [v for s in series for v in (*s.y, *(s.low or ()), *(s.high or ()))]
    x0, x1 = x_range or _extent(xs)
    y0, y1 = y_range or _extent(ys)
    scale_y = _scaler(y0, y1, top + plot_h, top)
    sx = _scaler(x0, x1, left, left + plot_w)

    def sy(v: float) -> float:  # a value outside a fixed range is drawn at its edge, inside the frame
        return float(scale_y(min(max(v, y0), y1)))
    body = [f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#ccc"/>']
    for t in nice_ticks(y0, y1):
        body.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{_f(sy(t))}" y2="{_f(sy(t))}" stroke="#eee"/>'
                    f'<text x="{left - 4}" y="{_f(sy(t) + 4)}" text-anchor="end">{t:g}</text>')
    for t in nice_ticks(x0, x1):
        body.append(f'<line x1="{_f(sx(t))}" x2="{_f(sx(t))}" y1="{top + plot_h}" y2="{top + plot_h + 4}" '
                    f'stroke="#666"/><text x="{_f(sx(t))}" y="{top + plot_h + 15}" text-anchor="middle">{t:g}</text>')
    body.append(f'<text x="{left + plot_w / 2:g}" y="{top + plot_h + 32}" text-anchor="middle">{_e(x_label)}</text>'
                f'<text transform="translate(12 {top + plot_h / 2:g}) rotate(-90)" text-anchor="middle">'
                f'{_e(y_label)}</text>')
    for i, s in enumerate(series):
        dash = f' stroke-dasharray="{s.dash}"' if s.dash else ""
        parts = [f'<g class="series" data-label="{_e(s.label)}"><title>{_e(s.label)}</title>']
        if s.low is not None and s.high is not None:
            lo, hi = s.low, s.high
            for run in _runs([math.isfinite(a) and math.isfinite(b) for a, b in zip(lo, hi, strict=True)]):
                edge = [f"{_f(sx(s.x[k]))},{_f(sy(hi[k]))}" for k in run]
                edge += [f"{_f(sx(s.x[k]))},{_f(sy(lo[k]))}" for k in reversed(run)]
                parts.append(f'<path class="mark band" d="M{" L".join(edge)} Z" fill="{s.color}" '
                             f'fill-opacity="0.18" stroke="none"/>')
        for run in _runs([math.isfinite(v) for v in s.y]):
            pts = " ".join(f"{_f(sx(s.x[k]))},{_f(sy(s.y[k]))}" for k in run)
            parts.append(f'<polyline class="mark line" points="{pts}" fill="none" stroke="{s.color}" '
                         f'stroke-width="1.6"{dash}/>')
            if 2 < len(s.x) <= 12:  # points on short sweeps; not on curves or reference lines
                parts += [f'<circle class="mark" cx="{_f(sx(s.x[k]))}" cy="{_f(sy(s.y[k]))}" r="2.5" '
                          f'fill="{s.color}"/>' for k in run]
        ly = top + 8 + 16 * i
        lx = left + plot_w + 16
        parts.append(f'<line x1="{lx}" x2="{lx + 18}" y1="{ly}" y2="{ly}" stroke="{s.color}" stroke-width="2"{dash}/>'
                     f'<text x="{lx + 24}" y="{ly + 4}">{_e(_short(s.label, 22))}</text></g>')
        body.append("".join(parts))
    return _svg(width, height, title, body)


def forest_plot(title: str, panels: Sequence[ForestPanel]) -> str:
    """An SVG forest plot: per panel a header, one ``<g class="row">`` per comparison (label,
    whisker from low to high, a dot at the value: filled when the interval excludes 0), a dashed
    zero line and an x axis of its own, since every panel has its own units."""
    width, label_w, plot_x, plot_w, row_h = 800, 300, 310, 250, 16
    body, y = [], 30.0
    for panel in panels:
        vals = [v for r in panel.rows for v in (r.low, r.high, r.value)]
        lo, hi = _extent(vals, include=(0.0,))
        sx = _scaler(lo, hi, plot_x, plot_x + plot_w)
        body.append(f'<g class="panel"><text class="header" x="8" y="{_f(y + 12)}" font-weight="bold">'
                    f'{_e(panel.header)}</text>')
        y += 20
        y_first = y
        for r in panel.rows:
            mid = y + row_h / 2
            row = [f'<g class="row"><title>{_e(r.label)}: {_e(r.note)}</title>'
                   f'<text x="8" y="{_f(mid + 4)}">{_e(_short(r.label, label_w // 6))}</text>'
                   f'<text x="{plot_x + plot_w + 10}" y="{_f(mid + 4)}">{_e(r.note)}</text>']
            if math.isfinite(r.low) and math.isfinite(r.high):
                row.append(f'<line class="mark whisker" x1="{_f(sx(r.low))}" x2="{_f(sx(r.high))}" y1="{_f(mid)}" '
                           f'y2="{_f(mid)}" stroke="{r.color}" stroke-width="1.6"/>')
            if math.isfinite(r.value):
                fill = r.color if r.low > 0 or r.high < 0 else "#fff"  # filled: the interval excludes 0
                row.append(f'<circle class="mark point" cx="{_f(sx(r.value))}" cy="{_f(mid)}" r="3.2" '
                           f'fill="{fill}" stroke="{r.color}" stroke-width="1.4"/>')
            body.append("".join(row) + "</g>")
            y += row_h
        body.append(f'<line class="zero" x1="{_f(sx(0))}" x2="{_f(sx(0))}" y1="{_f(y_first)}" y2="{_f(y)}" '
                    f'stroke="#888" stroke-dasharray="3 3"/>'
                    f'<line x1="{plot_x}" x2="{plot_x + plot_w}" y1="{_f(y)}" y2="{_f(y)}" stroke="#666"/>')
        for t in nice_ticks(lo, hi):
            body.append(f'<line x1="{_f(sx(t))}" x2="{_f(sx(t))}" y1="{_f(y)}" y2="{_f(y + 4)}" stroke="#666"/>'
                        f'<text x="{_f(sx(t))}" y="{_f(y + 15)}" text-anchor="middle">{t:g}</text>')
        body.append(f'<text x="{plot_x + plot_w / 2:g}" y="{_f(y + 28)}" text-anchor="middle">'
                    f'{_e(panel.axis_label)}</text></g>')
        y += 44
    return _svg(width, y, title, body)


# --- from a report -------------------------------------------------------------------------


def _style(report: Report) -> dict[str, tuple[str, str]]:
    """(colour, dash) per variant name, fixed by the variant's place in the suite."""
    return {v["name"]: (PALETTE[i % len(PALETTE)], DASHES[i // len(PALETTE) % len(DASHES)])
            for i, v in enumerate(report.variants)}


def _series(report: Report, label: str, x: Sequence[float], y: Sequence[float],
            low: Sequence[float] | None = None, high: Sequence[float] | None = None) -> Series:
    """A series of the variant ``label`` in its colour."""
    def floats(v: Sequence[float]) -> tuple[float, ...]:
        return tuple(float(a) for a in v)

    color, dash = _style(report).get(label, (PALETTE[0], ""))
    return Series(label, floats(x), floats(y), None if low is None else floats(low),
                  None if high is None else floats(high), color, dash)


def _pct(v: float | None) -> float:
    """A fraction in percent; a missing value (None in JSON, e.g. an empty bin) is NaN: a gap."""
    return math.nan if v is None else 100 * v


def forest_figure(report: Report) -> list[Figure]:
    """The headline: every paired comparison, grouped by condition kind, one panel per metric."""
    style = _style(report)
    panels: dict[tuple[str, str], list[ForestRow]] = {}
    for r in report.comparisons:
        kind = "training" if r.condition is None else r.condition.kind
        k = metric_of(r.metric).scale
        c = r.comparison
        where = "" if r.condition is None else f" \u00b7 {condition_label(r.condition)}"
        note = (f"{fmt(c.diff, r.metric, signed=True)} {fmt_interval(c.ci_low, c.ci_high, r.metric, signed=True)}"
                f"  p {fmt_p(r.p_adjusted)}")
        panels.setdefault((kind, r.metric), []).append(ForestRow(
            f"{r.variant} vs {r.baseline}{where}", k * c.diff, k * c.ci_low, k * c.ci_high,
            style.get(r.variant, (PALETTE[0], ""))[0], note))
    if not panels:
        return []
    order = sorted(panels, key=lambda km: KIND_ORDER.index(km[0]) if km[0] in KIND_ORDER else len(KIND_ORDER))
    title = "Paired effects: each variant minus its baseline"
    svg = forest_plot(title, [ForestPanel(
        f"{KIND_TITLE.get(kind, kind)} \u00b7 {metric} ({metric_of(metric).better} is better)",
        f"difference in {metric_of(metric).unit}", tuple(panels[(kind, metric)])) for kind, metric in order])
    caption = (f"Every paired comparison of the report ({len(report.comparisons)}): the mean per-seed difference "
               f"(dot) and its {100 * report.level:g}% interval (whisker), in the metric's units (accuracy-like "
               "metrics in percentage points); a filled dot marks an interval that excludes 0. p is "
               "adjusted across all comparisons.")
    return [Figure("forest", title, caption, svg, "summary")]


def training_figures(report: Report) -> list[Figure]:
    """Held-out accuracy against step (mean over seeds, t-interval band) and training loss."""
    if not report.curves:
        return []
    loss = [_series(report, c["variant"], c["loss_steps"], c["loss"]) for c in report.curves]
    seeds = sorted({c["n_seeds"] for c in report.curves})
    n = f"{seeds[0]}" if len(seeds) == 1 else f"{seeds[0]}-{seeds[-1]}"
    t_acc, t_loss = "Held-out accuracy during training", "Training loss"
    band = f"Mean over {n} finished seeds per variant; band: {100 * report.level:g}% t-interval over seeds."
    if all("val_loss" in c for c in report.curves):  # a held-out loss: the task's headline metric's
        what = metric_of(task_of(report.suite.get("task", "classify")).style.headline).title
        t_val = f"Held-out {what} during training"
        val = [_series(report, c["variant"], c["steps"], c["val_loss"], c["val_low"], c["val_high"])
               for c in report.curves]
        held_out = Figure("training-val-loss", t_val, band + " Lower is better.",
                          line_chart(t_val, val, "step", f"held-out {what}"), "training")
    else:
        acc = [_series(report, c["variant"], c["steps"], [_pct(v) for v in c["val_accuracy"]],
                       [_pct(v) for v in c["val_low"]], [_pct(v) for v in c["val_high"]]) for c in report.curves]
        held_out = Figure("training-accuracy", t_acc, band,
                          line_chart(t_acc, acc, "step", "held-out accuracy %", y_range=(0, 100)), "training")
    return [
        held_out,
        Figure("training-loss", t_loss, f"Mean over {n} finished seeds per variant, averaged over windows of steps "
               "(lower is better).", line_chart(t_loss, loss, "step", "training loss"), "training"),
    ]


def training_sweep_figures(report: Report) -> list[Figure]:
    """Per swept setting: the share of seeds that converged (reached the target without diverging)
    against the setting's value (log10 when every value is positive and they span a factor of 10 or
    more), one line per variant family, coloured as the family's first variant."""
    out = []
    first: dict[str, str] = {}
    for v in report.variants:
        first.setdefault(family_of(v["name"]), v["name"])
    for setting in dict.fromkeys(w.setting for w in report.sweeps):
        ws = [w for w in report.sweeps if w.setting == setting]
        values = [float(p.value) for w in ws for p in w.points]
        log = min(values) > 0 and max(values) / min(values) >= 10

        def x(value: float, log: bool = log) -> float:
            return math.log10(value) if log else value

        series = []
        for w in ws:
            color, dash = _style(report).get(first.get(w.family, ""), (PALETTE[0], ""))
            series.append(Series(w.family, tuple(x(float(p.value)) for p in w.points),
                                 tuple(100 * p.converged / p.n_seeds for p in w.points), None, None, color, dash))
        title = f"Seeds that converged, by {setting}"
        out.append(Figure(f"sweep-{setting}", title,
                          "Share of seeds whose run reached the "
                          + (f"{100 * report.suite['target_accuracy']:g}% " if "target_accuracy" in report.suite
                             else "")  # a language model's target is a bits per character
                          + f"target without diverging, at each value of {setting} (higher is better)"
                          + (f"; x is log10({setting})." if log else "."),
                          line_chart(title, series, f"log10 {setting}" if log else setting, "seeds converged %",
                                     y_range=(0, 100)), "training"))
    return out


def _sweep_figures(report: Report, kinds: tuple[str, ...], param: str, x_label: str, prefix: str,
                   start: dict[str, Condition]) -> list[Figure]:
    """Accuracy against ``param`` (eps or severity): one figure per condition family of ``kinds``
    (same name and other parameters), a line per variant with the estimate's interval as its band.
    ``start`` maps a kind to the condition drawn at ``param`` = 0 (clean accuracy for severities).
    They show the task's headline metric (a denoiser's ELBO-style loss instead of accuracy)."""
    metric = task_of(report.suite.get("task", "classify")).style.headline
    scale: Callable[[float | None], float] = _pct if metric == "accuracy" else (
        lambda v: math.nan if v is None else v)
    rows = [r for r in report.estimates if r.condition.kind in kinds and r.metric == metric
            and any(k == param for k, _ in r.condition.params) and r.condition.bn_mode == "frozen"]
    families: dict[Condition, list[EstimateRow]] = {}
    for r in rows:
        fam = Condition(r.condition.kind, r.condition.name, tuple(p for p in r.condition.params if p[0] != param))
        families.setdefault(fam, []).append(r)

    def point(x: float, r: EstimateRow) -> tuple[float, float, float, float]:
        return x, r.estimate.value, r.estimate.ci_low, r.estimate.ci_high

    out = []
    for fam, fam_rows in families.items():
        by_variant: dict[str, list[tuple[float, float, float, float]]] = {}
        for r in fam_rows:
            by_variant.setdefault(r.variant, []).append(point(float(r.condition.param(param)), r))
        base = start.get(fam.kind)
        for r in report.estimates:
            if r.condition == base and r.metric == metric and r.variant in by_variant:
                by_variant[r.variant].append(point(0.0, r))
        series = []
        for v in (v["name"] for v in report.variants if v["name"] in by_variant):
            pts = sorted(by_variant[v])
            series.append(_series(report, v, [p[0] for p in pts], [scale(p[1]) for p in pts],
                                  [scale(p[2]) for p in pts], [scale(p[3]) for p in pts]))
        extra = ", ".join(f"{k} {v}" for k, v in fam.params)
        what = "accuracy" if metric == "accuracy" else metric_of(metric).title
        title = f"{fam.name}{f' ({extra})' if extra else ''}: {what} against {param}"
        caption = (f"Mean {what} over seeds with its {100 * report.level:g}% interval (band)"
                   + (f"; {param} 0 is the clean test set" if base is not None else "")
                   + ("." if metric == "accuracy" else "; lower is better."))
        out.append(Figure(f"{prefix}-{fam.name}-{'-'.join(str(v) for _, v in fam.params)}", title, caption,
                          line_chart(title, series, x_label, "accuracy %" if metric == "accuracy" else what,
                                     y_range=(0, 100) if metric == "accuracy" else None), fam.kind))
    return out


def severity_figures(report: Report) -> list[Figure]:
    """Accuracy against severity per corruption (running BatchNorm statistics), clean as severity 0."""
    return _sweep_figures(report, ("shift", "natural"), "severity", "severity (0 = clean)", "severity",
                          {"shift": clean()})


def attack_figures(report: Report) -> list[Figure]:
    """Robust accuracy against eps per attack (and the worst case over attacks)."""
    return _sweep_figures(report, ("attack",), "eps", "eps (L-inf ball, [0, 1] pixel units)", "attack", {})


def roc_figures(report: Report) -> list[Figure]:
    """ROC curve per OOD condition, a line per variant, every seed's scores pooled."""
    by_cond: dict[Condition, list[dict[str, Any]]] = {}
    for r in report.roc:
        by_cond.setdefault(Condition.from_dict(r["condition"]), []).append(r)
    out = []
    for cond, rows in by_cond.items():
        chance = Series("chance", (0.0, 1.0), (0.0, 1.0), color=REFERENCE, dash="4 3")
        title = f"ROC: {condition_label(cond)}"
        caption = ("In-distribution test images are the positive class (a higher score means more in-distribution); "
                   f"every seed's scores pooled ({rows[0]['n_in']} in, {rows[0]['n_out']} out).")
        series = [_series(report, r["variant"], r["fpr"], r["tpr"]) for r in rows]
        out.append(Figure(f"roc-{cond.name}-{cond.param('score')}", title, caption,
                          line_chart(title, [*series, chance], "false positive rate (OOD accepted)",
                                     "true positive rate", (0, 1), (0, 1)), "ood"))
    return out


def reliability_figures(report: Report) -> list[Figure]:
    """Reliability diagrams on clean inputs and at each corruption's largest severity."""
    by_cond: dict[Condition, list[dict[str, Any]]] = {}
    for r in report.reliability:
        by_cond.setdefault(Condition.from_dict(r["condition"]), []).append(r)
    top: dict[str, int] = {}
    for c in by_cond:
        if c.kind == "shift":
            top[c.name] = max(top.get(c.name, 0), c.param("severity"))
    out = []
    for cond, rows in by_cond.items():
        if cond.kind == "shift" and cond.param("severity") != top[cond.name]:
            continue
        ideal = Series("perfect calibration", (0.0, 100.0), (0.0, 100.0), color=REFERENCE, dash="4 3")
        series = [_series(report, r["variant"], [_pct(v) for v in r["mean_confidence"]],
                          [_pct(v) for v in r["accuracy"]]) for r in rows]
        title = f"Reliability: {condition_label(cond)}"
        caption = ("Accuracy against mean confidence in 15 equal-width confidence bins, every seed's examples pooled; "
                   "empty bins are skipped. Below the diagonal: overconfident.")
        out.append(Figure(f"reliability-{cond.name or 'clean'}-{'-'.join(str(v) for _, v in cond.params)}", title,
                          caption, line_chart(title, [*series, ideal], "mean confidence %", "accuracy %", (0, 100),
                                              (0, 100)), "calibration"))
    return out


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:80] or "figure"


def figures(report: Report) -> list[Figure]:
    """Every figure that has data, in the order of the report's sections, each with a unique file-safe name."""
    out: list[Figure] = []
    seen: set[str] = set()
    for f in (*forest_figure(report), *training_figures(report), *training_sweep_figures(report),
              *severity_figures(report),
              *reliability_figures(report), *roc_figures(report), *attack_figures(report)):
        name, k = _slug(f.name), 2
        while name in seen:  # two plugin names may slug alike
            name, k = f"{_slug(f.name)}-{k}", k + 1
        seen.add(name)
        out.append(Figure(name, f.title, f.caption, f.svg, f.section))
    return out
