"""Verdicts on declared claims (reports.claims) and the Claim spec's validation."""

from __future__ import annotations

import pytest

from harness import stats
from harness.errors import ConfigError
from harness.specs import Claim, Condition
from reports.build import ComparisonRow
from reports.claims import CONTRADICTED, INCONCLUSIVE, NOT_EVALUATED, SUPPORTED, judge, row_verdict


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
         needed: int | None = 6) -> ComparisonRow:
    c = stats.Comparison((low + high) / 2, low, high, 0.95, p, "t", "sign-flip", 3, 100, seeds_needed=needed)
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
                 0.01, 0.05, 0.25, needed=8),
            _row("mlp-batch", Condition("attack", "pgd-linf", (("eps", 0.2), ("steps", 10))), "accuracy",
                 -0.5, 0.5, 1.0)]
    v = judge(claim, rows, NORMS, 0.05)
    assert v.verdict == INCONCLUSIVE and len(v.evidence) == 1 and "about 8 seeds" in v.reason


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
    # itself; at +1.9 points the gap is 0.1 and needs far more seeds
    from harness.stats import Components

    comps = Components(between=4e-5, examples=1e-5, interaction=1e-5, n_seeds=3, example_df=449)

    def row(diff: float) -> ComparisonRow:
        c = stats.Comparison(diff, diff - 0.03, diff + 0.03, 0.95, 0.25, "t", "sign-flip", 3, 450, components=comps)
        return ComparisonRow("mlp-batch", "mlp-none", Condition("clean"), "accuracy", c, 1.0, (0, 1, 2))

    margin = Claim("at most 2 points better", "accuracy", "not-higher", "clean", margin=0.02)
    near = judge(margin, [row(0.01)], NORMS, 0.05).evidence[0].seeds_needed
    close = judge(margin, [row(0.019)], NORMS, 0.05).evidence[0].seeds_needed
    assert near is not None and (close is None or close > near)
    assert near == stats.seeds_needed(0.01, comps)


def test_claims_adjust_their_p_values_as_one_family_not_the_whole_report() -> None:
    from reports.claims import family_p_values, verdicts

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
