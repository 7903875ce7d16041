"""Tests of the example plugins beyond the harness's contract tests (which run over every
registered entry, these included, in norm-harness's tests/test_contracts.py): the entry points
register each plugin from this distribution, each plugin computes what its docstring says, and
the suite runs end to end with every plugin in it producing real numbers.

The package must be installed (``pip install -e examples/harness-plugin-example --no-deps``):
its entry points are how the harness finds it, so importing it from the source tree would not do.
"""

from __future__ import annotations

import math
from importlib import metadata
from pathlib import Path

import pytest
import torch

from harness import registry as reg
from harness.errors import ConfigError
from harness.reports.build import build_report
from harness.runner import run
from harness.seeding import torch_generator
from harness.sources import load

try:
    metadata.distribution("harness-plugin-example")
except metadata.PackageNotFoundError:  # fail with the fix rather than with unknown-name errors further down
    raise ImportError("harness-plugin-example is not installed: pip install -e examples/harness-plugin-example "
                      "--no-deps") from None

from harness_plugin_example import norms, ood, shifts, suite  # noqa: E402  (after the check above)

DIST = "harness-plugin-example"


@pytest.mark.parametrize(("kind", "name", "obj"), [
    ("norms", "scale", norms.scale_norm),
    ("shifts", "occlusion", shifts.occlusion),
    ("ood-scores", "neg-entropy", ood.neg_entropy),
    ("suites", "scalenorm-digits", suite.SUITE),
])
def test_each_entry_point_registers_its_plugin_from_this_distribution(kind: str, name: str, obj: object) -> None:
    registry = reg.registry(kind)
    assert registry.entry(name).origin == DIST
    assert registry.get(name) is obj


# --- scale norm --------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(5, 16), (5, 16, 4, 4)], ids=["flat", "spatial"])
def test_scale_norm_gives_every_example_the_rms_of_its_learned_scale(shape: tuple[int, ...]) -> None:
    layer = norms.scale_norm(16, len(shape) == 4)
    x = torch.randn(shape, generator=torch.Generator().manual_seed(0)) * torch.arange(1.0, 6.0).view(-1, *[1] * (
        len(shape) - 1))  # examples of very different sizes
    dims = tuple(range(1, len(shape)))
    rms = layer(x).pow(2).mean(dim=dims).sqrt()
    torch.testing.assert_close(rms, torch.ones(5), atol=1e-5, rtol=0)
    with torch.no_grad():
        layer.g.fill_(2.5)
    torch.testing.assert_close(layer(x).pow(2).mean(dim=dims).sqrt(), torch.full((5,), 2.5), atol=1e-5, rtol=0)
    # one example alone gives what it gives in the batch: no batch statistics
    torch.testing.assert_close(layer(x[2:3]), layer(x)[2:3])
    layer.reset_parameters()
    assert float(layer.g.detach()) == 1.0


def test_scale_norm_has_one_learned_scalar_that_gets_a_gradient() -> None:
    layer = norms.scale_norm(16, False)
    assert [p.shape for p in layer.parameters()] == [torch.Size([])]
    (layer(torch.randn(3, 16, generator=torch.Generator().manual_seed(1))) ** 2).sum().backward()
    assert layer.g.grad is not None and float(layer.g.grad) != 0.0


# --- occlusion ---------------------------------------------------------------------------------


def test_occlusion_paints_a_gray_square_that_grows_with_severity() -> None:
    x = torch.from_numpy(load("digits").x[:64]) * 0.9  # digits take values k/16, 0.5 among them: avoid the gray
    covered = []
    for severity in range(1, 6):
        out = shifts.occlusion(x, severity, torch_generator(0, "occlusion-test"))
        gray = (out == shifts.GRAY).squeeze(1)  # (N, H, W): where the square lies
        assert torch.equal(out[~gray.unsqueeze(1)], x[~gray.unsqueeze(1)]), "pixels outside the square changed"
        side = max(1, round(shifts.SIDE[severity - 1] * 8))
        rows, cols = gray.any(dim=2), gray.any(dim=1)  # the square's extent, cut off at the border
        assert (rows.sum(1) <= side).all() and (cols.sum(1) <= side).all()
        assert (gray.sum((1, 2)) == rows.sum(1) * cols.sum(1)).all(), "not a rectangle"
        covered.append(gray)
    for smaller, larger in zip(covered[:-1], covered[1:], strict=True):
        assert not (smaller & ~larger).any(), "the square of a higher severity must contain the lower one's"
    assert covered[-1].sum() > covered[0].sum()


def test_occlusion_rejects_a_severity_outside_1_to_5() -> None:
    with pytest.raises(ConfigError, match="severity 6 is outside 1-5"):
        shifts.occlusion(torch.zeros(1, 1, 8, 8), 6, None)


# --- negative entropy --------------------------------------------------------------------------


def test_neg_entropy_is_minus_the_softmax_entropy() -> None:
    logits = torch.randn(6, 10, generator=torch.Generator().manual_seed(2), dtype=torch.float64) * 3
    p = logits.softmax(1)
    torch.testing.assert_close(ood.neg_entropy(logits), (p * p.log()).sum(1))
    uniform = ood.neg_entropy(torch.zeros(2, 10))
    torch.testing.assert_close(uniform, torch.full((2,), -math.log(10)))
    one_hot = torch.tensor([[1000.0, 0.0, 0.0]])
    assert float(ood.neg_entropy(one_hot)) == 0.0


# --- the suite ---------------------------------------------------------------------------------


def test_the_suite_at_its_reduced_size_scores_occlusion_and_negative_entropy(tmp_path: Path) -> None:
    small = suite.SUITE.with_size("reduced")
    summary = run(small, tmp_path / "run", device="cpu", executor="serial", progress=False)
    assert summary.ok, summary.failures
    report = build_report(summary.run_dir, n_resamples=200)
    acc = {(r.variant, r.condition.key): r.estimate.value for r in report.estimates if r.metric == "accuracy"}
    auroc = {(r.variant, r.condition.key): r.estimate.value for r in report.estimates if r.metric == "auroc"}
    for v in ("mlp-none", "mlp-scale"):
        assert acc[v, "clean"] > 0.5  # chance is 0.1
        # occluding half the image costs more than occluding a fifth of it
        assert acc[v, "shift:occlusion:severity=5"] < acc[v, "shift:occlusion:severity=2"] <= acc[v, "clean"] + 0.02
        assert auroc[v, "ood:faces:score=neg-entropy"] > 0.6  # faces are told from digits better than by chance
    assert all(c.status == "pass" for c in report.checks), [(c.name, c.status) for c in report.checks]
    assert {v.claim.text: v.verdict for v in report.claims}.keys() == {c.text for c in small.claims}
