"""DDPM-style denoising diffusion: a noise schedule, a compact U-Net with a normalization slot,
the per-example denoising loss and ELBO score, ancestral sampling, a Frechet feature distance,
and a training loop that measures what :func:`harness.training.train` measures for classifiers.

Conventions (Ho, Jain & Abbeel 2020, "Denoising Diffusion Probabilistic Models"):

* **Images** enter and leave in [0, 1], (N, C, H, W) float32, as everywhere in the harness.
  The diffusion itself runs on ``2 x - 1`` (the data in [-1, 1], so the N(0, I) prior has the
  scale of the data); :func:`denoising_loss`, :func:`elbo_score` and :func:`sample` do that
  mapping, so an eps-ball around a clean image is in [0, 1] pixel units. The denoiser network
  sees the *noisy* image x_t of that space, which is not an image in [0, 1].
* **Timesteps** are integer indices ``t`` in 0 .. T-1; index ``t`` is the paper's step t + 1
  (index 0 is the least noisy step, T-1 the noisiest).
* **Randomness** comes only from the explicit ``torch.Generator`` a function is given (on the
  device of its tensors), never from global state: the same generator state gives the same
  numbers. Which draws a call makes, and in which order, is stated in each docstring.
* **The model's mode** is the caller's: :func:`denoising_loss` and :func:`elbo_score` use the
  model as it is (call ``model.eval()`` to evaluate, as the evaluation does for attacks);
  :func:`sample` runs in eval mode and restores the mode it found.

The denoiser, :class:`UNet`, takes a norm plugin from ``harness.registry.norms`` the way the
classifiers of :mod:`harness.models` do (a ``(num_features, spatial) -> nn.Module`` factory,
resolved by :func:`build_denoiser`), and its weights are drawn by
:func:`harness.models.init_weights` from the seed's ``init`` stream, so every norm variant of a
seed starts from bit-identical convolution and linear weights.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from harness.attacks import check_alpha, pgd_step_size
from harness.data import Split, as_tensor
from harness.errors import ConfigError
from harness.models import NormFactory, init_weights
from harness.seeding import torch_generator
from harness.specs import TrainSpec
from harness.training import curve_measures, fit, run_summary

#: the schedule of the DDPM paper is defined for this many steps; ``scaled=True`` keeps its shape
REFERENCE_STEPS = 1000


def to_signed(x: torch.Tensor) -> torch.Tensor:
    """Images in [0, 1] -> the diffusion space [-1, 1] (``2 x - 1``)."""
    return x * 2 - 1


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """The diffusion space -> images in [0, 1] (``(x + 1) / 2``, clamped)."""
    return ((x + 1) / 2).clamp(0, 1)


# --- noise schedule ----------------------------------------------------------------------------


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


# --- the denoiser ------------------------------------------------------------------------------


def sinusoidal_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """The transformer's sinusoidal position code of timesteps ``t`` (N,): (N, dim) float32,
    ``[sin(t w_0) .. sin(t w_{d/2-1}), cos(t w_0) ..]`` with ``w_i = 10000^(-i / (d/2))``; ``dim`` even."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.to(torch.float32)[:, None] * freqs[None]
    return torch.cat([args.sin(), args.cos()], dim=1)


class ResBlock(nn.Module):
    """Pre-activation residual block with a time input, as in DDPM:
    ``h = conv1(SiLU(norm1(x))) + proj(SiLU(temb))``, ``out = conv2(SiLU(norm2(h))) + skip(x)``,
    ``skip`` a 1x1 conv when the channel count changes (identity otherwise).
    Input (N, c_in, H, W) and temb (N, t_dim); output (N, c_out, H, W)."""

    def __init__(self, c_in: int, c_out: int, t_dim: int, norm: NormFactory) -> None:
        super().__init__()
        self.norm1 = norm(c_in, True)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.time_proj = nn.Linear(t_dim, c_out)
        self.norm2 = norm(c_out, True)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip: nn.Module = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()
        self.act = nn.SiLU()

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(self.act(self.norm1(x)))
        h = h + self.time_proj(self.act(temb))[:, :, None, None]
        h = self.conv2(self.act(self.norm2(h)))
        return h + self.skip(x)


class UNet(nn.Module):
    """A compact DDPM U-Net that predicts the noise: ``forward(x_t, t) -> eps_hat``, with
    ``x_t`` (N, C, H, W) the noisy image in the diffusion space and ``t`` (N,) integer timestep
    indices; the output has x_t's shape.

    Layout, for ``channels = (c_0, ..., c_{L-1})`` (one entry per resolution; L - 1 halvings):
    a 3x3 input conv to c_0; per level one :class:`ResBlock` to c_i, then (except at the last
    level) a stride-2 3x3 conv; a middle ResBlock; per level on the way up two ResBlocks, each
    taking the concatenation with the matching activation of the way down (a skip connection),
    then (except at the top) nearest-neighbour upsampling and a 3x3 conv; finally norm, SiLU and
    a 3x3 conv to C. The timestep enters every ResBlock: a sinusoidal code of width c_0, then an
    MLP (linear c_0 -> 4 c_0, SiLU, linear 4 c_0 -> 4 c_0), projected per block.

    The normalization slot is every norm of the ResBlocks and the output norm (``norm(c, True)``
    on (N, c, H, W) maps); the time MLP has none. The conv and linear layers are the same for
    every norm, so :func:`harness.models.init_weights` pairs them across variants.

    Options: ``channels`` (default (32, 64): one down and one up level; H and W must be
    divisible by 2^(L-1): 8x8 digits and 28x28 MNIST take up to 3 and 3 levels). Attribute
    ``in_shape`` (C, H, W) is what :func:`sample` generates.
    """

    def __init__(self, in_shape: tuple[int, int, int], norm: NormFactory,
                 channels: tuple[int, ...] = (32, 64)) -> None:
        super().__init__()
        c, h, w = in_shape
        channels = tuple(channels)
        if not channels or any(not isinstance(k, int) or k < 1 for k in channels):
            raise ConfigError(f"UNet channels must be positive integers, one per level, got {channels!r}",
                              hint="use e.g. channels=(32, 64)")
        if channels[0] % 2:
            raise ConfigError(f"UNet channels[0] = {channels[0]} is odd: it is also the width of the sinusoidal "
                              "time code", hint="use an even first width, e.g. 32")
        factor = 2 ** (len(channels) - 1)
        if h % factor or w % factor:
            levels = max(k for k in range(1, len(channels) + 1) if h % 2 ** (k - 1) == 0 and w % 2 ** (k - 1) == 0)
            raise ConfigError(f"a UNet with {len(channels)} levels halves the image {len(channels) - 1} times, "
                              f"which a {h}x{w} image does not allow", hint=f"give at most {levels} channel widths")
        self.in_shape = (c, h, w)
        self.channels = channels
        t_dim = 4 * channels[0]
        self.time_mlp = nn.Sequential(nn.Linear(channels[0], t_dim), nn.SiLU(), nn.Linear(t_dim, t_dim))
        self.conv_in = nn.Conv2d(c, channels[0], 3, padding=1)

        self.down_blocks = nn.ModuleList()
        self.downsample = nn.ModuleList()
        skips = [channels[0]]
        width = channels[0]
        for i, out in enumerate(channels):
            self.down_blocks.append(ResBlock(width, out, t_dim, norm))
            width = out
            skips.append(width)
            if i < len(channels) - 1:
                self.downsample.append(nn.Conv2d(width, width, 3, stride=2, padding=1))
                skips.append(width)
        self.mid = ResBlock(width, width, t_dim, norm)

        self.up_blocks = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for i in reversed(range(len(channels))):  # two blocks per level: up_blocks[2 j], [2 j + 1]
            for _ in range(2):
                self.up_blocks.append(ResBlock(width + skips.pop(), channels[i], t_dim, norm))
                width = channels[i]
            if i > 0:
                self.upsample.append(nn.Conv2d(width, width, 3, padding=1))
        self.norm_out = norm(width, True)
        self.conv_out = nn.Conv2d(width, c, 3, padding=1)
        self.act = nn.SiLU()

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        temb = self.time_mlp(sinusoidal_embedding(t, self.channels[0]))
        h = self.conv_in(x)
        hs = [h]
        for i, block in enumerate(self.down_blocks):
            h = block(h, temb)
            hs.append(h)
            if i < len(self.downsample):
                h = self.downsample[i](h)
                hs.append(h)
        h = self.mid(h, temb)
        for i in range(len(self.channels)):
            for block in (self.up_blocks[2 * i], self.up_blocks[2 * i + 1]):
                h = block(torch.cat([h, hs.pop()], dim=1), temb)
            if i < len(self.upsample):
                h = self.upsample[i](nn.functional.interpolate(h, scale_factor=2.0, mode="nearest"))
        return self.conv_out(self.act(self.norm_out(h)))


def build_denoiser(norm: str, in_shape: tuple[int, int, int], options: dict[str, Any],
                   generator: torch.Generator, model: str = "unet") -> nn.Module:
    """The registered denoiser ``model`` (``harness.registry.denoisers``, by default the
    :class:`UNet`) with the registered norm ``norm`` (``none``, ``group``, ``layer``, ``rms``,
    ``batch`` ...) and weights drawn from ``generator`` (use ``torch_generator(seed, "init")``
    as :func:`harness.models.build_model` does, so the variants of a seed are paired).

    A denoiser plugin is a ``(in_shape, norm_factory, **options) -> nn.Module`` whose
    ``forward(x_t, t)`` returns x_t's shape and which has an ``in_shape`` attribute."""
    from harness.registry import denoisers, norms

    net = denoisers.get(model)(in_shape, norms.get(norm), **options)
    init_weights(net, generator)
    return net


# --- losses and scores -------------------------------------------------------------------------


def _eps_error(model: nn.Module, schedule: NoiseSchedule, x0: torch.Tensor, t: torch.Tensor,
               noise: torch.Tensor) -> torch.Tensor:
    """(N,) float32: ``sum over C, H, W of (eps_hat(x_t, t) - noise)^2`` for images x0 in [0, 1]."""
    eps_hat = model(schedule.q_sample(to_signed(x0), t, noise), t)
    return (eps_hat - noise).pow(2).flatten(1).sum(1)


def denoising_loss(model: nn.Module, schedule: NoiseSchedule, x0: torch.Tensor,
                   generator: torch.Generator) -> torch.Tensor:
    """Per-example DDPM training loss ("L_simple"): (N,) float64, lower is better.

    For images ``x0`` (N, C, H, W) in [0, 1]: draws ``t`` (N,) uniform on 0 .. T-1 and then the
    noise (N, C, H, W) standard normal, both from ``generator`` (on x0's device), and returns the
    mean over C, H, W of ``(eps_hat(x_t, t) - noise)^2`` with ``x_t = q_sample(2 x0 - 1, t, noise)``.
    An untrained model that predicts 0 scores 1. Differentiable in the model's parameters and
    in ``x0`` (what an attack that maximises it needs); the model is used in its current mode."""
    n = len(x0)
    t = torch.randint(0, schedule.steps, (n,), generator=generator, device=x0.device)
    noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
    return _eps_error(model, schedule, x0, t, noise).double() / x0[0].numel()


def elbo_timesteps(schedule: NoiseSchedule, n_t: int) -> torch.Tensor:
    """The fixed stratified timesteps of :func:`elbo_score`: the midpoints
    ``floor((k + 1/2) T / n_t)``, k = 0 .. n_t - 1, of n_t equal strata of 0 .. T-1 (int64)."""
    if isinstance(n_t, bool) or not isinstance(n_t, int) or not 1 <= n_t <= schedule.steps:
        raise ConfigError(f"n_t must be an integer in 1 .. {schedule.steps} (the schedule's steps), got {n_t!r}",
                          hint="use e.g. n_t=10")
    return torch.floor((torch.arange(n_t, dtype=torch.float64) + 0.5) * schedule.steps / n_t).long()


def elbo_score(model: nn.Module, schedule: NoiseSchedule, x0: torch.Tensor, generator: torch.Generator,
               n_t: int = 10) -> torch.Tensor:
    """ELBO-style per-example score: (N,) float64, **higher = more in-distribution** (the
    direction of the harness's OOD scores).

    For images ``x0`` (N, C, H, W) in [0, 1], with the fixed timesteps ``t_1 .. t_{n_t}`` of
    :func:`elbo_timesteps` (the same for every example, so scores of two models or two sets are
    paired) and, per timestep in that order, noise (N, C, H, W) drawn from ``generator``::

        score = - (1 / n_t) * sum_k  w(t_k) * ||eps_k - eps_hat(x_{t_k}, t_k)||^2

    where the squared norm sums over C, H, W and ``w`` is :attr:`NoiseSchedule.elbo_weights`.
    ``-T * score`` is the midpoint-rule (stratified) estimate of the diffusion part of DDPM's
    negative ELBO, sum_t L_{t-1}, in nats up to the constants that do not depend on the model
    (the prior term L_T and the Gaussian normalisers); the discrete decoder term of the paper is
    replaced by the same weighted error at t = 0. It is an upper bound estimate of -log p(x)
    (lower is likelier), so its negative mean is the score. The low-noise timesteps carry the
    largest weights. Differentiable like :func:`denoising_loss`; the model is used in its
    current mode (call ``model.eval()`` first to evaluate); batch the call yourself: the noise
    follows the order of the calls."""
    ts = elbo_timesteps(schedule, n_t).tolist()
    noises = [torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype) for _ in ts]
    return -_weighted_error(model, schedule, x0, ts, noises)


def _weighted_error(model: nn.Module, schedule: NoiseSchedule, x0: torch.Tensor, ts: list[int],
                    noises: list[torch.Tensor]) -> torch.Tensor:
    """(N,) float64: ``(1 / len(ts)) sum_k w(t_k) ||noises[k] - eps_hat(x_{t_k}, t_k)||^2``, the
    negative of :func:`elbo_score` for given timesteps and noise (differentiable in x0)."""
    weights = schedule.elbo_weights
    total = torch.zeros(len(x0), dtype=torch.float64, device=x0.device)
    for t, noise in zip(ts, noises, strict=True):
        tt = torch.full((len(x0),), t, dtype=torch.int64, device=x0.device)
        total = total + float(weights[t]) * _eps_error(model, schedule, x0, tt, noise).double()
    return total / len(ts)


# --- sampling ----------------------------------------------------------------------------------


def sample(model: nn.Module, schedule: NoiseSchedule, n: int, generator: torch.Generator,
           shape: tuple[int, int, int] | None = None, clip_denoised: bool = True) -> torch.Tensor:
    """Ancestral DDPM sampling (the paper's Algorithm 2): (n, C, H, W) float32 images in [0, 1].

    ``x_T ~ N(0, I)``; for t = T-1 .. 0: ``x_{t-1} = mu(x_t, t) + sigma_t z`` with
    ``sigma_t^2 = beta_t`` (the variance the ELBO weights assume) and no noise at t = 0. The mean
    is the posterior mean of q(x_{t-1} | x_t, x0_hat) for the model's estimate
    ``x0_hat = (x_t - sqrt(1 - alpha_bar_t) eps_hat) / sqrt(alpha_bar_t)``; with ``clip_denoised``
    (default, as in the paper's code) x0_hat is clipped to [-1, 1] first, and without it the mean
    is the paper's ``(x_t - beta_t / sqrt(1 - alpha_bar_t) eps_hat) / sqrt(alpha_t)`` exactly.

    ``shape`` is (C, H, W), by default the model's ``in_shape``. Draws x_T, then one z per step
    with t > 0, from ``generator`` (on the model's device). Runs without gradients in eval mode and
    restores the model's mode."""
    shape = shape if shape is not None else getattr(model, "in_shape", None)
    if shape is None:
        raise ConfigError("sample() needs the image shape: the model has no in_shape",
                          hint="pass shape=(C, H, W)")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ConfigError(f"sample() needs a positive number of images, got {n!r}", hint="use e.g. n=64")
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    s = schedule
    coef_x0 = torch.tensor(s.betas * np.sqrt(s.alphas_bar_prev) / (1 - s.alphas_bar), device=device)
    coef_xt = torch.tensor((1 - s.alphas_bar_prev) * np.sqrt(s.alphas) / (1 - s.alphas_bar), device=device)
    ab = torch.tensor(s.alphas_bar, device=device)
    sigma = torch.tensor(np.sqrt(s.betas), device=device)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            x = torch.randn((n, *shape), generator=generator, device=device)
            for step in reversed(range(s.steps)):
                t = torch.full((n,), step, dtype=torch.int64, device=device)
                eps = model(x, t)
                x0_hat = (x - (1 - ab[step]).sqrt().float() * eps) / ab[step].sqrt().float()
                if clip_denoised:
                    x0_hat = x0_hat.clamp(-1, 1)
                x = coef_x0[step].float() * x0_hat + coef_xt[step].float() * x
                if step > 0:
                    x = x + sigma[step].float() * torch.randn(x.shape, generator=generator, device=device)
    finally:
        model.train(was_training)
    return to_unit(x)


# --- sample quality ----------------------------------------------------------------------------


def feature_distance(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to two sets of feature vectors, (n, D) and
    (m, D) -> float >= 0; lower is better (0 for identical sets). The FID's formula:

        ||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2))

    with sample means and covariances (ddof = 1); it grows with the squared distance of the means.
    The trace of the matrix square root is computed as ``Tr((S_a^(1/2) S_b S_a^(1/2))^(1/2))``,
    which has the same eigenvalues but is symmetric positive semi-definite, so both roots come
    from ``eigh`` with eigenvalues clipped at 0: a singular covariance (fewer vectors than
    dimensions, constant features) gives a finite real value without the complex parts and
    warnings of ``scipy.linalg.sqrtm`` on the non-symmetric product, and the same value where
    that is well defined. Numpy in, no randomness.
    """
    a = np.asarray(features_a, dtype=np.float64)
    b = np.asarray(features_b, dtype=np.float64)
    for name, f in (("features_a", a), ("features_b", b)):
        if f.ndim != 2 or len(f) < 2:
            raise ValueError(f"{name} must be (n, D) with n >= 2; got shape {f.shape}")
        if not np.isfinite(f).all():
            raise ValueError(f"{name} has non-finite values")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"feature widths differ: {a.shape[1]} and {b.shape[1]}")
    mean_term = float(np.sum((a.mean(0) - b.mean(0)) ** 2))
    cov_a = np.atleast_2d(np.cov(a, rowvar=False))
    cov_b = np.atleast_2d(np.cov(b, rowvar=False))
    eig_a, vec_a = np.linalg.eigh(cov_a)
    root_a = (vec_a * np.sqrt(np.clip(eig_a, 0, None))) @ vec_a.T
    inner = root_a @ cov_b @ root_a
    trace_root = float(np.sum(np.sqrt(np.clip(np.linalg.eigvalsh((inner + inner.T) / 2), 0, None))))
    return max(0.0, mean_term + float(np.trace(cov_a) + np.trace(cov_b)) - 2 * trace_root)


# --- training ----------------------------------------------------------------------------------


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

    def summary(self) -> dict[str, float | int | bool | str | None]:
        """The scalar results, JSON-ready. ``mean_val_loss`` is the area under the held-out loss
        curve over the planned budget divided by the budget (trapezoids between the samples;
        lower is better): the mean held-out loss over training, which rewards early progress;
        the steps a diverged run did not take count at the untrained model's (step 0) loss.
        ``loss_roughness`` and the gradient statistics are those of
        :func:`harness.training.curve_measures`."""
        steps = self.curve_steps.astype(np.float64)
        vals = self.curve_val_loss.astype(np.float64)
        area = float(np.sum(np.diff(steps) * (vals[1:] + vals[:-1]) / 2)) if len(steps) > 1 else 0.0
        area += (self.budget_steps - steps[-1]) * vals[0]
        measures = curve_measures(self.curve_steps, np.zeros(len(steps)), self.loss, self.grad_norm,
                                  self.budget_steps)
        del measures["aulc"]  # an accuracy area; mean_val_loss is the denoiser's
        return {
            **run_summary(self),
            "target_loss": self.target_loss,
            "final_val_loss": self.final_val_loss,
            "mean_val_loss": float(area / self.budget_steps) if self.budget_steps > 0 else float("nan"),
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


# --- evaluation --------------------------------------------------------------------------------


@dataclass(frozen=True)
class DenoisePGD:
    """PGD (Madry et al., 2018) in the L-inf ball that *maximises* a denoiser's ELBO-style loss
    (the negative of :func:`elbo_score`) with its (timestep, noise) draws fixed for the whole run:
    ``n_t`` stratified timesteps (:func:`elbo_timesteps`) and, per timestep, noise (N, C, H, W)
    drawn once from the generator, after the random start. A fixed objective gives the
    iterations a consistent direction; the evaluation then scores ``x_adv`` with its own,
    independent draws (:func:`evaluate_denoiser`), so the attack is not fitted to the noise it is
    judged with.

    Defaults as for the classifiers' PGD: ``steps`` 10, step size ``alpha`` = 2.5 * eps / steps,
    a uniform random start, ``restarts`` 1; per example the iterate with the highest objective over
    every step and restart is returned (worst case). ``perturb(model, schedule, x, generator)``:
    x (N, C, H, W) in [0, 1] -> x_adv like x, within eps of x and in [0, 1], x not mutated; the
    model runs in eval mode and its mode is restored; no parameter gradients. At eps = 0 it
    returns a copy of x without running anything.
    """

    eps: float
    steps: int = 10
    alpha: float | None = None
    restarts: int = 1
    random_start: bool = True
    n_t: int = 4
    norm: str = "linf"

    def __post_init__(self) -> None:
        if not (math.isfinite(self.eps) and 0 <= self.eps <= 1):
            raise ConfigError(f"eps {self.eps} is outside [0, 1]", hint="eps is in [0, 1] input units, e.g. 0.05")
        if self.steps < 1 or self.restarts < 1 or self.n_t < 1:
            raise ConfigError(f"steps, restarts and n_t must be at least 1, got {self.steps}, {self.restarts}, "
                              f"{self.n_t}", hint="use e.g. steps=10, restarts=1, n_t=4")
        if self.norm != "linf":
            raise ConfigError(f"the denoising-loss PGD is L-inf only, got norm {self.norm!r}", hint="use norm='linf'")
        check_alpha(self.alpha)

    @property
    def step_size(self) -> float:
        return pgd_step_size(self.alpha, self.eps, self.steps)

    def perturb(self, model: nn.Module, schedule: NoiseSchedule, x: torch.Tensor,
                generator: torch.Generator | None = None) -> torch.Tensor:
        from harness.attacks import project

        x = x.detach()
        if self.eps == 0 or len(x) == 0:
            return x.clone()
        ts = elbo_timesteps(schedule, min(self.n_t, schedule.steps)).tolist()
        was_training = model.training
        model.eval()
        try:
            best, best_loss = x.clone(), torch.full((len(x),), -math.inf, dtype=torch.float64, device=x.device)
            for _ in range(self.restarts):
                if self.random_start:
                    start = 2 * torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype) - 1
                    x_cur = project(x, x + self.eps * start, self.eps, "linf")
                else:
                    x_cur = x.clone()
                noises = [torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype) for _ in ts]
                for step in range(self.steps + 1):
                    x_cur = x_cur.detach().requires_grad_(step < self.steps)
                    with torch.set_grad_enabled(step < self.steps):
                        loss = _weighted_error(model, schedule, x_cur, ts, noises)
                    better = loss.detach() > best_loss
                    best[better], best_loss[better] = x_cur.detach()[better], loss.detach()[better]
                    if step < self.steps:
                        (grad,) = torch.autograd.grad(loss.sum(), x_cur)
                        x_cur = project(x, x_cur.detach() + self.step_size * grad.sign(), self.eps, "linf")
        finally:
            model.train(was_training)
        return best


def class_tv(pred: np.ndarray, labels: np.ndarray, n_classes: int) -> float:
    """Total-variation distance between the class histogram of predictions ``pred`` (n,) and of
    reference labels ``labels`` (m,), both integers in 0 .. n_classes - 1: half the L1 distance
    of the two class frequency vectors, in [0, 1], lower is better (0: the same class mix)."""
    p = np.bincount(np.asarray(pred, dtype=np.int64), minlength=n_classes)[:n_classes] / max(len(pred), 1)
    q = np.bincount(np.asarray(labels, dtype=np.int64), minlength=n_classes)[:n_classes] / max(len(labels), 1)
    return float(0.5 * np.abs(p - q).sum())


def negative_elbo(model: nn.Module, schedule: NoiseSchedule, x: torch.Tensor, seed: int, n_t: int,
                  batch_size: int) -> np.ndarray:
    """(N,) float64: the per-example ELBO-style denoising loss ``-elbo_score`` of images x (N, C, H, W)
    in [0, 1], lower is better, without gradients, in batches of ``batch_size``. The noise comes
    from a fresh ``torch_generator(seed, "elbo")`` at every call, so every call on a set of the same
    size (clean, shifted, attacked: the same examples) gets the same draws per example, and every
    variant of a seed too: differences are the input's and the model's, not the noise's."""
    gen = torch_generator(seed, "elbo", device=x.device.type)
    with torch.no_grad():
        out = [-elbo_score(model, schedule, x[i:i + batch_size], gen, n_t) for i in range(0, len(x), batch_size)]
    return torch.cat(out).cpu().numpy() if out else np.zeros(0)


@dataclass(frozen=True, eq=False)
class Judge:
    """The suite's own trained classifier, which judges generated samples: ``model`` (eval mode,
    with ``features(x)``), and its features (n, D) of the real test images."""

    model: nn.Module
    test_features: np.ndarray


def sample_quality(model: nn.Module, schedule: NoiseSchedule, judge: Judge, y_test: np.ndarray, n: int,
                   generator: torch.Generator, batch_size: int) -> dict[str, np.ndarray]:
    """Generate ``n`` samples (:func:`sample`, in batches of ``batch_size`` from one generator) and
    judge them: ``pred`` (n,) int64 and ``confidence`` (n,) the judge's class and its softmax
    probability; ``class_counts`` (K,) the histogram of ``pred``; ``class_tv`` (1,) the
    total-variation distance of that histogram from the test labels' (:func:`class_tv`) and
    ``fid`` (1,) the Frechet distance (:func:`feature_distance`) between the judge's penultimate
    features of the samples and of the test images; both lower is better."""
    from harness.evaluation import features, predict

    xs = torch.cat([sample(model, schedule, min(batch_size, n - i), generator) for i in range(0, n, batch_size)])
    logits = predict(judge.model, xs, batch_size)
    probs = logits.double().softmax(1)
    pred = probs.argmax(1).cpu().numpy().astype(np.int64)
    k = logits.shape[1]
    fid = feature_distance(features(judge.model, xs, batch_size).cpu().numpy(), judge.test_features)
    return {"pred": pred, "confidence": probs.max(1).values.cpu().numpy(),
            "class_counts": np.bincount(pred, minlength=k).astype(np.int64),
            "class_tv": np.array([class_tv(pred, y_test, k)]), "fid": np.array([fid])}


def evaluate_denoiser(model: nn.Module, schedule: NoiseSchedule, x_test: np.ndarray, y_test: np.ndarray,
                      ood_sets: dict[str, np.ndarray], conditions: list[Any], seed: int, condition_seed: int,
                      batch_size: int = 512, device: str = "cpu", n_t: int = 10, judge: Judge | None = None,
                      n_samples: int = 256) -> Any:
    """Yield (condition, per-example outcome) for each condition of a denoise suite, in order.

    * clean, shift: ``denoise_loss`` (N,), :func:`negative_elbo` of the (shifted) test images,
      lower is better; shifted images as the classifiers get them (generator keyed on the
      condition seed and the shift), so every model sees the same ones;
    * ood: ``score_in`` (N,) and ``score_out`` (M,), the ELBO score (higher = more
      in-distribution) of the test images and of the OOD set;
    * attack ``pgd-linf``: :class:`DenoisePGD` (its parameters from the condition, its random start and
      objective noise from ``torch_generator(seed, condition key)``), then ``denoise_loss`` of
      x_adv as for clean (so eps = 0 gives the clean values exactly), and ``linf`` / ``l2``;
    * samples: :func:`sample_quality` with ``n_samples`` samples from the seed's
      ``torch_generator(seed, "samples")`` (every variant of a seed starts from the same noise).

    ``seed`` is the training seed; ``n_t`` the ELBO's timesteps; the model is used in eval mode.
    """
    from harness.registry import shifts
    from harness.specs import shift

    dev = torch.device(device)
    model.to(dev).eval()
    x = as_tensor(x_test, dev)
    clean_loss: np.ndarray | None = None

    def loss_of(images: torch.Tensor) -> np.ndarray:
        return negative_elbo(model, schedule, images, seed, n_t, batch_size)

    for cond in conditions:
        if cond.kind == "clean":
            clean_loss = loss_of(x) if clean_loss is None else clean_loss
            yield cond, {"denoise_loss": clean_loss}
        elif cond.kind == "shift":
            gen = torch_generator(condition_seed, shift(cond.name, cond.param("severity")).key, device=dev.type)
            yield cond, {"denoise_loss": loss_of(shifts.get(cond.name)(x, cond.param("severity"), gen))}
        elif cond.kind == "ood":
            s_in = -(loss_of(x) if clean_loss is None else clean_loss)
            s_out = -loss_of(as_tensor(ood_sets[cond.name], dev))
            yield cond, {"score_in": s_in, "score_out": s_out}
        elif cond.kind == "attack":
            gen = torch_generator(seed, cond.key, device=dev.type)
            atk = DenoisePGD(**dict(cond.params))
            x_adv = torch.cat([atk.perturb(model, schedule, x[i:i + batch_size], gen)
                               for i in range(0, len(x), batch_size)])
            delta = (x_adv - x).flatten(1)
            yield cond, {"denoise_loss": loss_of(x_adv), "linf": delta.abs().max(1).values.double().cpu().numpy(),
                         "l2": delta.norm(dim=1).double().cpu().numpy()}
        elif cond.kind == "samples":
            if judge is None:
                raise ConfigError("the samples condition needs the suite's judge classifier",
                                  hint="pass judge= to evaluate_denoiser (the runner trains it once per run)")
            gen = torch_generator(seed, "samples", device=dev.type)
            yield cond, sample_quality(model, schedule, judge, np.asarray(y_test), n_samples, gen, batch_size)
        else:
            raise ValueError(f"a denoise suite has no condition kind {cond.kind!r}")


def denoise_attack_settings(cond: Any) -> dict[str, Any]:
    """The denoising-loss PGD a condition runs, with every default resolved (for the record)."""
    atk = DenoisePGD(**dict(cond.params))
    return {"attack": type(atk).__name__, "norm": atk.norm, "settings": dataclasses.asdict(atk),
            "step_size": atk.step_size}
