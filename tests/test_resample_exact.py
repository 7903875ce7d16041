"""The OOD resampling's fast path gives exactly, bit for bit, what the general weighted metrics give.

harness.stats.resample_ood_sets (and resample_ood, which calls it) computes the four OOD metrics of
every replicate from int32 counts, with the ID side shared by the OOD sets, a few rows at a time and
the seeds on threads. Each replicate must equal harness.metrics.ood_metrics_weighted on the same
draws to the last bit (a report's every interval reads them), with ties inside and across classes,
sets of other sizes, and whatever the row chunks, threads or grouping of the sets.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np
import pytest

from harness import stats
from harness.metrics import ood_metrics_weighted
from harness.reports import estimates
from harness.specs import Condition
from harness.store import Cell

OOD = ("auroc", "fpr95", "aupr_in", "aupr_out")


def _general(score_in: np.ndarray, score_out: np.ndarray, metrics: Sequence[str], n_resamples: int,
             seed: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{metric: (point (S,), boot (B, S))} from harness.metrics.ood_metrics_weighted, one seed and block at
    a time, with the draws of harness.stats (the code resample_ood ran before its fast path)."""
    n, m = score_in.shape[1], score_out.shape[1]

    def per_seed(w_in: np.ndarray, w_out: np.ndarray) -> dict[str, np.ndarray]:
        seeds = [ood_metrics_weighted(i, o, w_in, w_out, metrics) for i, o in zip(score_in, score_out, strict=True)]
        return {k: np.stack([d[k] for d in seeds], axis=1) for k in metrics}

    point = per_seed(np.ones((1, n)), np.ones((1, m)))
    blocks = [per_seed(a, b) for a, b in zip(stats._count_blocks(n, n_resamples, seed, stats._EXAMPLES),
                                             stats._count_blocks(m, n_resamples, seed, stats._OOD_EXAMPLES),
                                             strict=True)]
    return {k: (point[k][0], np.concatenate([b[k] for b in blocks])) for k in metrics}


def _same(got: stats.Resampled, want: tuple[np.ndarray, np.ndarray]) -> bool:
    return got.point.tobytes() == want[0].tobytes() and got.boot.tobytes() == want[1].tobytes()


def _scores(kind: str, n_seeds: int, n: int, m: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    if kind == "continuous":
        return rng.normal(1, 1, (n_seeds, n)), rng.normal(0, 1, (n_seeds, m))
    if kind == "few values":  # ties inside each class and across the two
        return rng.integers(0, 6, (n_seeds, n)).astype(float), rng.integers(0, 4, (n_seeds, m)).astype(float)
    if kind == "all equal":
        return np.ones((n_seeds, n)), np.ones((n_seeds, m))
    # maximum softmax probabilities in float32, as a classifier stores them: many exactly 1.0 in both classes
    s_in = (1 - rng.beta(0.3, 6, (n_seeds, n)) * 0.6).astype(np.float32).astype(float)
    s_out = rng.beta(3, 1, (n_seeds, m)).astype(np.float32).astype(float)
    s_in[:, : n // 5], s_out[:, : m // 10] = 1.0, 1.0
    return s_in, s_out


@pytest.mark.parametrize(("kind", "n_seeds", "n", "m", "n_resamples"), [
    ("continuous", 3, 300, 200, 300),  # three blocks of draws, the last one partial
    ("few values", 2, 150, 400, 129),
    ("all equal", 2, 40, 30, 50),
    ("softmax", 2, 3000, 1500, 150),  # rows of 43: a block is computed in chunks
    ("few values", 1, 1, 1, 20),
])
def test_resample_ood_equals_the_general_weighted_metrics_bit_for_bit(kind: str, n_seeds: int, n: int, m: int,
                                                                      n_resamples: int) -> None:
    score_in, score_out = _scores(kind, n_seeds, n, m, np.random.default_rng(len(kind) + n))
    want = _general(score_in, score_out, OOD, n_resamples, 7)
    for metrics in (OOD, ("aupr_out", "fpr95"), ("auroc",)):
        got = stats.resample_ood(score_in, score_out, metrics, n_resamples, 7)
        assert list(got) == list(metrics)
        assert all(_same(got[k], want[k]) for k in metrics), [k for k in metrics if not _same(got[k], want[k])]


def test_a_precision_of_no_weight_counts_zero_as_in_the_general_form() -> None:
    """A replicate that draws none of the top-scored examples has tp + fp = 0 there: its precision is 0,
    not NaN (which would make the whole AUPR NaN)."""
    score_in, score_out = np.array([[0.0, 0.0, 1.0]]), np.array([[0.0, 0.5]])
    got = stats.resample_ood(score_in, score_out, OOD, 200, 3)
    want = _general(score_in, score_out, OOD, 200, 3)
    assert all(_same(got[k], want[k]) for k in OOD)
    assert np.isfinite(got["aupr_in"].boot).all() and np.isfinite(got["aupr_out"].boot).all()


def test_several_ood_sets_at_once_give_each_sets_own_numbers() -> None:
    rng = np.random.default_rng(4)
    score_in = rng.integers(0, 40, (3, 700)).astype(float) / 40
    outs = [rng.integers(0, 40, (3, m)).astype(float) / 45 for m in (300, 1200, 5)]
    for metrics in (OOD, ("fpr95", "aupr_in")):
        for score_out, got in zip(outs, stats.resample_ood_sets(score_in, outs, metrics, 300, 11), strict=True):
            want = _general(score_in, score_out, metrics, 300, 11)
            assert all(_same(got[k], want[k]) for k in metrics)


def test_threads_chunks_and_the_general_fallback_change_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    score_in, score_out = _scores("softmax", 4, 2500, 2000, np.random.default_rng(5))
    want = _general(score_in, score_out, OOD, 200, 2)
    runs = {}
    for label, parallel, cells, exact in (("threads", 1, 2**17, stats._OOD_EXACT), ("serial", 10**9, 2**17,
                                                                                      stats._OOD_EXACT),
                                          ("rows of 1", 10**9, 1, stats._OOD_EXACT), ("general", 1, 2**17, ())):
        monkeypatch.setattr(stats, "_PARALLEL_EXAMPLES", parallel)
        monkeypatch.setattr(stats, "_OOD_CACHE_CELLS", cells)
        monkeypatch.setattr(stats, "_OOD_EXACT", exact)
        runs[label] = stats.resample_ood(score_in, score_out, OOD, 200, 2)
    assert all(_same(r[k], want[k]) for r in runs.values() for k in OOD)


def _ood_cells(rng: np.random.Generator, score_in: np.ndarray, n_out: int) -> dict[int, Cell]:
    return {s: Cell("", "eval", "v", s, {}, {}, arrays={"score_in": score_in[i], "score_out": rng.random(n_out)})
            for i, s in enumerate((0, 1, 2))}


def test_a_reports_ood_conditions_are_resampled_as_each_alone() -> None:
    """harness.reports.estimates resamples a variant's OOD conditions together where they hold the same ID
    scores (its test set scored once); a condition whose ID scores differ (a score fitted on features)
    is resampled on its own, and each gets the numbers of its own call of resample_ood."""
    rng = np.random.default_rng(6)
    msp, fitted = rng.random((3, 120)), rng.random((3, 120))
    conditions = [Condition("clean"), Condition("ood", "a", (("score", "msp"),)),
                  Condition("ood", "b", (("score", "msp"),)), Condition("ood", "a", (("score", "mahalanobis"),))]
    evals: estimates.Evals = defaultdict(dict)
    for cond, score_in, n_out in zip(conditions[1:], (msp, msp, fitted), (80, 130, 80), strict=True):
        evals[("v", cond.key)] = _ood_cells(rng, score_in, n_out)
    resampled = estimates.resample(conditions, evals, ["v"], (0, 1, 2), "classify", 150)
    for cond in conditions[1:]:
        cells = evals[("v", cond.key)]
        alone = stats.resample_ood(np.stack([cells[s].arrays["score_in"] for s in (0, 1, 2)]),
                                   np.stack([cells[s].arrays["score_out"] for s in (0, 1, 2)]), OOD, 150,
                                   estimates._boot_seed("auroc"))
        for k in OOD:
            seeds, r = resampled[("v", cond.key, k)]
            assert seeds == [0, 1, 2] and _same(r, (alone[k].point, alone[k].boot)), (cond.key, k)
