"""Inference cost (harness.inference): FLOPs and parameters of known layers counted exactly, peak memory of
a known layer within bounds from both sides, per-repeat timings of the right shape, the cost conditions in a
suite's battery and cell keys, and in a run's report and results.json."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from harness import inference
from harness.inference import batch_of, cost_arrays, count_flops, count_parameters, live_bytes, measure, peak_memory
from harness.registry import metrics

CPU = torch.device("cpu")


def test_flops_of_a_linear_layer_are_two_per_multiply_add_per_example() -> None:
    lin = nn.Linear(13, 7).eval()
    assert count_flops(lin, torch.rand(5, 13)) == 5 * 2 * 13 * 7
    assert measure(lin, torch.rand(4, 13), repeats=2, warmup=0).flops == 2 * 13 * 7


def test_flops_of_a_convolution_are_counted_per_output_position() -> None:
    conv = nn.Conv2d(3, 4, 3, stride=2, padding=1).eval()  # 9x9 -> 5x5
    per_example = 2 * 3 * 4 * 3 * 3 * 5 * 5
    assert count_flops(conv, torch.rand(2, 3, 9, 9)) == 2 * per_example
    assert measure(conv, torch.rand(3, 3, 9, 9), repeats=2, warmup=0).flops == per_example


def test_parameters_are_every_element_once_and_no_buffer() -> None:
    shared = nn.Linear(4, 4)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), shared, shared)
    assert count_parameters(model) == 3 * 4 + 4 + 4 + 4 + 4 * 4 + 4  # BatchNorm's running statistics are buffers
    assert count_parameters(model) == sum(p.numel() for p in model.parameters())


def test_peak_memory_of_a_linear_and_relu_is_their_two_outputs() -> None:
    """Linear then ReLU (not in place) on B examples: the linear's output (B, out) and the ReLU's are alive at
    once, float32; nothing else is allocated (the weight's transpose is a view; parameters and inputs were
    there before)."""
    b, n_in, n_out = 64, 32, 48
    model = nn.Sequential(nn.Linear(n_in, n_out), nn.ReLU()).eval()
    one = b * n_out * 4
    peak, method = peak_memory(model, torch.rand(b, n_in), CPU)
    assert method == "counted"
    assert 2 * one <= peak <= 2 * one + 1024  # both outputs at once, and no more than alignment slack
    inplace = nn.Sequential(nn.Linear(n_in, n_out), nn.ReLU(inplace=True)).eval()
    assert one <= peak_memory(inplace, torch.rand(b, n_in), CPU)[0] < 2 * one  # in place: one buffer


def test_live_bytes_frees_what_the_block_drops() -> None:
    with torch.no_grad(), live_bytes() as counter:
        a = torch.ones(1000)  # 4000 bytes
        b = a * 2
        del a  # freed before c is made: never three at once
        c = b + 1
    assert counter.peak == 8000 and counter.live == 8000
    del b
    assert counter.live == 4000
    del c


def test_measure_gives_positive_timings_per_repeat_and_throughput_from_the_large_batch() -> None:
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10)).eval()
    cost = measure(model, torch.rand(32, 1, 8, 8), repeats=5)
    arrays = cost.arrays()
    assert set(arrays) == set(inference.ARRAYS)
    assert all(a.shape == (5,) and (a > 0).all() for a in arrays.values())
    np.testing.assert_allclose(cost.throughput, 32 / cost.latency_batch)
    assert (arrays["parameters"] == 650).all() and cost.batch_size == 32
    with pytest.raises(RuntimeError, match="eval mode"):
        measure(model.train(), torch.rand(2, 1, 8, 8), repeats=2)


def test_batch_of_repeats_a_small_set_to_the_large_batch() -> None:
    x = torch.arange(3.0).view(3, 1)
    assert batch_of(x, 7).view(-1).tolist() == [0, 1, 2, 0, 1, 2, 0]
    assert batch_of(x, 2).view(-1).tolist() == [0, 1]


def test_cost_arrays_fold_batchnorm_and_a_model_with_nothing_to_fold_repeats_the_unfolded_numbers() -> None:
    x = torch.rand(20, 6)
    bn = nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2)).eval()
    plain = cost_arrays(bn, x, False, 16, 3)
    folded = cost_arrays(bn, x, True, 16, 3, unfolded=plain)
    assert (plain["folded"] == 0).all() and (folded["folded"] == 1).all() and folded["folded"].shape == (3,)
    assert folded["parameters"][0] == plain["parameters"][0] - 16  # the BatchNorm's weight and bias
    none = nn.Sequential(nn.Linear(6, 8), nn.LayerNorm(8), nn.Linear(8, 2)).eval()
    unfolded = cost_arrays(none, x, False, 16, 3)
    again = cost_arrays(none, x, True, 16, 3, unfolded=unfolded)
    assert all(np.array_equal(again[k], unfolded[k]) for k in inference.ARRAYS) and (again["folded"] == 0).all()


def test_the_cost_metrics_are_registered_with_their_facts() -> None:
    for name in (*inference.METRICS, "bn_folded"):
        m = metrics.get(name)
        assert m.group == "cost" and m.level == "example" and m.per_example is not None
    timed = {m for m in inference.METRICS if metrics.get(m).wall_clock}
    assert timed == {"latency_b1", "latency_batch", "throughput"}  # counts are not wall-clock
    assert metrics.get("throughput").higher_is_better and not metrics.get("latency_b1").higher_is_better
    assert set(inference.COMPARED) <= set(inference.METRICS)


def _suite(norms: tuple[str, ...] = ("none", "batch"), **evaluation: object):  # type: ignore[no-untyped-def]
    from harness.specs import EvalSpec, Suite, TrainSpec, Variant, variant_name

    return Suite(name="cost-test", version="1.0.0", description="inference cost", dataset="digits",
                 variants=tuple(Variant(variant_name("mlp", n), "mlp", n) for n in norms), seeds=(0, 1),
                 train=TrainSpec(epochs=1, batch_size=64, lr=1e-3, optimizer="adam", target_accuracy=0.5,
                                 eval_every=10),
                 evaluation=EvalSpec(**{"shifts": (), "ood_sets": (), "attacks": (), "membership": False,
                                        "cost_repeats": 4, "cost_batch_size": 32, **evaluation}))  # type: ignore[arg-type]


def test_the_folded_condition_joins_only_a_suite_that_may_hold_batchnorm_and_settings_join_the_key() -> None:
    from harness.planning import eval_spec
    from harness.specs import cost

    assert [c.key for c in _suite().conditions()][-2:] == ["cost", "cost:fold=True"]
    assert [c.key for c in _suite(("none", "layer")).conditions()][-1:] == ["cost"]
    assert not any(c.kind == "cost" for c in _suite(cost=False).conditions())
    a, b, c = _suite(), _suite(cost_repeats=5), _suite(cost_batch_size=64)
    assert eval_spec(a, "t", cost())["cost_repeats"] == 4
    assert len({json.dumps(eval_spec(s, "t", cost()), sort_keys=True) for s in (a, b, c)}) == 3


@pytest.mark.slow
def test_a_run_reports_the_inference_cost_and_writes_it_to_results_json(tmp_path: Path) -> None:
    from harness.reports.build import build_report
    from harness.reports.render import write_reports
    from harness.runner import run

    summary = run(_suite(), tmp_path / "run", device="cpu", progress=False)
    assert summary.ok, summary.failures
    report = build_report(summary.run_dir, n_resamples=200)
    paths = write_reports(report, summary.run_dir)
    md = paths["report"].read_text()
    assert "## Inference cost" in md and "BatchNorm folded" in md and "measured on" in md
    est = {(r.variant, r.condition.key, r.metric): r.estimate for r in report.estimates}
    assert est[("mlp-batch", "cost:fold=True", "bn_folded")].value == 2
    assert est[("mlp-none", "cost:fold=True", "bn_folded")].value == 0
    assert est[("mlp-batch", "cost", "parameters")].value - est[("mlp-batch", "cost:fold=True", "parameters")].value \
        == 2 * 2 * 128  # two BatchNorm1d(128), weight and bias each
    assert est[("mlp-none", "cost", "flops")].value == 2 * (64 * 128 + 128 * 128 + 128 * 10)
    compared = {(r.variant, r.condition.key, r.metric) for r in report.comparisons if r.condition is not None}
    assert {("mlp-batch", "cost", m) for m in inference.COMPARED} <= compared
    results = json.loads(paths["results"].read_text())
    text = json.dumps(results)
    assert '"cost:fold=True"' in text or '"fold": true' in text
    assert all(math.isfinite(r.estimate.value) for r in report.estimates if r.condition.kind == "cost")
