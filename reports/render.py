"""A :class:`~harness.reports.rows.Report`'s outputs: results.json, and its documents rendered and written.

The report's content is built once into documents (harness.reports.content) and each output renders them:
:func:`to_markdown` (harness.reports.markdown), :func:`to_html` (harness.reports.html), :func:`to_latex`
(harness.reports.latex) and :func:`print_summary` (harness.reports.terminal); :func:`to_json` writes the rows
themselves. Nothing here computes a number, so every output agrees. :func:`write_reports` writes
``results.json``, ``report.md`` with its ``figures/*.svg``, the self-contained ``report.html`` and
``report.tex`` into the run directory as one set, through harness.fsutil (never through a planted link).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness import fsutil
from harness.errors import ConfigError
from harness.reports import content, html, latex, markdown, terminal
from harness.reports.figures import Figure, figures
from harness.reports.methods import methods
from harness.reports.rmf import rmf_view
from harness.reports.rows import TRAINING_SUMMARY_METRICS, ComparisonRow, EstimateRow, Report
from harness.reports.vocabulary import json_safe

# the JSON Schema (draft 2020-12) that results.json follows; shipped in the wheel as package data
SCHEMA_PATH = Path(__file__).with_name("schema") / "results-v4.schema.json"
SCHEMA_VERSION = 4  # 2: interval method, claims verdicts, caveats, power fields; 3: training measurements, sweeps;
# 4: the membership and inference-cost conditions and metrics, LiRA, training compute and energy


# --- JSON ----------------------------------------------------------------------------------


def _estimate_json(row: EstimateRow) -> dict[str, Any]:
    return {"variant": row.variant, "condition": row.condition.to_dict(), "metric": row.metric,
            **row.estimate.to_dict(),
            "per_seed": [{"seed": s, "value": v} for s, v in zip(row.seeds, row.values, strict=True)]}


def _comparison_json(row: ComparisonRow, adjust: str) -> dict[str, Any]:
    return {"variant": row.variant, "baseline": row.baseline,
            "condition": {"kind": "training"} if row.condition is None else row.condition.to_dict(),
            "metric": row.metric, **row.comparison.to_dict(), "p_adjusted": row.p_adjusted,
            "p_adjustment": adjust, "seeds": list(row.seeds), "better": row.better,
            "prob_improvement": row.prob_improvement, "prob_improvement_low": row.prob_improvement_low,
            "prob_improvement_high": row.prob_improvement_high,
            "per_seed": [{"seed": s, "variant": a, "baseline": b, "difference": a - b}
                         for s, a, b in zip(row.seeds, row.variant_values, row.baseline_values, strict=True)]}


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
        "sequential": None if report.sequential is None else report.sequential.to_dict(),
        "references": [r.to_dict() for r in report.references],
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
        "rmf": rmf_view(report),
        "excluded": list(report.excluded),
        "provenance": report.provenance,
        **({"judge": report.judge} if report.judge is not None else {}),
        "incomplete": None if (i := report.incomplete) is None else {
            "missing_training_cells": i.train_cells, "missing_evaluation_cells": i.eval_cells,
            "models": [{"variant": v, "seed": s} for v, s in i.models], "command": i.command, "error": i.error},
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


# --- the files, written ----------------------------------------------------------------------

OUTPUTS = {"report": "report.md", "html": "report.html", "latex": "report.tex", "results": "results.json"}
MANIFEST = ".harness-manifest.json"  # in figures/: the figures the harness wrote there (only those are ever removed)
READY = ".harness-report-ready"  # in the run directory: a finished rebuild, being moved into place
LOCK = ".harness-report.lock"  # in the run directory: held while a rebuild is written and moved
_FIGURE_FILE = re.compile(r"[a-z0-9][a-z0-9-]*\.svg")  # a name harness.reports.figures can give, plus ".svg"


def _figures_folder(run_dir: Path) -> Path:
    """``run_dir``/figures, created if missing; a ConfigError when it is a link that leaves the run directory
    (the harness never writes, or removes, through it) or not a folder (:func:`check_outputs`)."""
    folder = check_outputs(run_dir)
    folder.mkdir(exist_ok=True)
    return folder


def check_outputs(run_dir: Path | str) -> Path:
    """``run_dir``/figures when the report's files can be written into ``run_dir``; else a ConfigError that
    says why (a folder where a report file goes; ``figures`` a link out of the run directory, or not a
    folder). Nothing is written: `harness report` asks before it builds, so a refusal leaves the run
    directory as it was."""
    run_dir = Path(run_dir)
    for name in OUTPUTS.values():
        if (run_dir / name).is_dir() and not (run_dir / name).is_symlink():
            raise ConfigError(f"{run_dir / name} is a folder, where the report writes a file",
                              hint="move it away and run 'harness report' again")
    folder = run_dir / "figures"
    if folder.is_symlink():
        target = folder.resolve()
        if not target.is_relative_to(run_dir.resolve()):
            raise ConfigError(f"{folder} is a link to {target}, outside the run directory; the report's figures "
                              "are not written there", hint=f"remove the link {folder} (the harness makes the "
                              "folder itself) and run 'harness report' again")
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"{folder} is not a folder", hint="move it away and run 'harness report' again")
    return folder


def _read_manifest(folder: Path) -> dict[str, Any] | None:
    """The manifest in ``folder`` (its "figures" only names harness figure files), or None where there is none
    or it is not one (a link, or not the harness's JSON: read as none, so nothing is removed on its word)."""
    try:
        fd = os.open(folder / MANIFEST, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        with os.fdopen(fd, "rb") as f:
            doc = json.loads(f.read())
        names = doc["figures"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not isinstance(names, list):
        return None
    return {**doc, "figures": [n for n in names if isinstance(n, str) and _FIGURE_FILE.fullmatch(n)]}


def _commit(run_dir: Path, fig_dir: Path) -> None:
    """Move a finished rebuild (``run_dir``/READY) into place, and remove the figures of the one before that it
    does not have; a no-op when there is none. Safe to run again after a kill at any point: the figures manifest
    keeps naming the old rebuild's figures, and the new rebuild's own manifest stays in READY, until that manifest
    replaces the old one (the last move), so a second run moves what is left and removes the same old figures."""
    ready = run_dir / READY
    if not ready.is_dir() or ready.is_symlink():
        fsutil.remove(ready)  # not the harness's folder: nothing in it is moved
        return
    rebuild = _read_manifest(ready / "figures")
    if rebuild is None:  # its manifest is in place already: everything was moved
        fsutil.remove(ready)
        return
    new = rebuild["figures"]
    old = (_read_manifest(fig_dir) or {"figures": []})["figures"]
    for name in new:
        if (ready / "figures" / name).exists():
            os.replace(ready / "figures" / name, fig_dir / name)  # a link at the final name is replaced
    for name in set(old) - set(new):  # a figure that lost its data (e.g. rebuilt with fewer records)
        (fig_dir / name).unlink(missing_ok=True)
    for name in OUTPUTS.values():
        if (ready / name).exists():
            os.replace(ready / name, run_dir / name)
    os.replace(ready / "figures" / MANIFEST, fig_dir / MANIFEST)
    fsutil.remove(ready)


def finish_rebuild(run_dir: Path | str) -> bool:
    """Complete a rebuild that a kill interrupted while it moved its files into place (see :func:`write_reports`),
    and remove the temporaries of writers no longer running; True when there was one to complete."""
    run_dir = Path(run_dir)
    _figures_folder(run_dir)
    with fsutil.exclusive(run_dir / LOCK):
        return _finish(run_dir)


def _finish(run_dir: Path) -> bool:
    fig_dir = _figures_folder(run_dir)
    for folder in (run_dir, fig_dir):
        fsutil.remove_stale(folder)
    pending = (run_dir / READY).exists() or (run_dir / READY).is_symlink()
    _commit(run_dir, fig_dir)
    return pending


def write_reports(report: Report, run_dir: Path | str) -> dict[str, Path]:
    """Write ``figures/*.svg``, ``report.md`` (which references them), ``report.html`` (one self-contained file,
    figures inlined), ``report.tex`` (the tables, for papers) and ``results.json``. Returns the paths by label:
    report, html, latex, results, figures (the folder).

    The files are one set: every one is written into a fresh staging folder in the run directory
    (harness.fsutil: named so that only the harness makes it, never through a link), which, once complete, is
    renamed to READY and its files moved over the old ones. A kill while the set is written leaves the old set
    whole (the next write removes the staging folder); a kill while it is moved (a few renames) leaves READY,
    and the next write (:func:`finish_rebuild`) first completes that move. Of ``figures/``, only the files the
    harness wrote there (its manifest, figures/.harness-manifest.json, which also records each output's sha256)
    are replaced or removed: a user's own files stay. ``figures`` as a link out of the run directory is a
    ConfigError, and a link at any file's name is replaced by the file, never written through. Two writers of
    one run directory take turns (an advisory lock on LOCK)."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    _figures_folder(run_dir)  # refused before anything is written
    with fsutil.exclusive(run_dir / LOCK):  # one writer at a time: a second `harness report` waits
        return _write_set(report, run_dir)


def _write_set(report: Report, run_dir: Path) -> dict[str, Path]:
    """:func:`write_reports` under its lock: finish an interrupted move, stage the set, rename it READY, move it."""
    _finish(run_dir)
    figs = figures(report)
    document = content.report_document(report, figs)  # built once: Markdown and HTML render the same blocks
    texts = {"report": markdown.render(document), "html": html.render(document), "latex": to_latex(report),
             "results": json.dumps(to_json(report), indent=1, allow_nan=False) + "\n"}
    files = {f"figures/{f.name}.svg": f.svg for f in figs} | {OUTPUTS[k]: t for k, t in texts.items()}
    sha = {name: hashlib.sha256(text.encode("utf-8")).hexdigest() for name, text in files.items()}
    manifest = {"version": 1, "figures": [f"{f.name}.svg" for f in figs],
                "rebuild": hashlib.sha256(json.dumps(sha, sort_keys=True).encode()).hexdigest()[:16], "sha256": sha}
    stage = fsutil.make_temp_dir(run_dir)
    try:
        (stage / "figures").mkdir()
        for name, text in files.items():
            fsutil.write_atomic(stage / name, text)
        fsutil.write_atomic(stage / "figures" / MANIFEST, json.dumps(manifest, indent=1) + "\n")  # last: complete
        os.rename(stage, run_dir / READY)  # _finish removed any READY before: the lock keeps it so
    except BaseException:
        fsutil.remove(stage)
        raise
    _commit(run_dir, _figures_folder(run_dir))
    return {label: run_dir / name for label, name in OUTPUTS.items()} | {"figures": run_dir / "figures"}
