"""Writing files into a run directory so that nothing planted there is followed and no kill leaves a torn file.

:func:`write_atomic` is the one way the harness replaces a file of a run directory (the reports, results.json,
figures, weights): the bytes go to a temporary created exclusively (``O_CREAT | O_EXCL | O_NOFOLLOW``) under an
unpredictable name in the target's own folder, which is then renamed over the target. A link planted at the
temporary's name cannot exist (the name is fresh and the create is exclusive); a link at the final name is replaced
by the plain file (a rename never follows its target), never written through; a reader sees the old file or the
new one, never half of one. On any error the temporary is removed. A SIGKILL between the create and the rename may
leave a temporary behind: its name starts with :data:`TEMP_PREFIX` and carries the writer's process id, and
:func:`remove_stale` (called by the next writer of that folder) removes those whose process is gone.
:func:`make_temp_dir` makes a staging folder named the same way (harness.reports.render writes a rebuild into one),
and :func:`exclusive` holds an advisory lock file while a process writes a set of files.
Only the harness makes names with this prefix, so removing them never touches a user's file.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path

from harness.errors import ConfigError

TEMP_PREFIX = ".harness-tmp-"  # + "<pid>-<16 hex digits>" + ".tmp" (a file) or ".d" (a staging folder)
_TEMP_NAME = re.compile(re.escape(TEMP_PREFIX) + r"(\d+)-[0-9a-f]{16}\.(tmp|d)")
_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


def _fresh(folder: Path, suffix: str) -> Path:
    """A name no file of ``folder`` has yet (as of now: the caller creates it exclusively)."""
    return folder / f"{TEMP_PREFIX}{os.getpid()}-{secrets.token_hex(8)}{suffix}"


def write_atomic(path: Path | str, data: bytes | str, fsync: bool = False) -> Path:
    """Replace ``path`` by a plain file holding ``data`` (a str is written as UTF-8), atomically.

    The bytes go to a fresh temporary in ``path``'s folder, created exclusively without following links (its
    permissions are the process umask's, as for an ordinary new file), which is then renamed over ``path``: a
    link at ``path`` is replaced, not followed. ``fsync`` flushes the bytes to disk before the rename (for files
    that must survive a power cut, not only a kill). On any error the temporary is removed and the error raised;
    ``path`` is then unchanged. Returns ``path``."""
    path = Path(path)
    raw = data.encode("utf-8") if isinstance(data, str) else data
    while True:
        tmp = _fresh(path.parent, ".tmp")
        try:
            fd = os.open(tmp, _FLAGS, 0o666)
            break
        except FileExistsError:  # 64 random bits taken already: draw again
            continue
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:  # KeyboardInterrupt too: no temporary outlives a failed write
        tmp.unlink(missing_ok=True)
        raise
    return path


def make_temp_dir(parent: Path | str) -> Path:
    """A new, empty folder in ``parent`` named like :func:`write_atomic`'s temporaries (so :func:`remove_stale`
    clears it once its process is gone); the caller renames or removes it."""
    while True:
        folder = _fresh(Path(parent), ".d")
        try:
            folder.mkdir()  # mkdir never follows a link: an existing name of any kind fails
            return folder
        except FileExistsError:
            continue


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove(path: Path) -> None:
    """Remove ``path`` without following links: a link or file is unlinked, a real folder removed with its
    contents (shutil.rmtree never follows the links inside); nothing there is fine."""
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return
    if stat.S_ISDIR(mode):
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def remove_stale(folder: Path | str) -> list[Path]:
    """Remove the temporaries and staging folders that harness processes no longer running left in ``folder``
    (a kill mid-write); those of live processes (a writer at work) stay. Returns what was removed."""
    folder = Path(folder)
    removed = []
    try:
        names = os.listdir(folder)
    except (FileNotFoundError, NotADirectoryError):
        return []
    for name in names:
        m = _TEMP_NAME.fullmatch(name)
        if m and not _alive(int(m.group(1))):
            remove(folder / name)
            removed.append(folder / name)
    return removed


@contextlib.contextmanager
def exclusive(path: Path | str) -> Iterator[None]:
    """Hold an exclusive advisory lock (flock) on the file ``path`` (created if missing, never through a link)
    for the block: a second process waits here until the first leaves it, or dies (the kernel drops its lock).
    Where there is no flock (Windows) the block runs unlocked."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0), 0o666)
    except OSError as exc:  # a link or a folder planted at its name
        raise ConfigError(f"cannot open the lock file {path}: {exc.strerror}",
                          hint=f"remove {path} (the harness makes it) and run again") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the last descriptor releases the lock
