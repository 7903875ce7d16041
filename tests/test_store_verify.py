"""harness.store verifies every array's checksum on threads while SQLite reads the next arrays: the same
cells come back, and the same damaged cell is named, whichever batch or thread checked it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from harness import store
from harness.store import STORE_FILE, Cell, DamagedRecord, Store


def _filled(run_dir: Path, n_cells: int = 40) -> dict[str, dict[str, np.ndarray]]:
    """A store of ``n_cells`` evaluation cells, three arrays each; returns their arrays by cell key."""
    rng = np.random.default_rng(0)
    arrays = {f"k{i:03d}": {"correct": rng.random(500) > 0.3, "confidence": rng.random(500),
                            "pred": rng.integers(0, 10, 500)} for i in range(n_cells)}
    with Store(run_dir) as s:
        for i, (key, a) in enumerate(arrays.items()):
            s.put(Cell(key, "eval", "mlp-none", i, {"i": i}, {"accuracy": float(a["correct"].mean())},
                       condition={"kind": "clean", "name": "", "params": {}}, arrays=a))
    return arrays


def _read(run_dir: Path) -> list[Cell]:
    with Store(run_dir, readonly=True) as s, s.snapshot():
        return list(s.cells("eval"))


@pytest.mark.parametrize("batch", [1, 3000, 2**25])  # a batch per array, several arrays, everything in one
def test_every_array_comes_back_whatever_the_batches(batch: int, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    arrays = _filled(tmp_path)
    monkeypatch.setattr(store, "_HASH_BATCH", batch)
    cells = _read(tmp_path)
    assert [c.key for c in cells] == list(arrays)  # in the order they were stored
    for c in cells:
        assert c.arrays.keys() == arrays[c.key].keys()
        assert all(np.array_equal(c.arrays[k], a) and c.arrays[k].dtype == a.dtype for k, a in arrays[c.key].items())


@pytest.mark.parametrize("batch", [1, 3000, 2**25])
def test_a_changed_array_in_any_batch_names_its_cell(batch: int, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    arrays = _filled(tmp_path)
    data = bytearray(arrays["k031"]["confidence"].tobytes())
    data[100] ^= 1  # one bit of a late cell's array
    with sqlite3.connect(tmp_path / STORE_FILE) as db:
        db.execute("UPDATE arrays SET data = ? WHERE cell = 'k031' AND name = 'confidence'", (bytes(data),))
    monkeypatch.setattr(store, "_HASH_BATCH", batch)
    with pytest.raises(DamagedRecord) as caught:
        _read(tmp_path)
    assert caught.value.key == "k031" and caught.value.where == "eval cell mlp-none seed 31 clean"
    assert caught.value.problem == "its array 'confidence' fails its checksum (changed since it was stored)"


def test_an_array_stored_as_text_is_a_record_that_cannot_be_read(tmp_path: Path) -> None:
    """A blob column holding text cannot be hashed: the cell is named as one whose record cannot be read,
    as before the checks ran on threads (not an error from the thread that met it)."""
    _filled(tmp_path, 5)
    with sqlite3.connect(tmp_path / STORE_FILE) as db:
        db.execute("UPDATE arrays SET data = 'text' WHERE cell = 'k002' AND name = 'pred'")
    with pytest.raises(DamagedRecord) as caught:
        _read(tmp_path)
    assert caught.value.key == "k002"
    assert caught.value.problem == "its record cannot be read (TypeError: string argument without an encoding)"
