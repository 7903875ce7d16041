"""moby-lm: character-level language models of Moby-Dick, with and without normalization and warm-up.

Data (``harness data fetch text``): the book, cut by character position into a training part (the first
85%), a validation part (the next 5%: the held-out curve and the training target) and a test part (the
last 10%), none overlapping; each part as consecutive windows of 65 characters, read as 64 input bytes and
the 64 next bytes they predict (harness.tasks.lm.data). Training windows are capped at 6,400 (drawn once
from the training part), test windows at 500, and the other text sets at 500 texts each.

Models (harness.tasks.lm: the causal text models): a byte-level transformer (width 64, 4 heads, 2 blocks)
with no normalization, pre-RMSNorm, pre-LN and post-LN, and an LSTM and a GRU (byte embedding 32, hidden
128) without and with layer normalization on the gate pre-activations and the cell. Adam, batch 32, one pass
over the capped windows (200 steps). The transformers with layer normalization form a learning-rate sweep
(3e-3, 1e-2, 3e-2) in three families: ``tf-pre`` (pre-LN, no warm-up), ``tf-post`` (post-LN, no warm-up) and
``tf-post-warmup`` (post-LN, the learning rate rising linearly over the first 50 steps). ``tf-post`` is
compared with ``tf-post-warmup`` and ``tf-pre`` with ``tf-post`` at each rate; ``tf-none`` and ``tf-rms`` and
the recurrent nets train at 3e-3 (each normalized net compared with the same net without). A run converges
when the validation windows' mean bits per character falls to 3.5 without diverging (a non-finite loss or
one four times the first step's).

Battery per model: bits per character of the test windows (clean), of the test windows through four text
corruptions (typo insertion, substitution and swap, case flips) at severities 1, 3 and 5, of State of the
Union passages (``sotu``: another register and era, a natural shift); and perplexity as an OOD score (the
negative bits per character of a window) of the test windows against State of the Union passages and mail
(``spam``). A language model has no attacks in this battery.

Claims tested (Xiong et al. 2020, "On Layer Normalization in the Transformer Architecture"; Ba, Kiros & Hinton
2016, "Layer Normalization"):

* without warm-up, post-LN converges at a smaller share of the learning-rate grid than with it;
* pre-LN without warm-up converges at a larger share of the grid than post-LN without warm-up;
* layer normalization makes the LSTM and the GRU reach the target bits per character in fewer steps.

Eight seeds: the claims' family has four comparisons (eight one-sided tests, Holm), and the exact sign-flip
test needs 1 / 2^S * 8 < 0.05 before any of them can be supported.

``harness run moby-lm --size reduced`` is what CI runs (about 15 s).

Measured (version 1.0.0, eight seeds, ``harness run moby-lm``): 38 min 33 s wall on two cores that other jobs
shared throughout (load average about 5; a transformer step took 62-88 ms, against 26-32 ms in the first
seed's runs, so an idle two-core machine should need about a third of that, which has not been timed).
Verdicts: layer
normalization speeds up the recurrent nets (supported: 78 fewer steps to 3.5 bpc for the LSTM, 142 -> 65, and
38 fewer for the GRU, 118 -> 80, Holm p 0.031 each); pre-LN converging at a larger share of the grid than
post-LN is contradicted (it converged at 2 of 24 (seed, rate) points against post-LN's 14: at this depth,
2 blocks, pre-LN learns more slowly at every rate, 3.52 bpc against 3.38 at 3e-3, and never reaches 3.5 at
1e-2 or 3e-2); warm-up is inconclusive (post-LN without it converged at 14 of 24 points, with it at 17: at
3e-2 post-LN without warm-up sits at the byte-frequency plateau, 4.67 bpc, in every seed and warm-up lifts 3
seeds of 8 off it, but at 3e-3 the 50-step warm-up costs 2 seeds the target). No run diverged by the
loss-ratio rule: the failure at high rates is a plateau, not a blow-up. Perplexity separates the book from mail
(AUROC 0.98-1.00) but not from the State of the Union passages (0.30-0.57: plainer prose scores as well as
the book's own held-out text).
"""

from harness.specs import Claim, EvalSpec, Size, Suite, TrainSpec, Variant
from harness.tasks.lm import LMOptions

TF = "text-transformer"
RNN = (("embed_dim", 32), ("hidden", 128))
RATES = (3e-3, 1e-2, 3e-2)
WARMUP = 50
SHIFTS = ("typo-insert", "typo-substitute", "typo-swap", "case-flip")


def _at(family: str, norm: str, options: tuple[tuple[str, object], ...], lr: float, compare_to: str = "") -> Variant:
    """The transformer of ``family`` at learning rate ``lr``, compared with ``compare_to``'s point at the same rate."""
    point = f"@lr={lr:g}"
    return Variant(family + point, TF, norm, options=options, train=(("lr", lr),),
                   compare_to=compare_to + point if compare_to else "")


POST = (("placement", "post"),)
VARIANTS = (
    Variant("tf-none", TF, "none"),
    Variant("tf-rms", TF, "rms", compare_to="tf-none"),  # pre-RMSNorm
    *(_at("tf-pre", "layer", (), lr, "tf-post") for lr in RATES),  # pre-LN, the model's default placement
    *(_at("tf-post", "layer", POST, lr, "tf-post-warmup") for lr in RATES),
    *(_at("tf-post-warmup", "layer", (*POST, ("warmup_steps", WARMUP)), lr) for lr in RATES),
    Variant("lstm-none", "text-lstm", "none", options=RNN),
    Variant("lstm-layer", "text-lstm", "layer", options=RNN, compare_to="lstm-none"),
    Variant("gru-none", "text-gru", "none", options=RNN),
    Variant("gru-layer", "text-gru", "layer", options=RNN, compare_to="gru-none"),
)

SUITE = Suite(
    name="moby-lm",
    version="1.0.0",
    description="character-level language models of Moby-Dick: transformers (pre-LN, post-LN with and without "
                "warm-up, RMSNorm, none) over a learning-rate sweep, and LSTM / GRU with and without layer norm",
    dataset="moby-dick",
    task="lm",
    task_options=LMOptions(length=64, warmup_steps=0, target_bpc=3.5),
    variants=VARIANTS,
    seeds=tuple(range(8)),
    train=TrainSpec(epochs=1, batch_size=32, lr=3e-3, optimizer="adam", eval_every=20, divergence_factor=4.0),
    evaluation=EvalSpec(shifts=SHIFTS, severities=(1, 3, 5), natural_shifts=("sotu",), ood_sets=("sotu", "spam"),
                        ood_scores=("perplexity",), checks=False, batch_size=256),
    test_fraction=0.1,
    val_fraction=0.05,
    max_train=6400,
    max_test=500,
    claims=(
        Claim("without warm-up, post-LN converges at a smaller share of the learning-rate grid than with it",
              "converged_fraction", "lower", "sweep:lr", variants=("tf-post",)),
        Claim("pre-LN without warm-up converges at a larger share of the learning-rate grid than post-LN without it",
              "converged_fraction", "higher", "sweep:lr", variants=("tf-pre",)),
        Claim("layer normalization makes the LSTM and the GRU reach the target bits per character in fewer steps",
              "steps_to_target", "lower", variants=("lstm-layer", "gru-layer")),
    ),
    sizes=(Size("reduced", "what CI runs: 2 seeds, the three layer-normalized transformer families at lr 3e-3 and "
                "3e-2, the LSTM with and without layer norm, 640 training and 100 test windows of 33 characters "
                "(20 steps), one corruption at one severity, the State of the Union passages",
                seeds=(0, 1), variants=tuple(f"{f}@lr={lr:g}" for f in ("tf-pre", "tf-post", "tf-post-warmup")
                                             for lr in (3e-3, 3e-2)) + ("lstm-none", "lstm-layer"),
                max_train=640, max_test=100, shifts=("typo-swap",), severities=(3,), ood_sets=("sotu",),
                task_options=(("length", 32), ("target_bpc", 4.5))),),
)
