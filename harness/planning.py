"""Planning a run: what determines each cell (its spec, whose hash is its key) and which cells are missing.

Work is split into **units**, one per (variant, seed): train the model (a training cell), then
evaluate it on every condition (one evaluation cell each). :func:`plan` compares the suite with
the store and returns the units with work left. A cell's key is :func:`harness.store.cell_key`
of its spec (:func:`train_spec`, :func:`eval_spec`, :func:`judge_spec`), so these specs must stay
byte-for-byte what they were: a changed spec is a new cell, and existing run directories would
redo it instead of resuming.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from harness.specs import Condition, Suite, Variant
from harness.store import Store, cell_key
from harness.tasks import task_of


@dataclass(frozen=True)
class Unit:
    """One (variant, seed): whether it must train, and which evaluation cells are missing
    (each as its condition, its cell key and its spec)."""

    variant: Variant
    seed: int
    train_key: str
    train_spec: dict[str, Any]
    need_train: bool
    evals: tuple[tuple[Condition, str, dict[str, Any]], ...]


def train_spec(suite: Suite, variant: Variant, seed: int, device: str, batched: bool = False) -> dict[str, Any]:
    """Everything that determines a training cell's result. For a variant that loads weights,
    the weights (their source and the file's sha256, so a changed file is a new cell) take the
    place of the recipe, which a loaded model never sees. ``batched``: the run trains models of one
    architecture as one computation (harness.batched) where the variant can (the spec then says
    ``"batched": true``: the result differs from the one-model path's in float rounding, so the two
    never share a cell); other variants keep the one-model path's spec."""
    spec = {
        "suite": suite.name, "suite_version": suite.version, "dataset": suite.dataset,
        "split": suite.split_params(),
        "variant": {"model": variant.model, "norm": variant.norm, "standardize": variant.standardize,
                    "options": dict(variant.options)},
        "seed": seed, "train": dataclasses.asdict(variant.recipe(suite.train)), "device": device.split(":")[0],
        # caps on the split only when set, so the keys of uncapped suites stay what they were
        **({"max_train": suite.max_train, "max_test": suite.max_test}
           if suite.max_train is not None or suite.max_test is not None else {}),
        # what the task adds (a denoiser's schedule and target; nothing for a classifier, whose keys stay)
        **task_of(suite).train_params(suite),
    }
    if batched:
        from harness.batched import variant_reason

        if variant_reason(suite.task, variant, suite.membership_design) is None:
            spec["batched"] = True
    if variant.weights is not None:
        from harness.weights import resolve

        del spec["train"]
        spec["weights"] = {"source": variant.weights, "sha256": resolve(variant.weights).sha256}
    return spec


def eval_spec(suite: Suite, train_key: str, cond: Condition) -> dict[str, Any]:
    """Everything that determines an evaluation cell's result: for a shift, its implementation's
    revision too (harness.shifts.revised), only when above 1 so the keys of unchanged shifts stay."""
    ev = suite.evaluation
    revision = 1
    if cond.kind == "shift":
        from harness.registry import registry

        revision = getattr(registry(task_of(suite).shift_kind).get(cond.name), "revision", 1)
    return {"train_cell": train_key, "condition": cond.to_dict(), "batch_size": ev.batch_size,
            "condition_seed": suite.split_seed,
            **({"shift_revision": revision} if revision != 1 else {}),
            **task_of(suite).eval_params(suite, cond)}


def attack_sweeps(cond: Condition, conditions: list[Condition]) -> set[tuple[str, tuple[Any, ...]]]:
    """The attack sweeps (an attack's name with every parameter but eps) a condition belongs to
    or reads: an attack's own; the suite's PGD for "large-eps"; every sweep for "stronger"."""
    def key(name: str, c: Condition) -> tuple[str, tuple[Any, ...]]:
        return name, tuple(p for p in c.params if p[0] != "eps")

    if cond.kind == "attack":
        return {key(cond.name, cond)}
    if cond.kind == "check" and cond.name == "large-eps":
        return {key("pgd-linf", cond)}
    if cond.kind == "check" and cond.name == "stronger":
        return {key(c.name, c) for c in conditions if c.kind == "attack"}
    return set()


def plan(suite: Suite, store: Store, device: str, batch_seeds: bool | None = None) -> list[Unit]:
    """The units with work left, in seed-major order (every variant of seed 0 first). ``batch_seeds``:
    whether the run trains seeds batched (:func:`train_spec`); None reads it from the store, where
    the runner records it (meta ``batch_seeds``), so a plan of a finished run is the run's.

    An attack sweep is redone whole when any of its cells, or a check that reads it, is missing:
    each eps reuses what the smaller ones broke, and redoing the sweep gives the same records as
    an uninterrupted run."""
    # runs whose model is not evaluated: diverged, or (where the suite asks) never reached the target
    skip = {c.key for c in store.cells("train", with_arrays=False) if c.result.get("diverged")
            or (not suite.evaluate_unconverged and c.status == "done" and c.result.get("steps_to_target") is None)}
    conditions = suite.conditions()
    batched = bool(store.get_meta("batch_seeds")) if batch_seeds is None else batch_seeds
    done = store.done_keys()
    units = []
    for seed in suite.seeds:
        for v in suite.variants:
            ts = train_spec(suite, v, seed, device, batched)
            tk = cell_key(ts)
            need_train = tk not in done
            specs = {c.key: eval_spec(suite, tk, c) for c in conditions}
            missing = {c.key for c in conditions if cell_key(specs[c.key]) not in done}
            redo = set().union(*(attack_sweeps(c, conditions) for c in conditions if c.key in missing))
            evals = () if tk in skip else tuple(
                (c, cell_key(specs[c.key]), specs[c.key]) for c in conditions
                if c.key in missing or (c.kind == "attack" and attack_sweeps(c, conditions) <= redo))
            if need_train or evals:
                units.append(Unit(v, seed, tk, ts, need_train, evals))
    return units
