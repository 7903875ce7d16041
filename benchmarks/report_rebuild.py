"""Wall time of rebuilding a report from a ~200-cell run directory, on this machine.

Makes a real run directory (or reuses ``--run-dir`` when it already holds a store):
``harness run quickstart --seeds 0,1,2 --variants cnn-none,cnn-batch``, 41 evaluation
conditions per model, about 250 evaluation cells; prints the cell count from the store. Then
times, each in a fresh process, ``build_report`` + ``write_reports`` (the Python calls, split
into import, build and write) and the ``harness report RUN_DIR`` command end to end, and prints
median, min and max beside the budget (5 s). Usage:

    python benchmarks/report_rebuild.py [--repeat N] [--run-dir DIR] [--resamples B]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BUDGET_S = 5.0
SEEDS = "0,1,2"
VARIANTS = "cnn-none,cnn-batch"

# runs in a fresh interpreter: the phases of one rebuild, as JSON on stdout
REBUILD = """
import json, sys, time
t0 = time.perf_counter()
from harness.reports.build import build_report
from harness.reports.render import write_reports
t1 = time.perf_counter()
report = build_report(sys.argv[1], n_resamples=int(sys.argv[2]))
t2 = time.perf_counter()
write_reports(report, sys.argv[1])
t3 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "build": t2 - t1, "write": t3 - t2}))
"""


def timed(cmd: list[str]) -> tuple[float, str]:
    """Wall seconds of a command (a fresh process) and its stdout."""
    t0 = time.perf_counter()
    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return time.perf_counter() - t0, done.stdout


def cell_counts(run_dir: Path) -> dict[tuple[str, str], int]:
    """(kind, status) -> number of cells in the run directory's store."""
    with sqlite3.connect(run_dir / "store.sqlite") as db:
        return {(k, s): n for k, s, n in db.execute("SELECT kind, status, COUNT(*) FROM cells GROUP BY kind, status")}


def line(name: str, xs: list[float], budget: float | None = None) -> str:
    text = f"{name:<36} median {statistics.median(xs):6.2f} s  (min {min(xs):.2f}, max {max(xs):.2f}, n={len(xs)})"
    if budget is not None:
        text += f"  budget {budget:.0f} s -> {'within' if max(xs) < budget else 'OVER'} budget"
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="how many fresh-process rebuilds to time (default 3)")
    parser.add_argument("--run-dir", type=Path, help="run directory to reuse, or to make and keep (default: a "
                        "temporary one, deleted afterwards)")
    parser.add_argument("--resamples", type=int, default=2000, help="bootstrap resamples (default 2000, as "
                        "'harness report')")
    args = parser.parse_args()
    harness = (shutil.which("harness") or f"{sys.executable} -m harness.cli").split()
    tmp = None if args.run_dir else tempfile.TemporaryDirectory()
    run_dir = args.run_dir or Path(tmp.name) / "run"  # type: ignore[union-attr]
    try:
        if (run_dir / "store.sqlite").exists():
            print(f"reusing {run_dir}")
        else:
            seconds, _ = timed([*harness, "run", "quickstart", "--seeds", SEEDS, "--variants", VARIANTS,
                                "--run-dir", str(run_dir), "--no-progress", "--quiet"])
            print(f"made {run_dir}: harness run quickstart --seeds {SEEDS} --variants {VARIANTS}, {seconds:.1f} s")
        counts = sorted(cell_counts(run_dir).items())
        print("cells in the store: " + ", ".join(f"{n} {kind} ({status})" for (kind, status), n in counts))

        phases: dict[str, list[float]] = {"import": [], "build": [], "write": []}
        rebuild, command = [], []
        for _ in range(args.repeat):
            seconds, out = timed([sys.executable, "-c", REBUILD, str(run_dir), str(args.resamples)])
            rebuild.append(seconds)
            for k, v in json.loads(out).items():
                phases[k].append(v)
            command.append(timed([*harness, "report", str(run_dir), "--quiet", "--resamples",
                                  str(args.resamples)])[0])
        print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}; {args.resamples} resamples")
        print(line("build_report + write_reports", [b + w for b, w in zip(phases["build"], phases["write"],
                                                                            strict=True)], BUDGET_S))
        for k, xs in phases.items():
            print(line(f"  {k}", xs))
        print(line("  fresh process, start to exit", rebuild))
        print(line("harness report RUN_DIR (end to end)", command, BUDGET_S))
    finally:
        if tmp is not None:
            tmp.cleanup()


if __name__ == "__main__":
    main()
