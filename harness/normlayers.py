"""The normalization layers the harness writes itself, beside torch's: RMSNorm over conv maps and a
flat norm applied per token; and ``NormFactory``, the contract of a norm plugin. A module of its own,
read by the models (harness.models) and by the norm swap (harness.normswap), so neither imports the
other to know them."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

#: a norm plugin: ``(num_features, spatial) -> nn.Module``; ``spatial`` True for conv maps (N, C, H, W),
#: False for features (N, D)
NormFactory = Callable[[int, bool], nn.Module]


class SpatialRMSNorm(nn.Module):
    """RMSNorm over (C, H, W) of each example with a per-channel scale; input (N, C, H, W)."""

    def __init__(self, num_features: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(num_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rms = x.pow(2).mean(dim=(1, 2, 3), keepdim=True).add(self.eps).rsqrt()
        return x * rms * self.weight.view(1, -1, 1, 1)


class TokenNorm(nn.Module):
    """A norm plugin's flat module (``spatial=False``) applied to tokens: (N, T, D) is flattened
    to (N * T, D), normalized, and reshaped back, so BatchNorm takes statistics over batch and
    tokens and the per-example norms normalize each token."""

    def __init__(self, dim: int, norm: NormFactory) -> None:
        super().__init__()
        self.norm = norm(dim, False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.reshape(-1, x.shape[-1])).view(x.shape)
