"""Wall time of one suite under each executor: the process pool's speed-up over serial, and the
ray executor's overhead against the process pool, on this machine.

The same real suite (by default the quickstart suite, 6 variants, at ``--seeds 1``: 6 models
trained for 12 epochs on the digits and evaluated on 41 conditions each) is run with
``harness.runner.run(..., progress=False)`` into a fresh run directory by

* **serial**: every task in this process, one after another, with torch's default threads (one
  per core), as ``--executor serial`` runs;
* **serial-1t**: the same with one torch thread: the work of one pool worker, done serially, so
  that against it the pool's speed-up is parallelism alone (against **serial** it also holds
  what splitting the cores saves: tiny models gain little from a second thread, and a thread
  whose core another process takes stalls the other at every op);
* **process**: the default executor, a pool of ``--workers`` spawned processes (2 by default),
  ``cores // workers`` torch threads each;
* **ray**: the ray executor with as many actors, on a local Ray instance it starts (with the
  usable cores) and shuts down within the call.

Each time is the whole ``run()`` call, as a user waits for it: for the pool, spawning the
workers and loading the data in each; for ray, starting the instance and its actors as well.
The runs of a repeat go in a rotating order, so drift on a shared machine touches all of them.
Before the first repeat one small serial run imports everything (torch, the harness, the data
loaders) and is not timed. Figures are medians over the repeats with the min-max spread;
speed-ups are medians of the per-repeat ratios, and Ray's overhead the median of the
per-repeat differences ray - process (in seconds and in percent of process). Beside them the
same from the fastest run of each (on a shared machine the least disturbed). Ray's startup is
timed on its own after each repeat's runs: ``ray.init`` of a local instance, then the actors
until every one has loaded the suite's data (``start``), then killing them and shutting the
instance down. Records are checked bit-identical to the process pool's of the same repeat
(per-example arrays and results, timings left out): ray's and serial-1t's must be (the same
thread count per model); serial's may differ, a thread count of its own changing float sums.
Usage:

    python benchmarks/executors.py [--repeat 3] [--suite quickstart] [--seeds 1] [--workers 2]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

RUNS = {"serial": ("serial", None), "serial-1t": ("serial", 1), "process": ("process", None),
        "ray": ("ray", None)}  # name -> (executor, torch threads in this process; None: as they are)
TIMINGS = {"seconds_to_target", "seconds_per_step", "train_seconds"}


def records(run_dir: Path) -> dict[str, Any]:
    """Each cell's untimed results and arrays, by key: what must not depend on the executor."""
    from harness.store import Store

    with Store(run_dir, create=False) as store:
        return {c.key: ({k: v for k, v in c.result.items() if k not in TIMINGS},
                        {k: a.tobytes() for k, a in c.arrays.items()}) for c in store.cells()}


def spread(xs: list[float], form: str = "{:.1f} s") -> str:
    """The median, then the min-max range, each written as ``form``."""
    return f"{form.format(statistics.median(xs))} ({form.format(min(xs))} to {form.format(max(xs))})"


def ray_startup(suite: Any, workers: int) -> tuple[float, float, float]:
    """Seconds for ray.init of a local instance, for the actors to load the data, and to shut down."""
    from harness.executors import RayExecutor
    from harness.worker import WorkerFactory, WorkerInit

    with tempfile.TemporaryDirectory() as tmp:
        ex = RayExecutor(workers)
        t0 = time.perf_counter()
        ex._connect()  # the instance alone; start() then finds it connected and adds the actors
        t1 = time.perf_counter()
        ex.start(WorkerFactory(), WorkerInit(suite, "cpu", Path(tmp)))
        t2 = time.perf_counter()
        ex.__exit__(None, None, None)
        t3 = time.perf_counter()
    return t1 - t0, t2 - t1, t3 - t2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="how many runs of each executor to time")
    parser.add_argument("--suite", default="quickstart", help="the suite to run")
    parser.add_argument("--seeds", type=int, default=1, help="run the suite's first N seeds")
    parser.add_argument("--workers", type=int, default=2, help="workers of the process and ray executors")
    args = parser.parse_args()

    import ray
    import torch

    from harness.executors import usable_cores
    from harness.registry import suites
    from harness.runner import run

    suite = suites.get(args.suite)
    suite = suite.with_overrides(seeds=suite.seeds[:args.seeds])
    n_cells = len(suite.variants) * len(suite.seeds) * (1 + len(suite.conditions()))
    # untimed warm-up: the imports and data loaders every timed run would otherwise pay once
    warm = dataclasses.replace(suite.with_overrides(variants=(suite.variants[0].name,), epochs=1),
                               evaluation=dataclasses.replace(suite.evaluation, shifts=(), ood_sets=(), attacks=()))
    with tempfile.TemporaryDirectory() as tmp:
        run(warm, Path(tmp) / "warm", device="cpu", executor="serial", progress=False)

    times: dict[str, list[float]] = {name: [] for name in RUNS}
    startup: list[tuple[float, float, float]] = []
    same = {name: True for name in RUNS if name != "process"}
    names = list(RUNS)
    default_threads = torch.get_num_threads()
    for r in range(args.repeat):
        order = names[r % len(names):] + names[:r % len(names)]
        with tempfile.TemporaryDirectory() as tmp:
            for name in order:
                executor, threads = RUNS[name]
                torch.set_num_threads(threads or default_threads)
                t0 = time.perf_counter()
                summary = run(suite, Path(tmp) / name, device="cpu", executor=executor,
                              workers=None if executor == "serial" else args.workers, progress=False)
                times[name].append(time.perf_counter() - t0)
                torch.set_num_threads(default_threads)
                assert summary.ok, summary.failures
            recs = {name: records(Path(tmp) / name) for name in RUNS}
            for name in same:
                same[name] &= recs[name] == recs["process"]
        startup.append(ray_startup(suite, args.workers))
        print(f"repeat {r + 1}/{args.repeat}: " + ", ".join(f"{n} {times[n][-1]:.1f} s" for n in order),
              file=sys.stderr)

    print(f"machine: {os.cpu_count()} cores ({usable_cores()} usable), Python {sys.version.split()[0]}, "
          f"torch {torch.__version__}, ray {ray.__version__}")
    print(f"suite: {suite.name}, {len(suite.variants)} variants x {len(suite.seeds)} seed(s) = "
          f"{len(suite.variants) * len(suite.seeds)} models, {n_cells} cells; {args.repeat} repeats, interleaved")
    per_worker = max(1, usable_cores() // args.workers)
    for name, (executor, threads) in RUNS.items():
        workers, t = (1, threads or default_threads) if executor == "serial" else (args.workers, per_worker)
        print(f"  {name:<10} {workers} worker(s) x {t} torch thread(s)  wall {spread(times[name])}")

    def ratio(a: str, b: str) -> str:
        per_repeat = [x / y for x, y in zip(times[a], times[b], strict=True)]
        return f"{spread(per_repeat, 'x{:.2f}')}; fastest runs x{min(times[a]) / min(times[b]):.2f}"

    print(f"process speed-up over serial: {ratio('serial', 'process')}")
    print(f"process speed-up over serial-1t: {ratio('serial-1t', 'process')}")
    extra = [y - p for y, p in zip(times["ray"], times["process"], strict=True)]
    share = [100 * (y - p) / p for y, p in zip(times["ray"], times["process"], strict=True)]
    fast = min(times["ray"]) - min(times["process"])
    print(f"ray overhead against process: {spread(extra, '{:+.1f} s')}, {spread(share, '{:+.0f}%')}; "
          f"fastest runs {fast:+.1f} s ({100 * fast / min(times['process']):+.0f}%)")
    init, actors, down = (list(x) for x in zip(*startup, strict=True))
    print(f"ray startup: ray.init {spread(init)}, then {args.workers} actors loading the data {spread(actors)}; "
          f"shutdown {spread(down)}")
    print("records bit-identical to the process pool's: " + ", ".join(
        f"{name} {'yes' if ok else 'no' if name == 'serial' else 'NO'}" for name, ok in same.items())
        + f" (serial: {default_threads} torch threads per model against {per_worker})")

if __name__ == "__main__":
    main()
