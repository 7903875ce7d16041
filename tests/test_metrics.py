"""Tests for harness.metrics: hand-computed cases, sklearn cross-checks, weighted == unweighted."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score, roc_curve

from harness.metrics import accuracy, auroc, auroc_weighted, fpr_at_tpr, fpr_at_tpr_weighted


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


@pytest.mark.parametrize("weighted", [auroc_weighted, fpr_at_tpr_weighted])
def test_weighted_with_ones_equals_unweighted(weighted: Callable[..., np.ndarray]) -> None:
    score_in, score_out = _random_scores(3, tied=True)
    scalar = auroc if weighted is auroc_weighted else fpr_at_tpr
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
    aucs = auroc_weighted(score_in, score_out, w_in, w_out)
    fprs = fpr_at_tpr_weighted(score_in, score_out, w_in, w_out)
    for b in range(30):
        rep_in, rep_out = np.repeat(score_in, w_in[b]), np.repeat(score_out, w_out[b])
        assert aucs[b] == pytest.approx(auroc(rep_in, rep_out), abs=1e-12)
        assert fprs[b] == pytest.approx(fpr_at_tpr(rep_in, rep_out), abs=1e-12)


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
    ],
)
def test_bad_input_raises_one_line_value_error(call: Callable[[], object], message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        call()
    assert "\n" not in str(info.value)


# Timing (a quick script, not a test; B=2000, n=450, m=500, this 2-core machine): auroc_weighted
# ~20 ms and fpr_at_tpr_weighted ~24 ms per call, against a 30 ms target.
