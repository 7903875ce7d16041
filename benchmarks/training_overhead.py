"""Overhead of the harness's training loop against a plain PyTorch loop, in one process.

For each configuration (a model and norm on a dataset) three runs are timed, each on a freshly
built model (``build_model`` with the seed's ``init`` stream, so all three start from the same
weights) and the same data order (the seed's ``data-order`` stream, one ``randperm`` per epoch,
batches of ``batch_size`` with drop_last):

* **plain**: a hand-written loop: data to tensors, Adam (the TrainSpec's lr), ``model.train()``
  once per epoch, then per step forward, ``F.cross_entropy``, ``zero_grad(set_to_none=True)``,
  backward, ``step`` and ``loss.item()`` (a loop that logs its loss); no evaluation at all;
* **harness**: ``harness.training.train`` with ``eval_every`` beyond the last step, so the
  held-out accuracy is computed only twice: before the first step (``train`` always does) and
  after the last. Those two evaluations (the validation part to tensors and two ``_accuracy``
  calls, the function ``train`` uses) are timed on their own after every plain run and
  subtracted; what remains, against plain, is the training step's overhead: the gradient norm of
  every step (``harness.training._Gradients``: after the first step the gradients are views of one
  flat buffer, zeroed in one op, their norm one op, combined after the timed steps), the per-step
  timer, the bookkeeping, and the first step's memory count (saved-tensor hooks);
* **harness + curve**: ``train`` with the suite's usual ``eval_every`` (10 on the digits, 20 on
  MNIST); its extra time over **harness**, as a share of plain, is what the held-out curve costs:
  measurement work the plain loop does not do, reported apart and not counted as overhead.

Data: the digits (``stratified_split(load("digits"), 0.25, 0.1, 0)``, 12 epochs of batch 32, as
the quickstart suite: 432 steps, so the call's fixed costs, such as building the optimizer and
the first step's memory count, weigh as they do in a real run) and, when MNIST is in the data
root (``$HARNESS_DATA_ROOT``), its 8,000 training images
(``stratified_split(load("mnist"), 0.1, 0.1, 0)``, 1 epoch of batch 64, as the mnist suite).
Models: mlp with none and layer, cnn (16, 32 channels) with batch, and resnet, gru
and vit with layer where they are registered.

Timing: every configuration is warmed up once (all its runs), and timing the plain loop again
sets how many rounds of the runs make one repeat of it (enough for the plain loop to take
``--min-seconds``, 1 s by default). A repeat keeps, for each kind of run, the fastest of its
rounds: on a shared machine a 0.1 s run is slowed by whatever else runs at that moment (by 50%
and more, while its fastest runs agree within a few percent), and the fastest round is the least
disturbed. Each repeat goes over all configurations, and the order of the runs rotates from one
round to the next, so drift affects all of them; garbage is collected before every run. Each run
is timed in wall time and in process CPU time (which leaves out time spent waiting for a core).
Figures are medians over the repeats with the min-max spread; overheads are medians of the
per-repeat ratios to plain. The harness's own ``seconds_per_step`` (its timer, which leaves the
evaluations out) is printed beside the plain loop's time per step, and the
table says whether every run computed losses bit-identical to the plain loop's (the same
computation in the same order).

Where the overhead goes: for every configuration over the 5% target in every repeat (so not by
chance; ``--ablate all``: every one), ``train`` is run again with one extra switched off at a
time, in place (the plain loop's ``zero_grad(set_to_none=True)`` and no gradient norm; no
saved-tensor hooks or memory count), interleaved with plain and the full harness; the time each
saves, as a share of plain, is what it costs. A last table times each extra alone in a hot loop
(CPU microseconds per step; a lower bound, as caches are warm there).
Usage:

    python benchmarks/training_overhead.py [--repeat 5] [--device cpu] [--threads 1]
        [--min-seconds 1.0] [--ablate over|all|none] [--datasets digits,mnist] [--models mlp-none,...]
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import gc
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

SEED = 0
TARGET = 0.05  # the overhead the harness should stay under
CNN_OPTIONS = (("channels", (16, 32)),)
# (model, norm, options); a model that is not registered is left out
CONFIGS = (("mlp", "none", ()), ("mlp", "layer", ()), ("cnn", "batch", CNN_OPTIONS),
           ("resnet", "layer", ()), ("gru", "layer", ()), ("vit", "layer", ()))
PARTS = ("grad norm", "memory count")  # what the ablation switches off
EXTRAS = ("flat", "norm", "combine", "timer", "first")  # what the hot-loop table times

Run = Callable[[], dict[str, float]]


@dataclass
class Config:
    dataset: str
    split: Any
    spec: Any  # TrainSpec with the suite's eval_every
    model: str
    norm: str
    options: tuple
    runs: int = 1  # rounds per repeat, the fastest of each kind kept
    reference: np.ndarray | None = None  # the plain loop's losses
    same_losses: bool = True
    times: dict[str, list[float]] = field(default_factory=dict)  # "kind/wall" etc. -> per repeat

    @property
    def name(self) -> str:
        return f"{self.model}-{self.norm}"

    @property
    def steps(self) -> int:
        return (len(self.split.train.x) // self.spec.batch_size) * self.spec.epochs

    def check(self, losses: Any) -> None:
        losses = np.asarray(losses)
        if self.reference is None:
            self.reference = losses
        self.same_losses &= bool(np.array_equal(losses, self.reference))

    def ratios(self, fn: Callable[..., float], *kinds: str, clock: str = "wall") -> list[float]:
        """``fn`` applied per repeat to the ``clock`` seconds of ``kinds``."""
        return [fn(*xs) for xs in zip(*(self.times[f"{k}/{clock}"] for k in kinds), strict=True)]


def median_spread(xs: list[float], scale: float = 1.0, fmt: str = ".2f") -> str:
    return f"{statistics.median(xs) * scale:{fmt}} ({min(xs) * scale:{fmt}} to {max(xs) * scale:{fmt}})"


def sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def timed(fn: Callable[[], Any], dev: torch.device) -> tuple[float, float, Any]:
    """Wall and process CPU seconds of ``fn()``, and what it returned."""
    sync(dev)
    w0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    sync(dev)
    return time.perf_counter() - w0, time.process_time() - c0, out


def fresh_model(cfg: Config) -> nn.Module:
    """The configuration's model, built as the runner builds it (weights from the seed's init
    stream); garbage left by one run is collected first, not in the next run's time."""
    from harness.models import build_model
    from harness.seeding import torch_generator

    gc.collect()
    return build_model(cfg.model, cfg.norm, cfg.split.train.shape, cfg.split.train.n_classes, dict(cfg.options),
                       None, torch_generator(SEED, "init"))


def plain_loop(net: nn.Module, split: Any, spec: Any, dev: torch.device) -> list[float]:
    """The hand-written loop; returns its losses."""
    from harness.data import as_tensor
    from harness.seeding import torch_generator

    net.to(dev)
    x, y = as_tensor(split.train.x, dev), as_tensor(split.train.y, dev)
    opt = torch.optim.Adam(net.parameters(), lr=spec.lr)
    order = torch_generator(SEED, "data-order")
    per_epoch = len(x) // spec.batch_size
    losses = []
    for _ in range(spec.epochs):
        perm = torch.randperm(len(x), generator=order).to(dev)
        net.train()
        for i in range(per_epoch):
            idx = perm[i * spec.batch_size:(i + 1) * spec.batch_size]
            loss = F.cross_entropy(net(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.item())
    return losses


def two_evaluations(net: nn.Module, split: Any, dev: torch.device) -> None:
    """What ``train`` spends on evaluation with the curve off: the validation part to tensors
    and two held-out accuracies (before the first step and after the last)."""
    from harness.data import as_tensor
    from harness.training import _accuracy

    xv, yv = as_tensor(split.val.x, dev), as_tensor(split.val.y, dev)
    _accuracy(net, xv, yv)
    _accuracy(net, xv, yv)


class _NoCount:
    """Stands in for harness.training._SavedTensors: no hooks, nothing saved."""

    def __init__(self) -> None:
        self.tensors: list[torch.Tensor] = []

    def __enter__(self) -> _NoCount:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


class _NoNorm:
    """Stands in for harness.training._Gradients: the plain loop's ``zero_grad(set_to_none=True)``
    and no norm (a zero, made once, for every step)."""

    def __init__(self, params: list[torch.Tensor], opt: torch.optim.Optimizer) -> None:
        self._opt, self._zero, self._steps = opt, torch.zeros((), dtype=torch.float64), 0

    def zero(self) -> None:
        self._opt.zero_grad(set_to_none=True)

    def record(self) -> None:
        self._steps += 1

    def flush(self) -> None:
        pass

    def values(self) -> np.ndarray:
        return np.zeros(self._steps)


def train_without(net: nn.Module, cfg: Config, spec: Any, dev: torch.device, without: tuple[str, ...] = ()) -> Any:
    """``harness.training.train`` with the extras in ``without`` (of PARTS) switched off in place;
    returns (wall, cpu, TrainResult)."""
    import harness.training as ht

    kept = (ht._Gradients, ht._SavedTensors, ht._counted_peak)
    if "grad norm" in without:
        ht._Gradients = _NoNorm  # type: ignore[misc]
    if "memory count" in without:
        ht._SavedTensors, ht._counted_peak = _NoCount, lambda *args: 0  # type: ignore[misc,assignment]
    try:
        return timed(lambda: ht.train(net, cfg.split, spec, SEED, str(dev)), dev)
    finally:
        ht._Gradients, ht._SavedTensors, ht._counted_peak = kept  # type: ignore[misc]


def plain_run(cfg: Config, dev: torch.device) -> Run:
    def run() -> dict[str, float]:
        net = fresh_model(cfg)
        wall, cpu, losses = timed(lambda: plain_loop(net, cfg.split, cfg.spec, dev), dev)
        cfg.check(losses)
        ew, ec, _ = timed(lambda: two_evaluations(net, cfg.split, dev), dev)
        return {"plain/wall": wall, "plain/cpu": cpu, "evals/wall": ew, "evals/cpu": ec}
    return run


def harness_run(cfg: Config, dev: torch.device, kind: str, curve: bool, without: tuple[str, ...] = ()) -> Run:
    spec = cfg.spec if curve else dataclasses.replace(cfg.spec, eval_every=cfg.steps + 1)

    def run() -> dict[str, float]:
        wall, cpu, result = train_without(fresh_model(cfg), cfg, spec, dev, without)
        cfg.check(result.loss)
        return {f"{kind}/wall": wall, f"{kind}/cpu": cpu, f"{kind}/own": result.seconds_per_step}
    return run


def rounds(cfg: Config, runs: list[Run], r: int, record: bool) -> None:
    """``cfg.runs`` rounds of ``runs``, the order rotating from one round to the next; with
    ``record``, the smallest of each figure over the rounds is appended to ``cfg.times``."""
    best: dict[str, float] = {}
    for j in range(cfg.runs):
        turn = (r * cfg.runs + j) % len(runs)
        for run in runs[turn:] + runs[:turn]:
            for k, v in run().items():
                best[k] = min(best.get(k, math.inf), v)
    if record:
        for k, v in best.items():
            cfg.times.setdefault(k, []).append(v)


def hot_loop_extras(cfg: Config, dev: torch.device, repeat: int) -> dict[str, list[float]]:
    """CPU seconds per step of each extra of the harness's step, timed alone, per repeat."""
    from harness.data import as_tensor
    from harness.training import _counted_peak, _Gradients, _SavedTensors

    net = fresh_model(cfg).to(dev)
    net.train()
    x, y = as_tensor(cfg.split.train.x, dev), as_tensor(cfg.split.train.y, dev)
    xb, yb = x[:cfg.spec.batch_size], y[:cfg.spec.batch_size]
    opt = torch.optim.Adam(net.parameters(), lr=cfg.spec.lr)
    # a twin trained the harness's way (its gradients move to the flat buffer after one step), so
    # the plain steps, which set gradients to None, never undo that
    twin = copy.deepcopy(net)
    twin_opt = torch.optim.Adam(twin.parameters(), lr=cfg.spec.lr)
    grads = _Gradients([p for p in twin.parameters() if p.requires_grad], twin_opt)

    def step() -> None:
        loss = F.cross_entropy(net(xb), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def counted_step() -> None:
        with _SavedTensors() as saved:
            loss = F.cross_entropy(net(xb), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        _counted_peak(net, opt, saved.tensors)
        saved.tensors.clear()

    def flat_step() -> None:  # a step of train() without the norm: the gradients in one flat buffer
        loss = F.cross_entropy(twin(xb), yb)
        grads.zero()
        loss.backward()
        twin_opt.step()

    def grad_norm() -> None:  # as in a step of train(): the norm of all gradients, kept
        grads.record()

    def combine() -> None:  # as train() does at each held-out evaluation, for eval_every steps at once
        for _ in range(cfg.spec.eval_every):
            grad_norm()
        grads.flush()

    def timer() -> None:
        t0 = time.perf_counter()
        _ = time.perf_counter() - t0

    def per_call(fn: Callable[[], object], n: int) -> float:
        sync(dev)
        c0 = time.process_time()
        for _ in range(n):
            fn()
        sync(dev)
        return (time.process_time() - c0) / n

    for _ in range(3):
        step()
    flat_step()
    grad_norm()  # the first step's record: the next zero() puts the gradients in the flat buffer
    flat_step()
    fig: dict[str, list[float]] = {k: [] for k in ("step", *EXTRAS)}
    for _ in range(repeat):
        # interleaved, so drift affects both: the flat buffer's cost (zeroing, accumulating in place)
        plain = per_call(step, 20)
        fig["step"].append(plain)
        fig["flat"].append(per_call(flat_step, 20) - plain)
        per_step = per_call(grad_norm, 500)
        grads.flush()
        fig["norm"].append(per_step)
        # the flush, per step of its window: a window of norms and the flush, less the norms alone
        fig["combine"].append(per_call(combine, 50) / cfg.spec.eval_every - per_step)
        fig["timer"].append(per_call(timer, 5000))
        # step 0 with the memory count, less a plain step, spread over the run's steps
        counted = statistics.median(per_call(counted_step, 1) for _ in range(5))
        fig["first"].append((counted - statistics.median(per_call(step, 1) for _ in range(5))) / cfg.steps)
    return fig


def main() -> None:
    from harness.data import data_root, missing_idx_files, stratified_split
    from harness.registry import models as model_registry
    from harness.sources import load
    from harness.specs import TrainSpec

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="timed repetitions (medians are printed; default 5)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--min-seconds", type=float, default=1.0, help="a repeat runs each kind of run in "
                        "interleaved rounds until the plain loop has taken about this long, and keeps the fastest "
                        "round of each (default 1.0)")
    parser.add_argument("--ablate", choices=("over", "all", "none"), default="over", help="which configurations "
                        f"to rerun with each extra switched off: those over the {TARGET * 100:.0f}%% target in every "
                        "repeat (default), all or none")
    parser.add_argument("--datasets", default="digits,mnist", help="comma-separated, of digits and mnist (default "
                        "both; mnist is left out when it is not in the data root)")
    parser.add_argument("--models", help="comma-separated MODEL-NORM to keep (default: those of "
                        + ", ".join(f"{m}-{n}" for m, n, _ in CONFIGS) + " whose model is registered)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    dev = torch.device(args.device)

    wanted, notes = args.datasets.split(","), []
    datasets = []
    if "digits" in wanted:
        datasets.append(("digits", stratified_split(load("digits"), 0.25, 0.1, 0),
                         TrainSpec(epochs=12, batch_size=32, lr=1e-3, eval_every=10)))
    if "mnist" in wanted:
        if missing_idx_files("mnist"):
            notes.append(f"left out mnist: not in the data root {data_root()} (set HARNESS_DATA_ROOT)")
        else:
            datasets.append(("mnist", stratified_split(load("mnist"), 0.1, 0.1, 0),
                             TrainSpec(epochs=1, batch_size=64, lr=1e-3, eval_every=20)))
    registered = set(model_registry.names())
    keep = set(args.models.split(",")) if args.models else None
    notes += [f"left out {m}-{n}: model not registered" for m, n, _ in CONFIGS if m not in registered]
    configs = [Config(d, split, spec, m, n, o) for d, split, spec in datasets for m, n, o in CONFIGS
               if m in registered and (keep is None or f"{m}-{n}" in keep)]

    print(f"device {args.device}, {torch.get_num_threads()} torch thread(s), torch {torch.__version__}; "
          f"{args.repeat} repeats after one warm-up, interleaved")
    for note in notes:
        print(note)

    def main_runs(cfg: Config) -> list[Run]:
        return [plain_run(cfg, dev), harness_run(cfg, dev, "harness", curve=False),
                harness_run(cfg, dev, "curve", curve=True)]

    for cfg in configs:  # warm up, then time the plain loop (the fastest of 3 short runs) to set the rounds
        rounds(cfg, main_runs(cfg), 0, record=False)
        seconds = math.inf
        for _ in range(3):
            net = fresh_model(cfg)
            seconds = min(seconds, timed(lambda cfg=cfg, net=net: plain_loop(net, cfg.split, cfg.spec, dev), dev)[0])
            if seconds > args.min_seconds / 2:
                break
        cfg.runs = max(1, math.ceil(args.min_seconds / seconds))
    for r in range(args.repeat):
        for cfg in configs:
            rounds(cfg, main_runs(cfg), r, record=True)

    w = 24
    print("\nTime per step, ms: whole call / steps, median (min to max) over the repeats; runs: interleaved rounds "
          "per repeat, the fastest kept. plain: the hand-written loop;\nharness: train() with the curve off; own: "
          "TrainResult.seconds_per_step; 2 evals: the two evaluations train() makes with the curve off (before the "
          "first step, after the last),\ntimed apart, ms per call of train(); same losses: every run's losses "
          "bit-identical to the plain loop's")
    print(f"{'dataset':8}{'model':14}{'steps':>6}{'runs':>5}{'plain wall':>{w}}{'harness wall':>{w}}"
          f"{'harness own':>{w}}{'plain CPU':>{w}}{'harness CPU':>{w}}{'2 evals wall ms':>{w}}{'same losses':>13}")
    for cfg in configs:
        n, t = cfg.steps, cfg.times
        print(f"{cfg.dataset:8}{cfg.name:14}{n:6d}{cfg.runs:5d}"
              + "".join(f"{median_spread(t[k], 1e3 / (1 if k.endswith('own') else n)):>{w}}" for k in
                        ("plain/wall", "harness/wall", "harness/own", "plain/cpu", "harness/cpu"))
              + f"{median_spread(t['evals/wall'], 1e3, '.1f'):>{w}}{'yes' if cfg.same_losses else 'NO':>13}")

    def overhead(p: float, h: float, e: float) -> float:
        return (h - e) / p - 1

    def curve_cost(p: float, h: float, c: float) -> float:
        return (c - h) / p

    def saved(p: float, h: float, a: float) -> float:
        return (h - a) / p

    print("\nShares of the plain loop's time, %, median (min to max) of the per-repeat ratios. overhead: "
          "harness / plain - 1 with the 2 evaluations subtracted; raw: without subtracting them;\n"
          "curve cost: (harness with the usual eval_every - harness with the curve off) / plain, "
          "for the evaluations listed (the initial one included)")
    print(f"{'dataset':8}{'model':14}{'overhead wall':>{w}}{'overhead CPU':>{w}}{'raw wall':>{w}}"
          f"{'curve cost wall':>{w}}{'curve cost CPU':>{w}}{'evals':>7}")
    over = []
    for cfg in configs:
        every = cfg.spec.eval_every
        n_evals = 1 + cfg.steps // every + (cfg.steps % every != 0)
        wall = cfg.ratios(overhead, "plain", "harness", "evals")
        if min(wall) > TARGET or args.ablate == "all":
            over.append(cfg)
        cells = [median_spread(xs, 100, fmt) for xs, fmt in (
            (wall, "+.1f"), (cfg.ratios(overhead, "plain", "harness", "evals", clock="cpu"), "+.1f"),
            (cfg.ratios(lambda p, h: h / p - 1, "plain", "harness"), "+.1f"),
            (cfg.ratios(curve_cost, "plain", "harness", "curve"), ".1f"),
            (cfg.ratios(curve_cost, "plain", "harness", "curve", clock="cpu"), ".1f"))]
        print(f"{cfg.dataset:8}{cfg.name:14}" + "".join(f"{c:>{w}}" for c in cells) + f"{n_evals:>7d}")

    if args.ablate != "none" and over:
        which = "every configuration" if args.ablate == "all" else f"configurations over {TARGET:.0%} in every repeat"
        print(f"\nWhere the overhead goes ({which}): train() rerun with one extra switched off, interleaved with "
              "plain and the full harness;\nthe time switching it off saves, as % of plain, median (min to max) of the "
              "repeats. grad norm: the flat gradient buffer, the per-step norm and the combining at each evaluation;\n"
              "memory count: the saved-tensor hooks and counting of step 0; rest: what remains with both off "
              "(timer, bookkeeping), 2 evaluations subtracted")
        for cfg in over:
            cfg.times = {}
        ablated = [f"without {p}" for p in PARTS]

        def ablation_runs(cfg: Config) -> list[Run]:
            return [plain_run(cfg, dev), harness_run(cfg, dev, "harness", curve=False),
                    *(harness_run(cfg, dev, f"without {p}", False, (p,)) for p in PARTS),
                    harness_run(cfg, dev, "without all", False, PARTS)]

        for cfg in over:
            rounds(cfg, ablation_runs(cfg), 0, record=False)
        for r in range(args.repeat):
            for cfg in over:
                rounds(cfg, ablation_runs(cfg), r, record=True)
        print(f"{'dataset':8}{'model':14}{'overhead':>{w}}" + "".join(f"{p:>{w}}" for p in PARTS)
              + f"{'both':>{w}}{'rest':>{w}}{'same losses':>13}")
        for cfg in over:
            cells = [median_spread(cfg.ratios(overhead, "plain", "harness", "evals"), 100, "+.1f"),
                     *(median_spread(cfg.ratios(saved, "plain", "harness", k), 100, ".1f")
                       for k in (*ablated, "without all")),
                     median_spread(cfg.ratios(overhead, "plain", "without all", "evals"), 100, "+.1f")]
            print(f"{cfg.dataset:8}{cfg.name:14}" + "".join(f"{c:>{w}}" for c in cells)
                  + f"{'yes' if cfg.same_losses else 'NO':>13}")

    print("\nThe harness's extras timed alone in a hot loop (a lower bound: warm caches): CPU us per step, median "
          "(min to max) of the repeats. step: a plain step (forward, backward,\nupdate, no read); flat: a step with "
          "the gradients in the flat buffer (zeroed, accumulated in place) less a plain step; grad norm: the step's "
          "norm;\ncombine: turning a window of them into per-step norms at an evaluation, per step; timer: two "
          "perf_counter calls; 1st step: the memory count of step 0 (saved-tensor hooks "
          "+ counting) less a plain step, spread over the run's steps; sum: the extras as % of a step")
    w = 20
    print(f"{'dataset':8}{'model':14}{'step':>{w}}{'flat':>{w}}{'grad norm':>{w}}{'combine':>{w}}{'timer':>{w}}"
          f"{'1st step':>{w}}{'sum %':>8}")
    for cfg in configs:
        fig = hot_loop_extras(cfg, dev, args.repeat)
        med = {k: statistics.median(v) for k, v in fig.items()}
        print(f"{cfg.dataset:8}{cfg.name:14}{median_spread(fig['step'], 1e6, '.0f'):>{w}}"
              + "".join(f"{median_spread(fig[k], 1e6, '.1f'):>{w}}" for k in EXTRAS)
              + f"{100 * sum(med[k] for k in EXTRAS) / med['step']:>8.1f}")


if __name__ == "__main__":
    main()
