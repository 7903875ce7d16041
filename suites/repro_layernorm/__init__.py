"""repro-layernorm: Ba, Kiros & Hinton 2016 (Layer Normalization), robustness to the batch size.

Published (Figure 6): on permutation-invariant MNIST, a 784-1000-1000-10 MLP with layer
normalization trained about as well at batch size 4 as at 128, while the same MLP with batch
normalization did markedly worse at batch size 4 (layer normalization is applied to the hidden
layers, not to the output layer).

Here: the harness's MLP with two hidden layers of 1,000 (the normalization slot after each hidden
linear layer, none on the output), batch or layer normalization, trained on 8,000 of MNIST's
official training images (``mnist-train``; 1,000 more held out for the held-out curve) and tested
on 1,000 of its official test images (``mnist``), at batch sizes 4 and 128, Adam at 1e-3 for two
epochs at either batch size, eight seeds; BatchNorm evaluated with its running statistics. The
data root must hold MNIST (``harness data fetch`` or ``python scripts/offline_data.py --root DIR``).

``harness run repro-layernorm --size reduced`` is what CI runs.
"""

from harness.specs import EvalSpec, Expected, Reference, Size, Suite, TrainSpec, Variant, sweep, variant_name

BATCH_SIZES = (128, 4)
BASE = tuple(Variant(variant_name("mlp", n), "mlp", n, options=(("hidden", (1000, 1000)),)) for n in ("batch", "layer"))


def name(norm: str, batch: int) -> str:
    return f"mlp-{norm}@batch_size={batch}"


REFERENCE = Reference(
    citation="Ba, Kiros & Hinton 2016, Layer Normalization (arXiv:1607.06450), Figure 6",
    setting="permutation-invariant MNIST, a 784-1000-1000-10 MLP, batch sizes 128 and 4",
    finding="layer normalization was robust to the batch size (similar test error at 4 and 128), while batch "
            "normalization's test error was clearly worse at batch size 4",
    expected=(
        Expected("accuracy", name("batch", 4), "lower", baseline=name("batch", 128)),
        Expected("accuracy", name("layer", 4), "not-lower", baseline=name("layer", 128), margin=0.01),
        Expected("accuracy", name("layer", 4), "higher", baseline=name("batch", 4)),
    ),
    differences="8,000 training images instead of 55,000-60,000 and two epochs instead of training to convergence; "
                "Adam at 1e-3 with no schedule (the published figure's optimizer settings are not restated here); "
                "tested on 1,000 of the 10,000 test images; \"robust\" is read as within 1 point",
)

SUITE = Suite(
    name="repro-layernorm",
    version="1.0.0",
    description="Ba, Kiros & Hinton 2016 on MNIST: a 784-1000-1000-10 MLP with batch or layer norm at batch 4 and 128",
    dataset="mnist-train",
    test_dataset="mnist",
    val_fraction=1 / 60,
    max_train=8000,
    max_test=1000,
    variants=sweep(BASE, batch_size=BATCH_SIZES),
    seeds=tuple(range(8)),
    train=TrainSpec(epochs=2, batch_size=128, lr=1e-3, optimizer="adam", target_accuracy=0.95, eval_every=100),
    evaluation=EvalSpec(shifts=(), ood_sets=(), attacks=()),
    baseline_norm="batch",
    references=(REFERENCE,),
    sizes=(Size("reduced", "what CI runs: 2 seeds, 2,000 training and 200 test images, 1 epoch", seeds=(0, 1),
                epochs=1, max_train=2000, max_test=200),),
)
