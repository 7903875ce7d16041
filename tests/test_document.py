"""The document model (harness.reports.document) and its four renderers, on one small hand-built document
with every block and span and text that each format must escape: the exact Markdown, HTML, LaTeX
(also compiled with pdflatex where one is installed) and terminal output."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

import pytest

from harness.reports import html, latex, markdown, terminal
from harness.reports.document import (
    Bold,
    BulletList,
    Code,
    Document,
    Figure,
    Heading,
    Paragraph,
    Table,
    paragraph,
    plain,
)

DOC = Document("T <&> | 50%", (
    Heading("Section [a] | b"),
    paragraph("para ", Code("co|de"), " and ", Bold("bold"), " with a | pipe\nand a newline"),
    BulletList((("plain <i>",), (Bold("k"), ": v"))),
    Table(("a", "b | c"), (("x", Bold("y")), (Code("z"), "1 & 2")), caption="Cap 50%", label="small"),
    Figure("one", "fig [1]", "The caption.", '<svg xmlns="http://www.w3.org/2000/svg"><circle r="1"/></svg>'),
    Heading("Sub", 3),
    Table(("who", "what", "n"), (("a_1", "#2", "3"),), caption="Long", label="long one", text_columns=2, long=True),
    paragraph("[bold]a note[/bold]", note=True),
))


def test_markdown() -> None:
    # text is text: the punctuation Markdown would read as markup is escaped (tests/test_hostile_text.py
    # renders hostile names with a real Markdown parser)
    assert markdown.render(DOC) == "\n".join([
        "# T \\<\\&> \\| 50%", "",
        "## Section \\[a\\] \\| b", "",
        "para `co|de` and **bold** with a \\| pipe and a newline", "",
        "- plain \\<i>", "- **k**: v", "",
        "Cap 50%", "", "| a | b \\| c |", "|---|---|", "| x | **y** |", "| `z` | 1 \\& 2 |", "",
        "![fig \\[1\\]](figures/one.svg)", "", "The caption.", "",
        "### Sub", "",
        "Long", "", "| who | what | n |", "|---|---|---|", "| a_1 | \\#2 | 3 |", "",
        "\\[bold\\]a note\\[/bold\\]", ""])


def test_html() -> None:
    assert html.body(DOC).split("\n") == [
        "<h1>T &lt;&amp;&gt; | 50%</h1>",
        "<h2>Section [a] | b</h2>",
        "<p>para <code>co|de</code> and <strong>bold</strong> with a | pipe and a newline</p>",
        "<ul><li>plain &lt;i&gt;</li><li><strong>k</strong>: v</li></ul>",
        '<div class="table"><table><caption>Cap 50%</caption><thead><tr><th>a</th><th>b | c</th></tr></thead>'
        "<tbody><tr><td>x</td><td><strong>y</strong></td></tr><tr><td><code>z</code></td><td>1 &amp; 2</td></tr>"
        "</tbody></table></div>",
        '<figure><svg><circle r="1"/></svg><figcaption>The caption.</figcaption></figure>',
        "<h3>Sub</h3>",
        '<div class="table"><table><caption>Long</caption><thead><tr><th>who</th><th>what</th><th>n</th></tr>'
        "</thead><tbody><tr><td>a_1</td><td>#2</td><td>3</td></tr></tbody></table></div>",
        "<p>[bold]a note[/bold]</p>"]
    page = html.render(DOC)
    assert page.startswith("<!DOCTYPE html>") and "<title>T &lt;&amp;&gt; | 50%</title>" in page
    assert f"<body>\n{html.body(DOC)}\n</body>" in page


def test_html_wraps_long_cells_only() -> None:
    long, short = "w" * (html.WRAP_AT + 1), "w" * html.WRAP_AT
    out = html.body(Document(None, (Table(("h", "i"), ((long, Bold(short)),)),)))
    assert f'<td class="wrap">{long}</td><td><strong>{short}</strong></td>' in out


LATEX = r"""\documentclass{article}
\usepackage[T1]{fontenc}
\usepackage[landscape,margin=1.5cm]{geometry}
\usepackage{booktabs,longtable,graphicx}
\title{T \textless{}\&\textgreater{} \textbar{} 50\%}
\date{}
\begin{document}
\maketitle
\footnotesize

\section*{Section {[}a{]} \textbar{} b}

para \texttt{co\textbar{}de} and \textbf{bold} with a \textbar{} pipe and a newline

\begin{itemize}
\item plain \textless{}i\textgreater{}
\item \textbf{k}: v
\end{itemize}

% table: small
\begin{table}[ht]
\centering
\caption{Cap 50\%}
\resizebox{\linewidth}{!}{%
\begin{tabular}{lr}
\toprule
a & b \textbar{} c \\
\midrule
x & \textbf{y} \\
\texttt{z} & 1 \& 2 \\
\bottomrule
\end{tabular}
}
\end{table}

% figure: figures/one.svg
\textit{fig {[}1{]}.} The caption.

\subsection*{Sub}

% table: long one
\begin{longtable}{llr}
\caption{Long}\\
\toprule
who & what & n \\
\midrule
\endfirsthead
\toprule
who & what & n \\
\midrule
\endhead
\bottomrule
\endfoot
a\_1 & \#2 & 3 \\
\end{longtable}

{[}bold{]}a note{[}/bold{]}

\end{document}
"""


def test_latex() -> None:
    assert latex.render(DOC) == LATEX


def test_latex_compiles(tmp_path: Path, pdflatex: str) -> None:
    (tmp_path / "doc.tex").write_text(LATEX, encoding="utf-8")
    for _ in range(2):  # longtable settles its column widths on the second pass
        done = subprocess.run([pdflatex, "-interaction=nonstopmode", "-halt-on-error", "doc.tex"], cwd=tmp_path,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout[-3000:]


def test_terminal() -> None:
    from rich.console import Console

    console = Console(record=True, width=40, file=io.StringIO(), color_system=None)
    terminal.render(DOC, console)
    assert console.export_text().split("\n") == [
        "T <&> | 50%",
        "Section [a] | b",
        "para co|de and bold with a | pipe and a ",  # rich wraps a paragraph at the width
        "newline",
        "  plain <i>",
        "  k: v",
        "   Cap 50%   ",
        "┏━━━┳━━━━━━━┓",
        "┃ a ┃ b | c ┃",
        "┡━━━╇━━━━━━━┩",
        "│ x │ y     │",
        "│ z │ 1 & 2 │",
        "└───┴───────┘",
        "fig [1]: figures/one.svg",
        "Sub",
        "       Long       ",
        "┏━━━━━┳━━━━━━┳━━━┓",
        "┃ who ┃ what ┃ n ┃",
        "┡━━━━━╇━━━━━━╇━━━┩",
        "│ a_1 │ #2   │ 3 │",
        "└─────┴──────┴───┘",
        "[bold]a note[/bold]",  # never read as rich markup
        ""]


def test_a_table_row_needs_a_cell_per_column_and_plain_drops_markup() -> None:
    with pytest.raises(ValueError, match=r"every row of a table needs 2 cells, one per header cell; got rows of \[1\]"):
        Table(("a", "b"), (("x",),))
    assert plain(("a ", Code("b"), " ", Bold("c"))) == "a b c" and plain(Code("x")) == "x"
    assert Paragraph(("x",)) == paragraph("x") and paragraph("x", note=True).note
