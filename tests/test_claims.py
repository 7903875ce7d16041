"""Verdicts on declared claims (harness.reports.claims) and the Claim spec's validation."""

from __future__ import annotations

import numpy as np
import pytest

from harness import stats
from harness.errors import ConfigError
from harness.reports.claims import CONTRADICTED, INCONCLUSIVE, NOT_EVALUATED, SUPPORTED, judge, row_verdict
from harness.reports.rows import ComparisonRow
from harness.specs import Claim, Condition


@pytest.mark.parametrize(
    ("direction", "low", "high", "p", "margin", "expected"),
    [
        ("lower", -3.0, -1.0, 0.01, 0.0, SUPPORTED),
        ("lower", -3.0, -1.0, 0.25, 0.0, INCONCLUSIVE),  # interval clear, but the seed-level test is not
        ("lower", 1.0, 3.0, 0.01, 0.0, CONTRADICTED),
        ("lower", -1.0, 1.0, 0.01, 0.0, INCONCLUSIVE),
        ("higher", 1.0, 3.0, 0.04, 0.0, SUPPORTED),
        ("higher", -3.0, -1.0, 0.04, 0.0, CONTRADICTED),
        ("not-higher", -0.05, 0.01, 0.5, 0.02, SUPPORTED),  # rules out more than 2 points better
        ("not-higher", -0.05, 0.03, 0.5, 0.02, INCONCLUSIVE),
        ("not-higher", 0.03, 0.06, 0.01, 0.02, CONTRADICTED),
        ("not-lower", -0.01, 0.05, 0.5, 0.02, SUPPORTED),
        ("not-lower", -0.06, -0.03, 0.01, 0.02, CONTRADICTED),
    ],
)
def test_row_verdict(direction: str, low: float, high: float, p: float, margin: float, expected: str) -> None:
    assert row_verdict(direction, low, high, p, 0.05, margin) == expected


def _row(variant: str, key: Condition | None, metric: str, low: float, high: float, p: float,
         spread: float = 1e-4) -> ComparisonRow:
    """A comparison row of three seeds whose per-seed differences have variance ``spread`` (the
    variance components of a training metric's comparison, harness.reports.training's)."""
    c = stats.Comparison((low + high) / 2, low, high, 0.95, p, "t", "sign-flip", 3, 100,
                         components=stats.Components(spread / 3, 0.0, 0.0, 3))
    return ComparisonRow(variant, variant.split("-")[0] + "-none", key, metric, c, p, (0, 1, 2))


NORMS = {"mlp-batch": "batch", "mlp-layer": "layer", "mlp-group": "group"}


def test_a_claim_is_judged_on_the_rows_it_matches() -> None:
    claim = Claim("batch and layer need fewer steps", "steps_to_target", "lower", norms=("batch", "layer"))
    rows = [_row("mlp-batch", None, "steps_to_target", -300, -100, 0.01),
            _row("mlp-layer", None, "steps_to_target", -250, -50, 0.02),
            _row("mlp-group", None, "steps_to_target", 50, 100, 0.01),  # group is not part of the claim
            _row("mlp-batch", Condition("clean"), "accuracy", 0.01, 0.02, 0.01)]
    v = judge(claim, rows, NORMS, 0.05)
    assert v.verdict == SUPPORTED and [e.variant for e in v.evidence] == ["mlp-batch", "mlp-layer"]
    rows[1] = _row("mlp-layer", None, "steps_to_target", 10, 50, 0.02)
    assert judge(claim, rows, NORMS, 0.05).verdict == CONTRADICTED


def test_inconclusive_says_how_many_seeds_would_settle_it() -> None:
    claim = Claim("robust", "accuracy", "higher", "attack:pgd-linf:eps=0.1*")
    rows = [_row("mlp-batch", Condition("attack", "pgd-linf", (("eps", 0.1), ("steps", 10))), "accuracy",
                 0.01, 0.05, 0.25),
            _row("mlp-batch", Condition("attack", "pgd-linf", (("eps", 0.2), ("steps", 10))), "accuracy",
                 -0.5, 0.5, 1.0)]
    # +3 points with a per-seed sd of 1 point: 4 seeds give the power (even for the test at
    # 0.05 / 2: (t_3(0.9875) 4.177 + t_3(0.8) 0.978) / sqrt(4) = 2.58 sds), but the rows' p-values
    # are Holm-adjusted over both rows, and 2 * 2 / 2**S < 0.05 needs 7 seeds
    v = judge(claim, rows, NORMS, 0.05)
    assert v.verdict == INCONCLUSIVE and len(v.evidence) == 1 and v.evidence[0].seeds_needed == 7
    assert v.reason == ("1 of 1 matching comparisons are inconclusive; about 7 seeds would settle it at the observed "
                        "differences (the fewest with which the exact sign-flip test can reach p < 0.05, "
                        "Holm-adjusted over 2 comparisons)")
    # judged alone, the floor is the unadjusted test's: 6 seeds
    alone = judge(claim, rows[:1], NORMS, 0.05)
    assert alone.evidence[0].seeds_needed == 6 and "can reach p < 0.05)" in alone.reason
    # power-bound: +1 point, one sd, needs 13 seeds: (t_{S-1}(0.9875) + t_{S-1}(0.8)) / sqrt(S) is
    # 1.0013 at 12 and 0.9520 at 13
    wide = _row("mlp-batch", Condition("attack", "pgd-linf", (("eps", 0.1), ("steps", 10))), "accuracy",
                0.0, 0.02, 0.25)
    v = judge(claim, [wide, rows[1]], NORMS, 0.05)
    assert v.evidence[0].seeds_needed == 13 and v.reason.endswith("about 13 seeds would settle it at the observed "
                                                                  "differences")


def test_free_text_and_unmatched_claims_are_not_evaluated() -> None:
    assert judge("layer norm is better", [], NORMS, 0.05).verdict == NOT_EVALUATED
    assert judge(Claim("x", "auroc", "higher", "ood:*"), [], NORMS, 0.05).verdict == NOT_EVALUATED
    assert judge("t", [], NORMS, 0.05).to_dict()["text"] == "t"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"direction": "smaller"}, "direction 'smaller'"),
        ({"metric": "accuracy_top5"}, "metric 'accuracy_top5'"),
        ({"metric": "accuracy", "condition": "training"}, "pairs metric 'accuracy' with condition 'training'"),
        ({"margin": -0.1}, "negative margin"),
    ],
)
def test_bad_claims_are_config_errors(kwargs: dict[str, object], message: str) -> None:
    spec = {"text": "t", "metric": "steps_to_target", "direction": "lower", **kwargs}
    with pytest.raises(ConfigError, match=message):
        Claim(**spec)  # type: ignore[arg-type]


def test_a_named_variant_without_a_comparison_keeps_a_claim_from_support() -> None:
    claim = Claim("batch and layer need fewer steps", "steps_to_target", "lower", norms=("batch", "layer"))
    rows = [_row("mlp-batch", None, "steps_to_target", -300, -100, 0.01)]
    v = judge(claim, rows, NORMS, 0.05, expected=("mlp-batch", "mlp-layer", "mlp-group"))
    assert v.verdict == INCONCLUSIVE
    assert "no comparison for mlp-layer" in v.reason and "finished without diverging" in v.reason


def test_seeds_to_settle_a_margin_claim_use_the_gap_to_the_margin() -> None:
    # the same difference and variance: deciding "not higher by more than 2 points" at +1 point
    # needs the interval resolved to the 1-point gap, a "higher" claim to the 1-point difference
    # itself; at +1.9 points the gap is 0.1 and needs far more seeds. A margin claim is supported by
    # its interval alone, so below the margin the sign-flip test's floor (6 seeds) does not apply;
    # beyond it (contradicting the claim) it does.
    comps = stats.Components(between=4e-5, examples=1e-5, interaction=1e-5, n_seeds=3, example_df=449)

    def row(diff: float) -> ComparisonRow:
        c = stats.Comparison(diff, diff - 0.03, diff + 0.03, 0.95, 0.25, "t", "sign-flip", 3, 450, components=comps)
        return ComparisonRow("mlp-batch", "mlp-none", Condition("clean"), "accuracy", c, 1.0, (0, 1, 2))

    def needed(claim: Claim, diff: float) -> int | None:
        return judge(claim, [row(diff)], NORMS, 0.05).evidence[0].seeds_needed

    margin = Claim("at most 2 points better", "accuracy", "not-higher", "clean", margin=0.02)
    higher = Claim("better", "accuracy", "higher", "clean")
    # (t + t) * sqrt(total at S seeds) first below 0.01 at 12 seeds, below 0.001 at 945
    assert needed(margin, 0.01) == 12 and needed(higher, 0.01) == 12 and needed(margin, 0.019) == 945
    # 7 points from the margin: 3 seeds resolve the interval; a p-value (the other side, or a
    # "higher" claim) needs 6
    assert needed(margin, -0.05) == 3 and needed(margin, 0.09) == 6 and needed(higher, 0.07) == 6
    not_lower = Claim("at most 2 points worse", "accuracy", "not-lower", "clean", margin=0.02)
    assert needed(not_lower, 0.05) == 3 and needed(not_lower, -0.09) == 6
    # without the variance components (a comparison made by hand) there is no estimate
    bare = ComparisonRow("mlp-batch", "mlp-none", Condition("clean"), "accuracy",
                         stats.Comparison(0.01, -0.02, 0.04, 0.95, 0.25, "t", "sign-flip", 3, 450), 1.0, (0, 1, 2))
    assert judge(higher, [bare], NORMS, 0.05).evidence[0].seeds_needed is None


def test_claims_adjust_their_p_values_as_one_family_not_the_whole_report() -> None:
    from harness.reports.claims import family_p_values, verdicts

    claim = Claim("batch and layer need fewer steps", "steps_to_target", "lower", norms=("batch", "layer"))
    # raw p 0.01 and 0.02; the report-wide adjustment over many comparisons made them 0.4 and 0.5
    rows = [_row("mlp-batch", None, "steps_to_target", -300, -100, 0.4),
            _row("mlp-layer", None, "steps_to_target", -250, -50, 0.5),
            _row("mlp-batch", Condition("clean"), "accuracy", 0.01, 0.02, 0.9)]
    rows = [ComparisonRow(r.variant, r.baseline, r.condition, r.metric,
                          stats.Comparison(r.comparison.diff, r.comparison.ci_low, r.comparison.ci_high, 0.95, raw,
                                           "t", "sign-flip", 3, 100), r.p_adjusted, r.seeds)
            for r, raw in zip(rows, (0.01, 0.02, 0.001), strict=True)]
    assert judge(claim, rows, NORMS, 0.05).verdict == INCONCLUSIVE  # on the report-wide p-values
    p = family_p_values((claim,), rows, NORMS, "holm")
    assert p == {0: pytest.approx(0.02), 1: pytest.approx(0.02)}  # Holm over the claim's two rows only
    (v,) = verdicts((claim,), rows, NORMS, 0.05)
    assert v.verdict == SUPPORTED and [e.p_adjusted for e in v.evidence] == [pytest.approx(0.02)] * 2
    assert family_p_values((claim,), rows, NORMS, "bh") == {0: pytest.approx(0.02), 1: pytest.approx(0.02)}
    assert family_p_values(("free text",), rows, NORMS) == {}


def _quickstart_rows(n_seeds: int) -> list[ComparisonRow]:
    """The quick start's 8 claim comparisons: steps to target of cnn and mlp with batch and layer
    against none, about 200 steps fewer over ``n_seeds`` seeds (made as harness.reports.training makes a
    training metric's comparison: t-interval and sign-flip test over the per-seed differences), and
    their worst-case accuracy at eps 0.1, 10 points lower."""
    from harness.reports.estimates import paired_seed_comparison

    rows = []
    steps_none = 400.0 + 10.0 * np.arange(n_seeds)
    for model in ("cnn", "mlp"):
        for norm in ("batch", "layer"):
            variant = f"{model}-{norm}"
            steps = steps_none - 200.0 + 20.0 * np.cos(np.arange(n_seeds))  # every seed faster by 180-220
            r = paired_seed_comparison(variant, f"{model}-none", None, "steps_to_target", list(range(n_seeds)),
                                       steps, steps_none, 0.95)
            rows.append(ComparisonRow(r.variant, r.baseline, None, r.metric, r.comparison, r.comparison.p_value,
                                      r.seeds, "lower"))
            worst = stats.Comparison(-0.1, -0.15, -0.05, 0.95, 0.25, "t", "sign-flip", n_seeds, 450,
                                     components=stats.Components(1e-4, 4e-4, 1e-4, n_seeds, 449.0))
            rows.append(ComparisonRow(variant, f"{model}-none", Condition("attack", "worst-case", (
                ("eps", 0.1), ("norm", "linf"))), "accuracy", worst, 0.25, tuple(range(n_seeds))))
    return rows


QUICKSTART_NORMS = {f"{m}-{n}": n for m in ("cnn", "mlp") for n in ("none", "batch", "layer")}


def test_the_quick_starts_steps_claim_needs_9_seeds_not_6() -> None:
    # Its report said about 6 seeds would settle "batch and layer reach 95% in fewer steps": at 6
    # the exact sign-flip test's smallest p, 2 / 2**6 = 0.031, Holm-adjusted over the claims' 8
    # comparisons, is 0.25. The difference is far beyond the seeds' spread, so the floor decides:
    # 8 * 2 / 2**S < 0.05 from 9 seeds (Benjamini-Hochberg, the claim's 4 rows all at that p: 8 / 4 * 2 / 2**S, 7).
    from harness.reports.claims import verdicts
    from harness.suites.quickstart import SUITE

    steps, robust = verdicts(SUITE.claims, _quickstart_rows(3), QUICKSTART_NORMS, 0.05)
    assert steps.verdict == INCONCLUSIVE and robust.verdict == SUPPORTED
    assert [e.seeds_needed for e in steps.evidence] == [9] * 4
    assert steps.reason == ("4 of 4 matching comparisons are inconclusive; about 9 seeds would settle it at the "
                            "observed differences (the fewest with which the exact sign-flip test can reach p < 0.05, "
                            "Holm-adjusted over 8 comparisons)")
    bh, _ = verdicts(SUITE.claims, _quickstart_rows(3), QUICKSTART_NORMS, 0.05, adjust="bh")
    assert [e.seeds_needed for e in bh.evidence] == [7] * 4
    assert "Benjamini-Hochberg-adjusted over 8 comparisons" in bh.reason
    # and those seeds do settle it, one fewer cannot
    for adjust, enough in (("holm", 9), ("bh", 7)):
        assert verdicts(SUITE.claims, _quickstart_rows(enough), QUICKSTART_NORMS, 0.05,
                        adjust=adjust)[0].verdict == SUPPORTED
        fewer = verdicts(SUITE.claims, _quickstart_rows(enough - 1), QUICKSTART_NORMS, 0.05, adjust=adjust)[0]
        assert fewer.verdict == INCONCLUSIVE and [e.seeds_needed for e in fewer.evidence] == [enough] * 4


def test_a_sweep_claim_needs_a_row_per_variant_family() -> None:
    # a sweep's rows are per family (the name before "@"), while expected lists every sweep point
    claim = Claim("normalization converges more often", "converged_fraction", "higher", "sweep:lr")
    expected = ("mlp-batch@lr=0.01", "mlp-batch@lr=0.1", "mlp-layer@lr=0.01", "mlp-layer@lr=0.1")
    rows = [_row("mlp-batch", Condition("sweep", "lr"), "converged_fraction", 0.2, 0.4, 0.01)]
    v = judge(claim, rows, NORMS, 0.05, expected=expected)
    assert v.verdict == INCONCLUSIVE
    assert v.reason == "all 1 matching comparisons support it; no comparison for mlp-layer"
    rows.append(_row("mlp-layer", Condition("sweep", "lr"), "converged_fraction", 0.1, 0.3, 0.02))
    v = judge(claim, rows, NORMS, 0.05, expected=expected)
    assert (v.verdict, v.reason) == (SUPPORTED, "all 2 matching comparisons support it")
    assert [e.variant for e in v.evidence] == ["mlp-batch", "mlp-layer"]


@pytest.mark.parametrize(("direction", "low", "high", "verdict"), [
    # an interval that reaches 0 does not exclude it, however small p is: inconclusive on either side
    ("lower", -1.0, 0.0, INCONCLUSIVE), ("lower", -1.0, -1e-9, SUPPORTED), ("lower", 0.0, 1.0, INCONCLUSIVE),
    ("lower", 1e-9, 1.0, CONTRADICTED), ("higher", 0.0, 1.0, INCONCLUSIVE), ("higher", 1e-9, 1.0, SUPPORTED),
    ("higher", -1.0, 0.0, INCONCLUSIVE), ("higher", -1.0, -1e-9, CONTRADICTED),
])
def test_an_interval_touching_zero_settles_nothing(direction: str, low: float, high: float, verdict: str) -> None:
    assert row_verdict(direction, low, high, p_adjusted=0.001, alpha=0.05) == verdict


def test_an_unmatched_claim_says_why_and_an_unknown_direction_names_it() -> None:
    v = judge(Claim("x", "auroc", "higher", "ood:*"), [], NORMS, 0.05)
    assert v.reason == "no comparison in this report matches the claim's metric, condition and norms"
    with pytest.raises(ValueError) as err:
        row_verdict("sideways", -1.0, 1.0, 0.5, 0.05)
    assert str(err.value) == "unknown claim direction 'sideways'"


def test_a_contradicted_claim_counts_its_contradicting_rows_and_its_record_names_every_field() -> None:
    claim = Claim("batch and layer need fewer steps", "steps_to_target", "lower", norms=("batch", "layer"),
                  variants=("mlp-*",))
    rows = [_row("mlp-batch", None, "steps_to_target", 10, 50, 0.01),
            _row("mlp-layer", None, "steps_to_target", -250, -50, 0.02)]
    v = judge(claim, rows, NORMS, 0.05)
    assert v.verdict == CONTRADICTED and v.reason == "1 of 2 matching comparisons contradict it"
    d = v.to_dict()
    assert set(d) == {"text", "metric", "direction", "condition", "norms", "margin", "variants", "verdict", "reason",
                      "evidence"}
    assert {k: d[k] for k in ("text", "metric", "direction", "condition", "norms", "margin", "variants")} == {
        "text": claim.text, "metric": "steps_to_target", "direction": "lower", "condition": "training",
        "norms": ["batch", "layer"], "margin": 0.0, "variants": ["mlp-*"]}
    free = judge("a sentence", [], NORMS, 0.05).to_dict()
    assert {k: free[k] for k in ("text", "metric", "direction")} == {"text": "a sentence", "metric": None,
                                                                      "direction": None}


def test_a_not_higher_claim_is_contradicted_only_when_the_whole_interval_lies_beyond_the_margin() -> None:
    # significant, but the interval reaches back below the margin: not settled either way
    assert row_verdict("not-higher", 0.01, 0.06, 0.001, 0.05, margin=0.02) == INCONCLUSIVE
    assert row_verdict("not-higher", 0.03, 0.06, 0.001, 0.05, margin=0.02) == CONTRADICTED
    assert row_verdict("not-higher", 0.03, 0.06, 0.2, 0.05, margin=0.02) == INCONCLUSIVE  # beyond it, not significant


def test_a_claims_evidence_names_its_condition_and_settles_on_the_claims_family_not_all_rows() -> None:
    from harness.reports.claims import _seeds_to_settle

    claim = Claim("batch is more accurate", "accuracy", "higher", "clean", norms=("batch",))
    rows = [_row("mlp-batch", Condition("clean"), "accuracy", -0.001, 0.003, 0.4, spread=4e-6),
            *[_row("mlp-group", Condition("clean"), "ece", -0.01, 0.01, 0.5) for _ in range(7)]]
    v = judge(claim, rows, NORMS, 0.05, p_family={0: 0.4, 1: 0.5})  # the claims' family: 2 rows of the 8
    (e,) = v.evidence
    assert e.condition == "clean" and e.verdict == INCONCLUSIVE
    # Holm over the claims' family of 2, not over the report's 8 rows
    assert e.seeds_needed == _seeds_to_settle(claim, rows[0], 0.05, 2.0)
    assert _seeds_to_settle(claim, rows[0], 0.05, 2.0) != _seeds_to_settle(claim, rows[0], 0.05, 8.0)


def test_a_training_claim_without_a_comparison_says_why_training_rows_may_be_missing() -> None:
    claim = Claim("batch and layer need fewer steps", "steps_to_target", "lower", norms=("batch", "layer"))
    v = judge(claim, [], NORMS, 0.05, expected=("mlp-batch", "mlp-layer"))
    assert v.verdict == NOT_EVALUATED
    assert v.reason == ("no comparison in this report matches the claim's metric, condition and norms; no comparison "
                        "for mlp-batch, mlp-layer (training metrics are compared over the seeds at which both "
                        "variants finished without diverging, at least two)")
