"""Confidence intervals and paired tests for a crossed seeds x examples design.

A variant is trained with S seeds and every seed's model is scored on the same n test examples,
so a per-seed statistic (accuracy, AUROC, ...) varies with both the seed and the test set.

* :func:`resample_mean` / :func:`resample_two_sample` compute the per-seed statistic on the
  observed examples, ``point`` (S,), and under B example resamples, ``boot`` (B, S). Resample b
  is shared by all seeds (they saw the same examples) and, given the same ``seed`` argument, by
  every variant, which is what pairs two variants in :func:`compare`.
* :func:`variance_components` splits the variance of the mean over seeds into a seed part and
  an example part (the interaction of seed and example, which both a seed resample and an
  example resample would count, is counted once). :func:`estimate` and :func:`compare` turn
  them into an interval by one of :data:`INTERVALS`; ``auto`` picks the validated default.
* The p-value of a comparison comes from the seeds (sign-flip test on per-seed differences);
  with one seed it falls back to McNemar (proportions) or the example bootstrap.

Every estimator is validated by simulation in tests/test_stats_validation.py: coverage from both
sides at 95% and 80%, by a check that known-bad intervals (a half-width 10% too wide, the
interaction counted twice, the old two-stage bootstrap) fail; type I error of the tests; Holm's
family-wise error rate; the power that :func:`detectable_difference` and :func:`seeds_needed`
promise. ``benchmarks/coverage.py`` prints the full coverage table, including the designs where an
estimator falls short, and the power at the predicted seeds.

Every random draw comes from ``np.random.default_rng((seed, stream))`` with a fixed stream per
purpose, so results are deterministic in ``seed`` and no global random state is touched.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import bdtr, ndtr, ndtri, stdtrit

from .metrics import TWO_SAMPLE_METRICS, _as_binary, _as_float_array, calibration_bins, ood_metrics_weighted

# Distinct streams: draws of different shapes from one default_rng(seed) would reuse the same
# bits, correlating e.g. the seed draw of a replicate with its example draw.
_EXAMPLES, _OOD_EXAMPLES, _SEEDS, _SIGNS, _SEED_BOOT = range(5)
_N_SIGN_FLIPS = 20000
# Replicates are reduced in blocks of this many rows, and counted in chunks of about this many
# draws: a chunk's bincount stays in cache (a 10 MB one was twice as slow per draw).
_BLOCK = 128
_CHUNK_CELLS = 2**17
# Draws of at most this many cells (B x n) are kept, as int32: a report reuses the same draws for
# every (variant, condition) of a metric. Larger ones (10,000 x 10,000 would be 400 MB) are drawn
# again when needed.
_CACHE_CELLS = 2**25


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its confidence interval; ``value`` is the mean over seeds."""

    value: float
    ci_low: float
    ci_high: float
    level: float
    method: str
    n_seeds: int
    n_examples: int
    caveat: str = ""  # when the design is outside the range where the method was validated

    def to_dict(self) -> dict[str, float | int | str]:
        return asdict(self)


@dataclass(frozen=True)
class Comparison:
    """Variant a minus variant b: mean per-seed difference, its interval and a paired p-value."""

    diff: float
    ci_low: float
    ci_high: float
    level: float
    p_value: float
    ci_method: str
    p_method: str
    n_seeds: int
    n_examples: int
    caveat: str = ""
    effect_size: float | None = None  # mean / sd of the per-seed differences (Cohen's d_z)
    mde: float | None = None  # smallest |difference| this design detects with 80% power
    seeds_needed: int | None = None  # seeds that would detect the observed difference with 80% power
    # the variance components behind the interval, for questions the report asks later (how many
    # seeds would settle a claim); not part of the serialised result
    components: Components | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, float | int | str | None]:
        d = asdict(self)
        d.pop("components")
        return d


@dataclass(frozen=True, eq=False)  # numpy fields: == would be ambiguous
class Resampled:
    """A per-seed statistic at the observed data and under B example-level resamples.

    ``point`` (S,): statistic per seed on the observed examples. ``boot`` (B, S): statistic per
    seed under example resample b (the same resample for every seed). ``n_examples``: examples
    per seed (n_in + n_out for two-sample metrics). ``binary`` (S, n): 0/1 outcomes when the
    statistic is a proportion, else None; it enables Wilson intervals and McNemar tests.
    """

    point: np.ndarray
    boot: np.ndarray
    n_examples: int
    binary: np.ndarray | None

    def __post_init__(self) -> None:
        if np.ndim(self.point) != 1 or np.size(self.point) == 0:
            raise ValueError(f"Resampled.point must be a non-empty (S,) array; got shape {np.shape(self.point)}")
        n_seeds = np.size(self.point)
        if np.ndim(self.boot) != 2 or np.shape(self.boot)[1] != n_seeds or np.size(self.boot) == 0:
            raise ValueError(f"Resampled.boot must have shape (B, {n_seeds}) with B >= 1; got {np.shape(self.boot)}")
        if self.n_examples < 1:
            raise ValueError(f"Resampled.n_examples must be >= 1; got {self.n_examples}")
        if self.binary is not None and np.shape(self.binary) != (n_seeds, self.n_examples):
            raise ValueError(
                f"Resampled.binary has shape {np.shape(self.binary)}; expected ({n_seeds}, {self.n_examples})"
            )


def _rng(seed: int, stream: int) -> np.random.Generator:
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer; got {seed!r}")
    return np.random.default_rng((int(seed), stream))


def _check_level(level: float) -> None:
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1); got {level}")


def _count_blocks(n: int, n_resamples: int, seed: int, stream: int) -> Iterator[np.ndarray]:
    """The (B, n) int resampling counts of ``example_weights``, as consecutive row blocks."""
    if n < 1:
        raise ValueError(f"n must be >= 1 to resample examples; got {n}")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1; got {n_resamples}")
    if n * n_resamples <= _CACHE_CELLS:
        yield from _drawn_blocks(n, n_resamples, seed, stream)
    else:
        yield from _draw(n, n_resamples, seed, stream)


def _draw(n: int, n_resamples: int, seed: int, stream: int) -> Iterator[np.ndarray]:
    """Draw B resamples of n examples with replacement; yield their int32 counts in blocks of up to
    _BLOCK rows (products with a block of that height are efficient), each counted in chunks of
    about _CHUNK_CELLS draws (a chunk's bincount stays in cache)."""
    rng = _rng(seed, stream)
    chunk = max(1, min(_BLOCK, _CHUNK_CELLS // n))
    # Offsetting each row lets one bincount count a whole chunk (rng.multinomial is ~10x slower).
    offsets = (n * np.arange(chunk, dtype=np.intp))[:, None]
    for start in range(0, n_resamples, _BLOCK):
        block = np.empty((min(_BLOCK, n_resamples - start), n), dtype=np.int32)
        for row in range(0, len(block), chunk):
            rows = min(chunk, len(block) - row)
            cells = rng.integers(0, n, size=(rows, n), dtype=np.intp)
            cells += offsets[:rows]
            block[row:row + rows] = np.bincount(cells.ravel(), minlength=rows * n).reshape(rows, n)
        yield block


@lru_cache(maxsize=8)
def _drawn_blocks(n: int, n_resamples: int, seed: int, stream: int) -> tuple[np.ndarray, ...]:
    # Cached (read-only): a report resamples every condition of a metric with the same draws, and
    # drawing them again for each of hundreds of (variant, condition) cells was most of its time.
    blocks = []
    for block in _draw(n, n_resamples, seed, stream):
        block.flags.writeable = False
        blocks.append(block)
    return tuple(blocks)


def example_weights(n: int, n_resamples: int, seed: int) -> np.ndarray:
    """(B, n) int counts: how often each of n examples appears in each of B resamples (deterministic in seed).

    These are the example draws of :func:`resample_mean` and the ID draws of :func:`resample_two_sample`
    with the same ``seed``, so a statistic computed from them pairs with theirs in :func:`compare`.
    """
    return np.concatenate(list(_count_blocks(n, n_resamples, seed, _EXAMPLES)))


def resample_mean(values: ArrayLike, n_resamples: int = 2000, seed: int = 0) -> Resampled:
    """Per-seed mean of (S, n) per-example outcomes (e.g. 0/1 correct, or loss) under B example resamples.

    ``binary`` is set when every value is 0 or 1, i.e. the statistic is a proportion.
    """
    return resample_means([values], n_resamples, seed)[0]


def resample_means(values: Sequence[ArrayLike], n_resamples: int = 2000, seed: int = 0) -> list[Resampled]:
    """:func:`resample_mean` of each (S_k, n_k) array in ``values``, with the same example draws.

    The arrays with the same number of examples share one (B, n) x (n, sum S_k) product, so a
    report's hundreds of (variant, condition) means read the resampling counts once.
    """
    arrays = [_as_float_array(v, "values", 2, "resample_mean needs at least one seed and one example") for v in values]
    out: list[Resampled | None] = [None] * len(arrays)
    by_n: dict[int, list[int]] = {}
    for i, a in enumerate(arrays):
        by_n.setdefault(a.shape[1], []).append(i)
    for n, idx in by_n.items():
        points = [arrays[i].mean(axis=1) for i in idx]
        # Resampling deviations from the seed mean keeps a constant row exactly constant in every replicate.
        centred = np.concatenate([arrays[i] - p[:, None] for i, p in zip(idx, points, strict=True)])
        # block by block: a (B, n) float copy of the counts would take B * n * 8 bytes (800 MB at 10k x 10k)
        boot = np.concatenate([block @ centred.T for block in _count_blocks(n, n_resamples, seed, _EXAMPLES)]) / n
        col = 0
        for i, p in zip(idx, points, strict=True):
            x = arrays[i]
            binary = x.astype(bool) if ((x == 0) | (x == 1)).all() else None
            out[i] = Resampled(point=p, boot=p + boot[:, col:col + len(p)], n_examples=n, binary=binary)
            col += len(p)
    return [r for r in out if r is not None]


def resample_two_sample(
    score_in: ArrayLike, score_out: ArrayLike, metric: str, n_resamples: int = 2000, seed: int = 0
) -> Resampled:
    """Per-seed OOD metric of (S, n) ID and (S, m) OOD scores under B example resamples.

    ``metric`` is "auroc", "aupr_in", "aupr_out" (higher is better) or "fpr95" (lower is
    better); scores are higher = more in-distribution. ID and OOD examples are resampled
    separately (stratified), with the draws shared across seeds.
    """
    return resample_ood(score_in, score_out, (metric,), n_resamples, seed)[metric]


def resample_ood(score_in: ArrayLike, score_out: ArrayLike, metrics: Sequence[str], n_resamples: int = 2000,
                 seed: int = 0) -> dict[str, Resampled]:
    """:func:`resample_two_sample` for several metrics at once, from one sort per seed."""
    return resample_ood_sets(score_in, [score_out], metrics, n_resamples, seed)[0]


def resample_ood_sets(score_in: ArrayLike, scores_out: Sequence[ArrayLike], metrics: Sequence[str],
                      n_resamples: int = 2000, seed: int = 0) -> list[dict[str, Resampled]]:
    """:func:`resample_ood` of (S, n) ID scores against each (S, m_k) OOD set of ``scores_out`` (a
    model's one set of test scores against several OOD sets): the same numbers, with the ID scores
    sorted once per seed and their cumulative weights made once per block for every set."""
    for metric in metrics:
        if metric not in TWO_SAMPLE_METRICS:
            raise ValueError(f"unknown metric {metric!r}; expected one of {sorted(TWO_SAMPLE_METRICS)}")
    s_in = _as_float_array(score_in, "score_in", 2, "an OOD metric needs at least one in-distribution score")
    s_outs = [_as_float_array(x, "score_out", 2, "an OOD metric needs at least one OOD score") for x in scores_out]
    for s_out in s_outs:
        if s_in.shape[0] != s_out.shape[0]:
            raise ValueError(f"score_in has {s_in.shape[0]} seeds but score_out has {s_out.shape[0]}")
    if not s_outs:
        return []
    import os
    from concurrent.futures import ThreadPoolExecutor
    from functools import partial

    n, ms = s_in.shape[1], [x.shape[1] for x in s_outs]
    sets = range(len(s_outs))
    Block = list[dict[str, np.ndarray]]  # per OOD set: {metric: (B,)}

    def general(s: int, w_in: np.ndarray, w_outs: list[np.ndarray]) -> Block:
        return [ood_metrics_weighted(s_in[s], x[s], w_in, w, metrics) for x, w in zip(s_outs, w_outs, strict=True)]

    seed_metrics: list[Callable[[np.ndarray, list[np.ndarray]], Block]]
    if set(metrics) <= set(_OOD_EXACT) and all(2 * n * m < 2**31 for m in ms):
        seed_metrics = [partial(_OodOrder(s_in[s], [x[s] for x in s_outs]).metrics, metrics=metrics)
                        for s in range(len(s_in))]
    else:  # a metric registered later, or sizes whose integer counts could overflow int32: the general forms
        seed_metrics = [partial(general, s) for s in range(len(s_in))]

    # numpy lets go of the GIL in the sorts, gathers, cumulative sums and arithmetic: the seeds of a block
    # are computed side by side, one thread per core (each seed's numbers are the same whichever computes them)
    big = (n + max(ms)) * len(s_outs) >= _PARALLEL_EXAMPLES
    threads = max(1, min(len(seed_metrics), os.cpu_count() or 1)) if big else 1
    with ThreadPoolExecutor(max_workers=threads) as pool:
        def per_seed(w_in: np.ndarray, w_outs: list[np.ndarray]) -> list[dict[str, np.ndarray]]:
            """Per OOD set, {metric: (B, S)} for one block of draws."""
            seeds = list(pool.map(lambda f: f(w_in, w_outs), seed_metrics)) if threads > 1 else [
                f(w_in, w_outs) for f in seed_metrics]
            return [{k: np.stack([d[j][k] for d in seeds], axis=1) for k in metrics} for j in sets]

        point = per_seed(np.ones((1, n), dtype=np.int32), [np.ones((1, m), dtype=np.int32) for m in ms])
        draws = zip(_count_blocks(n, n_resamples, seed, _EXAMPLES),
                    *(_count_blocks(m, n_resamples, seed, _OOD_EXAMPLES) for m in ms), strict=True)
        blocks = [per_seed(w_in, list(w_outs)) for w_in, *w_outs in draws]
    return [{k: Resampled(point=point[j][k][0], boot=np.concatenate([b[j][k] for b in blocks]),
                          n_examples=n + m, binary=None) for k in metrics} for j, m in zip(sets, ms, strict=True)]


_PARALLEL_EXAMPLES = 4096  # examples (ID plus OOD, over the sets) from which a block's seeds go on several threads
_OOD_EXACT = ("auroc", "fpr95", "aupr_in", "aupr_out")
_OOD_CACHE_CELLS = 2**17  # replicates x examples computed at once: their int32 cumulative weights fit a core's cache


@dataclass(frozen=True, eq=False)
class _OodSet:
    """One OOD set's (m,) scores sorted, and where each ID and OOD score falls in either sorted class
    (positions in the cumulative weights, which are n + 1 or m + 1 long, 0 first)."""

    order: np.ndarray
    sorted: np.ndarray
    out_lt_in: np.ndarray  # OOD scores < each ID score
    ties: np.ndarray  # the ID examples whose score some OOD score equals
    out_le_ties: np.ndarray  # OOD scores <= each of those ID scores
    out_le_out: np.ndarray  # OOD scores <= each OOD score
    in_le_out: np.ndarray  # ID scores <= each OOD score

    @classmethod
    def of(cls, s_in: np.ndarray, sorted_in: np.ndarray, s_out: np.ndarray) -> _OodSet:
        order = np.argsort(s_out, kind="stable")
        sorted_out = s_out[order]
        lt, le = np.searchsorted(sorted_out, s_in, side="left"), np.searchsorted(sorted_out, s_in, side="right")
        ties = np.flatnonzero(le != lt)
        return cls(order, sorted_out, lt, ties, le[ties], np.searchsorted(sorted_out, s_out, side="right"),
                   np.searchsorted(sorted_in, s_out, side="right"))


class _OodOrder:
    """One seed's (n,) ID scores, sorted once, against each of its OOD sets (:class:`_OodSet`);
    :meth:`metrics` gives the OOD metrics of a block of integer resampling counts.

    It computes exactly what harness.metrics.ood_metrics_weighted computes from the same counts, bit
    for bit, with less work: the counts stay int32 (cumulative weights are whole numbers, so AUROC's
    numerator, the FPR's counts and each precision's numerator and denominator are exact integers
    however they are summed), the sorts and searches are made once per seed instead of once per
    block, the ID side once for every OOD set, and the only sums of fractions (each AUPR's sum of
    weight x precision) are the same numpy sums over the same rows in example order (pairwise
    summation is order-dependent)."""

    def __init__(self, s_in: np.ndarray, s_outs: list[np.ndarray]) -> None:
        self.n = s_in.size
        self.order_in = np.argsort(s_in, kind="stable")
        self.sorted_in = s_in[self.order_in]
        self.in_lt_in = np.searchsorted(self.sorted_in, s_in, side="left")  # ID scores < each ID score
        self.sets = [_OodSet.of(s_in, self.sorted_in, s_out) for s_out in s_outs]
        # the largest ID threshold with >= 95% of the ID weight at or above it: (n - below) / n >= 0.95
        # falls as the weight below grows, so it holds exactly while that weight is at most `most_below`
        below = np.arange(self.n + 1, dtype=np.float64)
        self.most_below = np.count_nonzero((np.float64(self.n) - below) / np.float64(self.n) >= 0.95) - 1

    @staticmethod
    def _cumulative(w: np.ndarray, order: np.ndarray) -> np.ndarray:
        """(B, k + 1) int32: column j is the weight of the j lowest scores."""
        cum = np.zeros((w.shape[0], w.shape[1] + 1), dtype=np.int32)
        np.cumsum(np.take(w, order, axis=1), axis=1, dtype=np.int32, out=cum[:, 1:])
        return cum

    @staticmethod
    def _average_precision(w_pos: np.ndarray, tp: np.ndarray, fp: np.ndarray, total: int) -> np.ndarray:
        """harness.metrics._average_precision with int32 ``tp`` and ``fp``: tp / (tp + fp), 0 where both
        are 0 (tp / 1 = 0 there, as that function's ``where``), times the weights, summed per row."""
        den = tp + fp
        np.maximum(den, 1, out=den)
        precision = np.divide(tp, den)  # float64, each quotient of two whole numbers as there
        np.multiply(precision, w_pos, out=precision)
        return precision.sum(axis=1) / np.float64(total)

    def metrics(self, w_in: np.ndarray, w_outs: list[np.ndarray], metrics: Sequence[str]
                ) -> list[dict[str, np.ndarray]]:
        """Per OOD set, {metric: (B,)} for (B, n) and (B, m_k) int32 resampling counts (each row summing
        to n and m_k), a few rows at a time: a replicate's numbers depend on its own row alone, and
        rows whose cumulative weights stay in a core's cache are about 1.5x faster than a block's."""
        rows = max(1, _OOD_CACHE_CELLS // max(self.n, *(len(o.order) for o in self.sets)))
        if len(w_in) <= rows:
            return self._metrics(w_in, w_outs, metrics)
        parts = [self._metrics(w_in[r:r + rows], [w[r:r + rows] for w in w_outs], metrics)
                 for r in range(0, len(w_in), rows)]
        return [{k: np.concatenate([p[j][k] for p in parts]) for k in metrics} for j in range(len(self.sets))]

    def _metrics(self, w_in: np.ndarray, w_outs: list[np.ndarray], metrics: Sequence[str]
                 ) -> list[dict[str, np.ndarray]]:
        n = self.n
        cum_in = self._cumulative(w_in, self.order_in)
        tp_in = n - np.take(cum_in, self.in_lt_in, axis=1) if "aupr_in" in metrics else None  # ID weight >= each
        threshold = None
        if "fpr95" in metrics:  # the ID threshold of each replicate (its FPR counts the OOD weight at or above it)
            threshold = self.sorted_in[np.count_nonzero(cum_in[:, :-1] <= self.most_below, axis=1) - 1]
        out = []
        for o, w_out in zip(self.sets, w_outs, strict=True):
            m = len(o.order)
            cum_out = self._cumulative(w_out, o.order)
            out_lt_in = np.take(cum_out, o.out_lt_in, axis=1)  # (B, n) OOD weight below each ID score
            got: dict[str, np.ndarray] = {}
            if "auroc" in metrics:
                # wins: OOD weight below each ID score, ties half: (2 below + equal) / 2, times the ID weight
                wins = 2 * np.einsum("bi,bi->b", w_in, out_lt_in, dtype=np.int64)
                if o.ties.size:
                    equal = np.take(cum_out, o.out_le_ties, axis=1) - np.take(out_lt_in, o.ties, axis=1)
                    wins += np.einsum("bi,bi->b", np.take(w_in, o.ties, axis=1), equal, dtype=np.int64)
                got["auroc"] = 0.5 * wins.astype(np.float64) / (np.float64(n) * np.float64(m))
            if threshold is not None:
                at = np.searchsorted(o.sorted, threshold, side="left")
                fp = cum_out[np.arange(len(at)), at].astype(np.float64)
                got["fpr95"] = (np.float64(m) - fp) / np.float64(m)
            if tp_in is not None:
                got["aupr_in"] = self._average_precision(w_in, tp_in, m - out_lt_in, n)
            if "aupr_out" in metrics:
                # OOD positive, scores negated: weight at or below each OOD score
                got["aupr_out"] = self._average_precision(w_out, np.take(cum_out, o.out_le_out, axis=1),
                                                          np.take(cum_in, o.in_le_out, axis=1), m)
            out.append({k: got[k] for k in metrics})
        return out


def resample_ece(confidence: ArrayLike, correct: ArrayLike, n_resamples: int = 2000, seed: int = 0,
                 n_bins: int = 15) -> Resampled:
    """Per-seed expected calibration error of (S, n) max-softmax confidences and (S, n) 0/1
    outcomes under B example resamples (the draws of :func:`resample_mean`, so it pairs with
    accuracy in :func:`compare`); lower is better. Equals
    :func:`harness.metrics.expected_calibration_error_weighted` on the same counts.

    A resample's ECE is sum_j |sum_i w_i (correct_i - confidence_i) [bin_i = j]| / n (the counts
    of a resample add up to n), so one (B, n) x (n, S * bins) product gives every seed and
    replicate at once. The replicates are centred on the estimate (ECE's resampling bias removed).
    """
    conf = _as_float_array(confidence, "confidence", 2, "resample_ece needs at least one seed and one example")
    corr = _as_float_array(correct, "correct", 2, "resample_ece needs at least one seed and one example")
    if conf.shape != corr.shape:
        raise ValueError(f"confidence has shape {conf.shape} but correct has {corr.shape}")
    n_seeds, n = conf.shape
    gap = np.zeros((n, n_seeds * n_bins))
    for s in range(n_seeds):  # (correct - confidence) in the column of each example's bin
        gap[np.arange(n), s * n_bins + calibration_bins(conf[s], n_bins)[1]] = corr[s] - conf[s]

    def ece(counts: np.ndarray, g: np.ndarray) -> np.ndarray:
        return np.abs(counts @ g).reshape(len(counts), n_seeds, n_bins).sum(axis=2, dtype=np.float64) / n

    point = ece(np.ones((1, n)), gap)[0]
    # float32 for the replicates: 2.5x faster than float64, and ~1e-7 off, far inside any interval
    boot = ece(_float_counts(n, n_resamples, seed, np.float32), gap.astype(np.float32))
    # ECE is biased upwards under resampling (noise only adds to |gap|), so the raw replicates sit
    # above the estimate and a percentile interval can miss it: centre them on it (bias-corrected)
    boot -= boot.mean(axis=0) - point
    return Resampled(point=point, boot=boot, n_examples=n, binary=None)


@lru_cache(maxsize=8)
def _float_counts(n: int, n_resamples: int, seed: int, dtype: type = np.float64) -> np.ndarray:
    """The example draws of :func:`example_weights` as one read-only float (B, n) array, for
    products with a matrix of per-example values."""
    counts: np.ndarray = example_weights(n, n_resamples, seed).astype(dtype)
    counts.flags.writeable = False
    return counts


@dataclass(frozen=True)
class Components:
    """Variance of the mean over S seeds of a per-seed statistic, from its three estimated parts.

    ``between`` = var(per-seed values) / S: seed effects plus the seed x example interaction, on
    S - 1 degrees of freedom. ``examples`` = the variance over example resamples of the mean over
    seeds: example effects plus the interaction, on about ``example_df`` (n - 1) degrees of
    freedom. ``interaction`` = the interaction alone (the replicates' spread around their seed
    mean), precise. The variance of the mean is between + examples - interaction: the interaction
    is in both and must be counted once (the two-stage bootstrap counted it twice).
    """

    between: float
    examples: float
    interaction: float
    n_seeds: int
    example_df: float = np.inf

    @property
    def seed(self) -> float:
        """The seed effects' share, sigma_seed^2 / S (floored at 0)."""
        return max(self.between - self.interaction, 0.0)

    @property
    def total(self) -> float:
        """The variance of the mean. Unbiased before the floor; the floor, half the larger of
        ``between`` and ``examples`` (each estimates a lower bound of the total), only guards
        against a sum that noise drove to or below 0."""
        return max(self.between + self.examples - self.interaction, max(self.between, self.examples) / 2)

    @property
    def df(self) -> float:
        """Satterthwaite degrees of freedom of ``total``: its noise comes from ``between`` (S - 1 df)
        and ``examples`` (``example_df``). Subtracting the interaction leaves that noise in place, so
        when seeds add little beyond the interaction, the seed part is noisier than S - 1 df
        suggests; this is what the t quantile must carry."""
        noise = (self.between**2 / (self.n_seeds - 1) if self.n_seeds > 1 else 0.0) + (
            self.examples**2 / self.example_df if np.isfinite(self.example_df) else 0.0)
        return self.total**2 / noise if noise > 0 else np.inf

    @property
    def seed_share(self) -> float:
        """Fraction of the variance due to seeds (0 when the total is 0)."""
        return self.seed / self.total if self.total > 0 else 0.0

    def with_seeds(self, n_seeds: int) -> Components:
        """The components the same experiment would have with ``n_seeds`` seeds and the same test set:
        the seed and interaction parts scale as 1 / S, the example effects do not."""
        ratio = self.n_seeds / n_seeds
        return Components(self.between * ratio, self.examples - self.interaction * (1 - ratio),
                          self.interaction * ratio, n_seeds, self.example_df)


def variance_components(point: np.ndarray, boot: np.ndarray, n_examples: int | None = None) -> Components:
    """:class:`Components` of (S,) per-seed values and (B, S) example replicates of ``n_examples``
    examples each (None: the example part's own noise is ignored)."""
    n_seeds = point.size
    mean_rep = boot.mean(axis=1)
    examples = float(mean_rep.var(ddof=1)) if len(boot) > 1 else 0.0
    example_df = np.inf if n_examples is None else float(max(n_examples - 1, 1))
    if n_seeds == 1:
        return Components(0.0, examples, 0.0, 1, example_df)
    between = float(point.var(ddof=1)) / n_seeds
    inter = float((boot - mean_rep[:, None]).var(axis=0, ddof=1).sum()) / (n_seeds * (n_seeds - 1)) \
        if len(boot) > 1 else 0.0
    return Components(between, examples, inter, n_seeds, example_df)


def _t(df: float, q: float) -> float:
    return float(stdtrit(df, q)) if np.isfinite(df) else float(ndtri(q))


def t_quantile(df: float, q: float) -> float:
    """The ``q`` quantile of Student's t on ``df`` degrees of freedom (the normal's for infinite df)."""
    return _t(df, q)


def crossed_t_half_width(c: Components, level: float) -> float:
    """Half-width of the crossed t-interval: t on the Satterthwaite df of :class:`Components` times
    the square root of the variance of the mean."""
    return _t(c.df, 0.5 + level / 2) * float(np.sqrt(c.total))


def _hierarchical_replicates(point: np.ndarray, boot: np.ndarray, seed: int, level: float,
                             n_examples: int | None = None) -> np.ndarray:
    """(B,) replicates of the hierarchical bootstrap: seeds, then examples.

    Replicate b draws S seeds with replacement (seed stage), then adds example replicate b's
    deviation of the mean over all seeds (example stage). The seed stage is rescaled (as in a
    residual bootstrap with reflated residuals) so the replicates' variance is the variance of
    the mean from :class:`Components`, widened by (t/z)^2 on its Satterthwaite df. The example
    stage averages all seeds rather than the drawn ones: a seed drawn twice would count its
    interaction with the examples twice, the over-coverage this replaces. Skew survives.
    """
    n_resamples, n_seeds = boot.shape
    drawn = _rng(seed, _SEEDS).integers(0, n_seeds, size=(n_resamples, n_seeds))
    centre = point.mean()
    seed_means = point[drawn].mean(axis=1)
    examples = boot.mean(axis=1) - centre
    c = variance_components(point, boot, n_examples)
    raw = point.var(ddof=0) / n_seeds  # the seed stage's variance before rescaling
    # the replicates' variance, seed_scale^2 raw + example_scale^2 examples.var(), is to equal
    # (t / z)^2 total; when the example stage alone exceeds that (the seed part estimated at or
    # below 0), it is shrunk and the seed stage dropped, rather than left to over-cover
    widened = (_t(c.df, 0.5 + level / 2) / float(ndtri(0.5 + level / 2))) ** 2 * c.total
    ex_var = float(examples.var())
    if widened >= ex_var:
        seed_scale, example_scale = (np.sqrt((widened - ex_var) / raw) if raw > 0 else 0.0), 1.0
    else:
        seed_scale, example_scale = 0.0, np.sqrt(widened / ex_var)
    return centre + seed_scale * (seed_means - centre) + example_scale * examples


def _percentile_interval(replicates: np.ndarray, level: float) -> tuple[float, float]:
    low, high = np.quantile(replicates, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(low), float(high)


def seed_bootstrap(values: ArrayLike, level: float = 0.95, n_resamples: int = 10000, seed: int = 0,
                   bca: bool = False, expand: bool = True) -> tuple[float, float]:
    """Expanded percentile (or BCa) bootstrap interval for the mean of (S,) per-seed summaries.

    Only the seeds are resampled: the interval holds the test set fixed. The percentile levels are
    expanded for small samples (Hesterberg's expanded percentile interval); BCa then corrects them
    for bias (z0, from the share of replicates below the mean) and skew (acceleration, from the
    jackknife). See INTERVALS for the number of seeds each was validated at. ``expand=False``
    gives the textbook intervals (as scipy.stats.bootstrap computes them).
    """
    _check_level(level)
    x = _as_float_array(values, "values", 1, "a seed bootstrap needs at least one value")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1; got {n_resamples}")
    mean = float(x.mean())
    if np.ptp(x) == 0:
        return mean, mean

    reps = x[_rng(seed, _SEED_BOOT).integers(0, x.size, size=(n_resamples, x.size))].mean(axis=1)
    # Expanded percentile (Hesterberg 2015): a resample mean's spread is sqrt((S-1)/S) too small and
    # normal rather than t, so the tail probabilities are moved to where a t-interval would put them.
    # Without it 95% percentile intervals covered 91-93% even at 40 seeds.
    tail = float(ndtr(np.sqrt(x.size / max(x.size - 1, 1)) * stdtrit(max(x.size - 1, 1), (1 - level) / 2))
                 if expand else (1 - level) / 2)
    alphas = np.array([tail, 1 - tail])
    if bca:
        z0 = float(ndtri((np.count_nonzero(reps < mean) + 0.5 * np.count_nonzero(reps == mean)) / n_resamples))
        jack = (x.sum() - x) / (x.size - 1) if x.size > 1 else x
        dev = jack.mean() - jack
        den = 6.0 * float(np.sum(dev**2)) ** 1.5
        accel = float(np.sum(dev**3)) / den if den > 0 else 0.0
        zq = ndtri(alphas)
        alphas = ndtr(z0 + (z0 + zq) / (1 - accel * (z0 + zq)))
    low, high = np.quantile(reps, alphas)
    return float(low), float(high)


# name -> (what the report calls it, when it is valid)
INTERVALS: dict[str, tuple[str, str]] = {
    "auto": ("automatic", "Wilson for one seed's proportion, the example bootstrap for one seed's other "
                          "statistics, the crossed t-interval from two seeds"),
    "crossed-t": ("crossed t-interval (variance components, Satterthwaite df)",
                  "validated from 5 seeds, and from 10 when seeds carry over 3/4 of the variance; with 2-3 "
                  "seeds it covered 88-95%, least when seeds vary much more than the test examples"),
    "hierarchical": ("hierarchical bootstrap (seeds, then examples; rescaled to the variance components, "
                     "Satterthwaite df), percentile",
                     "validated from 5 seeds, and from 10 when seeds carry over 3/4 of the variance; with 2-3 "
                     "seeds the seed stage takes too few values"),
    "seed-t": ("t-interval over per-seed values (test set held fixed)",
               "for per-seed summaries such as training metrics; ignores the test set's sampling error"),
    "seed-percentile": ("seed bootstrap, expanded percentile (test set held fixed)",
                        "validated from 20 seeds; ignores the test set's sampling error"),
    "seed-bca": ("seed bootstrap, BCa on the expanded percentile levels (test set held fixed)",
                 "validated from 20 seeds; ignores the test set's sampling error"),
}
_MIN_SEEDS = {"crossed-t": 5, "hierarchical": 5, "seed-percentile": 20, "seed-bca": 20, "seed-t": 2}


def check_interval(method: str) -> None:
    """Raise ValueError unless ``method`` is a key of :data:`INTERVALS`."""
    if method not in INTERVALS:
        raise ValueError(f"unknown interval method {method!r}; expected one of {', '.join(INTERVALS)}")


def _caveat(method: str, n_seeds: int, c: Components | None) -> str:
    """Why an interval of ``method`` with ``n_seeds`` may be too narrow ("" inside its validated range)."""
    need = _MIN_SEEDS.get(method, 0)
    if n_seeds < need:
        return f"{n_seeds} seeds: below the {need} this interval was validated for; likely too narrow"
    if method in ("crossed-t", "hierarchical") and n_seeds < 10 and c is not None and c.seed_share > 0.75:
        # measured: 92.8-93.3% at 5 seeds when seeds carry about 85% of the variance
        return (f"{n_seeds} seeds carrying over 3/4 of the variance: below the 10 this interval was validated "
                "for there; likely too narrow")
    return ""


def _interval(r: Resampled, level: float, seed: int, method: str
              ) -> tuple[float, float, str, str]:
    """(low, high, method text, caveat) of the mean over seeds of ``r`` by interval ``method``."""
    check_interval(method)
    n_resamples, n_seeds = r.boot.shape
    centre = float(r.point.mean())
    if n_seeds == 1:
        if r.binary is not None and method in ("auto", "crossed-t", "hierarchical"):
            low, high = wilson_interval(int(r.binary[0].sum()), r.binary.shape[1], level)
            return low, high, "wilson", ""
        low, high = _percentile_interval(r.boot[:, 0], level)
        return low, high, (f"example bootstrap, percentile, {n_resamples} resamples"), \
            "1 seed: the seed's own variance is not captured"
    if method in ("auto", "crossed-t"):
        c = variance_components(r.point, r.boot, r.n_examples)
        half = crossed_t_half_width(c, level)
        if half <= 1e-12 * max(1.0, abs(centre)):  # constant data: only rounding error is left
            return centre, centre, INTERVALS["crossed-t"][0] + f", {n_resamples} example resamples", ""
        name = INTERVALS["crossed-t"][0] + f", {n_resamples} example resamples"
        return centre - half, centre + half, name, _caveat("crossed-t", n_seeds, c)
    if method == "hierarchical":
        c = variance_components(r.point, r.boot, r.n_examples)
        low, high = _percentile_interval(_hierarchical_replicates(r.point, r.boot, seed, level, r.n_examples),
                                         level)
        return low, high, INTERVALS[method][0] + f", {n_resamples} resamples", _caveat(method, n_seeds, c)
    if method == "seed-t":
        low, high = t_interval(r.point, level)
    else:
        low, high = seed_bootstrap(r.point, level, n_resamples, seed, bca=method == "seed-bca")
    return low, high, INTERVALS[method][0], _caveat(method, n_seeds, None)


def estimate(r: Resampled, level: float = 0.95, seed: int = 0, method: str = "auto",
             bounds: tuple[float, float] = (-np.inf, np.inf)) -> Estimate:
    """Mean over seeds of a per-seed statistic with a ``level`` confidence interval by ``method``
    (a key of :data:`INTERVALS`; ``auto``: Wilson for one seed's proportion, the example bootstrap
    for one seed's other statistics, else the crossed t-interval), clipped to the metric's
    ``bounds`` (a proportion's [0, 1]). Constant data give an interval collapsed to the value.
    """
    _check_level(level)
    low, high, name, caveat = _interval(r, level, seed, method)
    value = float(r.point.mean())
    if high - low <= 1e-12 * max(1.0, abs(value)):  # constant data (a count, say): only rounding error is left
        low = high = value
    low, high = float(np.clip(low, *bounds)), float(np.clip(high, *bounds))
    return Estimate(value, low, high, level, name, r.point.size, r.n_examples, caveat)


def compare(a: Resampled, b: Resampled, level: float = 0.95, seed: int = 0, method: str = "auto",
            power: float = 0.8, bounds: tuple[float, float] = (-np.inf, np.inf)) -> Comparison:
    """Paired comparison a minus b of two variants evaluated with the same seeds and examples.

    ``a`` and ``b`` must come from the same example draws (same ``n_resamples`` and ``seed`` when
    built) and list the same seeds in the same order; the per-seed differences are the data, and
    the interval is ``method``'s interval of their mean (one seed: the example bootstrap). p-value:
    sign-flip test over seeds for S >= 2; with one seed McNemar's exact test when both are
    proportions, else the two-sided example-bootstrap p. Also the effect size (d_z over seeds),
    the smallest difference detectable with ``power`` and the seeds that would detect the
    observed difference with it (see :func:`detectable_difference`, :func:`seeds_needed`). The
    interval is clipped to ``bounds``, the range a difference can take ([-1, 1] for proportions).
    """
    _check_level(level)
    if a.boot.shape != b.boot.shape or a.n_examples != b.n_examples:
        raise ValueError(
            f"a (boot {a.boot.shape}, {a.n_examples} examples) and b (boot {b.boot.shape}, {b.n_examples} examples)"
            " differ; compare needs the same seeds and example draws"
        )
    n_seeds = a.point.size
    d = Resampled(point=a.point - b.point, boot=a.boot - b.boot, n_examples=a.n_examples, binary=None)
    low, high, ci_method, caveat = _interval(d, level, seed, method)
    low, high = float(np.clip(low, *bounds)), float(np.clip(high, *bounds))
    if n_seeds >= 2:
        p_value = sign_flip_test(d.point, _N_SIGN_FLIPS, seed)
        kind = f"exact, {2**n_seeds}" if 2**n_seeds <= _N_SIGN_FLIPS else f"Monte Carlo, {_N_SIGN_FLIPS}"
        p_method = f"sign-flip permutation over seeds ({kind} sign patterns)"
    elif a.binary is not None and b.binary is not None:
        p_value, p_method = mcnemar_exact(a.binary[0], b.binary[0]), "McNemar exact"
    else:
        tail = min(np.mean(d.boot <= 0), np.mean(d.boot >= 0))
        p_value, p_method = min(1.0, 2.0 * float(tail)), "bootstrap"
    c = variance_components(d.point, d.boot, d.n_examples)
    diff = float(d.point.mean())
    return Comparison(
        diff=diff, ci_low=low, ci_high=high, level=level, p_value=p_value, ci_method=ci_method, p_method=p_method,
        n_seeds=n_seeds, n_examples=a.n_examples, caveat=caveat, effect_size=effect_size(d.point),
        mde=detectable_difference(c, level, power), seeds_needed=seeds_needed(diff, c, level, power), components=c,
    )


def effect_size(d: ArrayLike) -> float | None:
    """Cohen's d_z of (S,) paired per-seed differences: mean / sd (ddof 1). None with fewer than
    two seeds or when every difference is the same (no spread to scale by)."""
    x = _as_float_array(d, "d", 1, "an effect size needs at least one paired difference")
    if x.size < 2 or np.ptp(x) == 0:
        return None
    return float(x.mean() / x.std(ddof=1))


def probability_of_improvement(a: ArrayLike, b: ArrayLike, higher_is_better: bool = True) -> float:
    """P(a run of variant a beats a run of variant b): the Mann-Whitney share of the S_a x S_b seed
    pairs (i, j) with a_i better than b_j, ties counting one half. 0.5 = no tendency."""
    x = _as_float_array(a, "a", 1, "a probability of improvement needs at least one value")
    y = _as_float_array(b, "b", 1, "a probability of improvement needs at least one value")
    diff = x[:, None] - y[None, :]
    if not higher_is_better:
        diff = -diff
    return float(np.mean((diff > 0) + 0.5 * (diff == 0)))


def probability_of_improvement_interval(a: ArrayLike, b: ArrayLike, higher_is_better: bool = True,
                                        level: float = 0.95, n_resamples: int = 2000, seed: int = 0
                                        ) -> tuple[float, float]:
    """Percentile interval of :func:`probability_of_improvement` over paired seed resamples
    (a and b are (S,) values of the same seeds; seed i of both is drawn together)."""
    _check_level(level)
    x = _as_float_array(a, "a", 1, "a probability of improvement needs at least one value")
    y = _as_float_array(b, "b", 1, "a probability of improvement needs at least one value")
    if x.shape != y.shape:
        raise ValueError(f"a has {x.size} seeds but b has {y.size}; they must be paired")
    diff = x[:, None] - y[None, :]
    if not higher_is_better:
        diff = -diff
    wins = (diff > 0) + 0.5 * (diff == 0)  # (S, S): seed i of a against seed j of b
    # a resample's share is the mean of wins over its drawn seed pairs: c' wins c / S^2 with c the (S,) times each
    # seed was drawn (integers and halves: the sum is exact, the same number as averaging the drawn pairs)
    counts = _seed_counts(x.size, n_resamples, seed)
    reps = np.einsum("bi,ij,bj->b", counts, wins, counts) / x.size**2
    return _percentile_interval(reps, level)


@lru_cache(maxsize=4)
def _seed_counts(n_seeds: int, n_resamples: int, seed: int) -> np.ndarray:
    """(B, S) how often each of S seeds is drawn in each of B seed resamples (read-only; shared by every
    comparison of a report, which draws the same resamples)."""
    drawn = _rng(seed, _SEED_BOOT).integers(0, n_seeds, size=(n_resamples, n_seeds))
    counts = np.zeros((n_resamples, n_seeds))
    np.add.at(counts, (np.arange(n_resamples)[:, None], drawn), 1.0)
    counts.flags.writeable = False
    return counts


def detectable_difference(c: Components, level: float = 0.95, power: float = 0.8) -> float:
    """Smallest true |difference| whose crossed t-interval excludes 0 with probability ``power``:
    (t quantile of the level + t quantile of the power) x the standard error, both t on the
    Satterthwaite df of ``c``. 0 when the difference does not vary at all."""
    if not 0 < power < 1:
        raise ValueError(f"power must be in (0, 1); got {power}")
    if c.total <= 0:
        return 0.0
    return (_t(c.df, 0.5 + level / 2) + _t(c.df, power)) * float(np.sqrt(c.total))


def seeds_needed(diff: float, c: Components, level: float = 0.95, power: float = 0.8, alpha: float | None = None,
                 most: int = 1000, factor: float = 1.0, p_value: bool = True) -> int | None:
    """Seeds that would settle a true difference of ``diff`` with ``power``, the test set unchanged.

    Settling takes the ``level`` interval excluding 0 and, when ``p_value``, the sign-flip test's
    p times ``factor`` below ``alpha`` (default 1 - level). ``factor`` is what the family's
    adjustment can multiply this comparison's p by: Holm over m comparisons, m. At S' seeds
    (:meth:`Components.with_seeds`: the test set's own sampling error does not shrink, so more seeds
    cannot beat it) that needs (t quantiles as in :func:`detectable_difference`)

    * the interval: :func:`detectable_difference` of the whole variance at ``level`` <= |diff|;
    * the test, which sees the seeds' spread alone (the between part): detectable_difference of it
      at two-sided level alpha / factor on S' - 1 df <= |diff|, and the exact test's floor reachable,
      S' >= :func:`seeds_to_reach`.

    Where only the patterns with every sign the same reach alpha / factor (at the floor), the test
    is a sign test and needs P(all S' per-seed differences share the sign) >= ``power`` too (normal
    differences). Simulated runs with the seeds predicted settle 78-82% of the time for 80%, more at
    the floor (benchmarks/coverage.py --power). None when even ``most`` seeds would not settle it,
    or when ``diff`` is 0.
    """
    if diff == 0 or c.n_seeds < 2:  # one seed says nothing about the seed variance
        return None
    alpha = 1 - level if alpha is None else alpha
    fewest = seeds_to_reach(alpha, factor) if p_value else 2
    if fewest is None:
        return None

    def detects(n: int) -> bool:
        at_n = c.with_seeds(n)
        if n < fewest or detectable_difference(at_n, level, power) > abs(diff):
            return False
        if not p_value:
            return True
        seeds_only = Components(at_n.between, 0.0, 0.0, n)  # what the sign-flip test over seeds sees
        if detectable_difference(seeds_only, 1 - alpha / factor, power) > abs(diff):
            return False
        # Where the next smallest p, 4 / 2**S, is too large, only the patterns with every sign the
        # same reach alpha: a sign test, whose power the t approximation overstated (0.65 for 0.8).
        sd = float(np.sqrt(at_n.between * n))  # of one seed's difference
        return factor * 2 * min_attainable_p(n) < alpha or sd == 0 or float(ndtr(abs(diff) / sd)) ** n >= power

    if not detects(most):
        return None
    # detects(high) holds, and detects is monotone in n: each condition gets easier with more seeds but the
    # all-same-sign one, which applies only at the floor's one seed count (one seed more halves the floor)
    low, high = 1, most
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (low, mid) if detects(mid) else (mid, high)
    return high


def seeds_to_reach(alpha: float, factor: float = 1.0) -> int | None:
    """Fewest seeds at which the sign-flip test's smallest p, times ``factor`` (Holm over m
    comparisons: m), is below ``alpha``: 2 / 2**S while the test is exact, 1 / (permutations + 1)
    once it samples sign patterns. None when no number of seeds gets there."""
    for n_seeds in range(1, 17):  # from 16 seeds on the floor is the sampled test's, 1 / 20001
        if factor * max(min_attainable_p(n_seeds), 1 / (_N_SIGN_FLIPS + 1)) < alpha:
            return n_seeds
    return None


def sign_flip_test(d: ArrayLike, n_permutations: int = 20000, seed: int = 0) -> float:
    """Two-sided p-value for (S,) paired differences ``d`` symmetric about 0, statistic |mean(d)|.

    All 2**S sign patterns (observed one included) are enumerated when 2**S <= n_permutations,
    so the smallest p is 2 / 2**S; otherwise random patterns with the +1 correction. All-zero
    ``d`` gives 1.
    """
    x = _as_float_array(d, "d", 1, "a sign-flip test needs at least one paired difference")
    if n_permutations < 1:
        raise ValueError(f"n_permutations must be >= 1; got {n_permutations}")
    n_seeds = x.size
    exact = 2**n_seeds <= n_permutations
    if exact:
        signs = 1 - 2 * ((np.arange(2**n_seeds)[:, None] >> np.arange(n_seeds)) & 1)
    else:
        signs = 1 - 2 * _rng(seed, _SIGNS).integers(0, 2, size=(n_permutations, n_seeds))
    # Sums of the same terms in another order differ in the last bits; without slack the observed
    # pattern and its mirror image could fail to count as ties with themselves.
    slack = 1e-12 * np.abs(x).sum()
    hits = np.count_nonzero(np.abs(signs @ x) >= abs(x.sum()) - slack)
    return float(hits / len(signs) if exact else (1 + hits) / (1 + n_permutations))


def sign_patterns(n_seeds: int, n_permutations: int = _N_SIGN_FLIPS, seed: int = 0) -> tuple[np.ndarray, bool]:
    """(P, n_seeds) sign patterns of +-1 for a sign-flip test over ``n_seeds`` seeds, and whether they
    are exact: all 2**S of them when 2**S <= ``n_permutations`` (each equally likely under the null),
    else the observed pattern (all +1, first) and ``n_permutations`` random ones, the +1 correction of
    :func:`sign_flip_test`. The first k columns of either are the patterns of the first k seeds, so a
    test on a prefix of the seeds reads the same draws (harness.sequential looks at prefixes)."""
    if n_seeds < 0:
        raise ValueError(f"n_seeds must be >= 0; got {n_seeds}")
    if 2**n_seeds <= n_permutations:
        return 1 - 2 * ((np.arange(2**n_seeds)[:, None] >> np.arange(n_seeds)) & 1), True
    drawn = 1 - 2 * _rng(seed, _SIGNS).integers(0, 2, size=(n_permutations, n_seeds))
    return np.vstack([np.ones((1, n_seeds), dtype=drawn.dtype), drawn]), False


def sign_flip_one_sided(d: ArrayLike, boundary: float = 0.0, alternative: str = "less",
                        n_permutations: int = _N_SIGN_FLIPS, seed: int = 0) -> float:
    """One-sided p-value that the mean of (S,) paired differences ``d`` lies beyond ``boundary``.

    ``alternative`` "less": H0 mean(d) >= boundary against H1 mean(d) < boundary (a margin claim
    "not more than m higher" has boundary m); "greater": H0 mean(d) <= boundary against H1 mean(d) >
    boundary. The sign-flip test of ``d - boundary``, statistic its sum: exact under the null when the
    differences are symmetric about the boundary, with the sign patterns of :func:`sign_patterns`
    (the smallest p is 1 / 2**S while they are enumerated: half the two-sided test's 2 / 2**S).
    Differences all on the boundary give 1.
    """
    x = _as_float_array(d, "d", 1, "a sign-flip test needs at least one paired difference")
    if alternative not in ("less", "greater"):
        raise ValueError(f"alternative must be 'less' or 'greater'; got {alternative!r}")
    if n_permutations < 1:
        raise ValueError(f"n_permutations must be >= 1; got {n_permutations}")
    x = (x - boundary) * (-1.0 if alternative == "less" else 1.0)  # large sums speak for the alternative
    if not np.any(x):
        return 1.0
    signs, _ = sign_patterns(x.size, n_permutations, seed)
    # the same slack as sign_flip_test: the observed pattern must tie with itself whatever the order of the sum
    slack = 1e-12 * np.abs(x).sum()
    return float(np.count_nonzero(signs @ x >= x.sum() - slack) / len(signs))


def mcnemar_exact(a_correct: ArrayLike, b_correct: ArrayLike) -> float:
    """Exact two-sided McNemar p-value for (n,), (n,) paired 0/1 outcomes (binomial test on discordant pairs).

    No discordant pairs gives 1.
    """
    a = _as_binary(a_correct, "a_correct", "McNemar's test needs at least one paired example")
    b = _as_binary(b_correct, "b_correct", "McNemar's test needs at least one paired example")
    if a.shape != b.shape:
        raise ValueError(f"a_correct has {a.size} examples but b_correct has {b.size}; they must be paired")
    only_a, only_b = int(np.sum(a & ~b)), int(np.sum(~a & b))
    if only_a + only_b == 0:
        return 1.0
    return min(1.0, 2.0 * float(bdtr(min(only_a, only_b), only_a + only_b, 0.5)))


def holm(p_values: ArrayLike) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values, (k,) -> (k,) in the input order: monotone, capped at 1."""
    p = _as_float_array(p_values, "p_values", 1)
    if ((p < 0) | (p > 1)).any():
        raise ValueError("p_values must lie in [0, 1]")
    order = np.argsort(p, kind="stable")
    adjusted = np.empty_like(p)
    adjusted[order] = np.minimum(1.0, np.maximum.accumulate((p.size - np.arange(p.size)) * p[order]))
    return adjusted


def benjamini_hochberg(p_values: ArrayLike) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (false discovery rate), (k,) -> (k,) in the input
    order: p_(i) * k / i, made monotone from the largest down, capped at 1."""
    p = _as_float_array(p_values, "p_values", 1)
    if ((p < 0) | (p > 1)).any():
        raise ValueError("p_values must lie in [0, 1]")
    order = np.argsort(p, kind="stable")
    scaled = p[order] * p.size / np.arange(1, p.size + 1)
    adjusted = np.empty_like(p)
    adjusted[order] = np.minimum(1.0, np.minimum.accumulate(scaled[::-1])[::-1])
    return adjusted


ADJUSTMENTS: dict[str, tuple[str, Callable[[ArrayLike], np.ndarray]]] = {
    "holm": ("Holm", holm),  # family-wise error rate (the default)
    "bh": ("Benjamini-Hochberg", benjamini_hochberg),  # false discovery rate
}


def wilson_interval(successes: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a proportion ``successes / n``; always inside [0, 1]."""
    _check_level(level)
    if n < 1:
        raise ValueError(f"n must be >= 1 for a Wilson interval; got {n}")
    if not 0 <= successes <= n:
        raise ValueError(f"successes must be in [0, n={n}]; got {successes}")
    z = float(ndtri(0.5 + level / 2))
    p, shrink = successes / n, 1 + z**2 / n
    centre = (p + z**2 / (2 * n)) / shrink
    half = z / shrink * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2))
    # The bounds are exactly 0 at no successes and 1 at all; rounding would leave a 1e-16 gap.
    low = 0.0 if successes == 0 else float(centre - half)
    high = 1.0 if successes == n else float(centre + half)
    return low, high


def seed_mean(values: ArrayLike) -> float:
    """The mean of (S,) per-seed summaries as :func:`t_interval` centres its interval: on the first
    value, so constant data give exactly that value (np.mean of three 0.1s is 0.10000000000000002)
    and the zero-width interval contains it."""
    x = _as_float_array(values, "values", 1, "a mean needs at least one value")
    return float(x[0] + (x - x[0]).mean())


def t_interval(values: ArrayLike, level: float = 0.95) -> tuple[float, float]:
    """Student-t interval for the mean of (S,) per-seed summaries (centred on :func:`seed_mean`);
    S == 1 gives (nan, nan): no spread to use."""
    _check_level(level)
    x = _as_float_array(values, "values", 1, "a t interval needs at least one value")
    if x.size == 1:
        return float("nan"), float("nan")
    mean = seed_mean(x)
    half = float(stdtrit(x.size - 1, 0.5 + level / 2)) * (x - x[0]).std(ddof=1) / np.sqrt(x.size)
    return float(mean - half), float(mean + half)


def min_attainable_p(n_seeds: int) -> float:
    """Smallest two-sided p the exact sign-flip test can give with ``n_seeds`` seeds: 2 / 2**S, at most 1."""
    if n_seeds < 0:
        raise ValueError(f"n_seeds must be >= 0; got {n_seeds}")
    return min(1.0, 2.0 ** (1 - n_seeds))


def spend_pocock(t: float, alpha: float) -> float:
    """Lan-DeMets Pocock-type alpha spending: the error ``alpha`` a group-sequential test may have
    spent by information fraction ``t`` in [0, 1], alpha * ln(1 + (e - 1) t); alpha at t = 1. Spends
    early looks nearly in proportion to their information (Lan and DeMets 1983, Biometrika 70:659)."""
    if not 0 <= t <= 1:
        raise ValueError(f"the information fraction t must be in [0, 1]; got {t}")
    return float(alpha * np.log1p((np.e - 1) * t))


def spend_obrien_fleming(t: float, alpha: float) -> float:
    """Lan-DeMets O'Brien-Fleming-type alpha spending for a one-sided test of level ``alpha``: the
    error spent by information fraction ``t`` in [0, 1], 2 - 2 Phi(z_{1 - alpha/2} / sqrt(t)); alpha
    at t = 1, almost nothing at early looks (Lan and DeMets 1983, Biometrika 70:659)."""
    if not 0 <= t <= 1:
        raise ValueError(f"the information fraction t must be in [0, 1]; got {t}")
    if t == 0:
        return 0.0
    return float(2 * ndtr(-ndtri(1 - alpha / 2) / np.sqrt(t)))  # 2 - 2 Phi(x) as 2 Phi(-x): no underflow to 0


SPENDING: dict[str, tuple[str, Callable[[float, float], float]]] = {
    "pocock": ("Lan-DeMets Pocock-type", spend_pocock),
    "obrien-fleming": ("Lan-DeMets O'Brien-Fleming-type", spend_obrien_fleming),
}
