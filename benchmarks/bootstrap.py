"""Speed of the hierarchical bootstrap at the size issue 5 names: 10,000 resamples over
5 seeds x 10,000 examples (goal: under 1 s), next to the crossed t-interval on the same draws.

    python benchmarks/bootstrap.py --repeat 5

Each timing starts from per-example 0/1 outcomes and ends with the interval, in a fresh
process state for the draws (their cache is cleared between repeats).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from harness import stats


def once(values: np.ndarray, n_resamples: int, method: str) -> float:
    stats._drawn_blocks.cache_clear()
    stats._float_counts.cache_clear()
    start = time.perf_counter()
    r = stats.resample_mean(values, n_resamples, seed=0)
    stats.estimate(r, method=method)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--examples", type=int, default=10_000)
    parser.add_argument("--resamples", type=int, default=10_000)
    args = parser.parse_args()
    values = np.random.default_rng(0).random((args.seeds, args.examples)) < 0.9
    print(f"{args.resamples} resamples x {args.seeds} seeds x {args.examples} examples, {args.repeat} repeats")
    for method in ("hierarchical", "crossed-t"):
        times = [once(values, args.resamples, method) for _ in range(args.repeat)]
        print(f"{method:<13} median {statistics.median(times):.3f} s  (min {min(times):.3f}, max {max(times):.3f})")


if __name__ == "__main__":
    main()
