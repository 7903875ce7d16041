"""Task kinds: what a suite's variants are, and everything that follows from it.

A suite names its task (``Suite.task``); the task is a registered object
(``harness.registry.tasks``, entry-point group ``harness.tasks``) that implements :class:`Task`.
Every module whose behaviour depends on the kind of model asks the suite's task
(:func:`task_of`) instead of branching on its name, so a new task kind is one package and one
entry point. The built-ins:

* ``classify`` (harness.tasks.classify): classifiers from ``harness.registry.models``, trained
  to a held-out accuracy, scored on accuracy and calibration, OOD detection and adversarial
  robustness, with the adversarial sanity battery;
* ``denoise`` (harness.tasks.denoise): DDPM denoisers from ``harness.registry.denoisers``,
  trained to a held-out denoising loss, scored on the per-example ELBO-style loss (clean,
  shifted, attacked), ELBO OOD detection and the quality of their samples as judged by a
  classifier trained once per run.

A task owns: validating a suite for it, the registered names its battery uses, the evaluation
battery (conditions), what joins its cells' keys beside the recipe, building and training a
model, one-time setup per run (a judge), evaluating a model on conditions, the summary stored
with each evaluation cell, which metrics a report shows per condition, the per-example outcome
the aggregates reduce (and how the worst case over attacks reduces it), which sanity checks
apply, and how the report names the training target.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    import numpy as np
    from torch import nn

    from harness.specs import Condition, Suite, Variant


@dataclass(frozen=True, eq=False)
class EvalRun:
    """One trained model to evaluate: ``model`` (eval mode, on ``device``) of ``variant`` and
    ``seed``, the ``conditions`` left to run, the worker's data as the task loaded it (:class:`TaskData`:
    ``split``, ``ood`` and ``natural``), ``peer``
    (a variant -> its trained model of the same seed, or None where there is none: the transfer
    check's source), ``setup`` (what the task's one-time setup made, loaded on first call) and
    ``adversarial`` (condition key -> the attack's adversarial inputs for this model, where the
    worker computed them already for several seeds at once: harness.batched.battery_many; a task
    that is given none computes its attacks itself)."""

    suite: Suite
    variant: Variant
    seed: int
    model: nn.Module
    conditions: list[Condition]
    split: Any
    ood: dict[str, np.ndarray]
    natural: dict[str, Any]
    device: str
    peer: Callable[[Variant], nn.Module | None]
    setup: Callable[[], Any]
    adversarial: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, eq=False)
class TaskData:
    """The data a run's every unit shares, loaded once per process (:meth:`Task.load_data`): ``split``
    (train / val / test of the suite's dataset: harness.data.Split for images), ``ood`` (OOD set name ->
    its inputs) and ``natural`` (a natural shift's condition key -> its labelled inputs: (images, labels)
    for an image task, a harness.tasks.text.data.TextSet for text)."""

    split: Any
    ood: dict[str, Any]
    natural: dict[str, Any]


@dataclass(frozen=True)
class ReportStyle:
    """How a report presents a task's results (data the report reads; the report decides layout).

    ``headline`` is the per-example metric the summary table and the sweep figures show on clean,
    shifted and attacked inputs, with ``label`` its short column text ("acc %"); ``final`` and
    ``area`` the training measurements of the end and of the whole curve, with their column titles
    and ``area_text`` (one sentence); ``target`` the sentence naming the training target, a format
    string over the report's suite dict (``{target_accuracy_pct:g}`` is the accuracy in %);
    ``compact_all_ood`` whether the terminal shows every OOD set's AUROC (else the first only),
    ``compact_worst_case`` whether it shows the worst case over attacks; ``no_checks`` what the
    report says where the task runs no sanity check."""

    headline: str
    label: str
    final: str
    final_title: str
    area: str
    area_title: str
    area_text: str
    target: str
    compact_all_ood: bool
    compact_worst_case: bool
    no_checks: str


class TaskOptions(Protocol):
    """What a task's options type provides: a frozen dataclass read back from its
    :func:`dataclasses.asdict` form (after a JSON round trip) by ``from_dict``."""

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Any: ...


@runtime_checkable
class Task(Protocol):
    """What a task kind provides. Methods take the suite (and what the runner prepared) and
    never keep state between calls; implementations are frozen dataclasses."""

    name: str
    description: str
    #: the per-example array of an evaluation cell that the mean over shifts and the worst case
    #: over attacks reduce ("correct" for a classifier, "denoise_loss" for a denoiser)
    outcome: str
    #: the names of the sanity checks (harness.reports.checks) that apply to this task's records
    checks: tuple[str, ...]
    #: how a report presents the task's results
    style: ReportStyle
    #: the frozen dataclass of the settings a suite of this task declares (``Suite.task_options``),
    #: whose classmethod ``from_dict`` inverts :func:`dataclasses.asdict` (after a JSON round trip);
    #: None where the task takes no settings. Suite validation checks the type; sizes override fields.
    options_type: type[TaskOptions] | None

    def validate(self, suite: Suite) -> None:
        """Raise ConfigError (one line, with a hint) where ``suite`` does not fit the task."""

    #: the registry kind of the corruptions a suite's ``evaluation.shifts`` name ("shifts" for images,
    #: "text-shifts" for text): where planning reads a shift's revision and the runner checks the names
    shift_kind: str
    #: the registry kind of the attacks a suite's ``evaluation.attacks`` name ("attacks" for images,
    #: "text-attacks" for text); an attack built from it has a ``norm`` (what its eps measures)
    attack_kind: str

    def check_names(self, suite: Suite) -> None:
        """Raise UnknownNameError (or ConfigError for a malformed data source) for anything the suite
        names that is not there: its dataset, OOD sets, natural shifts and corruptions, its variants'
        models and its battery's plugins (the runner checks the norms and weights of every task), without
        loading any data."""

    def load_data(self, suite: Suite) -> TaskData:
        """The suite's data: its split, OOD sets and natural shifts, as the task's models read them."""

    def conditions(self, suite: Suite) -> list[Condition]:
        """Every evaluation condition of the suite's battery, in report order."""

    def train_params(self, suite: Suite) -> dict[str, Any]:
        """Keys added to every training cell's spec (so their hash, the cell key): {} adds none."""

    def eval_params(self, suite: Suite, cond: Condition) -> dict[str, Any]:
        """Keys added to the spec of ``cond``'s evaluation cells (so their hash, the cell key): {} adds
        none. A change to how a kind of condition is evaluated adds a revision here, so cells made the
        old way are redone, not mixed with new ones."""

    def build(self, suite: Suite, variant: Variant, split: Any, seed: int) -> nn.Module:
        """The untrained model of ``variant`` for ``seed`` (weights from the seed's init stream)."""

    def train(self, suite: Suite, model: nn.Module, variant: Variant, split: Any, seed: int, device: str,
              on_step: Callable[[int, int], None] | None) -> Any:
        """Train ``model`` in place; a result with ``diverged``, ``summary()`` and ``arrays()``."""

    def setup(self, ctx: Any, store: Any, conditions: list[Condition]) -> None:
        """One-time work per run directory before any unit runs, in the process that runs the suite
        (a denoiser's judge classifier), for the evaluation ``conditions`` still to run; ``ctx`` is the
        run's prepared context (harness.worker.Context)."""

    def load_setup(self, ctx: Any) -> Any:
        """What :meth:`setup` made, loaded in a worker process (None when the task has none)."""

    def evaluate(self, run: EvalRun) -> Iterator[tuple[Condition, dict[str, np.ndarray]]]:
        """Yield (condition, per-example arrays) for each of ``run.conditions`` in order."""

    def eval_summary(self, cond: Condition, arrays: dict[str, np.ndarray]) -> dict[str, Any]:
        """The summary stored with an evaluation cell (means, the attack's resolved settings)."""

    def metrics(self, cond: Condition) -> tuple[str, ...]:
        """The registered metrics (harness.registry.metrics) a report estimates on ``cond``, in order:
        per-example ones (level "example") from the cells' arrays, per-seed ones (level "seed") from
        their results."""

    def compared(self, cond: Condition) -> tuple[str, ...]:
        """Which of :meth:`metrics` a report compares between paired variants on ``cond`` (each
        adds to the family of tests its p-values are adjusted in)."""

    def worst_case(self, stacked: np.ndarray) -> np.ndarray:
        """The worst case over attacks of (n_attacks, N) per-example outcomes: (N,)."""

    def report_target(self, suite: dict[str, Any]) -> dict[str, Any]:
        """The training target as the report states it, from the stored suite dict."""

    def describe(self, suite: Suite) -> dict[str, str]:
        """What ``harness show`` says of the task's part of the suite: ``target`` (the training
        target), ``ood`` (what scores the OOD sets) and ``checks`` (the sanity checks, or "-")."""


def check_image_eps(suite: Suite) -> None:
    """An image task's attack radii are in [0, 1] input units (a ConfigError names the first that is not)."""
    from harness.specs import _check

    for a in suite.evaluation.attacks:
        for e in a.eps:
            _check(e <= 1.0, f"attack {a.name}: eps {e} is outside [0, 1]", "eps is measured in [0, 1] input units, "
                   "e.g. 0.1")


def check_image_names(suite: Suite) -> None:
    """What an image task's suite names beyond its models: the dataset (and test dataset), the
    corruptions, the OOD sets and natural shifts, each a registered or well-formed data source
    (harness.sources.check_name: without loading it)."""
    from harness.registry import shifts
    from harness.sources import check_name

    check_name(suite.dataset)
    if suite.test_dataset is not None:
        check_name(suite.test_dataset)
    ev = suite.evaluation
    for name in ev.shifts:
        shifts.entry(name)
    for name in (*ev.ood_sets, *ev.natural_shifts):
        check_name(name)


def load_images(suite: Suite) -> TaskData:
    """An image task's data: the suite's split (harness.sources.suite_split), every OOD set fitted to the
    test images' shape, and every natural shift (a labelled set with the suite's classes, or a
    pre-rendered corruption) likewise."""
    from harness.data import fit_to, prerendered
    from harness.errors import ConfigError
    from harness.sources import load, suite_split

    split = suite_split(suite)
    ood = {name: fit_to(load(name).x, split.test.shape) for name in suite.evaluation.ood_sets}
    natural = {}
    for cond in suite.conditions():
        if cond.kind != "natural":
            continue
        ev = suite.evaluation
        data = load(cond.name) if not cond.params else prerendered(ev.prerendered_dir or "", cond.name,
                                                                  cond.param("severity"))
        if data.y is None or (data.y.max() >= split.train.n_classes):
            raise ConfigError(f"natural shift {data.name!r} needs labels from the suite's {split.train.n_classes} "
                              "classes", hint="name a labelled set with the same classes, or list it under ood_sets")
        natural[cond.key] = (fit_to(data.x, split.test.shape), data.y)
    return TaskData(split, ood, natural)


def shared_summary(arrays: dict[str, np.ndarray]) -> dict[str, Any] | None:
    """The part of an evaluation cell's stored summary every task writes alike: ``not_applicable``
    for a condition with no records (a check that does not apply), the AUROC and FPR at 95% TPR
    of an OOD condition; None for any other record (the task summarises those itself)."""
    from harness.metrics import auroc, fpr_at_tpr

    if not arrays:
        return {"not_applicable": True}
    if "score_in" in arrays:
        return {"auroc": auroc(arrays["score_in"], arrays["score_out"]),
                "fpr95": fpr_at_tpr(arrays["score_in"], arrays["score_out"])}
    return None


def task_of(suite: Suite | str) -> Task:
    """The registered task of ``suite`` (or of a task name)."""
    from harness.registry import tasks

    return tasks.get(suite if isinstance(suite, str) else suite.task)
