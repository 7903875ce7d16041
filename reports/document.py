"""A small document model: what a report says, built once, rendered to Markdown, HTML, LaTeX and the terminal.

A :class:`Document` is a title and a sequence of blocks (:class:`Heading`, :class:`Paragraph`,
:class:`BulletList`, :class:`Table`, :class:`Figure`). Text is plain: every string is shown as it
is, and each renderer escapes it for its own format (harness.reports.markdown, harness.reports.html,
harness.reports.latex, harness.reports.terminal), so a name from a suite or plugin can never become markup.
Inline markup is part of the model, never a string convention: a run of text is a tuple of
spans, each a plain ``str``, :class:`Code` or :class:`Bold`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Code:
    """Inline code: a name or a command, shown in a fixed-width font."""

    text: str


@dataclass(frozen=True)
class Bold:
    """Inline strong emphasis."""

    text: str


Span = str | Code | Bold
Text = tuple[Span, ...]  # a run of inline text: spans in reading order


def plain(spans: Span | Text) -> str:
    """The characters of ``spans`` without their markup."""
    if isinstance(spans, tuple):
        return "".join(plain(s) for s in spans)
    return spans if isinstance(spans, str) else spans.text


@dataclass(frozen=True)
class Heading:
    """A section heading; ``level`` 2 is a section (the document's title is level 1), 3 a subsection."""

    text: str
    level: int = 2


@dataclass(frozen=True)
class Paragraph:
    """A paragraph of inline text; a ``note`` is secondary (the terminal dims it)."""

    text: Text
    note: bool = False


@dataclass(frozen=True)
class BulletList:
    """An unordered list: one run of inline text per item."""

    items: tuple[Text, ...]


@dataclass(frozen=True)
class Table:
    """A table: ``header`` (C,) and ``rows`` (R, C) of cells, each one span.

    ``caption`` describes it (LaTeX's caption, the terminal's title, a line above it elsewhere);
    ``label`` is a short name LaTeX marks it with; the first ``text_columns`` columns are labels
    and the rest numbers (LaTeX aligns them left and right); a ``long`` table may run over pages.
    """

    header: tuple[Span, ...]
    rows: tuple[tuple[Span, ...], ...]
    caption: str = ""
    label: str = ""
    text_columns: int = 1
    long: bool = False

    def __post_init__(self) -> None:
        if any(len(row) != len(self.header) for row in self.rows):
            raise ValueError(f"every row of a table needs {len(self.header)} cells, one per header cell; got rows of "
                             f"{sorted({len(row) for row in self.rows})}")


@dataclass(frozen=True)
class Figure:
    """An SVG figure: ``name`` ([a-z0-9-]) is its file, figures/NAME.svg, beside a written report;
    HTML inlines ``svg``."""

    name: str
    title: str
    caption: str
    svg: str


Block = Heading | Paragraph | BulletList | Table | Figure


@dataclass(frozen=True)
class Document:
    """A titled sequence of blocks; ``title`` None for a document without one (the terminal summary)."""

    title: str | None
    blocks: tuple[Block, ...]


def paragraph(*spans: Span, note: bool = False) -> Paragraph:
    """A paragraph of ``spans``: ``paragraph("Dataset ", Code("digits"), ".")``."""
    return Paragraph(tuple(spans), note)


def table(header: list[str], rows: list[list[Span]], caption: str = "", label: str = "", text_columns: int = 1,
          long: bool = False) -> Table:
    """A :class:`Table` from lists."""
    return Table(tuple(header), tuple(tuple(r) for r in rows), caption, label, text_columns, long)
