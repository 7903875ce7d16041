"""Running a suite: plan the cells, execute what is missing, store each as it finishes.

``run(suite)`` is the one Python call behind ``harness run``. Work is split into **units**,
one per (variant, seed): train the model (a training cell), then evaluate it on every
condition (one evaluation cell each). Cells already finished in the run directory's store
are skipped, so running the same command again, or after an interruption, only does what is
missing. A unit that fails is recorded as a failed cell with its error and the other units
go on; a diverged training run is stored as an outcome and its model is not evaluated.
"""

from __future__ import annotations

import dataclasses
import json
import platform
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import ConfigError
from harness.executors import Task
from harness.specs import Condition, Suite, Variant
from harness.store import STORE_FILE, Cell, Store, cell_key, load_weights, save_weights

DEFAULT_RUNS_DIR = Path("runs")


@dataclass(frozen=True)
class Unit:
    """One (variant, seed): whether it must train, and which evaluation cells are missing."""

    variant: Variant
    seed: int
    train_key: str
    train_spec: dict[str, Any]
    need_train: bool
    evals: tuple[tuple[Condition, str, dict[str, Any]], ...]


@dataclass(frozen=True, eq=False)
class Context:
    """What every unit of a run shares: the suite, its data and where to put weights."""

    suite: Suite
    split: Any  # harness.data.Split
    ood: dict[str, np.ndarray]
    device: str
    store_dir: Path
    natural: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)  # condition key -> (x, y)


@dataclass(frozen=True)
class RunSummary:
    """What a run did. ``failures`` lists (cell description, error) for failed cells."""

    run_dir: Path
    trained: int
    evaluated: int
    skipped: int
    diverged: int
    failures: tuple[tuple[str, str], ...] = ()

    @property
    def ok(self) -> bool:
        return not self.failures


# --- planning ------------------------------------------------------------------------------


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} was requested but CUDA is not available",
                          hint="use --device cpu (or auto)")
    if device != "cpu" and not device.startswith("cuda"):
        raise ConfigError(f"unknown device {device!r}", hint="use auto, cpu, cuda or cuda:N")
    return device


def check_names(suite: Suite) -> None:
    """Fail before any work if the suite names a plugin that is not registered, a data source
    that is malformed or not there (harness.sources.check: without loading the data), or weights
    that cannot be found or read (harness.weights.check)."""
    from harness import registry as r
    from harness.sources import check_name

    check_name(suite.dataset)
    for v in suite.variants:
        (r.denoisers if suite.task == "denoise" else r.models).entry(v.model)
        r.norms.entry(v.norm)
        if v.weights is not None:
            from harness.weights import check

            check(v.weights)
    ev = suite.evaluation
    for name in ev.shifts:
        r.shifts.entry(name)
    for name in (*ev.ood_sets, *ev.natural_shifts):
        check_name(name)
    if suite.diffusion is not None:  # the judge of the samples; the ELBO is the OOD score, the attack its own
        r.models.entry(suite.diffusion.judge_model)
        r.norms.entry(suite.diffusion.judge_norm)
        return
    for name in ev.ood_scores:
        r.ood_scores.entry(name)
    for a in ev.attacks:
        r.attacks.entry(a.name)


def train_spec(suite: Suite, variant: Variant, seed: int, device: str) -> dict[str, Any]:
    """Everything that determines a training cell's result. For a variant that loads weights,
    the weights (their source and the file's sha256, so a changed file is a new cell) take the
    place of the recipe, which a loaded model never sees."""
    spec = {
        "suite": suite.name, "suite_version": suite.version, "dataset": suite.dataset,
        "split": [suite.test_fraction, suite.val_fraction, suite.split_seed],
        "variant": {"model": variant.model, "norm": variant.norm, "standardize": variant.standardize,
                    "options": dict(variant.options)},
        "seed": seed, "train": dataclasses.asdict(variant.recipe(suite.train)), "device": device.split(":")[0],
        # caps on the split only when set, so the keys of uncapped suites stay what they were
        **({"max_train": suite.max_train, "max_test": suite.max_test}
           if suite.max_train is not None or suite.max_test is not None else {}),
        # a denoiser's schedule and target (only for denoise suites, so classifiers' keys stay what they were)
        **({"diffusion": suite.diffusion.train_params()} if suite.diffusion is not None else {}),
    }
    if variant.weights is not None:
        from harness.weights import resolve

        del spec["train"]
        spec["weights"] = {"source": variant.weights, "sha256": resolve(variant.weights).sha256}
    return spec


def eval_spec(suite: Suite, train_key: str, cond: Condition) -> dict[str, Any]:
    """Everything that determines an evaluation cell's result: for a shift, its implementation's
    revision too (harness.shifts.revised), only when above 1 so the keys of unchanged shifts stay."""
    ev = suite.evaluation
    revision = 1
    if cond.kind == "shift":
        from harness.registry import shifts

        revision = getattr(shifts.get(cond.name), "revision", 1)
    return {"train_cell": train_key, "condition": cond.to_dict(), "batch_size": ev.batch_size,
            "condition_seed": suite.split_seed,
            **({"shift_revision": revision} if revision != 1 else {}),
            **({"diffusion": suite.diffusion.eval_params()} if suite.diffusion is not None else {})}


def judge_spec(suite: Suite, device: str) -> dict[str, Any]:
    """Everything that determines a denoise suite's judge classifier (trained once per run)."""
    assert suite.diffusion is not None
    return {"judge": suite.diffusion.judge_params(), "dataset": suite.dataset,
            "split": [suite.test_fraction, suite.val_fraction, suite.split_seed],
            "caps": [suite.max_train, suite.max_test], "device": device.split(":")[0]}


def _sweeps(cond: Condition, conditions: list[Condition]) -> set[tuple[str, tuple[Any, ...]]]:
    """The attack sweeps (an attack's name with every parameter but eps) a condition belongs to
    or reads: an attack's own; the suite's PGD for "large-eps"; every sweep for "stronger"."""
    def key(name: str, c: Condition) -> tuple[str, tuple[Any, ...]]:
        return name, tuple(p for p in c.params if p[0] != "eps")

    if cond.kind == "attack":
        return {key(cond.name, cond)}
    if cond.kind == "check" and cond.name == "large-eps":
        return {key("pgd-linf", cond)}
    if cond.kind == "check" and cond.name == "stronger":
        return {key(c.name, c) for c in conditions if c.kind == "attack"}
    return set()


def plan(suite: Suite, store: Store, device: str) -> list[Unit]:
    """The units with work left, in seed-major order (every variant of seed 0 first).

    An attack sweep is redone whole when any of its cells, or a check that reads it, is missing:
    each eps reuses what the smaller ones broke, and redoing the sweep gives the same records as
    an uninterrupted run."""
    # runs whose model is not evaluated: diverged, or (where the suite asks) never reached the target
    skip = {c.key for c in store.cells("train", with_arrays=False) if c.result.get("diverged")
            or (not suite.evaluate_unconverged and c.status == "done" and c.result.get("steps_to_target") is None)}
    conditions = suite.conditions()
    units = []
    for seed in suite.seeds:
        for v in suite.variants:
            ts = train_spec(suite, v, seed, device)
            tk = cell_key(ts)
            need_train = not store.done(tk)
            specs = {c.key: eval_spec(suite, tk, c) for c in conditions}
            missing = {c.key for c in conditions if not store.done(cell_key(specs[c.key]))}
            redo = set().union(*(_sweeps(c, conditions) for c in conditions if c.key in missing))
            evals = () if tk in skip else tuple(
                (c, cell_key(specs[c.key]), specs[c.key]) for c in conditions
                if c.key in missing or (c.kind == "attack" and _sweeps(c, conditions) <= redo))
            if need_train or evals:
                units.append(Unit(v, seed, tk, ts, need_train, evals))
    return units


# --- execution -----------------------------------------------------------------------------


def _input_stats(x: np.ndarray) -> tuple[Any, Any]:
    import torch

    t = torch.from_numpy(x)
    return t.mean(dim=(0, 2, 3)), t.std(dim=(0, 2, 3))


def _error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}\n" + "".join(traceback.format_tb(exc.__traceback__)[-3:])


def _build(ctx: Context, v: Variant, seed: int) -> Any:
    from harness.models import build_model
    from harness.seeding import torch_generator

    split = ctx.split
    if ctx.suite.task == "denoise":
        from harness.diffusion import build_denoiser

        return build_denoiser(v.norm, split.train.shape, dict(v.options), torch_generator(seed, "init"), v.model)
    return build_model(v.model, v.norm, split.train.shape, split.train.n_classes, dict(v.options),
                       _input_stats(split.train.x) if v.standardize else None, torch_generator(seed, "init"))


def _load_pretrained(model: Any, v: Variant, spec: dict[str, Any]) -> dict[str, Any]:
    """Load a variant's weights into its built model; the training cell's result, which says
    the model was loaded, not trained (no curve, no training measurements)."""
    from harness.weights import load_into, resolve

    wf = resolve(v.weights or "")
    if wf.sha256 != spec["weights"]["sha256"]:
        raise ConfigError(f"weights {wf.path} changed since this run was planned (sha256 {wf.sha256[:12]}..., "
                          f"planned {spec['weights']['sha256'][:12]}...)", hint="run the same command again")
    load_into(model, wf, f"variant {v.name!r} (model {v.model}, norm {v.norm})")
    return {"trained": False, "weights": v.weights, "weights_file": str(wf.path), "weights_sha256": wf.sha256}


def train_unit(ctx: Context, unit: Unit, on_step: Callable[[int, int], None] | None = None) -> Iterator[Cell]:
    """Train one (variant, seed), or load its weights (``Variant.weights``), and store the
    weights; yields its training cell (failed if the model cannot be built, trained or loaded,
    with the error)."""
    from harness.training import train

    v, t0 = unit.variant, time.perf_counter()
    result: Any = None  # a TrainResult, or a DenoiserTrainResult for a denoise suite
    try:  # a broken model or norm plugin fails its cell, not the run
        model = _build(ctx, v, unit.seed)
        if v.weights is not None:
            loaded = _load_pretrained(model, v, unit.train_spec)
        elif ctx.suite.diffusion is not None:
            from harness.diffusion import NoiseSchedule, train_denoiser

            d = ctx.suite.diffusion
            result = train_denoiser(model, NoiseSchedule(d.steps), ctx.split, v.recipe(ctx.suite.train), unit.seed,
                                    d.target_loss, ctx.device, d.val_draws, on_step)
        else:
            result = train(model, ctx.split, v.recipe(ctx.suite.train), unit.seed, ctx.device, on_step)
    except Exception as exc:
        yield Cell(unit.train_key, "train", v.name, unit.seed, unit.train_spec, {}, "failed",
                   _error_text(exc), time.perf_counter() - t0)
        return
    if v.weights is not None:  # stored as a trained model's are, so evaluation reads them the same way
        save_weights(ctx.store_dir, unit.train_key, model.state_dict())
        yield Cell(unit.train_key, "train", v.name, unit.seed, unit.train_spec, loaded,
                   seconds=time.perf_counter() - t0)
        return
    if not result.diverged:
        save_weights(ctx.store_dir, unit.train_key, model.state_dict())
    yield Cell(unit.train_key, "train", v.name, unit.seed, unit.train_spec, result.summary(),
               seconds=time.perf_counter() - t0, arrays=result.arrays())


def evaluate_unit(ctx: Context, unit: Unit) -> Iterator[Cell]:
    """Evaluate one trained (variant, seed) on its missing conditions, a cell per condition."""
    from harness.evaluation import evaluate

    suite, v, split = ctx.suite, unit.variant, ctx.split
    conds = [c for c, _, _ in unit.evals]
    meta = {c.key: (k, s) for c, k, s in unit.evals}
    failure: Exception | None = None
    t0 = time.perf_counter()
    try:
        model = _build(ctx, v, unit.seed)
        model.load_state_dict(load_weights(ctx.store_dir, unit.train_key))
        model.to(ctx.device).eval()
        if suite.diffusion is not None:
            outcomes = _evaluate_denoiser(ctx, unit, model, conds)
        else:
            source = _transfer_source(ctx, unit) if any(c.kind == "check" and c.name == "transfer" for c in conds) \
                else None
            outcomes = evaluate(model, split.test.x, split.test.y, ctx.ood, conds, unit.seed, suite.split_seed,
                                suite.evaluation.batch_size, ctx.device, transfer_source=source,
                                fit_data=(split.train.x, split.train.y), natural_sets=ctx.natural)
    except Exception as exc:  # the model cannot be rebuilt: every missing cell fails
        outcomes, failure = iter(()), exc
    for cond in conds:
        key, spec = meta[cond.key]
        try:
            if failure is not None:
                raise failure
            _, arrays = next(outcomes)
        except Exception as exc:
            yield Cell(key, "eval", v.name, unit.seed, spec, {}, "failed", _error_text(exc),
                       time.perf_counter() - t0, cond.to_dict())
            return
        yield Cell(key, "eval", v.name, unit.seed, spec, _eval_summary(cond, arrays, suite.task),
                   seconds=time.perf_counter() - t0, condition=cond.to_dict(), arrays=arrays)
        t0 = time.perf_counter()


# The context of the worker this process is: set once per process by _init_worker (or, for
# work done in the calling process, by run()), read by execute_task.
_WORKER: dict[str, Any] = {}


# The context run() prepared before opening the store (so bad data fails with nothing written):
# a worker in the same process reuses it instead of loading the data again.
_PREPARED: dict[str, Context] = {}


def _init_worker(suite: Suite, device: str, store_dir: Path, threads: int | None = None) -> None:
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    pre = _PREPARED.get("ctx")
    same = pre is not None and pre.suite == suite and pre.device == device and pre.store_dir == store_dir
    _WORKER.update(ctx=pre if same else prepare(suite, device, store_dir), on_step=None)


def execute_task(task: Task) -> Iterator[Cell]:
    """Run one task, ("train", unit) or ("eval", unit), in this process's worker context."""
    kind, unit = task
    ctx = _WORKER["ctx"]
    return train_unit(ctx, unit, _WORKER.get("on_step")) if kind == "train" else evaluate_unit(ctx, unit)


def _transfer_source(ctx: Context, unit: Unit) -> Any:
    """The model of the variant this one is compared with, same seed, if it was trained."""
    from harness.store import weights_path

    base = next((b for v, b in ctx.suite.comparisons() if v == unit.variant), None)
    if base is None:
        return None
    key = cell_key(train_spec(ctx.suite, base, unit.seed, ctx.device))
    if not weights_path(ctx.store_dir, key).exists():
        return None  # the baseline diverged or failed: the check is not applicable
    model = _build(ctx, base, unit.seed)
    model.load_state_dict(load_weights(ctx.store_dir, key))
    return model.to(ctx.device).eval()


def _evaluate_denoiser(ctx: Context, unit: Unit, model: Any, conds: list[Condition]) -> Iterator[Any]:
    from harness.diffusion import NoiseSchedule, evaluate_denoiser

    suite, split = ctx.suite, ctx.split
    d = suite.diffusion
    assert d is not None
    judge = load_judge(ctx) if any(c.kind == "samples" for c in conds) else None
    return evaluate_denoiser(model, NoiseSchedule(d.steps), split.test.x, split.test.y, ctx.ood, conds, unit.seed,
                             suite.split_seed, suite.evaluation.batch_size, ctx.device, d.n_t, judge, d.samples)


_JUDGES: dict[tuple[Path, str], Any] = {}  # (store dir, judge key) -> harness.diffusion.Judge, per process


def _build_judge(ctx: Context) -> Any:
    from harness.models import build_model
    from harness.seeding import torch_generator

    d, split = ctx.suite.diffusion, ctx.split
    assert d is not None
    return build_model(d.judge_model, d.judge_norm, split.train.shape, split.train.n_classes, dict(d.judge_options),
                       None, torch_generator(d.judge_seed, "init"))


def train_judge(ctx: Context, store: Store) -> dict[str, Any]:
    """Train a denoise suite's judge classifier once per run directory (skipped when its weights are
    there) on the suite's split, from the DiffusionSpec's seed, and record what it scores: its
    accuracy on the test images, and the reference values of the sample metrics for real images,
    ``reference_fid`` and ``reference_class_tv`` of as many training images as the samples (a
    fixed random subset) against the test images: what a perfect generator would score at that n."""
    import torch

    from harness.diffusion import class_tv, feature_distance
    from harness.evaluation import features, predict
    from harness.seeding import torch_generator
    from harness.store import weights_path
    from harness.training import train

    d, split = ctx.suite.diffusion, ctx.split
    assert d is not None
    key = cell_key(judge_spec(ctx.suite, ctx.device))
    meta = store.get_meta("judge")
    if meta is not None and meta.get("key") == key and weights_path(ctx.store_dir, key).exists():
        return dict(meta)
    model = _build_judge(ctx)
    result = train(model, split, d.judge_train, d.judge_seed, ctx.device)
    save_weights(ctx.store_dir, key, model.state_dict())
    model.eval()
    dev = torch.device(ctx.device)
    x_test = torch.from_numpy(split.test.x).to(dev)
    bs = ctx.suite.evaluation.batch_size
    acc = float((predict(model, x_test, bs).argmax(1).cpu().numpy() == split.test.y).mean())
    n = min(d.samples, len(split.train.x))
    pick = torch.randperm(len(split.train.x), generator=torch_generator(d.judge_seed, "judge-reference"))[:n].numpy()
    x_ref = torch.from_numpy(split.train.x[pick]).to(dev)
    ref_pred = predict(model, x_ref, bs).argmax(1).cpu().numpy()
    meta = {"key": key, "model": d.judge_model, "norm": d.judge_norm, "seed": d.judge_seed,
            "test_accuracy": acc, "final_val_accuracy": result.final_val_accuracy, "n_test": len(split.test.x),
            "reference_n": n,
            "reference_fid": feature_distance(features(model, x_ref, bs).cpu().numpy(),
                                              features(model, x_test, bs).cpu().numpy()),
            "reference_class_tv": class_tv(ref_pred, split.test.y, split.train.n_classes)}
    store.put_meta("judge", meta)
    return meta


def load_judge(ctx: Context) -> Any:
    """The judge classifier that :func:`train_judge` stored, with its test features (cached per process)."""
    import torch

    from harness.diffusion import Judge
    from harness.evaluation import features

    key = cell_key(judge_spec(ctx.suite, ctx.device))
    if (ctx.store_dir, key) not in _JUDGES:
        model = _build_judge(ctx)
        model.load_state_dict(load_weights(ctx.store_dir, key))
        model.to(ctx.device).eval()
        x_test = torch.from_numpy(ctx.split.test.x).to(ctx.device)
        _JUDGES[(ctx.store_dir, key)] = Judge(model, features(model, x_test, ctx.suite.evaluation.batch_size)
                                              .cpu().numpy())
    return _JUDGES[(ctx.store_dir, key)]


def _eval_summary(cond: Condition, arrays: dict[str, np.ndarray], task: str = "classify") -> dict[str, Any]:
    """Scalars stored beside the arrays: the headline metric, and an attack's resolved settings."""
    from harness.evaluation import attack_settings
    from harness.metrics import auroc, fpr_at_tpr

    out: dict[str, Any] = {}
    if cond.kind == "attack":
        if task == "denoise":
            from harness.diffusion import denoise_attack_settings

            out = denoise_attack_settings(cond)
        else:
            out = attack_settings(cond)
    if not arrays:
        out["not_applicable"] = True
    elif "denoise_loss" in arrays:
        out["denoising_loss"] = float(arrays["denoise_loss"].mean())
    elif "fid" in arrays:
        out.update(sample_fid=float(arrays["fid"][0]), class_tv=float(arrays["class_tv"][0]),
                   n_samples=len(arrays["pred"]))
    elif "correct" in arrays:
        out["accuracy"] = float(arrays["correct"].mean())
    elif "score_in" in arrays:
        out.update(auroc=auroc(arrays["score_in"], arrays["score_out"]),
                   fpr95=fpr_at_tpr(arrays["score_in"], arrays["score_out"]))
    return out


# --- provenance ----------------------------------------------------------------------------


def _git_hash() -> str | None:
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def provenance(device: str, argv: list[str] | None = None) -> dict[str, Any]:
    """Versions, git hash, device, thread count, determinism flags and the command line."""
    import importlib.metadata as md

    import torch

    import harness

    def version(dist: str) -> str | None:
        try:
            return md.version(dist)
        except md.PackageNotFoundError:
            return None

    dev_name = torch.cuda.get_device_name(device) if device.startswith("cuda") else (
        platform.processor() or platform.machine())
    return {
        "harness": harness.__version__,
        "git": _git_hash(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": {d: version(d) for d in ("torch", "numpy", "scipy", "scikit-learn", "scikit-image", "rich")},
        "device": device,
        "device_name": dev_name,
        "torch_threads": torch.get_num_threads(),
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "command": argv if argv is not None else sys.argv,
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


# --- the one call --------------------------------------------------------------------------


def load_suite(name_or_suite: str | Suite) -> Suite:
    """A Suite object, from the registry when given a name."""
    from harness.registry import suites

    if isinstance(name_or_suite, Suite):
        return name_or_suite
    suite = suites.get(name_or_suite)
    if not isinstance(suite, Suite):
        raise ConfigError(f"suite plugin {name_or_suite!r} is a {type(suite).__name__}, not a harness.specs.Suite",
                          hint="point the entry point at a Suite object")
    return suite


def default_run_dir(suite: Suite) -> Path:
    return DEFAULT_RUNS_DIR / f"{suite.name}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"


def _split(suite: Suite) -> Any:
    from harness.data import cap_split, load, stratified_split

    split = stratified_split(load(suite.dataset), suite.test_fraction, suite.val_fraction, suite.split_seed)
    return cap_split(split, suite.max_train, suite.max_test, suite.split_seed)


def prepare(suite: Suite, device: str, store_dir: Path) -> Context:
    """Load and split the data and the OOD sets once for the whole run (once per worker)."""
    from harness.data import fit_to, load, prerendered

    split = _split(suite)
    ood = {name: fit_to(load(name).x, split.test.shape) for name in suite.evaluation.ood_sets}
    natural = {}
    for cond in suite.conditions():
        if cond.kind != "natural":
            continue
        ev = suite.evaluation
        data = load(cond.name) if not cond.params else prerendered(ev.prerendered_dir or "", cond.name,
                                                                  cond.param("severity"))
        if data.y is None or (data.y.max() >= split.train.n_classes):
            raise ConfigError(f"natural shift {data.name!r} needs labels from the suite's {split.train.n_classes} "
                              "classes", hint="name a labelled set with the same classes, or list it under ood_sets")
        natural[cond.key] = (fit_to(data.x, split.test.shape), data.y)
    return Context(suite, split, ood, device, store_dir, natural)


def check_resumable(store: Store, suite: Suite, device: str) -> None:
    """A run directory holds one experiment: the same suite settings on the same device type.
    Seeds and variants may change (adding seeds to a finished run reuses its cells), so each
    (variant, seed, condition) has at most one record and the report never mixes recipes."""
    stored = store.get_meta("suite")
    if stored is None:
        return
    if stored["name"] != suite.name:
        raise ConfigError(f"{store.run_dir} holds a run of suite {stored['name']!r}, not {suite.name!r}",
                          hint="pass another --run-dir")
    new = json.loads(json.dumps(suite.to_dict()))  # tuples become lists, as they were stored
    # settings added to Suite later read as their defaults in older run directories
    # (the other sizes a suite declares do not change this run's results)
    defaults: dict[str, Any] = {"max_train": None, "max_test": None, "size": "full", "evaluate_unconverged": True,
                                "task": "classify", "diffusion": None}
    changed = sorted(k for k in new if k not in ("seeds", "variants", "sizes")
                     and new[k] != stored.get(k, defaults.get(k)))
    if changed:
        raise ConfigError(f"{store.run_dir} was run with other settings for {', '.join(changed)}",
                          hint="resume with the same options (only --seeds and --variants may change), "
                               "or pass another --run-dir")
    old_device = store.get_meta("device")
    if old_device is not None and old_device != device.split(":")[0]:
        raise ConfigError(f"{store.run_dir} was run on {old_device}, not {device}",
                          hint=f"resume with --device {old_device}, or pass another --run-dir")


def run(suite: str | Suite, run_dir: Path | str | None = None, device: str = "auto",
        executor: str = "process", workers: int | None = None, progress: bool = True,
        argv: list[str] | None = None, console: Any = None,
        on_start: Callable[[Path], None] | None = None) -> RunSummary:
    """Run every missing cell of ``suite`` into ``run_dir`` (created if new, resumed if not).

    Everything is checked first (plugin names, device, executor, every dataset the run reads):
    bad input raises a ConfigError before the run directory is created or changed. Then
    ``on_start(run_dir)`` is called, and the work begins in two phases: every missing training
    cell, then every missing evaluation cell (so the transfer check always finds its paired
    model), each spread over ``executor``'s workers.
    Returns a summary; the report is built separately from the store
    (:func:`reports.build.build_report`), so it can always be rebuilt offline.
    """
    from harness.registry import executors

    suite = load_suite(suite)
    check_names(suite)
    device = resolve_device(device)
    if workers is not None and workers < 1:
        raise ConfigError(f"workers must be at least 1, got {workers}", hint="use e.g. --workers 2")
    ex = executors.get(executor)(workers)  # an unknown or unavailable executor fails before anything is written
    run_dir = Path(run_dir) if run_dir is not None else default_run_dir(suite)
    if run_dir.exists():  # a run directory to resume: it must hold this experiment
        if not run_dir.is_dir():
            raise ConfigError(f"{run_dir} is a file, not a run directory", hint="pass a folder path")
        if (run_dir / STORE_FILE).exists():
            with Store(run_dir, create=False) as old:
                check_resumable(old, suite, device)
    # every dataset the run reads is loaded and checked before the run directory is created
    _PREPARED["ctx"] = prepare(suite, device, run_dir)
    try:
        if on_start is not None:
            on_start(run_dir)
        with Store(run_dir) as store, ex:
            return _run(suite, store, ex, device, executor, progress, argv, console)
    finally:
        _PREPARED.clear()


def _run(suite: Suite, store: Store, ex: Any, device: str, executor: str, progress: bool, argv: list[str] | None,
         console: Any) -> RunSummary:
    """run() once the store is open: plan, execute what is missing, store each cell as it comes."""
    run_dir = store.run_dir  # run() has checked that an existing store holds this experiment
    store.put_meta("suite", suite.to_dict())
    store.put_meta("device", device.split(":")[0])
    units = plan(suite, store, device)
    n_cells = len(suite.variants) * len(suite.seeds) * (1 + len(suite.conditions()))
    todo = sum(u.need_train + len(u.evals) for u in units)
    counts = {"trained": 0, "evaluated": 0, "diverged": 0, "train_steps": 0}
    failures: list[tuple[str, str]] = []
    if not units:
        return RunSummary(run_dir, 0, 0, n_cells, 0)
    if suite.diffusion is not None and any(c.kind == "samples" for u in units for c, _, _ in u.evals):
        train_judge(_PREPARED["ctx"], store)  # once, before the workers that read it start
    ex.start(_init_worker, (suite, device, run_dir))
    # torch_threads is this process's; each worker uses usable_cores() // workers
    store.put_meta("provenance", {**provenance(device, argv), "executor": executor, "workers": ex.workers})
    n_train = len(_PREPARED["ctx"].split.train.x)

    def steps_of(v: Variant) -> int:  # a sweep's variants train for different numbers of steps
        recipe = v.recipe(suite.train)
        return (n_train // recipe.batch_size) * recipe.epochs

    with _progress(console, progress) as bar:
        t_train = bar.add_task("train", total=sum(steps_of(u.variant) for u in units if u.need_train))
        t_eval = bar.add_task("evaluate", total=sum(len(u.evals) for u in units))

        def store_all(cells: Iterator[Cell]) -> None:
            for cell in cells:
                store.put(cell)
                if cell.status == "failed":
                    where = f"{cell.kind} {cell.variant} seed {cell.seed}" + (
                        f" {Condition.from_dict(cell.condition).key}" if cell.condition else "")
                    failures.append((where, (cell.error or "").splitlines()[0]))
                elif cell.kind == "train":
                    counts["trained"] += 1
                    counts["diverged"] += bool(cell.result.get("diverged"))
                else:
                    counts["evaluated"] += 1
                if cell.kind == "train":  # a diverged run stops early: its remaining steps count as done
                    counts["train_steps"] += steps_of(suite.variant(cell.variant))
                    bar.update(t_train, completed=counts["train_steps"])
                else:
                    bar.advance(t_eval)

        if "ctx" in _WORKER:  # work runs in this process: report every training step
            _WORKER["on_step"] = lambda step, total: bar.update(t_train, completed=counts["train_steps"] + step)
        try:
            store_all(ex.map(execute_task, [("train", u) for u in units if u.need_train]))
            # after training: what is left to evaluate (not diverged, training not failed)
            evals = [u for u in plan(suite, store, device) if u.evals and not u.need_train]
            bar.update(t_eval, total=bar.tasks[t_eval].completed + sum(len(u.evals) for u in evals))
            store_all(ex.map(execute_task, [("eval", u) for u in evals]))
        finally:
            _WORKER.clear()
    return RunSummary(run_dir, counts["trained"], counts["evaluated"], n_cells - todo, counts["diverged"],
                      tuple(failures))


@dataclass
class _Task:
    completed: float = 0.0


class _NoProgress:
    """Stands in for rich's Progress when progress display is off: counts, shows nothing."""

    def __init__(self) -> None:
        self.tasks: list[_Task] = []

    def __enter__(self) -> _NoProgress:
        return self

    def __exit__(self, *exc: Any) -> None:
        pass

    def add_task(self, name: str, total: float) -> int:
        self.tasks.append(_Task())
        return len(self.tasks) - 1

    def update(self, task: int, completed: float | None = None, total: float | None = None) -> None:
        if completed is not None:
            self.tasks[task].completed = completed

    def advance(self, task: int) -> None:
        self.tasks[task].completed += 1


def _progress(console: Any, enabled: bool) -> Any:
    if not enabled:
        return _NoProgress()
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = console or Console(stderr=True)
    if not console.is_terminal:
        return _NoProgress()
    return Progress(TextColumn("{task.description:>9}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=console, transient=False)


