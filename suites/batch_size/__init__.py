"""batch-size: BatchNorm against batch-independent normalization at small batches.

Data: scikit-learn's digits (the quick start's split). Variants: ``cnn`` (16 and 32 channels)
with ``none``, ``batch``, ``group`` and ``layer``, each trained at batch sizes 2, 8, 32 and 128
(``harness.specs.sweep``; every point paired with the unnormalized CNN at the same batch size),
eight seeds, Adam at 1e-3 for eight epochs, so smaller batches take more, noisier steps. Evaluated
with BatchNorm's running statistics (the default, ``frozen``): at batch size 2 those statistics
come from pairs of images, which is what the claim is about. Battery per model: clean, three
corruptions at severity 3, OOD against faces, FGSM, PGD-10 and APGD-CE (20 steps) at eps 0.1,
and the checks.

Claims tested:

* at batch size 2, BatchNorm is less accurate than no normalization on the clean test set;
* at batch size 2, group and layer normalization are not less accurate than none by more than
  2 points;
* at batch size 128, BatchNorm reaches 95% held-out accuracy in fewer steps than none.

``harness run batch-size --size reduced`` is what CI runs.
"""

from harness.specs import Claim, Size, Suite, TrainSpec, Variant, sweep, variant_name
from harness.suites.common import digits_battery

NORMS = ("none", "batch", "group", "layer")
BATCH_SIZES = (2, 8, 32, 128)
BASE = tuple(Variant(variant_name("cnn", n), "cnn", n, options=(("channels", (16, 32)),)) for n in NORMS)

SUITE = Suite(
    name="batch-size",
    version="1.0.0",
    description="CNN with none / batch / group / layer at batch sizes 2 to 128 on digits",
    dataset="digits",
    variants=sweep(BASE, batch_size=BATCH_SIZES),
    # eight seeds: the claims' family has four comparisons, and 2 / 2^8 * 4 < 0.05
    seeds=tuple(range(8)),
    train=TrainSpec(epochs=8, batch_size=32, lr=1e-3, optimizer="adam", target_accuracy=0.95, eval_every=10),
    evaluation=digits_battery(),
    claims=(
        Claim("at batch size 2, BatchNorm is less accurate than no normalization (clean)", "accuracy", "lower",
              "clean", norms=("batch",), variants=("*@batch_size=2",)),
        Claim("at batch size 2, group and layer normalization are not less accurate than none by more than 2 points",
              "accuracy", "not-lower", "clean", norms=("group", "layer"), margin=0.02,
              variants=("*@batch_size=2",)),
        Claim("at batch size 128, BatchNorm reaches 95% held-out accuracy in fewer steps than none",
              "steps_to_target", "lower", norms=("batch",), variants=("*@batch_size=128",)),
    ),
    sizes=(Size("reduced", "what CI runs: 2 seeds, none / batch / group at batch sizes 2 and 128, 2 epochs, a "
                "smaller battery", seeds=(0, 1),
                variants=tuple(f"cnn-{n}@batch_size={b}" for n in ("none", "batch", "group") for b in (2, 128)),
                epochs=2, shifts=("gaussian-noise",)),),
)
