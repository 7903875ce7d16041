"""Evaluation metrics: accuracy and the two OOD-detection metrics (AUROC, FPR at 95% TPR).

Conventions:

* OOD scores are higher = more in-distribution; in-distribution (ID) is the positive class.
* ``score_in`` is (n,) ID scores, ``score_out`` is (m,) OOD scores.
* The weighted forms take resampling counts ``w_in`` (B, n) and ``w_out`` (B, m): example i
  counts ``w[b, i]`` times in replicate b. They are the one implementation; the scalar
  metrics call them with a single all-ones replicate.

The weighted forms sort each class's scores once, locate the other class's scores (ties
included) in that order with ``searchsorted``, and read weights off cumulative sums along the
sorted order, so B replicates cost O(B * (n + m)) instead of B sorts.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike


def _as_float_array(x: ArrayLike, name: str, ndim: int, need: str | None = None) -> np.ndarray:
    """``x`` as a finite float array of rank ``ndim``; ``need`` says why it must be non-empty (None: may be)."""
    arr = np.asarray(x, dtype=float)
    if arr.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D; got shape {arr.shape}")
    if need is not None and arr.size == 0:
        raise ValueError(f"{name} is empty: {need}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or inf")
    return arr


def _as_binary(x: ArrayLike, name: str, need: str) -> np.ndarray:
    """(n,) bool or 0/1 values as a bool array."""
    arr = _as_float_array(x, name, 1, need)
    if not ((arr == 0) | (arr == 1)).all():
        raise ValueError(f"{name} must contain only 0/1 (or bool) values")
    return arr.astype(bool)


def _scores(score_in: ArrayLike, score_out: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    return (
        _as_float_array(score_in, "score_in", 1, "an OOD metric needs at least one in-distribution score"),
        _as_float_array(score_out, "score_out", 1, "an OOD metric needs at least one OOD score"),
    )


def _weights(w: ArrayLike, n: int, name: str, scores_name: str) -> np.ndarray:
    arr = _as_float_array(w, name, 2, "a weighted metric needs at least one replicate")
    if arr.shape[1] != n:
        raise ValueError(f"{name} has shape {arr.shape}; expected (B, {n}) to match {scores_name}")
    if (arr < 0).any():
        raise ValueError(f"{name} has negative entries; weights are resampling counts")
    if not (arr.sum(axis=1) > 0).all():
        raise ValueError(f"{name} has a replicate with zero total weight; each replicate needs one example")
    return arr


def _cumulative(scores: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scores sorted ascending (k,) and the weight of the j lowest of them, cum[:, j]: (B, k + 1).

    With ``i = searchsorted(sorted, v)`` the weight below v is ``cum[:, i]`` (side="left") or at
    or below v (side="right"); one sort of k scores serves every replicate.
    """
    order = np.argsort(scores, kind="stable")
    cum = np.zeros((w.shape[0], scores.size + 1))
    np.cumsum(np.take(w, order, axis=1), axis=1, out=cum[:, 1:])
    return scores[order], cum


def _prepare(
    score_in: ArrayLike, score_out: ArrayLike, w_in: ArrayLike, w_out: ArrayLike
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Validated ``score_in`` (n,), ``score_out`` (m,), ``w_in`` (B, n), ``w_out`` (B, m)."""
    s_in, s_out = _scores(score_in, score_out)
    wi = _weights(w_in, s_in.size, "w_in", "score_in")
    wo = _weights(w_out, s_out.size, "w_out", "score_out")
    if wi.shape[0] != wo.shape[0]:
        raise ValueError(f"w_in has {wi.shape[0]} replicates but w_out has {wo.shape[0]}")
    return s_in, s_out, wi, wo


def accuracy(correct: ArrayLike) -> float:
    """Fraction correct of (n,) bool or 0/1 outcomes; higher is better."""
    return float(_as_binary(correct, "correct", "accuracy needs at least one example").mean())


def auroc_weighted(score_in: ArrayLike, score_out: ArrayLike, w_in: ArrayLike, w_out: ArrayLike) -> np.ndarray:
    """AUROC for each of B resampling replicates: (n,), (m,), (B, n), (B, m) -> (B,); higher is better.

    The weighted probability that an ID score exceeds an OOD score, ties counting 1/2
    (Mann-Whitney U / (n m) on the replicated data). Scores: higher = more in-distribution.
    """
    s_in, s_out, wi, wo = _prepare(score_in, score_out, w_in, w_out)
    sorted_out, cum_out = _cumulative(s_out, wo)
    below = cum_out[:, np.searchsorted(sorted_out, s_in, side="left")]
    at_or_below = cum_out[:, np.searchsorted(sorted_out, s_in, side="right")]
    wins = 0.5 * np.einsum("bi,bi->b", wi, below + at_or_below)
    return wins / (wi.sum(axis=1) * cum_out[:, -1])


def fpr_at_tpr_weighted(
    score_in: ArrayLike, score_out: ArrayLike, w_in: ArrayLike, w_out: ArrayLike, tpr: float = 0.95
) -> np.ndarray:
    """FPR at ``tpr`` for each of B replicates: (n,), (m,), (B, n), (B, m) -> (B,); lower is better.

    Threshold t is the largest score with (weighted) fraction of ID scores >= t at least ``tpr``;
    the result is the (weighted) fraction of OOD scores >= t. Scores: higher = more in-distribution.
    """
    if not 0.0 < tpr <= 1.0:
        raise ValueError(f"tpr must be in (0, 1]; got {tpr}")
    s_in, s_out, wi, wo = _prepare(score_in, score_out, w_in, w_out)
    sorted_in, cum_in = _cumulative(s_in, wi)
    total_in = cum_in[:, -1:]
    # Position j stands for threshold sorted_in[j]; inside a tie group cum_in[:, j] undercounts the weight
    # below, but the qualifying positions still form a prefix ending in the right group, as the fraction
    # only falls as j rises. Dividing (not comparing with tpr * total) matches sklearn's roc_curve at ties.
    reaches = (total_in - cum_in[:, :-1]) / total_in >= tpr
    threshold = sorted_in[reaches.sum(axis=1) - 1]
    sorted_out, cum_out = _cumulative(s_out, wo)
    total_out = cum_out[:, -1]
    out_below = cum_out[np.arange(len(threshold)), np.searchsorted(sorted_out, threshold, side="left")]
    return (total_out - out_below) / total_out


def _unweighted(score_in: ArrayLike, score_out: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    s_in, s_out = _scores(score_in, score_out)
    return np.ones((1, s_in.size)), np.ones((1, s_out.size))


def auroc(score_in: ArrayLike, score_out: ArrayLike) -> float:
    """AUROC of (n,) ID vs (m,) OOD scores, ID positive; higher is better; equals sklearn's roc_auc_score."""
    return float(auroc_weighted(score_in, score_out, *_unweighted(score_in, score_out))[0])


def fpr_at_tpr(score_in: ArrayLike, score_out: ArrayLike, tpr: float = 0.95) -> float:
    """Fraction of (m,) OOD scores at or above the threshold keeping ``tpr`` of (n,) ID scores; lower is better."""
    return float(fpr_at_tpr_weighted(score_in, score_out, *_unweighted(score_in, score_out), tpr=tpr)[0])
