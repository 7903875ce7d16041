"""Tests for harness.models: the input-standardization layer, the seeded paired init, the
Classifier wrapper, test-time independence from batch composition in eval mode, and the
residual, recurrent and transformer architectures (where their norm slot sits, that they train)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from harness.errors import ConfigError
from harness.models import (
    CNN,
    MLP,
    Classifier,
    GRUNet,
    LSTMNet,
    ResNet,
    SpatialRMSNorm,
    Standardize,
    ViT,
    build_model,
    default_patch,
    group_norm,
    init_weights,
    no_norm,
)
from harness.registry import norms
from harness.seeding import torch_generator
from harness.sources import load
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


@pytest.mark.parametrize("arch", [MLP, CNN, ResNet, GRUNet, LSTMNet, ViT])
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


# --- residual, recurrent and transformer architectures -----------------------------------------

NEW_ARCHS = [ResNet, GRUNet, LSTMNet, ViT]


@pytest.mark.parametrize("in_shape", [(1, 8, 8), (1, 28, 28), (3, 8, 8), (2, 12, 10)],
                         ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("arch", NEW_ARCHS)
def test_new_architectures_take_any_image_shape(arch: type[nn.Module], in_shape: tuple[int, int, int]) -> None:
    m = Classifier(arch(in_shape, 7, norms.get("group")))
    init_weights(m, torch_generator(0, "init"))
    x = torch.rand(3, *in_shape, generator=torch.Generator().manual_seed(0))
    assert m(x).shape == (3, 7)
    assert m.features(x).shape == (3, m.net.head.in_features)


def test_resnet_stages_downsample_and_use_projection_shortcuts_only_on_shape_change() -> None:
    net = ResNet((1, 8, 8), 10, norms.get("batch"), channels=(8, 16, 24))
    first, second, third = net.stages
    assert isinstance(first.shortcut, nn.Identity)
    for block in (second, third):
        conv, bn = block.shortcut
        assert isinstance(conv, nn.Conv2d) and conv.kernel_size == (1, 1) and conv.stride == (2, 2)
        assert isinstance(bn, nn.BatchNorm2d)
    out = net.stages(net.stem(torch.rand(2, 1, 8, 8)))
    assert out.shape == (2, 24, 2, 2)
    assert net.head.in_features == 24


def _digits_x(n: int, rows: int = 8) -> torch.Tensor:
    return torch.from_numpy(load("digits").x[:n])[:, :, :rows]


@pytest.mark.parametrize("arch, reference", [(GRUNet, nn.GRU), (LSTMNet, nn.LSTM)])
def test_recurrent_nets_without_norm_are_pytorchs_gru_and_lstm(arch: type[nn.Module], reference: type) -> None:
    net = arch((1, 8, 8), 10, no_norm, hidden=16)
    init_weights(net, torch_generator(0, "init"))
    rnn = reference(8, 16, batch_first=True)
    with torch.no_grad():  # same gate order (GRU r, z, n; LSTM i, f, g, o) and both biases
        rnn.weight_ih_l0.copy_(net.input_proj.weight)
        rnn.bias_ih_l0.copy_(net.input_proj.bias)
        rnn.weight_hh_l0.copy_(net.hidden_proj.weight)
        rnn.bias_hh_l0.copy_(net.hidden_proj.bias)
    x = _digits_x(5)
    _, last = rnn(x[:, 0])  # (N, H rows, W) is a batch-first sequence of rows
    h_n = last[0] if isinstance(last, tuple) else last
    torch.testing.assert_close(net.features(x), h_n[0], atol=1e-6, rtol=1e-5)


def _ln(v: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.layer_norm(v, v.shape[-1:])


def test_layer_norm_lstm_step_matches_ba_et_al() -> None:
    # Ba, Kiros & Hinton (2016): gates = LN(W_h h) + LN(W_x x); c carried raw; h = o * tanh(LN(c))
    net = LSTMNet((1, 8, 8), 10, norms.get("layer"), hidden=12)
    init_weights(net, torch_generator(0, "init"))
    x = _digits_x(4, rows=3)
    h = c = torch.zeros(4, 12)
    for t in range(3):
        i, f, g, o = (_ln(net.input_proj(x[:, 0, t])) + _ln(net.hidden_proj(h))).chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(_ln(c))
    torch.testing.assert_close(net.features(x), h, atol=1e-5, rtol=1e-5)


def test_layer_norm_gru_step_matches_ba_et_al() -> None:
    # (r, z) = sigmoid(LN(W_x x) + LN(W_h h)); n = tanh(LN(W_x x)_n + r * LN(W_h h)_n)
    net = GRUNet((1, 8, 8), 10, norms.get("layer"), hidden=12)
    init_weights(net, torch_generator(0, "init"))
    x = _digits_x(4, rows=3)
    h = torch.zeros(4, 12)
    for t in range(3):
        xr, xz, xn = _ln(net.input_proj(x[:, 0, t])).chunk(3, dim=1)
        hr, hz, hn = _ln(net.hidden_proj(h)).chunk(3, dim=1)
        r, z = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
        h = (1 - z) * torch.tanh(xn + r * hn) + z * h
    torch.testing.assert_close(net.features(x), h, atol=1e-5, rtol=1e-5)


def test_layer_norm_lstm_normalizes_each_gate_preactivation_with_modules_shared_over_time() -> None:
    net = LSTMNet((1, 8, 8), 10, norms.get("layer"), hidden=16)
    init_weights(net, torch_generator(0, "init"))
    seen: dict[str, list[tuple[torch.Tensor, torch.Tensor]]] = {"norm_x": [], "norm_h": [], "norm_c": []}
    for name in seen:
        getattr(net, name).register_forward_hook(
            lambda mod, args, out, name=name: seen[name].append((args[0].detach(), out.detach())))
    net(_digits_x(6))
    assert len(seen["norm_x"]) == 1 and seen["norm_x"][0][1].shape == (6 * 8, 64)  # all 8 rows at once
    assert len(seen["norm_h"]) == 8 and seen["norm_h"][0][1].shape == (6, 64)  # one module, every step
    assert len(seen["norm_c"]) == 8 and seen["norm_c"][0][1].shape == (6, 16)
    for name, calls in seen.items():
        for _, after in calls:  # (at step 0 norm_h sees W_h 0 + b = b, still normalized per row)
            torch.testing.assert_close(after.mean(1), torch.zeros(len(after)), atol=1e-5, rtol=0)
            torch.testing.assert_close(after.var(1, unbiased=False), torch.ones(len(after)), atol=1e-3, rtol=0)
        assert any(float(b.std(1).sub(1).abs().max()) > 0.05 for b, _ in calls), f"{name} input already normal"


def _block_outputs(net: ViT, x: torch.Tensor) -> list[torch.Tensor]:
    outs: list[torch.Tensor] = []
    handles = [b.register_forward_hook(lambda mod, args, out: outs.append(out.detach())) for b in net.blocks]
    try:
        net(x)
    finally:
        for handle in handles:
            handle.remove()
    return outs


def test_vit_post_ln_blocks_end_normalized_and_pre_ln_blocks_do_not() -> None:
    x = _digits_x(5)
    outputs = {}
    for placement in ("pre", "post"):
        net = ViT((1, 8, 8), 10, norms.get("layer"), placement=placement)
        init_weights(net, torch_generator(0, "init"))
        outputs[placement] = _block_outputs(net, x)
        assert len(outputs[placement]) == 2
        assert isinstance(net.final_norm, nn.Identity) is (placement == "post")
    for out in outputs["post"]:  # norm(x + f(x)): every token (N, T, D) has zero mean, unit variance
        assert out.shape == (5, 16, 64)
        torch.testing.assert_close(out.mean(-1), torch.zeros(5, 16), atol=1e-5, rtol=0)
        torch.testing.assert_close(out.var(-1, unbiased=False), torch.ones(5, 16), atol=1e-3, rtol=0)
    for out in outputs["pre"]:  # x + f(norm(x)): the residual stream is not normalized
        assert float(out.var(-1, unbiased=False).sub(1).abs().max()) > 0.1


@pytest.mark.parametrize("placement", ["pre", "post"])
def test_vit_block_puts_the_norm_where_its_placement_says(placement: str) -> None:
    net = ViT((1, 8, 8), 10, norms.get("layer"), placement=placement, depth=1)
    init_weights(net, torch_generator(0, "init"))
    block = net.blocks[0]
    with torch.no_grad():  # make the norms' affine parameters non-trivial, so skipping one shows
        for norm in (block.norm1.norm, block.norm2.norm):
            norm.weight.uniform_(0.5, 1.5, generator=torch.Generator().manual_seed(1))
    x = torch.randn(3, 16, 64, generator=torch.Generator().manual_seed(0))
    n1, n2, attn, mlp = block.norm1, block.norm2, block.attn, block.mlp
    if placement == "pre":
        h = x + attn(n1(x))
        expected = h + mlp(n2(h))
    else:
        h = n1(x + attn(x))
        expected = n2(h + mlp(h))
    torch.testing.assert_close(block(x), expected)


def test_vit_pre_ln_features_come_through_the_final_norm() -> None:
    net = ViT((1, 8, 8), 10, norms.get("layer"), placement="pre")
    init_weights(net, torch_generator(0, "init"))
    tokens = net.tokens(_digits_x(3))
    torch.testing.assert_close(tokens.var(-1, unbiased=False), torch.ones(3, 16), atol=1e-3, rtol=0)
    torch.testing.assert_close(net.features(_digits_x(3)), tokens.mean(1))


def test_vit_batch_norm_takes_statistics_over_batch_and_tokens() -> None:
    net = ViT((1, 8, 8), 10, norms.get("batch"), placement="post", depth=1)
    init_weights(net, torch_generator(0, "init"))
    out = _block_outputs(net.train(), _digits_x(6))[0].reshape(-1, 64)
    torch.testing.assert_close(out.mean(0), torch.zeros(64), atol=1e-5, rtol=0)
    torch.testing.assert_close(out.var(0, unbiased=False), torch.ones(64), atol=1e-2, rtol=0)


def test_vit_positional_embedding_is_paired_across_norms_and_differs_across_seeds() -> None:
    def pos(norm: str, seed: int) -> torch.Tensor:
        m = build_model("vit", norm, (1, 8, 8), 10, {}, None, torch_generator(seed, "init"))
        return m.net.pos.weight.detach()

    reference = pos("none", 0)
    assert reference.shape == (1, 16, 64)
    assert 0.01 < float(reference.std()) < 0.03  # drawn (std 0.02), not left at zeros
    for norm in norms.names():
        assert torch.equal(pos(norm, 0), reference), norm
    assert not torch.equal(pos("none", 1), reference)


def test_init_weights_draws_from_modules_defining_draw_parameters_in_module_order() -> None:
    class Offset(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.value = nn.Parameter(torch.zeros(3))

        def draw_parameters(self, generator: torch.Generator) -> None:
            self.value.uniform_(-1, 1, generator=generator)

    def draw(with_offset: bool) -> nn.Sequential:
        m = nn.Sequential(nn.Linear(4, 4), *([Offset()] if with_offset else []), nn.Linear(4, 2))
        init_weights(m, torch_generator(0, "init"))
        return m

    with_offset, plain = draw(True), draw(False)
    assert torch.equal(with_offset[0].weight, plain[0].weight)  # modules before it draw what they drew before
    assert not torch.equal(with_offset[2].weight, plain[1].weight)  # it drew from the same stream, in its place
    offset = with_offset[1].value
    assert torch.equal(offset, draw(True)[1].value) and bool((offset != 0).all())


def test_default_patch_gives_about_sixteen_tokens() -> None:
    assert default_patch(8, 8) == 2 and default_patch(28, 28) == 7
    assert default_patch(32, 32) == 8 and default_patch(12, 12) == 3
    assert default_patch(7, 7) == 1 and default_patch(3, 3) == 1  # no divisor gives 16: one pixel per token
    assert ViT((1, 28, 28), 10, no_norm).pos.weight.shape == (1, 16, 64)


@pytest.mark.parametrize("options, match", [({"placement": "middle"}, "placement"), ({"patch": 3}, "patch"),
                                            ({"heads": 5}, "heads")])
def test_vit_rejects_bad_options_with_a_hint(options: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match) as err:
        ViT((1, 8, 8), 10, no_norm, **options)  # type: ignore[arg-type]
    assert err.value.hint


@pytest.mark.parametrize("model, norm, options", [
    ("resnet", "batch", {}), ("resnet", "none", {}),
    ("gru", "layer", {}), ("lstm", "layer", {}), ("lstm", "none", {}),
    ("vit", "layer", {"placement": "pre"}), ("vit", "layer", {"placement": "post"}), ("vit", "rms", {}),
])
def test_new_models_train_on_a_small_batch(model: str, norm: str, options: dict[str, object]) -> None:
    d = load("digits")
    x, y = torch.from_numpy(d.x[:64]), torch.from_numpy(d.y[:64])
    m = build_model(model, norm, (1, 8, 8), 10, options, None, torch_generator(0, "init"))
    opt = torch.optim.Adam(m.parameters(), lr=5e-3)
    losses = []
    for _ in range(30):
        loss = torch.nn.functional.cross_entropy(m(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.6 * losses[0], f"{model}-{norm}: loss {losses[0]:.3f} -> {losses[-1]:.3f}"
