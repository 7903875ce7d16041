"""Tests for harness.models: the input-standardization layer, the seeded paired init, the
Classifier wrapper, and test-time independence from batch composition in eval mode."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from harness.models import (
    CNN,
    MLP,
    Classifier,
    SpatialRMSNorm,
    Standardize,
    build_model,
    group_norm,
    init_weights,
    no_norm,
)
from harness.registry import norms
from harness.seeding import torch_generator
from harness.specs import TrainSpec
from harness.training import train

# --- Standardize -------------------------------------------------------------------------------


def test_standardize_maps_training_statistics_to_zero_mean_unit_std() -> None:
    g = torch.Generator().manual_seed(0)
    # three channels with very different offsets and scales
    x = torch.rand(200, 3, 6, 6, generator=g) * torch.tensor([0.1, 0.5, 1.0]).view(1, 3, 1, 1) \
        + torch.tensor([0.0, 0.2, 0.0]).view(1, 3, 1, 1)
    mean, std = x.mean(dim=(0, 2, 3)), x.std(dim=(0, 2, 3))
    layer = Standardize(mean, std)
    z = layer(x)
    assert z.shape == x.shape
    torch.testing.assert_close(z.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(z.std(dim=(0, 2, 3)), torch.ones(3), atol=1e-5, rtol=0)


def test_standardize_statistics_are_buffers_not_parameters() -> None:
    layer = Standardize(torch.tensor([0.5]), torch.tensor([0.25]))
    assert list(layer.parameters()) == []
    assert set(dict(layer.named_buffers())) == {"mean", "std"}
    assert set(layer.state_dict()) == {"mean", "std"}


def test_standardize_guards_zero_std() -> None:
    layer = Standardize(torch.tensor([0.5]), torch.tensor([0.0]))
    out = layer(torch.full((1, 1, 2, 2), 0.5))
    assert torch.isfinite(out).all()


def test_standardize_does_not_alias_given_tensors() -> None:
    mean, std = torch.tensor([0.5]), torch.tensor([0.25])
    layer = Standardize(mean, std)
    mean += 1
    assert float(layer.mean) == 0.5


def test_build_model_with_input_stats_standardizes_first(split) -> None:  # type: ignore[no-untyped-def]
    t = torch.from_numpy(split.train.x)
    stats = (t.mean(dim=(0, 2, 3)), t.std(dim=(0, 2, 3)))
    m = build_model("mlp", "none", split.train.shape, 10, {}, stats, torch_generator(0, "init"))
    assert isinstance(m.standardize, Standardize)
    z = m.standardize(t)
    assert abs(float(z.mean())) < 1e-4 and abs(float(z.std()) - 1) < 1e-4
    plain = build_model("mlp", "none", split.train.shape, 10, {}, None, torch_generator(0, "init"))
    assert isinstance(plain.standardize, nn.Identity)
    # the standardization layer draws nothing from the init stream: same linear weights
    for a, b in zip(m.net.parameters(), plain.net.parameters(), strict=True):
        assert torch.equal(a, b)


# --- init_weights ------------------------------------------------------------------------------


@pytest.mark.parametrize("arch", [MLP, CNN])
def test_init_weights_is_deterministic_per_seed(arch: type[nn.Module]) -> None:
    def state(seed: int) -> dict[str, torch.Tensor]:
        m = Classifier(arch((1, 8, 8), 10, group_norm))
        init_weights(m, torch_generator(seed, "init"))
        return m.state_dict()

    a, b, c = state(0), state(0), state(1)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    weights = [k for k in a if k.endswith("weight") and a[k].ndim >= 2]
    assert weights and all(not torch.equal(a[k], c[k]) for k in weights)


def test_init_weights_ignores_global_random_state() -> None:
    def first_weight(global_seed: int) -> torch.Tensor:
        torch.random.manual_seed(global_seed)  # what other code may have done to the global RNG
        m = Classifier(MLP((1, 8, 8), 10, no_norm))
        init_weights(m, torch_generator(0, "init"))
        return m.net.body[1].weight.detach().clone()

    state = torch.random.get_rng_state()
    try:
        assert torch.equal(first_weight(1), first_weight(2))
    finally:
        torch.random.set_rng_state(state)


def test_init_weights_resets_norm_layers() -> None:
    m = Classifier(CNN((1, 8, 8), 10, norms.get("batch")))
    bn = m.net.body[1]
    assert isinstance(bn, nn.BatchNorm2d)
    with torch.no_grad():
        bn.weight.fill_(3.0)
        bn.running_mean.fill_(2.0)
    init_weights(m, torch_generator(0, "init"))
    assert torch.equal(bn.weight, torch.ones_like(bn.weight))
    assert torch.equal(bn.running_mean, torch.zeros_like(bn.running_mean))


def test_init_follows_pytorch_default_bounds() -> None:
    m = Classifier(MLP((1, 8, 8), 10, no_norm))
    init_weights(m, torch_generator(0, "init"))
    lin = m.net.body[1]
    w, b = lin.weight.detach(), lin.bias.detach()
    bound = 1 / np.sqrt(lin.in_features)  # kaiming_uniform(a=sqrt(5)) gives U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    assert float(w.abs().max()) <= bound + 1e-7
    assert float(b.abs().max()) <= bound + 1e-7
    assert float(w.abs().max()) > 0.8 * bound


# --- norms -------------------------------------------------------------------------------------


def test_spatial_rms_norm_normalizes_root_mean_square() -> None:
    x = torch.rand(4, 8, 3, 3, generator=torch.Generator().manual_seed(0)) * 7
    y = SpatialRMSNorm(8)(x)
    rms = y.pow(2).mean(dim=(1, 2, 3)).sqrt()
    torch.testing.assert_close(rms, torch.ones(4), atol=1e-4, rtol=0)


@pytest.mark.parametrize("norm", ["layer", "group", "rms"])
def test_per_example_norms_are_scale_invariant(norm: str) -> None:
    layer = norms.get(norm)(16, True)
    x = torch.rand(2, 16, 4, 4, generator=torch.Generator().manual_seed(0)) + 0.1
    torch.testing.assert_close(layer(x), layer(10 * x), atol=1e-4, rtol=1e-4)


def test_group_norm_uses_up_to_eight_groups() -> None:
    assert group_norm(32, True).num_groups == 8
    assert group_norm(12, False).num_groups == 4
    assert group_norm(7, True).num_groups == 1


# --- eval mode is independent of batch composition ---------------------------------------------


@pytest.fixture(scope="module")
def trained_cnns(split):  # type: ignore[no-untyped-def]
    out = {}
    for norm in norms.names():
        m = build_model("cnn", norm, split.train.shape, 10, {}, None, torch_generator(0, "init"))
        train(m, split, TrainSpec(epochs=1, eval_every=1000), seed=0)
        out[norm] = m.eval()
    return out


@pytest.mark.parametrize("norm", ["batch", "layer", "group", "rms", "none"])
def test_eval_mode_prediction_does_not_depend_on_the_batch(norm: str, trained_cnns, split) -> None:  # type: ignore[no-untyped-def]
    m = trained_cnns[norm]
    assert not m.training
    x = torch.from_numpy(split.test.x[:64])
    with torch.no_grad():
        together = m(x)
        alone = torch.cat([m(x[i:i + 1]) for i in range(5)])
        other_batch = m(torch.cat([x[:5], torch.from_numpy(split.test.x[200:260])]))[:5]
    torch.testing.assert_close(alone, together[:5], atol=1e-5, rtol=0)
    torch.testing.assert_close(other_batch, together[:5], atol=1e-5, rtol=0)


def test_batch_norm_train_mode_does_depend_on_the_batch(trained_cnns, split) -> None:  # type: ignore[no-untyped-def]
    # the contrast that makes the test above meaningful: in train mode BatchNorm uses batch statistics
    m = trained_cnns["batch"]
    x = torch.from_numpy(split.test.x[:64])
    state = {k: v.clone() for k, v in m.state_dict().items()}
    try:
        m.train()
        with torch.no_grad():
            a = m(x)[:5]
            b = m(torch.cat([x[:5], x[:5]]))[:5]
        assert not torch.allclose(a, b, atol=1e-5)
    finally:
        m.load_state_dict(state)
        m.eval()
