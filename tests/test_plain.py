"""The report in plain words (harness.reports.plain): generated from the report's own verdicts and numbers,
without statistical terms it does not define, and at the top of report.md."""

from __future__ import annotations

import dataclasses
import re
import shutil
from pathlib import Path

import pytest

from harness.reports.build import build_report
from harness.reports.claims import CONTRADICTED, INCONCLUSIVE, SUPPORTED
from harness.reports.plain import VERDICT_WORDS, plain_summary
from harness.reports.render import to_markdown

DATA = Path(__file__).parent / "data" / "compat" / "compat-classify"
JARGON = ("p-value", "p =", "holm", "bootstrap", "sign-flip", "resampl", "mcnemar", "wilson", "t-interval",
          "satterthwaite", "family-wise", "one-sided")


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    run = Path(shutil.copytree(DATA, tmp_path_factory.mktemp("plain") / "run",
                               ignore=shutil.ignore_patterns("results-*.json")))
    return build_report(run, n_resamples=200)


def test_the_summary_says_what_the_report_says(report) -> None:  # type: ignore[no-untyped-def]
    compared, found, sure, gaps = plain_summary(report)
    assert f"{len(report.variants)} versions" in compared and f"trained {len(report.seeds)} times" in compared
    assert all(v["name"] in compared for v in report.variants)
    for v in report.claims:
        if v.verdict in VERDICT_WORDS:
            assert f"\"{v.to_dict()['text']}\": {VERDICT_WORDS[v.verdict]}." in found
    clean = [r.estimate.value for r in report.estimates if r.condition.key == "clean" and r.metric == "accuracy"]
    low, high = (f"{100 * x:.1f}%" for x in (min(clean), max(clean)))
    assert f"accuracy ranged from {low}" in found and f"to {high}" in found
    assert f"{100 * report.level:g}% \"confidence interval\"" in sure
    kinds = {r.condition.kind for r in report.estimates}
    assert ("adversarial attacks" in gaps) == ("attack" not in kinds)
    assert ("recognising inputs unlike the training data" in gaps) == ("ood" not in kinds)
    text = " ".join((compared, found, sure, gaps)).lower()
    assert not [w for w in JARGON if w in text]


def test_each_verdict_unsettled_claims_failed_checks_and_one_seed_are_said(report) -> None:  # type: ignore[no-untyped-def]
    from harness.reports.claims import Verdict
    from harness.specs import Claim

    claims = tuple(Verdict(Claim(f"claim {verdict}", "accuracy", "higher", "clean"), verdict, "why", ())
                   for verdict in (SUPPORTED, CONTRADICTED, INCONCLUSIVE, INCONCLUSIVE))
    checks = tuple(dataclasses.replace(c, status="fail") for c in report.checks[:1])
    assert checks
    changed = dataclasses.replace(report, claims=claims, checks=checks, seeds=report.seeds[:1])
    _, found, sure, gaps = plain_summary(changed)
    assert found.startswith('What was found: "claim supported": the runs support it. "claim contradicted": the runs '
                            'contradict it. "claim inconclusive": the runs do not settle it either way.')
    assert "2 claims could not be settled" in sure
    assert "With one run per version" in sure
    assert f"Some checks of the attack results failed ({checks[0].name})" in gaps
    assert "could not be settled" not in plain_summary(report)[2]  # a report without unsettled claims says none


def test_report_md_opens_with_the_claims_then_the_plain_words(report) -> None:  # type: ignore[no-untyped-def]
    md = to_markdown(report, figs=())
    plain = md.index("## In plain words")
    assert (md.index("## Claims") if report.claims else 0) < plain < md.index(report.suite["description"])
    assert re.search(r"## In plain words\n\nWhat was compared: ", md)
