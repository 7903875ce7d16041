"""A run's results as tidy tables: one row per observation, for pandas, R, a spreadsheet or SQL.

:func:`load` builds a run's report (harness.reports.build, the same statistics ``harness report``
uses) and returns its numbers as :class:`Table` objects, one per kind of observation:

* ``estimates``: one row per (variant, condition, metric): value, interval, method, seeds, examples;
* ``comparisons``: one row per paired comparison (variant minus baseline): difference, interval,
  p-value and its adjusted value, effect size, probability of improvement;
* ``per_seed``: one row per seed behind each estimate (``value``) and comparison (``variant_value``,
  ``baseline_value``, ``difference``);
* ``training``: one row per training run (variant, seed): status and every scalar it measured;
* ``claims``: one row per declared claim: verdict, why, its test.

:func:`examples` reads the per-example records of the evaluation cells from the store (one row per
variant, seed, condition and test example, with every per-example array of that cell as a column:
``pred``, ``correct``, ``confidence``, ``loss``, ...), optionally for one variant or condition.

Every number is in its metric's own units (a fraction for accuracy, seconds for time, bytes for
memory; ``harness list metrics``), as in results.json. A condition is spelled out in columns:
``condition`` (its key, as reports name it), ``condition_kind``, ``condition_name``, ``severity``,
``eps``, ``score``, ``bn_mode`` (empty where a condition has none) and ``params`` (the rest, JSON).

    from harness.export import load
    tables = load("runs/quickstart")
    df = tables["estimates"].frame()              # a pandas DataFrame (pandas is installed with the harness)
    df[(df.metric == "accuracy") & (df.condition == "clean")]

:func:`write` saves tables as CSV, JSON lines or Parquet (``harness export RUN_DIR``).
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import ConfigError

FORMATS = ("csv", "jsonl", "parquet")
TABLES = ("estimates", "comparisons", "per_seed", "training", "claims")
CONDITION_COLUMNS = ("condition", "condition_kind", "condition_name", "severity", "eps", "score", "bn_mode", "params")


@dataclass(frozen=True)
class Table:
    """A tidy table: ``columns`` and ``rows`` (tuples in column order; None where a row has no value)."""

    name: str
    columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]

    def records(self) -> list[dict[str, Any]]:
        """The rows as dicts, column -> value."""
        return [dict(zip(self.columns, r, strict=True)) for r in self.rows]

    def frame(self) -> Any:
        """The table as a pandas DataFrame."""
        try:
            import pandas as pd
        except ImportError as exc:  # pragma: no cover - pandas comes with the datasets dependency
            raise ConfigError("pandas is not installed", hint="pip install pandas, or use Table.records()") from exc
        return pd.DataFrame.from_records(list(self.rows), columns=list(self.columns))


def _number(x: Any) -> Any:
    """A float as itself, NaN and infinities as None (what CSV, JSON and Parquet all read alike)."""
    return None if isinstance(x, float) and not math.isfinite(x) else x


def condition_columns(cond: Any) -> tuple[Any, ...]:
    """A condition (harness.specs.Condition, or None for a training metric) as :data:`CONDITION_COLUMNS`."""
    if cond is None:
        return ("training", "training", "", None, None, None, None, None)
    params = dict(cond.params)
    rest = {k: v for k, v in params.items() if k not in ("severity", "eps", "score", "bn")}
    return (cond.key, cond.kind, cond.name, params.get("severity"), params.get("eps"), params.get("score"),
            cond.bn_mode, json.dumps(rest, sort_keys=True) if rest else None)


def tables(report: Any) -> dict[str, Table]:
    """The tidy tables of a built report (harness.reports.rows.Report): :data:`TABLES`."""
    est_cols = ("variant", *CONDITION_COLUMNS, "metric", "value", "ci_low", "ci_high", "level", "method", "n_seeds",
                "n_examples", "caveat")
    estimates = tuple((r.variant, *condition_columns(r.condition), r.metric, *map(_number, (
        r.estimate.value, r.estimate.ci_low, r.estimate.ci_high, r.estimate.level)), r.estimate.method,
        r.estimate.n_seeds, r.estimate.n_examples, r.estimate.caveat) for r in report.estimates)
    cmp_cols = ("variant", "baseline", *CONDITION_COLUMNS, "metric", "difference", "ci_low", "ci_high", "level",
                "p_value", "p_adjusted", "p_adjustment", "better", "effect_size", "prob_improvement", "n_seeds",
                "n_examples", "ci_method", "p_method", "caveat")
    comparisons = tuple((r.variant, r.baseline, *condition_columns(r.condition), r.metric, *map(_number, (
        r.comparison.diff, r.comparison.ci_low, r.comparison.ci_high, r.comparison.level, r.comparison.p_value,
        r.p_adjusted)), report.adjust, r.better, _number(r.comparison.effect_size), _number(r.prob_improvement),
        r.comparison.n_seeds, r.comparison.n_examples, r.comparison.ci_method, r.comparison.p_method,
        r.comparison.caveat) for r in report.comparisons)
    seed_cols = ("kind", "variant", "baseline", *CONDITION_COLUMNS, "metric", "seed", "value", "variant_value",
                 "baseline_value", "difference")
    per_seed = [("estimate", r.variant, None, *condition_columns(r.condition), r.metric, s, _number(v), None, None,
                 None) for r in report.estimates for s, v in zip(r.seeds, r.values, strict=True)]
    per_seed += [("comparison", r.variant, r.baseline, *condition_columns(r.condition), r.metric, s, None,
                  _number(a), _number(b), _number(a - b))
                 for r in report.comparisons for s, a, b in zip(r.seeds, r.variant_values, r.baseline_values,
                                                                strict=True)]
    measured = sorted({k for t in report.training for k, v in t.result.items()
                       if isinstance(v, (int, float, str, bool)) or v is None})
    train_cols = ("variant", "seed", "status", "error", *measured)
    training = tuple((t.variant, t.seed, t.status, t.error, *(_number(t.result.get(k)) for k in measured))
                     for t in report.training)
    claim_cols = ("claim", "verdict", "reason", "caveat", "metric", "direction", "condition", "margin",
                  "n_comparisons")
    claims = tuple(_claim_row(v.to_dict()) for v in report.claims)
    return {"estimates": Table("estimates", est_cols, estimates),
            "comparisons": Table("comparisons", cmp_cols, comparisons),
            "per_seed": Table("per_seed", seed_cols, tuple(per_seed)),
            "training": Table("training", train_cols, training),
            "claims": Table("claims", claim_cols, claims)}


def _claim_row(d: dict[str, Any]) -> tuple[Any, ...]:
    """One verdict (harness.reports.claims.Verdict.to_dict) as the claims table's row."""
    return (d["text"], d["verdict"], d["reason"], d["caveat"], d["metric"], d["direction"], d.get("condition"),
            _number(d.get("margin")), len(d["evidence"]))


def load(run_dir: Path | str, level: float = 0.95, n_resamples: int = 2000, interval: str = "auto",
         adjust: str = "holm", use_cache: bool = True) -> dict[str, Table]:
    """The tidy tables (:data:`TABLES`) of the run in ``run_dir``, from its report built with these
    statistics (those of ``harness report``; its cache is used where it is valid, unless ``use_cache``
    is False)."""
    from harness.reports.build import build_report

    return tables(build_report(run_dir, level=level, n_resamples=n_resamples, adjust=adjust, interval=interval,
                               use_cache=use_cache))


def examples(run_dir: Path | str, variant: str | None = None, condition: str | None = None) -> Table:
    """The per-example records of the run's finished evaluation cells, optionally of one ``variant``
    and one ``condition`` (a condition key, as reports and the ``condition`` column name it): one row
    per (variant, seed, condition, example), with every per-example array of the cell as a column
    (empty where a cell has no such array). OOD cells hold two sets: their rows say which in
    ``set`` (``in``: the test examples, ``out``: the OOD set) and give the score as ``ood_score``."""
    import numpy as np

    from harness.specs import Condition
    from harness.store import Store

    rows: list[dict[str, Any]] = []
    names: dict[str, None] = {}
    with Store(run_dir, readonly=True) as store:
        for cell in store.cells("eval"):
            if cell.status != "done" or cell.condition is None or (variant is not None and cell.variant != variant):
                continue
            cond = Condition.from_dict(cell.condition)
            if condition is not None and cond.key != condition:
                continue
            where = dict(zip(CONDITION_COLUMNS, condition_columns(cond), strict=True))
            parts = _example_parts(cell.arrays)
            for part, arrays in parts:
                n = max((len(a) for a in arrays.values()), default=0)
                names.update(dict.fromkeys(arrays))
                for i in range(n):
                    rows.append({"variant": cell.variant, "seed": cell.seed, **where, "set": part, "example": i,
                                 **{k: _number(a[i].item()) if isinstance(a[i], np.generic) else a[i]
                                    for k, a in arrays.items()}})
    columns = ("variant", "seed", *CONDITION_COLUMNS, "set", "example", *names)
    return Table("examples", columns, tuple(tuple(r.get(c) for c in columns) for r in rows))


def _example_parts(arrays: dict[str, Any]) -> list[tuple[str | None, dict[str, Any]]]:
    """A cell's per-example arrays as the sets they are over: an OOD cell's scores of the test
    examples (``in``) and of the OOD set (``out``) as two sets of one ``ood_score`` column; arrays of one
    value per cell (a sanity check's summary) are left out."""
    if "score_in" in arrays:
        return [("in", {"ood_score": arrays["score_in"]}), ("out", {"ood_score": arrays["score_out"]})]
    lengths = {len(a) for a in arrays.values() if getattr(a, "ndim", 0) == 1}
    n = max(lengths, default=0)
    per_example = {k: a for k, a in arrays.items() if getattr(a, "ndim", 0) == 1 and len(a) == n and n > 1}
    return [(None, per_example)] if per_example else []


def write(tabs: Iterable[Table], out_dir: Path | str, fmt: str) -> list[Path]:
    """Write each table to ``out_dir/<name>.<fmt>`` (csv, jsonl or parquet), each file whole or not at
    all (harness.fsutil.write_atomic); returns the paths."""
    from harness.fsutil import write_atomic

    if fmt not in FORMATS:
        raise ConfigError(f"unknown export format {fmt!r}", hint=f"use one of {', '.join(FORMATS)}")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out} exists and is not a folder", hint="pass another --out")
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for t in tabs:
        paths.append(write_atomic(out / f"{t.name}.{fmt}", _encode(t, fmt)))
    return paths


def _encode(t: Table, fmt: str) -> bytes:
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(t.columns)
        w.writerows(("" if v is None else v for v in r) for r in t.rows)
        return buf.getvalue().encode()
    if fmt == "jsonl":
        return "".join(json.dumps(r, allow_nan=False) + "\n" for r in t.records()).encode()
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as exc:  # pragma: no cover - pyarrow comes with the datasets dependency
        raise ConfigError("writing Parquet needs pyarrow, which is not installed",
                          hint="pip install pyarrow, or use --format csv or jsonl") from exc
    table = pa.Table.from_pylist(t.records(), schema=None) if t.rows else pa.table({c: [] for c in t.columns})
    buf = pa.BufferOutputStream()
    pq.write_table(table, buf)
    return bytes(buf.getvalue().to_pybytes())
