"""harness.export and `harness export`: a run's numbers as tidy tables, checked against results.json
and the store's records read independently, written and read back in every format, and the
notebook-style example of docs/analysis.md run as it is written."""

from __future__ import annotations

import csv
import json
import math
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from harness.cli import main
from harness.export import CONDITION_COLUMNS, examples, load, write
from harness.reports.build import build_report
from harness.reports.render import to_json
from harness.store import Store

DATA = Path(__file__).parent / "data" / "compat" / "compat-classify"
DOCS = Path(__file__).parents[1] / "docs" / "analysis.md"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(shutil.copytree(DATA, tmp_path_factory.mktemp("export") / "run",
                                ignore=shutil.ignore_patterns("results-*.json")))


def test_the_tables_hold_what_results_json_holds(run_dir: Path) -> None:
    tables = load(run_dir, n_resamples=200)
    results = to_json(build_report(run_dir, n_resamples=200))
    est = {(r["variant"], r["condition"], r["metric"]): r for r in tables["estimates"].records()}
    assert len(est) == len(results["estimates"]) > 10
    for e in results["estimates"]:
        from harness.specs import Condition

        row = est[(e["variant"], Condition.from_dict(e["condition"]).key, e["metric"])]
        assert (row["value"], row["ci_low"], row["ci_high"], row["n_seeds"]) == (
            e["value"], e["ci_low"], e["ci_high"], e["n_seeds"])
    seeds = tables["per_seed"].records()
    assert len([s for s in seeds if s["kind"] == "estimate"]) == sum(len(e["per_seed"]) for e in results["estimates"])
    assert len([s for s in seeds if s["kind"] == "comparison"]) == sum(len(c["per_seed"])
                                                                       for c in results["comparisons"])
    got = sorted((s["variant"], s["baseline"], s["metric"], s["seed"], s["difference"]) for s in seeds
                 if s["kind"] == "comparison")
    want = sorted((c["variant"], c["baseline"], c["metric"], p["seed"], p["difference"]) for c in results["comparisons"]
                  for p in c["per_seed"])
    assert got == want
    assert len(tables["training"].rows) == len(results["training"])
    assert {r["variant"] for r in tables["training"].records()} == {t["variant"] for t in results["training"]}
    assert [r["verdict"] for r in tables["claims"].records()] == [c["verdict"] for c in results["claims"]]


def test_per_example_rows_are_the_stored_records(run_dir: Path) -> None:
    table = examples(run_dir)
    rows = table.records()
    with Store(run_dir, readonly=True) as store:
        cells = [c for c in store.cells("eval") if c.status == "done"]
    from harness.specs import Condition

    checked = 0
    for cell in cells:
        key = Condition.from_dict(cell.condition).key
        mine = [r for r in rows if r["variant"] == cell.variant and r["seed"] == cell.seed and r["condition"] == key]
        if "score_in" in cell.arrays:
            got_in = [r["ood_score"] for r in mine if r["set"] == "in"]
            got_out = [r["ood_score"] for r in mine if r["set"] == "out"]
            np.testing.assert_allclose(got_in, cell.arrays["score_in"])
            np.testing.assert_allclose(got_out, cell.arrays["score_out"])
            checked += 1
        elif "correct" in cell.arrays:
            assert [r["example"] for r in mine] == list(range(len(cell.arrays["correct"])))
            for name, a in cell.arrays.items():  # every per-example array of the record, as stored
                if a.ndim == 1 and len(a) == len(cell.arrays["correct"]):
                    assert [r[name] for r in mine] == a.tolist(), name
            checked += 1
    assert checked >= 10
    one = examples(run_dir, variant="mlp-batch", condition="clean").records()
    assert one and {(r["variant"], r["condition"]) for r in one} == {("mlp-batch", "clean")}
    assert set(CONDITION_COLUMNS) <= set(table.columns)


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_every_format_reads_back_as_written(run_dir: Path, tmp_path: Path, fmt: str) -> None:
    import pandas as pd

    tables = load(run_dir, n_resamples=200)
    paths = write(tables.values(), tmp_path / fmt, fmt)
    assert [p.name for p in paths] == [f"{n}.{fmt}" for n in tables]
    for name, table in tables.items():
        path = tmp_path / fmt / f"{name}.{fmt}"
        if fmt == "csv":
            with path.open(newline="") as f:
                back = list(csv.DictReader(f))
            assert len(back) == len(table.rows) and (not back or list(back[0]) == list(table.columns))
            values = [float(r["value"]) for r in back if r.get("value")] if name == "estimates" else []
        elif fmt == "jsonl":
            back = [json.loads(line) for line in path.read_text().splitlines()]
            assert back == table.records()
            values = [r["value"] for r in back if r.get("value") is not None] if name == "estimates" else []
        else:
            frame = pd.read_parquet(path)
            assert list(frame.columns) == list(table.columns) and len(frame) == len(table.rows)
            values = [v for v in frame["value"] if not math.isnan(v)] if name == "estimates" else []
        if name == "estimates":  # the numbers themselves, each format's way
            want = [r["value"] for r in table.records() if r["value"] is not None]
            np.testing.assert_allclose(values, want, rtol=1e-12)


def test_the_command_writes_the_tables_and_refuses_what_is_not_a_run(run_dir: Path, tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert main(["export", str(run_dir), "--format", "jsonl", "--out", str(out), "--resamples", "200",
                 "--examples"]) == 0
    printed = capsys.readouterr().out.split()
    assert sorted(Path(p).name for p in printed) == sorted(f"{n}.jsonl" for n in (
        "estimates", "comparisons", "per_seed", "training", "claims", "examples"))
    assert main(["export", str(tmp_path / "nowhere")]) == 2
    assert "is not a run directory" in capsys.readouterr().err
    (tmp_path / "file").write_text("x")
    assert main(["export", str(run_dir), "--out", str(tmp_path / "file"), "--resamples", "200"]) == 2
    assert "is not a folder" in capsys.readouterr().err


def test_the_analysis_page_runs_as_written(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = re.search(r"```python\n(.*?)```", DOCS.read_text(), re.S)
    assert code is not None
    exec(compile(code.group(1), str(DOCS), "exec"), {"RUN_DIR": run_dir})  # noqa: S102 - the page's own example
    printed = capsys.readouterr().out
    assert "mlp-batch" in printed and "steps_to_target" in printed
