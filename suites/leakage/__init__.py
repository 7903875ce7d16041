"""leakage: does normalization change how much a model gives away about its training data?

The membership design (harness.membership): each seed's models train on a random half of the training
part of scikit-learn's digits (the pool: 65% of the 1,797 images), the same half for every variant of the
seed, so every pool image is in the training data of some models and not of others. Each model is then
attacked by the loss-threshold attack (Yeom et al. 2018: its half against the test images) and, across
seeds, by the likelihood-ratio attack (LiRA, Carlini et al. 2022), online and offline, with the variant's
other 15 seeds as shadow models: TPR at 1% and 0.1% FPR and AUROC, one value per seed, paired by seed
between variants. Variants: the MLP with no normalization, BatchNorm and LayerNorm, trained long (40
epochs) so that it fits its half closely, as a model that leaks would. Beside the membership condition
the battery is small: Gaussian noise at severity 3, faces as an OOD set, FGSM and PGD-10 at eps 0.1 (with
the sanity checks). ``--batch-seeds`` trains these models one at a time
(each seed has its own half, which one stack of models cannot share).
"""

from harness.specs import AttackSpec, Claim, EvalSpec, Size, Suite, TrainSpec, Variant, variant_name

NORMS = ("none", "batch", "layer")

SUITE = Suite(
    name="leakage",
    version="1.0.0",
    description="membership inference (loss threshold, LiRA online and offline) on MLPs with and without "
                "normalization, scikit-learn digits, each seed on a random half",
    dataset="digits",
    variants=tuple(Variant(variant_name("mlp", n), "mlp", n) for n in NORMS),
    seeds=tuple(range(16)),
    train=TrainSpec(epochs=40, batch_size=32, lr=1e-3, optimizer="adam", target_accuracy=0.9, eval_every=20),
    evaluation=EvalSpec(shifts=("gaussian-noise",), severities=(3,), ood_sets=("faces",), cost=False,
                        attacks=(AttackSpec("fgsm", (0.0, 0.1)), AttackSpec("pgd-linf", (0.0, 0.1), (("steps", 10),)))),
    membership_design=True,
    claims=(
        Claim("normalization does not increase membership leakage (loss-threshold AUROC) by more than 0.05",
              "membership_auroc", "not-higher", "membership:loss", margin=0.05),
    ),
    sizes=(Size("reduced", "4 seeds, 2 epochs: what CI runs", seeds=(0, 1, 2, 3), epochs=2),),
)
