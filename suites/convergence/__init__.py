"""convergence: does normalization make an MLP and a CNN reach a target accuracy on MNIST sooner?

Data: MNIST's official split, from the data root (``harness data fetch`` or ``python
scripts/offline_data.py --root DIR``): 8,000 of the 60,000 training images to train on
(``mnist-train``, a fixed stratified subset; 1,000 more held out for the held-out curve) and 1,000
of the 10,000 test images to test on (``mnist``, a fixed stratified subset). Variants: ``mlp`` (two
hidden layers of 128) and ``cnn`` (16 and 32 channels), each with the slot filled by ``none``,
``batch``, ``layer``, ``group`` and ``rms``: ten variants, three seeds shared by all, Adam at 1e-3,
batch 64, three epochs (375 steps). Target: 97% held-out accuracy, sampled every 10 steps. Battery:
clean; Gaussian noise, Gaussian blur and contrast at severities 1-5; OOD against Fashion-MNIST and
uniform noise (MSP); FGSM and PGD-10 at eps 0-0.2; the sanity checks. In a three-seed run the
"twice the steps" check failed for the normalized CNNs (PGD-20 took 3-4.5 more points than PGD-10
at eps 0.1): their robust accuracies here are upper bounds; the ``mnist`` suite runs APGD-CE with
100 steps for converged numbers, at about three times the attack cost.

Claims tested (each gets a verdict in the report):

* every normalization reaches 97% in fewer steps than none (steps capped at the budget for a run
  that never gets there);
* every normalization learns faster over the whole budget: a larger area under the held-out
  accuracy curve;
* normalization makes the training loss smoother (lower roughness).

``harness run convergence --size reduced`` is what CI runs (2 seeds, four variants, 2,000
training and 200 test images, one epoch, a smaller battery).
"""

from harness.specs import Claim, Suite, TrainSpec, Variant, variant_name
from harness.suites.common import battery, reduced

NORMS = ("none", "batch", "layer", "group", "rms")
OPTIONS = {"mlp": (), "cnn": (("channels", (16, 32)),)}
VARIANTS = tuple(Variant(variant_name(m, n), m, n, options=OPTIONS[m]) for m in ("mlp", "cnn") for n in NORMS)

SUITE = Suite(
    name="convergence",
    version="2.0.0",
    description="none / batch / layer / group / rms, MLP and CNN, on MNIST: steps to 97%, learning-curve area, "
                "loss smoothness",
    dataset="mnist-train",
    variants=VARIANTS,
    seeds=(0, 1, 2),
    train=TrainSpec(epochs=3, batch_size=64, lr=1e-3, optimizer="adam", target_accuracy=0.97, eval_every=10),
    evaluation=battery(("fashion-mnist", "uniform-noise")),
    # the official protocol: train on (a capped subset of) the official training images, test on (a capped,
    # stratified subset of) the official test images; 1,000 training images are held out for the held-out curve
    test_dataset="mnist",
    val_fraction=1 / 60,
    max_train=8000,
    max_test=1000,
    claims=(
        Claim("every normalization reaches 97% held-out accuracy in fewer steps than none", "steps_to_target",
              "lower"),
        Claim("every normalization has a larger area under the held-out accuracy curve than none", "aulc", "higher"),
        Claim("normalization makes the training loss smoother than none", "loss_roughness", "lower"),
    ),
    sizes=(reduced(("mlp-none", "mlp-layer", "cnn-none", "cnn-batch"), "uniform-noise"),),
)
