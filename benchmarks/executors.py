"""Wall time of one suite under each executor: the process pool's speed-up over serial, and the
ray executor's overhead against the process pool, on this machine.

The same real suite (by default the quickstart suite, 6 variants, at ``--seeds 1``: 6 models
trained for 12 epochs on the digits and evaluated on 41 conditions each) is run with
``harness.runner.run(..., progress=False)`` into a fresh run directory by

* **serial**: every task in this process, one after another, with torch's default threads;
* **process**: the default executor, a pool of ``--workers`` spawned processes (2 by default),
  ``cores // workers`` torch threads each;
* **ray**: the ray executor with as many actors, on a local Ray instance it starts (with the
  usable cores) and shuts down within the call.

Each time is the whole ``run()`` call, as a user waits for it: for the pool, spawning the
workers and loading the data in each; for ray, starting the instance and its actors as well.
The three runs of a repeat go in a rotating order, so drift on a shared machine touches all of
them. Before the first repeat one small serial run imports everything (torch, the harness,
the data loaders) and is not timed. Figures are medians over the repeats with the min-max
spread; the speed-up is the median of the per-repeat ratios serial / process, and Ray's
overhead the median of the per-repeat differences ray - process (in seconds and in percent of
process). Ray's startup is timed on its own after each repeat's runs: ``ray.init`` of a local
instance, then the actors until every one has loaded the suite's data (``start``), then
killing them and shutting the instance down. The ray run's records are checked bit-identical
to the process pool's of the same repeat (per-example arrays and results, timings left out),
and so are serial's, which match only where serial uses the workers' torch thread count (the
tests run all three with one thread, tests/test_executors.py). Usage:

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

EXECUTORS = ("serial", "process", "ray")
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
    from harness.runner import _init_worker

    with tempfile.TemporaryDirectory() as tmp:
        ex = RayExecutor(workers)
        t0 = time.perf_counter()
        ex._connect()  # the instance alone; start() then finds it connected and adds the actors
        t1 = time.perf_counter()
        ex.start(_init_worker, (suite, "cpu", Path(tmp)))
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

    times: dict[str, list[float]] = {e: [] for e in EXECUTORS}
    startup: list[tuple[float, float, float]] = []
    same_as_process = {"ray": True, "serial": True}
    for r in range(args.repeat):
        order = EXECUTORS[r % 3:] + EXECUTORS[:r % 3]
        with tempfile.TemporaryDirectory() as tmp:
            for name in order:
                t0 = time.perf_counter()
                summary = run(suite, Path(tmp) / name, device="cpu", executor=name,
                              workers=None if name == "serial" else args.workers, progress=False)
                times[name].append(time.perf_counter() - t0)
                assert summary.ok, summary.failures
            recs = {name: records(Path(tmp) / name) for name in EXECUTORS}
            same_as_process["ray"] &= recs["ray"] == recs["process"]
            same_as_process["serial"] &= recs["serial"] == recs["process"]
        startup.append(ray_startup(suite, args.workers))
        print(f"repeat {r + 1}/{args.repeat}: " + ", ".join(f"{n} {times[n][-1]:.1f} s" for n in order),
              file=sys.stderr)

    print(f"machine: {os.cpu_count()} cores ({usable_cores()} usable), Python {sys.version.split()[0]}, "
          f"torch {torch.__version__} ({torch.get_num_threads()} threads here), ray {ray.__version__}")
    print(f"suite: {suite.name}, {len(suite.variants)} variants x {len(suite.seeds)} seed(s) = "
          f"{len(suite.variants) * len(suite.seeds)} models, {n_cells} cells; {args.repeat} repeats, interleaved")
    for name in EXECUTORS:
        workers = 1 if name == "serial" else args.workers
        print(f"  {name:<8} {workers} worker(s)  wall {spread(times[name])}")
    speedup = [s / p for s, p in zip(times["serial"], times["process"], strict=True)]
    extra = [y - p for y, p in zip(times["ray"], times["process"], strict=True)]
    share = [100 * (y - p) / p for y, p in zip(times["ray"], times["process"], strict=True)]
    print(f"process speed-up over serial: {spread(speedup, 'x{:.2f}')}")
    print(f"ray overhead against process: {spread(extra, '{:+.1f} s')}, {spread(share, '{:+.0f}%')}")
    init, actors, down = (list(x) for x in zip(*startup, strict=True))
    print(f"ray startup: ray.init {spread(init)}, then {args.workers} actors loading the data {spread(actors)}; "
          f"shutdown {spread(down)}")
    print(f"records bit-identical to the process pool's: ray {'yes' if same_as_process['ray'] else 'NO'}, "
          f"serial {'yes' if same_as_process['serial'] else 'no'} (serial with {torch.get_num_threads()} torch "
          f"threads against {max(1, usable_cores() // args.workers)} per worker: a thread count of its own can "
          "change float sums)")


if __name__ == "__main__":
    main()
