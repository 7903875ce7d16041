"""Verdicts on declared claims (harness.reports.claims) and the Claim spec's validation."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from harness import stats
from harness.errors import ConfigError
from harness.reports.claims import (
    CLAIMED,
    CONTRADICTED,
    INCONCLUSIVE,
    NOT_EVALUATED,
    OPPOSITE,
    SUPPORTED,
    Verdict,
    family_tests,
    judge,
    row_verdict,
    verdicts,
)
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
        # a margin row's p is its one-sided test against the margin: the interval alone no longer supports it
        ("not-higher", -0.05, 0.01, 0.01, 0.02, SUPPORTED),  # rules out more than 2 points better
        ("not-higher", -0.05, 0.01, 0.5, 0.02, INCONCLUSIVE),  # the interval does, the test does not
        ("not-higher", -0.05, 0.03, 0.01, 0.02, INCONCLUSIVE),
        ("not-higher", 0.03, 0.06, 0.01, 0.02, CONTRADICTED),
        ("not-lower", -0.01, 0.05, 0.01, 0.02, SUPPORTED),
        ("not-lower", -0.01, 0.05, 0.5, 0.02, INCONCLUSIVE),
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
CLEAN = Condition("clean")


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
    # 0.05 / 2: (t_3(0.9875) 4.177 + t_3(0.8) 0.978) / sqrt(4) = 2.58 sds), but in a family with a
    # second claim on the eps 0.2 row the 4 one-sided tests are Holm-adjusted together, and
    # 4 * 1 / 2**S < 0.05 (2 * 2 / 2**S in two-sided terms) needs 7 seeds
    other = Claim("robust at 0.2", "accuracy", "higher", "attack:pgd-linf:eps=0.2*")
    v = verdicts((claim, other), rows, NORMS, 0.05)[0]
    assert v.verdict == INCONCLUSIVE and len(v.evidence) == 1 and v.evidence[0].seeds_needed == 7
    assert v.reason == ("1 of 1 matching comparisons are inconclusive; about 7 seeds would settle it at the observed "
                        "differences (the fewest with which the exact sign-flip test can reach p < 0.05, "
                        "Holm-adjusted over 4 one-sided tests)")
    # judged alone, its two one-sided tests: 2 / 2**S < 0.05 from 6 seeds
    alone = judge(claim, rows, NORMS, 0.05)
    assert alone.evidence[0].seeds_needed == 6 and "can reach p < 0.05)" in alone.reason
    # power-bound: +1 point, one sd, needs 13 seeds: (t_{S-1}(0.9875) + t_{S-1}(0.8)) / sqrt(S) is
    # 1.0013 at 12 and 0.9520 at 13
    wide = _row("mlp-batch", Condition("attack", "pgd-linf", (("eps", 0.1), ("steps", 10))), "accuracy",
                0.0, 0.02, 0.25)
    v = verdicts((claim, other), [wide, rows[1]], NORMS, 0.05)[0]
    assert v.evidence[0].seeds_needed == 13 and v.reason.endswith("about 13 seeds would settle it at the observed "
                                                                  "differences")
    # +0.5 points with the same spread needs more than 5 times the run's 3 seeds: the reason says a run of
    # affordable size will not settle it, rather than leave a number of seeds as if it were the next step
    near = _row("mlp-batch", Condition("attack", "pgd-linf", (("eps", 0.1), ("steps", 10))), "accuracy",
                -0.005, 0.015, 0.25)
    v = verdicts((claim, other), [near, rows[1]], NORMS, 0.05)[0]
    assert v.evidence[0].seeds_needed is not None and v.evidence[0].seeds_needed > 15
    assert v.reason.endswith("more than 5 times this run's seeds, because the observed difference sits close to the "
                             "claim's boundary for how much it varies between seeds; a run of affordable size will "
                             "not settle it")


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


def test_seeds_to_settle_a_margin_claim_use_the_gap_to_the_margin_and_its_one_sided_test() -> None:
    # the same difference and variance: deciding "not higher by more than 2 points" at +1 point
    # needs the interval resolved to the 1-point gap, a "higher" claim to the 1-point difference
    # itself; at +1.9 points the gap is 0.1 and needs far more seeds. Either side of the margin, the
    # margin's one-sided test must reach alpha too: its floor 1 / 2**S, times its 2 tests, from 6 seeds.
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
    # 7 points from the margin: 3 seeds would resolve the interval, the one-sided test needs 6, on either side
    assert needed(margin, -0.05) == 6 and needed(margin, 0.09) == 6 and needed(higher, 0.07) == 6
    not_lower = Claim("at most 2 points worse", "accuracy", "not-lower", "clean", margin=0.02)
    assert needed(not_lower, 0.05) == 6 and needed(not_lower, -0.09) == 6
    # without the variance components (a comparison made by hand) there is no estimate
    bare = ComparisonRow("mlp-batch", "mlp-none", Condition("clean"), "accuracy",
                         stats.Comparison(0.01, -0.02, 0.04, 0.95, 0.25, "t", "sign-flip", 3, 450), 1.0, (0, 1, 2))
    assert judge(higher, [bare], NORMS, 0.05).evidence[0].seeds_needed is None


def test_claims_adjust_their_one_sided_tests_as_one_family_not_the_whole_report() -> None:
    claim = Claim("batch and layer need fewer steps", "steps_to_target", "lower", norms=("batch", "layer"))
    # raw two-sided p 0.01 and 0.02; the report-wide adjustment over many comparisons made them 0.4 and 0.5
    rows = [_row("mlp-batch", None, "steps_to_target", -300, -100, 0.4),
            _row("mlp-layer", None, "steps_to_target", -250, -50, 0.5),
            _row("mlp-batch", Condition("clean"), "accuracy", 0.01, 0.02, 0.9)]
    rows = [ComparisonRow(r.variant, r.baseline, r.condition, r.metric,
                          stats.Comparison(r.comparison.diff, r.comparison.ci_low, r.comparison.ci_high, 0.95, raw,
                                           "t", "sign-flip", 3, 100), r.p_adjusted, r.seeds)
            for r, raw in zip(rows, (0.01, 0.02, 0.001), strict=True)]
    # without per-seed differences, a row's one-sided p on its estimate's side is half its two-sided p
    tests = family_tests((claim,), rows, NORMS, 0.05)
    assert tests.size == 4 and sorted(tests.raw.values()) == [0.005, 0.01, 1.0, 1.0]
    # Holm over the claim's 4 one-sided tests only (not the report's other row): 0.02 and 0.03
    assert sorted(p for p in (tests.adjusted or {}).values() if p < 1) == [pytest.approx(0.02), pytest.approx(0.03)]
    (v,) = verdicts((claim,), rows, NORMS, 0.05)
    assert v.verdict == SUPPORTED and [e.p_adjusted for e in v.evidence] == [pytest.approx(0.02), pytest.approx(0.03)]
    assert [e.p_value for e in v.evidence] == [0.005, 0.01] and {e.side for e in v.evidence} == {CLAIMED}
    bh = family_tests((claim,), rows, NORMS, 0.05, "bh")
    assert sorted(p for p in (bh.adjusted or {}).values() if p < 1) == [pytest.approx(0.02), pytest.approx(0.02)]
    assert family_tests(("free text",), rows, NORMS, 0.05).size == 0


def _quickstart_rows(n_seeds: int, robust: float = -0.1) -> tuple[list[ComparisonRow], list[tuple[tuple[int, ...],
                                                                                          np.ndarray]]]:
    """The quick start's 8 claim comparisons and their per-seed differences: steps to target of cnn and
    mlp with batch and layer against none, about 200 steps fewer over ``n_seeds`` seeds, and their
    worst-case accuracy at eps 0.1, ``robust`` lower (both made as harness.reports.training makes a
    per-seed comparison: t-interval and sign-flip test over the per-seed differences)."""
    from harness.reports.estimates import paired_seed_comparison

    rows, per_seed = [], []
    steps_none = 400.0 + 10.0 * np.arange(n_seeds)
    acc_none = 0.5 + 0.01 * np.sin(np.arange(n_seeds))
    worst = Condition("attack", "worst-case", (("eps", 0.1), ("norm", "linf")))
    for model in ("cnn", "mlp"):
        for norm in ("batch", "layer"):
            variant = f"{model}-{norm}"
            steps = steps_none - 200.0 + 20.0 * np.cos(np.arange(n_seeds))  # every seed faster by 180-220
            acc = acc_none + robust + 0.01 * np.cos(np.arange(n_seeds))
            for condition, metric, a, b in ((None, "steps_to_target", steps, steps_none),
                                            (worst, "accuracy", acc, acc_none)):
                r = paired_seed_comparison(variant, f"{model}-none", condition, metric, list(range(n_seeds)), a, b,
                                           0.95)
                rows.append(ComparisonRow(r.variant, r.baseline, condition, r.metric, r.comparison,
                                          r.comparison.p_value, r.seeds))
                per_seed.append((r.seeds, r.a - r.b))
    return rows, per_seed


QUICKSTART_NORMS = {f"{m}-{n}": n for m in ("cnn", "mlp") for n in ("none", "batch", "layer")}


def _quickstart(n_seeds: int, adjust: str = "holm", robust: float = -0.1) -> tuple[Verdict, ...]:
    from harness.suites.quickstart import SUITE

    rows, per_seed = _quickstart_rows(n_seeds, robust)
    # its first two claims, whose 8 comparisons these rows are (the membership and energy claims, added later,
    # bring 8 more to a run's family: harness show quickstart says 10 seeds then)
    return verdicts(SUITE.claims[:2], rows, QUICKSTART_NORMS, 0.05, adjust=adjust, per_seed=per_seed)


def test_the_quick_starts_claims_need_9_seeds_not_6() -> None:
    # Its report said about 6 seeds would settle "batch and layer reach 95% in fewer steps": at 6
    # the exact sign-flip test's smallest p, Holm-adjusted over the claims' 8 comparisons, is far
    # above 0.05. The differences are far beyond the seeds' spread, so the floor decides: 16 one-sided
    # tests, 16 / 2**S < 0.05 (8 * 2 / 2**S in two-sided terms) from 9 seeds (Benjamini-Hochberg, the
    # claim's 4 rows all at that p: 16 / 4 / 2**S, 7). The margin claim ("no more than 2 points more
    # robust", every seed 10 points less) is tested against its margin the same way: 9 seeds too.
    steps, robust = _quickstart(3)
    assert steps.verdict == INCONCLUSIVE and robust.verdict == INCONCLUSIVE
    assert [e.seeds_needed for e in steps.evidence + robust.evidence] == [9] * 8
    assert steps.reason == ("4 of 4 matching comparisons are inconclusive; about 9 seeds would settle it at the "
                            "observed differences (the fewest with which the exact sign-flip test can reach p < 0.05, "
                            "Holm-adjusted over 16 one-sided tests)")
    # the margin rows' p is their own test against the margin: 1 / 2**3 at 3 seeds, not the test of 0
    assert [e.p_value for e in robust.evidence] == [1 / 8] * 4 and {e.boundary for e in robust.evidence} == {0.02}
    bh, _ = _quickstart(3, "bh")
    assert [e.seeds_needed for e in bh.evidence] == [7] * 4
    assert "Benjamini-Hochberg-adjusted over 16 one-sided tests" in bh.reason
    # and those seeds do settle both claims, one fewer cannot
    assert [v.verdict for v in _quickstart(9)] == [SUPPORTED, SUPPORTED]
    fewer = _quickstart(8)
    assert [v.verdict for v in fewer] == [INCONCLUSIVE] * 2 and [e.seeds_needed for e in fewer[0].evidence] == [9] * 4
    # Benjamini-Hochberg's count assumes only the claim's own rows reach the floor: with the margin rows
    # at their margin (no evidence either way) 7 seeds settle the steps claim and 6 do not (with the margin
    # rows at the floor too, 16 / 8 / 2**S would settle it at 6: the count is an upper bound)
    assert _quickstart(7, "bh", robust=0.02)[0].verdict == SUPPORTED
    fewer = _quickstart(6, "bh", robust=0.02)
    assert fewer[0].verdict == INCONCLUSIVE and [e.seeds_needed for e in fewer[0].evidence] == [7] * 4
    # a margin row beyond the margin on every seed is contradicted, by the other side's test
    _, beyond = _quickstart(9, robust=0.1)
    assert beyond.verdict == CONTRADICTED and {e.side for e in beyond.evidence} == {OPPOSITE}
    assert all(e.p_adjusted is not None and e.p_adjusted < 0.05 for e in beyond.evidence)


def test_no_seeds_to_settle_is_below_the_floor_of_the_quick_starts_family() -> None:
    # whatever the differences, a number of seeds S told to a row is one at which the exact test can
    # reach alpha after the family's adjustment: factor * 2 / 2**S < alpha with factor 8 (Holm over 16
    # one-sided tests), and with it the floor's seeds settle rows as clear as these (above)
    rng = np.random.default_rng(3)
    told = set()
    for _ in range(40):
        n_seeds = int(rng.integers(3, 9))
        rows, per_seed = _quickstart_rows(n_seeds, robust=float(rng.uniform(-0.2, 0.1)))
        rows = [dataclasses.replace(r, comparison=dataclasses.replace(
            r.comparison, components=dataclasses.replace(r.comparison.components,  # type: ignore[arg-type]
                                                         between=r.comparison.components.between  # type: ignore[union-attr]
                                                         * float(rng.uniform(0.1, 50)))))
                for r in rows]
        from harness.suites.quickstart import SUITE

        for v in verdicts(SUITE.claims, rows, QUICKSTART_NORMS, 0.05, per_seed=per_seed):
            for e in v.evidence:
                if e.seeds_needed is not None:
                    told.add(e.seeds_needed)
                    assert 8 * stats.min_attainable_p(e.seeds_needed) < 0.05, e
    assert min(told) == 9 and max(told) > 9  # the floor binds for some rows, the power for others


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
                      "caveat", "evidence"}
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
    (v,) = verdicts((claim,), rows, NORMS, 0.05)  # the claims' family: the 2 one-sided tests of 1 row of the 8
    (e,) = v.evidence
    assert e.condition == "clean" and e.verdict == INCONCLUSIVE
    # Holm over the claims' family (2 one-sided tests: factor 1 in two-sided terms), not over the report's 8 rows
    assert e.seeds_needed == _seeds_to_settle(claim, rows[0], 0.05, 1.0)
    assert _seeds_to_settle(claim, rows[0], 0.05, 1.0) != _seeds_to_settle(claim, rows[0], 0.05, 8.0)


def test_a_training_claim_without_a_comparison_says_why_training_rows_may_be_missing() -> None:
    claim = Claim("batch and layer need fewer steps", "steps_to_target", "lower", norms=("batch", "layer"))
    v = judge(claim, [], NORMS, 0.05, expected=("mlp-batch", "mlp-layer"))
    assert v.verdict == NOT_EVALUATED
    assert v.reason == ("no comparison in this report matches the claim's metric, condition and norms; no comparison "
                        "for mlp-batch, mlp-layer (training metrics are compared over the seeds at which both "
                        "variants finished without diverging, at least two)")


# --- one rule: margins tested against the margin, p beside every verdict, caveats on the verdict row -----


def _rows_from(diffs: dict[str, np.ndarray], metric: str = "accuracy", condition: Condition | None = CLEAN
               ) -> tuple[list[ComparisonRow], list[tuple[tuple[int, ...], np.ndarray]]]:
    """Comparison rows of per-seed differences (variant minus its "-none" baseline), made as a per-seed
    comparison is made (t-interval, sign-flip test), with their per-seed data."""
    from harness.reports.estimates import paired_seed_comparison

    rows, per_seed = [], []
    for variant, d in diffs.items():
        base = np.full(d.size, 0.5)
        r = paired_seed_comparison(variant, variant.split("-")[0] + "-none", condition, metric,
                                   list(range(d.size)), base + d, base, 0.95)
        rows.append(ComparisonRow(r.variant, r.baseline, condition, metric, r.comparison, r.comparison.p_value,
                                  r.seeds))
        per_seed.append((r.seeds, r.a - r.b))
    return rows, per_seed


def test_a_margin_claim_is_tested_against_its_margin_and_never_supported_beside_an_adjusted_p_of_1() -> None:
    # differences within half a point of 0 on 6 seeds: the test of "no difference" finds nothing (two-sided
    # p 1), while "not more than 2 points higher" is shown on every seed: one-sided p 1 / 64 against the
    # margin, 2 / 64 after Holm over the row's two one-sided tests
    rows, per_seed = _rows_from({"mlp-batch": np.array([0.005, -0.005, 0.004, -0.004, 0.003, -0.003])})
    assert rows[0].comparison.p_value == 1.0
    claim = Claim("at most 2 points better", "accuracy", "not-higher", "clean", margin=0.02)
    (v,) = verdicts((claim,), rows, NORMS, 0.05, per_seed=per_seed)
    (e,) = v.evidence
    assert (v.verdict, e.side, e.boundary, e.p_value) == (SUPPORTED, CLAIMED, 0.02, 1 / 64)
    assert e.p_adjusted == pytest.approx(2 / 64)
    # with 4 seeds the interval still lies below the margin, but the test cannot reach 0.05 (2 / 16):
    # inconclusive, with the seeds its test needs
    rows, per_seed = _rows_from({"mlp-batch": np.array([0.005, -0.005, 0.004, -0.004])})
    (v,) = verdicts((claim,), rows, NORMS, 0.05, per_seed=per_seed)
    assert v.evidence[0].ci_high < 0.02 and v.verdict == INCONCLUSIVE and v.evidence[0].seeds_needed == 6


@pytest.mark.parametrize("direction", ["lower", "higher", "not-higher", "not-lower"])
def test_every_settled_row_shows_the_adjusted_p_its_verdict_rests_on_below_alpha(direction: str) -> None:
    rng = np.random.default_rng(len(direction))
    claim = Claim("c", "accuracy", direction, "clean", margin=0.0 if direction in ("lower", "higher") else 0.02)
    seen = set()
    for _ in range(150):
        n = int(rng.integers(2, 10))
        diffs = {v: rng.normal(rng.uniform(-0.06, 0.06), rng.uniform(0.001, 0.03), n)
                 for v in ("mlp-batch", "mlp-layer")}
        rows, per_seed = _rows_from(diffs)
        for e in verdicts((claim,), rows, NORMS, 0.05, per_seed=per_seed)[0].evidence:
            seen.add(e.verdict)
            assert e.p_adjusted is not None and e.p_value <= e.p_adjusted <= 1
            if e.verdict != INCONCLUSIVE:
                assert e.p_adjusted < 0.05 and e.side == (CLAIMED if e.verdict == SUPPORTED else OPPOSITE)
                assert e.n_seeds >= 6  # 2 * 1 / 2**S < 0.05 at the least
    assert seen == {SUPPORTED, CONTRADICTED, INCONCLUSIVE}


def test_one_seed_never_settles_a_claim_and_a_verdict_on_a_caveated_row_says_so() -> None:
    claim = Claim("batch is more accurate", "accuracy", "higher", "clean", norms=("batch",))
    one = stats.Comparison(0.2, 0.1, 0.3, 0.95, 1e-6, "bootstrap", "McNemar exact", 1, 450)
    rows = [ComparisonRow("mlp-batch", "mlp-none", Condition("clean"), "accuracy", one, 1e-6, (0,))]
    (v,) = verdicts((claim,), rows, NORMS, 0.05, per_seed=[((0,), np.array([0.2]))])
    # its seed-level test cannot go below 1/2: never settled on one seed, and the reason says what is needed
    assert v.verdict == INCONCLUSIVE and v.evidence[0].p_value == 0.5
    assert v.reason.endswith("judged on one seed, and a seed-level test needs at least 6 seeds here")
    # given without per-seed differences, a one-seed row falls back to its comparison's own test (McNemar on
    # the test examples): it may settle, but never without the caveat on the verdict itself
    (v,) = verdicts((claim,), rows, NORMS, 0.05)
    assert v.verdict == SUPPORTED and "judged on one seed" in v.caveat
    # an interval outside its validated range carries its caveat to the verdict too
    marked = dataclasses.replace(one, n_seeds=9, caveat="3 seeds: below the 5 this interval was validated for")
    rows = [dataclasses.replace(rows[0], comparison=marked)]
    assert "below the 5" in verdicts((claim,), rows, NORMS, 0.05)[0].caveat
    # a verdict on rows without caveats has none
    assert verdicts((claim,), [dataclasses.replace(rows[0], comparison=dataclasses.replace(marked, caveat=""))],
                    NORMS, 0.05)[0].caveat == ""


# --- the reports open with the claims, and a sequential run's claims are judged by its design ----------


def _claims_run(run_dir: Path, n_seeds: int, record: dict[str, object] | None = None) -> None:
    """A run directory with records of known content: mlp-batch fixes some of mlp-none's test errors on
    every seed and never adds one (and needs fewer steps)."""
    from harness.specs import EvalSpec, Suite, TrainSpec, Variant
    from harness.store import Cell, Store

    suite = Suite("toy", "0.1", "a toy suite", "digits", tuple(Variant(n, "mlp", n.split("-")[1]) for n in
                                                             ("mlp-none", "mlp-batch")),
                  tuple(range(n_seeds)), TrainSpec(), EvalSpec(shifts=(), ood_sets=(), attacks=()),
                  claims=(Claim("batch is more accurate", "accuracy", "higher", "clean", norms=("batch",)),
                          Claim("batch is at most 2 points more accurate", "accuracy", "not-higher", "clean",
                                norms=("batch",), margin=0.02), "a sentence"))
    rng = np.random.default_rng(0)
    with Store(run_dir) as store:
        store.put_meta("suite", suite.to_dict())
        store.put_meta("provenance", {"harness": "test", "command": ["pytest"]})
        if record is not None:
            store.put_meta("sequential", record)
        for seed in range(n_seeds):
            base = rng.random(200) < 0.8
            for variant, correct in (("mlp-none", base), ("mlp-batch", base | (rng.random(200) < 0.5))):
                store.put(Cell(f"t-{variant}-{seed}", "train", variant, seed, {}, {
                    "n_steps": 100, "steps_to_target": 50, "seconds_to_target": 0.1, "seconds_per_step": 0.001,
                    "train_seconds": 0.1, "diverged": False, "diverged_at": None, "final_val_accuracy": 0.9}))
                store.put(Cell(f"e-{variant}-{seed}", "eval", variant, seed, {}, {},
                               condition={"kind": "clean", "name": "", "params": {}}, arrays={"correct": correct}))


def test_the_report_and_the_terminal_open_with_the_claims_and_their_verdicts(tmp_path: Path) -> None:
    from rich.console import Console

    from harness.reports.build import build_report
    from harness.reports.render import print_summary, to_json, to_markdown

    _claims_run(tmp_path, 7)  # 4 one-sided tests in the family: 4 / 2**7 < 0.05
    report = build_report(tmp_path, n_resamples=200)
    assert [v.verdict for v in report.claims] == [SUPPORTED, CONTRADICTED, NOT_EVALUATED]
    md = to_markdown(report, figs=[])
    first_table = md[md.index("\n|"):].splitlines()[1]
    assert md.index("## Claims") < md.index("a toy suite") < md.index("## Summary")  # before the detail
    assert first_table.startswith("| claim | verdict | why |")
    assert "tested against the claim's boundary" in md and "## Claims: evidence" in md
    console = Console(record=True, width=160)
    print_summary(report, console)
    text = console.export_text()
    assert text.index("Claims (how they are judged: report.md)") < text.index("toy 0.1: mean over")
    assert to_json(report)["sequential"] is None and to_json(report)["claims"][0]["caveat"] == ""


def test_a_sequential_runs_claims_are_judged_by_its_design_at_its_alpha(tmp_path: Path) -> None:
    import json

    import jsonschema

    from harness.reports.build import build_report
    from harness.reports.claims import Record
    from harness.reports.render import SCHEMA_PATH, to_json, to_markdown
    from harness.sequential import Design

    looks = ((0, 1, 2), (0, 1, 2, 3, 4, 5, 6, 7), tuple(range(12)))
    _claims_run(tmp_path, 12, Record(Design(0.05, 12), looks, "settled").to_dict())
    # a report at another level still judges the claims by the design's alpha; its intervals are at the level
    report = build_report(tmp_path, level=0.8, n_resamples=200)
    seq = report.sequential
    assert seq is not None and [len(k.seeds) for k in seq.looks] == [3, 8, 12]
    assert [k.decision for k in seq.looks] == ["continue", "continue", "settled"]
    assert [k.alpha_spent for k in seq.looks] == pytest.approx(
        [stats.spend_obrien_fleming(n / 12, 0.05) for n in (3, 8, 12)])
    # the higher claim is decided at the last look: O'Brien-Fleming-type spending at alpha / 4 (Holm's
    # first step over the family's 4 tests) allows 0.0022 by 8 seeds, below their floor 1 / 256
    higher = [r for k in seq.looks for r in k.rows if r.claim == "batch is more accurate"]
    assert [r.decided for r in higher] == [None, None, CLAIMED] and higher[1].p_claimed == 1 / 256
    (e,) = report.claims[0].evidence
    assert (e.decided_at, e.p_adjusted, e.interval) == (12, None, "repeated")
    # with Pocock-type spending (0.0047 by 8 seeds) it is decided at the second look
    _claims_run(tmp_path / "pocock", 12, Record(Design(0.05, 12, "pocock"), looks, "settled").to_dict())
    early = build_report(tmp_path / "pocock", n_resamples=200)
    assert early.claims[0].evidence[0].decided_at == 8
    # the repeated interval is wider than the comparison's own
    row = next(r for r in report.comparisons if r.condition is not None and r.variant == "mlp-batch")
    assert e.ci_low < row.comparison.ci_low and e.ci_high > row.comparison.ci_high
    doc = json.loads(json.dumps(to_json(report), allow_nan=False))
    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA_PATH.read_text(encoding="utf-8")))
    assert [err.message for err in validator.iter_errors(doc)] == []
    assert doc["sequential"]["stopped_because"] == "settled" and len(doc["sequential"]["looks"]) == 3
    md = to_markdown(report, figs=[])
    assert "## Sequential looks" in md and "decided at (seeds)" in md
