"""A :class:`~harness.reports.document.Document` on the terminal, with rich.

Tables become rich tables (the caption their title; a long cell folds rather than being cut), a
paragraph one printed line (a ``note`` dimmed; rich wraps it), list items indented lines, a newline
in a text a space. Every string is printed as the characters it is made of: as a rich Text, never
read as markup or emoji codes (``mlp[bn]``, ``[/bold]``, ``:x:`` print as they are), and with
other control characters spelled out (an ESC that would start an ANSI or OSC sequence prints as
``\x1b``; :func:`harness.errors.printable`).
"""

from __future__ import annotations

from typing import Any

from harness.errors import printable
from harness.reports.document import Bold, BulletList, Code, Document, Figure, Heading, Paragraph, Span, Table, plain


def _line(text: str) -> str:
    return printable(text.replace("\n", " "))


def _cell(span: Span) -> Any:
    from rich.text import Text

    style = "bold" if isinstance(span, Bold) else "cyan" if isinstance(span, Code) else ""
    return Text(_line(plain(span)), style=style)


def render(doc: Document, console: Any) -> None:
    """Print ``doc`` to ``console`` (a rich Console)."""
    from rich.table import Table as RichTable
    from rich.text import Text

    if doc.title is not None:
        console.print(Text(_line(doc.title), style="bold"))
    for block in doc.blocks:
        if isinstance(block, Table):
            t = RichTable(title=Text(_line(block.caption)) if block.caption else None, show_lines=False)
            for h in block.header:
                t.add_column(_cell(h), overflow="fold")
            for row in block.rows:
                t.add_row(*map(_cell, row))
            console.print(t)
        elif isinstance(block, Paragraph):
            console.print(Text(_line(plain(block.text)), style="dim" if block.note else ""))
        elif isinstance(block, BulletList):
            for item in block.items:
                console.print(Text("  " + _line(plain(item))))
        elif isinstance(block, Heading):
            console.print(Text(_line(block.text), style="bold"))
        else:
            assert isinstance(block, Figure)
            console.print(Text(_line(f"{block.title}: figures/{block.name}.svg")))
