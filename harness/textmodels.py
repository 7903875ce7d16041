"""Text models over byte tokens with a normalization slot: a transformer, an LSTM and a GRU,
each a sequence classifier or, with ``causal=True``, a next-byte language model.

Contract (plugin kind ``text-models``): ``Model(vocab, n_out, norm, **options)`` where ``vocab``
counts the token ids (257 for UTF-8 bytes: id = byte + 1, id 0 is padding), ``n_out`` the classes
of a classifier and ``norm`` a resolved norm plugin (:data:`harness.models.NormFactory`). Methods:

* ``embed(tokens)``: (N, L) int64 -> (N, L, D) float, the token embeddings alone (positions
  are added later), so an attack in embedding space or HotFlip's first-order swap estimate
  ``(E[v] - E[w]) . d loss / d e`` works on the vectors a token swap really changes;
* ``forward_embedded(e, tokens)``: the logits from embeddings ``e`` (N, L, D), which may
  require grad; ``tokens`` (N, L) says where the padding is. A classifier returns (N, n_out),
  a language model (N, L, vocab) whose row t predicts token t + 1 from tokens <= t;
* ``forward(tokens)`` = ``forward_embedded(embed(tokens), tokens)``;
* ``features(tokens)``: pooled features (N, F), the input of a Mahalanobis OOD score.

Padding (id 0) never changes a classifier's output: attention never looks at a padded key, the
transformer pools over real tokens only, and the recurrent nets leave their state unchanged at a
padded step (the state they return is the one after the last real token). A norm that takes
statistics over the batch (``batch``) is the exception in training mode: ``TokenNorm`` and the
recurrent input norm see padded positions too, so the batch statistics include them; in eval
mode the running statistics apply per token and padding changes nothing. For the same reason a
``batch``-normalized language model is not causal in training mode (the statistics pool every
position, later ones included); it is in eval mode.

Initialisation goes through :func:`harness.models.init_weights` (see :func:`build_text_model`):
linear layers in module order from the seed's init stream, the embeddings through their
``draw_parameters``, norms reset to their defaults, so every norm variant of a seed starts from
the same weights (norms draw nothing).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from harness.corpora import PAD
from harness.errors import ConfigError
from harness.models import (
    PLACEMENTS,
    GRUNet,
    LSTMNet,
    NormFactory,
    PositionalEmbedding,
    TokenNorm,
    TransformerBlock,
    _RecurrentNet,
    init_weights,
)


class ByteEmbedding(nn.Embedding):
    """Token embedding (vocab, dim) with the padding row at zero (and no gradient to it), drawn
    from the init generator by :func:`harness.models.init_weights` through
    :meth:`draw_parameters`: normal with standard deviation ``std``, truncated at two standard
    deviations when ``truncated`` (GPT-2's scale for the transformer, as the ViT's positions),
    plain N(0, 1) otherwise (PyTorch's default, for the recurrent nets, whose input projection
    expects unit-scale inputs)."""

    def __init__(self, vocab: int, dim: int, std: float, truncated: bool) -> None:
        super().__init__(vocab, dim, padding_idx=PAD)
        self.std = std
        self.truncated = truncated

    def draw_parameters(self, generator: torch.Generator) -> None:
        with torch.no_grad():
            if self.truncated:
                nn.init.trunc_normal_(self.weight, std=self.std, a=-2 * self.std, b=2 * self.std,
                                      generator=generator)
            else:
                nn.init.normal_(self.weight, std=self.std, generator=generator)
            self.weight[PAD].zero_()


class TextPositions(PositionalEmbedding):
    """Learned positions (1, max_len, D) added to the first L of them: (N, L, D) -> (N, L, D)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.weight[:, : x.shape[1]]


def attention_mask(tokens: torch.Tensor, causal: bool) -> torch.Tensor:
    """Boolean (N, 1, L, L), True where query t may attend to key s: s is a real token (or s = t,
    so a padded query attends to itself and no row is empty, which would give NaN), and s <= t
    when ``causal``. Real queries therefore never see a padded key."""
    n, length = tokens.shape
    eye = torch.eye(length, dtype=torch.bool, device=tokens.device)
    allowed = (tokens != PAD)[:, None, None, :] | eye
    if causal:
        allowed = allowed & torch.ones(length, length, dtype=torch.bool, device=tokens.device).tril()
    return allowed


def masked_mean(h: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """Mean of h (N, L, D) over the real (non-padding) positions of tokens (N, L) -> (N, D);
    zeros for a sequence without a real token."""
    real = (tokens != PAD).unsqueeze(-1).to(h.dtype)
    return (h * real).sum(1) / real.sum(1).clamp_min(1)


def _check_tokens(tokens: torch.Tensor, max_len: int | None = None) -> None:
    if tokens.dim() != 2:
        raise ConfigError(f"text models take token ids of shape (N, L), not {tuple(tokens.shape)}",
                          "encode texts with harness.corpora.encode(texts, length)")
    if max_len is not None and tokens.shape[1] > max_len:
        raise ConfigError(f"{tokens.shape[1]} tokens exceed the model's max_len {max_len}",
                          f"encode to at most {max_len} tokens or build the model with a larger max_len")


def _positive(name: str, **values: int) -> None:
    for key, value in values.items():
        if value < 1:
            raise ConfigError(f"{name} {key} must be at least 1, not {value}", f"give {key}=1 or more")


class TextTransformer(nn.Module):
    """Transformer over byte tokens: byte embedding (vocab x dim) plus learned positions, ``depth``
    blocks of :class:`harness.models.TransformerBlock` with the norm slot, then a classifier head
    on the masked mean of the final tokens (N, n_out), or with ``causal=True`` a language-model
    head per position (N, L, vocab), its weights not tied to the embedding.

    Options: ``dim=64``, ``heads=4`` (must divide dim), ``depth=2``, ``max_len=512`` (positions),
    ``placement="pre"`` (x + f(norm(x)) and a final norm before the head) or ``"post"``
    (norm(x + f(x)), no final norm), ``residual_scale=None`` and ``causal=False``.

    ``residual_scale`` a multiplies every residual branch by a constant: x + a * f(norm(x)) (pre),
    norm(x + a * f(x)) (post), x + a * f(x) (none). With a = 1 / sqrt(2 * depth) it is the fixed
    branch scaling of Hayou et al. (2021, "Stable ResNet", a = 1 / sqrt(number of branches)); at
    initialisation it equals GPT-2's scaling of the residual projections' init by
    1 / sqrt(2 * depth) (Radford et al. 2019), but kept in the forward pass, so the init stream and
    the pairing across variants are untouched. It is neither DeepNet (which scales the skip,
    a > 1, under post-LN, and rescales the init) nor ReZero / SkipInit (a learned a from 0).
    """

    def __init__(self, vocab: int, n_out: int, norm: NormFactory, dim: int = 64, heads: int = 4, depth: int = 2,
                 max_len: int = 512, placement: str = "pre", residual_scale: float | None = None,
                 causal: bool = False) -> None:
        super().__init__()
        _positive("TextTransformer", vocab=vocab, dim=dim, heads=heads, depth=depth, max_len=max_len,
                  **({} if causal else {"n_out": n_out}))
        if placement not in PLACEMENTS:
            raise ConfigError(f"unknown TextTransformer placement {placement!r}",
                              "use placement='pre' (x + f(norm(x))) or 'post' (norm(x + f(x)))")
        if dim % heads:
            raise ConfigError(f"TextTransformer dim {dim} is not divisible by heads {heads}",
                              "choose heads dividing dim, e.g. dim=64, heads=4")
        if residual_scale is not None and not (math.isfinite(residual_scale) and residual_scale > 0):
            raise ConfigError(f"TextTransformer residual_scale must be a positive number, not {residual_scale}",
                              f"give residual_scale={1 / math.sqrt(2 * depth):.4g} (1 / sqrt(2 * depth)) or None")
        self.causal = causal
        self.max_len = max_len
        self.embedding = ByteEmbedding(vocab, dim, std=0.02, truncated=True)
        self.pos = TextPositions(max_len, dim)
        self.blocks = nn.ModuleList(TransformerBlock(dim, heads, norm, placement, residual_scale)
                                    for _ in range(depth))
        self.final_norm: nn.Module = TokenNorm(dim, norm) if placement == "pre" else nn.Identity()
        self.head = nn.Linear(dim, vocab if causal else n_out)

    def embed(self, tokens: torch.Tensor) -> torch.Tensor:
        """Token embeddings (N, L, dim) of tokens (N, L) int64, positions not yet added."""
        _check_tokens(tokens, self.max_len)
        return self.embedding(tokens)

    def hidden(self, e: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """The final tokens (N, L, dim), after the last block and (pre) the final norm."""
        _check_tokens(tokens, self.max_len)
        mask = attention_mask(tokens, self.causal)
        x = self.pos(e)
        for block in self.blocks:
            x = block(x, mask)
        return self.final_norm(x)

    def forward_embedded(self, e: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        h = self.hidden(e, tokens)
        return self.head(h if self.causal else masked_mean(h, tokens))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.forward_embedded(self.embed(tokens), tokens)

    def features(self, tokens: torch.Tensor) -> torch.Tensor:
        """Masked mean of the final tokens over real positions: (N, dim)."""
        return masked_mean(self.hidden(self.embed(tokens), tokens), tokens)


class _TextRecurrent(_RecurrentNet):
    """Base of :class:`TextLSTM` and :class:`TextGRU`: byte embedding (vocab x embed_dim), then
    the recurrent cell of :class:`harness.models.LSTMNet` / :class:`harness.models.GRUNet` (the
    norm slot on the input and hidden gate pre-activations and, for the LSTM, the cell; Ba et al.
    2016) over the tokens, one step per token. At a padded step the state is left unchanged.
    A classifier's head reads the state after the last real token (N, n_out); with
    ``causal=True`` the head reads the state after every step (N, L, vocab).

    Options: ``embed_dim=32``, ``hidden=128``, ``causal=False``. The input projection, the norms
    and the cell are the image nets' own, so with ``none`` the recurrence is exactly PyTorch's
    ``nn.LSTM`` / ``nn.GRU`` with the same weights."""

    def __init__(self, vocab: int, n_out: int, norm: NormFactory, embed_dim: int = 32, hidden: int = 128,
                 causal: bool = False) -> None:
        _positive(type(self).__name__, vocab=vocab, embed_dim=embed_dim, hidden=hidden,
                  **({} if causal else {"n_out": n_out}))
        # the image nets read (C, H, W) as rows of C * W features: (1, 1, embed_dim) is one
        # embedding per step
        super().__init__((1, 1, embed_dim), vocab if causal else n_out, norm, hidden)
        self.causal = causal
        self.embedding = ByteEmbedding(vocab, embed_dim, std=1.0, truncated=False)

    def embed(self, tokens: torch.Tensor) -> torch.Tensor:
        """Token embeddings (N, L, embed_dim) of tokens (N, L) int64."""
        _check_tokens(tokens)
        return self.embedding(tokens)

    def states(self, e: torch.Tensor, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Run the cell over e (N, L, embed_dim): the state after the last real token (N, hidden)
        and, for a language model, the state after every step (N, L, hidden) (else None)."""
        _check_tokens(tokens)
        n, length, _ = e.shape
        real = tokens != PAD
        padded = not bool(real.all())  # unpadded batches skip the per-step select
        gx = self.norm_x(self.input_proj(e.reshape(n * length, -1))).view(n, length, -1)
        h = e.new_zeros(n, self.hidden)
        c = e.new_zeros(n, self.hidden)
        steps = []
        # unbind, not gx[:, t]: the backward of a slice writes a zero tensor the size of gx at every step
        # (quadratic in the length: 20x slower at 128 bytes); unbind's stacks the steps' gradients once
        for t, gx_t in enumerate(gx.unbind(1)):
            h_new, c_new = self.cell(gx_t, self.norm_h(self.hidden_proj(h)), h, c)
            if padded:
                keep = real[:, t, None]
                h_new, c_new = torch.where(keep, h_new, h), torch.where(keep, c_new, c)
            h, c = h_new, c_new
            if self.causal:
                steps.append(h)
        return h, (torch.stack(steps, 1) if self.causal else None)

    def forward_embedded(self, e: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        last, steps = self.states(e, tokens)
        return self.head(steps if steps is not None else last)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.forward_embedded(self.embed(tokens), tokens)

    def features(self, tokens: torch.Tensor) -> torch.Tensor:
        """The state after the last real token: (N, hidden)."""
        return self.states(self.embed(tokens), tokens)[0]


class TextLSTM(_TextRecurrent, LSTMNet):
    """LSTM over byte tokens with the norm on the gate pre-activations and the cell
    (:class:`harness.models.LSTMNet`'s cell); see :class:`_TextRecurrent`."""


class TextGRU(_TextRecurrent, GRUNet):
    """GRU over byte tokens with the norm on the gate pre-activations
    (:class:`harness.models.GRUNet`'s cell); see :class:`_TextRecurrent`."""


def build_text_model(model: str, norm: str, vocab: int, n_out: int, options: dict[str, Any],
                     generator: torch.Generator) -> nn.Module:
    """Instantiate a registered text model with a registered norm and draw its weights from
    ``generator`` (the seed's init stream, ``harness.seeding.torch_generator(seed, "init")``)."""
    from harness.registry import norms, text_models

    net: nn.Module = text_models.get(model)(vocab, n_out, norms.get(norm), **options)
    init_weights(net, generator)
    return net
