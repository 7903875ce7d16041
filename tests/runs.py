"""Helpers for the tests that watch real ``harness`` processes write a run directory
(tests/test_resume.py, tests/test_signals.py, tests/test_lock.py), and for those that compare two runs'
records (what may differ between them)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from harness.inference import TIMED
from harness.training import TIMED_FIELDS

#: the keys of a record (a result's or an array's) measured in time or energy on the machine that ran it:
#: they differ between any two runs of the same cell; everything else in a record is reproducible
MACHINE_DEPENDENT = TIMED_FIELDS | TIMED


def untimed(record: dict[str, Any]) -> dict[str, Any]:
    """A cell's result or arrays without the :data:`MACHINE_DEPENDENT` keys."""
    return {k: v for k, v in record.items() if k not in MACHINE_DEPENDENT}


def stored_cells(run_dir: Path) -> int:
    """The number of cells in the run directory's store, read without locking or writing; -1 before
    the store (or its tables) exists, or while it is busy this instant."""
    path = run_dir / "store.sqlite"
    if not path.exists():
        return -1
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=0.05)
        try:
            return int(db.execute("SELECT count(*) FROM cells").fetchone()[0])
        finally:
            db.close()
    except sqlite3.Error:
        return -1


def live_in_group(group: int) -> list[int]:
    """Live (not zombie) processes of a process group, from /proc; empty where there is no /proc.
    Orphans that have exited may stay zombies where nothing reaps them (PID 1 of a container)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # gone meanwhile
        if int(fields[2]) == group and fields[0] != "Z":
            found.append(int(stat.parent.name))
    return found
