"""harness.textattacks against references computed by hand: on a model linear in its embeddings the loss
gradient is known in closed form (FGSM's step is its sign, or its direction), with two classes FGSM's L-inf
step maximises the loss over the ball, and HotFlip's one flip is the one with the largest first-order gain
by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from harness.errors import ConfigError
from harness.registry import text_attacks
from harness.textattacks import ALPHABET, FGSM, PGD, HotFlip, RandomFlip, embedding_rms


class LinearText(nn.Module):
    """logits = sum over real positions of e_p, times W: (N, L, D) -> (N, K); its gradient is in closed form."""

    def __init__(self, vocab: int = 257, dim: int = 6, classes: int = 3, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.table = nn.Parameter(torch.randn(vocab, dim, generator=g, dtype=torch.float64))
        self.w = nn.Parameter(torch.randn(dim, classes, generator=g, dtype=torch.float64))

    def embed(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.table[tokens] * (tokens != 0).unsqueeze(-1)

    def forward_embedded(self, e: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        return (e * (tokens != 0).unsqueeze(-1)).sum(1) @ self.w

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.forward_embedded(self.embed(tokens), tokens)


def _data(n: int = 6, length: int = 9, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(seed)
    x = torch.from_numpy(rng.integers(33, 123, (n, length)).astype(np.int64))
    x[:, length - 3:] = 0  # three padded positions
    return x, torch.from_numpy(rng.integers(0, 3, n).astype(np.int64))


def _hand_gradient(model: LinearText, x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """dL/de_p = W (softmax(z) - onehot(y)) at every real position p, 0 at padding (numpy, by hand)."""
    w = model.w.detach().numpy()
    e = model.table.detach().numpy()[x.numpy()] * (x.numpy() != 0)[..., None]
    z = e.sum(1) @ w
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    p[np.arange(len(y)), y.numpy()] -= 1
    return (p @ w.T)[:, None, :] * (x.numpy() != 0)[..., None]


def _loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, delta: torch.Tensor | None = None) -> torch.Tensor:
    e = model.embed(x) + (0 if delta is None else delta)
    return nn.functional.cross_entropy(model.forward_embedded(e, x), y, reduction="none")


def test_the_fgsm_step_equals_the_hand_computed_one() -> None:
    model, (x, y) = LinearText(), _data()
    g = _hand_gradient(model, x, y)
    scale = float(np.sqrt((model.table.detach().numpy()[1:] ** 2).mean()))
    assert embedding_rms(model, torch.device("cpu")) == pytest.approx(scale, rel=1e-12)
    _, linf = FGSM(0.3).attack(model, x, y)
    np.testing.assert_allclose(linf.numpy(), 0.3 * scale * np.sign(g), rtol=1e-12)
    _, l2 = FGSM(0.3, "l2").attack(model, x, y)
    unit = g / np.linalg.norm(g.reshape(len(g), -1), axis=1)[:, None, None]
    np.testing.assert_allclose(l2.numpy(), 0.3 * scale * unit, rtol=1e-10, atol=1e-15)
    assert torch.equal(FGSM(0.0).attack(model, x, y)[1], torch.zeros_like(linf))


def test_pgd_stays_in_its_ball_on_real_positions_and_reaches_the_linear_optimum() -> None:
    """With two classes the loss of a model linear in its embeddings is a decreasing function of the margin,
    which is linear in e: over an L-inf ball it is maximised exactly at FGSM's sign step, so PGD can match
    FGSM but never beat it beyond rounding, and must come within a few percent of it from a random start."""
    model, (x, y) = LinearText(classes=2), _data()
    y = y % 2
    scale = embedding_rms(model, torch.device("cpu"))
    gen = torch.Generator().manual_seed(0)
    _, d = PGD(0.2, steps=20).attack(model, x, y, gen)
    assert float(d.abs().max()) <= 0.2 * scale * (1 + 1e-9) and not d[:, -3:].any()
    _, f = FGSM(0.2).attack(model, x, y)
    with torch.no_grad():
        lp, lf, l0 = _loss(model, x, y, d), _loss(model, x, y, f), _loss(model, x, y)
    assert (lp <= lf + 1e-9).all() and (lp > l0).all()
    assert float(((lf - lp) / (lf - l0)).max()) < 0.05
    _, d2 = PGD(0.5, steps=10, norm="l2").attack(model, x, y, torch.Generator().manual_seed(0))
    assert float(d2.flatten(1).norm(dim=1).max()) <= 0.5 * scale * (1 + 1e-9) and not d2[:, -3:].any()
    with torch.no_grad():
        assert (_loss(model, x, y, d2) > l0).all()
    # the same generator state gives the same perturbation
    assert torch.equal(PGD(0.2, steps=20).attack(model, x, y, torch.Generator().manual_seed(0))[1], d)


def test_one_hotflip_is_the_flip_with_the_largest_hand_computed_first_order_gain() -> None:
    """HotFlip's estimate of a flip at position p to character a is (E[a] - e_p) . dL/de_p (Ebrahimi et al.
    2018); with the gradient by hand, the best (p, a) over every real position and writable character other
    than the one there is the flip HotFlip makes."""
    model, (x, y) = LinearText(), _data(n=5)
    with torch.no_grad():  # every text correctly classified, so HotFlip does not stop early
        y = model(x).argmax(1)
    adv, _ = HotFlip(1).attack(model, x, y)
    g = _hand_gradient(model, x, y)
    table = model.table.detach().numpy()
    ids = np.array([ord(c) + 1 for c in ALPHABET])
    for i in range(len(x)):
        best, where = -np.inf, None
        for p in range(x.shape[1]):
            t = int(x[i, p])
            if t == 0:
                continue
            for a in ids[ids != t]:
                gain = float((table[a] - table[t]) @ g[i, p])
                if gain > best:
                    best, where = gain, (p, int(a))
        assert where is not None
        changed = torch.nonzero(adv[i] != x[i]).flatten().tolist()
        assert changed == [where[0]] and int(adv[i, where[0]]) == where[1]


def test_flips_stay_within_their_budget_on_real_positions_and_in_the_alphabet() -> None:
    model, (x, y) = LinearText(), _data(n=12, length=14)
    allowed = {ord(c) + 1 for c in ALPHABET}
    for k in (0, 1, 3, 6):
        hot, _ = HotFlip(k).attack(model, x, y)
        rnd, _ = RandomFlip(k).attack(model, x, y, torch.Generator().manual_seed(k))
        for adv in (hot, rnd):
            changed = adv != x
            assert (changed.sum(1) <= k).all() and not changed[:, -3:].any()
            assert set(adv[changed].tolist()) <= allowed
        assert ((rnd != x).sum(1) == k).all()  # random flips spend the whole budget, at distinct positions
    assert torch.equal(RandomFlip(3).attack(model, x, y, torch.Generator().manual_seed(5))[0],
                       RandomFlip(3).attack(model, x, y, torch.Generator().manual_seed(5))[0])
    assert torch.equal(x, _data(n=12, length=14)[0])  # the input is never changed in place


def test_hotflip_is_stronger_than_random_flips_on_the_linear_model() -> None:
    model, (x, y) = LinearText(seed=3), _data(n=64, length=12, seed=4)
    with torch.no_grad():
        y = model(x).argmax(1)
        hot = (model(HotFlip(3).attack(model, x, y)[0]).argmax(1) == y).float().mean()
        rnd = (model(RandomFlip(3).attack(model, x, y, torch.Generator().manual_seed(0))[0]).argmax(1) == y)
    assert float(hot) < float(rnd.float().mean())


@pytest.mark.parametrize("name", text_attacks.names())
def test_every_text_attack_refuses_a_bad_budget(name: str) -> None:
    with pytest.raises(ConfigError, match="got eps"):
        text_attacks.get(name)(eps=-1.0)
    if name in ("hotflip", "random-flip"):
        with pytest.raises(ConfigError, match="whole number of character edits"):
            text_attacks.get(name)(eps=1.5)


# --- insertions and deletions -------------------------------------------------------------------------


def _hand_edit_gains(model: LinearText, x: torch.Tensor, y: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """For the model linear in the sum of its real embeddings, with the gradient g by hand (the same at every
    real position): deleting position p changes the sum by -e_p, so the first-order gain is -e_p . g;
    inserting a adds E[a]: E[a] . g. Deleting at padding or a text's only character, and inserting beyond the
    first padding position or into a text that fills the window, are impossible."""
    g = _hand_gradient(model, x, y)
    table = model.table.detach().numpy()
    ids = np.array([ord(c) + 1 for c in ALPHABET])
    n, length = x.shape
    delete = np.full((n, length), -np.inf)
    insert = np.full((n, length, len(ids)), -np.inf)
    for i in range(n):
        real = int((x[i] != 0).sum())
        gi = g[i, 0]
        for p in range(real):
            if real > 1:
                delete[i, p] = -table[int(x[i, p])] @ gi
        for p in range(real + 1 if real < length else 0):
            insert[i, p] = table[ids] @ gi
    return delete, insert


def test_insertion_and_deletion_gains_are_the_hand_computed_first_order_ones() -> None:
    from harness.textattacks import edit_gains

    model, (x, y) = LinearText(), _data(n=5)
    x[0] = torch.from_numpy(np.random.default_rng(9).integers(33, 123, x.shape[1]))  # one full text: no padding
    x[1, 1:] = 0  # one text of a single character
    e = model.embed(x).detach()
    g = torch.from_numpy(_hand_gradient(model, x, y))
    ids = torch.tensor([ord(c) + 1 for c in ALPHABET])
    delete, insert = edit_gains(model, x, e, g, model.embed(ids.view(1, -1)).detach()[0])
    want_delete, want_insert = _hand_edit_gains(model, x, y)
    np.testing.assert_allclose(delete.numpy(), want_delete, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(insert.numpy(), want_insert, rtol=1e-10, atol=1e-12)


class PositionalText(nn.Module):
    """Logits linear in the token embeddings with a weight matrix per position: moving a character to
    another place changes what it contributes, so an insertion or a deletion can beat every flip."""

    def __init__(self, length: int, vocab: int = 257, dim: int = 4, classes: int = 3, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.table = nn.Parameter(torch.randn(vocab, dim, generator=g, dtype=torch.float64))
        self.w = nn.Parameter(torch.randn(length, dim, classes, generator=g, dtype=torch.float64))

    def embed(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.table[tokens] * (tokens != 0).unsqueeze(-1)

    def forward_embedded(self, e: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        return torch.einsum("nld,ldk->nk", e * (tokens != 0).unsqueeze(-1), self.w)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.forward_embedded(self.embed(tokens), tokens)


def test_hotflip_with_insertions_and_deletions_makes_the_best_first_order_edit() -> None:
    """One round: every candidate edit (each flip, deletion and insertion there is room for) is made by
    hand, its first-order gain summed place by place as sum_q (e'_q - e_q) . g_q from autograd's gradient
    (the first padding position taking the last real one's, as documented); the edit HotFlip makes has the
    largest, and insertions and deletions are among the edits it chose."""
    length = 10
    model, (x, y) = PositionalText(length, seed=5), _data(n=24, length=length, seed=2)
    x[0] = torch.from_numpy(np.random.default_rng(9).integers(33, 123, length))  # one text fills the window
    with torch.no_grad():
        y = model(x).argmax(1)
    adv, _ = HotFlip(1, insert_delete=True).attack(model, x, y)
    ids = [ord(c) + 1 for c in ALPHABET]
    e = model.embed(x).detach()
    e.requires_grad_(True)
    nn.functional.cross_entropy(model.forward_embedded(e, x), y, reduction="sum").backward()
    assert e.grad is not None
    kinds = set()
    for i in range(len(x)):
        row = x[i].tolist()
        real = row[:row.index(0)] if 0 in row else row
        g = e.grad[i].clone()
        if len(real) < length:
            g[len(real)] = g[len(real) - 1]
        candidates: list[tuple[str, list[int]]] = []
        for p, t in enumerate(real):
            candidates += [("flip", real[:p] + [a] + real[p + 1:]) for a in ids if a != t]
            if len(real) > 1:
                candidates.append(("delete", real[:p] + real[p + 1:]))
        if len(real) < length:
            candidates += [("insert", real[:p] + [a] + real[p:]) for p in range(len(real) + 1) for a in ids]

        def gain(edited: list[int], here: torch.Tensor = e[i], grad: torch.Tensor = g) -> float:
            t = torch.tensor(edited + [0] * (length - len(edited))).view(1, -1)
            return float(((model.embed(t)[0] - here).detach() * grad).sum())
        gains = [gain(c) for _, c in candidates]
        best = int(np.argmax(gains))
        got = [t for t in adv[i].tolist() if t]
        assert gain(got) == pytest.approx(gains[best], rel=1e-9, abs=1e-12), i
        kinds.add(candidates[best][0])
    assert {"delete", "insert"} <= kinds, kinds


def test_edits_stay_within_their_budget_as_a_levenshtein_distance() -> None:
    from harness.corpora import edit_distance
    from harness.tasks.text.evaluation import edit_counts

    model, (x, y) = LinearText(), _data(n=12, length=14)
    allowed = {ord(c) + 1 for c in ALPHABET}
    grew = shrank = 0
    for k in (0, 1, 3, 6):
        hot, _ = HotFlip(k, insert_delete=True).attack(model, x, y)
        rnd, _ = RandomFlip(k, insert_delete=True).attack(model, x, y, torch.Generator().manual_seed(k))
        for adv in (hot, rnd):
            counts = edit_counts(x, adv)
            assert (counts <= k).all()
            for i in range(len(x)):  # real characters first, then padding; written characters printable
                row = adv[i].tolist()
                real = row[:row.index(0)] if 0 in row else row
                assert all(t == 0 for t in row[len(real):]) and set(real) <= allowed | set(x[i].tolist())
                assert counts[i] == edit_distance([t for t in x[i].tolist() if t], real)
            lengths = (adv != 0).sum(1) - (x != 0).sum(1)
            grew, shrank = grew + int((lengths > 0).sum()), shrank + int((lengths < 0).sum())
    assert grew and shrank  # both insertions and deletions were made
    assert torch.equal(RandomFlip(3, True).attack(model, x, y, torch.Generator().manual_seed(5))[0],
                       RandomFlip(3, True).attack(model, x, y, torch.Generator().manual_seed(5))[0])
    with pytest.raises(ConfigError, match="insert_delete must be true or false"):
        HotFlip(2, insert_delete="yes")  # type: ignore[arg-type]
