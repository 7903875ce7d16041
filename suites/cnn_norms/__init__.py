"""cnn-norms: batch, group, layer and RMS normalization against none in a CNN on Fashion-MNIST.

Data: Fashion-MNIST's official split (all ten classes, from the data root: ``harness data fetch``
or ``python scripts/offline_data.py --root DIR``): 8,000 of the 60,000 training images to train on
(``fashion-mnist-train``, a fixed stratified subset; 1,000 more held out for validation) and 1,000
of the 10,000 test images to test on (``fashion-mnist``, a fixed stratified subset). Variants: ``cnn`` (16
and 32 channels) with ``none``, ``batch``, ``group``, ``layer`` and ``rms``; three seeds, Adam at
1e-3, batch 64, three epochs. Target 85%. (The registered ``resnet`` fits the same slot; it is
left out of this suite's default variants because its attacks would triple the run's time on two
cores: add it with a suite of your own, see docs/plugins.md.) Battery: clean; Gaussian noise,
Gaussian blur and contrast at severities 1-5; OOD against MNIST digits and uniform noise (MSP);
FGSM and PGD-10 at eps 0-0.2; the sanity checks.

Claims tested:

* batch, group and layer normalization reach 85% held-out accuracy in fewer steps than none;
* normalization does not cost more than 2 points of accuracy under corruption (the mean over the
  three corruptions and five severities);
* no normalization makes a model more than 2 points more robust to PGD-10 at eps 0.1.

``harness run cnn-norms --size reduced`` is what CI runs.
"""

from harness.specs import Claim, Suite, TrainSpec, Variant, variant_name
from harness.suites.common import battery, reduced

NORMS = ("none", "batch", "group", "layer", "rms")
VARIANTS = tuple(Variant(variant_name("cnn", n), "cnn", n, options=(("channels", (16, 32)),)) for n in NORMS)

SUITE = Suite(
    name="cnn-norms",
    version="2.0.0",
    description="none / batch / group / layer / rms in a CNN on Fashion-MNIST (10 classes)",
    dataset="fashion-mnist-train",
    variants=VARIANTS,
    seeds=(0, 1, 2),
    train=TrainSpec(epochs=3, batch_size=64, lr=1e-3, optimizer="adam", target_accuracy=0.85, eval_every=10),
    evaluation=battery(("mnist", "uniform-noise")),
    # the official protocol: train on (a capped subset of) the official training images, test on (a capped,
    # stratified subset of) the official test images; 1,000 training images are held out for the held-out curve
    test_dataset="fashion-mnist",
    val_fraction=1 / 60,
    max_train=8000,
    max_test=1000,
    claims=(
        Claim("batch, group and layer normalization reach 85% held-out accuracy in fewer steps than none",
              "steps_to_target", "lower", norms=("batch", "group", "layer")),
        Claim("normalization costs at most 2 points of accuracy under corruption (mean over corruptions)", "accuracy",
              "not-lower", "shift:all", margin=0.02),
        Claim("no normalization makes a model more than 2 points more robust to PGD-10 at eps 0.1", "accuracy",
              "not-higher", "attack:pgd-linf:eps=0.1,*", margin=0.02),
    ),
    sizes=(reduced(("cnn-none", "cnn-batch", "cnn-group", "cnn-layer"), "uniform-noise"),),
)
