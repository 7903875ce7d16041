"""quickstart: what BatchNorm and LayerNorm do to a small CNN and an MLP on real digits.

Data: scikit-learn's handwritten digits (1,797 real 8x8 images, 10 classes), a fixed stratified
split (25% test, 10% validation). Variants: ``cnn`` and ``mlp``, each with the normalization slot
filled by ``none``, ``batch`` and ``layer``; ten seeds shared by every variant (same init stream,
same data order): the claims' family has 16 comparisons, and the exact sign-flip tests,
Holm-adjusted over it, need at least 10 seeds to reach p < 0.05 (``harness show quickstart`` says
so), so ten let a large enough effect settle. Battery: clean test accuracy; Gaussian noise,
Gaussian blur and contrast at severities 1-5; OOD detection by maximum softmax probability against
faces, textures and photo patches; FGSM and PGD-10 (L-inf, random start) at eps 0 to 0.2. Runs in
under a minute on two idle CPU cores (about 50 s; ``--batch-seeds`` trains the seeds of each
architecture as one computation, a few seconds less).
"""

from harness.specs import AttackSpec, Claim, EvalSpec, Suite, TrainSpec, Variant, variant_name

NORMS = ("none", "batch", "layer")
MODELS = ("cnn", "mlp")
EPS = (0.0, 0.02, 0.05, 0.1, 0.2)
# 16 and 32 channels: plenty for 8x8 digits (~98% clean accuracy), and a quarter of the
# default CNN's compute, which keeps the whole quick start well inside a minute on two cores
OPTIONS = {"cnn": (("channels", (16, 32)),), "mlp": ()}

SUITE = Suite(
    name="quickstart",
    version="1.0.0",
    description="BatchNorm and LayerNorm vs none, CNN and MLP, on scikit-learn digits (8x8)",
    dataset="digits",
    variants=tuple(Variant(variant_name(m, n), m, n, options=OPTIONS[m]) for m in MODELS for n in NORMS),
    seeds=tuple(range(10)),
    train=TrainSpec(epochs=12, batch_size=32, lr=1e-3, optimizer="adam", target_accuracy=0.95, eval_every=10),
    evaluation=EvalSpec(
        shifts=("gaussian-noise", "gaussian-blur", "contrast"),
        ood_sets=("faces", "textures", "photos"),
        ood_scores=("msp",),
        attacks=(
            AttackSpec("fgsm", EPS),
            AttackSpec("pgd-linf", EPS, (("restarts", 1), ("steps", 10))),
            AttackSpec("apgd-ce", EPS, (("steps", 20),)),
        ),
    ),
    claims=(
        Claim("batch and layer reach 95% held-out accuracy in fewer steps than none", "steps_to_target", "lower",
              norms=("batch", "layer")),
        Claim("no normalization makes a model more than 2 points more robust at eps 0.1 (worst case over attacks)",
              "accuracy", "not-higher", "attack:worst-case:eps=0.1,*", margin=0.02),
        # "fast convergence implies lower energy consumption": the energy of the steps to the target, paired
        Claim("batch and layer reach 95% held-out accuracy with less training energy than none", "energy_to_target",
              "lower", norms=("batch", "layer")),
        # the pilot (this suite, 10 seeds): every normalized variant's loss-threshold AUROC within +0.024 of its
        # baseline's (interval up to +0.046, mlp-batch); 0.05 is a leak worth reporting (docs/methods.md)
        Claim("normalization does not increase membership leakage (loss-threshold AUROC) by more than 0.05",
              "membership_auroc", "not-higher", "membership:loss", margin=0.05),
    ),
)
