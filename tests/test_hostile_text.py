"""Text a user or a plugin gave reaches a terminal or a document as the characters it is made of.

report.md is rendered by a real Markdown parser (markdown-it-py, CommonMark with raw HTML
enabled, as a viewer with HTML on would) and every hostile name must come out as exactly its
text, in exactly the elements a harmless name gets; the terminal output (rich) of the report,
`harness run`, `report`, `compare`, `show`, `list` and error lines never reads a name as rich
markup or emoji codes and never passes a control character through; and names that no report
could show (control characters, line breaks) are refused where a suite is declared."""

from __future__ import annotations

import io
import textwrap
from html.parser import HTMLParser
from pathlib import Path

import pytest
from markdown_it import MarkdownIt

from harness.cli import main
from harness.errors import ConfigError, printable
from harness.registry import REGISTRIES, SUITE_PATH_ENV
from harness.reports import markdown, terminal
from harness.reports.document import Bold, BulletList, Code, Document, Figure, Heading, Paragraph, Table
from harness.specs import Claim, Size, Suite, TrainSpec, Variant

# tests/test_html.py's hostile names, and the rest of what a Markdown viewer with HTML enabled would act on
HOSTILE = (
    "<script>alert(1)</script>",
    "\"&'<>",
    "<img src=x onerror=alert(1)>",
    '<iframe src="javascript:alert(1)"></iframe>',
    "**bold** _em_ __strong__ ~~gone~~ `code` ``two``",
    "[a link](javascript:alert(1)) ![an image](x.png) <https://example.com>",
    "&amp; &lt;b&gt; &#60;i&#62;",
    "a | b || c \\| d",
    "a\\*b\\ back\\\\slash",
    "line one\n# an injected heading\n| a | row |",
    "- an item",
    "+ an item",
    "12. an ordered item",
    "3) another",
    "> a quote",
    "---",
    "***",
    "___",
    "=",
    "# a heading #",
    "name ending in #",
    "mlp [/bold] x",
    "mlp[bn] :smile:",
    "snake_case and batch_size=4 and _edge_",
    "esc \x1b[31mred\x1b[0m and osc \x1b]0;title\x07 and bidi \u202eevil",
)
# what markdown-it emits for the document below whatever its text (attributes other than alt left out)
STRUCTURE = ["h1", "h2", "p", "ul", "li", "p", "table", "thead", "tr", "th", "th", "th", "tbody", "tr", "td", "td",
             "code", "td", "strong", "p", "img", "p"]


def _document(text: str) -> Document:
    """``text`` in every place a report puts a name: title, heading, paragraph, list item, table
    caption and cells (plain, code, bold), figure title and caption."""
    return Document(text, (
        Heading(text),
        Paragraph((text,)),
        BulletList(((text,),)),
        Table(("variant", "code", "verdict"), ((text, Code(text), Bold(text)),), caption=text),
        Figure("forest", text, text, "<svg/>"),
    ))


class _Elements(HTMLParser):
    """The start tags of an HTML fragment in order, and the text of each element that holds text
    (an img's alt counts as its text)."""

    LEAVES = ("h1", "h2", "p", "li", "th", "td", "code", "strong")

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.texts: list[tuple[str, str]] = []
        self._open: list[tuple[str, list[str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag == "img":
            self.texts.append(("img", dict(attrs)["alt"] or ""))
        elif tag in self.LEAVES:
            self._open.append((tag, []))

    def handle_endtag(self, tag: str) -> None:
        if self._open and self._open[-1][0] == tag:
            name, parts = self._open.pop()
            self.texts.append((name, "".join(parts)))

    def handle_data(self, data: str) -> None:
        for _, parts in self._open:  # a code cell's text is its td's as well
            parts.append(data)


def _parse(text: str) -> _Elements:
    md = MarkdownIt("commonmark", {"html": True}).enable("table")
    parsed = _Elements()
    parsed.feed(md.render(markdown.render(_document(text))))
    return parsed


def test_the_markdown_structure_is_the_same_for_a_harmless_name() -> None:
    harmless = _parse("cnn-batch")
    assert harmless.tags == STRUCTURE
    assert {t for _, t in harmless.texts} == {"cnn-batch", "variant", "code", "verdict", ""}  # "": the image's p


@pytest.mark.parametrize("text", HOSTILE, ids=range(len(HOSTILE)))
def test_a_hostile_name_in_markdown_is_exactly_its_text_in_the_same_elements(text: str) -> None:
    parsed = _parse(text)
    assert parsed.tags == STRUCTURE  # no element added (script, img, a, em, h1, blockquote ...) or lost
    shown = printable(text.replace("\n", " "))  # one line, control characters spelled out
    header = [("th", "variant"), ("th", "code"), ("th", "verdict")]
    want = [("h1", shown), ("h2", shown), ("p", shown), ("li", shown), ("p", shown), *header,
            ("td", shown), ("code", shown), ("td", shown), ("strong", shown), ("td", shown), ("p", ""), ("img", shown),
            ("p", shown)]
    assert sorted(parsed.texts) == sorted(want)


def test_a_leading_indent_is_dropped_not_made_code() -> None:
    parsed = _parse("    four spaces")
    assert parsed.tags == STRUCTURE
    assert ("p", "four spaces") in parsed.texts and ("code", "    four spaces") in parsed.texts


def test_printable_spells_out_controls_and_keeps_everything_else() -> None:
    controls = [chr(c) for c in [*range(0x20), *range(0x7f, 0xa0)]] + ["\u2028", "\u2029", "\u202e", "\u2066", "\u061c"]
    for c in controls:
        assert printable(f"a{c}b") == f"a{repr(c)[1:-1]}b" and printable(c).isprintable()
    kept = "".join(map(chr, range(0x20, 0x7f))) + "é→✓漢字 \u00a0ß" + "🙂"
    assert printable(kept) == kept


def test_the_terminal_renderer_prints_names_as_they_are() -> None:
    from rich.console import Console

    name = "mlp [/bold] x mlp[bn] :smile: [red]no[/red] \x1b]0;pwned\x07\x1b[31m"
    doc = Document(name, (Heading(name), Paragraph((name,)), Paragraph((name,), note=True), BulletList(((name,),)),
                          Table(("variant",), ((name,), (Bold(name),), (Code(name),)), caption=name),
                          Figure("f", name, "", "<svg/>")))
    out = io.StringIO()
    terminal.render(doc, Console(file=out, width=400, color_system=None))
    lines = out.getvalue().splitlines()
    shown = "mlp [/bold] x mlp[bn] :smile: [red]no[/red] \\x1b]0;pwned\\x07\\x1b[31m"
    assert "\x1b" not in out.getvalue() and "\x07" not in out.getvalue()
    # title, heading, 2 paragraphs, item, caption, 3 cells and the figure's line
    assert sum(shown in line for line in lines) == 10
    assert lines.count(f"{shown}: figures/f.svg") == 1
    assert "🙂" not in out.getvalue()


# -- names refused where a suite declares them ---------------------------------------------------------------------

BAD = ["two\nlines", "carriage\rreturn", "esc\x1b[2J", "bell\x07", "nul\x00", "next line\x85", "bidi\u202eevil",
       "line\u2028separator", "tab\tstop"]


def _suite(**changes: object) -> Suite:
    base = {"name": "s", "version": "1", "description": "d", "dataset": "digits",
            "variants": (Variant("mlp-none", "mlp", "none"),), "seeds": (0,), "train": TrainSpec(epochs=1)}
    return Suite(**{**base, **changes})  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", BAD, ids=range(len(BAD)))
@pytest.mark.parametrize("where", ["variant", "suite", "claim", "plain-claim", "size"])
def test_a_name_with_a_control_character_or_line_break_is_refused(where: str, bad: str) -> None:
    make = {"variant": lambda: Variant(bad, "mlp", "none"),
            "suite": lambda: _suite(name=bad),
            "claim": lambda: Claim(bad, "accuracy", "higher", "clean"),
            "plain-claim": lambda: _suite(claims=(bad,)),
            "size": lambda: Size(bad)}[where]
    with pytest.raises(ConfigError) as err:
        make()
    assert repr(bad) in err.value.message and "control character or line break" in err.value.message
    assert err.value.message.isprintable() and "printable characters on one line" in err.value.hint


def test_printable_names_are_accepted() -> None:
    for name in ("<script>alert(1)</script>", "mlp [/bold] x", "é→✓ | **b**", "a\u00a0b"):
        assert Variant(name, "mlp", "none").name == name
        assert _suite(name=name, claims=(name,)).name == name


# -- the command line, end to end ----------------------------------------------------------------------------------

VARIANTS = ("mlp [/bold] x", "<img src=x onerror=alert(1)> | **b**")
DESCRIPTION = "described [bold]loudly[/bold] :smile: \x1b]0;pwned\x07\x1b[31mred\x1b[0m"
SUITE_FILE = f"""
from harness.specs import EvalSpec, Suite, TrainSpec, Variant

SUITE = Suite(
    name="hostile-names", version="1", description={DESCRIPTION!r}, dataset="digits",
    variants=(Variant("mlp-none", "mlp", "none"), Variant({VARIANTS[0]!r}, "mlp", "batch", compare_to="mlp-none"),
              Variant({VARIANTS[1]!r}, "mlp", "layer", compare_to="mlp-none")),
    seeds=(0,), train=TrainSpec(epochs=1, batch_size=64),
    evaluation=EvalSpec(shifts=("contrast",), severities=(1,), ood_sets=(), attacks=(), checks=False,
                        membership=False, cost=False),
    claims=("mlp[bn] :smile: claims | **nothing**",),
)
"""


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]):  # type: ignore[no-untyped-def]
    """main(argv) -> (exit status, stdout, stderr), with the hostile suite's folder written and
    whatever --suite-path registers dropped afterwards."""
    (tmp_path / "suites").mkdir()
    (tmp_path / "suites" / "hostile_names_suite.py").write_text(textwrap.dedent(SUITE_FILE))
    monkeypatch.delenv(SUITE_PATH_ENV, raising=False)
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "200")  # rich's width: every name whole on its table row
    registered = {kind: set(r.names()) for kind, r in REGISTRIES.items()}

    def call(*argv: str) -> tuple[int, str, str]:
        capfd.readouterr()
        code = main(list(argv))
        out, err = capfd.readouterr()
        return code, out, err

    yield call
    for kind, r in REGISTRIES.items():
        for name in set(r.names()) - registered[kind]:
            r.unregister(name)


def _assert_literal(text: str) -> None:
    assert "\x1b" not in text and "\x07" not in text, repr(text)
    assert "MarkupError" not in text and "unexpected" not in text and "🙂" not in text


@pytest.mark.slow
def test_run_report_compare_show_and_list_print_hostile_names_as_they_are(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    suites = str(tmp_path / "suites")
    run_dir = tmp_path / "run [/bold] :smile:"  # compare's header names the runs by their folders
    code, out, err = cli("run", "hostile-names", "--suite-path", suites, "--run-dir", str(run_dir), "--executor",
                         "serial", "--resamples", "200", "--no-progress")
    assert code == 0, err
    _assert_literal(out + err)
    rows = [line.split("│")[1].strip() for line in err.splitlines() if line.startswith("│")]
    # the summary's row, and the comparisons': clean (accuracy, ece, nll, brier), contrast s1 and the shifts' mean
    assert [rows.count(name) for name in VARIANTS] == [7, 7], err
    md = (run_dir / "report.md").read_text(encoding="utf-8")
    html = MarkdownIt("commonmark", {"html": True}).enable("table").render(md)
    assert html.count("<img ") == html.count('<img src="figures/') >= 1  # the report's own figures only
    assert "<script" not in html and "<iframe" not in html and "<strong>b</strong>" not in html
    # in table cells, each a whole cell: the summary, the comparisons, the claims' evidence
    assert html.count("<td>&lt;img src=x onerror=alert(1)&gt; | **b**</td>") >= 7
    assert html.count("<td>mlp [/bold] x</td>") >= 7
    assert "<p>described [bold]loudly[/bold] :smile: \\x1b]0;pwned\\x07\\x1b[31mred\\x1b[0m</p>" in html

    code, out, err = cli("report", str(run_dir), "--resamples", "200")
    assert code == 0, err
    _assert_literal(out + err)
    assert "mlp [/bold] x" in err and "[/bold]" in err

    code, out, err = cli("compare", str(run_dir), str(run_dir), "--resamples", "200")
    assert code == 0, err
    _assert_literal(out + err)
    assert f"A: {run_dir}" in err.splitlines() and f"B: {run_dir}" in err.splitlines()

    code, out, err = cli("show", "hostile-names", "--suite-path", suites)
    assert code == 0, err
    _assert_literal(out + err)
    assert out.splitlines()[0] == f"hostile-names 1: {printable(DESCRIPTION)}"
    assert f"variants:   mlp-none, {VARIANTS[0]}, {VARIANTS[1]}" in out.splitlines()
    assert "claim:      mlp[bn] :smile: claims | **nothing**" in out.splitlines()

    code, out, err = cli("list", "suites", "--suite-path", suites)
    assert code == 0, err
    _assert_literal(out + err)
    assert any(line.startswith("hostile-names") and printable(DESCRIPTION) in line for line in out.splitlines())


def test_an_error_line_spells_out_control_characters(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    where = tmp_path / "no\x1b]0;pwned\x07where\nInjected: line"
    code, out, err = cli("report", str(where))
    assert code == 2 and out == ""
    _assert_literal(err)
    lines = err.splitlines()
    assert len(lines) == 2 and lines[0].startswith("Error: ") and lines[1].startswith("Hint: ")
    assert printable(str(where)) in lines[0]
