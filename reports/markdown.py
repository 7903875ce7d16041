"""A :class:`~harness.reports.document.Document` as Markdown (GitHub-flavoured: pipe tables).

Blocks are separated by a blank line; a figure is an image line ``![title](figures/NAME.svg)``
with its caption as the paragraph below, so the SVG files must lie in ``figures/`` beside the
Markdown file. Text is escaped only where Markdown would misread it: a newline becomes a space
everywhere (it would end a heading, a list item or a table row), a pipe in a table cell becomes
``\\|``, and brackets in an image's title are escaped.
"""

from __future__ import annotations

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


def _span(span: Span, cell: bool = False) -> str:
    text = (span if isinstance(span, str) else span.text).replace("\n", " ")
    if cell:
        text = text.replace("|", "\\|")
    if isinstance(span, Code):
        return f"`{text}`"
    return f"**{text}**" if isinstance(span, Bold) else text


def _text(spans: Text) -> str:
    return "".join(_span(s) for s in spans)


def _table(t: Table) -> str:
    lines = [_span(t.caption), ""] if t.caption else []
    lines += ["| " + " | ".join(_span(c, cell=True) for c in t.header) + " |", "|" + "|".join("---" for _ in t.header)
              + "|"]
    lines += ["| " + " | ".join(_span(c, cell=True) for c in row) + " |" for row in t.rows]
    return "\n".join(lines)


def _block(block: Block) -> str:
    if isinstance(block, Heading):
        return "#" * block.level + " " + _span(block.text)
    if isinstance(block, Paragraph):
        return _text(block.text)
    if isinstance(block, BulletList):
        return "\n".join("- " + _text(item) for item in block.items)
    if isinstance(block, Table):
        return _table(block)
    assert isinstance(block, Figure)
    alt = _span(block.title).replace("[", "\\[").replace("]", "\\]")
    return f"![{alt}](figures/{block.name}.svg)\n\n{_span(block.caption)}"


def render(doc: Document) -> str:
    """The document as Markdown: ``# title``, then every block, one blank line after each."""
    blocks = ([f"# {_span(doc.title)}"] if doc.title is not None else []) + [_block(b) for b in doc.blocks]
    return "\n\n".join(blocks) + "\n"
