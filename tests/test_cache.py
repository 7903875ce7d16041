"""harness.reports.cache: a rebuild reads the values the last build derived from the same records, and only then.

On a real finished run of two small models (its own report wrote the cache): a rebuild from the cache gives
the report a full derivation gives; a value planted in the cache under the run's key shows in the report
(so the file is read), and disappears as soon as a record, the number of resamples or the code changes, or
with ``--no-cache``; a damaged file, a link in its place or an older store without checksums are derived
again, and a damaged store is still refused."""

from __future__ import annotations

import dataclasses
import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from harness.cli import main
from harness.reports import build, cache
from harness.reports.build import build_report
from harness.reports.checks import Check
from harness.reports.render import to_json
from harness.runner import run
from harness.specs import EvalSpec, Suite, TrainSpec, Variant
from harness.store import STORE_FILE, Store

TINY = Suite(name="tiny", version="1", description="two small models", dataset="digits",
             variants=(Variant("mlp-none", "mlp", "none"), Variant("mlp-layer", "mlp", "layer")),
             seeds=(0, 1), train=TrainSpec(epochs=1),
             evaluation=EvalSpec(shifts=("fog",), severities=(1,), ood_sets=("faces",), attacks=()))
RESAMPLES = 200
COMPAT = Path(__file__).parent / "data" / "compat" / "compat-classify"  # a schema-1 store (no checksums)


def _doc(run_dir: Path, **kwargs: Any) -> dict[str, Any]:
    """results.json's content without the time it was made."""
    doc = to_json(build_report(run_dir, n_resamples=RESAMPLES, **kwargs))
    return {k: v for k, v in doc.items() if k != "created"}


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("cached") / "run"
    assert run(TINY, d, device="cpu", executor="serial", progress=False).ok
    return d


@pytest.fixture
def run_dir(finished: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(finished, tmp_path / "run"))


def _name(run_dir: Path, n_resamples: int = RESAMPLES) -> str:
    with Store(run_dir, readonly=True) as store:
        name = cache.key(store.get_meta("suite"), n_resamples, store.record_checksums("eval"))
    assert name is not None
    return name


def _plant(run_dir: Path, detail: str = "planted") -> cache.Derived:
    """Rewrite the cache under the run's key with the first check's detail replaced: a report that shows it
    read the file."""
    derived = cache.load(run_dir, _name(run_dir))
    assert derived is not None and derived.checks
    planted = dataclasses.replace(derived, checks=(Check(derived.checks[0].name, derived.checks[0].status, detail),
                                                   *derived.checks[1:]))
    cache.save(run_dir, _name(run_dir), planted)
    return derived


def _first_check(run_dir: Path, **kwargs: Any) -> str:
    return build_report(run_dir, n_resamples=RESAMPLES, **kwargs).checks[0].detail


def test_a_rebuild_from_the_cache_is_the_report_a_full_derivation_gives(run_dir: Path) -> None:
    build_report(run_dir, n_resamples=RESAMPLES)  # writes the cache for these resamples
    assert (run_dir / cache.FILE).is_file()
    derived = cache.load(run_dir, _name(run_dir))
    assert derived is not None
    # every resampled value survives the file exactly (the binary outcomes packed to bits and back)
    stored = build.read(run_dir)
    assert stored.derived is None  # no resamples named: no cache looked up
    n_test = len(next(c for c in stored.evals if c.condition and c.condition["kind"] == "clean").arrays["correct"])
    assert any(r.binary is not None and r.binary.shape == (2, n_test) for _, r in derived.resampled.values())
    cached = _doc(run_dir)
    assert cached == _doc(run_dir, use_cache=False)
    assert len(cached["estimates"]) > 20 and cached["checks"] and cached["roc"] and cached["reliability"]


def test_a_value_planted_in_the_cache_shows_until_a_record_changes(run_dir: Path) -> None:
    build_report(run_dir, n_resamples=RESAMPLES)
    honest = _plant(run_dir).checks[0].detail
    assert _first_check(run_dir) == "planted"  # the file is read
    assert _first_check(run_dir, use_cache=False) == honest  # derived again, the file left as it is
    assert cache.load(run_dir, _name(run_dir)) is not None and _first_check(run_dir) == "planted"
    # one evaluation record changed (its time, as a redone cell's would): another key, derived and cached again
    with Store(run_dir) as store:
        cell = next(c for c in store.cells("eval") if c.condition and c.condition["kind"] == "clean")
        store.put(dataclasses.replace(cell, seconds=cell.seconds + 1.0))
    assert _first_check(run_dir) == honest
    assert cache.load(run_dir, _name(run_dir)) is not None


def test_other_resamples_miss_the_cache_and_replace_it(run_dir: Path) -> None:
    build_report(run_dir, n_resamples=RESAMPLES)
    honest = _plant(run_dir).checks[0].detail
    assert build_report(run_dir, n_resamples=RESAMPLES + 1).checks[0].detail == honest
    # one file: the latest build's (a rebuild with the first number of resamples derives again)
    assert cache.load(run_dir, _name(run_dir, RESAMPLES + 1)) is not None
    assert cache.load(run_dir, _name(run_dir)) is None and _first_check(run_dir) == honest


def test_changed_code_misses_the_cache(run_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    build_report(run_dir, n_resamples=RESAMPLES)
    honest = _plant(run_dir).checks[0].detail
    monkeypatch.setattr(cache, "code_digest", lambda: "another harness")
    assert _first_check(run_dir) == honest


def test_the_code_digest_covers_the_harness_and_its_reports(tmp_path: Path) -> None:
    import harness
    import harness.reports

    digest = cache.code_digest()
    assert len(digest) == 64 and digest == cache.code_digest()
    # the files it reads: every module of the package and of its reports (a changed formula anywhere misses)
    assert (Path(harness.__file__).parent / "stats.py").is_file()
    assert (Path(harness.reports.__file__).parent / "estimates.py").is_file()


def test_no_cache_on_the_command_line_derives_and_leaves_the_file(run_dir: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    build_report(run_dir, n_resamples=RESAMPLES)
    honest = _plant(run_dir).checks[0].detail
    before = (run_dir / cache.FILE).read_bytes()
    assert main(["report", str(run_dir), "--resamples", str(RESAMPLES), "--quiet", "--no-cache"]) == 0
    checks = json.loads((run_dir / "results.json").read_text())["checks"]
    assert checks[0]["detail"] == honest
    assert (run_dir / cache.FILE).read_bytes() == before
    assert main(["report", str(run_dir), "--resamples", str(RESAMPLES), "--quiet"]) == 0
    assert json.loads((run_dir / "results.json").read_text())["checks"][0]["detail"] == "planted"


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_a_damaged_cache_file_is_derived_again_and_replaced(run_dir: Path, damage: str) -> None:
    expected = _doc(run_dir, use_cache=False)
    build_report(run_dir, n_resamples=RESAMPLES)
    path = run_dir / cache.FILE
    data = path.read_bytes()
    path.write_bytes({"truncated": data[: len(data) // 2], "garbage": np.random.default_rng(0).bytes(4096),
                      "empty": b""}[damage])
    assert _doc(run_dir) == expected
    assert cache.load(run_dir, _name(run_dir)) is not None  # written again, whole


def test_a_link_in_the_caches_place_is_not_followed(run_dir: Path, tmp_path: Path) -> None:
    build_report(run_dir, n_resamples=RESAMPLES)
    honest = _plant(run_dir).checks[0].detail
    outside = tmp_path / "elsewhere.npz"
    shutil.move(run_dir / cache.FILE, outside)  # a valid file, with a planted value, under the run's key
    planted = outside.read_bytes()
    (run_dir / cache.FILE).symlink_to(outside)
    assert _first_check(run_dir) == honest  # not read through the link
    assert not (run_dir / cache.FILE).is_symlink()  # replaced by a plain file of the harness's own
    assert outside.read_bytes() == planted  # and nothing written through it


def test_a_store_without_checksums_is_never_cached(tmp_path: Path) -> None:
    run_dir = Path(shutil.copytree(COMPAT, tmp_path / "old", ignore=shutil.ignore_patterns("results-*.json")))
    first = _doc(run_dir)
    assert not (run_dir / cache.FILE).exists()
    assert _doc(run_dir) == first


def test_a_damaged_store_is_refused_with_a_valid_cache_beside_it(run_dir: Path) -> None:
    """The cache holds the values of intact records; the arrays are still read and verified on a rebuild."""
    from harness.errors import ConfigError

    build_report(run_dir, n_resamples=RESAMPLES)
    db = sqlite3.connect(run_dir / STORE_FILE, isolation_level=None)
    try:
        key, n = db.execute("SELECT a.cell, length(a.data) FROM arrays a JOIN cells c ON a.cell = c.key "
                            "WHERE a.name = 'correct' AND c.kind = 'eval'").fetchone()
        db.execute("UPDATE arrays SET data = ? WHERE cell = ? AND name = 'correct'", (np.ones(n, bool).tobytes(), key))
    finally:
        db.close()
    with pytest.raises(ConfigError, match="fails its checksum"):
        build_report(run_dir, n_resamples=RESAMPLES)
