"""Tests for harness.stats: exact small cases, cross-checks with scipy, pairing, determinism, coverage."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import numpy as np
import pytest
from scipy.stats import binomtest

from harness.metrics import auroc, fpr_at_tpr
from harness.stats import (
    Comparison,
    Estimate,
    Resampled,
    benjamini_hochberg,
    compare,
    effect_size,
    estimate,
    example_weights,
    holm,
    mcnemar_exact,
    min_attainable_p,
    resample_mean,
    resample_means,
    resample_two_sample,
    seed_bootstrap,
    sign_flip_test,
    t_interval,
    wilson_interval,
)


def _bernoulli(seed: int, shape: tuple[int, int], p: float) -> np.ndarray:
    return (np.random.default_rng(seed).random(shape) < p).astype(float)


def _scores(seed: int, n_seeds: int = 3, n: int = 40, m: int = 50) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(1.0, 1.0, (n_seeds, n)), rng.normal(0.0, 1.0, (n_seeds, m))


# --- example draws --------------------------------------------------------------------------


def test_example_weights_are_deterministic_resampling_counts() -> None:
    w = example_weights(30, 300, seed=4)
    assert w.shape == (300, 30)
    assert np.issubdtype(w.dtype, np.integer)
    assert (w >= 0).all() and (w.sum(axis=1) == 30).all()
    np.testing.assert_array_equal(w, example_weights(30, 300, seed=4))
    assert not np.array_equal(w, example_weights(30, 300, seed=5))
    # Each example is drawn with probability 1/n per draw, so its mean count is 1.
    assert abs(w.mean() - 1.0) < 1e-12 and abs(w.mean(axis=0) - 1).max() < 0.35


def test_resample_mean_uses_example_weights_shared_by_all_seeds() -> None:
    values = np.random.default_rng(0).normal(size=(3, 25))
    r = resample_mean(values, n_resamples=200, seed=7)
    w = example_weights(25, 200, seed=7)
    np.testing.assert_allclose(r.point, values.mean(axis=1), rtol=0, atol=1e-14)
    np.testing.assert_allclose(r.boot, w @ values.T / 25, rtol=0, atol=1e-12)
    assert r.binary is None and r.n_examples == 25


def test_resample_mean_marks_proportions_binary() -> None:
    values = _bernoulli(1, (2, 30), 0.7)
    r = resample_mean(values, n_resamples=50)
    np.testing.assert_array_equal(r.binary, values.astype(bool))


def test_resample_two_sample_point_is_the_metric_and_draws_are_shared() -> None:
    score_in, score_out = _scores(2)
    for metric, scalar in [("auroc", auroc), ("fpr95", fpr_at_tpr)]:
        r = resample_two_sample(score_in, score_out, metric, n_resamples=300, seed=3)
        assert r.boot.shape == (300, 3) and r.n_examples == 90 and r.binary is None
        np.testing.assert_array_equal(r.point, [scalar(i, o) for i, o in zip(score_in, score_out, strict=True)])
        np.testing.assert_array_equal(r.boot, resample_two_sample(score_in, score_out, metric, 300, seed=3).boot)
    # Identical seeds see identical example draws, so their replicates coincide.
    same = resample_two_sample(np.tile(score_in[:1], (3, 1)), np.tile(score_out[:1], (3, 1)), "auroc", 100)
    np.testing.assert_array_equal(same.boot, np.repeat(same.boot[:, :1], 3, axis=1))


def test_resample_two_sample_id_draws_are_example_weights() -> None:
    # With a single OOD value the AUROC depends only on the ID draws: the weighted share of ID
    # scores above it (ties count 1/2).
    score_in = np.array([[-1.0, 0.0, 1.0, 2.0, 3.0]])
    r = resample_two_sample(score_in, np.zeros((1, 4)), "auroc", n_resamples=100, seed=9)
    w = example_weights(5, 100, seed=9)
    np.testing.assert_allclose(r.boot[:, 0], (w @ np.array([0, 0.5, 1, 1, 1])) / 5, rtol=0, atol=1e-12)


# --- estimate ---------------------------------------------------------------------------------


def test_estimate_single_binary_seed_uses_wilson() -> None:
    r = resample_mean(np.array([[1, 1, 1, 1, 1, 1, 1, 1, 0, 0]]), n_resamples=100)
    e = estimate(r)
    assert e.method == "wilson"
    assert (e.value, e.n_seeds, e.n_examples) == (0.8, 1, 10)
    assert (round(e.ci_low, 4), round(e.ci_high, 4)) == (0.4902, 0.9433)


def test_estimate_crossed_t_is_deterministic_and_brackets_value() -> None:
    r = resample_mean(_bernoulli(2, (4, 300), 0.8), n_resamples=500, seed=1)
    e = estimate(r, level=0.9, seed=5)
    assert e == estimate(r, level=0.9, seed=5)
    assert e.method == "crossed t-interval (variance components, Satterthwaite df), 500 example resamples"
    assert e.ci_low < e.value < e.ci_high and e.value == r.point.mean()
    assert (e.level, e.n_seeds, e.n_examples) == (0.9, 4, 300)
    wider = estimate(r, level=0.99, seed=5)
    assert wider.ci_low < e.ci_low and wider.ci_high > e.ci_high


def test_estimate_interval_widens_with_seed_variance() -> None:
    # Same examples, but seeds that disagree more: the seed level of the bootstrap must notice.
    base = np.random.default_rng(0).normal(size=(1, 200))
    close = resample_mean(base + np.array([[0.0], [0.01], [0.02], [0.03]]), n_resamples=400)
    apart = resample_mean(base + np.array([[0.0], [1.0], [2.0], [3.0]]), n_resamples=400)
    width = [estimate(r).ci_high - estimate(r).ci_low for r in (close, apart)]
    assert width[1] > 3 * width[0]


def test_estimate_single_non_binary_seed_says_seed_variance_is_missing() -> None:
    e = estimate(resample_mean(np.random.default_rng(0).normal(size=(1, 50)), n_resamples=100))
    assert e.method == "example bootstrap, percentile, 100 resamples"
    assert e.caveat == "1 seed: the seed's own variance is not captured"
    assert e.ci_low < e.value < e.ci_high


@pytest.mark.parametrize("fill", [0.1, 1.0])
def test_constant_data_collapse_the_interval(fill: float) -> None:
    e = estimate(resample_mean(np.full((3, 40), fill), n_resamples=200))
    assert e.ci_low == e.value == e.ci_high
    assert t_interval([fill] * 4) == (fill, fill)


def test_to_dict_has_every_field() -> None:
    e = estimate(resample_mean(_bernoulli(0, (2, 20), 0.5), n_resamples=50))
    assert e.to_dict() == {f: getattr(e, f) for f in Estimate.__dataclass_fields__}
    a, b = (resample_mean(_bernoulli(s, (2, 20), 0.5), n_resamples=50) for s in (0, 1))
    c = compare(a, b)
    # every field but the variance components, which are kept for later questions, not serialised
    assert c.to_dict() == {f: getattr(c, f) for f in Comparison.__dataclass_fields__ if f != "components"}
    assert c.components is not None and c.components.n_seeds == 2


# --- compare ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("build", "p_method"),
    [
        (
            lambda: resample_mean(_bernoulli(0, (3, 60), 0.7), 300),
            "sign-flip permutation over seeds (exact, 8 sign patterns)",
        ),
        (lambda: resample_mean(_bernoulli(0, (1, 60), 0.7), 300), "McNemar exact"),
        (lambda: resample_two_sample(*_scores(0, n_seeds=1), "auroc", 300), "bootstrap"),
    ],
)
def test_compare_with_itself_is_exactly_null(build: Callable[[], Resampled], p_method: str) -> None:
    r = build()
    c = compare(r, r)
    assert (c.diff, c.ci_low, c.ci_high, c.p_value) == (0.0, 0.0, 0.0, 1.0)
    assert c.p_method == p_method


def test_compare_is_a_minus_b_and_paired() -> None:
    values = np.random.default_rng(0).normal(size=(3, 300))
    a = resample_mean(values + 0.05, 500, seed=2)  # b plus a constant: every paired replicate differs by 0.05
    b = resample_mean(values, 500, seed=2)
    c = compare(a, b, seed=4)
    assert c.diff == pytest.approx(0.05) and c.ci_low == pytest.approx(0.05) and c.ci_high == pytest.approx(0.05)
    assert c.p_value == 0.25  # the smallest p three seeds allow
    assert compare(b, a).diff == pytest.approx(-0.05)
    # Unpaired draws (another seed for b) leave example noise in the difference.
    unpaired = compare(a, resample_mean(values, 500, seed=3), seed=4)
    assert unpaired.ci_high - unpaired.ci_low > 0.01


def test_compare_two_sample_variants_share_id_and_ood_draws() -> None:
    # A monotone transform of the scores leaves every replicate's metric unchanged, so with shared
    # ID and OOD draws the paired difference is exactly zero; unshared draws would leave noise.
    score_in, score_out = _scores(5)
    for metric in ("auroc", "fpr95"):
        a = resample_two_sample(score_in, score_out, metric, 300, seed=1)
        b = resample_two_sample(np.exp(score_in), np.exp(score_out), metric, 300, seed=1)
        c = compare(a, b)
        assert (c.diff, c.ci_low, c.ci_high, c.p_value) == (0.0, 0.0, 0.0, 1.0)


def test_compare_single_seed_bootstrap_p_detects_a_clear_difference() -> None:
    score_in, score_out = _scores(1, n_seeds=1, n=200, m=200)
    good = resample_two_sample(score_in, score_out, "auroc", 400)
    bad = resample_two_sample(score_in, score_out + 0.8, "auroc", 400)
    c = compare(good, bad)
    assert c.p_method == "bootstrap" and c.p_value < 0.01 and c.ci_low > 0


def test_compare_rejects_mismatched_inputs() -> None:
    a = resample_mean(_bernoulli(0, (3, 20), 0.5), 100)
    with pytest.raises(ValueError, match="compare needs the same seeds and example draws"):
        compare(a, resample_mean(_bernoulli(0, (2, 20), 0.5), 100))


# --- tests and intervals ----------------------------------------------------------------------


def test_sign_flip_exact_values() -> None:
    assert sign_flip_test([1, 2, 3]) == 0.25
    assert sign_flip_test([0, 0, 0]) == 1.0
    assert sign_flip_test([1, -1]) == 1.0
    d = np.array([0.3, -0.1, 0.5, 0.2, 0.4])
    by_hand = np.mean([abs(np.dot(s, d)) >= abs(d.sum()) - 1e-12 for s in itertools.product([-1, 1], repeat=5)])
    assert sign_flip_test(d) == by_hand


def test_sign_flip_monte_carlo_is_deterministic_with_plus_one() -> None:
    d = np.linspace(0.1, 1.0, 20)  # 2**20 patterns > 20000: Monte Carlo
    p = sign_flip_test(d, seed=3)
    assert p == sign_flip_test(d, seed=3)
    assert 1 / 20001 <= p <= 3 / 20001
    noisy = np.random.default_rng(0).normal(size=12)  # 4096 patterns: 2000 random ones vs all of them
    assert sign_flip_test(noisy, n_permutations=2000) == pytest.approx(sign_flip_test(noisy), abs=0.04)


@pytest.mark.parametrize("n_seeds", range(1, 7))
def test_min_attainable_p_is_what_the_sign_flip_test_reaches(n_seeds: int) -> None:
    assert min_attainable_p(n_seeds) == sign_flip_test(np.arange(1.0, n_seeds + 1))
    assert min_attainable_p(0) == 1.0 and min_attainable_p(3) == 0.25


def test_mcnemar_hand_computed_and_no_discordance() -> None:
    a = np.array([1, 1, 1, 1, 1, 0, 1, 0])
    b = np.array([0, 0, 0, 0, 0, 0, 1, 0])
    assert mcnemar_exact(a, b) == pytest.approx(2 * 0.5**5)  # 5 discordant pairs, all favouring a
    assert mcnemar_exact(a, a) == 1.0


@pytest.mark.parametrize("seed", range(10))
def test_mcnemar_matches_scipy_binomtest(seed: int) -> None:
    rng = np.random.default_rng(seed)
    a, b = rng.random(60) < 0.7, rng.random(60) < rng.uniform(0.4, 0.9)
    only_a, only_b = int(np.sum(a & ~b)), int(np.sum(~a & b))
    expected = binomtest(only_a, only_a + only_b, 0.5).pvalue
    assert mcnemar_exact(a, b) == pytest.approx(expected, rel=1e-9)


def test_holm_known_vector() -> None:
    # Sorted: 0.005*4=0.02, 0.01*3=0.03, 0.03*2=0.06, 0.04*1=0.04 -> 0.06 after the running max.
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03, 0.005]), [0.03, 0.06, 0.06, 0.02])
    np.testing.assert_array_equal(holm([0.5, 0.6]), [1.0, 1.0])
    assert holm([]).shape == (0,)


def test_wilson_interval() -> None:
    low, high = wilson_interval(8, 10)
    assert (round(low, 4), round(high, 4)) == (0.4902, 0.9433)
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(10, 10)[1] == 1.0
    assert wilson_interval(8, 10, level=0.99)[0] < low


def test_t_interval() -> None:
    # mean 2, sd 1, t(0.975, 2 df) = 4.302653 -> half width 4.302653 / sqrt(3) = 2.484138.
    low, high = t_interval([1.0, 2.0, 3.0])
    assert low == pytest.approx(2 - 2.484138, abs=1e-6) and high == pytest.approx(2 + 2.484138, abs=1e-6)
    assert all(np.isnan(t_interval([1.5])))


def test_crossed_bootstrap_coverage_smoke() -> None:
    # A loose seeded check that the interval is in the right range; the strict validation (many
    # designs, nominal levels, Monte Carlo error) belongs to the later coverage study.
    # Model: example effects a_i ~ N(1, 1), seed effects u_j ~ N(0, 0.3), y ~ Bernoulli(sigmoid(a + u));
    # the estimand is E[sigmoid(a + u)] over both populations (Gauss-Hermite quadrature).
    x, w = np.polynomial.hermite_e.hermegauss(80)
    truth = float(np.sum(w / np.sqrt(2 * np.pi) / (1 + np.exp(-(1.0 + np.hypot(1.0, 0.3) * x)))))
    rng = np.random.default_rng(123)
    covered = 0
    for k in range(300):
        a, u = rng.normal(1.0, 1.0, 200), rng.normal(0.0, 0.3, 5)
        y = rng.random((5, 200)) < 1 / (1 + np.exp(-(a[None, :] + u[:, None])))
        e = estimate(resample_mean(y, n_resamples=500, seed=k), seed=k)
        covered += e.ci_low <= truth <= e.ci_high
    assert 0.85 <= covered / 300 <= 0.995


# --- input validation -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: resample_mean([[1.0, np.nan]]), "values contains NaN or inf"),
        (lambda: resample_mean([1.0, 0.0]), r"values must be 2-D; got shape \(2,\)"),
        (lambda: resample_mean(np.zeros((2, 0))), "values is empty"),
        (lambda: resample_mean([[1.0]], seed=-1), "seed must be a non-negative integer; got -1"),
        (lambda: resample_mean([[1.0]], n_resamples=0), "n_resamples must be >= 1; got 0"),
        (lambda: resample_two_sample([[1.0]], [[0.0]], "aupr"), "unknown metric 'aupr'"),
        (lambda: resample_two_sample([[1.0]], [[0.0], [1.0]], "auroc"), "score_in has 1 seeds but score_out has 2"),
        (lambda: resample_two_sample([[1.0]], [[np.nan]], "fpr95"), "score_out contains NaN or inf"),
        (lambda: estimate(resample_mean([[1.0, 0.0]], 10), level=1.0), r"level must be in \(0, 1\); got 1.0"),
        (lambda: sign_flip_test([]), "d is empty: a sign-flip test needs at least one paired difference"),
        (lambda: sign_flip_test([1.0, np.nan]), "d contains NaN or inf"),
        (lambda: mcnemar_exact([1, 0], [1]), "a_correct has 2 examples but b_correct has 1"),
        (lambda: mcnemar_exact([1, 0.5], [1, 0]), "a_correct must contain only 0/1"),
        (lambda: holm([0.2, 1.5]), r"p_values must lie in \[0, 1\]"),
        (lambda: wilson_interval(11, 10), r"successes must be in \[0, n=10\]; got 11"),
        (lambda: t_interval([np.nan, 1.0]), "values contains NaN or inf"),
        (lambda: min_attainable_p(-1), "n_seeds must be >= 0"),
        (lambda: Resampled(np.zeros(3), np.zeros((5, 2)), 10, None), r"Resampled.boot must have shape \(B, 3\)"),
    ],
)
def test_bad_input_raises_one_line_value_error(call: Callable[[], object], message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        call()
    assert "\n" not in str(info.value)


# Timing (a quick script, not a test; S=3, n=450, m=500, B=2000, this 2-core machine):
# resample_mean ~4.6 ms, resample_two_sample ~38 ms (auroc) / ~45 ms (fpr95), estimate and
# compare ~0.2 ms each.


def test_resample_means_equal_one_at_a_time() -> None:
    from harness.stats import resample_means

    rng = np.random.default_rng(3)
    arrays = [rng.random((3, 40)), (rng.random((2, 40)) < 0.5).astype(float), rng.random((1, 25))]
    batched = resample_means(arrays, n_resamples=300, seed=4)
    for a, r in zip(arrays, batched, strict=True):
        single = resample_mean(a, n_resamples=300, seed=4)
        assert np.array_equal(r.point, single.point)
        assert np.allclose(r.boot, single.boot, rtol=0, atol=1e-12)
        assert (r.binary is None) == (single.binary is None)


def test_resample_ece_is_the_weighted_ece_centred_on_the_estimate() -> None:
    from harness.metrics import expected_calibration_error, expected_calibration_error_weighted
    from harness.stats import example_weights, resample_ece

    rng = np.random.default_rng(5)
    conf = rng.uniform(0.1, 1.0, (2, 300))
    correct = (rng.uniform(size=(2, 300)) < conf ** 2).astype(float)  # overconfident
    r = resample_ece(conf, correct, n_resamples=500, seed=6)
    w = example_weights(300, 500, 6)
    for s in range(2):
        assert r.point[s] == pytest.approx(expected_calibration_error(conf[s], correct[s]), abs=1e-12)
        raw = expected_calibration_error_weighted(conf[s], correct[s], w)
        # the replicates are the weighted ECEs shifted by their mean bias
        assert np.allclose(r.boot[:, s], raw - (raw.mean() - r.point[s]), atol=1e-6)
        assert r.boot[:, s].mean() == pytest.approx(r.point[s], abs=1e-9)


def test_resample_ood_equals_one_metric_at_a_time() -> None:
    from harness.stats import resample_ood, resample_two_sample

    rng = np.random.default_rng(8)
    s_in, s_out = rng.normal(1, 1, (2, 60)), rng.normal(0, 1, (2, 40)).round(1)  # ties among OOD scores
    together = resample_ood(s_in, s_out, ("auroc", "fpr95", "aupr_in", "aupr_out"), n_resamples=300, seed=9)
    for metric, r in together.items():
        alone = resample_two_sample(s_in, s_out, metric, n_resamples=300, seed=9)
        assert np.array_equal(r.point, alone.point) and np.array_equal(r.boot, alone.boot)
    with pytest.raises(ValueError, match="unknown metric 'aupr'"):
        resample_ood(s_in, s_out, ("aupr",))


@pytest.mark.parametrize("seed", range(5))
def test_benjamini_hochberg_matches_scipy(seed: int) -> None:
    from scipy.stats import false_discovery_control

    from harness.stats import benjamini_hochberg

    p = np.random.default_rng(seed).uniform(0, 0.2, 12)
    p[3] = p[7]  # a tie
    assert np.allclose(benjamini_hochberg(p), false_discovery_control(p, method="bh"), rtol=0, atol=1e-12)


def test_benjamini_hochberg_hand_computed_and_never_above_holm() -> None:
    from harness.stats import benjamini_hochberg

    p = np.array([0.04, 0.01, 0.03])  # sorted 0.01, 0.03, 0.04 -> 0.03, 0.045, 0.04 -> monotone 0.03, 0.04, 0.04
    assert benjamini_hochberg(p) == pytest.approx([0.04, 0.03, 0.04])
    q = np.random.default_rng(1).uniform(size=30)
    assert (benjamini_hochberg(q) <= holm(q) + 1e-15).all()


# --- the numbers behind verdicts: effect size, P(better), MDE, variance components, seeds --------


def test_effect_size_is_cohens_d_z_with_ddof_1() -> None:
    # mean 3, sd (ddof 1) sqrt(14 / 3) = 2.160247: d_z 1.388730 (ddof 0 would give 1.603567)
    from harness.stats import effect_size

    assert effect_size([1.0, 2.0, 3.0, 6.0]) == pytest.approx(1.388730, abs=1e-6)
    assert effect_size([-1.0, -2.0, -3.0, -6.0]) == pytest.approx(-1.388730, abs=1e-6)
    assert effect_size([0.5]) is None and effect_size([2.0, 2.0, 2.0]) is None


def test_probability_of_improvement_counts_ties_half_and_equals_mann_whitney() -> None:
    from scipy.stats import mannwhitneyu

    from harness.stats import probability_of_improvement

    # a = 1 beats 0 (1 pair); a = 2 ties both 2s and beats 0 (2); a = 3 beats all three (3): 6 of 9
    a, b = [1.0, 2.0, 3.0], [2.0, 2.0, 0.0]
    assert probability_of_improvement(a, b) == pytest.approx(6 / 9)
    assert probability_of_improvement(a, b, higher_is_better=False) == pytest.approx(3 / 9)
    assert probability_of_improvement(b, a) == pytest.approx(3 / 9)
    # the Mann-Whitney U of a against b over all S_a x S_b pairs, ties counting half
    rng = np.random.default_rng(0)
    x, y = rng.normal(0.3, 1.0, 7).round(1), rng.normal(0.0, 1.0, 5).round(1)
    assert probability_of_improvement(x, y) == pytest.approx(mannwhitneyu(x, y).statistic / 35)


def test_probability_of_improvement_interval_equals_averaging_the_drawn_seed_pairs() -> None:
    """The interval comes from per-replicate counts (c' wins c / S^2); averaging every drawn pair of
    each replicate, as the definition reads, gives the same interval to the last bit."""
    from harness.stats import _SEED_BOOT, _percentile_interval, _rng, probability_of_improvement_interval

    rng = np.random.default_rng(3)
    for n_seeds in (2, 5, 10):
        a, b = rng.integers(0, 5, n_seeds).astype(float), rng.integers(0, 5, n_seeds).astype(float)
        drawn = _rng(0, _SEED_BOOT).integers(0, n_seeds, size=(500, n_seeds))
        diff = a[drawn][:, :, None] - b[drawn][:, None, :]
        for higher in (True, False):
            d = diff if higher else -diff
            reference = _percentile_interval(np.mean((d > 0) + 0.5 * (d == 0), axis=(1, 2)), 0.9)
            assert probability_of_improvement_interval(a, b, higher, 0.9, 500) == reference


def test_probability_of_improvement_interval_is_the_exact_paired_bootstraps_quantiles() -> None:
    from harness.stats import probability_of_improvement, probability_of_improvement_interval

    # Three paired seeds: a beats b on seed 0, loses on seed 1, ties on seed 2 (11 of 18 half-pairs).
    # The paired bootstrap draws one of 27 equally likely seed triples; enumerated, its P(better)
    # is 0 (1 triple), 1/6 (3), 1/3 (3), 4/9 (3), 1/2 (1), 11/18 (6), 7/9 (6), 17/18 (3), 1 (1), so
    # the 10% and 90% quantiles are 1/6 and 17/18 (the cumulative shares 0.037 and 0.148 bracket
    # 10%, 0.852 and 0.963 bracket 90%), the 2.5% and 97.5% ones 0 and 1.
    a, b = np.array([3.0, 1.0, 2.0]), np.array([1.0, 2.0, 2.0])
    assert probability_of_improvement(a, b) == pytest.approx(11 / 18)
    exact = sorted(probability_of_improvement(a[list(i)], b[list(i)]) for i in itertools.product(range(3), repeat=3))
    assert exact[2] == pytest.approx(1 / 6) and exact[24] == pytest.approx(17 / 18)  # 10% and 90% of 27
    assert probability_of_improvement_interval(a, b, level=0.8, n_resamples=20000) == pytest.approx((1 / 6, 17 / 18))
    assert probability_of_improvement_interval(a, b, n_resamples=20000) == pytest.approx((0.0, 1.0))
    assert probability_of_improvement_interval(a, b, False, 0.8, 20000) == pytest.approx((1 / 18, 5 / 6))
    with pytest.raises(ValueError, match="a has 3 seeds but b has 2; they must be paired"):
        probability_of_improvement_interval(a, b[:2])


def test_detectable_difference_hand_computed() -> None:
    from harness.stats import Components, detectable_difference

    # seeds alone, S = 5, variance of the mean 1: t quantiles on 4 df, 2.776445 (97.5%) + 0.940965 (80%)
    assert detectable_difference(Components(1.0, 0.0, 0.0, 5)) == pytest.approx(3.717410, abs=1e-6)
    # the test set alone (infinite df), sd 0.01: 1.959964 + 0.841621 = 2.80 standard errors
    assert detectable_difference(Components(0.0, 1e-4, 0.0, 5)) == pytest.approx(0.02801585, abs=1e-8)
    assert detectable_difference(Components(0.0, 1.0, 0.0, 5), level=0.9, power=0.5) == pytest.approx(1.644854,
                                                                                                      abs=1e-6)
    assert detectable_difference(Components(0.0, 0.0, 0.0, 5)) == 0.0
    with pytest.raises(ValueError, match=r"power must be in \(0, 1\); got 1.0"):
        detectable_difference(Components(1.0, 0.0, 0.0, 5), power=1.0)


def test_components_hand_computed() -> None:
    from harness.stats import Components

    c = Components(between=0.4, examples=0.3, interaction=0.1, n_seeds=4, example_df=99.0)
    assert (c.seed, c.total, c.seed_share) == (pytest.approx(0.3), pytest.approx(0.6), pytest.approx(0.5))
    # Satterthwaite: 0.6^2 / (0.4^2 / 3 + 0.3^2 / 99)
    assert c.df == pytest.approx(6.636872, abs=1e-6)
    # at 8 seeds the seed part (0.3) and the interaction (0.1) halve, the example effects (0.2) stay
    eight = c.with_seeds(8)
    assert (eight.between, eight.examples, eight.interaction, eight.n_seeds, eight.example_df) == (
        pytest.approx(0.2), pytest.approx(0.25), pytest.approx(0.05), 8, 99.0)
    assert eight.total == pytest.approx(0.4)
    # noise drove the sum below 0: the floor is half the larger part; no seed part
    low = Components(between=0.1, examples=0.2, interaction=0.5, n_seeds=4)
    assert (low.total, low.seed, low.seed_share) == (pytest.approx(0.1), 0.0, 0.0)
    assert Components(0.0, 0.0, 0.0, 3).df == np.inf and Components(0.0, 0.0, 0.0, 3).seed_share == 0.0
    assert Components(1.0, 0.0, 0.0, 5).df == pytest.approx(4.0)  # seeds alone: S - 1


def test_variance_components_of_designed_datasets() -> None:
    from harness.stats import variance_components

    a = np.random.default_rng(0).normal(size=40)
    w = example_weights(40, 500, seed=3)
    # seed effects -1, 0, 1 (variance 1) plus example effects, no interaction: the seed part is
    # exactly 1 / 3, the interaction 0, the example part the variance of the resampled example mean
    r = resample_mean(np.array([-1.0, 0.0, 1.0])[:, None] + a[None, :], 500, seed=3)
    c = variance_components(r.point, r.boot, r.n_examples)
    assert (c.between, c.seed, c.n_seeds, c.example_df) == (pytest.approx(1 / 3), pytest.approx(1 / 3), 3, 39.0)
    assert c.interaction == pytest.approx(0.0, abs=1e-25)
    assert c.examples == pytest.approx(np.var(w @ a / 40, ddof=1), rel=1e-9)
    # two seeds mirroring each other about 0: pure interaction; the mean over seeds is 0 in every
    # resample, so the between and example parts are 0 and so is the variance of the mean
    e = a - a.mean()
    r = resample_mean(np.stack([e, -e]), 500, seed=3)
    c = variance_components(r.point, r.boot, r.n_examples)
    assert c.between == pytest.approx(0.0, abs=1e-25) and c.examples == pytest.approx(0.0, abs=1e-25)
    assert c.interaction == pytest.approx(np.var(w @ e / 40, ddof=1), rel=1e-9)
    assert c.total == pytest.approx(0.0, abs=1e-25)
    # one seed: only the example part
    one = variance_components(r.point[:1], r.boot[:, :1], 40)
    assert (one.between, one.interaction, one.n_seeds) == (0.0, 0.0, 1)
    assert one.examples == pytest.approx(np.var(w @ e / 40, ddof=1), rel=1e-9)


def test_compare_reports_effect_size_mde_and_seeds_of_its_differences() -> None:
    # b plus a constant per seed (1, 2, 3, 6): the differences have no example part, so everything
    # is a t computation on four values: mean 3, variance of the mean 14 / 3 / 4 = 7 / 6
    base = np.random.default_rng(0).random((4, 50))
    delta = np.array([1.0, 2.0, 3.0, 6.0])
    c = compare(resample_mean(base + delta[:, None], 300, seed=1), resample_mean(base, 300, seed=1), seed=1)
    assert c.diff == pytest.approx(3.0) and c.effect_size == pytest.approx(1.388730, abs=1e-6)
    assert (c.ci_low, c.ci_high) == pytest.approx(t_interval(delta))
    assert c.p_value == 0.125  # all four positive: 2 of 16 sign patterns
    # (t_3(0.975) 3.182446 + t_3(0.8) 0.978472) * sqrt(7 / 6)
    assert c.mde == pytest.approx(4.494306, abs=1e-6)
    # (t_{S-1}(0.975) + t_{S-1}(0.8)) * sqrt(14 / 3 / S) first reaches 3 at S = 7 (2.737; 3.078 at 6)
    assert c.seeds_needed == 7


def test_seeds_needed_hand_computed() -> None:
    from harness.stats import Components, seeds_needed

    seeds = Components(1.0, 0.0, 0.0, 4)  # per-seed differences with sd 2, no example part
    # (t_{S-1}(0.975) + t_{S-1}(0.8)) * 2 / sqrt(S) <= 2: 1.0646 at S = 9, 0.9946 at 10
    assert seeds_needed(2.0, seeds) == 10 and seeds_needed(-2.0, seeds) == 10
    # one of 8 Holm-adjusted comparisons: the test at 1 - 0.05 / 16, 2.0217 at 16 and 1.9454 at 17
    assert seeds_needed(2.0, seeds, factor=8) == 17
    assert seeds_needed(2.0, seeds, factor=2) == 13
    # far beyond the seeds' spread the exact sign-flip test's floor decides: 2 / 2**S below 0.05
    # from 6 seeds, 8 * 2 / 2**S from 9, 2 / 2**S below 0.01 from 8; the interval alone needs 2
    assert seeds_needed(100.0, seeds) == 6 and seeds_needed(100.0, seeds, factor=8) == 9
    assert seeds_needed(100.0, seeds, alpha=0.01) == 8 and seeds_needed(100.0, seeds, p_value=False) == 2
    # the test set's own sd of 0.01 stays whatever the seeds: 2.80 of it, 0.028, is the least detectable
    examples = Components(0.0, 1e-4, 0.0, 5)
    assert seeds_needed(0.02, examples) is None
    assert seeds_needed(0.03, examples) == 6 and seeds_needed(0.03, examples, factor=8) == 9
    assert seeds_needed(2.0, seeds, most=9) is None and seeds_needed(2.0, seeds, most=10) == 10
    # at the floor the exact test is a sign test: 1.5 sds clear the t approximation at 6 seeds
    # ((2.571 + 0.920) / sqrt(6) = 1.425), but all six differences share the sign with probability
    # Phi(1.5)^6 = 0.66; at 7 the next p, 4 / 128, is below 0.05 too and the t approximation holds
    assert seeds_needed(1.5, Components(1 / 3, 0.0, 0.0, 3)) == 7
    assert seeds_needed(1.5, Components(1 / 3, 0.0, 0.0, 3), power=0.65) == 6
    assert seeds_needed(0.0, seeds) is None and seeds_needed(1.0, Components(0.0, 1.0, 0.0, 1)) is None


@pytest.mark.parametrize(("diff", "factor", "power"),
                         [(2.0, 1, 0.8), (1.3, 1, 0.9), (2.0, 8, 0.8), (0.9, 3, 0.8), (3.0, 1, 0.8), (4.0, 8, 0.9)])
def test_seeds_needed_equals_a_direct_search_with_scipy(diff: float, factor: int, power: float) -> None:
    # per-seed differences with sd 2: the fewest S at which the sign-flip test's floor allows it,
    # a t-test at 0.05 / factor has the power (scipy's t quantiles) and, where only a pattern of
    # equal signs can reach that level, all S differences share the sign with that probability
    from scipy.stats import norm, t

    from harness.stats import Components, seeds_needed

    expected = next(n for n in range(2, 1000) if factor * 2.0 ** (1 - n) < 0.05
                    and (t.ppf(1 - 0.025 / factor, n - 1) + t.ppf(power, n - 1)) * 2 / np.sqrt(n) <= diff
                    and (factor * 2.0 ** (2 - n) < 0.05 or norm.cdf(diff / 2) ** n >= power))
    assert seeds_needed(diff, Components(1.0, 0.0, 0.0, 4), power=power, factor=factor) == expected


def test_seeds_to_reach_a_family_adjusted_p() -> None:
    from harness.stats import seeds_to_reach

    assert (seeds_to_reach(0.05), seeds_to_reach(0.05, 8), seeds_to_reach(0.05, 2), seeds_to_reach(0.01)) == (
        6, 9, 7, 8)
    assert seeds_to_reach(0.0625) == 6  # strictly below: 2 / 2**5 is 0.0625 itself
    # from 16 seeds the test samples 20,000 sign patterns and cannot go below 1 / 20001
    assert seeds_to_reach(0.05, 1000) == 16 and seeds_to_reach(0.05, 1001) is None


@pytest.mark.parametrize(
    ("a", "b", "p_value"),
    [
        # binary outcomes, per-seed differences 0.25 and 0.5: only the observed pattern and its mirror reach |0.75|
        ([[1, 1, 1, 0], [1, 1, 1, 1]], [[1, 1, 0, 0], [1, 1, 0, 0]], 0.5),
        # losses, per-seed differences 0.25 and -0.5: every pattern's |sum| reaches |-0.25|
        ([[1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, 4.0]], [[0.5, 2.0, 3.0, 3.5], [2.0, 2.0, 3.0, 5.0]], 1.0),
    ],
)
def test_compare_two_seeds_uses_the_exact_sign_flip_test(a: list[list[float]], b: list[list[float]],
                                                         p_value: float) -> None:
    from harness.stats import resample_means

    ra, rb = resample_means([np.array(a, dtype=float), np.array(b, dtype=float)], 50, seed=0)
    c = compare(ra, rb)
    assert c.p_method == "sign-flip permutation over seeds (exact, 4 sign patterns)"
    assert c.p_value == p_value


def test_compare_one_seed_proportion_against_a_loss_uses_the_bootstrap_p() -> None:
    from harness.stats import resample_means

    # a is 0/1 (McNemar would apply were b too), b a loss; a - b > 0 in every resample, so p is 0
    ra, rb = resample_means([np.ones((1, 4)), np.array([[0.2, 0.3, 0.2, 0.3]])], 50, seed=0)
    assert ra.binary is not None and rb.binary is None
    for c in (compare(ra, rb), compare(rb, ra)):
        assert (c.p_method, c.p_value) == ("bootstrap", 0.0)


@pytest.mark.parametrize(("a", "b", "name"), [([], [1.0], "a"), ([1.0], [], "b")])
def test_probability_of_improvement_names_the_empty_argument(a: list[float], b: list[float], name: str) -> None:
    from harness.stats import probability_of_improvement

    with pytest.raises(ValueError) as exc:
        probability_of_improvement(a, b)
    assert str(exc.value) == f"{name} is empty: a probability of improvement needs at least one value"


@pytest.mark.parametrize(
    ("n_in", "n_out", "message"),
    [
        (0, 3, "score_in is empty: an OOD metric needs at least one in-distribution score"),
        (3, 0, "score_out is empty: an OOD metric needs at least one OOD score"),
    ],
)
def test_resample_ood_names_the_empty_scores(n_in: int, n_out: int, message: str) -> None:
    from harness.stats import resample_ood

    with pytest.raises(ValueError) as exc:
        resample_ood(np.ones((1, n_in)), np.ones((1, n_out)), ("auroc",), n_resamples=10)
    assert str(exc.value) == message


def test_effect_size_of_two_seeds_is_their_mean_over_their_sd() -> None:
    from harness.stats import effect_size

    # two seeds are enough: mean 2, sd (ddof 1) sqrt(2), so d_z = sqrt(2); one seed has no spread to scale by
    assert effect_size([1.0, 3.0]) == pytest.approx(np.sqrt(2.0), rel=1e-12)
    assert effect_size([1.0]) is None


def test_wilson_interval_of_one_example() -> None:
    # n = 1 is a valid sample: z = 1.95996..., shrink = 1 + z^2, centre = (1 + z^2 / 2) / shrink for
    # one success; the bounds are exact at 1 (all successes) and 0 (no success)
    z = 1.959963984540054
    low, high = wilson_interval(1, 1)
    assert high == 1.0 and low == pytest.approx((1 + z**2 / 2) / (1 + z**2) - z / (1 + z**2) * np.sqrt(z**2 / 4),
                                                 rel=1e-12)
    assert wilson_interval(0, 1)[0] == 0.0


def test_holm_and_bh_name_their_input_when_it_is_not_1_d() -> None:
    for adjust in (holm, benjamini_hochberg):
        with pytest.raises(ValueError) as err:
            adjust([[0.1, 0.2]])
        assert str(err.value) == "p_values must be 1-D; got shape (1, 2)"


def test_resampled_refuses_zero_replicates_and_says_the_shape() -> None:
    with pytest.raises(ValueError) as err:
        Resampled(np.zeros(2), np.zeros((0, 2)), 10, None)
    assert str(err.value) == "Resampled.boot must have shape (B, 2) with B >= 1; got (0, 2)"


def test_one_example_replicate_gives_no_example_or_interaction_variance() -> None:
    # with a single replicate there is no spread over example draws to measure: both parts are 0,
    # and the between-seed part is still the variance of the per-seed values over S
    from harness.stats import variance_components

    c = variance_components(np.array([0.5, 0.7]), np.array([[0.5, 0.7]]), 100)
    assert (c.examples, c.interaction) == (0.0, 0.0)
    assert c.between == pytest.approx(0.02 / 2, rel=1e-12)


@pytest.mark.parametrize(("method", "bca"), [("seed-percentile", False), ("seed-bca", True)])
def test_each_seed_bootstrap_method_is_the_interval_it_names(method: str, bca: bool) -> None:
    # skewed per-seed values, where BCa and the expanded percentile interval differ
    rng = np.random.default_rng(3)
    values = rng.lognormal(0.0, 1.0, 20)
    r = resample_mean(np.repeat(values[:, None], 4, axis=1), 500, seed=0)
    e = estimate(r, seed=7, method=method)
    assert (e.ci_low, e.ci_high) == seed_bootstrap(r.point, 0.95, 500, 7, bca=bca)
    assert (e.ci_low, e.ci_high) != seed_bootstrap(r.point, 0.95, 500, 7, bca=not bca)


def test_an_unknown_interval_method_lists_the_known_ones() -> None:
    from harness.stats import INTERVALS, check_interval

    with pytest.raises(ValueError) as err:
        check_interval("wald")
    assert str(err.value) == f"unknown interval method 'wald'; expected one of {', '.join(INTERVALS)}"
    assert "crossed-t, " in str(err.value)


def test_compare_passes_its_seed_to_the_sampled_sign_flip_test() -> None:
    # from 15 seeds (2**15 > 20000 sign patterns) the test samples patterns: its p-value then
    # depends on the seed compare is given, and must be the sign-flip test's at that seed
    rng = np.random.default_rng(0)
    a = rng.random((16, 40)) < 0.8
    b = rng.random((16, 40)) < 0.78
    ra, rb = resample_means([a, b], 200, seed=0)
    for seed in (0, 5):
        c = compare(ra, rb, seed=seed)
        assert c.p_value == sign_flip_test(ra.point - rb.point, 20000, seed)
    assert compare(ra, rb, seed=0).p_value != compare(ra, rb, seed=5).p_value


def test_integer_and_boolean_inputs_are_read_as_floats() -> None:
    from harness.metrics import _as_float_array

    for x in ([1, 0, 1], [True, False, True]):
        arr = _as_float_array(x, "x", 1)
        assert arr.dtype == np.float64 and arr.tolist() == [1.0, 0.0, 1.0]


def test_effect_size_and_mcnemar_name_their_empty_input_in_the_whole_message() -> None:
    with pytest.raises(ValueError, match=r"^d is empty: an effect size needs at least one paired difference$"):
        effect_size([])
    with pytest.raises(ValueError, match=r"^b_correct is empty: McNemar's test needs at least one paired example$"):
        mcnemar_exact([True], [])


def test_constant_data_get_a_zero_width_interval_with_no_caveat_at_five_seeds() -> None:
    r = resample_means([np.ones((5, 10))], 200, 0)[0]
    e = estimate(r, 0.95, 0, "crossed-t", (0.0, 1.0))
    assert (e.value, e.ci_low, e.ci_high, e.caveat) == (1.0, 1.0, 1.0, "")
    assert e.method == "crossed t-interval (variance components, Satterthwaite df), 200 example resamples"


def test_empty_ood_scores_and_a_two_d_point_are_refused_with_their_shape() -> None:
    from harness.stats import resample_ood

    with pytest.raises(ValueError, match=r"^score_out is empty: an OOD metric needs at least one OOD score$"):
        resample_ood(np.ones((2, 5)), np.ones((2, 0)), ("auroc",), 10, 0)
    with pytest.raises(ValueError, match=r"^Resampled.point must be a non-empty \(S,\) array; got shape \(2, 3\)$"):
        Resampled(np.ones((2, 3)), np.ones((4, 6)), 3, None)


def test_two_replicates_already_give_an_example_variance_and_a_comparison_keeps_its_level() -> None:
    from harness.stats import variance_components

    r = resample_means([np.random.default_rng(0).random((3, 20))], 2, 0)[0]
    c = variance_components(r.point, r.boot, r.n_examples)
    assert c.examples > 0 and c.interaction > 0  # B = 2 replicates suffice for a variance
    assert compare(r, r, 0.9, 0, "crossed-t").level == 0.9


def test_a_binary_array_of_the_wrong_shape_is_refused_with_both_shapes() -> None:
    with pytest.raises(ValueError, match=r"^Resampled.binary has shape \(2, 3\); expected \(2, 4\)$"):
        Resampled(np.ones(2), np.ones((3, 2)), 4, np.ones((2, 3)))
