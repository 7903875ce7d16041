"""The normalization slot of a model the harness did not write: swap every normalization layer.

:func:`swap_norms` replaces each normalization layer of any ``nn.Module`` (torch's BatchNorm,
GroupNorm, LayerNorm, RMSNorm and InstanceNorm layers, and the harness's own norms) by the module a
registered norm (harness.models' ``NormFactory``: ``(num_features, spatial) -> nn.Module``) builds for
the same features, in place. What each layer normalizes is read from the model itself: one forward
pass of an example input records, per layer, the shape it receives, so

* a layer that sees maps (N, C, H, W) becomes the norm for C channels with ``spatial=True``;
* one that sees features (N, D) becomes the norm for D features with ``spatial=False``;
* one that sees tokens (N, T, D) and normalizes their last dimension (a transformer's LayerNorm or
  RMSNorm) becomes the flat norm for D features applied per token (:class:`harness.models.TokenNorm`
  where the new norm needs it: BatchNorm then takes statistics over the batch and the tokens; a
  LayerNorm or RMSNorm of D features applies to tokens as it is, so its state-dict keys stay).

A layer the pass never reaches, or one that sees another layout (a 1-D convolution's (N, C, L)),
is a ConfigError naming it: the slot of that layer is not defined. The channel counts read from
the shapes are checked against the layer's own (``num_features``, ``num_channels``,
``normalized_shape``), so a layer is never rebuilt for another size.

    from torchvision.models import resnet18
    from harness.normswap import swap_norms
    net = swap_norms(resnet18(num_classes=10), "group", torch.zeros(2, 3, 32, 32))

The swap keeps every other module, its parameters and the module names around the norms; the new
norm layers start from their own defaults (load weights afterwards where there are any). A
variant whose norm is :data:`AS_BUILT` keeps its model's own layers instead: the baseline a user's
own weights were trained with, beside which the swapped variants are compared.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from harness.errors import ConfigError
from harness.normlayers import NormFactory, SpatialRMSNorm, TokenNorm

#: the norm of a variant that keeps its model's own normalization layers (a model built by a
#: factory, harness.models.own_model): what a user's pretrained weights were trained with
AS_BUILT = "as-built"


def _norm_types() -> tuple[type[nn.Module], ...]:
    return (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm, nn.RMSNorm,
            nn.modules.instancenorm._InstanceNorm, SpatialRMSNorm, TokenNorm)


def norm_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The normalization layers of ``model`` as (qualified name, module), outermost first; a norm
    inside another (the flat norm in a TokenNorm) is part of it, not a layer of its own."""
    kinds = _norm_types()
    out: list[tuple[str, nn.Module]] = []
    for name, mod in model.named_modules():
        if isinstance(mod, kinds) and not any(name.startswith(f"{outer}.") for outer, _ in out):
            out.append((name, mod))
    return out


@dataclass(frozen=True)
class Slot:
    """What one normalization layer normalizes, read from the model: its ``name``, the number of
    ``features`` (channels or token width) and the ``layout`` of its input: ``maps`` (N, C, H, W),
    ``flat`` (N, D) or ``tokens`` (N, T, D) normalized over D."""

    name: str
    features: int
    layout: str


def _own_features(mod: nn.Module) -> int | None:
    """The feature count a layer declares (None where it declares none)."""
    for attr in ("num_features", "num_channels"):
        if isinstance(n := getattr(mod, attr, None), int):
            return n
    shape = getattr(mod, "normalized_shape", None)
    if shape is not None and len(tuple(shape)) >= 1:
        return int(tuple(shape)[0])
    weight = getattr(mod, "weight", None)
    return int(weight.numel()) if isinstance(weight, torch.Tensor) and weight.dim() == 1 else None


def slots(model: nn.Module, example: torch.Tensor) -> list[Slot]:
    """Every normalization layer of ``model`` with what it normalizes, from one forward pass of
    ``example`` (a batch of at least two inputs, so BatchNorm in training mode could run; the model
    runs in eval mode and is left in the mode it was in). A ConfigError names a layer the pass
    does not reach or whose input has another layout."""
    layers = norm_layers(model)
    if any(name == "" for name, _ in layers):
        raise ConfigError(f"the model is itself a normalization layer ({type(model).__name__})",
                          hint="pass the network that holds its normalization layers")
    seen: dict[str, tuple[int, ...]] = {}

    def record(name: str) -> Callable[[nn.Module, tuple[torch.Tensor, ...]], None]:
        def hook(_: nn.Module, args: tuple[torch.Tensor, ...]) -> None:  # returns None: the input stays as it is
            seen.setdefault(name, tuple(args[0].shape))
        return hook

    hooks = [mod.register_forward_pre_hook(record(name)) for name, mod in layers]
    was = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(example)
    finally:
        model.train(was)
        for h in hooks:
            h.remove()
    out = []
    for name, mod in layers:
        if name not in seen:
            raise ConfigError(f"normalization layer {name!r} ({type(mod).__name__}) is not used by a forward pass of "
                              f"an input of shape {tuple(example.shape)}", hint="pass an input the model takes, or "
                              "remove the unused layer")
        shape, own = seen[name], _own_features(mod)
        shaped = tuple(getattr(mod, "normalized_shape", ()) or ())
        if len(shape) == 4:
            slot = Slot(name, shape[1], "maps")
        elif len(shape) == 2:
            slot = Slot(name, shape[1], "flat")
        elif len(shape) == 3 and (len(shaped) == 1 or isinstance(mod, TokenNorm)):
            slot = Slot(name, shape[2], "tokens")  # a LayerNorm / RMSNorm / TokenNorm over each token
        else:
            raise ConfigError(f"normalization layer {name!r} ({type(mod).__name__}) sees inputs of shape {shape}; "
                              "only maps (N, C, H, W), features (N, D) and tokens (N, T, D) normalized over D can be "
                              "swapped",
                              hint="swap this model's layers by hand, or leave its norm as it is")
        if own is not None and own != slot.features:
            raise ConfigError(f"normalization layer {name!r} ({type(mod).__name__}) declares {own} features but sees "
                              f"{slot.features} in an input of shape {shape}", hint="swap this layer by hand")
        out.append(slot)
    return out


def _build(slot: Slot, factory: NormFactory) -> nn.Module:
    if slot.layout == "tokens":
        flat = factory(slot.features, False)
        # a per-token norm of the last dimension takes (N, T, D) as it is (and keeps its keys)
        return flat if isinstance(flat, (nn.LayerNorm, nn.RMSNorm, nn.Identity)) else TokenNorm(slot.features, factory)
    return factory(slot.features, slot.layout == "maps")


def swap_norms(model: nn.Module, norm: str | NormFactory, example: torch.Tensor) -> nn.Module:
    """``model`` with every normalization layer replaced, in place, by ``norm`` (a registered norm's
    name, or a NormFactory) for the features and layout the layer sees in a forward pass of
    ``example`` (:func:`slots`); returns the model. A model without normalization layers is
    returned as it is (there is no slot to fill)."""
    if isinstance(norm, str):
        from harness.registry import norms

        factory: NormFactory = norms.get(norm)
    else:
        factory = norm
    found = slots(model, example)
    param = next(model.parameters(), None)
    for slot in found:
        parent_name, _, child = slot.name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        new = _build(slot, factory)
        if param is not None:
            new = new.to(device=param.device, dtype=param.dtype)
        setattr(parent, child, new)
    return model
