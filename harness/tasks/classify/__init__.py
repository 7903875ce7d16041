"""The ``classify`` task: classifiers from ``harness.registry.models`` (or loaded weights), trained
to a held-out accuracy; scored per example on clean, shifted (in each BatchNorm test-time mode)
and natural inputs, OOD sets and attacks (harness.tasks.classify.evaluation), with the
adversarial sanity battery (harness.reports.checks)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from harness.tasks import (
    ReportStyle,
    TaskData,
    TaskOptions,
    check_image_eps,
    check_image_names,
    load_images,
    shared_summary,
)

if TYPE_CHECKING:
    import numpy as np
    from torch import nn

    from harness.specs import Condition, Suite, Variant
    from harness.tasks import EvalRun

OOD = ("auroc", "fpr95", "aupr_in", "aupr_out")
CALIBRATION = ("ece", "nll", "brier")  # on clean, shifted and natural inputs
# the adversarial sanity battery (harness.reports.checks.CHECKS, by function name)
CHECKS = ("eps_zero", "eps_ball", "monotone", "pgd_beats_fgsm", "large_eps", "stronger", "noise", "transfer",
          "gradients", "repeat", "batch_composition")


def _input_stats(x: np.ndarray) -> tuple[Any, Any]:
    """Per-channel mean and sd of (N, C, H, W) training images, for a variant that standardizes."""
    import torch

    t = torch.from_numpy(x)
    return t.mean(dim=(0, 2, 3)), t.std(dim=(0, 2, 3))


# how a report presents any classifier's results (the text task's are the same, but for the terminal's columns)
STYLE = ReportStyle(
    headline="accuracy", label="acc %", final="final_val_accuracy", final_title="final held-out acc %",
    area="aulc", area_title="AULC %",
    area_text="AULC: the area under the held-out accuracy curve over the budget, % (higher is better).",
    target="Held-out target accuracy {target_accuracy_pct:g}%", compact_all_ood=False, compact_worst_case=True,
    no_checks="")


@dataclass(frozen=True)
class Classify:
    name: str = "classify"
    description: str = "classifiers: accuracy, calibration, OOD detection, adversarial robustness, sanity checks"
    outcome: str = "correct"
    checks: tuple[str, ...] = CHECKS
    style: ReportStyle = STYLE
    shift_kind: str = "shifts"
    attack_kind: str = "attacks"
    options_type: type[TaskOptions] | None = None  # a classify suite's settings are all Suite fields

    def validate(self, suite: Suite) -> None:
        """Every Suite field applies to a classifier; its attack radii are in [0, 1] input units."""
        check_image_eps(suite)

    def load_data(self, suite: Suite) -> TaskData:
        return load_images(suite)

    def check_names(self, suite: Suite) -> None:
        from harness import registry as r

        check_image_names(suite)

        from harness.models import is_factory, resolve_factory

        for v in suite.variants:
            if is_factory(v.model):  # a model the harness did not write: its factory must import
                resolve_factory(v.model)
            else:
                r.models.entry(v.model)
        for name in suite.evaluation.ood_scores:
            r.ood_scores.entry(name)
        for a in suite.evaluation.attacks:
            r.attacks.entry(a.name)

    def conditions(self, suite: Suite) -> list[Condition]:
        from harness.inference import conditions as cost_conditions
        from harness.specs import attack, clean, membership, natural, ood, shift

        ev = suite.evaluation
        out = [clean()]
        out += [shift(s, sev) for s in ev.shifts for sev in ev.severities]
        for mode in ev.bn_modes[1:]:
            out += [clean(mode)] + [shift(s, sev, mode) for s in ev.shifts for sev in ev.severities]
        out += [natural(n) for n in ev.natural_shifts]
        out += [natural(n, sev) for n in ev.prerendered_shifts for sev in ev.severities]
        out += [ood(o, sc) for o in ev.ood_sets for sc in ev.ood_scores]
        # ascending eps: a sweep reuses what smaller radii broke (harness.tasks.classify.evaluation)
        out += [attack(a.name, e, a.params) for a in ev.attacks for e in sorted(a.eps)]
        if ev.attacks and ev.checks:
            out += suite.check_conditions()
        if ev.membership:  # training examples against the test examples (harness.membership)
            out.append(membership())
        out += cost_conditions(suite)  # inference cost, as trained and with BatchNorm folded (harness.inference)
        return out

    def train_params(self, suite: Suite) -> dict[str, Any]:
        # a classifier's training cell is the recipe alone; the membership design trains on a half of it
        return {"membership_design": True} if suite.membership_design else {}

    def eval_params(self, suite: Suite, cond: Condition) -> dict[str, Any]:
        if cond.kind == "cost":  # the large batch and the repeats change the measurement
            from harness.inference import eval_params

            return eval_params(suite)
        return {}

    def build(self, suite: Suite, variant: Variant, split: Any, seed: int) -> nn.Module:
        from harness.models import build_model
        from harness.seeding import torch_generator

        return build_model(variant.model, variant.norm, split.train.shape, split.train.n_classes,
                           dict(variant.options), _input_stats(split.train.x) if variant.standardize else None,
                           torch_generator(seed, "init"))

    def train(self, suite: Suite, model: nn.Module, variant: Variant, split: Any, seed: int, device: str,
              on_step: Callable[[int, int], None] | None) -> Any:
        from harness.training import train

        if suite.membership_design:  # the seed's half of the training part (harness.membership.half)
            import dataclasses

            from harness.membership import half

            split = dataclasses.replace(split, train=split.train.subset(half(len(split.train.y), seed).nonzero()[0]))
        return train(model, split, variant.recipe(suite.train), seed, device, on_step)

    def setup(self, ctx: Any, store: Any, conditions: list[Condition]) -> None:
        return None  # nothing to prepare once per run

    def load_setup(self, ctx: Any) -> Any:
        return None

    def evaluate(self, run: EvalRun) -> Iterator[tuple[Condition, dict[str, np.ndarray]]]:
        from harness.tasks.classify.evaluation import evaluate

        suite = run.suite
        transfer = any(c.kind == "check" and c.name == "transfer" for c in run.conditions)
        base = next((b for v, b in suite.comparisons() if v == run.variant), None)
        source = run.peer(base) if transfer and base is not None else None
        return evaluate(run.model, run.split.test.x, run.split.test.y, run.ood, run.conditions, run.seed,
                        suite.split_seed, suite.evaluation.batch_size, run.device, transfer_source=source,
                        fit_data=(run.split.train.x, run.split.train.y), natural_sets=run.natural,
                        adversarial=run.adversarial, cost=(suite.evaluation.cost_batch_size,
                                                           suite.evaluation.cost_repeats),
                        membership_design=suite.membership_design)

    def eval_summary(self, cond: Condition, arrays: dict[str, np.ndarray]) -> dict[str, Any]:
        from harness.tasks.classify.evaluation import attack_settings

        out: dict[str, Any] = attack_settings(cond) if cond.kind == "attack" else {}
        if cond.kind == "membership":
            from harness.membership import summary

            return summary(arrays)
        if cond.kind == "cost":
            from harness.inference import summary as cost_summary

            return cost_summary(arrays)
        shared = shared_summary(arrays)
        if shared is not None:
            return {**out, **shared}
        if "correct" in arrays:
            out["accuracy"] = float(arrays["correct"].mean())
        return out

    def metrics(self, cond: Condition) -> tuple[str, ...]:
        if cond.kind == "ood":
            return OOD
        if cond.kind == "membership":
            from harness.membership import LOSS_METRICS

            return LOSS_METRICS
        if cond.kind == "cost":
            from harness.inference import metrics

            return metrics(cond)
        return ("accuracy", *CALIBRATION) if cond.kind in ("clean", "shift", "natural") else ("accuracy",)

    def compared(self, cond: Condition) -> tuple[str, ...]:
        if cond.kind == "cost":
            from harness.inference import compared

            return compared(cond)
        # calibration is compared in-distribution only: under every shift it would triple the family
        return tuple(m for m in self.metrics(cond) if m not in CALIBRATION or cond.key == "clean")

    def worst_case(self, stacked: np.ndarray) -> np.ndarray:
        import numpy as np

        return np.all(stacked, axis=0)  # robust only if every attack left the example correct

    def report_target(self, suite: dict[str, Any]) -> dict[str, Any]:
        return {"target_accuracy": suite["train"]["target_accuracy"]}

    def describe(self, suite: Suite) -> dict[str, str]:
        ev = suite.evaluation
        checks = "-"
        if ev.attacks and ev.checks:
            checks = (", ".join(c.name for c in suite.check_conditions())
                      + f" (eps {ev.check_eps:g}, large eps {ev.large_eps:g})")
        return {"target": f"{100 * suite.train.target_accuracy:g}% held-out accuracy",
                "ood": ", ".join(ev.ood_scores), "checks": checks}


TASK = Classify()
