"""One training run: the recipe of a suite applied to one variant and seed.

The data order comes from the seed's ``data-order`` stream, so every variant of a seed sees
the same batches in the same order. Time is measured per optimisation step (forward,
backward, update) and excludes the held-out evaluations, which are sampled every
``eval_every`` steps to build the accuracy curve and find the step at which the target
accuracy is first reached. Divergence (a non-finite loss, or a loss above
``divergence_factor`` times the first step's) ends the run and is recorded as its outcome.

Besides the curves, every run records the measurements the claims about normalization are about
(:func:`curve_measures` holds the pure functions): epochs to target, the area under the held-out
accuracy curve, the roughness of the loss curve, the gradient norm of every step (its median and
largest value), and the peak memory of a training step (measured by CUDA's allocator on a GPU;
on the CPU, counted: parameters, gradients, optimizer state and the activations autograd saves
for the backward pass of the first step).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from harness.data import as_tensor
from harness.energy import energy_counter
from harness.errors import ConfigError
from harness.seeding import torch_generator
from harness.specs import TrainSpec

# what every training run records, whatever its objective (TrainResult, diffusion.DenoiserTrainResult)
RUN_FIELDS = ("n_steps", "budget_steps", "steps_to_target", "epochs_to_target", "seconds_to_target",
              "seconds_per_step", "train_seconds", "diverged", "diverged_at", "peak_memory_bytes", "memory_method")


#: the keys of a training record measured in time or energy on the machine that ran it: they differ between
#: any two runs of the same cell (everything else in a record is reproducible)
TIMED_FIELDS = frozenset({"seconds_to_target", "seconds_per_step", "train_seconds", "cpu_seconds",
                          "cpu_seconds_to_target", "energy", "energy_to_target", "energy_counted_joules",
                          "energy_counted_to_target_joules", "batched_seconds_per_step"})


def run_summary(result: object) -> dict[str, float | int | bool | str | None]:
    """The :data:`RUN_FIELDS` of a training result and its compute (:class:`RunCompute`), JSON-ready."""
    compute: RunCompute | None = getattr(result, "compute", None)
    return {**{k: getattr(result, k) for k in RUN_FIELDS}, **(compute.summary() if compute is not None else {})}


@dataclass(frozen=True)
class RunCompute:
    """What a training run's optimisation steps cost (harness.energy says how each is obtained):
    ``cpu_seconds`` of the process over the timed steps, and up to the step the target was reached
    (``cpu_seconds_to_target``, None where it never was); ``step_flops``, one step's counted FLOPs (None
    where counting failed), times ``n_steps`` the run's and times ``steps_to_target`` the FLOPs to the
    target; the CPU packages' energy counters over the steps, joules (``energy_counted_joules`` and
    ``energy_counted_to_target_joules``), None where the machine has no readable counter (then
    harness.energy.account applies the declared power when the record is stored)."""

    cpu_seconds: float
    cpu_seconds_to_target: float | None
    step_flops: int | None
    n_steps: int
    steps_to_target: int | None
    energy_counted_joules: float | None = None
    energy_counted_to_target_joules: float | None = None

    def summary(self) -> dict[str, float | int | None]:
        flops = self.step_flops
        return {"cpu_seconds": self.cpu_seconds, "cpu_seconds_to_target": self.cpu_seconds_to_target,
                "step_flops": flops, "train_flops": None if flops is None else flops * self.n_steps,
                "flops_to_target": None if flops is None or self.steps_to_target is None
                else flops * self.steps_to_target,
                "energy_counted_joules": self.energy_counted_joules,
                "energy_counted_to_target_joules": self.energy_counted_to_target_joules}


@dataclass(frozen=True, eq=False)
class TrainResult:
    """What a training run measured.

    ``curve_steps`` (K,) and ``curve_val_accuracy`` (K,) sample the held-out accuracy (step 0
    is the untrained model); ``loss`` (n_steps,) is the training loss of every step and
    ``grad_norm`` (n_steps,) the L2 norm of all gradients of that step (before the update);
    ``steps_to_target`` / ``seconds_to_target`` / ``epochs_to_target`` are None when the target
    was never reached (a censored run, not a dropped one); ``budget_steps`` is the planned number
    of steps, which a diverged run does not finish. ``aulc``, ``loss_roughness`` and the gradient
    statistics are described in :func:`curve_measures`; ``peak_memory_bytes`` is one training
    step's peak, measured as ``memory_method`` says ("cuda-peak" or "counted"); ``compute`` the CPU
    time, FLOPs and counted energy of the steps (:class:`RunCompute`).
    """

    curve_steps: np.ndarray
    curve_val_accuracy: np.ndarray
    loss: np.ndarray
    n_steps: int
    steps_to_target: int | None
    seconds_to_target: float | None
    seconds_per_step: float
    train_seconds: float
    diverged: bool
    diverged_at: int | None
    final_val_accuracy: float
    grad_norm: np.ndarray
    budget_steps: int
    epochs_to_target: float | None
    peak_memory_bytes: int
    memory_method: str
    compute: RunCompute | None = None

    def summary(self) -> dict[str, float | int | bool | str | None]:
        """The scalar results, JSON-ready."""
        return {
            **run_summary(self),
            "final_val_accuracy": self.final_val_accuracy,
            **curve_measures(self.curve_steps, self.curve_val_accuracy, self.loss, self.grad_norm, self.budget_steps),
        }

    def arrays(self) -> dict[str, np.ndarray]:
        return {"curve_steps": self.curve_steps, "curve_val_accuracy": self.curve_val_accuracy, "loss": self.loss,
                "grad_norm": self.grad_norm}


def loss_curve_measures(curve_steps: np.ndarray, curve_val_loss: np.ndarray, loss: np.ndarray, grad_norm: np.ndarray,
                        budget_steps: int) -> tuple[float, dict[str, float]]:
    """For a run whose held-out curve is a loss (a denoiser's, a language model's; lower is better): the
    mean held-out loss over the planned budget (the area under the curve sampled at ``curve_steps``,
    trapezoids between the samples, divided by the budget; the steps a diverged run did not take count at
    the untrained model's, step 0, value; NaN for an empty budget), which rewards early progress, and
    :func:`curve_measures` but for the accuracy area (loss roughness and the gradient statistics)."""
    steps, vals = curve_steps.astype(np.float64), curve_val_loss.astype(np.float64)
    area = float(np.sum(np.diff(steps) * (vals[1:] + vals[:-1]) / 2)) if len(steps) > 1 else 0.0
    area += (budget_steps - steps[-1]) * vals[0]
    measures = curve_measures(curve_steps, np.zeros(len(steps)), loss, grad_norm, budget_steps)
    del measures["aulc"]  # an accuracy area
    return (float(area / budget_steps) if budget_steps > 0 else float("nan")), measures


def curve_measures(curve_steps: np.ndarray, curve_val_accuracy: np.ndarray, loss: np.ndarray,
                   grad_norm: np.ndarray, budget_steps: int) -> dict[str, float]:
    """Scalar summaries of one run's curves (shapes as in :class:`TrainResult`).

    * ``aulc``: area under the held-out accuracy curve over the planned budget, divided by the
      budget, in [0, 1], higher is better: the mean accuracy over training, which rewards early
      progress and needs no target (the steps a diverged run did not take count as accuracy 0);
    * ``loss_roughness``: the standard deviation of the step-to-step change of log(loss), lower
      is smoother; scale-free, and 0 for a loss that changes by the same factor every step;
      non-finite losses (a divergence) are left out;
    * ``grad_norm_median`` and ``grad_norm_max``: over the steps' gradient norms (finite ones).
    """
    steps = np.asarray(curve_steps, dtype=np.float64)
    acc = np.asarray(curve_val_accuracy, dtype=np.float64)
    area = float(np.sum(np.diff(steps) * (acc[1:] + acc[:-1]) / 2)) if len(steps) > 1 else 0.0
    logs = np.log(np.asarray(loss, dtype=np.float64)[np.isfinite(loss) & (np.asarray(loss) > 0)])
    g = np.asarray(grad_norm, dtype=np.float64)
    g = g[np.isfinite(g)]
    return {
        "aulc": area / budget_steps if budget_steps > 0 else float("nan"),
        "loss_roughness": float(np.diff(logs).std()) if len(logs) > 2 else float("nan"),
        "grad_norm_median": float(np.median(g)) if len(g) else float("nan"),
        "grad_norm_max": float(g.max()) if len(g) else float("nan"),
    }


def _accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    with torch.no_grad():
        # in float64: 285 of 300 is 0.95 exactly (a float32 mean reads 0.94999, short of a 95% target)
        return float((model(x).argmax(1) == y).double().mean())


def _optimizer(model: nn.Module, spec: TrainSpec) -> torch.optim.Optimizer:
    if spec.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=spec.lr, momentum=spec.momentum,
                               weight_decay=spec.weight_decay)
    return torch.optim.Adam(model.parameters(), lr=spec.lr, weight_decay=spec.weight_decay)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _tensor_bytes(tensors: Iterable[torch.Tensor], seen: set[int]) -> int:
    """Bytes of the tensors whose storage is not in ``seen`` (which gains them): shared storage
    (a weight autograd saves, a view) counts once."""
    total = 0
    for t in tensors:
        ptr = t.untyped_storage().data_ptr()
        if ptr not in seen:
            seen.add(ptr)
            total += t.untyped_storage().nbytes()
    return total


class _Gradients:
    """Clears the gradients before each backward pass and records the L2 norm of all of them
    after it, without synchronising: the norms are combined at :meth:`flush`, outside the timed
    steps.

    The first step does what a hand-written loop does (``zero_grad(set_to_none=True)``, then
    per-tensor norms in one ``torch._foreach_norm``). From the second step on, where every
    trainable parameter received a gradient in the first step and all share one dtype and
    device, the gradients become views of one flat buffer: clearing them is one ``zero_`` and
    their norm one ``vector_norm``, where the per-tensor path costs a dispatch per tensor (about
    20 us a step on the digits MLP, 3% of its step). Backward then accumulates into the zeroed
    views in place, which gives the same values as a fresh gradient (0 + g == g), so the
    losses stay bit-identical to the hand-written loop's (benchmarks/training_overhead.py checks
    it). One difference remains, for models that use a parameter in some steps only: such a
    parameter gets a zero gradient in the steps that skip it, where the loop would leave it
    None, and optimizers with momentum or weight decay then still move it; a parameter unused
    in the first step keeps the per-tensor path for the whole run.
    """

    def __init__(self, params: list[torch.Tensor], opt: torch.optim.Optimizer) -> None:
        self._params = params
        self._opt = opt
        self._flat: torch.Tensor | None = None
        self._steps = 0
        self._pending: list[torch.Tensor | Sequence[torch.Tensor]] = []  # per step: the norm, or per-tensor norms
        self._done: list[np.ndarray] = []

    def zero(self) -> None:
        """Before a backward pass: no gradient of the last step is left."""
        if self._flat is not None:
            self._flat.zero_()
        elif not (self._steps == 1 and self._to_flat()):
            self._opt.zero_grad(set_to_none=True)

    def _to_flat(self) -> bool:
        grads = [p.grad for p in self._params]
        if not grads or any(g is None or g.layout != torch.strided for g in grads):
            return False
        if len({(g.dtype, g.device) for g in grads if g is not None}) != 1:
            return False
        like = grads[0]
        assert like is not None
        for p in self._params:  # free the old gradients first, so a CUDA peak never holds both
            p.grad = None
        flat = torch.zeros(sum(p.numel() for p in self._params), dtype=like.dtype, device=like.device)
        offset = 0
        for p in self._params:
            p.grad = flat[offset:offset + p.numel()].view_as(p)
            offset += p.numel()
        self._flat = flat
        return True

    def record(self) -> None:
        """After a backward pass: queue this step's norm."""
        self._steps += 1
        if self._flat is not None:
            self._pending.append(torch.linalg.vector_norm(self._flat))
        else:
            self._pending.append(torch._foreach_norm([p.grad for p in self._params if p.grad is not None]))

    def flush(self) -> None:
        if not self._pending:
            return
        if all(isinstance(n, torch.Tensor) for n in self._pending):  # the usual window: one stack
            total = torch.stack(self._pending).double()  # type: ignore[arg-type]
        else:  # a window with per-tensor norms (the first step, or a model off the flat path)
            total = torch.stack([
                n.double() if isinstance(n, torch.Tensor)
                else torch.linalg.vector_norm(torch.stack(list(n)).double()) if len(n)
                else torch.zeros((), dtype=torch.float64, device=self._params[0].device)
                for n in self._pending])
        self._done.append(total.cpu().numpy())
        self._pending.clear()

    def values(self) -> np.ndarray:
        """(steps,) float64, every step so far."""
        self.flush()
        return np.concatenate(self._done) if self._done else np.zeros(0)


class _SavedTensors:
    """Counts the tensors autograd saves for the backward pass while active (one step's activations)."""

    def __init__(self) -> None:
        self.tensors: list[torch.Tensor] = []
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, lambda t: t)

    def _pack(self, t: torch.Tensor) -> torch.Tensor:
        self.tensors.append(t)
        return t

    def __enter__(self) -> _SavedTensors:
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._hooks.__exit__(*exc)


def _counted_peak(model: nn.Module, opt: torch.optim.Optimizer, saved: list[torch.Tensor]) -> int:
    """Parameters, gradients and optimizer state after a step, plus the activations it saved."""
    seen: set[int] = set()
    params = list(model.parameters())
    state = [v for st in opt.state.values() for v in st.values() if isinstance(v, torch.Tensor)]
    buffers = list(model.buffers())
    return _tensor_bytes([*params, *buffers, *(p.grad for p in params if p.grad is not None), *state, *saved], seen)


@dataclass(frozen=True, eq=False)
class Fit:
    """What :func:`fit` measured: the held-out curve (``steps``, ``curve``), the loss and gradient
    norm of every step, when the target was first reached (step, training seconds) or None, the
    step the run diverged at or None, and one step's peak memory."""

    steps: np.ndarray  # (K,) int64
    curve: np.ndarray  # (K,) float64, the held-out measure at those steps
    loss: np.ndarray  # (n_steps,) float64
    grad_norm: np.ndarray  # (n_steps,) float64
    n_steps: int
    budget_steps: int
    per_epoch: int
    to_target: tuple[int, float] | None
    diverged_at: int | None
    train_seconds: float
    peak_memory_bytes: int
    memory_method: str
    cpu_seconds: float = 0.0
    cpu_to_target: float | None = None
    step_flops: int | None = None
    energy: tuple[float, float | None] | None = None  # counted joules: the run's and to the target

    @property
    def diverged(self) -> bool:
        return self.diverged_at is not None

    def result_fields(self) -> dict[str, Any]:
        """The fields every training result takes from the loop (:data:`RUN_FIELDS`, the curve's
        steps, the losses and gradient norms); each objective adds its held-out measure."""
        reached = self.to_target
        return {
            "curve_steps": self.steps, "loss": self.loss, "grad_norm": self.grad_norm, "n_steps": self.n_steps,
            "budget_steps": self.budget_steps, "steps_to_target": None if reached is None else reached[0],
            "seconds_to_target": None if reached is None else reached[1],
            "epochs_to_target": None if reached is None else reached[0] / self.per_epoch,
            "seconds_per_step": self.train_seconds / max(self.n_steps, 1), "train_seconds": self.train_seconds,
            "diverged": self.diverged, "diverged_at": self.diverged_at,
            "peak_memory_bytes": self.peak_memory_bytes, "memory_method": self.memory_method,
            "compute": self.compute(),
        }

    def compute(self) -> RunCompute:
        """What the steps cost (:class:`RunCompute`)."""
        reached = self.to_target
        joules, joules_to_target = self.energy if self.energy is not None else (None, None)
        return RunCompute(self.cpu_seconds, self.cpu_to_target, self.step_flops, self.n_steps,
                          None if reached is None else reached[0], joules, joules_to_target)


def fit(model: nn.Module, x: torch.Tensor, y: torch.Tensor | None, spec: TrainSpec, seed: int, dev: torch.device,
        batch_loss: Callable[[nn.Module, torch.Tensor, torch.Tensor | None], torch.Tensor],
        held_out: Callable[[nn.Module], float], reached: Callable[[float], bool],
        on_step: Callable[[int, int], None] | None = None, warmup_steps: int = 0) -> Fit:
    """The training loop every objective shares: ``spec``'s optimizer over ``spec.epochs`` epochs
    of the seed's ``data-order`` stream (batches of ``spec.batch_size``, the last partial one
    dropped), minimising ``batch_loss(model, x[idx], y[idx] or None)`` (a scalar tensor).

    ``held_out(model)`` (a float; it may leave the model in eval mode) is measured before the
    first step, every ``spec.eval_every`` steps and after the last; the target is reached the
    first time ``reached(value)`` holds. Time is measured per step (forward, backward, update)
    and excludes those measurements. Divergence (a non-finite loss, or one above
    ``spec.divergence_factor`` times the first step's) ends the run. ``x`` and ``y`` are on
    ``dev``, where the model is. ``warmup_steps`` > 0 raises the learning rate linearly from
    ``spec.lr / warmup_steps`` at the first step to ``spec.lr`` at step ``warmup_steps`` (a
    transformer's warm-up), constant after."""
    order = torch_generator(seed, "data-order")
    opt = _optimizer(model, spec)
    # drop_last: a final batch of one example would make BatchNorm fail in training mode
    per_epoch = len(x) // spec.batch_size
    if per_epoch == 0:
        raise ConfigError(f"batch_size {spec.batch_size} is larger than the {len(x)} training examples",
                          hint="use a smaller batch_size")
    total = per_epoch * spec.epochs
    steps, curve = [0], [held_out(model)]
    losses: list[float] = []
    step, train_seconds, cpu_seconds = 0, 0.0, 0.0
    to_target: tuple[int, float] | None = (0, 0.0) if reached(curve[0]) else None
    cpu_to_target: float | None = 0.0 if to_target is not None else None
    # the CPU packages' energy counters, read around each step outside its timer (None: none readable)
    meter = energy_counter()
    joules = 0.0
    joules_to_target: float | None = 0.0 if to_target is not None else None
    diverged_at: int | None = None
    norms = _Gradients([p for p in model.parameters() if p.requires_grad], opt)
    peak_memory = 0
    counted = dev.type != "cuda"  # the CPU has no allocator peak: count the first step instead
    if not counted:  # the peak of a step, less the data held on the device throughout
        torch.cuda.reset_peak_memory_stats(dev)
        data_bytes = torch.cuda.memory_allocated(dev) - _tensor_bytes([*model.parameters(), *model.buffers()], set())

    # The step does what a hand-written loop does, plus one op (the gradients' norm, read later;
    # see _Gradients) and the timer; the mode is set once, and again after each held-out evaluation
    # (benchmarks/training_overhead.py measures the difference).
    model.train()
    for _ in range(spec.epochs):
        perm = torch.randperm(len(x), generator=order).to(dev)
        for i in range(per_epoch):
            idx = perm[i * spec.batch_size:(i + 1) * spec.batch_size]
            e0 = meter.joules() if meter is not None else 0.0
            c0 = time.process_time()
            t0 = time.perf_counter()
            if step == 0 and counted:  # count what the first step holds (see _counted_peak)
                with _SavedTensors() as saved:
                    loss = batch_loss(model, x[idx], None if y is None else y[idx])
            else:
                loss = batch_loss(model, x[idx], None if y is None else y[idx])
            norms.zero()
            loss.backward()
            norms.record()
            if step < warmup_steps:
                for group in opt.param_groups:
                    group["lr"] = spec.lr * (step + 1) / warmup_steps
            elif step == warmup_steps > 0:
                for group in opt.param_groups:
                    group["lr"] = spec.lr
            opt.step()
            value = loss.item()  # synchronises, so the timing covers the whole step
            train_seconds += time.perf_counter() - t0
            cpu_seconds += time.process_time() - c0
            if meter is not None:
                joules += meter.joules() - e0
            if step == 0 and counted:
                peak_memory = _counted_peak(model, opt, saved.tensors)
                saved.tensors.clear()
            losses.append(value)
            step += 1
            if not math.isfinite(value) or value > spec.divergence_factor * max(losses[0], 1e-8):
                diverged_at = step
                break
            if step % spec.eval_every == 0 or step == total:
                steps.append(step)
                curve.append(held_out(model))
                model.train()
                norms.flush()  # outside the timed steps
                if to_target is None and reached(curve[-1]):
                    to_target = (step, train_seconds)
                    cpu_to_target, joules_to_target = cpu_seconds, joules
            if on_step is not None:
                on_step(step, total)
        if diverged_at is not None:
            break
    _sync(dev)
    if not counted:
        peak_memory = int(torch.cuda.max_memory_allocated(dev)) - data_bytes
    # after the last step, so nothing the training draws (a denoiser's noise) is drawn for it first
    flops = _step_flops(model, batch_loss, x[:spec.batch_size], None if y is None else y[:spec.batch_size])
    model.eval()
    return Fit(np.asarray(steps, dtype=np.int64), np.asarray(curve, dtype=np.float64),
               np.asarray(losses, dtype=np.float64), norms.values(), step, total, per_epoch, to_target, diverged_at,
               train_seconds, peak_memory, "counted" if counted else "cuda-peak", cpu_seconds, cpu_to_target, flops,
               None if meter is None else (joules, joules_to_target))


def _step_flops(model: nn.Module, batch_loss: Callable[[nn.Module, torch.Tensor, torch.Tensor | None], torch.Tensor],
                x: torch.Tensor, y: torch.Tensor | None) -> int | None:
    """One step's counted FLOPs (harness.energy.step_flops), None where the model cannot be counted (a
    model that cannot be copied, or an operation the counter refuses): the run's other measurements stand."""
    from harness.energy import step_flops

    try:
        return step_flops(model, batch_loss, x, y)
    except (RuntimeError, TypeError, NotImplementedError, copy.Error):
        return None


def _cross_entropy(model: nn.Module, xb: torch.Tensor, yb: torch.Tensor | None) -> torch.Tensor:
    return F.cross_entropy(model(xb), yb)  # type: ignore[arg-type]


def train(model: nn.Module, split: Any, spec: TrainSpec, seed: int, device: str = "cpu",
          on_step: Callable[[int, int], None] | None = None, warmup_steps: int = 0) -> TrainResult:
    """Train a classifier in place on ``split.train`` (cross-entropy; held-out accuracy on
    ``split.val``, target ``spec.target_accuracy``); ``on_step(step, total)`` reports progress.
    ``split`` is a harness.data.Split, or any split whose parts have inputs ``x`` (images, or a
    text task's tokens) and labels ``y``; ``warmup_steps`` as :func:`fit`'s."""
    dev = torch.device(device)
    model.to(dev)
    x, xv = as_tensor(split.train.x, dev), as_tensor(split.val.x, dev)
    y, yv = as_tensor(split.train.y, dev), as_tensor(split.val.y, dev)  # type: ignore[arg-type]
    r = fit(model, x, y, spec, seed, dev, _cross_entropy, lambda m: _accuracy(m, xv, yv),
            lambda acc: acc >= spec.target_accuracy, on_step, warmup_steps)
    return TrainResult(**r.result_fields(), curve_val_accuracy=r.curve,
                       final_val_accuracy=float("nan") if r.diverged else float(r.curve[-1]))
