"""lr-stability: over how wide a range of learning rates does each variant still converge?

Data: scikit-learn's digits (8x8, 1,797 images, the quick start's split: no download). Variants:
``mlp`` (two hidden layers of 128) and ``cnn`` (16 and 32 channels) with ``none``, ``batch`` and
``layer``, each trained with SGD (momentum 0.9) at every learning rate of a log grid from 0.003
to 3 (seven points), ten seeds, six epochs; the learning rate is a factor of the design
(``harness.specs.sweep``), each point paired with the unnormalized model at the same rate. A run
converges when it reaches 90% held-out accuracy without diverging (a non-finite loss or one 100x
the first step's). The report gives, per variant, the seeds converged at each rate and the range
of rates at which every seed did. Only runs that converged are evaluated (``evaluate_unconverged``
is off: a model left at chance by a rate that is too high or too low has no robustness to speak
of, and its zero input gradients would fail the sanity checks). Battery per converged model:
clean, three corruptions at severity 3, OOD against faces, FGSM, PGD-10 and APGD-CE (20 steps)
at eps 0.1, and the sanity checks.

Claims tested:

* batch and layer normalization converge at a larger share of the learning-rate grid than none
  (per seed, paired);
* at the highest rate that the unnormalized models usually survive (0.3), normalization reaches
  the target in fewer steps.

``harness run lr-stability --size reduced`` is what CI runs (2 seeds, the MLPs, three rates).
"""

from harness.specs import Claim, Size, Suite, TrainSpec, Variant, sweep, variant_name
from harness.suites.common import digits_battery

NORMS = ("none", "batch", "layer")
OPTIONS = {"mlp": (), "cnn": (("channels", (16, 32)),)}
RATES = (0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0)
BASE = tuple(Variant(variant_name(m, n), m, n, options=OPTIONS[m]) for m in ("mlp", "cnn") for n in NORMS)

SUITE = Suite(
    name="lr-stability",
    version="1.0.0",
    description="the learning rates at which none / batch / layer still converge: MLP and CNN, SGD, digits",
    dataset="digits",
    variants=sweep(BASE, lr=RATES),
    # ten seeds: the claims' family has eight comparisons, and the exact sign-flip test needs
    # 2 / 2^S * 8 < 0.05 before any of them can be supported
    seeds=tuple(range(10)),
    train=TrainSpec(epochs=6, batch_size=32, lr=0.01, optimizer="sgd", momentum=0.9, target_accuracy=0.90,
                    eval_every=10),
    evaluation=digits_battery(),
    evaluate_unconverged=False,
    claims=(
        Claim("batch and layer normalization converge at a larger share of the learning-rate grid than none",
              "converged_fraction", "higher", "sweep:lr"),
        Claim("at learning rate 0.3, normalization reaches 90% held-out accuracy in fewer steps than none",
              "steps_to_target", "lower", variants=("*@lr=0.3",)),
    ),
    sizes=(Size("reduced", "what CI runs: 2 seeds, the MLPs at lr 0.01, 0.3 and 3, 2 epochs, a smaller battery",
                seeds=(0, 1), variants=tuple(f"mlp-{n}@lr={r:g}" for n in NORMS for r in (0.01, 0.3, 3.0)),
                epochs=2, shifts=("gaussian-noise",)),),
)
