"""The results store: an embedded SQLite database in the run directory, plus weights.

A **cell** is the unit of work and caching: a training run (variant, seed) or the evaluation
of its model on one condition. Its key is a hash of everything that determines its result
(:func:`cell_key`), so running again skips finished cells. Each finished cell is written in
one transaction together with its per-example arrays; weights go to
``weights/<key>.safetensors`` (written to a temporary name and renamed before the cell is
committed). Arrays are stored as raw bytes with dtype and shape, and weights as safetensors,
so reading a store never unpickles anything.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import ConfigError

STORE_FILE = "store.sqlite"
SCHEMA_VERSION = 1
CELL_SCHEMA = 1  # bump when the meaning of a cell's result changes, so old cells are not reused

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS cells (
    key TEXT PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('train', 'eval')),
    variant TEXT NOT NULL,
    seed INTEGER NOT NULL,
    condition TEXT,
    spec TEXT NOT NULL,
    result TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('done', 'failed')),
    error TEXT,
    seconds REAL NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS arrays (
    cell TEXT NOT NULL REFERENCES cells(key) ON DELETE CASCADE,
    name TEXT NOT NULL,
    dtype TEXT NOT NULL,
    shape TEXT NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (cell, name)
);
"""


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def cell_key(spec: Mapping[str, Any]) -> str:
    """A 20-hex-digit hash of the cell's spec (canonical JSON) and the cell schema version."""
    return hashlib.sha256(_canonical({"cell_schema": CELL_SCHEMA, **spec}).encode()).hexdigest()[:20]


@dataclass(frozen=True, eq=False)
class Cell:
    """A stored cell. ``condition`` is the condition's dict for evaluation cells, else None."""

    key: str
    kind: str
    variant: str
    seed: int
    spec: dict[str, Any]
    result: dict[str, Any]
    status: str = "done"
    error: str | None = None
    seconds: float = 0.0
    condition: dict[str, Any] | None = None
    arrays: dict[str, np.ndarray] = field(default_factory=dict)


class Store:
    """The SQLite store of one run directory."""

    def __init__(self, run_dir: Path | str, create: bool = True) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / STORE_FILE
        if self.run_dir.exists() and not self.run_dir.is_dir():
            raise ConfigError(f"{self.run_dir} is a file, not a run directory", hint="pass a folder path")
        if not self.path.exists():
            if not create:
                raise ConfigError(f"{self.run_dir} is not a run directory (no {STORE_FILE})",
                                  hint="pass the folder that 'harness run' printed, e.g. runs/quickstart-...")
            self.run_dir.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path)
        self.db.execute("PRAGMA foreign_keys = ON")
        try:
            self.db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            self.db.close()
            raise ConfigError(f"{self.path} is not a readable results store: {exc}",
                              hint="point at another run directory, or delete this one and run again") from exc
        stored = self.get_meta("schema_version")
        if stored is None:
            self.put_meta("schema_version", SCHEMA_VERSION)
        elif stored != SCHEMA_VERSION:
            self.db.close()
            raise ConfigError(f"{self.path} has store schema {stored}, this harness reads {SCHEMA_VERSION}",
                              hint="rebuild the report with the harness version that wrote it")

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- meta ---------------------------------------------------------------------------
    def put_meta(self, key: str, value: Any) -> None:
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, _canonical(value)))

    def get_meta(self, key: str) -> Any:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    # -- cells --------------------------------------------------------------------------
    def done(self, key: str) -> bool:
        row = self.db.execute("SELECT status FROM cells WHERE key = ?", (key,)).fetchone()
        return row is not None and row[0] == "done"

    def put(self, cell: Cell) -> None:
        """Write one cell and its arrays in one transaction (replacing a failed attempt)."""
        with self.db:
            self.db.execute("DELETE FROM cells WHERE key = ?", (cell.key,))
            self.db.execute(
                "INSERT INTO cells VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (cell.key, cell.kind, cell.variant, cell.seed,
                 None if cell.condition is None else _canonical(cell.condition),
                 _canonical(cell.spec), _canonical(cell.result), cell.status, cell.error,
                 cell.seconds, time.time()),
            )
            self.db.executemany(
                "INSERT INTO arrays VALUES (?, ?, ?, ?, ?)",
                [(cell.key, name, a.dtype.str, _canonical(list(a.shape)), np.ascontiguousarray(a).tobytes())
                 for name, a in cell.arrays.items()],
            )

    def cells(self, kind: str | None = None, with_arrays: bool = True) -> Iterator[Cell]:
        """Stored cells (all statuses), in insertion order."""
        query = "SELECT key, kind, variant, seed, condition, spec, result, status, error, seconds FROM cells"
        rows = self.db.execute(query + (" WHERE kind = ?" if kind else "") + " ORDER BY rowid",
                               (kind,) if kind else ()).fetchall()
        arrays: dict[str, dict[str, np.ndarray]] = {}
        if with_arrays:
            for cell, name, dtype, shape, data in self.db.execute("SELECT * FROM arrays"):
                arrays.setdefault(cell, {})[name] = np.frombuffer(data, dtype=np.dtype(dtype)).reshape(
                    json.loads(shape))
        for key, k, variant, seed, cond, spec, result, status, error, seconds in rows:
            yield Cell(key, k, variant, seed, json.loads(spec), json.loads(result), status, error, seconds,
                       None if cond is None else json.loads(cond), arrays.get(key, {}))



# -- weights ---------------------------------------------------------------------------------


def weights_path(run_dir: Path | str, key: str) -> Path:
    return Path(run_dir) / "weights" / f"{key}.safetensors"


def save_weights(run_dir: Path | str, key: str, state: Mapping[str, Any]) -> Path:
    """Write a training cell's state dict as safetensors, atomically (temporary name, then rename)."""
    from safetensors.torch import save_file

    path = weights_path(run_dir, key)
    path.parent.mkdir(parents=True, exist_ok=True)
    # a name of this process's own: a run killed mid-write may leave a worker finishing the same file
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    save_file({k: v.detach().cpu().contiguous() for k, v in state.items()}, str(tmp))
    os.replace(tmp, path)
    return path


def load_weights(run_dir: Path | str, key: str) -> dict[str, Any]:
    """The state dict of a training cell, read with safetensors (never unpickled)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = weights_path(run_dir, key)
    try:
        return load_file(str(path))
    except (FileNotFoundError, SafetensorError, OSError) as exc:
        raise ConfigError(f"cannot read weights {path}: {exc}",
                          hint="run again in a new --run-dir to retrain this model") from exc
