"""Architectures with a normalization slot, the norms that fill it, and the paired init.

Contracts:

* a **norm** plugin is a callable ``(num_features, spatial) -> nn.Module``; ``spatial`` is
  True after a convolution (input (N, C, H, W)) and False after a linear layer (input (N, C));
* a **model** plugin is a callable ``(in_shape, n_classes, norm, **options) -> nn.Module``
  whose module has ``features(x) -> (N, D)`` (penultimate activations) and a linear ``head``;
  ``norm`` is the resolved norm plugin, so a model never looks up registries itself;
* every model takes inputs in [0, 1]; input standardization, when a variant asks for it, is
  the first layer of the :class:`Classifier` wrapper, never a preprocessing step elsewhere.

The linear and convolutional layers of one architecture are the same whatever fills the slot,
and :func:`init_weights` draws them from one seeded generator in module order, so every
variant of a seed starts from bit-identical weights: the comparison is paired at init.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

NormFactory = Callable[[int, bool], nn.Module]


# --- norms ---------------------------------------------------------------------------------


def no_norm(num_features: int, spatial: bool) -> nn.Module:
    """No normalization: the identity."""
    return nn.Identity()


def batch_norm(num_features: int, spatial: bool) -> nn.Module:
    """BatchNorm over the batch (and spatial positions); running statistics at test time."""
    return nn.BatchNorm2d(num_features) if spatial else nn.BatchNorm1d(num_features)


def layer_norm(num_features: int, spatial: bool) -> nn.Module:
    """LayerNorm over all features of one example (C, H, W for conv maps), per-channel affine."""
    return nn.GroupNorm(1, num_features) if spatial else nn.LayerNorm(num_features)


def _groups(num_features: int) -> int:
    return next(g for g in (8, 4, 2, 1) if num_features % g == 0)


def group_norm(num_features: int, spatial: bool) -> nn.Module:
    """GroupNorm with up to 8 groups of channels, per example."""
    return nn.GroupNorm(_groups(num_features), num_features)


class SpatialRMSNorm(nn.Module):
    """RMSNorm over (C, H, W) of each example with a per-channel scale; input (N, C, H, W)."""

    def __init__(self, num_features: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(num_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rms = x.pow(2).mean(dim=(1, 2, 3), keepdim=True).add(self.eps).rsqrt()
        return x * rms * self.weight.view(1, -1, 1, 1)


def rms_norm(num_features: int, spatial: bool) -> nn.Module:
    """RMSNorm (no centring) over all features of one example, per-channel scale."""
    return SpatialRMSNorm(num_features) if spatial else nn.RMSNorm(num_features, eps=1e-6)


# --- architectures -------------------------------------------------------------------------


class MLP(nn.Module):
    """Multilayer perceptron: flatten, then [linear, norm, ReLU] per hidden width, then a
    linear head. Input (N, C, H, W) in [0, 1]; output logits (N, n_classes)."""

    def __init__(self, in_shape: tuple[int, int, int], n_classes: int, norm: NormFactory,
                 hidden: tuple[int, ...] = (128, 128)) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width = math.prod(in_shape)
        for h in hidden:
            layers += [nn.Linear(width, h), norm(h, False), nn.ReLU()]
            width = h
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, n_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class CNN(nn.Module):
    """Small convolutional network: per width, [3x3 conv, norm, ReLU, 2x2 max-pool], then
    flatten and a linear head. Input (N, C, H, W) in [0, 1]; output logits (N, n_classes)."""

    def __init__(self, in_shape: tuple[int, int, int], n_classes: int, norm: NormFactory,
                 channels: tuple[int, ...] = (32, 64)) -> None:
        super().__init__()
        c, h, w = in_shape
        layers: list[nn.Module] = []
        for out in channels:
            layers += [nn.Conv2d(c, out, 3, padding=1), norm(out, True), nn.ReLU(), nn.MaxPool2d(2)]
            c, h, w = out, h // 2, w // 2
        layers.append(nn.Flatten())
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(c * h * w, n_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class Standardize(nn.Module):
    """(x - mean) / std per channel, with the training split's statistics as buffers."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("mean", mean.view(1, -1, 1, 1).clone())
        self.register_buffer("std", std.clamp_min(1e-6).view(1, -1, 1, 1).clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class Classifier(nn.Module):
    """A model plugin behind an optional input-standardization layer. Input in [0, 1]."""

    def __init__(self, net: nn.Module, standardize: nn.Module | None = None) -> None:
        super().__init__()
        self.standardize = standardize if standardize is not None else nn.Identity()
        self.net = net

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.features(self.standardize(x))  # type: ignore[operator]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.standardize(x))


def init_weights(model: nn.Module, generator: torch.Generator) -> None:
    """Re-draw every linear and convolutional layer from ``generator`` in module order
    (PyTorch's default scheme), and reset norm layers to their deterministic defaults."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Linear, nn.Conv2d)):
                nn.init.kaiming_uniform_(m.weight, a=math.sqrt(5), generator=generator)
                if m.bias is not None:
                    bound = 1 / math.sqrt(m.weight[0].numel())
                    nn.init.uniform_(m.bias, -bound, bound, generator=generator)
            elif callable(reset := getattr(m, "reset_parameters", None)):
                reset()


def build_model(model: str, norm: str, in_shape: tuple[int, int, int], n_classes: int,
                options: dict[str, Any], input_stats: tuple[torch.Tensor, torch.Tensor] | None,
                generator: torch.Generator) -> Classifier:
    """Instantiate a registered model with a registered norm, optionally standardized inputs,
    and weights drawn from ``generator``."""
    from harness.registry import models, norms

    net = models.get(model)(in_shape, n_classes, norms.get(norm), **options)
    clf = Classifier(net, Standardize(*input_stats) if input_stats is not None else None)
    init_weights(clf, generator)
    return clf
