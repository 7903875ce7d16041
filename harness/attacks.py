"""Adversarial attacks: stateless, parameters in frozen dataclasses.

Contract of an attack plugin: a class built as ``Attack(eps=..., **params)`` whose
``perturb(model, x, y, generator=None)`` takes inputs ``x`` (N, C, H, W) in [0, 1] and integer
labels ``y`` (N,), and returns ``x_adv`` of x's shape with ``|x_adv - x|_inf <= eps`` and
values in [0, 1]. It never mutates ``x``, runs the model in eval mode and restores the
train/eval mode it found, and leaves the model's parameter gradients untouched. ``eps`` is
in [0, 1] input units; logits, not probabilities, are attacked (cross-entropy on logits).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from harness.errors import ConfigError


def _check_eps(eps: float) -> None:
    if not 0.0 <= eps <= 1.0:
        raise ConfigError(f"eps {eps} is outside [0, 1]", hint="eps is in [0, 1] input units, e.g. 0.1")


def _input_grad(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradient of the summed cross-entropy w.r.t. the input, and the logits at ``x``.
    Only ``x`` is differentiated, so no parameter gradient is accumulated."""
    x = x.detach().requires_grad_(True)
    logits = model(x)
    (grad,) = torch.autograd.grad(F.cross_entropy(logits, y, reduction="sum"), x)
    return grad, logits.detach()


class _EvalMode:
    """Puts the model in eval mode for the block and restores the mode it found."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model

    def __enter__(self) -> None:
        self.was_training = self.model.training
        self.model.eval()

    def __exit__(self, *exc: Any) -> None:
        self.model.train(self.was_training)


@dataclass(frozen=True)
class FGSM:
    """Fast gradient sign method (Goodfellow et al., 2015), L-inf.

    One step of size ``eps`` along the sign of the input gradient of the cross-entropy.
    Shapes: x (N, C, H, W) in [0, 1], y (N,) -> x_adv like x.
    """

    eps: float

    def __post_init__(self) -> None:
        _check_eps(self.eps)

    def perturb(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                generator: torch.Generator | None = None) -> torch.Tensor:
        with _EvalMode(model):
            grad, _ = _input_grad(model, x, y)
            return (x.detach() + self.eps * grad.sign()).clamp(0, 1)


@dataclass(frozen=True)
class PGD:
    """Projected gradient descent (Madry et al., 2018), L-inf, with worst-case bookkeeping.

    Defaults: ``steps`` 10, step size ``alpha`` = 2.5 * eps / steps, one restart from a
    uniform random start in the eps-ball. An example counts as broken if any iterate of any
    restart was misclassified; that iterate is returned for it, the last iterate otherwise.
    Shapes: x (N, C, H, W) in [0, 1], y (N,) -> x_adv like x.
    """

    eps: float
    steps: int = 10
    alpha: float | None = None
    restarts: int = 1
    random_start: bool = True
    norm: str = "linf"

    def __post_init__(self) -> None:
        _check_eps(self.eps)
        if self.steps < 1 or self.restarts < 1:
            raise ConfigError(f"PGD needs steps >= 1 and restarts >= 1, got {self.steps} and {self.restarts}",
                              hint="use e.g. steps=10, restarts=1")
        if self.norm != "linf":
            raise ConfigError(f"PGD norm {self.norm!r} is not available yet", hint="use norm='linf'")

    @property
    def step_size(self) -> float:
        return self.alpha if self.alpha is not None else 2.5 * self.eps / self.steps

    def perturb(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                generator: torch.Generator | None = None) -> torch.Tensor:
        x = x.detach()
        lo, hi = (x - self.eps).clamp(0, 1), (x + self.eps).clamp(0, 1)
        best = x.clone()
        broken = torch.zeros(len(x), dtype=torch.bool, device=x.device)
        with _EvalMode(model):
            for _ in range(self.restarts):
                x_adv = x.clone()
                if self.random_start:
                    noise = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
                    x_adv = torch.min(torch.max(x + (2 * noise - 1) * self.eps, lo), hi)
                for step in range(self.steps + 1):
                    if step < self.steps:
                        grad, logits = _input_grad(model, x_adv, y)
                    else:  # the last iterate only needs its prediction
                        with torch.no_grad():
                            logits = model(x_adv)
                    newly = (logits.argmax(1) != y) & ~broken
                    best[newly] = x_adv[newly]
                    broken |= newly
                    if step < self.steps:
                        x_adv = torch.min(torch.max(x_adv + self.step_size * grad.sign(), lo), hi)
                best[~broken] = x_adv[~broken]
        return best
