"""The report's figures, built by build_report from a store of records with known content: each
is valid SVG with the expected series or rows, bands hold their lines, the curve data equal
what can be computed by hand, and hostile names from a suite come out escaped."""

from __future__ import annotations

import dataclasses
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from harness import stats
from harness.metrics import auroc
from harness.reports.build import build_report
from harness.reports.figures import KIND_ORDER, Figure, figures, nice_ticks
from harness.reports.render import to_json, to_markdown, write_reports
from harness.reports.rows import Report
from harness.specs import AttackSpec, Condition, EvalSpec, Suite, TrainSpec, Variant, attack, clean, ood, shift
from harness.store import Cell, Store

HOSTILE = "<script>alert(1)</script>"
QUOTES = "\"&'<>"
OOD_SET = QUOTES + "ood"
SVG = "{http://www.w3.org/2000/svg}"
N, N_OUT, SEEDS = 200, 150, (0, 1, 2)
STEPS = np.array([0, 10, 20, 30])


def _suite() -> Suite:
    variants = (Variant("mlp-none", "mlp", "none"), Variant(HOSTILE, "mlp", "batch"))
    ev = EvalSpec(shifts=("gaussian-noise",), severities=(1, 2, 3), ood_sets=(OOD_SET,), ood_scores=("msp",),
                  attacks=(AttackSpec("fgsm", (0.0, 0.1)),), checks=False)
    return Suite("toy", "0.1", QUOTES + " a toy suite", "digits", variants, SEEDS, TrainSpec(), ev)


def _val_accuracy(variant: str, seed: int) -> np.ndarray:
    return np.array([0.1, 0.5, 0.7, 0.8]) + 0.05 * seed + (0.08 if variant == HOSTILE else 0.0)


def _cells(variant: str, seed: int, rng: np.random.Generator) -> list[Cell]:
    train = Cell(f"t-{variant}-{seed}", "train", variant, seed, {}, {
        "n_steps": 30, "steps_to_target": 20, "seconds_to_target": 0.1, "seconds_per_step": 0.001 * (seed + 1),
        "train_seconds": 0.1, "diverged": False, "diverged_at": None, "final_val_accuracy": 0.8},
        arrays={"curve_steps": STEPS, "curve_val_accuracy": _val_accuracy(variant, seed),
                "loss": np.linspace(2.0, 0.5, 30) + 0.1 * seed})
    conds: list[tuple[Condition, float]] = [(clean(), 0.9), *[(shift("gaussian-noise", s), 0.9 - 0.15 * s)
                                                              for s in (1, 2, 3)],
                                            (attack("fgsm", 0.0), 0.9), (attack("fgsm", 0.1), 0.4)]
    out = [train]
    clean_correct = None
    for cond, acc in conds:
        correct = rng.random(N) < acc + (0.03 if variant == HOSTILE else 0.0)
        if cond == attack("fgsm", 0.0):  # no perturbation: the clean outcomes, as the sanity checks expect
            correct = clean_correct
        clean_correct = correct if cond == clean() else clean_correct
        arrays = {"correct": correct, "pred": np.where(correct, 0, 1)}
        if cond.kind == "attack":  # what the sanity checks read: each example's perturbation size
            arrays["linf"] = np.full(N, cond.param("eps"))
        else:
            arrays["confidence"] = np.clip(acc + rng.normal(0, 0.1, N), 0.05, 1.0)
        out.append(Cell(f"e-{variant}-{seed}-{cond.key}", "eval", variant, seed, {}, {}, condition=cond.to_dict(),
                        arrays=arrays))
    o = ood(OOD_SET, "msp")
    out.append(Cell(f"e-{variant}-{seed}-ood", "eval", variant, seed, {}, {}, condition=o.to_dict(),
                    arrays={"score_in": rng.normal(1, 1, N), "score_out": rng.normal(0, 1, N_OUT)}))
    return out


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Report:
    run_dir = tmp_path_factory.mktemp("figures")
    rng = np.random.default_rng(0)
    with Store(run_dir) as store:
        store.put_meta("suite", _suite().to_dict())
        store.put_meta("provenance", {"harness": "test", "command": ["pytest"]})
        for seed in SEEDS:
            for variant in ("mlp-none", HOSTILE):
                for cell in _cells(variant, seed, rng):
                    store.put(cell)
    return build_report(run_dir, n_resamples=200)


@pytest.fixture(scope="module")
def figs(report: Report) -> dict[str, Figure]:
    return {f.name: f for f in figures(report)}


def _root(f: Figure) -> ET.Element:
    return ET.fromstring(f.svg)


def _series(f: Figure) -> list[ET.Element]:
    return [g for g in _root(f).iter(f"{SVG}g") if "series" in g.get("class", "").split()]


def _points(text: str) -> list[tuple[float, float]]:
    return [(float(x), float(y)) for x, y in re.findall(r"(-?[\d.]+),(-?[\d.]+)", text)]


def test_every_figure_with_data_is_made_once_with_a_file_safe_name(figs: dict[str, Figure]) -> None:
    assert set(figs) == {"forest", "training-accuracy", "training-loss", "severity-gaussian-noise", "roc-ood-msp",
                         "attack-fgsm", "reliability-clean", "reliability-gaussian-noise-3"}
    for f in figs.values():
        assert re.fullmatch(r"[a-z0-9-]+", f.name)
        assert _root(f).tag == f"{SVG}svg"  # valid XML, an SVG root
        assert f.section in {"summary", "training", "calibration", *KIND_ORDER}
        assert len(f.svg) < 40_000


@pytest.mark.parametrize(("name", "n"), [("training-accuracy", 2), ("training-loss", 2),
                                         ("severity-gaussian-noise", 2), ("attack-fgsm", 2),
                                         ("roc-ood-msp", 3), ("reliability-clean", 3)])
def test_one_series_per_variant_plus_the_reference_line(figs: dict[str, Figure], name: str, n: int) -> None:
    labels = [g.get("data-label") for g in _series(figs[name])]
    assert labels[:2] == ["mlp-none", HOSTILE] and len(labels) == n


def test_severity_lines_start_at_clean_and_bands_hold_their_lines(figs: dict[str, Figure]) -> None:
    for name in ("training-accuracy", "severity-gaussian-noise", "attack-fgsm"):
        for g in _series(figs[name]):
            line = _points(next(g.iter(f"{SVG}polyline")).get("points", ""))
            band = _points(next(g.iter(f"{SVG}path")).get("d", ""))
            assert len(band) == 2 * len(line) == 2 * {"training-accuracy": 4, "severity-gaussian-noise": 4,
                                                      "attack-fgsm": 2}[name]
            for x, y in line:  # SVG y grows downwards: the band's two edges at x bracket the line
                edge = sorted(by for bx, by in band if bx == x)
                assert len(edge) == 2 and edge[0] <= y <= edge[1]


def test_forest_plot_has_a_row_per_comparison_grouped_by_kind(report: Report, figs: dict[str, Figure]) -> None:
    root = _root(figs["forest"])
    rows = [g for g in root.iter(f"{SVG}g") if g.get("class") == "row"]
    assert len(rows) == len(report.comparisons) > 10
    headers = [t.text or "" for t in root.iter(f"{SVG}text") if t.get("class") == "header"]
    kinds = [next(k for k, title in (("clean", "In-distribution"), ("shift", "Shifted"), ("ood", "Out-of"),
                                     ("attack", "Adversarial"), ("training", "Training")) if h.startswith(title))
             for h in headers]
    assert kinds == sorted(kinds, key=KIND_ORDER.index) and set(kinds) == {"clean", "shift", "ood", "attack",
                                                                          "training"}
    assert any("accuracy (higher is better)" in h for h in headers)
    assert any("steps_to_target (lower is better)" in h for h in headers)
    # accuracy-like differences are drawn in percentage points: the axis says so
    assert "difference in percentage points" in [t.text for t in root.iter(f"{SVG}text")]
    clean_acc = next(r for r in report.comparisons if r.condition == clean() and r.metric == "accuracy")
    note = f"{100 * clean_acc.comparison.diff:+.1f}"
    assert any((t.text or "").startswith(note) for t in rows[0].iter(f"{SVG}text"))


def test_curves_are_the_mean_over_seeds_with_a_t_interval(report: Report) -> None:
    c = next(c for c in report.curves if c["variant"] == HOSTILE)
    per_seed = np.stack([_val_accuracy(HOSTILE, s) for s in SEEDS])
    assert c["steps"] == STEPS.tolist() and c["n_seeds"] == 3
    assert c["val_accuracy"] == pytest.approx(per_seed.mean(0).tolist())
    low, high = stats.t_interval(per_seed[:, 2], report.level)
    assert (c["val_low"][2], c["val_high"][2]) == pytest.approx((low, high))
    assert c["loss_steps"][-1] == 30 and c["loss"][0] == pytest.approx(2.1)


def test_roc_is_pooled_over_seeds_thinned_and_keeps_its_area(report: Report) -> None:
    rng = np.random.default_rng(0)  # redraw the fixture's pooled scores of mlp-none
    pooled: dict[str, list[np.ndarray]] = {"score_in": [], "score_out": []}
    for seed in SEEDS:
        for variant in ("mlp-none", HOSTILE):
            arrays = _cells(variant, seed, rng)[-1].arrays
            if variant == "mlp-none":
                for k in pooled:
                    pooled[k].append(arrays[k])
    r = next(r for r in report.roc if r["variant"] == "mlp-none")
    assert (r["n_in"], r["n_out"], r["n_seeds"]) == (3 * N, 3 * N_OUT, 3)
    assert len(r["fpr"]) == len(r["tpr"]) <= 200
    assert (r["fpr"][0], r["tpr"][0], r["fpr"][-1], r["tpr"][-1]) == (0, 0, 1, 1)
    assert np.all(np.diff(r["fpr"]) >= 0) and np.all(np.diff(r["tpr"]) >= 0)
    area = np.trapezoid(r["tpr"], r["fpr"])
    assert area == pytest.approx(auroc(np.concatenate(pooled["score_in"]), np.concatenate(pooled["score_out"])),
                                 abs=0.01)  # thinning to 200 points moves the area by a hair


def test_hostile_names_are_escaped_in_every_figure(figs: dict[str, Figure]) -> None:
    for f in figs.values():
        assert HOSTILE not in f.svg and QUOTES not in f.svg
    legend = figs["training-accuracy"]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in legend.svg
    assert HOSTILE in ET.tostring(_root(legend), encoding="unicode", method="text")
    roc = figs["roc-ood-msp"]
    assert "&quot;&amp;&#x27;&lt;&gt;ood" in roc.svg and roc.title == f"ROC: OOD {OOD_SET} (msp)"
    assert any(HOSTILE in (t.text or "") for t in _root(figs["forest"]).iter(f"{SVG}text"))


def test_markdown_references_only_figures_with_data(report: Report) -> None:
    md = to_markdown(report)
    lines = re.findall(r"^!\[.*\]\(figures/([a-z0-9-]+)\.svg\)$", md, re.M)
    assert lines == [f.name for f in figures(report)]
    assert md.index("figures/forest.svg") < md.index("## Training") < md.index("figures/training-accuracy.svg")
    assert md.index("## Out-of-distribution") < md.index("figures/roc-ood-msp.svg")
    bare = to_markdown(dataclasses.replace(report, curves=(), roc=(), comparisons=()))
    assert "figures/training" not in bare and "figures/roc" not in bare and "figures/forest" not in bare


def test_curves_and_roc_are_in_results_json(report: Report) -> None:
    res = to_json(report)
    assert [c["variant"] for c in res["curves"]] == ["mlp-none", HOSTILE]
    assert [r["condition"]["name"] for r in res["roc"]] == [OOD_SET, OOD_SET]


def test_write_reports_writes_each_figure_and_drops_stale_ones(report: Report, tmp_path: Path) -> None:
    # a figure the harness wrote and a rebuild no longer has is removed; a file it did not write stays (issue 15)
    (tmp_path / "figures").mkdir()
    (tmp_path / "figures" / "mine.svg").write_text("<svg/>")
    write_reports(report, tmp_path)
    assert {p.stem for p in (tmp_path / "figures").glob("*.svg")} == {"mine"} | {f.name for f in figures(report)}
    bare = dataclasses.replace(report, curves=(), roc=(), comparisons=())
    paths = write_reports(bare, tmp_path)
    assert {"report", "html", "results", "figures"} <= set(paths) and all(p.exists() for p in paths.values())
    assert sorted(p.stem for p in (tmp_path / "figures").glob("*.svg")) == sorted(
        ["mine", *(f.name for f in figures(bare))])
    assert len(figures(bare)) < len(figures(report))
    assert not list(tmp_path.glob("**/*.tmp")) and not list(tmp_path.glob("**/.harness-tmp-*"))


@pytest.mark.parametrize(("lo", "hi", "expected"), [(0, 100, [0, 20, 40, 60, 80, 100]), (0, 1, [0, 0.2, 0.4, 0.6,
                                                     0.8, 1]), (-0.13, 0.02, [-0.1, -0.05, 0]), (3, 3, [3])])
def test_nice_ticks_are_round_and_inside_the_range(lo: float, hi: float, expected: list[float]) -> None:
    assert nice_ticks(lo, hi) == pytest.approx(expected)
