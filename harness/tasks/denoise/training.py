"""Training a denoiser: the loop of harness.training.fit with the held-out denoising loss where a
classifier has its accuracy."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from harness.data import Split, as_tensor
from harness.errors import ConfigError
from harness.seeding import torch_generator
from harness.specs import TrainSpec
from harness.tasks.denoise.objective import denoising_loss
from harness.tasks.denoise.schedule import NoiseSchedule
from harness.training import RunCompute, fit, loss_curve_measures, run_summary


@dataclass(frozen=True, eq=False)
class DenoiserTrainResult:
    """What a denoiser's training run measured: :class:`harness.training.TrainResult` with the
    held-out *denoising loss* (lower is better) where a classifier has its accuracy.

    ``curve_steps`` (K,) and ``curve_val_loss`` (K,) sample the held-out loss of
    :func:`held_out_loss` (step 0 is the untrained model); ``loss`` (n_steps,) and ``grad_norm``
    (n_steps,) are per step; ``steps_to_target`` / ``seconds_to_target`` / ``epochs_to_target``
    are None when the held-out loss never fell to ``target_loss`` (censored); the rest as in
    TrainResult. ``final_val_loss`` is NaN for a diverged run.
    """

    curve_steps: np.ndarray
    curve_val_loss: np.ndarray
    loss: np.ndarray
    grad_norm: np.ndarray
    n_steps: int
    budget_steps: int
    target_loss: float
    steps_to_target: int | None
    seconds_to_target: float | None
    epochs_to_target: float | None
    seconds_per_step: float
    train_seconds: float
    diverged: bool
    diverged_at: int | None
    final_val_loss: float
    peak_memory_bytes: int
    memory_method: str
    compute: RunCompute | None = None  # CPU time, FLOPs and counted energy of the steps

    def summary(self) -> dict[str, float | int | bool | str | None]:
        """The scalar results, JSON-ready. ``mean_val_loss`` is the area under the held-out loss
        curve over the planned budget divided by the budget (trapezoids between the samples;
        lower is better): the mean held-out loss over training, which rewards early progress;
        the steps a diverged run did not take count at the untrained model's (step 0) loss.
        ``loss_roughness`` and the gradient statistics are those of
        :func:`harness.training.loss_curve_measures`."""
        mean, measures = loss_curve_measures(self.curve_steps, self.curve_val_loss, self.loss, self.grad_norm,
                                             self.budget_steps)
        return {
            **run_summary(self),
            "target_loss": self.target_loss,
            "final_val_loss": self.final_val_loss,
            "mean_val_loss": mean,
            **measures,
        }

    def arrays(self) -> dict[str, np.ndarray]:
        return {"curve_steps": self.curve_steps, "curve_val_loss": self.curve_val_loss, "loss": self.loss,
                "grad_norm": self.grad_norm}


def held_out_loss(model: nn.Module, schedule: NoiseSchedule, x0: torch.Tensor, seed: int, draws: int = 4,
                  batch_size: int = 512) -> float:
    """Mean :func:`denoising_loss` of images ``x0`` (N, C, H, W) in [0, 1] over ``draws`` draws of
    (t, noise) per image, in eval mode (restored afterwards), without gradients; lower is better.

    The draws come from a fresh ``torch_generator(seed, "denoise-val")`` at every call, in order
    draw, then batch of ``batch_size``: every evaluation of a run, and every variant of a seed,
    sees the same timesteps and noise, so the curve and its comparisons are paired."""
    gen = torch_generator(seed, "denoise-val", device=x0.device.type)
    was_training = model.training
    model.eval()
    total = 0.0
    try:
        with torch.no_grad():
            for _ in range(draws):
                for i in range(0, len(x0), batch_size):
                    total += float(denoising_loss(model, schedule, x0[i:i + batch_size], gen).sum())
    finally:
        model.train(was_training)
    return total / (draws * len(x0))


def train_denoiser(model: nn.Module, schedule: NoiseSchedule, split: Split, spec: TrainSpec, seed: int,
                   target_loss: float, device: str = "cpu", val_draws: int = 4,
                   on_step: Callable[[int, int], None] | None = None) -> DenoiserTrainResult:
    """Train a denoiser in place on the images of ``split.train`` (labels unused) with the DDPM
    objective, the mean of :func:`denoising_loss` over each batch; ``on_step(step, total)``
    reports progress.

    The recipe is a :class:`harness.specs.TrainSpec` (epochs, batch_size, lr, optimizer, momentum,
    weight_decay, eval_every, divergence_factor; its ``target_accuracy`` is not used: the target
    is ``target_loss``, a held-out denoising loss to fall to). As in :func:`harness.training.train`:
    the batches come from the seed's ``data-order`` stream (the classifiers' order), the last
    partial batch of an epoch is dropped, time is measured per step (forward, backward, update)
    and excludes the held-out evaluations, which :func:`held_out_loss` makes every
    ``eval_every`` steps on ``split.val`` (``val_draws`` draws per image); divergence (a
    non-finite loss, or one above ``divergence_factor`` times the first step's) ends the run;
    the gradient norm of every step and a step's peak memory are recorded the same way. The
    training noise and timesteps come from the seed's ``diffusion-noise`` stream, so every
    variant of a seed sees the same batches, timesteps and noise."""
    if not (math.isfinite(target_loss) and target_loss > 0):
        raise ConfigError(f"target_loss must be a positive number, got {target_loss}",
                          hint="give a held-out denoising loss to reach, e.g. 0.1")
    if isinstance(val_draws, bool) or not isinstance(val_draws, int) or val_draws < 1:
        raise ConfigError(f"val_draws must be a positive integer, got {val_draws!r}", hint="use e.g. 4")
    dev = torch.device(device)
    model.to(dev)
    x, xv = as_tensor(split.train.x, dev), as_tensor(split.val.x, dev)
    noise_gen = torch_generator(seed, "diffusion-noise", device=dev.type)
    r = fit(model, x, None, spec, seed, dev,
            lambda m, xb, _: denoising_loss(m, schedule, xb, noise_gen).mean(),
            lambda m: held_out_loss(m, schedule, xv, seed, draws=val_draws),
            lambda value: value <= target_loss, on_step)
    return DenoiserTrainResult(**r.result_fields(), curve_val_loss=r.curve, target_loss=float(target_loss),
                               final_val_loss=float("nan") if r.diverged else float(r.curve[-1]))
