"""Membership inference: does a trained model give away which examples it was trained on?

The loss-threshold attack (Yeom et al. 2018, "Privacy Risk in Machine Learning: Analyzing the Connection
to Overfitting"): a model's loss on an example it was trained on (a *member*) tends to be lower than on
one it never saw (a *non-member*), so ``-loss`` is a membership score, higher = more likely a member.
Each task scores, in its condition ``membership:loss`` (harness.specs.membership), a fixed sample of the
training examples (:func:`member_sample`: seeded by the suite's split seed, the same for every variant and
seed, so variants are paired) as ``score_in`` (members) against the held-out test examples as
``score_out`` (non-members). The metrics below are the two-sample metrics of harness.metrics
(``TWO_SAMPLE_METRICS``) on those arrays: AUROC, and the true-positive rate at a false-positive rate of at
most 1% and 0.1% (thresholds set on the non-members' scores alone, as Carlini et al. 2022 recommend:
an attack is judged by how many members it finds at a low rate of false alarms, not on average).

Lower is better for all of them (less leakage); an AUROC of 0.5 and a TPR equal to the FPR are chance.
"""

from __future__ import annotations

from functools import partial

import numpy as np

from harness import metrics as m
from harness.metricspec import Metric

# the loss-threshold attack's metrics (level "example": resampled over members, non-members and seeds)
MEMBERSHIP_AUROC = Metric(
    "membership_auroc", "membership AUROC", "membership AUROC of the loss-threshold attack: the chance that a "
    "training example (member) scores a lower loss than a held-out one (non-member), ties half", False,
    (0.0, 1.0), "privacy", "AUROC", note="0.5 is chance: no leakage", fn=m.auroc)
MEMBERSHIP_TPR_1PCT = Metric(
    "membership_tpr_1pct", "membership TPR @ 1% FPR", "members found by the loss-threshold attack at a "
    "false-positive rate of at most 1% (threshold on the non-members' losses), %", False, (0.0, 1.0), "privacy",
    "percentage points", 100.0, 1, note="chance is 1%", fn=partial(m.tpr_at_fpr, fpr=0.01))
MEMBERSHIP_TPR_01PCT = Metric(
    "membership_tpr_01pct", "membership TPR @ 0.1% FPR", "members found by the loss-threshold attack at a "
    "false-positive rate of at most 0.1%, %; with n non-members that point rests on n/1000 of them, and below "
    "FPR 1/n it is the share of members whose loss is below every non-member's", False, (0.0, 1.0), "privacy",
    "percentage points", 100.0, 2, note="chance is 0.1%", fn=partial(m.tpr_at_fpr, fpr=0.001))

LOSS_METRICS = ("membership_auroc", "membership_tpr_1pct", "membership_tpr_01pct")


def member_sample(n_train: int, n_test: int, split_seed: int) -> np.ndarray:
    """Indices (k,) int64, ascending, of the training examples a membership condition scores as members:
    k = min(n_train, n_test) of the ``n_train`` drawn without replacement from ``split_seed``'s
    ``membership`` stream, so every variant and seed of a suite scores the same members (paired), and as
    many as there are non-members (the test examples), or all the training examples when they are fewer."""
    if n_train < 1 or n_test < 1:
        raise ValueError(f"a membership condition needs training and test examples; got {n_train} and {n_test}")
    from harness.seeding import derive_seed

    rng = np.random.default_rng(derive_seed(split_seed, "membership"))
    return np.sort(rng.choice(n_train, size=min(n_train, n_test), replace=False)).astype(np.int64)


def summary(arrays: dict[str, np.ndarray]) -> dict[str, float | int]:
    """The summary stored with a membership cell: the loss-threshold attack's metrics on its ``score_in``
    (members) and ``score_out`` (non-members), and how many of each; {"not_applicable": True} for none."""
    if not arrays:
        return {"not_applicable": True}
    s_in, s_out = arrays["score_in"], arrays["score_out"]
    from harness.registry import metrics

    out: dict[str, float | int] = {"n_members": len(s_in), "n_non_members": len(s_out)}
    for name in LOSS_METRICS:
        fn = metrics.get(name).fn
        assert fn is not None
        out[name] = float(fn(s_in, s_out))
    return out


# --- the membership design and the likelihood-ratio attack (LiRA) ---------------------------------------
#
# A suite with ``membership_design=True`` trains each seed's models on a random half of the training split
# (the pool; :func:`half`), the same half for every variant of the seed, so every pool example is a member of
# some models and not of others. Its membership condition stores, per model, the logit-scaled confidence of
# every pool example (``phi``, :func:`logit_confidence`) and the model's half (``in_mask``). LiRA (Carlini et
# al. 2022, "Membership Inference Attacks From First Principles") then attacks each seed's model (the target)
# with the other seeds' models of the same variant as its shadow models: per example, phi under the shadows
# that trained on it (IN) and under those that did not (OUT) is fitted with a Gaussian each, and the target's
# phi is scored by the likelihood ratio (online) or by how far it lies above the OUT Gaussian (offline).
# Harness.reports.estimates.lira turns each target seed's attack into one value per seed (level "seed").


def half(n_pool: int, seed: int) -> np.ndarray:
    """(n_pool,) bool: the pool examples a seed's models train on under the membership design, n_pool // 2 of
    them drawn from the seed's own ``membership-half`` stream (every variant of the seed trains on the same
    half, so variants stay paired; each seed's half is independent of the others')."""
    from harness.seeding import derive_seed

    if n_pool < 2:
        raise ValueError(f"the membership design needs a pool of at least 2 training examples; got {n_pool}")
    rng = np.random.default_rng(derive_seed(seed, "membership-half"))
    mask = np.zeros(n_pool, dtype=bool)
    mask[rng.permutation(n_pool)[:n_pool // 2]] = True
    return mask


def logit_confidence(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """phi = log(p_y / (1 - p_y)) of (N, K) logits and (N,) int labels, (N,) float64: the model's softmax
    confidence in the true class on the logit scale (Carlini et al. 2022, where it is close to Gaussian
    across models), computed as z_y - logsumexp(z_k, k != y), which neither overflows nor rounds a
    confidence near 1 to infinity."""
    z = np.asarray(logits, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64)
    rows = np.arange(len(z))
    z_y = z[rows, y]
    others = z.copy()
    others[rows, y] = -np.inf
    top = others.max(axis=1)
    return z_y - (top + np.log(np.exp(others - top[:, None]).sum(axis=1)))


SMALL = 64  # below this many shadow models, LiRA fits one global variance (Carlini et al. 2022, Section VI-A)


def _fit(values: np.ndarray, mask: np.ndarray, global_variance: bool) -> tuple[np.ndarray, np.ndarray]:
    """Per example, the mean (N,) and sd (N,) of ``values`` (S', N) where ``mask`` (S', N); an example with
    no such value takes the mean over every masked value; with ``global_variance`` (or fewer than two
    values) the sd is the sd pooled over all examples (each example's values about its own mean)."""
    count = mask.sum(axis=0)
    total = np.where(mask, values, 0.0).sum(axis=0)
    fallback = values[mask].mean() if mask.any() else 0.0
    mean = np.where(count > 0, total / np.maximum(count, 1), fallback)
    dev2 = np.where(mask, (values - mean) ** 2, 0.0)
    pooled = np.sqrt(dev2.sum() / max(int(count.sum()) - int((count > 0).sum()), 1))
    own = np.sqrt(dev2.sum(axis=0) / np.maximum(count - 1, 1))
    sd = np.full(values.shape[1], pooled) if global_variance else np.where(count > 1, own, pooled)
    return mean, np.maximum(sd, 1e-12)  # a constant phi (a model that saturates) must not divide by zero


def lira_scores(phi: np.ndarray, in_mask: np.ndarray, target: int,
                global_variance: bool | None = None) -> tuple[np.ndarray, np.ndarray]:
    """LiRA's membership scores of model ``target``'s examples: (online (N,), offline (N,)) float64, higher =
    more likely a member of the target's training half.

    ``phi`` (S, N) is every model's logit-scaled confidence (:func:`logit_confidence`) on the N pool
    examples, ``in_mask`` (S, N) which examples each model trained on; the S - 1 other models are the
    shadows. Online: log N(phi_t; mu_in, sd_in) - log N(phi_t; mu_out, sd_out), the Gaussians fitted per
    example to the IN and the OUT shadows' phi. Offline (OUT shadows only): the one-sided test
    log P(Z <= phi_t), Z ~ N(mu_out, sd_out): a member's phi lies high in the OUT distribution.
    ``global_variance`` (None: when there are fewer than :data:`SMALL` shadows, as the paper recommends)
    replaces each example's sd by one pooled over all examples."""
    from scipy.special import log_ndtr

    phi, in_mask = np.asarray(phi, dtype=np.float64), np.asarray(in_mask, dtype=bool)
    if phi.shape != in_mask.shape or phi.ndim != 2 or phi.shape[0] < 2:
        raise ValueError(f"phi {phi.shape} and in_mask {in_mask.shape} must be one (S, N) shape with S >= 2 models")
    shadows = np.arange(len(phi)) != target
    glob = (shadows.sum() < SMALL) if global_variance is None else global_variance
    mu_in, sd_in = _fit(phi[shadows], in_mask[shadows], glob)
    mu_out, sd_out = _fit(phi[shadows], ~in_mask[shadows], glob)
    x = phi[target]

    def log_pdf(mu: np.ndarray, sd: np.ndarray) -> np.ndarray:
        return -0.5 * ((x - mu) / sd) ** 2 - np.log(sd)

    return log_pdf(mu_in, sd_in) - log_pdf(mu_out, sd_out), log_ndtr((x - mu_out) / sd_out)


LIRA_METRICS = ("lira_online_auroc", "lira_online_tpr_1pct", "lira_online_tpr_01pct",
                "lira_offline_auroc", "lira_offline_tpr_1pct", "lira_offline_tpr_01pct")


def lira_metrics(phi: np.ndarray, in_mask: np.ndarray, global_variance: bool | None = None) -> dict[str, np.ndarray]:
    """Each model of ``phi`` / ``in_mask`` (S, N) attacked as the target of :func:`lira_scores`: {metric in
    :data:`LIRA_METRICS`: (S,)}, the target's members (its half) against its non-members (the rest of the
    pool). A target whose half is empty or the whole pool gets NaN."""
    in_mask = np.asarray(in_mask, dtype=bool)
    out: dict[str, list[float]] = {k: [] for k in LIRA_METRICS}
    for t in range(len(phi)):
        member = in_mask[t]
        scores = dict(zip(("online", "offline"), lira_scores(phi, in_mask, t, global_variance), strict=True))
        for name in LIRA_METRICS:
            _, mode, what = name.split("_", 2)
            s = scores[mode]
            if member.all() or not member.any():
                out[name].append(float("nan"))
            elif what == "auroc":
                out[name].append(m.auroc(s[member], s[~member]))
            else:
                out[name].append(m.tpr_at_fpr(s[member], s[~member], 0.01 if what == "tpr_1pct" else 0.001))
    return {k: np.array(v) for k, v in out.items()}


_SEEDS = ("each seed's model attacked with the other seeds' models of its variant as shadows (membership design), "
          "its half of the pool against the rest")
LIRA_ONLINE_AUROC = Metric("lira_online_auroc", "LiRA online AUROC", f"AUROC of LiRA online, {_SEEDS}", False,
                           (0.0, 1.0), "privacy", "AUROC", level="seed", note="0.5 is chance")
LIRA_ONLINE_TPR_1PCT = Metric("lira_online_tpr_1pct", "LiRA online TPR @ 1% FPR", f"members found by LiRA online "
                              f"at a false-positive rate of at most 1%, {_SEEDS}, %", False, (0.0, 1.0), "privacy",
                              "percentage points", 100.0, 1, level="seed", note="chance is 1%")
LIRA_ONLINE_TPR_01PCT = Metric("lira_online_tpr_01pct", "LiRA online TPR @ 0.1% FPR", f"members found by LiRA "
                               f"online at a false-positive rate of at most 0.1%, {_SEEDS}, %", False, (0.0, 1.0),
                               "privacy", "percentage points", 100.0, 2, level="seed", note="chance is 0.1%")
LIRA_OFFLINE_AUROC = Metric("lira_offline_auroc", "LiRA offline AUROC", f"AUROC of LiRA offline (OUT shadows "
                            f"only), {_SEEDS}", False, (0.0, 1.0), "privacy", "AUROC", level="seed",
                            note="0.5 is chance")
LIRA_OFFLINE_TPR_1PCT = Metric("lira_offline_tpr_1pct", "LiRA offline TPR @ 1% FPR", f"members found by LiRA "
                               f"offline at a false-positive rate of at most 1%, {_SEEDS}, %", False, (0.0, 1.0),
                               "privacy", "percentage points", 100.0, 1, level="seed", note="chance is 1%")
LIRA_OFFLINE_TPR_01PCT = Metric("lira_offline_tpr_01pct", "LiRA offline TPR @ 0.1% FPR", f"members found by LiRA "
                                f"offline at a false-positive rate of at most 0.1%, {_SEEDS}, %", False, (0.0, 1.0),
                                "privacy", "percentage points", 100.0, 2, level="seed", note="chance is 0.1%")
