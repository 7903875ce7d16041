"""Executors: how a run's jobs are scheduled (the ``executors`` plugin kind).

An executor is a context manager with ``workers`` (an int once started), ``start(make_worker,
init)``, which builds one worker in every process that will run jobs (``make_worker(init)``,
``init`` a :class:`harness.worker.WorkerInit`, given a torch thread count where the executor
splits the cores), and ``map(jobs, on_step=None)``, which yields the cells of every job as
they finish (in any order), each from a worker's ``run(job)``. Jobs are ``("train" | "eval",
unit)`` pairs; the runner stores each cell as it comes back, so an executor never touches the
store. The worker is the executor's own: held by it (serial, or a pool of one), by the Ray actor,
or, in a process pool's worker processes, by :data:`_POOL_PROCESS` (see there why).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, Protocol

from harness.errors import ConfigError, HarnessError, RunError

if TYPE_CHECKING:
    from harness.store import Cell
    from harness.worker import Job, WorkerInit

OnStep = Callable[[int, int], None]  # (step, total) of a model in training


class JobWorker(Protocol):
    """What an executor runs jobs on (harness.worker.Worker): one per process, built by
    ``make_worker(init)``; ``run(job, on_step)`` yields the job's cells."""

    def run(self, job: Job, on_step: OnStep | None = None) -> Iterator[Cell]: ...


MakeWorker = Callable[["WorkerInit"], JobWorker]  # picklable: process pools and Ray call it in their workers


class SerialExecutor:
    """Runs jobs one after another in this process, with every torch thread.

    Deterministic and the simplest to debug; progress is reported per training step, and
    plugins registered in code (not through entry points) are visible."""

    workers = 1

    def __init__(self, workers: int | None = None) -> None:
        if workers is not None and workers > 1:
            raise ConfigError(f"the serial executor runs one job at a time, not {workers} workers",
                              hint="drop --workers, or use --executor process")
        self._worker: JobWorker | None = None

    def __enter__(self) -> SerialExecutor:
        return self

    def __exit__(self, *exc: Any) -> None:
        self._worker = None

    def start(self, make_worker: MakeWorker, init: WorkerInit) -> None:
        self._worker = make_worker(init)

    def map(self, jobs: Iterable[Job], on_step: OnStep | None = None) -> Iterator[Cell]:
        yield from _run_here(self._worker, jobs, on_step)


def _run_here(worker: JobWorker | None, jobs: Iterable[Job], on_step: OnStep | None) -> Iterator[Cell]:
    """Every job's cells from a worker in this process, one job after another."""
    if worker is None:
        raise RuntimeError("the executor was not started: call start(make_worker, init) before map(jobs)")
    for job in jobs:
        yield from worker.run(job, on_step)


class ProcessExecutor:
    """A local pool of worker processes, one per core (the default).

    The cores are split between the workers
    (``torch.set_num_threads(cores // workers)`` in each), which pays off for the small models
    that dominate suites: a 2-core machine trains two models at once. ``workers`` defaults to
    the number of usable cores on the CPU and to 1 on CUDA (where one process keeps the GPU
    busy). With one worker it runs in this process, like ``serial``.

    Workers are started with ``spawn`` (never ``fork``: torch's thread pools do not survive a
    fork), each loads the suite's data once, and a job's cells come back when it finishes.
    """

    def __init__(self, workers: int | None = None) -> None:
        self.workers = workers
        self._pool: Any = None
        self._worker: JobWorker | None = None  # with one worker: this process's

    def __enter__(self) -> ProcessExecutor:
        return self

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        self._worker = None
        if self._pool is not None:
            if exc_type is not None:
                # the run is ending early (Ctrl-C, SIGTERM, an error): the jobs still running are for
                # nobody. Workers ignore SIGINT, so stop them here; shutdown then finds them gone.
                # _processes is the pool's own map of its worker processes (None once shut down).
                for process in list((getattr(self._pool, "_processes", None) or {}).values()):
                    process.terminate()
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def start(self, make_worker: MakeWorker, init: WorkerInit) -> None:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        n = self.workers or (1 if str(init.device).startswith("cuda") else usable_cores())
        self.workers = n
        if n <= 1:
            self._worker = make_worker(init)
            return
        init = dataclasses.replace(init, threads=max(1, usable_cores() // n))
        self._pool = ProcessPoolExecutor(n, mp_context=multiprocessing.get_context("spawn"),
                                         initializer=_start_worker, initargs=(os.getpid(), make_worker, init))

    def map(self, jobs: Iterable[Job], on_step: OnStep | None = None) -> Iterator[Cell]:
        """Every job's cells; ``on_step`` reports training steps only with one worker (in this process)."""
        from concurrent.futures import as_completed

        if self._pool is None:
            yield from _run_here(self._worker, jobs, on_step)
            return
        from concurrent.futures.process import BrokenProcessPool

        with _sigint_blocked():  # the first submit starts the workers: they start with SIGINT blocked
            futures = [self._pool.submit(_run_in_pool_process, t) for t in jobs]
        try:
            for f in as_completed(futures):
                yield from f.result()
        except BrokenProcessPool as exc:
            raise RunError(
                "a worker process died before finishing its cells (cells finished so far are stored)",
                hint="run the same command again to resume; from a Python script, call run() under "
                     "'if __name__ == \"__main__\":'; or use --executor serial to see the error") from exc


class _RayWorker:
    """The body of one Ray actor: a worker process that builds its worker once (the runner's
    loads the suite's data) and then runs one job at a time on it.

    A failing ``make_worker`` is kept and reported by :meth:`ready` rather than raised, so that the
    driver gets the exception itself (a ConfigError keeps its hint) instead of a dead actor."""

    def __init__(self, make_worker: MakeWorker, init: WorkerInit) -> None:
        self._error: BaseException | None = None
        self._worker: JobWorker | None = None
        try:
            self._worker = make_worker(init)
        except Exception as exc:
            self._error = exc

    def ready(self, run_dir: str) -> BaseException | None:
        import os
        import socket

        if self._error is None and not os.path.isdir(run_dir):
            return ConfigError(f"the run directory {run_dir} is not visible on Ray node {socket.gethostname()}",
                               hint="put the run directory on a filesystem every node mounts at the same path "
                                    "(see 'Executors' in docs/plugins.md)")
        return self._error

    def run(self, job: Job) -> list[Cell]:
        assert self._worker is not None  # ready() has reported a failed start before any job is sent
        return list(self._worker.run(job))


def _import_ray() -> Any:
    """The ``ray`` module, or a ConfigError saying how to install it."""
    try:
        import ray
    except ImportError as exc:
        if exc.name == "ray":
            raise ConfigError("the ray executor needs Ray, which is not installed",
                              hint="pip install 'norm-harness[ray]', or use --executor process") from None
        # installed, but one of its own dependencies is missing or broken
        raise ConfigError(f"Ray is installed but fails to import: {_first_line(exc)}",
                          hint="reinstall it: pip install --force-reinstall 'norm-harness[ray]'") from exc
    return ray


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"


def _check_reachable(address: str) -> None:
    """Fail fast on a ``host:port`` RAY_ADDRESS that nothing listens on: ``ray.init`` itself
    retries for minutes, printing warnings, before it gives up."""
    import socket

    hint = "start the cluster (ray start --head) or unset RAY_ADDRESS to run on a local Ray instance"
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep:
        return  # "auto" and other forms Ray resolves itself
    if not port.isdigit() or not host:
        raise ConfigError(f"RAY_ADDRESS={address!r} is not HOST:PORT", hint=hint)
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as exc:
        raise ConfigError(f"nothing answers at RAY_ADDRESS={address!r} ({exc.strerror or exc})", hint=hint) from None


class RayExecutor:
    """Runs jobs on a Ray cluster, one actor (a worker process) per worker.

    Install with ``pip install 'norm-harness[ray]'``. With ``RAY_ADDRESS`` set it joins that
    cluster and leaves it running; in a process already connected to Ray (a script that called
    ``ray.init`` itself) it uses that connection; otherwise it starts a local Ray instance with
    this machine's usable cores and shuts it down at the end. Ray's logs stay in its own log
    folder (``/tmp/ray``), off the terminal.

    ``workers`` defaults to the cluster's CPUs (its GPUs on CUDA). Each actor reserves an equal
    share of them, runs torch with that many threads (``cores // workers`` on one machine, as
    the process pool does), loads the suite's data once and runs one job at a time; the cells
    come back to this process, the only one that writes the store.

    Training jobs write weights into the run directory and evaluation jobs, on any worker,
    read them: **on a cluster of several machines the run directory must be on a shared
    filesystem** mounted at the same path on every node (a worker that cannot see it fails the
    start), and every node needs the same norm-harness, plugins and data root. A worker that
    dies, or a job that fails outside the cells' own error handling, ends the run with a
    RunError; the cells already stored stay, so running the same command again resumes.
    """

    start_timeout = 300.0  # seconds for every actor to start and load the data; a cluster may need to scale up

    def __init__(self, workers: int | None = None) -> None:
        self.workers = workers
        self._ray = _import_ray()  # here, so a missing Ray fails before any work
        address = os.environ.get("RAY_ADDRESS", "").strip()
        if address and address != "local":  # and a cluster that is not there (the runner makes nothing before this)
            _check_reachable(address)
        self._started = False
        self._actors: list[Any] = []

    def __enter__(self) -> RayExecutor:
        return self

    def __exit__(self, *exc: Any) -> None:
        import contextlib

        ray = self._ray
        # cleaning up must not mask the error that ended the run (the cluster may be gone)
        with contextlib.suppress(Exception):
            for actor in self._actors:  # actors on a cluster we do not own would keep their cores
                ray.kill(actor)
        self._actors = []
        if self._started:
            with contextlib.suppress(Exception):
                ray.shutdown()
            self._started = False

    def _connect(self) -> None:
        import logging
        import os

        ray = self._ray
        if ray.is_initialized():
            return
        quiet = {"include_dashboard": False, "log_to_driver": False, "configure_logging": True,
                 "logging_level": logging.ERROR}
        address = os.environ.get("RAY_ADDRESS", "").strip()
        if address and address != "local":  # checked reachable when the executor was made
            try:
                ray.init(address=address, **quiet)
            except (ConnectionError, RuntimeError) as exc:  # no cluster there, or one of another Ray/Python version
                raise ConfigError(f"cannot join the Ray cluster at RAY_ADDRESS={address!r}: {_first_line(exc)}",
                                  hint="start it (ray start --head) or unset RAY_ADDRESS to run on a local Ray "
                                       "instance") from None
            return
        # a local instance that lives for one run has nothing to report to Ray's usage statistics
        # (the user's own setting wins)
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        ray.init(address="local", num_cpus=usable_cores(), **quiet)
        self._started = True

    def start(self, make_worker: MakeWorker, init: WorkerInit) -> None:
        from pathlib import Path

        ray = self._ray
        # workers may run in another folder or on another machine, so the run directory travels as
        # an absolute path
        device = str(init.device)
        run_dir = Path(init.run_dir).absolute()
        cuda = device.startswith("cuda")
        if cuda and device not in ("cuda", "cuda:0"):
            raise ConfigError(f"the ray executor gives each worker a GPU of its own, which it sees as cuda:0, "
                              f"so {device} names no GPU a worker can use", hint="use --device cuda")
        self._connect()
        resources = ray.cluster_resources()
        cpus, gpus = float(resources.get("CPU", 0)), float(resources.get("GPU", 0))
        if cpus <= 0 or (cuda and gpus <= 0):
            what = "GPUs" if cuda else "CPUs"
            raise ConfigError(f"the Ray cluster has no {what}",
                              hint=f"add nodes with {what}, or use --executor process")
        n = self.workers or max(1, int(gpus if cuda else cpus))
        share = {"num_cpus": _floor4(cpus / n), "num_gpus": _floor4(gpus / n) if cuda else 0}
        threads = max(1, int(cpus // n))
        worker = ray.remote(_RayWorker).options(**share)
        init = dataclasses.replace(init, run_dir=run_dir, threads=threads)
        self._actors = [worker.remote(make_worker, init) for _ in range(n)]
        waiting = [a.ready.remote(str(run_dir)) for a in self._actors]
        done, pending = ray.wait(waiting, num_returns=n, timeout=self.start_timeout)
        if pending:
            raise RunError(f"only {len(done)} of {n} Ray workers started within {self.start_timeout:.0f} s "
                           f"(the cluster has {cpus:g} CPUs, {gpus:g} GPUs)",
                           hint="pass fewer --workers, or see what holds the cluster with 'ray status'")
        for ref in done:
            try:
                error = ray.get(ref)
            except ray.exceptions.RayError as exc:  # the actor could not even be created
                raise RunError(f"a Ray worker failed to start: {_first_line(exc)}",
                               hint="every node needs norm-harness and the suite's plugins installed; "
                                    "try --executor process to see the error") from exc
            if isinstance(error, HarnessError):
                raise error
            if error is not None:
                raise RunError(f"a Ray worker failed to set up the run: {_first_line(error)}",
                               hint="use --executor serial to see the traceback") from error
        self.workers = n

    def map(self, jobs: Iterable[Job], on_step: OnStep | None = None) -> Iterator[Cell]:
        """Every job's cells as they come back; ``on_step`` is not reported (no job runs in this process)."""
        import copy

        ray = self._ray
        todo = iter(jobs)
        running: dict[Any, Any] = {}  # result reference -> the actor computing it

        def feed(actor: Any) -> None:
            job = next(todo, None)
            if job is not None:
                running[actor.run.remote(job)] = actor

        for actor in self._actors:
            feed(actor)
        while running:
            [ref], _ = ray.wait(list(running), num_returns=1)
            actor = running.pop(ref)
            cells = self._result(ref)
            feed(actor)  # before the driver stores these cells, so the worker is never idle meanwhile
            # arrays out of Ray's object store can be read-only views of its shared memory, which
            # goes away with the instance: the cells handed on own their arrays
            yield from copy.deepcopy(cells)

    def _result(self, ref: Any) -> list[Cell]:
        ray = self._ray
        hint = "run the same command again to resume; or use --executor serial to see the error"
        try:
            cells: list[Cell] = ray.get(ref)
        except ray.exceptions.RayTaskError as exc:
            raise RunError(f"a job failed on a Ray worker (cells finished so far are stored): "
                           f"{_first_line(exc.cause if exc.cause is not None else exc)}", hint=hint) from exc
        except ray.exceptions.RayError as exc:  # the actor, its node or the object died
            raise RunError("a Ray worker died before finishing its cells (cells finished so far are stored): "
                           f"{_first_line(exc)}", hint=hint) from exc
        return cells


def _floor4(x: float) -> float:
    """x rounded down to Ray's resource precision (1e-4), so n shares never exceed the total."""
    import math

    return math.floor(x * 10_000) / 10_000


class _PoolProcess:
    """The worker of a process-pool worker process, once :func:`_start_worker` has built it."""

    __slots__ = ("worker",)

    def __init__(self) -> None:
        self.worker: JobWorker | None = None


# The one piece of module state in the runner's code, and why it cannot be avoided: a
# ProcessPoolExecutor's initializer runs once in each worker process but cannot hand what it
# builds to the jobs that follow (it returns to nobody, and each job arrives as a fresh pickled
# call), so a job reaches its process's worker only through the process's own module state. It is
# set only in those spawned processes, once, and stays None in the process that runs the suite.
_POOL_PROCESS = _PoolProcess()


def _run_in_pool_process(job: Job) -> list[Cell]:
    """One job's cells, run on this pool process's worker."""
    worker = _POOL_PROCESS.worker
    assert worker is not None, "a pool job ran in a process whose worker was not built"
    return list(worker.run(job))


@contextlib.contextmanager
def _sigint_blocked() -> Iterator[None]:
    """SIGINT held back from this thread while the block runs, and from the processes it starts
    (a signal mask is inherited through fork and exec): a Ctrl-C in the meantime arrives after
    the block, once. Does nothing where there are no signal masks (Windows)."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _start_worker(parent: int, make_worker: MakeWorker, init: WorkerInit) -> None:
    """A pool process's start: ignore SIGINT, exit when the run that started it is gone, then
    build its worker.

    Ctrl-C on a terminal reaches every process of the run: the run itself handles it (it stops
    the workers and prints one message), so a worker ignores it rather than print a traceback.
    It was started with SIGINT blocked (:func:`_sigint_blocked`), so none arrives before this.
    A run killed outright (SIGKILL, the machine's OOM killer) cannot stop its pool, and its
    workers would otherwise finish their jobs for nobody, holding the cores the resumed run
    needs."""
    import threading

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})  # one held back meanwhile is dropped

    def watch() -> None:
        while True:
            time.sleep(0.5)
            if os.getppid() != parent:  # re-parented: the run's process has died
                os._exit(1)

    threading.Thread(target=watch, name="exit-with-run", daemon=True).start()
    _POOL_PROCESS.worker = make_worker(init)


def usable_cores() -> int:
    """The cores this process may run on (the affinity mask where the OS has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
