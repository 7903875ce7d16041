"""The built-in suites end to end at their reduced size (what CI runs): every suite trains, is
evaluated on the whole battery (clean, shifted, OOD, attacks, sanity checks) and reported, and
every claim it declares gets a verdict from real comparisons. The full sizes are run on purpose
(their wall times are in the README)."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import registry as reg
from harness.reports.build import build_report
from harness.reports.claims import NOT_EVALUATED
from harness.reports.render import write_reports
from harness.reports.training import sweep_families
from harness.runner import run
from harness.tasks import task_of

pytestmark = pytest.mark.slow  # each test runs a suite at its reduced size, end to end

SIZED = [name for name in reg.suites.names() if any(z.name == "reduced" for z in reg.suites.get(name).sizes)]
NEEDS_DATA_ROOT = {"mnist", "mnist-train", "fashion-mnist", "fashion-mnist-train", "fashion-mnist-0-5",
                   "fashion-mnist-train-0-5", "fashion-mnist-6-9"}


def test_the_training_claim_suites_all_have_a_reduced_size() -> None:
    assert {"convergence", "transformer", "recurrent", "lr-stability", "batch-size", "cnn-norms",
            "diffusion"} <= set(SIZED)


def test_the_reproduction_suites_each_declare_a_published_result_and_a_reduced_size() -> None:
    repro = [n for n in reg.suites.names() if n.startswith("repro-")]
    assert set(repro) == {"repro-groupnorm", "repro-layernorm", "repro-bn-adapt", "repro-autoattack"}
    for name in repro:
        suite = reg.suites.get(name)
        assert suite.references and name in SIZED, name
        assert all(r.citation and r.differences for r in suite.references)


@pytest.mark.parametrize("name", reg.suites.names())
def test_every_reference_of_a_suite_names_its_variants_and_conditions(name: str) -> None:
    """A reference is judged by name: a misspelt variant or condition would make it "not comparable"
    in every run, so the full suite must declare each one (sizes may leave some out)."""
    suite = reg.suites.get(name)
    variants = {v.name for v in suite.variants}
    conditions = {c.key for c in suite.conditions()} | {"training"}
    conditions |= {f"shift:all{'' if m == 'frozen' else ':bn=' + m}" for m in suite.evaluation.bn_modes}
    for ref in suite.references:
        for e in ref.expected:
            assert {e.variant, e.other[0]} <= variants, (ref.citation, e.text())
            assert {e.condition, e.other[1]} <= conditions, (ref.citation, e.text())


@pytest.mark.parametrize("name", SIZED)
def test_a_suite_at_its_reduced_size_runs_reports_and_judges_every_claim(name: str, tmp_path: Path,
                                                                          request: pytest.FixtureRequest) -> None:
    suite = reg.suites.get(name).with_size("reduced")
    ev = suite.evaluation
    if {suite.dataset, suite.test_dataset, *ev.ood_sets} & NEEDS_DATA_ROOT:
        request.getfixturevalue("filled_root")  # skips, saying how to fill it, where the data root is empty
    if suite.task in ("text", "lm"):
        request.getfixturevalue("text_corpora")
    summary = run(suite, tmp_path / "run", device="cpu", progress=False)
    assert summary.ok, summary.failures
    assert summary.trained == len(suite.variants) * len(suite.seeds)
    report = build_report(summary.run_dir, n_resamples=300)
    paths = write_reports(report, summary.run_dir)
    assert paths["html"].exists() and paths["results"].exists()

    # every published result the suite echoes is set beside the run, whatever the outcome at this size
    assert [r.reference for r in report.references] == list(suite.references)
    assert all(r.agreement in ("agrees", "disagrees", "undecided", "not comparable") for r in report.references)
    if name.startswith("repro-"):  # a reproduction's battery is what its reference needs, not the whole battery
        return
    kinds = {r.condition.kind for r in report.estimates}
    declared = {c.kind for c in suite.conditions() if c.kind not in ("check", "sweep")}
    assert {"clean", "shift", "ood"} <= declared <= kinds, f"{name}: the battery is incomplete ({kinds})"
    # text attacks are not built yet; a language model's battery has none
    assert "attack" in declared or suite.task in ("text", "lm"), f"{name}: no attacks"
    denoise = suite.task == "denoise"
    if denoise:  # a denoiser: its loss and samples, none of a classifier's metrics, the checks of its PGD sweep
        assert "samples" in kinds
        # eps 0 gives the clean losses, every perturbation stays in its ball, the sweep keeps the worst input of
        # a smaller eps so the loss never falls; whether twice the steps raise the loss by under 2% is a
        # finding about the attack (0.5% on the reduced diffusion suite), so only that it was judged is asserted
        assert [(c.name, c.status) for c in report.checks[:3]] == [
            ("eps = 0 reproduces clean losses", "pass"), ("perturbations stay inside the eps-ball", "pass"),
            ("the loss never falls with eps", "pass")]
        assert [(c.name, c.status != "n/a") for c in report.checks[3:]] == [
            ("twice the steps of the attack raise the loss little", True)]
        assert {r.metric for r in report.estimates} == {"denoising_loss", "auroc", "fpr95", "aupr_in", "aupr_out",
                                                        "sample_fid", "class_tv", "membership_auroc",
                                                        "membership_tpr_1pct", "membership_tpr_01pct"}
    else:
        assert all(c.status in ("pass", "fail", "n/a") for c in report.checks)
        assert bool(report.checks) == bool(task_of(suite).checks), name  # every task with a battery runs it
    for t in report.training_summary:
        if t.n_seeds - t.diverged - t.failed:  # a finished run has every training measurement
            area = getattr(t, task_of(suite).style.area)  # a classifier's AULC, a denoiser's mean held-out loss
            assert area is not None and t.loss_roughness is not None and t.peak_memory_bytes is not None, t.variant
            assert (t.aulc is None and t.final_val_accuracy is None) if denoise else t.mean_val_loss is None
    judged = {v.claim.text: v.verdict for v in report.claims}  # type: ignore[union-attr]
    assert judged and NOT_EVALUATED not in judged.values(), judged
    if sweep_families(suite):  # two or more points of one family; a family's own recipe (spam's lr) is no sweep
        assert report.sweeps and all(w.points for w in report.sweeps)
        assert any(r.metric == "converged_fraction" for r in report.comparisons) or len(report.sweeps[0].points) < 2
