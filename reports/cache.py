"""The values a report derives from per-example arrays, kept beside the store so that a rebuild need not derive
them again.

Deriving them is most of a report's time at scale: every metric's example resamples (for an MNIST-scale run of
10 seeds with 10,000-example test and OOD sets, 2,000 resamples of 20,000 examples for each of 240 model and OOD
set pairs, about a minute on two cores), the sanity battery, and the reliability and ROC curves. None of them
depends on the settings a rebuild may change (confidence level, interval method, p-value adjustment), so a
rebuild (`harness report`, `harness compare`) reads them from ``RUN_DIR/report-cache.npz``, written by the build
before it, when the file was made from exactly the same inputs. :func:`key` names those inputs:

* the cache format (:data:`FORMAT`) and the code that derives the values: every source file of the harness
  (``harness``, ``harness.reports``, ``harness.suites``) and the name and version of every installed distribution
  that registers a plugin, so an edited formula is never served from an older file;
* the stored suite and the number of resamples;
* every evaluation cell's key, status and record checksum (harness.store, schema 2: it covers the cell's result
  and its arrays' checksums), so a cell added, redone or changed in any way misses the cache.

A store without checksums (schema 1) is never cached. A rebuild that uses the file still reads every array of the
store and verifies its checksum (a damaged store is refused as before); it skips only the check of each stored
summary against its arrays, which the build that wrote the file made on the same records. The file is written
like every file of a run directory (harness.fsutil.write_atomic), read without following a link and without
unpickling anything (``np.load(allow_pickle=False)``); a file that cannot be read, or made from other inputs, is
derived again and replaced. ``harness report --no-cache`` ignores it.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, cast

import numpy as np

from harness import stats
from harness.reports.checks import Check

FORMAT = 1  # bump when what the file holds, or how, changes
FILE = "report-cache.npz"

# (variant, condition key, metric) -> (the seeds with a record, their resampled values): as reports.estimates
Resamples = dict[tuple[str, str, str], tuple[list[int], stats.Resampled]]


@dataclass(frozen=True)
class Derived:
    """What a report derives from the per-example arrays: every resampled evaluation metric (in the order of the
    report's estimate rows), the sanity battery, and the reliability and ROC curve data."""

    resampled: Resamples
    checks: tuple[Check, ...]
    reliability: tuple[dict[str, Any], ...]
    roc: tuple[dict[str, Any], ...]


@lru_cache(maxsize=1)
def code_digest() -> str:
    """sha256 of every source file of the harness and of the installed plugin distributions' names and versions."""
    import importlib.util
    from importlib import metadata

    h = hashlib.sha256()
    folders = []
    for name in ("harness", "harness.reports", "harness.suites"):
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.origin:
            folders.append(Path(spec.origin).parent)
    files = sorted({p.resolve() for folder in folders for p in folder.rglob("*.py")})
    for p in files:
        h.update(p.name.encode() + b"\0" + p.read_bytes() + b"\0")
    plugins = sorted({f"{d.metadata['Name']}=={d.version}" for d in metadata.distributions()
                      if any(ep.group.startswith("harness.") for ep in d.entry_points)})
    h.update("\n".join(plugins).encode())
    return h.hexdigest()


def key(suite: dict[str, Any], n_resamples: int, checksums: list[tuple[str, str, str]] | None) -> str | None:
    """The name of the derived values of a run: see the module's docstring; None without checksums."""
    if checksums is None:
        return None
    text = json.dumps([FORMAT, code_digest(), suite, n_resamples, checksums], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def load(run_dir: Path | str, name: str) -> Derived | None:
    """The derived values stored under ``name`` in ``run_dir``; None when there are none, they were made from
    other inputs, or the file cannot be read (it is then derived again)."""
    try:  # never through a link; a folder or a device in its place fails to read like a damaged file
        fd = os.open(Path(run_dir) / FILE, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None
    try:
        with os.fdopen(fd, "rb") as f, np.load(f, allow_pickle=False) as z:
            index = json.loads(str(z["index"]))
            if index.get("format") != FORMAT or index.get("key") != name:
                return None
            resampled: Resamples = {}
            for i, (v, cond, metric, seeds, n, binary) in enumerate(index["resampled"]):
                bits = None
                if binary is not None:
                    bits = np.unpackbits(z[f"x{i}"], axis=1, count=binary[1]).astype(bool)
                resampled[(v, cond, metric)] = (list(seeds), stats.Resampled(z[f"p{i}"], z[f"b{i}"], n, bits))
            return Derived(resampled, tuple(Check(*c) for c in index["checks"]), tuple(index["reliability"]),
                           tuple(index["roc"]))
    except Exception:  # noqa: BLE001 - anything wrong with a cache file means: derive again
        return None


def save(run_dir: Path | str, name: str, derived: Derived) -> None:
    """Store ``derived`` under ``name`` in ``run_dir`` (replacing any earlier file); a run directory that cannot be
    written to is left as it is (the cache only saves time)."""
    from harness import fsutil

    arrays: dict[str, np.ndarray] = {}
    entries = []
    for i, ((v, cond, metric), (seeds, r)) in enumerate(derived.resampled.items()):
        arrays[f"p{i}"], arrays[f"b{i}"] = r.point, r.boot
        binary = None
        if r.binary is not None:
            arrays[f"x{i}"] = np.packbits(r.binary, axis=1)
            binary = list(r.binary.shape)
        entries.append([v, cond, metric, list(seeds), r.n_examples, binary])
    index = {"format": FORMAT, "key": name, "resampled": entries,
             "checks": [[c.name, c.status, c.detail] for c in derived.checks],
             "reliability": list(derived.reliability), "roc": list(derived.roc)}
    buffer = io.BytesIO()
    np.savez(buffer, index=np.array(json.dumps(index)), **cast(dict[str, Any], arrays))  # (its allow_pickle kw)
    try:
        fsutil.write_atomic(Path(run_dir) / FILE, buffer.getvalue())
    except OSError:
        pass
