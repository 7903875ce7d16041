"""Membership inference (harness.membership): the loss-threshold attack's metrics against sklearn, on
tied scores and under resampling weights; a planted case with a real model that memorises its members
(AUROC near 1) and one that never saw them (AUROC near 0.5); the condition in every task's battery."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score, roc_curve

from harness.membership import LOSS_METRICS, member_sample
from harness.metrics import TWO_SAMPLE_METRICS, tpr_at_fpr, tpr_at_fpr_weighted
from harness.registry import metrics as registered


def _sklearn_tpr_at_fpr(score_in: np.ndarray, score_out: np.ndarray, fpr: float) -> float:
    """The highest TPR of sklearn's ROC curve (every threshold kept) at an FPR of at most ``fpr``."""
    labels = np.r_[np.ones(score_in.size), np.zeros(score_out.size)]
    f, t, _ = roc_curve(labels, np.r_[score_in, score_out], drop_intermediate=False)
    return float(t[f <= fpr].max())


def _scores(seed: int, tied: bool) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    n, m = rng.integers(1, 400, size=2)
    if tied:  # few distinct values: ties within and across the classes
        return rng.integers(0, 6, n).astype(float), rng.integers(0, 5, m).astype(float)
    return rng.normal(1.0, 1.0, n), rng.normal(0.0, 1.0, m)


@pytest.mark.parametrize("tied", [False, True])
@pytest.mark.parametrize("seed", range(20))
def test_tpr_at_low_fpr_is_sklearns_best_roc_point_at_that_fpr(seed: int, tied: bool) -> None:
    score_in, score_out = _scores(seed, tied)
    for fpr in (0.001, 0.01, 0.1, 0.5):
        assert tpr_at_fpr(score_in, score_out, fpr) == _sklearn_tpr_at_fpr(score_in, score_out, fpr), fpr


def test_tpr_at_fpr_by_hand_ties_are_not_flagged_and_below_one_over_m_it_is_the_share_above_every_negative() -> None:
    # 10 negatives: 1% FPR allows none of them above the threshold, so the threshold is the highest negative, 5
    score_out = np.array([0, 1, 1, 2, 2, 3, 3, 4, 4, 5], dtype=float)
    score_in = np.array([5, 5, 6, 7], dtype=float)  # two tie with the highest negative: not flagged
    assert tpr_at_fpr(score_in, score_out, 0.01) == 0.5
    assert tpr_at_fpr(score_in, score_out, 0.001) == 0.5
    # 10% allows one negative above: the threshold drops to 4 (two negatives tie there: both are below it)
    assert tpr_at_fpr(score_in, score_out, 0.1) == 1.0
    assert tpr_at_fpr(score_in, score_out, 0.15) == 1.0
    assert tpr_at_fpr([4.0, 4.5], score_out, 0.1) == 0.5  # 4 ties with the threshold, 4.5 is above it
    with pytest.raises(ValueError, match="fpr must be in"):
        tpr_at_fpr(score_in, score_out, 0.0)


def test_weighted_tpr_at_fpr_equals_the_metric_on_repeated_examples() -> None:
    score_in, score_out = _scores(4, tied=True)
    rng = np.random.default_rng(1)
    w_in, w_out = rng.integers(0, 4, (25, score_in.size)), rng.integers(0, 4, (25, score_out.size))
    w_in[:, 0] += 1
    w_out[:, 0] += 1
    for fpr in (0.01, 0.1, 0.3):
        values = tpr_at_fpr_weighted(score_in, score_out, w_in, w_out, fpr)
        for b in range(25):
            rep_in, rep_out = np.repeat(score_in, w_in[b]), np.repeat(score_out, w_out[b])
            assert values[b] == pytest.approx(_sklearn_tpr_at_fpr(rep_in, rep_out, fpr), abs=1e-12), (fpr, b)


def test_the_membership_metrics_are_registered_two_sample_metrics_with_their_facts() -> None:
    score_in, score_out = _scores(7, tied=False)
    for name in LOSS_METRICS:
        m = registered.get(name)
        assert name in TWO_SAMPLE_METRICS and m.group == "privacy" and m.bounds == (0.0, 1.0)
        assert not m.higher_is_better and m.level == "example" and m.compared
    assert registered.get("membership_auroc").fn(score_in, score_out) == pytest.approx(
        roc_auc_score(np.r_[np.ones(score_in.size), np.zeros(score_out.size)], np.r_[score_in, score_out]))
    assert registered.get("membership_tpr_1pct").fn(score_in, score_out) == _sklearn_tpr_at_fpr(
        score_in, score_out, 0.01)
    assert registered.get("membership_tpr_01pct").fn(score_in, score_out) == _sklearn_tpr_at_fpr(
        score_in, score_out, 0.001)
    assert "n/1000" in registered.get("membership_tpr_01pct").text


def test_members_are_a_fixed_sample_as_many_as_the_non_members() -> None:
    a, b = member_sample(1000, 300, 0), member_sample(1000, 300, 0)
    np.testing.assert_array_equal(a, b)
    assert len(a) == 300 and len(set(a.tolist())) == 300 and a.min() >= 0 and a.max() < 1000
    assert not np.array_equal(a, member_sample(1000, 300, 1))  # another split seed, another sample
    np.testing.assert_array_equal(member_sample(50, 300, 0), np.arange(50))  # fewer training examples: all


def _memoriser(x: np.ndarray, y: np.ndarray, seed: int, steps: int = 300):  # type: ignore[no-untyped-def]
    """A small MLP (harness.models) fitted to (x, y) until it has memorised them."""
    import torch

    from harness.models import build_model
    from harness.seeding import torch_generator

    torch.manual_seed(seed)
    model = build_model("mlp", "none", x.shape[1:], 10, {}, None, torch_generator(seed, "init"))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(xt), yt).backward()
        opt.step()
    return model.eval()


def test_planted_a_model_that_memorised_random_labels_leaks_and_one_that_never_saw_them_does_not() -> None:
    import torch

    from harness.specs import membership
    from harness.tasks.classify.evaluation import evaluate

    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    # three disjoint sets of 8x8 noise images with random labels: members, non-members, and a stand-in
    x = rng.random((3, 64, 1, 8, 8), dtype=np.float32)
    y = rng.integers(0, 10, (3, 64)).astype(np.int64)
    (x_mem, x_non, x_other), (y_mem, y_non, y_other) = x, y

    def leakage(model: torch.nn.Module) -> tuple[float, float]:
        [(cond, arrays)] = evaluate(model, x_non, y_non, {}, [membership()], 0, 0, fit_data=(x_mem, y_mem))
        assert cond == membership() and len(arrays["score_in"]) == 64 and len(arrays["score_out"]) == 64
        return (registered.get("membership_auroc").fn(arrays["score_in"], arrays["score_out"]),
                registered.get("membership_tpr_1pct").fn(arrays["score_in"], arrays["score_out"]))

    leaky_auroc, leaky_tpr = leakage(_memoriser(x_mem, y_mem, 0))
    blind_auroc, blind_tpr = leakage(_memoriser(x_other, y_other, 0))  # the same recipe, never saw the members
    assert leaky_auroc > 0.95 and leaky_tpr > 0.5  # memorised: members' losses sit below every non-member's
    # chance: under no leakage AUROC has sd ~0.05 with 64 + 64 examples
    assert 0.35 < blind_auroc < 0.65 and blind_tpr < 0.2


def test_every_task_appends_the_membership_condition_when_its_suite_switches_it_on() -> None:
    from harness.registry import suites
    from harness.specs import membership
    from harness.tasks import task_of

    for name in ("quickstart", "spam", "moby-lm", "diffusion"):
        suite = suites.get(name)
        keys = [c.key for c in suite.conditions()]
        assert membership().key in keys, name
        off = dataclasses.replace(suite, evaluation=dataclasses.replace(suite.evaluation, membership=False))
        assert membership().key not in [c.key for c in off.conditions()], name
        assert task_of(suite).metrics(membership()) == LOSS_METRICS
        assert set(LOSS_METRICS) <= set(task_of(suite).compared(membership()))


# --- the membership design and LiRA ------------------------------------------------------------------------


def _planted(global_variance: bool | None) -> tuple[np.ndarray, np.ndarray]:
    """Per target seed, LiRA online's TPR at 0.1% FPR on planted members and on the other members."""
    from harness.membership import lira_scores

    rng = np.random.default_rng(0)
    n_models, n, planted = 16, 4000, 400
    in_mask = rng.random((n_models, n)) < 0.5
    # every example has its own typical confidence; the planted ones are memorised: far higher when trained on
    phi = rng.normal(0.0, 1.0, (n_models, n)) + rng.normal(0.0, 0.5, n)
    phi[:, :planted] += np.where(in_mask[:, :planted], 8.0, 0.0)
    is_planted = np.arange(n) < planted
    found = []
    for t in range(n_models):
        online, _ = lira_scores(phi, in_mask, t, global_variance)
        member = in_mask[t]
        found.append([tpr_at_fpr(online[member & which], online[~member], 0.001)
                      for which in (is_planted, ~is_planted)])
    return tuple(np.array(found).T)  # type: ignore[return-value]


def test_lira_online_finds_the_planted_members_at_low_fpr_and_the_others_at_chance() -> None:
    on_planted, on_rest = _planted(None)  # 15 shadows: one global variance, as the paper recommends
    assert on_planted.mean() > 0.95 and on_planted.min() > 0.85
    assert on_rest.mean() < 0.005  # at an FPR of 0.1%, the unplanted members are found at about that rate


def test_lira_offline_scores_a_high_phi_against_the_out_shadows_and_online_its_ratio() -> None:
    from scipy.stats import norm

    from harness.membership import lira_scores

    # 4 models, 2 examples; target 0. Shadows 1-3: example 0 in models 1 and 2, example 1 in model 3 only
    phi = np.array([[2.0, 0.5], [3.0, 1.0], [1.0, 0.0], [0.0, 2.0]])
    in_mask = np.array([[True, False], [True, False], [True, False], [False, True]])
    online, offline = lira_scores(phi, in_mask, 0, global_variance=True)
    # IN: example 0 {3, 1} mean 2, example 1 {2} mean 2; OUT: example 0 {0} mean 0, example 1 {1, 0} mean 0.5
    # pooled sd about each example's own mean: IN sqrt((1 + 1 + 0) / (3 - 2)), OUT sqrt((0 + .25 + .25) / (3 - 2))
    sd_in, sd_out = np.sqrt(2.0), np.sqrt(0.5)
    want_online = norm.logpdf(phi[0], [2.0, 2.0], sd_in) - norm.logpdf(phi[0], [0.0, 0.5], sd_out)
    np.testing.assert_allclose(online, want_online, rtol=1e-12)
    np.testing.assert_allclose(offline, norm.logcdf(phi[0], [0.0, 0.5], sd_out), rtol=1e-12)


def test_logit_confidence_is_stable_log_odds_of_the_true_class() -> None:
    from scipy.special import logit, softmax

    from harness.membership import logit_confidence

    rng = np.random.default_rng(0)
    z, y = rng.normal(0, 3, (50, 7)), rng.integers(0, 7, 50)
    np.testing.assert_allclose(logit_confidence(z, y), logit(softmax(z, axis=1)[np.arange(50), y]), rtol=1e-9)
    # a confidence that rounds to 1 in float64 still has finite, ordered log odds
    assert np.isfinite(logit_confidence(np.array([[1000.0, 0, 0], [900.0, 0, 0]]), np.array([0, 0]))).all()
    assert logit_confidence(np.array([[1000.0, 0, 0]]), np.array([0]))[0] > 999


def test_the_halves_are_the_seeds_own_the_same_for_every_variant() -> None:
    from harness.membership import half

    a = half(1001, 3)
    assert a.sum() == 500 and np.array_equal(a, half(1001, 3)) and not np.array_equal(a, half(1001, 4))
    # over 16 seeds each example is in about half of the models
    share = np.mean([half(1000, s) for s in range(16)], axis=0)
    assert 0.4 < share.mean() < 0.6 and share.min() < share.max()


def test_the_design_enters_the_training_key_refuses_batching_and_needs_membership_and_two_seeds() -> None:
    from harness.batched import variant_reason
    from harness.errors import ConfigError
    from harness.planning import train_spec
    from harness.registry import suites

    suite = suites.get("leakage")
    plain = dataclasses.replace(suite, membership_design=False)
    v = suite.variants[0]
    assert train_spec(suite, v, 0, "cpu")["membership_design"] is True
    assert "membership_design" not in train_spec(plain, v, 0, "cpu")  # other suites' keys stay as they were
    assert "batched" not in train_spec(suite, v, 0, "cpu", batched=True)
    assert "own half" in (variant_reason("classify", v, True) or "")
    assert variant_reason("classify", v) is None
    with pytest.raises(ConfigError, match="membership design"):
        dataclasses.replace(suite, seeds=(0,))
    with pytest.raises(ConfigError, match="membership design"):
        dataclasses.replace(suite, evaluation=dataclasses.replace(suite.evaluation, membership=False))
    from harness.specs import Suite

    assert Suite.from_dict(suite.to_dict()).membership_design is True


def test_lira_on_real_models_each_trained_on_its_half_of_a_memorised_pool() -> None:
    import torch

    from harness.membership import half, lira_metrics, logit_confidence

    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    x = rng.random((128, 1, 8, 8), dtype=np.float32)
    y = rng.integers(0, 10, 128).astype(np.int64)  # random labels: nothing to learn but the examples themselves
    masks = np.stack([half(128, s) for s in range(8)])
    phi = []
    for s, mask in enumerate(masks):
        model = _memoriser(x[mask], y[mask], s, steps=200)
        with torch.no_grad():
            phi.append(logit_confidence(model(torch.from_numpy(x)).double().numpy(), y))
    got = lira_metrics(np.stack(phi), masks)
    assert got["lira_online_auroc"].min() > 0.9 and got["lira_offline_auroc"].min() > 0.8
    # a model never trained on the pool: the same attack on shuffled halves finds nothing
    shuffled = lira_metrics(np.stack(phi), np.stack([half(128, s + 100) for s in range(8)]))
    assert 0.3 < shuffled["lira_online_auroc"].mean() < 0.7


@pytest.mark.slow
def test_the_leakage_suite_reduced_reports_both_attacks_in_report_and_results_json(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import json

    from harness.cli import main

    run_dir = tmp_path / "run"
    assert main(["run", "leakage", "--size", "reduced", "--run-dir", str(run_dir), "--no-progress", "--quiet"]) == 0
    md = (run_dir / "report.md").read_text()
    assert "## Membership inference (data leakage)" in md and "LiRA online TPR @ 0.1% FPR" in md
    results = json.loads((run_dir / "results.json").read_text())
    text = json.dumps(results)
    for name in (*LOSS_METRICS, "lira_online_tpr_1pct", "lira_offline_tpr_01pct"):
        assert f'"{name}"' in text, name
    assert '"membership"' in text
