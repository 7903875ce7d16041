"""Evaluation of one trained model on every condition of a suite's battery.

The model runs in eval mode throughout (BatchNorm uses its running statistics: the ``frozen``
test-time mode), and every condition is predicted with the same batch boundaries, so attack
conditions at eps = 0 reproduce the clean predictions bit for bit.

Per-example outcomes per condition (all arrays of length N = test examples unless noted):

* clean, shift, attack: ``pred`` (int64), ``correct`` (bool), ``confidence`` (max softmax),
  ``loss`` (cross-entropy); attacks add ``linf`` (max |x_adv - x| per example);
* ood: ``score_in`` (N,) on the test split and ``score_out`` (M,) on the OOD set, higher =
  more in-distribution.

Shifted inputs depend only on the condition, so every variant and seed sees the same shifted
images; an attack's random start depends on the seed and the condition, so the two variants
of a paired comparison start from the same points.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from harness.data import as_tensor
from harness.seeding import torch_generator
from harness.specs import Condition

Outcome = dict[str, np.ndarray]


def predict(model: nn.Module, x: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Logits (N, K) for inputs (N, C, H, W), in eval mode, in fixed batches."""
    if model.training:
        raise RuntimeError("predict() needs the model in eval mode; call model.eval() first")
    with torch.no_grad():
        return torch.cat([model(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])


def _outcome(logits: torch.Tensor, y: torch.Tensor) -> Outcome:
    pred = logits.argmax(1)
    return {
        "pred": pred.cpu().numpy().astype(np.int64),
        "correct": (pred == y).cpu().numpy(),
        "confidence": logits.softmax(1).max(1).values.double().cpu().numpy(),
        "loss": F.cross_entropy(logits, y, reduction="none").double().cpu().numpy(),
    }


def evaluate(model: nn.Module, x_test: np.ndarray, y_test: np.ndarray, ood_sets: Mapping[str, np.ndarray],
             conditions: list[Condition], seed: int, condition_seed: int, batch_size: int = 512,
             device: str = "cpu") -> Iterator[tuple[Condition, Outcome]]:
    """Yield (condition, per-example outcome) for each condition, in order.

    ``x_test`` (N, C, H, W) float32 in [0, 1], ``y_test`` (N,) int64; ``ood_sets`` maps a set
    name to images already fitted to the test shape; ``seed`` is the training seed (attack
    starts); ``condition_seed`` fixes the shifted images for every model.
    """
    from harness.registry import attacks, ood_scores, shifts

    dev = torch.device(device)
    model.to(dev).eval()
    x, y = as_tensor(x_test, dev), as_tensor(y_test, dev)
    clean_logits = predict(model, x, batch_size)
    for cond in conditions:
        if cond.kind == "clean":
            yield cond, _outcome(clean_logits, y)
        elif cond.kind == "shift":
            gen = torch_generator(condition_seed, cond.key, device=dev.type)
            x_shift = shifts.get(cond.name)(x, cond.param("severity"), gen)
            yield cond, _outcome(predict(model, x_shift, batch_size), y)
        elif cond.kind == "ood":
            score = ood_scores.get(cond.param("score"))
            x_out = as_tensor(ood_sets[cond.name], dev)
            yield cond, {
                "score_in": score(clean_logits).double().cpu().numpy(),
                "score_out": score(predict(model, x_out, batch_size)).double().cpu().numpy(),
            }
        elif cond.kind == "attack":
            params = {k: v for k, v in cond.params if k != "eps"}
            atk = attacks.get(cond.name)(eps=cond.param("eps"), **params)
            gen = torch_generator(seed, cond.key, device=dev.type)
            x_adv = torch.cat([atk.perturb(model, x[i:i + batch_size], y[i:i + batch_size], generator=gen)
                               for i in range(0, len(x), batch_size)])
            out = _outcome(predict(model, x_adv, batch_size), y)
            out["linf"] = (x_adv - x).abs().flatten(1).max(1).values.double().cpu().numpy()
            yield cond, out
        else:  # pragma: no cover - Condition's type forbids it
            raise ValueError(f"unknown condition kind {cond.kind!r}")
