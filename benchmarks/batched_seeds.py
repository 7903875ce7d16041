"""Seeds per second: the quick start's models trained and attacked one at a time and as one batched
computation (harness.batched), both paths in one process on the same models and data.

Data and recipe are the quick start's (suites/quickstart): scikit-learn's digits split as the suite
splits them (harness.data loaders), its TrainSpec (12 epochs of batch 32, Adam at 1e-3, the held-out
curve every 10 steps). Models: its variants, ``cnn`` (16, 32 channels) and ``mlp`` with none, batch
and layer norm, each with ``--seeds`` seeds (default the suite's 3). Models are batched as
``harness run --batch-seeds`` batches them: all the models of one architecture (its three variants'
seeds) as one computation; ``--group variant`` batches each variant's seeds alone instead.

* **training**: one model at a time, ``harness.training.train`` per model, as a run without
  ``--batch-seeds`` trains; batched, ``harness.batched.train_many`` over a group, as a run with it
  trains (its one-model timing probe of 11 steps per model included). Seeds per second: models
  trained / wall seconds.
* **attack battery**: the quick start's attacks, FGSM, PGD-10 (L-inf, one restart, random start)
  and APGD-CE (20 steps), swept over its eps (0, 0.02, 0.05, 0.1, 0.2) on the test split, per model
  as the classify evaluation runs them (``harness.tasks.classify.evaluation._attack``: each eps
  attacks what the smaller ones left standing, with the seed's generator for the condition) against
  ``harness.batched.battery_many`` on each variant's seeds, as ``harness run --batch-seeds``
  evaluates them (the models of one architecture in one stack are slower there: an attack runs
  hundreds of examples per operation, and such a stack copies every map through the norm slot).
  Both attack the one-model path's trained models.

Each repeat times both paths of every group, alternating which goes first; figures are medians over
the repeats with the min-max spread, and the speed-up is the median of the per-repeat ratios. Wall
and process CPU time are both kept (one thread: CPU time leaves out the time another process held
the core). Beside the timing, the table says how far the batched results are from the one-model
ones: the largest difference of a final held-out accuracy, and the share of per-example attack
outcomes (correct or not) that differ.
Usage:

    python benchmarks/batched_seeds.py [--repeat 5] [--seeds 3] [--threads 1] [--epochs 12] [--group arch|variant]
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch


@dataclass
class Figures:
    """One group's timings per repeat (wall and CPU seconds) and the differences found."""

    models: int
    wall: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in KINDS})
    cpu: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in KINDS})
    accuracy_diff: float = 0.0
    outcomes_differ: float = 0.0


KINDS = ("train one", "train batched", "attacks one", "attacks batched")


def median_spread(xs: list[float], fmt: str = ".2f") -> str:
    return f"{statistics.median(xs):{fmt}} ({min(xs):{fmt}}-{max(xs):{fmt}})"


def timed(fn: Callable[[], Any]) -> tuple[float, float, Any]:
    """Wall and process CPU seconds of ``fn()``, and what it returned."""
    gc.collect()
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - t0, time.process_time() - c0, out


def main() -> None:
    from harness.batched import battery_many, train_many
    from harness.data import as_tensor, stratified_split
    from harness.executors import usable_cores
    from harness.models import build_model
    from harness.registry import suites
    from harness.seeding import torch_generator
    from harness.sources import load
    from harness.specs import attack
    from harness.tasks.classify.evaluation import _attack, _Sweeps
    from harness.training import train

    suite = suites.get("quickstart")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="timed repetitions (default 5)")
    parser.add_argument("--seeds", type=int, default=len(suite.seeds), help="seeds per variant (default the suite's)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1, as each of the process executor's workers on two cores)")
    parser.add_argument("--epochs", type=int, default=suite.train.epochs, help="training epochs (default 12)")
    parser.add_argument("--group", choices=("arch", "variant"), default="arch",
                        help="batch every variant of an architecture together (as a run does; default) or each "
                             "variant's seeds alone")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    split = stratified_split(load(suite.dataset), suite.test_fraction, suite.val_fraction, suite.split_seed)
    spec = dataclasses.replace(suite.train, epochs=args.epochs)
    attacks = [(a.name, tuple(sorted(a.eps)), a.params) for a in suite.evaluation.attacks]
    conditions = [attack(name, e, params) for name, eps, params in attacks for e in eps]
    batch_size = suite.evaluation.batch_size
    x, y = as_tensor(split.test.x, "cpu"), as_tensor(split.test.y, "cpu")
    groups: dict[str, list[tuple[Any, int]]] = {}  # group name -> (variant, seed) of its models, in order
    for v in suite.variants:
        groups.setdefault(v.model if args.group == "arch" else v.name, []).extend((v, s) for s in range(args.seeds))

    def build(v: Any, seed: int) -> torch.nn.Module:
        return build_model(v.model, v.norm, split.train.shape, split.train.n_classes, dict(v.options), None,
                           torch_generator(seed, "init"))

    def one_model_battery(models: list[torch.nn.Module], seeds: list[int]) -> np.ndarray:
        out = []
        for seed, model in zip(seeds, models, strict=True):
            sweeps = _Sweeps()
            for name, eps, params in attacks:
                for e in eps:
                    gen = torch_generator(seed, attack(name, e, params).key)
                    _, logits = _attack(model, x, y, name, e, dict(params), gen, batch_size, sweeps)
                    out.append((logits.argmax(1) == y).numpy())
        return np.array(out)

    def batched_battery(models: list[torch.nn.Module], members: list[tuple[Any, int]]) -> np.ndarray:
        """The battery on each variant's seeds at once, as a batched run evaluates them (its
        predictions of the adversarial inputs one model at a time, as there)."""
        out = []
        for name in dict.fromkeys(v.name for v, _ in members):
            picked = [i for i, (v, _) in enumerate(members) if v.name == name]
            found = battery_many([models[i] for i in picked], [members[i][1] for i in picked],
                                 [conditions] * len(picked), x, y, batch_size)
            for m, i in enumerate(picked):
                with torch.no_grad():
                    out += [(models[i](found[m][c.key][0]).argmax(1) == y).numpy() for c in conditions]
        return np.array(out)

    def runs_of(one_models: list[torch.nn.Module], both_models: list[torch.nn.Module],
                members: list[tuple[Any, int]]) -> dict[str, Callable[[], Any]]:
        """The four timed calls of a group: training on each path (each its own fresh models), and the
        attack battery on each path (both on the one-model path's trained models)."""
        seeds = [s for _, s in members]
        return {
            "train one": lambda: [train(m, split, spec, s) for m, s in zip(one_models, seeds, strict=True)],
            "train batched": lambda: train_many(both_models, split, spec, seeds)[0],
            "attacks one": lambda: one_model_battery(one_models, seeds),
            "attacks batched": lambda: batched_battery(one_models, members),
        }

    print(f"{torch.get_num_threads()} torch thread(s), {usable_cores()} usable cores, torch {torch.__version__}; "
          f"{args.seeds} seeds per variant, {spec.epochs} epochs of {len(split.train.x) // spec.batch_size} steps; "
          f"batched per {'architecture' if args.group == 'arch' else 'variant'}; {args.repeat} repeats after one "
          "warm-up, the paths alternating")
    figures = {g: Figures(len(members)) for g, members in groups.items()}
    for r in range(args.repeat + 1):  # round 0 warms up and is not counted
        for g, members in groups.items():
            fig = figures[g]
            one_models = [build(v, s) for v, s in members]
            both_models = [build(v, s) for v, s in members]
            runs = runs_of(one_models, both_models, members)
            order = list(KINDS) if r % 2 == 0 else ["train batched", "train one", "attacks batched", "attacks one"]
            got = {}
            for kind in order:
                wall, cpu, got[kind] = timed(runs[kind])
                if r:
                    fig.wall[kind].append(wall)
                    fig.cpu[kind].append(cpu)
            fig.accuracy_diff = max(fig.accuracy_diff, max(abs(a.final_val_accuracy - b.final_val_accuracy) for a, b
                                                           in zip(got["train one"], got["train batched"], strict=True)))
            fig.outcomes_differ = max(fig.outcomes_differ, float((got["attacks one"] != got["attacks batched"]).mean()))

    for clock in ("wall", "cpu"):
        print(f"\nSeeds per second ({clock} time), median (min-max) over the repeats; x: the batched path's speed-up "
              "(median of the per-repeat ratios)")
        w = 20
        print(f"{'group':10}{'models':>7}{'train one':>{w}}{'train batched':>{w}}{'x':>{w - 4}}"
              f"{'attacks one':>{w}}{'attacks batched':>{w}}{'x':>{w - 4}}")
        every = Figures(sum(f.models for f in figures.values()))
        for f in figures.values():
            for k in KINDS:
                times = getattr(f, clock)[k]
                total = getattr(every, clock)[k]
                getattr(every, clock)[k] = [a + b for a, b in zip(total, times, strict=False)] if total else list(times)
        for g, f in [*figures.items(), ("all", every)]:
            t = getattr(f, clock)
            rate = {k: median_spread([f.models / s for s in t[k]]) for k in KINDS}
            speed = {k: median_spread([a / b for a, b in zip(t[f"{k} one"], t[f"{k} batched"], strict=True)], ".1f")
                     for k in ("train", "attacks")}
            print(f"{g:10}{f.models:>7}{rate['train one']:>{w}}{rate['train batched']:>{w}}{speed['train']:>{w - 4}}"
                  f"{rate['attacks one']:>{w}}{rate['attacks batched']:>{w}}{speed['attacks']:>{w - 4}}")
    print("\nHow far the batched results are from the one-model ones (largest over the repeats):")
    for g, f in figures.items():
        print(f"{g:10} final held-out accuracy: {f.accuracy_diff:.4f}; attack outcomes that differ: "
              f"{100 * f.outcomes_differ:.2f}%")


if __name__ == "__main__":
    main()
