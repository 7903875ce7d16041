"""diffusion-mnist: the diffusion suite's question on MNIST (28x28), within what two CPU cores can
run: does normalization speed up the training of a denoising diffusion model?

Data: MNIST's official split, from the data root (``harness data fetch`` or
``python scripts/offline_data.py``): 2,000 of the official training images to train on
(``mnist-train``, a fixed stratified subset, the same for every variant; 300 more held out for
the held-out loss) and 300 of the official test images to test on (``mnist``, a fixed
stratified subset). The measurements are the
``diffusion`` suite's (suites/diffusion): a DDPM U-Net (channels 16 and 32: one halving, 28 to
14) with none and group normalization (two variants, so that eight seeds fit in half an hour on
two cores), eight seeds, a 100-step linear schedule; Adam at 2e-3, batch 64, 6 epochs (186
steps), the held-out loss every 15 steps. The target held-out denoising loss is TARGET_LOSS.

Claims tested: group normalization reaches the target held-out denoising loss in fewer steps
than none; it has a lower mean held-out denoising loss over the budget.

Battery: clean; every registered corruption at severity 3 (one severity: a 28x28 U-Net costs
about ten times a digits one per image); OOD detection by the ELBO score against Fashion-MNIST
and uniform noise; PGD-10 maximising the denoising loss at eps 0, 0.05 and 0.1; 64 samples per
model, judged by the suite's own classifier (a CNN with BatchNorm trained on the same split).

A GPU runs the whole of MNIST through the same suite with ``--size``-free overrides from Python
(``dataclasses.replace(SUITE, max_train=None, ...)``); on two CPU cores that takes hours.
``harness run diffusion-mnist --size reduced`` is what CI runs where the data root holds MNIST.
"""

import dataclasses

from harness.specs import AttackSpec, Claim, EvalSpec, Size, TrainSpec
from harness.suites.diffusion import SHIFTS
from harness.suites.diffusion import SUITE as DIGITS

assert DIGITS.task_options is not None  # a denoise suite always has one

# Chosen from measured held-out curves (seed 0, 6 epochs): none fell to 0.135 at step 90, 0.105 at 120
# and 0.089 at 150; group to 0.101 at step 30 and 0.057 at 90. Both cross 0.1 within the budget, so steps
# to it are observed, not censored.
TARGET_LOSS = 0.1

SUITE = dataclasses.replace(
    DIGITS,
    name="diffusion-mnist",
    version="2.0.0",
    description="the diffusion suite on MNIST (28x28, 2,000 training images): a DDPM U-Net with none / group / "
                "layer / rms, steps to a target denoising loss, shift, PGD, ELBO OOD, sample quality",
    dataset="mnist-train",
    variants=tuple(v for v in DIGITS.variants if v.norm in ("none", "group")),
    # the official protocol, capped (see the docstring); 300 training images held out for the held-out loss
    test_dataset="mnist",
    val_fraction=0.005,
    max_train=2000,
    max_test=300,
    train=dataclasses.replace(DIGITS.train, epochs=6, eval_every=15),
    claims=(
        Claim("group normalization reaches the target held-out denoising loss in fewer steps than none",
              "steps_to_target", "lower", norms=("group",)),
        Claim("group normalization has a lower mean held-out denoising loss over training than none",
              "mean_val_loss", "lower", norms=("group",)),
    ),
    task_options=dataclasses.replace(DIGITS.task_options, target_loss=TARGET_LOSS, samples=64),
    evaluation=EvalSpec(shifts=SHIFTS, severities=(3,), ood_sets=("fashion-mnist", "uniform-noise"), ood_scores=(),
                        attacks=(AttackSpec("pgd-linf", (0.0, 0.05, 0.1), (("restarts", 1), ("steps", 10))),)),
    sizes=(
        Size("reduced", "what CI runs: 2 seeds, unet-none and unet-group, 200 training and 40 test images, 1 epoch, "
             "one corruption, one OOD set, eps 0 and 0.05, 8 samples",
             seeds=(0, 1), variants=("unet-none", "unet-group"), epochs=1, max_train=200, max_test=40,
             shifts=("gaussian-noise",), severities=(3,), ood_sets=("uniform-noise",), eps=(0.0, 0.05),
             task_options=(("steps", 50), ("samples", 8),
                           ("judge_train", TrainSpec(epochs=3, batch_size=32, lr=1e-3)))),
    ),
)
