"""How a report's numbers were made, in words: the intervals, the comparisons, the power, BatchNorm.

One text per topic, shared by results.json's ``methods`` and the report's Methods section (and the
terminal's power note), so they never disagree.
"""

from __future__ import annotations

from harness import stats
from harness.reports.rows import Report
from harness.reports.vocabulary import CAVEAT_MARK


def adjust_name(report: Report) -> str:
    """The report's p-value adjustment as the text names it (Holm, BH)."""
    return stats.ADJUSTMENTS[report.adjust][0]


def methods(report: Report) -> dict[str, str]:
    """Topic -> its text: intervals, comparisons, power, bn_mode."""
    n_seeds = len(report.seeds)
    pct = f"{100 * report.level:g}%"
    return {
        "intervals": _interval_text(report, pct),
        "comparisons": (
            f"Each normalized variant is compared with the same architecture with norm "
            f"'{report.suite['baseline_norm']}', on the same seeds, data order, initial weights and test examples. "
            "The difference is the mean of the per-seed differences; its interval is computed like the "
            "estimates' (above) from the per-seed differences and the same example draws for both variants. "
            "The p-value is a sign-flip permutation test over the per-seed "
            "differences (the training seed is the unit of replication), exact when seeds are few; McNemar's "
            f"exact test on per-example outcomes when there is one seed. p-values are {adjust_name(report)}-adjusted "
            "across all "
            f"{len(report.comparisons)} comparisons of this report. Effect size: Cohen's d_z, the mean "
            "per-seed difference over its standard deviation. P(better): the probability that a run of the variant "
            "beats a run of the baseline (share of seed pairs, ties half), with a seed-bootstrap interval. MDE: the "
            "smallest true difference this design detects with 80% power; 'seeds to settle': the seeds that would "
            "detect the observed difference with 80% power, the test set unchanged (none: more seeds would not, "
            "the test set's own noise is too large)."),
        "power": power_note(n_seeds, len(report.comparisons)),
        "bn_mode": _bn_text(report.suite.get("bn_modes", ["frozen"])),
    }


BN_TEXT = {
    "frozen": "'frozen' (the running statistics from training)",
    "batch": "'batch' (each test batch's own statistics; the running ones untouched)",
    "adapt": "'adapt' (statistics re-estimated on the condition's test images, then frozen)",
}


def _bn_text(modes: list[str]) -> str:
    text = ("BatchNorm uses its running statistics at test time ('frozen'); every model is evaluated in eval mode, "
            "and attacks keep it there.")
    if len(modes) > 1:
        text += (" Clean and shifted inputs are also evaluated with BatchNorm in " + ", ".join(BN_TEXT[m] for m in
                 modes[1:]) + " mode, on the same shifted images; models without BatchNorm give the same outcomes "
                 "in every mode, and the comparisons show what the mode changes.")
    return text


def _interval_text(report: Report, pct: str) -> str:
    name = stats.INTERVALS[report.interval][0]
    chosen = {
        "auto": ("the crossed t-interval from two seeds (the variance of the mean split into a seed part, on S-1 "
                 "degrees of freedom, and a test-example part from the example resamples, the seed x example "
                 "interaction counted once); with one seed, Wilson for a proportion and the example bootstrap "
                 "for other metrics"),
    }.get(report.interval, name)
    validity = stats.INTERVALS["crossed-t" if report.interval == "auto" else report.interval][1]
    return (f"Every interval is a {pct} interval. Evaluation metrics ({report.n_resamples} example resamples, the "
            f"draw shared by all seeds and variants): {chosen}; {validity}. "
            f"Training metrics: a t-interval over seeds. Every method was validated by simulation "
            f"(tests/test_stats_validation.py, benchmarks/coverage.py); {CAVEAT_MARK} marks an interval whose "
            "design lies outside the validated range, so it is likely too narrow. Choose another method with "
            "'harness report --interval'.")


def power_note(n_seeds: int, n_comparisons: int) -> str:
    """What the design can and cannot show, stated before anyone reads a p-value."""
    one, family = stats.seeds_to_reach(0.05), stats.seeds_to_reach(0.05, max(n_comparisons, 1))
    start = f"A seed-level test needs at least {one} seeds (smallest p {stats.min_attainable_p(one or 0):.2g})"
    of = "one comparison" if n_comparisons == 1 else f"the strongest of {n_comparisons} Holm-adjusted comparisons"
    need = (start + "; this run compares no variants (each needs a paired variant)." if n_comparisons == 0 else
            start + ", and "
            + (f"at least {family} for {of} to reach p < 0.05 "
               "(fewer variants make fewer comparisons)." if family is not None else
               f"no number of seeds lets the strongest of {n_comparisons} Holm-adjusted comparisons reach p < 0.05 "
               f"(the sign-flip test's smallest p times {n_comparisons} stays above it): compare fewer variants."))
    if n_seeds == 1:
        return ("With one seed, p-values come from McNemar's exact test on per-example outcomes: they say whether "
                "these two trained models differ on these test examples, not whether the variants differ across "
                "training runs. " + need)
    p_min = stats.min_attainable_p(n_seeds)
    text = f"With {n_seeds} seeds, the smallest two-sided p-value the sign-flip test can give is {p_min:.3g}"
    if n_comparisons * p_min < 0.05:
        return text + "."
    return text + (f", so no comparison of the table of all {n_comparisons} can reach p < 0.05 after Holm's adjustment "
                   "across them, however large the effect (the claims are adjusted only within their own family: "
                   "see Claims): there, an interval that excludes 0 shows a difference on these test examples and "
                   "seeds, not one established across training seeds. " + need)


def energy_method(report: Report) -> str:
    """How the run's training energy was obtained (harness.energy), from its records: one sentence, "" when
    no record measured it."""
    methods = {(str(t.result.get("energy_method")), t.result.get("declared_watts_per_core"))
               for t in report.training if t.result.get("energy_method")}
    if not methods:
        return ""
    text = []
    for method, watts in sorted(methods, key=str):
        if method == "rapl":
            text.append("from the CPU packages' energy counters over the training steps (the whole package: other "
                        "work on the machine at the time is counted too)")
        else:
            text.append(f"estimated as a declared {watts:g} W per busy core times the CPU time of the steps (not "
                        "measured: on it, energy compares between variants as CPU time does)")
    return "Energy: " + "; ".join(text) + "."
