"""The report's data: typed rows and the :class:`Report` they make up, and how a report reads a metric.

Every stage of the report pipeline passes these frozen rows, never positional tuples: the builders
(harness.reports.estimates, .training, .curves, composed by harness.reports.build) make them, the
document (harness.reports.content), the figures and results.json only read them. A metric's facts
(direction, range, per-example form, text) are its registered :class:`~harness.metricspec.Metric`,
read through :func:`metric_of`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from harness import stats
from harness.metricspec import Metric
from harness.registry import metrics
from harness.reports.checks import Check
from harness.reports.claims import Sequential, Verdict
from harness.specs import Condition

if TYPE_CHECKING:
    from harness.reports.references import ReferenceResult

MEAN_SHIFT = Condition("shift", "all")  # aggregate: mean accuracy over every shift and severity

# the caveat of a comparison made on fewer seeds than the suite's (harness.reports.build adds it)
PARTIAL_SEEDS = ("fewer seeds than the suite's: compared on the seeds where both variants have a usable record "
                 "(the others are listed as excluded)")


def mean_shift(bn_mode: str = "frozen") -> Condition:
    """The aggregate condition: mean accuracy over every shift and severity, in a BatchNorm mode."""
    return MEAN_SHIFT if bn_mode == "frozen" else Condition("shift", "all", (("bn", bn_mode),))


def metric_of(name: str) -> Metric:
    """The registered facts of metric ``name``: direction, range, per-example form, text."""
    return metrics.get(name)


@dataclass(frozen=True)
class EstimateRow:
    """One variant's estimate of ``metric`` on ``condition``, with the per-seed values behind it:
    ``values[i]`` is seed ``seeds[i]``'s value on its observed examples, in the metric's own units (a
    fraction, seconds; the estimate's value is their mean)."""

    variant: str
    condition: Condition
    metric: str  # a registered metric's name (harness.registry.metrics: its direction, range and text)
    estimate: stats.Estimate
    seeds: tuple[int, ...] = ()
    values: tuple[float, ...] = ()


@dataclass(frozen=True, eq=False)
class PairedResult:
    """One paired comparison before the report's p-value adjustment: ``variant`` minus ``baseline``
    on ``seeds`` (the seeds where both have a usable record), with the (S,) per-seed values of
    both, ``a`` the variant's and ``b`` the baseline's, from which the probability of improvement
    is computed. ``condition`` is None for a training metric."""

    variant: str
    baseline: str
    condition: Condition | None
    metric: str
    comparison: stats.Comparison
    seeds: tuple[int, ...]
    a: np.ndarray
    b: np.ndarray


@dataclass(frozen=True)
class ComparisonRow:
    variant: str
    baseline: str
    condition: Condition | None  # None for training metrics
    metric: str
    comparison: stats.Comparison
    p_adjusted: float
    seeds: tuple[int, ...]
    better: str = "higher"  # which direction of the metric is better
    # P(a run of the variant beats a run of the baseline) over seed pairs, with its interval
    prob_improvement: float | None = None
    prob_improvement_low: float | None = None
    prob_improvement_high: float | None = None
    # the per-seed values behind it, on ``seeds`` in order: the variant's and the baseline's (the metric's units)
    variant_values: tuple[float, ...] = ()
    baseline_values: tuple[float, ...] = ()


@dataclass(frozen=True)
class TrainingRow:
    variant: str
    seed: int
    status: str
    result: dict[str, Any]
    error: str | None


@dataclass(frozen=True)
class TrainingSummary:
    """Per variant: how many seeds reached the target, and estimates over seeds (t-intervals).

    The estimates are over the finished, non-diverged seeds; steps and epochs to target only when
    every one of them reached it (otherwise ``reached`` says how many did). ``aulc`` is the mean
    held-out accuracy over the budget (higher is better), ``loss_roughness`` the sd of the
    step-to-step change of log(loss) (lower is smoother), ``grad_norm_median`` the median gradient
    norm of a step, ``peak_memory_bytes`` one training step's peak (see harness.training). A denoiser
    has ``final_val_loss`` and ``mean_val_loss`` (the held-out denoising loss at the end and averaged
    over the budget, lower is better) where a classifier has ``final_val_accuracy`` and ``aulc``;
    the other's stay None.
    """

    variant: str
    n_seeds: int
    reached: int
    diverged: int
    failed: int
    steps_to_target: stats.Estimate | None  # None unless every finished seed reached the target
    seconds_per_step: stats.Estimate | None
    final_val_accuracy: stats.Estimate | None
    epochs_to_target: stats.Estimate | None = None
    seconds_to_target: stats.Estimate | None = None
    aulc: stats.Estimate | None = None
    loss_roughness: stats.Estimate | None = None
    grad_norm_median: stats.Estimate | None = None
    grad_norm_max: stats.Estimate | None = None
    peak_memory_bytes: stats.Estimate | None = None
    final_val_loss: stats.Estimate | None = None
    mean_val_loss: stats.Estimate | None = None
    final_val_bpc: stats.Estimate | None = None  # a language model's held-out bits per character (harness.tasks.lm)
    mean_val_bpc: stats.Estimate | None = None
    # what the steps cost (harness.energy): FLOPs, CPU seconds and energy, of the run and to the target
    train_flops: stats.Estimate | None = None
    flops_to_target: stats.Estimate | None = None
    cpu_seconds: stats.Estimate | None = None
    energy: stats.Estimate | None = None
    energy_to_target: stats.Estimate | None = None


TRAINING_SUMMARY_METRICS = ("steps_to_target", "epochs_to_target", "seconds_to_target", "seconds_per_step",
                            "final_val_accuracy", "aulc", "loss_roughness", "grad_norm_median", "grad_norm_max",
                            "peak_memory_bytes", "final_val_loss", "mean_val_loss", "final_val_bpc", "mean_val_bpc",
                            "train_flops", "flops_to_target", "cpu_seconds", "energy", "energy_to_target")


@dataclass(frozen=True)
class SweepPoint:
    """One point of a sweep for one variant family: how its seeds' runs ended."""

    family: str  # the variant name without the point, e.g. mlp-batch
    setting: str  # the swept TrainSpec field, e.g. lr
    value: Any
    variant: str  # the variant at this point, e.g. mlp-batch@lr=0.1
    n_seeds: int
    converged: int  # reached the target without diverging
    diverged: int
    final_val_accuracy: stats.Estimate | None


@dataclass(frozen=True)
class SweepSummary:
    """A variant family over one swept setting: the points, and the range of values at which
    every seed converged (None when no point did)."""

    family: str
    setting: str
    points: tuple[SweepPoint, ...]
    converged_range: tuple[Any, Any] | None


@dataclass(frozen=True)
class Incomplete:
    """What a partial run lacks of its plan (harness.planning.plan on the stored suite): the cells with no
    finished record, because they never ran (an interrupted run) or failed, and the command that runs them."""

    train_cells: int  # training cells missing
    eval_cells: int  # evaluation cells missing (a model not trained yet misses all of its own)
    models: tuple[tuple[str, int], ...]  # (variant, seed) of every model with a cell missing, in plan order
    command: str  # the `harness run` command that finishes the run (shell-quoted)
    error: str | None = None  # why the plan could not be made (then the counts are 0 and nothing is known)


@dataclass(frozen=True)
class Report:
    suite: dict[str, Any]
    seeds: tuple[int, ...]
    variants: tuple[dict[str, Any], ...]
    level: float
    n_resamples: int
    estimates: tuple[EstimateRow, ...]
    comparisons: tuple[ComparisonRow, ...]
    training: tuple[TrainingRow, ...]
    training_summary: tuple[TrainingSummary, ...]
    checks: tuple[Check, ...]
    excluded: tuple[str, ...]
    provenance: dict[str, Any]
    n_test: int
    adjust: str = "holm"  # the p-value adjustment, a key of harness.stats.ADJUSTMENTS
    attack_settings: tuple[dict[str, Any], ...] = ()
    reliability: tuple[dict[str, Any], ...] = ()
    curves: tuple[dict[str, Any], ...] = ()  # training curves per variant, see harness.reports.curves.curves
    roc: tuple[dict[str, Any], ...] = ()  # ROC curves per variant and OOD condition, see harness.reports.curves.roc
    interval: str = "auto"  # the interval method, a key of harness.stats.INTERVALS
    claims: tuple[Verdict, ...] = ()  # a verdict per declared claim
    sweeps: tuple[SweepSummary, ...] = ()  # per variant family and swept setting, see harness.reports.training.sweeps
    judge: dict[str, Any] | None = None  # a denoise suite's judge classifier, as harness.runner.train_judge stored it
    incomplete: Incomplete | None = None  # None for a run that has every planned cell (harness.reports.build)
    sequential: Sequential | None = None  # the looks of a run made with --until-settled (harness.reports.claims)
    # each published result the suite declares, set beside the run's numbers (harness.reports.references)
    references: tuple[ReferenceResult, ...] = ()
