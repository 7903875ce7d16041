"""Tests for harness.executors: every registered executor runs a real small suite into records
bit-identical to the serial executor's; the ray executor on a local Ray instance it starts (two
actors, each with its share of the cores, the run directory passed as an absolute path) and
stops again; a worker that dies or a task that raises ends the run with a RunError after the
cells finished before it came back; a missing or broken Ray and a bad RAY_ADDRESS are one
ConfigError each, before Ray starts.

Ray's tests need Ray (tox installs the ``ray`` extra); elsewhere they skip and say how to
install it, and under CI (``CI`` set) a missing Ray fails them instead.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from runs import untimed

from harness.errors import ConfigError, RunError
from harness.registry import executors, suites
from harness.runner import run
from harness.specs import Suite
from harness.store import Store
from harness.worker import WorkerFactory, WorkerInit

# Older Ray (2.10, the extra's lower bound) leaves the log files of the processes it starts open
# when it shuts down; warnings being errors, pytest would fail whichever test runs when they are
# collected. Only those files (in a Ray session's logs folder) are let through; Ray 2.60 leaves none.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Exception ignored in. <_io.FileIO name='[^']*/session_[^']*/logs/:pytest.PytestUnraisableExceptionWarning")


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        message = "Ray is not installed: pip install 'norm-harness[ray]' (tox installs it)"
        if os.environ.get("CI"):  # CI installs the ray extra (tox.ini): a missing Ray is a broken CI, not a skip
            pytest.fail(message)
        pytest.skip(message)
    return ray


def _small() -> Suite:
    """Two CNN variants x two seeds, one epoch, on the real digits, with a light battery that keeps
    every kind of cell: clean, a shift, OOD, two attacks and the sanity checks (among them the
    transfer attack, which reads the paired variant's weights, written by another worker)."""
    suite = suites.get("quickstart").with_overrides(seeds=(0, 1), variants=("cnn-none", "cnn-batch"), epochs=1)
    ev = dataclasses.replace(suite.evaluation, shifts=("gaussian-noise",), severities=(2,), ood_sets=("faces",),
                             attacks=tuple(dataclasses.replace(a, eps=(0.0, 0.1)) for a in suite.evaluation.attacks
                                           if a.name in ("fgsm", "pgd-linf")))
    return dataclasses.replace(suite, evaluation=ev)


def _cells(run_dir: Path) -> dict[str, Any]:
    with Store(run_dir, create=False) as store:
        return {c.key: c for c in store.cells()}


@pytest.fixture(scope="module")
def serial_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("serial") / "run"
    assert run(_small(), d, device="cpu", executor="serial", progress=False).ok
    return d


@pytest.mark.slow
@pytest.mark.parametrize("name", executors.names())
def test_every_executor_gives_the_serial_records_bit_for_bit(name: str, serial_dir: Path, tmp_path: Path) -> None:
    """Workers that the process pool and Ray build from a WorkerInit in fresh processes give the
    cells (keys, specs, results, arrays) and weights of the serial executor's worker in this one."""
    if name == "ray":
        _ray()
    workers = None if name == "serial" else 2  # serial refuses a worker count
    summary = run(_small(), tmp_path / "run", device="cpu", executor=name, workers=workers, progress=False)
    n_cond = len(_small().conditions())
    assert summary.ok and (summary.trained, summary.evaluated) == (4, 4 * n_cond)
    serial, other = _cells(serial_dir), _cells(tmp_path / "run")
    assert serial.keys() == other.keys() and len(serial) == 4 * (1 + n_cond)
    compared = 0
    for key, a in serial.items():
        b = other[key]
        assert (b.kind, b.variant, b.seed, b.status, b.spec, b.condition) == \
            (a.kind, a.variant, a.seed, "done", a.spec, a.condition), key
        assert untimed(a.result) == untimed(b.result), key
        assert a.arrays.keys() == b.arrays.keys(), key
        for array, x in untimed(a.arrays).items():
            assert x.dtype == b.arrays[array].dtype and np.array_equal(x, b.arrays[array]), f"{key} {array}"
            compared += x.size
    # every training cell has its curves and every evaluation but a not-applicable check its
    # per-example arrays: the comparison above was not over empty records
    assert all(c.arrays for c in serial.values() if not c.result.get("not_applicable"))
    assert compared > 4 * n_cond * 100
    weights = sorted(p.name for p in (serial_dir / "weights").glob("*.safetensors"))
    assert len(weights) == 4 and weights == sorted(p.name for p in (tmp_path / "run" / "weights").glob("*.safetensors"))
    weights.append("manifest.json")  # which variant and seed each file is: the same on every executor
    for w in weights:
        assert (serial_dir / "weights" / w).read_bytes() == (tmp_path / "run" / "weights" / w).read_bytes(), w
    with Store(tmp_path / "run", create=False) as store:  # and the other executors' workers were not this process
        assert (store.get_meta("provenance")["executor"], store.get_meta("provenance")["workers"]) == \
            (name, 1 if name == "serial" else 2)


@pytest.mark.slow
def test_the_process_pool_builds_a_worker_in_each_spawned_process_with_its_share_of_the_cores(
        tmp_path: Path) -> None:
    from harness.executors import ProcessExecutor, usable_cores

    with ProcessExecutor(workers=2) as ex:
        ex.start(_Where, WorkerInit(_small(), "cpu", tmp_path))  # _Where travels by reference: spawn imports it
        assert ex.workers == 2
        tasks: list[Any] = [("train", i) for i in range(4)]
        seen: list[Any] = list(ex.map(tasks))
    assert sorted(t for *_, t in seen) == tasks
    assert os.getpid() not in {pid for pid, *_ in seen}
    assert {(threads, store_dir) for _, threads, store_dir, _ in seen} == {(max(1, usable_cores() // 2), tmp_path)}


# --- the ray executor ---------------------------------------------------------------------------
# The workers below run inside Ray's actors, which cannot import this test module (pytest put its
# folder on this process's sys.path only), so they travel by value. A spawned pool process is given
# this process's sys.path and imports them by name (the process pool's test above).


def _register_by_value() -> None:
    _ray().cloudpickle.register_pickle_by_value(sys.modules[__name__])


class _Where:
    """A worker that reports where it runs: pid, torch threads, and the run directory of the real
    worker the runner's factory built there from the WorkerInit (which loaded the suite's data)."""

    def __init__(self, init: WorkerInit) -> None:
        self.worker = WorkerFactory()(init)

    def run(self, task: Any, on_step: Any = None) -> Iterator[Any]:
        import torch

        yield os.getpid(), torch.get_num_threads(), self.worker.ctx.store_dir, task


class _DiesOrRaises:
    def __init__(self, init: WorkerInit) -> None:
        pass

    def run(self, task: Any, on_step: Any = None) -> Iterator[Any]:
        if task == "die":
            os._exit(3)  # the worker process is gone, as when the OOM killer takes it
        if task == "raise":
            raise ValueError("a task that fails outside the cells' own error handling")
        yield task


def _refuses(init: WorkerInit) -> Any:
    raise ConfigError("this worker refuses to start", hint="a hint that must survive the trip")


@pytest.mark.slow
def test_ray_starts_a_local_instance_splits_its_cores_and_stops_it(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.executors import RayExecutor, usable_cores

    ray = _ray()
    _register_by_value()
    assert not ray.is_initialized()
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.chdir(tmp_path)
    Path("rel").mkdir()  # a relative run directory: the workers get it as an absolute path
    with RayExecutor(workers=2) as ex:
        ex.start(_Where, WorkerInit(_small(), "cpu", Path("rel")))
        assert ex.workers == 2 and ray.cluster_resources()["CPU"] == usable_cores()
        tasks: list[Any] = [("train", i) for i in range(6)]
        seen: list[Any] = list(ex.map(tasks))
    assert not ray.is_initialized()  # it started the instance, so it shut it down
    assert sorted(t for *_, t in seen) == [("train", i) for i in range(6)]
    assert len({pid for pid, *_ in seen}) == 2 and os.getpid() not in {pid for pid, *_ in seen}
    assert {(threads, store_dir) for _, threads, store_dir, _ in seen} == {(max(1, usable_cores() // 2),
                                                                             Path.cwd() / "rel")}


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again on leaving: nothing listens there


@pytest.mark.parametrize("address, message", [
    ("127.0.0.1:{port}", "nothing answers at RAY_ADDRESS='127.0.0.1:{port}'"),
    ("ray://127.0.0.1:{port}", "nothing answers at RAY_ADDRESS='ray://127.0.0.1:{port}'"),
    ("headnode:port", "RAY_ADDRESS='headnode:port' is not HOST:PORT"),
    ("auto", "cannot join the Ray cluster at RAY_ADDRESS='auto': ConnectionError: Could not find any running Ray"),
])
def test_a_bad_ray_address_is_one_config_error_before_ray_starts(address: str, message: str, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    ray = _ray()
    port = _closed_port()
    monkeypatch.setenv("RAY_ADDRESS", address.format(port=port))
    with pytest.raises(ConfigError) as err:
        run(_small(), tmp_path / "r", device="cpu", executor="ray", progress=False)
    assert err.value.message.startswith(message.format(port=port)) and "\n" not in err.value.message
    assert "unset RAY_ADDRESS" in err.value.hint
    assert not ray.is_initialized()
    if address == "auto":  # Ray itself looks for the cluster, when the run starts: an empty store
        with Store(tmp_path / "r", create=False) as store:
            assert list(store.cells()) == []
    else:  # checked when the executor is made, before the run directory is
        assert not (tmp_path / "r").exists()


@pytest.fixture(scope="module")
def ray_instance() -> Iterator[Any]:
    """A local Ray instance this module starts itself, as a script calling ``ray.init`` would;
    the executor must use it and leave it running."""
    ray = _ray()
    _register_by_value()
    assert not ray.is_initialized()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RAY_USAGE_STATS_ENABLED", "0")  # tests reach nothing outside this machine
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
        yield ray
        ray.shutdown()


@pytest.mark.parametrize("fatal, message", [
    ("die", "a Ray worker died before finishing its cells (cells finished so far are stored)"),
    ("raise", "a job failed on a Ray worker (cells finished so far are stored): ValueError: a task that fails"),
])
def test_a_dead_worker_or_a_failing_task_is_a_run_error_after_the_cells_before_it(ray_instance: Any, fatal: str,
                                                                                  message: str) -> None:
    from harness.executors import RayExecutor

    got: list[Any] = []
    tasks: list[Any] = ["a", "b", fatal, "c"]
    with RayExecutor(workers=1) as ex:  # one worker: the tasks run in order
        ex.start(_DiesOrRaises, WorkerInit(_small(), "cpu", Path.cwd()))
        with pytest.raises(RunError) as err:
            for cell in ex.map(tasks):
                got.append(cell)
    assert got == ["a", "b"]
    assert err.value.message.startswith(message) and "\n" not in err.value.message
    assert err.value.hint.startswith("run the same command again to resume")
    assert ray_instance.is_initialized()  # not its instance: left running


def test_a_run_directory_a_worker_cannot_see_or_a_worker_that_fails_to_build_fails_the_start(ray_instance: Any,
                                                                                              tmp_path: Path) -> None:
    from harness.executors import RayExecutor

    with RayExecutor(workers=2) as ex, pytest.raises(ConfigError) as err:
        ex.start(_DiesOrRaises, WorkerInit(_small(), "cpu", tmp_path / "nowhere"))
    assert err.value.message == f"the run directory {tmp_path / 'nowhere'} is not visible on Ray node " \
                                f"{socket.gethostname()}"
    assert "filesystem every node mounts" in err.value.hint
    with RayExecutor(workers=2) as ex, pytest.raises(ConfigError) as err:
        ex.start(_refuses, WorkerInit(_small(), "cpu", tmp_path))
    assert (err.value.message, err.value.hint) == ("this worker refuses to start", "a hint that must survive the trip")
    assert ray_instance.is_initialized()


# --- without Ray ---------------------------------------------------------------------------------


def test_without_ray_the_ray_executor_is_one_error_with_the_install_hint(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch,
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    from harness.cli import main

    monkeypatch.setitem(sys.modules, "ray", None)  # what an environment without Ray gives: import ray fails
    with pytest.raises(ConfigError) as err:
        run(_small(), tmp_path / "r", device="cpu", executor="ray", progress=False)
    assert err.value.message == "the ray executor needs Ray, which is not installed"
    assert err.value.hint == "pip install 'norm-harness[ray]', or use --executor process"
    assert not (tmp_path / "r").exists()  # refused before the run directory is made
    assert main(["run", "quickstart", "--executor", "ray", "--run-dir", str(tmp_path / "cli")]) == 2
    assert capsys.readouterr().err.splitlines()[-2:] == [
        "Error: the ray executor needs Ray, which is not installed",
        "Hint: pip install 'norm-harness[ray]', or use --executor process"]


def test_a_ray_that_fails_to_import_is_one_error_naming_the_cause(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    # a real package named ray whose own dependency is missing, found first on the path
    (tmp_path / "ray").mkdir()
    (tmp_path / "ray" / "__init__.py").write_text("import msgpack_that_is_not_installed\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "ray", raising=False)
    from harness.executors import RayExecutor

    with pytest.raises(ConfigError) as err:
        RayExecutor()
    assert err.value.message == "Ray is installed but fails to import: ModuleNotFoundError: " \
                                "No module named 'msgpack_that_is_not_installed'"
    assert "pip install --force-reinstall 'norm-harness[ray]'" in err.value.hint
