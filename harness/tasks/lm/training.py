"""Training a causal byte model: the loop of harness.training.fit with the held-out bits per character
where a classifier has its accuracy (a target to fall to, as a denoiser's held-out loss is)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from harness.data import as_tensor
from harness.specs import TrainSpec
from harness.tasks.lm.evaluation import bits_per_char
from harness.training import RunCompute, fit, loss_curve_measures, run_summary


@dataclass(frozen=True, eq=False)
class LMTrainResult:
    """What a language model's training run measured: :class:`harness.training.TrainResult` with the
    held-out bits per character (lower is better) where a classifier has its accuracy.

    ``curve_steps`` (K,) and ``curve_val_loss`` (K,) sample the mean bits per character of the
    validation windows (step 0 is the untrained model); ``loss`` (n_steps,) is the training loss of
    every step (nats per byte) and ``grad_norm`` (n_steps,) its gradient norm; ``steps_to_target`` /
    ``seconds_to_target`` / ``epochs_to_target`` are None when the held-out bits per character never fell
    to ``target_bpc`` (censored); ``final_val_bpc`` is NaN for a diverged run; the rest as in TrainResult.
    """

    curve_steps: np.ndarray
    curve_val_loss: np.ndarray
    loss: np.ndarray
    grad_norm: np.ndarray
    n_steps: int
    budget_steps: int
    target_bpc: float
    warmup_steps: int
    steps_to_target: int | None
    seconds_to_target: float | None
    epochs_to_target: float | None
    seconds_per_step: float
    train_seconds: float
    diverged: bool
    diverged_at: int | None
    final_val_bpc: float
    peak_memory_bytes: int
    memory_method: str
    compute: RunCompute | None = None  # CPU time, FLOPs and counted energy of the steps

    def summary(self) -> dict[str, float | int | bool | str | None]:
        """The scalar results, JSON-ready. ``mean_val_bpc`` is the area under the held-out bits per
        character over the planned budget divided by the budget (trapezoids between the samples; lower
        is better): the mean held-out bpc over training, which rewards early progress; the steps a
        diverged run did not take count at the untrained model's (step 0) value. ``loss_roughness`` and
        the gradient statistics are those of :func:`harness.training.loss_curve_measures`."""
        mean, measures = loss_curve_measures(self.curve_steps, self.curve_val_loss, self.loss, self.grad_norm,
                                             self.budget_steps)
        return {
            **run_summary(self),
            "target_bpc": self.target_bpc,
            "warmup_steps": self.warmup_steps,
            "final_val_bpc": self.final_val_bpc,
            "mean_val_bpc": mean,
            **measures,
        }

    def arrays(self) -> dict[str, np.ndarray]:
        return {"curve_steps": self.curve_steps, "curve_val_loss": self.curve_val_loss, "loss": self.loss,
                "grad_norm": self.grad_norm}


def next_byte_loss(model: nn.Module, xb: torch.Tensor, _: Any = None) -> torch.Tensor:
    """The mean cross-entropy (nats per byte) of ``model``'s next-byte predictions over the real targets of
    windows ``xb`` (B, L + 1): the model reads ``xb[:, :-1]`` and predicts ``xb[:, 1:]``."""
    from harness.corpora import PAD

    logits = model(xb[:, :-1])
    return F.cross_entropy(logits.transpose(1, 2), xb[:, 1:], ignore_index=PAD)


def held_out_bpc(model: nn.Module, x: torch.Tensor, batch_size: int = 256) -> float:
    """The mean bits per character of windows ``x`` (N, L + 1) in eval mode (the caller sets the mode back)."""
    model.eval()
    return float(bits_per_char(model, x, batch_size).mean())


def train_lm(model: nn.Module, split: Any, spec: TrainSpec, seed: int, target_bpc: float, warmup_steps: int = 0,
             device: str = "cpu", on_step: Callable[[int, int], None] | None = None) -> LMTrainResult:
    """Train a causal byte model in place on the windows of ``split.train`` (a harness.tasks.lm.data.BookSplit)
    by the mean next-byte cross-entropy; ``on_step(step, total)`` reports progress.

    The recipe is a :class:`harness.specs.TrainSpec` (its ``target_accuracy`` is not used: the target is
    ``target_bpc``, the held-out bits per character to fall to, measured on ``split.val`` every
    ``eval_every`` steps). As :func:`harness.training.fit` does for every objective: the batches come from the
    seed's ``data-order`` stream, the last partial batch of an epoch is dropped, time is measured per step,
    divergence (a non-finite loss or one above ``divergence_factor`` times the first step's) ends the run,
    and ``warmup_steps`` > 0 raises the learning rate linearly over that many steps."""
    if not (math.isfinite(target_bpc) and target_bpc > 0):
        from harness.errors import ConfigError

        raise ConfigError(f"target_bpc must be a positive number, got {target_bpc}",
                          hint="give the held-out bits per character to reach, e.g. 3.0")
    dev = torch.device(device)
    model.to(dev)
    x, xv = as_tensor(split.train.x, dev), as_tensor(split.val.x, dev)
    r = fit(model, x, None, spec, seed, dev, next_byte_loss, lambda m: held_out_bpc(m, xv),
            lambda value: value <= target_bpc, on_step, warmup_steps)
    return LMTrainResult(**r.result_fields(), curve_val_loss=r.curve, target_bpc=float(target_bpc),
                         warmup_steps=warmup_steps, final_val_bpc=float("nan") if r.diverged else float(r.curve[-1]))
