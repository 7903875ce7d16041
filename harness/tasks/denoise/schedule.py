"""The diffusion space and DDPM's noise schedule (Ho, Jain & Abbeel 2020): images in [0, 1] map to
[-1, 1], timestep index t is the paper's step t + 1."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from harness.errors import ConfigError

#: the schedule of the DDPM paper is defined for this many steps; ``scaled=True`` keeps its shape
REFERENCE_STEPS = 1000


def to_signed(x: torch.Tensor) -> torch.Tensor:
    """Images in [0, 1] -> the diffusion space [-1, 1] (``2 x - 1``)."""
    return x * 2 - 1


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """The diffusion space -> images in [0, 1] (``(x + 1) / 2``, clamped)."""
    return ((x + 1) / 2).clamp(0, 1)




@dataclass(frozen=True)
class NoiseSchedule:
    """The linear beta schedule of DDPM: ``betas`` evenly spaced from ``beta_start`` to
    ``beta_end`` over ``steps`` (T) steps, float64 arrays of shape (T,).

    With ``scaled=True`` (the default) both ends are multiplied by ``1000 / steps``
    (Nichol & Dhariwal 2021's rule), so a short schedule (T = 100-200, what CPU-sized runs use)
    destroys the signal as completely as the paper's 1,000 steps: alpha_bar at the last step is
    about 4e-5 for every T. At T = 1000 it is exactly the paper's schedule (1e-4 .. 0.02).
    ``scaled=False`` uses ``beta_start`` and ``beta_end`` as given.

    ``alphas = 1 - betas``; ``alphas_bar[t] = prod(alphas[:t + 1])`` (decreasing, in (0, 1));
    ``alphas_bar_prev[t] = alphas_bar[t - 1]`` with 1 at t = 0.
    """

    steps: int = REFERENCE_STEPS
    beta_start: float = 1e-4
    beta_end: float = 0.02
    scaled: bool = True
    betas: np.ndarray = field(init=False, repr=False, compare=False)
    alphas: np.ndarray = field(init=False, repr=False, compare=False)
    alphas_bar: np.ndarray = field(init=False, repr=False, compare=False)
    alphas_bar_prev: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if isinstance(self.steps, bool) or not isinstance(self.steps, (int, np.integer)) or self.steps < 2:
            raise ConfigError(f"a noise schedule needs an integer number of steps of at least 2, got {self.steps!r}",
                              hint="use e.g. steps=200 for digits, 1000 for the DDPM paper's schedule")
        if not (math.isfinite(self.beta_start) and math.isfinite(self.beta_end)
                and 0 < self.beta_start <= self.beta_end):
            raise ConfigError(f"noise schedule betas must satisfy 0 < beta_start <= beta_end, got "
                              f"{self.beta_start} and {self.beta_end}",
                              hint="use the DDPM values beta_start=1e-4, beta_end=0.02")
        scale = REFERENCE_STEPS / self.steps if self.scaled else 1.0
        if scale * self.beta_end >= 1:
            scaled = " scaled by 1000 / steps" if self.scaled else ""
            raise ConfigError(f"noise schedule: beta_end {self.beta_end}{scaled} is {scale * self.beta_end:.3g}, "
                              "and a beta must stay below 1",
                              hint=f"use more steps (at least {math.floor(REFERENCE_STEPS * self.beta_end) + 1} "
                                   "with the default scaling) or a smaller beta_end")
        betas = np.linspace(scale * self.beta_start, scale * self.beta_end, int(self.steps), dtype=np.float64)
        alphas = 1.0 - betas
        alphas_bar = np.cumprod(alphas)
        for name, value in (("betas", betas), ("alphas", alphas), ("alphas_bar", alphas_bar),
                            ("alphas_bar_prev", np.concatenate([[1.0], alphas_bar[:-1]]))):
            value.setflags(write=False)
            object.__setattr__(self, name, value)

    @property
    def elbo_weights(self) -> np.ndarray:
        """(T,) float64: the weight ``beta_t / (2 alpha_t (1 - alpha_bar_t))`` that turns the
        epsilon error ``||eps - eps_hat(x_t, t)||^2`` into the ELBO term L_{t-1} of DDPM (its
        eq. 12 with sigma_t^2 = beta_t); 1 / (2 alpha_0) at t = 0, decreasing to about beta_T / 2."""
        return self.betas / (2 * self.alphas * (1 - self.alphas_bar))

    def params(self) -> dict[str, Any]:
        """The arguments that define the schedule, JSON-ready (for cell keys and records)."""
        return {"steps": int(self.steps), "beta_start": self.beta_start, "beta_end": self.beta_end,
                "scaled": self.scaled}

    def at(self, values: np.ndarray, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """``values[t]`` (one of the (T,) arrays) as (N, 1, ..., 1) in ``like``'s dtype and
        device, to broadcast against ``like`` (N, ...)."""
        self.check_t(t, len(like))
        v = torch.tensor(values, dtype=torch.float64, device=like.device)[t]
        return v.to(like.dtype).view(-1, *([1] * (like.dim() - 1)))

    def check_t(self, t: torch.Tensor, n: int) -> None:
        """A ConfigError unless ``t`` is an (n,) integer tensor of indices in 0 .. steps - 1."""
        if not isinstance(t, torch.Tensor) or t.dtype.is_floating_point or t.dtype == torch.bool or t.shape != (n,):
            got = f"{t.dtype} {tuple(t.shape)}" if isinstance(t, torch.Tensor) else type(t).__name__
            raise ConfigError(f"timesteps must be an integer tensor of shape ({n},), got {got}",
                              hint="pass one int64 index per example, e.g. torch.full((n,), 10)")
        if n and (int(t.min()) < 0 or int(t.max()) >= self.steps):
            raise ConfigError(f"timesteps must lie in 0 .. {self.steps - 1}, got {int(t.min())} .. {int(t.max())}",
                              hint="index 0 is the least noisy step and steps - 1 the noisiest")

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """The forward process q(x_t | x_0): ``sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) noise``.

        ``x0`` (N, ...) in the diffusion space (see :func:`to_signed`), ``t`` (N,) integer indices,
        ``noise`` of x0's shape (standard normal for the DDPM process). Returns x0's shape and
        dtype; differentiable in x0 and noise."""
        if noise.shape != x0.shape:
            raise ConfigError(f"noise of shape {tuple(noise.shape)} for x0 of shape {tuple(x0.shape)}",
                              hint="draw the noise with x0's shape, e.g. torch.randn_like(x0)")
        ab = self.at(self.alphas_bar, t, x0)
        return ab.sqrt() * x0 + (1 - ab).sqrt() * noise
