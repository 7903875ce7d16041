"""A model that fails fails alone, and a model whose weights cannot be used is trained again.

Real models on the real digits, run by the runner (serial executor: plugins registered here exist in
this process only). A variant whose weights are NaN fails each of its evaluation cells with the
reason, while the other variant's records are bit-identical to a run without it; outputs that
overflow to inf fail the conditions they reach and no other; an attack that raises, and one whose
summary cannot be written, fail their own cells, and every other cell (the sanity checks that reread
the attack sweeps included) is bit-identical to a run without them. No done cell ever holds NaN or
inf, and the report builds and lists every failed cell. The command line exits 1 for failed cells,
still writes the report, and `harness report` rebuilds it (exit 0) naming them.

A finished run whose weights file is truncated, altered, deleted or replaced by another model's is
repaired by running it again: the model is trained again bit for bit (weights file and training
record) and its missing evaluation cells are evaluated, ending with exactly the records of the
untouched run; a cell that meets such a file fails with a hint that says so."""

from __future__ import annotations

import dataclasses
import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from runs import untimed
from safetensors.torch import save_file

from harness.attacks import FGSM
from harness.errors import ConfigError
from harness.models import MLP, build_model
from harness.registry import attacks, models
from harness.reports.build import build_report
from harness.reports.render import to_json
from harness.runner import RunSummary, plan, prepare, run
from harness.seeding import torch_generator
from harness.specs import AttackSpec, Condition, EvalSpec, Suite, TrainSpec, Variant
from harness.store import Store, weights_path
from harness.worker import RETRAIN_HINT, evaluate_unit, load_model, nonfinite

MLP_NONE = Variant("mlp-none", "mlp", "none")
MLP_BATCH = Variant("mlp-batch", "mlp", "batch")
FGSM_KEY = "attack:fgsm:eps=0.1"
NAN_LOGITS = ("ValueError: the model's logits hold NaN or inf for {n} of {n} inputs (NaN or inf weights or inputs, "
              "or an overflow)")


def _suite(variants: tuple[Variant, ...], attacks: tuple[AttackSpec, ...] = (AttackSpec("fgsm", (0.1,)),),
           checks: bool = False) -> Suite:
    """MLPs on the digits, one seed, two epochs; clean, a shift, an OOD set and attacks."""
    return Suite("failures", "1", "models that fail", "digits", variants, (0,),
                 train=TrainSpec(epochs=2, target_accuracy=0.8),
                 evaluation=EvalSpec(shifts=("gaussian-noise",), severities=(3,), ood_sets=("faces",),
                                     attacks=attacks, checks=checks))


def _run(suite: Suite, run_dir: Path) -> RunSummary:
    return run(suite, run_dir, device="cpu", executor="serial", progress=False)


def _cells(run_dir: Path) -> dict[str, Any]:
    with Store(run_dir, create=False) as store:
        return {c.key: c for c in store.cells()}


def _by_condition(run_dir: Path, variant: str) -> dict[str, Any]:
    """The evaluation cells of ``variant``, by condition key."""
    return {Condition.from_dict(c.condition).key: c for c in _cells(run_dir).values()
            if c.kind == "eval" and c.variant == variant}


def _same_arrays(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> bool:
    """The same arrays, bit for bit, but those measured in time (an inference cost's latencies)."""
    return a.keys() == b.keys() and all(a[n].dtype == b[n].dtype and np.array_equal(a[n], b[n]) for n in untimed(a))


def _no_done_cell_holds_nonfinite(run_dir: Path) -> None:
    for c in _cells(run_dir).values():
        if c.kind == "eval" and c.status == "done":
            for name, a in c.arrays.items():
                assert a.dtype.kind not in "fc" or np.isfinite(a).all(), f"{c.variant} {c.condition} {name}"


def _first_line(text: str | None) -> str:
    return (text or "").splitlines()[0]


@pytest.fixture(scope="module")
def nan_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An mlp-none state dict (the digits' shape) with every value NaN, as a .safetensors file."""
    model = build_model("mlp", "none", (1, 8, 8), 10, {}, None, torch_generator(0, "init"))
    path = tmp_path_factory.mktemp("nan") / "nan.safetensors"
    save_file({k: torch.full_like(v, float("nan")) for k, v in model.state_dict().items()}, str(path))
    return path


@pytest.fixture(scope="module")
def alone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """mlp-none run without any other variant: what its records are when nothing else fails."""
    d = tmp_path_factory.mktemp("alone") / "run"
    assert _run(_suite((MLP_NONE,)), d).ok
    return d


# --- non-finite outputs ---------------------------------------------------------------------------


def test_nan_weights_fail_each_of_their_cells_and_the_other_variant_is_untouched(nan_file: Path, alone: Path,
                                                                                 tmp_path: Path) -> None:
    nan = Variant("mlp-nan", "mlp", "none", weights=str(nan_file))
    suite = _suite((MLP_NONE, nan))
    summary = _run(suite, tmp_path / "run")
    conditions = [c.key for c in suite.conditions()]
    assert summary.trained == 2 and summary.evaluated == len(conditions)  # the NaN model loads; mlp-none evaluates
    n = len(_by_condition(alone, "mlp-none")["clean"].arrays["correct"])
    assert 440 < n < 460  # a quarter of the 1,797 digits
    want = NAN_LOGITS.format(n=n)
    assert sorted(summary.failures) == sorted((f"eval mlp-nan seed 0 {k}", want) for k in conditions)

    failed = _by_condition(tmp_path / "run", "mlp-nan")
    assert sorted(failed) == sorted(conditions)  # every condition has its own failed cell, with the reason
    for key, cell in failed.items():
        assert (cell.status, cell.result, cell.arrays, _first_line(cell.error)) == ("failed", {}, {}, want), key
    kept, ref = _by_condition(tmp_path / "run", "mlp-none"), _by_condition(alone, "mlp-none")
    assert kept.keys() == ref.keys() and all(c.status == "done" for c in kept.values())
    for key, cell in ref.items():
        assert _same_arrays(kept[key].arrays, cell.arrays), key
        assert untimed(kept[key].result) == untimed(cell.result), key
    _no_done_cell_holds_nonfinite(tmp_path / "run")

    res = to_json(build_report(tmp_path / "run", n_resamples=100))  # the report builds and lists each failure
    for key in conditions:
        assert sum(x.startswith(f"mlp-nan seed 0, {key}: evaluation failed (ValueError: the model's logits hold "
                                "NaN or inf") for x in res["excluded"]) == 1, key
    assert {e["variant"] for e in res["estimates"]} == {"mlp-none"}


class Overflow(MLP):
    """An MLP that trains as any other and, in eval mode, answers +-3e38 (finite float32 logits, the
    argmax of the MLP's): the cross-entropy of an example it gets wrong overflows to inf, while the
    softmax (the OOD score) stays finite. (No gradient flows through it: no attacks.)"""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = super().forward(x)
        if self.training:
            return logits
        top = logits == logits.max(1, keepdim=True).values
        return torch.where(top, torch.tensor(3e38), torch.tensor(-3e38))


def test_outputs_that_overflow_fail_the_conditions_they_reach_and_no_other(alone: Path, tmp_path: Path) -> None:
    models.register("overflow", Overflow)
    try:
        summary = _run(_suite((Variant("overflow-none", "overflow", "none"),), attacks=()), tmp_path / "run")
    finally:
        models.unregister("overflow")
    cells = _by_condition(tmp_path / "run", "overflow-none")
    ref = _by_condition(alone, "mlp-none")  # the same network: same init and training, the argmax unchanged
    wrong = {k: int((~ref[k].arrays["correct"]).sum()) for k in ("clean", "shift:gaussian-noise:severity=3")}
    n = len(ref["clean"].arrays["correct"])
    assert all(0 < w < n for w in wrong.values()), wrong
    for key, w in wrong.items():  # the loss of each example it gets wrong is inf
        assert cells[key].status == "failed", key
        assert _first_line(cells[key].error) == f"ValueError: the outcome holds NaN or inf: loss ({w} of {n})", key
    ood = [k for k in cells if k.startswith("ood:")]
    assert ood and all(cells[k].status == "done" and cells[k].result["auroc"] == 0.5 for k in ood)
    # the membership attack's losses are float64, where these logits do not overflow; the cost never reads outputs
    assert cells["membership:loss"].status == "done" and 0 <= cells["membership:loss"].result["membership_auroc"] <= 1
    assert cells["cost"].status == "done"
    assert set(cells) == {*wrong, *ood, "membership:loss", "cost"}
    assert len(summary.failures) == len(wrong)
    _no_done_cell_holds_nonfinite(tmp_path / "run")


def test_nonfinite_names_each_array_and_summary_number_that_is_nan_or_inf() -> None:
    arrays = {"loss": np.array([0.5, np.nan, np.inf]), "score": np.array([1.0, -np.inf], dtype=np.float32),
              "correct": np.array([True, False, True]), "pred": np.array([1, 2, 3]), "fine": np.zeros(4)}
    assert nonfinite(arrays) == "loss (2 of 3), score (1 of 2)"
    summary = {"accuracy": 0.5, "n": 3, "settings": {"eps": float("inf"), "steps": 10, "name": "pgd"},
               "curve": [0.1, float("nan")], "not_applicable": True}
    assert nonfinite({}, summary) == "settings.eps (inf), curve[1] (nan)"
    assert nonfinite({"fine": np.zeros(4), "correct": np.ones(2, bool)}, {"accuracy": 1.0, "eps": 0.1}) is None


# --- exceptions in one condition ------------------------------------------------------------------


@dataclass(frozen=True)
class Broken:
    """An L-inf attack whose every perturbation fails."""

    eps: float
    norm: str = "linf"

    def perturb(self, model: Any, x: torch.Tensor, y: torch.Tensor, generator: Any = None) -> torch.Tensor:
        raise RuntimeError("this attack is broken on purpose")


@dataclass(frozen=True)
class Locked(FGSM):
    """FGSM with a field that cannot be copied: its records are FGSM's, but the summary that lists an
    attack's settings (dataclasses.asdict) fails."""

    lock: Any = field(default_factory=threading.Lock)


def test_an_attack_that_fails_fails_alone_and_the_checks_that_reread_the_sweeps_are_unchanged(tmp_path: Path) -> None:
    pgd = AttackSpec("pgd-linf", (0.05, 0.1))
    attacks.register("broken-linf", Broken)
    attacks.register("locked-fgsm", Locked)
    try:  # evaluation stops at broken-linf (the checks come after it); locked-fgsm's summary fails
        summary = _run(_suite((MLP_NONE,), (pgd, AttackSpec("locked-fgsm", (0.1,)), AttackSpec("broken-linf", (0.1,))),
                              checks=True), tmp_path / "run")
    finally:
        attacks.unregister("broken-linf")
        attacks.unregister("locked-fgsm")
    assert _run(_suite((MLP_NONE,), (pgd, AttackSpec("fgsm", (0.1,))), checks=True), tmp_path / "reference").ok
    got, ref = _by_condition(tmp_path / "run", "mlp-none"), _by_condition(tmp_path / "reference", "mlp-none")
    assert sorted((k, _first_line(c.error)) for k, c in got.items() if c.status == "failed") == [
        ("attack:broken-linf:eps=0.1", "RuntimeError: this attack is broken on purpose"),
        ("attack:locked-fgsm:eps=0.1", "TypeError: cannot pickle '_thread.lock' object")]
    assert len(summary.failures) == 2
    # every other cell as in the run without them: "stronger" reads every L-inf sweep at eps 0.1
    # (locked-fgsm's too, which computes FGSM's records), "large-eps" the PGD sweep
    assert {k for k in ref if k != FGSM_KEY} == {k for k in got if got[k].status == "done"}
    assert {"check:stronger:eps=0.1", "check:large-eps:eps=0.5,restarts=1,steps=10"} <= ref.keys()
    for key, cell in ref.items():
        if key != FGSM_KEY:
            assert _same_arrays(got[key].arrays, cell.arrays) and untimed(got[key].result) == untimed(cell.result), key
    assert not ref["check:stronger:eps=0.1"].result.get("not_applicable")


# --- the command line -----------------------------------------------------------------------------


@pytest.mark.slow
def test_the_command_line_exits_1_for_failed_cells_and_the_report_names_them(nan_file: Path, tmp_path: Path) -> None:
    (tmp_path / "suites").mkdir()
    (tmp_path / "suites" / "nan_suite.py").write_text(textwrap.dedent(f"""\
        from harness.specs import AttackSpec, EvalSpec, Suite, TrainSpec, Variant

        NAN = Variant("mlp-nan", "mlp", "none", weights={str(nan_file)!r})
        SUITE = Suite("nan-suite", "1", "a variant with NaN weights", "digits",
                      (Variant("mlp-none", "mlp", "none"), NAN), (0,), train=TrainSpec(epochs=1, target_accuracy=0.8),
                      evaluation=EvalSpec(shifts=("gaussian-noise",), severities=(3,), ood_sets=("faces",),
                                          attacks=(AttackSpec("fgsm", (0.1,)),), checks=False))
        """))
    env = {**os.environ, "NO_COLOR": "1"}
    run_dir = tmp_path / "run"
    base = [sys.executable, "-m", "harness.cli"]
    done = subprocess.run([*base, "run", "nan-suite", "--suite-path", str(tmp_path / "suites"), "--run-dir",
                           str(run_dir), "--executor", "serial", "--no-progress"],
                          capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 1, done.stderr
    failed = [line for line in done.stderr.splitlines() if line.startswith("failed: ")]
    # every condition of its battery: clean, the shift, the OOD set, the attack, membership and inference cost
    assert len(failed) == 6 and all(line.startswith("failed: eval mlp-nan seed 0 ") and "hold NaN or inf" in line
                                    for line in failed)
    assert "Error: 6 cell(s) failed; the others were stored and reported" in done.stderr
    assert "unexpected" not in done.stderr
    report = (run_dir / "report.md").read_text()
    assert report.count("mlp-nan seed 0, ") == 6 and "evaluation failed" in report

    (run_dir / "report.md").unlink()
    again = subprocess.run([*base, "report", str(run_dir)], capture_output=True, text=True, timeout=300, env=env)
    assert again.returncode == 0, again.stderr
    report = (run_dir / "report.md").read_text()
    for key in ("clean", "shift:gaussian-noise:severity=3", "ood:faces:score=msp", "attack:fgsm:eps=0.1",
                "membership:loss", "cost"):
        assert f"mlp-nan seed 0, {key}: evaluation failed (ValueError: the model's logits hold NaN or inf" in report


# --- weights that cannot be used ------------------------------------------------------------------


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished run of mlp-none and mlp-batch, never touched."""
    d = tmp_path_factory.mktemp("finished") / "run"
    assert _run(_suite((MLP_NONE, MLP_BATCH)), d).ok
    return d


def _records(run_dir: Path) -> dict[str, tuple[Any, ...]]:
    """Every cell: its identity, status, result without timings, and arrays as bytes."""
    return {k: (c.kind, c.variant, c.condition, c.spec, c.status, untimed(c.result),
                {n: (a.dtype.str, a.shape, a.tobytes()) for n, a in untimed(c.arrays).items()})
            for k, c in _cells(run_dir).items()}


def _weights(run_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((run_dir / "weights").glob("*.safetensors"))}


def _train_key(run_dir: Path, variant: str) -> str:
    return next(k for k, c in _cells(run_dir).items() if c.kind == "train" and c.variant == variant)


def _spoil(run_dir: Path, how: str) -> Path:
    """Spoil mlp-none's weights file as ``how`` says; returns its path."""
    path = weights_path(run_dir, _train_key(run_dir, "mlp-none"))
    data = path.read_bytes()
    if how == "truncated":
        path.write_bytes(data[:len(data) // 2])
    elif how == "altered":  # one value of the last tensor, the header intact: still a valid file
        path.write_bytes(data[:-1] + bytes([data[-1] ^ 0x40]))
    elif how == "deleted":
        path.unlink()
    elif how == "another-models":
        shutil.copyfile(weights_path(run_dir, _train_key(run_dir, "mlp-batch")), path)
    return path


def _forget_evaluations(run_dir: Path, variant: str) -> int:
    """Delete ``variant``'s evaluation cells, as a run killed after training leaves them."""
    db = sqlite3.connect(run_dir / "store.sqlite")
    db.execute("PRAGMA foreign_keys = ON")  # as the store does: a cell's arrays go with it
    with db:
        gone = db.execute("DELETE FROM cells WHERE kind = 'eval' AND variant = ?", (variant,)).rowcount
    db.close()
    return gone


@pytest.mark.parametrize("how", ["truncated", "altered", "deleted", "another-models"])
def test_a_model_whose_weights_cannot_be_used_is_trained_again_bit_for_bit(finished: Path, tmp_path: Path,
                                                                           how: str) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(finished, run_dir)
    _spoil(run_dir, how)
    gone = _forget_evaluations(run_dir, "mlp-none")
    assert gone == len(_suite((MLP_NONE, MLP_BATCH)).conditions())  # the battery of the run's suite
    summary = _run(_suite((MLP_NONE, MLP_BATCH)), run_dir)
    assert summary.ok and (summary.trained, summary.evaluated) == (1, gone)
    assert _weights(run_dir) == _weights(finished)
    assert _records(run_dir) == _records(finished)


def test_a_finished_run_gets_its_spoiled_weights_back_and_keeps_its_records(finished: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(finished, run_dir)
    _spoil(run_dir, "truncated")
    summary = _run(_suite((MLP_NONE, MLP_BATCH)), run_dir)
    # retrained, and its evaluations redone from the new file (none is kept from weights that are gone)
    n_conditions = len(_suite((MLP_NONE, MLP_BATCH)).conditions())
    assert summary.ok and (summary.trained, summary.evaluated) == (1, n_conditions)
    assert _weights(run_dir) == _weights(finished)
    assert _records(run_dir) == _records(finished)


def test_a_cell_that_meets_unusable_weights_fails_with_a_hint_that_a_run_keeps(finished: Path,
                                                                               tmp_path: Path) -> None:
    """The worker's failure, as a run whose file is spoiled after it started meets it: the error names
    the file and the hint says what running the same command does; which it then does."""
    run_dir = tmp_path / "run"
    shutil.copytree(finished, run_dir)
    path = _spoil(run_dir, "truncated")
    _forget_evaluations(run_dir, "mlp-none")
    suite = _suite((MLP_NONE, MLP_BATCH))
    with Store(run_dir, create=False) as store:
        (unit,) = plan(suite, store, "cpu")
    cells = list(evaluate_unit(prepare(suite, "cpu", run_dir), unit))
    assert len(cells) == 1 and cells[0].status == "failed"  # nothing can be evaluated without the model
    error = _first_line(cells[0].error)  # unreadable, or (where the store keeps checksums) not the file it wrote
    assert error.startswith("ConfigError: ") and f"weights {path} " in error and error.endswith(f" ({RETRAIN_HINT})")
    summary = _run(suite, run_dir)
    assert summary.ok and summary.trained == 1
    assert _records(run_dir) == _records(finished)


def test_weights_that_do_not_fit_the_model_are_an_error_naming_the_file(finished: Path) -> None:
    """mlp-batch's own file (its checksum holds) loaded as mlp-none's: BatchNorm tensors it has no place for."""
    key = _train_key(finished, "mlp-batch")
    with pytest.raises(ConfigError) as info:
        load_model(prepare(_suite((MLP_NONE,)), "cpu", finished), MLP_NONE, 0, key)
    assert info.value.message.startswith(f"weights {weights_path(finished, key)} do not fit variant 'mlp-none' (")
    assert "state_dict" in info.value.message and "\n" not in info.value.message
    assert info.value.hint == RETRAIN_HINT
    model = load_model(prepare(_suite((MLP_BATCH,)), "cpu", finished), MLP_BATCH, 0, key)  # where it fits
    assert not model.training


def test_nothing_is_retrained_when_every_weights_file_is_usable(finished: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(finished, run_dir)
    before = {p.name: p.stat().st_mtime_ns for p in (run_dir / "weights").glob("*.safetensors")}
    summary = _run(_suite((MLP_NONE, MLP_BATCH)), run_dir)
    assert summary.ok and (summary.trained, summary.evaluated) == (0, 0)
    assert {p.name: p.stat().st_mtime_ns for p in (run_dir / "weights").glob("*.safetensors")} == before


def test_a_done_cell_with_nan_that_an_older_version_stored_is_named_by_the_report_and_redone(finished: Path,
                                                                                             tmp_path: Path) -> None:
    """Before this check, a model with NaN outputs could leave done cells with NaN arrays, after which
    every report failed ("unexpected ValueError"); such a cell is now a named error and is redone."""
    run_dir = tmp_path / "run"
    shutil.copytree(finished, run_dir)
    with Store(run_dir) as store:  # what such a version stored: a done cell, its summary as its arrays give it
        for c in list(store.cells("eval")):
            if c.variant == "mlp-batch" and c.condition is not None and c.condition["kind"] in ("clean", "ood"):
                arrays = {k: np.full_like(a, np.nan) if k in ("loss", "score_in") else a for k, a in c.arrays.items()}
                store.put(dataclasses.replace(c, arrays=arrays))
    with pytest.raises(ConfigError) as info:
        build_report(run_dir, n_resamples=100)
    n = len(_by_condition(finished, "mlp-batch")["clean"].arrays["loss"])
    named = {f"eval cell mlp-batch seed 0 clean: its arrays hold NaN or inf: loss ({n} of {n})",
             f"eval cell mlp-batch seed 0 ood:faces:score=msp: its arrays hold NaN or inf: score_in ({n} of {n})"}
    assert any(info.value.message.endswith(f"store.sqlite: {x}") for x in named), info.value.message
    summary = _run(_suite((MLP_NONE, MLP_BATCH)), run_dir)
    assert summary.ok and (summary.trained, summary.evaluated) == (0, 2)
    assert _records(run_dir) == _records(finished)
    assert to_json(build_report(run_dir, n_resamples=100))["excluded"] == []
