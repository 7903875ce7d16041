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
    # a run made before the membership condition: nothing on privacy
    assert not view["MEASURE 2.10"]["assessed"] and view["MEASURE 2.10"]["evidence"] == []
    clean = {r.variant: r.estimate.value for r in report.estimates if r.condition.key == "clean"
             and r.metric == "accuracy"}
    lo, hi = min(clean, key=clean.get), max(clean, key=clean.get)  # type: ignore[arg-type]
    assert view["MEASURE 2.5"]["evidence"][0] == (
        f"held-out accuracy from {100 * clean[lo]:.1f}% ({lo}) to {100 * clean[hi]:.1f}% ({hi}), over "
        f"{len(report.seeds)} seeds each")
    kinds = {r.condition.kind for r in report.estimates}
    assert view["MEASURE 2.6"]["assessed"] == ("ood" in kinds)
    assert view["MEASURE 2.7"]["assessed"] == ("attack" in kinds)
    # records made before training compute and energy were measured: the time alone, nothing claimed of energy
    assert view["MEASURE 2.12"]["evidence"] == [
        "training time per step is measured for every trained variant (the training summary, wall-clock on the "
        "run's machine)"]


def test_a_run_without_a_kind_of_test_is_not_assessed_on_it(report) -> None:  # type: ignore[no-untyped-def]
    no_ood = dataclasses.replace(report, estimates=tuple(r for r in report.estimates if r.condition.kind != "ood"))
    assert not {v["id"]: v for v in rmf_view(no_ood)}["MEASURE 2.6"]["assessed"]
    md = to_markdown(no_ood, figs=())
    section = md.split("## Risk framework view (NIST AI RMF 1.0, MEASURE)", 1)[1].split("\n## ", 1)[0]
    assert f"| MEASURE 2.6 | the system is safe, and fails safely when it is used beyond its knowledge limits | " \
           f"{NOT_ASSESSED} |" in section
    assert [r["id"] for r in to_json(report)["rmf"]] == [s.id for s in SUBCATEGORIES]


def test_privacy_is_assessed_from_the_membership_attacks_numbers(report) -> None:  # type: ignore[no-untyped-def]
    from harness.specs import membership

    clean = [r for r in report.estimates if r.condition.key == "clean" and r.metric == "accuracy"]
    values = {r.variant: 0.5 + 0.01 * i for i, r in enumerate(clean)}  # made-up AUROCs on the real rows' seeds
    rows = tuple(dataclasses.replace(r, condition=membership(), metric="membership_auroc",
                                     estimate=dataclasses.replace(r.estimate, value=values[r.variant]))
                 for r in clean)
    view = {v["id"]: v for v in rmf_view(dataclasses.replace(report, estimates=report.estimates + rows))}
    lo, hi = min(values, key=values.__getitem__), max(values, key=values.__getitem__)
    assert view["MEASURE 2.10"]["assessed"] and view["MEASURE 2.10"]["evidence"] == [
        f"membership inference by the loss-threshold attack (AUROC, 0.5 is chance) from {values[lo]:.3f} ({lo}) to "
        f"{values[hi]:.3f} ({hi}), over {len(report.seeds)} seeds each",
        "data leakage beyond membership (reconstruction, attribute inference) is not measured"]
