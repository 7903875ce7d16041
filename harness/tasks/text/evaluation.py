"""Per-example outcomes of a text classifier on each condition of a text suite's battery.

Clean: the held-out test texts. A text corruption (harness.registry.text_shifts) rewrites each test text
with one numpy generator per condition, seeded by the suite's split seed and the condition's key (the same
corrupted texts for every model, as the image shifts are), then re-encodes it to the input length (a longer
text is cut again there). Natural shifts are other labelled mail; OOD sets are scored against the clean test
texts with the image classifiers' scores (harness.tasks.classify.evaluation.OodScorer); attacks are
harness.textattacks'. Each condition's arrays are the image classifier's (``pred``, ``correct``,
``confidence``, ``loss``, ``brier``, ``label``; ``score_in`` / ``score_out`` for OOD and for the membership
attack, whose members are training texts; an attack adds the budget each example used), so every report
metric applies unchanged.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from harness.specs import Condition


def _attack_of(cond: Condition) -> Any:
    from harness.registry import text_attacks

    return text_attacks.get(cond.name)(eps=cond.param("eps"), **{k: v for k, v in cond.params if k != "eps"})


def attack_settings(cond: Condition) -> dict[str, Any]:
    """The text attack a condition runs, every default resolved, and the norm its budget is measured in
    (``linf`` / ``l2`` in units of the model's embedding scale, or ``edits``: characters edited)."""
    atk = _attack_of(cond)
    return {"attack": type(atk).__name__, "norm": atk.norm, "settings": dataclasses.asdict(atk)}


class _Sweep:
    """What the smaller eps of one attack sweep broke: their inputs stay broken at a larger eps (a smaller
    ball, or fewer edits, lies inside the larger one), so accuracy never rises with eps."""

    def __init__(self) -> None:
        self.broken: Any = None  # (N,) bool tensor
        self.tokens: Any = None  # (N, L) the texts as attacked (flips)
        self.delta: Any = None  # (N, L, D) the embedding perturbations


def corrupt(texts: tuple[str, ...], name: str, severity: int, seed: int) -> list[str]:
    """Every text of ``texts`` through the text corruption ``name`` at ``severity``, in order, with one
    numpy generator seeded by ``seed`` (deterministic: the same texts for every model)."""
    from harness.registry import text_shifts

    fn = text_shifts.get(name)
    rng = np.random.default_rng(seed)
    return [fn(t, severity, rng) for t in texts]


def edit_counts(x: Any, attacked: Any) -> np.ndarray:
    """Per text, the Levenshtein distance (N,) float64 between its tokens ``x`` (N, L) and ``attacked``
    (N, L), padding left out: the number of character flips, insertions and deletions an attack made (at
    most its budget: harness.textattacks makes one edit per round)."""
    from harness.corpora import edit_distance

    a, b = x.cpu().numpy(), attacked.cpu().numpy()
    return np.array([float(edit_distance(r[r != 0].tolist(), s[s != 0].tolist())) for r, s in zip(a, b, strict=True)])


def _attacked(model: Any, cond: Condition, x: Any, y: Any, sweep: _Sweep, seed: int, batch_size: int
              ) -> dict[str, np.ndarray]:
    """One attack condition's per-example arrays: the outcomes, and the budget used per example (``linf``
    and ``l2`` of the embedding perturbation in units of the embedding scale, or ``edits``: the Levenshtein
    distance of the attacked text to the original, :func:`edit_counts`), with ``embedding_rms`` (1,), the
    scale."""
    import torch

    from harness.seeding import torch_generator
    from harness.tasks.classify.evaluation import finite, outcomes
    from harness.textattacks import embedding_rms

    atk = _attack_of(cond)
    gen = torch_generator(seed, cond.key, device=x.device.type)
    logits, tokens, deltas = [], [], []
    for i in range(0, len(x), batch_size):
        xb, yb = x[i:i + batch_size], y[i:i + batch_size]
        adv, delta = atk.attack(model, xb, yb, gen)
        if adv is not None and sweep.broken is not None:  # what a smaller budget broke stays broken
            keep = sweep.broken[i:i + batch_size]
            adv[keep] = sweep.tokens[i:i + batch_size][keep]
        if delta is not None and sweep.broken is not None:
            keep = sweep.broken[i:i + batch_size]
            delta[keep] = sweep.delta[i:i + batch_size][keep]
        with torch.no_grad():
            logits.append(model(adv) if adv is not None else model.forward_embedded(model.embed(xb) + delta, xb))
        tokens.append(adv)
        deltas.append(delta)
    out_logits = finite(torch.cat(logits), "logits")
    out = outcomes(out_logits, y)
    broken = out_logits.argmax(1) != y
    sweep.broken = broken if sweep.broken is None else sweep.broken | broken
    scale = embedding_rms(model, x.device)
    if tokens[0] is not None:
        sweep.tokens = torch.cat(tokens)
        out["edits"] = edit_counts(x, sweep.tokens)
    else:
        sweep.delta = torch.cat(deltas)
        flat = sweep.delta.flatten(1) / scale
        out["linf"] = flat.abs().amax(1).double().cpu().numpy()
        out["l2"] = flat.norm(dim=1).double().cpu().numpy()
    out["embedding_rms"] = np.array([scale])
    return out


def evaluate(model: Any, split: Any, ood_sets: Mapping[str, Any], natural_sets: Mapping[str, Any],
             conditions: list[Condition], seed: int, condition_seed: int, length: int, batch_size: int = 512,
             device: str = "cpu", cost: tuple[int, int] = (256, 20),
             ) -> Iterator[tuple[Condition, dict[str, np.ndarray]]]:
    """Yield (condition, per-example arrays) for each condition, in order. ``split`` is a
    harness.tasks.text.data.TextSplit (its test part scored, its training part fitting feature-based OOD
    scores); ``ood_sets`` maps an OOD set's name to its TextSet, ``natural_sets`` a natural shift's
    condition key to its (labelled) TextSet. ``seed`` (the training seed) seeds the attacks' random starts
    and flips; an attack's conditions come in ascending eps, each sweep keeping what smaller eps broke; ``cost`` is
    the large batch and the timed repeats of the cost conditions (on the test texts' tokens)."""
    import torch

    from harness.corpora import encode
    from harness.data import as_tensor
    from harness.inference import cost_outcome
    from harness.seeding import derive_seed
    from harness.tasks.classify.evaluation import OodScorer, membership_scores, outcomes, predict

    dev = torch.device(device)
    model.to(dev).eval()
    test = split.test
    x, y = as_tensor(test.x, dev), as_tensor(test.y, dev)
    clean_logits = predict(model, x, batch_size)
    scorer = OodScorer(model, x, clean_logits, (split.train.x, split.train.y), batch_size, dev)
    sweeps: dict[tuple[str, tuple[Any, ...]], _Sweep] = {}  # (attack, its parameters but eps) -> what it broke
    measured: dict[str, dict[str, np.ndarray]] = {}  # the cost conditions' arrays (harness.inference)
    for cond in conditions:
        if cond.kind == "clean":
            yield cond, outcomes(clean_logits, y)
        elif cond.kind == "shift":
            texts = corrupt(test.texts, cond.name, cond.param("severity"), derive_seed(condition_seed, cond.key))
            yield cond, outcomes(predict(model, as_tensor(encode(texts, length), dev), batch_size), y)
        elif cond.kind == "natural":
            if cond.key not in natural_sets:
                raise ValueError(f"no texts were given for the natural shift {cond.key!r}")
            data = natural_sets[cond.key]
            yield cond, outcomes(predict(model, as_tensor(data.x, dev), batch_size), as_tensor(data.y, dev))
        elif cond.kind == "ood":
            yield cond, scorer.arrays(cond.param("score"), as_tensor(ood_sets[cond.name].x, dev))
        elif cond.kind == "attack":
            sweep = sweeps.setdefault((cond.name, tuple(p for p in cond.params if p[0] != "eps")), _Sweep())
            yield cond, _attacked(model, cond, x, y, sweep, seed, batch_size)
        elif cond.kind == "membership":  # members: training texts; non-members: the test texts
            yield cond, membership_scores(model, (split.train.x, split.train.y), clean_logits, y, condition_seed,
                                          batch_size, dev)
        elif cond.kind == "cost":
            yield cond, cost_outcome(model, x, cond, cost, device, measured)
        else:
            raise ValueError(f"a text suite has no {cond.kind!r} conditions")
