"""Tests for harness.runner's scheduling and its workers (harness.worker): the process pool gives
exactly the records of the serial executor, a run resumed after losing cells ends with the
records of an uninterrupted run (attack sweeps and the checks that read them are redone whole),
bad worker counts are refused before any work, the progress reports add up to the work done,
and the runner's modules keep no state between runs."""

from __future__ import annotations

import collections.abc
import dataclasses
import importlib
import inspect
import json
import os
import pickle
import shutil
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from runs import untimed

from harness.errors import ConfigError
from harness.executors import ProcessExecutor, SerialExecutor
from harness.registry import suites
from harness.runner import RunProgress, run
from harness.store import Store
from harness.worker import WorkerFactory, WorkerInit


def _small():
    return suites.get("quickstart").with_overrides(seeds=(0,), variants=("cnn-none", "cnn-batch"), epochs=1)


def _records(run_dir: Path) -> dict[str, dict[str, np.ndarray]]:
    with Store(run_dir, create=False) as store:
        return {c.key: c.arrays for c in store.cells("eval")}


@pytest.fixture(scope="module")
def serial_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[RunProgress]]:
    """A serial run of the small suite, and every progress report it sent."""
    d = tmp_path_factory.mktemp("serial") / "run"
    reports: list[RunProgress] = []
    assert run(_small(), d, device="cpu", executor="serial", progress=reports.append).ok
    return d, reports


@pytest.fixture(scope="module")
def serial_dir(serial_run: tuple[Path, list[RunProgress]]) -> Path:
    return serial_run[0]


@pytest.fixture(scope="module")
def pool_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small suite run by a pool of two spawned worker processes."""
    d = tmp_path_factory.mktemp("pool") / "run"
    summary = run(_small(), d, device="cpu", executor="process", workers=2, progress=False)
    assert summary.ok and summary.trained == 2
    return d


@pytest.mark.slow
def test_process_pool_matches_serial_bit_for_bit(serial_dir: Path, pool_dir: Path) -> None:
    """Workers built from a WorkerInit in fresh processes give the serial worker's records."""
    serial, pool = _records(serial_dir), _records(pool_dir)
    assert serial.keys() == pool.keys() and len(serial) == 2 * len(_small().conditions())
    for key, arrays in serial.items():
        assert arrays.keys() == pool[key].keys()
        for name, a in untimed(arrays).items():  # an inference cost's latencies are the machine's, not the model's
            assert np.array_equal(a, pool[key][name]), f"{key} {name}"


@pytest.mark.parametrize("lost", ["stronger", "large-eps", "attack"])
def test_resume_after_losing_cells_gives_the_uninterrupted_records(serial_dir: Path, tmp_path: Path,
                                                                    lost: str) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(serial_dir, copy)
    db = sqlite3.connect(copy / "store.sqlite")
    db.execute("PRAGMA foreign_keys = ON")  # as the store does: a cell's arrays go with it
    kind = "attack" if lost == "attack" else "check"
    name = "apgd-ce" if lost == "attack" else lost
    with db:
        gone = db.execute("DELETE FROM cells WHERE json_extract(condition, '$.kind') = ? AND "
                          "json_extract(condition, '$.name') = ? AND variant = 'cnn-batch'", (kind, name)).rowcount
    db.close()
    assert gone >= 1
    summary = run(_small(), copy, device="cpu", executor="serial", progress=False)
    assert summary.ok and summary.trained == 0 and summary.evaluated >= gone
    before, after = _records(serial_dir), _records(copy)
    assert before.keys() == after.keys()
    for key, arrays in before.items():
        for n, a in arrays.items():
            assert np.array_equal(a, after[key][n]), f"{key} {n}"


def test_a_run_directory_is_not_resumed_on_another_device(serial_dir: Path, tmp_path: Path) -> None:
    """A run made on one device type is not finished on another (results may differ between
    them): the store's recorded device is checked before anything is written. Only the CPU is here,
    so the recorded device of a real CPU run is rewritten to what a GPU run records."""
    copy = tmp_path / "copy"
    shutil.copytree(serial_dir, copy)
    with Store(copy) as store:  # through the store, so the record's checksum is the one it writes
        assert store.get_meta("device") == "cpu"
        store.put_meta("device", "cuda")
        with store.transaction():  # work left
            store.db.execute("DELETE FROM cells WHERE kind = 'eval' AND rowid = (SELECT max(rowid) FROM cells)")
    before = (copy / "store.sqlite").read_bytes()
    with pytest.raises(ConfigError) as info:
        run(_small(), copy, device="cpu", executor="serial", progress=False)
    assert info.value.message == f"{copy} was run on cuda, not cpu"
    assert info.value.hint == "resume with --device cuda, or pass another --run-dir"
    assert (copy / "store.sqlite").read_bytes() == before  # nothing written, the lost cell not redone
    with Store(copy) as store:
        store.put_meta("device", "cpu")  # the device it was really run on: then it resumes
    summary = run(_small(), copy, device="cpu", executor="serial", progress=False)
    assert summary.ok and summary.trained == 0 and summary.evaluated >= 1


def test_zero_workers_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="workers must be at least 1"):
        run(_small(), tmp_path / "r", device="cpu", workers=0, progress=False)
    assert not (tmp_path / "r").exists()


def test_executors_run_in_process_with_one_worker(tmp_path: Path) -> None:
    built: list[WorkerInit] = []
    steps: list[tuple[int, int]] = []

    class Echo:  # one per process: yields each task with the process it ran in, reports a step
        def __init__(self, init: WorkerInit) -> None:
            built.append(init)

        def run(self, task: Any, on_step: Any = None) -> Iterator[Any]:
            if on_step is not None:
                on_step(len(steps), 2)
            yield task, os.getpid()

    init = WorkerInit(_small(), "cpu", tmp_path)
    for ex in (SerialExecutor(), ProcessExecutor(workers=1)):
        with ex:
            ex.start(Echo, init)
            assert ex.workers == 1
            tasks: list[Any] = [("train", "a"), ("eval", "b")]
            got = list(ex.map(tasks, lambda step, total: steps.append((step, total))))  # type: ignore[arg-type]
            assert got == [(t, os.getpid()) for t in tasks]
    assert built == [init, init]  # as given: no thread count for a worker in this process
    assert steps == [(0, 2), (1, 2), (2, 2), (3, 2)]  # on_step reaches a worker in this process


def test_a_worker_factory_reuses_the_prepared_context_only_here_and_only_for_its_run(tmp_path: Path) -> None:
    from harness.worker import prepare

    suite = _small()
    prepared = prepare(suite, "cpu", tmp_path)
    factory = WorkerFactory(prepared)
    assert factory(WorkerInit(suite, "cpu", tmp_path)).ctx is prepared
    other = factory(WorkerInit(suite, "cpu", tmp_path / "other")).ctx  # another run directory: loaded again
    assert other is not prepared and other.store_dir == tmp_path / "other"
    assert np.array_equal(other.split.train.x, prepared.split.train.x)
    # what a spawned process receives carries no data: its worker loads its own
    data = pickle.dumps(factory)
    assert len(data) < 200 and pickle.loads(data).prepared is None
    assert pickle.loads(pickle.dumps(WorkerInit(suite, "cpu", tmp_path, 3))) == WorkerInit(suite, "cpu", tmp_path, 3)


def test_the_progress_reports_add_up_to_the_work_done(serial_run: tuple[Path, list[RunProgress]]) -> None:
    run_dir, reports = serial_run
    with Store(run_dir, create=False) as store:
        steps = sum(c.result["budget_steps"] for c in store.cells("train", with_arrays=False))
        n_eval = len(list(store.cells("eval", with_arrays=False)))
    assert steps > 2 and n_eval == 2 * len(_small().conditions())
    assert reports[0] == RunProgress(0, steps, 0, n_eval) and reports[-1] == RunProgress(steps, steps, n_eval, n_eval)
    for a, b in zip(reports, reports[1:], strict=False):  # never backwards, one cell at a time
        assert a.train_done <= b.train_done <= b.train_total == steps and a.eval_done <= b.eval_done <= b.eval_total
        assert b.eval_done - a.eval_done <= 1
    # the serial worker trains in this process, so every training step is reported
    assert {r.train_done for r in reports} >= set(range(1, steps // 2 + 1))


def _runner_modules() -> list[Any]:
    names = ("harness.runner", "harness.planning", "harness.worker", "harness.tasks", "harness.tasks.classify",
             "harness.tasks.denoise", "harness.tasks.denoise.judge", "harness.provenance", "harness.progress",
             "harness.executors")
    return [importlib.import_module(n) for n in names]


def test_the_runner_modules_keep_no_state_between_runs(serial_dir: Path) -> None:
    """After a run in this process (the serial one, whose worker lived here, as it does for a pool of
    one), no module of the runner (or of the tasks it runs) holds a container or a mutable object of
    its own that could carry state into the next run (a task is a frozen dataclass); the one holder
    the process pool needs (harness.executors._POOL_PROCESS) is
    filled only in the pool's spawned processes, never here."""
    from harness import executors

    with ProcessExecutor(workers=1) as ex:  # a pool of one: its worker is built and runs in this process
        ex.start(WorkerFactory(), WorkerInit(_small(), "cpu", serial_dir))
        assert list(ex.map([])) == []
    mutable = (collections.abc.MutableMapping, collections.abc.MutableSequence, collections.abc.MutableSet,
               bytearray)
    for module in _runner_modules():
        for name, value in vars(module).items():
            if name.startswith("__") or inspect.ismodule(value) or inspect.isclass(value) or inspect.isroutine(value):
                continue
            assert not isinstance(value, mutable), f"{module.__name__}.{name} is a {type(value).__name__}"
            frozen = dataclasses.is_dataclass(value) and type(value).__dataclass_params__.frozen  # type: ignore[attr-defined]
            if type(value).__module__.startswith("harness") and not frozen:  # a mutable object of the project's
                assert (module, name) == (executors, "_POOL_PROCESS"), f"{module.__name__}.{name}"
    assert executors._POOL_PROCESS.worker is None


def test_a_suite_can_leave_runs_that_never_reached_the_target_unevaluated(tmp_path: Path) -> None:
    import dataclasses

    from harness.reports.build import build_report
    from harness.specs import EvalSpec

    base = suites.get("quickstart").with_overrides(seeds=(0,), variants=("mlp-none", "mlp-batch"), epochs=1)
    # one epoch: mlp-batch passes 80% held-out accuracy, mlp-none (measured near 60-70%) does not
    suite = dataclasses.replace(base, evaluation=EvalSpec(shifts=(), ood_sets=()), evaluate_unconverged=False,
                                train=dataclasses.replace(base.train, target_accuracy=0.8))
    summary = run(suite, tmp_path / "r", device="cpu", executor="serial", progress=False)
    with Store(tmp_path / "r", create=False) as store:
        train = {c.variant: c.result for c in store.cells("train", with_arrays=False)}
        evaluated = {c.variant for c in store.cells("eval", with_arrays=False)}
    reached = {v for v, r in train.items() if r["steps_to_target"] is not None}
    assert summary.ok and reached and reached != set(train)  # one of each, so the check can fail
    assert evaluated == reached
    report = build_report(tmp_path / "r", n_resamples=100)
    assert [e.split(":")[0] for e in report.excluded] == [f"{v} seed 0" for v in sorted(set(train) - reached)]
    assert "evaluates converged runs only" in report.excluded[0]


def _tiny_denoise():  # type: ignore[no-untyped-def]
    import dataclasses

    from harness.specs import DiffusionSpec, TrainSpec

    s = suites.get("diffusion").with_size("reduced").with_overrides(seeds=(0, 1), variants=("unet-none", "unet-group"))
    return dataclasses.replace(s, task_options=DiffusionSpec(target_loss=0.3, steps=30, n_t=2, samples=8,
                                                          judge_train=TrainSpec(epochs=3)), max_train=200, max_test=30)


@pytest.mark.slow
def test_a_denoise_suite_trains_denoisers_and_its_judge_once_and_resumes(tmp_path: Path) -> None:
    from harness.store import cell_key, weights_path
    from harness.tasks.denoise.judge import judge_spec

    suite = _tiny_denoise()
    first = run(suite, tmp_path / "r", device="cpu", executor="serial", progress=False)
    assert first.ok, first.failures
    n_conds = len(suite.conditions())
    assert first.trained == 4 and first.evaluated == 4 * n_conds
    with Store(tmp_path / "r", create=False) as store:
        judge = store.get_meta("judge")
        train = [c for c in store.cells("train") if c.status == "done"]
        evals = {(c.variant, c.seed, c.condition["kind"]): c for c in store.cells("eval")}  # type: ignore[index]
    key = cell_key(judge_spec(suite, "cpu"))
    assert judge["key"] == key and weights_path(tmp_path / "r", key).exists() and 0 < judge["test_accuracy"] <= 1
    assert all({"curve_val_loss", "grad_norm"} <= c.arrays.keys() and "mean_val_loss" in c.result for c in train)
    s = evals[("unet-group", 0, "samples")]
    assert s.result["n_samples"] == 8 and s.result["sample_fid"] > 0 and 0 <= s.result["class_tv"] <= 1
    atk = evals[("unet-none", 1, "attack")]
    assert atk.result["attack"] == "DenoisePGD" and atk.result["settings"]["steps"] == 10
    again = run(suite, tmp_path / "r", device="cpu", executor="serial", progress=False)
    assert again.trained == again.evaluated == 0 and again.skipped == 4 * (1 + n_conds)
    with Store(tmp_path / "r", create=False) as store:
        assert store.get_meta("judge") == judge  # not retrained
    worker = WorkerFactory()(WorkerInit(suite, "cpu", tmp_path / "r"))
    assert worker.setup() is worker.setup()  # the judge, loaded once per worker, kept for its later units
    assert 0 < float(worker.setup().test_features.std())


def test_an_old_run_directory_without_task_fields_stays_resumable(tmp_path: Path) -> None:
    from harness.runner import check_resumable

    suite = _small()
    stored = suite.to_dict()
    del stored["task"], stored["task_options"]  # what a run directory written before denoise suites holds
    with Store(tmp_path) as store:
        store.put_meta("suite", stored)
        check_resumable(store, suite, "cpu")  # no error: the new settings read as their defaults
        with pytest.raises(ConfigError, match="task"):
            import dataclasses

            check_resumable(store, dataclasses.replace(_tiny_denoise(), name=suite.name), "cpu")


def test_a_denoise_run_directory_that_stored_its_options_as_diffusion_stays_resumable(tmp_path: Path) -> None:
    from harness.runner import check_resumable

    suite = _tiny_denoise()
    stored = json.loads(json.dumps(suite.to_dict()))
    stored["diffusion"] = stored.pop("task_options")  # the name before task options were generic
    with Store(tmp_path) as store:
        store.put_meta("suite", stored)
        check_resumable(store, suite, "cpu")  # the same settings under their old name: no error
        other = dataclasses.replace(suite, task_options=dataclasses.replace(suite.task_options, target_loss=0.25))
        with pytest.raises(ConfigError, match="other settings for task_options"):
            check_resumable(store, other, "cpu")


def test_a_revised_shift_gets_new_evaluation_keys_and_an_unrevised_one_keeps_its_own() -> None:
    # a shift whose implementation changed (harness.shifts.revised) must not reuse the cells its old
    # code stored; every other cell keeps the key it had, so existing run directories resume as before
    from harness.planning import eval_spec
    from harness.shifts import pixelate
    from harness.specs import clean, shift
    from harness.store import cell_key

    suite = suites.get("quickstart")
    assert pixelate.revision == 2  # type: ignore[attr-defined]
    revised_spec = eval_spec(suite, "t", shift("pixelate", 3))
    assert revised_spec["shift_revision"] == 2
    assert cell_key(revised_spec) != cell_key({k: v for k, v in revised_spec.items() if k != "shift_revision"})
    for cond in (shift("gaussian-noise", 3), clean()):  # unchanged: no revision in the spec at all
        assert "shift_revision" not in eval_spec(suite, "t", cond)


# --- the run directory: a new, empty or harness folder, refused before anything is written ------------------------


def _tree(root: Path) -> dict[str, object]:
    """Every path under ``root`` (links not followed): a file's bytes, a link's target, or None for a folder."""
    out: dict[str, object] = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        out[rel] = os.readlink(p) if p.is_symlink() else None if p.is_dir() else p.read_bytes()
    return out


def _folder_of_others(tmp: Path) -> str:
    (tmp / "project" / "src").mkdir(parents=True)
    (tmp / "project" / "README.md").write_text("mine\n")
    (tmp / "project" / "src" / "main.py").write_text("print('mine')\n")
    return "project"


def _link_to(target: str) -> Callable[[Path], str]:
    def setup(tmp: Path) -> str:
        if target:
            (tmp / target).mkdir()
        (tmp / "runs-link").symlink_to(tmp / (target or "nowhere"))
        return "runs-link"
    return setup


def _notes(tmp: Path) -> str:
    (tmp / "notes.txt").write_text("my notes\n")
    return "notes.txt"


BAD_RUN_DIRS = [  # (id, setup(tmp) -> the run_dir argument (run in tmp), the error message ({tmp}: tmp), hint start)
    ("empty-string", lambda tmp: "", "the run directory '' is empty", "pass a folder path"),
    ("blank", lambda tmp: "  ", "the run directory '  ' is empty", "pass a folder path"),
    ("current-folder-of-others", lambda tmp: _folder_of_others(tmp) and ".",
     ". is not a run directory and not empty (it holds project)", "pass a new or empty folder"),
    ("folder-of-others", _folder_of_others, "project is not a run directory and not empty (it holds README.md, src)",
     "pass a new or empty folder"),
    ("regular-file", _notes, "notes.txt is a file, not a run directory", "pass a folder path"),
    ("under-a-file", lambda tmp: _notes(tmp) + "/run",
     "cannot create run directory notes.txt/run: {tmp}/notes.txt is not a folder", "pass a folder path"),
    ("link-to-an-empty-folder", _link_to("elsewhere"),
     "run directory runs-link is a symbolic link (to {tmp}/elsewhere)", "pass the folder itself"),
    ("dangling-link", _link_to(""), "run directory runs-link is a symbolic link (to {tmp}/nowhere)",
     "pass the folder itself"),
]


@pytest.mark.parametrize(("setup", "message", "hint"), [c[1:] for c in BAD_RUN_DIRS], ids=[c[0] for c in BAD_RUN_DIRS])
def test_an_unsafe_run_directory_is_refused_before_anything_is_written(
        setup: Callable[[Path], str], message: str, hint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # where a run into "" would write
    arg = setup(tmp_path)
    before = _tree(tmp_path)
    with pytest.raises(ConfigError) as info:
        run(_small(), arg, device="cpu", executor="serial", progress=False)
    assert info.value.message == message.format(tmp=tmp_path)
    assert info.value.hint.startswith(hint)
    assert _tree(tmp_path) == before


def test_the_command_line_refuses_an_empty_run_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """`--run-dir ""` reaches the runner as the empty string it is, not as the current folder."""
    from harness.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NO_COLOR", "1")
    assert main(["run", "quickstart", "--run-dir", "", "--seeds", "0", "--no-progress"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "Error: the run directory '' is empty"
    assert err[1].startswith("Hint: pass a folder path")
    assert list(tmp_path.iterdir()) == []


def test_a_new_an_empty_and_a_harness_run_directory_are_accepted(tmp_path: Path) -> None:
    from harness.runner import check_run_dir
    from harness.store import LOCK_FILE

    (tmp_path / "empty").mkdir()
    (tmp_path / "killed").mkdir()  # a run killed after taking its lock and before making its store
    (tmp_path / "killed" / LOCK_FILE).write_bytes(b"")
    Store(tmp_path / "resumable").close()
    (tmp_path / "resumable" / "report.md").write_text("# an earlier report\n")
    (tmp_path / "real").mkdir()
    (tmp_path / "runs").symlink_to(tmp_path / "real")  # a link further up the path is followed as usual
    for name in ("new/run", "empty", "killed", "resumable", "runs/new"):
        assert check_run_dir(tmp_path / name) == tmp_path / name
    assert check_run_dir(str(tmp_path / "empty")) == tmp_path / "empty"  # the Python API takes a str too


def test_the_weights_manifest_names_each_files_variant_and_seed(serial_dir: Path, tmp_path: Path) -> None:
    """weights/manifest.json maps every weights file to its variant and seed, with the checksum the
    store recorded (read here from the files themselves and the training cells, independently)."""
    import hashlib
    import json
    import shutil

    manifest = json.loads((serial_dir / "weights" / "manifest.json").read_text())
    with Store(serial_dir, create=False) as store:
        trained = {c.key: c for c in store.cells("train", with_arrays=False) if c.status == "done"}
    assert manifest["format"] == 1
    assert {(w["variant"], w["seed"]) for w in manifest["weights"]} == {("cnn-none", 0), ("cnn-batch", 0)}
    for w in manifest["weights"]:
        data = (serial_dir / "weights" / w["file"]).read_bytes()
        assert w["sha256"] == hashlib.sha256(data).hexdigest() and w["size"] == len(data)
        cell = trained[w["train_key"]]
        assert (cell.variant, cell.seed) == (w["variant"], w["seed"]) and w["trained"] is True
    # a run directory without one (an older version's) gets it on the next run, which has nothing else to do
    copy = tmp_path / "copy"
    shutil.copytree(serial_dir, copy)
    (copy / "weights" / "manifest.json").unlink()
    assert run(_small(), copy, device="cpu", executor="serial", progress=False).trained == 0
    assert json.loads((copy / "weights" / "manifest.json").read_text()) == manifest


def test_the_run_directory_page_names_everything_a_run_writes(serial_dir: Path) -> None:
    """docs/run-directory.md names every file, table, column, meta key, spec and result field and
    per-example array of a run (here the quick start's battery with its sanity checks)."""
    import json
    import re
    import sqlite3

    page = (Path(__file__).parents[1] / "docs" / "run-directory.md").read_text()
    words = set(re.findall(r"[A-Za-z_][\w.-]*", page))
    named: set[tuple[str, str]] = set()
    named |= {("file", p.name) for p in serial_dir.iterdir() if not p.name.startswith("harness-stage")}
    db = sqlite3.connect(serial_dir / "store.sqlite")
    try:
        for (table,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'"):
            named.add(("table", table))
            named |= {("column", col) for _, col, *_ in db.execute(f"PRAGMA table_info({table})")}
        for key, value in db.execute("SELECT key, value FROM meta"):
            named.add(("meta", key))
            if key == "provenance":
                named |= {("provenance", k) for k in json.loads(value)}
        for kind, spec, result in db.execute("SELECT kind, spec, result FROM cells"):
            named |= {(f"{kind} spec", k) for k in json.loads(spec)}
            named |= {(f"{kind} result", k) for k in json.loads(result)}
        named |= {("array", name) for (name,) in db.execute("SELECT DISTINCT name FROM arrays")}
    finally:
        db.close()
    named |= {("file", p.name) for p in (serial_dir / "weights").iterdir() if not p.name.endswith(".safetensors")}
    missing = sorted((what, n) for what, n in named if n.lstrip(".") not in words and n not in page)
    assert not missing, missing
