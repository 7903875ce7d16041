"""The ``text`` task: classifiers of byte-tokenized text (harness.registry.text_models: a transformer with
its norm before or after each residual branch, LSTM and GRU with the norm on their gate pre-activations and
cell), trained to a held-out accuracy; scored per example on clean held-out text, on text corruptions
(harness.registry.text_shifts) at severities 1-5, on natural shifts (later and harder mail), and on OOD text
with the image classifiers' scores (MSP, energy, Mahalanobis on the pooled features).

A suite names its training set (``dataset``: a labelled set of harness.tasks.text.data, ``spam``), its
natural shifts and OOD sets among the text sets there, and sets :class:`TextOptions` (the input length in
bytes and the learning-rate warm-up). ``max_train`` and ``max_test`` cap the training and test parts as
for images (drawn by label); OOD and natural-shift sets are capped at ``max_test`` texts too.

Attacks (harness.textattacks, registry kind ``text-attacks``): FGSM and PGD on the token embeddings (eps in
units of each model's embedding scale) and character flips (``hotflip``, guided by the gradient, and
``random-flip``, its baseline; eps is the number of flips), each swept over its eps in ascending order; the
sanity checks that read attack records apply (eps 0 reproduces clean predictions, perturbations stay in
their ball or edit budget, accuracy never rises with eps, PGD at least as strong as FGSM, HotFlip at least
as strong as random flips).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from harness.tasks import TaskData, TaskOptions, shared_summary
from harness.tasks.classify import Classify

if TYPE_CHECKING:
    import numpy as np
    from torch import nn

    from harness.specs import Condition, Suite, Variant
    from harness.tasks import EvalRun


@dataclass(frozen=True)
class TextOptions:
    """A text suite's settings. ``length``: input length in UTF-8 bytes (a text is cut there, shorter ones
    padded); ``warmup_steps``: steps over which the learning rate rises linearly to the suite's (0: none;
    a post-LN transformer needs one, Xiong et al. 2020)."""

    length: int = 256
    warmup_steps: int = 0

    def __post_init__(self) -> None:
        from harness.specs import _check

        _check(8 <= self.length <= 4096, f"text length {self.length} is not in 8..4096 bytes",
               "use e.g. length=256")
        _check(self.warmup_steps >= 0, f"warmup_steps {self.warmup_steps} is negative", "use 0 (none) or more")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TextOptions:
        return cls(**d)


@dataclass(frozen=True)
class Text(Classify):
    """A classifier of text: what it reports (metrics per condition, which are compared, the worst case over
    attacks, the target, the style) is the image classifier's; its data, models, battery and evaluation are
    its own."""

    name: str = "text"
    description: str = ("text classifiers over bytes: accuracy, calibration, text corruptions, natural shifts, "
                        "OOD detection, attacks on the embeddings and by character flips, sanity checks")
    checks: tuple[str, ...] = ("eps_zero", "eps_ball", "monotone", "pgd_beats_fgsm", "flips_beat_random")
    shift_kind: str = "text-shifts"
    attack_kind: str = "text-attacks"
    options_type: type[TaskOptions] | None = TextOptions

    def validate(self, suite: Suite) -> None:
        from harness.specs import _check
        from harness.tasks.text.data import LABELLED, NATURAL
        from harness.tasks.text.data import OOD as OOD_SETS

        ev = suite.evaluation
        _check(ev.bn_modes == ("frozen",) and not ev.prerendered_shifts and suite.test_dataset is None,
               f"text suite {suite.name!r} declares BatchNorm test-time modes, pre-rendered shifts or a test dataset",
               "a text suite tests on a held-out part of its dataset: drop them")
        _check(suite.dataset in LABELLED, f"text suite {suite.name!r} trains on {suite.dataset!r}",
               f"use one of {', '.join(LABELLED)}")
        bad = [n for n in ev.natural_shifts if n not in NATURAL] + [n for n in ev.ood_sets if n not in OOD_SETS]
        _check(not bad, f"text suite {suite.name!r} names unknown text sets {', '.join(bad)}",
               f"natural shifts: {', '.join(NATURAL)}; OOD sets: {', '.join(OOD_SETS)}")
        odd = [v.name for v in suite.variants if v.standardize or v.weights is not None]
        _check(not odd, f"text suite {suite.name!r}: {', '.join(odd)} standardize inputs or load weights",
               "a text variant is trained from scratch on byte tokens: drop standardize and weights")

    def load_data(self, suite: Suite) -> TaskData:
        from harness.specs import natural as natural_shift
        from harness.tasks.text.data import load_set, split_set

        length = self._options(suite).length
        data = load_set(suite.dataset, length)
        split = split_set(data, suite.test_fraction, suite.val_fraction, suite.split_seed)
        if suite.max_train is not None and suite.max_train < len(split.train.texts):
            split = dataclasses.replace(split, train=_capped(split.train, suite.max_train, suite.split_seed))
        if suite.max_test is not None and suite.max_test < len(split.test.texts):
            split = dataclasses.replace(split, test=_capped(split.test, suite.max_test, suite.split_seed))
        ev = suite.evaluation
        ood = {name: load_set(name, length, suite.max_test, suite.split_seed) for name in ev.ood_sets}
        natural = {natural_shift(n).key: load_set(n, length, suite.max_test, suite.split_seed)
                   for n in ev.natural_shifts}
        return TaskData(split, ood, natural)

    def check_names(self, suite: Suite) -> None:
        from harness import registry as r

        for v in suite.variants:
            r.text_models.entry(v.model)
        for name in suite.evaluation.shifts:
            r.text_shifts.entry(name)
        for name in suite.evaluation.ood_scores:
            r.ood_scores.entry(name)
        for a in suite.evaluation.attacks:  # built at every eps: a bad budget fails before any work
            for e in a.eps:
                r.registry(self.attack_kind).get(a.name)(eps=e, **dict(a.params))

    def conditions(self, suite: Suite) -> list[Condition]:
        from harness.inference import conditions as cost_conditions
        from harness.specs import attack, clean, membership, natural, ood, shift

        ev = suite.evaluation
        # ascending eps: a sweep keeps what smaller radii broke (harness.tasks.text.evaluation)
        return ([clean()] + [shift(s, sev) for s in ev.shifts for sev in ev.severities]
                + [natural(n) for n in ev.natural_shifts] + [ood(o, sc) for o in ev.ood_sets for sc in ev.ood_scores]
                + [attack(a.name, e, a.params) for a in ev.attacks for e in sorted(a.eps)]
                + ([membership()] if ev.membership else []) + cost_conditions(suite))

    def train_params(self, suite: Suite) -> dict[str, Any]:
        return {"text": dataclasses.asdict(self._options(suite))}

    def eval_params(self, suite: Suite, cond: Condition) -> dict[str, Any]:
        return {"text": dataclasses.asdict(self._options(suite)), **super().eval_params(suite, cond)}

    def build(self, suite: Suite, variant: Variant, split: Any, seed: int) -> nn.Module:
        from harness.corpora import VOCAB
        from harness.models import init_weights
        from harness.registry import norms, text_models
        from harness.seeding import torch_generator

        model = text_models.get(variant.model)(VOCAB, split.train.n_classes, norms.get(variant.norm),
                                               **dict(variant.options))
        init_weights(model, torch_generator(seed, "init"))
        return model

    def train(self, suite: Suite, model: nn.Module, variant: Variant, split: Any, seed: int, device: str,
              on_step: Callable[[int, int], None] | None) -> Any:
        from harness.training import train

        return train(model, split, variant.recipe(suite.train), seed, device, on_step,
                     self._options(suite).warmup_steps)

    def evaluate(self, run: EvalRun) -> Iterator[tuple[Condition, dict[str, np.ndarray]]]:
        from harness.tasks.text.evaluation import evaluate

        return evaluate(run.model, run.split, run.ood, run.natural, run.conditions, run.seed, run.suite.split_seed,
                        self._options(run.suite).length, run.suite.evaluation.batch_size, run.device,
                        (run.suite.evaluation.cost_batch_size, run.suite.evaluation.cost_repeats))

    def eval_summary(self, cond: Condition, arrays: dict[str, np.ndarray]) -> dict[str, Any]:
        from harness.tasks.text.evaluation import attack_settings

        if cond.kind == "membership":
            from harness.membership import summary

            return summary(arrays)
        if cond.kind == "cost":
            from harness.inference import summary as cost_summary

            return cost_summary(arrays)
        shared = shared_summary(arrays)
        if shared is not None:
            return shared
        out: dict[str, Any] = attack_settings(cond) if cond.kind == "attack" else {}
        if "embedding_rms" in arrays:
            out["embedding_rms"] = float(arrays["embedding_rms"][0])
        return {**out, "accuracy": float(arrays["correct"].mean())} if "correct" in arrays else out

    def describe(self, suite: Suite) -> dict[str, str]:
        opts = self._options(suite)
        return {"target": f"{100 * suite.train.target_accuracy:g}% held-out accuracy "
                          f"({opts.length}-byte inputs, warm-up {opts.warmup_steps} steps)",
                "ood": ", ".join(suite.evaluation.ood_scores),
                "checks": ", ".join(self.checks) if suite.evaluation.attacks else "-"}

    @staticmethod
    def _options(suite: Suite) -> TextOptions:
        opts = suite.task_options
        return opts if isinstance(opts, TextOptions) else TextOptions()


def _capped(part: Any, cap: int, seed: int) -> Any:
    """At most ``cap`` texts of ``part``, each label keeping its share (harness.tasks.text.data.draw)."""
    from harness.tasks.text.data import draw

    return part.subset(draw(part.y, cap, seed))


TASK = Text()
