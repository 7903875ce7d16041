"""Tests for harness.metricspec (each registered metric's contract is in tests/test_contracts.py):
every metric is one specification that the report reads; its function stays inside its stated
range and reaches the ends it claims; its per-example form averages to it; and every estimate and
paired difference a report makes of it contains its own value, values at and beyond 1 included
(a Brier score lies in [0, 2])."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import harness.registry as reg
from harness.errors import PluginError
from harness.metricspec import BRIER, Metric
from harness.registry import Registry
from harness.reports.build import Report, build_report
from harness.specs import DiffusionSpec, EvalSpec, Suite, TrainSpec, Variant, sweep
from harness.stats import INTERVALS
from harness.store import Cell, Store
from harness.tasks.classify.evaluation import outcomes as _outcome

METRICS = reg.metrics.names()


def test_the_metrics_registry_takes_identifier_names_only() -> None:
    r: Registry[Metric] = Registry("metrics", "test", names=reg._IDENTIFIER)
    r._discovered = True  # no entry points: only what this test registers
    r.register("steps_to_target", BRIER)
    with pytest.raises(PluginError, match="'steps-to-target' .* is not lowercase-with-underscores"):
        r.register("steps-to-target", BRIER)


@pytest.mark.parametrize(("change", "message"), [
    ({"bounds": (1.0, 1.0)}, "bounds (1.0, 1.0) are not (low, high) with low < high"),
    ({"group": "speed"}, "group 'speed' is not one of"),
    ({"level": "batch"}, "level 'batch' is not one of example, seed"),
    ({"scale": 0.0}, "scale 0.0 is not a positive number"),
    ({"text": "Brier (lower is better)"}, "text says its direction"),
    ({"unit": ""}, "name, title, text and unit are required"),
])
def test_a_metric_with_a_bad_field_is_refused_and_says_which(change: dict[str, Any], message: str) -> None:
    fields = {k: getattr(BRIER, k) for k in BRIER.__dataclass_fields__}
    with pytest.raises(ValueError, match="^metric 'brier': .*" + message.replace("(", r"\(").replace(")", r"\)")
                       .replace(".", r"\.")):
        Metric(**{**fields, **change})


# --- the functions: inside their bounds, and at the ends they claim ---------------------------------


def _extremes(spec: Metric) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    """(best, worst) inputs for a metric's function, by the form of its arguments."""
    if spec.group == "accuracy":
        return (np.ones(8, dtype=bool),), (np.zeros(8, dtype=bool),)
    if spec.group in ("ood", "privacy"):  # every ID (member) score above every OOD (non-member) score, and the reverse
        apart = (np.linspace(1, 2, 20), np.linspace(-2, -1, 10)), (np.linspace(-2, -1, 20), np.linspace(1, 2, 10))
        return apart[::-1] if spec.group == "privacy" else apart  # members found: the worst case
    if spec.name == "ece":  # sure and right; sure and wrong
        return (np.ones(8), np.ones(8, dtype=bool)), (np.ones(8), np.zeros(8, dtype=bool))
    labels = np.array([0, 1, 2, 0])
    return (np.eye(3)[labels], labels), (np.eye(3)[(labels + 1) % 3], labels)  # all mass on the true / a wrong class


@pytest.mark.parametrize("name", [n for n in METRICS if reg.metrics.get(n).fn is not None])
def test_each_function_stays_in_its_bounds_and_reaches_the_ends(name: str) -> None:
    spec = reg.metrics.get(name)
    assert spec.fn is not None
    good, bad = (spec.fn(*args) for args in _extremes(spec))
    low, high = spec.bounds
    assert low <= min(good, bad) and max(good, bad) <= high
    best, worst = (high, low) if spec.higher_is_better else (low, high)
    assert good == pytest.approx(best)
    if name.startswith("aupr"):
        # every positive ranked below every negative: the i-th positive found has precision i / (negatives + i)
        pos, neg = (20, 10) if name == "aupr_in" else (10, 20)
        assert bad == pytest.approx(np.mean([i / (neg + i) for i in range(1, pos + 1)]))
    else:  # the worst case reaches a finite end (ECE 1, Brier 2, accuracy 0, AUROC 0, FPR 1); NLL is clipped
        assert bad == pytest.approx(worst) if math.isfinite(worst) else bad == pytest.approx(-math.log(1e-12))


def test_brier_reaches_two_and_lies_between_its_bounds_on_random_predictions() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 4, (500, 10))
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    labels = rng.integers(0, 10, 500)
    value = BRIER.fn(probs, labels)  # type: ignore[misc]
    assert 1.0 < value < 2.0  # confident and mostly wrong: above 1, which a [0, 1] range would cut off
    assert BRIER.fn(np.eye(10)[(labels + 1) % 10], labels) == 2.0  # type: ignore[misc]


@pytest.mark.parametrize("name", [n for n in METRICS if reg.metrics.get(n).per_example is not None
                                  and reg.metrics.get(n).fn is not None])
def test_the_stored_per_example_array_averages_to_the_metric(name: str) -> None:
    """The evaluation stores per-example arrays (harness.tasks.classify.evaluation); the report averages the one the
    metric names: that mean must be the metric's function of the same predictions."""
    spec = reg.metrics.get(name)
    assert spec.fn is not None and spec.per_example is not None
    gen = torch.Generator().manual_seed(0)
    logits, y = torch.randn(300, 10, generator=gen) * 3, torch.randint(0, 10, (300,), generator=gen)
    out = _outcome(logits, y)
    probs = logits.double().softmax(1).numpy()
    args = (out["correct"],) if spec.group == "accuracy" else (probs, y.numpy())
    assert float(np.mean(out[spec.per_example])) == pytest.approx(spec.fn(*args), rel=1e-9)


# --- every interval of a report contains its value ---------------------------------------------------

N, SEEDS = 300, (0, 1, 2)


def _eval_arrays(kind: str, rng: np.random.Generator, strength: float, denoise: bool,
                 lm: bool = False) -> dict[str, np.ndarray]:
    """Per-example records of one condition, as the evaluation stores them. ``strength`` in [0, 1]
    moves them from a confident, mostly wrong classifier (Brier near 2) to a good one."""
    if kind == "ood":
        return {"score_in": rng.normal(strength, 1, N), "score_out": rng.normal(0, 1, N // 2)}
    if kind == "membership":  # members' negative losses against the test examples'
        out = {"score_in": -rng.gamma(2.0, 1.0 - 0.5 * strength, N // 2), "score_out": -rng.gamma(2.0, 1.0, N)}
        if not (denoise or lm):  # and, as under the membership design, a pool's phi and this seed's half (LiRA)
            in_mask = rng.permutation(N) < N // 2
            out |= {"phi": rng.normal(0, 1, N) + 3 * strength * in_mask, "in_mask": in_mask}
        return out
    if kind == "cost":  # per repeat: seconds, examples per second, bytes; the counts repeated
        r = 6
        return {"latency_b1": rng.gamma(2.0, 1e-4 * (2 - strength), r), "latency_batch": rng.gamma(2.0, 1e-3, r),
                "throughput": rng.gamma(2.0, 1e5, r), "peak_memory": np.full(r, 2.0 ** 20 * (1 + strength)),
                "parameters": np.full(r, 1000.0), "flops": np.full(r, 5e4), "folded": np.zeros(r),
                "threads": np.ones(1)}
    if denoise:
        return {"denoise_loss": rng.gamma(2.0, 1.5 - strength, N)}
    if lm:  # a language model's bits per character of each window
        return {"bpc": rng.gamma(4.0, 2.0 - strength, N)}
    correct = rng.random(N) < strength
    confidence = np.clip(rng.normal(0.95, 0.04, N), 0.1, 1.0)
    p_true = np.where(correct, confidence, (1 - confidence) * rng.random(N))
    # a confident wrong prediction: p_pred = confidence on a wrong class, p_true small
    brier = np.where(correct, (1 - p_true) ** 2 + (1 - p_true) ** 2, confidence ** 2 + (1 - p_true) ** 2)
    return {"correct": correct, "confidence": confidence, "loss": -np.log(np.maximum(p_true, 1e-12)),
            "brier": np.minimum(brier, 2.0)}


def _write(run_dir: Path, suite: Suite) -> Path:
    """A run directory with records drawn per (variant, seed): the baseline (norm none) is a poor,
    confident classifier, the others good ones, so values sit near both ends of each range
    and differences reach beyond 1 (a Brier difference of about -1.5)."""
    denoise, lm = suite.task == "denoise", suite.task == "lm"
    with Store(run_dir) as store:
        store.put_meta("suite", suite.to_dict())
        store.put_meta("provenance", {"harness": "test", "git": "abc", "device": "cpu", "command": ["harness"]})
        for i, v in enumerate(suite.variants):
            for seed in suite.seeds:
                rng = np.random.default_rng([i, seed])
                strength = 0.1 if v.norm == "none" else 0.85 + 0.1 * rng.random()
                for cond in (c for c in suite.conditions() if c.kind != "check"):
                    key = f"e-{v.name}-{cond.key}-{seed}"
                    if cond.kind == "samples":
                        store.put(Cell(key, "eval", v.name, seed, {}, {
                            "sample_fid": float(rng.gamma(2.0, 3.0 - 2 * strength)), "n_samples": 16,
                            "class_tv": float(np.clip(1 - strength + rng.normal(0, 0.05), 0, 1))},
                            condition=cond.to_dict()))
                        continue
                    worse = strength * (0.5 if cond.kind == "shift" else 1.0)  # errors rise under corruption
                    store.put(Cell(key, "eval", v.name, seed, {}, {}, condition=cond.to_dict(),
                                   arrays=_eval_arrays(cond.kind, rng, worse, denoise, lm)))
                reached = v.norm != "none" or seed != 0  # censored runs: steps to target at its budget
                result = {"n_steps": 200, "budget_steps": 200, "diverged": False, "diverged_at": None,
                          "steps_to_target": int(rng.integers(20, 190)) if reached else None,
                          "epochs_to_target": float(rng.uniform(1, 5)), "seconds_to_target": float(rng.uniform(1, 9)),
                          "seconds_per_step": float(rng.uniform(1e-3, 5e-3)), "train_seconds": 1.0,
                          "loss_roughness": float(rng.uniform(0.01, 0.3)), "grad_norm_median": float(rng.uniform(0, 3)),
                          "grad_norm_max": float(rng.uniform(3, 30)), "peak_memory_bytes": float(rng.uniform(1e6, 9e6)),
                          # what the steps cost (harness.energy): FLOPs counted, CPU time, a declared energy
                          "step_flops": 10 ** 6, "train_flops": 200 * 10 ** 6, "cpu_seconds": float(rng.uniform(1, 2)),
                          "energy": float(rng.uniform(8, 16)),
                          **({"flops_to_target": 10 ** 6 * 100, "energy_to_target": float(rng.uniform(1, 8))}
                             if reached else {"flops_to_target": None, "energy_to_target": None}),
                          **({"final_val_loss": float(rng.uniform(0.1, 0.3)),
                              "mean_val_loss": float(rng.uniform(0.2, 0.5))} if denoise else
                             {"final_val_bpc": float(rng.uniform(2.0, 4.0)),
                              "mean_val_bpc": float(rng.uniform(3.0, 6.0))} if lm else
                             {"final_val_accuracy": strength, "aulc": float(strength * rng.uniform(0.8, 1.0))})}
                store.put(Cell(f"t-{v.name}-{seed}", "train", v.name, seed, {}, result))
    return run_dir


def _contains(value: float, low: float | None, high: float | None) -> bool:
    return low is None or high is None or (math.isnan(low) and math.isnan(high)) or low <= value <= high


def _reported(report: Report) -> set[str]:
    """Every metric the report gives a number of, each checked for containing its own value."""
    seen: set[str] = set()
    for row in report.estimates:
        e, spec = row.estimate, reg.metrics.get(row.metric)
        assert spec.bounds[0] <= e.value <= spec.bounds[1], (row.metric, e.value)
        assert _contains(e.value, e.ci_low, e.ci_high), (row.variant, row.condition.key, row.metric, e)
        seen.add(row.metric)
    for row in report.comparisons:
        c, spec = row.comparison, reg.metrics.get(row.metric)
        assert row.better == spec.better
        assert _contains(c.diff, c.ci_low, c.ci_high), (row.variant, row.condition, row.metric, c)
        seen.add(row.metric)
    for summary in report.training_summary:
        for name in reg.metrics.names():
            e = getattr(summary, name, None)
            if e is not None:
                assert _contains(e.value, e.ci_low, e.ci_high), (summary.variant, name, e)
                seen.add(name)
    for s in report.sweeps:
        for p in s.points:
            if p.final_val_accuracy is not None:
                assert _contains(p.final_val_accuracy.value, p.final_val_accuracy.ci_low, p.final_val_accuracy.ci_high)
    return seen


def _classify(name: str = "classify") -> Suite:
    variants = sweep(tuple(Variant(f"mlp-{n}", "mlp", n) for n in ("none", "batch", "layer")), lr=(0.01, 0.1))
    return Suite(name, "0.1", "records near both ends of every range", "digits", variants, SEEDS, TrainSpec(),
                 EvalSpec(shifts=("gaussian-noise", "contrast"), severities=(1, 5), ood_sets=("uniform-noise",)))


def _denoise() -> Suite:
    variants = tuple(Variant(f"unet-{n}", "unet", n) for n in ("none", "group"))
    return Suite("denoise", "0.1", "a denoiser's records", "digits", variants, SEEDS, TrainSpec(), task="denoise",
                 task_options=DiffusionSpec(target_loss=0.2),
                 evaluation=EvalSpec(shifts=("gaussian-noise",), severities=(3,), ood_sets=("uniform-noise",),
                                     ood_scores=(), checks=False))


def _lm() -> Suite:
    from harness.tasks.lm import LMOptions

    variants = (Variant("tf-none", "text-transformer", "none"),
                Variant("tf-layer", "text-transformer", "layer", compare_to="tf-none"))
    return Suite("lm", "0.1", "a language model's records", "moby-dick", variants, SEEDS, TrainSpec(), task="lm",
                 task_options=LMOptions(), test_fraction=0.1, val_fraction=0.05,
                 evaluation=EvalSpec(shifts=("typo-swap",), severities=(3,), natural_shifts=("sotu",),
                                     ood_sets=("spam",), ood_scores=("perplexity",), checks=False))


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ...]:
    root = tmp_path_factory.mktemp("metricspec")
    return _write(root / "classify", _classify()), _write(root / "denoise", _denoise()), _write(root / "lm", _lm())


@pytest.mark.parametrize("interval", [m for m in INTERVALS if m != "auto"] + ["auto"])
def test_every_estimate_and_difference_of_every_metric_contains_its_own_value(runs: tuple[Path, ...],
                                                                             interval: str) -> None:
    seen: set[str] = set()
    for run_dir in runs:
        report = build_report(run_dir, n_resamples=300, interval=interval)
        seen |= _reported(report)
    # every registered metric was reported, so every one was checked
    assert seen == set(METRICS)


def test_brier_values_and_differences_beyond_one_keep_their_intervals(runs: tuple[Path, ...]) -> None:
    """The poor baseline's Brier scores are about 1.7, and the good variants' about 1.5 lower: the
    intervals reach past 1 (and past -1) instead of ending there."""
    report = build_report(runs[0], n_resamples=300)
    brier = [r.estimate for r in report.estimates if r.metric == "brier" and r.variant.startswith("mlp-none")]
    assert brier and all(e.value > 1.3 and e.ci_high > e.value > e.ci_low for e in brier)
    diffs = [r.comparison for r in report.comparisons if r.metric == "brier"]
    assert diffs and all(c.diff < -1.0 and c.ci_low < c.diff < c.ci_high for c in diffs)
