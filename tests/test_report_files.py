"""The report's files are written safely and as one set (issue 15, items 1, 2, 4 and 14).

Every file goes through harness.fsutil.write_atomic: an exclusive, unpredictable temporary in the target's
folder, then a rename, so links planted at the old fixed temporary names, at the temporary's own name or at the
final names are never written through. Of figures/, only what the harness's manifest lists is removed, and a
figures/ link out of the run directory is refused. A rebuild is staged and swapped in: real `harness report`
processes are SIGKILLed while the set is written and while it is moved, and the directory then holds one
rebuild's files, byte for byte, never a mix that lasts past the next command. A partial run says so at the top of
every output and in results.json, and the command it prints finishes the run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shlex
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from harness import fsutil
from harness.errors import ConfigError
from harness.reports.build import build_report
from harness.reports.render import LOCK, MANIFEST, READY, finish_rebuild, to_json, write_reports
from harness.specs import EvalSpec, Suite, TrainSpec, Variant
from harness.store import Cell, Store
from harness.suites.quickstart import SUITE as QUICKSTART

CLEAN = {"kind": "clean", "name": "", "params": {}}
ENV = {**os.environ, "NO_COLOR": "1", "COLUMNS": "2000"}
OUTPUTS = ("report.md", "report.html", "report.tex", "results.json")
# a real run the command line can redo: two models, one epoch, the quickstart's full battery (17 figures)
RUN = ["run", "quickstart", "--seeds", "0", "--variants", "mlp-none,mlp-batch", "--epochs", "1", "--no-progress",
       "--quiet", "--executor", "serial", "--resamples", "200"]


def _cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], capture_output=True, text=True, env=ENV,
                          timeout=timeout)


def _files(run_dir: Path) -> dict[str, bytes]:
    """The report's files as written: the four outputs, every file in figures/ (the manifest too)."""
    out = {name: (run_dir / name).read_bytes() for name in OUTPUTS if (run_dir / name).exists()}
    return out | {f"figures/{p.name}": p.read_bytes() for p in sorted((run_dir / "figures").iterdir()) if p.is_file()}


def _harness_temporaries(run_dir: Path) -> list[Path]:
    return sorted(p for p in run_dir.rglob("*") if p.name.startswith((fsutil.TEMP_PREFIX, READY)))


# --- a toy store (fast) ---------------------------------------------------------------------------


@pytest.fixture()
def toy(tmp_path: Path) -> Path:
    """A run directory with records of known content (two variants, three seeds, clean accuracy only)."""
    rng = np.random.default_rng(0)
    run_dir = tmp_path / "run"
    suite = Suite("toy", "0.1", "a toy suite", "digits", (Variant("mlp-none", "mlp", "none"),
                  Variant("mlp-batch", "mlp", "batch")), (0, 1, 2), TrainSpec(),
                  EvalSpec(shifts=(), ood_sets=(), attacks=(), membership=False, cost=False))
    with Store(run_dir) as store:
        store.put_meta("suite", suite.to_dict())
        store.put_meta("provenance", {"harness": "test", "command": ["pytest"]})
        for seed in (0, 1, 2):
            for variant, p in (("mlp-none", 0.8), ("mlp-batch", 0.9)):
                store.put(Cell(f"t-{variant}-{seed}", "train", variant, seed, {}, {
                    "n_steps": 100, "steps_to_target": 50, "seconds_to_target": 0.1, "seconds_per_step": 0.001,
                    "train_seconds": 0.1, "diverged": False, "diverged_at": None, "final_val_accuracy": 0.9}))
                store.put(Cell(f"e-{variant}-{seed}", "eval", variant, seed, {}, {}, condition=CLEAN,
                               arrays={"correct": rng.random(200) < p}))
    return run_dir


def test_links_at_the_old_temporary_and_the_final_names_are_never_written_through(toy: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    want = {}
    for name in OUTPUTS:
        (outside / f"{name}.target").write_text(f"keep {name}")  # e.g. ~/.bashrc
        (toy / f"{name}.tmp").symlink_to(outside / f"{name}.target")  # the fixed temporary names of before
        (outside / f"{name}.final").write_text(f"keep final {name}")
        (toy / name).symlink_to(outside / f"{name}.final")
    (toy / "figures").mkdir()
    (outside / "forest.target").write_text("keep forest")
    (toy / "figures" / "forest.svg").symlink_to(outside / "forest.target")
    (toy / "figures" / "forest.svg.tmp").symlink_to(outside / "forest.target")
    want = {p.name: p.read_bytes() for p in outside.iterdir()}
    report = build_report(toy, n_resamples=200)
    write_reports(report, toy)
    assert {p.name: p.read_bytes() for p in outside.iterdir()} == want  # nothing outside was touched
    reference = tmp_path / "reference"  # the same report written into an empty folder
    write_reports(report, reference)
    for name in [*OUTPUTS, "figures/forest.svg"]:
        assert not (toy / name).is_symlink() and (toy / name).is_file(), name  # the link was replaced by the file
        assert (toy / name).read_bytes() == (reference / name).read_bytes(), name
    assert _harness_temporaries(toy) == []


def test_a_link_planted_at_the_temporarys_own_name_is_not_followed(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    # an attacker who guessed the random name: the exclusive create fails and another name is drawn
    draws = iter(["0" * 16, "1" * 16])
    monkeypatch.setattr(fsutil.secrets, "token_hex", lambda n: next(draws))
    target = tmp_path / "bashrc"
    target.write_text("keep")
    guessed = tmp_path / f"{fsutil.TEMP_PREFIX}{os.getpid()}-{'0' * 16}.tmp"
    guessed.symlink_to(target)
    (tmp_path / "report.md.tmp").symlink_to(target)  # and at the obvious names
    (tmp_path / "report.md").symlink_to(target)
    fsutil.write_atomic(tmp_path / "report.md", "the report")
    assert target.read_text() == "keep" and (tmp_path / "report.md").read_text() == "the report"
    assert not (tmp_path / "report.md").is_symlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["bashrc", guessed.name, "report.md",
                                                                 "report.md.tmp"])


def test_a_failed_write_leaves_no_temporary_and_the_target_unchanged(tmp_path: Path) -> None:
    (tmp_path / "report.md").mkdir()  # a folder where the file goes: the rename fails
    (tmp_path / "report.md" / "keep").write_text("keep")
    with pytest.raises(OSError):
        fsutil.write_atomic(tmp_path / "report.md", "the report")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.md"]
    assert (tmp_path / "report.md" / "keep").read_text() == "keep"
    with pytest.raises(ConfigError, match="report.md is a folder"):  # the report checks before writing anything
        write_reports(build_report(_toy_copy(tmp_path), n_resamples=100), tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.md", "toy-store"]


def _toy_copy(tmp_path: Path) -> Path:
    """A one-model store of its own (for tests whose tmp_path is the run directory under test)."""
    run_dir = tmp_path / "toy-store"
    suite = Suite("toy", "0.1", "a toy suite", "digits", (Variant("mlp-none", "mlp", "none"),), (0,), TrainSpec(),
                  EvalSpec(shifts=(), ood_sets=(), attacks=()))
    with Store(run_dir) as store:
        store.put_meta("suite", suite.to_dict())
        store.put(Cell("e", "eval", "mlp-none", 0, {}, {}, condition=CLEAN, arrays={"correct": np.ones(10, bool)}))
    return run_dir


KILL_WRITE = """
import os, sys, time
from harness import fsutil
def stop(src, dst):  # the temporary is written: stop before the rename
    print("written", flush=True)
    time.sleep(600)
os.replace = stop
fsutil.write_atomic(sys.argv[1], "x" * 1000)
"""


def test_a_kill_mid_write_leaves_a_temporary_the_next_write_removes(toy: Path, tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", KILL_WRITE, str(toy / "report.md")], stdout=subprocess.PIPE,
                            text=True, env=ENV)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "written\n"
    finally:
        proc.kill()
        proc.communicate()
    left = _harness_temporaries(toy)
    assert [p.name.split("-")[2] for p in left] == [str(proc.pid)] and left[0].stat().st_size == 1000
    assert not (toy / "report.md").exists()
    (toy / "figures").mkdir()
    mine = toy / "figures" / f"{fsutil.TEMP_PREFIX}{os.getpid()}-{'a' * 16}.tmp"  # a live writer's: it stays
    mine.write_text("being written")
    write_reports(build_report(toy, n_resamples=100), toy)
    assert _harness_temporaries(toy) == [mine]


# --- figures/: the manifest, and links out of the run directory -------------------------------------------


def test_only_the_figures_the_harness_wrote_are_removed(toy: Path) -> None:
    figures = toy / "figures"
    figures.mkdir()
    (figures / "architecture.svg").write_text("<svg>mine</svg>")  # a user's own figure in a folder used as --run-dir
    (figures / "notes.txt").write_text("mine")
    report = build_report(toy, n_resamples=100)
    write_reports(report, toy)
    assert sorted(p.name for p in figures.iterdir()) == [MANIFEST, "architecture.svg", "forest.svg", "notes.txt"]
    manifest = json.loads((figures / MANIFEST).read_text())
    assert manifest["figures"] == ["forest.svg"]
    assert manifest["sha256"]["report.md"] == hashlib.sha256((toy / "report.md").read_bytes()).hexdigest()
    # a manifest that names what the harness cannot have written is not obeyed
    (toy / "outside.svg").write_text("<svg>keep</svg>")
    (figures / MANIFEST).write_text(json.dumps({"figures": ["../outside.svg", "notes.txt", "forest.svg"]}))
    write_reports(dataclasses.replace(report, comparisons=()), toy)  # no comparisons: no forest plot
    assert sorted(p.name for p in figures.iterdir()) == [MANIFEST, "architecture.svg", "notes.txt"]
    assert (toy / "outside.svg").read_text() == "<svg>keep</svg>"
    assert json.loads((figures / MANIFEST).read_text())["figures"] == []


def test_a_figures_link_out_of_the_run_directory_is_refused(toy: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "forest.svg").write_text("<svg>keep</svg>")
    (elsewhere / "other.svg").write_text("<svg>keep</svg>")
    (toy / "figures").symlink_to(elsewhere)
    before = sorted(p.name for p in toy.iterdir())
    done = _cli("report", str(toy), "--resamples", "100")
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith(f"Error: {toy / 'figures'} is a link to {elsewhere}, outside the run directory")
    assert "Hint: remove the link" in done.stderr
    assert {p.name: p.read_text() for p in elsewhere.iterdir()} == {"forest.svg": "<svg>keep</svg>",
                                                                    "other.svg": "<svg>keep</svg>"}
    assert sorted(p.name for p in toy.iterdir()) == before  # nothing written


def test_a_figures_link_inside_the_run_directory_is_written_through(toy: Path) -> None:
    (toy / "figs").mkdir()
    (toy / "figures").symlink_to(toy / "figs")
    write_reports(build_report(toy, n_resamples=100), toy)
    assert sorted(p.name for p in (toy / "figs").iterdir()) == [MANIFEST, "forest.svg"]


# --- a real run: a rebuild killed mid-way, and a partial run ------------------------------------------------


@pytest.fixture(scope="module")
def real_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("real") / "run"
    done = _cli(*RUN, "--run-dir", str(run_dir), timeout=600)
    assert done.returncode == 0, done.stderr
    return run_dir


@pytest.fixture()
def run_dir(real_run: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(real_run, tmp_path / "run"))


SLOW_REBUILD = """
import os, sys, time
from pathlib import Path
from harness import fsutil, cli
from harness.reports.render import READY
where, argv = sys.argv[1], sys.argv[2:]
count = 0
if where == "staging":  # stop after the fifth figure written (into the staging folder)
    write = fsutil.write_atomic
    def slow(path, data, fsync=False):
        global count
        out = write(path, data, fsync)
        if str(path).endswith(".svg"):
            count += 1
            if count == 5:
                print("stop", flush=True)
                time.sleep(600)
        return out
    fsutil.write_atomic = slow
else:  # stop after five files of the finished rebuild were moved into place
    replace = os.replace
    def slow_replace(src, dst):
        global count
        replace(src, dst)
        if READY in str(src):
            count += 1
            if count == 5:
                print("stop", flush=True)
                time.sleep(600)
    os.replace = slow_replace
sys.exit(cli.main(argv))
"""


def _start_rebuild(run_dir: Path, where: str, level: str) -> subprocess.Popen[str]:
    """Start `harness report --level LEVEL` on ``run_dir``, slowed to stop (sleep) at ``where``; returns once
    it has stopped there."""
    proc = subprocess.Popen([sys.executable, "-c", SLOW_REBUILD, where, "report", str(run_dir), "--level", level,
                             "--resamples", "200", "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=ENV)
    assert proc.stdout is not None
    if proc.stdout.readline() != "stop\n":
        proc.kill()
        raise AssertionError(f"the rebuild ended before the kill point: {proc.communicate()[1]}")
    return proc


def _kill(proc: subprocess.Popen[str]) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL


def _kill_rebuild(run_dir: Path, where: str, level: str) -> int:
    """Run `harness report --level LEVEL` on ``run_dir``, SIGKILL it at ``where``; returns its process id."""
    proc = _start_rebuild(run_dir, where, level)
    _kill(proc)
    return proc.pid


def _reference(run_dir: Path, tmp_path: Path, level: float) -> dict[str, bytes]:
    """The files a whole rebuild of ``run_dir`` at ``level`` writes, written into another folder."""
    out = tmp_path / f"reference-{level}"
    write_reports(build_report(run_dir, level=level, n_resamples=200), out)
    return _files(out)


@pytest.mark.slow
def test_a_rebuild_killed_while_written_leaves_the_old_set_whole(run_dir: Path, tmp_path: Path) -> None:
    (run_dir / "figures" / "architecture.svg").write_text("<svg>mine</svg>")
    old, new = _reference(run_dir, tmp_path, 0.95), _reference(run_dir, tmp_path, 0.8)
    assert old["report.md"] != new["report.md"] and old["figures/forest.svg"] != new["figures/forest.svg"]
    mine = {"figures/architecture.svg": b"<svg>mine</svg>"}
    assert _files(run_dir) == old | mine  # the run wrote its report at the default level
    pid = _kill_rebuild(run_dir, "staging", "0.8")
    assert _files(run_dir) == old | mine  # not one file of the killed rebuild
    assert [p.name.split("-")[2] for p in _harness_temporaries(run_dir)] == [str(pid)]  # its staging folder
    done = _cli("report", str(run_dir), "--level", "0.8", "--resamples", "200", "--quiet")
    assert done.returncode == 0, done.stderr
    assert _files(run_dir) == new | mine and _harness_temporaries(run_dir) == []


@pytest.mark.slow
def test_a_rebuild_killed_while_moved_into_place_is_completed_by_the_next_write(run_dir: Path,
                                                                                 tmp_path: Path) -> None:
    old, new = _reference(run_dir, tmp_path, 0.95), _reference(run_dir, tmp_path, 0.8)
    _kill_rebuild(run_dir, "moving", "0.8")
    mixed = _files(run_dir)
    # the window a kill can hit: some files of each rebuild, and the finished rebuild waiting beside them
    assert {k for k in mixed if mixed[k] == new.get(k) != old.get(k)} and mixed["report.md"] == old["report.md"]
    assert (run_dir / READY).is_dir()
    assert finish_rebuild(run_dir) is True  # what the next `harness report` (or run) does first
    assert _files(run_dir) == new and _harness_temporaries(run_dir) == []
    done = _cli("report", str(run_dir), "--resamples", "200", "--quiet")
    assert done.returncode == 0, done.stderr
    assert _files(run_dir) == old and _harness_temporaries(run_dir) == []


def _fail(run_dir: Path, kind: str, variant: str, attack: str | None = None) -> None:
    """Store a failed attempt in place of a finished cell (as a run that failed there would have)."""
    with Store(run_dir) as store:
        cell = next(c for c in store.cells(kind, with_arrays=False) if c.variant == variant and (
            attack is None or c.condition == {"kind": "attack", "name": attack, "params": {"eps": 0.1}}))
        store.put(Cell(cell.key, kind, variant, cell.seed, cell.spec, {}, "failed", "RuntimeError: boom",
                       condition=cell.condition))


@pytest.mark.slow
def test_a_partial_run_says_so_everywhere_and_its_command_finishes_it(run_dir: Path) -> None:
    complete = build_report(run_dir, n_resamples=100)
    assert complete.incomplete is None and to_json(complete)["incomplete"] is None
    assert "Incomplete" not in (run_dir / "report.md").read_text()
    # a partial run: one model's training failed, and one evaluation of the other (an attack at eps 0.1:
    # finishing redoes its whole sweep, but only the one cell is missing)
    _fail(run_dir, "train", "mlp-batch")
    _fail(run_dir, "eval", "mlp-none", "fgsm")
    done = _cli("report", str(run_dir), "--resamples", "200")
    assert done.returncode == 0, done.stderr
    command = shlex.join(["harness", *RUN, "--run-dir", str(run_dir)])
    says = ("Incomplete run: 1 training and 1 evaluation cells of the plan have no finished record (not run yet, "
            "or failed), of mlp-none seed 0, mlp-batch seed 0.")
    assert says in " ".join(done.stderr.split()) and command in done.stderr  # the terminal summary
    md = (run_dir / "report.md").read_text()
    assert md.index(f"**Incomplete run**: {says.removeprefix('Incomplete run: ')}") < md.index("## Summary")
    assert f"`{command}`" in md
    assert "Incomplete run" in (run_dir / "report.html").read_text()
    tex = (run_dir / "report.tex").read_text()
    assert tex.index("Incomplete run") < tex.index("\\begin{table")
    results = json.loads((run_dir / "results.json").read_text())
    assert results["incomplete"] == {"missing_training_cells": 1, "missing_evaluation_cells": 1, "models": [
        {"variant": "mlp-none", "seed": 0}, {"variant": "mlp-batch", "seed": 0}], "command": command, "error": None}
    # the printed command finishes the run, and the report then says nothing of missing cells
    argv = shlex.split(command)
    finish = _cli(*argv[1:], timeout=600)
    assert finish.returncode == 0, finish.stderr
    assert json.loads((run_dir / "results.json").read_text())["incomplete"] is None
    assert "Incomplete" not in (run_dir / "report.md").read_text()


def test_a_run_started_from_python_gets_a_command_made_from_its_suite(toy: Path) -> None:
    report = build_report(toy, n_resamples=100)
    assert report.incomplete is not None  # the toy's cells are not the plan's (made-up keys): all of it is missing
    assert (report.incomplete.train_cells, report.incomplete.eval_cells) == (6, 6)
    assert report.incomplete.command == (f"harness run toy --run-dir {toy} --seeds 0,1,2 --variants "
                                         "mlp-none,mlp-batch --epochs 12 --device cpu")


def test_a_plan_that_cannot_be_made_is_said_not_guessed(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    suite = Suite("toy", "0.1", "a toy suite", "digits", (Variant("mlp-loaded", "mlp", "none",
                  weights=str(tmp_path / "gone.safetensors")),), (0,), TrainSpec(),
                  EvalSpec(shifts=(), ood_sets=(), attacks=()))
    with Store(run_dir) as store:
        store.put_meta("suite", suite.to_dict())
        store.put(Cell("e", "eval", "mlp-loaded", 0, {}, {}, condition=CLEAN, arrays={"correct": np.ones(10, bool)}))
    report = build_report(run_dir, n_resamples=100)
    assert report.incomplete is not None and report.incomplete.error is not None
    assert "gone.safetensors does not exist" in report.incomplete.error
    write_reports(report, run_dir)
    assert "**Completeness unknown**: the run's plan could not be made" in (run_dir / "report.md").read_text()


def _done_cells(run_dir: Path) -> dict[str, int]:
    """Finished cells per variant, read from the store file directly (-1 for all before its tables exist)."""
    path = run_dir / "store.sqlite"
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=0.05)
        try:
            return dict(db.execute("SELECT variant, count(*) FROM cells WHERE status = 'done' GROUP BY variant"))
        finally:
            db.close()
    except sqlite3.OperationalError:  # not created yet, or busy this instant
        return {}


@pytest.mark.slow
def test_a_run_killed_before_its_end_is_reported_as_incomplete(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "harness.cli", *RUN, "--run-dir", str(run_dir)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=ENV)
    try:
        deadline = time.monotonic() + 300
        while proc.poll() is None and time.monotonic() < deadline:
            if sum(_done_cells(run_dir).values()) >= 6:  # both models trained, a few evaluations stored
                os.kill(proc.pid, signal.SIGKILL)
                break
            time.sleep(0.005)
    finally:
        if proc.poll() is None:
            proc.kill()
        _, err = proc.communicate()
    assert proc.returncode == -signal.SIGKILL, f"the run ended before the kill: {err}"
    done = _done_cells(run_dir)
    per_model = 1 + len(QUICKSTART.conditions())  # a training cell and the quickstart's evaluation cells
    report = _cli("report", str(run_dir), "--resamples", "200", "--quiet")
    assert report.returncode == 0, report.stderr
    incomplete = json.loads((run_dir / "results.json").read_text())["incomplete"]
    assert incomplete["missing_training_cells"] == 0
    assert incomplete["missing_evaluation_cells"] == 2 * per_model - sum(done.values()) > 0
    assert incomplete["models"] == [{"variant": v, "seed": 0} for v in ("mlp-none", "mlp-batch")
                                    if done.get(v, 0) < per_model]


def _waiting_for_a_lock(pid: int) -> bool:
    """Whether process ``pid`` is blocked on a file lock (/proc/locks lists a waiter as "-> FLOCK ...")."""
    return any(line.split()[1:3] == ["->", "FLOCK"] and line.split()[5] == str(pid)
               for line in Path("/proc/locks").read_text().splitlines())


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/locks").exists(), reason="needs /proc/locks to see a waiting process")
def test_a_second_report_waits_for_the_first_and_finishes_what_it_left(run_dir: Path, tmp_path: Path) -> None:
    old = _reference(run_dir, tmp_path, 0.95)
    first = _start_rebuild(run_dir, "moving", "0.8")  # holds the lock, stopped half-way through its move
    second = subprocess.Popen([sys.executable, "-m", "harness.cli", "report", str(run_dir), "--resamples", "200",
                               "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    try:
        deadline = time.monotonic() + 120
        while not _waiting_for_a_lock(second.pid) and second.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert second.poll() is None and _waiting_for_a_lock(second.pid)
        assert (run_dir / READY).is_dir()  # the first's move is still half done
        _kill(first)
        out, err = second.communicate(timeout=120)
    finally:
        for proc in (first, second):
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert second.returncode == 0, err
    assert _files(run_dir) == old and _harness_temporaries(run_dir) == []


def test_a_link_at_the_lock_files_name_is_refused(toy: Path, tmp_path: Path) -> None:
    (tmp_path / "target").write_text("keep")
    (toy / LOCK).symlink_to(tmp_path / "target")
    with pytest.raises(ConfigError, match="cannot open the lock file"):
        write_reports(build_report(toy, n_resamples=100), toy)
    assert (tmp_path / "target").read_text() == "keep" and not (toy / "report.md").exists()
