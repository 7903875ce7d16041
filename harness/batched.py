"""Seeds made cheap: classifiers of one architecture trained and attacked as one computation.

The models of a suite are small, so a training or attack step of one of them costs mostly
per-operation overhead, not arithmetic. :class:`Stack` holds M models of one architecture (the seeds
of a variant, and variants that differ in their norm or input standardization) as stacked tensors,
``(M, *shape)`` per parameter and buffer, and runs all M in one pass of native operations:

* convolutional maps are laid out (B, M * C, H, W), so a convolution is one grouped convolution
  (``groups=M``), a BatchNorm is one ``batch_norm`` over M * C channels (whose statistics, running
  ones included, are exactly per model and per channel), a GroupNorm with G groups is one
  ``group_norm`` with M * G groups, and max-pooling, ReLU and the mean over positions act per
  channel anyway. Maps are kept in channels-last memory order, where CPU max-pooling is several
  times faster than in the default order (the one-model path keeps its own order);
* features are laid out (M, B, D), so a linear layer is one batched matrix product (the stack holds
  the weights transposed, so their gradients need no copy), LayerNorm and RMSNorm normalize the last
  dimension and then apply each model's own scale and shift, and a flat BatchNorm or GroupNorm sees
  (B, M * D);
* where the models' modules differ (the norm slot of variants that share an architecture), each
  run of consecutive models with the same module has a stack of its own, applied to its models'
  channels or features.

The module tree is compiled once into closures that do what each module's own forward does. Only
the modules of :mod:`harness.models` whose forward is written here take the path (:func:`supports`).
Why not ``torch.func.vmap`` over ``functional_call``: its batching rules move tensors between layouts
around every BatchNorm and convolution; per training step of six seeds of the quick start's models
on one thread it gave 1.6-2.5x, where the grouped form gave 3.3-3.4x for the CNN.

Training (:func:`train_many`) mirrors :func:`harness.training.fit` per model: model m draws its
batches from its own seed's ``data-order`` stream (so it sees exactly the batches the one-model
path gives it), the loss is the sum of the per-model mean cross-entropies (so each model's gradient
is that of its own loss), and the optimizer is the recipe's own ``torch.optim`` optimizer (in its
fused form) over the stacked leaves: Adam and SGD (momentum, weight decay) are elementwise, so on
stacked tensors they are exactly per model. Each model keeps its own losses, gradient norms (the L2
norm over all of that model's gradients), held-out curve, target step and divergence. A diverged
model stops changing: its parameters and buffers are kept as they were after the step that diverged
(where the one-model path stops), while the others go on.

Equivalence: per model the results equal the one-model path's up to float rounding (grouped
kernels sum in another order); one model on this path with the one-model path's optimizer form is
the one-model path bit for bit but for LayerNorm's affine (tests/test_batched.py states every
tolerance). Rounding differences grow where training amplifies them, as they do between two runs of
the one-model path that round differently (channels-last memory order, another thread count): Adam
turns the float noise of a gradient that is zero in exact arithmetic (the bias of a layer followed
by BatchNorm) into steps of about lr, and a BatchNorm of a near-constant channel divides the noise by
about sqrt(eps).

Timing: a batched step's wall time is shared by M models, and is not one model's seconds per step.
What a training result reports as ``seconds_per_step`` is measured on the one-model path itself: a
probe runs :func:`harness.training.fit` on a copy of each model for ``timing_steps`` + 1 steps (at
most a twentieth of the run's steps; batches of the recipe's size; timing and the first step's
memory count as in a full run), and ``train_seconds`` and ``seconds_to_target`` are the probe's own
seconds for its steps (the first step and the warm-up after it cost more than the rest) plus its
mean step over its later half for each step beyond: estimates of what the one-model path would have
measured, so reports and claims on time keep their meaning (with a probe's noise). The batched wall
time per model and step is recorded beside it (:class:`GroupTiming`).

Attacks (:func:`perturb_many`, :func:`sweep_many`, :func:`battery_many`): FGSM, PGD and APGD (L-inf
or L2, restarts, CE or DLR loss) on M models at once, each model on its own examples, with the
worst-case bookkeeping of :mod:`harness.attacks` per model and example (APGD's step sizes, momentum
and checkpoints too), and each model's random starts drawn from its own generator in the order the
one-model path draws them. A run with ``--batch-seeds`` attacks the seeds of each variant so
(harness.worker.evaluate_batched); its sanity checks and every other condition run one model at a
time. An attack already runs hundreds of examples per operation, so batching models gains less
there than in training on a CPU: a convolution over M models' examples costs about what M
convolutions cost, and what batching saves is the per-operation overhead around it (the benchmark
says how much).
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from harness.attacks import APGD, FGSM, PGD, _direction, _loss, _random_start, apgd_checkpoints, project
from harness.data import Split, as_tensor
from harness.errors import ConfigError
from harness.models import CNN, MLP, BasicBlock, Classifier, ResNet, SpatialRMSNorm, Standardize
from harness.seeding import torch_generator
from harness.specs import Condition, TrainSpec, Variant
from harness.training import Fit, RunCompute, TrainResult, fit

#: the registered models whose every module has a batched form here (and whose equivalence
#: tests/test_batched.py checks), and the norms that may fill their slot
MODELS = ("mlp", "cnn", "resnet")
NORMS = ("none", "batch", "layer", "group", "rms")

_CONTAINERS = (Classifier, MLP, CNN, ResNet, BasicBlock, nn.Sequential)
# the modules that may differ between the models of one stack (the norm slot, input standardization):
# they keep their input's shape, so each run of models can apply its own
_SHAPE_KEEPING = (nn.Identity, nn.ReLU, nn.BatchNorm1d, nn.BatchNorm2d, nn.LayerNorm, nn.GroupNorm, nn.RMSNorm,
                  SpatialRMSNorm, Standardize)
_LEAVES = (nn.Identity, nn.ReLU, nn.Flatten, nn.Linear, nn.Conv2d, nn.MaxPool2d, nn.BatchNorm1d, nn.BatchNorm2d,
           nn.LayerNorm, nn.GroupNorm, nn.RMSNorm, SpatialRMSNorm, Standardize)


# --- what can take the path -------------------------------------------------------------------


def variant_reason(task: str, variant: Variant, membership_design: bool = False) -> str | None:
    """None when the models of ``variant`` (in a suite of task ``task``) take the batched path, else
    why they are trained one at a time. Decided from names alone, so a plan can key its cells
    before any model is built; :func:`supports` checks the built model."""
    if task != "classify":
        return f"a {task} task's models are trained one at a time"
    if membership_design:
        return "under the membership design each seed trains on its own half of the data, which one stack cannot"
    if variant.weights is not None:
        return "its weights are loaded, not trained"
    if variant.model not in MODELS:
        return f"model {variant.model!r} has no batched form (those that have: {', '.join(MODELS)})"
    if variant.norm not in NORMS:
        return f"norm {variant.norm!r} has no batched form (those that have: {', '.join(NORMS)})"
    return None


def _leaf_reason(m: nn.Module) -> str | None:
    if isinstance(m, nn.Flatten) and (m.start_dim, m.end_dim) != (1, -1):
        return "flattens other dimensions than all but the batch"
    if isinstance(m, nn.Conv2d) and m.padding_mode != "zeros":
        return f"pads with {m.padding_mode!r}, not zeros"
    if isinstance(m, nn.MaxPool2d) and m.return_indices:
        return "returns indices"
    if isinstance(m, (nn.LayerNorm, nn.RMSNorm)) and len(tuple(m.normalized_shape)) != 1:
        return "normalizes more than the last dimension"
    return None


def supports(model: nn.Module) -> str | None:
    """None when ``model`` can be trained and attacked on the batched path: a
    :class:`~harness.models.Classifier` whose every module is of a type (exactly, not a subclass,
    whose forward could differ) that :class:`Stack` implements, with settings it implements; else
    the reason, naming the first module that has no batched form (the caller trains such a model
    one at a time and says so)."""
    if type(model) is not Classifier:
        return f"a {type(model).__name__} is not a harness classifier (harness.models.Classifier)"
    for name, m in model.named_modules():
        where = f"module {name!r} ({type(m).__name__})"
        if type(m) not in (*_CONTAINERS, *_LEAVES):
            return f"{where} has no batched form"
        if (reason := _leaf_reason(m)) is not None:
            return f"{where} {reason}"
    return None


def _leaf_signature(mod: nn.Module) -> tuple[str, ...]:
    """What makes modules without children alike: type, settings and own tensors' names and shapes."""
    tensors = [*mod.named_parameters(recurse=False), *mod.named_buffers(recurse=False)]
    return (type(mod).__name__, mod.extra_repr(), *(f"{n}{tuple(t.shape)}{t.dtype}" for n, t in tensors))


# --- the stacked models -----------------------------------------------------------------------


@dataclass(frozen=True)
class _Act:
    """An activation of the M models: ``spatial`` (B, M * C, H, W) maps, channels-last in memory;
    else (M, B, D) features."""

    t: torch.Tensor
    spatial: bool


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


class Stack:
    """M models of one architecture as stacked tensors, run as one computation.

    The models' modules must match but for the norm slot: at every place where the models' modules
    are of one type with the same settings, their tensors are stacked over all M models; where they
    differ (a variant with BatchNorm beside one with LayerNorm or none), each run of consecutive
    models with the same module gets a stack of its own, applied to those models' channels or
    features. ``params`` holds the stacks of parameters (leaf tensors, (models of the run, *shape),
    requiring grad as the models' parameters do) and ``buffers`` those of buffers (BatchNorm's
    running statistics, which training updates in place, per model), both on ``device``;
    :meth:`tensor` finds model m's slice of one of its named tensors. :meth:`forward` maps per-model
    inputs (M, B, C, H, W) to per-model logits (M, B, K). A ConfigError when a model cannot take the
    path (:func:`supports`) or the models differ elsewhere than in modules that keep their input's
    shape (norms, input standardization)."""

    def __init__(self, models: Sequence[nn.Module], device: str | torch.device = "cpu") -> None:
        if not models:
            raise ConfigError("no models to stack", hint="pass one model or more")
        for model in models:
            if (reason := supports(model)) is not None:
                raise ConfigError(f"this model cannot be batched: {reason}", hint="train it one model at a time")
        self.base = models[0]
        self.m = len(models)
        self._device = torch.device(device)
        self.params: dict[str, torch.Tensor] = {}
        self.buffers: dict[str, torch.Tensor] = {}
        self.ranges: dict[str, tuple[int, int]] = {}  # stack key -> the models (a, b) it holds
        self._slots: dict[tuple[int, str], tuple[str, int]] = {}  # (model, tensor name) -> (stack key, row)
        # stacks that hold their models' tensors transposed (linear weights, (in, out) per model: their
        # gradient then comes out of the batched product in the stack's own layout, with no copy)
        self._transposed: set[str] = set()
        self._conv = any(isinstance(mod, nn.Conv2d) for mod in self.base.modules())
        with torch.no_grad():
            self._net = self._compile(list(models), "")

    # -- state --------------------------------------------------------------------------------

    def tensor(self, m: int, name: str) -> torch.Tensor:
        """Model m's tensor ``name`` (as its state_dict names it): a view of its row of a stack."""
        key, row = self._slots[(m, name)]
        t = (self.params[key] if key in self.params else self.buffers[key])[row]
        return t.T if key in self._transposed else t

    def names(self, m: int) -> list[str]:
        """The names of model m's tensors."""
        return [n for (i, n) in self._slots if i == m]

    def state(self, m: int) -> dict[str, torch.Tensor]:
        """A copy of model m's parameters and buffers."""
        return {n: self.tensor(m, n).detach().clone() for n in self.names(m)}

    def restore(self, m: int, state: dict[str, torch.Tensor]) -> None:
        """Set model m's parameters and buffers to ``state`` (from :meth:`state`)."""
        with torch.no_grad():
            for n, t in state.items():
                self.tensor(m, n).copy_(t)

    def write_back(self, m: int, model: nn.Module) -> None:
        """Copy model m's parameters and buffers into ``model`` (model m itself, or one like it)."""
        with torch.no_grad():
            for n, t in (*model.named_parameters(), *model.named_buffers()):
                t.copy_(self.tensor(m, n))

    def _stack(self, mods: list[nn.Module], name: str, a: int) -> str:
        """Stack the own tensors of ``mods`` (the module ``name`` of models a, a + 1, ...); their key."""
        b = a + len(mods)
        key = name if (a, b) == (0, self.m) else f"{name}[{a}:{b}]"
        for local, p in mods[0].named_parameters(recurse=False):
            full = _join(key, local)
            turn = isinstance(mods[0], nn.Linear) and local == "weight"
            self.params[full] = torch.stack([m.get_parameter(local).detach().T if turn else m.get_parameter(local)
                                             .detach() for m in mods]).to(self._device).requires_grad_(p.requires_grad)
            if turn:
                self._transposed.add(full)
            self.ranges[full] = (a, b)
            self._slots.update({(a + i, _join(name, local)): (full, i) for i in range(len(mods))})
        for local, _ in mods[0].named_buffers(recurse=False):
            full = _join(key, local)
            self.buffers[full] = torch.stack([m.get_buffer(local).detach() for m in mods]).to(self._device).contiguous()
            self.ranges[full] = (a, b)
            self._slots.update({(a + i, _join(name, local)): (full, i) for i in range(len(mods))})
        return key

    # -- the forward pass ---------------------------------------------------------------------

    def forward(self, x: torch.Tensor, training: bool, grad_params: bool = True) -> torch.Tensor:
        """Logits (M, B, K) of inputs ``x`` (M, B, C, H, W), model m on ``x[m]``: in training mode
        (BatchNorm uses and updates batch statistics) or eval mode. ``grad_params=False`` leaves
        the parameters out of autograd (an attack differentiates the input only)."""
        m, b = x.shape[:2]
        if m != self.m:
            raise ValueError(f"inputs for {m} models given to a stack of {self.m}")
        maps = x.transpose(0, 1).reshape(b, m * x.shape[2], *x.shape[3:])
        if self._conv:  # channels-last maps (where a flatten comes first there is no map to lay out)
            maps = maps.contiguous(memory_format=torch.channels_last)
        out = self._net(_Act(maps, True), _Pass(training, grad_params))
        if out.spatial:
            raise RuntimeError("the model's output is a map, not logits")
        return out.t

    def predict(self, x: torch.Tensor, batch_size: int) -> torch.Tensor:
        """Eval-mode logits (M, N, K) of ``x`` (M, N, C, H, W) in batches of ``batch_size`` per model."""
        with torch.no_grad():
            return torch.cat([self.forward(x[:, i:i + batch_size], False, grad_params=False)
                              for i in range(0, x.shape[1], batch_size)], dim=1)

    # The module tree is compiled once into nested closures (_Op), each doing what its module's own
    # forward does, on the M models at once: interpreting the tree at every call cost a few
    # microseconds per module, a tenth of a small model's batched step.

    def _compile(self, mods: list[nn.Module], name: str) -> _Op:
        """The op of the module ``name`` of every model (``mods``, one per model)."""
        kind = type(mods[0])
        where = f"module {name or 'the model'!r}"
        if kind in _CONTAINERS:
            children = list(mods[0]._modules)
            if any(type(m) is not kind or list(m._modules) != children for m in mods):
                types = ", ".join(type(m).__name__ for m in mods)
                raise ConfigError(f"the models to batch differ in {where} ({types})",
                                  hint="batch models of one architecture, which may differ in their norms only")
            return self._compile_container(mods, name, kind)
        runs: list[tuple[int, int]] = []  # runs of consecutive models whose module is the same
        for i, mod in enumerate(mods):
            if i and _leaf_signature(mod) == _leaf_signature(mods[runs[-1][0]]):
                runs[-1] = (runs[-1][0], i + 1)
            elif type(mod) in _CONTAINERS:
                raise ConfigError(f"the models to batch differ in {where}",
                                  hint="batch models of one architecture, which may differ in their norms only")
            else:
                runs.append((i, i + 1))
        if len(runs) == 1:
            return self._compile_leaf(mods, name, 0)
        if any(type(mods[a]) not in _SHAPE_KEEPING for a, _ in runs):  # the runs' outputs would not line up
            types = ", ".join(sorted({type(m).__name__ for m in mods}))
            raise ConfigError(f"the models to batch differ in {where} ({types})",
                              hint="batch models of one architecture, which may differ in their norms only")
        parts = [(a, b, self._compile_leaf(mods[a:b], name, a)) for a, b in runs]
        total = self.m

        def each_run(h: _Act, run: _Pass) -> _Act:  # each run of models on its own channels or features
            # split, not sliced: the backward of a split is one concatenation, that of slices a zeroed
            # tensor per slice
            t, dim = h.t, 1 if h.spatial else 0
            per = t.shape[dim] // total
            pieces = t.split([(b - a) * per for a, b, _ in parts], dim=dim)
            out = torch.cat([op(_Act(x, h.spatial), run).t for x, (_, _, op) in zip(pieces, parts, strict=True)],
                            dim=dim)
            return _Act(out.contiguous(memory_format=torch.channels_last) if h.spatial else out, h.spatial)
        return each_run

    def _compile_container(self, mods: list[nn.Module], name: str, kind: type) -> _Op:
        def sub(child: str) -> _Op:
            return self._compile([m.get_submodule(child) for m in mods], _join(name, child))

        if kind is Classifier:  # forward = net(standardize(x))
            standardize, net = sub("standardize"), sub("net")
            return lambda h, run: net(standardize(h, run), run)
        if kind in (MLP, CNN):  # forward = head(body(x))
            body, head = sub("body"), sub("head")
            return lambda h, run: head(body(h, run), run)
        if kind is ResNet:  # forward = head(stages(stem(x)).mean(dim=(2, 3)))
            stem, stages, head = sub("stem"), sub("stages"), sub("head")

            def resnet(h: _Act, run: _Pass) -> _Act:
                pooled = stages(stem(h, run), run).t.mean(dim=(2, 3))  # (B, M * C)
                flat = pooled.view(pooled.shape[0], self.m, pooled.shape[1] // self.m).transpose(0, 1)
                return head(_Act(flat, False), run)
            return resnet
        if kind is BasicBlock:  # relu(norm2(conv2(relu(norm1(conv1(x))))) + shortcut(x))
            conv1, norm1, conv2, norm2, shortcut = (sub(c) for c in ("conv1", "norm1", "conv2", "norm2", "shortcut"))

            def block(h: _Act, run: _Pass) -> _Act:
                out = _Act(torch.relu(norm1(conv1(h, run), run).t), True)
                out = norm2(conv2(out, run), run)
                return _Act(torch.relu(out.t + shortcut(h, run).t), True)
            return block
        ops = [sub(child) for child in mods[0]._modules]  # nn.Sequential: every module in order

        def sequence(h: _Act, run: _Pass) -> _Act:
            for op in ops:
                h = op(h, run)
            return h
        return sequence

    def _compile_leaf(self, mods: list[nn.Module], name: str, a: int) -> _Op:
        """The op of the module ``name`` (one without children, of one type and settings) of models
        a, a + 1, ... (``mods``), on their channels or features."""
        mod, m = mods[0], len(mods)
        key = self._stack(mods, name, a)
        w, bias = self.params.get(_join(key, "weight")), self.params.get(_join(key, "bias"))

        def get(t: torch.Tensor | None, run: _Pass) -> torch.Tensor | None:
            return t if t is None or run.grad_params else t.detach()

        if isinstance(mod, nn.Identity):
            return lambda h, run: h
        if isinstance(mod, nn.ReLU):
            return lambda h, run: _Act(torch.relu(h.t), h.spatial)
        if isinstance(mod, nn.Flatten):  # each model's (C, H, W) in its own order; features stay as they are
            return lambda h, run: _Act(h.t.reshape(h.t.shape[0], m, h.t[0].numel() // m).transpose(0, 1), False) \
                if h.spatial else h
        if isinstance(mod, Standardize):
            mean = self.buffers[_join(key, "mean")].reshape(1, -1, 1, 1)  # (1, M * C, 1, 1)
            std = self.buffers[_join(key, "std")].reshape(1, -1, 1, 1)
            return lambda h, run: _Act((_spatial(h, mod).t - mean) / std, True)
        if isinstance(mod, nn.Linear):
            assert w is not None

            def linear(h: _Act, run: _Pass) -> _Act:  # the stack holds each weight transposed, (in, out)
                weight, b = get(w, run), get(bias, run)
                assert weight is not None
                x = _features(h, mod)
                return _Act(torch.bmm(x, weight) if b is None else torch.baddbmm(b.unsqueeze(1), x, weight), False)
            return linear
        if isinstance(mod, nn.Conv2d):
            assert w is not None
            groups = m * mod.groups

            def conv(h: _Act, run: _Pass) -> _Act:
                weight, b = get(w, run), get(bias, run)
                assert weight is not None
                return _Act(F.conv2d(_spatial(h, mod).t, weight.reshape(-1, *weight.shape[2:]),
                                     None if b is None else b.reshape(-1), mod.stride, mod.padding,  # type: ignore[arg-type]
                                     mod.dilation, groups), True)
            return conv
        if isinstance(mod, nn.MaxPool2d):
            return lambda h, run: _Act(F.max_pool2d(_spatial(h, mod).t, mod.kernel_size, mod.stride, mod.padding,
                                                    mod.dilation, ceil_mode=mod.ceil_mode), True)
        if isinstance(mod, (nn.BatchNorm1d, nn.BatchNorm2d)):
            return self._compile_batch_norm(mod, key, m, w, bias)
        if isinstance(mod, nn.GroupNorm):
            def group(h: _Act, run: _Pass) -> _Act:
                weight, b = get(w, run), get(bias, run)
                return _by_channel(h, m, lambda x: F.group_norm(x, m * mod.num_groups, _flat1(weight), _flat1(b),
                                                                mod.eps))
            return group
        if isinstance(mod, (nn.LayerNorm, nn.RMSNorm)):
            shape, eps = tuple(mod.normalized_shape), mod.eps
            layer = isinstance(mod, nn.LayerNorm)

            def last(h: _Act, run: _Pass) -> _Act:  # normalize, then each model's own scale and shift
                weight, b = get(w, run), get(bias, run)
                x = _features(h, mod)
                y = F.layer_norm(x, shape, None, None, eps) if layer else F.rms_norm(x, shape, None, eps)  # type: ignore[arg-type]
                if weight is not None:
                    y = y * weight.unsqueeze(1)
                return _Act(y if b is None else y + b.unsqueeze(1), False)
            return last
        if isinstance(mod, SpatialRMSNorm):  # per example and model, over (C, H, W)
            assert w is not None

            def rms(h: _Act, run: _Pass) -> _Act:
                weight = get(w, run)
                assert weight is not None
                t = _spatial(h, mod).t
                b, _, hh, ww = t.shape
                t5 = t.reshape(b, m, t.shape[1] // m, hh, ww)
                scale = t5.pow(2).mean(dim=(2, 3, 4), keepdim=True).add(mod.eps).rsqrt()
                return _Act((t5 * scale * weight.view(1, *weight.shape, 1, 1)).reshape(t.shape), True)
            return rms
        raise ConfigError(f"module {name!r} ({type(mod).__name__}) has no batched form",
                          hint="train this model one at a time")  # supports() refuses such a model first

    def _compile_batch_norm(self, mod: nn.modules.batchnorm._BatchNorm, key: str, m: int, w: torch.Tensor | None,
                            bias: torch.Tensor | None) -> _Op:
        """What nn.BatchNorm's forward does, on m * C channels: the running statistics are views of
        the stacked buffers, so the in-place update of training is per model."""
        mean, var = self.buffers.get(_join(key, "running_mean")), self.buffers.get(_join(key, "running_var"))
        count = self.buffers.get(_join(key, "num_batches_tracked"))
        flat_mean = None if mean is None else mean.view(-1)
        flat_var = None if var is None else var.view(-1)

        def norm(h: _Act, run: _Pass) -> _Act:
            factor = 0.0 if mod.momentum is None else mod.momentum
            if run.training and mod.track_running_stats and count is not None:
                count.add_(1)
                # a cumulative average: the models step together (a frozen model's count is restored later)
                factor = 1.0 / float(count.max()) if mod.momentum is None else mod.momentum
            batch_stats = run.training or (mean is None and var is None)
            track = not run.training or mod.track_running_stats
            weight = w if w is None or run.grad_params else w.detach()
            b = bias if bias is None or run.grad_params else bias.detach()
            if not batch_stats and flat_mean is not None and flat_var is not None:
                # the running statistics make it an affine map per channel, which the kernel computes as
                # x * alpha + beta too; written out, its input gradient is a product, where the kernel's
                # backward on a slice of channels-last maps (a run of a mixed stack) took milliseconds
                alpha = (flat_var + mod.eps).rsqrt()
                alpha = alpha if weight is None else alpha * weight.reshape(-1)
                beta = -flat_mean * alpha if b is None else b.reshape(-1) - flat_mean * alpha

                def affine(x: torch.Tensor) -> torch.Tensor:
                    shape = (1, -1, *(1,) * (x.dim() - 2))
                    return x * alpha.view(shape) + beta.view(shape)
                return _by_channel(h, m, affine)
            return _by_channel(h, m, lambda x: F.batch_norm(
                x, flat_mean if track else None, flat_var if track else None, _flat1(weight), _flat1(b),
                batch_stats, factor, mod.eps))
        return norm


_Op = Callable[["_Act", "_Pass"], "_Act"]


@dataclass(frozen=True)
class _Pass:
    """How a forward pass runs: in training mode or not, with the parameters in autograd or not."""

    training: bool
    grad_params: bool


def _flat1(t: torch.Tensor | None) -> torch.Tensor | None:
    return None if t is None else t.reshape(-1)


def _spatial(h: _Act, mod: nn.Module) -> _Act:
    if not h.spatial:
        raise RuntimeError(f"{type(mod).__name__} needs maps, and got features")
    return h


def _features(h: _Act, mod: nn.Module) -> torch.Tensor:
    if h.spatial:
        raise RuntimeError(f"{type(mod).__name__} needs features, and got maps")
    return h.t


def _by_channel(h: _Act, m: int, fn: Callable[[torch.Tensor], torch.Tensor]) -> _Act:
    """``fn`` of channels: maps (B, M * C, H, W) as they are; features (M, B, D) seen as (B, M * D), and back."""
    if h.spatial:
        return _Act(fn(h.t), True)
    _, b, d = h.t.shape
    out = fn(h.t.transpose(0, 1).reshape(b, m * d))
    return _Act(out.view(b, m, d).transpose(0, 1), False)


# --- training ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class GroupTiming:
    """How a group of models was trained together: ``models`` (M), ``seconds_per_step``: the wall time
    of the batched steps divided by the steps and by M (what one model's step cost on the batched
    path, amortized; held-out evaluations excluded), ``probe_steps``: the one-model steps each
    model's ``seconds_per_step`` was measured on (see the module docstring)."""

    models: int
    seconds_per_step: float
    probe_steps: int

    def summary(self) -> dict[str, float | int]:
        """The keys added to each model's stored training summary."""
        return {"batched_models": self.models, "batched_seconds_per_step": self.seconds_per_step,
                "timing_probe_steps": self.probe_steps}


@dataclass(frozen=True)
class _Probe:
    """One-model timing of a model: the seconds after each of the probe's first steps, cumulative
    (``start``), the mean seconds of a step once warm (``steady``: over the later half of the probe),
    the steps run, and the first step's memory as :func:`harness.training.fit` measures it."""

    start: tuple[float, ...]
    steady: float
    steps: int
    peak_memory_bytes: int
    memory_method: str
    cpu_per_second: float = 1.0  # the probe's CPU seconds per wall second of its steps
    joules_per_second: float | None = None  # the energy counters' joules per wall second (None: no counter)
    step_flops: int | None = None

    def compute(self, steps: int, reached: int | None) -> RunCompute:
        """What ``steps`` one-model steps cost (and those to the step ``reached``): CPU time and counted
        energy scaled from the probe's per wall second to :meth:`seconds`, FLOPs from its counted step."""
        to = None if reached is None else self.seconds(reached)
        joules = self.joules_per_second
        return RunCompute(self.cpu_per_second * self.seconds(steps), None if to is None else self.cpu_per_second * to,
                          self.step_flops, steps, reached, None if joules is None else joules * self.seconds(steps),
                          None if joules is None or to is None else joules * to)

    def seconds(self, steps: int) -> float:
        """The estimated one-model training seconds of ``steps`` steps: the probe's own for its steps
        (the first step and the warm-up after it cost more than the rest), the steady step for the
        steps beyond."""
        if steps <= 0:
            return 0.0
        if steps <= len(self.start):
            return self.start[steps - 1]
        return self.start[-1] + (steps - len(self.start)) * self.steady


def _cross_entropy(model: nn.Module, xb: torch.Tensor, yb: torch.Tensor | None) -> torch.Tensor:
    return F.cross_entropy(model(xb), yb)  # type: ignore[arg-type]


def _probe(model: nn.Module, x: torch.Tensor, y: torch.Tensor, spec: TrainSpec, seed: int, dev: torch.device,
           steps: int) -> _Probe:
    """``steps`` + 1 steps of the one-model loop (:func:`harness.training.fit`, on a copy of ``model``
    and the first (steps + 1) * batch_size training examples), timed per step: the later steps between
    its progress calls, the first as its own timer's total less the others."""
    n = min(len(x) // spec.batch_size, steps + 1) * spec.batch_size
    stamps: list[float] = []
    probe = fit(copy.deepcopy(model), x[:n], y[:n],
                dataclasses.replace(spec, epochs=1, eval_every=n + 1), seed, dev, _cross_entropy,
                lambda m: 0.0, lambda acc: False, lambda step, total: stamps.append(time.perf_counter()))
    # the last step is followed by the final held-out call before its progress call: left out
    if len(stamps) == probe.n_steps == n // spec.batch_size:
        stamps = stamps[:-1]
    later = np.diff(stamps)  # the seconds of steps 2, 3, ...
    wall = max(probe.train_seconds, 1e-12)
    rates: dict[str, Any] = {"cpu_per_second": probe.cpu_seconds / wall, "step_flops": probe.step_flops,
                             "joules_per_second": None if probe.energy is None else probe.energy[0] / wall}
    if not len(later):
        per = probe.train_seconds / max(probe.n_steps, 1)
        return _Probe(tuple(per * (i + 1) for i in range(probe.n_steps)), per, probe.n_steps,
                      probe.peak_memory_bytes, probe.memory_method, **rates)
    steady = float(later[len(later) // 2:].mean())
    # the steps not timed between progress calls (the first; the last when left out) from fit's total
    first = max(probe.train_seconds - float(later.sum()) - (probe.n_steps - 1 - len(later)) * steady, 0.0)
    return _Probe(tuple(first + np.concatenate([[0.0], np.cumsum(later)])), steady, probe.n_steps,
                  probe.peak_memory_bytes, probe.memory_method, **rates)


def _optimizer(params: list[torch.Tensor], spec: TrainSpec, fused: bool = True) -> torch.optim.Optimizer:
    """The recipe's optimizer (as harness.training builds it for one model) over the stacked leaves;
    ``fused``: in its fused form, one kernel per tensor and no temporaries, where the default form's
    ten operations per tensor over M times the elements cost an MLP's Adam step as much as its
    forward and backward. Same formula, elementwise, so still exactly per model; it rounds
    differently from the default form in the last bit of about one element in a thousand after 50
    steps. ``fused=False``: the default form, as the one-model path uses it."""
    def make(fused: bool | None) -> torch.optim.Optimizer:
        if spec.optimizer == "sgd":
            return torch.optim.SGD(params, lr=spec.lr, momentum=spec.momentum, weight_decay=spec.weight_decay,
                                   fused=fused)
        return torch.optim.Adam(params, lr=spec.lr, weight_decay=spec.weight_decay, fused=fused)

    if not fused:
        return make(None)
    try:
        return make(True)
    except RuntimeError:  # a device or dtype without the fused kernels
        return make(None)


@dataclass
class _Trace:
    """What the batched loop recorded for one model (mutable while it runs)."""

    steps: list[int]
    curve: list[float]
    reached: int | None = None
    diverged_at: int | None = None
    first_loss: float | None = None


def train_many(models: Sequence[nn.Module], split: Split, spec: TrainSpec, seeds: Sequence[int],
               device: str = "cpu", on_step: Callable[[int, int], None] | None = None,
               timing_steps: int = 20, fused: bool = True) -> tuple[list[TrainResult], GroupTiming]:
    """Train classifiers ``models`` (of one architecture, which may differ in their norm slot; model m
    with seed ``seeds[m]``) in place as one computation, each as :func:`harness.training.train` would
    train it alone (cross-entropy on ``split.train``, held-out accuracy on ``split.val``, target
    ``spec.target_accuracy``); returns one :class:`~harness.training.TrainResult` per model, in
    order, and the group's timing.

    ``seconds_per_step``, ``train_seconds`` and ``seconds_to_target`` come from a one-model probe of
    ``timing_steps`` + 1 steps per model (fewer in a run of under 20 times that many: a twentieth of
    its steps, and at least 3), the peak memory from its first step (module docstring);
    ``on_step(step, total)`` reports the group's steps; ``fused=False`` runs the optimizer in the
    one-model path's form (:func:`_optimizer`), slower, for exact comparisons. The models are left
    on ``device`` in eval mode, with their trained weights (a diverged model's as they were after the
    step that diverged)."""
    if len(seeds) != len(models):
        raise ValueError(f"{len(models)} models but {len(seeds)} seeds")
    dev = torch.device(device)
    for model in models:
        model.to(dev)
    x, xv = as_tensor(split.train.x, dev), as_tensor(split.val.x, dev)
    y, yv = as_tensor(split.train.y, dev), as_tensor(split.val.y, dev)  # type: ignore[arg-type]
    per_epoch = len(x) // spec.batch_size
    if per_epoch == 0:
        raise ConfigError(f"batch_size {spec.batch_size} is larger than the {len(x)} training examples",
                          hint="use a smaller batch_size")
    # at most a twentieth of the run's steps (and 3 or more) per model: a short run gets a short probe
    probe_steps = min(timing_steps, max(2, per_epoch * spec.epochs // 20))
    probes = [_probe(model, x, y, spec, seed, dev, probe_steps) for model, seed in zip(models, seeds, strict=True)]
    stack = Stack(models, dev)
    traces, losses, norms, wall, steps_run = _fit_many(stack, x, y, xv, yv, spec, seeds, on_step, fused)
    results = []
    for m, (model, trace, probe) in enumerate(zip(models, traces, probes, strict=True)):
        stack.write_back(m, model)
        model.eval()
        n = trace.diverged_at if trace.diverged_at is not None else per_epoch * spec.epochs
        reached = None if trace.reached is None else (trace.reached, probe.seconds(trace.reached))
        run = Fit(np.asarray(trace.steps, dtype=np.int64), np.asarray(trace.curve, dtype=np.float64),
                  losses[:n, m].copy(), norms[:n, m].copy(), n, per_epoch * spec.epochs, per_epoch, reached,
                  trace.diverged_at, probe.seconds(n), probe.peak_memory_bytes, probe.memory_method)
        results.append(TrainResult(**{**run.result_fields(), "compute": probe.compute(n, trace.reached)},
                                   curve_val_accuracy=run.curve,
                                   final_val_accuracy=float("nan") if run.diverged else float(run.curve[-1])))
    timing = GroupTiming(len(models), wall / max(steps_run, 1) / len(models), min(p.steps for p in probes))
    return results, timing


def _grad_norms(params: list[torch.Tensor], rows: torch.Tensor, m: int) -> torch.Tensor:
    """Per model (M,), the L2 norm of all its gradients: per row of each stack, then summed over the rows
    of each model (``rows``: the model of every row of ``params``, in order). Row by row, no (M, all
    parameters) temporary: large ones cost page faults."""
    if any(p.grad is None for p in params):  # a parameter the loss does not use (none in the batched models)
        rows = torch.cat([r for p, r in zip(params, rows.split([len(p) for p in params]), strict=True)
                          if p.grad is not None])
        params = [p for p in params if p.grad is not None]
    per_row = torch.cat([torch.linalg.vector_norm(p.grad.reshape(len(p), -1), dim=1)  # type: ignore[union-attr]
                         for p in params])
    return torch.zeros(m, dtype=per_row.dtype, device=per_row.device).index_add_(0, rows, per_row.square()).sqrt()


def _accuracies(stack: Stack, xv: torch.Tensor, yv: torch.Tensor) -> list[float]:
    """Each model's held-out accuracy (eval mode), on the whole held-out set at once as the one-model path."""
    with torch.no_grad():
        logits = stack.forward(xv.expand(stack.m, *xv.shape), False, grad_params=False)
        return [float(a) for a in (logits.argmax(-1) == yv).double().mean(1)]  # as training._accuracy


def _fit_many(stack: Stack, x: torch.Tensor, y: torch.Tensor, xv: torch.Tensor, yv: torch.Tensor, spec: TrainSpec,
              seeds: Sequence[int], on_step: Callable[[int, int], None] | None, fused: bool = True
              ) -> tuple[list[_Trace], np.ndarray, np.ndarray, float, int]:
    """The batched loop of :func:`train_many`: per model its trace, the losses and gradient norms
    (steps, M) (a diverged model's rows after its divergence are meaningless), the wall seconds of
    the batched steps and how many steps ran."""
    m_count, bs = stack.m, spec.batch_size
    orders = [torch_generator(seed, "data-order") for seed in seeds]
    params = list(stack.params.values())
    trainable = [p for p in params if p.requires_grad]
    # the model of each row of the trainable stacks, in order: a gradient norm per model sums over its rows
    rows = torch.cat([torch.arange(*stack.ranges[k], device=x.device) for k, p in stack.params.items()
                      if p.requires_grad])
    opt = _optimizer(params, spec, fused)
    per_epoch = len(x) // bs
    total = per_epoch * spec.epochs
    acc = _accuracies(stack, xv, yv)
    traces = [_Trace([0], [a], reached=0 if a >= spec.target_accuracy else None) for a in acc]
    active = torch.ones(m_count, dtype=torch.bool, device=x.device)
    frozen: dict[int, dict[str, torch.Tensor]] = {}  # a diverged model -> its state after the step that diverged
    losses: list[list[float]] = []
    norms: list[torch.Tensor] = []
    step, wall = 0, 0.0
    for _ in range(spec.epochs):
        perm = torch.stack([torch.randperm(len(x), generator=g) for g in orders]).to(x.device)  # (M, N)
        for i in range(per_epoch):
            idx = perm[:, i * bs:(i + 1) * bs]  # model m's batch, as harness.training.fit draws it
            t0 = time.perf_counter()
            logits = stack.forward(x[idx], True)
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y[idx].reshape(-1),
                                   reduction="none").view(m_count, bs).mean(1)
            opt.zero_grad(set_to_none=True)
            # the sum of the models' own losses: each model's gradient is its loss's; a frozen model gets none
            (loss.sum() if not frozen else torch.where(active, loss, 0.0).sum()).backward()
            norms.append(_grad_norms(trainable, rows, m_count))
            opt.step()
            for m, state in frozen.items():  # a diverged model stops changing (its optimizer state is moot)
                stack.restore(m, state)
            values = loss.detach().tolist()  # synchronises, so the timing covers the whole step
            wall += time.perf_counter() - t0
            losses.append(values)
            step += 1
            for m, trace in enumerate(traces):
                if m in frozen:
                    continue
                if trace.first_loss is None:
                    trace.first_loss = values[m]
                if not math.isfinite(values[m]) or values[m] > spec.divergence_factor * max(trace.first_loss, 1e-8):
                    trace.diverged_at = step
                    frozen[m] = stack.state(m)  # as the one-model path leaves it: after the step
                    active[m] = False
            if len(frozen) == m_count:
                break
            if step % spec.eval_every == 0 or step == total:
                acc = _accuracies(stack, xv, yv)
                for m, trace in enumerate(traces):
                    if m not in frozen:
                        trace.steps.append(step)
                        trace.curve.append(acc[m])
                        if trace.reached is None and acc[m] >= spec.target_accuracy:
                            trace.reached = step
            if on_step is not None:
                on_step(step, total)
        if len(frozen) == m_count:
            break
    grad_norms = torch.stack(norms).double().cpu().numpy() if norms else np.zeros((0, m_count))
    return traces, np.asarray(losses, dtype=np.float64).reshape(-1, m_count), grad_norms, wall, step


# --- attacks ----------------------------------------------------------------------------------


def attack_reason(attack: object) -> str | None:
    """None when :func:`perturb_many` runs ``attack`` (FGSM; PGD and APGD in either norm and with
    either loss), else why not."""
    if type(attack) is FGSM or isinstance(attack, (PGD, APGD)):
        return None
    return f"{type(attack).__name__} has no batched form (FGSM, PGD and APGD have)"


def _loss_grad(stack: Stack, x: torch.Tensor, y: torch.Tensor, kind: str
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per model and example: the attack loss (M, L), its input gradient (like x, (M, L, C, H, W))
    and the logits (M, L, K) at ``x``, as harness.attacks.loss_grad per model."""
    x = x.detach().requires_grad_(True)
    logits = stack.forward(x, False, grad_params=False)
    loss = _loss(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), kind)
    (grad,) = torch.autograd.grad(loss.sum(), x)
    return loss.detach().view(y.shape), grad, logits.detach()


def _flat(t: torch.Tensor) -> torch.Tensor:
    """(M, L, ...) as (M * L, ...): the per-example helpers of harness.attacks take a flat batch."""
    return t.reshape(-1, *t.shape[2:])


def _compact(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For ``mask`` (M, W) bool: per model the columns where it holds, in order, padded to the widest
    model's count (M, W') long, and which of those are real (M, W') bool."""
    width = int(mask.sum(1).max()) if mask.numel() else 0
    # a stable sort of "not in the mask" puts each model's columns first, in their order
    cols = torch.sort((~mask).to(torch.int8), dim=1, stable=True).indices[:, :width]
    return cols, torch.arange(width, device=mask.device) < mask.sum(1, keepdim=True)


def _starts(attack: Any, xs: torch.Tensor, live: torch.Tensor,
            generators: Sequence[torch.Generator | None]) -> torch.Tensor:
    """Each model's random start for its live examples (M, W, ...), drawn from its own generator for
    those examples in their order, as harness.attacks draws it for one model; the other columns
    are left as they are."""
    out = xs.clone()
    for m in range(len(generators)):
        if live[m].any():  # harness.attacks draws nothing for a model with no example left
            out[m, live[m]] = _random_start(xs[m, live[m]], attack.eps, attack.norm, generators[m])
    return out


def _pgd_chunk(attack: PGD, stack: Stack, x: torch.Tensor, y: torch.Tensor, valid: torch.Tensor,
               generators: Sequence[torch.Generator | None]) -> torch.Tensor:
    """PGD with its worst-case bookkeeping on each model's examples ``x[m][valid[m]]`` (M, L, ...),
    as ``attack.perturb`` on one model and those examples: restart by restart on the examples still
    standing, each model's random start drawn from its own generator for its own examples. As in
    harness.attacks, an example leaves the iteration once it is misclassified; the models' examples
    still iterating are packed into the fewest columns whenever a quarter of them is free."""
    worst = x.clone()
    broken = torch.zeros_like(valid)
    rows = torch.arange(stack.m, device=x.device)[:, None]
    for _ in range(attack.restarts):
        if not (valid & ~broken).any():
            break
        cols, live = _compact(valid & ~broken)  # (M, W): the chunk column of each example iterating
        xs, ys = x[rows, cols], y[rows, cols]
        x_cur = _starts(attack, xs, live, generators) if attack.random_start else xs.clone()
        for step in range(attack.steps + 1):
            if step < attack.steps:
                _, grad, logits = _loss_grad(stack, x_cur, ys, attack.loss)
            else:
                with torch.no_grad():
                    logits = stack.forward(x_cur, False, grad_params=False)
            hit = live & (logits.argmax(-1) != ys)
            if hit.any():  # the first input that fools the model is kept
                m_hit, w_hit = hit.nonzero(as_tuple=True)
                worst[m_hit, cols[m_hit, w_hit]] = x_cur[m_hit, w_hit]
                broken[m_hit, cols[m_hit, w_hit]] = True
                live = live & ~hit
            if not live.any():
                break
            if step < attack.steps:
                moved = project(_flat(xs), _flat(x_cur) + attack.step_size * _direction(_flat(grad), attack.norm),
                                attack.eps, attack.norm)
                x_cur = moved.view_as(x_cur)
                if int(live.sum(1).max()) <= 0.75 * live.shape[1]:
                    keep, live = _compact(live)
                    cols, xs, ys, x_cur = cols.gather(1, keep), xs[rows, keep], ys.gather(1, keep), x_cur[rows, keep]
        else:  # the last iterate of those never misclassified
            m_left, w_left = live.nonzero(as_tuple=True)
            worst[m_left, cols[m_left, w_left]] = x_cur[m_left, w_left]
    return worst


def _apgd_chunk(attack: APGD, stack: Stack, x: torch.Tensor, y: torch.Tensor, valid: torch.Tensor,
                generators: Sequence[torch.Generator | None]) -> torch.Tensor:
    """APGD (harness.attacks.APGD) with its worst-case bookkeeping on each model's examples
    ``x[m][valid[m]]`` (M, L, ...), as ``attack.perturb`` on one model and those examples: every
    per-example quantity of APGD (step size, momentum's previous iterate, best point and loss, the
    count of steps that raised the loss, the checkpoint state) is kept per model and example, (M, W),
    and an example leaves the iteration once it is misclassified (its columns are packed away as in
    :func:`_pgd_chunk`)."""
    checkpoints = set(apgd_checkpoints(attack.steps))
    worst = x.clone()
    broken = torch.zeros_like(valid)
    rows = torch.arange(stack.m, device=x.device)[:, None]

    def record(live: torch.Tensor, cols: torch.Tensor, x_cur: torch.Tensor, logits: torch.Tensor,
               ys: torch.Tensor) -> torch.Tensor:
        """Keep the live iterates that fool their model; the live mask without them."""
        hit = live & (logits.argmax(-1) != ys)
        if hit.any():
            m_hit, w_hit = hit.nonzero(as_tuple=True)
            worst[m_hit, cols[m_hit, w_hit]] = x_cur[m_hit, w_hit]
            broken[m_hit, cols[m_hit, w_hit]] = True
        return live & ~hit

    for _ in range(attack.restarts):
        if not (valid & ~broken).any():
            break
        cols, live = _compact(valid & ~broken)
        xs, ys = x[rows, cols], y[rows, cols]
        x_cur = _starts(attack, xs, live, generators)
        loss, grad, logits = _loss_grad(stack, x_cur, ys, attack.loss)
        st = {"xs": xs, "ys": ys, "x_cur": x_cur, "x_prev": x_cur.clone(), "grad": grad, "loss": loss,
              "x_best": x_cur.clone(), "grad_best": grad.clone(), "loss_best": loss.clone(),
              "eta": torch.full(loss.shape, 2.0 * attack.eps, device=x.device, dtype=x.dtype),
              "raised": torch.zeros(loss.shape, device=x.device), "loss_best_ckpt": loss.clone(),
              "halved": torch.ones(loss.shape, dtype=torch.bool, device=x.device), "cols": cols}
        shape = (*loss.shape, *(1,) * (x.dim() - 2))
        last_ckpt = 0
        for k in range(attack.steps):
            live = record(live, st["cols"], st["x_cur"], logits, st["ys"])
            if not live.any():
                break
            if int(live.sum(1).max()) <= 0.75 * live.shape[1]:
                keep, live = _compact(live)
                st = {n: t.gather(1, keep) if t.dim() == 2 else t[rows, keep] for n, t in st.items()}
                logits = logits[rows, keep]
                shape = (*live.shape, *(1,) * (x.dim() - 2))
            if k in checkpoints:
                halve = (st["raised"] <= attack.rho * (k - last_ckpt)) | (
                    ~st["halved"] & (st["loss_best_ckpt"] >= st["loss_best"]))
                st["eta"] = torch.where(halve, st["eta"] / 2, st["eta"])
                st["x_cur"] = torch.where(halve.view(shape), st["x_best"], st["x_cur"])
                st["grad"] = torch.where(halve.view(shape), st["grad_best"], st["grad"])
                st["raised"] = torch.zeros_like(st["raised"])
                st["halved"], st["loss_best_ckpt"], last_ckpt = halve, st["loss_best"].clone(), k
            eta = st["eta"].view(shape)
            xs_f, cur_f = _flat(st["xs"]), _flat(st["x_cur"])
            z = project(xs_f, cur_f + _flat(eta.expand_as(st["x_cur"])) * _direction(_flat(st["grad"]), attack.norm),
                        attack.eps, attack.norm)
            a = 1.0 if k == 0 else attack.momentum
            x_new = project(xs_f, cur_f + a * (z - cur_f) + (1 - a) * (cur_f - _flat(st["x_prev"])),
                            attack.eps, attack.norm).view_as(st["x_cur"])
            loss, grad, logits = _loss_grad(stack, x_new, st["ys"], attack.loss)
            st["raised"] = st["raised"] + (loss > st["loss"]).float()
            better = loss > st["loss_best"]
            b5 = better.view(shape)
            st["x_best"] = torch.where(b5, x_new, st["x_best"])
            st["grad_best"] = torch.where(b5, grad, st["grad_best"])
            st["loss_best"] = torch.where(better, loss, st["loss_best"])
            st["x_prev"], st["x_cur"], st["grad"], st["loss"] = st["x_cur"], x_new, grad, loss
        else:  # the last iterate: what fools its model is kept, else it is the example's worst case
            live = record(live, st["cols"], st["x_cur"], logits, st["ys"])
            m_left, w_left = live.nonzero(as_tuple=True)
            worst[m_left, st["cols"][m_left, w_left]] = st["x_cur"][m_left, w_left]
    return worst


def perturb_many(attack: Any, stack: Stack, x: torch.Tensor, y: torch.Tensor,
                 generators: Sequence[torch.Generator | None], todo: torch.Tensor | None = None,
                 batch_size: int = 512) -> torch.Tensor:
    """Adversarial inputs (M, N, C, H, W) of ``attack`` (FGSM or PGD) for the M models of ``stack``.

    ``x`` (N, C, H, W) in [0, 1] and labels ``y`` (N,) are every model's; ``todo`` (M, N) bool says
    which examples model m attacks (default: all), the others come back as they were. Per model m
    the result equals, up to float rounding, what the one-model evaluation computes
    (harness.tasks.classify.evaluation): ``attack.perturb(model_m, chunk, generator=generators[m])``
    on model m's ``todo`` examples in chunks of ``batch_size``, one chunk after the other, so
    model m's random starts come from its generator in the same order. Models in eval mode; the
    stacked parameters are not differentiated."""
    if (reason := attack_reason(attack)) is not None:
        raise ConfigError(f"attack {reason}", hint="run it one model at a time (harness.attacks)")
    if len(generators) != stack.m:
        raise ValueError(f"{len(generators)} generators for {stack.m} models")
    n = len(x)
    todo = torch.ones(stack.m, n, dtype=torch.bool, device=x.device) if todo is None else todo
    out = x.unsqueeze(0).repeat(stack.m, *([1] * x.dim()))
    wanted = [todo[m].nonzero().squeeze(1) for m in range(stack.m)]
    for start in range(0, max((len(w) for w in wanted), default=0), batch_size):
        parts = [w[start:start + batch_size] for w in wanted]  # model m's chunk: its next examples to attack
        width = max(len(p) for p in parts)
        idx = torch.zeros(stack.m, width, dtype=torch.long, device=x.device)
        valid = torch.zeros(stack.m, width, dtype=torch.bool, device=x.device)
        for m, p in enumerate(parts):
            idx[m, :len(p)], valid[m, :len(p)] = p, True
        xc, yc = x[idx], y[idx]  # (M, width, ...): the padding repeats example 0 and is never read
        if type(attack) is FGSM:
            _, grad, _ = _loss_grad(stack, xc, yc, "ce")
            adv = (xc + attack.eps * grad.sign()).clamp(0, 1)
        elif isinstance(attack, APGD):
            adv = _apgd_chunk(attack, stack, xc, yc, valid, generators)
        else:
            adv = _pgd_chunk(attack, stack, xc, yc, valid, generators)
        for m, p in enumerate(parts):
            out[m, p] = adv[m, :len(p)]
    return out


def sweep_many(stack: Stack, x: torch.Tensor, y: torch.Tensor, name: str, eps: Sequence[float],
               params: tuple[tuple[str, Any], ...], seeds: Sequence[int], batch_size: int = 512
               ) -> dict[float, tuple[torch.Tensor, torch.Tensor]]:
    """One attack's sweep over ``eps`` (ascending) for every model of ``stack``, as the classify
    evaluation runs it per model (harness.tasks.classify.evaluation): at each eps the examples a
    smaller eps broke stay broken with that input and the others are attacked, with model m's
    generator for the condition seeded from ``seeds[m]`` and the condition's key, as there.
    Returns eps -> (adversarial inputs (M, N, C, H, W), whether each model still classifies each
    example correctly (M, N) bool)."""
    from harness.registry import attacks
    from harness.specs import attack

    out: dict[float, tuple[torch.Tensor, torch.Tensor]] = {}
    last: tuple[torch.Tensor, torch.Tensor] | None = None  # (broken (M, N), adversarial inputs)
    for e in sorted(eps):
        atk = attacks.get(name)(eps=e, **dict(params))
        key = attack(name, e, params).key
        x_adv = x.unsqueeze(0).repeat(stack.m, *([1] * x.dim()))
        todo = torch.ones(stack.m, len(x), dtype=torch.bool, device=x.device)
        if last is not None:
            broken, prev = last
            x_adv[broken] = prev[broken]
            todo = ~broken
        if e > 0 and todo.any():
            gens = [torch_generator(seed, key, device=x.device.type) for seed in seeds]
            fresh = perturb_many(atk, stack, x, y, gens, todo, batch_size)
            x_adv[todo] = fresh[todo]
        ok = stack.predict(x_adv, batch_size).argmax(-1) == y
        last = (~ok, x_adv)
        out[e] = (x_adv, ok)
    return out


def battery_many(models: Sequence[nn.Module], seeds: Sequence[int], conditions: Sequence[Sequence[Condition]],
                 x: torch.Tensor, y: torch.Tensor, batch_size: int
                 ) -> list[dict[str, tuple[torch.Tensor, float]]]:
    """The adversarial inputs of the attack sweeps of M models' evaluations, computed batched.

    ``models`` (eval mode, on x's device) are models of one architecture (harness.runner groups a
    variant's seeds), ``seeds[m]`` model m's training seed and ``conditions[m]`` the conditions its
    evaluation runs. For every attack sweep (an attack's name and its parameters but eps) whose
    attack has a batched form (:func:`attack_reason`), the models that run it at the same eps, in
    ascending order (as the suite's plan runs a sweep: whole, smallest eps first), are stacked and
    attacked at once (:func:`sweep_many`: the same examples attacked at each eps, the same
    generators, as the one-model evaluation). Returns, per model, condition key -> (adversarial
    inputs (N, C, H, W) on x's device, that condition's share of the wall seconds: its sweep's time
    split equally over the sweep's models and eps); what is not there (other attacks, the sanity checks) the
    evaluation computes one model at a time (harness.tasks.classify.evaluation.evaluate's
    ``adversarial``)."""
    from harness.registry import attacks

    members: dict[tuple[str, tuple[tuple[str, Any], ...]], dict[int, list[Condition]]] = {}
    for m, conds in enumerate(conditions):
        for c in conds:
            if c.kind != "attack":
                continue
            params = tuple(p for p in c.params if p[0] != "eps")
            if attack_reason(attacks.get(c.name)(eps=c.param("eps"), **dict(params))) is None:
                members.setdefault((c.name, params), {}).setdefault(m, []).append(c)
    out: list[dict[str, tuple[torch.Tensor, float]]] = [{} for _ in models]
    stacks: dict[tuple[int, ...], Stack] = {}
    for (name, params), runs in members.items():
        # models that run the sweep at the same eps, in ascending order, are attacked together; a sweep
        # run in another order reuses less (evaluation's _attack) and is left to the one-model path
        by_eps: dict[tuple[float, ...], list[int]] = {}
        for m, cs in runs.items():
            eps = tuple(c.param("eps") for c in cs)
            if list(eps) == sorted(eps):
                by_eps.setdefault(eps, []).append(m)
        for eps, group in by_eps.items():
            idx = tuple(group)
            if idx not in stacks:
                stacks[idx] = Stack([models[m] for m in idx], device=x.device)
            t0 = time.perf_counter()
            found = sweep_many(stacks[idx], x, y, name, eps, params, [seeds[m] for m in idx], batch_size)
            share = (time.perf_counter() - t0) / (len(idx) * len(eps))
            for row, m in enumerate(idx):
                for c in runs[m]:
                    out[m][c.key] = (found[c.param("eps")][0][row], share)
    return out
