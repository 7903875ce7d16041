"""One run at a time per run directory, with real `harness run` processes (issue 15, item 5).

A second run on a directory that a run is writing is refused at once (exit 2, naming the holder's
pid) and writes nothing, so the store holds one recipe; a SIGKILLed run leaves no stale lock (the
lock is the operating system's and goes with the process); and `harness report` built while a run
writes, even while that run is frozen in the middle of its work, exits 0 from one consistent
snapshot without blocking the run or being blocked by it."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from runs import stored_cells

from harness.store import LOCK_FILE, STORE_FILE

pytestmark = [pytest.mark.skipif(not hasattr(signal, "SIGSTOP"), reason="needs POSIX signals"), pytest.mark.slow]

SUITE = '''
from harness.specs import EvalSpec, Suite, TrainSpec, Variant

SUITE = Suite(name="tiny-lock", version="1", description="two small models", dataset="digits",
              variants=(Variant("mlp-none", "mlp", "none"), Variant("mlp-batch", "mlp", "batch")), seeds=(0,),
              train=TrainSpec(epochs=1), evaluation=EvalSpec(shifts=("fog",), severities=(1, 2, 3), membership=False,
                                                              cost=False))
'''
N_TRAIN, N_EVAL = 2, 8  # 2 variants x 1 seed; (clean + fog at 3 severities) each


@pytest.fixture
def suites(tmp_path: Path) -> Path:
    folder = tmp_path / "suites"
    folder.mkdir()
    (folder / "tiny_lock.py").write_text(SUITE)
    return folder


def _command(suites: Path, run_dir: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "harness.cli", "run", "tiny-lock", "--suite-path", str(suites), "--run-dir",
            str(run_dir), "--executor", "serial", "--no-progress", "--quiet", *extra]


def _start(command: list[str]) -> subprocess.Popen[str]:
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200"}
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True)


def _finish(proc: subprocess.Popen[str]) -> tuple[int, str]:
    try:
        _, err = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return proc.returncode, err


def _wait_for(what: str, ready, proc: subprocess.Popen[str]) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + 300
    while not ready():
        assert proc.poll() is None, f"the run ended before {what}: {proc.communicate()[1]}"
        assert time.monotonic() < deadline, f"no {what} after 300 s"
        time.sleep(0.01)


def _continue(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGCONT)


def _holds_lock(run_dir: Path, pid: int) -> bool:
    try:
        return json.loads((run_dir / LOCK_FILE).read_text())["pid"] == pid
    except (OSError, ValueError, KeyError):
        return False




def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else b"<dir>")
            for p in sorted(folder.rglob("*"))}


def test_a_second_run_on_a_directory_being_written_is_refused_and_the_store_holds_one_recipe(
        suites: Path, tmp_path: Path) -> None:
    """The issue's reproduction: --epochs 2 and --epochs 3 on one new run directory at once."""
    run_dir = tmp_path / "run"
    first = _start(_command(suites, run_dir, "--epochs", "2"))
    try:
        _wait_for("the lock", lambda: _holds_lock(run_dir, first.pid), first)
        os.kill(first.pid, signal.SIGSTOP)  # frozen while it holds the lock: the second run meets it for sure
        before = _files(run_dir)
        t0 = time.monotonic()
        for epochs in ("3", "2"):  # another recipe, and the same command twice
            second = subprocess.run(_command(suites, run_dir, "--epochs", epochs), capture_output=True, text=True,
                                    timeout=120, env={**os.environ, "NO_COLOR": "1", "COLUMNS": "200"})
            lines = second.stderr.strip().splitlines()
            assert second.returncode == 2, second.stderr
            assert lines[0].startswith(f"Error: {run_dir} is being written by another harness run (pid {first.pid} "
                                       "on "), lines
            assert lines[1].startswith("Hint: wait for that run to finish") and "--run-dir" in lines[1]
        assert time.monotonic() - t0 < 60  # refused at once, not after loading data or training
        assert _files(run_dir) == before  # the refused runs wrote nothing
    finally:
        _continue(first)
        code, err = _finish(first)
    assert code == 0, err
    db = sqlite3.connect(f"file:{run_dir / STORE_FILE}?mode=ro", uri=True)
    try:
        specs = [json.loads(s) for (s,) in db.execute("SELECT spec FROM cells WHERE kind = 'train'")]
        n_eval = db.execute("SELECT count(*) FROM cells WHERE kind = 'eval'").fetchone()[0]
        (suite,) = db.execute("SELECT value FROM meta WHERE key = 'suite'").fetchone()
    finally:
        db.close()
    assert len(specs) == N_TRAIN and n_eval == N_EVAL
    assert {json.dumps(s["train"], sort_keys=True) for s in specs} == {json.dumps(specs[0]["train"], sort_keys=True)}
    assert specs[0]["train"]["epochs"] == json.loads(suite)["train"]["epochs"] == 2


def test_a_killed_run_leaves_no_stale_lock(suites: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    first = _start(_command(suites, run_dir))
    try:
        _wait_for("the lock", lambda: _holds_lock(run_dir, first.pid), first)
        os.killpg(first.pid, signal.SIGKILL)
    finally:
        first.communicate(timeout=60)
    assert first.returncode == -signal.SIGKILL
    assert _holds_lock(run_dir, first.pid)  # the file still names the dead run ...
    again = subprocess.run(_command(suites, run_dir), capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr  # ... but its lock went with it
    assert stored_cells(run_dir) == N_TRAIN + N_EVAL


def test_a_report_while_a_run_writes_reads_one_snapshot_and_blocks_neither(suites: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    writer = _start(_command(suites, run_dir))
    report = [sys.executable, "-m", "harness.cli", "report", str(run_dir), "--resamples", "50", "--json", "--quiet"]
    seen = []
    try:
        _wait_for("3 cells", lambda: stored_cells(run_dir) >= 3, writer)
        for freeze in (True, False):  # frozen wherever it is (in a write transaction, perhaps), then running
            if freeze:
                os.kill(writer.pid, signal.SIGSTOP)
            try:
                done = subprocess.run(report, capture_output=True, text=True, timeout=120)
            finally:
                _continue(writer)
            assert done.returncode == 0, done.stderr
            results = json.loads(done.stdout)
            seen.append({(e["variant"], json.dumps(e["condition"], sort_keys=True)) for e in results["estimates"]
                         if e["metric"] == "accuracy"})
    finally:
        code, err = _finish(writer)
    assert code == 0, err  # the run was not disturbed by the reports
    assert stored_cells(run_dir) == N_TRAIN + N_EVAL
    assert seen[0] and seen[0] <= seen[1]  # each report saw the evaluations stored by then, none half-written
    assert sorted(p.name for p in run_dir.iterdir() if p.name.startswith(STORE_FILE)) == [STORE_FILE]


HOT_JOURNAL = '''
import os, signal, sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("PRAGMA journal_mode=DELETE")
db.execute("PRAGMA cache_size=1")  # spill the changed pages into the file, so the journal must hold the old ones
db.execute("BEGIN IMMEDIATE")
db.execute("UPDATE cells SET result = result || ' '")
os.kill(os.getpid(), signal.SIGKILL)  # mid-transaction: the journal stays behind, hot
'''


def test_a_run_killed_in_the_middle_of_a_write_is_resumed_by_the_same_command(suites: Path, tmp_path: Path) -> None:
    """The journal a killed writer leaves makes a read-only open fail (rolling it back takes write
    access): the resumed run, holding the directory's lock, rolls it back and goes on."""
    run_dir = tmp_path / "run"
    done = subprocess.run(_command(suites, run_dir), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    before = _results(run_dir)
    killed = subprocess.run([sys.executable, "-c", HOT_JOURNAL, str(run_dir / "store.sqlite")], capture_output=True,
                            text=True, timeout=60)
    assert killed.returncode == -signal.SIGKILL and (run_dir / "store.sqlite-journal").stat().st_size > 0
    again = subprocess.run(_command(suites, run_dir), capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    # the killed transaction was rolled back: every record as it was before it
    assert _results(run_dir) == before and stored_cells(run_dir) == N_TRAIN + N_EVAL
    assert not (run_dir / "store.sqlite-journal").exists()


def _results(run_dir: Path) -> dict[str, str]:
    db = sqlite3.connect(f"file:{run_dir / 'store.sqlite'}?mode=ro", uri=True)
    try:
        return dict(db.execute("SELECT key, result FROM cells").fetchall())
    finally:
        db.close()
