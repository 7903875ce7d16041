"""Contract tests: one per plugin kind, parametrized over every entry of the real registries
(which come from the installed entry points), so a new built-in or a broken one is checked
without writing a test for it.

Contracts (see harness/models.py, shifts.py, attacks.py, ood.py, data.py and DESIGN.md):
norms keep the shape; denoisers map (x_t, t) to x_t's shape and start paired across norms;
models map [0, 1] images to (N, K) logits and start from bit-identical
linear/conv weights for every norm of a seed; shifts are pure, deterministic, in [0, 1] and
monotone in severity; attacks stay in the eps-ball and [0, 1], never mutate their input or the
model, and are exact at eps = 0; OOD scores are higher for more in-distribution logits;
datasets load as valid ImageSets; suites name only registered plugins.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import harness.registry as reg
from harness.data import ImageSet
from harness.errors import ConfigError
from harness.metricspec import Metric
from harness.models import build_model
from harness.runner import check_names
from harness.seeding import torch_generator
from harness.sources import load
from harness.specs import Suite, clean
from harness.tasks import Task

NORMS = reg.norms.names()
MODELS = reg.models.names()
DENOISERS = reg.denoisers.names()
SHIFTS = reg.shifts.names()
ATTACKS = reg.attacks.names()
OOD_SCORES = reg.ood_scores.names()
DATASETS = reg.datasets.names()
METRICS = reg.metrics.names()
SUITES = reg.suites.names()
TASKS = reg.tasks.names()



@pytest.fixture(scope="module")
def digits_batch() -> tuple[torch.Tensor, torch.Tensor]:
    d = load("digits")
    idx = np.arange(0, 1797, 90)  # 20 examples spread over the classes
    return torch.from_numpy(d.x[idx]), torch.from_numpy(d.y[idx])


def test_every_kind_has_entries() -> None:
    for names in (NORMS, MODELS, DENOISERS, SHIFTS, ATTACKS, OOD_SCORES, DATASETS, METRICS, SUITES):
        assert names, "a registry is empty: are the entry points installed (pip install -e .)?"


# --- norms -------------------------------------------------------------------------------------


@pytest.mark.parametrize("spatial", [True, False], ids=["spatial", "flat"])
@pytest.mark.parametrize("norm", NORMS)
def test_norm_contract(norm: str, spatial: bool) -> None:
    layer = reg.norms.get(norm)(16, spatial)
    assert isinstance(layer, nn.Module)
    g = torch.Generator().manual_seed(0)
    shape = (4, 16, 5, 5) if spatial else (4, 16)
    x = torch.randn(shape, generator=g) * 3 + 1
    for train in (True, False):
        layer.train(train)
        y = layer(x)
        assert y.shape == x.shape
        assert torch.isfinite(y).all()


# --- models ------------------------------------------------------------------------------------


def _build(model: str, norm: str, seed: int = 0) -> nn.Module:
    return build_model(model, norm, (1, 8, 8), 10, {}, None, torch_generator(seed, "init"))


def _linear_conv_params(m: nn.Module) -> list[torch.Tensor]:
    out = []
    for mod in m.modules():
        if isinstance(mod, (nn.Linear, nn.Conv2d)):
            out.append(mod.weight.detach())
            if mod.bias is not None:
                out.append(mod.bias.detach())
    return out


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("model", MODELS)
def test_model_contract(model: str, norm: str, digits_batch: tuple[torch.Tensor, torch.Tensor]) -> None:
    m = _build(model, norm)
    x = digits_batch[0][:4]
    for train in (True, False):
        m.train(train)
        logits = m(x)
        assert logits.shape == (4, 10)
        assert logits.dtype == torch.float32
        assert torch.isfinite(logits).all()
        feats = m.features(x)
        assert feats.ndim == 2 and feats.shape[0] == 4
    assert isinstance(m.net.head, nn.Linear)
    assert m.net.head.in_features == feats.shape[1]


@pytest.mark.parametrize("model", MODELS)
def test_model_init_is_paired_across_norms(model: str) -> None:
    reference = _linear_conv_params(_build(model, NORMS[0], seed=0))
    assert reference
    for norm in NORMS[1:]:
        params = _linear_conv_params(_build(model, norm, seed=0))
        assert len(params) == len(reference), norm
        for a, b in zip(params, reference, strict=True):
            assert a.shape == b.shape and torch.equal(a, b), f"{model}-{norm} starts from other weights"
    other = _linear_conv_params(_build(model, NORMS[0], seed=1))
    assert all(not torch.equal(a, b) for a, b in zip(other, reference, strict=True)), "seed 1 gave seed 0's weights"


# --- denoisers ---------------------------------------------------------------------------------


def _denoiser(model: str, norm: str, seed: int = 0, shape: tuple[int, int, int] = (1, 8, 8)) -> nn.Module:
    from harness.tasks.denoise.unet import build_denoiser

    return build_denoiser(norm, shape, {}, torch_generator(seed, "init"), model=model)


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("denoiser", DENOISERS)
def test_denoiser_contract(denoiser: str, norm: str) -> None:
    # forward(x_t, t) -> eps_hat of x_t's shape, finite in both modes, for 8x8 and 28x28 images
    for shape in ((1, 8, 8), (1, 28, 28)):
        m = _denoiser(denoiser, norm, shape=shape)
        assert tuple(m.in_shape) == shape  # type: ignore[arg-type]
        x_t = torch.randn((4, *shape), generator=torch.Generator().manual_seed(0))
        t = torch.tensor([0, 10, 50, 99])
        for train in (True, False):
            m.train(train)
            out = m(x_t, t)
            assert out.shape == x_t.shape and out.dtype == torch.float32 and torch.isfinite(out).all()
            assert m.training == train


@pytest.mark.parametrize("denoiser", DENOISERS)
def test_denoiser_init_is_paired_across_norms(denoiser: str) -> None:
    reference = _linear_conv_params(_denoiser(denoiser, NORMS[0]))
    assert reference
    for norm in NORMS[1:]:
        params = _linear_conv_params(_denoiser(denoiser, norm))
        assert len(params) == len(reference), norm
        for a, b in zip(params, reference, strict=True):
            assert a.shape == b.shape and torch.equal(a, b), f"{denoiser}-{norm} starts from other weights"
    other = _linear_conv_params(_denoiser(denoiser, NORMS[0], seed=1))
    assert all(not torch.equal(a, b) for a, b in zip(other, reference, strict=True)), "seed 1 gave seed 0's weights"


# --- shifts ------------------------------------------------------------------------------------

BATCH_SHAPES = [(6, 1, 8, 8), (3, 3, 16, 16)]


def _images(shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("shape", BATCH_SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("shift", SHIFTS)
def test_shift_contract(shift: str, shape: tuple[int, ...]) -> None:
    fn = reg.shifts.get(shift)
    x = _images(shape)
    x_before = x.clone()
    for severity in range(1, 6):
        out = fn(x, severity, torch_generator(0, "shift-test", severity))
        assert out.shape == x.shape and out.dtype == x.dtype
        assert not out.requires_grad
        assert out.min() >= 0 and out.max() <= 1
        assert torch.equal(x, x_before), f"{shift} modified its input"
        again = fn(x, severity, torch_generator(0, "shift-test", severity))
        assert torch.equal(out, again), f"{shift} is not deterministic for a given generator"


@pytest.mark.parametrize("severity", [0, 6, -1])
@pytest.mark.parametrize("shift", SHIFTS)
def test_shift_rejects_bad_severity(shift: str, severity: int) -> None:
    with pytest.raises(ConfigError, match="severity"):
        reg.shifts.get(shift)(_images((2, 1, 8, 8)), severity, torch_generator(0, "s"))


@pytest.fixture(scope="module")
def real_images() -> dict[str, torch.Tensor]:
    """Real images: 8x8 grayscale digits and 32x32 colour patches of a photograph."""
    from sklearn.datasets import load_sample_images

    from harness.sources import load

    photo = load_sample_images().images[0]
    patches = np.stack([photo[i:i + 32, j:j + 32] for i in range(0, 384, 48) for j in range(0, 600, 80)])
    return {"digits": torch.from_numpy(load("digits").x[:256]),
            "photo": torch.from_numpy(patches).permute(0, 3, 1, 2).float() / 255}


@pytest.mark.parametrize("images", ["digits", "photo"])
@pytest.mark.parametrize("shift", SHIFTS)
def test_shift_strength_grows_with_severity(shift: str, images: str, real_images: dict[str, torch.Tensor]) -> None:
    from harness.shifts import NOT_MONOTONE

    fn = reg.shifts.get(shift)
    x = real_images[images]
    # the same random draws at every severity, so the severities are compared, not the draws
    change = [float((fn(x, s, torch_generator(0, "monotone")) - x).abs().mean()) for s in range(1, 6)]
    if shift == "saturate" and images == "digits":  # grayscale has no saturation
        assert change == [0.0] * 5
        return
    assert min(change) > 0, f"{shift}: mean |x' - x| by severity {change}"
    if shift not in NOT_MONOTONE:
        steps = zip(change[:-1], change[1:], strict=True)
        assert all(a <= b + 1e-7 for a, b in steps), f"{shift}: mean |x' - x| by severity {change}"


# --- attacks -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cnn() -> nn.Module:
    m = build_model("cnn", "batch", (1, 8, 8), 10, {}, None, torch_generator(0, "init"))
    # give BatchNorm non-trivial running statistics, as after training
    d = load("digits")
    m.train()
    with torch.no_grad():
        for i in range(0, 256, 64):
            m(torch.from_numpy(d.x[i:i + 64]))
    return m.eval()


def _bn_state(m: nn.Module) -> list[torch.Tensor]:
    return [b.clone() for name, b in m.named_buffers()]


@pytest.mark.parametrize("train_mode", [False, True], ids=["was-eval", "was-train"])
@pytest.mark.parametrize("eps", [0.0, 0.05])
@pytest.mark.parametrize("attack", ATTACKS)
def test_attack_contract(attack: str, eps: float, train_mode: bool, cnn: nn.Module,
                         digits_batch: tuple[torch.Tensor, torch.Tensor]) -> None:
    x, y = digits_batch
    x_before = x.clone()
    buffers = _bn_state(cnn)
    atk = reg.attacks.get(attack)(eps=eps)
    cnn.train(train_mode)
    try:
        x_adv = atk.perturb(cnn, x, y, generator=torch_generator(0, "attack-test"))
        assert cnn.training is train_mode, f"{attack} did not restore the model's mode"
    finally:
        cnn.eval()
    assert x_adv.shape == x.shape and x_adv.dtype == x.dtype
    assert (x_adv - x).abs().max() <= eps + 1e-6
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    assert torch.equal(x, x_before), f"{attack} modified its input"
    assert all(p.grad is None for p in cnn.parameters()), f"{attack} left parameter gradients"
    same_buffers = all(torch.equal(a, b) for a, b in zip(_bn_state(cnn), buffers, strict=True))
    assert same_buffers, f"{attack} changed BatchNorm statistics"
    if eps == 0.0:
        assert torch.equal(x_adv, x)


@pytest.mark.parametrize("attack", ATTACKS)
def test_attack_changes_inputs_at_positive_eps(attack: str, cnn: nn.Module,
                                               digits_batch: tuple[torch.Tensor, torch.Tensor]) -> None:
    x, y = digits_batch
    x_adv = reg.attacks.get(attack)(eps=0.05).perturb(cnn, x, y, generator=torch_generator(0, "a"))
    assert (x_adv - x).abs().max() > 0.01


@pytest.mark.parametrize("eps", [-0.01, 1.01, float("nan")])
@pytest.mark.parametrize("attack", ATTACKS)
def test_attack_rejects_eps_outside_its_range(attack: str, eps: float) -> None:
    # eps is in [0, 1] input units; an L2 radius may exceed 1 (the ball of a whole image)
    cls = reg.attacks.get(attack)
    if eps > 1 and getattr(cls(eps=0.1), "norm", "linf") == "l2":
        assert cls(eps=eps).eps == eps
        return
    with pytest.raises(ConfigError, match="eps"):
        cls(eps=eps)


@pytest.mark.parametrize("attack", ATTACKS)
def test_attack_parameters_are_frozen(attack: str) -> None:
    atk = reg.attacks.get(attack)(eps=0.1)
    with pytest.raises(AttributeError):
        atk.eps = 0.2  # type: ignore[misc]


def test_pgd_same_generator_seed_same_output(cnn: nn.Module, digits_batch: tuple[torch.Tensor, torch.Tensor]) -> None:
    x, y = digits_batch
    pgd = reg.attacks.get("pgd-linf")(eps=0.1, steps=3)
    a = pgd.perturb(cnn, x, y, generator=torch_generator(3, "pgd"))
    b = pgd.perturb(cnn, x, y, generator=torch_generator(3, "pgd"))
    c = pgd.perturb(cnn, x, y, generator=torch_generator(4, "pgd"))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)  # the random start does depend on the generator


# --- OOD scores --------------------------------------------------------------------------------


def _feature_based(score: str) -> bool:
    return getattr(reg.ood_scores.get(score), "needs", "logits") == "features"


@pytest.mark.parametrize("score", OOD_SCORES)
def test_ood_score_contract(score: str) -> None:
    plugin = reg.ood_scores.get(score)
    assert "higher" in (plugin.__doc__ or "").lower(), "the docstring must say which direction is in-distribution"
    gen = torch.Generator().manual_seed(0)
    if _feature_based(score):
        feats, labels = torch.randn(60, 16, generator=gen), torch.arange(60) % 3
        fn = plugin().fit(feats, labels)
        s = fn(torch.randn(7, 16, generator=gen) * 1000)  # far-away features must not overflow
    else:
        logits = torch.randn(7, 10, generator=gen) * 5
        logits[0] = 1000.0  # large logits must not overflow
        s = plugin(logits)
    assert s.shape == (7,)
    assert torch.isfinite(s).all()


@pytest.mark.parametrize("score", OOD_SCORES)
def test_ood_score_typical_input_is_more_in_distribution(score: str) -> None:
    if _feature_based(score):  # a point at a class mean against one far from every class
        gen = torch.Generator().manual_seed(1)
        labels = torch.arange(90) % 3
        centres = torch.tensor([[5.0, 0.0, 0.0, 0.0], [0.0, 5.0, 0.0, 0.0], [0.0, 0.0, 5.0, 0.0]])
        feats = centres[labels] + torch.randn(90, 4, generator=gen)
        s = reg.ood_scores.get(score)().fit(feats, labels)(torch.stack([centres[1], torch.full((4,), 20.0)]))
    else:  # a confident row against a uniform one
        confident = torch.zeros(10)
        confident[3] = 10.0
        s = reg.ood_scores.get(score)(torch.stack([confident, torch.zeros(10)]))
    assert s[0] > s[1]


# --- datasets ----------------------------------------------------------------------------------


@pytest.mark.parametrize("dataset", DATASETS)
def test_dataset_contract(dataset: str, request: pytest.FixtureRequest) -> None:
    from harness.data import MissingDataError

    try:
        d = load(dataset)
    except MissingDataError:  # user-supplied data (MNIST, ...): tox fills the data root, see tox.ini
        request.getfixturevalue("filled_root")  # skips, or with CI set fails, saying how to fill it
        raise  # the data root is filled and this dataset is still missing: a failure
    assert isinstance(d, ImageSet)
    assert d.x.dtype == np.float32 and d.x.ndim == 4
    assert d.x.min() >= 0 and d.x.max() <= 1
    assert d.x.shape[1] in (1, 3)
    assert d.source
    if d.y is not None:
        assert d.y.dtype == np.int64 and d.y.shape == (len(d.x),)


def test_digits_dataset() -> None:
    d = load("digits")
    assert d.x.shape == (1797, 1, 8, 8)
    assert d.y is not None and sorted(set(d.y.tolist())) == list(range(10))
    assert d.n_classes == 10 and len(d.classes) == 10


# --- metrics -----------------------------------------------------------------------------------


@pytest.mark.parametrize("metric", METRICS)
def test_metric_contract(metric: str) -> None:
    """A metric is a harness.metricspec.Metric under its own name; the report reads its direction,
    range and text from it, and its function (if it has one) stays in that range."""
    spec = reg.metrics.get(metric)
    assert isinstance(spec, Metric) and spec.name == metric
    low, high = spec.bounds
    assert low < high and spec.describe().startswith(f"{spec.text} ({spec.better} is better")
    if spec.fn is None:
        # a way in: the stored per-example array it averages (a denoiser's loss, a language model's bpc) or mCE's
        assert spec.level == "seed" or spec.per_example is not None or spec.group == "corruption", \
            "an example-level metric needs a way in"
        return
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 40)
    probs = rng.dirichlet(np.ones(3), 40)
    two = (rng.normal(1, 1, 40), rng.normal(0, 1, 30))  # (score_in, score_out)
    args = {"accuracy": (rng.random(40) < 0.7,), "ood": two, "privacy": two,
            "calibration": (probs.max(1), probs.argmax(1) == labels) if metric == "ece" else (probs, labels)}
    value = spec.fn(*args[spec.group])
    assert isinstance(value, float) and low <= value <= high


# --- tasks -------------------------------------------------------------------------------------


@pytest.mark.parametrize("task", TASKS)
def test_task_contract(task: str) -> None:
    """A task kind is a harness.tasks.Task under its own name, exercised by a registered suite; its
    battery starts clean with unique keys, every metric it reports is registered, its sanity checks
    exist, its per-example outcome is what one of its metrics averages, and its worst case over
    attacks is never better than a single attack (by that metric's direction) and equals an attack
    that is alone."""
    from harness.reports.checks import CHECKS

    t = reg.tasks.get(task)
    assert isinstance(t, Task) and t.name == task and t.description
    assert set(t.checks) <= {f.__name__ for f in CHECKS}
    suites = [s for name in SUITES if (s := reg.suites.get(name)).task == task]
    assert suites, f"no registered suite has task {task!r}, so nothing exercises it"
    outcome_metrics = set()
    for s in suites:
        t.validate(s)
        conds = t.conditions(s)
        assert conds[0] == clean() and len({c.key for c in conds}) == len(conds)
        for c in conds:
            for m in t.metrics(c):
                assert m in reg.metrics, f"task {task!r} reports {m!r} on {c.key}, an unregistered metric"
                if reg.metrics.get(m).per_example == t.outcome:
                    outcome_metrics.add(m)
    assert len(outcome_metrics) == 1, f"{t.outcome!r} is averaged by {outcome_metrics}, not by exactly one metric"
    higher = reg.metrics.get(outcome_metrics.pop()).higher_is_better
    rng = np.random.default_rng(0)
    stacked = rng.random((3, 50)) < 0.6 if t.outcome == "correct" else rng.gamma(2.0, 1.0, (3, 50))
    worst = t.worst_case(stacked)
    assert worst.shape == (50,)
    assert (worst <= stacked.min(0) if higher else worst >= stacked.max(0)).all()
    assert (t.worst_case(stacked[:1]) == stacked[0]).all()


# --- suites ------------------------------------------------------------------------------------


@pytest.mark.parametrize("suite", SUITES)
def test_suite_contract(suite: str) -> None:
    s = reg.suites.get(suite)
    assert isinstance(s, Suite)
    assert s.name == suite
    check_names(s)  # raises UnknownNameError for any plugin the suite names but nobody registered
    keys = [c.key for c in s.conditions()]
    assert len(keys) == len(set(keys)), "two conditions share a key, so their cells would collide"
    assert keys[0] == "clean"
    assert s.__class__.__module__ and (reg.suites.get(suite).description.strip())


def _claim_rows(s: Suite) -> dict[str, list[str]]:
    """Per declared claim, the (variant vs baseline) pairs of ``s`` it selects."""
    from harness.specs import Claim

    pairs = s.comparisons()
    return {c.text: [f"{v.name} vs {b.name}" for v, b in pairs
                     if c.names(v.family if c.condition.startswith("sweep:") else v.name)
                     and (not c.norms or v.norm in c.norms)] for c in s.claims if isinstance(c, Claim)}


@pytest.mark.parametrize("suite", SUITES)
def test_every_claim_of_a_suite_selects_a_comparison(suite: str) -> None:
    # a claim whose norms or variant patterns match no pair would only ever read "not evaluated"
    s = reg.suites.get(suite)
    for text, rows in _claim_rows(s).items():
        assert rows, f"{suite}: claim {text!r} selects no variant-baseline pair"


@pytest.mark.parametrize("suite", SUITES)
def test_every_declared_size_of_a_suite_is_runnable_and_keeps_its_claims(suite: str) -> None:
    s = reg.suites.get(suite)
    for size in s.sizes:
        small = s.with_size(size.name)
        check_names(small)
        assert small.size == size.name and small.sizes == ()
        assert small.comparisons(), f"{suite} at size {size.name} compares nothing"
        assert all(small.with_size(size.name) is small for _ in (0,))
        # CI runs the reduced size: every kind of claim the suite makes must be judged there too
        assert any(_claim_rows(small).values()) or not _claim_rows(s), f"{suite} {size.name}: no claim is judged"


def test_the_cifar10c_corruptions_are_all_registered() -> None:
    from harness.shifts import CIFAR10_C, HELD_OUT, NOT_MONOTONE

    assert len(CIFAR10_C) == 15 and len(HELD_OUT) == 4
    assert set(CIFAR10_C) | set(HELD_OUT) <= set(SHIFTS)
    assert set(NOT_MONOTONE) <= set(SHIFTS)
