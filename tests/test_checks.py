"""Tests for reports.checks, the sanity battery, on a real run: models with planted gradient
masking (a non-differentiable input quantisation; a saturating output) must be flagged by the
gradient and large-eps checks, and a model without it must not be named there."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from harness.models import CNN
from harness.registry import models, suites
from harness.runner import run
from harness.specs import Variant
from reports.build import build_report
from reports.render import to_json


class Quantized(CNN):
    """A CNN behind an input quantisation to 4 levels: torch.round has a zero gradient almost
    everywhere, so gradient attacks are blind while the model classifies well."""

    def __init__(self, in_shape, n_classes, norm):  # type: ignore[no-untyped-def]
        super().__init__(in_shape, n_classes, norm, channels=(16, 32))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return super().features(torch.round(x * 4) / 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(torch.round(x * 4) / 4)


class Saturated(CNN):
    """A CNN whose logits are scaled by 10^4 outside training: softmax saturates to exactly
    one-hot in float32, so the cross-entropy gradient vanishes on confidently classified examples."""

    def __init__(self, in_shape, n_classes, norm):  # type: ignore[no-untyped-def]
        super().__init__(in_shape, n_classes, norm, channels=(16, 32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = super().forward(x)
        return logits if self.training else logits * 1e4


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict:  # type: ignore[type-arg]
    models.register("quantized", Quantized)
    models.register("saturated", Saturated)
    try:
        base = suites.get("quickstart").with_overrides(seeds=(0,), variants=("cnn-none",), epochs=3)
        planted = (Variant("quantized-none", "quantized", "none"), Variant("saturated-none", "saturated", "none"))
        suite = dataclasses.replace(base, variants=(*base.variants, *planted))
        run_dir = tmp_path_factory.mktemp("planted") / "run"
        # in-process registrations do not reach worker processes: the serial executor
        summary = run(suite, run_dir, device="cpu", executor="serial", progress=False)
    finally:
        models.unregister("quantized")
        models.unregister("saturated")
    assert summary.ok, summary.failures
    return to_json(build_report(Path(run_dir), n_resamples=100))


def _check(report: dict, start: str) -> dict:  # type: ignore[type-arg]
    return next(c for c in report["checks"] if c["name"].startswith(start))


def test_masked_gradients_are_flagged(report: dict) -> None:  # type: ignore[type-arg]
    grads = _check(report, "input gradients")
    assert grads["status"] == "fail"
    assert "quantized-none" in grads["detail"] and "saturated-none" in grads["detail"]
    assert "cnn-none" not in grads["detail"]


def test_a_blind_attack_does_not_reach_chance_at_large_eps(report: dict) -> None:  # type: ignore[type-arg]
    large = _check(report, "a large eps reaches chance")
    assert large["status"] == "fail"
    assert "quantized-none" in large["detail"] and "saturated-none" in large["detail"]
    assert "cnn-none" not in large["detail"]


def test_logit_scale_alone_does_not_fail_batch_composition(report: dict) -> None:  # type: ignore[type-arg]
    # the saturated model's logits are 10^4 times larger, and so is their float rounding
    assert _check(report, "predictions do not depend on batch composition")["status"] == "pass"


def test_every_check_reports_its_numbers(report: dict) -> None:  # type: ignore[type-arg]
    assert len(report["checks"]) == 11
    for c in report["checks"]:
        assert c["status"] in ("pass", "fail", "n/a")
        if c["status"] != "n/a":
            assert any(ch.isdigit() for ch in c["detail"]), c
    # no pair of variants to transfer from: not applicable, and said so
    assert _check(report, "a transfer attack")["status"] == "n/a"
