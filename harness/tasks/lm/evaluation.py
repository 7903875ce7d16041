"""Bits per character of a causal byte model, and a trained model on every condition of an ``lm`` battery.

A window of tokens x_0 .. x_L (harness.tasks.lm.data) is scored on its next-byte predictions: the
model reads x_0 .. x_{L-1} and row t of its logits (N, L, vocab) predicts x_{t+1}. The window's bits
are the sum over its real (non-padding) targets of -log2 p(x_{t+1} | x_0 .. x_t); its characters are
the targets that start a UTF-8 character (a byte that is not a continuation byte 10xxxxxx), so the
probability of a multi-byte character is the product of its bytes' and ``bits / characters`` is bits
per character (for ASCII text, bits per byte). A model that gives every byte the same probability
scores log2(vocab) = 8.006 bits per byte.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from harness.specs import Condition


def window_bits(logits: Any, targets: Any) -> tuple[Any, Any]:
    """Per window, the bits of its real targets and the characters they start.

    ``logits`` (N, L, V) float, ``targets`` (N, L) int64 token ids (0 = padding, not scored): returns
    (bits (N,) float64, characters (N,) int64), bits the sum of -log2 p(target)."""
    import torch
    import torch.nn.functional as F

    from harness.corpora import PAD

    nll = F.cross_entropy(logits.double().transpose(1, 2), targets, reduction="none", ignore_index=PAD)  # nats
    real = targets != PAD
    starts = real & (((targets - 1) & 0xC0) != 0x80)  # a byte 10xxxxxx continues the character before it
    return nll.sum(1) / math.log(2), starts.sum(1).to(torch.int64)


def bits_per_char(model: Any, x: Any, batch_size: int = 256) -> np.ndarray:
    """Bits per character of each window of ``x`` (N, L + 1) int64 tokens under ``model`` (a causal text
    model, harness.textmodels, used as it is: call ``model.eval()`` first): (N,) float64, lower is better.
    A window whose targets start no character (never one :mod:`harness.tasks.lm.data` makes) scores its
    bits over one character."""
    import torch

    out = []
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            xb = x[i:i + batch_size]
            bits, chars = window_bits(model(xb[:, :-1]), xb[:, 1:])
            out.append((bits / chars.clamp_min(1)).cpu())
    return torch.cat(out).numpy() if out else np.zeros(0)


def corrupt(texts: tuple[str, ...], name: str, severity: int, seed: int) -> list[str]:
    """Every window's text through the text corruption ``name`` at ``severity``, one numpy generator seeded
    by ``seed`` (the same texts for every model; harness.tasks.text.evaluation.corrupt)."""
    from harness.tasks.text.evaluation import corrupt as corrupt_texts

    return corrupt_texts(texts, name, severity, seed)


def evaluate(model: Any, split: Any, other: Mapping[str, Any], conditions: list[Condition], condition_seed: int,
             batch_size: int = 256, device: str = "cpu", cost: tuple[int, int] = (256, 20),
             ) -> Iterator[tuple[Condition, dict[str, np.ndarray]]]:
    """Yield (condition, per-example arrays) for each condition, in order; ``split`` is a
    harness.tasks.lm.data.BookSplit (its test windows scored), ``other`` maps a text set's name to its
    harness.tasks.lm.data.Windows.

    * clean: ``bpc`` (N,), bits per character of each test window;
    * shift: ``bpc`` of each test window's text through the corruption (generator seeded by
      ``condition_seed`` and the condition's key, so every model reads the same corrupted texts),
      re-encoded to the window's length (cut there, or padded);
    * natural: ``bpc`` of each window of the named set;
    * ood (score ``perplexity``): ``score_in`` (N,) and ``score_out`` (M,), the negative bits per
      character of the test windows and of the set's (higher = more in-distribution: the log of the
      perplexity, negated, in bits);
    * membership (the loss-threshold attack, harness.membership): ``score_in`` (k,) the negative bits per
      character of k training windows (harness.membership.member_sample, seeded by ``condition_seed``, the
      suite's split seed), ``score_out`` (N,) the test windows', and ``member_index`` (k,);
    * cost (``cost``, ``cost:fold=True``): the model's inference cost on the test windows
      (harness.inference.cost_outcome; ``cost`` is the large batch and the timed repeats).
    """
    import torch

    from harness.corpora import encode
    from harness.data import as_tensor
    from harness.seeding import derive_seed

    dev = torch.device(device)
    model.to(dev).eval()
    test = split.test
    size = test.x.shape[1]
    clean = bits_per_char(model, as_tensor(test.x, dev), batch_size)
    scored: dict[str, np.ndarray] = {}  # a set's bits per character, scored once for natural and OOD
    measured: dict[str, dict[str, np.ndarray]] = {}  # the cost conditions' arrays (harness.inference)

    def of(name: str) -> np.ndarray:
        if name not in other:
            raise ValueError(f"no windows were given for the text set {name!r}")
        if name not in scored:
            scored[name] = bits_per_char(model, as_tensor(other[name].x, dev), batch_size)
        return scored[name]

    for cond in conditions:
        if cond.kind == "clean":
            yield cond, {"bpc": clean}
        elif cond.kind == "shift":
            texts = corrupt(test.texts, cond.name, cond.param("severity"), derive_seed(condition_seed, cond.key))
            yield cond, {"bpc": bits_per_char(model, as_tensor(encode(texts, size), dev), batch_size)}
        elif cond.kind == "natural":
            yield cond, {"bpc": of(cond.name)}
        elif cond.kind == "ood":
            yield cond, {"score_in": -clean, "score_out": -of(cond.name)}
        elif cond.kind == "membership":  # a fixed sample of the training windows against the test windows
            from harness.membership import member_sample

            idx = member_sample(len(split.train.x), len(test.x), condition_seed)
            members = bits_per_char(model, as_tensor(split.train.x[idx], dev), batch_size)
            yield cond, {"score_in": -members, "score_out": -clean, "member_index": idx}
        elif cond.kind == "cost":
            from harness.inference import cost_outcome

            yield cond, cost_outcome(model, as_tensor(test.x, dev), cond, cost, device, measured)
        else:
            raise ValueError(f"a language-model suite has no {cond.kind!r} conditions")
