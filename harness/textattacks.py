"""Adversarial attacks on text models (plugin kind ``text-attacks``): in a ``text`` suite an attack named in
``EvalSpec.attacks`` is one of these.

Two families, each a frozen dataclass built as ``Attack(eps=..., **params)`` with
``attack(model, tokens, y, generator) -> (tokens_or_None, delta_or_None)``:

* in the embedding space (``fgsm``, ``pgd-linf``, ``pgd-l2``): the token embeddings ``e = model.embed(tokens)``
  (N, L, D) are perturbed, at the real (non-padding) positions only, by ``delta`` with ``||delta|| <= eps``
  in L-inf (every coordinate) or L2 (the whole (L, D) perturbation of one text) and the model reads
  ``forward_embedded(e + delta, tokens)``. ``eps`` is in units of the model's own embedding scale
  (:func:`embedding_rms`: the root mean square of the coordinates of its 256 byte embeddings): eps 0.1
  moves each coordinate by at most a tenth of a typical coordinate's size (L-inf), whatever scale a
  model's training gave its embeddings, so a model cannot look robust by growing them. The evaluation
  stores the scale and the perturbations' norms in these units. FGSM
  takes one signed (L-inf) or normalised (L2) gradient step of size eps; PGD takes ``steps`` steps of
  2.5 eps / steps from a uniform random start in the ball (Madry et al. 2018), projected after each.
  A perturbed embedding is no text: these attacks bound how far the model's decision is from a token's
  vector, the continuous relaxation the text-attack literature starts from (Miyato et al. 2017).
* in the text itself (``hotflip``, ``random-flip``): up to ``eps`` (an integer count of edits) characters
  are replaced, each by a printable ASCII character (:data:`ALPHABET`), at real positions. ``hotflip``
  (Ebrahimi et al. 2018, character flips) picks each flip greedily, one per round, by its first-order
  estimate of the loss increase ``(E[b] - E[t_p]) . dL/de_p`` over every position p and replacement b,
  with the gradient recomputed after each flip, and stops early on a text it has already misclassified;
  ``random-flip`` makes ``eps`` flips at random positions with random characters (the baseline a guided
  attack must beat). A flip never returns a position to a character it had, so a text's edits are at
  most ``eps`` (the evaluation stores the count). Insertions and deletions are not made.

Every attack leaves the model in eval mode and never changes ``tokens`` in place.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from harness.errors import ConfigError

ALPHABET = tuple(c for c in string.printable if c not in "\r\x0b\x0c")  # what a flip may write: printable ASCII


def _alphabet_ids(device: torch.device) -> torch.Tensor:
    return torch.tensor([ord(c) + 1 for c in ALPHABET], device=device)  # token id = byte + 1


def embedding_rms(model: Any, device: torch.device) -> float:
    """The root mean square of the coordinates of ``model``'s embeddings of the 256 byte values: the unit of
    an embedding attack's eps."""
    with torch.no_grad():
        e = model.embed(torch.arange(1, 257, device=device).view(1, -1))
    return float(e.pow(2).mean().sqrt())


def _real(tokens: torch.Tensor) -> torch.Tensor:
    """(N, L, 1) float: 1 at real positions, 0 at padding."""
    return (tokens != 0).unsqueeze(-1).float()


def _loss_grad(model: Any, e: torch.Tensor, tokens: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """d (summed cross-entropy) / d e, (N, L, D): each text's own gradient (the sum does not mix them)."""
    e = e.detach().requires_grad_(True)
    with torch.enable_grad():
        loss = F.cross_entropy(model.forward_embedded(e, tokens), y, reduction="sum")
        (grad,) = torch.autograd.grad(loss, e)
    return grad


def _check_eps(name: str, eps: float, integer: bool = False) -> None:
    if not eps >= 0 or (integer and float(eps) != int(eps)):
        what = "a whole number of character edits" if integer else "a non-negative radius"
        raise ConfigError(f"text attack {name!r} got eps {eps!r}", hint=f"give {what}, e.g. eps=(0, 1, 2, 4)")


def _l2_project(delta: torch.Tensor, eps: float) -> torch.Tensor:
    norms = delta.flatten(1).norm(dim=1).clamp_min(1e-12)
    return delta * (eps / norms).clamp(max=1.0).view(-1, 1, 1)


@dataclass(frozen=True)
class FGSM:
    """One gradient step of size ``eps`` in the embeddings: sign (``norm="linf"``) or unit L2 direction."""

    eps: float
    norm: str = "linf"

    def __post_init__(self) -> None:
        _check_eps("fgsm", self.eps)
        if self.norm not in ("linf", "l2"):
            raise ConfigError(f"text attack 'fgsm' got norm {self.norm!r}", hint="use norm='linf' or 'l2'")

    def attack(self, model: Any, tokens: torch.Tensor, y: torch.Tensor,
               generator: torch.Generator | None = None) -> tuple[None, torch.Tensor]:
        e = model.embed(tokens).detach()
        if self.eps == 0:
            return None, torch.zeros_like(e)
        eps = self.eps * embedding_rms(model, e.device)
        g = _loss_grad(model, e, tokens, y) * _real(tokens)
        if self.norm == "linf":
            return None, eps * g.sign()
        return None, eps * g / g.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1)


@dataclass(frozen=True)
class PGD:
    """``steps`` projected gradient steps of 2.5 eps / steps in the embeddings from a uniform random start in the
    ``norm`` ball of radius ``eps`` (L-inf: per coordinate; L2: per text)."""

    eps: float
    steps: int = 10
    norm: str = "linf"

    def __post_init__(self) -> None:
        _check_eps(f"pgd-{self.norm}", self.eps)
        if self.norm not in ("linf", "l2"):
            raise ConfigError(f"text attack PGD got norm {self.norm!r}", hint="use pgd-linf or pgd-l2")
        if self.steps < 1:
            raise ConfigError(f"text attack pgd-{self.norm} got steps {self.steps}", hint="use steps=10")

    def attack(self, model: Any, tokens: torch.Tensor, y: torch.Tensor,
               generator: torch.Generator | None = None) -> tuple[None, torch.Tensor]:
        e = model.embed(tokens).detach()
        real = _real(tokens)
        if self.eps == 0:
            return None, torch.zeros_like(e)
        eps = self.eps * embedding_rms(model, e.device)
        u = torch.rand(e.shape, generator=generator, device=e.device, dtype=e.dtype)
        delta = (2 * u - 1) * eps * real
        if self.norm == "l2":
            delta = _l2_project(delta, eps)
        alpha = 2.5 * eps / self.steps
        for _ in range(self.steps):
            g = _loss_grad(model, e + delta, tokens, y) * real
            if self.norm == "linf":
                delta = (delta + alpha * g.sign()).clamp(-eps, eps)
            else:
                step = g / g.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1)
                delta = _l2_project(delta + alpha * step, eps)
            delta = delta * real
        return None, delta.detach()


def PGDL2(eps: float, steps: int = 10) -> PGD:  # noqa: N802 - a registered constructor, named as the class it makes
    """PGD in the L2 ball of the embeddings (``pgd-l2``)."""
    return PGD(eps, steps, "l2")


@dataclass(frozen=True)
class HotFlip:
    """Up to ``eps`` character flips chosen greedily by the loss gradient (one per round, gradient recomputed)."""

    eps: float
    norm: ClassVar[str] = "edits"  # what eps counts: characters flipped

    def __post_init__(self) -> None:
        _check_eps("hotflip", self.eps, integer=True)

    def attack(self, model: Any, tokens: torch.Tensor, y: torch.Tensor,
               generator: torch.Generator | None = None) -> tuple[torch.Tensor, None]:
        tokens = tokens.clone()
        original = tokens.clone()
        ids = _alphabet_ids(tokens.device)
        table = model.embed(ids.view(1, -1)).detach()[0]  # (A, D): the embedding of each writable character
        for _ in range(int(self.eps)):
            with torch.no_grad():
                alive = model.forward_embedded(model.embed(tokens), tokens).argmax(1) == y
            if not alive.any():
                break
            e = model.embed(tokens).detach()
            g = _loss_grad(model, e, tokens, y)  # (N, L, D)
            # first-order gain of writing character a at position p: (E[a] - e_p) . g_p
            gain = g @ table.T - (g * e).sum(-1, keepdim=True)  # (N, L, A)
            forbidden = (tokens == 0).unsqueeze(-1) | (ids.view(1, 1, -1) == tokens.unsqueeze(-1)) \
                | (ids.view(1, 1, -1) == original.unsqueeze(-1))
            gain = gain.masked_fill(forbidden, float("-inf"))
            best = gain.flatten(1).argmax(1)  # (N,) over (position, character)
            pos, char = best // len(ids), best % len(ids)
            ok = alive & torch.isfinite(gain.flatten(1).max(1).values)
            rows = torch.nonzero(ok).flatten()
            tokens[rows, pos[rows]] = ids[char[rows]]
        return tokens, None


@dataclass(frozen=True)
class RandomFlip:
    """``eps`` character flips at random real positions (distinct), each to a random other printable character."""

    eps: float
    norm: ClassVar[str] = "edits"  # what eps counts: characters flipped

    def __post_init__(self) -> None:
        _check_eps("random-flip", self.eps, integer=True)

    def attack(self, model: Any, tokens: torch.Tensor, y: torch.Tensor,
               generator: torch.Generator | None = None) -> tuple[torch.Tensor, None]:
        tokens = tokens.clone()
        ids = _alphabet_ids(tokens.device)
        k = int(self.eps)
        if k == 0:
            return tokens, None
        scores = torch.rand(tokens.shape, generator=generator, device=tokens.device)
        scores = scores.masked_fill(tokens == 0, 2.0)  # padding sorts last: never chosen while real ones are left
        order = scores.argsort(dim=1)[:, :k]  # (N, k) distinct positions
        for j in range(order.shape[1]):
            pos = order[:, j]
            current = tokens[torch.arange(len(tokens)), pos]
            pick = torch.randint(0, len(ids) - 1, (len(tokens),), generator=generator, device=tokens.device)
            new = ids[pick]
            new = torch.where(new == current, ids[-1], new)  # never the character already there
            real = current != 0
            tokens[torch.arange(len(tokens))[real], pos[real]] = new[real]
        return tokens, None
