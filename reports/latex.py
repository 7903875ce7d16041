"""A report's tables as LaTeX (``report.tex``): the headline estimates and the paired comparisons.

``to_latex`` returns a document that compiles on its own (pdflatex; booktabs, longtable,
geometry and graphicx, all in a basic TeX Live); each table sits between ``% table:`` comment
lines, ready to paste into a paper. The cells are exactly the strings of the Markdown report
(:func:`reports.render.headline` and the paired-comparison rows), so the numbers agree; every
text that comes from a suite or plugin is escaped (:func:`escape`).
"""

from __future__ import annotations

import re

from harness import stats
from reports.build import Report
from reports.render import _comparison_rows, headline

# one pass over the text, so an escape's own backslash and braces are never escaped again
_SPECIAL = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}",
    "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
    # not special in every context, but each breaks something somewhere: < > | print as other
    # glyphs in the default OT1 font encoding, and a cell starting with [ after \\ is read as
    # the row's optional spacing argument
    "<": r"\textless{}", ">": r"\textgreater{}", "|": r"\textbar{}", "[": "{[}", "]": "{]}",
    "\n": " ", "\r": " ",
    "†": r"\textdagger{}",  # the report's caveat mark: a command, whatever the input encoding
}
_SPECIAL_RE = re.compile("|".join(map(re.escape, _SPECIAL)))


def escape(text: str) -> str:
    """``text`` as literal LaTeX text: & % $ # _ { } ~ ^ \\ (and < > | [ ] † and newlines) escaped."""
    return _SPECIAL_RE.sub(lambda m: _SPECIAL[m.group()], text)


def _row(cells: list[str]) -> str:
    return " & ".join(map(escape, cells)) + r" \\"


def tabular(header: list[str], rows: list[list[str]], text_columns: int = 1, env: str = "tabular",
            caption: str = "") -> str:
    """A booktabs table: the first ``text_columns`` columns left-aligned, the numbers right-aligned,
    every cell escaped. ``env`` "longtable" breaks across pages, repeating the header, and carries
    ``caption`` (already LaTeX) itself."""
    spec = "l" * text_columns + "r" * (len(header) - text_columns)
    if env == "longtable":
        head = [rf"\caption{{{caption}}}\\", r"\toprule", _row(header), r"\midrule", r"\endfirsthead",
                r"\toprule", _row(header), r"\midrule", r"\endhead", r"\bottomrule", r"\endfoot"]
    else:
        head = [r"\toprule", _row(header), r"\midrule"]
    tail = [] if env == "longtable" else [r"\bottomrule"]
    return "\n".join([rf"\begin{{{env}}}{{{spec}}}", *head, *(_row(r) for r in rows), *tail, rf"\end{{{env}}}"])


def headline_table(report: Report) -> str:
    """The summary table (one row per variant; :func:`reports.render.headline`'s columns), in a
    table float scaled to the text width."""
    header, rows = headline(report)
    caption = escape(f"{report.suite['name']} {report.suite['version']}: mean over {len(report.seeds)} seeds with "
                     f"its {100 * report.level:g}% interval in brackets.")
    return "\n".join([r"\begin{table}[ht]", r"\centering", rf"\caption{{{caption}}}",
                      r"\resizebox{\linewidth}{!}{%", tabular(header, rows), "}", r"\end{table}"])


def comparison_table(report: Report) -> str:
    """Every paired comparison: variant minus baseline, its interval, p raw and adjusted, seeds."""
    adjust = stats.ADJUSTMENTS[report.adjust][0]
    header = ["variant", "baseline", "condition", "metric", "difference", "interval", "p", f"p ({adjust})", "seeds"]
    caption = escape(f"Paired comparisons: each variant minus its baseline on the same seeds and test examples, "
                     f"difference and {100 * report.level:g}% interval in the metric's units; p raw and "
                     f"{adjust}-adjusted across the {len(report.comparisons)} comparisons.")
    return tabular(header, _comparison_rows(list(report.comparisons), esc=str), text_columns=4, env="longtable",
                   caption=caption)


def to_latex(report: Report) -> str:
    """The headline estimates and the paired comparisons as a standalone LaTeX document."""
    title = escape(f"{report.suite['name']} {report.suite['version']}: what normalization does")
    return "\n".join([
        r"\documentclass{article}",
        r"\usepackage[T1]{fontenc}",
        r"\usepackage[landscape,margin=1.5cm]{geometry}",
        r"\usepackage{booktabs,longtable,graphicx}",
        rf"\title{{{title}}}", r"\date{}",
        r"\begin{document}", r"\maketitle", r"\footnotesize", "",
        "% table: headline estimates", headline_table(report), "",
        "% table: paired comparisons", comparison_table(report), "",
        r"\end{document}", ""])
