"""Coverage of every interval method of harness.stats over a grid of crossed designs.

The designs are those of tests/test_stats_validation.py (S seeds x 200 examples, Bernoulli
outcomes with example and seed effects; ``ratio`` = seed-to-seed sd of accuracy over the test
set's binomial sd). The tests check the validated part of the grid at fewer experiments; this
prints the whole grid, so the designs where a method falls short are on record too.

    python benchmarks/coverage.py --reps 4000
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.test_stats_validation import HIGH, LOW, _crossed_coverage  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=4000, help="experiments per design (default 4000)")
    parser.add_argument("--methods", default="crossed-t,hierarchical,seed-t")
    parser.add_argument("--seeds", default="2,3,5,10")
    parser.add_argument("--ratios", default="0,1,2,4")
    args = parser.parse_args()
    ratios = [float(r) for r in args.ratios.split(",")]
    se = (0.95 * 0.05 / args.reps) ** 0.5
    print(f"coverage of 95% intervals, {args.reps} experiments per design (Monte Carlo sd {100 * se:.1f} points); "
          f"* = outside {100 * LOW:g}-{100 * HIGH:g}%")
    print(f"{'method':<14}{'seeds':>6}" + "".join(f"{'ratio ' + format(r, 'g'):>11}" for r in ratios))
    start = time.perf_counter()
    for method in args.methods.split(","):
        for n_seeds in (int(s) for s in args.seeds.split(",")):
            cells = []
            for ratio in ratios:
                c = _crossed_coverage(method, n_seeds, ratio, args.reps)
                cells.append(f"{100 * c:9.1f}{'*' if not LOW <= c <= HIGH else ' '} ")
            print(f"{method:<14}{n_seeds:>6}" + "".join(cells), flush=True)
    print(f"({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
