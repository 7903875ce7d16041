"""Helpers for the tests that watch real ``harness`` processes write a run directory
(tests/test_resume.py, tests/test_signals.py, tests/test_lock.py)."""

from __future__ import annotations

import sqlite3
from pathlib import Path


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
