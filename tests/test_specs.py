"""Tests for harness.specs: sweeps as factors (names, pairing, per-variant recipes), explicit
comparison targets, named sizes, claim variant patterns and the dict round trip of all of them."""

from __future__ import annotations

import dataclasses
import json

import pytest

from harness.errors import ConfigError
from harness.specs import (
    AttackSpec,
    Claim,
    DiffusionSpec,
    EvalSpec,
    Size,
    Suite,
    TrainSpec,
    Variant,
    sweep,
    sweep_point,
    upgrade_suite_dict,
)

MLPS = (Variant("mlp-none", "mlp", "none"), Variant("mlp-batch", "mlp", "batch"))


def _suite(**kw) -> Suite:  # type: ignore[no-untyped-def]
    return Suite(**{"name": "s", "version": "1", "description": "d", "dataset": "digits", "variants": MLPS,
                    "seeds": (0, 1), **kw})


def test_a_sweep_names_every_point_and_overrides_the_recipe() -> None:
    vs = sweep(MLPS, lr=(0.01, 0.3))
    assert [v.name for v in vs] == ["mlp-none@lr=0.01", "mlp-none@lr=0.3", "mlp-batch@lr=0.01", "mlp-batch@lr=0.3"]
    assert vs[1].family == "mlp-none" and vs[1].train == (("lr", 0.3),)
    assert vs[1].recipe(TrainSpec(lr=1e-3, epochs=4)) == TrainSpec(lr=0.3, epochs=4)
    assert MLPS[0].recipe(TrainSpec(lr=1e-3)) == TrainSpec(lr=1e-3)


def test_a_two_setting_sweep_is_the_product_in_sorted_setting_order() -> None:
    vs = sweep(MLPS[:1], lr=(0.1,), batch_size=(2, 8))
    assert [v.name for v in vs] == ["mlp-none@batch_size=2,lr=0.1", "mlp-none@batch_size=8,lr=0.1"]
    assert sweep_point((("batch_size", 2), ("lr", 0.1))) == "batch_size=2,lr=0.1"


def test_each_sweep_point_is_paired_with_the_baseline_at_the_same_point() -> None:
    s = _suite(variants=sweep(MLPS, lr=(0.01, 0.3)))
    assert [(v.name, b.name) for v, b in s.comparisons()] == [
        ("mlp-batch@lr=0.01", "mlp-none@lr=0.01"), ("mlp-batch@lr=0.3", "mlp-none@lr=0.3")]


def test_a_point_without_its_baseline_is_not_compared() -> None:
    s = _suite(variants=(*sweep(MLPS[1:], lr=(0.3,)), *sweep(MLPS[:1], lr=(0.01,))))
    assert s.comparisons() == []


@pytest.mark.parametrize(("call", "message"), [
    (lambda: sweep(MLPS), "at least one value"),
    (lambda: sweep(MLPS, lr=()), "at least one value"),
    (lambda: Variant("v", "mlp", "none", train=(("learning_rate", 0.1),)), "unknown training setting 'learning_rate'"),
    (lambda: sweep(MLPS, lr=(0.0,))[0].recipe(TrainSpec()), "learning rate must be positive"),
])
def test_bad_sweeps_fail_with_a_hint(call, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError) as info:
        call()
    assert message in info.value.message and info.value.hint


def test_compare_to_overrides_the_automatic_baseline() -> None:
    post = Variant("mlp-batch-x", "mlp", "batch", options=(("hidden", (64,)),), compare_to="mlp-none")
    s = _suite(variants=(*MLPS, post))
    assert ("mlp-batch-x", "mlp-none") in [(v.name, b.name) for v, b in s.comparisons()]
    # without it, other options mean no baseline
    plain = Variant("mlp-batch-x", "mlp", "batch", options=(("hidden", (64,)),))
    assert ("mlp-batch-x", "mlp-none") not in [(v.name, b.name) for v, b in _suite(variants=(*MLPS, plain))
                                               .comparisons()]


def test_with_size_applies_every_field_and_unknown_sizes_fail() -> None:
    ev = EvalSpec(shifts=("gaussian-noise", "contrast"), ood_sets=("faces", "photos"))
    small = Size("reduced", seeds=(0,), variants=("mlp-none",), epochs=1, max_train=100, max_test=50,
                 shifts=("contrast",), severities=(2,), ood_sets=("faces",))
    s = _suite(evaluation=ev, sizes=(small,)).with_size("reduced")
    assert (s.seeds, [v.name for v in s.variants], s.train.epochs) == ((0,), ["mlp-none"], 1)
    assert (s.max_train, s.max_test, s.size, s.sizes) == (100, 50, "reduced", ())
    assert (s.evaluation.shifts, s.evaluation.severities, s.evaluation.ood_sets) == (("contrast",), (2,), ("faces",))
    assert _suite().with_size("full") == _suite()
    with pytest.raises(ConfigError, match="unknown size") as info:
        _suite(sizes=(small,)).with_size("reduce")
    assert "reduced" in str(info.value.hint) or "reduced" in info.value.message


def test_claim_variant_patterns_select_names() -> None:
    c = Claim("t", "accuracy", "lower", "clean", variants=("*@batch_size=2", "vit-rms"))
    assert c.names("cnn-batch@batch_size=2") and c.names("vit-rms")
    assert not c.names("cnn-batch@batch_size=128") and not c.names("vit-layer")
    assert Claim("t", "accuracy", "lower", "clean").names("anything")


@pytest.mark.parametrize(("metric", "condition", "ok"), [
    ("converged_fraction", "sweep:lr", True), ("converged_fraction", "training", False),
    ("aulc", "training", True), ("loss_roughness", "training", True), ("aulc", "clean", False),
    ("accuracy", "sweep:lr", False),
])
def test_claims_pair_sweep_and_training_metrics_with_their_condition(metric: str, condition: str, ok: bool) -> None:
    if ok:
        Claim("t", metric, "higher", condition)
    else:
        with pytest.raises(ConfigError, match="pairs metric"):
            Claim("t", metric, "higher", condition)


def test_a_suite_with_sweeps_sizes_and_claims_survives_the_json_round_trip() -> None:
    s = _suite(variants=(*sweep(MLPS, lr=(0.01, 0.3)), Variant("x", "mlp", "layer", compare_to="mlp-none@lr=0.3")),
               sizes=(Size("reduced", "d", seeds=(0,), eps=(0.0, 0.1)),), max_train=500,
               claims=(Claim("c", "converged_fraction", "higher", "sweep:lr", variants=("mlp-*",)),))
    assert Suite.from_dict(json.loads(json.dumps(s.to_dict()))) == s


# --- denoise suites ------------------------------------------------------------------------------

UNETS = (Variant("unet-none", "unet", "none"), Variant("unet-group", "unet", "group"))


def _denoise(**kw) -> Suite:  # type: ignore[no-untyped-def]
    return _suite(**{"variants": UNETS, "task": "denoise", "task_options": DiffusionSpec(target_loss=0.2),
                     "evaluation": EvalSpec(shifts=("contrast",), severities=(1, 2), ood_sets=("faces",),
                                            attacks=(AttackSpec("pgd-linf", (0.0, 0.1), (("steps", 5),)),)), **kw})


def test_a_denoise_suite_has_its_own_battery_and_of_the_check_conditions_twice_the_steps() -> None:
    keys = [c.key for c in _denoise().conditions()]
    assert keys == ["clean", "shift:contrast:severity=1", "shift:contrast:severity=2", "ood:faces:score=elbo",
                    "attack:pgd-linf:eps=0.0,steps=5", "attack:pgd-linf:eps=0.1,steps=5", "check:stronger:eps=0.1",
                    "samples", "membership:loss"]
    # at the sweep's largest eps; none where checks are off or no attack has a non-zero eps
    off = _denoise(evaluation=dataclasses.replace(_denoise().evaluation, checks=False))
    assert "check:stronger:eps=0.1" not in [c.key for c in off.conditions()]
    zero = _denoise(evaluation=dataclasses.replace(_denoise().evaluation,
                                                   attacks=(AttackSpec("pgd-linf", (0.0,), (("steps", 5),)),)))
    assert [c for c in zero.conditions() if c.kind == "check"] == []
    assert _suite().task == "classify" and _suite().task_options is None  # the default changes nothing


@pytest.mark.parametrize("kw, message", [
    ({"task": "generate"}, "has task 'generate'"),
    ({"task_options": None}, "declares no DiffusionSpec"),
    ({"task_options": TrainSpec()}, r"declares no DiffusionSpec \(task_options is TrainSpec\)"),
    ({"task": "classify"}, "declares task_options, but the classify task takes none"),
    ({"evaluation": EvalSpec(attacks=(AttackSpec("fgsm", (0.1,)),))}, "runs attacks fgsm"),
    ({"evaluation": EvalSpec(bn_modes=("frozen", "batch"))}, "BatchNorm test-time modes"),
    ({"variants": (Variant("unet-none", "unet", "none", standardize=True),)}, "standardize inputs"),
])
def test_bad_denoise_suites_fail_with_a_hint(kw: dict, message: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(ConfigError, match=message) as info:
        _denoise(**kw)
    assert info.value.hint


@pytest.mark.parametrize("kw, message", [
    ({"target_loss": 0.0}, "target_loss"), ({"target_loss": float("nan")}, "target_loss"),
    ({"target_loss": 0.1, "steps": 20}, "at least 21"), ({"target_loss": 0.1, "samples": 1}, "samples"),
    ({"target_loss": 0.1, "steps": 30, "n_t": 31}, "exceeds"), ({"target_loss": 0.1, "val_draws": 0}, "val_draws"),
])
def test_bad_diffusion_specs_fail_with_a_hint(kw: dict, message: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(ConfigError, match=message):
        DiffusionSpec(**kw)


def test_a_denoise_suite_with_sizes_survives_the_json_round_trip_and_sizes_override_task_options() -> None:
    s = _denoise(sizes=(Size("reduced", "d", seeds=(0,), task_options=(("samples", 8), ("judge_train",
                                                                                        TrainSpec(epochs=1)))),),
                 claims=(Claim("c", "denoising_loss", "lower", "clean"), Claim("d", "mean_val_loss", "lower"),
                         Claim("e", "sample_fid", "lower", "samples")))
    back = Suite.from_dict(json.loads(json.dumps(s.to_dict())))
    assert back == s
    small = s.with_size("reduced")
    assert small.task_options == DiffusionSpec(target_loss=0.2, samples=8, judge_train=TrainSpec(epochs=1))
    assert back.with_size("reduced") == small  # the size's TrainSpec came back from JSON as a dict
    with pytest.raises(ConfigError, match="overrides unknown task options 'sample'") as info:
        _denoise(sizes=(Size("x", task_options=(("sample", 8),)),)).with_size("x")
    assert "samples" in info.value.hint
    with pytest.raises(ConfigError, match="but the classify task takes none"):
        _suite(sizes=(Size("x", task_options=(("samples", 8),)),)).with_size("x")


def test_a_suite_dict_an_older_version_stored_reads_under_todays_names() -> None:
    # before task options were generic, a denoise suite stored them as "diffusion" (its sizes too)
    s = _denoise(sizes=(Size("reduced", "d", task_options=(("samples", 8),)),))
    old = json.loads(json.dumps(s.to_dict()))
    old["diffusion"] = old.pop("task_options")
    old["sizes"][0]["diffusion"] = old["sizes"][0].pop("task_options")
    assert "task_options" not in json.dumps(old)
    assert Suite.from_dict(old) == s
    assert upgrade_suite_dict(json.loads(json.dumps(s.to_dict()))) == json.loads(json.dumps(s.to_dict()))


def test_the_diffusion_spec_is_in_the_cell_keys_of_denoise_suites_only() -> None:
    from harness.runner import eval_spec, train_spec
    from harness.specs import clean

    plain = train_spec(_suite(), MLPS[0], 0, "cpu")
    assert "diffusion" not in plain and "diffusion" not in eval_spec(_suite(), "k", clean())
    s = _denoise()
    assert train_spec(s, UNETS[0], 0, "cpu")["diffusion"] == {"steps": 100, "target_loss": 0.2, "val_draws": 2}
    other = _denoise(task_options=DiffusionSpec(target_loss=0.2, samples=64))
    assert train_spec(other, UNETS[0], 0, "cpu") == train_spec(s, UNETS[0], 0, "cpu")  # samples: evaluation only
    assert eval_spec(other, "k", clean()) != eval_spec(s, "k", clean())


def test_a_suite_names_an_official_test_set_in_its_cell_keys_and_keeps_older_keys() -> None:
    from harness.planning import train_spec

    plain = train_spec(_suite(), MLPS[0], 0, "cpu")
    assert plain["split"] == [0.25, 0.1, 0] and "test_dataset" not in json.dumps(plain)  # older keys unchanged
    official = _suite(dataset="mnist-train", test_dataset="mnist", val_fraction=0.05, max_train=100)
    spec = train_spec(official, MLPS[0], 0, "cpu")
    assert spec["split"] == {"train": "mnist-train", "test": "mnist", "val_fraction": 0.05, "split_seed": 0}
    assert spec != train_spec(dataclasses.replace(official, test_dataset="fashion-mnist"), MLPS[0], 0, "cpu")
    assert Suite.from_dict(json.loads(json.dumps(official.to_dict()))) == official
    assert "training set mnist-train" in official.describe_split() and "test set mnist" in official.describe_split()
    assert "training capped at 100" in official.describe_split()


def test_a_test_fraction_beside_an_official_test_set_is_refused() -> None:
    with pytest.raises(ConfigError, match="names test_dataset 'mnist' and test_fraction 0.1") as info:
        _suite(dataset="mnist-train", test_dataset="mnist", test_fraction=0.1)
    assert "max_test" in str(info.value.hint)
