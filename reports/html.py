"""A :class:`~harness.reports.document.Document` as one self-contained HTML file, figures inlined.

Every piece of text is HTML-escaped before any markup is added, so names from suites and plugins
cannot inject markup (a newline becomes a space: one line per block); inline code and bold are
the model's spans (harness.reports.document), never parsed from the text. A figure's SVG is inlined,
with its caption. Nothing is loaded from anywhere: the style sheet and the script are inline,
and a Content-Security-Policy forbids every other source. The script counts errors and, once
loaded, checks that every figure was drawn, writing the result into ``<body>`` attributes
(``data-errors``, ``data-figures``, ``data-figures-drawn``) that a headless browser's
``--dump-dom`` shows.
"""

from __future__ import annotations

import base64
import hashlib
from html import escape

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
    plain,
)

STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; color: #222; max-width: 1180px; margin: 0 auto; padding: 0 16px 48px; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ddd; }
.table { overflow-x: auto; margin: 0.5em 0 1em; }
table { border-collapse: collapse; font-size: 12px; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid #ddd; padding: 2px 6px; text-align: left; white-space: nowrap; }
td.wrap { white-space: normal; min-width: 24em; }
th { background: #f4f4f4; } tr:nth-child(even) td { background: #fafafa; }
code { background: #f2f2f2; padding: 0 3px; border-radius: 3px; }
figure { display: inline-table; margin: 8px 16px 8px 0; vertical-align: top; }
figure svg { display: block; max-width: 100%; height: auto; }
figcaption { display: table-caption; caption-side: bottom; color: #555; font-size: 12px; }
"""

# Runs before the body is parsed: errors of any later script or resource are counted too.
SCRIPT = """
(function () {
  var errors = 0;
  function count() { errors += 1; if (document.body) document.body.setAttribute('data-errors', String(errors)); }
  window.addEventListener('error', count, true);
  window.addEventListener('unhandledrejection', count);
  document.addEventListener('securitypolicyviolation', count);
  window.addEventListener('load', function () {
    var svgs = document.querySelectorAll('figure > svg');
    var drawn = 0;
    svgs.forEach(function (svg) {
      var box = svg.getBoundingClientRect();
      var marks = Array.prototype.filter.call(svg.querySelectorAll('.mark'), function (m) {
        var b = m.getBBox();
        return b.width > 0 || b.height > 0;
      });
      var ok = box.width > 0 && box.height > 0 && marks.length > 0;
      svg.setAttribute('data-drawn', ok ? '1' : '0');
      if (ok) drawn += 1;
    });
    document.body.setAttribute('data-errors', String(errors));
    document.body.setAttribute('data-figures', String(svgs.length));
    document.body.setAttribute('data-figures-drawn', String(drawn));
  });
})();
"""


def _span(span: Span) -> str:
    text = escape(plain(span).replace("\n", " "), quote=True)
    if isinstance(span, Code):
        return f"<code>{text}</code>"
    return f"<strong>{text}</strong>" if isinstance(span, Bold) else text


def _text(spans: Text) -> str:
    return "".join(_span(s) for s in spans)


WRAP_AT = 40  # characters: longer cells (claims' reasons, checks' details) wrap; numbers never do


def _td(cell: Span) -> str:
    return f'<td class="wrap">{_span(cell)}</td>' if len(plain(cell)) > WRAP_AT else f"<td>{_span(cell)}</td>"


def _table(t: Table) -> str:
    caption = f"<caption>{_span(t.caption)}</caption>" if t.caption else ""
    head = "".join(f"<th>{_span(c)}</th>" for c in t.header)
    body = "".join("<tr>" + "".join(_td(c) for c in row) + "</tr>" for row in t.rows)
    return f'<div class="table"><table>{caption}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def _block(block: Block) -> str:
    if isinstance(block, Heading):
        return f"<h{block.level}>{_span(block.text)}</h{block.level}>"
    if isinstance(block, Paragraph):
        return f"<p>{_text(block.text)}</p>"
    if isinstance(block, BulletList):
        return "<ul>" + "".join(f"<li>{_text(item)}</li>" for item in block.items) + "</ul>"
    if isinstance(block, Table):
        return _table(block)
    assert isinstance(block, Figure)
    # inline SVG needs no namespace in HTML, and leaving it out keeps every URL out of the file
    svg = block.svg.replace(' xmlns="http://www.w3.org/2000/svg"', "", 1)
    caption = f"<figcaption>{_span(block.caption)}</figcaption>" if block.caption else ""
    return f"<figure>{svg}{caption}</figure>"


def body(doc: Document) -> str:
    """The HTML of the document's title (``<h1>``) and blocks, one line each."""
    title = [f"<h1>{_span(doc.title)}</h1>"] if doc.title is not None else []
    return "\n".join(title + [_block(b) for b in doc.blocks])


def render(doc: Document) -> str:
    """The whole document as one HTML page, titled with its title."""
    # the script is allowed by its hash, so an injected <script> could not run even if escaping failed
    digest = base64.b64encode(hashlib.sha256(SCRIPT.encode()).digest()).decode()
    policy = f"default-src 'none'; style-src 'unsafe-inline'; script-src 'sha256-{digest}'"
    title = escape(doc.title or "")
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta http-equiv="Content-Security-Policy" content="{policy}">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n<title>{title}</title>\n'
            f"<style>{STYLE}</style>\n<script>{SCRIPT}</script>\n</head>\n<body>\n{body(doc)}\n</body>\n</html>\n")
