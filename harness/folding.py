"""Folding BatchNorm into the layer before it, for inference.

In eval mode a BatchNorm layer is a fixed per-channel affine map, ``y = gamma * (x - mu) / sqrt(var + eps) +
beta`` with the running statistics ``mu`` and ``var``; when ``x`` is the output of a convolution or linear
layer (itself affine) and nothing else reads that output, the two compose into one convolution or linear
layer with rescaled weights and a new bias (``torch.nn.utils.fusion.fuse_conv_bn_eval`` and
``fuse_linear_bn_eval``), and the BatchNorm disappears. LayerNorm, GroupNorm and RMSNorm cannot fold: they
divide by statistics of each input (its mean and spread across features), which no fixed weights can
reproduce; nor can BatchNorm in its ``batch`` or ``adapt`` test-time modes (harness.tasks.classify.evaluation),
whose statistics come from the test inputs.

Which BatchNorm follows which layer is read from one forward pass of example inputs (:func:`fold_plan`), not
from module order (a container's order need not be its forward's: a residual block's shortcut) nor from
``torch.fx`` (it cannot trace the recurrent nets' loop over the input's rows): every call of every leaf module
is recorded with the tensors it took and gave, and every tensor operation with the tensors it read. A
BatchNorm folds when each of its calls takes, as its whole input, the output of a call of one same
convolution (``Conv1d``/``Conv2d``/``Conv3d``) or ``Linear`` (with a 2-D output (N, C), so BatchNorm's channel
is the linear's feature), every call of that layer feeds that BatchNorm and nothing else reads its output
(no other operation, not the model's output). What the pass does not show, it does not fold: a model whose
forward takes another path for other inputs should be folded with inputs that take that path. The folded
copy's outputs are checked against the model's on the example inputs; a mismatch is an error, never a
silently wrong model.
"""

from __future__ import annotations

import copy
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

_BN = nn.modules.batchnorm._BatchNorm
_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)

#: the folded outputs must equal the model's within this, relative to the largest output magnitude
#: (at least 1): float32 rounding of the rescaled weights, well above it at 1e-5 and far below any error
#: a wrong fold makes (tests/test_folding.py measures both)
RTOL = 1e-4


@dataclass(frozen=True)
class FoldPlan:
    """What :func:`fold_plan` found: ``pairs`` (layer name, BatchNorm name) that fold, in module order;
    ``kept`` (BatchNorm name, why it does not fold) for every other BatchNorm (an empty tuple where there
    is none)."""

    pairs: tuple[tuple[str, str], ...]
    kept: tuple[tuple[str, str], ...]


@dataclass(eq=False)
class _Call:
    """One call of a leaf module: its input and output tensors (kept alive, so their ids stay theirs) and
    the range of operation indices it ran."""

    module: nn.Module
    inputs: tuple[Any, ...]
    output: Any
    first_op: int
    last_op: int = -1


class _Reads(TorchDispatchMode):
    """Records, per tensor operation, the ids of the tensors it read (keeping them alive for the pass)."""

    def __init__(self) -> None:
        super().__init__()
        self.reads: list[set[int]] = []
        self.alive: list[torch.Tensor] = []

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        tensors = [t for t in tree_flatten((args, kwargs or {}))[0] if isinstance(t, torch.Tensor)]
        self.reads.append({id(t) for t in tensors})
        self.alive += tensors
        return func(*args, **(kwargs or {}))


def _trace(model: nn.Module, example: Any) -> tuple[list[_Call], _Reads, Any]:
    """Every call of every leaf module of ``model`` on ``example`` (in call order), the operations' reads,
    and the model's output."""
    reads = _Reads()
    calls: list[_Call] = []
    open_calls: dict[int, list[_Call]] = defaultdict(list)
    handles = []

    def pre(mod: nn.Module, args: tuple[Any, ...]) -> None:
        call = _Call(mod, args, None, len(reads.reads))
        calls.append(call)
        open_calls[id(mod)].append(call)

    def post(mod: nn.Module, args: tuple[Any, ...], out: Any) -> None:
        call = open_calls[id(mod)].pop()
        call.output, call.last_op = out, len(reads.reads)

    for m in model.modules():
        if not list(m.children()):
            handles += [m.register_forward_pre_hook(pre), m.register_forward_hook(post)]
    try:
        with torch.no_grad(), reads:
            out = model(example)
    finally:
        for h in handles:
            h.remove()
    return calls, reads, out


def _feeds_only(call: _Call, consumer: _Call, reads: _Reads, model_out: Any) -> bool:
    """Whether ``call``'s output is read by no operation outside ``consumer``'s and is not the model's output."""
    out = id(call.output)
    if any(isinstance(t, torch.Tensor) and id(t) == out for t in tree_flatten(model_out)[0]):
        return False
    return not any(out in r for i, r in enumerate(reads.reads) if not consumer.first_op <= i < consumer.last_op)


def fold_plan(model: nn.Module, example: Any) -> FoldPlan:
    """The BatchNorm layers of ``model`` (in eval mode) that fold into the layer before them, read from one
    forward pass of ``example`` (see the module's docstring), and why each other BatchNorm does not."""
    if model.training:
        raise RuntimeError("fold_plan() needs the model in eval mode; call model.eval() first")
    names = {id(m): n for n, m in model.named_modules()}
    bns = [m for m in model.modules() if isinstance(m, _BN)]
    if not bns:
        return FoldPlan((), ())
    calls, reads, out = _trace(model, example)
    by_output = {id(c.output): c for c in calls if isinstance(c.output, torch.Tensor)}
    calls_of: dict[int, list[_Call]] = defaultdict(list)
    for c in calls:
        calls_of[id(c.module)].append(c)
    pairs: list[tuple[str, str]] = []
    kept: list[tuple[str, str]] = []
    used: set[int] = set()
    for bn in bns:
        why = _why_not(bn, calls_of, by_output, reads, out, used)
        if isinstance(why, str):
            kept.append((names[id(bn)], why))
        else:
            used.add(id(why))
            pairs.append((names[id(why)], names[id(bn)]))
    return FoldPlan(tuple(pairs), tuple(kept))


def _why_not(bn: nn.Module, calls_of: dict[int, list[_Call]], by_output: dict[int, _Call], reads: _Reads,
             model_out: Any, used: set[int]) -> str | nn.Module:
    """The layer ``bn`` folds into, or why it does not fold."""
    assert isinstance(bn, _BN)
    if bn.training or not bn.track_running_stats or bn.running_mean is None or bn.running_var is None:
        return "it normalizes with the batch's statistics, not running ones"
    mine = calls_of.get(id(bn), [])
    if not mine:
        return "the forward pass does not call it"
    sources = []
    for c in mine:
        src = by_output.get(id(c.inputs[0])) if len(c.inputs) == 1 else None
        if src is None:
            return "its input is not the whole output of a layer"
        sources.append(src)
    layer = sources[0].module
    if any(s.module is not layer for s in sources):
        return "its calls read different layers"
    if not isinstance(layer, (*_CONV, nn.Linear)) or type(layer) not in (*_CONV, nn.Linear):
        return f"it follows a {type(layer).__name__}, not a convolution or linear layer"
    if id(layer) in used:
        return "its layer already folds another BatchNorm"
    if isinstance(layer, _CONV):
        # batched: output (N, C, ...), as many dims as the weight (C_out, C_in, ...), so BatchNorm's channel is C
        if layer.out_channels != bn.num_features or any(s.output.dim() != layer.weight.dim() for s in sources):
            return "its channels are not the convolution's"
    elif layer.out_features != bn.num_features or any(s.output.dim() != 2 for s in sources):
        return "the linear layer's output is not (N, features)"
    if len(calls_of[id(layer)]) != len(mine):
        return "its layer's output also goes elsewhere"
    if not all(_feeds_only(s, c, reads, model_out) for s, c in zip(sources, mine, strict=True)):
        return "its layer's output is read elsewhere too"
    return layer


def _fuse(layer: nn.Module, bn: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """The folded weight and bias of ``layer`` followed by ``bn`` (both in eval mode)."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval, fuse_linear_bn_eval

    assert isinstance(bn, _BN)
    fused: nn.Conv1d | nn.Conv2d | nn.Conv3d | nn.Linear
    if isinstance(layer, _CONV):
        fused = fuse_conv_bn_eval(layer, bn)
    else:
        assert isinstance(layer, nn.Linear)
        fused = fuse_linear_bn_eval(layer, bn)
    assert fused.bias is not None
    return fused.weight.detach(), fused.bias.detach()


def _replace(model: nn.Module, old: nn.Module, new: nn.Module) -> None:
    """Put ``new`` wherever ``model`` holds ``old`` (under every name: a module may be registered twice)."""
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if child is old:
                setattr(parent, name, new)


def fold_batchnorm(model: nn.Module, example: Any) -> tuple[nn.Module, int]:
    """A copy of ``model`` (in eval mode) with every BatchNorm that can fold (:func:`fold_plan` on
    ``example``, the model's inputs) folded into the convolution or linear layer before it, and the number
    folded (0, and an unchanged copy, where none can: a model without BatchNorm, or one whose graph does not
    show a layer that feeds only its BatchNorm). ``model`` is left as it was.

    The copy's outputs on ``example`` must equal the model's within :data:`RTOL` of the largest output (at
    least 1); else a RuntimeError, so a fold is never wrong silently."""
    if model.training:
        raise RuntimeError("fold_batchnorm() needs the model in eval mode; call model.eval() first")
    plan = fold_plan(model, example)
    folded = copy.deepcopy(model)
    modules = dict(folded.named_modules())
    for layer_name, bn_name in plan.pairs:
        layer, bn = modules[layer_name], modules[bn_name]
        weight, bias = _fuse(layer, bn)
        with torch.no_grad():
            layer.weight.copy_(weight)
            if layer.bias is None:  # a bias-free layer gets the BatchNorm's shift as its bias
                layer.bias = nn.Parameter(bias.clone())
            else:
                layer.bias.copy_(bias)
        _replace(folded, bn, nn.Identity())
    if plan.pairs:
        check_equal(model, folded, example)
    return folded, len(plan.pairs)


def max_difference(a: nn.Module, b: nn.Module, example: Any) -> tuple[float, float]:
    """(largest absolute difference of the outputs of ``a`` and ``b`` on ``example``, largest output
    magnitude of ``a``): both models in eval mode, outputs a tensor or a structure of tensors."""
    with torch.no_grad():
        out_a = [t for t in tree_flatten(a(example))[0] if isinstance(t, torch.Tensor)]
        out_b = [t for t in tree_flatten(b(example))[0] if isinstance(t, torch.Tensor)]
    diff = max((float((x.double() - y.double()).abs().max()) for x, y in zip(out_a, out_b, strict=True)),
               default=0.0)
    scale = max((float(x.double().abs().max()) for x in out_a), default=0.0)
    return diff, scale


def check_equal(model: nn.Module, folded: nn.Module, example: Any) -> None:
    """A RuntimeError unless ``folded``'s outputs on ``example`` equal ``model``'s within :data:`RTOL`."""
    diff, scale = max_difference(model, folded, example)
    if not diff <= RTOL * max(1.0, scale):  # also catches NaN
        raise RuntimeError(f"folding BatchNorm changed the outputs by {diff:.3g} (largest output {scale:.3g}, "
                           f"allowed {RTOL:g} of it): a fold the forward pass did not show is unsafe")
