"""Tests for harness.reports.build's aggregate conditions: the worst case over attacks (an example counts
as robust only if every attack at that (norm, eps) left it correct) and the mean over shifts
(per example, the share of shift conditions it survives).

First on hand-made records whose per-example outcomes are known, against the definition
written out independently; then end to end, on the stored per-attack records of a small real
run, against the numbers its report leads with."""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from harness.registry import suites
from harness.reports.build import _aggregates, build_report
from harness.reports.checks import Evals
from harness.reports.content import compact_columns, headline
from harness.reports.rows import mean_shift
from harness.reports.vocabulary import fmt
from harness.runner import run
from harness.specs import AttackSpec, Condition, Suite, attack, shift
from harness.store import Cell, Store


def _cell(variant: str, seed: int, cond: Condition, norm: str = "linf", **arrays: Any) -> Cell:
    """An evaluation cell as the runner stores it: an attack's result names its norm."""
    return Cell("", "eval", variant, seed, {}, {"norm": norm} if cond.kind == "attack" else {},
                condition=cond.to_dict(), arrays={k: np.asarray(a) for k, a in arrays.items()})


def _evals(outcomes: dict[tuple[str, int, Condition], np.ndarray], norms: dict[str, str] | None = None,
           array: str = "correct") -> Evals:
    """Records keyed as build_report keys them: (variant, condition key) -> seed -> cell."""
    evals: Evals = defaultdict(dict)
    for (v, s, cond), values in outcomes.items():
        evals[(v, cond.key)][s] = _cell(v, s, cond, (norms or {}).get(cond.name, "linf"), **{array: values})
    return evals


def _worst(eps: float, norm: str = "linf") -> Condition:
    return Condition("attack", "worst-case", (("eps", eps), ("norm", norm)))


FGSM, PGD, APGD = attack("fgsm", 0.1), attack("pgd-linf", 0.1, (("steps", 10),)), attack("apgd-ce", 0.1)


def test_worst_case_is_robust_only_where_every_attack_failed_to_break() -> None:
    # ten examples: FGSM breaks 8 and 9, PGD breaks 6 and 7, APGD breaks 0 (worked out by hand)
    ok = {FGSM: [1, 1, 1, 1, 1, 1, 1, 1, 0, 0],
          PGD: [1, 1, 1, 1, 1, 1, 0, 0, 1, 1],
          APGD: [0, 1, 1, 1, 1, 1, 1, 1, 1, 1]}
    evals = _evals({("m", 0, c): np.array(v, dtype=bool) for c, v in ok.items()})
    added = _aggregates([FGSM, PGD, APGD], evals, ["m"], (0,))
    assert added == [_worst(0.1)]
    assert _worst(0.1).key == "attack:worst-case:eps=0.1,norm=linf"
    worst = evals[("m", _worst(0.1).key)][0].arrays["correct"]
    assert worst.tolist() == [False, True, True, True, True, True, False, False, False, False]
    # 50%: below every single attack (80%, 80%, 90%), neither "broken by all" (100%) nor their mean (83%)
    assert worst.mean() == 0.5


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_worst_case_equals_the_per_example_definition_on_random_records(seed: int) -> None:
    rng = np.random.default_rng(seed)
    conds = [attack(a, e) for e in (0.05, 0.1) for a in ("fgsm", "pgd-linf", "apgd-ce")]
    names, seeds, n = ["a", "b"], (0, 3, 7), 300
    # attacks of different strengths breaking partly overlapping examples
    outcomes = {(v, s, c): rng.random(n) > rng.uniform(0.2, 0.6) for v in names for s in seeds for c in conds}
    evals = _evals(outcomes)
    added = _aggregates(conds, evals, names, seeds)
    assert sorted(c.key for c in added) == sorted(_worst(e).key for e in (0.05, 0.1))
    for v in names:
        for s in seeds:
            for e in (0.05, 0.1):
                per_attack = [outcomes[(v, s, c)] for c in conds if c.param("eps") == e]
                # robust only if correct under every attack, written out example by example
                expected = [all(bool(ok[i]) for ok in per_attack) for i in range(n)]
                got = evals[(v, _worst(e).key)][s].arrays["correct"]
                assert got.tolist() == expected
                assert got.mean() <= min(ok.mean() for ok in per_attack)


def test_attacks_of_different_norms_at_the_same_eps_are_separate_worst_cases() -> None:
    linf = [attack("fgsm", 0.5), attack("pgd-linf", 0.5)]
    l2 = [attack("pgd-l2", 0.5), attack("apgd-ce", 0.5, (("norm", "l2"),))]
    norms = {"pgd-l2": "l2"}
    # the L-inf attacks break examples 0-3, the L2 attacks examples 4-7: mixing them would change both
    ok = {linf[0]: [0, 0, 1, 1, 1, 1, 1, 1, 1, 1], linf[1]: [1, 0, 0, 0, 1, 1, 1, 1, 1, 1],
          l2[0]: [1, 1, 1, 1, 0, 0, 1, 1, 1, 1], l2[1]: [1, 1, 1, 1, 1, 0, 0, 0, 1, 1]}
    evals = _evals({("m", 0, c): np.array(v, dtype=bool) for c, v in ok.items()}, norms)
    evals[("m", l2[1].key)][0] = _cell("m", 0, l2[1], "l2", correct=np.array(ok[l2[1]], dtype=bool))
    added = _aggregates([*linf, *l2], evals, ["m"], (0,))
    assert sorted(c.key for c in added) == sorted([_worst(0.5).key, _worst(0.5, "l2").key])
    assert evals[("m", _worst(0.5).key)][0].arrays["correct"].tolist() == [0, 0, 0, 0, 1, 1, 1, 1, 1, 1]
    assert evals[("m", _worst(0.5, "l2").key)][0].arrays["correct"].tolist() == [1, 1, 1, 1, 0, 0, 0, 0, 1, 1]


def test_a_single_attack_at_an_eps_gets_no_worst_case_row() -> None:
    fgsm = [attack("fgsm", 0.1), attack("fgsm", 0.2)]
    pgd = attack("pgd-linf", 0.1)
    l2 = attack("pgd-l2", 0.1)  # alone in its norm at 0.1, beside two L-inf attacks
    conds = [*fgsm, pgd, l2]
    rng = np.random.default_rng(0)
    evals = _evals({("m", 0, c): rng.random(50) > 0.3 for c in conds}, {"pgd-l2": "l2"})
    before = set(evals)
    assert _aggregates(conds, evals, ["m"], (0,)) == [_worst(0.1)]
    assert set(evals) - before == {("m", _worst(0.1).key)}


def test_no_worst_case_for_a_seed_that_lacks_an_attack_record() -> None:
    rng = np.random.default_rng(1)
    outcomes = {(v, s, c): rng.random(40) > 0.3 for v in ("a", "b") for s in (0, 1) for c in (FGSM, PGD)}
    del outcomes[("a", 1, PGD)]  # that cell failed: a worst case over FGSM alone would overstate robustness
    evals = _evals(outcomes)
    _aggregates([FGSM, PGD], evals, ["a", "b"], (0, 1))
    assert sorted(evals[("a", _worst(0.1).key)]) == [0]
    assert sorted(evals[("b", _worst(0.1).key)]) == [0, 1]


def test_a_denoisers_worst_case_is_its_largest_loss_per_example() -> None:
    # two PGDs at one eps on a denoiser: the worst case is the higher denoising loss, not a truth value
    a, b = attack("pgd-linf", 0.1, (("steps", 10),)), attack("pgd-linf", 0.1, (("steps", 50),))
    evals = _evals({("d", 0, a): np.array([0.2, 0.5, 0.3]), ("d", 0, b): np.array([0.3, 0.4, 0.3])},
                   array="denoise_loss")
    assert _aggregates([a, b], evals, ["d"], (0,), "denoise") == [_worst(0.1)]
    assert evals[("d", _worst(0.1).key)][0].arrays["denoise_loss"].tolist() == [0.3, 0.5, 0.3]


def test_mean_over_shifts_is_the_per_example_share_of_shift_conditions_survived() -> None:
    frozen = [shift("gaussian-noise", 1), shift("gaussian-noise", 3), shift("contrast", 2)]
    batch = [shift("gaussian-noise", 1, "batch"), shift("contrast", 2, "batch")]
    ok = {frozen[0]: [1, 1, 1, 0], frozen[1]: [1, 0, 1, 0], frozen[2]: [1, 1, 0, 0],
          batch[0]: [0, 0, 1, 1], batch[1]: [0, 1, 1, 1]}
    evals = _evals({(v, s, c): np.array(o, dtype=bool) for v in ("a", "b") for s in (0, 1) for c, o in ok.items()})
    conds = [Condition("clean"), *frozen, *batch, FGSM]
    added = _aggregates(conds, evals, ["a", "b"], (0, 1))
    assert added == [mean_shift("frozen"), mean_shift("batch")]
    assert mean_shift("batch").key == "shift:all:bn=batch"
    for v in ("a", "b"):
        for s in (0, 1):
            # each BatchNorm mode averages its own conditions only (worked out by hand)
            assert evals[(v, mean_shift().key)][s].arrays["correct"].tolist() == pytest.approx([1, 2 / 3, 2 / 3, 0])
            assert evals[(v, mean_shift("batch").key)][s].arrays["correct"].tolist() == [0, 0.5, 1, 1]
    # and so its accuracy is the mean of the shifts' accuracies
    got = evals[("a", mean_shift().key)][0].arrays["correct"].mean()
    assert got == pytest.approx(np.mean([np.mean(ok[c]) for c in frozen]), abs=1e-12)


def test_a_denoisers_mean_over_shifts_averages_its_loss() -> None:
    conds = [shift("gaussian-noise", 1), shift("contrast", 2)]
    evals = _evals({("d", 0, conds[0]): np.array([0.1, 0.4]), ("d", 0, conds[1]): np.array([0.3, 0.2])},
                   array="denoise_loss")
    assert _aggregates(conds, evals, ["d"], (0,), "denoise") == [mean_shift()]
    assert evals[("d", mean_shift().key)][0].arrays["denoise_loss"] == pytest.approx([0.2, 0.3])


# --- end to end: a small real run ------------------------------------------------------------

EPS = (0.0, 0.05, 0.1)
LINF = (AttackSpec("fgsm", EPS), AttackSpec("pgd-linf", EPS, (("restarts", 1), ("steps", 10))),
        AttackSpec("apgd-ce", EPS, (("steps", 20),)))
VARIANTS = ("cnn-none", "cnn-batch")
SEEDS = (0, 1)


@pytest.fixture(scope="module")
def real_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two variants, two seeds, three L-inf attacks at three eps and an L2 attack at one of
    them, two shift conditions; no OOD sets and no sanity checks (not read here)."""
    base = suites.get("quickstart").with_overrides(seeds=SEEDS, variants=VARIANTS, epochs=2)
    ev = dataclasses.replace(base.evaluation, shifts=("gaussian-noise",), severities=(1, 4), ood_sets=(),
                             attacks=(*LINF, AttackSpec("pgd-l2", (0.1,))), checks=False)
    d = tmp_path_factory.mktemp("aggregates") / "run"
    summary = run(dataclasses.replace(base, evaluation=ev), d, device="cpu", executor="serial", progress=False)
    assert summary.ok, summary.failures
    return d


def _linf_keys(eps: float) -> list[str]:
    return [attack(a.name, eps, a.params).key for a in LINF]


def _stored(run_dir: Path) -> dict[tuple[str, int, str], dict[str, np.ndarray]]:
    """(variant, seed, condition key) -> arrays, straight from the store."""
    with Store(run_dir, create=False) as store:
        return {(c.variant, c.seed, Condition.from_dict(c.condition).key): c.arrays
                for c in store.cells("eval") if c.status == "done" and c.condition is not None}


def test_reported_worst_case_equals_the_stored_per_attack_records(real_run: Path) -> None:
    stored = _stored(real_run)
    report = build_report(real_run, n_resamples=50)
    acc = {(r.variant, r.condition.key): r.estimate for r in report.estimates if r.metric == "accuracy"}
    worst_rows = {r.condition for r in report.estimates if r.condition.name == "worst-case"}
    # one L-inf worst case per eps; the lone L2 attack at eps 0.1 gets none, and is not mixed in
    assert worst_rows == {_worst(e) for e in EPS}
    assert (VARIANTS[0], attack("pgd-l2", 0.1).key) in acc
    strictly_below, expected = 0, {}
    for v in VARIANTS:
        for e in EPS:
            keys = _linf_keys(e)
            per_seed = []
            for s in SEEDS:
                per_attack = [stored[(v, s, k)]["correct"] for k in keys]
                robust = np.logical_and.reduce(per_attack)  # broken by any attack = not robust
                per_seed.append(robust.mean())
                assert robust.mean() <= min(ok.mean() for ok in per_attack)
            est = acc[(v, _worst(e).key)]
            assert est.n_seeds == len(SEEDS) and est.n_examples == len(robust)
            assert est.value == pytest.approx(np.mean(per_seed), abs=1e-12)
            expected[(v, _worst(e).key)] = float(np.mean(per_seed))
            assert est.value <= min(acc[(v, k)].value for k in keys) + 1e-12
            strictly_below += est.value < min(acc[(v, k)].value for k in keys) - 1e-12
    # the attacks break different examples in this run, so the worst case is informative
    assert strictly_below >= 1
    # at eps = 0 nothing is attacked: the worst case is clean accuracy
    for v in VARIANTS:
        assert acc[(v, _worst(0.0).key)].value == pytest.approx(acc[(v, "clean")].value, abs=1e-12)
    # the terminal's robustness column is this number
    cols = compact_columns(report)
    assert cols[-1][1] in {_worst(e).key for e in EPS}
    rows = headline(report, cols).rows
    assert [r[0] for r in rows] == list(VARIANTS)
    for row in rows:
        assert row[-1].startswith(fmt(expected[(row[0], cols[-1][1])], "accuracy") + " ")


def test_aggregates_of_the_stored_records_match_per_variant_and_seed(real_run: Path) -> None:
    with Store(real_run, create=False) as store:
        conds = [c for c in Suite.from_dict(store.get_meta("suite")).conditions() if c.kind != "check"]
        evals: Evals = defaultdict(dict)
        for c in store.cells("eval"):
            assert c.condition is not None
            evals[(c.variant, Condition.from_dict(c.condition).key)][c.seed] = c
    stored = _stored(real_run)
    _aggregates(conds, evals, list(VARIANTS), SEEDS)
    shifts = [shift("gaussian-noise", 1).key, shift("gaussian-noise", 4).key]
    for v in VARIANTS:
        for s in SEEDS:
            for e in EPS:
                per_attack = [stored[(v, s, k)]["correct"] for k in _linf_keys(e)]
                expected = np.logical_and.reduce(per_attack)
                assert evals[(v, _worst(e).key)][s].arrays["correct"].tolist() == expected.tolist()
            mean = (stored[(v, s, shifts[0])]["correct"].astype(float) + stored[(v, s, shifts[1])]["correct"]) / 2
            assert evals[(v, mean_shift().key)][s].arrays["correct"] == pytest.approx(mean)


def test_reported_mean_over_shifts_equals_the_stored_shift_records(real_run: Path) -> None:
    stored = _stored(real_run)
    report = build_report(real_run, n_resamples=50)
    acc = {(r.variant, r.condition.key): r.estimate.value for r in report.estimates if r.metric == "accuracy"}
    keys = [shift("gaussian-noise", 1).key, shift("gaussian-noise", 4).key]
    for v in VARIANTS:
        expected = np.mean([np.mean([stored[(v, s, k)]["correct"].mean() for k in keys]) for s in SEEDS])
        assert acc[(v, mean_shift().key)] == pytest.approx(expected, abs=1e-12)


def test_the_mean_over_a_single_shift_condition_is_that_conditions_outcome() -> None:
    one = shift("gaussian-noise", 3)
    evals = _evals({("a", 0, one): np.array([True, False, True])})
    assert _aggregates([Condition("clean"), one], evals, ["a"], (0,)) == [mean_shift()]
    cell = evals[("a", mean_shift().key)][0]
    assert (cell.variant, cell.seed, cell.arrays["correct"].tolist()) == ("a", 0, [1.0, 0.0, 1.0])
