"""The self-contained HTML report: a real small run (two variants, two seeds, two epochs, with
hostile names in its suite) written out and opened in a real headless Chromium, which must load
it without an error and draw every figure; the file loads nothing from anywhere, and names come
out escaped. Also the Markdown converter on each construct render.py writes."""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from harness.registry import suites
from harness.runner import run
from reports.build import build_report
from reports.html import markdown_to_html
from reports.render import write_reports

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


def test_markdown_subset_converts_to_escaped_html() -> None:
    md = "\n".join([
        "# T <b>", "", "para `co|de` and **bold** with a \\| pipe", "next line", "",
        "| a | b \\| c |", "|---|---|", "| `x` | **y** |", "",
        "- **k**: v <i>", "- w", "",
        "![fig \\[1\\]](figures/one.svg)", "", "The caption.", "",
        "![gone](figures/two.svg)", ""])
    out = markdown_to_html(md, {"one": '<svg xmlns="http://www.w3.org/2000/svg"><circle r="1"/></svg>'})
    assert out.split("\n") == [
        "<h1>T &lt;b&gt;</h1>",
        "<p>para <code>co|de</code> and <strong>bold</strong> with a | pipe next line</p>",
        '<div class="table"><table><thead><tr><th>a</th><th>b | c</th></tr></thead><tbody><tr><td><code>x</code>'
        "</td><td><strong>y</strong></td></tr></tbody></table></div>",
        "<ul><li><strong>k</strong>: v &lt;i&gt;</li><li>w</li></ul>",
        '<figure><svg><circle r="1"/></svg><figcaption>The caption.</figcaption></figure>',
        "<p>(figure two is missing)</p>"]
