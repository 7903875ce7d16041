"""Ctrl-C and SIGTERM end a command cleanly: real `harness run` and `harness report` processes
get the signal a terminal or a service manager sends (SIGINT to the whole process group, SIGTERM
to the run's process alone), in the middle of their work, with the process pool and without.
Each ends with exactly one ``Error:`` line that says what the interruption left and one
``Hint:`` line that fits the command, exit status 128 + the signal's number, no traceback (the
pool's workers ignore SIGINT and are stopped by the run), no leaked-semaphore warning, no process
left behind, and the interrupted run resumes to every cell."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from runs import live_in_group, stored_cells

from harness.suites.quickstart import SUITE as QUICKSTART

pytestmark = [pytest.mark.skipif(not hasattr(signal, "SIGKILL") or not Path("/proc/self/stat").exists(),
                                 reason="needs POSIX signals and /proc"), pytest.mark.slow]

# tests/test_resume.py's run: two models, 2 epochs, the quickstart's battery
ARGS = ["run", "quickstart", "--seeds", "0", "--variants", "mlp-none,mlp-batch", "--epochs", "2",
        "--no-progress", "--quiet"]
N_CELLS = 2 * (1 + len(QUICKSTART.conditions()))  # two models: a training cell and the whole battery each






def _signal_when(command: list[str], ready: object, signum: int, group: bool) -> tuple[int, list[str], list[int]]:
    """Start ``command`` in a session of its own, send ``signum`` once ``ready(pid)`` holds (to the
    whole process group when ``group``, as a terminal's Ctrl-C does, else to the process alone,
    as ``kill PID`` does), and wait for it. Returns the exit status, the stderr lines and the
    processes of its group still alive 5 s after it ended. Fails if it ended before the signal,
    or took more than 10 s to end after it (a run stops its workers rather than wait for their jobs)."""
    assert callable(ready)
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 600
        while proc.poll() is None and not ready(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.005)
        assert proc.poll() is None, f"it ended before the signal (exit {proc.returncode}): {proc.stderr.read()}"
        (os.killpg if group else os.kill)(proc.pid, signum)
        sent = time.monotonic()
        # stderr reaches its end when every process holding it has exited, pool workers included
        _, err = proc.communicate(timeout=120)
        took = time.monotonic() - sent
        for _ in range(50):
            left = live_in_group(proc.pid)
            if not left:
                break
            time.sleep(0.1)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
    assert took < 10, f"it took {took:.1f} s to end after the signal"
    return proc.returncode, err.splitlines(), left


def _run(run_dir: Path, executor: str) -> list[str]:
    return [sys.executable, "-m", "harness.cli", *ARGS, "--run-dir", str(run_dir), "--executor", executor,
            "--workers", "2" if executor == "process" else "1"]


def _assert_clean(code: int, lines: list[str], left: list[int], signum: int, error: str, hint: str) -> None:
    assert code == 128 + signum, "\n".join(lines)
    assert lines == [f"Error: {error}", f"Hint: {hint}"]  # nothing else: no traceback, no warning
    assert not left, f"processes {left} of the interrupted command were still running 5 s after it"


@pytest.mark.parametrize(("signum", "executor", "group"), [
    (signal.SIGINT, "process", True),  # Ctrl-C on a terminal: every process of the run gets SIGINT
    (signal.SIGTERM, "process", False),  # kill PID, a service manager, a batch scheduler
    (signal.SIGTERM, "serial", False),
], ids=["ctrl-c-process-pool", "sigterm-process-pool", "sigterm-serial"])
def test_a_signal_during_evaluation_ends_the_run_with_one_message_and_it_resumes(
        tmp_path: Path, signum: int, executor: str, group: bool) -> None:
    run_dir = tmp_path / "run"
    # both models trained and some evaluation cells stored: the pool's workers are in the middle of jobs
    code, lines, left = _signal_when(_run(run_dir, executor), lambda pid: stored_cells(run_dir) >= 4, signum, group)
    _assert_clean(code, lines, left, signum, f"interrupted; the cells finished so far are stored in {run_dir}",
                  f"run the same command with --run-dir {run_dir} to resume")
    stored = stored_cells(run_dir)
    assert 4 <= stored < N_CELLS
    done = subprocess.run(_run(run_dir, executor), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert stored_cells(run_dir) == N_CELLS


def _starting_a_worker(pid: int) -> bool:
    """Whether a pool worker of ``pid`` (a spawned process) is in the middle of starting: it has
    begun to import what its jobs need (numpy is among the first) and is not yet ready for jobs."""
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if b"spawn_main" in cmdline.read_bytes() and f"PPid:\t{pid}\n" in (cmdline.parent / "status").read_text() \
                    and _maps_numpy(int(cmdline.parent.name)):
                return True
        except (OSError, ValueError):
            continue  # gone meanwhile
    return False


def test_ctrl_c_while_the_pool_starts_is_one_message(tmp_path: Path) -> None:
    """Ctrl-C while the first worker process is importing its modules, before it could set
    anything up: it still prints nothing (it starts with SIGINT blocked, then ignores it)."""
    run_dir = tmp_path / "run"
    code, lines, left = _signal_when(_run(run_dir, "process"), _starting_a_worker, signal.SIGINT, group=True)
    _assert_clean(code, lines, left, signal.SIGINT, f"interrupted; the cells finished so far are stored in {run_dir}",
                  f"run the same command with --run-dir {run_dir} to resume")


def _maps_numpy(pid: int) -> bool:
    """Whether the process has loaded numpy: the CLI imports it only inside a command."""
    try:
        return "numpy" in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("finished") / "run"
    done = subprocess.run(_run(run_dir, "serial"), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return run_dir


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_signal_during_a_report_says_what_a_report_leaves(finished: Path, signum: int) -> None:
    before = (finished / "store.sqlite").read_bytes()
    # the most resamples, so the statistics take far longer than the moment the signal needs
    command = [sys.executable, "-m", "harness.cli", "report", str(finished), "--quiet", "--resamples", "10000"]
    code, lines, left = _signal_when(command, _maps_numpy, signum, group=signum == signal.SIGINT)
    _assert_clean(code, lines, left, signum, f"interrupted; the records in {finished} are unchanged",
                  f"run 'harness report {finished}' again to rebuild the report")
    assert (finished / "store.sqlite").read_bytes() == before
