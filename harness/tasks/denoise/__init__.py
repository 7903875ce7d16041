"""The ``denoise`` task: DDPM-style denoising diffusion models with a normalization slot.

The package: :mod:`.schedule` (the diffusion space and the noise schedule), :mod:`.unet` (a
compact U-Net), :mod:`.objective` (the per-example denoising loss and ELBO score),
:mod:`.sampling` (ancestral sampling; the Frechet feature distance and class mix of samples),
:mod:`.training` (a training loop that measures what :func:`harness.training.train` measures for
classifiers), :mod:`.attack` (PGD on the denoising loss), :mod:`.judge` (the classifier that
judges samples, trained once per run) and :mod:`.evaluation` (the battery).

Conventions (Ho, Jain & Abbeel 2020, "Denoising Diffusion Probabilistic Models"):

* **Images** enter and leave in [0, 1], (N, C, H, W) float32, as everywhere in the harness.
  The diffusion itself runs on ``2 x - 1`` (the data in [-1, 1], so the N(0, I) prior has the
  scale of the data); :func:`.objective.denoising_loss`, :func:`.objective.elbo_score` and
  :func:`.sampling.sample` do that mapping, so an eps-ball around a clean image is in [0, 1]
  pixel units. The denoiser network sees the *noisy* image x_t of that space, which is not an image in [0, 1].
* **Timesteps** are integer indices ``t`` in 0 .. T-1; index ``t`` is the paper's step t + 1
  (index 0 is the least noisy step, T-1 the noisiest).
* **Randomness** comes only from the explicit ``torch.Generator`` a function is given (on the
  device of its tensors), never from global state: the same generator state gives the same
  numbers. Which draws a call makes, and in which order, is stated in each docstring.
* **The model's mode** is the caller's: :func:`.objective.denoising_loss` and :func:`.objective.elbo_score`
  use the model as it is (call ``model.eval()`` to evaluate, as the evaluation does for attacks);
  :func:`.sampling.sample` runs in eval mode and restores the mode it found.

The denoiser, :class:`.unet.UNet`, takes a norm plugin from ``harness.registry.norms`` the way the
classifiers of :mod:`harness.models` do (a ``(num_features, spatial) -> nn.Module`` factory,
resolved by :func:`.unet.build_denoiser`), and its weights are drawn by
:func:`harness.models.init_weights` from the seed's ``init`` stream, so every norm variant of a
seed starts from bit-identical convolution and linear weights.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from harness.specs import DiffusionSpec
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


# statistics of a seed's whole set of samples (harness.tasks.denoise.sampling), one value per seed
SAMPLE_METRICS = ("sample_fid", "class_tv")


@dataclass(frozen=True)
class Denoise:
    name: str = "denoise"
    description: str = ("DDPM denoisers: denoising loss (clean, shifted, attacked), ELBO OOD detection, "
                        "sample quality judged by a classifier")
    outcome: str = "denoise_loss"
    # the sanity checks (harness.reports.checks) that read a PGD sweep on the denoising loss: eps 0 gives the
    # clean losses, perturbations stay in the ball, the loss never falls as eps grows, twice the steps at the
    # sweep's largest eps raise the loss little
    checks: tuple[str, ...] = ("eps_zero", "eps_ball", "monotone", "stronger")
    style: ReportStyle = ReportStyle(
        headline="denoising_loss", label="loss", final="final_val_loss", final_title="final held-out loss",
        area="mean_val_loss", area_title="mean held-out loss",
        area_text="Mean held-out loss: the area under the held-out denoising-loss curve over the budget divided by "
                  "the budget (lower is better).",
        target="Held-out target denoising loss {target_loss:g} (the per-pixel DDPM loss on the validation images, "
               "fixed draws of timestep and noise)", compact_all_ood=True, compact_worst_case=False,
        no_checks="None: the suite runs no attack.")
    # Suite.task_options: the schedule, targets, samples and judge
    shift_kind: str = "shifts"
    attack_kind: str = "attacks"
    options_type: type[TaskOptions] | None = DiffusionSpec

    def validate(self, suite: Suite) -> None:
        from harness.specs import _check

        check_image_eps(suite)
        ev = suite.evaluation
        bad = sorted({a.name for a in ev.attacks} - {"pgd-linf"})
        _check(not bad, f"denoise suite {suite.name!r} runs attacks {', '.join(bad)}",
               "a denoise suite's only attack is 'pgd-linf' (PGD on the denoising loss)")
        _check(not ev.natural_shifts and not ev.prerendered_shifts and ev.bn_modes == ("frozen",),
               f"denoise suite {suite.name!r} declares natural shifts, pre-rendered shifts or BatchNorm test-time "
               "modes", "a denoise suite evaluates clean, shifted, OOD, attacked inputs and samples; drop the others")
        odd = [v.name for v in suite.variants if v.standardize or v.weights is not None]
        _check(not odd, f"denoise suite {suite.name!r}: {', '.join(odd)} standardize inputs or load weights",
               "a denoiser variant is trained from scratch on [0, 1] images: drop standardize and weights")

    def load_data(self, suite: Suite) -> TaskData:
        return load_images(suite)

    def check_names(self, suite: Suite) -> None:
        from harness import registry as r

        check_image_names(suite)

        for v in suite.variants:
            r.denoisers.entry(v.model)
        assert suite.task_options is not None
        # the judge of the samples; the ELBO is the OOD score, the attack its own
        r.models.entry(suite.task_options.judge_model)
        r.norms.entry(suite.task_options.judge_norm)

    def conditions(self, suite: Suite) -> list[Condition]:
        from harness.specs import attack, check, clean, membership, ood, samples, shift

        ev = suite.evaluation
        # the ELBO score is the OOD score; of the classifiers' check conditions only "stronger" applies,
        # at the largest eps the PGD sweeps reach (the other checks read the sweeps' own cells)
        top = max((e for a in ev.attacks for e in a.eps), default=0.0)
        return [clean(), *(shift(s, sev) for s in ev.shifts for sev in ev.severities),
                *(ood(o, "elbo") for o in ev.ood_sets),
                *(attack(a.name, e, a.params) for a in ev.attacks for e in sorted(a.eps)),
                *([check("stronger", eps=top)] if ev.checks and top > 0 else []), samples(),
                *([membership()] if ev.membership else [])]

    def train_params(self, suite: Suite) -> dict[str, Any]:
        assert suite.task_options is not None
        return {"diffusion": suite.task_options.train_params()}  # the schedule and target

    def eval_params(self, suite: Suite, cond: Condition) -> dict[str, Any]:
        assert suite.task_options is not None
        # attack revision 2: a sweep keeps the worst input found at a smaller eps (evaluation.py); the
        # cells of revision 1 (no such carry) are redone rather than mixed with it
        return {"diffusion": suite.task_options.eval_params(), **({"attack_revision": 2} if cond.kind == "attack"
                                                                   else {})}

    def build(self, suite: Suite, variant: Variant, split: Any, seed: int) -> nn.Module:
        from harness.seeding import torch_generator
        from harness.tasks.denoise.unet import build_denoiser

        return build_denoiser(variant.norm, split.train.shape, dict(variant.options), torch_generator(seed, "init"),
                              variant.model)

    def train(self, suite: Suite, model: nn.Module, variant: Variant, split: Any, seed: int, device: str,
              on_step: Callable[[int, int], None] | None) -> Any:
        from harness.tasks.denoise.schedule import NoiseSchedule
        from harness.tasks.denoise.training import train_denoiser

        d = suite.task_options
        assert d is not None
        return train_denoiser(model, NoiseSchedule(d.steps), split, variant.recipe(suite.train), seed, d.target_loss,
                              device, d.val_draws, on_step)

    def setup(self, ctx: Any, store: Any, conditions: list[Condition]) -> None:
        if any(c.kind == "samples" for c in conditions):
            from harness.tasks.denoise.judge import train_judge

            train_judge(ctx, store)

    def load_setup(self, ctx: Any) -> Any:
        from harness.tasks.denoise.judge import load_judge

        return load_judge(ctx)

    def evaluate(self, run: EvalRun) -> Iterator[tuple[Condition, dict[str, np.ndarray]]]:
        from harness.tasks.denoise.evaluation import evaluate_denoiser
        from harness.tasks.denoise.schedule import NoiseSchedule

        suite, d = run.suite, run.suite.task_options
        assert d is not None
        judge = run.setup() if any(c.kind == "samples" for c in run.conditions) else None
        return evaluate_denoiser(run.model, NoiseSchedule(d.steps), run.split.test.x, run.split.test.y, run.ood,
                                 run.conditions, run.seed, suite.split_seed, suite.evaluation.batch_size, run.device,
                                 d.n_t, judge, d.samples, x_train=run.split.train.x)

    def eval_summary(self, cond: Condition, arrays: dict[str, np.ndarray]) -> dict[str, Any]:
        from harness.tasks.denoise.attack import denoise_attack_settings

        out: dict[str, Any] = denoise_attack_settings(cond) if cond.kind == "attack" else {}
        if cond.kind == "membership":
            from harness.membership import summary

            return summary(arrays)
        shared = shared_summary(arrays)
        if shared is not None:
            return {**out, **shared}
        if "denoise_loss" in arrays:
            out["denoising_loss"] = float(arrays["denoise_loss"].mean())
        elif "fid" in arrays:
            out.update(sample_fid=float(arrays["fid"][0]), class_tv=float(arrays["class_tv"][0]),
                       n_samples=len(arrays["pred"]))
        return out

    def metrics(self, cond: Condition) -> tuple[str, ...]:
        if cond.kind == "ood":
            from harness.tasks.classify import OOD

            return OOD
        if cond.kind == "membership":
            from harness.membership import LOSS_METRICS

            return LOSS_METRICS
        # a denoiser has a loss, no accuracy or calibration; its samples' metrics are one value per seed
        return SAMPLE_METRICS if cond.kind == "samples" else ("denoising_loss",)

    def compared(self, cond: Condition) -> tuple[str, ...]:
        return self.metrics(cond)

    def worst_case(self, stacked: np.ndarray) -> np.ndarray:
        import numpy as np

        return np.max(stacked, axis=0)  # the highest loss over the attacks

    def report_target(self, suite: dict[str, Any]) -> dict[str, Any]:
        return {"target_loss": suite["task_options"]["target_loss"]}  # a denoiser has no target accuracy

    def describe(self, suite: Suite) -> dict[str, str]:
        d = suite.task_options
        assert d is not None
        return {"target": f"held-out denoising loss {d.target_loss:g} (a {d.steps}-step noise schedule; "
                          f"{d.samples} samples judged by {d.judge_model}-{d.judge_norm})",
                "ood": "the ELBO (denoise suite)", "checks": "-"}


TASK = Denoise()
