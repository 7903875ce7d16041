"""Tests for harness.tasks.classify.evaluation on small models trained for one epoch on real digits: the outcome
arrays per condition kind, attacks at eps = 0 reproducing the clean predictions bit for bit,
model-independent shifted inputs, OOD scores in and out, determinism, and predict()'s
eval-mode guard."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from harness.data import Split, fit_to
from harness.models import build_model
from harness.registry import shifts
from harness.seeding import torch_generator
from harness.sources import load
from harness.specs import Condition, TrainSpec, attack, clean, ood, shift
from harness.tasks.classify.evaluation import evaluate, predict
from harness.training import train

CONDITION_SEED = 0
PGD = (("restarts", 1), ("steps", 5))
CONDITIONS = [
    clean(),
    shift("gaussian-noise", 3),
    shift("gaussian-blur", 5),
    shift("contrast", 2),
    ood("faces", "msp"),
    ood("textures", "energy"),
    attack("fgsm", 0.0),
    attack("fgsm", 0.1),
    attack("pgd-linf", 0.0, PGD),
    attack("pgd-linf", 0.1, PGD),
]




@pytest.fixture(scope="module")
def ood_sets(split: Split) -> dict[str, np.ndarray]:
    return {name: fit_to(load(name).x, split.test.shape) for name in ("faces", "textures")}


def _trained(split: Split, model: str, norm: str, seed: int = 0) -> nn.Module:
    m = build_model(model, norm, split.train.shape, 10, {}, None, torch_generator(seed, "init"))
    train(m, split, TrainSpec(epochs=1, eval_every=1000), seed)
    return m.eval()


@pytest.fixture(scope="module")
def models(split: Split) -> dict[str, nn.Module]:
    return {"cnn-batch": _trained(split, "cnn", "batch"), "mlp-layer": _trained(split, "mlp", "layer")}


def _evaluate(model: nn.Module, split: Split, ood_sets: dict[str, np.ndarray], batch_size: int = 128,
              seed: int = 0) -> dict[str, dict[str, np.ndarray]]:
    out = evaluate(model, split.test.x, split.test.y, ood_sets, CONDITIONS, seed, CONDITION_SEED, batch_size)
    return {cond.key: arrays for cond, arrays in out}


@pytest.fixture(scope="module")
def outcomes(models: dict[str, nn.Module], split: Split,
             ood_sets: dict[str, np.ndarray]) -> dict[str, dict[str, dict[str, np.ndarray]]]:
    return {name: _evaluate(m, split, ood_sets) for name, m in models.items()}


def test_yields_every_condition_in_order(models: dict[str, nn.Module], split: Split,
                                         ood_sets: dict[str, np.ndarray]) -> None:
    got = [c for c, _ in evaluate(models["mlp-layer"], split.test.x[:20], split.test.y[:20], ood_sets,
                                  CONDITIONS, 0, CONDITION_SEED)]
    assert got == CONDITIONS


@pytest.mark.parametrize("model", ["cnn-batch", "mlp-layer"])
def test_outcome_arrays(model: str, outcomes, split: Split) -> None:  # type: ignore[no-untyped-def]
    n = len(split.test.y)
    for key, arrays in outcomes[model].items():
        if key.startswith("ood"):
            continue
        assert arrays["pred"].shape == (n,) and arrays["pred"].dtype == np.int64
        assert arrays["correct"].dtype == np.bool_
        assert np.array_equal(arrays["correct"], arrays["pred"] == split.test.y)
        assert ((arrays["confidence"] > 0) & (arrays["confidence"] <= 1)).all()
        assert (arrays["loss"] >= 0).all() and arrays["loss"].dtype == np.float64
    clean_acc = outcomes[model]["clean"]["correct"].mean()
    assert clean_acc > 0.5, "one epoch on digits should already learn something"


@pytest.mark.parametrize("model", ["cnn-batch", "mlp-layer"])
def test_attack_linf_within_eps(model: str, outcomes) -> None:  # type: ignore[no-untyped-def]
    for cond in CONDITIONS:
        if cond.kind != "attack":
            continue
        eps = cond.param("eps")
        linf = outcomes[model][cond.key]["linf"]
        assert linf.dtype == np.float64
        assert (linf <= eps + 1e-6).all(), cond.key
        if eps > 0:
            assert linf.max() > 0.5 * eps, cond.key


@pytest.mark.parametrize("model", ["cnn-batch", "mlp-layer"])
def test_attacks_at_eps_zero_have_the_clean_predictions(model: str, outcomes) -> None:  # type: ignore[no-untyped-def]
    res = outcomes[model]
    for cond in (attack("fgsm", 0.0), attack("pgd-linf", 0.0, PGD)):
        arrays = res[cond.key]
        assert np.array_equal(arrays["pred"], res["clean"]["pred"]), cond.key
        assert np.array_equal(arrays["correct"], res["clean"]["correct"]), cond.key
        assert (arrays["linf"] == 0).all()


@pytest.mark.parametrize("model", ["cnn-batch", "mlp-layer"])
def test_attacks_at_eps_zero_reproduce_clean_bit_for_bit(model: str, outcomes) -> None:  # type: ignore[no-untyped-def]
    # the module promises bit-for-bit equality (same batch boundaries), so the confidence and loss
    # arrays, not only the argmax, must match; otherwise a near-tie can flip `correct` at eps = 0
    res = outcomes[model]
    for cond in (attack("fgsm", 0.0), attack("pgd-linf", 0.0, PGD)):
        for name in ("confidence", "loss"):
            assert np.array_equal(res[cond.key][name], res["clean"][name]), (cond.key, name)


@pytest.mark.parametrize("model", ["cnn-batch", "mlp-layer"])
def test_attacks_hurt_accuracy(model: str, outcomes) -> None:  # type: ignore[no-untyped-def]
    res = outcomes[model]
    clean_acc = res["clean"]["correct"].mean()
    fgsm = res[attack("fgsm", 0.1).key]["correct"].mean()
    pgd = res[attack("pgd-linf", 0.1, PGD).key]["correct"].mean()
    assert fgsm < clean_acc and pgd < clean_acc
    assert pgd <= fgsm + 0.02  # PGD with worst-case bookkeeping is at least about as strong


@pytest.mark.parametrize("cond", [c for c in CONDITIONS if c.kind == "shift"], ids=lambda c: c.key)
def test_shifted_inputs_depend_only_on_the_condition(cond: Condition, models: dict[str, nn.Module], outcomes,
                                                     split: Split) -> None:  # type: ignore[no-untyped-def]
    x = torch.from_numpy(split.test.x)
    fn = shifts.get(cond.name)
    a = fn(x, cond.param("severity"), torch_generator(CONDITION_SEED, cond.key))
    b = fn(x, cond.param("severity"), torch_generator(CONDITION_SEED, cond.key))
    assert torch.equal(a, b)
    assert not torch.equal(a, x)
    # each model's recorded outcome is its prediction on exactly these shifted images
    for name, m in models.items():
        logits = predict(m, a, 128)
        assert np.array_equal(outcomes[name][cond.key]["pred"], logits.argmax(1).numpy()), name


def test_shift_outcomes_differ_from_clean(outcomes) -> None:  # type: ignore[no-untyped-def]
    res = outcomes["mlp-layer"]
    assert not np.array_equal(res[shift("gaussian-noise", 3).key]["confidence"], res["clean"]["confidence"])


@pytest.mark.parametrize("model", ["cnn-batch", "mlp-layer"])
def test_ood_conditions(model: str, outcomes, split: Split, ood_sets: dict[str, np.ndarray]) -> None:  # type: ignore[no-untyped-def]
    res = outcomes[model]
    faces = res[ood("faces", "msp").key]
    assert set(faces) == {"score_in", "score_out"}
    assert faces["score_in"].shape == (len(split.test.y),)
    assert faces["score_out"].shape == (len(ood_sets["faces"]),)
    assert np.isfinite(faces["score_in"]).all() and np.isfinite(faces["score_out"]).all()
    # score_in is the msp of the clean predictions
    np.testing.assert_allclose(faces["score_in"], res["clean"]["confidence"], rtol=1e-6)
    textures = res[ood("textures", "energy").key]
    assert textures["score_out"].shape == (len(ood_sets["textures"]),)


def test_evaluation_is_deterministic(models: dict[str, nn.Module], outcomes, split: Split,
                                     ood_sets: dict[str, np.ndarray]) -> None:  # type: ignore[no-untyped-def]
    again = _evaluate(models["cnn-batch"], split, ood_sets)
    for key, arrays in outcomes["cnn-batch"].items():
        for name, a in arrays.items():
            assert np.array_equal(a, again[key][name]), (key, name)


def test_attack_start_depends_on_the_training_seed(models: dict[str, nn.Module], split: Split,
                                                   ood_sets: dict[str, np.ndarray]) -> None:
    cond = [attack("pgd-linf", 0.1, (("restarts", 1), ("steps", 1)))]
    x, y = split.test.x[:100], split.test.y[:100]
    a = dict(evaluate(models["cnn-batch"], x, y, {}, cond, 0, CONDITION_SEED))
    b = dict(evaluate(models["cnn-batch"], x, y, {}, cond, 0, CONDITION_SEED))
    c = dict(evaluate(models["cnn-batch"], x, y, {}, cond, 1, CONDITION_SEED))
    assert np.array_equal(a[cond[0]]["loss"], b[cond[0]]["loss"])
    assert not np.array_equal(a[cond[0]]["loss"], c[cond[0]]["loss"])


def test_batch_size_does_not_change_clean_predictions(models: dict[str, nn.Module], split: Split) -> None:
    m = models["cnn-batch"]
    x = split.test.x[:100]
    small = dict(evaluate(m, x, split.test.y[:100], {}, [clean()], 0, 0, batch_size=7))
    large = dict(evaluate(m, x, split.test.y[:100], {}, [clean()], 0, 0, batch_size=512))
    assert np.array_equal(small[clean()]["pred"], large[clean()]["pred"])
    np.testing.assert_allclose(small[clean()]["loss"], large[clean()]["loss"], atol=1e-5)


def test_evaluate_puts_the_model_in_eval_mode(models: dict[str, nn.Module], split: Split) -> None:
    m = models["cnn-batch"]
    m.train()
    try:
        list(evaluate(m, split.test.x[:10], split.test.y[:10], {}, [clean()], 0, 0))
        assert not m.training
    finally:
        m.eval()


def test_predict_refuses_train_mode(models: dict[str, nn.Module], split: Split) -> None:
    m = models["mlp-layer"]
    m.train()
    try:
        with pytest.raises(RuntimeError, match="eval mode"):
            predict(m, torch.from_numpy(split.test.x[:4]), 2)
    finally:
        m.eval()


def test_predict_batches_and_no_grad(models: dict[str, nn.Module], split: Split) -> None:
    x = torch.from_numpy(split.test.x[:10])
    logits = predict(models["mlp-layer"], x, 3)
    assert logits.shape == (10, 10)
    assert not logits.requires_grad


# --- BatchNorm at test time --------------------------------------------------------------------


def _buffers(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("mode", ["batch", "adapt"])
def test_models_without_batchnorm_are_unaffected_by_the_mode(mode: str, models: dict[str, nn.Module],
                                                             split: Split) -> None:
    from harness.tasks.classify.evaluation import predict_bn

    model = models["mlp-layer"]
    x = torch.from_numpy(split.test.x)
    assert torch.equal(predict_bn(model, x, 128, mode), predict(model, x, 128))


def test_batch_mode_uses_batch_statistics_and_touches_nothing(models: dict[str, nn.Module], split: Split) -> None:
    import copy

    from harness.tasks.classify.evaluation import predict_bn

    model = models["cnn-batch"]
    x = torch.from_numpy(split.test.x)
    before = _buffers(model)
    got = predict_bn(model, x, len(x), "batch")
    reference = copy.deepcopy(model).train()  # training-mode BatchNorm on the whole test set
    with torch.no_grad():
        expected = reference(x)
    assert torch.allclose(got, expected, atol=1e-5)
    assert not torch.allclose(got, predict(model, x, len(x)), atol=1e-3)  # it is not the frozen mode
    assert not model.training and all(not m.training for m in model.modules())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items()), "running statistics changed"


def test_batch_mode_never_normalises_a_single_example(models: dict[str, nn.Module], split: Split) -> None:
    from harness.tasks.classify.evaluation import predict_bn

    x = torch.from_numpy(split.test.x[:9])  # batches of 4: 4, 4 and a lone example merged into the last
    assert predict_bn(models["cnn-batch"], x, 4, "batch").shape == (9, 10)


def test_adapt_mode_reestimates_on_the_inputs_and_leaves_the_model_alone(models: dict[str, nn.Module],
                                                                          split: Split) -> None:
    from harness.tasks.classify.evaluation import predict_bn

    model = models["cnn-batch"]
    x = torch.from_numpy(shifts.get("contrast")(torch.from_numpy(split.test.x), 5, torch_generator(0, "c")).numpy())
    before = _buffers(model)
    adapted = predict_bn(model, x, 128, "adapt")
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    y = torch.from_numpy(split.test.y)
    acc = {mode: float((predict_bn(model, x, 128, mode).argmax(1) == y).float().mean()) for mode in ("frozen",)}
    acc["adapt"] = float((adapted.argmax(1) == y).float().mean())
    assert acc["adapt"] > acc["frozen"]  # re-estimated statistics undo most of a contrast shift


def test_every_mode_sees_the_same_shifted_images(models: dict[str, nn.Module], split: Split) -> None:
    conds = [shift("gaussian-noise", 3), shift("gaussian-noise", 3, "batch"), shift("gaussian-noise", 3, "adapt")]
    out = {c.key: a for c, a in evaluate(models["mlp-layer"], split.test.x, split.test.y, {}, conds, 0,
                                         CONDITION_SEED, 128)}
    first = out[conds[0].key]
    assert all(np.array_equal(first["pred"], o["pred"]) for o in out.values())


def test_bn_modes_are_validated() -> None:
    from harness.errors import ConfigError
    from harness.specs import EvalSpec

    with pytest.raises(ConfigError, match="unknown BatchNorm test-time mode 'online'"):
        EvalSpec(bn_modes=("frozen", "online"))
    with pytest.raises(ConfigError, match="must start with 'frozen'"):
        EvalSpec(bn_modes=("batch",))
    with pytest.raises(ConfigError, match="must start with 'frozen'"):
        EvalSpec(bn_modes=("frozen", "batch", "batch"))
    with pytest.raises(ConfigError, match="prerendered_shifts and prerendered_dir go together"):
        EvalSpec(prerendered_shifts=("fog",))


# --- feature-based OOD scores ------------------------------------------------------------------


def test_mahalanobis_matches_a_direct_computation(models: dict[str, nn.Module], split: Split) -> None:
    from sklearn.covariance import EmpiricalCovariance

    from harness.ood import Mahalanobis
    from harness.tasks.classify.evaluation import features

    model = models["cnn-batch"]
    f_train = features(model, torch.from_numpy(split.train.x), 256).double()
    y_train = torch.from_numpy(split.train.y)
    f_test = features(model, torch.from_numpy(split.test.x[:20]), 256).double()
    got = Mahalanobis(ridge=0.0).fit(f_train, y_train)(f_test)
    means = np.stack([f_train[y_train == c].numpy().mean(0) for c in range(10)])
    cov = EmpiricalCovariance(assume_centered=True).fit(f_train.numpy() - means[y_train.numpy()]).covariance_
    prec = np.linalg.pinv(cov, hermitian=True)
    d = f_test.numpy()[:, None, :] - means[None]
    expected = -np.einsum("ncd,de,nce->nc", d, prec, d).min(1)
    assert np.allclose(got.numpy(), expected, rtol=1e-6, atol=1e-6)


def test_mahalanobis_in_evaluate_separates_far_ood(models: dict[str, nn.Module], split: Split,
                                                   ood_sets: dict[str, np.ndarray]) -> None:
    from harness.errors import ConfigError
    from harness.metrics import auroc

    conds = [ood("textures", "mahalanobis"), ood("faces", "mahalanobis")]
    out = dict(evaluate(models["cnn-batch"], split.test.x, split.test.y, ood_sets, conds, 0, CONDITION_SEED, 128,
                        fit_data=(split.train.x, split.train.y)))
    for cond in conds:
        assert out[cond]["score_in"].shape == (len(split.test.x),)
        assert auroc(out[cond]["score_in"], out[cond]["score_out"]) > 0.9
    with pytest.raises(ConfigError, match="fitted on training features"):
        list(evaluate(models["cnn-batch"], split.test.x, split.test.y, ood_sets, conds[:1], 0, CONDITION_SEED))


def test_natural_shift_is_scored_like_the_clean_split(models: dict[str, nn.Module], split: Split) -> None:
    from harness.specs import natural

    # the test split itself as a "natural shift" gives the clean outcomes; half of it gives half
    sets = {natural("same").key: (split.test.x, split.test.y),
            natural("half").key: (split.test.x[::2], split.test.y[::2])}
    out = {c.name: a for c, a in evaluate(models["mlp-layer"], split.test.x, split.test.y, {},
                                          [clean(), natural("same"), natural("half")], 0, CONDITION_SEED, 128,
                                          natural_sets=sets)}
    assert np.array_equal(out["same"]["pred"], out[""]["pred"])
    assert np.array_equal(out["half"]["correct"], out[""]["correct"][::2])
    with pytest.raises(ValueError, match="no images were given for the natural shift 'natural:other'"):
        list(evaluate(models["mlp-layer"], split.test.x, split.test.y, {}, [natural("other")], 0, CONDITION_SEED))
