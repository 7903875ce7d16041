"""What a metric is, in one place: every consumer (suite validation, the report builder, the
Markdown, HTML, LaTeX and terminal renderers, the figures, two-run comparison) reads these.

A :class:`Metric` says how to compute a metric (``fn`` on one seed's arrays, or the stored
per-example array whose mean it is), which way is better, the true range of its values (so every
interval is clipped to that range and no further), how to show it (scale, decimals, unit of a
difference, a title and a one-line text) and whether a report compares it between variants. The
built-in metrics below are registered as ``harness.metrics`` entry points (``harness.registry.metrics``),
so a plugin package can add its own the same way.

The per-condition choice of metrics (which ones a classifier reports on shifted inputs, say) is
the task's behaviour, not the metric's: see harness.tasks (``Task.metrics``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from harness import metrics as m

LEVELS = ("example", "seed")  # resampled over examples and seeds; or one value per seed (a t-interval over seeds)
GROUPS = ("accuracy", "calibration", "ood", "corruption", "denoise", "samples", "training", "sweep", "language",
          "privacy", "cost")


@dataclass(frozen=True)
class Metric:
    """One metric's facts.

    ``bounds`` is the true range of one value (a difference of two lies in ``difference_bounds``);
    ``scale`` multiplies a value for display (100: a fraction shown in %, 1000: seconds in ms) with
    ``decimals`` places, and ``unit`` names a difference once scaled ("percentage points").
    ``text`` says what it measures without its direction; :meth:`describe` adds that.
    ``level`` is "example" for a statistic of per-example outcomes (resampled over examples and
    seeds) or "seed" for one value per seed (training measurements, a set of samples: a t-interval
    over seeds). ``per_example`` names the stored per-example array whose mean the metric is (None
    when it is not a mean); ``fn`` computes it from one seed's arrays (None for the measurements
    the training loop records, harness.training, and the sample statistics, harness.tasks.denoise).
    ``compared``: reports compare it between paired variants, so a claim may name it.
    ``wall_clock``: measured in wall-clock time on the machine that ran it, so another machine, or
    other work on the same one, moves it (``harness compare`` lists such rows apart from effects).
    """

    name: str
    title: str
    text: str
    higher_is_better: bool
    bounds: tuple[float, float]
    group: str
    unit: str
    scale: float = 1.0
    decimals: int = 3
    level: str = "example"
    per_example: str | None = None
    fn: Callable[..., float] | None = None
    compared: bool = True
    note: str = ""  # added after the direction, e.g. "the reference is 100"
    wall_clock: bool = False

    def __post_init__(self) -> None:
        low, high = self.bounds
        problems = [
            not (self.name and self.title and self.text and self.unit) and "name, title, text and unit are required",
            not (low < high) and f"bounds {self.bounds} are not (low, high) with low < high",
            self.group not in GROUPS and f"group {self.group!r} is not one of {', '.join(GROUPS)}",
            self.level not in LEVELS and f"level {self.level!r} is not one of {', '.join(LEVELS)}",
            not (self.scale > 0 and math.isfinite(self.scale)) and f"scale {self.scale} is not a positive number",
            "better" in self.text and "text says its direction: higher_is_better does, describe() adds it",
        ]
        if bad := [p for p in problems if p]:
            raise ValueError(f"metric {self.name!r}: {'; '.join(bad)}")

    @property
    def better(self) -> str:
        """"higher" or "lower": which direction of the metric is better."""
        return "higher" if self.higher_is_better else "lower"

    @property
    def difference_bounds(self) -> tuple[float, float]:
        """The range of a difference of two values: (low - high, high - low)."""
        low, high = self.bounds
        return (low - high, high - low)

    def describe(self) -> str:
        """The metric's one-line text with its direction, e.g. "accuracy, % (higher is better)"."""
        return f"{self.text} ({self.better} is better{'; ' + self.note if self.note else ''})"

    @property
    def description(self) -> str:
        """What ``harness list metrics`` shows: :meth:`describe`."""
        return self.describe()

    def show(self, value: float) -> float:
        """``value`` in display units (``value * scale``)."""
        return value * self.scale


def _pp(name: str, title: str, text: str, higher: bool, group: str, **kw: Any) -> Metric:
    """A fraction in [0, 1] shown in % (its differences in percentage points)."""
    return Metric(name, title, text, higher, (0.0, 1.0), group, "percentage points", 100.0, 1, **kw)


INF = math.inf

# evaluation metrics, per example (resampled over examples and seeds)
ACCURACY = _pp("accuracy", "accuracy", "accuracy, %", True, "accuracy", per_example="correct", fn=m.accuracy)
AUROC = Metric("auroc", "AUROC", "AUROC", True, (0.0, 1.0), "ood", "AUROC", fn=m.auroc)
FPR95 = _pp("fpr95", "FPR95", "FPR at 95% TPR, %", False, "ood", fn=m.fpr_at_tpr)
AUPR_IN = Metric("aupr_in", "AUPR-in", "AUPR-in, in-distribution as the positive class", True, (0.0, 1.0), "ood",
                 "AUPR-in", fn=m.aupr_in)
AUPR_OUT = Metric("aupr_out", "AUPR-out", "AUPR-out, OOD as the positive class", True, (0.0, 1.0), "ood",
                  "AUPR-out", fn=m.aupr_out)
ECE = _pp("ece", "ECE", "expected calibration error, 15 equal-width bins, %", False, "calibration",
          fn=m.expected_calibration_error)
NLL = Metric("nll", "NLL", "negative log-likelihood of the true class, nats", False, (0.0, INF), "calibration",
             "nats", per_example="loss", fn=m.nll)
# the sum over K classes of (p_k - onehot_k)^2 reaches 2 when all the mass is on one wrong class
BRIER = Metric("brier", "Brier", "Brier score, squared distance of the softmax from the one-hot label", False,
               (0.0, 2.0), "calibration", "Brier score", per_example="brier", fn=m.brier_score)
MCE = Metric("mce", "mCE", "mean corruption error relative to the reference variant, %", False, (0.0, INF),
             "corruption", "percentage points", 100.0, 1, compared=False, note="the reference is 100")
# a model whose error under corruption is below its clean error has a negative term: no bound below
RELATIVE_MCE = Metric("relative_mce", "relative mCE", "relative mean corruption error (errors minus clean error) "
                      "against the reference, %", False, (-INF, INF), "corruption", "percentage points", 100.0, 1,
                      compared=False, note="the reference is 100")
DENOISING_LOSS = Metric("denoising_loss", "denoising loss", "ELBO-style denoising loss per test image, nats up to a "
                        "model-free constant", False, (0.0, INF), "denoise", "nats (ELBO-style)",
                        per_example="denoise_loss")
# a denoiser's samples: one statistic of each seed's whole set of samples
SAMPLE_FID = Metric("sample_fid", "sample FD", "Frechet distance between the judge classifier's features of "
                    "generated and of real test images", False, (0.0, INF), "samples", "feature distance",
                    level="seed")
CLASS_TV = Metric("class_tv", "class TV", "total-variation distance of the generated images' class mix (as the judge "
                  "classifies them) from the test labels'", False, (0.0, 1.0), "samples", "total variation",
                  level="seed")

# training measurements (harness.training), one value per seed
STEPS_TO_TARGET = Metric("steps_to_target", "steps to target", "steps to target, a run that never reached it counted "
                         "at its budget", False, (0.0, INF), "training", "steps", 1.0, 0, level="seed")
SECONDS_PER_STEP = Metric("seconds_per_step", "ms per step", "ms per step", False, (0.0, INF), "training",
                          "ms per step", 1000.0, 2, level="seed", wall_clock=True)
AULC = _pp("aulc", "AULC", "area under the held-out accuracy curve over the budget, %", True, "training",
           level="seed")
LOSS_ROUGHNESS = Metric("loss_roughness", "loss roughness", "roughness of the training loss: sd of the step-to-step "
                        "change of log(loss)", False, (0.0, INF), "training", "sd of the change of log(loss)",
                        level="seed")
MEAN_VAL_LOSS = Metric("mean_val_loss", "mean held-out loss", "mean held-out denoising loss over the training budget",
                       False, (0.0, INF), "training", "held-out denoising loss", level="seed")
CONVERGED_FRACTION = Metric("converged_fraction", "converged", "share of the sweep's points at which a seed's run "
                            "reached the target without diverging, %", True, (0.0, 1.0), "sweep",
                            "percentage points", 100.0, 0, level="seed")
# what the optimisation steps cost (harness.energy says how each is obtained), one value per seed; "to target"
# counts a run that never reached it at its whole run, as steps to target counts it at its budget
FLOPS_TO_TARGET = Metric("flops_to_target", "GFLOPs to target", "FLOPs of the training steps to the target (matrix "
                         "products and convolutions, counted), GFLOPs, a run that never reached it counted at its "
                         "budget", False, (0.0, INF), "training", "GFLOPs", 1e-9, 2, level="seed")
ENERGY_TO_TARGET = Metric("energy_to_target", "energy to target", "energy of the training steps to the target, J "
                          "(from the CPU's energy counters, or a declared power per core times the CPU time), a run "
                          "that never reached it counted at its whole run", False, (0.0, INF), "training", "J", 1.0, 2,
                          level="seed", wall_clock=True)
TRAIN_FLOPS = Metric("train_flops", "training GFLOPs", "FLOPs of all the training steps (counted), GFLOPs", False,
                     (0.0, INF), "training", "GFLOPs", 1e-9, 2, level="seed", compared=False)
CPU_SECONDS = Metric("cpu_seconds", "CPU seconds", "CPU time of the training steps, seconds (all the process's "
                     "threads)", False, (0.0, INF), "training", "seconds", 1.0, 2, level="seed", compared=False,
                     wall_clock=True)
ENERGY = Metric("energy", "energy", "energy of all the training steps, J", False, (0.0, INF), "training", "J", 1.0, 2,
                level="seed", compared=False, wall_clock=True)
# summarised per variant, not compared
EPOCHS_TO_TARGET = Metric("epochs_to_target", "epochs to target", "epochs to target", False, (0.0, INF), "training",
                          "epochs", 1.0, 2, level="seed", compared=False)
SECONDS_TO_TARGET = Metric("seconds_to_target", "seconds to target", "seconds to target", False, (0.0, INF),
                           "training", "seconds", 1.0, 2, level="seed", compared=False, wall_clock=True)
FINAL_VAL_ACCURACY = _pp("final_val_accuracy", "final held-out accuracy", "held-out accuracy at the end of training, %",
                         True, "training", level="seed", compared=False)
GRAD_NORM_MEDIAN = Metric("grad_norm_median", "median gradient norm", "median gradient norm of a step", False,
                          (0.0, INF), "training", "gradient norm", 1.0, 2, level="seed", compared=False)
GRAD_NORM_MAX = Metric("grad_norm_max", "largest gradient norm", "largest gradient norm of a step", False, (0.0, INF),
                       "training", "gradient norm", 1.0, 1, level="seed", compared=False)
PEAK_MEMORY_BYTES = Metric("peak_memory_bytes", "peak memory", "peak memory of one training step, MiB", False,
                           (0.0, INF), "training", "MiB", 2.0 ** -20, 2, level="seed", compared=False)
FINAL_VAL_LOSS = Metric("final_val_loss", "final held-out loss", "held-out denoising loss at the end of training",
                        False, (0.0, INF), "training", "held-out denoising loss", level="seed", compared=False)

# a language model's (harness.tasks.lm): per window of text, and its training's held-out curve
BPC = Metric("bpc", "bits per character", "bits per character of the next-byte predictions of a window of text",
             False, (0.0, INF), "language", "bits per character", per_example="bpc")
FINAL_VAL_BPC = Metric("final_val_bpc", "final held-out bpc", "held-out bits per character at the end of training",
                       False, (0.0, INF), "training", "bits per character", level="seed", compared=False)
MEAN_VAL_BPC = Metric("mean_val_bpc", "mean held-out bpc", "mean held-out bits per character over the training "
                      "budget", False, (0.0, INF), "training", "bits per character", level="seed")
