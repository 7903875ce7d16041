"""A run directory's records are checked on every read: the reproductions of issue 15 (items 8 and 9)
on a real finished run of two small models. A rewritten per-example array, a summary that its arrays
do not give, 16 random bytes anywhere in the store, another model's valid weights, a dropped table,
another application's database, an empty file, a folder or random bytes in the store's place: each
is refused with one clear line naming the problem and the cell (exit 2), nothing is written, and no
estimate ever changes; the next run redoes (or retrains) what failed its checks."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from harness.cli import main
from harness.errors import ConfigError
from harness.reports.build import build_report
from harness.reports.render import to_json
from harness.runner import run
from harness.specs import EvalSpec, Suite, TrainSpec, Variant
from harness.store import STORE_FILE, Store, load_weights, weights_path

TINY = Suite(name="tiny", version="1", description="two small models", dataset="digits",
             variants=(Variant("mlp-none", "mlp", "none"), Variant("mlp-batch", "mlp", "batch")),
             seeds=(0,), train=TrainSpec(epochs=1),
             evaluation=EvalSpec(shifts=("fog",), severities=(1,), membership=False, cost=False))
RESAMPLES = 200
COMPAT = Path(__file__).parent / "data" / "compat" / "compat-classify"  # a schema-1 store (no checksums)


def _report(run_dir: Path) -> dict[str, Any]:
    """results.json's content, without what differs between any two runs (training seconds, provenance)."""
    doc = to_json(build_report(run_dir, n_resamples=RESAMPLES))
    return {k: v for k, v in doc.items() if k not in ("provenance", "training", "training_summary", "created")}


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """A finished run of TINY (2 training and 4 evaluation cells) and its report."""
    d = tmp_path_factory.mktemp("finished") / "run"
    assert run(TINY, d, device="cpu", executor="serial", progress=False).ok
    return d, _report(d)


def _copy(src: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(src, tmp_path / "run", ignore=shutil.ignore_patterns("results-*.json")))


def _sql(run_dir: Path, statement: str, params: tuple[Any, ...] = ()) -> list[Any]:
    """Change or read the store behind the harness's back (as a user, a disk or another program would)."""
    db = sqlite3.connect(run_dir / STORE_FILE, isolation_level=None)
    try:
        return db.execute(statement, params).fetchall()
    finally:
        db.close()


def _key(run_dir: Path, variant: str, kind: str = "clean") -> str:
    (key,) = _sql(run_dir, "SELECT key FROM cells WHERE variant = ? AND " + (
        "kind = 'train'" if kind == "train" else "json_extract(condition, '$.kind') = ?"),
        (variant,) if kind == "train" else (variant, kind))[0]
    return str(key)


def _files(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (relative name -> bytes): what 'nothing written' compares."""
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else b"<dir>")
            for p in sorted(folder.rglob("*"))}


def _refused(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> list[str]:
    """`harness report RUN_DIR`, which must exit 2 with an Error and a Hint line; returns those lines."""
    capsys.readouterr()
    assert main(["report", str(run_dir), "--resamples", str(RESAMPLES)]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert captured.out == "" and len(lines) == 2 and lines[0].startswith("Error: ") and lines[1].startswith("Hint: ")
    return lines


# --- item 8: checksums and summaries ------------------------------------------------------------


@pytest.mark.slow
def test_a_rewritten_array_is_refused_by_the_report_and_redone_by_the_next_run(
        finished: tuple[Path, dict[str, Any]], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The issue's reproduction: clean `correct` of one variant set to all right (87% -> 100%)."""
    run_dir = _copy(finished[0], tmp_path)
    key = _key(run_dir, "mlp-none")
    ((n,),) = _sql(run_dir, "SELECT length(data) FROM arrays WHERE cell = ? AND name = 'correct'", (key,))
    _sql(run_dir, "UPDATE arrays SET data = ? WHERE cell = ? AND name = 'correct'", (np.ones(n, bool).tobytes(), key))
    before = _files(run_dir)
    error, hint = _refused(run_dir, capsys)
    assert error == f"Error: {run_dir / STORE_FILE}: eval cell mlp-none seed 0 clean: its array 'correct' fails its " \
        "checksum (changed since it was stored)"
    assert hint.startswith(f"Hint: run the same 'harness run' command with --run-dir {run_dir} to redo it")
    assert _files(run_dir) == before  # no report file, and the store as it was
    # what the hint says: running again redoes that cell, and only it, to the record it had
    again = run(TINY, run_dir, device="cpu", executor="serial", progress=False)
    assert again.ok and (again.trained, again.evaluated) == (0, 1)
    assert _report(run_dir) == finished[1]


def test_an_evaluation_whose_summary_its_arrays_do_not_give_is_refused_in_an_older_store(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A schema-1 store has no checksums: the stored summary is checked against its arrays."""
    run_dir = _copy(COMPAT, tmp_path)
    (key, accuracy), *_ = _sql(run_dir, "SELECT key, json_extract(result, '$.accuracy') FROM cells WHERE variant = "
                                        "'mlp-none' AND seed = 1 AND json_extract(condition, '$.kind') = 'clean'")
    ((n,),) = _sql(run_dir, "SELECT length(data) FROM arrays WHERE cell = ? AND name = 'correct'", (key,))
    assert 0.5 < accuracy < 1.0
    _sql(run_dir, "UPDATE arrays SET data = ? WHERE cell = ? AND name = 'correct'", (np.ones(n, bool).tobytes(), key))
    before = _files(run_dir)
    error, hint = _refused(run_dir, capsys)
    assert error == f"Error: {run_dir / STORE_FILE}: eval cell mlp-none seed 1 clean: its stored accuracy " \
        f"{accuracy!r} differs from the 1.0 its arrays give"
    assert hint.startswith(f"Hint: run the same 'harness run' command with --run-dir {run_dir} to redo it")
    assert _files(run_dir) == before  # read-only: not upgraded, not written


def test_a_rewritten_summary_of_an_older_store_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The other way round: the summary rewritten, its arrays left."""
    run_dir = _copy(COMPAT, tmp_path)
    (key, accuracy), *_ = _sql(run_dir, "SELECT key, json_extract(result, '$.accuracy') FROM cells WHERE variant = "
                                        "'mlp-batch' AND seed = 0 AND json_extract(condition, '$.kind') = 'clean'")
    _sql(run_dir, "UPDATE cells SET result = json_set(result, '$.accuracy', 0.999) WHERE key = ?", (key,))
    error, _ = _refused(run_dir, capsys)
    assert error == f"Error: {run_dir / STORE_FILE}: eval cell mlp-batch seed 0 clean: its stored accuracy 0.999 " \
        f"differs from the {accuracy!r} its arrays give"


@pytest.mark.slow
def test_sixteen_random_bytes_anywhere_never_change_an_estimate(finished: tuple[Path, dict[str, Any]],
                                                                 tmp_path: Path) -> None:
    """16 random bytes at 40 seeded offsets (the header among them): each store is refused with a
    ConfigError or gives the report it gave before, never another number."""
    size = (finished[0] / STORE_FILE).stat().st_size
    rng = np.random.default_rng(15)
    offsets = [0, 100, *(int(o) for o in rng.integers(0, size - 16, 38))]
    refused, same = [], 0
    for i, offset in enumerate(offsets):
        run_dir = Path(shutil.copytree(finished[0], tmp_path / str(i)))
        with open(run_dir / STORE_FILE, "r+b") as f:
            f.seek(offset)
            f.write(rng.bytes(16))
        try:
            got = _report(run_dir)
        except ConfigError as exc:
            refused.append(exc.message)
        else:
            assert got == finished[1], f"16 bytes at offset {offset} changed the report"
            same += 1
        shutil.rmtree(run_dir)
    assert refused[0].endswith("is not a readable results store: file is not a database")  # the header
    # most of the file is per-example arrays: most writes land in one, and are caught by its checksum
    assert len(refused) >= 10 and sum("fails its checksum" in m for m in refused) >= 5, refused
    assert same + len(refused) == len(offsets)


@pytest.mark.slow
def test_another_models_valid_weights_are_detected_and_the_model_retrained(
        finished: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    """The issue's reproduction: mlp-batch's weights copied over mlp-none's, its evaluations redone."""
    run_dir = _copy(finished[0], tmp_path)
    none, batch = _key(run_dir, "mlp-none", "train"), _key(run_dir, "mlp-batch", "train")
    original = weights_path(run_dir, none).read_bytes()
    shutil.copyfile(weights_path(run_dir, batch), weights_path(run_dir, none))
    with pytest.raises(ConfigError) as info:  # what evaluation's loading says
        load_weights(run_dir, none)
    assert info.value.message.startswith(f"weights {weights_path(run_dir, none)} of train cell mlp-none seed 0 are "
                                         "not the file the run wrote (sha256 ")
    # as a user would with the sqlite3 shell (foreign keys off: the cells' arrays stay behind, orphaned)
    _sql(run_dir, "DELETE FROM cells WHERE variant = 'mlp-none' AND kind = 'eval'")
    again = run(TINY, run_dir, device="cpu", executor="serial", progress=False)
    assert again.ok and again.trained == 1 and again.evaluated == 2
    assert weights_path(run_dir, none).read_bytes() == original  # retrained, bit-identically
    assert _report(run_dir) == finished[1]


# --- item 9: corrupt or foreign stores are bad input ----------------------------------------------


def _foreign(path: Path) -> None:
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE photos (name TEXT, taken REAL)")
    db.execute("INSERT INTO photos VALUES ('beach', 1.0)")
    db.commit()
    db.close()


FOREIGN = {
    "empty-file": (lambda p: p.write_bytes(b""), "holds no results (an empty database)"),
    "another-application": (_foreign, "is not a harness results store (it holds the tables photos: another "
                                      "application's database?)"),
    "folder": (lambda p: p.mkdir(), "is a folder, not a results store"),
    "random-bytes": (lambda p: p.write_bytes(np.random.default_rng(9).bytes(8192)),
                     "is not a readable results store: file is not a database"),
}


@pytest.mark.parametrize("case", list(FOREIGN))
def test_report_refuses_what_is_not_a_store_and_writes_nothing(case: str, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    make, problem = FOREIGN[case]
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    make(run_dir / STORE_FILE)
    before = _files(run_dir)
    error, _ = _refused(run_dir, capsys)
    assert error == f"Error: {run_dir / STORE_FILE} {problem}"
    assert _files(run_dir) == before  # no harness table, no -journal, -wal or -shm file, no report


@pytest.mark.parametrize("case", ["another-application", "folder", "random-bytes"])
def test_run_refuses_what_is_not_a_store_before_writing_anything(case: str, tmp_path: Path) -> None:
    make, problem = FOREIGN[case]
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    make(run_dir / STORE_FILE)
    before = _files(run_dir)
    with pytest.raises(ConfigError) as info:
        run(TINY, run_dir, device="cpu", executor="serial", progress=False)
    assert info.value.message == f"{run_dir / STORE_FILE} {problem}"
    assert _files(run_dir) == before  # not even the lock file


@pytest.mark.parametrize("table", ["cells", "arrays"])
def test_a_dropped_table_is_refused_and_not_made_again(table: str, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = _copy(COMPAT, tmp_path)
    _sql(run_dir, f"DROP TABLE {table}")
    before = _files(run_dir)
    error, _ = _refused(run_dir, capsys)
    assert error == f"Error: {run_dir / STORE_FILE} is damaged: it lacks its {table} table"
    assert _files(run_dir) == before
    assert (table,) not in _sql(run_dir, "SELECT name FROM sqlite_master")


@pytest.mark.parametrize(("column", "value", "problem"), [
    ("dtype", "|O", "its array 'correct' has dtype '|O', not a number or bool type"),
    ("shape", "[3]", "its array 'correct' holds 450 bytes, not the 3 of shape [3] and dtype bool"),
    ("data", b"\x01" * 7, "its array 'correct' holds 7 bytes, not the 450 of shape [450] and dtype bool"),
])
def test_a_malformed_array_names_its_cell(column: str, value: Any, problem: str, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    """In a schema-1 store (no checksum to fail first), what a blob cannot be is named with its cell."""
    run_dir = _copy(COMPAT, tmp_path)
    (key, n), *_ = _sql(run_dir, "SELECT c.key, length(a.data) FROM cells c JOIN arrays a ON a.cell = c.key WHERE "
                                 "c.variant = 'mlp-none' AND c.seed = 0 AND json_extract(c.condition, '$.kind') = "
                                 "'clean' AND a.name = 'correct'")
    _sql(run_dir, f"UPDATE arrays SET {column} = ? WHERE cell = ? AND name = 'correct'", (value, key))
    before = _files(run_dir)
    error, _ = _refused(run_dir, capsys)
    assert error == f"Error: {run_dir / STORE_FILE}: eval cell mlp-none seed 0 clean: " + problem.replace("450", str(n))
    assert _files(run_dir) == before


def test_invalid_json_names_its_cell(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = _copy(COMPAT, tmp_path)
    _sql(run_dir, "UPDATE cells SET result = '{\"accuracy\": 0.9' WHERE variant = 'mlp-batch' AND seed = 1 AND "
                  "json_extract(condition, '$.kind') = 'clean'")
    error, _ = _refused(run_dir, capsys)
    assert error.startswith(f"Error: {run_dir / STORE_FILE}: eval cell mlp-batch seed 1 clean: its record is not "
                            "valid JSON (")


@pytest.mark.slow
def test_a_report_leaves_the_store_as_it_was(finished: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    """A finished run's store is in rollback-journal mode and a report opens it read-only: the same
    bytes after, and no -wal, -shm or -journal file (schema 2, and an older schema-1 store)."""
    for src in (finished[0], COMPAT):
        run_dir = _copy(src, tmp_path / src.name)
        assert _sql(run_dir, "PRAGMA journal_mode") == [("delete",)]
        before = (run_dir / STORE_FILE).read_bytes()
        build_report(run_dir, n_resamples=RESAMPLES)
        assert (run_dir / STORE_FILE).read_bytes() == before
        assert sorted(p.name for p in run_dir.iterdir() if p.name.startswith(STORE_FILE)) == [STORE_FILE]
    with Store(finished[0], readonly=True) as store:
        assert store.schema == 2
        assert all(len(c.arrays) > 0 for c in store.cells())
    assert json.dumps(finished[1]["estimates"])  # the reference holds estimates to compare
