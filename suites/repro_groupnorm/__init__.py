"""repro-groupnorm: Wu & He 2018 (Group Normalization), BatchNorm against GroupNorm as the batch shrinks.

Published: ResNet-50 on ImageNet, 8 GPUs, SGD with momentum and the linear learning-rate scaling
rule (0.1 for 32 images per GPU, 0.1 N / 32 for N), BatchNorm statistics per GPU. BatchNorm's
top-1 error rose from 23.6% at 32 images per GPU to 34.7% at 2, while GroupNorm's stayed at
24.0-24.2% (24.1% at 2: 10.6 points lower than BatchNorm).

Here: the quick start's CNN (16 and 32 channels) on scikit-learn's digits with BatchNorm and
GroupNorm in the slot, trained with SGD (momentum 0.9, weight decay 1e-4) at batch sizes 32, 16, 8,
4 and 2 with the learning rate scaled linearly (0.1 at 32, as published), the same number of epochs
at every batch size (so a smaller batch takes proportionally more steps, as in the paper), eight
seeds. Evaluated on the clean test split with BatchNorm's running statistics. GroupNorm is the
baseline of the paired comparisons: every BatchNorm point is compared with GroupNorm at the same
batch size.

``harness run repro-groupnorm --size reduced`` is what CI runs.
"""

from harness.specs import EvalSpec, Expected, Reference, Size, Suite, TrainSpec, Variant

BATCH_SIZES = (32, 16, 8, 4, 2)
BASE_LR, BASE_BATCH = 0.1, 32  # the linear scaling rule: lr = 0.1 * batch / 32


def name(norm: str, batch: int) -> str:
    return f"cnn-{norm}@batch_size={batch}"


def _point(norm: str, batch: int) -> Variant:
    """The CNN with ``norm`` trained at ``batch`` with the linearly scaled learning rate. The name
    gives the batch size alone (the learning rate follows from it), so BatchNorm names its GroupNorm
    baseline at the same batch size explicitly."""
    return Variant(name(norm, batch), "cnn", norm, options=(("channels", (16, 32)),),
                   train=(("batch_size", batch), ("lr", BASE_LR * batch / BASE_BATCH)),
                   compare_to=name("group", batch) if norm == "batch" else "")


VARIANTS = tuple(_point(n, b) for n in ("batch", "group") for b in BATCH_SIZES)

REFERENCE = Reference(
    citation="Wu & He 2018, Group Normalization (ECCV), Figure 1 and Table 3",
    setting="ResNet-50 on ImageNet, 8 GPUs, 32 to 2 images per GPU, SGD with momentum, learning rate 0.1 N / 32",
    finding="BatchNorm's top-1 error rose from 23.6% (32 per GPU) to 34.7% (2 per GPU); GroupNorm's stayed at "
            "24.0-24.2%, 10.6 points below BatchNorm's at 2 per GPU",
    expected=(
        Expected("accuracy", name("batch", 2), "lower", baseline=name("batch", 32)),
        Expected("accuracy", name("group", 2), "not-lower", baseline=name("group", 32), margin=0.01),
        Expected("accuracy", name("group", 2), "higher", baseline=name("batch", 2)),
    ),
    differences="a 2-layer CNN on 8x8 digits (1,168 training images) for 6 epochs instead of ResNet-50 on ImageNet "
                "for 100; one process instead of 8 GPUs, so BatchNorm's statistics come from the whole batch; weight "
                "decay 1e-4 as published, but no learning-rate decay and no augmentation; GroupNorm with the "
                "harness's group count (8 groups where the channels allow, harness.models) instead of 32; \"nearly "
                "flat\" is read as within 1 point",
)

SUITE = Suite(
    name="repro-groupnorm",
    version="1.0.0",
    description="Wu & He 2018 on digits: BatchNorm vs GroupNorm at batch sizes 32 to 2, linearly scaled SGD",
    dataset="digits",
    variants=VARIANTS,
    seeds=tuple(range(8)),
    train=TrainSpec(epochs=6, batch_size=32, lr=0.1, optimizer="sgd", momentum=0.9, weight_decay=1e-4,
                    target_accuracy=0.95, eval_every=50),
    evaluation=EvalSpec(shifts=(), ood_sets=(), attacks=()),
    baseline_norm="group",
    references=(REFERENCE,),
    sizes=(Size("reduced", "what CI runs: 2 seeds, batch sizes 32 and 2, 1 epoch", seeds=(0, 1),
                variants=tuple(name(n, b) for n in ("batch", "group") for b in (32, 2)), epochs=1),),
)
