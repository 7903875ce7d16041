"""Wall time of the quick start and of rebuilding its report, on this machine.

Runs, as a user would, ``harness run quickstart`` (install excluded: the harness must already
be installed) and then ``harness report`` on its run directory, each in a fresh process, and
prints the wall times beside their budgets (60 s and 5 s). Usage:

    python benchmarks/quickstart.py [--repeat N] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BUDGET_RUN_S = 60.0
BUDGET_REPORT_S = 5.0


def timed(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1, help="how many fresh runs to time")
    parser.add_argument("--keep", type=Path, help="keep the last run directory here")
    args = parser.parse_args()
    harness = shutil.which("harness") or f"{sys.executable} -m harness.cli"
    runs, reports = [], []
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory() as tmp:
            run_dir = Path(tmp) / "quickstart"
            runs.append(timed([*harness.split(), "run", "quickstart", "--run-dir", str(run_dir), "--no-progress"]))
            reports.append(timed([*harness.split(), "report", str(run_dir), "--quiet"]))
            if args.keep:
                shutil.copytree(run_dir, args.keep, dirs_exist_ok=True)
    cpu = os.cpu_count()
    print(f"machine: {cpu} cores, Python {sys.version.split()[0]}")
    for name, xs, budget in (("harness run quickstart", runs, BUDGET_RUN_S),
                             ("harness report RUN_DIR", reports, BUDGET_REPORT_S)):
        print(f"{name:<24} median {statistics.median(xs):6.1f} s  (min {min(xs):.1f}, max {max(xs):.1f}, "
              f"n={len(xs)})  budget {budget:.0f} s  -> {'within' if max(xs) < budget else 'OVER'} budget")


if __name__ == "__main__":
    main()
