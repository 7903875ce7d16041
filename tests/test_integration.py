"""End to end: a reduced quickstart trains real models on real digits, stores per-example
records, writes its report, resumes without redoing work, and rebuilds the report from the
store alone. Also: a diverging recipe and a broken model plugin become outcomes, not crashes."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch

from harness import cli
from harness.registry import models, suites
from harness.reports.build import build_report
from harness.reports.render import to_json, write_reports
from harness.runner import run
from harness.specs import TrainSpec
from harness.store import Store

VARIANTS = ("cnn-none", "cnn-batch", "mlp-none", "mlp-layer")


def reduced():
    return suites.get("quickstart").with_overrides(seeds=(0, 1), variants=VARIANTS, epochs=2)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("quick") / "run"
    summary = run(reduced(), d, device="cpu", progress=False)
    assert summary.ok and summary.trained == 4 * 2 and summary.skipped == 0
    write_reports(build_report(d, n_resamples=300), d)
    return d


def test_results_json_carries_the_promised_fields(run_dir: Path) -> None:
    res = json.loads((run_dir / "results.json").read_text())
    assert res["schema_version"] == 4
    for run_record in res["training"]:  # the training measurements of schema 3, from a real run
        assert run_record["budget_steps"] == run_record["n_steps"] > 0 and 0 < run_record["aulc"] <= 1
        assert run_record["grad_norm_median"] > 0 and run_record["peak_memory_bytes"] > 0
        assert run_record["memory_method"] == "counted"
    assert res["suite"]["name"] == "quickstart" and res["suite"]["version"]
    assert res["seeds"] == [0, 1]
    assert [v["name"] for v in res["variants"]] == list(VARIANTS)
    kinds = {e["condition"]["kind"] for e in res["estimates"]}
    assert kinds == {"clean", "shift", "ood", "attack", "membership", "cost"}
    for e in res["estimates"]:
        assert {"variant", "condition", "metric", "value", "ci_low", "ci_high", "level", "n_seeds",
                "n_examples"} <= e.keys()
        assert e["ci_low"] <= e["ci_high"] and e["level"] == 0.95 and e["n_seeds"] == 2
    clean = [e for e in res["estimates"] if e["condition"]["kind"] == "clean" and e["metric"] == "accuracy"]
    assert len(clean) == 4 and all(e["n_examples"] == 450 for e in clean)
    assert all(e["ci_low"] <= e["value"] <= e["ci_high"] for e in clean)
    ood = {(e["condition"]["name"], e["metric"]) for e in res["estimates"] if e["condition"]["kind"] == "ood"}
    assert ood == {(s, m) for s in ("faces", "textures", "photos") for m in ("auroc", "fpr95", "aupr_in", "aupr_out")}
    for c in res["comparisons"]:
        assert {"diff", "ci_low", "ci_high", "p_value", "p_adjusted"} <= c.keys()
        assert (c["variant"], c["baseline"]) in {("cnn-batch", "cnn-none"), ("mlp-layer", "mlp-none")}
        assert 0 <= c["p_value"] <= c["p_adjusted"] <= 1
    assert {(t["variant"], t["seed"]) for t in res["training"]} == {(v, s) for v in VARIANTS for s in (0, 1)}
    for t in res["training"]:
        assert {"steps_to_target", "seconds_per_step", "diverged"} <= t.keys() and t["seconds_per_step"] > 0
    assert {"versions", "git", "device", "command"} <= res["provenance"].keys()


def test_the_claims_rest_on_the_comparisons_the_suite_design_predicts(run_dir: Path) -> None:
    """harness show's count of the claims' family (harness.reports.design), made from the suite alone,
    equals the rows each claim of a real report matched."""
    from harness.reports.design import claims_design

    report = build_report(run_dir, n_resamples=300)
    design = claims_design(reduced())
    # the reduced run's two variants per claim: steps, worst case, membership AUROC, energy to target
    assert design.per_claim == tuple(len(v.evidence) for v in report.claims) == (2, 2, 2, 2)
    assert design.family == 8 and design.fewest_seeds == 9  # Holm over 8 rows: 2 * 8 / 2**S < 0.05 from S = 9


def test_eps_zero_reproduces_clean_accuracy_exactly(run_dir: Path) -> None:
    res = json.loads((run_dir / "results.json").read_text())
    clean = {e["variant"]: e["value"] for e in res["estimates"]
             if e["condition"]["kind"] == "clean" and e["metric"] == "accuracy"}
    zero = [e for e in res["estimates"] if e["condition"]["kind"] == "attack" and e["condition"]["params"]["eps"] == 0]
    assert len(zero) == 4 * len(VARIANTS)  # fgsm, pgd-linf, apgd-ce and their worst case
    assert all(e["value"] == clean[e["variant"]] for e in zero)
    check = next(c for c in res["checks"] if c["name"].startswith("eps = 0"))
    assert check["status"] == "pass"


def test_attack_settings_are_written_into_the_report(run_dir: Path) -> None:
    res = json.loads((run_dir / "results.json").read_text())
    attacks = {a["name"]: a for a in res["attacks"]}
    assert attacks.keys() == {"fgsm", "pgd-linf", "apgd-ce"}
    assert attacks["pgd-linf"]["steps"] == 10 and attacks["pgd-linf"]["restarts"] == 1
    assert attacks["pgd-linf"]["random_start"] is True and attacks["pgd-linf"]["loss"] == "ce"
    assert attacks["apgd-ce"]["steps"] == 20 and attacks["apgd-ce"]["rho"] == 0.75
    assert attacks["fgsm"]["eps"] == [0, 0.02, 0.05, 0.1, 0.2]
    md = (run_dir / "report.md").read_text()
    assert "Attack settings, as run" in md and "2.5 \\* eps / steps" in md  # Markdown-escaped
    # robust accuracy against eps, with intervals, for every variant, and the worst case
    for v in VARIANTS:
        rows = [e for e in res["estimates"] if e["variant"] == v and e["condition"]["name"] == "worst-case"]
        assert sorted(e["condition"]["params"]["eps"] for e in rows) == [0, 0.02, 0.05, 0.1, 0.2]
        assert all(e["ci_low"] <= e["value"] <= e["ci_high"] for e in rows)


def test_every_sanity_check_has_a_verdict(run_dir: Path) -> None:
    res = json.loads((run_dir / "results.json").read_text())
    assert len(res["checks"]) == 11
    assert all(c["status"] in ("pass", "fail", "n/a") and c["detail"] for c in res["checks"])
    md = (run_dir / "report.md").read_text()
    assert all(c["name"] in md for c in res["checks"])


def test_report_markdown_reads_on_its_own(run_dir: Path) -> None:
    md = (run_dir / "report.md").read_text()
    for section in ("## Summary", "## Training", "## In-distribution", "## Shifted inputs",
                    "## Out-of-distribution detection: AUROC", "## Adversarial robustness", "## Paired comparisons",
                    "## Sanity checks", "## Methods", "## Provenance"):
        assert section in md
    assert "crossed t-interval" in md and "sign-flip" in md and "Holm" in md


def test_per_example_outcomes_are_stored(run_dir: Path) -> None:
    with Store(run_dir, create=False) as store:
        cells = list(store.cells("eval"))
    n_conditions = len(reduced().conditions())
    assert len(cells) == 4 * 2 * n_conditions
    clean = next(c for c in cells if c.condition == {"kind": "clean", "name": "", "params": {}})
    assert clean.arrays["correct"].shape == (450,) and clean.arrays["correct"].dtype == bool


def test_running_again_skips_every_finished_cell(run_dir: Path) -> None:
    before = (run_dir / "store.sqlite").stat().st_size
    summary = run(reduced(), run_dir, device="cpu", progress=False)
    assert (summary.trained, summary.evaluated, summary.skipped) == (0, 0, 4 * 2 * (1 + len(reduced().conditions())))
    assert (run_dir / "store.sqlite").stat().st_size == before


def test_harness_report_rebuilds_identical_results_from_the_store(run_dir: Path, capsys) -> None:
    original = json.loads((run_dir / "results.json").read_text())
    (run_dir / "results.json").unlink()
    (run_dir / "report.md").unlink()
    assert cli.main(["report", str(run_dir), "--resamples", "300", "--quiet"]) == 0
    rebuilt = json.loads((run_dir / "results.json").read_text())
    assert rebuilt["estimates"] == original["estimates"]
    assert rebuilt["comparisons"] == original["comparisons"]
    assert (run_dir / "report.md").exists()
    assert str(run_dir / "report.md") in capsys.readouterr().out


def test_report_level_changes_interval_width(run_dir: Path) -> None:
    wide = to_json(build_report(run_dir, level=0.99, n_resamples=300))["estimates"][0]
    narrow = to_json(build_report(run_dir, level=0.80, n_resamples=300))["estimates"][0]
    assert wide["ci_high"] - wide["ci_low"] > narrow["ci_high"] - narrow["ci_low"]
    assert wide["value"] == narrow["value"]


@pytest.mark.slow
def test_diverged_training_is_an_outcome_not_a_crash(tmp_path: Path) -> None:
    base = suites.get("quickstart").with_overrides(seeds=(0,), variants=("mlp-none", "mlp-batch"), epochs=1)
    suite = dataclasses.replace(base, train=TrainSpec(epochs=1, lr=1e6, optimizer="sgd", eval_every=5))
    summary = run(suite, tmp_path, device="cpu", progress=False)
    assert summary.ok and summary.diverged >= 1
    report = build_report(tmp_path, n_resamples=100)
    res = to_json(report)
    diverged = {t["variant"] for t in res["training"] if t["diverged"]}
    assert diverged and all(any(v in x and "diverged" in x for x in res["excluded"]) for v in diverged)
    assert not any(e["variant"] in diverged for e in res["estimates"])
    write_reports(report, tmp_path)
    assert "diverged" in (tmp_path / "report.md").read_text()


class _Broken(torch.nn.Module):
    """A model plugin whose forward pass fails."""

    def __init__(self, in_shape, n_classes, norm):
        super().__init__()
        self.head = torch.nn.Linear(1, n_classes)

    def forward(self, x):
        raise RuntimeError("this model is broken on purpose")


def test_a_failing_plugin_fails_its_cells_and_the_run_goes_on(tmp_path: Path, capsys) -> None:
    models.register("broken", _Broken)
    try:
        from harness.specs import Variant

        base = suites.get("quickstart").with_overrides(seeds=(0,), variants=("mlp-none",), epochs=1)
        suite = dataclasses.replace(base, variants=(*base.variants, Variant("broken-none", "broken", "none")))
        # a plugin registered in code exists in this process only: the serial executor
        summary = run(suite, tmp_path, device="cpu", executor="serial", progress=False)
    finally:
        models.unregister("broken")
    assert not summary.ok and summary.trained == 1
    assert any("broken-none" in where and "broken on purpose" in err for where, err in summary.failures)
    with Store(tmp_path, create=False) as store:
        failed = [c for c in store.cells("train") if c.status == "failed"]
    assert len(failed) == 1 and "RuntimeError" in (failed[0].error or "")
    res = to_json(build_report(tmp_path, n_resamples=100))
    assert any("broken-none" in x and "training failed" in x for x in res["excluded"])


def test_resuming_with_other_settings_is_refused(run_dir: Path) -> None:
    from harness.errors import ConfigError

    with pytest.raises(ConfigError, match="other settings for train") as err:
        run(reduced().with_overrides(epochs=3), run_dir, device="cpu", progress=False)
    assert "--seeds and --variants" in err.value.hint


@pytest.mark.slow
def test_adding_a_seed_reuses_the_finished_ones(run_dir: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    suite = reduced().with_overrides(seeds=(0, 1, 2), variants=("mlp-none", "mlp-layer"))
    summary = run(suite, copy, device="cpu", progress=False)
    assert summary.trained == 2 and summary.skipped == 2 * 2 * (1 + len(suite.conditions()))
    res = to_json(build_report(copy, n_resamples=100))
    assert res["seeds"] == [0, 1, 2] and {e["n_seeds"] for e in res["estimates"]} == {3}
    assert {e["variant"] for e in res["estimates"]} == {"mlp-none", "mlp-layer"}


@pytest.mark.slow
def test_batchnorm_test_time_modes_are_a_reported_factor(tmp_path: Path) -> None:
    base = suites.get("quickstart").with_overrides(seeds=(0,), variants=("mlp-none", "mlp-batch", "mlp-layer"),
                                                   epochs=1)
    suite = dataclasses.replace(base, evaluation=dataclasses.replace(
        base.evaluation, attacks=(), bn_modes=("frozen", "batch", "adapt")))
    assert run(suite, tmp_path, device="cpu", progress=False).ok
    report = build_report(tmp_path, n_resamples=100)
    write_reports(report, tmp_path)
    res = to_json(report)
    assert res["suite"]["bn_modes"] == ["frozen", "batch", "adapt"]
    mean = {(e["variant"], e["condition"]["params"].get("bn", "frozen")): e["value"] for e in res["estimates"]
            if e["condition"]["kind"] == "shift" and e["condition"]["name"] == "all"}
    for v in ("mlp-none", "mlp-layer"):  # no BatchNorm: the mode changes nothing
        assert mean[(v, "frozen")] == mean[(v, "batch")] == mean[(v, "adapt")]
    assert mean[("mlp-batch", "batch")] != mean[("mlp-batch", "frozen")]
    compared = {(c["variant"], c["condition"]["params"].get("bn", "frozen")) for c in res["comparisons"]
                if c["condition"]["kind"] == "shift" and c["condition"]["name"] == "all"}
    assert ("mlp-batch", "adapt") in compared and ("mlp-layer", "batch") in compared
    md = (tmp_path / "report.md").read_text()
    assert "## BatchNorm at test time" in md and "all shifts \\[adapt\\]" in md and "\\[BN batch\\]" in md


def test_calibration_is_reported_with_intervals_on_clean_and_shifted_inputs(run_dir: Path) -> None:
    import numpy as np

    from harness.metrics import expected_calibration_error

    res = json.loads((run_dir / "results.json").read_text())
    calib = [e for e in res["estimates"] if e["metric"] in ("ece", "nll", "brier")]
    kinds = {(e["condition"]["kind"], e["metric"]) for e in calib}
    assert kinds == {(k, m) for k in ("clean", "shift") for m in ("ece", "nll", "brier")}
    assert all(e["ci_low"] <= e["value"] <= e["ci_high"] for e in calib)
    # the reported ECE is the mean over seeds of each seed's ECE on its stored outcomes
    with Store(run_dir, create=False) as store:
        cells = [c for c in store.cells("eval") if c.variant == "cnn-batch" and c.condition["kind"] == "clean"]
    expected = np.mean([expected_calibration_error(c.arrays["confidence"], c.arrays["correct"]) for c in cells])
    got = next(e["value"] for e in calib if e["variant"] == "cnn-batch" and e["metric"] == "ece"
               and e["condition"]["kind"] == "clean")
    assert got == pytest.approx(expected, abs=1e-12)
    assert any(c["metric"] == "ece" for c in res["comparisons"])  # compared in-distribution
    assert not any(c["metric"] == "ece" and c["condition"]["kind"] == "shift" for c in res["comparisons"])
    bins = [b for b in res["reliability"] if b["variant"] == "cnn-batch" and b["condition"]["kind"] == "clean"]
    assert len(bins) == 1 and sum(bins[0]["count"]) == 2 * 450 and len(bins[0]["edges"]) == 16
    assert "## Calibration" in (run_dir / "report.md").read_text()


def test_corruption_error_is_reported_against_the_reference(run_dir: Path) -> None:
    res = json.loads((run_dir / "results.json").read_text())
    mce = {(e["variant"], e["metric"]): e for e in res["estimates"] if e["metric"] in ("mce", "relative_mce")}
    assert set(mce) == {(v, m) for v in VARIANTS for m in ("mce", "relative_mce")}
    for m in ("mce", "relative_mce"):
        for ref in ("cnn-none", "mlp-none"):
            assert mce[(ref, m)]["value"] == mce[(ref, m)]["ci_low"] == mce[(ref, m)]["ci_high"] == 1.0
        for v in ("cnn-batch", "mlp-layer"):
            assert mce[(v, m)]["ci_low"] <= mce[(v, m)]["value"] <= mce[(v, m)]["ci_high"]
    assert "## Corruption error" in (run_dir / "report.md").read_text()


def test_prerendered_corruptions_in_the_cifar_c_layout_are_scored(tmp_path: Path) -> None:
    import numpy as np

    from harness.data import digits, stratified_split
    from harness.registry import shifts
    from harness.seeding import torch_generator

    # a folder in the CIFAR-10-C layout: the quickstart's test digits under contrast, severities 1-5
    test = stratified_split(digits(), 0.25, 0.1, 0).test
    stack = [shifts.get("contrast")(torch.from_numpy(test.x), s, torch_generator(0, "c")).numpy() for s in range(1, 6)]
    folder = tmp_path / "digits-c"
    folder.mkdir()
    np.save(folder / "contrast.npy", np.round(np.concatenate(stack)[:, 0] * 255).astype(np.uint8))
    np.save(folder / "labels.npy", test.y)
    base = suites.get("quickstart").with_overrides(seeds=(0,), variants=("mlp-none",), epochs=1)
    suite = dataclasses.replace(base, evaluation=dataclasses.replace(
        base.evaluation, attacks=(), shifts=(), prerendered_dir=str(folder), prerendered_shifts=("contrast",)))
    assert run(suite, tmp_path / "run", device="cpu", executor="serial", progress=False).ok
    res = to_json(build_report(tmp_path / "run", n_resamples=100))
    acc = {e["condition"]["params"]["severity"]: e["value"] for e in res["estimates"]
           if e["condition"]["kind"] == "natural" and e["metric"] == "accuracy"}
    assert sorted(acc) == [1, 2, 3, 4, 5] and acc[5] < acc[1]
    write_reports(build_report(tmp_path / "run", n_resamples=100), tmp_path / "run")
    assert "contrast s5 (pre-rendered)" in (tmp_path / "run" / "report.md").read_text()


def test_terminal_columns_pick_the_telling_attack_strength(run_dir: Path) -> None:
    from harness.reports.content import compact_columns

    report = build_report(run_dir, n_resamples=100)
    titles = [c[0] for c in compact_columns(report)]
    assert titles[:3] == ["clean acc %", "shifted acc % (mean)", "AUROC faces"]
    worst = {r.condition.param("eps"): max(x.estimate.value for x in report.estimates
                                           if x.condition == r.condition and x.metric == "accuracy")
             for r in report.estimates if r.condition.name == "worst-case"}
    eps = max(e for e, best in worst.items() if best >= 0.2)
    assert titles[3] == f"worst attack eps {eps:g} %" and all(best < 0.2 for e, best in worst.items() if e > eps)


def test_benjamini_hochberg_is_an_option_of_the_report(run_dir: Path) -> None:
    from harness.errors import ConfigError

    holm, bh = (to_json(build_report(run_dir, n_resamples=100, adjust=a)) for a in ("holm", "bh"))
    assert {c["p_adjustment"] for c in bh["comparisons"]} == {"bh"}
    assert [c["p_value"] for c in bh["comparisons"]] == [c["p_value"] for c in holm["comparisons"]]
    assert all(b["p_adjusted"] <= h["p_adjusted"] + 1e-15 for b, h in zip(bh["comparisons"], holm["comparisons"],
                                                                          strict=True))
    assert "Benjamini-Hochberg-adjusted" in bh["methods"]["comparisons"]
    with pytest.raises(ConfigError, match="unknown p-value adjustment 'bonferroni'"):
        build_report(run_dir, adjust="bonferroni")
