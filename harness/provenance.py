"""The provenance record a run stores (meta ``provenance``): what made its results, so a report
can say which code, versions and machine produced them."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from harness.energy import energy_counter


def _git_hash() -> str | None:
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def cpu_model() -> str:
    """The CPU's model name (Linux: /proc/cpuinfo's "model name"; elsewhere the platform's processor
    string), what a timing measured on this machine was measured on."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("model name") and ":" in line:
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def provenance(device: str, argv: list[str] | None = None) -> dict[str, Any]:
    """Versions, git hash, device, thread count, determinism flags and the command line."""
    import importlib.metadata as md

    import torch

    import harness

    def version(dist: str) -> str | None:
        try:
            return md.version(dist)
        except md.PackageNotFoundError:
            return None

    dev_name = torch.cuda.get_device_name(device) if device.startswith("cuda") else (
        platform.processor() or platform.machine())
    return {
        "harness": harness.__version__,
        "git": _git_hash(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": {d: version(d) for d in ("torch", "numpy", "scipy", "scikit-learn", "scikit-image", "rich")},
        "device": device,
        "device_name": dev_name,
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        # how training energy is obtained on this machine (harness.energy): its counters, or a declared power
        "energy_counters": energy_counter() is not None,
        "torch_threads": torch.get_num_threads(),
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "command": argv if argv is not None else sys.argv,
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def without_run_dir(argv: list[str] | None) -> list[str]:
    """A recorded command line (provenance's ``command``) without its ``--run-dir DIR`` or
    ``--run-dir=DIR``, which differs between any two runs of one experiment."""
    words, skip = [], False
    for w in map(str, argv or []):
        if skip or w.startswith("--run-dir="):
            skip = False
            continue
        skip = w == "--run-dir"
        if not skip:
            words.append(w)
    return words
