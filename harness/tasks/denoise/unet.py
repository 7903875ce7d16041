"""The denoiser: a compact DDPM U-Net with a normalization slot, resolved from the norms registry
like the classifiers of harness.models, its weights drawn by harness.models.init_weights so every
norm variant of a seed starts from bit-identical convolution and linear weights."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from harness.errors import ConfigError
from harness.models import NormFactory, init_weights


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
