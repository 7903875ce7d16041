"""A :class:`~harness.reports.document.Document` as a LaTeX document that compiles on its own (pdflatex).

The preamble loads booktabs, longtable, geometry and graphicx, all in a basic TeX Live. Each table
sits between ``% table: LABEL`` comment lines, ready to paste into a paper: a booktabs tabular in a
float scaled to the text width, or a longtable (repeating its header on every page) when the
table is ``long``. Every text is escaped (:func:`escape`), so names from suites and plugins are
shown as they are; inline code and bold are the model's spans.
"""

from __future__ import annotations

import re

from harness.reports.document import (
    Block,
    Bold,
    BulletList,
    Code,
    Document,
    Figure,
    Heading,
    Paragraph,
    Span,
    Table,
    Text,
)

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


def _span(span: Span) -> str:
    if isinstance(span, Code):
        return rf"\texttt{{{escape(span.text)}}}"
    return rf"\textbf{{{escape(span.text)}}}" if isinstance(span, Bold) else escape(span)


def _text(spans: Text) -> str:
    return "".join(_span(s) for s in spans)


def _row(cells: tuple[Span, ...]) -> str:
    return " & ".join(map(_span, cells)) + r" \\"


def tabular(t: Table) -> str:
    """A booktabs table: the first ``t.text_columns`` columns left-aligned, the numbers right-aligned.
    A long table is a longtable that breaks across pages, repeating the header, with its caption;
    any other a tabular (in the float :func:`_table` puts it in)."""
    spec = "l" * t.text_columns + "r" * (len(t.header) - t.text_columns)
    env = "longtable" if t.long else "tabular"
    if t.long:
        caption = [rf"\caption{{{escape(t.caption)}}}\\"] if t.caption else []
        head = [*caption, r"\toprule", _row(t.header), r"\midrule", r"\endfirsthead",
                r"\toprule", _row(t.header), r"\midrule", r"\endhead", r"\bottomrule", r"\endfoot"]
    else:
        head = [r"\toprule", _row(t.header), r"\midrule"]
    tail = [] if t.long else [r"\bottomrule"]
    return "\n".join([rf"\begin{{{env}}}{{{spec}}}", *head, *(_row(r) for r in t.rows), *tail, rf"\end{{{env}}}"])


def _table(t: Table) -> str:
    mark = [f"% table: {t.label}".replace("\n", " ")] if t.label else []  # a comment ends at a newline
    if t.long:
        return "\n".join([*mark, tabular(t)])
    caption = [rf"\caption{{{escape(t.caption)}}}"] if t.caption else []
    return "\n".join([*mark, r"\begin{table}[ht]", r"\centering", *caption, r"\resizebox{\linewidth}{!}{%",
                      tabular(t), "}", r"\end{table}"])


HEADINGS = {2: "section", 3: "subsection"}  # deeper levels: subsubsection


def _block(block: Block) -> str:
    if isinstance(block, Heading):
        return rf"\{HEADINGS.get(block.level, 'subsubsection')}*{{{escape(block.text)}}}"
    if isinstance(block, Paragraph):
        return _text(block.text)
    if isinstance(block, BulletList):
        return "\n".join([r"\begin{itemize}", *(rf"\item {_text(item)}" for item in block.items), r"\end{itemize}"])
    if isinstance(block, Table):
        return _table(block)
    assert isinstance(block, Figure)  # pdflatex cannot draw an SVG: name the file, and keep the caption
    return f"% figure: figures/{block.name}.svg\n" + rf"\textit{{{escape(block.title)}.}} {escape(block.caption)}"


def render(doc: Document) -> str:
    """The document as a standalone LaTeX article, landscape, in a small font; each block is
    followed by a blank line."""
    title = [rf"\title{{{escape(doc.title)}}}", r"\date{}"] if doc.title is not None else []
    return "\n".join([
        r"\documentclass{article}",
        r"\usepackage[T1]{fontenc}",
        r"\usepackage[landscape,margin=1.5cm]{geometry}",
        r"\usepackage{booktabs,longtable,graphicx}",
        *title,
        r"\begin{document}", *([r"\maketitle"] if title else []), r"\footnotesize", "",
        *(line for b in doc.blocks for line in (_block(b), "")),
        r"\end{document}", ""])
