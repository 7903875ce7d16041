"""Running a suite: plan the cells, execute what is missing, store each as it finishes.

``run(suite)`` is the one Python call behind ``harness run``. Work is split into **units**,
one per (variant, seed): train the model (a training cell), then evaluate it on every
condition (one evaluation cell each). Cells already finished in the run directory's store
are skipped, so running the same command again, or after an interruption, only does what is
missing. A unit that fails is recorded as a failed cell with its error and the other units
go on; a diverged training run is stored as an outcome and its model is not evaluated.
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import ConfigError
from harness.specs import Condition, Suite, Variant
from harness.store import Cell, Store, cell_key, load_weights, save_weights

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


class SerialExecutor:
    """Runs units one after another in this process (deterministic, simplest to debug)."""

    def map(self, fn: Callable[[Unit], Iterator[Cell]], units: Iterable[Unit]) -> Iterator[Cell]:
        for unit in units:
            yield from fn(unit)


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
    """Fail before any work if the suite names a plugin that is not registered."""
    from harness import registry as r

    r.datasets.entry(suite.dataset)
    for v in suite.variants:
        r.models.entry(v.model)
        r.norms.entry(v.norm)
    ev = suite.evaluation
    for name in ev.shifts:
        r.shifts.entry(name)
    for name in ev.ood_sets:
        r.datasets.entry(name)
    for name in ev.ood_scores:
        r.ood_scores.entry(name)
    for a in ev.attacks:
        r.attacks.entry(a.name)


def train_spec(suite: Suite, variant: Variant, seed: int, device: str) -> dict[str, Any]:
    """Everything that determines a training cell's result."""
    return {
        "suite": suite.name, "suite_version": suite.version, "dataset": suite.dataset,
        "split": [suite.test_fraction, suite.val_fraction, suite.split_seed],
        "variant": {"model": variant.model, "norm": variant.norm, "standardize": variant.standardize,
                    "options": dict(variant.options)},
        "seed": seed, "train": suite.to_dict()["train"], "device": device.split(":")[0],
    }


def eval_spec(suite: Suite, train_key: str, cond: Condition) -> dict[str, Any]:
    """Everything that determines an evaluation cell's result."""
    ev = suite.evaluation
    return {"train_cell": train_key, "condition": cond.to_dict(), "batch_size": ev.batch_size,
            "bn_mode": ev.bn_mode, "condition_seed": suite.split_seed}


def plan(suite: Suite, store: Store, device: str) -> list[Unit]:
    """The units with work left, in seed-major order (every variant of seed 0 first)."""
    diverged = {c.key for c in store.cells("train", with_arrays=False) if c.result.get("diverged")}
    units = []
    for seed in suite.seeds:
        for v in suite.variants:
            ts = train_spec(suite, v, seed, device)
            tk = cell_key(ts)
            need_train = not store.done(tk)
            evals = () if tk in diverged else tuple(
                (c, cell_key(es), es) for c in suite.conditions()
                if not store.done(cell_key(es := eval_spec(suite, tk, c))))
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


def execute_unit(ctx: Context, unit: Unit, on_step: Callable[[int, int], None] | None = None,
                 on_eval: Callable[[], None] | None = None) -> Iterator[Cell]:
    """Train (if needed) and evaluate one (variant, seed), yielding each cell as it finishes."""
    from harness.evaluation import evaluate
    from harness.models import build_model
    from harness.seeding import torch_generator
    from harness.training import train

    suite, v, split = ctx.suite, unit.variant, ctx.split
    t0 = time.perf_counter()
    try:
        model = build_model(v.model, v.norm, split.train.shape, split.train.n_classes, dict(v.options),
                            _input_stats(split.train.x) if v.standardize else None,
                            torch_generator(unit.seed, "init"))
    except Exception as exc:  # a broken model or norm plugin fails its cell, not the run
        yield Cell(unit.train_key, "train", v.name, unit.seed, unit.train_spec, {}, "failed",
                   _error_text(exc), time.perf_counter() - t0)
        return
    if unit.need_train:
        try:
            result = train(model, split, suite.train, unit.seed, ctx.device, on_step)
        except Exception as exc:  # e.g. a model whose forward pass breaks on this data
            yield Cell(unit.train_key, "train", v.name, unit.seed, unit.train_spec, {}, "failed",
                       _error_text(exc), time.perf_counter() - t0)
            return
        if not result.diverged:
            save_weights(ctx.store_dir, unit.train_key, model.state_dict())
        yield Cell(unit.train_key, "train", v.name, unit.seed, unit.train_spec, result.summary(),
                   seconds=time.perf_counter() - t0, arrays=result.arrays())
        if result.diverged:
            return
    elif unit.evals:
        model.load_state_dict(load_weights(ctx.store_dir, unit.train_key))
    model.to(ctx.device).eval()
    conds = [c for c, _, _ in unit.evals]
    meta = {c.key: (k, s) for c, k, s in unit.evals}
    t0 = time.perf_counter()
    outcomes = evaluate(model, split.test.x, split.test.y, ctx.ood, conds, unit.seed, suite.split_seed,
                        suite.evaluation.batch_size, ctx.device)
    for cond in conds:
        key, spec = meta[cond.key]
        try:
            _, arrays = next(outcomes)
        except Exception as exc:
            yield Cell(key, "eval", v.name, unit.seed, spec, {}, "failed", _error_text(exc),
                       time.perf_counter() - t0, cond.to_dict())
            return
        yield Cell(key, "eval", v.name, unit.seed, spec, _eval_summary(arrays),
                   seconds=time.perf_counter() - t0, condition=cond.to_dict(), arrays=arrays)
        if on_eval is not None:
            on_eval()
        t0 = time.perf_counter()


def _eval_summary(arrays: dict[str, np.ndarray]) -> dict[str, float]:
    from harness.metrics import auroc, fpr_at_tpr

    if "correct" in arrays:
        return {"accuracy": float(arrays["correct"].mean())}
    return {"auroc": auroc(arrays["score_in"], arrays["score_out"]),
            "fpr95": fpr_at_tpr(arrays["score_in"], arrays["score_out"])}


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


def prepare(suite: Suite, device: str, store_dir: Path) -> Context:
    """Load and split the data and the OOD sets once for the whole run."""
    from harness.data import fit_to, load, stratified_split

    data = load(suite.dataset)
    split = stratified_split(data, suite.test_fraction, suite.val_fraction, suite.split_seed)
    ood = {name: fit_to(load(name).x, split.test.shape) for name in suite.evaluation.ood_sets}
    return Context(suite, split, ood, device, store_dir)


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
    changed = sorted(k for k in new if k not in ("seeds", "variants") and new[k] != stored.get(k))
    if changed:
        raise ConfigError(f"{store.run_dir} was run with other settings for {', '.join(changed)}",
                          hint="resume with the same options (only --seeds and --variants may change), "
                               "or pass another --run-dir")
    old_device = store.get_meta("device")
    if old_device is not None and old_device != device.split(":")[0]:
        raise ConfigError(f"{store.run_dir} was run on {old_device}, not {device}",
                          hint=f"resume with --device {old_device}, or pass another --run-dir")


def run(suite: str | Suite, run_dir: Path | str | None = None, device: str = "auto",
        executor: str = "serial", progress: bool = True, argv: list[str] | None = None,
        console: Any = None) -> RunSummary:
    """Run every missing cell of ``suite`` into ``run_dir`` (created if new, resumed if not).

    Returns a summary; the report is built separately from the store
    (:func:`reports.build.build_report`), so it can always be rebuilt offline.
    """
    from harness.registry import executors

    suite = load_suite(suite)
    check_names(suite)
    device = resolve_device(device)
    run_dir = Path(run_dir) if run_dir is not None else default_run_dir(suite)
    ex = executors.get(executor)()
    with Store(run_dir) as store:
        check_resumable(store, suite, device)
        store.put_meta("suite", suite.to_dict())
        store.put_meta("device", device.split(":")[0])
        store.put_meta("provenance", provenance(device, argv))
        units = plan(suite, store, device)
        n_cells = len(suite.variants) * len(suite.seeds) * (1 + len(suite.conditions()))
        todo = sum(u.need_train + len(u.evals) for u in units)
        ctx = prepare(suite, device, run_dir)
        trained = evaluated = diverged = 0
        failures: list[tuple[str, str]] = []
        with _progress(console, progress) as bar:
            steps_per_run = (len(ctx.split.train.x) // suite.train.batch_size) * suite.train.epochs
            t_train = bar.add_task("train", total=steps_per_run * sum(u.need_train for u in units))
            t_eval = bar.add_task("evaluate", total=sum(len(u.evals) for u in units))
            def work(unit: Unit) -> Iterator[Cell]:
                base = bar.tasks[t_train].completed
                yield from execute_unit(ctx, unit, lambda step, total: bar.update(t_train, completed=base + step),
                                        lambda: bar.advance(t_eval))
                if unit.need_train:  # a diverged run stops early: count its remaining steps as done
                    bar.update(t_train, completed=base + steps_per_run)

            for cell in ex.map(work, units):
                store.put(cell)
                where = f"{cell.kind} {cell.variant} seed {cell.seed}" + (
                    f" {Condition.from_dict(cell.condition).key}" if cell.condition else "")
                if cell.status == "failed":
                    failures.append((where, (cell.error or "").splitlines()[0]))
                elif cell.kind == "train":
                    trained += 1
                    diverged += bool(cell.result.get("diverged"))
                else:
                    evaluated += 1
    return RunSummary(run_dir, trained, evaluated, n_cells - todo, diverged, tuple(failures))


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

    def update(self, task: int, completed: float) -> None:
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


