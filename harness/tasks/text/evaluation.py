"""Per-example outcomes of a text classifier on each condition of a text suite's battery.

Clean: the held-out test texts. A text corruption (harness.registry.text_shifts) rewrites each test text
with one numpy generator per condition, seeded by the suite's split seed and the condition's key (the same
corrupted texts for every model, as the image shifts are), then re-encodes it to the input length (a longer
text is cut again there). Natural shifts are other labelled mail; OOD sets are scored against the clean test
texts with the image classifiers' scores (harness.tasks.classify.evaluation.OodScorer). Each condition's
arrays are the image classifier's (``pred``, ``correct``, ``confidence``, ``loss``, ``brier``, ``label``;
``score_in`` / ``score_out`` for OOD), so every report metric applies unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from harness.specs import Condition


def corrupt(texts: tuple[str, ...], name: str, severity: int, seed: int) -> list[str]:
    """Every text of ``texts`` through the text corruption ``name`` at ``severity``, in order, with one
    numpy generator seeded by ``seed`` (deterministic: the same texts for every model)."""
    from harness.registry import text_shifts

    fn = text_shifts.get(name)
    rng = np.random.default_rng(seed)
    return [fn(t, severity, rng) for t in texts]


def evaluate(model: Any, split: Any, ood_sets: Mapping[str, Any], natural_sets: Mapping[str, Any],
             conditions: list[Condition], condition_seed: int, length: int, batch_size: int = 512,
             device: str = "cpu") -> Iterator[tuple[Condition, dict[str, np.ndarray]]]:
    """Yield (condition, per-example arrays) for each condition, in order. ``split`` is a
    harness.tasks.text.data.TextSplit (its test part scored, its training part fitting feature-based OOD
    scores); ``ood_sets`` maps an OOD set's name to its TextSet, ``natural_sets`` a natural shift's
    condition key to its (labelled) TextSet."""
    import torch

    from harness.corpora import encode
    from harness.data import as_tensor
    from harness.seeding import derive_seed
    from harness.tasks.classify.evaluation import OodScorer, outcomes, predict

    dev = torch.device(device)
    model.to(dev).eval()
    test = split.test
    x, y = as_tensor(test.x, dev), as_tensor(test.y, dev)
    clean_logits = predict(model, x, batch_size)
    scorer = OodScorer(model, x, clean_logits, (split.train.x, split.train.y), batch_size, dev)
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
        else:
            raise ValueError(f"a text suite has no {cond.kind!r} conditions")
