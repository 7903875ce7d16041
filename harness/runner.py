"""Running a suite: check it, plan the cells, execute what is missing, store each as it finishes.

``run(suite)`` is the one Python call behind ``harness run``. Work is split into **units**,
one per (variant, seed): train the model (a training cell), then evaluate it on every
condition (one evaluation cell each). Cells already finished in the run directory's store
are skipped, so running the same command again, or after an interruption, only does what is
missing. A unit that fails is recorded as a failed cell with its error and the other units
go on; so does a single condition (harness.worker.evaluate_unit: an exception, or an outcome
with NaN or inf); a diverged training run is stored as an outcome and its model is not evaluated.
A finished model whose weights file is missing or cannot be used is trained again
(:func:`unusable_weights`), so running the same command repairs it.

This module checks the input and drives the run; the rest lives where its concern does:
:mod:`harness.planning` (units, cell specs and keys), :mod:`harness.worker` (the context a
worker builds from a :class:`~harness.worker.WorkerInit`, and running one unit),
:mod:`harness.tasks` (what differs between task kinds, e.g. a denoise suite's judge
classifier), :mod:`harness.executors` (where the
workers run), :mod:`harness.provenance` (the record of what made the results) and
:mod:`harness.progress` (the bars on the terminal, fed :class:`RunProgress` reports).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from harness.energy import check_watts
from harness.errors import ConfigError
from harness.planning import Unit, eval_spec, plan, train_spec
from harness.provenance import provenance
from harness.runlock import check_unlocked, lock_run_dir
from harness.specs import Condition, EvalSpec, Suite, TrainSpec, Variant, upgrade_suite_dict
from harness.store import (
    LOCK_FILE,
    STORE_FILE,
    Cell,
    EmptyStore,
    Store,
    StoreBusy,
    UnfinishedWrite,
    cell_key,
    check_summary,
    finish_unfinished_write,
)
from harness.tasks import task_of
from harness.worker import Context, WorkerFactory, WorkerInit, load_model, prepare, train_unit

# eval_spec, plan, prepare, train_spec and train_unit live in harness.planning and harness.worker;
# tests import them from here, where they were before the runner was split
__all__ = ("DEFAULT_RUNS_DIR", "RunProgress", "RunSummary", "check_names", "check_resumable", "check_run_dir",
           "default_run_dir", "eval_spec", "load_suite", "plan", "prepare", "resolve_device", "run", "train_spec",
           "train_unit")

DEFAULT_RUNS_DIR = Path("runs")


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


@dataclass(frozen=True)
class RunProgress:
    """How far a run is, as :func:`run` reports it to its ``progress`` callback: training steps
    done of those planned (a diverged run's remaining steps count as done; steps inside a model's
    training are reported only where it trains in this process) and evaluation cells done of those
    planned (replanned once training is over, without the models that diverged or failed)."""

    train_done: int
    train_total: int
    eval_done: int
    eval_total: int


# --- checks before any work ----------------------------------------------------------------


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
    from harness.models import is_factory
    from harness.normswap import AS_BUILT

    for v in suite.variants:
        if v.norm == AS_BUILT:  # the model's own layers: only a model the harness did not write has them
            if not is_factory(v.model):
                raise ConfigError(f"variant {v.name!r}: norm {AS_BUILT!r} keeps the layers of a model built by a "
                                  f"factory, and {v.model!r} is a registered model",
                                  hint="name the model as 'package.module:name', or choose a registered norm")
        else:
            r.norms.entry(v.norm)
        if v.weights is not None:
            from harness.weights import check

            check(v.weights)
    task_of(suite).check_names(suite)  # its data, corruptions, models and whatever else its battery names


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


def check_run_dir(run_dir: Path | str) -> Path:
    """``run_dir`` as a Path, once it is safe to write a run into: a new path (whose nearest existing
    parent is a folder), an empty folder, or a folder that holds a harness store. Refused before
    anything is written (ConfigError): an empty name (it would mean the current folder), a path that
    exists and is not a folder, a path that is itself a symbolic link (whatever it points to: a run
    writes and deletes files there, so the folder is named as itself; links further up the path are
    followed as usual), and a folder that holds other things but no store (a home or project folder,
    whose files a report's writes could clobber; the lock file of a run killed before it made its
    store does not count)."""
    if isinstance(run_dir, str) and not run_dir.strip():
        raise ConfigError(f"the run directory {run_dir!r} is empty",
                          hint="pass a folder path, e.g. --run-dir runs/NAME, or leave --run-dir out for "
                               "runs/SUITE-TIME")
    path = Path(run_dir)
    if path.is_symlink():
        raise ConfigError(f"run directory {path} is a symbolic link (to {os.readlink(path)})",
                          hint="pass the folder itself as --run-dir, not a link to it")
    if path.exists():
        if not path.is_dir():
            raise ConfigError(f"{path} is a file, not a run directory", hint="pass a folder path")
        if not (path / STORE_FILE).exists():
            entries = sorted(e.name for e in path.iterdir() if e.name != LOCK_FILE)  # a run killed before its store
            if entries:
                shown = ", ".join(entries[:3]) + (f" and {len(entries) - 3} more" if len(entries) > 3 else "")
                raise ConfigError(f"{path} is not a run directory and not empty (it holds {shown})",
                                  hint="pass a new or empty folder, or the run directory of an earlier "
                                       "'harness run' to resume it")
        return path
    parent = next((p for p in path.absolute().parents if p.exists() or p.is_symlink()), None)
    if parent is not None and not parent.is_dir():
        raise ConfigError(f"cannot create run directory {path}: {parent} is not a folder",
                          hint="pass a folder path under an existing folder")
    return path


def check_resumable(store: Store, suite: Suite, device: str, batch_seeds: bool = False) -> None:
    """A run directory holds one experiment: the same suite settings on the same device type, its
    seeds trained batched or not (``batch_seeds``) throughout. Seeds and variants may change (adding
    seeds to a finished run reuses its cells), so each (variant, seed, condition) has at most one
    record and the report never mixes recipes, or batched models with models trained one at a time."""
    stored = store.get_meta("suite")
    if stored is None:
        return
    if stored["name"] != suite.name:
        raise ConfigError(f"{store.run_dir} holds a run of suite {stored['name']!r}, not {suite.name!r}",
                          hint="pass another --run-dir")
    new = json.loads(json.dumps(suite.to_dict()))  # tuples become lists, as they were stored
    stored = upgrade_suite_dict(stored)  # settings renamed since read under today's names
    # settings added to Suite later read as their defaults in older run directories (as JSON stores them)
    # (the other sizes a suite declares do not change this run's results)
    defaults: dict[str, Any] = {f.name: json.loads(json.dumps(f.default)) for f in dataclasses.fields(Suite)
                                if f.default is not dataclasses.MISSING}
    for name, spec in (("train", TrainSpec), ("evaluation", EvalSpec)):  # and fields added to its recipe, battery
        if isinstance(stored.get(name), dict):
            stored = {**stored, name: {**{f.name: json.loads(json.dumps(f.default)) for f in dataclasses.fields(spec)
                                          if f.default is not dataclasses.MISSING}, **stored[name]}}
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
    batched = bool(store.get_meta("batch_seeds"))  # recorded only by a run that batched (older ones did not)
    if batched != batch_seeds:
        flag = "--batch-seeds"
        raise ConfigError(f"{store.run_dir} was run {'with' if batched else 'without'} {flag}, and its models "
                          f"{'were' if batched else 'were not'} trained batched",
                          hint=f"resume {'with' if batched else 'without'} {flag}, or pass another --run-dir")


def _check_stored(run_dir: Path, suite: Suite, device: str, wait: bool = True, batch_seeds: bool = False) -> None:
    """A store already in ``run_dir`` must be a harness store of this experiment (read-only: nothing
    is written before the run holds the directory's lock); an empty one (a run killed as it made it)
    holds nothing to check. ``wait=False``: a store that another process holds locked this instant
    (a run writing it) is left to the directory's lock, which refuses this run at once."""
    if not os.path.lexists(run_dir / STORE_FILE):
        return
    try:
        with Store(run_dir, readonly=True, timeout=30.0 if wait else 0.2) as old:
            check_resumable(old, suite, device, batch_seeds)
    except EmptyStore:
        pass
    except StoreBusy:
        if wait:
            raise
    except UnfinishedWrite:
        if not wait:
            return  # checked again once this run holds the directory's lock
        # the lock is held, so the journal is a killed run's: roll its transaction back, then check
        finish_unfinished_write(run_dir)
        try:
            with Store(run_dir, readonly=True, timeout=30.0) as old:  # a store still unreadable now fails as it is
                check_resumable(old, suite, device, batch_seeds)
        except EmptyStore:
            pass


# --- the one call --------------------------------------------------------------------------


def run(suite: str | Suite, run_dir: Path | str | None = None, device: str = "auto",
        executor: str = "process", workers: int | None = None,
        progress: bool | Callable[[RunProgress], None] = True, argv: list[str] | None = None,
        console: Any = None, on_start: Callable[[Path], None] | None = None,
        batch_seeds: bool = False, power_watts: float | None = None) -> RunSummary:
    """Run every missing cell of ``suite`` into ``run_dir`` (created if new, resumed if not): a new
    path, an empty folder or a harness run directory, never a link (:func:`check_run_dir`).

    ``batch_seeds``: train the models of one architecture and recipe (the seeds of variants that differ
    in their norm at most) as one batched computation where their variants can
    (harness.batched.variant_reason), the others one at a time; the training cells say so
    (harness.planning.train_spec), and a run directory is resumed only as it was started
    (:func:`check_resumable`). ``power_watts``: the declared power per busy core that a training run's
    energy is estimated from where the machine's energy counters cannot be read (harness.energy; None:
    its default), stored with each training record.

    Everything is checked first (plugin names, device, executor, every dataset the run reads):
    bad input raises a ConfigError before the run directory is created or changed. Then
    ``on_start(run_dir)`` is called, and the work begins in two phases: every missing training
    cell, then every missing evaluation cell (so the transfer check always finds its paired
    model), each spread over ``executor``'s workers.

    ``progress``: True draws progress bars on ``console`` (default stderr) when it is a terminal
    (:class:`harness.progress.ProgressBars`); False draws nothing; a callable receives every
    :class:`RunProgress` report instead.
    Returns a summary; the report is built separately from the store
    (:func:`harness.reports.build.build_report`), so it can always be rebuilt offline.
    """
    from harness.registry import executors

    suite = load_suite(suite)
    check_names(suite)
    device = resolve_device(device)
    check_watts(power_watts)
    if workers is not None and workers < 1:
        raise ConfigError(f"workers must be at least 1, got {workers}", hint="use e.g. --workers 2")
    ex = executors.get(executor)(workers)  # an unknown or unavailable executor fails before anything is written
    run_dir = check_run_dir(run_dir if run_dir is not None else default_run_dir(suite))
    lock = contextlib.ExitStack()  # the run directory's lock, once taken
    try:
        check_unlocked(run_dir)  # a run writing this directory: say so first, whatever its store holds now
        _check_stored(run_dir, suite, device, False, batch_seeds)  # before anything is written, the lock file included
        # one run at a time per run directory: a second is refused at once (before it loads any data) ...
        if run_dir.is_dir():
            lock.enter_context(lock_run_dir(run_dir))
            _check_stored(run_dir, suite, device, True, batch_seeds)  # as it is now that no other run can change it
        # every dataset the run reads is loaded and checked before the run directory is created
        prepared = prepare(suite, device, run_dir, batch_seeds, power_watts)
        if not run_dir.is_dir():  # ... or, for a new directory, as soon as it is made
            run_dir.mkdir(parents=True, exist_ok=True)
            lock.enter_context(lock_run_dir(run_dir))
            _check_stored(run_dir, suite, device, True, batch_seeds)  # a store made meanwhile by a run since finished
        if on_start is not None:
            on_start(run_dir)
        if callable(progress) or not progress:
            with Store(run_dir) as store, ex:
                return _run(suite, store, ex, prepared, executor, argv, progress if callable(progress) else None)
        from harness.progress import ProgressBars

        with Store(run_dir) as store, ex, ProgressBars(console) as bars:
            return _run(suite, store, ex, prepared, executor, argv, bars)
    finally:
        lock.close()


def unusable_weights(suite: Suite, store: Store, ctx: Context) -> dict[str, str]:
    """Training key -> why the model cannot be used, for each of ``suite``'s finished training cells
    (every variant and seed, not diverged) whose weights file is missing or does not load into the
    model as its evaluation would load it (:func:`harness.worker.load_model`: missing, unreadable,
    truncated, another model's, or failing the store's checks). Reads every weights file of the suite's
    finished models, so that none is left unusable, whether or not this run evaluates it."""
    finished = {c.key: c for c in store.cells("train", with_arrays=False)
                if c.status == "done" and not c.result.get("diverged")}
    out = {}
    for seed in suite.seeds:
        for v in suite.variants:
            key = cell_key(train_spec(suite, v, seed, ctx.device, ctx.batch_seeds))
            if key not in finished:
                continue
            try:
                load_model(ctx, v, seed, key)
            except ConfigError as exc:  # what stops evaluation from loading it (load_model's errors)
                out[key] = exc.message
            except Exception:  # a model that cannot be built: not its weights; its evaluation cells say why
                continue
    return out


def _retrain_unusable(suite: Suite, store: Store, ctx: Context) -> list[Unit]:
    """The plan, with every model whose weights cannot be used (:func:`unusable_weights`) trained
    again and evaluated again: its evaluation cells are deleted first, so none stays from weights that
    are gone (training is seeded, so on the same machine and software the model comes back
    bit-identical and so do they; on another thread count the last bits may differ, and then no
    record mixes the two)."""
    broken = unusable_weights(suite, store, ctx)
    if broken:
        stale = [c.key for c in store.cells("eval", with_arrays=False) if c.spec.get("train_cell") in broken]
        with store.transaction():
            for key in stale:
                store.db.execute("DELETE FROM cells WHERE key = ?", (key,))
    units = plan(suite, store, ctx.device, ctx.batch_seeds)
    planned = {u.train_key for u in units}
    out = [dataclasses.replace(u, need_train=True) if u.train_key in broken else u for u in units]
    for seed in suite.seeds:
        for v in suite.variants:
            spec = train_spec(suite, v, seed, ctx.device, ctx.batch_seeds)
            key = cell_key(spec)
            if key in broken and key not in planned:  # a model plan() does not evaluate (diverged: never broken)
                out.append(Unit(v, seed, key, spec, True, ()))
    return out


@dataclass
class _Tally:
    """What a run has done so far (one per run, in the process that stores the cells)."""

    train_total: int
    eval_total: int
    trained: int = 0
    evaluated: int = 0
    diverged: int = 0
    train_done: int = 0  # training steps, a finished model's all of them
    eval_done: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)

    def progress(self, steps: int = 0) -> RunProgress:
        """The report, with ``steps`` steps of a model in training on top of the finished ones."""
        return RunProgress(self.train_done + steps, self.train_total, self.eval_done, self.eval_total)


def _grouped(units: list[Unit], kind: str, group: Callable[[Unit], str | None]
             ) -> list[tuple[str, Unit | tuple[Unit, ...]]]:
    """The jobs of ``units``: (kind, unit) for each unit whose ``group`` is None, and one
    (kind + "-batched", units) for all the units of each group, placed where the first of them was,
    its units ordered by variant (the variants' first places), then seed."""
    jobs: list[tuple[str, Unit | list[Unit]]] = []
    groups: dict[str, list[Unit]] = {}
    for u in units:
        key = group(u)
        if key is None:
            jobs.append((kind, u))
            continue
        if key not in groups:
            groups[key] = []
            jobs.append((f"{kind}-batched", groups[key]))
        groups[key].append(u)
    order = {u.variant.name: i for i, u in reversed(list(enumerate(units)))}  # a variant's first place
    return [(k, tuple(sorted(what, key=lambda u: (order[u.variant.name], u.seed))) if isinstance(what, list)
             else what) for k, what in jobs]


def _train_jobs(units: list[Unit]) -> list[tuple[str, Unit | tuple[Unit, ...]]]:
    """The training jobs of ``units``: one per unit, but one for all the units whose cells take the
    batched path ("batched" in their spec: harness.planning.train_spec) and share an architecture
    and recipe (their variants differ in the norm slot or input standardization at most), placed
    where the first of them was, its units ordered by variant, then seed (harness.batched stacks each
    run of consecutive models with the same norm as one)."""
    return _grouped(units, "train", lambda u: json.dumps(
        [u.train_spec["variant"]["model"], u.train_spec["variant"]["options"], u.train_spec["train"]],
        sort_keys=True) if u.train_spec.get("batched") else None)


def _eval_jobs(units: list[Unit]) -> list[tuple[str, Unit | tuple[Unit, ...]]]:
    """The evaluation jobs of ``units``: one per unit, but one for the seeds of each variant whose
    models were trained on the batched path (harness.worker.evaluate_batched attacks them as one
    computation). Variants are not stacked together here as in training: an attack runs hundreds of
    examples per operation, and a stack of variants that differ in their norm pays more for routing
    every map through the norm slot than batching saves (benchmarks/batched_seeds.py)."""
    return _grouped(units, "eval", lambda u: u.variant.name if u.train_spec.get("batched") else None)


def _run(suite: Suite, store: Store, ex: Any, prepared: Context, executor: str, argv: list[str] | None,
         report: Callable[[RunProgress], None] | None) -> RunSummary:
    """run() once the store is open: plan, execute what is missing, store each cell as it comes."""
    run_dir, device = store.run_dir, prepared.device  # run() has checked that an existing store holds this run
    if prepared.batch_seeds:  # first: a store with a suite but no such record was not batched
        store.put_meta("batch_seeds", True)
    store.put_meta("suite", suite.to_dict())
    store.put_meta("device", device.split(":")[0])
    # records that fail their checks (checksums; an evaluation's summary against its arrays) are redone
    store.discard_damaged(lambda c: check_summary(c, task_of(suite).eval_summary))
    units = _retrain_unusable(suite, store, prepared)
    n_cells = len(suite.variants) * len(suite.seeds) * (1 + len(suite.conditions()))
    todo = sum(u.need_train + len(u.evals) for u in units)
    if not units:
        store.write_weights_manifest()  # a run finished by an older version gets one too
        return RunSummary(run_dir, 0, 0, n_cells, 0)
    # once per run, before the workers that read it start (a denoise suite's judge classifier)
    task_of(suite).setup(prepared, store, [c for u in units for c, _, _ in u.evals])
    ex.start(WorkerFactory(prepared), WorkerInit(suite, device, run_dir, batch_seeds=prepared.batch_seeds,
                                                 power_watts=prepared.power_watts))
    # torch_threads is this process's; each worker uses usable_cores() // workers
    store.put_meta("provenance", {**provenance(device, argv), "executor": executor, "workers": ex.workers})
    n_train = len(prepared.split.train.x)

    def steps_of(v: Variant) -> int:  # a sweep's variants train for different numbers of steps
        recipe = v.recipe(suite.train)
        return (n_train // recipe.batch_size) * recipe.epochs

    tally = _Tally(train_total=sum(steps_of(u.variant) for u in units if u.need_train),
                   eval_total=sum(len(u.evals) for u in units))
    show: Callable[[RunProgress], None] = report or (lambda _: None)
    show(tally.progress())

    def store_all(cells: Iterator[Cell]) -> None:
        for cell in cells:
            store.put(cell)
            if cell.status == "failed":
                where = f"{cell.kind} {cell.variant} seed {cell.seed}" + (
                    f" {Condition.from_dict(cell.condition).key}" if cell.condition else "")
                tally.failures.append((where, (cell.error or "").splitlines()[0]))
            elif cell.kind == "train":
                tally.trained += 1
                tally.diverged += bool(cell.result.get("diverged"))
            else:
                tally.evaluated += 1
            if cell.kind == "train":  # a diverged run stops early: its remaining steps count as done
                tally.train_done += steps_of(suite.variant(cell.variant))
            else:
                tally.eval_done += 1
            show(tally.progress())

    def on_step(step: int, total: int) -> None:  # training steps of a model trained in this process
        show(tally.progress(step))

    store_all(ex.map(_train_jobs([u for u in units if u.need_train]), on_step if report is not None else None))
    store.write_weights_manifest()  # weights/manifest.json: which variant and seed each weights file is
    # after training: what is left to evaluate (not diverged, training not failed)
    evals = [u for u in plan(suite, store, device, prepared.batch_seeds) if u.evals and not u.need_train]
    tally.eval_total = tally.eval_done + sum(len(u.evals) for u in evals)
    show(tally.progress())
    store_all(ex.map(_eval_jobs(evals)))
    return RunSummary(run_dir, tally.trained, tally.evaluated, n_cells - todo, tally.diverged,
                      tuple(tally.failures))


# --- seeds in rounds until the claims settle ----------------------------------------------------------

SETTLED, MAX_SEEDS, NOTHING_TO_SETTLE = "settled", "max-seeds", "no claim can be judged"


def _more_seeds(seeds: tuple[int, ...], step: int, most: int) -> tuple[int, ...]:
    """``seeds`` and the next ``step`` integers above the largest (at most ``most`` seeds in all)."""
    top = max(seeds)
    return seeds + tuple(range(top + 1, top + 1 + max(0, min(step, most - len(seeds)))))


def _stored_record(run_dir: Path) -> dict[str, Any] | None:
    """The sequential record a run directory's store holds (None: none, or no store yet)."""
    if not os.path.lexists(run_dir / STORE_FILE):
        return None
    try:
        with Store(run_dir, readonly=True) as store:
            return store.get_meta("sequential")  # type: ignore[no-any-return]
    except EmptyStore:
        return None


def _put_record(run_dir: Path, record: Any) -> None:
    """Store the sequential record, holding the run directory (no run writes it meanwhile)."""
    with lock_run_dir(run_dir), Store(run_dir) as store:
        store.put_meta("sequential", record.to_dict())


def run_until_settled(suite: str | Suite, max_seeds: int | None = None, run_dir: Path | str | None = None,
                      level: float = 0.95, n_resamples: int = 2000, adjust: str = "holm", interval: str = "auto",
                      step: int = 1, spending: str = "obrien-fleming",
                      on_look: Callable[[Any], None] | None = None, **run_options: Any) -> tuple[RunSummary, Any]:
    """:func:`run` in rounds: the suite's seeds first, then ``step`` more per round, until every claim
    the suite declares is supported or contradicted, or ``max_seeds`` seeds have run (default: twice
    the suite's seeds, at least 12). After each round the claims are judged on the run directory's
    records (harness.reports.build.build_report) under the sequential design of harness.sequential
    (family-wise error 1 - ``level``, alpha spent by ``spending`` over seeds / max_seeds), whose
    seeds per look are stored in the run directory's store (meta ``sequential``), so the report
    judges the claims by the same design and a killed run resumes at its last look. Each round
    trains and evaluates only the new seeds (:func:`run` skips finished cells). ``on_look`` receives
    the report after each look; ``run_options`` go to :func:`run` (``on_start`` is called once).

    Returns the rounds' summary (their counts added up; the last round's failures, which end the
    rounds) and the run's record (harness.reports.claims.Record). A ConfigError before any work for
    a suite without a claim a report can judge, a budget below the suite's seeds, or a run directory
    run until settled with another design or other first seeds."""
    from harness.reports.build import build_report
    from harness.reports.claims import CONTRADICTED, NOT_EVALUATED, SUPPORTED, Record
    from harness.sequential import Design
    from harness.specs import Claim

    suite = load_suite(suite)
    if not any(isinstance(c, Claim) for c in suite.claims):
        raise ConfigError(f"suite {suite.name!r} declares no claim a report can judge, so nothing can settle",
                          hint="run it without --until-settled, or declare its claims as harness.specs.Claim")
    first = tuple(suite.seeds)
    budget = max(12, 2 * len(first)) if max_seeds is None else max_seeds
    if budget < len(first):
        raise ConfigError(f"--max-seeds {budget} is below the {len(first)} seeds the run starts with",
                          hint=f"pass --max-seeds {len(first)} or more, or fewer --seeds")
    design = Design(1 - level, budget, spending, step)
    path = check_run_dir(run_dir if run_dir is not None else default_run_dir(suite))
    stored = _stored_record(path)
    record = Record(design, ())
    if stored is not None:
        record = Record.from_dict(stored)
        if record.design != design:
            raise ConfigError(f"{path} was run until settled with another design ({record.design.name()}, alpha "
                              f"{record.design.alpha:g}, step {record.design.step})",
                              hint="resume with the same --max-seeds and --level, or pass another --run-dir")
        if record.looks and record.looks[0] != first:
            raise ConfigError(f"{path} was run until settled from seeds {list(record.looks[0])}, not {list(first)}",
                              hint=f"resume with --seeds {','.join(map(str, record.looks[0]))}, or pass another "
                                   "--run-dir")
    seeds = record.looks[-1] if record.looks else first
    if record.looks and record.stopped_because is None:
        seeds = _more_seeds(seeds, step, budget)
    started = run_options.pop("on_start", None)
    total: RunSummary | None = None
    while True:
        summary = run(dataclasses.replace(suite, seeds=seeds), path, on_start=started, **run_options)
        started = None  # once: the rounds share the run directory
        # the cells reused are those finished before this command (a later round's were made by earlier rounds)
        total = summary if total is None else RunSummary(
            path, total.trained + summary.trained, total.evaluated + summary.evaluated, total.skipped,
            total.diverged + summary.diverged, summary.failures)
        if summary.failures or record.stopped_because is not None:
            return total, record  # failed cells end the rounds (the look is not taken); a stopped run is done
        if not record.looks or record.looks[-1] != seeds:
            record = Record(design, (*record.looks, seeds))
            _put_record(path, record)
        report = build_report(path, level, n_resamples, adjust, interval)
        judged = [v.verdict for v in report.claims if v.verdict != NOT_EVALUATED]
        why = (NOTHING_TO_SETTLE if not judged else SETTLED if all(v in (SUPPORTED, CONTRADICTED) for v in judged)
               else MAX_SEEDS if len(seeds) >= budget else None)
        if why is not None:
            record = dataclasses.replace(record, stopped_because=why)
            _put_record(path, record)
        if on_look is not None:
            on_look(report)
        if why is not None:
            return total, record
        seeds = _more_seeds(seeds, step, budget)
