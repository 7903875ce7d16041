"""The report in plain words, for readers who are not statisticians.

:func:`plain_summary` writes short sentences from a built report's verdicts and numbers: what was
compared, what was found (each claim's verdict, or without claims the spread of the headline
number), how sure the findings are (what a seed, an interval and a verdict mean, said once), and
what the run did not test. No statistical term is used without its definition in the same
paragraph; the terms the detailed report uses (p-values, Holm's adjustment, resampling) are left
to it. Every sentence is generated from the report, so it says only what the numbers say.
"""

from __future__ import annotations

from harness.reports.claims import CONTRADICTED, INCONCLUSIVE, SUPPORTED
from harness.reports.rows import Report

#: what a verdict means, said plainly
VERDICT_WORDS = {
    SUPPORTED: "the runs support it",
    CONTRADICTED: "the runs contradict it",
    INCONCLUSIVE: "the runs do not settle it either way",
}

#: the kinds of test a battery can hold, as a reader would name them
KIND_WORDS = {"shift": "corrupted inputs (noise, blur and the like)", "natural": "data from another source",
              "ood": "recognising inputs unlike the training data", "attack": "adversarial attacks"}


def _names(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def plain_summary(report: Report) -> list[str]:
    """Paragraphs of short sentences: compared, found, how sure, not tested."""
    from harness.reports.vocabulary import fmt
    from harness.tasks import task_of

    s = report.suite
    variants = [v["name"] for v in report.variants]
    norms = sorted({str(v["norm"]) for v in report.variants})
    n_seeds = len(report.seeds)
    data = s["dataset"] if s.get("test_dataset") is None else f"{s['dataset']} (tested on {s['test_dataset']})"
    models = sorted({str(v["model"]).rpartition(":")[2] for v in report.variants})
    nets = "one network" if len(models) == 1 else f"{len(models)} networks"
    out = [f"What was compared: {len(variants)} versions of {nets} ({_names(models)}: {_names(variants)}), which "
           f"differ only in their normalization layers ({_names(norms)}), on {data}. Each version was trained "
           f"{n_seeds} time{'s' if n_seeds != 1 else ''}, each time from another random start (a \"seed\"), with "
           "the same starts, data order and budget for every version, so that they are compared fairly."]
    found = []
    for v in report.claims:
        words = VERDICT_WORDS.get(v.verdict)
        if words is not None:
            found.append(f"\"{v.to_dict()['text']}\": {words}.")
    style = task_of(s.get("task", "classify")).style
    clean = sorted(((r.estimate.value, r.variant) for r in report.estimates
                    if r.condition.key == "clean" and r.metric == style.headline), reverse=True)
    if clean:
        from harness.registry import metrics

        (hi, best), (lo, worst) = clean[0], clean[-1]
        spec = metrics.get(style.headline)
        pct = "%" if spec.scale == 100 else ""
        found.append(f"On the clean test data, {spec.title} ranged from {fmt(lo, style.headline)}{pct} ({worst}) to "
                     f"{fmt(hi, style.headline)}{pct} ({best}){'' if spec.higher_is_better else ' (lower is better)'}.")
    out.append("What was found: " + (" ".join(found) if found else "the run has no finished evaluation yet."))
    unsure = sum(v.verdict == INCONCLUSIVE for v in report.claims)
    sure = (f"How sure: every number is an average over the {n_seeds} training runs, given with a range (a "
            f"{100 * report.level:g}% \"confidence interval\") that would hold the average of many more runs "
            f"{100 * report.level:g} times in 100. A claim reads supported or contradicted only when the runs "
            "agree strongly enough that all the claims together are wrong less than "
            f"{100 * (1 - report.level):g} times in 100.")
    if unsure:
        sure += (f" {unsure} claim{'s' if unsure != 1 else ''} could not be settled: the runs vary too much, or "
                 "the difference is too close to the claim's line, for this many runs to tell.")
    if n_seeds < 2:
        sure += " With one run per version, these numbers describe that run, not the versions in general."
    out.append(sure)
    kinds = {r.condition.kind for r in report.estimates}
    missing = [words for kind, words in KIND_WORDS.items() if kind not in kinds]
    failed = [c.name for c in report.checks if c.status == "fail"]
    from harness.registry import metrics

    groups = {metrics.get(r.metric).group for r in report.estimates}
    unmeasured = [words for ok, words in (
        ("privacy" in groups, "whether a model gives away which examples it was trained on"),
        ("cost" in groups, "what a model costs to run"),
        (any(t.energy is not None for t in report.training_summary), "the energy its training used"))
        if not ok]
    gaps = ("What was not tested: other datasets, model sizes and training recipes than these"
            + (f"; {_names(missing)}" if missing else "") + "."
            + (f" This run did not measure {_names(unmeasured)}." if unmeasured else ""))
    if failed:
        gaps += (f" Some checks of the attack results failed ({_names(failed)}): the robustness numbers may be "
                 "too optimistic.")
    if report.incomplete is not None:
        gaps += " The run is not finished: some models or tests are missing from these numbers."
    out.append(gaps)
    return out
