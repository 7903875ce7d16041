"""harness compare and harness.reports.compare on real stores: two toy runs whose records are known, B's
normalized variant clearly better under a shift and identical on clean inputs, so exactly the
rows that involve that variant under the shift must be flagged, and nothing else."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest

from harness.cli import main
from harness.reports.build import build_report
from harness.reports.checks import Check
from harness.reports.compare import Interval, compare_runs, diff_interval, diff_settings, print_comparison
from harness.specs import EvalSpec, Suite, TrainSpec, Variant
from harness.store import Cell, Store

N = 400
SEEDS = (0, 1, 2)
CLEAN = {"kind": "clean", "name": "", "params": {}}
NOISE = {"kind": "shift", "name": "gaussian-noise", "params": {"severity": 1}}
NOISE_KEY = "shift:gaussian-noise:severity=1"


def _suite(name: str = "toy") -> Suite:
    variants = tuple(Variant(f"mlp-{n}", "mlp", n) for n in ("none", "batch"))
    return Suite(name, "0.1", "a toy suite", "digits", variants, SEEDS, TrainSpec(),
                 EvalSpec(shifts=("gaussian-noise",), severities=(1,), ood_sets=(), attacks=()))


def _write_run(run_dir: Path, noise_accuracy: float, suite: str = "toy", harness: str = "0.1.0",
               step_seconds: float = 0.001) -> Path:
    """A run directory whose per-example outcomes are drawn from a fixed generator, so two calls
    store identical records except mlp-batch's under noise, which is correct with probability
    ``noise_accuracy``."""
    rng = np.random.default_rng(0)
    with Store(run_dir) as store:
        store.put_meta("suite", _suite(suite).to_dict())
        store.put_meta("provenance", {"harness": harness, "git": "abc123", "device": "cpu", "command": [
            "harness", "run", suite, "--run-dir", str(run_dir)]})
        for seed in SEEDS:
            base = rng.random(N) < 0.8
            outcomes = {("mlp-none", "clean"): base, ("mlp-batch", "clean"): base | (rng.random(N) < 0.5),
                        ("mlp-none", "noise"): rng.random(N) < 0.6}
            noise = np.random.default_rng(100 + seed).random(N) < noise_accuracy  # the only record that differs
            outcomes[("mlp-batch", "noise")] = noise
            for (variant, cond), correct in outcomes.items():
                store.put(Cell(f"e-{variant}-{cond}-{seed}", "eval", variant, seed, {}, {},
                               condition=CLEAN if cond == "clean" else NOISE, arrays={"correct": correct}))
            for variant in ("mlp-none", "mlp-batch"):
                store.put(Cell(f"t-{variant}-{seed}", "train", variant, seed, {}, {
                    "n_steps": 100, "steps_to_target": 50 + seed, "seconds_to_target": 0.1,
                    "seconds_per_step": (step_seconds if variant == "mlp-batch" else 0.001) * (1 + 0.1 * seed),
                    "train_seconds": 0.1, "diverged": False,
                    "diverged_at": None, "final_val_accuracy": 0.9}))
    return run_dir


@pytest.fixture()
def runs(tmp_path: Path) -> tuple[Path, Path]:
    return _write_run(tmp_path / "a", 0.6), _write_run(tmp_path / "b", 0.95, harness="0.2.0")


# --- the interval --------------------------------------------------------------------------


def test_diff_interval_adds_each_sides_half_widths_in_quadrature() -> None:
    a, b = Interval(0.5, 0.4, 0.6, 3), Interval(0.7, 0.65, 0.8, 3)
    d, low, high = diff_interval(a, b)
    assert d == pytest.approx(0.2)
    assert low == pytest.approx(0.2 - math.hypot(0.05, 0.1))  # B's lower and A's upper half-width
    assert high == pytest.approx(0.2 + math.hypot(0.1, 0.1))  # B's upper and A's lower half-width
    d, low, high = diff_interval(a, Interval(0.6, 0.45, 0.7, 3))  # overlapping: contains 0
    assert low < 0 < high
    assert all(math.isnan(x) for x in diff_interval(a, Interval(0.6, math.nan, math.nan, 1))[1:])


def test_diff_settings_reports_each_differing_leaf() -> None:
    a = {"seeds": [0, 1], "provenance": {"versions": {"torch": "2.4", "numpy": "2.0"}}, "v": {"x": 1}}
    b = {"seeds": [0, 1], "provenance": {"versions": {"torch": "2.5", "numpy": "2.0"}}, "w": 2}
    got = [(s.name, s.a, s.b, s.path) for s in diff_settings(a, b)]
    assert got == [("versions.torch", "2.4", "2.5", "provenance.versions.torch"), ("v", '{"x": 1}', "absent", "v"),
                   ("w", "absent", "2", "w")]
    # each setting by the name a person uses: the recipe's by its own, the battery's as evaluation ...
    a, b = ({"suite": {"train": {"epochs": e}, "evaluation": {"shifts": s}}} for e, s in ((5, ["fog"]), (15, [])))
    assert [(x.name, x.a, x.b) for x in diff_settings(a, b)] == [("epochs", "5", "15"),
                                                                 ("evaluation shifts", '["fog"]', "[]")]


# --- matching on real stores ---------------------------------------------------------------


def test_flags_exactly_the_rows_that_changed(runs: tuple[Path, Path]) -> None:
    a, b = (build_report(d, n_resamples=400) for d in runs)
    cmp = compare_runs(a, b)
    changed = {(r.kind, r.variant, r.condition.key if r.condition else "training", r.metric)
               for r in cmp.rows if r.status == "changed"}
    assert changed == {
        ("estimate", "mlp-batch", NOISE_KEY, "accuracy"), ("estimate", "mlp-batch", "shift:all", "accuracy"),
        ("estimate", "mlp-batch", "shift:all", "mce"), ("estimate", "mlp-batch", "shift:all", "relative_mce"),
        ("comparison", "mlp-batch", NOISE_KEY, "accuracy"), ("comparison", "mlp-batch", "shift:all", "accuracy")}
    row = next(r for r in cmp.rows if r.kind == "estimate" and r.variant == "mlp-batch"
               and r.condition is not None and r.condition.key == NOISE_KEY)
    assert row.a is not None and row.b is not None and row.diff == pytest.approx(row.b.value - row.a.value)
    assert row.diff > 0.3 and row.ci_low > 0
    # identical records give identical estimates: a difference of exactly 0 inside its interval
    clean = [r for r in cmp.rows if r.condition is not None and r.condition.key == "clean"]
    assert clean and all(r.diff == 0 and r.status == "unchanged" for r in clean)
    # every estimate and comparison of either report is matched once
    assert len(cmp.rows) == len(a.estimates) + len(a.comparisons) and cmp.count("added") == cmp.count("removed") == 0
    assert [(s.name, s.a, s.b) for s in cmp.settings] == [("harness", "0.1.0", "0.2.0")]
    assert cmp.changed and cmp.same_suite


def test_rows_in_one_run_only_are_added_or_removed(runs: tuple[Path, Path], tmp_path: Path) -> None:
    a = build_report(runs[0], n_resamples=200)
    with Store(runs[1]) as store:  # B loses mlp-none under noise: its estimates, the comparison and mCE go
        store.db.execute("DELETE FROM cells WHERE key LIKE 'e-mlp-none-noise-%'")
        store.db.commit()
    cmp = compare_runs(a, build_report(runs[1], n_resamples=200))
    removed = {(r.kind, r.variant, r.condition.key if r.condition else "training", r.metric)
               for r in cmp.rows if r.status == "removed"}
    assert ("estimate", "mlp-none", NOISE_KEY, "accuracy") in removed
    assert ("comparison", "mlp-batch", NOISE_KEY, "accuracy") in removed
    assert all(r.a is not None and r.b is None for r in cmp.rows if r.status == "removed")
    assert cmp.count("added") == 0 and cmp.changed
    back = compare_runs(build_report(runs[1], n_resamples=200), a)  # the other way round they are added
    assert back.count("added") == cmp.count("removed")


def test_sanity_check_status_changes_are_rows(runs: tuple[Path, Path]) -> None:
    a = build_report(runs[0], n_resamples=200)
    same = compare_runs(a, a)
    assert not same.changed and all(c.status == "unchanged" for c in same.checks) and same.checks
    first = a.checks[0]
    b = dataclasses.replace(a, checks=(Check(first.name, "fail", "broken on purpose"), *a.checks[1:],
                                       Check("a new check", "pass", "")))
    statuses = {c.name: c.status for c in compare_runs(a, b).checks}
    assert statuses[first.name] == "changed" and statuses["a new check"] == "added"
    assert compare_runs(a, b).changed


def test_reports_at_different_levels_are_refused(runs: tuple[Path, Path]) -> None:
    from harness.errors import ConfigError

    with pytest.raises(ConfigError, match="different confidence levels"):
        compare_runs(build_report(runs[0], n_resamples=100), build_report(runs[1], level=0.9, n_resamples=100))


def test_table_reads_at_80_columns(runs: tuple[Path, Path]) -> None:
    from rich.console import Console

    console = Console(record=True, width=80)
    print_comparison(compare_runs(*(build_report(d, n_resamples=200) for d in runs), labels=("A-dir", "B-dir")),
                     console)
    text = console.export_text()
    assert all(len(line) <= 80 for line in text.splitlines())
    assert "Changed beyond the interval (6 of" in text and "differs: harness 0.1.0 -> 0.2.0" in text
    assert "mlp-batch vs mlp-none:" in text and "gaussian-noise s1" in " ".join(text.split())


def test_wall_clock_rows_are_timing_apart_from_the_effects(tmp_path: Path) -> None:
    """mlp-batch's time per step, measured on a busier machine, moves beyond its interval against
    mlp-none's, yet it is no effect of the runs' settings: it is marked wall-clock, listed apart and
    not counted as a change."""
    from rich.console import Console

    from harness.registry import metrics

    a = build_report(_write_run(tmp_path / "a", 0.95), n_resamples=200)
    b = build_report(_write_run(tmp_path / "b", 0.95, step_seconds=0.01), n_resamples=200)
    cmp = compare_runs(a, b)
    moved = [r for r in cmp.rows if r.status == "changed"]
    assert moved and {r.metric for r in moved} <= {m for m in metrics.names() if metrics.get(m).wall_clock}
    assert all(r.wall_clock for r in moved) and not cmp.changed  # only the machine changed
    assert {m for m in metrics.names() if metrics.get(m).wall_clock} >= {"seconds_per_step", "seconds_to_target"}
    console = Console(record=True, width=200)
    print_comparison(cmp, console)
    text = console.export_text()
    assert "No row changed beyond its interval" in text and "timing, measured in wall-clock time" in text
    assert "ms per step" not in text.split("timing")[0]  # not beside the effects


# --- the command ---------------------------------------------------------------------------


def test_cli_json_rows(runs: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compare", str(runs[0]), str(runs[1]), "--json", "--resamples", "300"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [r["run_dir"] for r in out["runs"]] == [str(runs[0]), str(runs[1])]
    assert out["changed"] is True and out["same_suite"] is True and out["level"] == 0.95
    flagged = {(r["kind"], r["variant"], r["metric"]) for r in out["rows"]
               if r["status"] == "changed" and r["condition"].get("name") == "gaussian-noise"}
    assert flagged == {("estimate", "mlp-batch", "accuracy"), ("comparison", "mlp-batch", "accuracy")}
    training = [r for r in out["rows"] if r["condition"] == {"kind": "training"}]
    assert training and all(r["status"] == "unchanged" and r["baseline"] == "mlp-none" for r in training)
    row = next(r for r in out["rows"] if r["status"] == "changed")
    assert row["diff"] == pytest.approx(row["b"]["value"] - row["a"]["value"]) and row["ci_low"] <= row["ci_high"]


def test_cli_fail_on_change_sets_the_exit_status(runs: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
                                                 ) -> None:
    a, b = map(str, runs)
    assert main(["compare", a, b, "--resamples", "200", "--fail-on-change"]) == 1
    captured = capsys.readouterr()
    assert "6 changed" in captured.out and "Changed beyond the interval" in captured.err
    assert main(["compare", a, a, "--resamples", "200", "--fail-on-change"]) == 0
    assert "0 changed" in capsys.readouterr().out
    assert main(["compare", a, b, "--resamples", "200"]) == 0  # without the flag a change is not a failure


def test_cli_warns_about_different_suites_and_still_matches(tmp_path: Path, runs: tuple[Path, Path],
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    other = _write_run(tmp_path / "other", 0.95, suite="toy2")
    assert main(["compare", str(runs[0]), str(other), "--resamples", "200"]) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert "warning: these are runs of different suites (toy 0.1 and toy2 0.1)" in err
    assert "differs: name toy -> toy2" in err and "Changed beyond the interval (6 of" in err


def _error(capsys: pytest.CaptureFixture[str], *args: str) -> list[str]:
    assert main(["compare", *args]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    return captured.err.splitlines()


def test_cli_bad_input_is_one_error_line_and_a_hint(runs: tuple[Path, Path], tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    good = str(runs[0])
    (tmp_path / "file.txt").write_text("x")
    Store(tmp_path / "unfinished").close()  # a store that no run has written yet
    with Store(tmp_path / "untrained") as store:  # a run that stored its suite, then stopped
        store.put_meta("suite", _suite().to_dict())
    cases = [
        ((good, str(tmp_path / "missing")), "Error: " + str(tmp_path / "missing") + " is not a run directory"),
        ((str(tmp_path / "file.txt"), good), "Error: " + str(tmp_path / "file.txt") + " is a file"),
        ((good, str(tmp_path / "unfinished")), "Error: " + str(tmp_path / "unfinished") + " holds no finished run"),
        ((str(tmp_path / "untrained"), good), "Error: " + str(tmp_path / "untrained") + " has no finished evaluation"),
    ]
    for args, start in cases:
        lines = _error(capsys, *args)
        assert len(lines) == 2 and lines[0].startswith(start) and lines[1].startswith("Hint: "), lines
