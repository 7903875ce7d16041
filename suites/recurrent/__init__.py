"""recurrent: layer normalization in the recurrent networks it was introduced for.

Data: MNIST as in the ``convergence`` suite, each image read as a sequence of its 28 rows (28
features per time step). Models: ``lstm`` and ``gru`` with 64 hidden units, the cells written so
the slot normalizes the input and the recurrent gate pre-activations separately, and the LSTM's
cell state (Ba, Kiros & Hinton 2016). Variants: ``lstm-none``, ``lstm-layer``, ``lstm-rms``,
``gru-none``, ``gru-layer``. Adam at 1e-3, batch 64, three epochs (375 steps), target 90%.
Battery: as ``convergence``.

Claims tested:

* layer normalization reaches 90% held-out accuracy in fewer steps than none, for the LSTM and
  the GRU (the claim of the paper that introduced it);
* layer normalization gives a larger area under the learning curve than none;
* layer normalization makes training smoother (lower loss roughness).

``harness run recurrent --size reduced`` is what CI runs.
"""

from harness.specs import Claim, Suite, TrainSpec, Variant, variant_name
from harness.suites.common import battery, reduced

VARIANTS = tuple(Variant(variant_name(m, n), m, n) for m, norms in (("lstm", ("none", "layer", "rms")),
                                                                    ("gru", ("none", "layer"))) for n in norms)

SUITE = Suite(
    name="recurrent",
    version="2.0.0",
    description="LSTM and GRU over MNIST rows with and without layer normalization (and RMSNorm for the LSTM)",
    dataset="mnist-train",
    variants=VARIANTS,
    seeds=(0, 1, 2),
    train=TrainSpec(epochs=3, batch_size=64, lr=1e-3, optimizer="adam", target_accuracy=0.90, eval_every=10),
    evaluation=battery(("fashion-mnist", "uniform-noise")),
    # the official protocol: train on (a capped subset of) the official training images, test on (a capped,
    # stratified subset of) the official test images; 1,000 training images are held out for the held-out curve
    test_dataset="mnist",
    val_fraction=1 / 60,
    max_train=8000,
    max_test=1000,
    claims=(
        Claim("layer normalization reaches 90% held-out accuracy in fewer steps than none (LSTM and GRU)",
              "steps_to_target", "lower", norms=("layer",)),
        Claim("layer normalization gives a larger area under the learning curve than none", "aulc", "higher",
              norms=("layer",)),
        Claim("layer normalization makes the training loss smoother than none", "loss_roughness", "lower",
              norms=("layer",)),
    ),
    sizes=(reduced(("lstm-none", "lstm-layer", "gru-none", "gru-layer"), "uniform-noise", max_train=1500,
                   max_test=150),),
)
