"""ScaleNorm (Nguyen & Salazar, 2019) as a norm plugin.

A norm plugin is a callable ``(num_features, spatial) -> nn.Module``: ``spatial`` is True after
a convolution (input (N, C, H, W)) and False after a linear layer (input (N, C)); the module
keeps the input's shape. Parameters of a norm are reset by ``reset_parameters()`` (which the
harness calls when it draws a model's weights), so every variant of a seed starts the same.
"""

from __future__ import annotations

import torch
from torch import nn


class ScaleNorm(nn.Module):
    """Each example's features scaled to one learned length: ``y = g * x / rms(x)``.

    ``rms`` is the root mean square over all features of one example (C, or C, H, W after a
    convolution), ``g`` a single learned scalar, 1 at initialization. Nguyen & Salazar divide by
    the L2 norm and start ``g`` at sqrt(d); since rms = L2 norm / sqrt(d), this is the same
    function, and it needs no d when the layer is built (a conv map's H and W are not known then).
    Unlike RMSNorm there is one scale for all channels, not one per channel; unlike BatchNorm no
    batch statistics, so an example's output does not depend on the rest of its batch.
    """

    def __init__(self, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.g = nn.Parameter(torch.ones(()))

    def reset_parameters(self) -> None:
        with torch.no_grad():
            self.g.fill_(1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ms = x.pow(2).mean(dim=tuple(range(1, x.dim())), keepdim=True)
        return x * ms.add(self.eps).rsqrt() * self.g


def scale_norm(num_features: int, spatial: bool) -> nn.Module:
    """ScaleNorm (Nguyen & Salazar, 2019): each example scaled to unit RMS, times one learned scalar."""
    return ScaleNorm()
