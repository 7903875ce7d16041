"""A :class:`~harness.reports.document.Document` as Markdown (GitHub-flavoured: pipe tables).

Blocks are separated by a blank line; a figure is an image line ``![title](figures/NAME.svg)``
with its caption as the paragraph below, so the SVG files must lie in ``figures/`` beside the
Markdown file. Every text is text, never markup, in any CommonMark reader with raw HTML enabled
(as the HTML and LaTeX writers escape theirs): a newline becomes a space (it would end a heading,
a list item or a table row), other control characters are spelled out (``\\x1b``), the
punctuation that could start markup is backslash-escaped (``\\<script>`` is no tag, ``\\*\\*`` no
bold, ``\\|`` no cell's end, ``\\&amp;`` no entity), as is a character that would make the start of a
paragraph a heading, list or quote; code is fenced by more backticks than it holds.
"""

from __future__ import annotations

import re
from urllib.parse import quote

from harness.errors import printable
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

# punctuation that starts inline markup anywhere: emphasis and strikethrough (* ~), code (`), links
# and images ([ ]), raw HTML and autolinks (<), entities (&), a heading's closing # (and any #, for
# simplicity), a table cell's end (|), and the escape character itself
_INLINE = re.compile(r"[\\`*~\[\]<&#|]")
# underscores open or close emphasis unless they sit inside a word (snake_case, batch_size=4)
_UNDERSCORES = re.compile(r"_+")
# what makes a line's start a block of another kind: a list item (- + or "1." "1)"), a quote (>), a
# setext underline (=); a heading's # and a thematic break's * _ are escaped anyway
_LEAD = re.compile(r"^([-+>=])|^(\d{1,9})([.)])")


def _underscores(m: re.Match[str]) -> str:
    text, start, end = m.string, m.start(), m.end()
    inside = 0 < start and end < len(text) and text[start - 1].isalnum() and text[end].isalnum()
    return m.group() if inside else m.group().replace("_", "\\_")


def escape(text: str) -> str:
    """``text`` as literal Markdown inline text, on one line."""
    text = printable(text.replace("\n", " "))
    return _UNDERSCORES.sub(_underscores, _INLINE.sub(lambda m: "\\" + m.group(), text))


def _lead(markdown: str) -> str:
    """Markdown text that begins a paragraph or a list item, with a start that would open
    another block escaped (leading spaces dropped: four would make code)."""
    return _LEAD.sub(lambda m: f"\\{m.group(1)}" if m.group(1) else f"{m.group(2)}\\{m.group(3)}",
                     markdown.lstrip(" \t"))


def _code(text: str) -> str:
    """A code span of ``text`` (backslashes are literal in one): fenced by one backtick more than
    its longest run of them, padded with spaces where it starts or ends with one."""
    text = printable(text.replace("\n", " "))
    fence = "`" * (max((len(r) for r in re.findall("`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _span(span: Span, cell: bool = False) -> str:
    if isinstance(span, Code):
        code = _code(span.text)
        # a table's rows are split at pipes before code spans are read: GFM wants \| even in code
        return code.replace("|", "\\|") if cell else code
    text = escape(span if isinstance(span, str) else span.text)
    if not isinstance(span, Bold):
        return text
    # ** next to a space would be literal asterisks: the spaces go outside
    core = text.strip(" ")
    return f"{text[:len(text) - len(text.lstrip(' '))]}**{core}**{text[len(text.rstrip(' ')):]}" if core else text


def _text(spans: Text) -> str:
    """Spans that begin a paragraph or a list item."""
    out = [_span(s) for s in spans]
    if out and isinstance(spans[0], str):  # our own ** or ` at the start stays markup
        out[0] = _lead(out[0])
    return "".join(out)


def _table(t: Table) -> str:
    lines = [_text((t.caption,)), ""] if t.caption else []
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
    return f"![{_span(block.title)}](figures/{quote(block.name)}.svg)\n\n{_text((block.caption,))}"


def render(doc: Document) -> str:
    """The document as Markdown: ``# title``, then every block, one blank line after each."""
    blocks = ([f"# {_span(doc.title)}"] if doc.title is not None else []) + [_block(b) for b in doc.blocks]
    return "\n\n".join(blocks) + "\n"
