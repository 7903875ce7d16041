"""Coverage of the interval methods of harness.stats over a grid of crossed designs, and the power
behind "seeds to settle".

The designs are those of tests/test_stats_validation.py (S seeds x 200 examples, Bernoulli
outcomes with example and seed effects; ``ratio`` = seed-to-seed sd of accuracy over the test
set's binomial sd), and so are the intervals: the real ones and the known-bad ones the tests'
coverage check must reject. The tests check the validated part of the grid with 2000 experiments
per design; this prints the whole grid at 95% and 80%, so the designs where a method falls short
are on record too, and with --check applies the tests' check to each method over the validated grid.

    python benchmarks/coverage.py --reps 4000
    python benchmarks/coverage.py --reps 2000 --check --methods crossed-t,hierarchical,half-width-x1.1
    python benchmarks/coverage.py --power --reps 4000

--power: per-seed differences ~ N(diff, 1) as a training metric's; for each effect size and family
size (Holm), the seeds harness.stats.seeds_needed predicts for 80% power and the share of
simulated runs with that many seeds that settle the claim (t-interval above 0, adjusted
sign-flip p below 0.05).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.stats import Components, seeds_needed, t_interval  # noqa: E402
from tests.test_stats_validation import (  # noqa: E402
    FAMILIES,
    HIGH,
    LEVELS,
    LOW,
    REPS,
    VALIDATED_GRID,
    _crossed_coverage,
    _settles,
    coverage_failures,
)

# every interval of the tests' families, by a name without spaces, with its example resamples
INTERVALS = {name.replace(" ", "-"): (n_resamples, name, interval)
             for n_resamples, intervals in FAMILIES.values() for name, interval in intervals.items()}


def coverage(methods: list[str], seeds: list[int], ratios: list[float], reps: int) -> dict[str, dict]:
    """Print the coverage table; return {method: {(seeds, ratio): {level: coverage}}}."""
    se = {level: (level * (1 - level) / reps) ** 0.5 for level in LEVELS}
    print(f"coverage of {' and '.join(f'{100 * lv:g}%' for lv in LEVELS)} intervals, {reps} experiments per design "
          f"(Monte Carlo sd {' and '.join(f'{100 * s:.1f}' for s in se.values())} points); * = 95% outside "
          f"{100 * LOW:g}-{100 * HIGH:g}%")
    print(f"{'method':<27}{'seeds':>6}" + "".join(f"{'ratio ' + format(r, 'g'):>15}" for r in ratios))
    out: dict[str, dict] = {}
    for method in methods:
        n_resamples, name, interval = INTERVALS[method]
        for n_seeds in seeds:
            cells = []
            for ratio in ratios:
                c = _crossed_coverage({name: interval}, n_seeds, ratio, reps, n_resamples)[name]
                out.setdefault(method, {})[n_seeds, ratio] = c
                mark = " " if LOW <= c[0.95] <= HIGH else "*"
                cells.append(f"{' / '.join(f'{100 * c[lv]:.1f}' for lv in LEVELS) + mark:>15}")
            print(f"{method:<27}{n_seeds:>6}" + "".join(cells), flush=True)
    return out


def power(reps: int) -> None:
    """Print the share of runs with the predicted seeds that settle a seed-level claim."""
    print(f"runs that settle a 'higher' claim with the seeds predicted for 80% power ({reps} runs each; "
          f"Monte Carlo sd {100 * (0.16 / reps) ** 0.5:.1f} points)")
    print(f"{'diff / sd':>10}{'family':>8}{'seeds':>7}{'settled':>9}")
    rng = np.random.default_rng(0)
    for factor in (1, 8):
        for effect in (3.0, 2.0, 1.5, 1.2, 1.0, 0.8, 0.6):
            n_seeds = seeds_needed(effect, Components(1 / 3, 0.0, 0.0, 3), factor=factor)
            if n_seeds is None or n_seeds > 14:  # the sampled sign-flip test is slow; the t approximation holds there
                continue
            d = rng.normal(effect, 1.0, (reps, n_seeds))
            share = np.mean([_settles(*t_interval(x), x, factor) for x in d])
            print(f"{effect:>10g}{factor:>8}{n_seeds:>7}{100 * share:>8.1f}%", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=4000, help="experiments per design (default 4000)")
    parser.add_argument("--methods", default="crossed-t,hierarchical,seed-t",
                        help=f"comma-separated, of: {', '.join(INTERVALS)}")
    parser.add_argument("--seeds", default="2,3,5,10")
    parser.add_argument("--ratios", default="0,1,2,4")
    parser.add_argument("--check", action="store_true",
                        help="apply the tests' coverage check over the validated grid (needs --reps >= 2000)")
    parser.add_argument("--power", action="store_true", help="the power table instead of the coverage one")
    args = parser.parse_args()
    start = time.perf_counter()
    with threadpool_limits(1):  # many small matrix products: OpenBLAS's threads only slow them down
        run(args, parser)
    print(f"({time.perf_counter() - start:.0f} s)")


def run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    if args.power:
        power(args.reps)
    elif args.check:
        if args.reps < REPS:
            parser.error(f"--check needs --reps >= {REPS}: its bands are sized for that many experiments")
        for method in args.methods.split(","):
            n_resamples, name, interval = INTERVALS[method]
            per_design = {d: _crossed_coverage({name: interval}, *d, args.reps, n_resamples)[name]
                          for d in VALIDATED_GRID}
            failures = coverage_failures(per_design)
            pooled = {lv: float(np.mean([c[lv] for c in per_design.values()])) for lv in LEVELS}
            print(f"{method}: pooled {' / '.join(f'{100 * p:.2f}%' for p in pooled.values())}: "
                  + ("passes" if not failures else "fails: " + "; ".join(failures)), flush=True)
    else:
        coverage(args.methods.split(","), [int(s) for s in args.seeds.split(",")],
                 [float(r) for r in args.ratios.split(",")], args.reps)


if __name__ == "__main__":
    main()
