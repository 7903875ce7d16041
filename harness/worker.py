"""A run's workers: the context every unit shares, and running one unit into its cells.

A :class:`Worker` is built once in every process that runs jobs (this process for the serial
executor; each pool process or Ray actor otherwise) from a :class:`WorkerInit`, the small,
picklable description the executor sends there. It loads the suite's data once
(:func:`prepare`) and keeps what later units reuse (what the suite's task set up once per run,
such as a denoise suite's judge classifier). What differs between task kinds (building,
training, evaluating a model) is the task's (harness.tasks), asked through :func:`task_of`.
``Worker.run(job)`` turns one job, ``("train", unit)``, ``("train-batched", units)`` (models of one
architecture trained as one computation, :func:`train_batched`), ``("eval", unit)`` or
``("eval-batched", units)`` (seeds of one variant whose attacks run as one computation,
:func:`evaluate_batched`), into cells; the
runner stores them, so a worker writes only weights files, never the store.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from harness.errors import ConfigError
from harness.planning import Unit, attack_sweeps, train_spec
from harness.specs import Condition, Suite, Variant
from harness.store import Cell, cell_key, load_weights, save_weights
from harness.tasks import EvalRun, task_of

if TYPE_CHECKING:
    from torch import nn

# what an executor hands a worker: ("train" | "eval", unit) or ("train-batched" | "eval-batched", units).
# (A task, harness.tasks, is a kind of model.)
Job = tuple[str, "Unit | tuple[Unit, ...]"]


@dataclass(frozen=True)
class WorkerInit:
    """What a worker process needs to build its context: the suite, the device and the run
    directory (whose weights files the workers share). ``threads`` is the torch thread count where
    the executor splits the cores between workers, None to leave torch's own. Executors send it
    to every process that runs jobs, so it is picklable and small (the data is loaded there).
    ``batch_seeds``: the run trains models batched (harness.planning.train_spec keys its cells so)."""

    suite: Suite
    device: str
    run_dir: Path
    threads: int | None = None
    batch_seeds: bool = False
    power_watts: float | None = None  # the declared power per busy core (harness.energy), None: the default


@dataclass(frozen=True, eq=False)
class Context:
    """What every unit of a run shares: the suite, its data and where to put weights; ``batch_seeds``:
    whether the run trains models batched (so which training cell a variant and seed have)."""

    suite: Suite
    split: Any  # harness.data.Split
    ood: dict[str, np.ndarray]
    device: str
    store_dir: Path
    natural: dict[str, Any] = field(default_factory=dict)  # condition key -> labelled inputs (TaskData)
    batch_seeds: bool = False
    power_watts: float | None = None  # the declared power per busy core (harness.energy), None: the default


# --- the data every unit shares -----------------------------------------------------------


def prepare(suite: Suite, device: str, store_dir: Path, batch_seeds: bool = False,
            power_watts: float | None = None) -> Context:
    """Load the suite's data (its task's :meth:`~harness.tasks.Task.load_data`: the split, OOD sets and
    natural shifts) once for the whole run (once per worker)."""
    data = task_of(suite).load_data(suite)
    return Context(suite, data.split, data.ood, device, store_dir, data.natural, batch_seeds, power_watts)


# --- the worker ---------------------------------------------------------------------------


class Worker:
    """The worker of one process: the run's context, and what the suite's task set up once per run
    (harness.tasks.Task.load_setup: a denoise suite's judge classifier), loaded at the first unit
    that needs it and kept for the later ones."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._setup: list[Any] = []  # empty until loaded, then [what load_setup gave]

    def setup(self) -> Any:
        """What the suite's task set up for the run (e.g. the judge classifier), loaded once."""
        if not self._setup:
            self._setup.append(task_of(self.ctx.suite).load_setup(self.ctx))
        return self._setup[0]

    def run(self, job: Job, on_step: Callable[[int, int], None] | None = None) -> Iterator[Cell]:
        """The cells of one job, ("train", unit), ("train-batched", units), ("eval", unit) or
        ("eval-batched", units);
        ``on_step(step, total)`` reports each training step (executors pass it where the job runs in
        this process)."""
        kind, unit = job
        if isinstance(unit, tuple):  # ("train-batched" | "eval-batched", units)
            return train_batched(self.ctx, unit, on_step) if kind == "train-batched" \
                else evaluate_batched(self.ctx, unit, self.setup)
        return train_unit(self.ctx, unit, on_step) if kind == "train" else evaluate_unit(self.ctx, unit, self.setup)


@dataclass(frozen=True, eq=False)
class WorkerFactory:
    """Builds the :class:`Worker` of a process from a :class:`WorkerInit` (what executors call once
    in every process that runs jobs), setting torch's thread count first where it says one.

    ``prepared`` is the context the runner already loaded in its own process (it checks the data
    before writing anything): a worker built in that process for the same suite, device and run
    directory reuses it instead of loading the data again. It never travels: a factory pickled into
    another process arrives without it, and that worker loads its own."""

    prepared: Context | None = None

    def __call__(self, init: WorkerInit) -> Worker:
        if init.threads is not None:
            import torch

            torch.set_num_threads(init.threads)
        pre = self.prepared
        same = pre is not None and pre.suite == init.suite and pre.device == init.device \
            and pre.store_dir == init.run_dir and pre.batch_seeds == init.batch_seeds \
            and pre.power_watts == init.power_watts
        return Worker(pre if same and pre is not None
                      else prepare(init.suite, init.device, init.run_dir, init.batch_seeds, init.power_watts))

    def __reduce__(self) -> tuple[type[WorkerFactory], tuple[()]]:
        return WorkerFactory, ()


# --- running one unit ---------------------------------------------------------------------


def _error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}\n" + "".join(traceback.format_tb(exc.__traceback__)[-3:])


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
    """Train one (variant, seed) as its task does, or load its weights (``Variant.weights``), and
    store the weights; yields its training cell (failed if the model cannot be built, trained or
    loaded, with the error)."""
    task = task_of(ctx.suite)
    v, t0 = unit.variant, time.perf_counter()
    result: Any = None  # what the task's train returned: diverged, summary(), arrays()
    try:  # a broken model or norm plugin fails its cell, not the run
        model = task.build(ctx.suite, v, ctx.split, unit.seed)
        if v.weights is not None:
            loaded = _load_pretrained(model, v, unit.train_spec)
        else:
            result = task.train(ctx.suite, model, v, ctx.split, unit.seed, ctx.device, on_step)
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
    yield Cell(unit.train_key, "train", v.name, unit.seed, unit.train_spec,
               _with_energy(result.summary(), ctx.power_watts), seconds=time.perf_counter() - t0,
               arrays=result.arrays())


def _with_energy(summary: dict[str, Any], power_watts: float | None) -> dict[str, Any]:
    """A training summary with its run's energy (harness.energy.account: counted, or the declared power per
    busy core times the CPU time), so the record says how it was obtained."""
    from harness.energy import account

    energy = account(summary, power_watts)
    return summary if energy is None else {**summary, **energy.summary()}


def train_batched(ctx: Context, units: tuple[Unit, ...],
                  on_step: Callable[[int, int], None] | None = None) -> Iterator[Cell]:
    """Train the models of ``units`` (each planned for the batched path, ``"batched"`` in its training
    spec; seeds of variants that share an architecture and a recipe, harness.runner groups them) as
    one computation (harness.batched.train_many), then store each model's weights and yield its
    training cell as :func:`train_unit` does. A cell's result holds train_unit's fields
    (``seconds_per_step`` measured on the one-model path by a short probe) and the group's
    (harness.batched.GroupTiming: ``batched_models``, ``batched_seconds_per_step``,
    ``timing_probe_steps``); its ``seconds`` are the group's wall time shared equally. A model that
    cannot be built fails its own cell; one that the batched path cannot take (which its plan
    should have ruled out), or a failure of the computation, fails the cells of the whole group.
    ``on_step(step, total)`` counts the steps of all its models."""
    from harness.batched import supports, train_many

    task, t0 = task_of(ctx.suite), time.perf_counter()
    built: list[tuple[Unit, Any]] = []
    for unit in units:
        try:
            model = task.build(ctx.suite, unit.variant, ctx.split, unit.seed)
            if (reason := supports(model)) is not None:
                raise ConfigError(f"variant {unit.variant.name!r} was planned for batched training, but {reason}",
                                  hint="run it without --batch-seeds (in another run directory)")
        except Exception as exc:
            yield Cell(unit.train_key, "train", unit.variant.name, unit.seed, unit.train_spec, {}, "failed",
                       _error_text(exc), time.perf_counter() - t0)
            continue
        built.append((unit, model))
    if not built:
        return
    n, recipe = len(built), built[0][0].variant.recipe(ctx.suite.train)  # one recipe (the group's)
    steps = None if on_step is None else (lambda step, total: on_step(step * n, total * n))
    try:
        results, timing = train_many([model for _, model in built], ctx.split, recipe,
                                     [unit.seed for unit, _ in built], ctx.device, steps)
    except Exception as exc:
        for unit, _ in built:
            yield Cell(unit.train_key, "train", unit.variant.name, unit.seed, unit.train_spec, {}, "failed",
                       _error_text(exc), (time.perf_counter() - t0) / n)
        return
    seconds = (time.perf_counter() - t0) / n
    for (unit, model), result in zip(built, results, strict=True):
        if not result.diverged:
            save_weights(ctx.store_dir, unit.train_key, model.state_dict())
        yield Cell(unit.train_key, "train", unit.variant.name, unit.seed, unit.train_spec,
                   _with_energy({**result.summary(), **timing.summary()}, ctx.power_watts), seconds=seconds,
                   arrays=result.arrays())


# what a user reads when a model's weights cannot be used: harness.runner trains such a model again
RETRAIN_HINT = "run the same command again: a model whose weights file is missing or cannot be used is trained again"


def load_model(ctx: Context, variant: Variant, seed: int, key: str) -> nn.Module:
    """The model of ``variant`` and ``seed`` (training cell ``key``) built by its task with its stored
    weights, in eval mode on the device. A ConfigError naming the file when they are missing, cannot
    be read or do not fit the model (another model's, or failing the store's checks); its hint says
    what :func:`harness.runner.run` does about it: the next run trains the model again."""
    model = task_of(ctx.suite).build(ctx.suite, variant, ctx.split, seed)
    try:
        state = load_weights(ctx.store_dir, key)
    except ConfigError as exc:
        raise ConfigError(exc.message, hint=RETRAIN_HINT) from exc
    try:
        model.load_state_dict(state)
    except (RuntimeError, ValueError) as exc:  # torch's missing, unexpected or mis-shaped tensors
        from harness.store import weights_path

        first = str(exc).strip().splitlines()[0]
        raise ConfigError(f"weights {weights_path(ctx.store_dir, key)} do not fit variant {variant.name!r} "
                          f"({first})", hint=RETRAIN_HINT) from exc
    return model.to(ctx.device).eval()


def trained_model(ctx: Context, variant: Variant, seed: int) -> nn.Module | None:
    """The stored trained model of ``variant`` and ``seed`` (eval mode, on the device), or None
    when it has no weights (never trained, diverged or failed)."""
    from harness.store import weights_path

    key = cell_key(train_spec(ctx.suite, variant, seed, ctx.device, ctx.batch_seeds))
    if not weights_path(ctx.store_dir, key).exists():
        return None
    return load_model(ctx, variant, seed, key)


def nonfinite(arrays: dict[str, np.ndarray], summary: dict[str, Any] | None = None) -> str | None:
    """What of an evaluation cell's per-example ``arrays`` and stored ``summary`` is NaN or inf (every
    metric needs finite values), as "name (n of N)" parts; None when nothing is."""
    bad = []
    for name, a in arrays.items():
        if a.dtype.kind in "fc" and (n := int(a.size - np.count_nonzero(np.isfinite(a)))):
            bad.append(f"{name} ({n} of {a.size})")

    def numbers(value: Any, where: str) -> Iterator[str]:  # the summary's numbers that are not finite
        if isinstance(value, dict):
            for k, v in value.items():
                yield from numbers(v, f"{where}.{k}" if where else str(k))
        elif isinstance(value, (list, tuple)):
            for i, v in enumerate(value):
                yield from numbers(v, f"{where}[{i}]")
        elif isinstance(value, float) and not np.isfinite(value):
            yield f"{where} ({value})"

    bad += numbers(summary or {}, "")
    return ", ".join(bad) or None


def _rest(conds: list[Condition], stored: set[str], failed: Condition) -> list[Condition]:
    """What to ask the task for again after its evaluation stopped at ``failed``: the conditions not
    stored yet, and before them, in the same order, the stored ones whose attack sweep one of those
    reads (each eps of a sweep reuses what the smaller ones broke; harness.planning redoes a sweep
    whole on the next run). Those come out as before and are not stored again."""
    todo = [c for c in conds if c.key not in stored and c.key != failed.key]
    reads = set().union(*(attack_sweeps(c, conds) for c in todo))
    return [c for c in conds if c.key != failed.key and (c.key not in stored or attack_sweeps(c, conds) & reads)]


def evaluate_unit(ctx: Context, unit: Unit, setup: Callable[[], Any] | None = None,
                  adversarial: Mapping[str, Any] | None = None, shared: Mapping[str, float] | None = None
                  ) -> Iterator[Cell]:
    """Evaluate one trained (variant, seed) on its missing conditions as its task does, a cell per
    condition. ``setup`` gives what the task set up once per run (a :meth:`Worker.setup` keeps it
    between units); None loads it here when the task asks for it. ``adversarial``: condition key ->
    adversarial inputs computed for this model already (:func:`evaluate_batched`; harness.tasks.EvalRun),
    and ``shared``: condition key -> the seconds of that computation that are this cell's.

    A condition fails alone: an exception while the task evaluates or summarises it, or an outcome
    or summary with NaN or inf (:func:`nonfinite`), makes that condition's cell failed, with the
    reason, and the other conditions are still evaluated (where the task's evaluation stopped at the
    exception, the task is asked again for those left: :func:`_rest`). When the model cannot be
    built or its weights loaded, nothing can be evaluated: the first condition's cell fails with the
    reason and the others stay missing."""
    suite, v, task = ctx.suite, unit.variant, task_of(ctx.suite)
    conds = [c for c, _, _ in unit.evals]
    meta = {c.key: (k, s) for c, k, s in unit.evals}
    stored: set[str] = set()  # conditions whose cell was yielded, done or failed
    ask = conds
    t0 = time.perf_counter()

    def failed(cond: Condition, exc: BaseException) -> Cell:
        stored.add(cond.key)
        key, spec = meta[cond.key]
        return Cell(key, "eval", v.name, unit.seed, spec, {}, "failed", _error_text(exc), time.perf_counter() - t0,
                    cond.to_dict())

    while ask:
        try:
            model = load_model(ctx, v, unit.seed, unit.train_key)
            outcomes = task.evaluate(EvalRun(
                suite, v, unit.seed, model, ask, ctx.split, ctx.ood, ctx.natural, ctx.device,
                peer=lambda other: trained_model(ctx, other, unit.seed),
                setup=setup if setup is not None else lambda: task.load_setup(ctx), adversarial=adversarial or {}))
        except Exception as exc:  # the model cannot be rebuilt: no condition can be evaluated
            yield failed(next(c for c in ask if c.key not in stored), exc)
            return
        stopped: Condition | None = None
        for cond in ask:
            try:
                got = next(outcomes, None)
                if got is None:
                    raise RuntimeError(f"the {suite.task} task's evaluation ended before {cond.key}")
            except Exception as exc:  # the task's evaluation is over: this condition fails, the rest is asked again
                # (a condition asked again only for what later ones read fails the first of those)
                stopped = cond if cond.key not in stored else next(c for c in ask if c.key not in stored)
                yield failed(stopped, exc)
                break
            if cond.key in stored:
                continue  # asked again only for what later conditions read from it
            arrays = got[1]
            try:
                bad = nonfinite(arrays)  # before the summary: a summary of NaN fails with a less telling error
                summary = {} if bad else task.eval_summary(cond, arrays)
                if bad := bad or nonfinite({}, summary):
                    raise ValueError(f"the outcome holds NaN or inf: {bad}")
            except Exception as exc:
                yield failed(cond, exc)
            else:
                stored.add(cond.key)
                key, spec = meta[cond.key]
                yield Cell(key, "eval", v.name, unit.seed, spec, summary,
                           seconds=time.perf_counter() - t0 + (shared or {}).get(cond.key, 0.0),
                           condition=cond.to_dict(), arrays=arrays)
            t0 = time.perf_counter()
        ask = [] if stopped is None else _rest(conds, stored, stopped)


#: the most memory (bytes) the adversarial inputs computed batched for one group may take: a group
#: whose models' inputs would take more is split into groups of fewer seeds
BATTERY_BYTES = 1 << 30


def evaluate_batched(ctx: Context, units: tuple[Unit, ...], setup: Callable[[], Any] | None = None
                     ) -> Iterator[Cell]:
    """Evaluate the models of ``units`` (seeds of one variant trained on the batched path; harness.runner
    groups them) as :func:`evaluate_unit` does, a cell per condition, with the attack sweeps that have a
    batched form computed for all of them as one computation first (harness.batched.battery_many:
    equal to the one-model attacks up to float rounding). Each model's evaluation then only predicts
    those adversarial inputs, and runs the rest (other attacks, the sanity checks, clean, shifted and
    OOD inputs) one model at a time. A sweep's wall time is shared equally by the cells it served
    (its models and eps). Groups whose adversarial inputs would pass :data:`BATTERY_BYTES` are attacked in
    parts of fewer seeds. A model that cannot be loaded or stacked, or a failure of the batched
    computation, leaves those models to the one-model path (which fails their cells where the model
    itself is at fault)."""
    import warnings

    from harness.batched import battery_many, supports
    from harness.data import as_tensor

    loaded: list[tuple[Unit, Any]] = []
    for unit in units:
        try:
            model = load_model(ctx, unit.variant, unit.seed, unit.train_key)
        except Exception:  # evaluate_unit fails its first cell with the reason
            continue
        if supports(model) is None:
            loaded.append((unit, model))
    attacked = [sum(c.kind == "attack" for c, _, _ in u.evals) for u, _ in loaded]
    per_model = max(attacked, default=0) * ctx.split.test.x[:1].nbytes * len(ctx.split.test.x)
    size = max(1, BATTERY_BYTES // per_model) if per_model else len(loaded)
    given: dict[str, tuple[dict[str, Any], dict[str, float]]] = {}  # training key -> (inputs, seconds per cell)
    x, y = as_tensor(ctx.split.test.x, ctx.device), as_tensor(ctx.split.test.y, ctx.device)
    for start in range(0, len(loaded), size):
        part = loaded[start:start + size]
        try:
            found = battery_many([m for _, m in part], [u.seed for u, _ in part],
                                 [[c for c, _, _ in u.evals] for u, _ in part], x, y, ctx.suite.evaluation.batch_size)
        except Exception as exc:  # the one-model path computes them (and fails where the model is at fault)
            warnings.warn(f"the batched attacks of {part[0][0].variant.name!r} failed ({type(exc).__name__}: {exc}); "
                          "its seeds are attacked one at a time", RuntimeWarning, stacklevel=1)
            continue
        for (unit, _), f in zip(part, found, strict=True):
            given[unit.train_key] = ({k: t for k, (t, _) in f.items()}, {k: sec for k, (_, sec) in f.items()})
    del loaded
    for unit in units:
        inputs, seconds = given.pop(unit.train_key, ({}, {}))
        yield from evaluate_unit(ctx, unit, setup, inputs, seconds)
