"""Training compute and energy: the FLOPs of a training step, counted, and the energy of a run, from the
machine's energy counters where they are readable, otherwise from a declared power figure.

How each number is obtained, so a report can say it beside the number:

* **FLOPs** (:func:`step_flops`): one optimisation step's forward and backward pass run once more, after
  training, on a copy of the model under ``torch.utils.flop_counter.FlopCounterMode``, which counts the
  floating-point operations of matrix products and convolutions (a multiply and an add count two) and
  leaves out elementwise work: normalization, activations, the loss and the optimizer's update. A run's
  FLOPs are that count times its steps; the held-out evaluations are not counted (as they are not timed).
* **CPU time**: the process's CPU time (``time.process_time``: every thread of the process, user and system)
  over the same timed steps as the wall time.
* **Energy**, ``energy_method`` says which:

  - ``"rapl"``: the CPU packages' cumulative energy counters (Linux powercap, ``intel-rapl:N/energy_uj``,
    which AMD processors expose too), read before and after every step; they measure the whole package,
    so other work on the machine during the steps is counted too;
  - ``"declared"``: a declared power per busy core times the run's CPU time (``harness run --power-watts``;
    :data:`DEFAULT_WATTS_PER_CORE` when none is declared). It is an estimate, not a measurement: on it,
    energy compares between variants exactly as CPU time does.

  The powercap counters are often readable only by root (and absent in containers and on other systems);
  then the declared figure applies. A GPU's energy is not measured: on a GPU the declared figure times the
  CPU time covers the host alone, and the report says so.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

POWERCAP = Path("/sys/class/powercap")
#: Watts per busy core when none is declared: a desktop or server CPU's rated power (its TDP, 65-250 W)
#: divided by its cores (8-64) lies between about 4 and 12 W; this is that range's middle, an assumption.
DEFAULT_WATTS_PER_CORE = 8.0
METHODS = ("rapl", "declared")


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


class EnergyCounter:
    """The summed energy counters of a machine's CPU packages (``root``: the powercap folder), in joules
    since this object was made; each package's counter wraps at its ``max_energy_range_uj``, which
    :meth:`joules` undoes as long as it is read at least once per wrap (minutes at any real power).
    Made by :func:`energy_counter`, which returns None where no counter is readable."""

    def __init__(self, zones: list[tuple[Path, int]]) -> None:
        self._zones = zones  # (energy_uj file, its wrap range in microjoules)
        self._last = [self._raw(i) for i in range(len(zones))]
        self._total_uj = 0

    def _raw(self, i: int) -> int:
        value = _read_int(self._zones[i][0])
        if value is None:
            raise OSError(f"the energy counter {self._zones[i][0]} can no longer be read")
        return value

    def joules(self) -> float:
        """Joules used by the packages since the counter was made (summed over packages)."""
        for i, (_, wrap) in enumerate(self._zones):
            now = self._raw(i)
            delta = now - self._last[i]
            self._total_uj += delta if delta >= 0 else delta + wrap  # the counter wrapped once
            self._last[i] = now
        return self._total_uj / 1e6


def energy_counter(root: Path = POWERCAP) -> EnergyCounter | None:
    """The CPU packages' energy counter under ``root``, or None where there is none that can be read.
    The packages are the top-level zones (``intel-rapl:0``, ``intel-rapl:1``; their sub-zones, such as a
    package's cores ``intel-rapl:0:0``, are parts of them and would count twice)."""
    zones = []
    for zone in sorted(root.glob("intel-rapl:*")) if root.is_dir() else []:
        if zone.name.count(":") != 1:
            continue
        energy, wrap = _read_int(zone / "energy_uj"), _read_int(zone / "max_energy_range_uj")
        if energy is None or wrap is None or wrap <= 0:
            return None  # a package we cannot read would leave part of the machine out
        zones.append((zone / "energy_uj", wrap))
    return EnergyCounter(zones) if zones else None


def step_flops(model: Any, batch_loss: Callable[[Any, Any, Any], Any], x: Any, y: Any) -> int:
    """FLOPs of one training step's forward and backward pass (matrix products and convolutions; module
    docstring) of ``model`` on the batch ``x`` (labels ``y`` or None), counted on a copy in training mode so
    the model itself, its gradients and BatchNorm's running statistics are left as they were.
    ``batch_loss(model, x, y)`` is the scalar loss the training loop minimises."""
    from torch.utils.flop_counter import FlopCounterMode

    twin = copy.deepcopy(model).train()
    counter = FlopCounterMode(display=False)
    with counter:
        batch_loss(twin, x, y).backward()
    return int(counter.get_total_flops())


@dataclass(frozen=True)
class Energy:
    """A run's energy in joules (``total``, and ``to_target`` up to the step the target was reached, or None
    where it never was) and how it was obtained (``method``: one of :data:`METHODS`; ``watts_per_core``: the
    declared figure, None for counters)."""

    total: float
    to_target: float | None
    method: str
    watts_per_core: float | None = None

    def summary(self) -> dict[str, Any]:
        """The keys a training record stores."""
        return {"energy": self.total, "energy_to_target": self.to_target,
                "energy_method": self.method, "declared_watts_per_core": self.watts_per_core}


def account(summary: dict[str, Any], watts_per_core: float | None) -> Energy | None:
    """The energy of a training run from its stored summary: the counters' joules where the loop read them
    (``energy_counted_joules``), else ``watts_per_core`` (or :data:`DEFAULT_WATTS_PER_CORE`) times its CPU
    seconds; None for a record without CPU time (a loaded model, an earlier version's record)."""
    if summary.get("energy_counted_joules") is not None:
        return Energy(float(summary["energy_counted_joules"]), summary.get("energy_counted_to_target_joules"),
                      "rapl")
    cpu = summary.get("cpu_seconds")
    if cpu is None:
        return None
    watts = DEFAULT_WATTS_PER_CORE if watts_per_core is None else float(watts_per_core)
    to_target = summary.get("cpu_seconds_to_target")
    return Energy(watts * float(cpu), None if to_target is None else watts * float(to_target), "declared", watts)


def check_watts(watts: float | None) -> float | None:
    """A declared power per busy core: a finite number of watts above 0 and at most 1000 (a ConfigError
    otherwise), or None for the default."""
    from harness.errors import ConfigError

    if watts is not None and not (math.isfinite(watts) and 0 < watts <= 1000):
        raise ConfigError(f"--power-watts {watts:g} is not a power per busy core in watts",
                          hint="declare the CPU's rated power divided by its cores, e.g. --power-watts 8")
    return watts
