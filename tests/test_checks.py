"""Tests for harness.reports.checks, the sanity battery.

On hand-made records, every check is made to pass and to fail (and to say n/a without its
records), its verdict naming the offending variant and numbers; every threshold is tried just
inside and just outside its margin. Records hold N = 1000 examples, so one example is 0.1%, finer
than any margin.

On a real run: models with planted gradient masking (a non-differentiable input quantisation; a
saturating output) must be flagged by the gradient and large-eps checks, and the models without
it must not be named there; a normalized variant paired with its baseline gets a transfer attack
from it, which the transfer check finds weaker than white-box."""

from __future__ import annotations

import dataclasses
import json
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from harness.models import CNN
from harness.registry import models, suites
from harness.reports import checks
from harness.reports.build import build_report
from harness.reports.checks import Check, Evals, Records
from harness.reports.render import to_json
from harness.runner import run
from harness.specs import AttackSpec, Condition, Suite, Variant, attack, check, clean
from harness.store import Cell, Store
from harness.tasks.classify import CHECKS as CLASSIFY_CHECKS

# --- hand-made records -----------------------------------------------------------------------

N = 1000  # examples per record: one example is 0.1%
VARIANTS = ("cnn-none", "cnn-batch")  # cnn-batch is paired with cnn-none
SEEDS = (0, 1)
PGD_PARAMS = (("restarts", 1), ("steps", 10))
TWO_ATTACKS = (AttackSpec("fgsm", (0.0, 0.1)), AttackSpec("pgd-linf", (0.0, 0.1), PGD_PARAMS))
LABELS = np.arange(N) % 10  # balanced: the majority-class rate is 10%

Arrays = dict[str, np.ndarray]
Book = dict[tuple[str, Condition], dict[int, Arrays]]  # (variant, condition) -> seed -> arrays


def _suite(attacks: tuple[AttackSpec, ...] = TWO_ATTACKS) -> dict[str, Any]:
    """A real quickstart Suite cut to cnn-none and cnn-batch, seeds 0 and 1, with ``attacks``, in
    the dict form a run stores (after its JSON round trip)."""
    base = suites.get("quickstart").with_overrides(seeds=SEEDS, variants=VARIANTS)
    suite = dataclasses.replace(base, evaluation=dataclasses.replace(base.evaluation, attacks=attacks))
    return json.loads(json.dumps(suite.to_dict()))


CHECK = {c.name: c for c in Suite.from_dict(_suite()).check_conditions()}
FGSM0, FGSM, PGD0, PGD = (attack(a.name, e, a.params) for a in TWO_ATTACKS for e in a.eps)


def _first(k: int) -> np.ndarray:
    return np.arange(N) < k


def _outcome(correct: np.ndarray, labels: np.ndarray = LABELS) -> Arrays:
    """An attack or clean record: a wrong prediction is the next class."""
    return {"pred": np.where(correct, labels, (labels + 1) % 10), "correct": correct.copy(), "label": labels}


def _attacked(correct: np.ndarray, eps: float) -> Arrays:
    # an L-inf attack uses its whole budget on every pixel of an 8x8 image: its L2 size is 8 eps
    return {**_outcome(correct), "linf": np.full(N, eps), "l2": np.full(N, 8 * eps)}


def _healthy() -> Book:
    """Records on which every check passes: 95% clean; FGSM 60% and PGD 50% at eps 0.1 (PGD
    breaks every example FGSM breaks); noise 90%; transfer (cnn-batch only) 80%; twice the steps
    50% -> 49.5%; PGD at the large eps 10% (chance); finite non-zero gradients; identical
    repeated and rebatched logits. The baseline cnn-none's transfer cells are empty, as a run
    stores them for a variant without a model to transfer from."""
    book: Book = defaultdict(dict)
    for v in VARIANTS:
        for s in SEEDS:
            book[(v, clean())][s] = _outcome(_first(950))
            book[(v, FGSM0)][s] = _attacked(_first(950), 0.0)
            book[(v, PGD0)][s] = _attacked(_first(950), 0.0)
            book[(v, FGSM)][s] = _attacked(_first(600), 0.1)
            book[(v, PGD)][s] = _attacked(_first(500), 0.1)
            book[(v, CHECK["gradients"])][s] = {"grad_l1": 1.0 + np.arange(N, dtype=np.float64)}
            book[(v, CHECK["repeat"])][s] = {"max_abs_diff": np.array([0.0])}
            book[(v, CHECK["batch-composition"])][s] = {
                "max_abs_diff": np.full(N, 1e-7), "logit_scale": np.ones(N), "pred_same": np.ones(N, dtype=bool)}
            book[(v, CHECK["noise"])][s] = {"correct": _first(900)}
            book[(v, CHECK["transfer"])][s] = {"correct": _first(800)} if v == "cnn-batch" else {}
            book[(v, CHECK["stronger"])][s] = {"correct_base": _first(500), "correct": _first(495)}
            book[(v, CHECK["large-eps"])][s] = {"correct": _first(100)}
    return book


def _records(book: Book, suite: dict[str, Any] | None = None) -> Records:
    """The Records harness.reports.build would make of these cells (attack cells name their norm, as
    the runner's records do)."""
    evals: dict[tuple[str, str], dict[int, Cell]] = defaultdict(dict)
    for (v, cond), by_seed in book.items():
        norm = "l2" if cond.name == "pgd-l2" else "linf"
        for s, arrays in by_seed.items():
            evals[(v, cond.key)][s] = Cell("", "eval", v, s, {}, {"norm": norm} if cond.kind == "attack" else {},
                                           condition=cond.to_dict(), arrays=arrays)
    return Records(evals, list(VARIANTS), suite or _suite(), [("cnn-batch", "cnn-none")])


def _set(book: Book, cond: Condition, variant: str = "cnn-batch", **arrays: np.ndarray) -> Book:
    """Replace arrays of ``variant``'s records of ``cond`` on every seed."""
    for s in SEEDS:
        book[(variant, cond)][s] = {**book[(variant, cond)][s], **arrays}
    return book


def _drop(book: Book, *conds: Condition) -> Book:
    return {k: v for k, v in book.items() if k[1] not in conds}


def _with_labels(book: Book, labels: np.ndarray) -> Book:
    for s in SEEDS:
        book[("cnn-batch", clean())][s] = _outcome(_first(950), labels)
    return book


MAJORITY_30 = np.where(np.arange(N) < 300, 0, 1 + np.arange(N) % 9)  # 30% of the labels are class 0


def _changed_pred(book: Book) -> Book:
    # example 999 is misclassified at eps 0 by FGSM as clean, but as another wrong class
    wrong = book[("cnn-batch", FGSM0)][1]["pred"].copy()
    wrong[999] = (LABELS[999] + 2) % 10
    book[("cnn-batch", FGSM0)][1] = {**book[("cnn-batch", FGSM0)][1], "pred": wrong}
    return book


def _one(value: float, at: int = 0, fill: float = 1.0) -> np.ndarray:
    a = np.full(N, fill)
    a[at] = value
    return a


def _zeros(k: int) -> np.ndarray:
    return np.where(np.arange(N) < k, 0.0, 1.0)


def _only_fgsm_breaks(k: int) -> np.ndarray:
    """PGD correct on examples [k, 500 + k): as accurate as FGSM (first 500), and correct on k
    examples FGSM breaks."""
    return (np.arange(N) >= k) & (np.arange(N) < 500 + k)


# (check, how the healthy records are changed, status, texts the detail must contain)
CASES: list[tuple[Callable[[Records], Check], Callable[[Book], Book], str, tuple[str, ...]]] = [
    (checks.eps_zero, lambda b: b, "pass", ("0 of 8000 per-example predictions differ across 8 records",)),
    (checks.eps_zero, _changed_pred, "fail", ("1 of 8000 per-example predictions differ across 8 records",)),
    (checks.eps_zero, lambda b: _set(b, FGSM0, correct=_first(949)), "fail", ("2 of 8000",)),
    (checks.eps_ball, lambda b: b, "pass", ("largest excess over eps, in each attack's norm: 0.0e+00 (16 records)",)),
    (checks.eps_ball, lambda b: _set(b, PGD, linf=_one(0.1 + 0.9e-6, fill=0.1)), "pass", ("9.0e-07",)),
    (checks.eps_ball, lambda b: _set(b, PGD, linf=_one(0.1 + 1.1e-6, fill=0.1)), "fail",
     ("a perturbation exceeds its eps by 1.10e-06",)),
    (checks.eps_ball, lambda b: _set(b, FGSM0, linf=_one(3e-6, fill=0.0)), "fail", ("exceeds its eps by 3.00e-06",)),
    (checks.monotone, lambda b: b, "pass", ("non-increasing in all 4 (variant, attack) sweeps",)),
    (checks.monotone, lambda b: _set(b, PGD, correct=_first(950)), "pass", ("all 4",)),  # flat is not rising
    (checks.monotone, lambda b: _set(b, PGD, correct=_first(951)), "fail",
     ("cnn-batch pgd-linf eps 0->0.1: 95.0% -> 95.1%",)),
    (checks.pgd_beats_fgsm, lambda b: b, "pass", ("in all 4 (variant, eps) pairs",)),
    # PGD above FGSM on average: by 0.4 points (inside the 0.5-point margin), then 0.6
    (checks.pgd_beats_fgsm, lambda b: _set(_set(b, FGSM, correct=_first(500)), PGD, correct=_first(504)), "pass",
     ("all 4",)),
    (checks.pgd_beats_fgsm, lambda b: _set(_set(b, FGSM, correct=_first(500)), PGD, correct=_first(506)), "fail",
     ("cnn-batch eps 0.1: PGD 50.6% vs FGSM 50.0%, 0.6% of examples broken by FGSM only",)),
    # as accurate on average, but FGSM alone breaks 0.9% of the examples (inside the 1% share), then 1.1%
    (checks.pgd_beats_fgsm, lambda b: _set(_set(b, FGSM, correct=_first(500)), PGD, correct=_only_fgsm_breaks(9)),
     "pass", ("all 4",)),
    (checks.pgd_beats_fgsm, lambda b: _set(_set(b, FGSM, correct=_first(500)), PGD, correct=_only_fgsm_breaks(11)),
     "fail", ("cnn-batch eps 0.1: PGD 50.0% vs FGSM 50.0%, 1.1% of examples broken by FGSM only",)),
    (checks.large_eps, lambda b: b, "pass", ("at most 0.0% above the majority-class rate for all 2 variants",)),
    (checks.large_eps, lambda b: _set(b, CHECK["large-eps"], correct=_first(149)), "pass", ("at most 4.9%",)),
    (checks.large_eps, lambda b: _set(b, CHECK["large-eps"], correct=_first(151)), "fail",
     ("cnn-batch: 15.1% at eps 0.5, chance 10.0%",)),
    # chance is the majority-class rate, not one over the number of classes
    (checks.large_eps, lambda b: _set(_with_labels(b, MAJORITY_30), CHECK["large-eps"], correct=_first(349)),
     "pass", ("at most 4.9%",)),
    (checks.large_eps, lambda b: _set(_with_labels(b, MAJORITY_30), CHECK["large-eps"], correct=_first(351)),
     "fail", ("cnn-batch: 35.1% at eps 0.5, chance 30.0%",)),
    (checks.stronger, lambda b: b, "pass", ("largest drop 0.5% at eps 0.1 over 2 variants (allowed 2.0%)",)),
    (checks.stronger, lambda b: _set(b, CHECK["stronger"], correct=_first(481)), "pass", ("largest drop 1.9%",)),
    (checks.stronger, lambda b: _set(b, CHECK["stronger"], correct=_first(479)), "fail",
     ("at eps 0.1: cnn-batch: 50.0% -> 47.9% (allowed 2.0%)",)),
    (checks.noise, lambda b: b, "pass", ("stronger for all 2 variants",)),
    (checks.noise, lambda b: _set(b, CHECK["noise"], correct=_first(500)), "pass", ("all 2",)),  # as strong
    (checks.noise, lambda b: _set(b, CHECK["noise"], correct=_first(499)), "fail",
     ("cnn-batch: 49.9% under noise vs 50.0% under the white-box attacks",)),
    (checks.transfer, lambda b: b, "pass", ("stronger for all 1 variants",)),
    (checks.transfer, lambda b: _set(b, CHECK["transfer"], correct=_first(500)), "pass", ("all 1",)),
    (checks.transfer, lambda b: _set(b, CHECK["transfer"], correct=_first(499)), "fail",
     ("cnn-batch: 49.9% under transfer vs 50.0% under the white-box attacks",)),
    (checks.gradients, lambda b: b, "pass", ("finite everywhere, zero for at most 1.0% of examples, all 2 variants",)),
    (checks.gradients, lambda b: _set(b, CHECK["gradients"], grad_l1=_zeros(9)), "pass", ("all 2",)),
    (checks.gradients, lambda b: _set(b, CHECK["gradients"], grad_l1=_zeros(11)), "fail",
     ("cnn-batch: 1.1% of input gradients are zero, 0 non-finite",)),
    (checks.gradients, lambda b: _set(b, CHECK["gradients"], grad_l1=_one(np.nan)), "fail",
     ("cnn-batch: 0.0% of input gradients are zero, 2 non-finite",)),
    (checks.gradients, lambda b: _set(b, CHECK["gradients"], grad_l1=_one(np.inf)), "fail", ("2 non-finite",)),
    (checks.repeat, lambda b: b, "pass", ("bit-identical in all 4 models",)),
    (checks.repeat, lambda b: _set(b, CHECK["repeat"], max_abs_diff=np.array([1e-7])), "fail",
     ("cnn-batch seed 0: logits move by 1.0e-07; cnn-batch seed 1: logits move by 1.0e-07",)),
    (checks.batch_composition, lambda b: b, "pass",
     ("largest logit change 1.0e-07 of the logits' size (allowed 1e-04), no prediction changed, 4 models",)),
    # logits of size 50 moved by 0.0045 (relative 0.9e-4, inside the tolerance), then by 0.0055
    (checks.batch_composition,
     lambda b: _set(b, CHECK["batch-composition"], max_abs_diff=_one(50 * 0.9e-4, fill=0.0),
                    logit_scale=np.full(N, 50.0)), "pass", ("largest logit change 9.0e-05",)),
    (checks.batch_composition,
     lambda b: _set(b, CHECK["batch-composition"], max_abs_diff=_one(50 * 1.1e-4, fill=0.0),
                    logit_scale=np.full(N, 50.0)), "fail",
     ("largest relative logit change 1.1e-04, 0 predictions changed",)),
    (checks.batch_composition,
     lambda b: _set(b, CHECK["batch-composition"], pred_same=_one(0.0).astype(bool)), "fail",
     ("largest relative logit change 1.0e-07, 2 predictions changed",)),
]


@pytest.mark.parametrize(("check", "change", "status", "texts"), CASES,
                         ids=[f"{c.__name__}-{i}-{s}" for i, (c, _, s, _) in enumerate(CASES)])
def test_each_check_passes_and_fails_on_hand_made_records(check: Callable[[Records], Check],
                                                          change: Callable[[Book], Book], status: str,
                                                          texts: tuple[str, ...]) -> None:
    got = check(_records(change(_healthy())))
    assert got.status == status, got
    for text in texts:
        assert text in got.detail, got
    assert "cnn-none" not in got.detail  # only cnn-batch's records were changed


# (check, the records, the suite) -> n/a, and the detail says why
NA_CASES: list[tuple[Callable[[Records], Check], Callable[[Book], Book], tuple[AttackSpec, ...], str]] = [
    (checks.eps_zero, lambda b: b, (AttackSpec("fgsm", (0.1,)), AttackSpec("pgd-linf", (0.1,), PGD_PARAMS)),
     "no attack was run at eps = 0"),
    (checks.eps_ball, lambda b: _drop(b, FGSM0, FGSM, PGD0, PGD), TWO_ATTACKS, "no records for this check"),
    (checks.monotone, lambda b: b, (AttackSpec("fgsm", (0.1,)), AttackSpec("pgd-linf", (0.1,), PGD_PARAMS)),
     "no records for this check"),
    (checks.pgd_beats_fgsm, lambda b: b, (AttackSpec("pgd-linf", (0.0, 0.1), PGD_PARAMS),),
     "the suite does not run both fgsm and pgd-linf"),
    (checks.large_eps, lambda b: _drop(b, CHECK["large-eps"]), TWO_ATTACKS, "no records for this check"),
    (checks.stronger, lambda b: _drop(b, CHECK["stronger"]), TWO_ATTACKS, "no records for this check"),
    (checks.noise, lambda b: _drop(b, CHECK["noise"]), TWO_ATTACKS, "no records for this check"),
    (checks.noise, lambda b: _drop(b, CHECK["stronger"]), TWO_ATTACKS, "no records for this check"),
    # what a run stores for a variant without a model to transfer from: a cell without arrays
    (checks.transfer, lambda b: {**b, ("cnn-batch", CHECK["transfer"]): {s: {} for s in SEEDS}}, TWO_ATTACKS,
     "no records for this check"),
    (checks.gradients, lambda b: _drop(b, CHECK["gradients"]), TWO_ATTACKS, "no records for this check"),
    (checks.repeat, lambda b: _drop(b, CHECK["repeat"]), TWO_ATTACKS, "no records for this check"),
    (checks.batch_composition, lambda b: _drop(b, CHECK["batch-composition"]), TWO_ATTACKS,
     "no records for this check"),
]


@pytest.mark.parametrize(("check", "change", "attacks", "text"), NA_CASES,
                         ids=[f"{c.__name__}-{i}" for i, (c, _, _, _) in enumerate(NA_CASES)])
def test_each_check_is_not_applicable_without_its_records(check: Callable[[Records], Check],
                                                          change: Callable[[Book], Book],
                                                          attacks: tuple[AttackSpec, ...], text: str) -> None:
    got = check(_records(change(_healthy()), _suite(attacks)))
    assert (got.status, got.detail) == ("n/a", text)


def test_eps_ball_measures_each_attack_in_its_own_norm() -> None:
    # the L-inf attacks' L2 size (8 eps) exceeds eps, the L2 attack's L-inf size (0.2) stays below its 0.5
    l2 = attack("pgd-l2", 0.5)
    suite = _suite((*TWO_ATTACKS, AttackSpec("pgd-l2", (0.5,))))

    def with_l2(size: float) -> Book:
        book = _healthy()
        for v in VARIANTS:
            for s in SEEDS:
                book[(v, l2)][s] = {**_outcome(_first(700)), "linf": np.full(N, 0.2), "l2": np.full(N, size)}
        return book

    inside, outside = (checks.eps_ball(_records(with_l2(0.5 + d), suite)) for d in (0.9e-6, 1.1e-6))
    assert (inside.status, outside.status) == ("pass", "fail")
    assert "9.0e-07 (20 records)" in inside.detail
    assert outside.detail == "a perturbation exceeds its eps by 1.10e-06"


def test_the_battery_passes_healthy_records_and_is_one_line_without_attacks() -> None:
    got = checks.run_checks(_records(_healthy()), CLASSIFY_CHECKS)
    assert [c.status for c in got] == ["pass"] * 11
    healthy = _records(_healthy())
    assert [c.name for c in got] == [c(healthy).name for c in checks.CHECKS if c.__name__ in CLASSIFY_CHECKS]
    assert checks.run_checks(_records(_healthy(), _suite(()))) == [
        Check("adversarial sanity checks", "n/a", "the suite runs no attack")]


# --- a real run with planted gradient masking ----------------------------------------------


class Quantized(CNN):
    """A CNN behind an input quantisation to 4 levels: torch.round has a zero gradient almost
    everywhere, so gradient attacks are blind while the model classifies well."""

    def __init__(self, in_shape, n_classes, norm):  # type: ignore[no-untyped-def]
        super().__init__(in_shape, n_classes, norm, channels=(16, 32))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return super().features(torch.round(x * 4) / 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(torch.round(x * 4) / 4)


class Saturated(CNN):
    """A CNN whose logits are scaled by 10^4 outside training: softmax saturates to exactly
    one-hot in float32, so the cross-entropy gradient vanishes on confidently classified examples."""

    def __init__(self, in_shape, n_classes, norm):  # type: ignore[no-untyped-def]
        super().__init__(in_shape, n_classes, norm, channels=(16, 32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = super().forward(x)
        return logits if self.training else logits * 1e4


@pytest.fixture(scope="module")
def planted_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One seed of cnn-none, cnn-batch (paired with cnn-none: it gets a transfer attack from it) and
    the two planted models (norm "none", so unpaired: their transfer cells hold nothing)."""
    models.register("quantized", Quantized)
    models.register("saturated", Saturated)
    try:
        base = suites.get("quickstart").with_overrides(seeds=(0,), variants=("cnn-none", "cnn-batch"), epochs=3)
        planted = (Variant("quantized-none", "quantized", "none"), Variant("saturated-none", "saturated", "none"))
        suite = dataclasses.replace(base, variants=(*base.variants, *planted))
        run_dir = tmp_path_factory.mktemp("planted") / "run"
        # in-process registrations do not reach worker processes: the serial executor
        summary = run(suite, run_dir, device="cpu", executor="serial", progress=False)
    finally:
        models.unregister("quantized")
        models.unregister("saturated")
    assert summary.ok, summary.failures
    return Path(run_dir)


@pytest.fixture(scope="module")
def report(planted_run: Path) -> dict:  # type: ignore[type-arg]
    return to_json(build_report(planted_run, n_resamples=100))


def _check(report: dict, start: str) -> dict:  # type: ignore[type-arg]
    return next(c for c in report["checks"] if c["name"].startswith(start))


def test_masked_gradients_are_flagged(report: dict) -> None:  # type: ignore[type-arg]
    grads = _check(report, "input gradients")
    assert grads["status"] == "fail"
    assert "quantized-none" in grads["detail"] and "saturated-none" in grads["detail"]
    assert "cnn-none" not in grads["detail"] and "cnn-batch" not in grads["detail"]


def test_a_blind_attack_does_not_reach_chance_at_large_eps(report: dict) -> None:  # type: ignore[type-arg]
    large = _check(report, "a large eps reaches chance")
    assert large["status"] == "fail"
    assert "quantized-none" in large["detail"] and "saturated-none" in large["detail"]
    assert "cnn-none" not in large["detail"] and "cnn-batch" not in large["detail"]


def test_logit_scale_alone_does_not_fail_batch_composition(report: dict) -> None:  # type: ignore[type-arg]
    # the saturated model's logits are 10^4 times larger, and so is their float rounding
    assert _check(report, "predictions do not depend on batch composition")["status"] == "pass"


def test_every_check_reports_its_numbers(report: dict) -> None:  # type: ignore[type-arg]
    assert len(report["checks"]) == 11
    for c in report["checks"]:
        assert c["status"] in ("pass", "fail", "n/a")
        if c["status"] != "n/a":
            assert any(ch.isdigit() for ch in c["detail"]), c
    # deterministic models, every attack's perturbation inside its ball, sweeps that never gain accuracy
    for start in ("eps = 0", "perturbations stay", "accuracy never rises", "repeated forward"):
        assert _check(report, start)["status"] == "pass", _check(report, start)


def test_a_paired_variant_gets_a_transfer_attack_weaker_than_white_box(report: dict,  # type: ignore[type-arg]
                                                                       planted_run: Path) -> None:
    transfer = _check(report, "a transfer attack")
    # one variant of four has a paired model to transfer from
    assert transfer == {**transfer, "status": "pass",
                        "detail": "the white-box attacks (worst case) are stronger for all 1 variants it applies to"}
    with Store(planted_run, create=False) as store:
        cells = {(c.variant, Condition.from_dict(c.condition).name): c for c in store.cells("eval")
                 if c.condition is not None and c.condition["kind"] in ("check", "clean")}
    assert {v for (v, name), c in cells.items() if name == "transfer" and c.arrays} == {"cnn-batch"}
    assert {v for (v, name), c in cells.items() if name == "transfer" and not c.arrays} == {
        "cnn-none", "quantized-none", "saturated-none"}
    # from the stored arrays: PGD transferred from cnn-none breaks some cnn-batch examples, fewer than
    # the white-box worst case breaks
    moved = cells[("cnn-batch", "transfer")].arrays["correct"].mean()
    white = cells[("cnn-batch", "stronger")].arrays["correct_base"].mean()
    assert white < moved < cells[("cnn-batch", "")].arrays["correct"].mean()


def test_stored_transfer_records_are_pgd_computed_on_the_paired_model(planted_run: Path, split) -> None:  # type: ignore[no-untyped-def]
    from harness.attacks import PGD
    from harness.data import as_tensor
    from harness.models import build_model
    from harness.seeding import torch_generator
    from harness.store import load_weights
    from harness.tasks.classify.evaluation import predict

    with Store(planted_run, create=False) as store:
        trained = {c.variant: c.key for c in store.cells("train", with_arrays=False)}
        stored = next(c for c in store.cells("eval") if c.variant == "cnn-batch" and c.condition is not None
                      and c.condition["name"] == "transfer").arrays["correct"]
    nets = {}
    for v, norm in (("cnn-none", "none"), ("cnn-batch", "batch")):
        nets[v] = build_model("cnn", norm, split.train.shape, split.train.n_classes, {"channels": (16, 32)}, None,
                              torch_generator(0, "init"))
        nets[v].load_state_dict(load_weights(planted_run, trained[v]))
        nets[v].eval()
    cond = CHECK["transfer"]
    x, y = as_tensor(split.test.x, "cpu"), as_tensor(split.test.y, "cpu")
    x_adv = PGD(eps=0.1, steps=10, restarts=1).perturb(nets["cnn-none"], x, y,
                                                         generator=torch_generator(0, cond.key))
    on_target = (predict(nets["cnn-batch"], x_adv, 512).argmax(1) == y).numpy()
    assert on_target.tolist() == stored.tolist()
    # the perturbation is the source's own adversarial one: white-box there, it breaks far more
    on_source = (predict(nets["cnn-none"], x_adv, 512).argmax(1) == y).numpy()
    assert on_source.mean() < on_target.mean() - 0.2


# --- the titles users read, and n/a where a check has no condition --------------------------

# the eleven titles of the battery, in report order, as the report prints them
TITLES = [
    "eps = 0 reproduces clean predictions",
    "perturbations stay inside the eps-ball",
    "accuracy never rises with eps",
    "PGD is at least as strong as FGSM, on average and per example",
    "a large eps reaches chance",
    "twice the steps of the strongest attack change robust accuracy little",
    "random noise of the same size is weaker than the attack",
    "a transfer attack from the paired variant is weaker than white-box",
    "input gradients are finite and non-zero",
    "repeated forward passes give identical logits",
    "predictions do not depend on batch composition",
]


def test_the_battery_has_the_eleven_titles_in_order() -> None:
    got = checks.run_checks(_records(_healthy()), CLASSIFY_CHECKS)
    assert [c.name for c in got] == TITLES
    assert [c.status for c in got] == ["pass"] * 11


def test_a_suite_with_its_checks_off_gets_n_a_for_each_check_condition() -> None:
    """checks=False: the run stores no records of the check conditions, so the seven checks
    that read them say n/a; the four that read the attack sweeps still judge them."""
    suite = _suite()
    suite["evaluation"]["checks"] = False
    assert not set(Suite.from_dict(suite).conditions()) & set(CHECK.values())  # nothing of them is run
    got = checks.run_checks(_records(_drop(_healthy(), *CHECK.values()), suite), CLASSIFY_CHECKS)
    assert got == [Check(t, "pass", c.detail) for t, c in zip(TITLES[:4], got[:4], strict=True)] + [
        Check(t, "n/a", "no records for this check") for t in TITLES[4:]]


# Each check called on its own for a suite that runs no attack (run_checks gives such a suite one
# line; a caller of a single check gets n/a, not an error): no check condition exists, so even
# the records of the healthy run under the check conditions' keys are not read.
NO_ATTACK = [
    (checks.eps_zero, Check(TITLES[0], "n/a", "no attack was run at eps = 0")),
    (checks.eps_ball, Check(TITLES[1], "n/a", "no records for this check")),
    (checks.monotone, Check(TITLES[2], "n/a", "no records for this check")),
    (checks.pgd_beats_fgsm, Check("PGD is at least as strong as FGSM, on average and per example", "n/a",
                                  "the suite does not run both fgsm and pgd-linf")),
    (checks.large_eps, Check(TITLES[4], "n/a", "no records for this check")),
    (checks.stronger, Check(TITLES[5], "n/a", "no records for this check")),
    (checks.noise, Check(TITLES[6], "n/a", "no records for this check")),
    (checks.transfer, Check(TITLES[7], "n/a", "no records for this check")),
    (checks.gradients, Check(TITLES[8], "n/a", "no records for this check")),
    (checks.repeat, Check(TITLES[9], "n/a", "no records for this check")),
    (checks.batch_composition, Check(TITLES[10], "n/a", "no records for this check")),
]


@pytest.mark.parametrize(("check", "expected"), NO_ATTACK, ids=[c.__name__ for c, _ in NO_ATTACK])
def test_each_check_alone_is_not_applicable_to_a_suite_without_attacks(check: Callable[[Records], Check],
                                                                       expected: Check) -> None:
    records = _records(_healthy(), _suite(()))
    assert all(records.check(name) is None for name in CHECK)
    assert check(records) == expected


# --- a denoiser's records: the checks that read a PGD sweep on the denoising loss ----------------


DENOISE_PGD = (AttackSpec("pgd-linf", (0.0, 0.05, 0.1), (("steps", 10),)),)
D0, D5, D10 = (attack("pgd-linf", e, (("steps", 10),)) for e in (0.0, 0.05, 0.1))


def _denoiser_records(losses: dict[Condition, float], linf: float = 0.05, eps0_shift: float = 0.0) -> Records:
    """Records of a denoise suite's sweep: per-example losses ``losses[cond]`` (plus a fixed spread),
    the clean loss 1.0; at eps 0 the clean losses exactly, moved by ``eps0_shift`` on one example;
    every perturbation of size ``linf`` (0 at eps 0)."""
    spread = np.linspace(-0.1, 0.1, N)
    evals: dict[tuple[str, str], dict[int, Cell]] = defaultdict(dict)
    for v in VARIANTS:
        for s in SEEDS:
            evals[(v, clean().key)][s] = Cell("", "eval", v, s, {}, {}, condition=clean().to_dict(),
                                              arrays={"denoise_loss": 1.0 + spread})
            for cond, loss in losses.items():
                arrays = {"denoise_loss": loss + spread, "linf": np.full(N, linf if cond.param("eps") else 0.0),
                          "l2": np.zeros(N)}
                if cond.param("eps") == 0:
                    arrays["denoise_loss"] = (1.0 + spread).copy()
                    arrays["denoise_loss"][0] += eps0_shift
                evals[(v, cond.key)][s] = Cell("", "eval", v, s, {}, {"norm": "linf"}, condition=cond.to_dict(),
                                               arrays=arrays)
    suite = json.loads(json.dumps(dataclasses.replace(
        Suite.from_dict(_suite()), evaluation=dataclasses.replace(Suite.from_dict(_suite()).evaluation,
                                                                  attacks=DENOISE_PGD, checks=False)).to_dict()))
    return Records(evals, list(VARIANTS), suite, [("cnn-batch", "cnn-none")], "denoise_loss", False)


def test_a_denoisers_sweep_passes_the_checks_when_its_loss_only_grows_with_eps() -> None:
    r = _denoiser_records({D0: 1.0, D5: 1.5, D10: 2.0})
    assert checks.eps_zero(r) == Check("eps = 0 reproduces clean losses", "pass",
                                       "0 of 4000 per-example losses differ across 4 records")
    assert checks.monotone(r) == Check("the loss never falls with eps", "pass",
                                       "non-decreasing in all 2 (variant, attack) sweeps")
    assert checks.eps_ball(r).status == "pass"


def test_a_denoisers_sweep_fails_where_the_loss_falls_or_eps_0_moves_it() -> None:
    falls = checks.monotone(_denoiser_records({D0: 1.0, D5: 1.5, D10: 1.4}))
    assert falls.status == "fail" and falls.detail.startswith("cnn-none pgd-linf eps 0.05->0.1: 1.5 -> 1.4")
    # a fall of 1e-9 in the mean is beyond the tolerance of 1e-12; the same rise is no failure
    assert checks.monotone(_denoiser_records({D0: 1.0, D5: 1.5, D10: 1.5 - 1e-9})).status == "fail"
    assert checks.monotone(_denoiser_records({D0: 1.0, D5: 1.5, D10: 1.5 + 1e-9})).status == "pass"
    moved = checks.eps_zero(_denoiser_records({D0: 1.0, D5: 1.5, D10: 2.0}, eps0_shift=1e-7))
    assert moved == Check("eps = 0 reproduces clean losses", "fail",
                          "4 of 4000 per-example losses differ across 4 records")
    outside = checks.eps_ball(_denoiser_records({D0: 1.0, D5: 1.5, D10: 2.0}, linf=0.06))
    assert outside == Check("perturbations stay inside the eps-ball", "fail",
                            "a perturbation exceeds its eps by 1.00e-02")


def test_the_denoise_task_runs_the_checks_that_read_its_sweep() -> None:
    from harness.registry import tasks

    denoise, classify = tasks.get("denoise"), tasks.get("classify")
    assert denoise.checks == ("eps_zero", "eps_ball", "monotone", "stronger") and denoise.outcome == "denoise_loss"
    r = _denoiser_records({D0: 1.0, D5: 1.5, D10: 2.0})
    assert [c.name for c in checks.run_checks(r, denoise.checks)] == [
        "eps = 0 reproduces clean losses", "perturbations stay inside the eps-ball", "the loss never falls with eps",
        "twice the steps of the attack raise the loss little"]
    assert len(checks.run_checks(_records(_healthy()), classify.checks)) == 11


def _stronger_denoiser_records(base: float, more: float) -> Records:
    """The diffusion suite's reduced size (PGD at eps 0 and 0.05): per variant and seed, a "stronger"
    check cell whose mean loss is ``base`` over the sweep and ``more`` with twice the steps."""
    suite = suites.get("diffusion").with_size("reduced")
    (cond,) = [c for c in suite.conditions() if c.kind == "check"]
    assert cond == check("stronger", eps=0.05)  # at the largest eps of the sweep
    spread = np.linspace(-0.1, 0.1, N)
    evals: Evals = defaultdict(dict)
    for v in ("unet-none", "unet-group"):
        for s in suite.seeds:
            evals[(v, cond.key)][s] = Cell("", "eval", v, s, {}, {}, condition=cond.to_dict(), arrays={
                "denoise_loss_base": base + spread, "denoise_loss": more + spread})
    return Records(evals, ["unet-none", "unet-group"], json.loads(json.dumps(suite.to_dict())),
                   [("unet-group", "unet-none")], "denoise_loss", False)


def test_twice_the_steps_may_raise_a_denoisers_loss_by_two_percent_of_itself() -> None:
    title = "twice the steps of the attack raise the loss little"
    assert checks.stronger(_stronger_denoiser_records(2.0, 2.03)) == Check(
        title, "pass", "largest relative rise 1.5% at eps 0.05 over 2 variants (allowed 2.0% of the loss)")
    assert checks.stronger(_stronger_denoiser_records(2.0, 2.0)).status == "pass"
    assert checks.stronger(_stronger_denoiser_records(2.0, 2.039)).status == "pass"  # just inside 2%
    assert checks.stronger(_stronger_denoiser_records(2.0, 2.041)) == Check(
        title, "fail", "worst case over the suite's attacks, then with the strongest one run again with twice its "
        "steps at eps 0.05: unet-none: 2 -> 2.041; unet-group: 2 -> 2.041 (allowed 2.0% of the loss): the attacks "
        "have not converged, so the attacked losses are underestimated; give pgd-linf more steps or restarts")
    # a fall of the loss (impossible: the doubled attack's loss is the worse of both) is no failure either
    assert checks.stronger(_stronger_denoiser_records(2.0, 1.5)).status == "pass"


def test_an_unconverged_attack_fails_the_stronger_check_with_the_whole_explanation() -> None:
    got = checks.stronger(_records(_set(_healthy(), CHECK["stronger"], correct=_first(479))))
    assert got.detail == ("worst case over the suite's attacks, then with the strongest one run again with twice its "
                          "steps at eps 0.1: cnn-batch: 50.0% -> 47.9% (allowed 2.0%): the attacks have not "
                          "converged, so robust accuracies are overestimated; add restarts or a stronger attack "
                          "such as apgd-ce")


def test_an_attack_record_that_names_no_norm_is_measured_in_linf() -> None:
    r = _records(_healthy())
    for cells in r.evals.values():
        for c in cells.values():
            c.result.pop("norm", None)  # records made before attacks recorded their norm
    assert checks.eps_ball(r).status == "pass"
