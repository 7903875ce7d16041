"""Tests for harness.energy and the training compute a run records: FLOPs of a training step against a
hand count, the CPU packages' energy counters (read from a powercap folder in the kernel's layout, with a
wrap), the declared-power estimate, and what the one-model and batched training loops, a run's records, its
report and a claim make of them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from harness.data import Split
from harness.energy import DEFAULT_WATTS_PER_CORE, account, check_watts, energy_counter, step_flops
from harness.errors import ConfigError
from harness.models import build_model
from harness.seeding import torch_generator
from harness.specs import TrainSpec
from harness.training import train


def _sum_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
    return model(x).sum()


def test_step_flops_counts_the_forward_and_backward_matrix_products_by_hand() -> None:
    # two linear layers, batch B: forward 2B(7*5 + 5*3); backward: the second layer's weight and input
    # gradients 2B*5*3 each, the first layer's weight gradient 2B*7*5 (its input needs no gradient)
    b = 4
    model = nn.Sequential(nn.Linear(7, 5), nn.ReLU(), nn.Linear(5, 3))
    x = torch.randn(b, 7)
    assert step_flops(model, _sum_loss, x, None) == 2 * b * (35 + 15) + 2 * b * (15 + 15 + 35)
    # one layer: no input gradient at all
    assert step_flops(nn.Linear(7, 5), _sum_loss, x, None) == 2 * b * 35 + 2 * b * 35


def test_step_flops_leaves_the_model_as_it_was() -> None:
    model = nn.Sequential(nn.Linear(6, 4), nn.BatchNorm1d(4), nn.Linear(4, 2)).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    step_flops(model, lambda m, x, y: F.cross_entropy(m(x), y), torch.randn(8, 6), torch.randint(0, 2, (8,)))
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # BatchNorm's running statistics too
    assert all(p.grad is None for p in model.parameters()) and not model.training


def _zone(root: Path, name: str, energy_uj: int | str, wrap: int = 1_000_000) -> Path:
    zone = root / name
    zone.mkdir(parents=True)
    (zone / "energy_uj").write_text(f"{energy_uj}\n")
    (zone / "max_energy_range_uj").write_text(f"{wrap}\n")
    return zone


def test_energy_counter_sums_the_packages_and_undoes_a_wrap(tmp_path: Path) -> None:
    a = _zone(tmp_path, "intel-rapl:0", 900_000)
    b = _zone(tmp_path, "intel-rapl:1", 10)
    cores = _zone(tmp_path, "intel-rapl:0:0", 5)  # a package's cores: part of package 0, not counted again
    counter = energy_counter(tmp_path)
    assert counter is not None and counter.joules() == 0.0
    (a / "energy_uj").write_text("950000\n")  # +50,000 uJ
    (b / "energy_uj").write_text("2010\n")  # +2,000 uJ
    (cores / "energy_uj").write_text("40005\n")  # within package 0's +50,000
    assert counter.joules() == pytest.approx(0.052)
    (a / "energy_uj").write_text("50000\n")  # wrapped at 1,000,000: +100,000 uJ
    assert counter.joules() == pytest.approx(0.152)


def test_energy_counter_is_none_where_nothing_can_be_read(tmp_path: Path) -> None:
    assert energy_counter(tmp_path / "absent") is None
    assert energy_counter(tmp_path) is None  # a powercap folder without packages
    _zone(tmp_path, "intel-rapl:0", 7)
    _zone(tmp_path, "intel-rapl:1", "")  # unreadable (root-only on most machines): part of the machine missing
    assert energy_counter(tmp_path) is None


def test_account_prefers_counters_then_declares() -> None:
    counted = account({"energy_counted_joules": 12.5, "energy_counted_to_target_joules": 3.0, "cpu_seconds": 9.0},
                      4.0)
    assert counted is not None and (counted.total, counted.to_target, counted.method) == (12.5, 3.0, "rapl")
    declared = account({"cpu_seconds": 2.0, "cpu_seconds_to_target": 0.5}, 4.0)
    assert declared is not None and declared.summary() == {
        "energy": 8.0, "energy_to_target": 2.0, "energy_method": "declared", "declared_watts_per_core": 4.0}
    default = account({"cpu_seconds": 2.0, "cpu_seconds_to_target": None}, None)
    assert default is not None and default.total == 2.0 * DEFAULT_WATTS_PER_CORE and default.to_target is None
    assert account({"n_steps": 3}, 4.0) is None  # no CPU time recorded (a loaded model, an older record)


@pytest.mark.parametrize("bad", [0.0, -3.0, float("nan"), float("inf"), 5000.0])
def test_check_watts_refuses_what_is_not_a_power_per_core(bad: float) -> None:
    with pytest.raises(ConfigError, match="power per busy core"):
        check_watts(bad)
    assert check_watts(None) is None and check_watts(8.0) == 8.0


def test_a_training_run_records_its_compute(split: Split) -> None:
    spec = TrainSpec(epochs=2, target_accuracy=0.5)
    model = build_model("mlp", "batch", split.train.shape, 10, {}, None, torch_generator(0, "init"))
    result = train(model, split, spec, 0)
    s = result.summary()
    x = torch.from_numpy(split.train.x[:spec.batch_size])
    y = torch.from_numpy(split.train.y[:spec.batch_size])
    one = step_flops(model, lambda m, xb, yb: F.cross_entropy(m(xb), yb), x, y)
    assert one > 0 and s["step_flops"] == one
    assert s["train_flops"] == one * s["n_steps"]
    assert s["steps_to_target"] is not None and s["flops_to_target"] == one * s["steps_to_target"]
    # CPU time of the timed steps: positive, and at most the wall time times the threads (one in the tests)
    assert 0 < s["cpu_seconds"] <= 1.5 * s["train_seconds"] + 0.05
    assert 0 <= s["cpu_seconds_to_target"] <= s["cpu_seconds"]


def test_batched_training_records_the_same_flops_and_scaled_cpu_time(split: Split) -> None:
    from harness.batched import train_many

    spec = TrainSpec(epochs=1, target_accuracy=0.5)
    models = [build_model("mlp", n, split.train.shape, 10, {}, None, torch_generator(s, "init"))
              for n, s in (("none", 0), ("layer", 1))]
    one = train(build_model("mlp", "none", split.train.shape, 10, {}, None, torch_generator(0, "init")), split,
                spec, 0).summary()
    results, _ = train_many(models, split, spec, [0, 1])
    for r in results:
        s = r.summary()
        assert s["step_flops"] == one["step_flops"]  # the same layers' matrix products
        assert s["train_flops"] == s["step_flops"] * s["n_steps"]
        # scaled from the probe's CPU per wall second to the run's estimated one-model seconds
        assert 0 < s["cpu_seconds"] <= 1.5 * s["train_seconds"] + 0.05


def test_the_report_compares_flops_and_energy_to_target_capped_at_the_run(tmp_path: Path) -> None:
    from harness.reports.training import _training_value
    from harness.store import Cell

    def cell(**result: object) -> Cell:
        return Cell("k", "train", "v", 0, {}, {"budget_steps": 100, **result})

    reached = cell(steps_to_target=40, step_flops=10, flops_to_target=400, energy=9.0, energy_to_target=3.0)
    never = cell(steps_to_target=None, step_flops=10, flops_to_target=None, energy=9.0, energy_to_target=None)
    assert [_training_value(reached, m) for m in ("steps_to_target", "flops_to_target", "energy_to_target")] == \
        [40.0, 400.0, 3.0]
    assert [_training_value(never, m) for m in ("steps_to_target", "flops_to_target", "energy_to_target")] == \
        [100.0, 1000.0, 9.0]  # counted at the whole budget's
    assert _training_value(cell(steps_to_target=None), "energy_to_target") is None  # not recorded


@pytest.mark.slow
def test_a_run_stores_declared_energy_and_reports_it(tmp_path: Path) -> None:
    from harness.cli import main
    from harness.store import Store

    run_dir = tmp_path / "run"
    rc = main(["run", "quickstart", "--seeds", "0,1", "--variants", "mlp-none,mlp-batch", "--epochs", "2",
               "--run-dir", str(run_dir), "--power-watts", "5", "--executor", "serial", "--quiet", "--no-progress"])
    assert rc == 0
    with Store(run_dir, create=False, readonly=True) as store:
        cells = list(store.cells("train"))
    assert len(cells) == 4
    for c in cells:
        r = c.result
        assert r["energy_method"] == "declared" and r["declared_watts_per_core"] == 5.0
        assert r["energy"] == pytest.approx(5.0 * r["cpu_seconds"])
    results = json.loads((run_dir / "results.json").read_text())
    summary = {t["variant"]: t for t in results["training_summary"]}
    assert summary["mlp-batch"]["train_flops"]["value"] > 0
    assert np.isfinite(summary["mlp-none"]["energy"]["value"])
    compared = {(c["variant"], c["metric"]) for c in results["comparisons"]}
    assert ("mlp-batch", "flops_to_target") in compared and ("mlp-batch", "energy_to_target") in compared
    environment = {r["id"]: r for r in results["rmf"]}["MEASURE 2.12"]
    assert environment["assessed"] and any("declared 5 W per busy core" in e for e in environment["evidence"])
    assert any("training compute is counted" in e for e in environment["evidence"])
    report = (run_dir / "report.md").read_text()
    assert "Training compute and energy" in report and "declared 5 W per busy core" in report
