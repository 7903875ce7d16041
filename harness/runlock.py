"""One run at a time per run directory: :func:`lock_run_dir`, which ``harness run`` holds for the whole run.

The lock is the operating system's (``flock``; ``msvcrt.locking`` on Windows) on ``run_dir/.harness-run.lock``,
so it goes with the process however that ends: a SIGKILLed run leaves no stale lock, only the file, which
keeps who took the lock last, for the error a second run gets. The file is opened without following a link
and must be a plain file. (Locks on network filesystems are only as good as the filesystem's.)
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import stat
import sys
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

from harness.errors import ConfigError

LOCK_FILE = ".harness-run.lock"  # held by the run writing the directory; the file itself may stay


@contextlib.contextmanager
def lock_run_dir(run_dir: Path | str) -> Iterator[Path]:
    """Hold the run directory's lock (``run_dir/.harness-run.lock``, which must exist as a folder)
    for the block: a ConfigError at once when another process holds it. The lock is the operating
    system's (flock; msvcrt on Windows), so it goes with the process however that ends (a SIGKILL
    leaves no stale lock); the file keeps who took it last, for the error."""
    path = Path(run_dir) / LOCK_FILE
    flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0) \
        | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags, 0o644)
    except OSError as exc:
        raise ConfigError(f"cannot open the lock file {path}: {exc.strerror or exc}",
                          hint="remove it if it is a link or not a plain file, or pass another --run-dir") from exc
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ConfigError(f"the lock file {path} is not a plain file", hint="remove it, or pass another --run-dir")
        if not _try_lock(fd):
            raise _held(run_dir, fd)
        info = json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                           "started": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")}).encode()
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, info)
        yield path
    finally:
        os.close(fd)  # releases the lock


def check_unlocked(run_dir: Path | str) -> None:
    """The ConfigError :func:`lock_run_dir` would raise when another process holds ``run_dir``'s lock
    now, found without writing anything (a run checks this before it reads the store, so that a
    second run meets this error first, whatever the store holds). Nothing there, a link or
    Windows: nothing to say (:func:`lock_run_dir` decides)."""
    if sys.platform == "win32":
        return
    try:
        fd = os.open(Path(run_dir) / LOCK_FILE, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return
    try:
        if stat.S_ISREG(os.fstat(fd).st_mode) and not _try_lock(fd, shared=True):
            raise _held(run_dir, fd)
    finally:
        os.close(fd)  # and with it the shared lock, if taken


def _held(run_dir: Path | str, fd: int) -> ConfigError:
    return ConfigError(f"{run_dir} is being written by another harness run ({_holder(fd)})",
                       hint="wait for that run to finish (then run the same command to resume it, or build the "
                            "report), or pass another --run-dir")


def _holder(fd: int) -> str:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        info = json.loads(os.read(fd, 4096))
        return f"pid {int(info['pid'])} on {info['host']}, started {info['started']}"
    except Exception:  # taken an instant ago, not written yet
        return "pid unknown"


if sys.platform == "win32":
    import msvcrt

    def _try_lock(fd: int, shared: bool = False) -> bool:
        # a byte far past the recorded text, so that a refused run can still read who holds it
        os.lseek(fd, 1 << 20, os.SEEK_SET)
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        finally:
            os.lseek(fd, 0, os.SEEK_SET)
        return True
else:
    import fcntl

    def _try_lock(fd: int, shared: bool = False) -> bool:
        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True
