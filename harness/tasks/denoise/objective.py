"""The denoising loss and the ELBO-style score, per example: what a denoiser is trained on, scored
by on clean, shifted and attacked images, and what detects OOD inputs."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from harness.errors import ConfigError
from harness.seeding import torch_generator
from harness.tasks.denoise.schedule import NoiseSchedule, to_signed


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
    return -weighted_error(model, schedule, x0, ts, noises)


def weighted_error(model: nn.Module, schedule: NoiseSchedule, x0: torch.Tensor, ts: list[int],
                    noises: list[torch.Tensor]) -> torch.Tensor:
    """(N,) float64: ``(1 / len(ts)) sum_k w(t_k) ||noises[k] - eps_hat(x_{t_k}, t_k)||^2``, the
    negative of :func:`elbo_score` for given timesteps and noise (differentiable in x0)."""
    weights = schedule.elbo_weights
    total = torch.zeros(len(x0), dtype=torch.float64, device=x0.device)
    for t, noise in zip(ts, noises, strict=True):
        tt = torch.full((len(x0),), t, dtype=torch.int64, device=x0.device)
        total = total + float(weights[t]) * _eps_error(model, schedule, x0, tt, noise).double()
    return total / len(ts)


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
