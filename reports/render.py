"""A :class:`~harness.reports.rows.Report`'s outputs: results.json, and its documents rendered and written.

The report's content is built once into documents (harness.reports.content) and each output renders them:
:func:`to_markdown` (harness.reports.markdown), :func:`to_html` (harness.reports.html), :func:`to_latex`
(harness.reports.latex) and :func:`print_summary` (harness.reports.terminal); :func:`to_json` writes the rows
themselves. Nothing here computes a number, so every output agrees. :func:`write_reports` writes
``results.json``, ``report.md`` with its ``figures/*.svg``, the self-contained ``report.html`` and
``report.tex`` into the run directory.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.reports import content, html, latex, markdown, terminal
from harness.reports.figures import Figure, figures
from harness.reports.methods import methods
from harness.reports.rows import TRAINING_SUMMARY_METRICS, ComparisonRow, EstimateRow, Report
from harness.reports.vocabulary import json_safe

# the JSON Schema (draft 2020-12) that results.json follows; shipped in the wheel as package data
SCHEMA_PATH = Path(__file__).with_name("schema") / "results-v3.schema.json"
SCHEMA_VERSION = 3  # 2: interval method, claims verdicts, caveats, power fields; 3: training measurements, sweeps


# --- JSON ----------------------------------------------------------------------------------


def _estimate_json(row: EstimateRow) -> dict[str, Any]:
    return {"variant": row.variant, "condition": row.condition.to_dict(), "metric": row.metric,
            **row.estimate.to_dict()}


def _comparison_json(row: ComparisonRow, adjust: str) -> dict[str, Any]:
    return {"variant": row.variant, "baseline": row.baseline,
            "condition": {"kind": "training"} if row.condition is None else row.condition.to_dict(),
            "metric": row.metric, **row.comparison.to_dict(), "p_adjusted": row.p_adjusted,
            "p_adjustment": adjust, "seeds": list(row.seeds), "better": row.better,
            "prob_improvement": row.prob_improvement, "prob_improvement_low": row.prob_improvement_low,
            "prob_improvement_high": row.prob_improvement_high}


def to_json(report: Report) -> dict[str, Any]:
    """The machine-readable results (``results.json``)."""
    return json_safe({
        "schema_version": SCHEMA_VERSION,
        "suite": report.suite,
        "seeds": list(report.seeds),
        "variants": list(report.variants),
        "level": report.level,
        "n_resamples": report.n_resamples,
        "interval": report.interval,
        "methods": methods(report),
        "claims": [v.to_dict() for v in report.claims],
        "estimates": [_estimate_json(r) for r in report.estimates],
        "comparisons": [_comparison_json(r, report.adjust) for r in report.comparisons],
        "training": [{"variant": t.variant, "seed": t.seed, "status": t.status, "error": t.error, **t.result}
                     for t in report.training],
        "training_summary": [
            {"variant": s.variant, "n_seeds": s.n_seeds, "reached_target": s.reached, "diverged": s.diverged,
             "failed": s.failed,
             **{m: None if getattr(s, m) is None else getattr(s, m).to_dict() for m in TRAINING_SUMMARY_METRICS}}
            for s in report.training_summary],
        "sweeps": [{"family": w.family, "setting": w.setting,
                    "converged_range": None if w.converged_range is None else list(w.converged_range),
                    "points": [{"value": p.value, "variant": p.variant, "n_seeds": p.n_seeds, "converged": p.converged,
                                "diverged": p.diverged, "final_val_accuracy": None if p.final_val_accuracy is None
                                else p.final_val_accuracy.to_dict()} for p in w.points]}
                   for w in report.sweeps],
        "attacks": list(report.attack_settings),
        "reliability": list(report.reliability),
        "curves": list(report.curves),
        "roc": list(report.roc),
        "checks": [{"name": c.name, "status": c.status, "detail": c.detail} for c in report.checks],
        "excluded": list(report.excluded),
        "provenance": report.provenance,
        **({"judge": report.judge} if report.judge is not None else {}),
    })


# --- the documents, rendered ----------------------------------------------------------------


def to_markdown(report: Report, figs: Sequence[Figure] | None = None) -> str:
    """The report as Markdown; ``figs`` (by default :func:`harness.reports.figures.figures`) are referenced
    as ``figures/NAME.svg`` under their sections, so write them beside it (:func:`write_reports`)."""
    return markdown.render(content.report_document(report, figures(report) if figs is None else figs))


def to_html(report: Report, figs: Sequence[Figure] | None = None) -> str:
    """The whole report as one self-contained HTML page, figures inlined; ``figs`` defaults to
    :func:`harness.reports.figures.figures`."""
    return html.render(content.report_document(report, figures(report) if figs is None else figs))


def to_latex(report: Report) -> str:
    """The headline estimates and the paired comparisons as a standalone LaTeX document."""
    return latex.render(content.tables_document(report))


def print_summary(report: Report, console: Any = None) -> None:
    """The headline table and the comparisons whose intervals exclude zero, with rich (on stderr
    by default)."""
    from rich.console import Console

    terminal.render(content.summary_document(report), console or Console(stderr=True))


def _write(path: Path, text: str) -> None:
    """Write to a temporary name, then rename: a reader never sees half a file."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def write_reports(report: Report, run_dir: Path | str) -> dict[str, Path]:
    """Write ``figures/*.svg``, then ``report.md`` (which references them), ``report.html`` (one
    self-contained file, figures inlined), ``report.tex`` (the tables, for papers) and
    ``results.json``. Returns the paths by label: report, html, latex, results, figures (the folder)."""
    run_dir = Path(run_dir)
    figs = figures(report)
    fig_dir = run_dir / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    for f in figs:
        _write(fig_dir / f"{f.name}.svg", f.svg)
    for stale in set(fig_dir.glob("*.svg")) - {fig_dir / f"{f.name}.svg" for f in figs}:
        stale.unlink()  # a figure that lost its data (e.g. rebuilt with fewer records) must not linger
    paths = {"report": run_dir / "report.md", "html": run_dir / "report.html", "latex": run_dir / "report.tex",
             "results": run_dir / "results.json"}
    document = content.report_document(report, figs)  # built once: Markdown and HTML render the same blocks
    texts = {"report": markdown.render(document), "html": html.render(document), "latex": to_latex(report),
             "results": json.dumps(to_json(report), indent=1, allow_nan=False) + "\n"}
    for label, path in paths.items():
        _write(path, texts[label])
    return {**paths, "figures": fig_dir}
