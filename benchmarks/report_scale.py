"""Wall and CPU time of `harness report` and `harness compare` at MNIST scale (budget 5 s each).

The run directories are synthetic but shaped like a real run of the ``mnist`` suite at full test
size: its battery (clean; three corruptions at severities 1-5; four OOD sets scored by maximum
softmax probability; FGSM, PGD-10 and APGD-CE at five eps; the seven sanity checks), its six
variants x 10 seeds, the official 10,000 test images (``max_test`` lifted) and 10,000 images per
OOD set. They are written through the real store (harness.store.Store, Cell) under the keys the
planner gives (harness.planning.plan), so the report finds the plan complete; each cell holds the
arrays harness.tasks.classify.evaluation stores for its kind (``pred``, ``correct``,
``confidence``, ``loss``, ``brier``, ``label``; attacks add ``linf`` and ``l2``; OOD
``score_in`` / ``score_out``; each check its evidence) and the summary the task makes of them;
the training cells hold the fields and curves a real training cell records. The numbers come from
a seeded generator and are plausible: accuracy falls with severity and eps inside each model (an
attack at eps 0 reproduces the clean predictions, PGD breaks what FGSM breaks and more), so the
sanity checks pass. Two runs (generator seeds 0 and 1) are made, about 0.9 GB each.

A run's first report derives every value from the per-example records (the resamples, the
sanity battery, the curves) and keeps them in ``RUN_DIR/report-cache.npz`` (harness.reports.cache);
a rebuild from the same records reads them from there and still reads and verifies every stored
array. So it times, each in a fresh process:

* the first build: ``harness report RUN_DIR --no-cache --quiet`` (everything derived; the cache
  left alone), ``--cold-repeat`` times (default 1: about a minute each);
* then, after one untimed ``harness report`` of each run that writes its cache, ``--repeat``
  times (median, min, max; wall seconds and the process's CPU seconds beside them):
  ``harness report RUN_DIR --quiet`` and ``harness compare RUN_DIR RUN_DIR2`` end to end (the
  budget: 5 s each), and ``build_report`` + ``write_reports`` as Python calls, split into import,
  read (harness.reports.build.read: the store, every array verified, and the cache), build (the
  rest of build_report) and write.

Usage::

    python benchmarks/report_scale.py [--repeat N] [--cold-repeat N] [--dir DIR] [--resamples B]
                                      [--seeds S] [--test N] [--ood M]

``--dir`` keeps the two run directories there (``DIR/a``, ``DIR/b``) and reuses them on the next
call when they hold a store; by default they go to a temporary folder, deleted afterwards.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

BUDGET_S = 5.0
N_CLASSES = 10
# clean accuracy per variant (the mnist suite's CNNs end near 98%, its MLPs near 93-96%)
ACCURACY = {"cnn-none": 0.985, "cnn-batch": 0.99, "cnn-layer": 0.988,
            "mlp-none": 0.955, "mlp-batch": 0.965, "mlp-layer": 0.962}
# steps to 95% held-out accuracy per variant (None: this variant's seeds miss the target now and then)
STEPS = {"cnn-none": 260, "cnn-batch": 120, "cnn-layer": 160, "mlp-none": 420, "mlp-batch": 200, "mlp-layer": 240}
# accuracy kept at each eps of each attack, as a fraction of clean accuracy (PGD below FGSM, APGD below PGD)
KEPT = {"fgsm": {0.0: 1.0, 0.05: 0.85, 0.1: 0.55, 0.2: 0.2, 0.3: 0.08},
        "pgd-linf": {0.0: 1.0, 0.05: 0.75, 0.1: 0.35, 0.2: 0.04, 0.3: 0.005},
        "apgd-ce": {0.0: 1.0, 0.05: 0.72, 0.1: 0.3, 0.2: 0.02, 0.3: 0.002}}
# mean maximum softmax probability of each OOD set (near sets score higher: harder to tell apart)
OOD_MSP = {"fashion-mnist": 0.85, "faces": 0.7, "textures": 0.75, "uniform-noise": 0.55}

# runs in a fresh interpreter: the phases of one rebuild, wall and CPU seconds, as JSON on stdout
REBUILD = """
import json, sys, time
def clocks():
    return time.perf_counter(), time.process_time()
t0 = clocks()
from harness.reports import build
from harness.reports.render import write_reports
t1 = clocks()
inner = build.read
spent = [0.0, 0.0]
def read(*args, **kwargs):
    a = clocks()
    try:
        return inner(*args, **kwargs)
    finally:
        b = clocks()
        spent[0] += b[0] - a[0]
        spent[1] += b[1] - a[1]
build.read = read
report = build.build_report(sys.argv[1], n_resamples=int(sys.argv[2]))
t2 = clocks()
write_reports(report, sys.argv[1])
t3 = clocks()
out = {"import": (t1[0] - t0[0], t1[1] - t0[1]), "read": tuple(spent),
       "build": (t2[0] - t1[0] - spent[0], t2[1] - t1[1] - spent[1]), "write": (t3[0] - t2[0], t3[1] - t2[1])}
print(json.dumps(out))
"""


# --- a synthetic run directory ---------------------------------------------------------------


def suite_of(n_seeds: int, n_test: int) -> Any:
    """The mnist suite with ``n_seeds`` seeds, tested on ``n_test`` of its official test images."""
    from harness.registry import suites

    suite = suites.get("mnist").with_overrides(seeds=tuple(range(n_seeds)))
    return dataclasses.replace(suite, max_test=None if n_test >= 10_000 else n_test)


def _probabilities(rng: np.random.Generator, correct: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(confidence, probability of the true class) per example: high and equal when correct, a
    wrong class's lower maximum and a smaller true-class probability when not; rounded to float32
    as a model's softmax is (so ties happen, as in real scores)."""
    n = len(correct)
    confident = 1 - rng.beta(0.3, 6.0, n) * 0.6
    unsure = 0.35 + 0.6 * rng.beta(2.0, 2.0, n)
    conf = np.where(correct, confident, unsure).astype(np.float32).astype(np.float64)
    p_true = np.where(correct, conf, (1 - conf) * rng.uniform(0.05, 0.95, n)).astype(np.float32).astype(np.float64)
    return conf, np.maximum(p_true, 1e-7)


def outcome(rng: np.random.Generator, label: np.ndarray, correct: np.ndarray) -> dict[str, np.ndarray]:
    """The arrays of a clean, shift or attack cell for given 0/1 outcomes (as _outcome stores them)."""
    conf, p_true = _probabilities(rng, correct)
    wrong = (label + 1 + rng.integers(0, N_CLASSES - 1, len(label))) % N_CLASSES
    pred = np.where(correct, label, wrong).astype(np.int64)
    rest = 1 - np.where(correct, conf, p_true + conf)  # what the other classes share
    brier = np.where(correct, (1 - conf) ** 2, (1 - p_true) ** 2 + conf ** 2) + np.clip(rest, 0, 1) ** 2 / 8
    return {"pred": pred, "correct": correct.copy(), "confidence": conf, "loss": -np.log(p_true),
            "brier": brier, "label": label.astype(np.int64)}


def _training_cell(rng: np.random.Generator, key: str, spec: dict[str, Any], variant: str, seed: int,
                   steps_budget: int, eval_every: int) -> Any:
    """A training cell with the result fields and arrays harness.training records."""
    from harness.store import Cell

    target = STEPS[variant] + int(rng.integers(-30, 30))
    reached = not (variant == "mlp-none" and seed % 4 == 3)  # the weakest variant misses now and then
    steps = np.arange(1, steps_budget + 1)
    loss = 2.3 * np.exp(-steps / (0.6 * STEPS[variant])) + 0.05 + 0.03 * rng.standard_normal(steps_budget) ** 2
    grad = 0.5 + 2.0 * np.exp(-steps / 200) + 0.1 * rng.random(steps_budget)
    curve_steps = np.arange(eval_every, steps_budget + 1, eval_every, dtype=np.int64)
    top = ACCURACY[variant] + 0.005 * rng.standard_normal()
    curve = np.clip(top * (1 - np.exp(-curve_steps / (0.35 * STEPS[variant]))), 0, 1)
    result = {
        "aulc": float(curve.mean()), "budget_steps": steps_budget, "diverged": False, "diverged_at": None,
        "epochs_to_target": round(target / (steps_budget / 5), 3) if reached else None,
        "final_val_accuracy": float(curve[-1]), "grad_norm_max": float(grad.max()),
        "grad_norm_median": float(np.median(grad)), "loss_roughness": float(np.abs(np.diff(loss)).mean()),
        "memory_method": "counted", "n_steps": steps_budget, "peak_memory_bytes": int(2.0e6 + 1e5 * rng.random()),
        "seconds_per_step": float(0.004 + 0.0005 * rng.random()),
        "seconds_to_target": float(target * 0.0045) if reached else None,
        "steps_to_target": target if reached else None, "train_seconds": float(steps_budget * 0.0045)}
    return Cell(key, "train", variant, seed, spec, result, seconds=steps_budget * 0.005,
                arrays={"curve_steps": curve_steps, "curve_val_accuracy": curve, "grad_norm": grad, "loss": loss})


def _eval_arrays(rng: np.random.Generator, cond: Any, variant: str, label: np.ndarray, z: np.ndarray,
                 threshold: Any, clean: dict[str, np.ndarray], n_ood: int, suite: Any,
                 ) -> dict[str, np.ndarray]:
    """The arrays of one evaluation cell. ``z`` (N,) is the model's latent margin per example; an
    example is correct under a condition when ``z`` exceeds the condition's threshold, so the sets
    of correct examples are nested as a condition gets harder (``threshold(accuracy)``)."""
    acc = ACCURACY[variant]
    ev = suite.evaluation
    if cond.kind == "clean":
        return clean
    if cond.kind == "shift":
        drop = {"gaussian-noise": 0.03, "gaussian-blur": 0.05, "contrast": 0.08}[cond.name]
        return outcome(rng, label, z > threshold(acc * (1 - drop * cond.param("severity"))))
    if cond.kind == "ood":
        out = np.clip(rng.beta(4 * OOD_MSP[cond.name], 4 * (1 - OOD_MSP[cond.name]), n_ood), 0.1, 1)
        return {"score_in": clean["confidence"].copy(), "score_out": out.astype(np.float32).astype(np.float64)}
    if cond.kind == "attack":
        eps = cond.param("eps")
        if eps == 0:  # eps 0 reproduces the clean predictions bit for bit
            arrays = {k: a.copy() for k, a in clean.items()}
        else:
            arrays = outcome(rng, label, z > threshold(acc * KEPT[cond.name][eps]))
        moved = np.full(len(label), eps) * (rng.random(len(label)) < 0.97)
        return {**arrays, "linf": moved, "l2": moved * rng.uniform(8, 20, len(label))}
    worst = z > threshold(acc * min(KEPT[a.name].get(ev.check_eps, 0.3) for a in ev.attacks))
    if cond.name == "gradients":
        return {"grad_l1": np.abs(rng.standard_normal(len(label))) * 5 + 1e-3}
    if cond.name == "repeat":
        return {"max_abs_diff": np.zeros(1)}
    if cond.name == "batch-composition":
        return {"max_abs_diff": rng.random(len(label)) * 2e-6, "logit_scale": 5 + 10 * rng.random(len(label)),
                "pred_same": np.ones(len(label), dtype=bool)}
    if cond.name == "noise":
        return {"correct": z > threshold(acc * 0.97)}
    if cond.name == "transfer":
        if variant.endswith("-none"):
            return {}  # the baseline has no paired variant to transfer from
        return {"correct": z > threshold(acc * 0.6)}
    if cond.name == "stronger":
        more = worst & (rng.random(len(label)) > 0.004)
        return {"correct_base": worst, "correct": more}
    if cond.name == "large-eps":
        return {"correct": z > threshold(0.01)}
    raise ValueError(f"no synthetic records for {cond.key}")


def make_run(run_dir: Path, seed: int, n_seeds: int, n_test: int, n_ood: int) -> None:
    """A complete synthetic mnist run in ``run_dir`` (see the module docstring), from generator ``seed``."""
    from harness.planning import plan
    from harness.store import Cell, Store
    from harness.tasks import task_of

    suite = suite_of(n_seeds, n_test)
    task = task_of(suite)
    rng = np.random.default_rng(seed)
    label = rng.choice(N_CLASSES, n_test, p=np.full(N_CLASSES, 0.1)).astype(np.int64)
    difficulty = rng.standard_normal(n_test)  # shared by every model: the same examples are hard for all
    train_size = int(8000 * (1 - suite.val_fraction))
    budget = suite.train.epochs * -(-train_size // suite.train.batch_size)
    with Store(run_dir) as store:
        store.put_meta("suite", suite.to_dict())
        store.put_meta("device", "cpu")
        store.put_meta("provenance", {
            "command": ["harness", "run", "mnist", "--seeds", ",".join(map(str, suite.seeds)), "--run-dir",
                        str(run_dir)], "deterministic_algorithms": False, "device": "cpu", "device_name": "x86_64",
            "executor": "process", "git": "0" * 40, "harness": "0.1.0", "platform": "Linux-x86_64",
            "python": sys.version.split()[0], "started": "2026-01-01T00:00:00+00:00", "torch_threads": 2,
            "versions": {"numpy": np.__version__}, "workers": 2})
        for unit in plan(suite, store, "cpu"):
            name = unit.variant.name
            z = 0.8 * difficulty + 0.6 * rng.standard_normal(n_test)  # this model's margin per example

            def threshold(accuracy: float, z: np.ndarray = z) -> float:
                return float(np.quantile(z, 1 - accuracy))

            with store.transaction():  # one commit per model
                store.put(_training_cell(rng, unit.train_key, unit.train_spec, name, unit.seed, budget,
                                         suite.train.eval_every))
                clean = outcome(rng, label, z > threshold(ACCURACY[name]))
                for cond, key, spec in unit.evals:
                    arrays = _eval_arrays(rng, cond, name, label, z, threshold, clean, n_ood, suite)
                    result = task.eval_summary(cond, arrays)
                    store.put(Cell(key, "eval", name, unit.seed, spec, result, seconds=1.0,
                                   condition=cond.to_dict(), arrays=arrays))


def store_summary(run_dir: Path) -> str:
    with sqlite3.connect(run_dir / "store.sqlite") as db:
        counts = dict(db.execute("SELECT kind, COUNT(*) FROM cells GROUP BY kind").fetchall())
        n_arrays, size = db.execute("SELECT COUNT(*), SUM(LENGTH(data)) FROM arrays").fetchone()
    return (f"{counts.get('train', 0)} training and {counts.get('eval', 0)} evaluation cells, {n_arrays} arrays, "
            f"{size / 1e6:.0f} MB of array data, store {(run_dir / 'store.sqlite').stat().st_size / 1e6:.0f} MB")


# --- timing ----------------------------------------------------------------------------------


def timed(cmd: list[str]) -> tuple[float, float, str]:
    """Wall seconds, CPU seconds (user + system, of the child and its children) and stdout of a
    command run in a fresh process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, done.stdout


def line(name: str, wall: list[float], cpu: list[float], budget: float | None = None) -> str:
    text = (f"| {name:<38} | {statistics.median(wall):5.2f} ({min(wall):.2f}-{max(wall):.2f}) | "
            f"{statistics.median(cpu):5.2f} ({min(cpu):.2f}-{max(cpu):.2f}) |")
    if budget is not None:
        text += f" {budget:.0f} s: {'within' if statistics.median(wall) < budget else 'OVER'} |"
    else:
        text += " |"
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="fresh-process timings of each (default 3)")
    parser.add_argument("--cold-repeat", type=int, default=1, help="timings of the first build (default 1)")
    parser.add_argument("--dir", type=Path, help="keep the two run directories here (DIR/a, DIR/b) and reuse them")
    parser.add_argument("--resamples", type=int, default=2000, help="bootstrap resamples (default 2000, as "
                        "'harness report')")
    parser.add_argument("--seeds", type=int, default=10, help="seeds per variant (default 10)")
    parser.add_argument("--test", type=int, default=10_000, help="test examples (default 10,000)")
    parser.add_argument("--ood", type=int, default=10_000, help="examples per OOD set (default 10,000)")
    args = parser.parse_args()
    harness = (shutil.which("harness", path=str(Path(sys.executable).parent)) or "").split() or \
        [sys.executable, "-m", "harness.cli"]
    tmp = None if args.dir else tempfile.TemporaryDirectory()
    root = args.dir or Path(tmp.name)  # type: ignore[union-attr]
    runs = [root / "a", root / "b"]
    try:
        for i, run_dir in enumerate(runs):
            if (run_dir / "store.sqlite").exists():
                print(f"reusing {run_dir}: {store_summary(run_dir)}")
                continue
            t0 = time.perf_counter()
            make_run(run_dir, i, args.seeds, args.test, args.ood)
            print(f"made {run_dir} in {time.perf_counter() - t0:.0f} s: {store_summary(run_dir)}")

        phases: dict[str, tuple[list[float], list[float]]] = {k: ([], []) for k in ("import", "read", "build",
                                                                                      "write")}
        total: tuple[list[float], list[float]] = ([], [])
        report: tuple[list[float], list[float]] = ([], [])
        compare: tuple[list[float], list[float]] = ([], [])
        cold: tuple[list[float], list[float]] = ([], [])
        for _ in range(args.cold_repeat):
            wall, cpu, _ = timed([*harness, "report", str(runs[0]), "--quiet", "--no-cache", "--resamples",
                                  str(args.resamples)])
            cold[0].append(wall)
            cold[1].append(cpu)
        for run_dir in runs:  # the first build of each run, which writes its cache (untimed)
            timed([*harness, "report", str(run_dir), "--quiet", "--resamples", str(args.resamples)])
        for _ in range(args.repeat):
            wall, cpu, out = timed([sys.executable, "-c", REBUILD, str(runs[0]), str(args.resamples)])
            total[0].append(wall)
            total[1].append(cpu)
            for k, (w, c) in json.loads(out).items():
                phases[k][0].append(w)
                phases[k][1].append(c)
            wall, cpu, _ = timed([*harness, "report", str(runs[0]), "--quiet", "--resamples", str(args.resamples)])
            report[0].append(wall)
            report[1].append(cpu)
            wall, cpu, _ = timed([*harness, "compare", str(runs[0]), str(runs[1]), "--resamples",
                                  str(args.resamples)])
            compare[0].append(wall)
            compare[1].append(cpu)
        print(f"\nmachine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}, Python "
              f"{sys.version.split()[0]}; mnist suite, 6 variants x {args.seeds} seeds, {args.test:,} test and "
              f"{args.ood:,} OOD examples; {args.resamples} resamples; {args.cold_repeat} first build(s), "
              f"{args.repeat} rebuilds\n")
        print(f"| {'seconds: median (min-max)':<38} | wall               | CPU                | budget     |")
        print(f"|{'-' * 40}|--------------------|--------------------|------------|")
        if cold[0]:
            print(line("first build: harness report --no-cache", *cold))
        print(line("harness report RUN_DIR (end to end)", *report, BUDGET_S))
        print(line("harness compare RUN_A RUN_B (end to end)", *compare, BUDGET_S))
        print(line("fresh process: rebuild in Python", *total))
        for k, (w, c) in phases.items():
            print(line(f"  {k}", w, c))
    finally:
        if tmp is not None:
            tmp.cleanup()


if __name__ == "__main__":
    main()
