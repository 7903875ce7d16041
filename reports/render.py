"""Renderers: a :class:`~reports.build.Report` as JSON, Markdown and a terminal summary.

Renderers format; they compute nothing that is not in the report, so the three outputs always
agree. ``write_reports`` writes ``results.json``, ``report.md`` with its ``figures/*.svg`` and the
self-contained ``report.html`` into the run directory.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness import stats
from harness.specs import Condition, clean
from reports.build import (
    PARTIAL_SEEDS,
    SCHEMA_VERSION,
    TRAINING_SUMMARY_METRICS,
    ComparisonRow,
    EstimateRow,
    Report,
    mean_shift,
)

if TYPE_CHECKING:
    from reports.figures import Figure

# the JSON Schema (draft 2020-12) that results.json follows; shipped in the wheel as package data
SCHEMA_PATH = Path(__file__).with_name("schema") / "results-v3.schema.json"

METRIC_TEXT = {
    "accuracy": "accuracy, % (higher is better)",
    "auroc": "AUROC (higher is better)",
    "fpr95": "FPR at 95% TPR, % (lower is better)",
    "aupr_in": "AUPR-in, in-distribution as the positive class (higher is better)",
    "aupr_out": "AUPR-out, OOD as the positive class (higher is better)",
    "ece": "expected calibration error, 15 equal-width bins, % (lower is better)",
    "nll": "negative log-likelihood of the true class, nats (lower is better)",
    "brier": "Brier score, squared distance of the softmax from the one-hot label (lower is better)",
    "mce": "mean corruption error relative to the reference variant, % (lower is better; the reference is 100)",
    "relative_mce": "relative mean corruption error (errors minus clean error) against the reference, % "
                    "(lower is better; the reference is 100)",
    "steps_to_target": "steps to target, a run that never reached it counted at its budget (lower is better)",
    "seconds_per_step": "ms per step (lower is better)",
    "aulc": "area under the held-out accuracy curve over the budget, % (higher is better)",
    "loss_roughness": "roughness of the training loss: sd of the step-to-step change of log(loss) (lower is better)",
    "converged_fraction": "share of the sweep's points at which a seed's run reached the target without diverging, "
                          "% (higher is better)",
    "denoising_loss": "ELBO-style denoising loss per test image, nats up to a model-free constant (lower is better)",
    "sample_fid": "Frechet distance between the judge classifier's features of generated and of real test images "
                  "(lower is better)",
    "class_tv": "total-variation distance of the generated images' class mix (as the judge classifies them) from "
                "the test labels' (lower is better)",
    "mean_val_loss": "mean held-out denoising loss over the training budget (lower is better)",
    "final_val_loss": "held-out denoising loss at the end of training (lower is better)",
}


# --- numbers -------------------------------------------------------------------------------


def _scale(metric: str) -> tuple[float, int]:
    """(multiplier, decimals) for showing a metric."""
    return {"accuracy": (100, 1), "fpr95": (100, 1), "mce": (100, 1), "relative_mce": (100, 1), "ece": (100, 1),
            "auroc": (1, 3), "steps_to_target": (1, 0), "epochs_to_target": (1, 2), "seconds_to_target": (1, 2),
            "seconds_per_step": (1000, 2), "final_val_accuracy": (100, 1), "aulc": (100, 1),
            "converged_fraction": (100, 0), "grad_norm_median": (1, 2), "grad_norm_max": (1, 1),
            "peak_memory_bytes": (2.0 ** -20, 2)}.get(metric, (1, 3))


def fmt(value: float | None, metric: str, signed: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    k, d = _scale(metric)
    return f"{value * k:{'+' if signed else ''}.{d}f}"


def fmt_interval(low: float, high: float, metric: str, signed: bool = False) -> str:
    if math.isnan(low) or math.isnan(high):
        return "[n/a]"
    return f"[{fmt(low, metric, signed)}, {fmt(high, metric, signed)}]"


CAVEAT_MARK = "†"  # an interval outside the designs its method was validated for


def fmt_estimate(e: stats.Estimate | None, metric: str) -> str:
    if e is None:
        return "n/a"
    return f"{fmt(e.value, metric)} {fmt_interval(e.ci_low, e.ci_high, metric)}{CAVEAT_MARK if e.caveat else ''}"


def fmt_p(p: float) -> str:
    return "n/a" if math.isnan(p) else f"{p:.3f}" if p >= 0.001 else "<0.001"


def condition_label(c: Condition | None) -> str:
    if c is None:
        return "training"
    if c.kind == "sweep":
        return f"sweep over {c.name}"
    bn = "" if c.bn_mode == "frozen" else f" [BN {c.bn_mode}]"
    if c.kind == "clean":
        return "clean" + bn
    if c.kind == "shift":
        return ("all shifts (mean)" if c.name == "all" else f"{c.name} s{c.param('severity')}") + bn
    if c.kind == "natural":
        return f"{c.name} s{c.param('severity')} (pre-rendered)" if c.params else f"natural: {c.name}"
    if c.kind == "ood":
        return f"OOD {c.name} ({c.param('score')})"
    if c.kind == "samples":
        return "samples"
    extra = ", ".join(f"{k} {v}" for k, v in c.params if k != "eps")
    return f"{c.name} eps {c.param('eps'):g}" + (f" ({extra})" if extra else "")


# --- JSON ----------------------------------------------------------------------------------


def _clean(x: Any) -> Any:
    """NaN and infinities are not JSON: write them as null."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    return x


def _estimate_json(row: EstimateRow) -> dict[str, Any]:
    return {"variant": row.variant, "condition": row.condition.to_dict(), "metric": row.metric,
            **row.estimate.to_dict()}


def _comparison_json(row: ComparisonRow, adjust: str) -> dict[str, Any]:
    return {"variant": row.variant, "baseline": row.baseline,
            "condition": {"kind": "training"} if row.condition is None else row.condition.to_dict(),
            "metric": row.metric, **row.comparison.to_dict(), "p_adjusted": row.p_adjusted,
            "p_adjustment": adjust, "seeds": list(row.seeds), "better": row.better,
            "prob_improvement": row.prob_improvement, "prob_improvement_low": row.prob_improvement_low,
            "prob_improvement_high": row.prob_improvement_high}


def _adjust_name(report: Report) -> str:
    return stats.ADJUSTMENTS[report.adjust][0]


def to_json(report: Report) -> dict[str, Any]:
    """The machine-readable results (``results.json``)."""
    return _clean({
        "schema_version": SCHEMA_VERSION,
        "suite": report.suite,
        "seeds": list(report.seeds),
        "variants": list(report.variants),
        "level": report.level,
        "n_resamples": report.n_resamples,
        "interval": report.interval,
        "methods": methods(report),
        "claims": [v.to_dict() for v in report.claims],
        "estimates": [_estimate_json(r) for r in report.estimates],
        "comparisons": [_comparison_json(r, report.adjust) for r in report.comparisons],
        "training": [{"variant": t.variant, "seed": t.seed, "status": t.status, "error": t.error, **t.result}
                     for t in report.training],
        "training_summary": [
            {"variant": s.variant, "n_seeds": s.n_seeds, "reached_target": s.reached, "diverged": s.diverged,
             "failed": s.failed,
             **{m: None if getattr(s, m) is None else getattr(s, m).to_dict() for m in TRAINING_SUMMARY_METRICS}}
            for s in report.training_summary],
        "sweeps": [{"family": w.family, "setting": w.setting,
                    "converged_range": None if w.converged_range is None else list(w.converged_range),
                    "points": [{"value": p.value, "variant": p.variant, "n_seeds": p.n_seeds, "converged": p.converged,
                                "diverged": p.diverged, "final_val_accuracy": None if p.final_val_accuracy is None
                                else p.final_val_accuracy.to_dict()} for p in w.points]}
                   for w in report.sweeps],
        "attacks": list(report.attack_settings),
        "reliability": list(report.reliability),
        "curves": list(report.curves),
        "roc": list(report.roc),
        "checks": [{"name": c.name, "status": c.status, "detail": c.detail} for c in report.checks],
        "excluded": list(report.excluded),
        "provenance": report.provenance,
        **({"judge": report.judge} if report.judge is not None else {}),
    })


# --- methods text (shared by Markdown and JSON) --------------------------------------------


def methods(report: Report) -> dict[str, str]:
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
            f"exact test on per-example outcomes when there is one seed. p-values are {_adjust_name(report)}-adjusted "
            "across all "
            f"{len(report.comparisons)} comparisons of this report. Effect size: Cohen's d_z, the mean "
            "per-seed difference over its standard deviation. P(better): the probability that a run of the variant "
            "beats a run of the baseline (share of seed pairs, ties half), with a seed-bootstrap interval. MDE: the "
            "smallest true difference this design detects with 80% power; 'seeds to settle': the seeds that would "
            "detect the observed difference with 80% power, the test set unchanged (none: more seeds would not, "
            "the test set's own noise is too large)."),
        "power": _power_note(n_seeds, len(report.comparisons)),
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


def _calibration(report: Report) -> list[str]:
    """Calibration on clean inputs (ECE, NLL, Brier per variant), then ECE under every shift."""
    est = {(r.variant, r.condition.key, r.metric): r.estimate for r in report.estimates}
    metrics = [m for m in ("ece", "nll", "brier") if any(r.metric == m for r in report.estimates)]
    if not metrics:
        return []
    rows = [[_esc(v["name"]), *(fmt_estimate(est.get((v["name"], "clean", m)), m) for m in metrics)]
            for v in report.variants]
    return ["## Calibration", "", *[f"- {m.upper() if m != 'brier' else 'Brier'}: {METRIC_TEXT[m]}" for m in metrics],
            "", "In-distribution:", "", _table(["variant", *(m.upper() if m != "brier" else "Brier" for m in metrics)],
                                               rows), "",
            "ECE under every shift (NLL and Brier are in results.json, with reliability-diagram data):", "",
            _est_grid(report, "shift", "ece"), ""]


def _ce_table(report: Report) -> list[str]:
    """mCE and relative mCE per variant, as ImageNet-C reports them, against each variant's reference."""
    rows_for = [r for r in report.estimates if r.metric in ("mce", "relative_mce")]
    if not rows_for:
        return []
    cols = list(dict.fromkeys((r.metric, r.condition) for r in rows_for))
    cell = {(r.variant, r.metric, r.condition): fmt_estimate(r.estimate, r.metric) for r in rows_for}
    header = [("mCE %" if m == "mce" else "relative mCE %") + ("" if c.bn_mode == "frozen" else f" [BN {c.bn_mode}]")
              for m, c in cols]
    reference = report.suite.get("baseline_norm", "none")
    return ["## Corruption error", "", f"{METRIC_TEXT['mce'].capitalize()}; the reference of each variant is the "
            f"same architecture with norm '{_esc(reference)}'. Relative mCE counts only the accuracy lost to "
            "corruption (each error minus the model's clean error).", "",
            _table(["variant", *header], [[_esc(v["name"]), *(cell.get((v["name"], m, c), "n/a") for m, c in cols)]
                                          for v in report.variants]), ""]


def _bn_table(report: Report) -> list[str]:
    """Clean and mean shifted accuracy per variant under each BatchNorm test-time mode, side by side."""
    modes = list(report.suite.get("bn_modes", ["frozen"]))
    if len(modes) < 2:
        return []
    est = {(r.variant, r.condition.key): r.estimate for r in report.estimates if r.metric == "accuracy"}
    cols = [(f"{title} [{m}]", cond.key) for m in modes
            for title, cond in (("clean", clean(m)), ("all shifts", mean_shift(m)))]
    rows = [[_esc(v["name"]), *[fmt_estimate(est.get((v["name"], key)), "accuracy") for _, key in cols]]
            for v in report.variants]
    return ["## BatchNorm at test time", "", "accuracy, % (higher is better), by how BatchNorm statistics are "
            "used at test time; rows without BatchNorm read the same in every mode.", "",
            _table(["variant", *[c[0] for c in cols]], rows), ""]


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


def _power_note(n_seeds: int, n_comparisons: int) -> str:
    """What the design can and cannot show, stated before anyone reads a p-value."""
    one, family = stats.seeds_to_reach(0.05), stats.seeds_to_reach(0.05, max(n_comparisons, 1))
    need = (f"A seed-level test needs at least {one} seeds (smallest p {stats.min_attainable_p(one or 0):.2g}), and "
            + (f"at least {family} for the strongest of {n_comparisons} Holm-adjusted comparisons to reach p < 0.05 "
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
    return text + (", so no Holm-adjusted comparison here can reach p < 0.05 however large the effect: an interval "
                   "that excludes 0 shows a difference on these test examples and seeds, not one established "
                   "across training seeds. " + need)


# --- Markdown ------------------------------------------------------------------------------


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _esc(text: str) -> str:
    """Names from suites and plugins go into tables: keep them from breaking the Markdown."""
    return text.replace("|", "\\|").replace("\n", " ")


def _est_grid(report: Report, kind: str, metric: str) -> str:
    rows_for = [r for r in report.estimates if r.condition.kind == kind and r.metric == metric]
    conds: list[Condition] = list(dict.fromkeys(r.condition for r in rows_for))
    variants = [v["name"] for v in report.variants]
    cell = {(r.variant, r.condition): fmt_estimate(r.estimate, metric) for r in rows_for}
    return _table(["condition", *variants],
                  [[_esc(condition_label(c)), *(cell.get((v, c), "n/a") for v in variants)] for c in conds])


def _power_cells(r: ComparisonRow) -> list[str]:
    """Effect size, probability of improvement, detectable difference and seeds to settle a comparison."""
    c = r.comparison
    pi = "n/a" if r.prob_improvement is None else f"{r.prob_improvement:.2f}" + (
        "" if r.prob_improvement_low is None else f" [{r.prob_improvement_low:.2f}, {r.prob_improvement_high:.2f}]")
    return ["n/a" if c.effect_size is None else f"{c.effect_size:.2f}", pi,
            "n/a" if c.mde is None else fmt(c.mde, r.metric),
            "none" if c.seeds_needed is None else str(c.seeds_needed)]


def caveat_legend(report: Report) -> list[str]:
    """One line saying what the caveat mark means in this report (empty when nothing carries one)."""
    # a comparison on fewer seeds than the suite's carries build's note after the interval's own caveat: one note each
    caveats = dict.fromkeys(part for c in [r.estimate.caveat for r in report.estimates]
                            + [r.comparison.caveat for r in report.comparisons]
                            for part in (c.removesuffix(PARTIAL_SEEDS).removesuffix("; "),
                                         PARTIAL_SEEDS if c.endswith(PARTIAL_SEEDS) else "") if part)
    if not caveats:
        return []
    return [f"{CAVEAT_MARK} The interval's design lies outside the range its method was validated for: "
            + "; ".join(caveats) + ". Measured coverage in docs/statistics.md.", ""]


def claims_section(report: Report) -> list[str]:
    """The verdict on each declared claim, with the comparisons it rests on."""
    if not report.claims:
        return []
    n_family = len({(e.variant, e.baseline, e.condition) + (v.to_dict()["metric"],) for v in report.claims
                    for e in v.evidence})
    out = ["## Claims", "", f"Each claim is judged on its matching paired comparisons: supported when every "
           f"interval lies on the claimed side and every adjusted p is below {1 - report.level:.2g}; contradicted "
           "when one does so on the other side; inconclusive otherwise. The claims were declared before the run, "
           f"so their p-values are {_adjust_name(report)}-adjusted as one family: the {n_family} comparisons the "
           "claims rest on (the table of all comparisons below adjusts across all of them).", "",
           _table(["claim", "verdict", "why"], [[_esc(v.to_dict()["text"]), f"**{v.verdict}**", _esc(v.reason)]
                                              for v in report.claims]), ""]
    for v in report.claims:
        if v.evidence:
            metric = v.to_dict()["metric"]
            out += [f"Evidence for \"{_esc(v.to_dict()['text'])}\":", "", _table(
                ["variant", "baseline", "condition", "difference", "interval",
                 f"p ({_adjust_name(report)}, claims)", "verdict"],
                [[_esc(e.variant), _esc(e.baseline), _esc(e.condition), fmt(e.diff, metric, signed=True),
                  fmt_interval(e.ci_low, e.ci_high, metric, signed=True), fmt_p(e.p_adjusted), e.verdict]
                 for e in v.evidence]), ""]
    return out


def _comparison_rows(rows: list[ComparisonRow], esc: Callable[[str], str] = _esc) -> list[list[str]]:
    """The paired-comparison table's cells, names escaped by ``esc`` (Markdown by default)."""
    return [[esc(r.variant), esc(r.baseline), esc(condition_label(r.condition)), esc(r.metric),
             fmt(r.comparison.diff, r.metric, signed=True),
             fmt_interval(r.comparison.ci_low, r.comparison.ci_high, r.metric, signed=True)
             + (CAVEAT_MARK if r.comparison.caveat else ""),
             fmt_p(r.comparison.p_value), fmt_p(r.p_adjusted), str(r.comparison.n_seeds)] for r in rows]


def _denoise_columns(report: Report) -> list[tuple[str, str, str]]:
    """A denoise suite's summary columns: clean and mean shifted denoising loss, AUROC per OOD set,
    the loss at the largest eps, and the samples' feature distance and class mix."""
    keys = {r.condition.key for r in report.estimates}
    cols = [(t, k, "denoising_loss") for t, k in (("clean loss", "clean"), ("shifted loss (mean)", "shift:all"))
            if k in keys]
    cols += list(dict.fromkeys((f"AUROC {r.condition.name}", r.condition.key, "auroc") for r in report.estimates
                               if r.condition.kind == "ood" and r.metric == "auroc"))
    attacks = [r.condition for r in report.estimates if r.condition.kind == "attack"]
    if attacks:
        c = max(attacks, key=lambda c: c.param("eps"))
        cols.append((f"{c.name} eps {c.param('eps'):g} loss", c.key, "denoising_loss"))
    return cols + [(t, "samples", m) for t, m in (("sample FD", "sample_fid"), ("class TV", "class_tv"))
                   if "samples" in keys]


def headline_columns(report: Report) -> list[tuple[str, str, str]]:
    """(title, condition key, metric) of the summary table's columns."""
    if report.suite.get("task") == "denoise":
        return _denoise_columns(report)
    cols: list[tuple[str, str, str]] = [("clean acc %", "clean", "accuracy")]
    if any(r.condition.key == "shift:all" for r in report.estimates):
        cols.append(("shifted acc % (mean)", "shift:all", "accuracy"))
    for r in report.estimates:
        if r.condition.kind == "ood" and r.metric == "auroc":
            col = (f"AUROC {r.condition.name}", r.condition.key, "auroc")
            if col not in cols:
                cols.append(col)
    attacks = [r.condition for r in report.estimates if r.condition.kind == "attack"]
    strongest: dict[str, Condition] = {}
    for c in attacks:  # largest eps of each attack
        if c.name not in strongest or c.param("eps") > strongest[c.name].param("eps"):
            strongest[c.name] = c
    cols += [(f"{c.name} eps {c.param('eps'):g} acc %", c.key, "accuracy") for c in strongest.values()]
    return cols


def compact_columns(report: Report) -> list[tuple[str, str, str]]:
    """The terminal's few headline columns: clean and mean shifted accuracy, AUROC on the first
    OOD set, and the worst case over all attacks at the largest eps where some variant keeps at
    least 20% accuracy (beyond it every row reads ~0 and says nothing)."""
    if report.suite.get("task") == "denoise":
        return [c for c in _denoise_columns(report) if c[1] in ("clean", "shift:all", "samples")
                or c[0].startswith("AUROC")][:6]
    cols = [c for c in headline_columns(report) if c[1] in ("clean", "shift:all")]
    cols += [c for c in headline_columns(report) if c[0].startswith("AUROC")][:1]
    acc = defaultdict(list)
    for r in report.estimates:
        if r.condition.kind == "attack" and r.condition.name == "worst-case" and r.metric == "accuracy":
            acc[r.condition].append(r.estimate.value)
    telling = [c for c, vs in acc.items() if max(vs) >= 0.2]
    if telling:
        c = max(telling, key=lambda c: c.param("eps"))
        cols.append((f"worst attack eps {c.param('eps'):g} %", c.key, "accuracy"))
    return cols


def headline(report: Report, cols: list[tuple[str, str, str]] | None = None) -> tuple[list[str], list[list[str]]]:
    """The summary table: one row per variant, the main numbers with intervals (``cols``, by
    default :func:`headline_columns`)."""
    est = {(r.variant, r.condition.key, r.metric): r.estimate for r in report.estimates}
    cols = headline_columns(report) if cols is None else cols
    train = {s.variant: s for s in report.training_summary}
    header = ["variant", "steps to target", *[c[0] for c in cols]]
    rows = []
    for v in report.variants:
        s = train.get(v["name"])
        steps = "n/a" if s is None else (fmt_estimate(s.steps_to_target, "steps_to_target") if s.steps_to_target
                                         else f"{s.reached}/{s.n_seeds} reached")
        rows.append([v["name"], steps, *[fmt_estimate(est.get((v["name"], k, m)), m) for _, k, m in cols]])
    return header, rows


def _attack_notes(report: Report) -> list[str]:
    """How the adversarial numbers were made: worst-case accounting and every attack's settings."""
    keys = sorted({k for a in report.attack_settings for k in a if k not in ("name", "class", "norm", "eps")})
    def value(a: dict[str, Any], k: str) -> str:
        if k == "alpha" and k in a and a[k] is None:  # PGD's default step size scales with eps
            return "2.5 * eps / steps"
        return _esc(str(a.get(k, "-")))

    rows = [[_esc(a["name"]), _esc(a["class"]), a["norm"], ", ".join(f"{e:g}" for e in a["eps"]),
             *[value(a, k) for k in keys]] for a in report.attack_settings]
    return ["An example counts as broken if any iterate of any restart fooled the model, and at an eps if it was "
            "broken at a smaller eps of the same sweep (that input lies in the larger ball too); "
            "`worst-case` rows count an example as robust only if no attack at that eps broke it.", "",
            "Attack settings, as run (defaults resolved):", "",
            _table(["attack", "class", "norm", "eps", *keys], rows), ""] if rows else []


def _figure_lines(figs: Sequence[Figure], section: str) -> list[str]:
    """Image lines (``![title](figures/NAME.svg)``) and captions of the figures of ``section``."""
    def alt(text: str) -> str:
        return _esc(text).replace("[", "\\[").replace("]", "\\]")

    return [line for f in figs if f.section == section
            for line in (f"![{alt(f.title)}](figures/{f.name}.svg)", "", _esc(f.caption), "")]


def to_markdown(report: Report, figs: Sequence[Figure] | None = None) -> str:
    """The report as Markdown; ``figs`` (by default :func:`reports.figures.figures`) are referenced
    as ``figures/NAME.svg`` under their sections, so write them beside it (:func:`write_reports`)."""
    if figs is None:
        from reports.figures import figures  # figures imports this module: import on use

        figs = figures(report)
    s = report.suite
    p = report.provenance
    m = methods(report)
    out = [f"# {_esc(s['name'])} {_esc(s['version'])}: what normalization does", "",
           _esc(s["description"]), "",
           f"Dataset `{_esc(s['dataset'])}`, {report.n_test} test examples; seeds {list(report.seeds)}; "
           f"variants {', '.join('`' + _esc(v['name']) + '`' for v in report.variants)}. "
           f"Every number is a mean over seeds with its {100 * report.level:g}% interval in brackets; "
           "how intervals and tests are computed is under Methods.", ""]
    if report.excluded:
        out += ["**Excluded** (no usable model, or an evaluation that failed or never ran; each comparison uses the "
                "seeds where both variants have a record): " + "; ".join(map(_esc, report.excluded)), ""]
    header, rows = headline(report)
    out += ["## Summary", "", _table(header, rows), "", *caveat_legend(report), *_figure_lines(figs, "summary")]
    out += claims_section(report)

    denoise = report.suite.get("task") == "denoise"
    target = (f"Held-out target denoising loss {report.suite['target_loss']:g} (the per-pixel DDPM loss on the "
              "validation images, fixed draws of timestep and noise)" if denoise
              else f"Held-out target accuracy {100 * report.suite['target_accuracy']:g}%")
    final, area = ("final_val_loss", "mean_val_loss") if denoise else ("final_val_accuracy", "aulc")
    final_title, area_title = (("final held-out loss", "mean held-out loss") if denoise
                               else ("final held-out acc %", "AULC %"))
    area_text = ("Mean held-out loss: the area under the held-out denoising-loss curve over the budget divided by "
                 "the budget (lower is better)." if denoise else "AULC: the area "
                 "under the held-out accuracy curve over the budget, % (higher is better).")
    out += ["## Training", "",
            f"{target}. Steps, epochs and seconds to "
            "target are shown when every finished seed reached it; otherwise the count of seeds that did "
            "(censored runs are not dropped: in paired comparisons they count at their budget). " + area_text +
            " Roughness: the sd of the "
            "step-to-step change of log(training loss) (lower is smoother). |grad|: the median L2 norm of a step's "
            "gradients. Memory: one training step's peak, MiB (" + _memory_method(report) + ").", ""]
    out.append(_table(
        ["variant", "reached", "diverged", "steps to target", "epochs to target", "s to target", "ms / step",
         final_title, area_title, "roughness", "|grad|", "memory MiB"],
        [[_esc(t.variant), f"{t.reached}/{t.n_seeds}", str(t.diverged),
          *[fmt_estimate(getattr(t, m), m) for m in ("steps_to_target", "epochs_to_target", "seconds_to_target",
                                                     "seconds_per_step", final, area,
                                                     "loss_roughness", "grad_norm_median", "peak_memory_bytes")]]
         for t in report.training_summary]))
    out += ["", "Per run:", "", _table(
        ["variant", "seed", "status", "steps", "steps to target", "s to target", "ms / step", final_title,
         area_title, "roughness", "max |grad|"],
        [[_esc(t.variant), str(t.seed), "diverged" if t.result.get("diverged") else
          "loaded" if t.result.get("trained") is False else t.status,  # weights loaded, not trained
          str(t.result.get("n_steps", "n/a")),
          "not reached" if t.status == "done" and "steps_to_target" in t.result and t.result["steps_to_target"] is None
          else str(t.result.get("steps_to_target", "n/a")),
          fmt(t.result.get("seconds_to_target"), "auroc"), fmt(t.result.get("seconds_per_step"), "seconds_per_step"),
          fmt(t.result.get(final), final), fmt(t.result.get(area), area),
          fmt(t.result.get("loss_roughness"), "loss_roughness"), fmt(t.result.get("grad_norm_max"), "grad_norm_max")]
         for t in report.training]), ""]
    out += _sweep_section(report)
    out += _figure_lines(figs, "training")

    sections = [("In-distribution", "clean", "accuracy"),
                ("In-distribution: denoising loss", "clean", "denoising_loss"),
                ("Shifted inputs", "shift", "accuracy"), ("Shifted inputs: denoising loss", "shift", "denoising_loss"),
                ("Natural shifts: same classes, another source", "natural", "accuracy"),
                ("Out-of-distribution detection: AUROC", "ood", "auroc"),
                ("Out-of-distribution detection: FPR at 95% TPR", "ood", "fpr95"),
                ("Out-of-distribution detection: AUPR-in", "ood", "aupr_in"),
                ("Out-of-distribution detection: AUPR-out", "ood", "aupr_out"),
                ("Adversarial robustness", "attack", "accuracy"),
                ("Adversarial: PGD on the denoising loss", "attack", "denoising_loss"),
                ("Samples: feature distance", "samples", "sample_fid"),
                ("Samples: class mix", "samples", "class_tv")]
    placed = {"summary", "training"}
    for title, kind, metric in sections:
        if any(r.condition.kind == kind and r.metric == metric for r in report.estimates):
            out += [f"## {title}", "", f"{METRIC_TEXT[metric]}.", "", _est_grid(report, kind, metric), ""]
            out += [] if kind in placed else _figure_lines(figs, kind)
            placed.add(kind)
            if kind == "attack":
                out += _attack_notes(report)
            if kind == "samples" and metric == "sample_fid":
                out += _judge_notes(report)
            if kind == "shift":
                out += _bn_table(report) + _ce_table(report) + _calibration(report) + _figure_lines(figs, "calibration")
                placed.add("calibration")
    rest = [f for f in figs if f.section not in placed]  # e.g. reliability on clean inputs when nothing is shifted
    if rest:
        out += ["## Figures", "", *[line for sec in dict.fromkeys(f.section for f in rest)
                                    for line in _figure_lines(rest, sec)]]

    out += ["## Paired comparisons", "",
            f"Each variant minus its baseline; difference and interval in the metric's units; p raw and "
            f"{_adjust_name(report)}-adjusted ({len(report.comparisons)} comparisons).", "",
            _table(["variant", "baseline", "condition", "metric", "difference", "interval", "p",
                    f"p ({_adjust_name(report)})", "seeds", "d_z", "P(better)", "MDE", "seeds to settle"],
                   [row + _power_cells(r) for row, r in zip(_comparison_rows(list(report.comparisons)),
                                                             report.comparisons, strict=True)]), ""]
    out += ["## Sanity checks", "", _table(["check", "status", "detail"],
                                           [[_esc(c.name), c.status, _esc(c.detail)] for c in report.checks])
            if report.checks else "None: the adversarial sanity checks are the classifiers'; a denoise suite's "
            "attack maximises a loss, which has no accuracy to check.", ""]
    out += ["## Methods", "", *[f"- **{k}**: {v}" for k, v in m.items()], ""]
    versions = ", ".join(f"{k} {v}" for k, v in (p.get("versions") or {}).items() if v)
    out += ["## Provenance", "",
            f"- harness {p.get('harness')} (git {p.get('git') or 'unknown'}), Python {p.get('python')}, {versions}",
            f"- device {p.get('device')} ({_esc(str(p.get('device_name')))}), torch threads "
            f"{p.get('torch_threads')}, deterministic algorithms {p.get('deterministic_algorithms')}",
            f"- platform {p.get('platform')}; started {p.get('started')}",
            f"- command: `{' '.join(map(str, p.get('command') or []))}`", ""]
    return "\n".join(out)


def _judge_notes(report: Report) -> list[str]:
    """How the samples were judged: the suite's own classifier, its accuracy, and what real images score."""
    j = report.judge
    if not j:
        return []
    return [f"Each seed's model generates its samples from the same noise for every variant (one value per seed: "
            f"the interval is a t-interval over seeds, comparisons a sign-flip test over seeds). The judge is the "
            f"suite's own classifier `{_esc(str(j.get('model')))}` with norm `{_esc(str(j.get('norm')))}`, trained "
            f"once per run (seed {j.get('seed')}): {100 * float(j.get('test_accuracy', math.nan)):.1f}% accuracy on "
            f"the {j.get('n_test')} test images. For scale, {j.get('reference_n')} real training images score a "
            f"feature distance of {float(j.get('reference_fid', math.nan)):.3f} and a class TV of "
            f"{float(j.get('reference_class_tv', math.nan)):.3f} against the test images: what a perfect "
            "generator would score at this number of samples.", ""]


def _memory_method(report: Report) -> str:
    methods = {str(t.result["memory_method"]) for t in report.training if t.result.get("memory_method")}
    text = {"cuda-peak": "CUDA's allocator peak, less the data kept on the device",
            "counted": "counted: parameters, gradients, optimizer state and the activations saved for backward"}
    return "; ".join(text.get(m, m) for m in sorted(methods)) or "not recorded"


def _sweep_section(report: Report) -> list[str]:
    """Per variant family and swept setting: seeds converged at each value, and the range of
    values at which every seed converged."""
    if not report.sweeps:
        return []
    out = ["### Sweeps", "", "Converged: the seeds whose run reached the target without diverging. Range: the "
           "values of the setting at which every seed converged (the paired comparisons test the share of points "
           "converged, per seed, against the baseline family).", ""]
    for setting in dict.fromkeys(w.setting for w in report.sweeps):
        ws = [w for w in report.sweeps if w.setting == setting]
        values = list(dict.fromkeys(p.value for w in ws for p in w.points))
        rows = []
        for w in ws:
            at = {p.value: p for p in w.points}
            rng = "none" if w.converged_range is None else f"{w.converged_range[0]:g} to {w.converged_range[1]:g}"
            rows.append([_esc(w.family), *[f"{at[v].converged}/{at[v].n_seeds}" + (f" ({at[v].diverged} div.)"
                                                                                  if at[v].diverged else "")
                                           if v in at else "-" for v in values], rng])
        out += [f"Sweep over `{_esc(setting)}`: seeds converged at each value.", "",
                _table(["variant", *[f"{setting} {v:g}" for v in values], "range"], rows), ""]
    return out


# --- terminal ------------------------------------------------------------------------------


def print_summary(report: Report, console: Any = None) -> None:
    """The headline table and the comparisons whose intervals exclude zero, with rich."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console(stderr=True)
    header, rows = headline(report, compact_columns(report))
    t = Table(title=f"{report.suite['name']} {report.suite['version']}: mean over {len(report.seeds)} seeds "
                    f"[{100 * report.level:g}% interval]; every number in report.md", show_lines=False)
    for h in header:
        t.add_column(h, overflow="fold")
    for r in rows:
        t.add_row(*r)
    console.print(t)
    # the headline conditions first, then the rest in report order
    shown = {k for _, k, _ in headline_columns(report)} | {"training"}
    clear = sorted((r for r in report.comparisons if r.comparison.ci_low > 0 or r.comparison.ci_high < 0),
                   key=lambda r: (r.condition.key if r.condition else "training") not in shown)
    c = Table(title=f"Paired differences whose interval excludes 0 ({len(clear)} of {len(report.comparisons)})")
    for h in ["variant", "baseline", "condition", "metric", "difference", "interval", f"p ({_adjust_name(report)})"]:
        c.add_column(h)
    for row in _comparison_rows(clear[:15]):
        c.add_row(*row[:6], row[7])
    if clear:
        console.print(c)
        if len(clear) > 15:
            console.print(f"... and {len(clear) - 15} more in report.md")
    failed = [ch for ch in report.checks if ch.status == "fail"]
    console.print(f"Sanity checks: {sum(ch.status == 'pass' for ch in report.checks)} passed, {len(failed)} failed"
                  + "".join(f"\n  FAILED {ch.name}: {ch.detail}" for ch in failed))
    for line in caveat_legend(report)[:1]:
        console.print(line, style="dim", markup=False)
    console.print(methods(report)["power"], style="dim")


def _write(path: Path, text: str) -> None:
    """Write to a temporary name, then rename: a reader never sees half a file."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def write_reports(report: Report, run_dir: Path | str) -> dict[str, Path]:
    """Write ``figures/*.svg``, then ``report.md`` (which references them), ``report.html`` (one
    self-contained file, figures inlined), ``report.tex`` (the tables, for papers) and
    ``results.json``. Returns the paths by label: report, html, latex, results, figures (the folder)."""
    from reports.figures import figures  # these modules import this one: import on use
    from reports.html import to_html
    from reports.latex import to_latex

    run_dir = Path(run_dir)
    figs = figures(report)
    fig_dir = run_dir / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    for f in figs:
        _write(fig_dir / f"{f.name}.svg", f.svg)
    for stale in set(fig_dir.glob("*.svg")) - {fig_dir / f"{f.name}.svg" for f in figs}:
        stale.unlink()  # a figure that lost its data (e.g. rebuilt with fewer records) must not linger
    paths = {"report": run_dir / "report.md", "html": run_dir / "report.html", "latex": run_dir / "report.tex",
             "results": run_dir / "results.json"}
    texts = {"report": to_markdown(report, figs), "html": to_html(report, figs), "latex": to_latex(report),
             "results": json.dumps(to_json(report), indent=1, allow_nan=False) + "\n"}
    for label, path in paths.items():
        _write(path, texts[label])
    return {**paths, "figures": fig_dir}
