"""Tests for harness.store with a real SQLite database in tmp_path: cell round trips with typed
arrays, done() and replacement of failed cells, cell keys, meta, refusing what is not a run
directory or not a store, and weights through safetensors that never unpickle anything; the
checksums on every row and weights file, read-only opening, snapshots beside a writer, the
upgrade of a schema-1 store, and the run directory's lock."""

from __future__ import annotations

import dataclasses
import os
import pickle
import sqlite3
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from harness.errors import ConfigError
from harness.runlock import check_unlocked
from harness.store import (
    LOCK_FILE,
    SCHEMA_VERSION,
    STORE_FILE,
    Cell,
    DamagedRecord,
    EmptyStore,
    Store,
    cell_key,
    check_summary,
    load_weights,
    lock_run_dir,
    save_weights,
    weights_match,
    weights_path,
)

SPEC = {"suite": "quickstart", "suite_version": "1.0.0", "variant": {"model": "cnn", "norm": "batch"},
        "seed": 0, "train": {"epochs": 12, "lr": 0.001}, "split": [0.25, 0.1, 0]}


def _arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "correct": rng.random(17) > 0.5,
        "pred": rng.integers(0, 10, 17).astype(np.int64),
        "loss": rng.random(17),
        "confidence32": rng.random(17).astype(np.float32),
        "matrix": rng.random((3, 4)),
        "fortran": np.asfortranarray(rng.random((4, 3))),
        "small_ints": np.array([1, -2, 3], dtype=np.int8),
        "empty": np.zeros(0),
        "scalar": np.array(2.5),
    }


def _cell(key: str = "k1", status: str = "done", arrays: dict[str, np.ndarray] | None = None,
          **kwargs) -> Cell:  # type: ignore[no-untyped-def]
    return Cell(key=key, kind=kwargs.pop("kind", "eval"), variant="cnn-batch", seed=3, spec=SPEC,
                result={"accuracy": 0.9, "n": 17, "note": None}, status=status,
                condition=kwargs.pop("condition", {"kind": "clean", "name": "", "params": {}}),
                arrays=_arrays() if arrays is None else arrays, seconds=1.5, **kwargs)


@pytest.fixture
def store(tmp_path: Path):  # type: ignore[no-untyped-def]
    with Store(tmp_path / "run") as s:
        yield s


def test_new_store_creates_the_database(tmp_path: Path) -> None:
    run = tmp_path / "nested" / "run"
    with Store(run) as s:
        assert s.path == run / STORE_FILE
    assert (run / STORE_FILE).is_file()


def test_cell_round_trip_with_typed_arrays(store: Store) -> None:
    cell = _cell()
    store.put(cell)
    (got,) = list(store.cells())
    assert (got.key, got.kind, got.variant, got.seed, got.status, got.error) == ("k1", "eval", "cnn-batch", 3,
                                                                                "done", None)
    assert got.spec == SPEC
    assert got.result == {"accuracy": 0.9, "n": 17, "note": None}
    assert got.condition == cell.condition
    assert got.seconds == 1.5
    assert set(got.arrays) == set(cell.arrays)
    for name, a in cell.arrays.items():
        b = got.arrays[name]
        assert b.dtype == a.dtype, name
        assert b.shape == a.shape, name
        assert np.array_equal(a, b), name


def test_round_trip_survives_reopening(tmp_path: Path) -> None:
    with Store(tmp_path) as s:
        s.put(_cell("a"))
        s.put(_cell("b", kind="train", condition=None))
    with Store(tmp_path, create=False) as s:
        cells = list(s.cells())
        assert [c.key for c in cells] == ["a", "b"]
        assert cells[1].condition is None
        assert [c.key for c in s.cells("train")] == ["b"]
        assert [c.key for c in s.cells("eval")] == ["a"]
        assert list(s.cells(with_arrays=False))[0].arrays == {}
        assert np.array_equal(cells[0].arrays["loss"], _arrays()["loss"])


def test_done_only_for_status_done(store: Store) -> None:
    assert not store.done("k1")
    store.put(_cell("k1", status="failed", error="boom"))
    assert not store.done("k1")
    store.put(_cell("k2"))
    assert store.done("k2")
    assert not store.done("unknown")


def test_reputting_a_failed_cell_replaces_it(store: Store) -> None:
    store.put(_cell("k1", status="failed", error="RuntimeError: boom", arrays={"partial": np.ones(3)}))
    store.put(_cell("k1", arrays={"loss": np.zeros(2)}))
    cells = list(store.cells())
    assert len(cells) == 1
    assert cells[0].status == "done" and cells[0].error is None
    assert set(cells[0].arrays) == {"loss"}, "arrays of the failed attempt must go with it"
    assert store.done("k1")
    n_arrays = store.db.execute("SELECT COUNT(*) FROM arrays").fetchone()[0]
    assert n_arrays == 1


def test_invalid_status_or_kind_is_refused_by_the_schema(store: Store) -> None:
    with pytest.raises(sqlite3.IntegrityError):
        store.put(_cell("k1", status="maybe"))
    with pytest.raises(sqlite3.IntegrityError):
        store.put(_cell("k2", kind="other"))
    assert list(store.cells()) == []  # each put is one transaction: nothing half-written


# --- cell keys ---------------------------------------------------------------------------------


def test_cell_key_is_stable() -> None:
    key = cell_key(SPEC)
    assert key == cell_key(dict(SPEC))
    assert key == cell_key(dict(reversed(list(SPEC.items()))))  # key order does not matter
    assert len(key) == 20 and all(ch in "0123456789abcdef" for ch in key)


def _changed(spec: dict, path: tuple[str, ...], value: object) -> dict:  # type: ignore[type-arg]
    import copy

    out = copy.deepcopy(spec)
    d = out
    for p in path[:-1]:
        d = d[p]
    d[path[-1]] = value
    return out


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("suite",), "other"),
        (("suite_version",), "1.0.1"),
        (("variant", "norm"), "layer"),
        (("variant", "model"), "mlp"),
        (("seed",), 1),
        (("train", "epochs"), 13),
        (("train", "lr"), 0.0011),
        (("split",), [0.25, 0.1, 1]),
        (("extra",), None),
    ],
)
def test_cell_key_changes_with_every_field(path: tuple[str, ...], value: object) -> None:
    assert cell_key(_changed(SPEC, path, value)) != cell_key(SPEC)


# --- meta --------------------------------------------------------------------------------------


def test_meta_round_trip(tmp_path: Path) -> None:
    value = {"name": "quickstart", "seeds": [0, 1, 2], "level": 0.95, "nested": {"ok": True, "none": None}}
    with Store(tmp_path) as s:
        assert s.get_meta("suite") is None
        s.put_meta("suite", value)
        s.put_meta("count", 3)
        assert s.get_meta("suite") == value
        s.put_meta("count", 4)  # replaced, not duplicated
    with Store(tmp_path, create=False) as s:
        assert s.get_meta("suite") == value
        assert s.get_meta("count") == 4
        assert s.get_meta("schema_version") == SCHEMA_VERSION == 2


# --- refusing what is not a store --------------------------------------------------------------


def test_non_run_directory_is_refused_without_creating_anything(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        Store(tmp_path / "missing", create=False)
    assert "is not a run directory" in info.value.message and STORE_FILE in info.value.message
    assert info.value.hint
    assert not (tmp_path / "missing").exists()
    with pytest.raises(ConfigError, match="is not a run directory"):
        Store(tmp_path, create=False)  # exists, but holds no store


def test_file_that_is_not_sqlite_is_refused(tmp_path: Path) -> None:
    (tmp_path / STORE_FILE).write_bytes(b"this is not an SQLite database\n" * 64)
    with pytest.raises(ConfigError) as info:
        Store(tmp_path)
    assert "is not a readable results store" in info.value.message
    assert info.value.hint


def test_store_of_another_schema_version_is_refused(tmp_path: Path) -> None:
    with Store(tmp_path) as s:
        s.put_meta("schema_version", 999)
    with pytest.raises(ConfigError, match="schema 999"):
        Store(tmp_path)


# --- weights -----------------------------------------------------------------------------------


def _state() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {
        "net.body.1.weight": torch.randn(8, 4, generator=g),
        "net.body.1.bias": torch.randn(8, generator=g),
        "bn.num_batches_tracked": torch.tensor(7),
        "standardize.mean": torch.rand(1, 1, 1, 1, generator=g),
    }


def test_weights_round_trip(tmp_path: Path) -> None:
    state = _state()
    path = save_weights(tmp_path, "abc", state)
    assert path == weights_path(tmp_path, "abc") and path.suffix == ".safetensors"
    assert not path.with_suffix(".tmp").exists()
    loaded = load_weights(tmp_path, "abc")
    assert set(loaded) == set(state)
    for k, v in state.items():
        assert loaded[k].dtype == v.dtype and torch.equal(loaded[k], v), k


def test_weights_of_a_real_model_round_trip(tmp_path: Path) -> None:
    from harness.models import build_model
    from harness.seeding import torch_generator

    m = build_model("cnn", "batch", (1, 8, 8), 10, {}, None, torch_generator(0, "init"))
    save_weights(tmp_path, "cnn", m.state_dict())
    other = build_model("cnn", "batch", (1, 8, 8), 10, {}, None, torch_generator(1, "init"))
    other.load_state_dict(load_weights(tmp_path, "cnn"))
    for (k, a), (_, b) in zip(m.state_dict().items(), other.state_dict().items(), strict=True):
        assert torch.equal(a, b), k


def test_missing_weights_raise_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read weights"):
        load_weights(tmp_path, "nothing")


def test_torch_save_pickle_at_weights_path_is_refused(tmp_path: Path) -> None:
    path = weights_path(tmp_path, "evil")
    path.parent.mkdir(parents=True)
    torch.save(_state(), path)  # a pickle inside a zip
    with pytest.raises(ConfigError, match="cannot read weights"):
        load_weights(tmp_path, "evil")


class _Payload:
    """Unpickling this creates a marker file: proof that something was unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (Path.touch, (self.marker,))


def test_plain_pickle_at_weights_path_is_never_unpickled(tmp_path: Path) -> None:
    marker = tmp_path / "unpickled"
    data = pickle.dumps({"weight": _Payload(marker)})
    # the payload does work when it is unpickled ...
    pickle.loads(data)
    assert marker.exists()
    marker.unlink()
    # ... and the store refuses it without unpickling
    path = weights_path(tmp_path, "evil")
    path.parent.mkdir(parents=True)
    path.write_bytes(data)
    with pytest.raises(ConfigError, match="cannot read weights"):
        load_weights(tmp_path, "evil")
    assert not marker.exists()


def test_truncated_weights_are_refused(tmp_path: Path) -> None:
    path = save_weights(tmp_path, "cut", _state())
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(ConfigError, match="cannot read weights"):
        load_weights(tmp_path, "cut")



# --- checksums ---------------------------------------------------------------------------------


def _sql(run: Path, statement: str, params: tuple = ()) -> int:  # type: ignore[type-arg]
    """Change the store behind the harness's back (as a user, a disk or another program would)."""
    db = sqlite3.connect(run / STORE_FILE, isolation_level=None)
    try:
        return db.execute(statement, params).rowcount
    finally:
        db.close()


@pytest.mark.parametrize(("statement", "problem"), [
    ("UPDATE arrays SET data = zeroblob(length(data)) WHERE name = 'loss' AND cell = 'b'",
     "its array 'loss' fails its checksum (changed since it was stored)"),
    ("UPDATE arrays SET dtype = '<i8' WHERE name = 'loss' AND cell = 'b'",
     "its array 'loss' fails its checksum (changed since it was stored)"),
    ("UPDATE arrays SET shape = '[17,1]' WHERE name = 'loss' AND cell = 'b'",
     "its array 'loss' fails its checksum (changed since it was stored)"),
    ("DELETE FROM arrays WHERE name = 'loss' AND cell = 'b'", "its record fails its checksum (changed since it was "
                                                             "stored)"),
    ("UPDATE cells SET result = '{\"accuracy\":1.0,\"n\":17,\"note\":null}' WHERE key = 'b'",
     "its record fails its checksum (changed since it was stored)"),
    ("UPDATE cells SET seconds = 0.5 WHERE key = 'b'", "its record fails its checksum (changed since it was stored)"),
    ("UPDATE cells SET variant = 'cnn-none' WHERE key = 'b'",
     "its record fails its checksum (changed since it was stored)"),
    ("UPDATE cells SET sha256 = NULL WHERE key = 'b'", "its record has no checksum"),
])
def test_a_changed_record_fails_its_checksum_naming_the_cell(tmp_path: Path, statement: str, problem: str) -> None:
    with Store(tmp_path) as s:
        s.put(_cell("a"))
        s.put(_cell("b", condition={"kind": "shift", "name": "fog", "params": {"severity": 2}}))
        s.put(_cell("t", kind="train", condition=None))
    assert _sql(tmp_path, statement) == 1
    variant = "cnn-none" if "variant" in statement else "cnn-batch"
    with Store(tmp_path, readonly=True) as s:
        with pytest.raises(DamagedRecord) as info:
            list(s.cells())
        assert [c.key for c in s.cells("train")] == ["t"]  # the other cells read on
    where = f"eval cell {variant} seed 3 shift:fog:severity=2"
    assert info.value.message == f"{tmp_path / STORE_FILE}: {where}: {problem}"
    assert info.value.hint.startswith(f"run the same 'harness run' command with --run-dir {tmp_path} to redo it")
    with Store(tmp_path) as s:  # a run drops it (so it is redone) and keeps the intact ones
        assert s.discard_damaged() == [f"{where}: {problem}"]
        assert [c.key for c in s.cells()] == ["a", "t"]
        assert s.db.execute("SELECT count(*) FROM arrays WHERE cell = 'b'").fetchone()[0] == 0


def test_discard_damaged_drops_what_the_check_names_and_only_that(tmp_path: Path) -> None:
    with Store(tmp_path) as s:
        s.put(_cell("a"))
        s.put(_cell("b"))
        assert s.discard_damaged(lambda c: "wrong" if c.key == "b" else None) == ["eval cell cnn-batch seed 3 clean: "
                                                                                 "wrong"]
        assert [c.key for c in s.cells()] == ["a"]
        assert s.discard_damaged(lambda c: None) == []


def test_a_changed_meta_value_fails_its_checksum(tmp_path: Path) -> None:
    with Store(tmp_path) as s:
        s.put_meta("suite", {"name": "quickstart", "train": {"epochs": 2}})
    _sql(tmp_path, "UPDATE meta SET value = '{\"name\":\"quickstart\",\"train\":{\"epochs\":3}}' WHERE key = 'suite'")
    with Store(tmp_path, readonly=True) as s, pytest.raises(ConfigError) as info:
        s.get_meta("suite")
    assert info.value.message == f"{tmp_path / STORE_FILE}: the run's 'suite' record fails its checksum (changed " \
        "since it was stored)"


def test_the_summary_check_compares_the_numbers_the_arrays_give() -> None:
    def summary(cond: object, arrays: dict[str, np.ndarray]) -> dict[str, object]:
        return {"accuracy": float(arrays["correct"].mean()), "eps": [0.1], "n": int(len(arrays["correct"]))}

    correct = np.array([True, False, True, True])
    cell = Cell("k", "eval", "mlp-none", 0, {}, {"accuracy": 0.75, "eps": [0.2], "n": 4}, arrays={"correct": correct},
                condition={"kind": "clean", "name": "", "params": {}})
    assert check_summary(cell, summary) is None  # non-numbers (the attack's settings) are not compared
    near = dataclasses.replace(cell, result={**cell.result, "accuracy": 0.75 * (1 + 1e-12)})
    assert check_summary(near, summary) is None
    off = dataclasses.replace(cell, result={**cell.result, "accuracy": 0.75 * (1 + 1e-6)})
    assert check_summary(off, summary) == f"its stored accuracy {0.75 * (1 + 1e-6)!r} differs from the 0.75 its " \
        "arrays give"
    assert check_summary(dataclasses.replace(cell, result={**cell.result, "n": 5}), summary) == \
        "its stored n 5 differs from the 4.0 its arrays give"
    assert check_summary(dataclasses.replace(cell, arrays={"correct": np.ones(4, bool)}), summary) == \
        "its stored accuracy 0.75 differs from the 1.0 its arrays give"
    assert check_summary(dataclasses.replace(cell, arrays={}), summary) == \
        "its summary cannot be recomputed from its arrays (KeyError: 'correct')"
    assert check_summary(dataclasses.replace(cell, status="failed"), summary) is None
    assert check_summary(dataclasses.replace(cell, kind="train", condition=None), summary) is None


# --- what is and is not a store ----------------------------------------------------------------


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: (p.read_bytes() if p.is_file() else b"<dir>") for p in sorted(folder.iterdir())}


def _foreign(path: Path) -> None:
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE songs (title TEXT)")
    db.execute("INSERT INTO songs VALUES ('a')")
    db.commit()
    db.close()


@pytest.mark.parametrize(("make", "message"), [
    (lambda p: p.write_bytes(b""), "holds no results (an empty database)"),
    (_foreign, "is not a harness results store (it holds the tables songs: another application's database?)"),
    (lambda p: p.mkdir(), "is a folder, not a results store"),
    (lambda p: p.write_bytes(np.random.default_rng(0).bytes(5000)), "is not a readable results store: file is not "
                                                                    "a database"),
])
def test_read_only_opening_refuses_what_is_not_a_store_and_writes_nothing(tmp_path: Path, make, message) -> None:  # type: ignore[no-untyped-def]
    make(tmp_path / STORE_FILE)
    before = _files(tmp_path)
    with pytest.raises(ConfigError) as info:
        Store(tmp_path, readonly=True)
    assert info.value.message == f"{tmp_path / STORE_FILE} {message}" and info.value.hint
    assert _files(tmp_path) == before  # not a byte, not a -journal, -wal or -shm file


def test_a_writable_store_refuses_another_applications_database_and_leaves_it_alone(tmp_path: Path) -> None:
    _foreign(tmp_path / STORE_FILE)
    before = _files(tmp_path)
    with pytest.raises(ConfigError, match="is not a harness results store"):
        Store(tmp_path)
    assert _files(tmp_path) == before


def test_a_link_named_like_the_store_is_refused(tmp_path: Path) -> None:
    _foreign(tmp_path / "elsewhere.sqlite")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / STORE_FILE).symlink_to(tmp_path / "elsewhere.sqlite")
    for readonly in (True, False):
        with pytest.raises(ConfigError, match="is a link, not a results store"):
            Store(tmp_path / "run", readonly=readonly)
    with sqlite3.connect(tmp_path / "elsewhere.sqlite") as db:
        assert [r[0] for r in db.execute("SELECT name FROM sqlite_master")] == ["songs"]


def test_an_empty_file_becomes_a_store_for_a_writer(tmp_path: Path) -> None:
    # a run killed right after it made the file: the next run makes the store in it
    (tmp_path / STORE_FILE).write_bytes(b"")
    with pytest.raises(EmptyStore):
        Store(tmp_path, readonly=True)
    with Store(tmp_path) as s:
        s.put(_cell("a"))
    with Store(tmp_path, readonly=True) as s:
        assert [c.key for c in s.cells()] == ["a"]


@pytest.mark.parametrize("table", ["cells", "arrays", "meta", "weights"])
def test_a_dropped_table_is_an_error_and_is_not_made_again(tmp_path: Path, table: str) -> None:
    with Store(tmp_path) as s:
        s.put(_cell("a"))
    _sql(tmp_path, f"DROP TABLE {table}")
    before = _files(tmp_path)
    for readonly in (True, False):
        with pytest.raises(ConfigError) as info:
            Store(tmp_path, readonly=readonly)
        expected = "is not a harness results store" if table == "meta" else f"is damaged: it lacks its {table} table"
        assert expected in info.value.message
    assert _files(tmp_path) == before


def test_a_read_only_store_never_writes(tmp_path: Path) -> None:
    with Store(tmp_path) as s:
        s.put(_cell("a"))
    before = _files(tmp_path)
    with Store(tmp_path, readonly=True) as s:
        assert [c.key for c in s.cells()] == ["a"]
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            s.put(_cell("b"))
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            s.put_meta("x", 1)
    assert _files(tmp_path) == before == {STORE_FILE: before[STORE_FILE]}  # a closed writer leaves no -wal


def test_a_snapshot_does_not_see_what_a_writer_commits_meanwhile_and_blocks_neither(tmp_path: Path) -> None:
    with Store(tmp_path) as writer:
        writer.put(_cell("a"))
        with Store(tmp_path, readonly=True) as reader:
            with reader.snapshot():
                assert [c.key for c in reader.cells()] == ["a"]
                t0 = time.perf_counter()
                writer.put(_cell("b"))  # commits while the reader's transaction is open
                writer.put_meta("suite", {"name": "x"})
                assert time.perf_counter() - t0 < 2.0  # not held up by the reader (WAL)
                assert [c.key for c in reader.cells()] == ["a"]
                assert reader.get_meta("suite") is None
            assert [c.key for c in reader.cells()] == ["a", "b"]
            assert reader.get_meta("suite") == {"name": "x"}


_SCHEMA_1 = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE cells (key TEXT PRIMARY KEY, kind TEXT NOT NULL, variant TEXT NOT NULL, seed INTEGER NOT NULL,
    condition TEXT, spec TEXT NOT NULL, result TEXT NOT NULL, status TEXT NOT NULL, error TEXT,
    seconds REAL NOT NULL, created REAL NOT NULL);
CREATE TABLE arrays (cell TEXT NOT NULL REFERENCES cells(key) ON DELETE CASCADE, name TEXT NOT NULL,
    dtype TEXT NOT NULL, shape TEXT NOT NULL, data BLOB NOT NULL, PRIMARY KEY (cell, name));
"""


def _schema_1(run: Path, arrays: dict[str, tuple[str, str, bytes]], result: str = '{"accuracy":0.5}') -> None:
    """A store as schema 1 wrote it (no checksums): one evaluation cell with ``arrays`` (name -> dtype,
    shape, bytes)."""
    run.mkdir(exist_ok=True)
    db = sqlite3.connect(run / STORE_FILE)
    db.executescript(_SCHEMA_1)
    db.execute("INSERT INTO meta VALUES ('schema_version', '1')")
    db.execute("INSERT INTO cells VALUES ('k', 'eval', 'mlp-none', 2, ?, '{}', ?, 'done', NULL, 1.0, 0.0)",
               ('{"kind":"clean","name":"","params":{}}', result))
    db.executemany("INSERT INTO arrays VALUES ('k', ?, ?, ?, ?)", [(n, *a) for n, a in arrays.items()])
    db.commit()
    db.close()


def test_a_schema_1_store_is_read_as_before_and_gains_checksums_when_a_run_opens_it(tmp_path: Path) -> None:
    correct = np.array([True, False]).tobytes()
    _schema_1(tmp_path, {"correct": ("|b1", "[2]", correct)})
    before = _files(tmp_path)
    with Store(tmp_path, readonly=True) as s:  # read as before, and not upgraded by reading
        assert s.schema == 1
        (cell,) = s.cells()
        assert cell.result == {"accuracy": 0.5} and cell.arrays["correct"].tolist() == [True, False]
    assert _files(tmp_path) == before
    with Store(tmp_path) as s:
        assert s.schema == 2 and s.get_meta("schema_version") == 2
        (again,) = s.cells()
        assert again.result == cell.result and np.array_equal(again.arrays["correct"], cell.arrays["correct"])
        assert s.db.execute("SELECT count(*) FROM arrays WHERE sha256 IS NULL").fetchone()[0] == 0
    _sql(tmp_path, "UPDATE arrays SET data = ?", (np.array([True, True]).tobytes(),))
    with Store(tmp_path, readonly=True) as s, pytest.raises(DamagedRecord, match="eval cell mlp-none seed 2 clean: "
                                                                                 "its array 'correct' fails"):
        list(s.cells())


@pytest.mark.parametrize(("dtype", "shape", "data", "problem"), [
    ("<f8", "[3]", b"\0" * 16, "its array 'x' holds 16 bytes, not the 24 of shape [3] and dtype float64"),
    ("|O", "[2]", b"\0" * 16, "its array 'x' has dtype '|O', not a number or bool type"),
    ("<U1", "[2]", b"\0" * 8, "its array 'x' has dtype '<U1', not a number or bool type"),
    ("what", "[2]", b"\0" * 16, "its array 'x' has an unreadable dtype or shape ('what', '[2]')"),
    ("<f8", "[2", b"\0" * 16, "its array 'x' has an unreadable dtype or shape ('<f8', '[2')"),
    ("<f8", "[-2]", b"\0" * 16, "its array 'x' has an invalid shape '[-2]'"),
    ("<f8", '{"a": 1}', b"\0" * 16, "its array 'x' has an invalid shape '{\"a\": 1}'"),
])
def test_a_malformed_array_of_a_schema_1_store_names_the_cell(tmp_path: Path, dtype: str, shape: str, data: bytes,
                                                              problem: str) -> None:
    _schema_1(tmp_path, {"x": (dtype, shape, data)})
    with Store(tmp_path, readonly=True) as s, pytest.raises(DamagedRecord) as info:
        list(s.cells())
    assert info.value.message == f"{tmp_path / STORE_FILE}: eval cell mlp-none seed 2 clean: {problem}"


def test_invalid_json_in_a_schema_1_store_names_the_cell(tmp_path: Path) -> None:
    _schema_1(tmp_path, {}, result='{"accuracy": 0.5')
    with Store(tmp_path, readonly=True) as s, pytest.raises(DamagedRecord) as info:
        list(s.cells())
    assert info.value.message.startswith(f"{tmp_path / STORE_FILE}: eval cell mlp-none seed 2 clean: its record is "
                                         "not valid JSON (")


# --- weights checksums and links ---------------------------------------------------------------


def test_weights_that_are_not_the_file_the_run_wrote_are_refused(tmp_path: Path) -> None:
    with Store(tmp_path) as s:
        save_weights(tmp_path, "k1", _state())
        s.put(Cell("k1", "train", "mlp-none", 0, {}, {}))  # records the file's checksum
        assert weights_match(tmp_path, "k1")
        other = {k: v + 1 if v.is_floating_point() else v for k, v in _state().items()}
        save_weights(tmp_path, "k2", other)
    assert torch.equal(load_weights(tmp_path, "k1")["net.body.1.bias"], _state()["net.body.1.bias"])
    assert load_weights(tmp_path, "k2")  # no checksum recorded: loaded as before (an older run directory)
    weights_path(tmp_path, "k1").write_bytes(weights_path(tmp_path, "k2").read_bytes())  # valid, another model's
    with pytest.raises(ConfigError) as info:
        load_weights(tmp_path, "k1")
    assert info.value.message.startswith(f"weights {weights_path(tmp_path, 'k1')} of train cell mlp-none seed 0 are "
                                         "not the file the run wrote (sha256 ")
    assert info.value.hint == f"run the same 'harness run' command with --run-dir {tmp_path}: a run retrains the " \
        "models whose weights file is missing, unreadable or not the one it wrote"
    assert not weights_match(tmp_path, "k1") and weights_match(tmp_path, "k2")  # k2: nothing recorded to differ from
    assert not weights_match(tmp_path, "k3")  # no file


def test_weights_are_never_written_through_a_linked_weights_folder(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "weights").symlink_to(elsewhere)
    with pytest.raises(ConfigError) as info:
        save_weights(tmp_path / "run", "k", _state())
    assert info.value.message == f"{tmp_path / 'run' / 'weights'} is a symbolic link: weights are written only " \
        "into the run directory itself"
    assert list(elsewhere.iterdir()) == []


def test_saving_weights_follows_no_link_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "bashrc"
    target.write_text("keep me")
    path = weights_path(tmp_path / "run", "k")
    path.parent.mkdir(parents=True)
    path.symlink_to(target)  # a link planted at the final name is replaced, not written through
    save_weights(tmp_path / "run", "k", _state())
    assert target.read_bytes() == b"keep me" and not path.is_symlink()
    assert [p.name for p in path.parent.iterdir()] == ["k.safetensors"]


# --- the lock ----------------------------------------------------------------------------------


def test_a_held_run_directory_refuses_a_second_holder_until_released(tmp_path: Path) -> None:
    with lock_run_dir(tmp_path):
        with pytest.raises(ConfigError) as info, lock_run_dir(tmp_path):
            pass
        assert info.value.message.startswith(f"{tmp_path} is being written by another harness run "
                                             f"(pid {os.getpid()} on ")
        assert "wait for that run to finish" in info.value.hint and "--run-dir" in info.value.hint
        with pytest.raises(ConfigError) as seen:  # what a run checks before it reads the store, writing nothing
            check_unlocked(tmp_path)
        assert seen.value.message == info.value.message
    with lock_run_dir(tmp_path):  # released with the first
        pass
    check_unlocked(tmp_path)
    check_unlocked(tmp_path / "nothing-here")


def test_a_lock_file_that_is_a_link_is_refused_and_its_target_kept(tmp_path: Path) -> None:
    target = tmp_path / "bashrc"
    target.write_text("keep me")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / LOCK_FILE).symlink_to(target)
    with pytest.raises(ConfigError, match="cannot open the lock file"), lock_run_dir(tmp_path / "run"):
        pass
    assert target.read_text() == "keep me"


def test_a_column_of_the_wrong_type_names_the_cell(tmp_path: Path) -> None:
    with Store(tmp_path) as s:
        s.put(_cell("a"))
    _sql(tmp_path, "UPDATE cells SET seed = 'three'")
    with Store(tmp_path, readonly=True) as s, pytest.raises(DamagedRecord) as info:
        list(s.cells())
    assert info.value.message == f"{tmp_path / STORE_FILE}: eval cell cnn-batch seed three clean: its record cannot " \
        "be read (ValueError: invalid literal for int() with base 10: 'three')"
