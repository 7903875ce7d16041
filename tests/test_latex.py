"""harness.reports.latex: hostile suite and variant names are escaped, the tables are well formed
(balanced environments, every row as wide as its header) and carry the report's own numbers;
write_reports writes report.tex. Compiled with pdflatex where one is installed (CI installs it; with
CI set a missing pdflatex fails the test instead of skipping it)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from harness.reports.build import build_report
from harness.reports.latex import escape
from harness.reports.render import to_latex, write_reports
from harness.reports.rows import Report
from harness.reports.vocabulary import CAVEAT_MARK
from harness.specs import EvalSpec, Suite, TrainSpec, Variant
from harness.store import Cell, Store

BASE = r"base & co_1 {50%}"  # every LaTeX special character appears in some name
NORMED = r"bn #2 ~^\ $x$ [v]"
SUITE = "toy_suite & 100% {x}"
N = 300


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Report:
    """Two variants with hostile names, the second compared with the first, 3 seeds, clean and one
    shift, known per-example outcomes."""
    run_dir = tmp_path_factory.mktemp("latex")
    variants = (Variant(BASE, "mlp", "none"), Variant(NORMED, "mlp", "batch", compare_to=BASE))
    suite = Suite(SUITE, "0.1^2", "hostile", "digits", variants, (0, 1, 2), TrainSpec(),
                  EvalSpec(shifts=("gaussian-noise",), severities=(1,), ood_sets=(), attacks=()))
    conditions = ({"kind": "clean", "name": "", "params": {}},
                  {"kind": "shift", "name": "gaussian-noise", "params": {"severity": 1}})
    rng = np.random.default_rng(0)
    with Store(run_dir) as store:
        store.put_meta("suite", suite.to_dict())
        for seed in (0, 1, 2):
            for i, variant in enumerate((BASE, NORMED)):
                store.put(Cell(f"t{i}{seed}", "train", variant, seed, {}, {
                    "n_steps": 100, "steps_to_target": 60 - 10 * i + seed, "seconds_to_target": 0.1,
                    "seconds_per_step": 0.001, "train_seconds": 0.1, "diverged": False, "diverged_at": None,
                    "final_val_accuracy": 0.9}))
                for j, cond in enumerate(conditions):
                    store.put(Cell(f"e{i}{j}{seed}", "eval", variant, seed, {}, {}, condition=cond,
                                   arrays={"correct": rng.random(N) < 0.7 + 0.1 * i}))
    return build_report(run_dir, n_resamples=300)


def test_escape_every_special_character() -> None:
    assert escape(r"& % $ # _ { } ~ ^ \ ") == (r"\& \% \$ \# \_ \{ \} \textasciitilde{} \textasciicircum{} "
                                               r"\textbackslash{} ")
    assert escape("[a] <b> c|d\ne †") == r"{[}a{]} \textless{}b\textgreater{} c\textbar{}d e \textdagger{}"
    assert escape(r"\&") == r"\textbackslash{}\&"  # one pass: an escape is never escaped again
    assert escape("plain text 1.5") == "plain text 1.5"


def _body(tex: str) -> str:
    """The document without comment lines (they may hold anything)."""
    return "\n".join(line for line in tex.splitlines() if not line.startswith("%"))


def test_hostile_names_are_escaped(report: Report) -> None:
    tex = to_latex(report)
    for name in (BASE, NORMED, SUITE):
        assert escape(name) in tex
    body = _body(tex)
    # every special character left in the body is escaped, or LaTeX's own markup: a % ending a
    # line (it swallows the newline), & between cells
    assert not re.search(r"(?<!\\)[#$]|(?<!\\)%(?!$)", body, re.M)
    assert not any(name in body for name in (BASE, NORMED, SUITE, "co_1", "100%", "$x$"))
    assert r"\textasciitilde{}\textasciicircum{}\textbackslash{}" in tex


def _tables(tex: str) -> list[tuple[str, list[list[str]]]]:
    """(column spec, rows split into cells) of every tabular and longtable."""
    out = []
    for _env, spec, inner in re.findall(r"\\begin\{(tabular|longtable)\}\{(\w+)\}\n(.*?)\\end\{\1\}", tex, re.S):
        rows = [re.split(r"(?<!\\)&", line[:-len(r" \\")]) for line in inner.splitlines()
                if line.endswith(r" \\") and not line.startswith(r"\caption")]
        out.append((spec, [[c.strip() for c in r] for r in rows]))
    return out


def test_environments_balance_and_rows_match_the_header(report: Report) -> None:
    tex = to_latex(report)
    stack: list[str] = []
    for kind, env in re.findall(r"\\(begin|end)\{(\w+)\}", tex):
        if kind == "begin":
            stack.append(env)
        else:
            assert stack and stack.pop() == env, env
    assert stack == []
    assert tex.count(r"\begin{tabular}") == tex.count(r"\end{tabular}") == 1
    assert tex.count(r"\begin{longtable}") == tex.count(r"\end{longtable}") == 1
    tables = _tables(tex)
    assert len(tables) == 2
    for spec, rows in tables:
        header = rows[0]
        assert len(spec) == len(header) and all(len(r) == len(header) for r in rows), (spec, rows)
    for rule in (r"\toprule", r"\midrule", r"\bottomrule"):
        assert rule in tex


def test_numbers_are_the_reports(report: Report) -> None:
    (_, headline), (_, comparisons) = _tables(to_latex(report))
    assert headline[0][:3] == ["variant", "steps to target", r"clean acc \%"]
    est = {(r.variant, r.condition.key, r.metric): r.estimate for r in report.estimates}
    assert [row[0] for row in headline[1:]] == [escape(BASE), escape(NORMED)]
    for row, variant in zip(headline[1:], (BASE, NORMED), strict=True):
        e = est[(variant, "clean", "accuracy")]
        mark = CAVEAT_MARK if e.caveat else ""  # an interval outside its method's validated designs
        assert row[2] == escape(f"{100 * e.value:.1f} [{100 * e.ci_low:.1f}, {100 * e.ci_high:.1f}]{mark}")
        e = est[(variant, "shift:all", "accuracy")]
        assert row[3].startswith(escape(f"{100 * e.value:.1f} ["))
    assert comparisons[0] == comparisons[1]  # the header of the first page, and of each continued page
    assert len(report.comparisons) >= 4 and len(comparisons) == 2 + len(report.comparisons)
    for row, c in zip(comparisons[2:], report.comparisons, strict=True):
        assert row[:2] == [escape(c.variant), escape(c.baseline)]
        scale = 100 if c.metric == "accuracy" else 1000 if c.metric == "seconds_per_step" else 1
        decimals = {"accuracy": 1, "steps_to_target": 0, "seconds_per_step": 2}[c.metric]
        assert row[4] == f"{scale * c.comparison.diff:+.{decimals}f}"
        assert float(row[6]) == pytest.approx(c.comparison.p_value, abs=5e-4)
        assert row[8] == str(c.comparison.n_seeds)


def test_write_reports_writes_report_tex(report: Report, tmp_path: Path) -> None:
    paths = write_reports(report, tmp_path)
    tex = tmp_path / "report.tex"
    assert tex.read_text(encoding="utf-8") == to_latex(report)
    assert paths["latex"] == tex
    assert not list(tmp_path.glob("*.tmp"))


def test_compiles_with_pdflatex(report: Report, tmp_path: Path, pdflatex: str) -> None:
    (tmp_path / "report.tex").write_text(to_latex(report), encoding="utf-8")
    for _ in range(2):  # longtable settles its column widths on the second pass
        done = subprocess.run([pdflatex, "-interaction=nonstopmode", "-halt-on-error", "report.tex"],
                              cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout[-3000:]
    assert (tmp_path / "report.pdf").stat().st_size > 0
