"""Published results beside a run (harness.reports.references), on a real SQLite store filled with
records of known content: each expected outcome's observed numbers must equal what can be computed
by hand, or what the report's own comparisons say for the same pair."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from harness.errors import ConfigError
from harness.reports.build import build_report
from harness.reports.render import to_json, to_markdown
from harness.specs import AttackSpec, EvalSpec, Expected, Reference, Suite, TrainSpec, Variant
from harness.store import Cell, Store

N, SEEDS = 300, (0, 1, 2, 3, 4, 5)  # six seeds: the sign-flip test's floor, 2 / 64, is below 0.05
CLEAN = {"kind": "clean", "name": "", "params": {}}
FGSM = {"kind": "attack", "name": "fgsm", "params": {"eps": 0.1}}
ATTACK_KEY = "attack:fgsm:eps=0.1"


def _ref(*expected: Expected, citation: str = "Someone et al. 2020") -> Reference:
    return Reference(citation, "a published setting", "a published finding", expected, "a smaller model")


REFERENCES = (
    _ref(Expected("accuracy", "mlp-batch", "higher", baseline="mlp-none"), citation="holds: batch more accurate"),
    _ref(Expected("accuracy", "mlp-batch", "lower", baseline="mlp-none"), citation="fails: batch less accurate"),
    _ref(Expected("accuracy", "mlp-batch", "not-lower", baseline="mlp-none", margin=0.01),
         Expected("accuracy", "mlp-none", "higher", baseline_condition=ATTACK_KEY),
         citation="holds: a margin and a cross-condition contrast"),
    _ref(Expected("accuracy", "mlp-none", "about", value=0.8, margin=0.05), citation="holds: a value"),
    _ref(Expected("accuracy", "mlp-none", "about", value=0.3, margin=0.05), citation="fails: a value"),
    _ref(Expected("accuracy", "mlp-noise", "higher", baseline="mlp-none"), citation="undecided: noise"),
    _ref(Expected("accuracy", "mlp-noise", "not-lower", baseline="mlp-none", margin=0.2),
         citation="holds: a margin against noise"),
    _ref(Expected("accuracy", "mlp-batch", "higher", "shift:gaussian-noise:severity=3", baseline="mlp-none"),
         citation="not comparable: no such condition"),
)


def _suite() -> Suite:
    variants = tuple(Variant(n, "mlp", n.split("-")[1] if n != "mlp-noise" else "layer")
                     for n in ("mlp-none", "mlp-batch", "mlp-noise"))
    return Suite("refs", "0.1", "references", "digits", variants, SEEDS, TrainSpec(),
                 EvalSpec(shifts=(), ood_sets=(), attacks=(AttackSpec("fgsm", (0.1,)),), checks=False),
                 references=REFERENCES)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[tuple[str, str, int], np.ndarray]]:
    """mlp-batch fixes some of mlp-none's errors on every seed and never adds one; mlp-noise differs
    from mlp-none by chance; the attack turns some of mlp-none's correct answers wrong."""
    rng = np.random.default_rng(1)
    run_dir = tmp_path_factory.mktemp("refs")
    truth = {}
    with Store(run_dir) as store:
        store.put_meta("suite", _suite().to_dict())
        store.put_meta("provenance", {"harness": "test", "command": ["pytest"]})
        for seed in SEEDS:
            base = rng.random(N) < 0.8
            arrays = {"mlp-none": base, "mlp-batch": base | (rng.random(N) < 0.4),
                      "mlp-noise": np.where(rng.random(N) < 0.2, rng.random(N) < 0.8, base)}
            for variant, correct in arrays.items():
                truth[(variant, "clean", seed)] = correct
                attacked = correct & (rng.random(N) < 0.6)
                truth[(variant, ATTACK_KEY, seed)] = attacked
                store.put(Cell(f"t-{variant}-{seed}", "train", variant, seed, {}, {
                    "n_steps": 100, "steps_to_target": 50, "seconds_to_target": 0.1, "seconds_per_step": 0.001,
                    "train_seconds": 0.1, "diverged": False, "diverged_at": None, "final_val_accuracy": 0.9}))
                for cond, values in ((CLEAN, correct), (FGSM, attacked)):
                    extra = {"linf": np.full(N, 0.1, np.float32)} if cond is FGSM else {}  # the perturbations' size
                    store.put(Cell(f"e-{variant}-{seed}-{cond['kind']}", "eval", variant, seed, {}, {},
                                   condition=cond, arrays={"correct": values.astype(bool), **extra}))
    return run_dir, truth


def _by_citation(report):  # type: ignore[no-untyped-def]
    return {r.reference.citation: r for r in report.references}


def test_each_reference_gets_the_agreement_its_records_imply(run) -> None:  # type: ignore[no-untyped-def]
    report = build_report(run[0], n_resamples=500)
    got = {c: r.agreement for c, r in _by_citation(report).items()}
    assert got == {c: {"holds": "agrees", "fails": "disagrees", "undecided": "undecided",
                       "not comparable": "not comparable"}[c.split(":")[0]] for c in got}
    missing = _by_citation(report)["not comparable: no such condition"]
    assert "no condition 'shift:gaussian-noise:severity=3'" in missing.reason


def test_a_contrast_equals_the_reports_own_comparison_of_the_pair_and_the_hand_computed_mean(run) -> None:  # type: ignore[no-untyped-def]
    run_dir, truth = run
    report = build_report(run_dir, n_resamples=500)
    observed = _by_citation(report)["holds: batch more accurate"].observed[0]
    row = next(r for r in report.comparisons if r.variant == "mlp-batch" and r.metric == "accuracy"
               and r.condition is not None and r.condition.key == "clean")
    c = row.comparison
    assert (observed.value, observed.ci_low, observed.ci_high) == (c.diff, c.ci_low, c.ci_high)
    by_hand = np.mean([truth[("mlp-batch", "clean", s)].mean() - truth[("mlp-none", "clean", s)].mean()
                       for s in SEEDS])
    assert observed.value == pytest.approx(by_hand, abs=1e-12) and observed.n_seeds == len(SEEDS)
    # every seed's difference is positive: the one-sided floor, half the two-sided p of the comparison
    assert observed.p_value == pytest.approx(1 / 2 ** len(SEEDS)) == pytest.approx(c.p_value / 2)


def test_a_contrast_across_conditions_pairs_one_variant_with_itself(run) -> None:  # type: ignore[no-untyped-def]
    run_dir, truth = run
    report = build_report(run_dir, n_resamples=500)
    observed = _by_citation(report)["holds: a margin and a cross-condition contrast"].observed[1]
    by_hand = np.mean([truth[("mlp-none", "clean", s)].mean() - truth[("mlp-none", ATTACK_KEY, s)].mean()
                       for s in SEEDS])
    assert observed.status == "holds" and observed.value == pytest.approx(by_hand, abs=1e-12)
    assert observed.ci_low > 0 and observed.ci_low < by_hand < observed.ci_high


def test_a_margin_contrast_is_tested_against_its_margin_not_against_zero(run) -> None:  # type: ignore[no-untyped-def]
    """mlp-noise and mlp-none differ by chance around 0: "not lower by more than 0.2" holds, as every
    seed's difference lies far above -0.2 and the one-sided test against the margin reaches its floor,
    where a test of a difference from 0 could support nothing."""
    run_dir, truth = run
    observed = _by_citation(build_report(run_dir, n_resamples=300))["holds: a margin against noise"].observed[0]
    d = [truth[("mlp-noise", "clean", s)].mean() - truth[("mlp-none", "clean", s)].mean() for s in SEEDS]
    assert min(d) > -0.2 and min(d) < 0 < max(d) and observed.status == "holds"
    assert observed.p_value == pytest.approx(1 / 2 ** len(SEEDS))


def test_a_value_holds_within_its_tolerance_and_fails_outside_it(run) -> None:  # type: ignore[no-untyped-def]
    run_dir, truth = run
    report = build_report(run_dir, n_resamples=500)
    near = _by_citation(report)["holds: a value"].observed[0]
    far = _by_citation(report)["fails: a value"].observed[0]
    mean = np.mean([truth[("mlp-none", "clean", s)].mean() for s in SEEDS])
    assert near.value == far.value == pytest.approx(mean, abs=1e-12) and near.p_value is None
    assert abs(near.value - 0.8) <= 0.05 and (near.status, far.status) == ("holds", "fails")
    assert far.ci_low > 0.35  # the whole interval lies above the band 0.3 +- 0.05


def test_results_json_and_the_report_carry_the_references(run) -> None:  # type: ignore[no-untyped-def]
    jsonschema = pytest.importorskip("jsonschema")
    report = build_report(run[0], n_resamples=300)
    out = to_json(report)
    schema = json.loads((Path(__file__).parents[1] / "reports" / "schema" / "results-v4.schema.json").read_text())
    jsonschema.validate(out, schema)
    refs = out["references"]
    assert [r["citation"] for r in refs] == [r.citation for r in REFERENCES]
    assert {"citation", "expected", "observed", "agreement"} <= refs[0].keys()
    assert refs[0]["observed"][0]["status"] == "holds" and refs[0]["expected"][0]["baseline"] == "mlp-none"
    md = to_markdown(report)
    assert "## Published results" in md and "fails: a value" in md and "a smaller model" in md


@pytest.mark.parametrize(("kw", "message"), [
    ({"direction": "sideways"}, "direction 'sideways'"),
    ({"direction": "about"}, "expects a value"),
    ({"direction": "about", "value": 0.5, "baseline": "b"}, "also names a baseline"),
    ({"direction": "higher"}, "contrast with nothing to compare"),
    ({"direction": "higher", "baseline": "b", "value": 0.5}, "gives a value with direction 'higher'"),
    ({"direction": "higher", "baseline": "b", "margin": -1}, "negative margin"),
    ({"direction": "higher", "baseline": "b", "metric": "acuracy"}, "acuracy"),
    ({"direction": "about", "value": 3.0, "condition": "training", "metric": "steps_to_target"},
     "values of training metrics are not supported yet"),
])
def test_bad_expected_outcomes_fail_with_a_hint(kw: dict, message: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(ConfigError, match=message):
        Expected(**{"metric": "accuracy", "variant": "a", **kw})


def test_a_reference_to_a_variant_the_run_lacks_is_not_comparable_and_says_which(run) -> None:  # type: ignore[no-untyped-def]
    from harness.reports.references import RunData, judge

    report = build_report(run[0], n_resamples=300)
    data = RunData(("mlp-none", "mlp-batch"), {}, report.estimates, {}, {}, SEEDS, 0.95, "auto")
    result = judge(_ref(Expected("accuracy", "mlp-batch", "higher", baseline="mlp-nne")), data)
    assert result.agreement == "not comparable" and "the run has no variant 'mlp-nne'" in result.reason
