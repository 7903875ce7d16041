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
variant of a seed starts from bit-identical weights: the comparison is paired at init. A module
with parameters of its own outside linear and conv layers (the ViT's positional embedding)
defines ``draw_parameters(generator)``, which :func:`init_weights` calls at its place in module
order, so those are paired too.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from harness.errors import ConfigError
from harness.normlayers import NormFactory, SpatialRMSNorm, TokenNorm

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


class BasicBlock(nn.Module):
    """Residual basic block: conv3x3-norm-ReLU-conv3x3-norm plus a shortcut (1x1 conv with
    ``stride`` + norm when the shape changes, identity otherwise), then ReLU.
    Input (N, c_in, H, W); output (N, c_out, ceil(H / stride), ceil(W / stride))."""

    def __init__(self, c_in: int, c_out: int, stride: int, norm: NormFactory) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1)
        self.norm1 = norm(c_out, True)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.norm2 = norm(c_out, True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride), norm(c_out, True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.norm1(self.conv1(x)))
        out = self.norm2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    """Small residual network: 3x3 conv stem, norm, ReLU; one basic block per stage (stride 2
    in every stage after the first); global average pooling; linear head.
    Input (N, C, H, W) in [0, 1]; output logits (N, n_classes); ``features`` (N, channels[-1]).

    Options: ``channels`` (default (16, 32)), the width of each stage; the stem has
    ``channels[0]``. Convolutions keep their bias whatever fills the slot (as in :class:`CNN`),
    so every norm variant has the same conv layers."""

    def __init__(self, in_shape: tuple[int, int, int], n_classes: int, norm: NormFactory,
                 channels: tuple[int, ...] = (16, 32)) -> None:
        super().__init__()
        if not channels:
            raise ConfigError("ResNet needs at least one stage", "give channels=(16, 32) or similar")
        c = in_shape[0]
        self.stem = nn.Sequential(nn.Conv2d(c, channels[0], 3, padding=1), norm(channels[0], True), nn.ReLU())
        blocks = []
        c = channels[0]
        for i, out in enumerate(channels):
            blocks.append(BasicBlock(c, out, 1 if i == 0 else 2, norm))
            c = out
        self.stages = nn.Sequential(*blocks)
        self.head = nn.Linear(c, n_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(self.stem(x)).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class _RecurrentNet(nn.Module, abc.ABC):
    """Base of :class:`GRUNet` and :class:`LSTMNet`: reads an image (N, C, H, W) as H time
    steps of C * W features (one row per step) and classifies the last hidden state.

    The gate pre-activations from the input and from the hidden state are normalized separately,
    where Ba, Kiros & Hinton (2016) put layer normalization: ``norm_x(W_x x_t) + norm_h(W_h h)``,
    with ``norm_x`` and ``norm_h`` built as ``norm(gates * hidden, False)`` and shared over time
    steps. Both projections keep their bias, so with ``none`` the cell is exactly PyTorch's
    ``nn.GRU`` / ``nn.LSTM`` (same gate order), and every norm variant has the same linear layers.

    A BatchNorm filling therefore uses statistics pooled over time steps: ``norm_x`` sees all
    steps at once (statistics over batch and time); ``norm_h`` (and the LSTM's cell norm) is one
    module called at every step, so in training each step uses its own batch statistics while the
    running statistics used in eval are accumulated over all steps (at the first step the hidden
    state is zero, so ``W_h h`` is the bias alone, constant over the batch).
    Subclasses set ``gates`` and define :meth:`cell`; the base itself cannot be built."""

    gates: int

    def __init__(self, in_shape: tuple[int, int, int], n_classes: int, norm: NormFactory,
                 hidden: int = 64) -> None:
        super().__init__()
        c, _, w = in_shape
        self.hidden = hidden
        self.input_proj = nn.Linear(c * w, self.gates * hidden)
        self.hidden_proj = nn.Linear(hidden, self.gates * hidden)
        self.norm_x = norm(self.gates * hidden, False)
        self.norm_h = norm(self.gates * hidden, False)
        self.head = nn.Linear(hidden, n_classes)

    @abc.abstractmethod
    def cell(self, gx: torch.Tensor, gh: torch.Tensor, h: torch.Tensor,
             c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One step: the normalized gate pre-activations from the input, ``gx``, and from the
        hidden state, ``gh`` (N, gates * hidden), the hidden state ``h`` and cell state ``c``
        (N, hidden; unused by the GRU) -> the new (h, c)."""

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The last hidden state (N, hidden) of the row sequence of x (N, C, H, W)."""
        n, c, rows, w = x.shape
        seq = x.permute(0, 2, 1, 3).reshape(n * rows, c * w)  # row t of example i at i * rows + t
        gx = self.norm_x(self.input_proj(seq)).view(n, rows, -1)
        h = x.new_zeros(n, self.hidden)
        state = x.new_zeros(n, self.hidden)
        for t in range(rows):
            h, state = self.cell(gx[:, t], self.norm_h(self.hidden_proj(h)), h, state)
        return h

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class GRUNet(_RecurrentNet):
    """GRU over image rows with a norm on the input and hidden gate pre-activations (r, z, n).
    Input (N, C, H, W) in [0, 1]; output logits (N, n_classes); ``features`` (N, hidden).

    Step: ``r, z = sigmoid(gx_r + gh_r), sigmoid(gx_z + gh_z)``, ``n = tanh(gx_n + r * gh_n)``,
    ``h = (1 - z) * n + z * h`` with ``gx = norm_x(W_x x_t)``, ``gh = norm_h(W_h h)``.
    Options: ``hidden`` (default 64). See :class:`_RecurrentNet` for BatchNorm over time."""

    gates = 3

    def cell(self, gx: torch.Tensor, gh: torch.Tensor, h: torch.Tensor,
             c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        xr, xz, xn = gx.chunk(3, dim=1)
        hr, hz, hn = gh.chunk(3, dim=1)
        r, z = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
        n = torch.tanh(xn + r * hn)
        return (1 - z) * n + z * h, c


class LSTMNet(_RecurrentNet):
    """LSTM over image rows with a norm on the input and hidden gate pre-activations (i, f, g, o)
    and on the cell state before the output tanh (Ba et al. 2016's layer-normalized LSTM).
    Input (N, C, H, W) in [0, 1]; output logits (N, n_classes); ``features`` (N, hidden).

    Step: ``i, f, g, o`` from ``norm_x(W_x x_t) + norm_h(W_h h)``, ``c = sigmoid(f) * c +
    sigmoid(i) * tanh(g)``, ``h = sigmoid(o) * tanh(norm_c(c))``; the cell state itself is carried
    unnormalized. Options: ``hidden`` (default 64). See :class:`_RecurrentNet` for BatchNorm."""

    gates = 4

    def __init__(self, in_shape: tuple[int, int, int], n_classes: int, norm: NormFactory,
                 hidden: int = 64) -> None:
        super().__init__(in_shape, n_classes, norm, hidden)
        self.norm_c = norm(hidden, False)

    def cell(self, gx: torch.Tensor, gh: torch.Tensor, h: torch.Tensor,
             c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        i, f, g, o = (gx + gh).chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(self.norm_c(c)), c


class PositionalEmbedding(nn.Module):
    """A learned positional embedding added to tokens (N, T, D); drawn from the init generator
    (truncated normal, std 0.02) by :func:`init_weights` through :meth:`draw_parameters`."""

    def __init__(self, tokens: int, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1, tokens, dim))

    def draw_parameters(self, generator: torch.Generator) -> None:
        nn.init.trunc_normal_(self.weight, std=0.02, a=-0.04, b=0.04, generator=generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.weight


class SelfAttention(nn.Module):
    """Multi-head self-attention with separate q, k, v and output projections.
    Input and output (N, T, dim); ``mask`` (optional, boolean, broadcastable to (N, heads, T, T),
    True where query t may attend to key s) is the text models' padding and causal mask."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.q, self.k, self.v = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        n, t, d = x.shape

        def split(y: torch.Tensor) -> torch.Tensor:
            return y.view(n, t, self.heads, d // self.heads).transpose(1, 2)

        y = F.scaled_dot_product_attention(split(self.q(x)), split(self.k(x)), split(self.v(x)), attn_mask=mask)
        return self.out(y.transpose(1, 2).reshape(n, t, d))


class TransformerBlock(nn.Module):
    """Self-attention and an MLP (dim -> 2 * dim -> dim, GELU), each residual, with the norm
    before the branch (``"pre"``: x + f(norm(x))) or after the sum (``"post"``: norm(x + f(x))).
    Input and output (N, T, dim); ``mask`` goes to the attention (see :class:`SelfAttention`).
    ``residual_scale`` (default None: 1) multiplies each branch, x + a * f(...), a fixed scaling
    that needs no parameter, so the variants that use it draw the same init as those that do not."""

    def __init__(self, dim: int, heads: int, norm: NormFactory, placement: str,
                 residual_scale: float | None = None) -> None:
        super().__init__()
        self.pre = placement == "pre"
        self.residual_scale = residual_scale
        self.attn = SelfAttention(dim, heads)
        self.norm1 = TokenNorm(dim, norm)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))
        self.norm2 = TokenNorm(dim, norm)

    def _scaled(self, y: torch.Tensor) -> torch.Tensor:
        # no multiplication at all without a scale, so the image ViT computes what it always did
        return y if self.residual_scale is None else y * self.residual_scale

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if self.pre:
            x = x + self._scaled(self.attn(self.norm1(x), mask))
            return x + self._scaled(self.mlp(self.norm2(x)))
        x = self.norm1(x + self._scaled(self.attn(x, mask)))
        return self.norm2(x + self._scaled(self.mlp(x)))


PLACEMENTS = ("pre", "post")


def default_patch(height: int, width: int, min_tokens: int = 16) -> int:
    """The largest p dividing ``height`` and ``width`` with (height / p) * (width / p) >=
    ``min_tokens``; 1 if there is none (2 for 8x8, 7 for 28x28)."""
    return next((p for p in range(min(height, width), 0, -1)
                 if height % p == 0 and width % p == 0 and (height // p) * (width // p) >= min_tokens), 1)


class ViT(nn.Module):
    """Small vision transformer: non-overlapping patches, linear patch embedding, learned
    positional embedding, ``depth`` pre- or post-norm blocks, mean pooling, linear head.
    Input (N, C, H, W) in [0, 1]; output logits (N, n_classes); ``features`` (N, dim).

    Options: ``patch`` (default :func:`default_patch`, about 16 tokens: 2 for 8x8, 7 for 28x28;
    must divide H and W), ``dim=64``, ``heads=4`` (must divide dim), ``depth=2``,
    ``placement="pre"`` (x + f(norm(x)) in every block and a final norm before pooling) or
    ``"post"`` (norm(x + f(x)), no final norm). Norms act on tokens through :class:`TokenNorm`."""

    def __init__(self, in_shape: tuple[int, int, int], n_classes: int, norm: NormFactory,
                 patch: int | None = None, dim: int = 64, heads: int = 4, depth: int = 2,
                 placement: str = "pre") -> None:
        super().__init__()
        c, h, w = in_shape
        if placement not in PLACEMENTS:
            raise ConfigError(f"unknown ViT placement {placement!r}",
                              "use placement='pre' (x + f(norm(x))) or 'post' (norm(x + f(x)))")
        self.patch = default_patch(h, w) if patch is None else patch
        if self.patch < 1 or h % self.patch or w % self.patch:
            raise ConfigError(f"ViT patch {self.patch} does not divide the {h}x{w} image",
                              f"give a patch size dividing both, e.g. {default_patch(h, w)}")
        if heads < 1 or dim % heads:
            raise ConfigError(f"ViT dim {dim} is not divisible by heads {heads}",
                              "choose heads dividing dim, e.g. dim=64, heads=4")
        tokens = (h // self.patch) * (w // self.patch)
        self.embed = nn.Linear(c * self.patch * self.patch, dim)
        self.pos = PositionalEmbedding(tokens, dim)
        self.blocks = nn.Sequential(*(TransformerBlock(dim, heads, norm, placement) for _ in range(depth)))
        self.final_norm: nn.Module = TokenNorm(dim, norm) if placement == "pre" else nn.Identity()
        self.head = nn.Linear(dim, n_classes)

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        """Patch tokens after the last block (and final norm): (N, C, H, W) -> (N, T, dim)."""
        n, c, h, w = x.shape
        p = self.patch
        patches = x.reshape(n, c, h // p, p, w // p, p).permute(0, 2, 4, 1, 3, 5).reshape(n, -1, c * p * p)
        return self.final_norm(self.blocks(self.pos(self.embed(patches))))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.tokens(x).mean(dim=1)

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
        extract = getattr(self.net, "features", None)
        if not callable(extract):
            raise ConfigError(f"the model ({type(self.net).__name__}) has no features(x) method, which feature-based "
                              "OOD scores (mahalanobis) read", hint="give the model a features(x) method returning "
                              "penultimate features (N, D), or score OOD by logits (msp, energy)")
        return extract(self.standardize(x))  # type: ignore[no-any-return]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.standardize(x))


def init_weights(model: nn.Module, generator: torch.Generator) -> None:
    """Re-draw every linear and convolutional layer from ``generator`` in module order
    (PyTorch's default scheme), let any other module that defines ``draw_parameters(generator)``
    draw its own parameters at its place in that order, and reset norm layers (modules with
    ``reset_parameters``) to their deterministic defaults."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Linear, nn.Conv2d)):
                nn.init.kaiming_uniform_(m.weight, a=math.sqrt(5), generator=generator)
                if m.bias is not None:
                    bound = 1 / math.sqrt(m.weight[0].numel())
                    nn.init.uniform_(m.bias, -bound, bound, generator=generator)
            elif callable(draw := getattr(m, "draw_parameters", None)):
                draw(generator)
            elif callable(reset := getattr(m, "reset_parameters", None)):
                reset()


def is_factory(model: str) -> bool:
    """Whether a variant's ``model`` names an importable factory ("package.module:name") rather
    than a registered model."""
    return ":" in model


def resolve_factory(spec: str) -> Callable[..., nn.Module]:
    """The callable that ``spec`` ("package.module:name", the name possibly dotted) names; a
    ConfigError (one line) when the module cannot be imported or has no such callable. A suite
    file's own folder is importable (``harness run --suite-path`` puts it on the path)."""
    import importlib

    module_name, _, attr = spec.partition(":")
    hint = ("name a module-level function or class as 'package.module:name' that builds the model from the "
            "variant's options")
    if not module_name or not attr:
        raise ConfigError(f"model {spec!r} is not 'package.module:name'", hint=hint)
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"model {spec!r}: cannot import {module_name!r} ({exc})", hint=hint) from exc
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ConfigError(f"model {spec!r}: {module_name!r} has no {attr!r}", hint=hint)
        obj = getattr(obj, part)
    if not callable(obj):
        raise ConfigError(f"model {spec!r} is a {type(obj).__name__}, not a function or class", hint=hint)
    return obj  # type: ignore[no-any-return]


def factory_name(factory: Callable[..., nn.Module]) -> str:
    """The "package.module:name" of a module-level function or class (what a suite stores, and
    what worker processes import); a ConfigError for one they could not import (a lambda, a
    function defined inside another, one of ``__main__``)."""
    module, qualname = getattr(factory, "__module__", None), getattr(factory, "__qualname__", "")
    hint = "define the model's factory at module level in an importable module (a suite file's folder is one)"
    if not module or module == "__main__" or "<" in qualname:
        raise ConfigError(f"the model factory {qualname or factory!r} cannot be imported by name", hint=hint)
    spec = f"{module}:{qualname}"
    if resolve_factory(spec) is not factory:
        raise ConfigError(f"{spec} does not name the model factory given", hint=hint)
    return spec


def own_model(spec: str, norm: str, in_shape: tuple[int, int, int], n_classes: int,
              options: dict[str, Any]) -> nn.Module:
    """A model the harness did not write: the factory ``spec`` names (:func:`resolve_factory`)
    called with the variant's ``options``, with every normalization layer swapped for ``norm``
    (harness.normswap.swap_norms, what each layer normalizes read from a forward pass of two
    zero inputs of ``in_shape``), or kept as the factory built them where ``norm`` is
    ``"as-built"`` (harness.normswap.AS_BUILT). It must take images (N, *in_shape) in [0, 1] and give logits
    (N, n_classes); ``features(x)`` (penultimate features) is needed only by feature-based OOD
    scores such as Mahalanobis."""
    from harness.normswap import AS_BUILT, swap_norms

    net = resolve_factory(spec)(**options)
    if not isinstance(net, nn.Module):
        raise ConfigError(f"model {spec!r} returned a {type(net).__name__}, not a torch.nn.Module",
                          hint="return the network (an nn.Module) from the factory")
    example = torch.zeros(2, *in_shape)
    if norm != AS_BUILT:
        swap_norms(net, norm, example)
    with torch.no_grad():
        out = net.eval()(example)
    net.train()
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (2, n_classes):
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        given = ", ".join(map(str, in_shape))
        raise ConfigError(f"model {spec!r} gives outputs of shape {shape} for inputs (2, {given}); "
                          f"the suite's data has {n_classes} classes", hint=f"return logits of shape (N, {n_classes})")
    return net


def build_model(model: str, norm: str, in_shape: tuple[int, int, int], n_classes: int,
                options: dict[str, Any], input_stats: tuple[torch.Tensor, torch.Tensor] | None,
                generator: torch.Generator) -> Classifier:
    """Instantiate a registered model (or an importable factory's, :func:`own_model`) with a
    registered norm, optionally standardized inputs, and weights drawn from ``generator``."""
    from harness.registry import models, norms

    if is_factory(model):
        net = own_model(model, norm, in_shape, n_classes, options)
    else:
        net = models.get(model)(in_shape, n_classes, norms.get(norm), **options)
    clf = Classifier(net, Standardize(*input_stats) if input_stats is not None else None)
    init_weights(clf, generator)
    return clf
