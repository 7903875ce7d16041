"""A rebuild of a fixed store gives, byte for byte, the numbers it gave before the report's work was made faster.

tests/data/rebuild/sections-before.json holds the sections of results.json that the resampling, the
store's reads and the curves produce (every estimate and comparison with its interval and p-value,
the training rows and summaries, the sweeps, the attack settings, the reliability, training and ROC
curves, the sanity checks and what was left out) for the two run directories of tests/data/compat,
rebuilt with the default interval at 1,000 resamples (eight blocks of draws, the last one partial) and
with the hierarchical bootstrap at 300. They were written by the code before the exact fast paths of
harness.stats.resample_ood_sets, the threaded checksum verification of harness.store and the grouped
OOD resampling of harness.reports.estimates, and each is compared as the JSON text results.json would
hold: a change in the last digit of any number fails.

A deliberate change of the numbers regenerates the file (and says why in its commit)::

    python -c "import tests.test_rebuild_identical as t; t.write_expected()"
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from compat import without_added

from harness.reports.build import build_report
from harness.reports.render import to_json

DATA = Path(__file__).parent / "data"
EXPECTED = DATA / "rebuild" / "sections-before.json"
RUNS = ("compat-classify", "compat-denoise")
BUILDS = {"auto 1000": ("auto", 1000), "hierarchical 300": ("hierarchical", 300)}
PER_BUILD = ("estimates", "comparisons")  # the sections that depend on the interval and the resamples
COMMON = ("training", "training_summary", "sweeps", "attacks", "reliability", "curves", "roc", "checks", "excluded")


def _text(section: Any) -> str:
    """A section as results.json writes it (harness.reports.render.write_reports)."""
    return json.dumps(section, indent=1, allow_nan=False)


def _known(got: Any, expected: Any) -> Any:
    """``got`` restricted to the fields ``expected`` has: a field results.json gained since (the per-seed
    values behind each estimate, another task's training measurements) is not a number that changed."""
    if isinstance(got, dict) and isinstance(expected, dict):
        return {k: _known(v, expected[k]) if k in expected else v for k, v in got.items() if k in expected}
    if isinstance(got, list) and isinstance(expected, list) and len(got) == len(expected):
        return [_known(g, e) for g, e in zip(got, expected, strict=True)]
    return got


def _sections(run_dir: Path) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for label, (interval, n_resamples) in BUILDS.items():
        results = to_json(build_report(run_dir, n_resamples=n_resamples, interval=interval))
        out[label] = {k: results[k] for k in PER_BUILD}
        out["common"] = {k: results[k] for k in COMMON}
        # an earlier run lacks the conditions added to the battery since: said in "excluded", and only that
        out["common"]["excluded"] = without_added(results["excluded"])
    return out


def _copy(name: str, tmp_path: Path) -> Path:
    return Path(shutil.copytree(DATA / "compat" / name, tmp_path / name,
                                ignore=shutil.ignore_patterns("results-*.json")))


@pytest.mark.parametrize("name", RUNS)
def test_a_rebuild_gives_the_numbers_it_gave_before_byte_for_byte(name: str, tmp_path: Path) -> None:
    expected = json.loads(EXPECTED.read_text(encoding="utf-8"))[name]
    got = _sections(_copy(name, tmp_path))
    assert got.keys() == expected.keys()
    differ = [(label, k) for label in expected for k in expected[label]
              if _text(_known(got[label][k], expected[label][k])) != _text(expected[label][k])]
    assert not differ, differ
    assert len(got["auto 1000"]["estimates"]) > 10  # the file holds numbers, not empty sections


def write_expected(tmp: Path | None = None) -> None:  # pragma: no cover - regenerates the data file
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        root = Path(tmp or folder)
        data = {name: _sections(_copy(name, root)) for name in RUNS}
    EXPECTED.write_text(json.dumps(data, indent=1, allow_nan=False) + "\n", encoding="utf-8")
