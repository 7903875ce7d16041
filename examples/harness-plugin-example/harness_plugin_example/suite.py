"""scalenorm-digits: ScaleNorm against LayerNorm and no normalization, on digits, under occlusion.

A suite plugin is a ``harness.specs.Suite`` object. It may name any registered plugin, its own
package's included: here the ``scale`` norm, the ``occlusion`` shift and the ``neg-entropy`` OOD
score of this package, beside the harness's built-ins (the ``cnn`` and ``mlp`` models, the
``digits`` and ``faces`` datasets, ``gaussian-noise``, ``msp``, FGSM and PGD).

Data: scikit-learn's 1,797 bundled 8x8 digits, a fixed stratified split. Variants: a CNN and an
MLP, each with no normalization (the baseline), LayerNorm and ScaleNorm; five seeds. Battery:
clean accuracy; occlusion and Gaussian noise at severities 1-5; OOD detection of faces and
textures by maximum softmax probability and by negative entropy; FGSM and PGD-10 at eps 0 to
0.1, with the sanity checks. ``reduced`` is what CI runs.
"""

from harness.specs import AttackSpec, Claim, EvalSpec, Size, Suite, TrainSpec, Variant, variant_name

NORMS = ("none", "layer", "scale")
MODELS = ("cnn", "mlp")
OPTIONS = {"cnn": (("channels", (16, 32)),), "mlp": ()}  # a small CNN: 8x8 digits need no more
EPS = (0.0, 0.05, 0.1)

SUITE = Suite(
    name="scalenorm-digits",
    version="0.1.0",
    description="ScaleNorm (harness-plugin-example) vs LayerNorm and none, CNN and MLP, on digits; occlusion, "
                "OOD by negative entropy",
    dataset="digits",
    variants=tuple(Variant(variant_name(m, n), m, n, options=OPTIONS[m]) for m in MODELS for n in NORMS),
    seeds=(0, 1, 2, 3, 4),
    train=TrainSpec(epochs=12, batch_size=32, lr=1e-3, optimizer="adam", target_accuracy=0.95),
    evaluation=EvalSpec(
        shifts=("occlusion", "gaussian-noise"),
        ood_sets=("faces", "textures"),
        ood_scores=("msp", "neg-entropy"),
        attacks=(AttackSpec("fgsm", EPS), AttackSpec("pgd-linf", EPS, (("restarts", 1), ("steps", 10)))),
    ),
    claims=(
        Claim("ScaleNorm costs no more than 2 points of clean accuracy against none", "accuracy", "not-lower",
              "clean", norms=("scale",), margin=0.02),
        Claim("with ScaleNorm, negative entropy tells faces from digits better than without normalization",
              "auroc", "higher", "ood:faces:score=neg-entropy", norms=("scale",)),
    ),
    sizes=(
        Size("reduced", "what CI runs: 2 seeds, mlp-none and mlp-scale, 2 epochs on 500 training and 200 test "
             "images, occlusion at severities 2 and 5, faces, eps 0 and 0.1",
             seeds=(0, 1), variants=("mlp-none", "mlp-scale"), epochs=2, max_train=500, max_test=200,
             shifts=("occlusion",), severities=(2, 5), ood_sets=("faces",), eps=(0.0, 0.1)),
    ),
)
