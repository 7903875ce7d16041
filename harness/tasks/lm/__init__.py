"""The ``lm`` task: character-level language models over byte tokens, trained to a held-out bits per character.

Models are the causal forms of the text models (harness.registry.text_models with ``causal=True``: the
transformer with its norm before or after each residual branch, the LSTM and GRU with the norm on their
gate pre-activations and cell), each predicting the next byte of a window of the book
(harness.tasks.lm.data: Moby-Dick cut into contiguous training, validation and test parts). Training is
harness.training.fit's loop on the next-byte cross-entropy; the held-out curve is the validation windows'
mean bits per character, and steps and seconds to target are counted to ``LMOptions.target_bpc``.

A suite's battery (harness.tasks.lm.evaluation), per example (a window of the book, or of another text):

* ``clean``: bits per character of the held-out test windows (metric ``bpc``);
* ``shift``: of the test windows through a text corruption (harness.registry.text_shifts) at severities 1-5;
* ``natural``: of another text set (``sotu``, the State of the Union passages: another register and era;
  ``spam``: mail);
* ``ood`` with score ``perplexity``: the test windows against another set's, scored by the negative bits
  per character (higher = more in-distribution), as AUROC, FPR at 95% TPR and AUPR;
* ``membership:loss``: the loss-threshold membership attack (harness.membership), training windows
  against the test windows, scored by the negative bits per character.

No attacks: a language model's battery has none (so no adversarial sanity check applies). A variant's
``options`` are its model's keyword arguments, except ``warmup_steps``, which overrides the suite's warm-up
for that variant alone: a learning-rate sweep (``Variant.train``) crossed with warm-up on and off is two
families of variants (the warm-up is no TrainSpec field, so it cannot be a sweep's setting itself).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from harness.tasks import ReportStyle, TaskData, TaskOptions, shared_summary

if TYPE_CHECKING:
    import numpy as np
    from torch import nn

    from harness.specs import Condition, Suite, Variant
    from harness.tasks import EvalRun

OOD_SCORE = "perplexity"  # the one OOD score: negative bits per character
OOD = ("auroc", "fpr95", "aupr_in", "aupr_out")
WARMUP = "warmup_steps"  # the variant option that sets its warm-up


@dataclass(frozen=True)
class LMOptions:
    """An ``lm`` suite's settings. ``length``: the input length in bytes (a window is ``length + 1`` characters
    of the book, its last ``length`` bytes the targets); ``warmup_steps``: steps over which the learning rate
    rises linearly to the recipe's (0: none; a variant's option ``warmup_steps`` overrides it);
    ``target_bpc``: the held-out bits per character whose first crossing is recorded as steps and seconds to
    target."""

    length: int = 128
    warmup_steps: int = 0
    target_bpc: float = 3.0

    def __post_init__(self) -> None:
        import math

        from harness.specs import _check

        _check(8 <= self.length <= 4096, f"language-model length {self.length} is not in 8..4096 bytes",
               "use e.g. length=128")
        _check(_count(self.warmup_steps), f"warmup_steps {self.warmup_steps!r} is not a whole number of steps >= 0",
               "use 0 (none) or more")
        _check(isinstance(self.target_bpc, (int, float)) and math.isfinite(self.target_bpc) and self.target_bpc > 0,
               f"target_bpc must be a positive number, got {self.target_bpc!r}",
               "give the held-out bits per character to reach, e.g. target_bpc=3.0")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LMOptions:
        return cls(**d)


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


STYLE = ReportStyle(
    headline="bpc", label="bpc", final="final_val_bpc", final_title="final held-out bpc",
    area="mean_val_bpc", area_title="mean held-out bpc",
    area_text="Mean held-out bpc: the area under the held-out bits-per-character curve over the budget divided "
              "by the budget (lower is better).",
    target="Held-out target {target_bpc:g} bits per character (the mean over the validation windows of the book)",
    compact_all_ood=True, compact_worst_case=False,
    no_checks="None: a language model's battery has no attack, so no adversarial sanity check applies.")


@dataclass(frozen=True)
class LanguageModel:
    name: str = "lm"
    description: str = ("character-level language models over bytes: held-out bits per character, corrupted and "
                        "other text, perplexity as an OOD score; training to a target bpc")
    outcome: str = "bpc"
    checks: tuple[str, ...] = ()
    style: ReportStyle = STYLE
    shift_kind: str = "text-shifts"
    attack_kind: str = "text-attacks"  # never used: an lm suite runs no attack
    options_type: type[TaskOptions] | None = LMOptions

    def validate(self, suite: Suite) -> None:
        from harness.specs import _check
        from harness.tasks.lm.data import BOOK, OTHER

        ev = suite.evaluation
        _check(suite.dataset == BOOK, f"language-model suite {suite.name!r} trains on {suite.dataset!r}",
               f"use dataset={BOOK!r} (its held-out parts are its last fractions)")
        _check(ev.bn_modes == ("frozen",) and not ev.prerendered_shifts and suite.test_dataset is None,
               f"language-model suite {suite.name!r} declares BatchNorm test-time modes, pre-rendered shifts or a "
               "test dataset", "an lm suite tests on the last part of the book: drop them")
        _check(not ev.attacks, f"language-model suite {suite.name!r} declares attacks",
               "an lm suite runs no attack: drop evaluation.attacks")
        bad = [n for n in (*ev.natural_shifts, *ev.ood_sets) if n not in OTHER]
        _check(not bad, f"language-model suite {suite.name!r} names unknown text sets {', '.join(bad)}",
               f"natural shifts and OOD sets: {', '.join(OTHER)}")
        _check(set(ev.ood_scores) <= {OOD_SCORE}, f"language-model suite {suite.name!r} scores OOD text by "
               f"{', '.join(ev.ood_scores)}", f"a language model's OOD score is {OOD_SCORE!r} (ood_scores=("
               f"{OOD_SCORE!r},))")
        odd = [v.name for v in suite.variants if v.standardize or v.weights is not None]
        _check(not odd, f"language-model suite {suite.name!r}: {', '.join(odd)} standardize inputs or load weights",
               "a language model is trained from scratch on byte tokens: drop standardize and weights")
        for v in suite.variants:
            opts = dict(v.options)
            _check("causal" not in opts, f"variant {v.name!r} sets causal", "an lm suite's models are causal: drop it")
            _check(WARMUP not in opts or _count(opts[WARMUP]), f"variant {v.name!r} sets warmup_steps "
                   f"{opts.get(WARMUP)!r}", "give a whole number of steps, 0 for none")

    def load_data(self, suite: Suite) -> TaskData:
        from harness.specs import natural as natural_shift
        from harness.tasks.lm.data import book_split, load_other

        length = self._options(suite).length
        split = book_split(length, suite.test_fraction, suite.val_fraction, suite.max_train, suite.max_test,
                           suite.split_seed)
        ev = suite.evaluation
        other = {n: load_other(n, length, suite.max_test, suite.split_seed)
                 for n in dict.fromkeys((*ev.natural_shifts, *ev.ood_sets))}
        return TaskData(split, {n: other[n] for n in ev.ood_sets},
                        {natural_shift(n).key: other[n] for n in ev.natural_shifts})

    def check_names(self, suite: Suite) -> None:
        from harness import registry as r

        for v in suite.variants:
            r.text_models.entry(v.model)
        for name in suite.evaluation.shifts:
            r.text_shifts.entry(name)

    def conditions(self, suite: Suite) -> list[Condition]:
        from harness.inference import conditions as cost_conditions
        from harness.specs import clean, membership, natural, ood, shift

        ev = suite.evaluation
        return ([clean()] + [shift(s, sev) for s in ev.shifts for sev in ev.severities]
                + [natural(n) for n in ev.natural_shifts] + [ood(o, sc) for o in ev.ood_sets for sc in ev.ood_scores]
                + ([membership()] if ev.membership else []) + cost_conditions(suite))

    def train_params(self, suite: Suite) -> dict[str, Any]:
        return {"lm": dataclasses.asdict(self._options(suite))}

    def eval_params(self, suite: Suite, cond: Condition) -> dict[str, Any]:
        from harness.inference import eval_params as cost_params

        return {"lm": dataclasses.asdict(self._options(suite)), **(cost_params(suite) if cond.kind == "cost" else {})}

    def build(self, suite: Suite, variant: Variant, split: Any, seed: int) -> nn.Module:
        from harness.corpora import VOCAB
        from harness.models import init_weights
        from harness.registry import norms, text_models
        from harness.seeding import torch_generator

        options = {k: v for k, v in variant.options if k != WARMUP}
        model = text_models.get(variant.model)(VOCAB, 0, norms.get(variant.norm), causal=True, **options)
        init_weights(model, torch_generator(seed, "init"))
        return model

    def train(self, suite: Suite, model: nn.Module, variant: Variant, split: Any, seed: int, device: str,
              on_step: Callable[[int, int], None] | None) -> Any:
        from harness.tasks.lm.training import train_lm

        opts = self._options(suite)
        return train_lm(model, split, variant.recipe(suite.train), seed, opts.target_bpc,
                        self.warmup(suite, variant), device, on_step)

    def setup(self, ctx: Any, store: Any, conditions: list[Condition]) -> None:
        return None  # nothing to prepare once per run

    def load_setup(self, ctx: Any) -> Any:
        return None

    def evaluate(self, run: EvalRun) -> Iterator[tuple[Condition, dict[str, np.ndarray]]]:
        from harness.tasks.lm.evaluation import evaluate

        other = {**run.ood, **{c.name: run.natural[c.key] for c in run.conditions if c.kind == "natural"}}
        return evaluate(run.model, run.split, other, run.conditions, run.suite.split_seed,
                        run.suite.evaluation.batch_size, run.device,
                        (run.suite.evaluation.cost_batch_size, run.suite.evaluation.cost_repeats))

    def eval_summary(self, cond: Condition, arrays: dict[str, np.ndarray]) -> dict[str, Any]:
        if cond.kind == "membership":
            from harness.membership import summary

            return summary(arrays)
        if cond.kind == "cost":
            from harness.inference import summary as cost_summary

            return cost_summary(arrays)
        shared = shared_summary(arrays)
        if shared is not None:
            return shared
        return {"bpc": float(arrays["bpc"].mean())}

    def metrics(self, cond: Condition) -> tuple[str, ...]:
        if cond.kind == "membership":
            from harness.membership import LOSS_METRICS

            return LOSS_METRICS
        if cond.kind == "cost":
            from harness.inference import metrics

            return metrics(cond)
        return OOD if cond.kind == "ood" else ("bpc",)

    def compared(self, cond: Condition) -> tuple[str, ...]:
        if cond.kind == "cost":
            from harness.inference import compared

            return compared(cond)
        return self.metrics(cond)

    def worst_case(self, stacked: np.ndarray) -> np.ndarray:
        import numpy as np

        return np.max(stacked, axis=0)  # the most bits per character (an lm suite has no attack to reduce)

    def report_target(self, suite: dict[str, Any]) -> dict[str, Any]:
        return {"target_bpc": suite["task_options"]["target_bpc"]}

    def describe(self, suite: Suite) -> dict[str, str]:
        opts = self._options(suite)
        warm = sorted({self.warmup(suite, v) for v in suite.variants})
        return {"target": f"held-out {opts.target_bpc:g} bits per character ({opts.length}-byte windows of "
                          f"{suite.dataset}, warm-up {', '.join(map(str, warm))} steps)",
                "ood": f"{OOD_SCORE} (negative bits per character of a window)",
                "checks": "- (no attacks: a language model's battery has none)"}

    def warmup(self, suite: Suite, variant: Variant) -> int:
        """The warm-up steps of ``variant``: its option ``warmup_steps``, else the suite's."""
        return int(dict(variant.options).get(WARMUP, self._options(suite).warmup_steps))

    @staticmethod
    def _options(suite: Suite) -> LMOptions:
        opts = suite.task_options
        return opts if isinstance(opts, LMOptions) else LMOptions()


TASK = LanguageModel()
