"""Tests for harness.store with a real SQLite database in tmp_path: cell round trips with typed
arrays, done() and replacement of failed cells, cell keys, meta, refusing what is not a run
directory or not a store, and weights through safetensors that never unpickle anything."""

from __future__ import annotations

import pickle
import sqlite3
from pathlib import Path

import numpy as np
import pytest
import torch

from harness.errors import ConfigError
from harness.store import (
    STORE_FILE,
    Cell,
    Store,
    cell_key,
    load_weights,
    save_weights,
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
        assert s.get_meta("schema_version") == 1


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
