"""The results store: an embedded SQLite database in the run directory, plus weights.

A **cell** is the unit of work and caching: a training run (variant, seed) or the evaluation
of its model on one condition. Its key is a hash of everything that determines its result
(:func:`cell_key`), so running again skips finished cells. Each finished cell is written in
one transaction together with its per-example arrays; weights go to
``weights/<key>.safetensors`` (written to a fresh temporary and renamed before the cell is
committed, never through a link: :func:`harness.fsutil.write_atomic`). Arrays are stored as
raw bytes with dtype and shape, and weights as safetensors, so reading a store never
unpickles anything.

**Checks.** Every row carries a sha256 checksum (store schema 2): each meta value, each array
(of its dtype, shape and bytes), each cell's record (every column a reader uses, and its
arrays' checksums), and each weights file the run wrote (table ``weights``). Every read
verifies them; a record that fails is a ConfigError naming the cell, never a number. A run
first drops the cells that fail (:meth:`Store.discard_damaged`), so running the same command
redoes them. Schema-1 stores (before checksums) are read as before and gain checksums when a
run resumes them. The checksums guard against corruption and accidental edits, not against a
writer who recomputes them.

**Opening.** :class:`Store` with ``readonly=True`` (reports) opens the file with SQLite's
``mode=ro`` and never writes: a missing table is an error, not created. A writable store
(``harness run``) is only ever a new path or a harness store: another application's database
is refused. While a run writes, the store is in WAL mode, so a report reads one consistent
snapshot (:meth:`Store.snapshot`) without blocking the run or being blocked by it; the run
switches it back to a rollback journal when it closes the store. :func:`harness.runlock.lock_run_dir`
keeps a second run out of a run directory that a run is writing.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import math
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import ConfigError
from harness.runlock import LOCK_FILE, lock_run_dir

__all__ = ("LOCK_FILE", "STORE_FILE", "Cell", "DamagedRecord", "EmptyStore", "Store", "StoreBusy", "cell_key",
           "check_summary", "describe", "load_weights", "lock_run_dir", "recorded_weights", "save_weights",
           "weights_match", "weights_path")

STORE_FILE = "store.sqlite"
SCHEMA_VERSION = 2  # 2: checksums on every row and of every weights file; 1 (none) is read as before
READABLE_SCHEMAS = (1, 2)
CELL_SCHEMA = 1  # bump when the meaning of a cell's result changes, so old cells are not reused
_TIMEOUT = 30.0  # seconds a connection waits for another's lock (a rollback-journal commit) before failing
_MMAP_BYTES = 0x7FFF0000  # SQLite's default ceiling on a memory map (a larger store reads the rest as before)
_KINDS = "biuf"  # the dtype kinds an array may have: bool, ints, floats (never objects: nothing is unpickled)

# schema 2, as made new; a schema-1 store gains the sha256 columns (added last, so the column order is
# the same) and the weights table when a run resumes it
_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL, sha256 TEXT);
CREATE TABLE cells (
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
    created REAL NOT NULL,
    sha256 TEXT
);
CREATE TABLE arrays (
    cell TEXT NOT NULL REFERENCES cells(key) ON DELETE CASCADE,
    name TEXT NOT NULL,
    dtype TEXT NOT NULL,
    shape TEXT NOT NULL,
    data BLOB NOT NULL,
    sha256 TEXT,
    PRIMARY KEY (cell, name)
);
CREATE TABLE weights (key TEXT PRIMARY KEY, sha256 TEXT NOT NULL, size INTEGER NOT NULL);
"""
# the columns each schema's readers need, by table
_COLUMNS = {
    1: {"meta": {"key", "value"},
        "cells": {"key", "kind", "variant", "seed", "condition", "spec", "result", "status", "error", "seconds"},
        "arrays": {"cell", "name", "dtype", "shape", "data"}},
}
_COLUMNS[2] = {**{t: {*c, "sha256"} for t, c in _COLUMNS[1].items()}, "weights": {"key", "sha256", "size"}}


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def cell_key(spec: Mapping[str, Any]) -> str:
    """A 20-hex-digit hash of the cell's spec (canonical JSON) and the cell schema version."""
    return hashlib.sha256(_canonical({"cell_schema": CELL_SCHEMA, **spec}).encode()).hexdigest()[:20]


def _sha(data: bytes | str) -> str:
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()


def _meta_digest(key: str, value: str) -> str:
    return _sha(_canonical(["meta", key, value]))


def _array_digest(dtype: str, shape: str, data: bytes) -> str:
    """Of an array's dtype and shape (as stored) and its bytes (hashed where they lie: no copy)."""
    h = hashlib.sha256(_canonical(["array", dtype, shape]).encode() + b"\0")
    h.update(data)
    return h.hexdigest()


_HASH_BATCH = 32 << 20  # bytes of arrays a thread verifies at a time: big enough to outweigh handing them over


def _verified(rows: Iterable[tuple[Any, ...]], sums: bool) -> Iterator[tuple[Any, ...]]:
    """Each array row (cell, name, dtype, shape, sha256, data) with a last element added: whether its
    stored checksum is that of its dtype, shape and bytes (True where there is nothing to check: no
    checksums in the store, or no data read; the exception where a column of the wrong type makes the
    check fail). hashlib lets go of the GIL while it hashes, so batches are checked on threads of their
    own while SQLite reads the next ones (a report reads every array of a run: about a gigabyte at 10
    seeds x 10,000 examples)."""
    if not sums:
        yield from (r + (True,) for r in rows)
        return

    def intact(r: tuple[Any, ...]) -> bool | Exception:
        try:
            return r[5] is None or r[4] == _array_digest(r[2], r[3], bytes(r[5]))
        except (TypeError, ValueError, OverflowError) as exc:  # a column of the wrong type: the cell's reader says so
            return exc

    def check(batch: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        return [r + (intact(r),) for r in batch]

    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=max(1, min(4, (os.cpu_count() or 1)))) as pool:
        pending, batch, size = [], [], 0
        for r in rows:
            batch.append(r)
            size += len(r[5]) if isinstance(r[5], bytes) else 0
            if size >= _HASH_BATCH:
                pending.append(pool.submit(check, batch))
                batch, size = [], 0
        pending.append(pool.submit(check, batch))
        for done in pending:
            yield from done.result()


def _record_digest(row: tuple[Any, ...], arrays: list[tuple[str, str]]) -> str:
    """Of a cell's stored columns (key, kind, variant, seed, condition, spec, result, status, error,
    seconds: the texts as stored) and of its arrays' (name, checksum), so a dropped array fails too."""
    key, kind, variant, seed, cond, spec, result, status, error, seconds = row
    return _sha(_canonical(["cell", key, kind, variant, int(seed), cond, spec, result, status, error,
                            float(seconds), sorted(arrays)]))


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


def describe(kind: Any, variant: Any, seed: Any, condition: Any) -> str:
    """How an error names a cell: "eval cell mlp-batch seed 0 clean" (the condition's key when it
    parses, else its stored text)."""
    where = f"{kind} cell {variant} seed {seed}"
    if condition is None:
        return where
    try:
        from harness.specs import Condition

        cond = json.loads(condition) if isinstance(condition, str) else condition
        return f"{where} {Condition.from_dict(cond).key}"
    except Exception:  # a damaged condition is named as stored
        return f"{where} condition {str(condition)[:80]}"


class DamagedRecord(ConfigError):
    """A stored record that fails its checks: a ConfigError naming the cell (``where``), the problem,
    and that running again redoes it."""

    def __init__(self, run_dir: Path, where: str, problem: str, key: str = "") -> None:
        super().__init__(f"{run_dir / STORE_FILE}: {where}: {problem}",
                         hint=f"run the same 'harness run' command with --run-dir {run_dir} to redo it (a run "
                              "first drops the records that fail their checks); no report is built from it")
        self.where, self.problem, self.key = where, problem, key


class StoreBusy(ConfigError):
    """Another connection held the store's lock for longer than the timeout (a writer in rollback mode)."""


class UnfinishedWrite(ConfigError):
    """A read-only open found the journal of a transaction that a killed run left unfinished: reading
    needs it rolled back first, which takes write access (see :func:`finish_unfinished_write`)."""


def finish_unfinished_write(run_dir: Path | str) -> None:
    """Roll back the transaction a killed run left in ``run_dir``'s store (its hot journal), as SQLite
    does on the first read of a writable connection; nothing else is read or written. Only for a
    caller that holds the run directory's lock (harness.runlock), so no live run owns that journal."""
    db = sqlite3.connect(Path(run_dir) / STORE_FILE, timeout=30.0)
    try:
        db.execute("PRAGMA schema_version").fetchone()
    finally:
        db.close()


class EmptyStore(ConfigError):
    """A store file with nothing in it (0 bytes, or no tables: a run killed as it made it) opened read-only."""


def _is_regular(path: Path) -> bool | None:
    """True for a plain file, False for anything else there (a folder, a link, a device), None for nothing."""
    try:
        st = path.lstat()
    except FileNotFoundError:
        return None
    import stat

    return stat.S_ISREG(st.st_mode)


class Store:
    """The SQLite store of one run directory.

    ``create``: a missing store is made (with the run directory); else it must exist.
    ``readonly``: opened with SQLite's ``mode=ro`` (implies ``create=False``): nothing is ever written,
    and a store that lacks a table or is not a harness store is a ConfigError. ``timeout``: seconds
    to wait for another connection's lock (only a writer in rollback mode holds one that stops a
    reader) before a :class:`StoreBusy` error."""

    def __init__(self, run_dir: Path | str, create: bool = True, readonly: bool = False,
                 timeout: float = _TIMEOUT) -> None:
        self.run_dir = Path(run_dir)
        self.timeout = timeout
        self.path = self.run_dir / STORE_FILE
        self.readonly = readonly
        create = create and not readonly
        if self.run_dir.exists() and not self.run_dir.is_dir():
            raise ConfigError(f"{self.run_dir} is a file, not a run directory", hint="pass a folder path")
        regular = _is_regular(self.path)
        if regular is None:
            if not create:
                raise ConfigError(f"{self.run_dir} is not a run directory (no {STORE_FILE})",
                                  hint="pass the folder that 'harness run' printed, e.g. runs/quickstart-...")
            self.run_dir.mkdir(parents=True, exist_ok=True)
        elif not regular:
            what = "a link" if self.path.is_symlink() else "a folder" if self.path.is_dir() else "not a plain file"
            raise ConfigError(f"{self.path} is {what}, not a results store",
                              hint="point at another run directory; the harness reads and writes only a plain "
                                   f"{STORE_FILE} it made")
        if readonly:
            uri = self.path.absolute().as_uri() + "?mode=ro"
            self.db = sqlite3.connect(uri, uri=True, timeout=timeout, isolation_level=None)
            # pages read through a memory map, not copied by read(): a report reads every page (the integrity
            # check, then every array); a reader's snapshot keeps a writer from truncating what it maps
            self.db.execute(f"PRAGMA mmap_size = {_MMAP_BYTES}")
        else:
            self.db = sqlite3.connect(self.path, timeout=timeout, isolation_level=None)
        try:
            self.schema = self._open()
        except BaseException:
            self.db.close()
            raise

    # -- opening --------------------------------------------------------------------------
    def _unreadable(self, exc: Exception) -> ConfigError:
        if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
            return StoreBusy(f"{self.path} is locked by another process (waited {self.timeout:g} s): {exc}",
                             hint="wait for it (a harness run?) to finish, then try again")
        journal = self.path.with_name(STORE_FILE + "-journal")
        if self.readonly and journal.exists():
            return UnfinishedWrite(f"{self.path} has an unfinished write ({journal.name}, a run was killed mid-write): "
                               f"{exc}", hint=f"run the same 'harness run' command with --run-dir {self.run_dir} "
                                              "(it completes the store), then build the report")
        return ConfigError(f"{self.path} is not a readable results store: {exc}",
                           hint="point at another run directory, or delete this one and run again")

    def _open(self) -> int:
        """Check what the file is (checks first, writes after); returns the schema version."""
        db = self.db
        try:
            db.execute("PRAGMA foreign_keys = ON")
            tables = {n for (n,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if not tables:  # a new path, or a 0-byte file or empty database: holds nothing
                if self.readonly:
                    raise EmptyStore(f"{self.path} holds no results (an empty database)",
                                     hint="run 'harness run' into this directory first, or point at another one")
                self._write_mode()
                self.schema = SCHEMA_VERSION
                with self.transaction():  # all of it or nothing: a kill here leaves an empty database
                    for statement in _SCHEMA.split(";"):
                        if statement.strip():
                            db.execute(statement)
                    self._put_meta("schema_version", SCHEMA_VERSION)
                return SCHEMA_VERSION
            if "meta" not in tables or "value" not in self._columns("meta"):
                raise ConfigError(f"{self.path} is not a harness results store (it holds the tables "
                                  f"{', '.join(sorted(tables)[:5])}: another application's database?)",
                                  hint="pass another --run-dir; the harness never writes into a database it did "
                                       "not make")
            row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            try:
                version = json.loads(row[0]) if row is not None else None
            except (ValueError, TypeError):
                version = None
            if version is None:
                raise ConfigError(f"{self.path} is not a harness results store (no readable schema version)",
                                  hint="pass another --run-dir; the harness never writes into a database it did "
                                       "not make")
            if version not in READABLE_SCHEMAS:
                raise ConfigError(f"{self.path} has store schema {version}, this harness reads "
                                  f"{', '.join(map(str, READABLE_SCHEMAS))}",
                                  hint="rebuild the report with the harness version that wrote it")
            for table, needed in _COLUMNS[version].items():
                missing = needed - self._columns(table)
                if missing:
                    what = f"its {table} table" if missing == needed else \
                        f"the column(s) {', '.join(sorted(missing))} of its {table} table"
                    raise ConfigError(f"{self.path} is damaged: it lacks {what}",
                                      hint="point at another run directory, or delete this one and run again")
            check = db.execute("PRAGMA integrity_check").fetchall()
            if check != [("ok",)]:
                raise ConfigError(f"{self.path} is damaged: {'; '.join(str(r[0]) for r in check[:2])}",
                                  hint="point at another run directory, or delete this one and run again")
            if not self.readonly:
                self._write_mode()
                if version == 1:
                    self._upgrade()
                    version = SCHEMA_VERSION
            self.schema = version
            self._get_meta("schema_version")  # verifies its checksum
            return version
        except sqlite3.DatabaseError as exc:
            raise self._unreadable(exc) from exc

    def _columns(self, table: str) -> set[str]:
        return {r[1] for r in self.db.execute(f"PRAGMA table_info({table})")}

    def _write_mode(self) -> None:
        # WAL: a report reads a snapshot while the run commits, and neither waits for the other (where a
        # report holds the store in rollback mode right now, the run goes on in that mode: only slower)
        with contextlib.suppress(sqlite3.OperationalError):
            self.db.execute("PRAGMA journal_mode = WAL")

    def _upgrade(self) -> None:
        """Schema 1 -> 2, in one transaction: the sha256 columns and the weights table, and the checksum
        of every row as it is now (a record that cannot be read keeps none, and fails its checks)."""
        db = self.db
        with self.transaction():
            for table in ("meta", "cells", "arrays"):
                db.execute(f"ALTER TABLE {table} ADD COLUMN sha256 TEXT")
            db.execute("CREATE TABLE weights (key TEXT PRIMARY KEY, sha256 TEXT NOT NULL, size INTEGER NOT NULL)")
            self.schema = SCHEMA_VERSION
            for key, value in db.execute("SELECT key, value FROM meta").fetchall():
                db.execute("UPDATE meta SET sha256 = ? WHERE key = ?", (_meta_digest(key, value), key))
            arrays: dict[str, list[tuple[str, str]]] = {}
            for cell, name, dtype, shape, data in db.execute(
                    "SELECT cell, name, dtype, shape, data FROM arrays").fetchall():
                digest = _array_digest(dtype, shape, bytes(data))
                db.execute("UPDATE arrays SET sha256 = ? WHERE cell = ? AND name = ?", (digest, cell, name))
                arrays.setdefault(cell, []).append((name, digest))
            for row in db.execute("SELECT key, kind, variant, seed, condition, spec, result, status, error, seconds "
                                  "FROM cells").fetchall():
                db.execute("UPDATE cells SET sha256 = ? WHERE key = ?", (_record_digest(row, arrays.get(row[0], [])),
                                                                         row[0]))
                if row[1] == "train" and row[7] == "done":
                    self._record_weights(row[0])
            self._put_meta("schema_version", SCHEMA_VERSION)

    def close(self) -> None:
        if not self.readonly:
            # back to a rollback journal, so that a report (mode=ro) of the finished run leaves no -wal or -shm
            # file behind; skipped while a report reads (it stays WAL until the next run closes it)
            with contextlib.suppress(sqlite3.Error):
                self.db.execute("PRAGMA busy_timeout = 50")
                self.db.execute("PRAGMA wal_checkpoint(PASSIVE)")  # the main file holds every commit a reader allows
                self.db.execute("PRAGMA journal_mode = DELETE")
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """One write transaction (nested calls join the outer one)."""
        if self.db.in_transaction:
            yield
            return
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[None]:
        """One read transaction: every read inside sees the store as of its first read, whatever a
        running writer commits meanwhile (WAL mode), so a report never mixes two moments of a run."""
        try:
            self.db.execute("BEGIN")
        except sqlite3.DatabaseError as exc:
            raise self._unreadable(exc) from exc
        try:
            yield
        finally:
            with contextlib.suppress(sqlite3.Error):
                self.db.execute("ROLLBACK")

    def _read(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        try:
            return self.db.execute(sql, params).fetchall()
        except sqlite3.DatabaseError as exc:
            raise self._unreadable(exc) from exc

    def _rows(self, sql: str, params: tuple[Any, ...] = (), size: int = 256) -> Iterator[Any]:
        """The rows of ``sql`` as they are read, ``size`` at a time (:meth:`_read`'s errors)."""
        try:
            cursor = self.db.execute(sql, params)
            while rows := cursor.fetchmany(size):
                yield from rows
        except sqlite3.DatabaseError as exc:
            raise self._unreadable(exc) from exc

    # -- meta ---------------------------------------------------------------------------
    def put_meta(self, key: str, value: Any) -> None:
        with self.transaction():
            self._put_meta(key, value)

    def _put_meta(self, key: str, value: Any) -> None:
        text = _canonical(value)
        if self.schema >= 2:
            self.db.execute("INSERT OR REPLACE INTO meta (key, value, sha256) VALUES (?, ?, ?)",
                            (key, text, _meta_digest(key, text)))
        else:
            self.db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, text))

    def get_meta(self, key: str) -> Any:
        return self._get_meta(key)

    def _get_meta(self, key: str) -> Any:
        if self.schema >= 2:
            rows = self._read("SELECT value, sha256 FROM meta WHERE key = ?", (key,))
            if not rows:
                return None
            value, digest = rows[0]
            if not isinstance(value, str) or digest != _meta_digest(key, value):
                raise ConfigError(f"{self.path}: the run's {key!r} record fails its checksum (changed since it "
                                  "was stored)", hint="point at another run directory, or delete this one and run "
                                                      "again")
        else:
            rows = self._read("SELECT value FROM meta WHERE key = ?", (key,))
            if not rows:
                return None
            value = rows[0][0]
        try:
            return json.loads(value)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"{self.path}: the run's {key!r} record is not valid JSON ({exc})",
                              hint="point at another run directory, or delete this one and run again") from exc

    # -- cells --------------------------------------------------------------------------
    def done(self, key: str) -> bool:
        rows = self._read("SELECT status FROM cells WHERE key = ?", (key,))
        return bool(rows) and rows[0][0] == "done"

    def done_keys(self) -> set[str]:
        """The keys of every finished cell (what :meth:`done` answers, for a whole plan in one query)."""
        return {str(k) for (k,) in self._read("SELECT key FROM cells WHERE status = 'done'")}

    def record_checksums(self, kind: str) -> list[tuple[str, str, str]] | None:
        """(key, status, record checksum) of every ``kind`` cell, by key; None for a store without checksums
        (schema 1). The checksum covers the cell's columns and its arrays' checksums (not verified here: reading
        a cell verifies it), so the list changes whenever any of its records does."""
        if self.schema < 2:
            return None
        return [(str(k), str(s), str(d)) for k, s, d in
                self._read("SELECT key, status, sha256 FROM cells WHERE kind = ? ORDER BY key", (kind,))]

    def put(self, cell: Cell) -> None:
        """Write one cell and its arrays in one transaction (replacing a failed attempt), with their
        checksums; a finished training cell's weights file gets its checksum too."""
        arrays = []
        for name, a in cell.arrays.items():
            dtype, shape, data = a.dtype.str, _canonical([int(n) for n in a.shape]), np.ascontiguousarray(a).tobytes()
            arrays.append((cell.key, name, dtype, shape, data, _array_digest(dtype, shape, data)))
        row = (cell.key, cell.kind, cell.variant, int(cell.seed),
               None if cell.condition is None else _canonical(cell.condition),
               _canonical(cell.spec), _canonical(cell.result), cell.status, cell.error, float(cell.seconds))
        with self.transaction():
            self.db.execute("DELETE FROM cells WHERE key = ?", (cell.key,))
            self.db.execute("DELETE FROM arrays WHERE cell = ?", (cell.key,))  # orphans of a hand-deleted cell too
            self.db.execute("DELETE FROM weights WHERE key = ?", (cell.key,))
            self.db.execute(
                "INSERT INTO cells (key, kind, variant, seed, condition, spec, result, status, error, seconds, "
                "created, sha256) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (*row, time.time(), _record_digest(row, [(a[1], a[5]) for a in arrays])))
            self.db.executemany("INSERT INTO arrays (cell, name, dtype, shape, data, sha256) VALUES (?, ?, ?, ?, ?, ?)",
                                arrays)
            if cell.kind == "train" and cell.status == "done":
                self._record_weights(cell.key)

    def weights_manifest(self) -> dict[str, Any]:
        """What ``weights/manifest.json`` holds: per weights file the store recorded (a finished,
        non-diverged training cell's), its ``file`` (relative to ``weights/``), ``variant``, ``seed``,
        ``train_key`` (the training cell's key), ``sha256``, ``size`` (bytes) and whether it was
        ``trained`` or loaded (``Variant.weights``), ordered by variant and seed."""
        if self.schema < 2:  # a schema-1 store recorded no weights
            return {"format": 1, "weights": []}
        rows = self._read("SELECT c.key, c.variant, c.seed, c.result, w.sha256, w.size FROM weights w "
                          "JOIN cells c ON c.key = w.key WHERE c.kind = 'train' AND c.status = 'done' "
                          "ORDER BY c.variant, c.seed")
        return {"format": 1, "weights": [
            {"file": weights_path(self.run_dir, key).name, "variant": variant, "seed": int(seed), "train_key": key,
             "sha256": sha, "size": int(size), "trained": json.loads(result).get("trained", True) is not False}
            for key, variant, seed, result, sha, size in rows]}

    def write_weights_manifest(self) -> Path | None:
        """Write :meth:`weights_manifest` to ``weights/manifest.json`` (atomically, never through a
        link), so the files of ``weights/`` (named by their training cell's key) can be told apart
        without the store; None when the run has no weights folder yet."""
        from harness.fsutil import write_atomic

        if not (self.run_dir / "weights").is_dir():
            return None
        text = json.dumps(self.weights_manifest(), indent=1) + "\n"
        return write_atomic(_weights_dir(self.run_dir) / MANIFEST_FILE, text.encode())

    def record_weights(self, key: str) -> None:
        """Record the checksum of ``weights/<key>.safetensors`` as it is now (what this run wrote)."""
        with self.transaction():
            self._record_weights(key)

    def _record_weights(self, key: str) -> None:
        path = weights_path(self.run_dir, key)
        if _is_regular(path):
            data = path.read_bytes()
            self.db.execute("INSERT OR REPLACE INTO weights (key, sha256, size) VALUES (?, ?, ?)",
                            (key, _sha(data), len(data)))

    def cells(self, kind: str | None = None, with_arrays: bool = True) -> Iterator[Cell]:
        """Stored cells (all statuses), in insertion order, each verified (its checksums where the
        store has them; its arrays' dtype, shape and length): a ConfigError names the first that fails."""
        for cell in self._cells(kind, with_arrays):
            if isinstance(cell, DamagedRecord):
                raise cell
            yield cell

    def discard_damaged(self, check: Callable[[Cell], str | None] | None = None) -> list[str]:
        """Delete every cell whose record fails its checks, or ``check(cell)`` (a problem, or None), so
        that a run redoes it; returns what each was and why, as "eval cell mlp-batch seed 0 clean: ..."."""
        bad = []
        for c in self._cells(None, True):
            problem = None if isinstance(c, DamagedRecord) or check is None else check(c)
            if problem is not None and isinstance(c, Cell):
                c = DamagedRecord(self.run_dir, describe(c.kind, c.variant, c.seed, c.condition), problem, c.key)
            if isinstance(c, DamagedRecord):
                bad.append(c)
        with self.transaction():
            for damaged in bad:
                self.db.execute("DELETE FROM cells WHERE key = ?", (damaged.key,))
                self.db.execute("DELETE FROM weights WHERE key = ?", (damaged.key,))
        return [f"{d.where}: {d.problem}" for d in bad]

    def _cells(self, kind: str | None, with_arrays: bool) -> Iterator[Cell | DamagedRecord]:
        sums = self.schema >= 2
        where, params = (" WHERE kind = ?", (kind,)) if kind else ("", ())
        rows = self._read("SELECT key, kind, variant, seed, condition, spec, result, status, error, seconds"
                          + (", sha256" if sums else "") + " FROM cells" + where + " ORDER BY rowid", params)
        found: dict[str, list[tuple[Any, ...]]] = {}
        columns = "a.cell, a.name, a.dtype, a.shape" + (", a.sha256" if sums else ", NULL") + \
            (", a.data" if with_arrays else ", NULL")
        for r in _verified(self._rows(f"SELECT {columns} FROM arrays a JOIN cells c ON a.cell = c.key"
                                      + where.replace("kind", "c.kind"), params), sums):
            found.setdefault(r[0], []).append(r[1:])
        for row in rows:
            try:
                yield self._cell(row[:10], row[10] if sums else None, found.get(row[0], []), sums, with_arrays)
            except DamagedRecord as exc:
                yield exc
            except (TypeError, ValueError, OverflowError) as exc:  # a column of the wrong type
                yield DamagedRecord(self.run_dir, describe(row[1], row[2], row[3], row[4]),
                                    f"its record cannot be read ({type(exc).__name__}: {exc})", str(row[0]))

    def _cell(self, row: tuple[Any, ...], digest: Any, arrays: list[tuple[Any, ...]], sums: bool,
              with_arrays: bool) -> Cell:
        key, kind, variant, seed, cond, spec, result, status, error, seconds = row
        where = describe(kind, variant, seed, cond)

        def damaged(problem: str) -> DamagedRecord:
            return DamagedRecord(self.run_dir, where, problem, str(key))

        out: dict[str, np.ndarray] = {}
        for name, dtype, shape, _digest, data, intact in arrays:  # intact: its checksum verified (_verified)
            if isinstance(intact, Exception):
                raise intact
            if not intact:
                raise damaged(f"its array {name!r} fails its checksum (changed since it was stored)")
            if with_arrays:
                out[name] = _array(dtype, shape, data, functools.partial(_of_array, damaged, name))
        if sums and digest != _record_digest(row, [(a[0], a[3]) for a in arrays]):
            raise damaged("its record fails its checksum (changed since it was stored)" if digest
                          else "its record has no checksum")
        try:
            parsed = [None if cond is None else json.loads(cond), json.loads(spec), json.loads(result)]
        except (ValueError, TypeError) as exc:
            raise damaged(f"its record is not valid JSON ({exc})") from exc
        if not (all(isinstance(p, dict) for p in parsed[1:]) and (cond is None or isinstance(parsed[0], dict))):
            raise damaged("its record is not a JSON object")
        return Cell(str(key), kind, variant, seed, parsed[1], parsed[2], status, error, seconds, parsed[0], out)


def _of_array(damaged: Callable[[str], Exception], name: str, problem: str) -> Exception:
    return damaged(f"its array {name!r} {problem}")


def _array(dtype: Any, shape: Any, data: Any, damaged: Callable[[str], Exception]) -> np.ndarray:
    """A stored array, once its dtype (a number or bool type), shape (a list of sizes) and length agree."""
    try:
        dt = np.dtype(dtype)
        dims = json.loads(shape)
    except (TypeError, ValueError) as exc:
        raise damaged(f"has an unreadable dtype or shape ({dtype!r}, {shape!r})") from exc
    if dt.kind not in _KINDS or dt.hasobject:
        raise damaged(f"has dtype {dtype!r}, not a number or bool type")
    if not isinstance(dims, list) or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0
                                             for n in dims):
        raise damaged(f"has an invalid shape {shape!r}")
    if not isinstance(data, bytes) or len(data) != math.prod(dims) * dt.itemsize:
        raise damaged(f"holds {len(data) if isinstance(data, bytes) else 'no'} bytes, not the "
                      f"{math.prod(dims) * dt.itemsize} of shape {dims} and dtype {dt}")
    return np.frombuffer(data, dtype=dt).reshape(dims)


def check_summary(cell: Cell, eval_summary: Callable[[Any, dict[str, np.ndarray]], dict[str, Any]]) -> str | None:
    """What is wrong with a finished evaluation cell's stored summary (``result``), recomputed from
    its arrays with its task's ``eval_summary(condition, arrays)``: each number both hold must agree
    to 1e-9 (relative); None when they do (or the cell is not a finished evaluation)."""
    if cell.kind != "eval" or cell.status != "done" or cell.condition is None:
        return None
    from harness.specs import Condition

    # a done evaluation never holds NaN or inf (harness.worker fails such a cell); older versions stored some
    if nonfinite := [f"{n} ({a.size - np.count_nonzero(np.isfinite(a))} of {a.size})" for n, a in cell.arrays.items()
                     if a.dtype.kind in "fc" and not np.isfinite(a).all()]:
        return f"its arrays hold NaN or inf: {', '.join(nonfinite)}"
    try:
        expected = eval_summary(Condition.from_dict(cell.condition), cell.arrays)
    except Exception as exc:  # arrays no summary can be made of
        return f"its summary cannot be recomputed from its arrays ({type(exc).__name__}: {exc})"
    for name, want in expected.items():
        if not _number(want) or name not in cell.result:
            continue
        got = cell.result[name]
        w, g = float(want), float(got) if _number(got) else None
        if g is None or not (math.isclose(g, w, rel_tol=1e-9, abs_tol=1e-12) or (math.isnan(g) and math.isnan(w))):
            return f"its stored {name} {got!r} differs from the {w!r} its arrays give"
    return None


def _number(x: Any) -> bool:
    return isinstance(x, int | float | np.integer | np.floating) and not isinstance(x, bool | np.bool_)


# -- weights ---------------------------------------------------------------------------------


#: the file in ``weights/`` that maps each weights file to its variant and seed (Store.weights_manifest)
MANIFEST_FILE = "manifest.json"


def weights_path(run_dir: Path | str, key: str) -> Path:
    return Path(run_dir) / "weights" / f"{key}.safetensors"


def _weights_dir(run_dir: Path | str) -> Path:
    """``run_dir/weights``, made if missing; refused when it is a link (writes never leave the run directory)."""
    folder = Path(run_dir) / "weights"
    if folder.is_symlink():
        raise ConfigError(f"{folder} is a symbolic link: weights are written only into the run directory itself",
                          hint="remove the link (the run makes a weights folder), or pass another --run-dir")
    folder.mkdir(parents=True, exist_ok=True)
    if not folder.is_dir():
        raise ConfigError(f"{folder} is not a folder", hint="remove it, or pass another --run-dir")
    return folder


def save_weights(run_dir: Path | str, key: str, state: Mapping[str, Any]) -> Path:
    """Write a training cell's state dict as safetensors, atomically, through a fresh temporary in
    ``weights/`` (never through a link: harness.fsutil.write_atomic); a ``weights/`` that is a link
    is refused (ConfigError)."""
    from safetensors.torch import save

    from harness.fsutil import write_atomic

    _weights_dir(run_dir)
    data = save({k: v.detach().cpu().contiguous() for k, v in state.items()})
    return write_atomic(weights_path(run_dir, key), data)


def recorded_weights(run_dir: Path | str, key: str) -> tuple[str, str] | None:
    """(sha256, which cell) that the run directory's store recorded for ``weights/<key>.safetensors``,
    or None where it recorded none (no store, a schema-1 store, a diverged model, a file the run
    did not write). Reads the store with ``mode=ro`` (a worker's read while its run writes)."""
    path = Path(run_dir) / STORE_FILE
    if not _is_regular(path):
        return None
    try:
        db = sqlite3.connect(path.absolute().as_uri() + "?mode=ro", uri=True, timeout=_TIMEOUT)
        try:
            if not db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'weights'").fetchone():
                return None
            row = db.execute("SELECT sha256 FROM weights WHERE key = ?", (key,)).fetchone()
            if row is None:
                return None
            cell = db.execute("SELECT kind, variant, seed, condition FROM cells WHERE key = ?", (key,)).fetchone()
        finally:
            db.close()
    except sqlite3.DatabaseError as exc:
        raise ConfigError(f"{path} is not a readable results store: {exc}",
                          hint="point at another run directory, or delete this one and run again") from exc
    return str(row[0]), describe(*cell) if cell else f"the model {key}"


def _retrain(run_dir: Path | str) -> str:
    return (f"run the same 'harness run' command with --run-dir {run_dir}: a run retrains the models whose "
            "weights file is missing, unreadable or not the one it wrote")


def weights_match(run_dir: Path | str, key: str) -> bool:
    """Whether ``weights/<key>.safetensors`` is there and, where the store recorded its checksum,
    is the file the run wrote (what a task checks before it reuses weights it made once per run)."""
    path = weights_path(run_dir, key)
    if not _is_regular(path):
        return False
    recorded = recorded_weights(run_dir, key)
    return recorded is None or _sha(path.read_bytes()) == recorded[0]


def load_weights(run_dir: Path | str, key: str) -> dict[str, Any]:
    """The state dict of a training cell, read with safetensors (never unpickled), once its bytes
    match the checksum the store recorded when the run wrote them (where it recorded one)."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    path = weights_path(run_dir, key)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read weights {path}: {exc}",
                          hint=_retrain(run_dir)) from exc
    recorded = recorded_weights(run_dir, key)
    if recorded is not None and _sha(data) != recorded[0]:
        raise ConfigError(f"weights {path} of {recorded[1]} are not the file the run wrote "
                          f"(sha256 {_sha(data)[:12]}..., recorded {recorded[0][:12]}...)",
                          hint=_retrain(run_dir))
    try:
        return load(data)
    except (SafetensorError, ValueError, OSError) as exc:
        raise ConfigError(f"cannot read weights {path}: {exc}",
                          hint=_retrain(run_dir)) from exc
