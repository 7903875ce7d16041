"""Runs survive being killed: real `harness run` processes are stopped with SIGKILL at several
points (before the first cell, after the first training cell, in the middle of the evaluations,
several times over, and with the process pool) and the same command run again ends with exactly
the records of an uninterrupted run: the same cells, none lost or duplicated, bit-identical
per-example arrays, training curves and weights. Two uninterrupted runs with the same seeds give
bit-identical records as well (same machine)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from runs import live_in_group, stored_cells, untimed

from harness.store import Store
from harness.suites.quickstart import SUITE as QUICKSTART

pytestmark = [pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals"), pytest.mark.slow]

# two models, 2 epochs each, on the quickstart's full battery (88 evaluation cells),
# about 20 s uninterrupted on 2 cores
ARGS = ["run", "quickstart", "--seeds", "0", "--variants", "mlp-none,mlp-batch", "--epochs", "2",
        "--no-progress", "--quiet"]
N_CELLS = 2 * (1 + len(QUICKSTART.conditions()))  # two models: a training cell and the whole battery each


def _command(run_dir: Path, executor: str) -> list[str]:
    return [sys.executable, "-m", "harness.cli", *ARGS, "--run-dir", str(run_dir), "--executor", executor]


def _finish(run_dir: Path, executor: str = "serial") -> None:
    done = subprocess.run(_command(run_dir, executor), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr




def _kill_after(run_dir: Path, cells: int, executor: str = "serial") -> int:
    """Start the run and SIGKILL it as soon as the store holds ``cells`` cells; returns the count
    seen at the kill. Fails if the run ends first (the kill point would not be tested)."""
    # a session of its own, so that whatever is left can be cleaned up; the kill itself hits the
    # main process only, as `kill -9 PID` does: pool workers must notice and exit by themselves
    proc = subprocess.Popen(_command(run_dir, executor), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 600
        seen = -1
        while proc.poll() is None and time.monotonic() < deadline:
            seen = stored_cells(run_dir)
            if seen >= cells:
                os.kill(proc.pid, signal.SIGKILL)
                break
            time.sleep(0.005)
        # stderr reaches its end when every process holding it has exited, workers included
        _, err = proc.communicate(timeout=30)
    finally:
        for _ in range(100):  # pool workers notice within a second that the run is gone
            left = live_in_group(proc.pid)
            if not left:
                break
            time.sleep(0.1)
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, f"the run ended before {cells} cells (exit {proc.returncode}): {err}"
    assert not left, f"processes {left} of the killed run were still running 10 s after it"
    return seen




def _records(run_dir: Path) -> dict[str, tuple[Any, ...]]:
    """Every cell: its identity, status, result without timings, and arrays as bytes."""
    with Store(run_dir, create=False) as store:
        return {c.key: (c.kind, c.variant, c.seed, c.condition, c.spec, c.status, c.error,
                        untimed(c.result),
                        {n: (a.dtype.str, a.shape, a.tobytes()) for n, a in untimed(c.arrays).items()})
                for c in store.cells()}


def _weights(run_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((run_dir / "weights").glob("*.safetensors"))}


def _assert_same_run(got: Path, want: Path) -> None:
    a, b = _records(got), _records(want)
    assert len(b) == N_CELLS and all(r[5] == "done" for r in b.values())
    assert a.keys() == b.keys(), f"missing {sorted(b.keys() - a.keys())}, extra {sorted(a.keys() - b.keys())}"
    for key in b:
        assert a[key] == b[key], f"cell {key} ({b[key][0]} {b[key][1]} {b[key][3]}) differs"
    assert _weights(got) == _weights(want)
    with sqlite3.connect(got / "store.sqlite") as db:  # one row per cell, every array with its cell
        assert db.execute("SELECT count(*) FROM cells").fetchone()[0] == N_CELLS
        assert db.execute("SELECT count(*) FROM arrays WHERE cell NOT IN (SELECT key FROM cells)").fetchone()[0] == 0


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("reference") / "run"
    _finish(d)
    return d


def test_two_runs_with_the_same_seeds_are_bit_identical(reference: Path, tmp_path: Path) -> None:
    _finish(tmp_path / "again")
    _assert_same_run(tmp_path / "again", reference)
    arrays = next(r[8] for r in _records(reference).values() if r[0] == "train")
    assert "loss" in arrays and "grad_norm" in arrays  # the training curves are among what is compared


@pytest.mark.parametrize("kills", [(0,), (1,), (2, 12, 40)], ids=["before-any-cell", "after-training-one", "thrice"])
def test_a_run_killed_at_any_point_resumes_to_the_uninterrupted_records(reference: Path, tmp_path: Path,
                                                                        kills: tuple[int, ...]) -> None:
    run_dir = tmp_path / "run"
    stored = []  # what each killed run had stored
    for at in kills:
        seen = _kill_after(run_dir, at)
        stored.append(_records(run_dir))
        assert seen <= len(stored[-1]) < N_CELLS and all(r[5] == "done" for r in stored[-1].values())
    _finish(run_dir)
    after = _records(run_dir)
    for before in stored:  # nothing stored before a kill was lost or changed
        assert all(after[k] == v for k, v in before.items())
    _assert_same_run(run_dir, reference)


def test_a_killed_process_pool_run_resumes_to_the_uninterrupted_records(tmp_path: Path) -> None:
    # against an uninterrupted pool run: a pool worker has one torch thread of the two cores where
    # the serial executor has both, and the last bits of a sum depend on how it is split up
    _finish(tmp_path / "reference", executor="process")
    run_dir = tmp_path / "run"
    _kill_after(run_dir, 10, executor="process")
    _finish(run_dir, executor="process")
    _assert_same_run(run_dir, tmp_path / "reference")
