"""The report as one self-contained HTML file: the Markdown report converted, figures inlined.

The HTML is not a second copy of the report's content: :func:`to_html` converts the output of
:func:`reports.render.to_markdown` with a converter for exactly the Markdown that render.py
writes (headings, pipe tables, bullet lists, paragraphs, ``**bold**``, ```code```, ``\\|``
escapes and image lines ``![title](figures/NAME.svg)``, which become that figure's inline
SVG). Every piece of text is HTML-escaped before any markup is added, so names from suites and
plugins cannot inject markup. Nothing is loaded from anywhere: the style sheet and the script
are inline, and a Content-Security-Policy forbids every other source. The script counts errors
and, once loaded, checks that every figure was drawn, writing the result into ``<body>``
attributes (``data-errors``, ``data-figures``, ``data-figures-drawn``) that a headless browser's
``--dump-dom`` shows.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Mapping, Sequence
from html import escape

from reports.build import Report
from reports.figures import Figure, figures
from reports.render import to_markdown

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

IMAGE = re.compile(r"!\[(?:[^\]\\]|\\.)*\]\(figures/([a-z0-9-]+)\.svg\)")
HEADING = re.compile(r"(#{1,6}) (.*)")
CELL_SEP = re.compile(r"(?<!\\)\|")


def _inline(text: str) -> str:
    """One line of Markdown text as HTML: escaped first, then `code` and **bold**; ``\\|`` is a pipe."""
    parts = re.split(r"`([^`]*)`", escape(text, quote=True))
    out = []
    for i, part in enumerate(parts):
        part = part.replace("\\|", "|")
        out.append(f"<code>{part}</code>" if i % 2 else re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", part))
    return "".join(out)


def _cells(line: str) -> list[str]:
    return [c.strip() for c in CELL_SEP.split(line.strip().removeprefix("|").removesuffix("|"))]


WRAP_AT = 40  # characters: longer cells (claims' reasons, checks' details) wrap; numbers never do


def _td(cell: str) -> str:
    return f'<td class="wrap">{_inline(cell)}</td>' if len(cell) > WRAP_AT else f"<td>{_inline(cell)}</td>"


def _table(lines: list[str]) -> str:
    """A pipe table: header row, separator row, body rows."""
    head = "".join(f"<th>{_inline(c)}</th>" for c in _cells(lines[0]))
    body = "".join("<tr>" + "".join(_td(c) for c in _cells(row)) + "</tr>" for row in lines[2:])
    return f'<div class="table"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def _starts_block(line: str) -> bool:
    return bool(HEADING.match(line) or IMAGE.fullmatch(line) or line.startswith(("|", "- ")))


def markdown_to_html(md: str, svgs: Mapping[str, str]) -> str:
    """The body HTML of render.py's Markdown; ``svgs`` maps a figure name to its SVG, which
    replaces the image line naming it, and the paragraph right under it becomes its caption (an
    unknown name becomes a note, never a link)."""
    lines, out, i = md.split("\n"), [], 0
    while i < len(lines):
        line = lines[i]
        if not line.strip():
            i += 1
            continue
        block = [line]
        if line.startswith(("|", "- ")):  # a table or a list: every following line of the same kind
            prefix = "|" if line.startswith("|") else "- "
            while i + 1 < len(lines) and lines[i + 1].startswith(prefix):
                i += 1
                block.append(lines[i])
        elif not _starts_block(line):  # a paragraph: until a blank line or another block
            while i + 1 < len(lines) and lines[i + 1].strip() and not _starts_block(lines[i + 1]):
                i += 1
                block.append(lines[i])
        i += 1
        if m := HEADING.match(line):
            n = len(m.group(1))
            out.append(f"<h{n}>{_inline(m.group(2))}</h{n}>")
        elif m := IMAGE.fullmatch(line):
            # inline SVG needs no namespace in HTML, and leaving it out keeps every URL out of the file
            svg = svgs.get(m.group(1), "").replace(' xmlns="http://www.w3.org/2000/svg"', "", 1)
            out.append(f"<figure>{svg}</figure>" if svg else f"<p>(figure {escape(m.group(1))} is missing)</p>")
        elif line.startswith("|"):
            out.append(_table(block))
        elif line.startswith("- "):
            out.append("<ul>" + "".join(f"<li>{_inline(b[2:])}</li>" for b in block) + "</ul>")
        elif out and out[-1].startswith("<figure>") and "<figcaption>" not in out[-1]:
            # the paragraph right under an image line is its caption
            caption = _inline(" ".join(block))
            out[-1] = out[-1].removesuffix("</figure>") + f"<figcaption>{caption}</figcaption></figure>"
        else:
            out.append(f"<p>{_inline(' '.join(block))}</p>")
    return "\n".join(out)


def to_html(report: Report, figs: Sequence[Figure] | None = None) -> str:
    """The whole report as one HTML document; ``figs`` defaults to :func:`reports.figures.figures`."""
    figs = figures(report) if figs is None else figs
    body = markdown_to_html(to_markdown(report, figs), {f.name: f.svg for f in figs})
    # the script is allowed by its hash, so an injected <script> could not run even if escaping failed
    digest = base64.b64encode(hashlib.sha256(SCRIPT.encode()).digest()).decode()
    policy = f"default-src 'none'; style-src 'unsafe-inline'; script-src 'sha256-{digest}'"
    title = escape(f"{report.suite['name']} {report.suite['version']}: what normalization does")
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta http-equiv="Content-Security-Policy" content="{policy}">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n<title>{title}</title>\n'
            f"<style>{STYLE}</style>\n<script>{SCRIPT}</script>\n</head>\n<body>\n{body}\n</body>\n</html>\n")
