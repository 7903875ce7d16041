"""Models trained and attacked as one batched computation (harness.batched) give what the one-model
path gives, per model, up to float rounding.

Tolerances, and why they are what they are:

* the forward pass (a stack of seeds, and one of variants that differ in their norm): logits to
  1e-5 (BatchNorm in training mode divides by a batch's standard deviation), buffers to 1e-6;
* one model on the batched path with the one-model path's optimizer form (``fused=False``): losses,
  gradient norms, weights and buffers to 1e-6 and identical held-out curves (bit for bit here but
  for LayerNorm's affine, applied apart, and the loss's mean, taken in another order);
* three models, 8 steps of SGD (momentum, weight decay), and six (three norms, two seeds each) of
  one architecture: losses to 1e-5, gradient norms to 1e-5 relative, weights and buffers to 1e-5,
  identical held-out curves;
* three models, 8 steps of Adam: the same, except for the bias of a layer whose output a norm centres
  per channel (BatchNorm; a GroupNorm of one channel per group). Its gradient is zero in exact
  arithmetic, so what either path computes for it is rounding noise, which Adam scales up to steps
  of about lr: such a bias (and BatchNorm's running mean, which tracks it) may differ by up to
  2 * lr * steps, and a held-out prediction that the running mean decides by up to 2 examples;
* each of those limits, or 10 times what the one-model path itself moves when it rounds otherwise
  (the same run in channels-last memory order, whose kernels sum in another order), whichever is
  larger: a BatchNorm of a near-constant channel divides rounding noise by about sqrt(eps), and
  then both paths move alike (a ResNet with BatchNorm: 1e-3 in its losses after 8 SGD steps either
  way);
* attacks: each model's adversarial inputs equal the one-model attack's to 1e-5 (a few float-rounding
  sign flips of a near-zero gradient aside, at most 0.1% of the values), and a sweep's outcomes to
  one example.

The run test trains a small suite both ways and compares every stored cell, with the tolerances
that one epoch of Adam needs (written there).
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import harness.training
from harness import batched
from harness.attacks import APGD, FGSM, PGD
from harness.batched import GroupTiming, Stack, perturb_many, supports, sweep_many, train_many, variant_reason
from harness.data import Split
from harness.errors import ConfigError
from harness.models import MLP, build_model
from harness.seeding import torch_generator
from harness.specs import TrainSpec, Variant
from harness.training import train

MODELS = (("mlp", {"hidden": (32, 32)}), ("cnn", {"channels": (8, 16)}), ("resnet", {"channels": (8, 16)}))
NORMS = ("none", "batch", "layer", "group", "rms")
COMBOS = [pytest.param(m, o, n, id=f"{m}-{n}") for m, o in MODELS for n in NORMS]
SEEDS = (0, 1, 2)


@pytest.fixture(scope="module")
def small(split: Split) -> Split:
    """256 training examples (8 steps of 32 per epoch), the real held-out part."""
    return Split(split.train.subset(np.arange(256)), split.val, split.test)


def _build(split: Split, model: str, options: dict[str, object], norm: str, seed: int,
           standardize: bool = False) -> nn.Module:
    stats = (torch.tensor([0.3]), torch.tensor([0.2])) if standardize else None
    return build_model(model, norm, split.train.shape, split.train.n_classes, dict(options), stats,
                       torch_generator(seed, "init"))


def _centred_away(model: nn.Module) -> set[str]:
    """The biases whose gradient is zero in exact arithmetic (of a linear or convolutional layer whose
    output the next module centres per channel: BatchNorm, or GroupNorm with one channel per group),
    and the running means of those BatchNorms."""
    names = [(n, m) for n, m in model.named_modules() if not list(m.children())]
    out = set()
    for (name, mod), (next_name, nxt) in zip(names, names[1:], strict=False):
        per_channel = isinstance(nxt, nn.modules.batchnorm._BatchNorm) or (
            isinstance(nxt, nn.GroupNorm) and nxt.num_groups == nxt.num_channels)
        if isinstance(mod, (nn.Linear, nn.Conv2d)) and per_channel:
            out.add(f"{name}.bias")
            if isinstance(nxt, nn.modules.batchnorm._BatchNorm):
                out.add(f"{next_name}.running_mean")
    return out


def _differences(ref: nn.Module, expected: object, got: nn.Module, result: object, split: Split) -> dict[str, float]:
    """The largest differences of a training run (``result``, model ``got``) from another of the same
    model and seed (``expected``, model ``ref``): of the losses, of the gradient norms (relative), of
    the held-out curves (in examples), of the weights and buffers (all but those :func:`_centred_away`
    names), and of those."""
    away = _centred_away(ref)
    diffs = {n: float((t.double() - got.state_dict()[n].double()).abs().max())
             for n, t in ref.state_dict().items() if t.is_floating_point()}
    e, r = expected, result
    return {
        "loss": float(np.abs(r.loss - e.loss).max()),  # type: ignore[attr-defined]
        "grad_norm": float((np.abs(r.grad_norm - e.grad_norm) / e.grad_norm).max()),  # type: ignore[attr-defined]
        "curve_examples": round(float(np.abs(r.curve_val_accuracy - e.curve_val_accuracy).max())  # type: ignore[attr-defined]
                                * len(split.val.y)),
        "weights": max((d for n, d in diffs.items() if n not in away), default=0.0),
        "centred_away": max((d for n, d in diffs.items() if n in away), default=0.0),
    }


def _compare(split: Split, model: str, options: dict[str, object], norm: str, spec: TrainSpec,
             seeds: tuple[int, ...], fused: bool = True) -> list[tuple[dict[str, float], dict[str, float]]]:
    """Train ``seeds`` batched and one at a time; per seed the :func:`_differences` of the batched run
    from the one-model run, and of the one-model run in channels-last memory order (other convolution
    and BatchNorm kernels, so other rounding: the one-model path's own sensitivity to it) from the
    one-model run. The run lengths, curve steps and targets must agree."""
    models = [_build(split, model, options, norm, s) for s in seeds]
    results, _ = train_many(models, split, spec, seeds, timing_steps=2, fused=fused)
    out = []
    for seed, got, result in zip(seeds, models, results, strict=True):
        ref = _build(split, model, options, norm, seed)
        expected = train(ref, split, spec, seed)
        assert result.n_steps == expected.n_steps and result.diverged_at == expected.diverged_at
        assert np.array_equal(result.curve_steps, expected.curve_steps)
        assert result.steps_to_target == expected.steps_to_target
        other = _build(split, model, options, norm, seed).to(memory_format=torch.channels_last)
        with warnings.catch_warnings():  # channels-last weights get gradients in the default order
            warnings.simplefilter("ignore", UserWarning)
            own = train(other, split, spec, seed)
        out.append((_differences(ref, expected, got, result, split), _differences(ref, expected, other, own, split)))
    return out


def _within(d: dict[str, float], own: dict[str, float], tight: dict[str, float]) -> None:
    """Each difference ``d`` of the batched run is within ``tight``, or within 10 times the one-model
    path's own difference ``own`` under other rounding: a model whose training amplifies rounding
    (BatchNorm of a near-constant channel divides it by about sqrt(eps)) amplifies either alike."""
    for name, limit in tight.items():
        assert d[name] <= max(limit, 10 * own[name]), f"{name}: {d[name]:.3g} (own {own[name]:.3g}, tight {limit:g})"


# --- what takes the path ------------------------------------------------------------------------


@pytest.mark.parametrize(("model", "options", "norm"), COMBOS)
def test_every_builtin_norm_of_the_batched_models_takes_the_path(split: Split, model: str,
                                                                 options: dict[str, object], norm: str) -> None:
    assert supports(_build(split, model, options, norm, 0)) is None
    assert supports(_build(split, model, options, norm, 0, standardize=True)) is None
    assert variant_reason("classify", Variant("v", model, norm)) is None


@pytest.mark.parametrize("model", ["gru", "lstm", "vit"])
def test_models_without_a_batched_form_say_why(split: Split, model: str) -> None:
    reason = supports(_build(split, model, {}, "layer", 0))
    assert reason is not None and "has no batched form" in reason and "net" in reason
    assert f"model {model!r} has no batched form" in (variant_reason("classify", Variant("v", model, "layer")) or "")


def test_what_else_keeps_the_one_model_path(split: Split) -> None:
    class Wider(MLP):  # a subclass could compute another forward: not taken for an MLP
        pass

    net = build_model("mlp", "none", split.train.shape, 10, {}, None, torch_generator(0, "init"))
    net.net = Wider(split.train.shape, 10, lambda c, s: nn.Identity())
    assert "(Wider) has no batched form" in (supports(net) or "")
    assert "not a harness classifier" in (supports(nn.Linear(2, 2)) or "")
    flat = _build(split, "mlp", {}, "none", 0)
    flat.net.body[0] = nn.Flatten(start_dim=2)
    assert "flattens other dimensions" in (supports(flat) or "")
    assert "denoise task" in (variant_reason("denoise", Variant("v", "mlp", "none")) or "")
    assert "weights are loaded" in (variant_reason("classify", Variant("v", "mlp", "none", weights="w.pt")) or "")
    assert "norm 'mine'" in (variant_reason("classify", Variant("v", "mlp", "mine")) or "")
    with pytest.raises(ConfigError, match="differ in module 'net.body.1' \\(Linear\\)"):
        Stack([_build(split, "mlp", {"hidden": (32,)}, "none", 0), _build(split, "mlp", {"hidden": (64,)}, "none", 0)])
    with pytest.raises(ConfigError, match="differ in module 'net' \\(MLP, CNN\\)"):
        Stack([_build(split, "mlp", {}, "none", 0), _build(split, "cnn", {}, "none", 0)])
    with pytest.raises(ConfigError, match="cannot be batched"):
        Stack([_build(split, "gru", {}, "none", 0)])


# --- the forward pass ---------------------------------------------------------------------------


@pytest.mark.parametrize(("model", "options", "norm"), COMBOS)
@pytest.mark.parametrize("standardize", [False, True], ids=["", "std"])
def test_the_stack_computes_each_models_forward(split: Split, model: str, options: dict[str, object],
                                                norm: str, standardize: bool) -> None:
    models = [_build(split, model, options, norm, s, standardize) for s in SEEDS]
    stack = Stack(models)
    x = torch.from_numpy(split.train.x[:3 * 16]).view(3, 16, *split.train.shape)  # each model its own inputs
    for training in (True, False):
        expected = torch.stack([m.train(training)(x[i]) for i, m in enumerate(models)])
        # BatchNorm in training mode divides by a batch's standard deviation, which scales the rounding up
        torch.testing.assert_close(stack.forward(x, training), expected, rtol=0, atol=1e-5)
        for i, m in enumerate(models):  # training mode updated each model's running statistics, and only its own
            for name, b in m.named_buffers():
                torch.testing.assert_close(stack.tensor(i, name), b, rtol=0, atol=1e-6)


@pytest.mark.parametrize(("model", "options", "norm"), COMBOS)
@pytest.mark.parametrize("loss", ["ce", "dlr"])
def test_the_stacks_input_gradients_are_each_models(split: Split, model: str, options: dict[str, object],
                                                    norm: str, loss: str) -> None:
    """What every batched attack differentiates: per model, the attack loss, its input gradient and
    the logits in eval mode equal the model's own (harness.attacks.loss_grad), for every model and
    norm that takes the path; the stacked parameters get no gradient."""
    from harness.attacks import loss_grad
    from harness.batched import _loss_grad

    models = [_build(split, model, options, norm, s).eval() for s in SEEDS]
    stack = Stack(models)
    x = torch.from_numpy(split.train.x[:3 * 16]).view(3, 16, *split.train.shape)
    y = torch.from_numpy(split.train.y[:3 * 16]).view(3, 16)
    got_loss, got_grad, got_logits = _loss_grad(stack, x, y, loss)
    for i, m in enumerate(models):
        want_loss, want_grad, want_logits = loss_grad(m, x[i], y[i], loss)
        torch.testing.assert_close(got_logits[i], want_logits, rtol=0, atol=1e-5)
        torch.testing.assert_close(got_loss[i], want_loss, rtol=1e-4, atol=1e-5)
        scale = float(want_grad.abs().max())
        torch.testing.assert_close(got_grad[i], want_grad, rtol=0, atol=1e-4 * max(scale, 1e-3))
    assert all(p.grad is None for p in stack.params.values())


@pytest.mark.parametrize(("model", "options"), [pytest.param(m, o, id=m) for m, o in MODELS])
def test_a_stack_of_variants_that_differ_in_their_norm(split: Split, model: str, options: dict[str, object]) -> None:
    # every norm with two seeds, and a standardized one, in one stack: each model computes its own forward
    kinds = [(n, s, False) for n in NORMS for s in (0, 1)] + [("batch", 2, True), ("none", 2, False)]
    models = [_build(split, model, options, n, s, std) for n, s, std in kinds]
    stack = Stack(models)
    assert len(stack.params) > len(dict(models[0].named_parameters()))  # stacks per run of the norm slot
    x = torch.from_numpy(split.train.x[:len(models) * 8]).view(len(models), 8, *split.train.shape)
    for training in (True, False):
        expected = torch.stack([m.train(training)(x[i]) for i, m in enumerate(models)])
        torch.testing.assert_close(stack.forward(x, training), expected, rtol=0, atol=1e-5)
        for i, m in enumerate(models):
            assert set(stack.names(i)) == set(m.state_dict())
            for name, b in m.named_buffers():
                torch.testing.assert_close(stack.tensor(i, name), b, rtol=0, atol=1e-6)


# --- training -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("model", "options", "norm"), COMBOS)
def test_one_model_on_the_batched_path_is_the_one_model_path(small: Split, model: str, options: dict[str, object],
                                                             norm: str) -> None:
    spec = TrainSpec(epochs=1, batch_size=32, lr=1e-3, eval_every=3)
    for d, _ in _compare(small, model, options, norm, spec, (1,), fused=False):
        assert d["loss"] <= 1e-6 and d["grad_norm"] <= 1e-6 and d["curve_examples"] == 0
        assert d["weights"] <= 1e-6 and d["centred_away"] <= 1e-6


@pytest.mark.parametrize(("model", "options", "norm"), COMBOS)
def test_batched_sgd_equals_the_one_model_path(small: Split, model: str, options: dict[str, object],
                                               norm: str) -> None:
    spec = TrainSpec(epochs=1, batch_size=32, lr=0.05, optimizer="sgd", momentum=0.9, weight_decay=1e-3, eval_every=3)
    for d, own in _compare(small, model, options, norm, spec, SEEDS):
        _within(d, own, {"loss": 1e-5, "grad_norm": 1e-5, "curve_examples": 0, "weights": 1e-5,
                         "centred_away": 1e-5})


@pytest.mark.parametrize(("model", "options", "norm"), COMBOS)
def test_batched_adam_equals_the_one_model_path(small: Split, model: str, options: dict[str, object],
                                                norm: str) -> None:
    spec = TrainSpec(epochs=1, batch_size=32, lr=1e-3, eval_every=3)
    steps = len(small.train.y) // spec.batch_size
    centred = bool(_centred_away(_build(small, model, options, norm, 0)))
    for d, own in _compare(small, model, options, norm, spec, SEEDS):
        _within(d, own, {"loss": 1e-5, "grad_norm": 1e-5, "weights": 1e-5, "centred_away": 2 * spec.lr * steps,
                         "curve_examples": 2 if centred else 0})


@pytest.mark.parametrize(("model", "options"), [pytest.param(m, o, id=m) for m, o in MODELS])
def test_variants_that_differ_in_their_norm_train_together_as_alone(small: Split, model: str,
                                                                   options: dict[str, object]) -> None:
    spec = TrainSpec(epochs=1, batch_size=32, lr=0.05, optimizer="sgd", momentum=0.9, eval_every=3)
    kinds = [(n, s) for n in ("none", "batch", "layer") for s in (0, 1)]
    models = [_build(small, model, options, n, s) for n, s in kinds]
    results, timing = train_many(models, small, spec, [s for _, s in kinds], timing_steps=2)
    assert timing.models == len(kinds)
    for (norm, seed), got, result in zip(kinds, models, results, strict=True):
        ref = _build(small, model, options, norm, seed)
        expected = train(ref, small, spec, seed)
        other = _build(small, model, options, norm, seed).to(memory_format=torch.channels_last)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            own = train(other, small, spec, seed)
        _within(_differences(ref, expected, got, result, small), _differences(ref, expected, other, own, small),
                {"loss": 1e-5, "grad_norm": 1e-5, "curve_examples": 0, "weights": 1e-5, "centred_away": 1e-5})


def test_a_diverged_model_stops_where_the_one_model_path_stops(small: Split) -> None:
    # SGD at lr 2: seeds 0, 1 and 2 blow past 5x their first loss at different steps, seed 3 never does
    # (and seed 4, its head 300 times larger, starts from a loss many times theirs: its own first
    # loss, not another model's, is what it is measured against)
    spec = TrainSpec(epochs=2, batch_size=32, lr=2.0, optimizer="sgd", momentum=0.9, eval_every=3,
                     divergence_factor=5.0)
    seeds = (0, 1, 2, 3, 4)

    def build(seed: int) -> nn.Module:
        model = _build(small, "mlp", {"hidden": (32, 32)}, "none", seed)
        if seed == 4:
            with torch.no_grad():
                model.get_parameter("net.head.weight").mul_(300)
        return model

    models = [build(s) for s in seeds]
    results, _ = train_many(models, small, spec, seeds, timing_steps=2)
    diverged = [r.diverged_at for r in results]
    assert None in diverged and len({d for d in diverged if d is not None}) >= 2  # what the test is about
    assert results[4].loss[0] > 5 * results[0].loss[0]
    for seed, got, result in zip(seeds, models, results, strict=True):
        ref = build(seed)
        expected = train(ref, small, spec, seed)
        assert (result.diverged_at, result.n_steps) == (expected.diverged_at, expected.n_steps)
        np.testing.assert_allclose(result.loss, expected.loss, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(result.curve_steps, expected.curve_steps)
        np.testing.assert_allclose(result.curve_val_accuracy, expected.curve_val_accuracy, atol=1e-9)
        assert (math.isnan(result.final_val_accuracy), result.diverged) == (expected.diverged,) * 2
        for name, t in ref.state_dict().items():  # a diverged model as it was after its last step
            torch.testing.assert_close(got.state_dict()[name], t, rtol=1e-5, atol=1e-5, equal_nan=True)


def test_a_diverged_batchnorm_model_keeps_its_running_statistics(small: Split) -> None:
    spec = TrainSpec(epochs=2, batch_size=32, lr=4.0, optimizer="sgd", momentum=0.9, eval_every=3,
                     divergence_factor=5.0)
    models = [_build(small, "mlp", {"hidden": (32, 32)}, "batch", s) for s in (1, 2)]
    results, _ = train_many(models, small, spec, (1, 2), timing_steps=2)
    assert results[0].diverged_at is None and results[1].diverged_at is not None
    ref = _build(small, "mlp", {"hidden": (32, 32)}, "batch", 2)
    train(ref, small, spec, 2)
    for name, t in ref.named_buffers():  # not updated after the step that diverged (lr 4 amplifies rounding)
        torch.testing.assert_close(models[1].get_buffer(name), t, rtol=1e-3, atol=1e-4)
    assert int(models[1].get_buffer("net.body.2.num_batches_tracked")) == results[1].diverged_at


def test_time_per_step_is_measured_on_one_model(split: Split, small: Split) -> None:
    spec = TrainSpec(epochs=3, batch_size=32, lr=1e-3, eval_every=4, target_accuracy=0.3)  # 3 x 36 steps
    models = [_build(split, "mlp", {}, "layer", s) for s in SEEDS]
    results, timing = train_many(models, split, spec, SEEDS, timing_steps=5)
    assert isinstance(timing, GroupTiming) and timing.models == 3 and timing.probe_steps == 6
    assert set(timing.summary()) == {"batched_models", "batched_seconds_per_step", "timing_probe_steps"}
    assert 0 < timing.seconds_per_step < 1
    # a short run gets a short probe: a twentieth of its steps, at least 3
    assert train_many([_build(small, "mlp", {}, "layer", 0)], small, spec, (0,), timing_steps=5)[1].probe_steps == 3
    one = train(_build(split, "mlp", {}, "layer", 0), split, spec, 0)
    for r in results:
        assert 0 < r.seconds_per_step < 1
        assert r.steps_to_target is not None and r.seconds_to_target is not None and r.steps_to_target < r.n_steps
        assert 0 < r.seconds_to_target < r.train_seconds
        # the memory of the first step, counted as the one-model path counts it
        assert (r.peak_memory_bytes, r.memory_method) == (one.peak_memory_bytes, one.memory_method)
        assert set(r.summary()) == set(one.summary())


def test_the_probe_times_the_first_steps_apart_from_the_warm_ones(small: Split,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    # a clock that only the model's forward moves: 5 s in the first step, 3 s in the next two, 1 s after
    clock = {"now": 0.0, "calls": 0}

    def tick(module: nn.Module, args: object) -> None:
        clock["now"] += (5.0, 3.0, 3.0)[clock["calls"]] if clock["calls"] < 3 else 1.0
        clock["calls"] += 1

    model = _build(small, "mlp", {}, "none", 0)
    model.register_forward_pre_hook(tick)  # a function: the probe's copy of the model keeps this clock
    monkeypatch.setattr(batched.time, "perf_counter", lambda: clock["now"])  # the time module fit also reads
    flush = harness.training._Gradients.flush

    def late(self: object) -> None:  # what fit does after the last step, before its progress call: untimed
        clock["now"] += 100.0
        flush(self)  # type: ignore[arg-type]

    monkeypatch.setattr(harness.training._Gradients, "flush", late)
    x, y = torch.from_numpy(small.train.x), torch.from_numpy(small.train.y)
    probe = batched._probe(model, x, y, TrainSpec(epochs=1, batch_size=32, lr=1e-3), 0, torch.device("cpu"), 6)
    # 7 steps, then one more forward after them, untimed: the step whose FLOPs are counted (harness.energy)
    assert clock["calls"] == 8 and probe.steps == 7 and probe.steady == pytest.approx(1.0)
    assert probe.start == pytest.approx((5, 8, 11, 12, 13, 14))
    assert probe.seconds(0) == 0 and probe.seconds(2) == pytest.approx(8)
    assert probe.seconds(7) == pytest.approx(15) and probe.seconds(100) == pytest.approx(108)


def test_every_model_sees_its_own_seeds_batches(small: Split) -> None:
    # the same seed twice gives twice the same model; another seed another one
    spec = TrainSpec(epochs=1, batch_size=32, lr=1e-3, eval_every=4)
    models = [_build(small, "mlp", {}, "none", s) for s in (0, 0, 1)]
    results, _ = train_many(models, small, spec, (0, 0, 1), timing_steps=2)
    np.testing.assert_array_equal(results[0].loss, results[1].loss)
    assert not np.allclose(results[0].loss, results[2].loss)
    with pytest.raises(ValueError, match="2 models but 3 seeds"):
        train_many(models[:2], small, spec, (0, 1, 2))
    with pytest.raises(ConfigError, match="larger than the 256 training examples"):
        train_many(models, small, dataclasses.replace(spec, batch_size=300), (0, 0, 1))


# --- attacks ------------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=[("mlp", {}, "batch"), ("cnn", {"channels": (8, 16)}, "layer")],
                ids=["mlp-batch", "cnn-layer"])
def trained(request: pytest.FixtureRequest, split: Split) -> list[nn.Module]:
    """Three models trained for two epochs (attacks on untrained ones stop at once), in eval mode."""
    model, options, norm = request.param
    models = [_build(split, model, options, norm, s) for s in SEEDS]
    train_many(models, split, TrainSpec(epochs=2, batch_size=32, lr=3e-3), SEEDS, timing_steps=2)
    return models


def _one_model_attack(attack: object, model: nn.Module, x: torch.Tensor, y: torch.Tensor, todo: torch.Tensor,
                      generator: torch.Generator, batch_size: int) -> torch.Tensor:
    """What harness.tasks.classify.evaluation does: the todo examples in chunks, one generator."""
    out = x.clone()
    idx = todo.nonzero().squeeze(1)
    xs, ys = x[idx], y[idx]
    out[idx] = torch.cat([attack.perturb(model, xs[i:i + batch_size], ys[i:i + batch_size],  # type: ignore[attr-defined]
                                         generator=generator) for i in range(0, len(idx), batch_size)])
    return out


@pytest.mark.parametrize("attack", [FGSM(eps=0.1), PGD(eps=0.1, steps=5), PGD(eps=0.05, steps=3, restarts=3),
                                    PGD(eps=0.5, steps=4, norm="l2", loss="dlr"),
                                    PGD(eps=0.1, steps=3, random_start=False),
                                    APGD(eps=0.05, steps=12), APGD(eps=0.1, steps=10, loss="dlr", restarts=2),
                                    APGD(eps=0.5, steps=8, norm="l2")],
                         ids=["fgsm", "pgd", "pgd-restarts", "pgd-l2-dlr", "pgd-no-start", "apgd", "apgd-dlr-restarts",
                              "apgd-l2"])
def test_batched_attacks_equal_the_one_model_attacks(trained: list[nn.Module], split: Split, attack: object) -> None:
    x, y = torch.from_numpy(split.test.x[:150]), torch.from_numpy(split.test.y[:150])
    todo = torch.rand(3, len(x), generator=torch.Generator().manual_seed(0)) < 0.7  # each model its own examples
    got = perturb_many(attack, Stack(trained), x, y, [torch_generator(s, "atk") for s in SEEDS], todo, batch_size=40)
    for m, model in enumerate(trained):
        expected = _one_model_attack(attack, model, x, y, todo[m], torch_generator(SEEDS[m], "atk"), 40)
        close = torch.isclose(got[m], expected, rtol=0, atol=1e-5)
        assert close.float().mean() >= 0.999, f"model {m}: {int((~close).sum())} values differ"
        assert torch.equal(got[m][~todo[m]], x[~todo[m]])  # the examples not to attack come back as they were


def test_the_one_model_attacks_draw_what_the_batched_ones_draw(trained: list[nn.Module], split: Split) -> None:
    # the same model three times, three generators: three different random starts, each the one-model one
    x, y = torch.from_numpy(split.test.x[:60]), torch.from_numpy(split.test.y[:60])
    attack = PGD(eps=0.3, steps=1, alpha=0.0)  # a random start and no step: x_adv is the start itself
    got = perturb_many(attack, Stack([trained[0]] * 3), x, y, [torch_generator(s, "a") for s in SEEDS], batch_size=25)
    assert not torch.equal(got[0], got[1])
    for m in range(3):
        expected = _one_model_attack(attack, trained[0], x, y, torch.ones(len(x), dtype=torch.bool),
                                     torch_generator(SEEDS[m], "a"), 25)
        torch.testing.assert_close(got[m], expected, rtol=0, atol=1e-6)


def test_an_attack_sweep_equals_the_evaluations_sweep(trained: list[nn.Module], split: Split) -> None:
    from harness.specs import attack
    from harness.tasks.classify.evaluation import _attack, _Sweeps

    x, y = torch.from_numpy(split.test.x[:120]), torch.from_numpy(split.test.y[:120])
    eps = (0.0, 0.05, 0.1)
    params = (("restarts", 1), ("steps", 5))
    got = sweep_many(Stack(trained), x, y, "pgd-linf", eps, params, SEEDS, batch_size=50)
    for m, model in enumerate(trained):
        sweeps = _Sweeps()
        for e in eps:
            gen = torch_generator(SEEDS[m], attack("pgd-linf", e, params).key)
            _, logits = _attack(model, x, y, "pgd-linf", e, dict(params), gen, 50, sweeps)
            ok = logits.argmax(1) == y
            assert int((got[e][1][m] != ok).sum()) <= 1, f"model {m} eps {e}"
    assert torch.equal(got[0.0][0], x.expand(3, *x.shape))  # eps 0 attacks nothing


@dataclasses.dataclass(frozen=True)
class _Noise:
    """An attack plugin with no batched form: random signs of size eps."""

    eps: float

    def perturb(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                generator: torch.Generator | None = None) -> torch.Tensor:
        signs = torch.randint(0, 2, x.shape, generator=generator).to(x.dtype) * 2 - 1
        return (x + self.eps * signs).clamp(0, 1)


def test_attacks_without_a_batched_form_are_refused(trained: list[nn.Module], split: Split) -> None:
    x, y = torch.from_numpy(split.test.x[:4]), torch.from_numpy(split.test.y[:4])
    with pytest.raises(ConfigError, match="_Noise has no batched form"):
        perturb_many(_Noise(eps=0.1), Stack(trained), x, y, [None] * 3)


def test_the_battery_attacks_each_models_sweeps_as_its_evaluation_does(trained: list[nn.Module],
                                                                       split: Split) -> None:
    """battery_many's inputs, given to the one-model evaluation, give that evaluation's own outcomes:
    every sweep with a batched form (here FGSM, PGD and APGD) is computed for the models that run it,
    keyed by their conditions; a model that runs a sweep in another order, and the checks, are left
    to the one-model path."""
    from harness.batched import battery_many
    from harness.specs import attack, check
    from harness.tasks.classify.evaluation import evaluate

    x_np, y_np = split.test.x[:90], split.test.y[:90]
    x, y = torch.from_numpy(x_np), torch.from_numpy(y_np)
    eps = (0.0, 0.05, 0.1)
    sweeps = [attack("fgsm", e, ()) for e in eps] + [attack("pgd-linf", e, (("steps", 4),)) for e in eps] + [
        attack("apgd-ce", e, (("steps", 6),)) for e in eps]
    descending = [attack("pgd-linf", e, (("steps", 4),)) for e in reversed(eps)]
    conditions = [sweeps, sweeps[:3] + descending + [check("large-eps", eps=0.5, steps=4)], sweeps[3:]]
    found = battery_many(trained, SEEDS, conditions, x, y, batch_size=40)
    assert all(sec >= 0 for f in found for _, sec in f.values())
    got = [{k: t for k, (t, _) in f.items()} for f in found]
    assert set(got[0]) == {c.key for c in sweeps}
    assert set(got[1]) == {c.key for c in sweeps[:3]}  # its PGD sweep runs largest eps first; checks never
    assert set(got[2]) == {c.key for c in sweeps[3:]}
    for m, model in enumerate(trained):
        alone = dict(evaluate(model, x_np, y_np, {}, conditions[m], SEEDS[m], 0, batch_size=40))
        given = dict(evaluate(model, x_np, y_np, {}, conditions[m], SEEDS[m], 0, batch_size=40,
                              adversarial=got[m]))
        assert alone.keys() == given.keys()
        for cond, out in alone.items():
            if cond.kind == "attack" and cond.param("eps") > 0 and cond.key in got[m]:
                assert not torch.equal(got[m][cond.key], x)  # an attack ran
            flips = int((out["correct"] != given[cond]["correct"]).sum())
            assert flips <= 1, (m, cond.key, flips)  # float rounding may move an example at the boundary
            np.testing.assert_allclose(given[cond]["linf"] if cond.kind == "attack" else 0,
                                       out["linf"] if cond.kind == "attack" else 0, atol=1e-5)


# --- a run --------------------------------------------------------------------------------------


def _tiny_suite():  # type: ignore[no-untyped-def]
    from harness.registry import suites

    suite = suites.get("quickstart").with_overrides(seeds=(0, 1), variants=("mlp-none", "mlp-batch"), epochs=1)
    ev = dataclasses.replace(suite.evaluation, shifts=("gaussian-noise",), severities=(3,), ood_sets=("faces",),
                             checks=False)
    return dataclasses.replace(suite, evaluation=ev)


@pytest.mark.slow
def test_a_run_with_batched_seeds_gives_the_one_model_runs_results(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import harness.batched
    from harness.runner import run
    from harness.store import Store

    suite = _tiny_suite()
    attacked: list[list[int]] = []  # per call of the batched battery, the seeds it attacked
    battery = harness.batched.battery_many

    def spy(models, seeds, *args, **kwargs):  # type: ignore[no-untyped-def]
        attacked.append(list(seeds))
        return battery(models, seeds, *args, **kwargs)
    monkeypatch.setattr(harness.batched, "battery_many", spy)
    cells = {}
    for batch in (False, True):
        summary = run(suite, tmp_path / str(batch), device="cpu", executor="serial", progress=False,
                      batch_seeds=batch)
        assert attacked == ([[0, 1], [0, 1]] if batch else [])  # each variant's two seeds attacked at once
        assert summary.ok and summary.trained == 4
        with Store(tmp_path / str(batch), readonly=True) as store:
            cells[batch] = {(c.kind, c.variant, c.seed, str(c.condition)): c for c in store.cells()}
            assert bool(store.get_meta("batch_seeds")) is batch
    assert cells[False].keys() == cells[True].keys()
    for key, one in cells[False].items():
        both = cells[True][key]
        if key[0] == "train":
            assert "batched" not in one.spec and both.spec["batched"] is True  # keyed apart
            # mlp-none and mlp-batch, two seeds each, trained as one computation
            assert both.result["batched_models"] == 4 and one.result.keys() <= both.result.keys()
            assert both.result["final_val_accuracy"] == pytest.approx(one.result["final_val_accuracy"], abs=2e-2)
            np.testing.assert_allclose(both.arrays["loss"], one.arrays["loss"], rtol=1e-3, atol=1e-4)
        elif "correct" in one.arrays:
            # without BatchNorm the models agree to rounding, and so does every outcome; with it, Adam's
            # drift of the centred-away biases moves the running means a little, and an attack's
            # outcome on an example at the decision boundary with them (measured: at most 10 of 449)
            flips = int((both.arrays["correct"] != one.arrays["correct"]).sum())
            assert flips <= (1 if key[1] == "mlp-none" else 0.03 * len(one.arrays["correct"])), key
            assert abs(both.arrays["correct"].mean() - one.arrays["correct"].mean()) <= 0.03, key
    # resuming with the other choice is refused before anything is written
    with pytest.raises(ConfigError, match="was run with --batch-seeds"):
        run(suite, tmp_path / "True", device="cpu", executor="serial", progress=False)
    with pytest.raises(ConfigError, match="was run without --batch-seeds"):
        run(suite, tmp_path / "False", device="cpu", executor="serial", progress=False, batch_seeds=True)


def test_the_plan_keys_batched_cells_apart_and_groups_their_jobs(tmp_path: Path) -> None:
    from harness.planning import plan, train_spec
    from harness.registry import suites
    from harness.runner import _eval_jobs, _train_jobs
    from harness.store import Store

    suite = suites.get("quickstart").with_overrides(seeds=(0, 1), variants=("mlp-none", "cnn-batch"))
    gru = Variant("gru-layer", "gru", "layer")
    one = train_spec(suite, suite.variants[0], 0, "cpu")
    assert "batched" not in one and train_spec(suite, suite.variants[0], 0, "cpu", batched=True) == {
        **one, "batched": True}
    assert "batched" not in train_spec(suite, gru, 0, "cpu", batched=True)  # no batched form: the one-model cell
    with Store(tmp_path) as store:
        units = plan(suite, store, "cpu", batch_seeds=True)
        assert all(u.train_spec.get("batched") for u in units)
        assert [u.train_key for u in plan(suite, store, "cpu")] != [u.train_key for u in units]  # the store says not
        store.put_meta("batch_seeds", True)
        assert [u.train_key for u in plan(suite, store, "cpu")] == [u.train_key for u in units]  # now it says so
    jobs = _train_jobs(units)  # seed-major units: mlp 0, cnn 0, mlp 1, cnn 1
    assert [(k, tuple((u.variant.name, u.seed) for u in w)) for k, w in jobs] == [  # type: ignore[union-attr]
        ("train-batched", (("mlp-none", 0), ("mlp-none", 1))), ("train-batched", (("cnn-batch", 0), ("cnn-batch", 1)))]
    # variants that differ in their norm share a job, each one's seeds together; another recipe gets its own
    every = suites.get("quickstart").with_overrides(seeds=(0, 1))
    swept = dataclasses.replace(every.variants[0], name="cnn-none@lr=0.1", train=(("lr", 0.1),))
    every = dataclasses.replace(every, variants=(*every.variants, swept))
    with Store(tmp_path / "every") as store:
        jobs = _train_jobs(plan(every, store, "cpu", batch_seeds=True))
    assert [[(u.variant.name, u.seed) for u in w] for _, w in jobs] == [  # type: ignore[union-attr]
        [(f"{m}-{n}", s) for n in ("none", "batch", "layer") for s in (0, 1)] for m in ("cnn", "mlp")] + [
        [("cnn-none@lr=0.1", 0), ("cnn-none@lr=0.1", 1)]]
    with Store(tmp_path / "other") as store:
        assert [k for k, _ in _train_jobs(plan(suite, store, "cpu"))] == ["train"] * 4
        assert [k for k, _ in _eval_jobs(plan(suite, store, "cpu"))] == ["eval"] * 4


def test_the_evaluation_jobs_group_each_variants_batched_seeds(tmp_path: Path) -> None:
    from harness.planning import plan
    from harness.registry import suites
    from harness.runner import _eval_jobs
    from harness.store import Store

    suite = suites.get("quickstart").with_overrides(seeds=(0, 1, 2), variants=("mlp-none", "mlp-batch", "cnn-layer"))
    gru = Variant("gru-layer", "gru", "layer")  # no batched form: evaluated one unit at a time
    suite = dataclasses.replace(suite, variants=(*suite.variants, gru))
    with Store(tmp_path) as store:
        jobs = _eval_jobs(plan(suite, store, "cpu", batch_seeds=True))
    assert [(k, (w.variant.name, w.seed) if not isinstance(w, tuple) else [(u.variant.name, u.seed) for u in w])
            for k, w in jobs] == [
        ("eval-batched", [("mlp-none", s) for s in (0, 1, 2)]), ("eval-batched", [("mlp-batch", s) for s in (0, 1, 2)]),
        ("eval-batched", [("cnn-layer", s) for s in (0, 1, 2)]), ("eval", ("gru-layer", 0)), ("eval", ("gru-layer", 1)),
        ("eval", ("gru-layer", 2))]
