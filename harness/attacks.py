"""Adversarial attacks: stateless, parameters in frozen dataclasses.

Contract of an attack plugin: a class built as ``Attack(eps=..., **params)`` whose
``perturb(model, x, y, generator=None)`` takes inputs ``x`` (N, C, H, W) in [0, 1] and integer
labels ``y`` (N,), and returns ``x_adv`` of x's shape within ``eps`` of ``x`` in the attack's
norm and with values in [0, 1]. It never mutates ``x``, runs the model in eval mode and restores
the train/eval mode it found, and leaves the model's parameter gradients untouched. ``eps`` is
in [0, 1] input units (L-inf); an L2 radius may exceed 1. Logits, not probabilities, are
attacked.

Worst-case bookkeeping: the iterative attacks check every iterate of every restart and keep,
per example, the first input that the model misclassified. Such an example is done: later
steps and restarts work only on the examples still classified correctly, which is both
stronger than keeping the last iterate and cheaper.

    from harness.attacks import FGSM, PGD, APGD
    x_adv = PGD(eps=0.1, steps=10, alpha=0.025, norm="linf", restarts=1, random_start=True).perturb(model, x, y)
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from harness.errors import ConfigError

NORMS = ("linf", "l2")
LOSSES = ("ce", "dlr")


def _check(eps: float, norm: str, loss: str = "ce", steps: int = 1, restarts: int = 1) -> None:
    if norm not in NORMS:
        raise ConfigError(f"unknown attack norm {norm!r}", hint="use 'linf' or 'l2'")
    if not math.isfinite(eps) or eps < 0 or (norm == "linf" and eps > 1):
        raise ConfigError(f"eps {eps} is outside [0, 1]" if norm == "linf" else f"L2 eps {eps} is negative",
                          hint="eps is measured in [0, 1] input units, e.g. 0.1 for L-inf or 0.5 for L2")
    if loss not in LOSSES:
        raise ConfigError(f"unknown attack loss {loss!r}", hint="use 'ce' (cross-entropy) or 'dlr'")
    if steps < 1 or restarts < 1:
        raise ConfigError(f"steps and restarts must be at least 1, got {steps} and {restarts}",
                          hint="use e.g. steps=10, restarts=1")


# --- geometry ------------------------------------------------------------------------------


def _norm2(v: torch.Tensor) -> torch.Tensor:
    """Per-example L2 norm, shaped (N, 1, 1, 1) for broadcasting."""
    return v.flatten(1).norm(dim=1).view(-1, *([1] * (v.dim() - 1)))


def project(x: torch.Tensor, x_adv: torch.Tensor, eps: float | torch.Tensor, norm: str) -> torch.Tensor:
    """The point of the eps-ball around ``x`` (and of [0, 1]) that ``x_adv`` maps to.
    Clamping to [0, 1] after the ball keeps the point in the ball, since x is in [0, 1]."""
    delta = x_adv - x
    if norm == "linf":
        delta = torch.max(torch.min(delta, torch.as_tensor(eps)), -torch.as_tensor(eps))
    else:
        delta = delta * torch.clamp(torch.as_tensor(eps) / (_norm2(delta) + 1e-12), max=1.0)
    return (x + delta).clamp(0, 1)


def _direction(grad: torch.Tensor, norm: str) -> torch.Tensor:
    """The steepest-ascent direction of unit size in the norm: sign for L-inf, unit L2 otherwise."""
    return grad.sign() if norm == "linf" else grad / (_norm2(grad) + 1e-12)


def _random_start(x: torch.Tensor, eps: float, norm: str, generator: torch.Generator | None) -> torch.Tensor:
    if norm == "linf":
        noise = 2 * torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype) - 1
        return project(x, x + eps * noise, eps, norm)
    noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return project(x, x + eps * noise / (_norm2(noise) + 1e-12), eps, norm)


# --- losses --------------------------------------------------------------------------------


def dlr_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Difference of logits ratio (Croce & Hein, 2020), per example (N,); higher = closer to
    misclassification; invariant to shifting and scaling the logits. Needs at least 3 classes."""
    if logits.shape[1] < 3:
        raise ConfigError(f"the DLR loss needs at least 3 classes, the model has {logits.shape[1]}",
                          hint="use apgd-ce (cross-entropy) for a binary task")
    z_sorted, _ = logits.sort(dim=1, descending=True)
    z_y = logits.gather(1, y[:, None]).squeeze(1)
    top_is_y = logits.argmax(1) == y
    z_other = torch.where(top_is_y, z_sorted[:, 1], z_sorted[:, 0])
    return -(z_y - z_other) / (z_sorted[:, 0] - z_sorted[:, 2] + 1e-12)


def _loss(logits: torch.Tensor, y: torch.Tensor, kind: str) -> torch.Tensor:
    return F.cross_entropy(logits, y, reduction="none") if kind == "ce" else dlr_loss(logits, y)


def loss_grad(model: nn.Module, x: torch.Tensor, y: torch.Tensor, kind: str
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-example loss (N,), its gradient w.r.t. the input, and the logits at ``x``.
    Only ``x`` is differentiated, so no parameter gradient is computed or accumulated."""
    x = x.detach().requires_grad_(True)
    logits = model(x)
    loss = _loss(logits, y, kind)
    (grad,) = torch.autograd.grad(loss.sum(), x)
    return loss.detach(), grad, logits.detach()


class _EvalMode:
    """Eval mode for the block, then the mode the model was found in."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model

    def __enter__(self) -> None:
        self.was_training = self.model.training
        self.model.eval()

    def __exit__(self, *exc: Any) -> None:
        self.model.train(self.was_training)


class _Worst:
    """Per-example worst case over iterates and restarts: the first misclassified input found,
    else the last iterate. ``active`` indexes the examples still classified correctly."""

    def __init__(self, x: torch.Tensor) -> None:
        self.x_adv = x.clone()
        self.broken = torch.zeros(len(x), dtype=torch.bool, device=x.device)

    @property
    def active(self) -> torch.Tensor:
        return (~self.broken).nonzero().squeeze(1)

    def record(self, idx: torch.Tensor, x_cur: torch.Tensor, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Store the iterates that fool the model; return the mask of those that do not."""
        hit = logits.argmax(1) != y
        self.x_adv[idx[hit]] = x_cur[hit]
        self.broken[idx[hit]] = True
        return ~hit

    def keep_last(self, idx: torch.Tensor, x_cur: torch.Tensor) -> None:
        self.x_adv[idx] = x_cur


class _Restarted(ABC):
    """An iterative attack run ``restarts`` times, in eval mode, each restart on the examples
    still standing; ``perturb`` returns the per-example worst case over all of them."""

    restarts: int

    def perturb(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                generator: torch.Generator | None = None) -> torch.Tensor:
        x = x.detach()
        worst = _Worst(x)
        with _EvalMode(model):
            for _ in range(self.restarts):
                idx = worst.active
                if len(idx):
                    self._restart(model, x, y, worst, idx, generator)
        return worst.x_adv

    @abstractmethod
    def _restart(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, worst: _Worst, idx: torch.Tensor,
                 generator: torch.Generator | None) -> None:
        """One restart on the examples ``idx`` of ``x``: record what fools the model in ``worst``."""


# --- attacks -------------------------------------------------------------------------------


@dataclass(frozen=True)
class FGSM:
    """Fast gradient sign method (Goodfellow et al., 2015), L-inf.

    One step of size ``eps`` along the sign of the input gradient of the cross-entropy.
    Shapes: x (N, C, H, W) in [0, 1], y (N,) -> x_adv like x.
    """

    eps: float

    def __post_init__(self) -> None:
        _check(self.eps, "linf")

    def perturb(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                generator: torch.Generator | None = None) -> torch.Tensor:
        with _EvalMode(model):
            _, grad, _ = loss_grad(model, x, y, "ce")
            return (x.detach() + self.eps * grad.sign()).clamp(0, 1)


def check_alpha(alpha: float | None) -> None:
    """A PGD step size: None (the default rule) or non-negative."""
    if alpha is not None and not alpha >= 0:
        raise ConfigError(f"PGD step size alpha must be non-negative, got {alpha}",
                          hint="leave it out for 2.5 * eps / steps")


def pgd_step_size(alpha: float | None, eps: float, steps: int) -> float:
    """``alpha``, else 2.5 * eps / steps: enough for the steps to cross the ball and come back."""
    return alpha if alpha is not None else 2.5 * eps / steps


@dataclass(frozen=True)
class PGD(_Restarted):
    """Projected gradient descent (Madry et al., 2018), L-inf or L2, with worst-case bookkeeping.

    Defaults: ``steps`` 10; step size ``alpha`` = 2.5 * eps / steps (so the steps can cross the
    ball and back); ``restarts`` 1; a uniform random start in the ball; cross-entropy loss.
    Shapes: x (N, C, H, W) in [0, 1], y (N,) -> x_adv like x.
    """

    eps: float
    steps: int = 10
    alpha: float | None = None
    norm: str = "linf"
    restarts: int = 1
    random_start: bool = True
    loss: str = "ce"

    def __post_init__(self) -> None:
        _check(self.eps, self.norm, self.loss, self.steps, self.restarts)
        check_alpha(self.alpha)

    @property
    def step_size(self) -> float:
        return pgd_step_size(self.alpha, self.eps, self.steps)

    def _restart(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, worst: _Worst, idx: torch.Tensor,
                 generator: torch.Generator | None) -> None:
        xi, yi = x[idx], y[idx]
        x_cur = _random_start(xi, self.eps, self.norm, generator) if self.random_start else xi.clone()
        for step in range(self.steps + 1):
            if step < self.steps:
                _, grad, logits = loss_grad(model, x_cur, yi, self.loss)
            else:
                with torch.no_grad():
                    logits = model(x_cur)
            keep = worst.record(idx, x_cur, logits, yi)
            if not keep.all():
                idx, xi, yi, x_cur, grad = idx[keep], xi[keep], yi[keep], x_cur[keep], grad[keep]
            if len(idx) == 0:
                return
            if step < self.steps:
                x_cur = project(xi, x_cur + self.step_size * _direction(grad, self.norm), self.eps, self.norm)
        worst.keep_last(idx, x_cur)


@dataclass(frozen=True)
class PGDL2(PGD):
    """PGD in the L2 norm (Madry et al., 2018), with worst-case bookkeeping.

    Steps along the unit-L2 gradient, projection onto the L2 ball; defaults as for PGD. eps is
    an L2 radius in [0, 1] pixel units (it may exceed 1)."""

    norm: str = "l2"


def apgd_checkpoints(steps: int) -> list[int]:
    """The iterations at which APGD may halve its step size: p0 = 0, p1 = 0.22,
    p(j+1) = p(j) + max(p(j) - p(j-1) - 0.03, 0.06), times ``steps``, rounded up, below ``steps``."""
    p = [0.0, 0.22]
    while p[-1] < 1:
        p.append(p[-1] + max(p[-1] - p[-2] - 0.03, 0.06))
    # round first: 0.57 * 100 is 57.000000000000007 in floating point, and must give 57
    return sorted({c for q in p[1:] if (c := math.ceil(round(q * steps, 9))) < steps})


@dataclass(frozen=True)
class APGD(_Restarted):
    """Auto-PGD (Croce & Hein, 2020): step-size-free PGD with momentum, L-inf or L2.

    The step size starts at 2 * eps per example and is halved at checkpoints
    (:func:`apgd_checkpoints`) when at most a share ``rho`` of the steps since the last one
    raised the loss, or when it was not halved last time and the best loss has not moved; on halving,
    the iterate restarts from the best-loss point. Momentum ``momentum`` = 0.75. Defaults:
    100 steps, one restart, cross-entropy (``loss="ce"``) or the difference of logits ratio
    (``loss="dlr"``). Shapes: x (N, C, H, W) in [0, 1], y (N,) -> x_adv like x.
    """

    eps: float
    steps: int = 100
    norm: str = "linf"
    loss: str = "ce"
    restarts: int = 1
    rho: float = 0.75
    momentum: float = 0.75

    def __post_init__(self) -> None:
        _check(self.eps, self.norm, self.loss, self.steps, self.restarts)

    def _restart(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, worst: _Worst, idx: torch.Tensor,
                 generator: torch.Generator | None) -> None:
        checkpoints = set(apgd_checkpoints(self.steps))
        xi, yi = x[idx], y[idx]
        shape = (-1,) + (1,) * (x.dim() - 1)
        x_cur = _random_start(xi, self.eps, self.norm, generator)
        loss, grad, logits = loss_grad(model, x_cur, yi, self.loss)
        # per-example state; every tensor below is indexed like idx and shrinks with it
        st = {
            "xi": xi, "yi": yi, "x_cur": x_cur, "x_prev": x_cur.clone(), "grad": grad, "loss": loss,
            "x_best": x_cur.clone(), "grad_best": grad.clone(), "loss_best": loss.clone(),
            "eta": torch.full((len(idx),), 2.0 * self.eps, device=x.device, dtype=x.dtype),
            "raised": torch.zeros(len(idx), device=x.device), "loss_best_ckpt": loss.clone(),
            "halved": torch.ones(len(idx), dtype=torch.bool, device=x.device),
        }
        last_ckpt = 0
        for k in range(self.steps):
            keep = worst.record(idx, st["x_cur"], logits, st["yi"])
            if not keep.all():
                idx = idx[keep]
                st = {name: t[keep] for name, t in st.items()}
            if len(idx) == 0:
                return
            if k in checkpoints:
                halve = (st["raised"] <= self.rho * (k - last_ckpt)) | (
                    ~st["halved"] & (st["loss_best_ckpt"] >= st["loss_best"]))
                st["eta"] = torch.where(halve, st["eta"] / 2, st["eta"])
                st["x_cur"][halve] = st["x_best"][halve]
                st["grad"][halve] = st["grad_best"][halve]
                st["raised"].zero_()
                st["halved"], st["loss_best_ckpt"], last_ckpt = halve, st["loss_best"].clone(), k
            eta = st["eta"].view(shape)
            z = project(st["xi"], st["x_cur"] + eta * _direction(st["grad"], self.norm), self.eps, self.norm)
            a = 1.0 if k == 0 else self.momentum
            x_new = project(st["xi"], st["x_cur"] + a * (z - st["x_cur"]) + (1 - a) * (st["x_cur"] - st["x_prev"]),
                            eps=self.eps, norm=self.norm)
            loss, grad, logits = loss_grad(model, x_new, st["yi"], self.loss)
            st["raised"] += (loss > st["loss"]).float()
            better = loss > st["loss_best"]
            st["x_best"][better], st["grad_best"][better], st["loss_best"][better] = (
                x_new[better], grad[better], loss[better])
            st["x_prev"], st["x_cur"], st["grad"], st["loss"] = st["x_cur"], x_new, grad, loss
        keep = worst.record(idx, st["x_cur"], logits, st["yi"])
        worst.keep_last(idx[keep], st["x_cur"][keep])


@dataclass(frozen=True)
class APGDDLR(APGD):
    """Auto-PGD on the difference of logits ratio loss (Croce & Hein, 2020).

    The DLR loss does not depend on the scale of the logits; 100 steps by default. Needs at
    least 3 classes."""

    loss: str = "dlr"
