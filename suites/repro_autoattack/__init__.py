"""repro-autoattack: Croce & Hein 2020 (AutoAttack), APGD against PGD.

Published: APGD-CE, a step-size-free PGD with momentum, found lower robust accuracy than the PGD
attacks the defences' own papers reported for most of the models evaluated, and a stronger attack
never reported a higher robust accuracy.

Here: the quick start's CNN and MLP with none, batch and layer normalization on scikit-learn's
digits, six seeds, attacked by PGD-10 (L-inf, one random start) and APGD-CE with 100 steps at eps
0.02 to 0.2. Expected, for every variant: at every eps APGD-CE's robust accuracy is at or below
PGD-10's (within 1 point), and APGD-CE's robust accuracy does not rise from one eps to the next
(within 1 point).

``harness run repro-autoattack --size reduced`` is what CI runs.
"""

from harness.specs import AttackSpec, EvalSpec, Expected, Reference, Size, Suite, TrainSpec, Variant, variant_name

EPS = (0.02, 0.05, 0.1, 0.2)
NORMS = ("none", "batch", "layer")
OPTIONS = {"cnn": (("channels", (16, 32)),), "mlp": ()}
VARIANTS = tuple(Variant(variant_name(m, n), m, n, options=OPTIONS[m]) for m in ("cnn", "mlp") for n in NORMS)
PGD = (("restarts", 1), ("steps", 10))
APGD = (("steps", 100),)


def pgd_key(eps: float) -> str:
    return f"attack:pgd-linf:eps={eps},restarts=1,steps=10"


def apgd_key(eps: float) -> str:
    return f"attack:apgd-ce:eps={eps},steps=100"


REFERENCE = Reference(
    citation="Croce & Hein 2020, Reliable evaluation of adversarial robustness with an ensemble of diverse "
             "parameter-free attacks (ICML), Section 6",
    setting="APGD-CE and the AutoAttack ensemble against the PGD evaluations of published defences (CIFAR-10, "
            "CIFAR-100, MNIST, ImageNet; L-inf and L2)",
    finding="APGD-CE alone gave a robust accuracy at or below the reported PGD one for almost every model, and a "
            "stronger attack never gave a higher one",
    expected=tuple(
        e for v in VARIANTS for e in (
            *(Expected("accuracy", v.name, "not-higher", condition=apgd_key(eps), baseline_condition=pgd_key(eps),
                       margin=0.01) for eps in EPS),
            *(Expected("accuracy", v.name, "not-higher", condition=apgd_key(high), baseline_condition=apgd_key(low),
                       margin=0.01) for low, high in zip(EPS, EPS[1:], strict=False)),
        )),
    differences="undefended models (none of them adversarially trained) on 8x8 digits; PGD-10 with one random "
                "start as the reference attack rather than each defence's own PGD; \"at or below\" read within "
                "1 point",
)

SUITE = Suite(
    name="repro-autoattack",
    version="1.0.0",
    description="Croce & Hein 2020 on digits: APGD-CE (100 steps) against PGD-10 at eps 0.02 to 0.2",
    dataset="digits",
    variants=VARIANTS,
    seeds=tuple(range(6)),
    train=TrainSpec(epochs=12, batch_size=32, lr=1e-3, optimizer="adam", target_accuracy=0.95, eval_every=10),
    evaluation=EvalSpec(shifts=(), ood_sets=(), attacks=(AttackSpec("pgd-linf", EPS, PGD),
                                                         AttackSpec("apgd-ce", EPS, APGD))),
    references=(REFERENCE,),
    sizes=(Size("reduced", "what CI runs: 2 seeds, cnn-none and cnn-batch, 2 epochs, eps 0.05 and 0.1", seeds=(0, 1),
                variants=("cnn-none", "cnn-batch"), epochs=2, eps=(0.05, 0.1)),),
)
