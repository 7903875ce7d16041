"""What a trained model costs at inference: latency, throughput, peak memory, parameters and FLOPs.

Pure measurement of a model in eval mode on example inputs; no task knowledge (a task picks the inputs:
harness.tasks.classify.evaluation and the text and language-model tasks). :func:`measure` times ``repeats``
forward passes at batch 1 and at ``batch_size`` after a warm-up (under ``torch.no_grad``, CUDA synchronised
around every timed pass on a GPU), and reports each timed repeat, so a report's resampling of the repeats
(and of the seeds) gives the intervals. Timings are wall-clock on the machine that ran them, with whatever
else it ran at the time (another worker of the same run): they move from machine to machine and from run to
run (the metrics are ``wall_clock``, harness.metricspec).

* Latency: seconds of one forward pass of 1 example and of ``batch_size`` examples, per repeat.
* Throughput: ``batch_size`` / the large batch's latency, examples per second, per repeat.
* Peak memory of one large-batch forward pass, bytes above what was allocated before it (the parameters,
  buffers and inputs are not counted): on a GPU, the CUDA allocator's peak (``torch.cuda.max_memory_allocated``,
  measured per repeat); on a CPU, counted by :func:`live_bytes`, which tracks the bytes of every tensor storage
  the pass allocates until it is freed (one counted pass: the count is exact and the same each repeat; what
  the allocator or the operating system keeps besides is not in it).
* Parameters: the number of parameter elements (buffers such as BatchNorm's running statistics excluded).
* FLOPs per example: ``torch.utils.flop_counter.FlopCounterMode``'s count of one large-batch forward pass
  divided by the batch (a multiply-add counts 2). It counts matrix products and convolutions (and attention's
  products); it does not count normalization, activations, pooling, softmax or any other elementwise work,
  so a norm's own arithmetic is not in it and folding BatchNorm does not change it.
"""

from __future__ import annotations

import time
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from harness.metricspec import INF, Metric

if TYPE_CHECKING:
    import torch
    from torch import nn

WARMUP = 3  # untimed passes first: the first calls allocate and pick kernels

# the cost metrics (group "cost"), registered as harness.metrics entry points; each the mean of a per-repeat
# array, so a report resamples the repeats (and the seeds). Timings are wall-clock; memory, parameters and
# FLOPs are counted (the same on every repeat and seed of an architecture, so their intervals collapse).
LATENCY_B1 = Metric("latency_b1", "latency, batch 1", "latency of one forward pass of one example, ms", False,
                    (0.0, INF), "cost", "ms", 1000.0, 3, per_example="latency_b1", wall_clock=True)
LATENCY_BATCH = Metric("latency_batch", "latency, large batch", "latency of one forward pass of the large batch, ms",
                       False, (0.0, INF), "cost", "ms", 1000.0, 2, per_example="latency_batch", wall_clock=True)
THROUGHPUT = Metric("throughput", "throughput", "examples per second at the large batch", True, (0.0, INF), "cost",
                    "examples/s", 1.0, 0, per_example="throughput", compared=False, wall_clock=True)
INFERENCE_MEMORY = Metric("inference_memory", "inference peak memory", "peak memory of one large-batch forward pass "
                          "beyond the parameters and inputs, MiB", False, (0.0, INF), "cost", "MiB", 2.0 ** -20, 3,
                          per_example="peak_memory")
PARAMETERS = Metric("parameters", "parameters", "number of parameters", False, (0.0, INF), "cost", "parameters",
                    1.0, 0, per_example="parameters", compared=False)
FLOPS = Metric("flops", "FLOPs per example", "FLOPs of a forward pass per example (matrix products and "
               "convolutions as torch's FlopCounterMode counts them), thousands", False, (0.0, INF), "cost",
               "kFLOPs", 1e-3, 1, per_example="flops", compared=False)
BN_FOLDED = Metric("bn_folded", "BatchNorm folded", "BatchNorm layers folded into the convolution or linear layer "
                   "before them (harness.folding)", True, (0.0, INF), "cost", "layers", 1.0, 0, per_example="folded",
                   compared=False)
METRICS = ("latency_b1", "latency_batch", "throughput", "inference_memory", "parameters", "flops")
COMPARED = ("latency_b1", "latency_batch", "inference_memory")  # the norm's cost at inference, between variants

#: the arrays (and summary keys) of a cost cell measured in time: they differ between any two runs of the cell
TIMED = frozenset({"latency_b1", "latency_batch", "throughput"})
#: the per-repeat arrays a measurement stores (the metrics above average them)
ARRAYS = ("latency_b1", "latency_batch", "throughput", "peak_memory", "parameters", "flops")


@dataclass(frozen=True)
class InferenceCost:
    """One model's measured inference cost. Per-repeat arrays, each (repeats,): ``latency_b1`` and
    ``latency_batch`` (seconds per forward pass of 1 and of ``batch_size`` examples; lower is better),
    ``throughput`` (examples per second at ``batch_size``; higher is better), ``peak_memory`` (bytes of one
    large-batch pass; lower is better). Exact counts: ``parameters`` (elements) and ``flops`` (per example,
    :class:`FlopCounterMode`'s count). ``memory_method`` says how memory was measured ("cuda-peak" or
    "counted")."""

    latency_b1: np.ndarray
    latency_batch: np.ndarray
    throughput: np.ndarray
    peak_memory: np.ndarray
    parameters: int
    flops: float
    batch_size: int
    memory_method: str

    def arrays(self) -> dict[str, np.ndarray]:
        """The stored per-repeat arrays (float64, (repeats,) each; parameters and FLOPs repeated)."""
        r = len(self.latency_b1)
        return {"latency_b1": self.latency_b1, "latency_batch": self.latency_batch, "throughput": self.throughput,
                "peak_memory": self.peak_memory, "parameters": np.full(r, float(self.parameters)),
                "flops": np.full(r, float(self.flops))}


def count_parameters(model: nn.Module) -> int:
    """The number of parameter elements of ``model`` (each shared parameter once; buffers excluded)."""
    return sum(p.numel() for p in model.parameters())


def count_flops(model: nn.Module, x: Any) -> int:
    """FLOPs of one forward pass of ``model`` on ``x`` as FlopCounterMode counts them (matrix products,
    convolutions, attention; 2 per multiply-add), under ``torch.no_grad``."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    return int(counter.get_total_flops())


def live_bytes() -> Any:
    """A fresh ``LiveBytes`` dispatch mode (the class is made on first use, so importing this module, as listing
    the metrics does, does not import torch)."""
    return _live_bytes_class()()


def _live_bytes_class() -> type:
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_flatten

    class LiveBytes(TorchDispatchMode):
        """Counts, inside its ``with`` block, the bytes of tensor storages the operations allocate, until
        each is freed: ``live`` now and ``peak`` the most at once. A storage an operation's output shares
        with one of its inputs (a view, an in-place result) is not new, nor is any allocated before the
        block (parameters, inputs): only what the block's operations make counts."""

        def __init__(self) -> None:
            super().__init__()
            self.live = 0
            self.peak = 0
            self._counted: set[int] = set()  # data pointers of the storages counted and not yet freed

        def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
            import torch

            out = func(*args, **(kwargs or {}))
            read = {t.untyped_storage().data_ptr() for t in tree_flatten((args, kwargs or {}))[0]
                    if isinstance(t, torch.Tensor)}
            for t in tree_flatten(out)[0]:
                if not isinstance(t, torch.Tensor):
                    continue
                storage = t.untyped_storage()
                ptr, n = storage.data_ptr(), storage.nbytes()
                if n == 0 or ptr in read or ptr in self._counted:
                    continue
                self._counted.add(ptr)
                self.live += n
                self.peak = max(self.peak, self.live)
                weakref.finalize(storage, self._freed, ptr, n)
            return out

        def _freed(self, ptr: int, n: int) -> None:
            if ptr in self._counted:
                self._counted.discard(ptr)
                self.live -= n

    return LiveBytes


def peak_memory(model: nn.Module, x: Any, device: torch.device) -> tuple[int, str]:
    """(peak bytes of one forward pass of ``model`` on ``x`` above what was allocated before, how it was
    measured): the CUDA allocator's peak on a GPU ("cuda-peak"), counted by :func:`live_bytes` elsewhere
    ("counted")."""
    import torch

    with torch.no_grad():
        if device.type == "cuda":
            torch.cuda.synchronize(device)
            before = torch.cuda.memory_allocated(device)
            torch.cuda.reset_peak_memory_stats(device)
            model(x)
            torch.cuda.synchronize(device)
            return int(torch.cuda.max_memory_allocated(device) - before), "cuda-peak"
        with live_bytes() as counter:
            out = model(x)
            del out  # the output is freed after the pass; the peak already holds it
        return counter.peak, "counted"


def _timed(model: nn.Module, x: Any, device: torch.device) -> float:
    """Seconds of one forward pass (the GPU's work finished before the clock stops)."""
    import torch

    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda _: None)
    sync(device)
    start = time.perf_counter()
    model(x)
    sync(device)
    return time.perf_counter() - start


def measure(model: nn.Module, x: torch.Tensor, repeats: int, device: str = "cpu",
            warmup: int = WARMUP) -> InferenceCost:
    """The inference cost of ``model`` (in eval mode; left so) on inputs ``x`` (B, ...), B the large batch
    (at least 1; ``x[:1]`` is the batch of 1), on ``device``: ``repeats`` timed passes of each batch after
    ``warmup`` untimed ones, interleaved (batch 1, then batch B, per repeat) so that a slow spell of the
    machine falls on both."""
    import torch

    if model.training:
        raise RuntimeError("measure() needs the model in eval mode; call model.eval() first")
    if repeats < 1 or len(x) < 1:
        raise ValueError(f"measure() needs repeats >= 1 and at least one input, got {repeats} and {len(x)}")
    dev = torch.device(device)
    one = x[:1]
    b1, big, mem = np.empty(repeats), np.empty(repeats), np.empty(repeats)
    with torch.no_grad():
        for _ in range(warmup):
            model(one)
            model(x)
        for i in range(repeats):
            b1[i] = _timed(model, one, dev)
            big[i] = _timed(model, x, dev)
    if dev.type == "cuda":  # the allocator's peak can vary with what it holds cached: measured per repeat
        measured = [peak_memory(model, x, dev) for _ in range(repeats)]
        mem[:] = [m for m, _ in measured]
        method = measured[0][1]
    else:  # counted: the same every pass
        count, method = peak_memory(model, x, dev)
        mem[:] = count
    return InferenceCost(b1, big, len(x) / big, mem, count_parameters(model), count_flops(model, x) / len(x),
                         len(x), method)


def batch_of(x: torch.Tensor, batch_size: int) -> torch.Tensor:
    """``batch_size`` inputs from ``x`` (N, ...): its first ``batch_size``, or ``x`` repeated to that many
    when N is smaller (what is timed does not depend on which inputs they are)."""
    if len(x) < 1:
        raise ValueError("no inputs to measure the inference cost on")
    reps = -(-batch_size // len(x))
    return x.repeat(reps, *([1] * (x.dim() - 1)))[:batch_size] if reps > 1 else x[:batch_size]


def cost_arrays(model: nn.Module, x: torch.Tensor, fold: bool, batch_size: int, repeats: int,
                device: str = "cpu", unfolded: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """The per-repeat arrays of one cost condition (:data:`ARRAYS`, each (repeats,)) of ``model`` (eval mode)
    on ``batch_size`` inputs from ``x`` (:func:`batch_of`), plus ``folded`` (repeats,): the number of BatchNorm
    layers folded (harness.folding.fold_batchnorm, on up to 64 of the inputs) when ``fold``, else 0, and
    ``threads`` (1,): torch's thread count during the measurement. A fold that finds nothing to fold
    measures the same model again; where ``unfolded`` (this model's arrays without folding, measured in the
    same call) is given, it gives those instead, so nothing folded saves exactly nothing."""
    from harness.folding import fold_batchnorm

    batch = batch_of(x, batch_size)
    n_folded = 0
    if fold:
        folded, n_folded = fold_batchnorm(model, batch[:min(len(batch), 64)])
        if n_folded == 0 and unfolded is not None:
            return {**unfolded, "folded": np.zeros(repeats)}  # the same model: the same numbers
        model = folded.eval()
    import torch

    return {**measure(model, batch, repeats, device).arrays(), "folded": np.full(repeats, float(n_folded)),
            "threads": np.array([float(torch.get_num_threads())])}


def cost_outcome(model: nn.Module, x: torch.Tensor, cond: Any, settings: tuple[int, int], device: str,
                 measured: dict[str, dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """A task's evaluation of one cost condition ``cond`` (``cost`` or ``cost:fold=True``): :func:`cost_arrays`
    of ``model`` on its inputs ``x``, ``settings`` the large batch and the repeats. ``measured`` (condition key
    -> arrays) is the task's record of this model's cost conditions so far in one evaluation call, so a fold
    that finds nothing to fold repeats the unfolded arrays; this adds ``cond``'s."""
    batch_size, repeats = settings
    out = cost_arrays(model, x, bool(dict(cond.params).get("fold", False)), batch_size, repeats, device,
                      unfolded=measured.get("cost"))
    measured[cond.key] = out
    return out


def conditions(suite: Any) -> list[Any]:
    """The cost conditions of ``suite``'s battery when its ``evaluation.cost`` is on: ``cost`` (the model as
    trained) and, where a variant may hold BatchNorm (norm ``batch``, or a model kept ``as-built``),
    ``cost:fold=True`` (its BatchNorm folded): a suite whose norms cannot fold gets no folded condition,
    which would only repeat the unfolded numbers."""
    from harness.specs import cost

    if not suite.evaluation.cost:
        return []
    # "as-built" is harness.normswap.AS_BUILT, named here so that listing a suite's conditions imports no torch
    may_fold = any(v.norm in ("batch", "as-built") for v in suite.variants)
    return [cost(), *([cost(fold=True)] if may_fold else [])]


def eval_params(suite: Any) -> dict[str, Any]:
    """What joins a cost cell's key beside its condition: the large batch and the number of repeats."""
    ev = suite.evaluation
    return {"cost_batch_size": ev.cost_batch_size, "cost_repeats": ev.cost_repeats}


def summary(arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    """A cost cell's stored summary: the number of BatchNorm layers folded, the torch threads it ran on, the
    median latencies (seconds) and throughput, and the counted memory (bytes), parameters and FLOPs."""
    return {"folded": int(arrays["folded"][0]), "threads": int(arrays["threads"][0]),
            "latency_b1": float(np.median(arrays["latency_b1"])),
            "latency_batch": float(np.median(arrays["latency_batch"])),
            "throughput": float(np.median(arrays["throughput"])),
            "peak_memory": float(np.median(arrays["peak_memory"])),
            "parameters": int(arrays["parameters"][0]), "flops": float(arrays["flops"][0])}


def metrics(cond: Any) -> tuple[str, ...]:
    """The metrics a report estimates on a cost condition: every cost metric, and on the folded one the number
    of BatchNorm layers folded."""
    return (*METRICS, "bn_folded") if dict(cond.params).get("fold") else METRICS


def compared(cond: Any) -> tuple[str, ...]:
    """The metrics compared between paired variants: latency and memory of the models as trained (the norm's
    cost at inference); none on the folded condition (what folding saves is read against the unfolded one)."""
    return COMPARED if not dict(cond.params).get("fold") else ()
