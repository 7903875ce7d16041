"""The self-contained HTML report: a real small run (two variants, two seeds, two epochs, with
hostile names in its suite) written out and opened in a real headless Chromium, which must load
it without an error and draw every figure; the file loads nothing from anywhere, and names come
out escaped. Also: report.md, report.html and report.tex of that run carry the same tables, cell
for cell (the renderers on a hand-built document are tests/test_document.py's)."""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest

from harness.registry import suites
from harness.reports.build import build_report
from harness.reports.render import write_reports
from harness.runner import run

HOSTILE = "<script>alert(1)</script>"
QUOTES = "\"&'<>"
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    quickstart = dataclasses.replace(suites.get("quickstart"), claims=(f"{QUOTES} claims **nothing** | at all",))
    suite = quickstart.with_overrides(seeds=(0, 1), variants=("cnn-none", "cnn-batch"), epochs=2)
    none, batch = suite.variants
    # a lighter battery that still makes every kind of figure: two attacks (and their worst case) at three eps
    ev = dataclasses.replace(suite.evaluation, shifts=("gaussian-noise", "contrast"), severities=(1, 3, 5),
                             ood_sets=("faces",), checks=False,
                             attacks=tuple(dataclasses.replace(a, eps=(0.0, 0.05, 0.1)) for a in
                                           suite.evaluation.attacks if a.name in ("fgsm", "pgd-linf")))
    suite = dataclasses.replace(suite, description=f"{HOSTILE} {QUOTES}", evaluation=ev,
                                variants=(none, dataclasses.replace(batch, name=HOSTILE)))
    d = tmp_path_factory.mktemp("html") / "run"
    assert run(suite, d, device="cpu", progress=False).ok
    write_reports(build_report(d, n_resamples=200), d)
    return d


@pytest.fixture(scope="module")
def browser() -> str:
    """The headless browser's path; module-scoped and requested before the run, so a skip costs no training."""
    found = next((path for name in BROWSERS if (path := shutil.which(name))), None)
    if found is None:
        message = f"no headless browser found (tried {', '.join(BROWSERS)}): install Chromium with " \
                  "'apt-get install chromium'"
        if os.environ.get("CI"):  # CI installs Chromium (.ci/run): a missing one is a broken CI, not a skip
            pytest.fail(message)
        pytest.skip(message)
    return found


def test_the_report_loads_in_chromium_without_errors_and_draws_every_figure(browser: str, run_dir: Path,
                                                                           tmp_path: Path) -> None:
    html = run_dir / "report.html"
    n_figures = len(re.findall(r"^!\[.*\]\(figures/[a-z0-9-]+\.svg\)$", (run_dir / "report.md").read_text(), re.M))
    t0 = time.perf_counter()
    dom = subprocess.run([browser, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                          f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=5000", "--dump-dom",
                          html.as_uri()], capture_output=True, text=True, timeout=120, check=True).stdout
    print(f"chromium: {time.perf_counter() - t0:.2f} s")  # shown with -s: the cost of this check
    body = re.search(r"<body([^>]*)>", dom)
    assert body is not None, dom[:500]
    attrs = dict(re.findall(r'(data-[a-z-]+)="([^"]*)"', body.group(1)))
    assert attrs.get("data-errors") == "0", attrs  # also proves the inline script ran
    assert int(attrs["data-figures"]) == n_figures >= 10
    assert attrs["data-figures-drawn"] == attrs["data-figures"]
    # the browser read the hostile names as text: escaped in its serialisation, never a second script
    assert dom.count("<script") == 1 and "&lt;script&gt;alert(1)&lt;/script&gt;" in dom


def test_the_report_is_one_file_that_loads_nothing(run_dir: Path) -> None:
    html = (run_dir / "report.html").read_text()
    assert not re.search(r"\b(src|href|xlink:href)\s*=", html)
    assert "url(" not in html and "@import" not in html and "figures/" not in html
    assert "http://" not in html and "https://" not in html
    assert "default-src 'none'" in html  # the policy forbids any source besides the file itself
    assert html.count("<svg") == len(list((run_dir / "figures").glob("*.svg"))) >= 10  # every figure inlined


def test_hostile_names_are_escaped_everywhere_in_the_html(run_dir: Path) -> None:
    html = (run_dir / "report.html").read_text()
    assert HOSTILE not in html and QUOTES not in html
    assert html.count("<script") == 1  # the report's own
    assert html.count("&lt;script&gt;alert(1)&lt;/script&gt;") > 10  # description, tables, legends, forest rows
    assert "&quot;&amp;&#x27;&lt;&gt; claims" in html  # the claim, a plain string shown as text


def _markdown_tables(md: str) -> list[list[list[str]]]:
    """Every pipe table's rows (the delimiter row left out) as cell texts: the markup of a bold or
    code cell removed, Markdown's backslash escapes undone (in a code span, only the pipe's)."""
    def cell(text: str) -> str:
        code = re.fullmatch(r"(`+) ?(.*?) ?\1", text.strip())
        if code:
            return code.group(2).replace("\\|", "|")
        text = re.sub(r"^\*\*(.*)\*\*$", r"\1", text.strip())
        return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", text)

    return [[[cell(c) for c in re.split(r"(?<!\\)\|", line)[1:-1]] for i, line in enumerate(block.splitlines())
             if i != 1] for block in re.findall(r"(?:^\|.*\n)+", md, re.M)]


class _HTMLTables(HTMLParser):
    """Every <table>'s rows (header row first) as cell texts, entities decoded and tags dropped."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tables: list[list[list[str]]] = []
        self.cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: object) -> None:
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self.cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self.cell is not None:
            self.tables[-1][-1].append("".join(self.cell))
            self.cell = None

    def handle_data(self, data: str) -> None:
        if self.cell is not None:
            self.cell.append(data)


LATEX_TEXT = {r"\textbackslash{}": "\\", r"\&": "&", r"\%": "%", r"\$": "$", r"\#": "#", r"\_": "_", r"\{": "{",
              r"\}": "}", r"\textasciitilde{}": "~", r"\textasciicircum{}": "^", r"\textless{}": "<",
              r"\textgreater{}": ">", r"\textbar{}": "|", "{[}": "[", "{]}": "]", r"\textdagger{}": "†"}


def _latex_tables(tex: str) -> list[list[list[str]]]:
    """Every tabular's and longtable's rows (a longtable's repeated header once) as cell texts,
    harness.reports.latex.escape undone and \\textbf / \\texttt removed."""
    unescape = re.compile("|".join(map(re.escape, LATEX_TEXT)))

    def cell(text: str) -> str:
        text = re.sub(r"^\\text(?:bf|tt)\{(.*)\}$", r"\1", text.strip())
        return unescape.sub(lambda m: LATEX_TEXT[m.group()], text)

    out = []
    for env, inner in re.findall(r"\\begin\{(tabular|longtable)\}\{\w+\}\n(.*?)\\end\{\1\}", tex, re.S):
        rows = [[cell(c) for c in re.split(r"(?<!\\)&", line.removesuffix(r" \\"))] for line in inner.splitlines()
                if line.endswith(r" \\") and not line.startswith(r"\caption")]
        out.append(rows[1:] if env == "longtable" else rows)  # a longtable repeats its header on every page
    return out


def test_markdown_html_and_latex_carry_the_same_tables(run_dir: Path) -> None:
    """Every table of report.md is in report.html, in order, cell for cell (the hostile names,
    the claim's pipe, quotes and bold verdict decoded); report.tex's summary table is report.md's,
    and its comparison table is report.md's first nine columns."""
    md = _markdown_tables((run_dir / "report.md").read_text(encoding="utf-8"))
    parser = _HTMLTables()
    parser.feed((run_dir / "report.html").read_text(encoding="utf-8"))
    assert len(md) >= 15 and parser.tables == md
    claims_tex, summary, comparisons = _latex_tables((run_dir / "report.tex").read_text(encoding="utf-8"))
    # the claims' verdicts open report.md and report.tex; the summary table follows them
    assert summary == next(t for t in md if t[0][:2] == ["variant", "steps to target"])
    assert summary[0][:3] == ["variant", "steps to target", "clean acc %"]
    assert any(HOSTILE in row[0] for row in summary)
    paired = next(t for t in md if t[0][:2] == ["variant", "baseline"] and "d_z" in t[0])
    assert comparisons == [row[:9] for row in paired] and len(comparisons) > 10
    claims = next(t for t in md if t[0] == ["claim", "verdict", "why"])
    assert claims_tex == claims and md.index(claims) < md.index(summary)
    assert claims[1][0] == f"{QUOTES} claims **nothing** | at all"  # text, never markup
