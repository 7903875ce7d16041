"""The data of the report's curves: training curves, ROC curves and reliability diagrams.

Each is a plain dict of lists (it goes into results.json as it is, and the figures draw it), every
seed's records pooled or averaged; a plotted curve keeps at most MAX_CURVE_POINTS points.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from harness import stats
from harness.metrics import reliability_bins
from harness.reports.checks import Evals
from harness.reports.rows import metric_of
from harness.reports.training import TrainingCells, usable
from harness.specs import Condition

MAX_CURVE_POINTS = 200  # per plotted curve: keeps results.json and every SVG small


def _thin(n: int, max_points: int = MAX_CURVE_POINTS) -> np.ndarray:
    """At most ``max_points`` indices into a length-``n`` curve, evenly spaced, first and last kept."""
    return np.arange(n) if n <= max_points else np.unique(np.linspace(0, n - 1, max_points).round().astype(int))


def reliability(conditions: list[Condition], evals: Evals, names: list[str]) -> tuple[dict[str, Any], ...]:
    """Reliability-diagram data per variant on clean and each shifted input (running BatchNorm
    statistics), every seed's examples pooled: 15 equal-width confidence bins with their count,
    mean confidence and accuracy."""
    out = []
    for cond in conditions:
        if cond.kind not in ("clean", "shift") or cond.bn_mode != "frozen" or cond.name == "all":
            continue
        for v in names:
            cells = [c for c in evals.get((v, cond.key), {}).values() if "confidence" in c.arrays]
            if cells:
                bins = reliability_bins(np.concatenate([c.arrays["confidence"] for c in cells]),
                                        np.concatenate([c.arrays["correct"] for c in cells]))
                out.append({"variant": v, "condition": cond.to_dict(), **{k: a.tolist() for k, a in bins.items()}})
    return tuple(out)


def curves(names: list[str], seeds: tuple[int, ...], train_by: TrainingCells,
           level: float) -> tuple[dict[str, Any], ...]:
    """Training curves per variant over its finished, non-diverged seeds (as the training summary).

    ``steps`` (K,) are where the held-out accuracy was sampled; ``val_accuracy`` (K,) is its mean
    (``val_loss`` instead for a denoiser: its held-out denoising loss, lower is better, bands clipped at 0)
    over the seeds with a point at that step, ``val_low`` / ``val_high`` (K,) the t-interval over
    those seeds clipped to [0, 1] (NaN with one seed); ``loss_steps`` / ``loss`` (<= 200,) are the
    mean training loss over seeds, averaged over equal windows of steps (the window's last step),
    which both shrinks and smooths a per-step curve. Higher accuracy, lower loss is better.
    """
    out = []
    for v in names:
        cells = [c for s in seeds if (c := train_by.get((v, s))) is not None and usable(c) and "loss" in c.arrays]
        if not cells:
            continue
        longest = max(cells, key=lambda c: len(c.arrays["curve_steps"])).arrays["curve_steps"]
        held_out = "curve_val_loss" if "curve_val_loss" in cells[0].arrays else "curve_val_accuracy"
        by_step = [[c.arrays[held_out][k] for c in cells if len(c.arrays["curve_steps"]) > k]
                   for k in range(len(longest))]
        # a point of the curve is a value of the metric measured at the end of training
        bounds = metric_of("final_val_loss" if held_out == "curve_val_loss" else "final_val_accuracy").bounds
        bands = [np.clip(stats.t_interval(a, level), *bounds) for a in by_step]
        n_loss = min(len(c.arrays["loss"]) for c in cells)  # equal for finished runs of one recipe
        loss = np.mean([c.arrays["loss"][:n_loss] for c in cells], axis=0)
        windows = np.array_split(np.arange(n_loss), min(n_loss, MAX_CURVE_POINTS)) if n_loss else []
        out.append({"variant": v, "n_seeds": len(cells), "steps": longest.tolist(),
                    ("val_loss" if held_out == "curve_val_loss" else "val_accuracy"):
                        [float(np.mean(a)) for a in by_step],
                    "val_low": [float(b[0]) for b in bands], "val_high": [float(b[1]) for b in bands],
                    "loss_steps": [int(w[-1]) + 1 for w in windows],  # steps count from 1
                    "loss": [float(loss[w].mean()) for w in windows]})
    return tuple(out)


def roc_curve(score_in: np.ndarray, score_out: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The ROC curve of (n_in,) in-distribution and (n_out,) OOD scores, higher meaning more
    in-distribution (in-distribution is the positive class): (fpr, tpr), each (T + 1,) from (0, 0)
    to (1, 1), one point per distinct score threshold, ties moved together."""
    scores = np.concatenate([score_in, score_out])
    is_in = np.concatenate([np.ones(len(score_in)), np.zeros(len(score_out))])
    order = np.argsort(-scores, kind="stable")
    last = np.r_[np.flatnonzero(np.diff(scores[order])), len(scores) - 1]  # last index of each tie group
    tp = np.cumsum(is_in[order])[last]
    fp = (last + 1) - tp
    return np.r_[0.0, fp / max(len(score_out), 1)], np.r_[0.0, tp / max(len(score_in), 1)]


def roc(conditions: list[Condition], evals: Evals, names: list[str]) -> tuple[dict[str, Any], ...]:
    """ROC curves per variant and OOD condition, every seed's scores pooled: ``fpr`` / ``tpr``
    (<= 200,) thinned evenly along the curve, with the pooled counts ``n_in`` and ``n_out``."""
    out = []
    for cond in conditions:
        if cond.kind != "ood":
            continue
        for v in names:
            cells = [c for c in evals.get((v, cond.key), {}).values() if {"score_in", "score_out"} <= c.arrays.keys()]
            if cells:
                s_in = np.concatenate([c.arrays["score_in"] for c in cells])
                s_out = np.concatenate([c.arrays["score_out"] for c in cells])
                fpr, tpr = roc_curve(s_in, s_out)
                keep = _thin(len(fpr))
                out.append({"variant": v, "condition": cond.to_dict(), "n_seeds": len(cells), "n_in": len(s_in),
                            "n_out": len(s_out), "fpr": fpr[keep].tolist(), "tpr": tpr[keep].tolist()})
    return tuple(out)
