"""One training run: the recipe of a suite applied to one variant and seed.

The data order comes from the seed's ``data-order`` stream, so every variant of a seed sees
the same batches in the same order. Time is measured per optimisation step (forward,
backward, update) and excludes the held-out evaluations, which are sampled every
``eval_every`` steps to build the accuracy curve and find the step at which the target
accuracy is first reached. Divergence (a non-finite loss, or a loss above
``divergence_factor`` times the first step's) ends the run and is recorded as its outcome.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from harness.data import Split, as_tensor
from harness.errors import ConfigError
from harness.seeding import torch_generator
from harness.specs import TrainSpec


@dataclass(frozen=True, eq=False)
class TrainResult:
    """What a training run measured.

    ``curve_steps`` (K,) and ``curve_val_accuracy`` (K,) sample the held-out accuracy (step 0
    is the untrained model); ``loss`` (n_steps,) is the training loss of every step;
    ``steps_to_target`` / ``seconds_to_target`` are None when the target was never reached
    (a censored run, not a dropped one).
    """

    curve_steps: np.ndarray
    curve_val_accuracy: np.ndarray
    loss: np.ndarray
    n_steps: int
    steps_to_target: int | None
    seconds_to_target: float | None
    seconds_per_step: float
    train_seconds: float
    diverged: bool
    diverged_at: int | None
    final_val_accuracy: float

    def summary(self) -> dict[str, float | int | bool | None]:
        """The scalar results, JSON-ready."""
        return {
            "n_steps": self.n_steps,
            "steps_to_target": self.steps_to_target,
            "seconds_to_target": self.seconds_to_target,
            "seconds_per_step": self.seconds_per_step,
            "train_seconds": self.train_seconds,
            "diverged": self.diverged,
            "diverged_at": self.diverged_at,
            "final_val_accuracy": self.final_val_accuracy,
        }

    def arrays(self) -> dict[str, np.ndarray]:
        return {"curve_steps": self.curve_steps, "curve_val_accuracy": self.curve_val_accuracy, "loss": self.loss}


def _accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


def _optimizer(model: nn.Module, spec: TrainSpec) -> torch.optim.Optimizer:
    if spec.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=spec.lr, momentum=spec.momentum,
                               weight_decay=spec.weight_decay)
    return torch.optim.Adam(model.parameters(), lr=spec.lr, weight_decay=spec.weight_decay)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train(model: nn.Module, split: Split, spec: TrainSpec, seed: int, device: str = "cpu",
          on_step: Callable[[int, int], None] | None = None) -> TrainResult:
    """Train ``model`` in place on ``split.train``; ``on_step(step, total)`` reports progress."""
    dev = torch.device(device)
    model.to(dev)
    x, xv = as_tensor(split.train.x, dev), as_tensor(split.val.x, dev)
    y, yv = as_tensor(split.train.y, dev), as_tensor(split.val.y, dev)  # type: ignore[arg-type]
    order = torch_generator(seed, "data-order")
    opt = _optimizer(model, spec)

    # drop_last: a final batch of one example would make BatchNorm fail in training mode
    per_epoch = len(x) // spec.batch_size
    if per_epoch == 0:
        raise ConfigError(f"batch_size {spec.batch_size} is larger than the {len(x)} training examples",
                          hint="use a smaller batch_size")
    total = per_epoch * spec.epochs
    steps, accs = [0], [_accuracy(model, xv, yv)]
    losses: list[float] = []
    step, train_seconds = 0, 0.0
    to_target: tuple[int, float] | None = (0, 0.0) if accs[0] >= spec.target_accuracy else None
    diverged_at: int | None = None

    for _ in range(spec.epochs):
        perm = torch.randperm(len(x), generator=order).to(dev)
        for i in range(per_epoch):
            idx = perm[i * spec.batch_size:(i + 1) * spec.batch_size]
            model.train()
            t0 = time.perf_counter()
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            value = loss.item()  # synchronises, so the timing covers the whole step
            train_seconds += time.perf_counter() - t0
            losses.append(value)
            step += 1
            if not math.isfinite(value) or value > spec.divergence_factor * max(losses[0], 1e-8):
                diverged_at = step
                break
            if step % spec.eval_every == 0 or step == total:
                steps.append(step)
                accs.append(_accuracy(model, xv, yv))
                if to_target is None and accs[-1] >= spec.target_accuracy:
                    to_target = (step, train_seconds)
            if on_step is not None:
                on_step(step, total)
        if diverged_at is not None:
            break
    _sync(dev)
    model.eval()
    return TrainResult(
        curve_steps=np.asarray(steps, dtype=np.int64),
        curve_val_accuracy=np.asarray(accs, dtype=np.float64),
        loss=np.asarray(losses, dtype=np.float64),
        n_steps=step,
        steps_to_target=None if to_target is None else to_target[0],
        seconds_to_target=None if to_target is None else to_target[1],
        seconds_per_step=train_seconds / max(step, 1),
        train_seconds=train_seconds,
        diverged=diverged_at is not None,
        diverged_at=diverged_at,
        final_val_accuracy=float("nan") if diverged_at is not None else accs[-1],
    )
