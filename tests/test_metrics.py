"""Tests for harness.metrics: hand-computed cases, sklearn cross-checks, weighted == unweighted."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score, roc_curve

from harness.metrics import (
    accuracy,
    aupr_in,
    aupr_in_weighted,
    aupr_out,
    aupr_out_weighted,
    auroc,
    auroc_weighted,
    brier_score,
    expected_calibration_error,
    expected_calibration_error_weighted,
    fpr_at_tpr,
    fpr_at_tpr_weighted,
    nll,
    ood_metrics_weighted,
    reliability_bins,
)

# (weighted form, scalar form) of every two-sample OOD metric
OOD_METRICS = [
    (auroc_weighted, auroc),
    (fpr_at_tpr_weighted, fpr_at_tpr),
    (aupr_in_weighted, aupr_in),
    (aupr_out_weighted, aupr_out),
]


def _random_scores(seed: int, tied: bool) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    n, m = rng.integers(1, 60, size=2)
    if tied:  # few distinct values: many ties within and across the two classes
        return rng.integers(0, 6, n).astype(float), rng.integers(0, 5, m).astype(float)
    return rng.normal(0.8, 1.0, n), rng.normal(0.0, 1.0, m)


def _sklearn_fpr_at_95(score_in: np.ndarray, score_out: np.ndarray) -> float:
    labels = np.r_[np.ones(score_in.size), np.zeros(score_out.size)]
    # drop_intermediate=False keeps every threshold, so "first point with tpr >= 0.95" is the true one.
    fpr, tpr, _ = roc_curve(labels, np.r_[score_in, score_out], drop_intermediate=False)
    return float(fpr[np.argmax(tpr >= 0.95)])


def _random_probs(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(n, K) softmax probabilities and (n,) labels; K >= 2 and some classes may never occur."""
    rng = np.random.default_rng(seed)
    n, k = rng.integers(1, 60), rng.integers(2, 8)
    logits = 2.0 * rng.normal(size=(n, k))
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    return probs / probs.sum(axis=1, keepdims=True), rng.integers(0, k, n)


def _random_calibration(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(n,) confidences in [0, 1], with exact 0, 1 and bin edges among them, and (n,) bool outcomes."""
    rng = np.random.default_rng(seed)
    n = rng.integers(1, 80)
    conf = np.where(rng.random(n) < 0.2, rng.integers(0, 16, n) / 15, rng.random(n))
    return conf, rng.random(n) < conf


def test_accuracy_is_fraction_correct() -> None:
    assert accuracy([1, 0, 1, 1]) == 0.75
    assert accuracy(np.array([True, False])) == 0.5


def test_auroc_hand_computed() -> None:
    # Pairs (ID, OOD): 1>0, 1=1 (1/2), 2>0, 2>1, 3>0, 3>1 -> 5.5 of 6.
    assert auroc([1, 2, 3], [0, 1]) == pytest.approx(11 / 12, abs=1e-15)
    assert auroc([2, 3], [0, 1]) == 1.0
    assert auroc([0, 1], [2, 3]) == 0.0
    assert auroc([1, 1], [1, 1, 1]) == 0.5


def test_fpr_at_tpr_hand_computed() -> None:
    # t = 2 keeps 3 of 4 ID scores (75%); OOD scores >= 2 are 2 and 5.
    assert fpr_at_tpr([1, 2, 3, 4], [0, 1.5, 2, 5], tpr=0.75) == 0.5
    # 19 of 20 ID scores >= 1 is exactly 95%, so t = 1 (not 0); OOD 1 and 3 are >= 1.
    assert fpr_at_tpr(np.arange(20), [0.5, 1, 3]) == pytest.approx(2 / 3)
    assert fpr_at_tpr([5, 6], [0, 1]) == 0.0
    assert fpr_at_tpr([0, 1], [5, 6]) == 1.0


def test_aupr_in_hand_computed() -> None:
    # Thresholds 3, 2, 1: precision 1/1, 2/2, 3/4 (OOD 1 ties ID 1 and enters with it), recall +1/3 each.
    assert aupr_in([1, 2, 3], [0, 1]) == pytest.approx(11 / 12, abs=1e-15)
    assert aupr_in([2, 3], [0, 1]) == 1.0
    # Thresholds 1, 0: precision 1/3, 2/4.
    assert aupr_in([0, 1], [2, 3]) == pytest.approx(5 / 12, abs=1e-15)
    assert aupr_in([1, 1], [1, 1, 1]) == pytest.approx(2 / 5, abs=1e-15)  # one threshold: the ID fraction


def test_aupr_out_hand_computed() -> None:
    # OOD positive, lowest score first: OOD 0 (precision 1/1), then OOD 1 with ID 1 tied (2/3).
    assert aupr_out([1, 2, 3], [0, 1]) == pytest.approx(5 / 6, abs=1e-15)
    assert aupr_out([2, 3], [0, 1]) == 1.0
    assert aupr_out([1, 1], [1, 1, 1]) == pytest.approx(3 / 5, abs=1e-15)


def test_aupr_weighted_skips_top_examples_with_zero_weight() -> None:
    # ID 3 has weight 0 and no OOD score reaches it: no 0/0, and the result is that of [1] vs [0].
    np.testing.assert_array_equal(aupr_in_weighted([3, 1], [0], [[0, 1]], [[1]]), [1.0])
    np.testing.assert_array_equal(aupr_out_weighted([1], [-3, 0], [[1]], [[0, 1]]), [1.0])


@pytest.mark.parametrize("tied", [False, True])
@pytest.mark.parametrize("seed", range(25))
def test_aupr_matches_sklearn_average_precision(seed: int, tied: bool) -> None:
    score_in, score_out = _random_scores(seed, tied)
    is_in = np.r_[np.ones(score_in.size), np.zeros(score_out.size)]
    scores = np.r_[score_in, score_out]
    assert aupr_in(score_in, score_out) == pytest.approx(average_precision_score(is_in, scores), abs=1e-12)
    assert aupr_out(score_in, score_out) == pytest.approx(average_precision_score(1 - is_in, -scores), abs=1e-12)


@pytest.mark.parametrize("tied", [False, True])
@pytest.mark.parametrize("seed", range(25))
def test_auroc_matches_sklearn(seed: int, tied: bool) -> None:
    score_in, score_out = _random_scores(seed, tied)
    labels = np.r_[np.ones(score_in.size), np.zeros(score_out.size)]
    assert auroc(score_in, score_out) == pytest.approx(roc_auc_score(labels, np.r_[score_in, score_out]), abs=1e-12)


@pytest.mark.parametrize("tied", [False, True])
@pytest.mark.parametrize("seed", range(25))
def test_fpr_at_tpr_matches_sklearn_roc_curve(seed: int, tied: bool) -> None:
    score_in, score_out = _random_scores(seed, tied)
    assert fpr_at_tpr(score_in, score_out) == _sklearn_fpr_at_95(score_in, score_out)


@pytest.mark.parametrize(("weighted", "scalar"), OOD_METRICS)
def test_weighted_with_ones_equals_unweighted(
    weighted: Callable[..., np.ndarray], scalar: Callable[[np.ndarray, np.ndarray], float]
) -> None:
    score_in, score_out = _random_scores(3, tied=True)
    out = weighted(score_in, score_out, np.ones((4, score_in.size)), np.ones((4, score_out.size)))
    assert out.shape == (4,)
    np.testing.assert_array_equal(out, scalar(score_in, score_out))


@pytest.mark.parametrize("tied", [False, True])
def test_weighted_equals_metric_on_repeated_examples(tied: bool) -> None:
    score_in, score_out = _random_scores(11, tied)
    rng = np.random.default_rng(0)
    w_in = rng.integers(0, 4, size=(30, score_in.size))
    w_out = rng.integers(0, 4, size=(30, score_out.size))
    w_in[:, 0] += 1  # a replicate needs at least one example of each class
    w_out[:, 0] += 1
    for weighted, scalar in OOD_METRICS:
        values = weighted(score_in, score_out, w_in, w_out)
        for b in range(30):
            rep_in, rep_out = np.repeat(score_in, w_in[b]), np.repeat(score_out, w_out[b])
            assert values[b] == pytest.approx(scalar(rep_in, rep_out), abs=1e-12), (weighted.__name__, b)


def test_ece_of_perfectly_calibrated_bins_is_zero() -> None:
    # Within each bin the accuracy equals the mean confidence: 4 of 5 right at 0.8, 1 of 2 at 0.5.
    conf = [0.8] * 5 + [0.5] * 2
    correct = [1, 1, 1, 1, 0, 1, 0]
    assert expected_calibration_error(conf, correct) == pytest.approx(0.0, abs=1e-15)
    # 0.6 and 0.9 share the bin [0.5, 1]: mean confidence 0.75, accuracy 3/4, though no example matches.
    assert expected_calibration_error([0.6, 0.6, 0.9, 0.9], [1, 0, 1, 1], n_bins=2) == pytest.approx(0.0, abs=1e-15)


def test_ece_of_overconfident_predictions() -> None:
    assert expected_calibration_error([0.9] * 10, [1] * 6 + [0] * 4) == pytest.approx(0.3, abs=1e-15)
    # 4 at 0.95 with 2 right (gap 0.45), 6 at 0.55 with 3 right (gap 0.05): 0.4 * 0.45 + 0.6 * 0.05.
    conf, correct = [0.95] * 4 + [0.55] * 6, [1, 1, 0, 0] + [1, 1, 1, 0, 0, 0]
    assert expected_calibration_error(conf, correct) == pytest.approx(0.21, abs=1e-15)
    # Gaps are taken per bin, not per example: bin [0, 0.5) has confidence 0.3, accuracy 0; bin [0.5, 1]
    # has 0.7 and 1.
    assert expected_calibration_error([0.2, 0.4, 0.6, 0.8], [0, 0, 1, 1], n_bins=2) == pytest.approx(0.3, abs=1e-15)


def test_reliability_bins_hand_computed() -> None:
    bins = reliability_bins([0.0, 0.25, 0.3, 0.99, 1.0], [0, 1, 1, 0, 1], n_bins=4)
    assert set(bins) == {"edges", "count", "mean_confidence", "accuracy"}
    np.testing.assert_array_equal(bins["edges"], [0.0, 0.25, 0.5, 0.75, 1.0])
    # 0 lands in the first bin, the edge 0.25 in the bin it opens, 1.0 in the last bin; bin 3 is empty.
    np.testing.assert_array_equal(bins["count"], [1, 2, 0, 2])
    np.testing.assert_allclose(bins["mean_confidence"], [0.0, 0.275, np.nan, 0.995], rtol=0, atol=1e-15)
    np.testing.assert_allclose(bins["accuracy"], [0.0, 1.0, np.nan, 0.5], rtol=0, atol=1e-15)


@pytest.mark.parametrize("seed", range(10))
def test_reliability_bins_count_every_example_and_give_the_ece(seed: int) -> None:
    conf, correct = _random_calibration(seed)
    bins = reliability_bins(conf, correct)
    assert bins["edges"].shape == (16,) and bins["count"].shape == (15,)
    assert bins["count"].sum() == conf.size
    assert bins["count"][-1] >= np.sum(conf == 1.0) and bins["count"][0] >= np.sum(conf == 0.0)
    filled = bins["count"] > 0
    gaps = np.abs(bins["accuracy"] - bins["mean_confidence"])[filled]
    expected = float(np.sum(bins["count"][filled] / conf.size * gaps))
    assert expected_calibration_error(conf, correct) == pytest.approx(expected, abs=1e-12)


def test_ece_weighted_equals_ece_on_repeated_examples() -> None:
    conf, correct = _random_calibration(4)
    np.testing.assert_array_equal(
        expected_calibration_error_weighted(conf, correct, np.ones((3, conf.size))),
        expected_calibration_error(conf, correct),
    )
    w = np.random.default_rng(0).integers(0, 4, size=(30, conf.size))
    w[:, 0] += 1
    values = expected_calibration_error_weighted(conf, correct, w, n_bins=10)
    assert values.shape == (30,)
    for b in range(30):
        repeated = expected_calibration_error(np.repeat(conf, w[b]), np.repeat(correct, w[b]), n_bins=10)
        assert values[b] == pytest.approx(repeated, abs=1e-12)


def test_brier_score_hand_computed() -> None:
    assert brier_score([[1.0, 0.0], [0.5, 0.5]], [0, 1]) == pytest.approx(0.25, abs=1e-15)
    assert brier_score([[0.2, 0.5, 0.3]], [1]) == pytest.approx(0.04 + 0.25 + 0.09, abs=1e-15)
    assert brier_score([[0.0, 1.0]], [0]) == 2.0
    # Rows may miss 1 by up to 1e-4.
    assert brier_score([[0.5, 0.50005]], [1]) == pytest.approx(0.25 + 0.49995**2, abs=1e-15)


def test_nll_hand_computed() -> None:
    assert nll([[0.5, 0.5], [0.25, 0.75]], [0, 1]) == pytest.approx((np.log(2) + np.log(4 / 3)) / 2, abs=1e-15)
    assert nll([[1.0, 0.0]], [0]) == 0.0
    assert nll([[1.0, 0.0]], [1]) == pytest.approx(12 * np.log(10), abs=1e-12)  # clipped at 1e-12, not inf


@pytest.mark.parametrize("seed", range(25))
def test_brier_score_and_nll_match_sklearn(seed: int) -> None:
    probs, labels = _random_probs(seed)
    k = probs.shape[1]
    one_vs_rest = sum(brier_score_loss(labels == c, probs[:, c], pos_label=True) for c in range(k))
    assert brier_score(probs, labels) == pytest.approx(one_vs_rest, abs=1e-12)
    assert nll(probs, labels) == pytest.approx(log_loss(labels, probs, labels=range(k)), abs=1e-12)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: auroc([], [1.0]), "score_in is empty: an OOD metric needs at least one in-distribution score"),
        (lambda: fpr_at_tpr([1.0], []), "score_out is empty: an OOD metric needs at least one OOD score"),
        (lambda: auroc([1.0, np.nan], [0.0]), "score_in contains NaN or inf"),
        (lambda: auroc([[1.0]], [0.0]), r"score_in must be 1-D; got shape \(1, 1\)"),
        (lambda: accuracy([0, 2]), "correct must contain only 0/1"),
        (lambda: accuracy([]), "correct is empty"),
        (lambda: fpr_at_tpr([1.0], [0.0], tpr=0.0), r"tpr must be in \(0, 1\]; got 0.0"),
        (lambda: auroc_weighted([1, 2], [0], np.ones((3, 3)), np.ones((3, 1))), r"w_in has shape \(3, 3\); expected"),
        (lambda: auroc_weighted([1, 2], [0], -np.ones((3, 2)), np.ones((3, 1))), "w_in has negative entries"),
        (lambda: auroc_weighted([1, 2], [0], np.ones((3, 2)), np.ones((2, 1))), "w_in has 3 replicates but w_out has"),
        (lambda: fpr_at_tpr_weighted([1], [0], [[1]], [[0]]), "w_out has a replicate with zero total weight"),
        (lambda: aupr_in([], [1.0]), "score_in is empty: an OOD metric needs at least one in-distribution score"),
        (lambda: aupr_out([1.0], [np.inf]), "score_out contains NaN or inf"),
        (lambda: aupr_out_weighted([1, 2], [0], np.ones((1, 2)), np.ones((1, 2))), r"w_out has shape \(1, 2\)"),
        (lambda: expected_calibration_error([], []), "confidence is empty: a calibration metric needs"),
        (lambda: expected_calibration_error([0.5, 1.5], [1, 0]), r"confidence must lie in \[0, 1\]"),
        (lambda: expected_calibration_error([0.5], [1, 0]), "correct has 2 entries but confidence has 1"),
        (lambda: expected_calibration_error([0.5], [2]), "correct must contain only 0/1"),
        (lambda: expected_calibration_error([0.5], [1], n_bins=0), "n_bins must be a positive integer; got 0"),
        (lambda: reliability_bins([np.nan], [1]), "confidence contains NaN or inf"),
        (lambda: reliability_bins([[0.5]], [1]), r"confidence must be 1-D; got shape \(1, 1\)"),
        (lambda: expected_calibration_error_weighted([0.5], [1], np.ones((2, 2))), r"w has shape \(2, 2\)"),
        (lambda: brier_score(np.empty((0, 3)), []), "probs is empty: a probabilistic metric needs"),
        (lambda: brier_score([0.5, 0.5], [0]), r"probs must be 2-D; got shape \(2,\)"),
        (lambda: brier_score([[1.5, -0.5]], [0]), r"probs must lie in \[0, 1\]; pass softmax probabilities"),
        (lambda: brier_score([[0.5, 0.6]], [0]), r"probs rows must sum to 1 \(within 1e-4\); row 0 sums to 1.1"),
        (lambda: nll([[np.nan, 1.0]], [0]), "probs contains NaN or inf"),
        (lambda: nll([[0.5, 0.5]], [0, 1]), "labels has 2 entries but probs has 1 rows"),
        (lambda: nll([[0.5, 0.5]], [2]), r"labels must be integer class indices in \[0, 2\)"),
        (lambda: nll([[0.5, 0.5]], [0.5]), r"labels must be integer class indices in \[0, 2\)"),
        (lambda: nll([[0.5, 0.5]], [-1]), r"labels must be integer class indices in \[0, 2\)"),
        (lambda: brier_score([[0.5, 0.5]], [[0]]), r"labels must be 1-D; got shape \(1, 1\)"),
    ],
)
def test_bad_input_raises_one_line_value_error(call: Callable[[], object], message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        call()
    assert "\n" not in str(info.value)


# Timing (a quick script, not a test; B=2000, n=450, m=500, this 2-core machine): auroc_weighted
# ~20 ms and fpr_at_tpr_weighted ~24 ms per call, against a 30 ms target.


# Weights of the wrong length, one per weighted form: (call, the whole message). The message names
# the array, its shape, the length expected and the scores it must match.
_WRONG_LENGTH_WEIGHTS: list[tuple[Callable[[], object], str]] = [
    (lambda: expected_calibration_error_weighted([0.5, 0.9, 0.2], [1, 1, 0], np.ones((2, 4))),
     "w has shape (2, 4); expected (B, 3) to match confidence"),
    (lambda: expected_calibration_error_weighted([0.5], [1], np.ones((1, 2)), n_bins=5),
     "w has shape (1, 2); expected (B, 1) to match confidence"),
    *[(lambda f=f: f([1.0, 2.0], [0.0], np.ones((3, 3)), np.ones((3, 1))),
       "w_in has shape (3, 3); expected (B, 2) to match score_in")
      for f in (auroc_weighted, fpr_at_tpr_weighted, aupr_in_weighted, aupr_out_weighted)],
    *[(lambda f=f: f([1.0, 2.0], [0.0, 0.5, 3.0], np.ones((2, 2)), np.ones((2, 4))),
       "w_out has shape (2, 4); expected (B, 3) to match score_out")
      for f in (auroc_weighted, fpr_at_tpr_weighted, aupr_in_weighted, aupr_out_weighted)],
    (lambda: ood_metrics_weighted([1.0, 2.0], [0.0], np.ones((1, 1)), np.ones((1, 1)), ["auroc"]),
     "w_in has shape (1, 1); expected (B, 2) to match score_in"),
    (lambda: ood_metrics_weighted([1.0], [0.0, 2.0], np.ones((1, 1)), np.ones((1, 3)), ["fpr95", "aupr_out"]),
     "w_out has shape (1, 3); expected (B, 2) to match score_out"),
]


@pytest.mark.parametrize(("call", "message"), _WRONG_LENGTH_WEIGHTS,
                         ids=[f"{i}-{m.split()[0]}" for i, (_, m) in enumerate(_WRONG_LENGTH_WEIGHTS)])
def test_weights_of_the_wrong_length_name_the_scores_they_must_match(call: Callable[[], object],
                                                                     message: str) -> None:
    with pytest.raises(ValueError) as info:
        call()
    assert str(info.value) == message


def test_weights_with_no_replicate_are_refused_and_say_why() -> None:
    with pytest.raises(ValueError) as info:
        auroc_weighted([1.0, 2.0, 3.0], [0.0, 0.5], np.ones((0, 3)), np.ones((0, 2)))
    assert str(info.value) == "w_in is empty: a weighted metric needs at least one replicate"


def test_a_probability_above_1_is_refused_even_when_its_row_sums_to_1_within_tolerance() -> None:
    with pytest.raises(ValueError, match=r"^probs must lie in \[0, 1\]; pass softmax probabilities, not logits$"):
        brier_score(np.array([[1.00005, 0.0]]), np.array([0]))
