"""spam: spam or ham, from the bytes of real mail, with and without normalization in transformers and RNNs.

Data (``harness data fetch text``): the SpamAssassin public corpus's first collection, ``easy-ham-1``
(2,500 ham) and ``spam-1`` (500 spam), split by label into training (65%), validation (10%) and test (25%)
parts. A model reads a message's From, To, Subject, Date and Content-Type headers, a blank line and its body,
as its first 128 UTF-8 bytes (harness.tasks.text.data). Models: a byte-level transformer (width 64, 4 heads, 2
blocks, mean-pooled) with no normalization, pre-LN, post-LN (compared with no normalization) and pre-RMSNorm,
and an LSTM and a GRU (byte embedding 32, hidden 128) without and with layer normalization on the gate
pre-activations and the cell (Ba, Kiros & Hinton 2016). Adam, batch 32, 10 epochs (600 steps), a warm-up of
60 steps (post-LN needs one, Xiong et al. 2020), at a learning rate per family: 2e-3 for the transformers and
1e-2 for the recurrent nets (each pair compares two variants of one family, trained with one recipe); target 95%
held-out accuracy (ham alone is 83%). 8 seeds, the fewest with which the claims' 5 comparisons can settle.

Battery: clean held-out mail; the text corruptions at severities 1-5 (typos by insertion, deletion,
substitution and swap, case flips, whitespace, header noise); the later collection (``spam-later``:
``easy-ham-2`` and ``spam-2``) and the hard ham as natural shifts; State of the Union paragraphs and
Moby-Dick passages as OOD text, scored by maximum softmax probability, energy and Mahalanobis distance on
the pooled features. Attacks (harness.textattacks): FGSM and PGD-10 on the byte embeddings at eps 0.05,
0.1 and 0.2 of each model's embedding scale (L-inf), and 1, 2 and 4 character edits chosen by HotFlip and at
random (its baseline), twice: flips only, and flips, insertions and deletions (``insert_delete``, the edits
counted as the Levenshtein distance); with the sanity checks that read them (HotFlip against random edits of
the same kind).

``harness run spam --size reduced`` is what CI runs.

Calibration (pilots on one thread each, this 2-core machine shared with other work). The first one-seed
pilot of the full size (4 epochs at 1e-3, target 97%, flips up to 8) took 19 min 11 s, most of it the
recurrent nets' attacks (about 480 s per LSTM), and no variant reached 97% (clean accuracy: pre-LN and RMSNorm
95.2%, none and post-LN 90.6%, LSTM 87.8% and 83.4% with layer norm, GRU 86.4% and 85.8%).

* Cost: the recurrent nets' steps read their input gates through one unbind (harness.textmodels), not a slice
  per step, whose backward wrote a zero tensor the size of every step's gates at each step; the same numbers
  (losses, gradients and logits bitwise equal) at a fifth of the training step (LSTM, batch 32: 0.27 -> 0.06
  s) and a tenth of an attack's gradient (500 texts: LSTM with layer norm 8.9 -> 0.66 s, GRU with layer norm
  6.6 -> 0.52 s). One model's whole battery then takes about 90 s, recurrent or transformer (LSTM with layer
  norm 87 s, post-LN 89 s: the corruptions 18-20 s, PGD-10 31 s, HotFlip 1-8 flips 24 s of which 8 flips
  12 s); 8 flips were dropped (HotFlip and random flips up to 4), which leaves about 78 s.
* Recipe: training pilots over 12 epochs (seed 0; transformers at 2e-3, recurrent nets at 1e-2). 95% was first
  reached at step 720 (the last; none), 190 (pre-LN), 320 (post-LN), 200 (RMSNorm), 420 (LSTM), 570 (LSTM with
  layer norm), 190 (GRU), 180 (GRU with layer norm). No transformer reached 97% (best 96.7%), and at 97% only
  the LSTM (450) and the two GRUs (240, 450) did: 97% is out of the transformers' reach at this size, so the
  target is 95%. A second seed (10 epochs) reached 95% at 580 (LSTM with layer norm), 160 and 240 (GRU, GRU
  with layer norm) and never with the LSTM (best 94.7%) or post-LN (best 285 of 300, 95.0%, which the held-out
  accuracy, a float32 mean, reads as 0.94999: a run needs 286 of the 300 validation messages).

Full size, one run (``harness run spam --run-dir /tmp/spam-full``, two workers on this 2-core machine while
other work kept its load at 3-6): 76 min 7 s, of which the 64 trainings 48 min 50 s; the flip attacks' 512
cells, failed by a code change made during the run, were redone by the same command in 9 min 25 s.
Verdicts, from the 8 seeds' training records (steps to 95%, a run that never reached it counted at its 600-step budget):

* "every normalized transformer reaches 95% in fewer steps": inconclusive. Pre-LN (236 steps, 8 of 8 seeds
  reached 95%) and RMSNorm (240, 8 of 8) each support it (-364 [-406, -321] and -360 [-444, -276] steps
  against none, p = 0.039 Holm-adjusted over the claims' 5 comparisons); none reached it in 1 seed of 8.
  Post-LN reached it in 5 of 8 seeds: -156 [-270, -42] steps, one-sided p = 0.031, 0.25 after Holm's
  adjustment; about 13 seeds would settle it.
* "layer normalization makes the LSTM and the GRU reach 95% in fewer steps": inconclusive, and near no
  difference: the LSTM with layer norm reached 95% in 7 seeds of 8 against 4 without (-61 [-161, +39] steps),
  the GRU in 181 [152, 210] steps against 172 [149, 196] (+9 [-25, +42]; both 8 of 8). About 250 seeds would
  settle it at these differences: on spam bytes at 1e-2 layer norm does not speed up the recurrent nets as
  it does on MNIST rows (the ``recurrent`` suite).
"""

from harness.specs import AttackSpec, Claim, EvalSpec, Size, Suite, TrainSpec, Variant
from harness.tasks.text import TextOptions

TEXT_SHIFTS = ("typo-insert", "typo-delete", "typo-substitute", "typo-swap", "case-flip", "whitespace",
               "header-noise")
RNN = (("embed_dim", 32), ("hidden", 128))
EMBED_EPS = (0.0, 0.05, 0.1, 0.2)  # in units of each model's embedding scale (harness.textattacks)
FLIPS = (0, 1, 2, 4)  # characters edited
EDITS = (("insert_delete", True),)  # flips, insertions and deletions (without it: flips only)

# Per-family learning rates (training pilots: the transformers reach 95% at 2e-3, the recurrent nets at 1e-2, and
# 5e-3 suits neither). Every comparison is within a family, so both sides of a pair train with the same recipe; a
# variant's own lr is no sweep (harness.reports.training.sweep_families needs two points of one family).
TF = (("lr", 2e-3),)
RNN_LR = (("lr", 1e-2),)

VARIANTS = (  # each normalized variant is compared with the same model without normalization (compare_to)
    Variant("tf-none", "text-transformer", "none", train=TF),
    Variant("tf-layer", "text-transformer", "layer", train=TF, compare_to="tf-none"),  # pre-LN, the model's default
    Variant("tf-layer-post", "text-transformer", "layer", options=(("placement", "post"),), train=TF,
            compare_to="tf-none"),
    Variant("tf-rms", "text-transformer", "rms", train=TF, compare_to="tf-none"),
    Variant("lstm-none", "text-lstm", "none", options=RNN, train=RNN_LR),
    Variant("lstm-layer", "text-lstm", "layer", options=RNN, train=RNN_LR, compare_to="lstm-none"),
    Variant("gru-none", "text-gru", "none", options=RNN, train=RNN_LR),
    Variant("gru-layer", "text-gru", "layer", options=RNN, train=RNN_LR, compare_to="gru-none"),
)

SUITE = Suite(
    name="spam",
    version="2.0.0",
    description="spam or ham from the bytes of real mail: transformers (pre-LN, post-LN, RMSNorm, none) and "
                "LSTM / GRU with and without layer normalization",
    dataset="spam",
    task="text",
    task_options=TextOptions(length=128, warmup_steps=60),
    variants=VARIANTS,
    seeds=tuple(range(8)),  # the fewest with which the claims' family can settle (harness show spam)
    train=TrainSpec(epochs=10, batch_size=32, lr=2e-3, optimizer="adam", target_accuracy=0.95, eval_every=10),
    evaluation=EvalSpec(shifts=TEXT_SHIFTS, natural_shifts=("spam-later", "hard-ham"),
                        ood_sets=("sotu", "moby-dick"), ood_scores=("msp", "energy", "mahalanobis"), checks=False,
                        attacks=(AttackSpec("fgsm", EMBED_EPS), AttackSpec("pgd-linf", EMBED_EPS, (("steps", 10),)),
                                 AttackSpec("hotflip", FLIPS), AttackSpec("random-flip", FLIPS),
                                 AttackSpec("hotflip", FLIPS, EDITS), AttackSpec("random-flip", FLIPS, EDITS))),
    test_fraction=0.25,
    val_fraction=0.1,
    max_test=500,
    claims=(
        Claim("layer normalization makes the LSTM and the GRU reach 95% held-out accuracy in fewer steps",
              "steps_to_target", "lower", variants=("lstm-layer", "gru-layer")),
        Claim("every normalized transformer reaches 95% held-out accuracy in fewer steps than the one without",
              "steps_to_target", "lower", variants=("tf-layer", "tf-layer-post", "tf-rms")),
    ),
    sizes=(Size("reduced", "what CI runs: 2 seeds, tf-none, tf-layer, lstm-none, lstm-layer, 600 training and "
                "200 test messages, 64-byte inputs, one corruption at one severity, both natural shifts, one "
                "OOD set, every attack at eps 0 and 1 (one embedding scale; one flip)",
                seeds=(0, 1), variants=("tf-none", "tf-layer", "lstm-none", "lstm-layer"), epochs=1,
                max_train=600, max_test=200, shifts=("typo-swap",), severities=(3,), ood_sets=("sotu",),
                eps=(0.0, 1.0), task_options=(("length", 64), ("warmup_steps", 10))),),
)
