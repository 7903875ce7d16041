"""The NIST AI RMF view (harness.reports.rmf): every subcategory it lists has the run's evidence, read from
the report's own estimates, or says "not assessed"; nothing is marked as met."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest

from harness.reports.build import build_report
from harness.reports.render import to_json, to_markdown
from harness.reports.rmf import NOT_ASSESSED, SUBCATEGORIES, rmf_view

DATA = Path(__file__).parent / "data" / "compat" / "compat-classify"


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    run = Path(shutil.copytree(DATA, tmp_path_factory.mktemp("rmf") / "run",
                               ignore=shutil.ignore_patterns("results-*.json")))
    return build_report(run, n_resamples=200)


def test_each_subcategory_has_the_reports_numbers_or_says_not_assessed(report) -> None:  # type: ignore[no-untyped-def]
    view = {v["id"]: v for v in rmf_view(report)}
    assert list(view) == [s.id for s in SUBCATEGORIES]
    assert not view["MEASURE 2.10"]["assessed"] and view["MEASURE 2.10"]["evidence"] == []  # no privacy measure yet
    clean = {r.variant: r.estimate.value for r in report.estimates if r.condition.key == "clean"
             and r.metric == "accuracy"}
    lo, hi = min(clean, key=clean.get), max(clean, key=clean.get)  # type: ignore[arg-type]
    assert view["MEASURE 2.5"]["evidence"][0] == (
        f"held-out accuracy from {100 * clean[lo]:.1f}% ({lo}) to {100 * clean[hi]:.1f}% ({hi}), over "
        f"{len(report.seeds)} seeds each")
    kinds = {r.condition.kind for r in report.estimates}
    assert view["MEASURE 2.6"]["assessed"] == ("ood" in kinds)
    assert view["MEASURE 2.7"]["assessed"] == ("attack" in kinds)
    assert "energy and emissions are not measured" in " ".join(view["MEASURE 2.12"]["evidence"])


def test_a_run_without_a_kind_of_test_is_not_assessed_on_it(report) -> None:  # type: ignore[no-untyped-def]
    no_ood = dataclasses.replace(report, estimates=tuple(r for r in report.estimates if r.condition.kind != "ood"))
    assert not {v["id"]: v for v in rmf_view(no_ood)}["MEASURE 2.6"]["assessed"]
    md = to_markdown(no_ood, figs=())
    section = md.split("## Risk framework view (NIST AI RMF 1.0, MEASURE)", 1)[1].split("\n## ", 1)[0]
    assert f"| MEASURE 2.6 | the system is safe, and fails safely when it is used beyond its knowledge limits | " \
           f"{NOT_ASSESSED} |" in section
    assert [r["id"] for r in to_json(report)["rmf"]] == [s.id for s in SUBCATEGORIES]
