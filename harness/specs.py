"""Frozen specifications: what a suite declares and what a cell is.

Everything that determines a result lives in one of these dataclasses, so a cell's key can be
a hash of their JSON form (:func:`harness.store.cell_key`). Validation happens here, at the
edge, and raises :class:`~harness.errors.ConfigError` with a hint.
"""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from harness.errors import ConfigError, unknown_name, unprintable

# "sweep" names a training sweep in report comparisons (harness.reports.training), never an evaluation cell
ConditionKind = Literal["clean", "shift", "natural", "ood", "attack", "check", "sweep", "samples", "membership",
                        "cost"]
Param = tuple[str, Any]

SEVERITIES = (1, 2, 3, 4, 5)
BN_MODES = ("frozen", "batch", "adapt")  # how BatchNorm statistics are used at test time


def _check(ok: bool, message: str, hint: str) -> None:
    if not ok:
        raise ConfigError(message, hint=hint)


def _check_shown(what: str, text: str) -> None:
    """Refuse a name or claim that no report could show as it is: a control character (ESC
    starts terminal escape sequences), a line break (it would end a table row or a heading) or a
    bidirectional control (it reorders the text around it)."""
    bad = unprintable(text) if isinstance(text, str) else None
    _check(bad is None, f"{what} {text!r} contains {bad!r}, a control character or line break",
           "names and claims are shown in reports and on the terminal: use printable characters on one line")


# Seeds are stored as SQLite integers (signed 64-bit) and must fit torch's generators.
MAX_SEED = 2**63 - 1


@dataclass(frozen=True)
class Variant:
    """One filling of the normalization slot of one architecture.

    ``name`` is what reports show (``cnn-batch``); ``norm`` is a registered norm; ``model`` is a
    registered model, or a model the harness did not write: an importable factory
    ``"package.module:name"`` (a suite file's folder is importable) called with ``options``, whose
    every normalization layer is swapped for ``norm`` (harness.normswap; norm ``"as-built"``
    keeps the model's own layers; :meth:`of` takes the factory itself in Python);
    ``standardize`` puts an input-standardization layer first (a separate factor); ``options``
    are extra keyword arguments for the model constructor.
    ``train`` overrides fields of the suite's TrainSpec for this variant alone: a point of a sweep
    (:func:`sweep`), such as ``(("lr", 0.1),)``, named ``mlp-batch@lr=0.1``. ``compare_to`` names
    the variant this one is compared with when the automatic rule (same model, options and recipe with the suite's
    baseline norm) does not fit, e.g. a post-LN transformer against the one without norms.
    ``weights`` names pretrained weights to load instead of training (harness.weights: a
    ``.safetensors`` or ``.pt``/``.pth`` state-dict file, ``torchvision:ARCH.WEIGHTS`` from the
    local torch hub cache, ``hf:REPO[#file=NAME]`` from the Hugging Face hub or its cache); the
    model is then evaluated on the whole battery like a trained one, with no training record.
    ``trained_on`` names the dataset those weights were trained on (as the suite names its data, e.g.
    ``mnist-train``): where it is the data the suite tests on, the report says the loaded model is
    scored on data it was trained on (harness.reports.content.loaded_data_notes).
    """

    name: str
    model: str
    norm: str
    standardize: bool = False
    options: tuple[Param, ...] = ()
    train: tuple[Param, ...] = ()
    compare_to: str = ""
    weights: str | None = None
    trained_on: str | None = None

    def __post_init__(self) -> None:
        _check_shown("variant name", self.name)
        _check(self.trained_on is None or (self.weights is not None and isinstance(self.trained_on, str)
                                            and bool(self.trained_on.strip())),
               f"variant {self.name!r} says what it was trained on ({self.trained_on!r}) but loads no weights"
               if self.weights is None else f"variant {self.name!r} names an empty trained_on",
               "trained_on names the dataset a variant's loaded weights were trained on, e.g. 'mnist-train'")
        fields = {f.name for f in dataclasses.fields(TrainSpec)}
        for k, _ in self.train:
            _check(k in fields, f"variant {self.name!r} overrides unknown training setting {k!r}",
                   f"use fields of TrainSpec: {', '.join(sorted(fields))}")
        if self.weights is not None:
            _check(isinstance(self.weights, str) and bool(self.weights.strip()),
                   f"variant {self.name!r} names empty weights {self.weights!r}",
                   "give a file path, torchvision:ARCH.WEIGHTS or hf:REPO, or weights=None to train")
            _check(not self.train, f"variant {self.name!r} loads weights and overrides training settings "
                   f"({sweep_point(self.train)})", "a loaded model is not trained: drop the overrides or the weights")

    @classmethod
    def of(cls, name: str, factory: Callable[..., Any], norm: str, **fields: Any) -> Variant:
        """A variant of a model the harness did not write, from its factory itself (a module-level
        function or class, called with ``options``): stored by name as ``"package.module:name"``
        (harness.models.factory_name), so worker processes and a resumed run import the same one.
        ``fields`` are the other fields (``options``, ``weights``, ...)."""
        from harness.models import factory_name

        return cls(name, factory_name(factory), norm, **fields)

    @property
    def family(self) -> str:
        """The name without the sweep point: every point of ``mlp-batch@lr=0.1`` is ``mlp-batch``."""
        return family_of(self.name)

    def recipe(self, base: TrainSpec) -> TrainSpec:
        """The suite's recipe ``base`` with this variant's overrides (validated again)."""
        return dataclasses.replace(base, **dict(self.train)) if self.train else base

    def baseline(self, norm: str = "none") -> Variant:
        """The same architecture, input handling and sweep point with ``norm`` in the slot."""
        name = variant_name(self.model, norm, self.standardize) + (f"@{sweep_point(self.train)}" if self.train else "")
        return dataclasses.replace(self, name=name, norm=norm, compare_to="")


def family_of(name: str) -> str:
    """A variant name without its sweep point (``mlp-batch@lr=0.1`` -> ``mlp-batch``)."""
    return name.split("@", 1)[0]


def variant_name(model: str, norm: str, standardize: bool = False) -> str:
    return f"{model}-{norm}" + ("-std" if standardize else "")


def sweep_point(train: tuple[Param, ...]) -> str:
    """The text form of a sweep point, e.g. ``lr=0.1`` or ``batch_size=8,lr=0.01``."""
    return ",".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in train)


def sweep(variants: tuple[Variant, ...], **grid: tuple[Any, ...]) -> tuple[Variant, ...]:
    """Every variant at every point of ``grid`` (TrainSpec fields to their values), as variants
    named ``<name>@<point>``: learning rate and batch size become factors of the design, each
    point paired with the baseline at the same point. ``sweep(vs, lr=(1e-3, 1e-2))``."""
    import itertools

    _check(bool(grid) and all(len(v) for v in grid.values()), "a sweep needs at least one value per setting",
           "e.g. sweep(variants, lr=(0.001, 0.01, 0.1))")
    keys = sorted(grid)
    return tuple(dataclasses.replace(v, name=f"{v.name}@{sweep_point(point)}", train=point)
                 for v in variants for values in itertools.product(*(grid[k] for k in keys))
                 for point in [tuple(zip(keys, values, strict=True))])


@dataclass(frozen=True)
class TrainSpec:
    """A training recipe, identical for every variant of a suite.

    ``target_accuracy`` is the held-out accuracy whose first crossing is recorded (steps and
    seconds to target); ``eval_every`` is how often, in steps, the held-out curve is sampled;
    a run diverges when its loss is non-finite or exceeds ``divergence_factor`` times the loss
    of its first step.
    """

    epochs: int = 12  # passes over the training part
    batch_size: int = 32  # training examples per step
    lr: float = 1e-3  # the optimizer's learning rate
    optimizer: Literal["adam", "sgd"] = "adam"  # torch's Adam, or SGD with momentum
    momentum: float = 0.9  # SGD's momentum (Adam ignores it)
    weight_decay: float = 0.0  # L2 penalty passed to the optimizer
    target_accuracy: float = 0.95
    eval_every: int = 10
    divergence_factor: float = 100.0

    def __post_init__(self) -> None:
        _check(self.epochs >= 1, f"epochs must be at least 1, got {self.epochs}", "pass --epochs 1 or more")
        _check(self.batch_size >= 1, f"batch_size must be positive, got {self.batch_size}", "use e.g. 32")
        _check(self.lr > 0, f"learning rate must be positive, got {self.lr}", "use e.g. 1e-3")
        _check(self.optimizer in ("adam", "sgd"), f"unknown optimizer {self.optimizer!r}", "use 'adam' or 'sgd'")
        _check(0 < self.target_accuracy <= 1, f"target_accuracy {self.target_accuracy} is not in (0, 1]",
               "give a fraction such as 0.95")
        _check(self.eval_every >= 1, f"eval_every must be positive, got {self.eval_every}", "use e.g. 10")
        _check(self.weight_decay >= 0, f"weight_decay must be non-negative, got {self.weight_decay}", "use e.g. 0")
        _check(0 <= self.momentum < 1, f"momentum {self.momentum} is not in [0, 1)", "use e.g. 0.9")
        _check(self.divergence_factor > 1, f"divergence_factor must exceed 1, got {self.divergence_factor}",
               "use e.g. 100: a loss 100x the first step's counts as divergence")


@dataclass(frozen=True)
class AttackSpec:
    """An attack swept over ``eps`` with fixed ``params``. What eps measures is the suite's task's: for
    images, radii in [0, 1] input units (the image tasks check the range); for text, radii in units of a
    model's embedding scale or a number of character flips (harness.textattacks)."""

    name: str  # a registered attack of the suite's task (harness list attacks, harness list text-attacks)
    eps: tuple[float, ...]
    params: tuple[Param, ...] = ()

    def __post_init__(self) -> None:
        for e in self.eps:
            _check(e >= 0.0, f"attack {self.name}: eps {e} is negative", "give radii of 0 or more, e.g. 0.1")


@dataclass(frozen=True)
class EvalSpec:
    """The evaluation battery run on every trained model.

    ``bn_modes`` says how BatchNorm statistics are used at test time, a factor of the battery:
    ``frozen`` (the running statistics from training: every condition), and optionally
    ``batch`` (each test batch's own statistics) and ``adapt`` (statistics re-estimated on the
    condition's test images, then frozen), which re-run the clean and shifted conditions. Models
    without BatchNorm give the same outcomes in every mode. ``natural_shifts`` names labelled
    datasets with the suite's classes drawn from another source (brought to the test images'
    shape), scored like the clean test split. ``prerendered_dir`` is a folder in the CIFAR-10-C
    layout (``<name>.npy`` holding severities 1-5 stacked, and ``labels.npy``); each of
    ``prerendered_shifts`` is scored at every severity like a natural shift (the images come
    with their own labels, so they need not be the suite's test split). With attacks in the battery and ``checks``
    on, the adversarial sanity checks run too: random noise and a transfer attack from the
    paired variant at ``check_eps``, the suite's most thorough attack with twice its steps at
    ``check_eps``, PGD at ``large_eps`` (which must reach chance), input gradients, repeated
    passes and batch composition (see harness.reports.checks).
    """

    shifts: tuple[str, ...] = ("gaussian-noise", "gaussian-blur", "contrast")  # registered corruptions of the task
    severities: tuple[int, ...] = SEVERITIES  # the severities (1-5) every corruption is scored at
    ood_sets: tuple[str, ...] = ()  # datasets (or sources) scored as out-of-distribution against the test split
    natural_shifts: tuple[str, ...] = ()
    prerendered_dir: str | None = None
    prerendered_shifts: tuple[str, ...] = ()
    ood_scores: tuple[str, ...] = ("msp",)  # registered OOD scores, each applied to every OOD set
    attacks: tuple[AttackSpec, ...] = ()  # each swept over its radii on the test split
    batch_size: int = 512  # examples per forward pass when evaluating
    bn_modes: tuple[str, ...] = ("frozen",)
    checks: bool = True
    check_eps: float = 0.1
    large_eps: float = 0.5
    membership: bool = True  # the loss-threshold membership attack (training examples against held-out ones)
    cost: bool = True  # inference cost: latency, throughput, peak memory, parameters and FLOPs (and folded BatchNorm)
    cost_batch_size: int = 256  # the large batch of the inference-cost measurement (the other is batch 1)
    cost_repeats: int = 20  # timed repeats of each inference-cost measurement (the interval is over them)

    def __post_init__(self) -> None:
        _check(self.cost_batch_size >= 1 and self.cost_repeats >= 2,
               f"cost_batch_size {self.cost_batch_size} and cost_repeats {self.cost_repeats} are too small",
               "use cost_batch_size >= 1 and cost_repeats >= 2 (an interval needs two repeats)")
        for e in (self.check_eps, self.large_eps):
            _check(0 < e <= 1, f"check eps {e} is outside (0, 1]", "use e.g. check_eps=0.1, large_eps=0.5")
        for s in self.severities:
            _check(s in SEVERITIES, f"severity {s} is outside 1-5", "use severities from 1 to 5")
        _check(bool(self.prerendered_shifts) == (self.prerendered_dir is not None),
               "prerendered_shifts and prerendered_dir go together",
               "name the folder (prerendered_dir) and the corruptions in it (prerendered_shifts)")
        for m in self.bn_modes:
            _check(m in BN_MODES, f"unknown BatchNorm test-time mode {m!r}", f"use one of {', '.join(BN_MODES)}")
        _check(len(self.bn_modes) == len(set(self.bn_modes)) and self.bn_modes[:1] == ("frozen",),
               f"bn_modes {self.bn_modes!r} must start with 'frozen' and name each mode once",
               "use e.g. bn_modes=('frozen', 'batch', 'adapt')")


@dataclass(frozen=True)
class DiffusionSpec:
    """What a denoise suite (``Suite(task="denoise", task_options=DiffusionSpec(...))``) adds to its recipe
    and battery: the denoise task's options type (harness.tasks.Task.options_type).

    Training: the noise schedule has ``steps`` (T) steps (harness.tasks.denoise.schedule.NoiseSchedule, the
    DDPM linear schedule scaled to T); ``target_loss`` is the held-out denoising loss
    (harness.tasks.denoise.training.held_out_loss, the per-pixel "L_simple" over ``val_draws`` draws of
    (t, noise) per validation image) whose first crossing is recorded as steps and seconds to
    target, as ``TrainSpec.target_accuracy`` is for classifiers (which a denoise suite ignores).

    Evaluation: the per-example ELBO-style loss uses ``n_t`` stratified timesteps; the samples
    condition generates ``samples`` images per model and judges them with the suite's own
    classifier, ``judge_model`` with ``judge_norm`` and ``judge_options``, trained with
    ``judge_train`` from seed ``judge_seed`` on the suite's split (once per run; its test accuracy
    is recorded beside the report).
    """

    target_loss: float
    steps: int = 100
    val_draws: int = 2
    n_t: int = 10
    samples: int = 256
    judge_model: str = "cnn"
    judge_norm: str = "batch"
    judge_options: tuple[Param, ...] = (("channels", (16, 32)),)
    judge_train: TrainSpec = field(default_factory=lambda: TrainSpec(epochs=12, batch_size=32, lr=1e-3))
    judge_seed: int = 0

    def __post_init__(self) -> None:
        import math

        _check(isinstance(self.target_loss, (int, float)) and math.isfinite(self.target_loss)
               and self.target_loss > 0, f"target_loss must be a positive number, got {self.target_loss!r}",
               "give a held-out denoising loss to reach, e.g. target_loss=0.2")
        # the DDPM schedule scaled to T steps (harness.tasks.denoise.schedule.NoiseSchedule) has beta_T = 20 / T < 1
        for name, low in (("steps", 21), ("val_draws", 1), ("n_t", 1), ("samples", 2)):
            value = getattr(self, name)
            _check(isinstance(value, int) and not isinstance(value, bool) and value >= low,
                   f"diffusion {name} must be an integer of at least {low}, got {value!r}",
                   "e.g. steps=100, val_draws=2, n_t=10, samples=256 (a schedule needs at least 21 steps)")
        _check(self.n_t <= self.steps, f"diffusion n_t {self.n_t} exceeds the schedule's {self.steps} steps",
               "use at most one ELBO timestep per schedule step")

    def train_params(self) -> dict[str, Any]:
        """What determines a denoiser's training cell (beside the suite's TrainSpec)."""
        return {"steps": self.steps, "target_loss": self.target_loss, "val_draws": self.val_draws}

    def eval_params(self) -> dict[str, Any]:
        """What determines a denoiser's evaluation cells (beside the trained model)."""
        return {"n_t": self.n_t, "samples": self.samples, "judge": self.judge_params()}

    def judge_params(self) -> dict[str, Any]:
        return {"model": self.judge_model, "norm": self.judge_norm, "options": dict(self.judge_options),
                "train": dataclasses.asdict(self.judge_train), "seed": self.judge_seed}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DiffusionSpec:
        opts = d.get("judge_options", ())
        pairs = opts.items() if isinstance(opts, dict) else opts  # JSON turned the tuples to lists
        out = {**d, "judge_options": tuple((k, tuple(v) if isinstance(v, list) else v) for k, v in pairs)}
        if isinstance(d.get("judge_train"), dict):  # JSON and dataclasses.asdict turn the TrainSpec to a dict
            out["judge_train"] = TrainSpec(**d["judge_train"])
        return cls(**out)


@dataclass(frozen=True)
class Condition:
    """One evaluation setting. ``params`` is a sorted tuple of (name, value) pairs."""

    kind: ConditionKind
    name: str = ""
    params: tuple[Param, ...] = ()

    @property
    def key(self) -> str:
        """Stable text form, e.g. ``attack:pgd-linf:eps=0.1,steps=10``."""
        ps = ",".join(f"{k}={v}" for k, v in self.params)
        return ":".join(p for p in (self.kind, self.name, ps) if p)

    def param(self, name: str) -> Any:
        return dict(self.params)[name]

    @property
    def bn_mode(self) -> str:
        """How BatchNorm statistics are used for this condition (see EvalSpec.bn_modes)."""
        return str(dict(self.params).get("bn", "frozen"))

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "params": dict(self.params)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Condition:
        return cls(d["kind"], d.get("name", ""), tuple(sorted(d.get("params", {}).items())))


def _bn(bn_mode: str) -> tuple[Param, ...]:
    """The condition parameter of a BatchNorm test-time mode; none for the default, 'frozen'."""
    return () if bn_mode == "frozen" else (("bn", bn_mode),)


def clean(bn_mode: str = "frozen") -> Condition:
    return Condition("clean", "", _bn(bn_mode))


def shift(name: str, severity: int, bn_mode: str = "frozen") -> Condition:
    return Condition("shift", name, tuple(sorted((("severity", severity), *_bn(bn_mode)))))


def natural(dataset: str, severity: int | None = None) -> Condition:
    """A natural shift: another labelled dataset with the same classes, e.g. MNIST digits
    redrawn in the UCI 8x8 format for a model trained on scikit-learn's digits; with a
    ``severity``, one severity of a pre-rendered corruption set (EvalSpec.prerendered_dir)."""
    return Condition("natural", dataset, () if severity is None else (("severity", severity),))


def ood(ood_set: str, score: str) -> Condition:
    return Condition("ood", ood_set, (("score", score),))


def attack(name: str, eps: float, params: tuple[Param, ...] = ()) -> Condition:
    return Condition("attack", name, tuple(sorted((("eps", float(eps)), *params))))


def samples() -> Condition:
    """A denoise suite's sample-quality condition: generated images judged by the suite's classifier."""
    return Condition("samples")


def membership(attack: str = "loss") -> Condition:
    """A membership-inference condition: ``attack`` ("loss", the loss-threshold attack of Yeom et al. 2018)
    scores the model's training examples against held-out ones."""
    return Condition("membership", attack)


def cost(fold: bool = False) -> Condition:
    """The inference-cost condition: latency, throughput, peak memory, parameters and FLOPs of the model as
    trained, or with ``fold`` its BatchNorm layers folded into the layer before them (where they can be)."""
    return Condition("cost", "", (("fold", True),) if fold else ())


def check(name: str, **params: Any) -> Condition:
    """A sanity-check condition of the adversarial battery (see harness.tasks.classify.evaluation.CHECKS)."""
    return Condition("check", name, tuple(sorted((k, float(v) if k == "eps" else v) for k, v in params.items())))


CLAIM_DIRECTIONS = ("lower", "higher", "not-higher", "not-lower")


@dataclass(frozen=True)
class Claim:
    """A directional claim a suite tests: each variant with one of ``norms`` against the same model
    with the suite's baseline norm, on ``metric`` under the conditions ``condition`` matches.

    ``direction`` says how the variant's value relates to the baseline's: "lower" / "higher" (a
    difference), or "not-higher" / "not-lower" (no difference beyond ``margin``, in the metric's
    units, e.g. 0.02 for 2 accuracy points). ``condition`` is a shell pattern over condition keys
    ("clean", "attack:pgd-linf:eps=0.1*", "shift:*"), "training" for training metrics, or
    "sweep:<setting>" for a sweep's metrics (``converged_fraction``: the share of the sweep's points
    at which a seed's run reached the target without diverging). Empty ``norms`` means every
    normalized variant; ``variants`` are shell patterns over variant names (``("*@batch_size=4",)``,
    ``("vit-layer", "vit-rms")``), empty for every variant. The report gives each claim a verdict.
    """

    text: str  # the claim in words, as the report shows it beside its verdict
    metric: str
    direction: str
    condition: str = "training"
    norms: tuple[str, ...] = ()
    margin: float = 0.0
    variants: tuple[str, ...] = ()

    def names(self, variant: str) -> bool:
        """Whether the claim is about ``variant`` (a name, or a sweep's family name)."""
        from fnmatch import fnmatchcase

        return not self.variants or any(fnmatchcase(variant, p) for p in self.variants)

    def __post_init__(self) -> None:
        _check_shown("claim", self.text)
        _check(self.direction in CLAIM_DIRECTIONS, f"claim {self.text!r} has direction {self.direction!r}",
               f"use one of {', '.join(CLAIM_DIRECTIONS)}")
        from harness.registry import metrics

        compared = [n for n in metrics.names() if metrics.get(n).compared]
        _check(self.metric in compared, f"claim {self.text!r} is about metric {self.metric!r}, which no report "
               "compares", f"use one of {', '.join(compared)}")
        group = metrics.get(self.metric).group
        kind = group if group in ("training", "sweep") else "eval"
        said = "training" if self.condition == "training" else "sweep" if self.condition.startswith("sweep:") \
            else "eval"
        _check(kind == said, f"claim {self.text!r} pairs metric {self.metric!r} with condition {self.condition!r}",
               "training metrics take condition 'training', converged_fraction 'sweep:lr' (the swept setting), "
               "evaluation metrics a condition pattern such as 'clean'")
        _check(self.margin >= 0, f"claim {self.text!r} has a negative margin {self.margin}", "use a margin >= 0")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Claim:
        return cls(**{**d, "norms": tuple(d.get("norms", ())), "variants": tuple(d.get("variants", ()))})


REFERENCE_DIRECTIONS = (*CLAIM_DIRECTIONS, "about")


@dataclass(frozen=True)
class Expected:
    """One outcome a published result expects, stated on this suite's records (see :class:`Reference`).

    A contrast (``direction`` lower / higher / not-higher / not-lower): ``variant`` on ``condition``
    minus ``baseline`` (default: the same variant) on ``baseline_condition`` (default: the same
    condition), paired per seed and on the same test examples, is below / above 0, or not above
    ``margin`` / not below ``-margin`` (in the metric's units). Two variants on one condition
    compare models; one variant on two conditions compares conditions (APGD against PGD at one eps,
    BatchNorm statistics re-estimated against frozen). A value (``direction`` "about"):
    ``variant``'s estimate of ``metric`` on ``condition`` is ``value`` within ``margin``.
    ``condition`` is a condition key as the report names it (``clean``, ``shift:all:bn=adapt``,
    ``attack:apgd-ce:eps=0.1,steps=100``; ``harness show SUITE --json`` lists a suite's), or
    ``training`` for a training metric (compared between two variants only).
    """

    metric: str
    variant: str
    direction: str
    condition: str = "clean"
    baseline: str = ""
    baseline_condition: str = ""
    margin: float = 0.0
    value: float | None = None

    def __post_init__(self) -> None:
        from harness.registry import metrics

        where = f"expected outcome ({self.variant}, {self.metric}, {self.condition})"
        _check(self.direction in REFERENCE_DIRECTIONS, f"{where} has direction {self.direction!r}",
               f"use one of {', '.join(REFERENCE_DIRECTIONS)}")
        metrics.entry(self.metric)  # an unknown metric fails with "did you mean"
        _check(self.margin >= 0, f"{where} has a negative margin {self.margin}", "use a margin >= 0")
        if self.direction == "about":
            _check(self.value is not None and not self.baseline and not self.baseline_condition,
                   f"{where} expects a value ('about') but " + (
                       "gives none" if self.value is None else "also names a baseline"),
                   "give value= and margin= (the tolerance), and no baseline")
            _check(self.condition != "training", f"{where} expects a value of a training metric",
                   "values of training metrics are not supported yet: state it as a contrast between two variants")
            return
        _check(self.value is None, f"{where} gives a value with direction {self.direction!r}",
               "a value goes with direction 'about'; a contrast names a baseline or a baseline_condition")
        other = (self.baseline or self.variant, self.baseline_condition or self.condition)
        _check(other != (self.variant, self.condition), f"{where} is a contrast with nothing to compare",
               "name a baseline variant or a baseline_condition")
        _check(self.condition != "training" or self.baseline_condition in ("", "training"),
               f"{where} compares a training metric across conditions", "compare two variants' training instead")

    @property
    def other(self) -> tuple[str, str]:
        """The (variant, condition) a contrast subtracts."""
        return self.baseline or self.variant, self.baseline_condition or self.condition

    def text(self) -> str:
        """The expectation in words, e.g. "cnn-batch (clean) minus cnn-group (clean), accuracy: lower"."""
        if self.direction == "about":
            return f"{self.variant} ({self.condition}), {self.metric}: about {self.value:g} (within {self.margin:g})"
        b, bc = self.other
        margin = f" by more than {self.margin:g}" if self.direction.startswith("not-") else ""
        return f"{self.variant} ({self.condition}) minus {b} ({bc}), {self.metric}: {self.direction}{margin}"

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Expected:
        return cls(**d)


@dataclass(frozen=True)
class Reference:
    """A published result the suite echoes, and how its setting differs.

    ``citation`` (authors, year, title, the table or figure), ``setting`` (the published setting),
    ``finding`` (the published outcome in words, with its numbers), ``expected`` (that outcome on
    this suite's records: every :class:`Expected` must hold for the run to agree) and
    ``differences`` (how this suite's setting differs from the published one: the reader's measure
    of how far the agreement carries). The report says per reference: agrees, disagrees, undecided
    (the run's intervals settle some expectation neither way) or not comparable (the run lacks a
    variant, condition or metric it needs), with the numbers side by side.
    """

    citation: str
    setting: str
    finding: str
    expected: tuple[Expected, ...]
    differences: str

    def __post_init__(self) -> None:
        for what in ("citation", "setting", "finding", "differences"):
            _check_shown(f"reference {what}", getattr(self, what))
        _check(bool(self.expected), f"reference {self.citation!r} expects nothing",
               "state its finding as at least one Expected outcome")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Reference:
        return cls(**{**d, "expected": tuple(Expected.from_dict(e) for e in d["expected"])})


@dataclass(frozen=True)
class Size:
    """A named size of a suite (``harness run SUITE --size NAME``): the suite with fewer seeds,
    variants, epochs, examples or a smaller battery. Every field left at None keeps the suite's.

    ``max_train`` / ``max_test`` cap the training and test parts of the split (a stratified
    subset, the same for every variant); ``eps`` replaces every attack's radii; ``task_options``
    overrides fields of the suite's task options (a denoise suite's DiffusionSpec), e.g. ``(("samples", 64),)``.
    """

    name: str  # what --size takes, e.g. "reduced"
    description: str = ""  # shown by harness show
    seeds: tuple[int, ...] | None = None  # replace the suite's seeds
    variants: tuple[str, ...] | None = None  # names of the suite's variants to keep
    epochs: int | None = None  # replaces the recipe's epochs
    max_train: int | None = None
    max_test: int | None = None
    shifts: tuple[str, ...] | None = None  # replace the battery's corruptions
    severities: tuple[int, ...] | None = None  # replace the battery's severities
    ood_sets: tuple[str, ...] | None = None  # replace the battery's OOD sets
    eps: tuple[float, ...] | None = None
    task_options: tuple[Param, ...] | None = None  # checked against the suite's task options in Suite.with_size

    def __post_init__(self) -> None:
        _check_shown("size name", self.name)
        for n in (self.max_train, self.max_test):
            _check(n is None or n >= 10, f"size {self.name!r}: max_train / max_test {n} is below 10",
                   "keep at least 10 examples (one per class)")


_DEFAULT_TEST_FRACTION = 0.25  # Suite.test_fraction's default, which a suite with a test_dataset keeps

# fields of Suite and Size that older versions stored under another name: old -> new
_RENAMED = {"diffusion": "task_options"}


def upgrade_suite_dict(d: dict[str, Any]) -> dict[str, Any]:
    """A suite dict as an older version stored it (provenance, a run's stored settings) with every
    renamed field under its current name, its sizes' too; a current dict comes back equal."""
    def rename(x: dict[str, Any]) -> dict[str, Any]:
        return {_RENAMED.get(k, k): v for k, v in x.items()}

    out = rename(d)
    if "sizes" in out:
        out["sizes"] = [rename(z) for z in out["sizes"]]
    return out


@dataclass(frozen=True)
class Suite:
    """A versioned experiment: data, variants, seeds, training recipe and evaluation battery.

    ``dataset`` names the in-distribution dataset. Without ``test_dataset`` it is split, stratified
    and fixed, into training, validation and test parts (``test_fraction`` and ``val_fraction`` of
    the whole set, seed ``split_seed``). With ``test_dataset`` (the literature's protocol: train on
    the official training images, test on the official test images) ``dataset`` is the training
    set, split into training and validation parts by ``val_fraction`` alone, and ``test_dataset``
    is the test part, whole; ``max_train`` and ``max_test`` cap either protocol's parts.
    ``baseline_norm`` is what every normalized variant is compared against.
    """

    name: str  # what harness run, the run directory and reports call it
    version: str  # part of every cell's key: a new version reuses none of an older one's cells
    description: str  # one line, shown by harness list and harness show
    dataset: str
    variants: tuple[Variant, ...]  # the fillings of the normalization slot, each trained with every seed
    seeds: tuple[int, ...]  # training seeds, the unit of replication: each variant is trained once per seed
    train: TrainSpec = field(default_factory=TrainSpec)  # the recipe every variant shares
    evaluation: EvalSpec = field(default_factory=EvalSpec)  # the battery every trained model is scored on
    test_fraction: float = _DEFAULT_TEST_FRACTION  # with test_dataset it must stay at this default (it is not used)
    val_fraction: float = 0.1
    split_seed: int = 0
    baseline_norm: str = "none"
    claims: tuple[Claim | str, ...] = ()  # a plain string is shown but gets no verdict
    # published results the suite echoes; the report sets each beside the run's numbers
    references: tuple[Reference, ...] = ()
    max_train: int | None = None  # cap on the training part (stratified subset), see Size
    max_test: int | None = None
    sizes: tuple[Size, ...] = ()  # named reduced (or larger) versions, see with_size
    size: str = "full"  # the size this suite object is
    # False: only runs that reached the target are evaluated (a sweep's failed points are models
    # that never learned; their robustness is not a question, and they would fail the sanity checks)
    evaluate_unconverged: bool = True
    # a registered task kind (harness.registry.tasks): "classify", or "denoise" for diffusion denoisers
    # (harness.registry.denoisers)
    task: str = "classify"
    # the task's own settings, an instance of its options_type (a denoise suite's DiffusionSpec); None for
    # a task that takes none (classify)
    task_options: Any = None
    # the official test set (see the class docstring); None: the test part is split off ``dataset``
    test_dataset: str | None = None
    # the membership design (harness.membership): each seed trains on a random half of the training part (the
    # seed's own draw, the same for every variant), and the report runs LiRA across the seeds; needs the
    # membership condition (evaluation.membership) and at least 2 seeds (one target, one shadow)
    membership_design: bool = False

    def __post_init__(self) -> None:
        _check_shown("suite name", self.name)
        for c in self.claims:
            if isinstance(c, str):  # a Claim checks its own text
                _check_shown("claim", c)
        _check(bool(self.variants), f"suite {self.name!r} declares no variants", "add at least one Variant")
        self._check_task()
        _check(bool(self.seeds), f"suite {self.name!r} declares no seeds", "pass --seeds 0,1,2")
        _check(all(isinstance(s, numbers.Integral) and 0 <= s <= MAX_SEED for s in self.seeds),
               f"seeds {list(self.seeds)} are not all integers from 0 to 2**63 - 1 = {MAX_SEED}",
               "use smaller seeds, e.g. --seeds 0,1,2 (a run stores each seed as a signed 64-bit integer)")
        _check(len(set(self.seeds)) == len(self.seeds), f"seeds {list(self.seeds)} repeat a seed",
               "give each seed once")
        names = [v.name for v in self.variants]
        _check(len(set(names)) == len(names), f"suite {self.name!r} repeats a variant name", "rename the variants")
        _check(0 < self.test_fraction < 1 and 0 < self.val_fraction < 1
               and self.test_fraction + self.val_fraction < 1,
               f"test_fraction {self.test_fraction} and val_fraction {self.val_fraction} must both be positive "
               "and leave data to train on", "use e.g. 0.25 and 0.1 (the held-out curve needs a validation part)")
        _check(self.test_dataset is None or self.test_fraction == _DEFAULT_TEST_FRACTION,
               f"suite {self.name!r} names test_dataset {self.test_dataset!r} and test_fraction {self.test_fraction}: "
               "the test part is then the whole test set, not a fraction of the training set",
               "drop test_fraction, and cap the test set with max_test if it is too large")
        if self.test_dataset is not None:
            _check_shown("test dataset", self.test_dataset)
        _check(not self.membership_design or (self.evaluation.membership and len(self.seeds) >= 2
                                              and self.task == "classify"),
               f"suite {self.name!r} switches the membership design on with {len(self.seeds)} seed(s), task "
               f"{self.task!r} and evaluation.membership={self.evaluation.membership}",
               "the design is for classify suites with evaluation.membership on and at least 2 seeds (LiRA attacks "
               "each seed's model with the others as shadows; the paper's 16 or more are better)")
        loaded = [v.name for v in self.variants if v.weights is not None]
        # a loaded model has no target to reach, so "evaluate converged runs only" would drop it
        _check(self.evaluate_unconverged or not loaded,
               f"suite {self.name!r} evaluates converged runs only, but {', '.join(loaded)} "
               f"{'loads' if len(loaded) == 1 else 'load'} weights and never train{'s' if len(loaded) == 1 else ''}",
               "keep evaluate_unconverged=True, or put the loaded variants in another suite")

    def _check_task(self) -> None:
        from harness.registry import tasks

        _check(self.task in tasks, f"suite {self.name!r} has task {self.task!r}", f"use one of {', '.join(tasks)}")
        task = tasks.get(self.task)
        want = task.options_type
        if want is None:
            _check(self.task_options is None, f"suite {self.name!r} ({self.task}) declares task_options, but the "
                   f"{self.task} task takes none", "drop task_options")
        else:
            _check(isinstance(self.task_options, want), f"{self.task} suite {self.name!r} declares no {want.__name__} "
                   f"(task_options is {type(self.task_options).__name__})",
                   f"pass task_options={want.__name__}(...)")
        task.validate(self)

    def with_size(self, name: str) -> Suite:
        """This suite at the declared size ``name`` ("full" is the suite itself)."""
        if name == self.size:
            return self
        sz = next((z for z in self.sizes if z.name == name), None)
        if sz is None:
            raise unknown_name(f"size of suite {self.name!r}", name, ["full", *(z.name for z in self.sizes)])
        ev = self.evaluation
        ev = dataclasses.replace(
            ev, shifts=ev.shifts if sz.shifts is None else sz.shifts,
            severities=ev.severities if sz.severities is None else sz.severities,
            ood_sets=ev.ood_sets if sz.ood_sets is None else sz.ood_sets,
            attacks=ev.attacks if sz.eps is None else tuple(dataclasses.replace(a, eps=sz.eps) for a in ev.attacks))
        out = self.with_overrides(seeds=sz.seeds, variants=sz.variants, epochs=sz.epochs)
        if sz.task_options:
            opts = self.task_options
            _check(opts is not None, f"size {name!r} of suite {self.name!r} overrides task options, but the "
                   f"{self.task} task takes none", "drop the Size's task_options")
            fields = {f.name for f in dataclasses.fields(opts)}
            unknown = sorted(k for k, _ in sz.task_options if k not in fields)
            _check(not unknown, f"size {name!r} of suite {self.name!r} overrides unknown task options "
                   f"{', '.join(map(repr, unknown))}",
                   f"use fields of {type(opts).__name__}: {', '.join(sorted(fields))}")
            # through the options' from_dict, so overrides read back from JSON (dicts for nested specs) work too
            out = dataclasses.replace(out, task_options=type(opts).from_dict(
                {**dataclasses.asdict(opts), **dict(sz.task_options)}))
        return dataclasses.replace(out, evaluation=ev, size=name, sizes=(),
                                   max_train=self.max_train if sz.max_train is None else sz.max_train,
                                   max_test=self.max_test if sz.max_test is None else sz.max_test)

    def variant(self, name: str) -> Variant:
        for v in self.variants:
            if v.name == name:
                return v
        raise unknown_name("variant", name, [v.name for v in self.variants])

    def comparisons(self) -> list[tuple[Variant, Variant]]:
        """(variant, baseline) pairs: each normalized variant against the variant it names in
        ``compare_to``, else against the same model, options and sweep point with
        ``baseline_norm``, where the suite has that baseline."""
        by_name = {v.name: v for v in self.variants}
        pairs = []
        for v in self.variants:
            if v.compare_to:
                if v.compare_to in by_name:
                    pairs.append((v, by_name[v.compare_to]))
                continue
            if v.norm == self.baseline_norm:
                continue
            base = by_name.get(v.baseline(self.baseline_norm).name)
            if base is not None and base.options == v.options and base.train == v.train:
                pairs.append((v, base))
        return pairs

    def conditions(self) -> list[Condition]:
        """Every evaluation condition of the battery, in report order (the task's: harness.tasks)."""
        from harness.registry import tasks

        return tasks.get(self.task).conditions(self)

    def check_conditions(self) -> list[Condition]:
        """The sanity checks. "transfer" and "large-eps" run PGD with the suite's ``pgd-linf``
        parameters (PGD's defaults when it runs none); "stronger" reruns the suite's most
        thorough attack (see harness.tasks.classify.evaluation)."""
        ev = self.evaluation
        pgd = {"steps": 10, "restarts": 1, **dict(next((a.params for a in ev.attacks if a.name == "pgd-linf"), ()))}
        return [
            check("gradients"), check("repeat"), check("batch-composition"),
            check("noise", eps=ev.check_eps),
            check("transfer", eps=ev.check_eps, **pgd),
            check("stronger", eps=ev.check_eps),
            check("large-eps", eps=ev.large_eps, **pgd),
        ]

    def split_params(self) -> list[Any] | dict[str, Any]:
        """Everything that determines the suite's split (before caps), for the keys of the cells it
        feeds: the fractions and seed of one set split three ways (the form keys have always had),
        or the named training and test sets, the validation fraction and seed."""
        if self.test_dataset is None:
            return [self.test_fraction, self.val_fraction, self.split_seed]
        return {"train": self.dataset, "test": self.test_dataset, "val_fraction": self.val_fraction,
                "split_seed": self.split_seed}

    def describe_split(self) -> str:
        """The split in words, for `harness show` and reports."""
        caps = ", ".join(f"{what} capped at {n:,}"
                         for what, n in (("training", self.max_train), ("test", self.max_test)) if n is not None)
        if self.test_dataset is None:
            text = (f"{self.dataset} split {100 * (1 - self.test_fraction - self.val_fraction):.3g}% training, "
                    f"{100 * self.val_fraction:.3g}% validation, {100 * self.test_fraction:.3g}% test")
        else:
            text = (f"training set {self.dataset} ({100 * self.val_fraction:.3g}% of it held out for validation), "
                    f"test set {self.test_dataset}")
        return f"{text} (split seed {self.split_seed}{', ' + caps if caps else ''})"

    def with_overrides(
        self,
        seeds: tuple[int, ...] | None = None,
        variants: tuple[str, ...] | None = None,
        epochs: int | None = None,
    ) -> Suite:
        """A reduced or altered copy (for quick runs); the version gains no suffix because
        every override is part of each cell's key anyway."""
        kept = self.variants if variants is None else tuple(self.variant(n) for n in variants)
        train = self.train if epochs is None else dataclasses.replace(self.train, epochs=epochs)
        return dataclasses.replace(self, seeds=seeds or self.seeds, variants=kept, train=train)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Suite:
        """The inverse of :meth:`to_dict` (after a JSON round trip, which turns tuples to lists), also of
        the dicts older versions stored (see :func:`upgrade_suite_dict`)."""
        from harness.registry import tasks

        d = upgrade_suite_dict(d)
        def pairs(ps: Any) -> tuple[Param, ...]:
            return tuple(tuple(p) for p in (ps.items() if isinstance(ps, dict) else ps))  # type: ignore[misc]

        ev = dict(d["evaluation"])
        ev["attacks"] = tuple(AttackSpec(a["name"], tuple(a["eps"]), pairs(a["params"])) for a in ev["attacks"])
        for k in ("shifts", "severities", "ood_sets", "ood_scores", "bn_modes", "natural_shifts", "prerendered_shifts"):
            if k in ev:  # fields added later keep their defaults for older records
                ev[k] = tuple(ev[k])
        variants = tuple(Variant(v["name"], v["model"], v["norm"], v.get("standardize", False),
                                 pairs(v.get("options", ())), pairs(v.get("train", ())), v.get("compare_to", ""),
                                 v.get("weights"), v.get("trained_on"))
                         for v in d["variants"])
        rest: dict[str, Any] = {k: d[k] for k in ("test_fraction", "val_fraction", "split_seed", "baseline_norm",
                                                  "max_train", "max_test", "size", "evaluate_unconverged", "task",
                                                  "test_dataset", "membership_design")
                                if k in d}
        if d.get("task_options") is not None:
            options_type = tasks.get(d.get("task", "classify")).options_type
            rest["task_options"] = d["task_options"] if options_type is None else options_type.from_dict(
                d["task_options"])

        def size(z: dict[str, Any]) -> Size:
            z = {**z, **{k: tuple(z[k]) for k in ("seeds", "variants", "shifts", "severities", "ood_sets", "eps")
                         if z.get(k) is not None}}
            if z.get("task_options") is not None and rest.get("task_options") is not None:
                # each override read back through the options' from_dict (a nested spec came back a dict)
                base = rest["task_options"]
                over = dict(tuple(p) for p in z["task_options"])
                known = {f.name for f in dataclasses.fields(base)}  # unknown ones are reported by with_size
                back = type(base).from_dict({**dataclasses.asdict(base), **{k: over[k] for k in over if k in known}})
                z["task_options"] = tuple((k, getattr(back, k) if k in known else v) for k, v in over.items())
            return Size(**z)

        sizes = tuple(size(z) for z in d.get("sizes", ()))
        return cls(name=d["name"], version=d["version"], description=d["description"], dataset=d["dataset"],
                   variants=variants, seeds=tuple(d["seeds"]), train=TrainSpec(**d["train"]),
                   evaluation=EvalSpec(**ev),
                   claims=tuple(c if isinstance(c, str) else Claim.from_dict(c) for c in d.get("claims", ())),
                   references=tuple(Reference.from_dict(r) for r in d.get("references", ())),
                   sizes=sizes, **rest)
