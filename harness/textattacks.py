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
  are replaced, each by a printable ASCII character (:data:`ALPHABET`), at real positions, and with
  ``insert_delete=True`` also inserted or deleted. ``hotflip`` (Ebrahimi et al. 2018) picks each edit
  greedily, one per round, by its first-order estimate of the loss increase: ``(E[b] - E[t_p]) . dL/de_p``
  for a flip at p to b, and for an insertion or deletion, which moves every later character by one place,
  the sum of that over the places (:func:`edit_gains`), with the gradient recomputed after each edit, and
  stops early on a text it has already misclassified; ``random-flip`` makes ``eps`` random edits of the same
  kinds (the baseline a guided attack must beat). One edit per round, so a text's Levenshtein distance to
  its original is at most ``eps`` (the evaluation stores it); an insertion needs room in the model's
  window (a text that fills it gets one after a deletion), since pushing the last character out would be
  a second edit.

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


def _shifted(tokens: torch.Tensor, at: torch.Tensor, op: str, char: torch.Tensor | None = None) -> torch.Tensor:
    """``tokens`` (N, L) with one edit per row at position ``at`` (N,): "delete" the token there (what follows
    moves left; padding enters at the end), or "insert" ``char`` (N,) there (what follows moves right, into
    the first padding position: callers insert only where there is one)."""
    n, length = tokens.shape
    idx = torch.arange(length, device=tokens.device).expand(n, length)
    at = at.view(-1, 1)
    if op == "delete":
        padded = torch.cat([tokens, torch.zeros_like(tokens[:, :1])], 1)
        return padded.gather(1, torch.where(idx >= at, idx + 1, idx))
    out = tokens.gather(1, torch.where(idx > at, idx - 1, idx))
    assert char is not None
    return out.scatter(1, at, char.view(-1, 1))


def edit_gains(model: Any, tokens: torch.Tensor, e: torch.Tensor, g: torch.Tensor, table: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """First-order estimates of the loss increase of deleting the character at each position (N, L) and of
    inserting each writable character before each position (N, L, A), from the token embeddings ``e`` and the
    loss gradient ``g`` (N, L, D) at ``tokens`` (N, L, real tokens first, then padding) and the writable
    characters' embeddings ``table`` (A, D). An edit at p moves every later character by one place, so its
    estimate is the sum over positions q of (e'_q - e_q) . g_q, e' the embeddings after the edit (Ebrahimi et
    al. 2018 derive insertions and deletions from flips the same way). Padding positions carry no gradient (a
    model masks them), so the first one, where a longer text's last character lands, takes the gradient of
    the last real position. Impossible edits are -inf: deleting at padding or a text's only character,
    inserting beyond the first padding position or into a text that fills the model's window (it would push
    the last character out: two edits of the text the model reads; a deletion makes room)."""
    n, length = tokens.shape
    n_real = (tokens != 0).sum(1)
    g_ext = g.clone()
    rows = torch.arange(n, device=tokens.device)
    room = (n_real < length) & (n_real > 0)
    g_ext[rows[room], n_real[room]] = g[rows[room], n_real[room] - 1]
    left = torch.cat([tokens[:, 1:], torch.zeros_like(tokens[:, :1])], 1)  # every character one place left
    right = torch.cat([torch.zeros_like(tokens[:, :1]), tokens[:, :-1]], 1)  # every character one place right
    s_del = ((model.embed(left).detach() - e) * g_ext).sum(-1)  # (N, L) one place's part of a deletion
    s_ins = ((model.embed(right).detach() - e) * g_ext).sum(-1)
    # a deletion at p moves every place q >= p; an insertion at p writes p and moves every q > p
    delete = s_del.flip(1).cumsum(1).flip(1)
    after = torch.cat([s_ins.flip(1).cumsum(1).flip(1)[:, 1:], torch.zeros_like(s_ins[:, :1])], 1)
    insert = g_ext @ table.T - (g_ext * e).sum(-1, keepdim=True) + after.unsqueeze(-1)  # (N, L, A)
    pos = torch.arange(length, device=tokens.device).view(1, -1)
    delete = delete.masked_fill((pos >= n_real.view(-1, 1)) | (n_real.view(-1, 1) <= 1), float("-inf"))
    full = (n_real >= length).view(-1, 1)  # no room: an insertion would push the last character out (two edits)
    insert = insert.masked_fill(((pos > n_real.view(-1, 1)) | full).unsqueeze(-1), float("-inf"))
    return delete, insert


def _check_edits(insert_delete: object) -> None:
    if not isinstance(insert_delete, bool):
        raise ConfigError(f"insert_delete must be true or false, got {insert_delete!r}",
                          hint="insert_delete=True also inserts and deletes characters; False flips only")


@dataclass(frozen=True)
class HotFlip:
    """Up to ``eps`` character edits chosen greedily by the loss gradient (one per round, gradient recomputed):
    flips, and with ``insert_delete`` also insertions and deletions."""

    eps: float
    insert_delete: bool = False
    norm: ClassVar[str] = "edits"  # what eps counts: characters edited (the Levenshtein distance)

    def __post_init__(self) -> None:
        _check_eps("hotflip", self.eps, integer=True)
        _check_edits(self.insert_delete)

    def attack(self, model: Any, tokens: torch.Tensor, y: torch.Tensor,
               generator: torch.Generator | None = None) -> tuple[torch.Tensor, None]:
        tokens = tokens.clone()
        original = tokens.clone()
        ids = _alphabet_ids(tokens.device)
        table = model.embed(ids.view(1, -1)).detach()[0]  # (A, D): the embedding of each writable character
        a = len(ids)
        for _ in range(int(self.eps)):
            with torch.no_grad():
                alive = model.forward_embedded(model.embed(tokens), tokens).argmax(1) == y
            if not alive.any():
                break
            e = model.embed(tokens).detach()
            g = _loss_grad(model, e, tokens, y)  # (N, L, D)
            # first-order gain of writing character a at position p: (E[a] - e_p) . g_p
            gain = g @ table.T - (g * e).sum(-1, keepdim=True)  # (N, L, A)
            # a flip back to a position's original character would undo an edit (flips only: with insertions
            # and deletions positions move, and the rounds bound the edits)
            forbidden = (tokens == 0).unsqueeze(-1) | (ids.view(1, 1, -1) == tokens.unsqueeze(-1))
            if not self.insert_delete:
                forbidden = forbidden | (ids.view(1, 1, -1) == original.unsqueeze(-1))
            gains = [gain.masked_fill(forbidden, float("-inf")).flatten(1)]  # flips, then deletions, insertions
            if self.insert_delete:
                delete, insert = edit_gains(model, tokens, e, g, table)
                gains += [delete, insert.flatten(1)]
            every = torch.cat(gains, 1)
            best = every.argmax(1)  # (N,) over (kind, position, character)
            ok = alive & torch.isfinite(every.max(1).values)
            flat, length = gain.shape[1] * a, tokens.shape[1]
            kind = torch.where(best < flat, 0, torch.where(best < flat + length, 1, 2))
            flip = ok & (kind == 0)
            rows = torch.nonzero(flip).flatten()
            tokens[rows, best[rows] // a] = ids[best[rows] % a]
            for k, op in ((1, "delete"), (2, "insert")):
                rows = torch.nonzero(ok & (kind == k)).flatten()
                if len(rows):
                    rel = best[rows] - flat - (0 if k == 1 else length)
                    at, char = (rel, None) if k == 1 else (rel // a, ids[rel % a])
                    tokens[rows] = _shifted(tokens[rows], at, op, char)
        return tokens, None


@dataclass(frozen=True)
class RandomFlip:
    """``eps`` random character edits at real positions: flips at distinct positions, each to a random other
    printable character; with ``insert_delete``, each edit is a flip, an insertion or a deletion at random."""

    eps: float
    insert_delete: bool = False
    norm: ClassVar[str] = "edits"  # what eps counts: characters edited (the Levenshtein distance)

    def __post_init__(self) -> None:
        _check_eps("random-flip", self.eps, integer=True)
        _check_edits(self.insert_delete)

    def attack(self, model: Any, tokens: torch.Tensor, y: torch.Tensor,
               generator: torch.Generator | None = None) -> tuple[torch.Tensor, None]:
        tokens = tokens.clone()
        ids = _alphabet_ids(tokens.device)
        k = int(self.eps)
        if k == 0:
            return tokens, None
        if self.insert_delete:
            return _random_edits(tokens, k, ids, generator), None
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


def _random_edits(tokens: torch.Tensor, k: int, ids: torch.Tensor, generator: torch.Generator | None
                  ) -> torch.Tensor:
    """``k`` rounds of one random edit per text: a flip (to another character), a deletion (not of a text's
    only character) or an insertion (at most at the first padding position; a flip instead where the text
    fills the window), each equally likely where possible, at a uniformly random position where it can be
    made."""
    n, length = tokens.shape
    dev = tokens.device
    for _ in range(k):
        n_real = (tokens != 0).sum(1)
        op = torch.randint(0, 3, (n,), generator=generator, device=dev)
        op = torch.where((op == 1) & (n_real <= 1), 0, op)  # never delete a text's only character
        op = torch.where((op == 2) & (n_real >= length), 0, op)  # no room to insert: flip
        places = torch.where(op == 2, n_real + 1, n_real).clamp_min(1)
        at = (torch.rand(n, generator=generator, device=dev) * places).long().clamp_max(length - 1)
        pick = ids[torch.randint(0, len(ids) - 1, (n,), generator=generator, device=dev)]
        current = tokens[torch.arange(n, device=dev), at]
        pick = torch.where(pick == current, ids[-1], pick)
        rows = torch.nonzero((op == 0) & (n_real > 0)).flatten()
        tokens[rows, at[rows]] = pick[rows]
        for code, name in ((1, "delete"), (2, "insert")):
            rows = torch.nonzero((op == code) & (n_real > 0)).flatten()
            if len(rows):
                tokens[rows] = _shifted(tokens[rows], at[rows], name, pick[rows])
    return tokens
