"""Report building and rendering on a real SQLite store filled with records of known content:
the estimates and paired differences must equal what can be computed by hand."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from harness.errors import ConfigError
from harness.reports.build import build_report
from harness.reports.render import print_summary, to_json, to_markdown, write_reports
from harness.reports.vocabulary import fmt_estimate
from harness.specs import EvalSpec, Suite, TrainSpec, Variant
from harness.store import Cell, Store

CLEAN = {"kind": "clean", "name": "", "params": {}}
N = 200


def _suite(names=("mlp-none", "mlp-batch")) -> Suite:
    variants = tuple(Variant(n, "mlp", n.split("-")[1]) for n in names)
    return Suite("toy", "0.1", "a | toy suite", "digits", variants, (0, 1, 2),
                 TrainSpec(), EvalSpec(shifts=(), ood_sets=(), attacks=()))


def _train(variant: str, seed: int, steps: int | None, diverged: bool = False) -> Cell:
    return Cell(f"t-{variant}-{seed}", "train", variant, seed, {}, {
        "n_steps": 100, "steps_to_target": steps, "seconds_to_target": None if steps is None else 0.1,
        "seconds_per_step": 0.001 * (seed + 1), "train_seconds": 0.1, "diverged": diverged,
        "diverged_at": 3 if diverged else None, "final_val_accuracy": float("nan") if diverged else 0.9})


def _eval(variant: str, seed: int, correct: np.ndarray) -> Cell:
    return Cell(f"e-{variant}-{seed}", "eval", variant, seed, {}, {}, condition=CLEAN,
                arrays={"correct": correct.astype(bool)})


@pytest.fixture()
def toy_run(tmp_path: Path) -> tuple[Path, dict[tuple[str, int], np.ndarray]]:
    rng = np.random.default_rng(0)
    truth = {}
    with Store(tmp_path) as store:
        store.put_meta("suite", _suite().to_dict())
        store.put_meta("provenance", {"harness": "test", "command": ["pytest"]})
        for seed in (0, 1, 2):
            base = rng.random(N) < 0.8
            better = base | (rng.random(N) < 0.5)  # the normalized variant fixes some errors, never adds one
            for variant, correct in (("mlp-none", base), ("mlp-batch", better)):
                truth[(variant, seed)] = correct
                store.put(_train(variant, seed, 50 if variant == "mlp-batch" else 80 + seed))
                store.put(_eval(variant, seed, correct))
    return tmp_path, truth


def test_estimates_and_differences_equal_the_hand_computed_means(toy_run) -> None:
    run_dir, truth = toy_run
    report = build_report(run_dir, n_resamples=500)
    est = {r.variant: r.estimate for r in report.estimates}
    for v in ("mlp-none", "mlp-batch"):
        assert est[v].value == pytest.approx(np.mean([truth[(v, s)].mean() for s in (0, 1, 2)]))
        assert est[v].ci_low <= est[v].value <= est[v].ci_high and est[v].n_examples == N
    cmp = next(r for r in report.comparisons if r.condition is not None)
    expected = np.mean([truth[("mlp-batch", s)].mean() - truth[("mlp-none", s)].mean() for s in (0, 1, 2)])
    assert (cmp.variant, cmp.baseline) == ("mlp-batch", "mlp-none")
    assert cmp.comparison.diff == pytest.approx(expected) and cmp.comparison.ci_low > 0
    assert cmp.comparison.p_value == pytest.approx(0.25)  # 3 seeds, all differences positive: 2 of 8 patterns


def test_p_better_is_the_share_of_seed_pairs_the_variant_wins(toy_run) -> None:
    """P(better) of each comparison is the share of (variant seed, baseline seed) pairs in which the
    variant's run is better in the metric's direction, ties counted half, from the per-seed values
    of both (hand-computed here), inside its own interval."""
    run_dir, truth = toy_run
    report = build_report(run_dir, n_resamples=200)
    per_seed = {("accuracy", v): [truth[(v, s)].mean() for s in (0, 1, 2)] for v in ("mlp-none", "mlp-batch")}
    per_seed |= {("steps_to_target", "mlp-none"): [80, 81, 82], ("steps_to_target", "mlp-batch"): [50, 50, 50],
                 ("seconds_per_step", "mlp-none"): [0.001, 0.002, 0.003],
                 ("seconds_per_step", "mlp-batch"): [0.001, 0.002, 0.003]}
    expected = {"accuracy": ("higher", 1.0), "steps_to_target": ("lower", 1.0), "seconds_per_step": ("lower", 0.5)}
    assert {r.metric for r in report.comparisons} == set(expected)
    for r in report.comparisons:
        a, b = per_seed[(r.metric, "mlp-batch")], per_seed[(r.metric, "mlp-none")]
        wins = [(x > y if r.better == "higher" else x < y) + 0.5 * (x == y) for x in a for y in b]
        assert (r.better, float(np.mean(wins))) == expected[r.metric]
        assert r.prob_improvement == pytest.approx(np.mean(wins))
        assert r.prob_improvement_low <= r.prob_improvement <= r.prob_improvement_high  # type: ignore[operator]


def test_holm_adjusts_across_every_comparison(toy_run) -> None:
    report = build_report(toy_run[0], n_resamples=200)
    metrics = {r.metric for r in report.comparisons}
    assert metrics == {"accuracy", "steps_to_target", "seconds_per_step"}
    raw = sorted(r.comparison.p_value for r in report.comparisons)
    adjusted = sorted(r.p_adjusted for r in report.comparisons)
    assert all(a >= p for a, p in zip(adjusted, raw, strict=True))
    assert adjusted[0] == pytest.approx(min(1.0, raw[0] * len(raw)))


def test_training_summary_counts_reached_and_censored(tmp_path: Path) -> None:
    with Store(tmp_path) as store:
        store.put_meta("suite", _suite().to_dict())
        for s in (0, 1, 2):
            store.put(_train("mlp-none", s, None if s == 2 else 100))
            store.put(_train("mlp-batch", s, 40, diverged=(s == 1)))
    report = build_report(tmp_path, n_resamples=100)
    summary = {t.variant: t for t in report.training_summary}
    assert summary["mlp-none"].reached == 2 and summary["mlp-none"].steps_to_target is None
    assert summary["mlp-batch"].diverged == 1 and summary["mlp-batch"].reached == 2
    assert summary["mlp-batch"].steps_to_target.value == 40
    assert "mlp-batch seed 1: diverged" in report.excluded
    md = to_markdown(report)
    assert "2/3" in md and "not reached" in md


def test_json_is_strict_and_nan_becomes_null(toy_run, tmp_path: Path) -> None:
    run_dir, _ = toy_run
    with Store(run_dir) as store:
        store.put(_train("mlp-none", 0, 80, diverged=True))  # NaN final accuracy
    paths = write_reports(build_report(run_dir, n_resamples=100), run_dir)
    md_path, json_path = paths["report"], paths["results"]
    data = json.loads(json_path.read_text())
    assert "NaN" not in json_path.read_text()
    row = next(t for t in data["training"] if t["variant"] == "mlp-none" and t["seed"] == 0)
    assert row["final_val_accuracy"] is None
    assert md_path.read_text().startswith("# toy 0.1")


def test_markdown_escapes_table_breaking_text(toy_run) -> None:
    """A pipe breaks a Markdown table: it is escaped in a table (the training tables' |grad| headers)
    and in a paragraph (the suite's description), as all user text is. Every table has
    as many cells in each row as in its header and delimiter row, else GitHub shows it as text."""
    import re

    md = to_markdown(build_report(toy_run[0], n_resamples=100))
    assert "\n\na \\| toy suite\n\n" in md
    assert "| roughness | \\|grad\\| | memory MiB |" in md and "| max \\|grad\\| |" in md
    tables = re.findall(r"(?:^\|.*\n)+", md, re.M)
    assert len(tables) >= 5
    for t in tables:
        widths = {len(re.split(r"(?<!\\)\|", line)) for line in t.splitlines()}
        assert len(widths) == 1, t


def test_terminal_summary_renders(toy_run) -> None:
    from rich.console import Console

    console = Console(record=True, width=200)
    print_summary(build_report(toy_run[0], n_resamples=100), console)
    text = console.export_text()
    assert "mlp-batch" in text and "Sanity checks" in text and "0.25" in text


def test_report_on_a_folder_without_a_run_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a run directory"):
        build_report(tmp_path / "nothing")


def test_fmt_estimate_shows_value_and_interval() -> None:
    from harness.stats import Estimate

    e = Estimate(0.9731, 0.95, 0.99, 0.95, "m", 3, 450)
    assert fmt_estimate(e, "accuracy") == "97.3 [95.0, 99.0]"
    assert fmt_estimate(e, "auroc") == "0.973 [0.950, 0.990]"


def test_corruption_error_hand_computed() -> None:
    import numpy as np

    from harness.reports.estimates import corruption_error

    # two corruptions with two severities each; errors as fractions
    err = {"clean": np.array(0.1), "a1": np.array(0.2), "a2": np.array(0.4), "b1": np.array(0.3), "b2": np.array(0.3)}
    ref = {"clean": np.array(0.2), "a1": np.array(0.3), "a2": np.array(0.5), "b1": np.array(0.2), "b2": np.array(0.4)}
    groups = [["a1", "a2"], ["b1", "b2"]]
    # CE_a = 0.6 / 0.8, CE_b = 0.6 / 0.6
    assert float(corruption_error(err, ref, groups, "clean", False)) == pytest.approx((0.75 + 1.0) / 2)
    # relative: (0.1 + 0.3) / (0.1 + 0.3) = 1 and (0.2 + 0.2) / (0.0 + 0.2) = 2
    assert float(corruption_error(err, ref, groups, "clean", True)) == pytest.approx(1.5)
    assert float(corruption_error(ref, ref, groups, "clean", False)) == 1.0
    # works elementwise on per-seed or per-replicate arrays, NaN where the reference has no error
    many = {k: np.array([v, v, 0.0]) for k, v in err.items()}
    zero_ref = {k: np.array([v, v, 0.0]) for k, v in ref.items()}
    out = corruption_error(many, zero_ref, groups, "clean", False)
    assert out[:2] == pytest.approx([0.875, 0.875]) and np.isnan(out[2])


def test_terminal_summary_is_compact(toy_run) -> None:
    from rich.console import Console

    from harness.reports.content import compact_columns, headline_columns

    report = build_report(toy_run[0], n_resamples=100)
    assert compact_columns(report) == [c for c in headline_columns(report) if c[1] == "clean"]
    console = Console(record=True, width=80)
    print_summary(report, console)
    assert "every number in report.md" in " ".join(console.export_text().split())  # the title wraps at 80


# --- training measurements and sweeps -----------------------------------------------------------


def _run(variant: str, seed: int, steps: int | None, aulc: float = 0.5, diverged: bool = False) -> Cell:
    """A training record with the later measurements (budget 100 steps)."""
    return Cell(f"t-{variant}-{seed}", "train", variant, seed, {}, {
        "n_steps": 100, "budget_steps": 100, "steps_to_target": steps, "epochs_to_target": None,
        "seconds_to_target": None, "seconds_per_step": 0.001, "train_seconds": 0.1, "diverged": diverged,
        "diverged_at": 5 if diverged else None, "final_val_accuracy": float("nan") if diverged else 0.9,
        "aulc": aulc, "loss_roughness": 0.1 + 0.01 * seed, "grad_norm_median": 1.0, "grad_norm_max": 2.0,
        "peak_memory_bytes": 1 << 20, "memory_method": "counted"})


def test_a_censored_run_counts_at_its_budget_in_the_steps_comparison(tmp_path: Path) -> None:
    with Store(tmp_path) as store:
        store.put_meta("suite", _suite().to_dict())
        for seed, base_steps in zip((0, 1, 2), (80, 81, None), strict=True):
            store.put(_run("mlp-batch", seed, 50, aulc=0.7 + 0.01 * seed))
            store.put(_run("mlp-none", seed, base_steps, aulc=0.5))
    report = build_report(tmp_path, n_resamples=200)
    rows = {r.metric: r for r in report.comparisons if r.condition is None}
    steps = rows["steps_to_target"].comparison
    assert steps.diff == pytest.approx(np.mean([50 - 80, 50 - 81, 50 - 100]))
    assert "1 censored run(s) counted at the budget" in steps.ci_method
    assert rows["aulc"].comparison.diff == pytest.approx(0.21) and rows["aulc"].better == "higher"
    assert rows["loss_roughness"].comparison.diff == pytest.approx(0.0, abs=1e-12)
    assert rows["loss_roughness"].better == "lower"
    summary = {t.variant: t for t in report.training_summary}
    assert summary["mlp-none"].reached == 2 and summary["mlp-none"].steps_to_target is None
    assert summary["mlp-batch"].aulc.value == pytest.approx(0.71)
    assert summary["mlp-batch"].peak_memory_bytes.value == 1 << 20
    md = to_markdown(report)
    assert "AULC %" in md and "memory MiB" in md and "counted: parameters" in md


def _sweep_suite() -> Suite:
    from harness.specs import Claim, sweep

    base = tuple(Variant(n, "mlp", n.split("-")[1]) for n in ("mlp-none", "mlp-batch"))
    return Suite("toy-sweep", "0.1", "d", "digits", sweep(base, lr=(0.01, 0.1, 1.0)), (0, 1, 2), TrainSpec(),
                 EvalSpec(shifts=(), ood_sets=(), attacks=()),
                 claims=(Claim("batch converges at more rates", "converged_fraction", "higher", "sweep:lr"),
                         Claim("at lr 1, batch reaches the target", "steps_to_target", "lower",
                               variants=("*@lr=1",))))


def test_a_sweep_reports_converged_seeds_the_range_and_the_paired_share(tmp_path: Path) -> None:
    # mlp-none converges at 0.01 in every seed, at 0.1 in seed 0 only, diverges at 1; mlp-batch
    # converges everywhere except seed 2 at lr 1
    none = {0.01: (30, 30, 30), 0.1: (40, None, None), 1.0: ("div", "div", "div")}
    batch = {0.01: (20, 20, 20), 0.1: (15, 15, 15), 1.0: (10, 12, None)}
    with Store(tmp_path) as store:
        store.put_meta("suite", _sweep_suite().to_dict())
        for family, grid in (("mlp-none", none), ("mlp-batch", batch)):
            for lr, per_seed in grid.items():
                for seed, steps in enumerate(per_seed):
                    name = f"{family}@lr={lr:g}"
                    store.put(_run(name, seed, None if steps in (None, "div") else int(steps),
                                   diverged=steps == "div"))
    report = build_report(tmp_path, n_resamples=200)
    sw = {w.family: w for w in report.sweeps}
    assert [(p.value, p.converged, p.diverged) for p in sw["mlp-none"].points] == [(0.01, 3, 0), (0.1, 1, 0),
                                                                                  (1.0, 0, 3)]
    assert sw["mlp-none"].converged_range == (0.01, 0.01)
    assert sw["mlp-batch"].converged_range == (0.01, 0.1)
    share = next(r for r in report.comparisons if r.metric == "converged_fraction")
    assert (share.variant, share.baseline, share.condition.key) == ("mlp-batch", "mlp-none", "sweep:lr")
    # per seed: batch 3/3, 3/3, 2/3 against none 2/3, 1/3, 1/3
    assert share.comparison.diff == pytest.approx(np.mean([1 / 3, 2 / 3, 1 / 3]))
    verdicts = {v.claim.text: v for v in report.claims}
    assert [e.variant for e in verdicts["batch converges at more rates"].evidence] == ["mlp-batch"]
    # the diverged baseline at lr 1 leaves no steps comparison there: the claim says which is missing
    assert "mlp-batch@lr=1" in verdicts["at lr 1, batch reaches the target"].reason
    md = to_markdown(report)
    assert "Sweep over `lr`" in md and "0/3 (3 div.)" in md
    doc = json.loads(json.dumps(to_json(report)))
    assert doc["sweeps"][0]["points"][0]["variant"].endswith("@lr=0.01")
    from harness.reports.figures import figures

    (fig,) = [f for f in figures(report) if f.name == "sweep-lr"]
    assert fig.section == "training" and "log10(lr)" in fig.caption  # 0.01 to 1 spans two decades
    assert fig.svg.count('<g class="series"') == 2 and 'data-label="mlp-batch"' in fig.svg


# --- a denoise suite's report ---------------------------------------------------------------------


def _denoise_suite() -> Suite:
    from harness.specs import AttackSpec, Claim, DiffusionSpec

    variants = tuple(Variant(f"unet-{n}", "unet", n) for n in ("none", "group"))
    return Suite("toy-diffusion", "0.1", "a toy denoise suite", "digits", variants, (0, 1, 2), TrainSpec(),
                 EvalSpec(shifts=("contrast",), severities=(1, 2), ood_sets=(),
                          attacks=(AttackSpec("pgd-linf", (0.0, 0.1)),)),
                 task="denoise", task_options=DiffusionSpec(target_loss=0.2),
                 claims=(Claim("group lowers the clean denoising loss", "denoising_loss", "lower", "clean"),
                         Claim("group reaches the target sooner", "steps_to_target", "lower"),
                         Claim("group samples are closer to the test images", "sample_fid", "lower", "samples")))


def _denoiser_train(variant: str, seed: int, steps: int | None, mean_loss: float) -> Cell:
    return Cell(f"t-{variant}-{seed}", "train", variant, seed, {}, {
        "n_steps": 100, "budget_steps": 100, "target_loss": 0.2, "steps_to_target": steps,
        "seconds_to_target": None if steps is None else 0.1, "seconds_per_step": 0.01, "train_seconds": 1.0,
        "diverged": False, "diverged_at": None, "final_val_loss": mean_loss - 0.05, "mean_val_loss": mean_loss,
        "loss_roughness": 0.1, "grad_norm_median": 1.0, "grad_norm_max": 2.0, "peak_memory_bytes": 1000,
        "memory_method": "counted"}, arrays={"curve_steps": np.array([0, 50, 100]),
                                             "curve_val_loss": np.array([1.0, mean_loss, mean_loss - 0.05]),
                                             "loss": np.linspace(1, 0.2, 100), "grad_norm": np.ones(100)})


@pytest.fixture()
def denoise_run(tmp_path: Path) -> tuple[Path, dict[tuple[str, int], np.ndarray], dict[tuple[str, int], float]]:
    from harness.specs import attack, clean, samples, shift

    rng = np.random.default_rng(1)
    losses, fids = {}, {}
    with Store(tmp_path) as store:
        store.put_meta("suite", _denoise_suite().to_dict())
        store.put_meta("provenance", {"harness": "test", "command": ["pytest"]})
        store.put_meta("judge", {"key": "k", "model": "cnn", "norm": "batch", "seed": 0, "test_accuracy": 0.97,
                                 "n_test": N, "reference_n": 64, "reference_fid": 1.5, "reference_class_tv": 0.05})
        for seed in (0, 1, 2):
            base = rng.gamma(4.0, 1.0, N)
            for variant, scale, steps in (("unet-none", 1.0, None), ("unet-group", 0.8, 40 + seed)):
                loss = base * scale
                losses[(variant, seed)] = loss
                store.put(_denoiser_train(variant, seed, steps, 0.3 * scale))
                conds = [(clean(), loss), (shift("contrast", 1), loss + 1), (shift("contrast", 2), loss + 3),
                         (attack("pgd-linf", 0.0), loss), (attack("pgd-linf", 0.1), loss * 2)]
                for cond, arr in conds:
                    # an attack's record names its norm and the size of each perturbation, as the runner's do
                    size = {"linf": np.full(N, cond.param("eps")), "l2": np.zeros(N)} if cond.kind == "attack" else {}
                    store.put(Cell(f"e-{variant}-{seed}-{cond.key}", "eval", variant, seed, {},
                                   {"denoising_loss": float(arr.mean()), **({"norm": "linf"} if size else {})},
                                   condition=cond.to_dict(), arrays={"denoise_loss": arr, **size}))
                fids[(variant, seed)] = fid = 10.0 * scale + seed
                store.put(Cell(f"s-{variant}-{seed}", "eval", variant, seed, {},
                               {"sample_fid": fid, "class_tv": 0.2 * scale, "n_samples": 64},
                               condition=samples().to_dict(),
                               arrays={"pred": rng.integers(0, 10, 64), "fid": np.array([fid]),
                                       "class_tv": np.array([0.2 * scale])}))
    return tmp_path, losses, fids


def test_a_denoise_report_estimates_losses_and_samples_and_fakes_no_classifier_metric(denoise_run) -> None:
    from harness import stats

    run_dir, losses, fids = denoise_run
    r = build_report(run_dir, n_resamples=300)
    est = {(e.variant, e.condition.key, e.metric): e.estimate for e in r.estimates}
    assert {e.metric for e in r.estimates} == {"denoising_loss", "sample_fid", "class_tv"}
    for v in ("unet-none", "unet-group"):
        clean_loss = est[(v, "clean", "denoising_loss")]
        assert clean_loss.value == pytest.approx(np.mean([losses[(v, s)].mean() for s in (0, 1, 2)]))
        assert clean_loss.n_seeds == 3 and clean_loss.n_examples == N
        assert est[(v, "shift:all", "denoising_loss")].value == pytest.approx(clean_loss.value + 2)  # mean of +1, +3
        at0 = est[(v, "attack:pgd-linf:eps=0.0", "denoising_loss")]  # eps 0 is clean: the same interval too
        assert (at0.value, at0.ci_low, at0.ci_high) == (clean_loss.value, clean_loss.ci_low, clean_loss.ci_high)
        fd = est[(v, "samples", "sample_fid")]
        values = [fids[(v, s)] for s in (0, 1, 2)]
        assert fd.value == pytest.approx(np.mean(values)) and fd.method == "t-interval over seeds"
        assert (fd.ci_low, fd.ci_high) == pytest.approx(tuple(stats.t_interval(values, 0.95)))
    comps = {(c.condition.key if c.condition else "training", c.metric): c for c in r.comparisons}
    assert comps[("clean", "denoising_loss")].comparison.diff == pytest.approx(
        np.mean([(losses[("unet-group", s)] - losses[("unet-none", s)]).mean() for s in (0, 1, 2)]))
    assert comps[("clean", "denoising_loss")].better == "lower"
    fd_cmp = comps[("samples", "sample_fid")]
    assert fd_cmp.comparison.diff == pytest.approx(-2.0) and "sign-flip" in fd_cmp.comparison.p_method
    assert {m for k, m in comps if k == "training"} == {"steps_to_target", "mean_val_loss", "loss_roughness",
                                                         "seconds_per_step"}  # no AULC: a denoiser has none
    # steps to target: group's 40-42 against none's budget (never reached, counted at 100)
    assert comps[("training", "steps_to_target")].comparison.diff == pytest.approx(-59.0)
    t = {s.variant: s for s in r.training_summary}
    assert t["unet-group"].mean_val_loss.value == pytest.approx(0.24)  # type: ignore[union-attr]
    assert t["unet-group"].aulc is None and t["unet-group"].final_val_accuracy is None
    assert r.suite["task"] == "denoise" and "target_accuracy" not in r.suite
    # the checks that read a PGD sweep on the loss: eps 0 gives the clean losses, the loss doubles at eps 0.1;
    # these records hold no "stronger" check cell (twice the steps), so that check has nothing to read
    assert [(c.name, c.status) for c in r.checks] == [("eps = 0 reproduces clean losses", "pass"),
                                                      ("perturbations stay inside the eps-ball", "pass"),
                                                      ("the loss never falls with eps", "pass"),
                                                      ("twice the steps of the attack raise the loss little", "n/a")]
    assert {v.claim.text: v.verdict for v in r.claims}.keys() and all(  # type: ignore[union-attr]
        v.verdict != "not evaluated" for v in r.claims)
    assert r.curves and "val_loss" in r.curves[0] and "val_accuracy" not in r.curves[0]


def test_a_denoise_report_renders_and_validates(denoise_run, tmp_path: Path) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    from harness.reports.render import SCHEMA_PATH

    run_dir, _, _ = denoise_run
    r = build_report(run_dir, n_resamples=200)
    md = to_markdown(r)
    for heading in ("## In-distribution: denoising loss", "## Shifted inputs: denoising loss",
                    "## Adversarial: PGD on the denoising loss", "## Samples: feature distance",
                    "## Samples: class mix"):
        assert heading in md, heading
    assert "acc %" not in md and "AULC" not in md and "target denoising loss 0.2" in md
    assert "97.0% accuracy on the 200 test images" in md and "feature distance of 1.500" in md
    doc = to_json(r)
    jsonschema.Draft202012Validator(json.loads(SCHEMA_PATH.read_text())).validate(doc)
    paths = write_reports(r, run_dir)
    assert paths["html"].exists() and "denoising loss" in paths["html"].read_text()
    assert (run_dir / "figures" / "training-val-loss.svg").exists()
    print_summary(r)


# --- a failed evaluation cell, from a real run ----------------------------------------------------


def test_a_failed_evaluation_is_listed_and_its_pair_compared_on_the_common_seeds(tmp_path: Path) -> None:
    """A real run of two MLPs x 3 seeds on the digits; then one model's clean evaluation is replaced
    by the failed record the runner stores when an evaluation raises (a damaged weights file is
    retrained instead, see tests/test_failures.py) and its shift evaluation is removed. The report
    lists both under excluded, with the variant, seed, condition and reason, and compares the pair
    on the two seeds both variants have, saying so; where every seed is there it says nothing."""
    import dataclasses

    import jsonschema

    from harness.reports.render import SCHEMA_PATH
    from harness.reports.rows import PARTIAL_SEEDS
    from harness.runner import run

    suite = Suite("fail-eval", "1", "one evaluation fails", "digits",
                  (Variant("mlp-none", "mlp", "none"), Variant("mlp-batch", "mlp", "batch")), (0, 1, 2),
                  TrainSpec(epochs=1), EvalSpec(shifts=("gaussian-noise",), severities=(3,), ood_sets=(), attacks=(),
                                                cost=False))
    clean, shift = (c.key for c in suite.conditions()[:2])  # then the membership and cost conditions
    run_dir = tmp_path / "run"
    assert run(suite, run_dir, device="cpu", executor="serial", progress=False).ok
    error = "ValueError: the outcome holds NaN or inf: correct (3 of 450)"
    with Store(run_dir) as store:
        cells = {c.condition["kind"]: c for c in store.cells("eval")  # type: ignore[index]
                 if (c.variant, c.seed) == ("mlp-batch", 1)}
        store.db.execute("DELETE FROM cells WHERE key IN (?, ?)", (cells["clean"].key, cells["shift"].key))
        store.db.commit()
        store.put(dataclasses.replace(cells["clean"], status="failed", error=error, result={}, arrays={}))

    report = build_report(run_dir, n_resamples=200)
    failed, never = report.excluded
    assert failed == f"mlp-batch seed 1, {clean}: evaluation failed ({error})"
    assert never == f"mlp-batch seed 1: not evaluated on {shift}"

    # the clean accuracy comparison: on seeds 0 and 2, the hand-computed mean of the paired differences
    with Store(run_dir, create=False) as store:
        acc = {(c.variant, c.seed): c.arrays["correct"].mean() for c in store.cells("eval")
               if c.status == "done" and c.condition == {"kind": "clean", "name": "", "params": {}}}
    assert len(acc) == 5
    row = next(r for r in report.comparisons if r.condition is not None and r.condition.key == clean
               and r.metric == "accuracy")
    assert row.seeds == (0, 2) and row.comparison.n_seeds == 2
    assert row.comparison.diff == pytest.approx(np.mean([acc[("mlp-batch", s)] - acc[("mlp-none", s)]
                                                         for s in (0, 2)]))
    assert PARTIAL_SEEDS in row.comparison.caveat
    est = {(r.variant, r.condition.key, r.metric): r.estimate.n_seeds for r in report.estimates}
    assert (est[("mlp-none", clean, "accuracy")], est[("mlp-batch", clean, "accuracy")]) == (3, 2)
    training = [r for r in report.comparisons if r.condition is None]
    assert training and all(r.seeds == (0, 1, 2) and PARTIAL_SEEDS not in r.comparison.caveat for r in training)

    doc = json.loads(json.dumps(to_json(report), allow_nan=False))
    assert doc["excluded"] == [failed, never]
    assert [e.message for e in jsonschema.Draft202012Validator(
        json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))).iter_errors(doc)] == []
    md = to_markdown(report)
    assert f"mlp-batch seed 1, {clean}: evaluation failed ({error})" in md
    assert f"mlp-batch seed 1: not evaluated on {shift}" in md
    assert md.count(PARTIAL_SEEDS) == 1  # once in the caveat legend, however many rows carry it


@pytest.mark.parametrize(("n_seeds", "n_comparisons", "says"), [
    # 2/2**S < 0.05 from S = 6 (0.031); times 8 comparisons, 2/2**S * 8 < 0.05 from S = 9 (0.03125)
    (3, 8, ["smallest two-sided p-value the sign-flip test can give is 0.25", "at least 6 seeds (smallest p 0.031)",
            "at least 9 for the strongest of 8 Holm-adjusted"]),
    (1, 1, ["McNemar's exact test", "at least 6 for one comparison to reach"]),
    (1, 0, ["McNemar's exact test", "at least 6 seeds", "this run compares no variants"]),
    (4, 0, ["smallest two-sided p-value the sign-flip test can give is 0.125."]),
    # the sampled test (2**S > 20000) cannot go below 1/20001: 2000 comparisons can never reach 0.05
    (1, 2000, ["no number of seeds lets the strongest of 2000 Holm-adjusted comparisons reach p < 0.05"]),
])
def test_the_power_note_states_the_seeds_a_test_needs(n_seeds: int, n_comparisons: int, says: list[str]) -> None:
    from harness.reports.methods import power_note

    note = power_note(n_seeds, n_comparisons)
    assert all(s in note for s in says), note
    assert "of 0 " not in note and "of 1 " not in note, note
