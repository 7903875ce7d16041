"""Corruptions as batched tensor functions.

Contract of a shift plugin: ``shift(x, severity, generator) -> x'`` where ``x`` is a float
tensor (N, C, H, W) in [0, 1], ``severity`` an int in 1..5 (higher = stronger), and
``generator`` a ``torch.Generator`` on x's device (used only by random shifts). The output has
x's shape, lies in [0, 1], is detached, and is the same for the same generator state; ``x``
is never modified.

Parameters follow CIFAR-10-C's, expressed relative to a 32-pixel image where they depend on
size, so they mean the same thing on 8x8 digits as on 32x32 photos.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from harness.errors import ConfigError

# per-severity parameters (index severity - 1)
NOISE_SIGMA = (0.08, 0.12, 0.18, 0.26, 0.38)
BLUR_SIGMA_AT_32PX = (1.0, 2.0, 3.0, 4.0, 6.0)
CONTRAST_FACTOR = (0.75, 0.5, 0.4, 0.3, 0.15)


def _level(params: tuple[float, ...], severity: int) -> float:
    if not isinstance(severity, int) or not 1 <= severity <= len(params):
        raise ConfigError(f"severity {severity!r} is outside 1-{len(params)}", hint="use an integer from 1 to 5")
    return params[severity - 1]


def gaussian_noise(x: torch.Tensor, severity: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Additive Gaussian noise, sigma 0.08 / 0.12 / 0.18 / 0.26 / 0.38 in [0, 1] units."""
    sigma = _level(NOISE_SIGMA, severity)
    noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return (x + sigma * noise).clamp(0, 1).detach()


def _gaussian_kernel(sigma: float, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """The Gaussian integrated over each pixel's extent: sampling it at pixel centres would make
    the sub-pixel widths of small images (0.25 px at 8x8) an identity."""
    radius = max(1, math.ceil(3 * sigma))
    edges = torch.arange(-radius - 0.5, radius + 1.0, device=device, dtype=torch.float64) / (sigma * math.sqrt(2))
    k = torch.diff(torch.special.erf(edges))
    return (k / k.sum()).to(dtype)


def gaussian_blur(x: torch.Tensor, severity: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Gaussian blur, sigma 1 / 2 / 3 / 4 / 6 pixels at 32 px, scaled to the image height;
    separable, reflect-padded (replicate where the image is smaller than the kernel)."""
    sigma = _level(BLUR_SIGMA_AT_32PX, severity) * x.shape[-2] / 32.0
    k = _gaussian_kernel(sigma, x.device, x.dtype)
    r = (len(k) - 1) // 2
    n, c, h, w = x.shape
    mode = "reflect" if r < min(h, w) else "replicate"
    y = x.reshape(n * c, 1, h, w)
    y = F.conv2d(F.pad(y, (r, r, 0, 0), mode=mode), k.view(1, 1, 1, -1))
    y = F.conv2d(F.pad(y, (0, 0, r, r), mode=mode), k.view(1, 1, -1, 1))
    return y.reshape(n, c, h, w).clamp(0, 1).detach()


def contrast(x: torch.Tensor, severity: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Contrast reduction towards each image's mean, factor 0.75 / 0.5 / 0.4 / 0.3 / 0.15."""
    c = _level(CONTRAST_FACTOR, severity)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return ((x - mean) * c + mean).clamp(0, 1).detach()
