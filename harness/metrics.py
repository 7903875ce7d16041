"""Evaluation metrics: accuracy, OOD detection (AUROC, FPR at 95% TPR, AUPR-In/Out), calibration (ECE, Brier, NLL).

Conventions:

* OOD scores are higher = more in-distribution; in-distribution (ID) is the positive class.
* ``score_in`` is (n,) ID scores, ``score_out`` is (m,) OOD scores.
* The weighted forms take resampling counts ``w_in`` (B, n) and ``w_out`` (B, m): example i
  counts ``w[b, i]`` times in replicate b. They are the one implementation; the scalar
  metrics call them with a single all-ones replicate.

The weighted forms sort each class's scores once, locate the other class's scores (ties
included) in that order with ``searchsorted``, and read weights off cumulative sums along the
sorted order, so B replicates cost O(B * (n + m)) instead of B sorts.

Calibration metrics take per-example arrays: ``confidence`` (n,) max softmax probability in
[0, 1] with ``correct`` (n,) bool (ECE, reliability bins; ECE also has a weighted form, ``w``
(B, n)), or ``probs`` (n, K) class probabilities with ``labels`` (n,) int (Brier score, NLL).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

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


class _Sorted:
    """Both classes' scores sorted once with their cumulative weights (see :func:`_cumulative`):
    every OOD metric below reads what it needs from one instance, so computing all four costs
    two sorts, not eight."""

    def __init__(self, s_in: np.ndarray, s_out: np.ndarray, wi: np.ndarray, wo: np.ndarray) -> None:
        self.s_in, self.s_out, self.wi, self.wo = s_in, s_out, wi, wo
        self.sorted_in, self.cum_in = _cumulative(s_in, wi)
        self.sorted_out, self.cum_out = _cumulative(s_out, wo)

    def out_below(self, v: np.ndarray, inclusive: bool) -> np.ndarray:
        """(B, len(v)) weight of OOD scores < v (<= v when ``inclusive``)."""
        return self.cum_out[:, np.searchsorted(self.sorted_out, v, side="right" if inclusive else "left")]

    def in_below(self, v: np.ndarray, inclusive: bool) -> np.ndarray:
        """(B, len(v)) weight of ID scores < v (<= v when ``inclusive``)."""
        return self.cum_in[:, np.searchsorted(self.sorted_in, v, side="right" if inclusive else "left")]

    def auroc(self) -> np.ndarray:
        wins = 0.5 * np.einsum("bi,bi->b", self.wi, self.out_below(self.s_in, False) + self.out_below(self.s_in, True))
        return wins / (self.wi.sum(axis=1) * self.cum_out[:, -1])

    def fpr_at_tpr(self, tpr: float) -> np.ndarray:
        total_in = self.cum_in[:, -1:]
        # Position j stands for threshold sorted_in[j]; inside a tie group cum_in[:, j] undercounts the weight
        # below, but the qualifying positions still form a prefix ending in the right group, as the fraction
        # only falls as j rises. Dividing (not comparing with tpr * total) matches sklearn's roc_curve at ties.
        reaches = (total_in - self.cum_in[:, :-1]) / total_in >= tpr
        threshold = self.sorted_in[reaches.sum(axis=1) - 1]
        total_out = self.cum_out[:, -1]
        out_below = self.cum_out[np.arange(len(threshold)), np.searchsorted(self.sorted_out, threshold, side="left")]
        return (total_out - out_below) / total_out

    def tpr_at_fpr(self, fpr: float) -> np.ndarray:
        """(B,) the largest weighted fraction of ``s_in`` scores flagged at a false-positive rate of at most
        ``fpr``: flag every score above c, where c is the lowest ``s_out`` score with a weight of ``s_out``
        scores above it at most ``fpr`` of theirs. A tie group falls wholly on one side of c (a score equal to
        c is not flagged), so this is the highest TPR of a ROC curve point with FPR <= ``fpr``; with m
        ``s_out`` scores and ``fpr`` < 1/m, the fraction of ``s_in`` scores above every ``s_out`` score."""
        total_out, total_in = self.cum_out[:, -1:], self.cum_in[:, -1]
        # the weight above each sorted s_out score only falls along the order: the first that passes is c
        passes = (total_out - self.out_below(self.sorted_out, True)) / total_out <= fpr
        c = self.sorted_out[np.argmax(passes, axis=1)]  # the highest score always passes (nothing above it)
        above = total_in - self.cum_in[np.arange(len(c)), np.searchsorted(self.sorted_in, c, side="right")]
        return above / total_in

    def aupr_in(self) -> np.ndarray:
        # ID positive: at ID score s_i, every example with a score >= s_i is predicted positive
        tp = self.cum_in[:, -1:] - self.in_below(self.s_in, False)
        fp = self.cum_out[:, -1:] - self.out_below(self.s_in, False)
        return _average_precision(self.wi, tp, fp)

    def aupr_out(self) -> np.ndarray:
        # OOD positive, scores negated: at OOD score s_j, every example with a score <= s_j is positive
        return _average_precision(self.wo, self.out_below(self.s_out, True), self.in_below(self.s_out, True))


def _average_precision(w_pos: np.ndarray, tp: np.ndarray, fp: np.ndarray) -> np.ndarray:
    """Average precision (B,): each positive example i adds ``w_pos[b, i] / total`` recall at its own
    threshold, where ``tp`` and ``fp`` (B, n_pos) weigh every example predicted positive there, so a tie
    group enters at one threshold (as sklearn's average_precision_score)."""
    # tp + fp is 0 only where every example from the threshold on has weight 0, w_pos[b, i] included.
    precision = np.divide(tp, tp + fp, out=np.zeros_like(tp), where=tp + fp > 0)
    return (w_pos * precision).sum(axis=1) / w_pos.sum(axis=1)


# The one place that says which metrics are computed from two score arrays, ``score_in`` and ``score_out``
# (an OOD condition's test against OOD scores; a membership condition's members against non-members): each
# name's weighted form over one :class:`_Sorted`. harness.stats resamples them (both classes, stratified) and
# the report builder estimates every such metric of a condition from one sort (harness.reports.estimates).
TWO_SAMPLE_METRICS: dict[str, Callable[[_Sorted], np.ndarray]] = {
    "auroc": _Sorted.auroc,
    "fpr95": lambda s: s.fpr_at_tpr(0.95),
    "aupr_in": _Sorted.aupr_in,
    "aupr_out": _Sorted.aupr_out,
    # membership inference (harness.membership): members are score_in, higher score = more likely a member
    "membership_auroc": _Sorted.auroc,
    "membership_tpr_1pct": lambda s: s.tpr_at_fpr(0.01),
    "membership_tpr_01pct": lambda s: s.tpr_at_fpr(0.001),
}


def ood_metrics_weighted(score_in: ArrayLike, score_out: ArrayLike, w_in: ArrayLike, w_out: ArrayLike,
                         metrics: Sequence[str]) -> dict[str, np.ndarray]:
    """Several two-sample metrics (names in :data:`TWO_SAMPLE_METRICS`) for each of B replicates at once:
    (n,), (m,), (B, n), (B, m) -> {name: (B,)}, from one sort of each class."""
    sorted_ = _Sorted(*_prepare(score_in, score_out, w_in, w_out))
    return {name: TWO_SAMPLE_METRICS[name](sorted_) for name in metrics}


def auroc_weighted(score_in: ArrayLike, score_out: ArrayLike, w_in: ArrayLike, w_out: ArrayLike) -> np.ndarray:
    """AUROC for each of B resampling replicates: (n,), (m,), (B, n), (B, m) -> (B,); higher is better.

    The weighted probability that an ID score exceeds an OOD score, ties counting 1/2
    (Mann-Whitney U / (n m) on the replicated data). Scores: higher = more in-distribution.
    """
    return _Sorted(*_prepare(score_in, score_out, w_in, w_out)).auroc()


def fpr_at_tpr_weighted(
    score_in: ArrayLike, score_out: ArrayLike, w_in: ArrayLike, w_out: ArrayLike, tpr: float = 0.95
) -> np.ndarray:
    """FPR at ``tpr`` for each of B replicates: (n,), (m,), (B, n), (B, m) -> (B,); lower is better.

    Threshold t is the largest score with (weighted) fraction of ID scores >= t at least ``tpr``;
    the result is the (weighted) fraction of OOD scores >= t. Scores: higher = more in-distribution.
    """
    if not 0.0 < tpr <= 1.0:
        raise ValueError(f"tpr must be in (0, 1]; got {tpr}")
    return _Sorted(*_prepare(score_in, score_out, w_in, w_out)).fpr_at_tpr(tpr)


def aupr_in_weighted(score_in: ArrayLike, score_out: ArrayLike, w_in: ArrayLike, w_out: ArrayLike) -> np.ndarray:
    """AUPR-In for each of B replicates: (n,), (m,), (B, n), (B, m) -> (B,); higher is better.

    Average precision with ID positive: the sum over thresholds of precision times the recall gained
    there, as sklearn's average_precision_score. Scores: higher = more in-distribution.
    """
    return _Sorted(*_prepare(score_in, score_out, w_in, w_out)).aupr_in()


def aupr_out_weighted(score_in: ArrayLike, score_out: ArrayLike, w_in: ArrayLike, w_out: ArrayLike) -> np.ndarray:
    """AUPR-Out for each of B replicates: (n,), (m,), (B, n), (B, m) -> (B,); higher is better.

    Average precision with OOD positive and the scores negated (lower = more OOD). Scores as
    everywhere here: higher = more in-distribution.
    """
    return _Sorted(*_prepare(score_in, score_out, w_in, w_out)).aupr_out()


def tpr_at_fpr_weighted(
    score_in: ArrayLike, score_out: ArrayLike, w_in: ArrayLike, w_out: ArrayLike, fpr: float = 0.01
) -> np.ndarray:
    """TPR at a false-positive rate of at most ``fpr`` for each of B replicates: (n,), (m,), (B, n), (B, m)
    -> (B,); ``score_in`` are the positives (higher = more likely positive).

    The threshold is set on the ``score_out`` scores alone, as the membership-inference literature does
    (Carlini et al. 2022): the lowest c with the weight of ``score_out`` scores above c at most ``fpr`` of
    theirs; the result is the weight of ``score_in`` scores above c. Ties: a score equal to c is not
    flagged, so a tie group is flagged whole or not at all (the best point of sklearn's roc_curve with FPR
    <= ``fpr``). With m ``score_out`` scores an FPR below 1/m flags nothing that ties or falls below the
    highest of them: the result is then the fraction of ``score_in`` scores above every ``score_out`` score.
    """
    if not 0.0 < fpr < 1.0:
        raise ValueError(f"fpr must be in (0, 1); got {fpr}")
    return _Sorted(*_prepare(score_in, score_out, w_in, w_out)).tpr_at_fpr(fpr)


def _unweighted(score_in: ArrayLike, score_out: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    s_in, s_out = _scores(score_in, score_out)
    return np.ones((1, s_in.size)), np.ones((1, s_out.size))


def auroc(score_in: ArrayLike, score_out: ArrayLike) -> float:
    """AUROC of (n,) ID vs (m,) OOD scores, ID positive; higher is better; equals sklearn's roc_auc_score."""
    return float(auroc_weighted(score_in, score_out, *_unweighted(score_in, score_out))[0])


def fpr_at_tpr(score_in: ArrayLike, score_out: ArrayLike, tpr: float = 0.95) -> float:
    """Fraction of (m,) OOD scores at or above the threshold keeping ``tpr`` of (n,) ID scores; lower is better."""
    return float(fpr_at_tpr_weighted(score_in, score_out, *_unweighted(score_in, score_out), tpr=tpr)[0])


def aupr_in(score_in: ArrayLike, score_out: ArrayLike) -> float:
    """AUPR-In of (n,) ID vs (m,) OOD scores, ID positive; higher is better; sklearn's average_precision_score."""
    return float(aupr_in_weighted(score_in, score_out, *_unweighted(score_in, score_out))[0])


def aupr_out(score_in: ArrayLike, score_out: ArrayLike) -> float:
    """AUPR-Out of (n,) ID vs (m,) OOD scores, OOD positive, scores negated; higher is better."""
    return float(aupr_out_weighted(score_in, score_out, *_unweighted(score_in, score_out))[0])


def tpr_at_fpr(score_in: ArrayLike, score_out: ArrayLike, fpr: float = 0.01) -> float:
    """Fraction of (n,) positive scores above the threshold that flags at most ``fpr`` of (m,) negative
    scores (:func:`tpr_at_fpr_weighted`); in [0, 1]."""
    return float(tpr_at_fpr_weighted(score_in, score_out, *_unweighted(score_in, score_out), fpr=fpr)[0])


def _calibration_inputs(confidence: ArrayLike, correct: ArrayLike, n_bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Validated ``confidence`` (n,) in [0, 1] and ``correct`` (n,) bool."""
    if isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer; got {n_bins!r}")
    conf = _as_float_array(confidence, "confidence", 1, "a calibration metric needs at least one example")
    if ((conf < 0) | (conf > 1)).any():
        raise ValueError("confidence must lie in [0, 1]; pass the max softmax probability, not a logit")
    corr = _as_binary(correct, "correct", "a calibration metric needs at least one example")
    if corr.size != conf.size:
        raise ValueError(f"correct has {corr.size} entries but confidence has {conf.size}; pass one per example")
    return conf, corr


def calibration_bins(conf: np.ndarray, n_bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Equal-width bin edges (n_bins + 1,) over [0, 1] and the bin (n,) int of each confidence:
    bin j holds [edges[j], edges[j + 1]), the last bin also 1.0."""
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    return edges, np.minimum(np.searchsorted(edges, conf, side="right") - 1, n_bins - 1)


def _binned(conf: np.ndarray, corr: np.ndarray, w: np.ndarray, n_bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Bin edges (n_bins + 1,) and per-bin sums (3, B, n_bins) of weight, weight * confidence, weight * correct.

    Bin j holds confidences in [edges[j], edges[j + 1]); the last bin also holds 1.0. One bincount
    over row-offset bin indices sums all B replicates at once.
    """
    edges, bins = calibration_bins(conf, n_bins)
    cells = (bins + n_bins * np.arange(w.shape[0])[:, None]).ravel()
    sums = [np.bincount(cells, weights=(w * v).ravel(), minlength=w.shape[0] * n_bins) for v in (1.0, conf, corr)]
    return edges, np.stack(sums).reshape(3, w.shape[0], n_bins)


def expected_calibration_error_weighted(
    confidence: ArrayLike, correct: ArrayLike, w: ArrayLike, n_bins: int = 15
) -> np.ndarray:
    """ECE for each of B replicates: confidence (n,), correct (n,), w (B, n) -> (B,); lower is better.

    ``confidence`` is the max softmax probability in [0, 1], ``correct`` whether the prediction was
    right; the sum over ``n_bins`` equal-width bins of (bin weight / total weight) * |accuracy -
    mean confidence|, a fraction in [0, 1]. Bins as in :func:`reliability_bins`.
    """
    conf, corr = _calibration_inputs(confidence, correct, n_bins)
    count, conf_sum, corr_sum = _binned(conf, corr, _weights(w, conf.size, "w", "confidence"), n_bins)[1]
    return np.abs(corr_sum - conf_sum).sum(axis=1) / count.sum(axis=1)


def expected_calibration_error(confidence: ArrayLike, correct: ArrayLike, n_bins: int = 15) -> float:
    """ECE of (n,) max softmax probabilities against (n,) bool outcomes over equal-width bins; lower is better."""
    return float(expected_calibration_error_weighted(confidence, correct, np.ones((1, np.size(confidence))), n_bins)[0])


def reliability_bins(confidence: ArrayLike, correct: ArrayLike, n_bins: int = 15) -> dict[str, np.ndarray]:
    """The data of a reliability diagram of (n,) confidences in [0, 1] and (n,) bool outcomes.

    Returns ``edges`` (n_bins + 1,) from 0 to 1, and per bin ``count`` (n_bins,) int, ``mean_confidence``
    (n_bins,) and ``accuracy`` (n_bins,), NaN for an empty bin. Bin j holds confidences in
    [edges[j], edges[j + 1]); the last bin also holds 1.0.
    """
    conf, corr = _calibration_inputs(confidence, correct, n_bins)
    edges, (count, conf_sum, corr_sum) = _binned(conf, corr, np.ones((1, conf.size)), n_bins)
    filled = count[0] > 0
    return {
        "edges": edges,
        "count": count[0].astype(np.int64),
        "mean_confidence": np.divide(conf_sum[0], count[0], out=np.full(n_bins, np.nan), where=filled),
        "accuracy": np.divide(corr_sum[0], count[0], out=np.full(n_bins, np.nan), where=filled),
    }


def _probs_labels(probs: ArrayLike, labels: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Validated ``probs`` (n, K), rows in [0, 1] summing to 1, and ``labels`` (n,) int in [0, K)."""
    p = _as_float_array(probs, "probs", 2, "a probabilistic metric needs at least one example and class")
    n, k = p.shape
    if ((p < 0) | (p > 1)).any():
        raise ValueError("probs must lie in [0, 1]; pass softmax probabilities, not logits")
    row_sums = p.sum(axis=1)
    if (np.abs(row_sums - 1) > 1e-4).any():
        i = int(np.argmax(np.abs(row_sums - 1)))
        raise ValueError(f"probs rows must sum to 1 (within 1e-4); row {i} sums to {row_sums[i]:.6g}")
    y = _as_float_array(labels, "labels", 1)
    if y.size != n:
        raise ValueError(f"labels has {y.size} entries but probs has {n} rows; pass one label per example")
    if not ((y == np.floor(y)) & (y >= 0) & (y < k)).all():
        raise ValueError(f"labels must be integer class indices in [0, {k}) to match the {k} columns of probs")
    return p, y.astype(np.intp)


def brier_score(probs: ArrayLike, labels: ArrayLike) -> float:
    """Multi-class Brier score of (n, K) probabilities and (n,) int labels; in [0, 2], lower is better.

    The mean over examples of the sum over classes of (p_k - onehot_k)^2.
    """
    p, y = _probs_labels(probs, labels)
    err = p.copy()
    err[np.arange(y.size), y] -= 1.0
    return float(np.mean(np.sum(err**2, axis=1)))


def nll(probs: ArrayLike, labels: ArrayLike) -> float:
    """Mean negative log-likelihood (nats) of (n,) int labels under (n, K) probabilities; lower is better.

    Probabilities are clipped at 1e-12 before the log, so a zero probability of the true class
    costs log(1e12) ~ 27.6 instead of inf.
    """
    p, y = _probs_labels(probs, labels)
    return float(-np.mean(np.log(np.maximum(p[np.arange(y.size), y], 1e-12))))
