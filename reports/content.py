"""What a report says: a :class:`~harness.reports.rows.Report` built into documents (harness.reports.document).

:func:`report_document` is the whole report (Markdown and HTML render it), :func:`tables_document`
its headline and comparison tables (LaTeX, for papers), :func:`summary_document` the terminal's
few numbers. The three share their tables' cells, so every output shows the same strings. This
module computes nothing that is not in the report: it chooses, orders and words.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from harness.reports.claims import CLAIMED, OPPOSITE, rule
from harness.reports.document import (
    Block,
    Bold,
    BulletList,
    Code,
    Document,
    Figure,
    Heading,
    Span,
    Table,
    paragraph,
    table,
)
from harness.reports.methods import adjust_name, energy_method, methods
from harness.reports.plain import plain_summary
from harness.reports.rows import PARTIAL_SEEDS, ComparisonRow, Report, mean_shift, metric_of
from harness.reports.vocabulary import CAVEAT_MARK, condition_label, fmt, fmt_estimate, fmt_interval, fmt_p
from harness.sequential import claimed_below
from harness.specs import Condition, clean
from harness.tasks import ReportStyle, task_of

if TYPE_CHECKING:
    from harness.reports import figures


def title(report: Report) -> str:
    return f"{report.suite['name']} {report.suite['version']}: what normalization does"


# --- the summary ----------------------------------------------------------------------------------


def _style(report: Report) -> ReportStyle:
    """How the report's task presents its results (harness.tasks.Task.style)."""
    return task_of(report.suite.get("task", "classify")).style


def headline_columns(report: Report) -> list[tuple[str, str, str]]:
    """(title, condition key, metric) of the summary table's columns: the task's headline metric
    clean and shifted (mean), AUROC per OOD set, the headline metric at the largest eps of each
    attack, and the per-seed metrics of any other condition (a denoiser's samples)."""
    style = _style(report)
    m, label = style.headline, style.label
    keys = {r.condition.key for r in report.estimates}
    cols = [(t, k, m) for t, k in ((f"clean {label}", "clean"), (f"shifted {label} (mean)", "shift:all"))
            if k in keys or k == "clean"]
    ood = [r.condition for r in report.estimates if r.condition.kind == "ood" and r.metric == "auroc"]
    several = len({c.param("score") for c in ood}) > 1  # then each column names its score too
    cols += list(dict.fromkeys((f"AUROC {c.name}" + (f" ({c.param('score')})" if several else ""), c.key, "auroc")
                               for c in ood))
    strongest: dict[str, Condition] = {}
    for c in (r.condition for r in report.estimates if r.condition.kind == "attack"):  # largest eps of each attack
        if c.name not in strongest or c.param("eps") > strongest[c.name].param("eps"):
            strongest[c.name] = c
    cols += [(f"{c.name} eps {c.param('eps'):g} {label}", c.key, m) for c in strongest.values()]
    return cols + list(dict.fromkeys((metric_of(r.metric).title, r.condition.key, r.metric) for r in report.estimates
                                     if metric_of(r.metric).level == "seed"))


def compact_columns(report: Report) -> list[tuple[str, str, str]]:
    """The terminal's few headline columns: clean and mean shifted headline metric, AUROC on the
    first OOD set (every set where the task says so), the per-seed metrics, and (where the task
    says so) the worst case over all attacks at the largest eps where some variant keeps at least
    20% accuracy (beyond it every row reads ~0 and says nothing)."""
    style = _style(report)
    head = headline_columns(report)
    cols = [c for c in head if c[1] in ("clean", "shift:all")]
    cols += [c for c in head if c[0].startswith("AUROC")][:None if style.compact_all_ood else 1]
    cols += [c for c in head if metric_of(c[2]).level == "seed"]
    if not style.compact_worst_case:
        return cols[:6]
    acc = defaultdict(list)
    for r in report.estimates:
        if r.condition.kind == "attack" and r.condition.name == "worst-case" and r.metric == "accuracy":
            acc[r.condition].append(r.estimate.value)
    telling = [c for c, vs in acc.items() if max(vs) >= 0.2]
    if telling:
        c = max(telling, key=lambda c: c.param("eps"))
        cols.append((f"worst attack eps {c.param('eps'):g} %", c.key, "accuracy"))
    return cols


def headline(report: Report, cols: list[tuple[str, str, str]] | None = None, caption: str = "",
             label: str = "") -> Table:
    """The summary table: one row per variant, the main numbers with intervals (``cols``, by
    default :func:`headline_columns`)."""
    est = {(r.variant, r.condition.key, r.metric): r.estimate for r in report.estimates}
    cols = headline_columns(report) if cols is None else cols
    train = {s.variant: s for s in report.training_summary}
    rows: list[list[Span]] = []
    for v in report.variants:
        s = train.get(v["name"])
        steps = "n/a" if s is None else (fmt_estimate(s.steps_to_target, "steps_to_target") if s.steps_to_target
                                         else f"{s.reached}/{s.n_seeds} reached")
        rows.append([v["name"], steps, *[fmt_estimate(est.get((v["name"], k, m)), m) for _, k, m in cols]])
    return table(["variant", "steps to target", *[c[0] for c in cols]], rows, caption=caption, label=label)


def caveat_text(report: Report) -> str:
    """What the caveat mark means in this report ("" when nothing carries one)."""
    # a comparison on fewer seeds than the suite's carries build's note after the interval's own caveat: one note each
    caveats = dict.fromkeys(part for c in [r.estimate.caveat for r in report.estimates]
                            + [r.comparison.caveat for r in report.comparisons]
                            for part in (c.removesuffix(PARTIAL_SEEDS).removesuffix("; "),
                                         PARTIAL_SEEDS if c.endswith(PARTIAL_SEEDS) else "") if part)
    if not caveats:
        return ""
    return (f"{CAVEAT_MARK} The interval's design lies outside the range its method was validated for: "
            + "; ".join(caveats) + ". Measured coverage in docs/statistics.md.")


def caveat_legend(report: Report) -> list[Block]:
    """The caveat mark's paragraph, when something carries the mark."""
    return [paragraph(text)] if (text := caveat_text(report)) else []


def _figures(figs: Sequence[figures.Figure], section: str) -> list[Block]:
    """The figures of ``section``, each with its caption."""
    return [Figure(f.name, f.title, f.caption, f.svg) for f in figs if f.section == section]


# --- claims ---------------------------------------------------------------------------------------


def _n_rows(report: Report) -> int:
    """The comparisons the claims rest on, each once."""
    return len({(e.variant, e.baseline, e.condition, v.to_dict()["metric"]) for v in report.claims for e in v.evidence})


def claims_summary(report: Report, compact: bool = False) -> list[Block]:
    """What opens every report: each declared claim's verdict, why, and the one rule they are judged by
    (``compact``, the terminal's: the table alone, the rule in report.md)."""
    if not report.claims:
        return []
    seq = report.sequential
    alpha = 1 - report.level if seq is None else seq.design.alpha
    n_rows = _n_rows(report)
    family = (f"The claims were declared before the run, so the one-sided tests of the {n_rows} comparisons they "
              f"rest on are {'Holm' if seq is not None else adjust_name(report)}-adjusted as one family (the table of "
              "all comparisons below adjusts its two-sided p-values across all of them).")
    if seq is not None:
        family += (f" This run added seeds in rounds until its claims settled: {seq.design.name()}, family-wise "
                   f"error {alpha:.2g}; a test counts once the design rejected it at a look (see Sequential looks).")
    rows = [[v.to_dict()["text"], Bold(v.verdict + (f" {CAVEAT_MARK}" if v.caveat else "")),
             v.reason + (f" ({CAVEAT_MARK} {v.caveat})" if v.caveat else "")] for v in report.claims]
    if compact:
        return [table(["claim", "verdict", "why"], rows, caption="Claims (how they are judged: report.md)")]
    return [Heading("Claims"), paragraph(rule(alpha) + " " + family),
            table(["claim", "verdict", "why"], rows, label="claims")]


def _side(direction: str, side: str, boundary: float, metric: str) -> str:
    """The one-sided test an evidence row's p belongs to, as "below +2.0" / "above 0"."""
    below = claimed_below(direction) == (side == CLAIMED)
    return f"{'below' if below else 'above'} {fmt(boundary, metric, signed=bool(boundary))}"


def claims_section(report: Report) -> list[Block]:
    """The comparisons each declared claim rests on, and a sequential run's looks."""
    if not any(v.evidence for v in report.claims):
        return []
    seq = report.sequential
    last = "decided at (seeds)" if seq is not None else f"p ({adjust_name(report)}, claims)"
    out: list[Block] = [Heading("Claims: evidence")]
    for v in report.claims:
        if v.evidence:
            spec = v.to_dict()
            metric = spec["metric"]
            out += [paragraph(f"Evidence for \"{spec['text']}\":"), table(
                ["variant", "baseline", "condition", "difference", "interval", "test", "p (one-sided)", last,
                 "verdict"],
                [[e.variant, e.baseline, e.condition, fmt(e.diff, metric, signed=True),
                  fmt_interval(e.ci_low, e.ci_high, metric, signed=True),
                  _side(spec["direction"], e.side, e.boundary, metric), fmt_p(e.p_value),
                  ("open" if e.decided_at is None else str(e.decided_at)) if seq is not None
                  else fmt_p(float("nan") if e.p_adjusted is None else e.p_adjusted),
                  e.verdict + (f" {CAVEAT_MARK}" if e.caveat else "")]
                 for e in v.evidence])]
    if seq is not None:
        out += [Heading("Sequential looks"),
                paragraph(f"{seq.design.name()}. After each round of {seq.design.step} seed(s) the claims were "
                          f"judged; alpha spent is the family's error spent by the look (at most "
                          f"{seq.design.alpha:.2g} by {seq.design.max_seeds} seeds). Decided: the comparisons whose "
                          "test the design had rejected by then (the claimed side, or the other side)."
                          + (f" {seq.caveat}." if seq.caveat else "")),
                table(["look", "seeds", "alpha spent", "claimed side", "other side", "open", "decision"],
                      [[str(j + 1), str(len(k.seeds)), f"{k.alpha_spent:.4f}",
                        str(sum(r.decided == CLAIMED for r in k.rows)), str(sum(r.decided == OPPOSITE for r in k.rows)),
                        str(sum(r.decided is None for r in k.rows)), k.decision] for j, k in enumerate(seq.looks)])]
    return out


# --- published results ----------------------------------------------------------------------------


def _observed_text(o: Any) -> str:
    """An observed outcome in the metric's units: the estimate or difference with its interval."""
    if o.value is None:
        return o.why
    metric, signed = o.expected.metric, o.expected.direction != "about"
    text = f"{fmt(o.value, metric, signed=signed)} {fmt_interval(o.ci_low, o.ci_high, metric, signed=signed)}"
    return text + (f", p {fmt_p(o.p_value)}" if o.p_value is not None else "") + f", {o.n_seeds} seeds"


def references_section(report: Report) -> list[Block]:
    """Each published result the suite echoes, with the run's numbers beside the expected outcome."""
    if not report.references:
        return []
    out: list[Block] = [
        Heading("Published results"),
        paragraph("Each published result is stated as expected outcomes on this run's records. A contrast is a "
                  "paired comparison like those below, judged by the claims' rule on its unadjusted p-value (a "
                  "comparison with the literature, outside the claims' family); a value holds within its "
                  "tolerance. A reference agrees when every outcome holds, disagrees when one fails, is undecided "
                  "when the intervals settle one neither way, and is not comparable when the run lacks what an "
                  "outcome needs. How each suite's setting differs from the published one limits how far an "
                  "agreement carries."),
        table(["reference", "agreement", "why"], [[r.reference.citation, Bold(r.agreement), r.reason]
                                                   for r in report.references])]
    for r in report.references:
        ref = r.reference
        out += [paragraph(Bold(ref.citation), f". Published setting: {ref.setting}. Published finding: "
                          f"{ref.finding}. This suite differs: {ref.differences}"),
                table(["expected", "observed", "outcome"],
                      [[o.expected.text(), _observed_text(o), o.status] for o in r.observed])]
    return out


# --- training -------------------------------------------------------------------------------------


def _memory_method(report: Report) -> str:
    methods = {str(t.result["memory_method"]) for t in report.training if t.result.get("memory_method")}
    text = {"cuda-peak": "CUDA's allocator peak, less the data kept on the device",
            "counted": "counted: parameters, gradients, optimizer state and the activations saved for backward"}
    return "; ".join(text.get(m, m) for m in sorted(methods)) or "not recorded"


def _compute(report: Report) -> list[Block]:
    """What training cost per variant: FLOPs (counted), CPU time and energy, of the run and to the target."""
    rows = [t for t in report.training_summary if t.train_flops is not None or t.cpu_seconds is not None]
    if not rows:
        return []
    metrics = ("flops_to_target", "train_flops", "cpu_seconds", "energy_to_target", "energy")
    return [
        Heading("Training compute and energy", 3),
        paragraph("FLOPs: one training step's forward and backward pass counted (matrix products and convolutions: "
                  "normalization, activations and the optimizer's update are not counted), times the steps. CPU "
                  "time: the process's, over the timed steps. " + energy_method(report) + " To target: up to the "
                  "held-out evaluation that first reached the target (shown when every finished seed reached it). "
                  "Measured on the machine that ran the run (" + _machine(report) + ")."),
        table(["variant", *(metric_of(m).title + (" (J)" if m.startswith("energy") else "") for m in metrics)],
              [[t.variant, *(fmt_estimate(getattr(t, m), m) for m in metrics)] for t in rows]),
    ]


def _machine(report: Report) -> str:
    """The machine a run's timings were measured on, from its provenance: "CPU model, N cores" or the GPU."""
    prov = report.provenance or {}
    if str(prov.get("device", "cpu")).startswith("cuda"):
        return str(prov.get("device_name") or "a CUDA device")
    cores = prov.get("cpu_count")
    name = prov.get("cpu_model") or prov.get("device_name") or "its CPU"
    return f"{name}, {cores} cores" if cores else str(name)


def _cost_cell(e: Any, metric: str) -> str:
    """An inference-cost estimate: the value alone where every repeat and seed gave the same (a count), else
    with its interval."""
    if e is not None and e.ci_low == e.ci_high == e.value:
        return fmt(e.value, metric)
    return fmt_estimate(e, metric)


def _inference_cost(report: Report) -> list[Block]:
    """What each variant costs at inference (harness.inference): latency at batch 1 and at the large batch,
    throughput, peak memory, parameters and FLOPs, with intervals over repeats and seeds; then, where BatchNorm
    was folded (harness.folding), the folded model's numbers and what folding saves."""
    from harness.inference import METRICS

    est = {(r.variant, r.condition.key, r.metric): r.estimate for r in report.estimates if r.condition.kind == "cost"}
    if not est:
        return []
    names = [v["name"] for v in report.variants]
    metrics = [m for m in METRICS if any(k[2] == m for k in est)]
    prov = report.provenance or {}
    workers = prov.get("workers")
    out: list[Block] = [
        Heading("Inference cost"),
        paragraph("Each trained model in eval mode, timed over repeated forward passes after a warm-up (intervals "
                  "resample the repeats and the seeds; a count, the same on every repeat, is shown alone): "
                  "latency of one example and of the large batch, throughput at the large batch, peak memory of "
                  "one large-batch pass (" + _cost_memory(prov) + "), parameters and FLOPs per example (matrix "
                  "products and convolutions, as torch's FlopCounterMode counts them: normalization and "
                  "activations are not counted). The timings were measured on " + _machine(report)
                  + f" (device {prov.get('device', 'cpu')}"
                  + (f", {workers} workers of this run measuring and evaluating at the same time" if workers else "")
                  + "): that machine and whatever else ran on it moved them, so they compare between the "
                  "variants of this run, not with another machine's numbers."),
        BulletList(tuple((f"{metric_of(m).title}: {metric_of(m).describe()}",) for m in metrics)),
        table(["variant", *(metric_of(m).title for m in metrics)],
              [[v, *(_cost_cell(est.get((v, "cost", m)), m) for m in metrics)] for v in names
               if any((v, "cost", m) in est for m in metrics)])]
    fold = "cost:fold=True"
    folded = [v for v in names if (v, fold, "bn_folded") in est]
    if not folded:
        return out

    def saving(v: str, m: str) -> str:
        """Unfolded minus folded, in the metric's units and in % of the unfolded (point estimates)."""
        a, b = est.get((v, "cost", m)), est.get((v, fold, m))
        if a is None or b is None:
            return "n/a"
        pct = f" ({100 * (a.value - b.value) / a.value:+.1f}%)" if a.value else ""
        return fmt(a.value - b.value, m, signed=True) + pct

    rows: list[list[Span]] = []
    for v in folded:
        n = int(round(est[(v, fold, "bn_folded")].value))
        if n == 0:
            rows.append([v, "0", *(_cost_cell(est.get((v, fold, m)), m) for m in FOLD_COLUMNS),
                         *(["nothing to fold"] * len(FOLD_COLUMNS))])
            continue
        rows.append([v, str(n), *(_cost_cell(est.get((v, fold, m)), m) for m in FOLD_COLUMNS),
                     *(saving(v, m) for m in FOLD_COLUMNS)])
    out += [paragraph("With BatchNorm folded into the convolution or linear layer before it (where nothing else "
                      "reads that layer's output; LayerNorm, GroupNorm and RMSNorm use each input's own statistics "
                      "and cannot fold), checked to give the same outputs within float tolerance. Saved: the "
                      "unfolded model's value minus the folded one's (point estimates; positive = folding saves), "
                      "and in % of the unfolded. A variant with no BatchNorm to fold shows 0 layers and is measured "
                      "once, so it saves nothing."),
            table(["variant", "BatchNorm folded", *(f"{metric_of(m).title}, folded" for m in FOLD_COLUMNS),
                   *(f"{metric_of(m).title} saved" for m in FOLD_COLUMNS)], rows)]
    return out


def _cost_memory(prov: dict[str, Any]) -> str:
    """How the inference cost's peak memory was measured on the run's device."""
    if str(prov.get("device", "cpu")).startswith("cuda"):
        return "the CUDA allocator's peak above what was allocated before the pass"
    return ("counted: the bytes of the tensors the pass allocates while they live, parameters and inputs not "
            "included")


# the folded model's numbers and what folding saves (harness.inference's metrics)
FOLD_COLUMNS = ("latency_b1", "latency_batch", "inference_memory", "parameters")


def _training(report: Report) -> list[Block]:
    """Training: per variant over seeds, then per run."""
    style = _style(report)
    suite = report.suite
    target = style.target.format(**suite, target_accuracy_pct=100 * suite.get("target_accuracy", 0.0))
    final, area, final_title, area_title = style.final, style.area, style.final_title, style.area_title
    area_text = style.area_text
    return [
        Heading("Training"),
        paragraph(f"{target}. Steps, epochs and seconds to "
                  "target are shown when every finished seed reached it; otherwise the count of seeds that did "
                  "(censored runs are not dropped: in paired comparisons they count at their budget). " + area_text +
                  " Roughness: the sd of the "
                  "step-to-step change of log(training loss) (lower is smoother). |grad|: the median L2 norm of a "
                  "step's gradients. Memory: one training step's peak, MiB (" + _memory_method(report) + ")."),
        table(["variant", "reached", "diverged", "steps to target", "epochs to target", "s to target", "ms / step",
               final_title, area_title, "roughness", "|grad|", "memory MiB"],
              [[t.variant, f"{t.reached}/{t.n_seeds}", str(t.diverged),
                *[fmt_estimate(getattr(t, m), m) for m in ("steps_to_target", "epochs_to_target", "seconds_to_target",
                                                           "seconds_per_step", final, area,
                                                           "loss_roughness", "grad_norm_median", "peak_memory_bytes")]]
               for t in report.training_summary]),
        paragraph("Per run:"),
        table(["variant", "seed", "status", "steps", "steps to target", "s to target", "ms / step", final_title,
               area_title, "roughness", "max |grad|"],
              [[t.variant, str(t.seed), "diverged" if t.result.get("diverged") else
                "loaded" if t.result.get("trained") is False else t.status,  # weights loaded, not trained
                str(t.result.get("n_steps", "n/a")),
                "not reached" if t.status == "done" and "steps_to_target" in t.result
                and t.result["steps_to_target"] is None else str(t.result.get("steps_to_target", "n/a")),
                fmt(t.result.get("seconds_to_target"), "seconds_to_target"),
                fmt(t.result.get("seconds_per_step"), "seconds_per_step"),
                fmt(t.result.get(final), final), fmt(t.result.get(area), area),
                fmt(t.result.get("loss_roughness"), "loss_roughness"),
                fmt(t.result.get("grad_norm_max"), "grad_norm_max")]
               for t in report.training])]


def _sweep_section(report: Report) -> list[Block]:
    """Per variant family and swept setting: seeds converged at each value, and the range of
    values at which every seed converged."""
    if not report.sweeps:
        return []
    out: list[Block] = [
        Heading("Sweeps", 3),
        paragraph("Converged: the seeds whose run reached the target without diverging. Range: the "
                  "values of the setting at which every seed converged (the paired comparisons test the share of "
                  "points converged, per seed, against the baseline family).")]
    for setting in dict.fromkeys(w.setting for w in report.sweeps):
        ws = [w for w in report.sweeps if w.setting == setting]
        values = list(dict.fromkeys(p.value for w in ws for p in w.points))
        rows: list[list[Span]] = []
        for w in ws:
            at = {p.value: p for p in w.points}
            rng = "none" if w.converged_range is None else f"{w.converged_range[0]:g} to {w.converged_range[1]:g}"
            rows.append([w.family, *[f"{at[v].converged}/{at[v].n_seeds}" + (f" ({at[v].diverged} div.)"
                                                                             if at[v].diverged else "")
                                     if v in at else "-" for v in values], rng])
        out += [paragraph("Sweep over ", Code(setting), ": seeds converged at each value."),
                table(["variant", *[f"{setting} {v:g}" for v in values], "range"], rows)]
    return out


# --- evaluation sections --------------------------------------------------------------------------


def _est_grid(report: Report, kind: str, metric: str) -> Table:
    """Conditions of ``kind`` (rows) by variants (columns): the estimates of ``metric``."""
    rows_for = [r for r in report.estimates if r.condition.kind == kind and r.metric == metric]
    conds: list[Condition] = list(dict.fromkeys(r.condition for r in rows_for))
    variants = [v["name"] for v in report.variants]
    cell = {(r.variant, r.condition): fmt_estimate(r.estimate, metric) for r in rows_for}
    return table(["condition", *variants],
                 [[condition_label(c), *(cell.get((v, c), "n/a") for v in variants)] for c in conds])


def _calibration(report: Report) -> list[Block]:
    """Calibration on clean inputs (ECE, NLL, Brier per variant), then ECE under every shift."""
    est = {(r.variant, r.condition.key, r.metric): r.estimate for r in report.estimates}
    metrics = [m for m in ("ece", "nll", "brier") if any(r.metric == m for r in report.estimates)]
    if not metrics:
        return []
    rows: list[list[Span]] = [[v["name"], *(fmt_estimate(est.get((v["name"], "clean", m)), m) for m in metrics)]
                              for v in report.variants]
    return [Heading("Calibration"),
            BulletList(tuple((f"{metric_of(m).title}: {metric_of(m).describe()}",) for m in metrics)),
            paragraph("In-distribution:"), table(["variant", *(metric_of(m).title for m in metrics)], rows),
            paragraph("ECE under every shift (NLL and Brier are in results.json, with reliability-diagram data):"),
            _est_grid(report, "shift", "ece")]


def _ce_table(report: Report) -> list[Block]:
    """mCE and relative mCE per variant, as ImageNet-C reports them, against each variant's reference."""
    rows_for = [r for r in report.estimates if r.metric in ("mce", "relative_mce")]
    if not rows_for:
        return []
    cols = list(dict.fromkeys((r.metric, r.condition) for r in rows_for))
    cell = {(r.variant, r.metric, r.condition): fmt_estimate(r.estimate, r.metric) for r in rows_for}
    header = [("mCE %" if m == "mce" else "relative mCE %") + ("" if c.bn_mode == "frozen" else f" [BN {c.bn_mode}]")
              for m, c in cols]
    reference = report.suite.get("baseline_norm", "none")
    return [Heading("Corruption error"),
            paragraph(f"{metric_of('mce').describe().capitalize()}; the reference of each variant is the "
                      f"same architecture with norm '{reference}'. Relative mCE counts only the accuracy lost to "
                      "corruption (each error minus the model's clean error)."),
            table(["variant", *header], [[v["name"], *(cell.get((v["name"], m, c), "n/a") for m, c in cols)]
                                         for v in report.variants])]


def _bn_table(report: Report) -> list[Block]:
    """Clean and mean shifted accuracy per variant under each BatchNorm test-time mode, side by side."""
    modes = list(report.suite.get("bn_modes", ["frozen"]))
    if len(modes) < 2:
        return []
    est = {(r.variant, r.condition.key): r.estimate for r in report.estimates if r.metric == "accuracy"}
    cols = [(f"{title} [{m}]", cond.key) for m in modes
            for title, cond in (("clean", clean(m)), ("all shifts", mean_shift(m)))]
    rows: list[list[Span]] = [[v["name"], *[fmt_estimate(est.get((v["name"], key)), "accuracy") for _, key in cols]]
                              for v in report.variants]
    return [Heading("BatchNorm at test time"),
            paragraph("accuracy, % (higher is better), by how BatchNorm statistics are used at test time; rows "
                      "without BatchNorm read the same in every mode."),
            table(["variant", *[c[0] for c in cols]], rows)]


def _attack_notes(report: Report) -> list[Block]:
    """How the adversarial numbers were made: worst-case accounting and every attack's settings."""
    keys = sorted({k for a in report.attack_settings for k in a if k not in ("name", "class", "norm", "eps")})

    def value(a: dict[str, Any], k: str) -> str:
        if k == "alpha" and k in a and a[k] is None:  # PGD's default step size scales with eps
            return "2.5 * eps / steps"
        return str(a.get(k, "-"))

    rows: list[list[Span]] = [[a["name"], a["class"], a["norm"], ", ".join(f"{e:g}" for e in a["eps"]),
                               *[value(a, k) for k in keys]] for a in report.attack_settings]
    return [paragraph("An example counts as broken if any iterate of any restart fooled the model, and at an eps if "
                      "it was broken at a smaller eps of the same sweep (that input lies in the larger ball too); ",
                      Code("worst-case"), " rows count an example as robust only if no attack at that eps broke it."),
            paragraph("Attack settings, as run (defaults resolved):"),
            table(["attack", "class", "norm", "eps", *keys], rows)] if rows else []


def _judge_notes(report: Report) -> list[Block]:
    """How the samples were judged: the suite's own classifier, its accuracy, and what real images score."""
    j = report.judge
    if not j:
        return []
    return [paragraph(
        "Each seed's model generates its samples from the same noise for every variant (one value per seed: "
        "the interval is a t-interval over seeds, comparisons a sign-flip test over seeds). The judge is the "
        "suite's own classifier ", Code(str(j.get("model"))), " with norm ", Code(str(j.get("norm"))),
        f", trained once per run (seed {j.get('seed')}): {100 * float(j.get('test_accuracy', float('nan'))):.1f}% "
        f"accuracy on the {j.get('n_test')} test images. For scale, {j.get('reference_n')} real training images "
        f"score a feature distance of {float(j.get('reference_fid', float('nan'))):.3f} and a class TV of "
        f"{float(j.get('reference_class_tv', float('nan'))):.3f} against the test images: what a perfect "
        "generator would score at this number of samples.")]


def _membership(report: Report) -> list[Block]:
    """The loss-threshold membership attack per variant: AUROC and the TPR at 1% and 0.1% FPR side by side,
    with what they rest on (harness.membership)."""
    from harness.membership import LOSS_METRICS

    rows_for = [r for r in report.estimates if r.condition.kind == "membership" and r.metric in LOSS_METRICS]
    metrics = [m for m in LOSS_METRICS if any(r.metric == m for r in rows_for)]
    cell = {(r.variant, r.condition, r.metric): fmt_estimate(r.estimate, r.metric) for r in rows_for}
    conds = list(dict.fromkeys(r.condition for r in rows_for))
    rows: list[list[Span]] = [[v["name"], *([condition_label(c)] if len(conds) > 1 else []),
                               *(cell.get((v["name"], c, m), "n/a") for m in metrics)]
                              for c in conds for v in report.variants]
    return [paragraph("A fixed sample of each model's training examples (members, the same for every variant, and "
                      "for every seed outside the membership design) against the test examples (non-members), "
                      "each scored by the negative loss: the loss-threshold attack of Yeom et al. (2018). The TPR "
                      "at a low FPR thresholds the non-members' scores (a score tied with the threshold is not "
                      "flagged), as Carlini et al. (2022) recommend. Intervals resample members, non-members "
                      "and seeds."),
            BulletList(tuple((f"{metric_of(m).title}: {metric_of(m).describe()}",) for m in metrics)),
            table(["variant", *(["condition"] if len(conds) > 1 else []), *(metric_of(m).title for m in metrics)],
                  rows), *_lira(report)]


def _lira(report: Report) -> list[Block]:
    """LiRA's per-seed values per variant (the membership design; harness.membership), where the run has them."""
    from harness.membership import LIRA_METRICS, SMALL

    rows_for = [r for r in report.estimates if r.metric in LIRA_METRICS]
    if not rows_for:
        return []
    metrics = [m for m in LIRA_METRICS if any(r.metric == m for r in rows_for)]
    cell = {(r.variant, r.metric): fmt_estimate(r.estimate, r.metric) for r in rows_for}
    return [paragraph("Membership design: each seed's models trained on a random half of the training part (the "
                      "same half for every variant of the seed). The likelihood-ratio attack (LiRA, Carlini et al. "
                      "2022) attacks each seed's model with the variant's other seeds' models as shadows, on the "
                      "logit-scaled confidence in the true class: online compares Gaussians fitted to the shadows "
                      "that trained on an example and to those that did not, offline tests against the latter "
                      f"only; with fewer than {SMALL} shadows one variance is fitted for all examples, as the "
                      "paper recommends. One value per seed: t-intervals over seeds."),
            table(["variant", *(metric_of(m).title for m in metrics)],
                  [[v["name"], *(cell.get((v["name"], m), "n/a") for m in metrics)] for v in report.variants])]


# which estimates get a section, in order: (title, condition kind, metric)
SECTIONS = (("In-distribution", "clean", "accuracy"),
            ("In-distribution: denoising loss", "clean", "denoising_loss"),
            ("Shifted inputs", "shift", "accuracy"), ("Shifted inputs: denoising loss", "shift", "denoising_loss"),
            ("Natural shifts: same classes, another source", "natural", "accuracy"),
            # a language model's bits per character (harness.tasks.lm)
            ("In-distribution: bits per character", "clean", "bpc"),
            ("Shifted inputs: bits per character", "shift", "bpc"),
            ("Natural shifts: other text", "natural", "bpc"),
            ("Out-of-distribution detection: AUROC", "ood", "auroc"),
            ("Out-of-distribution detection: FPR at 95% TPR", "ood", "fpr95"),
            ("Out-of-distribution detection: AUPR-in", "ood", "aupr_in"),
            ("Out-of-distribution detection: AUPR-out", "ood", "aupr_out"),
            ("Membership inference (data leakage)", "membership", "membership_auroc"),
            ("Adversarial robustness", "attack", "accuracy"),
            ("Adversarial: PGD on the denoising loss", "attack", "denoising_loss"),
            ("Samples: feature distance", "samples", "sample_fid"),
            ("Samples: class mix", "samples", "class_tv"))


def _evaluation(report: Report, figs: Sequence[figures.Figure]) -> list[Block]:
    """A section per (condition kind, metric) with estimates, each kind's figures under its first,
    then the figures no section took."""
    out: list[Block] = []
    placed = {"summary", "training"}
    for heading, kind, metric in SECTIONS:
        if any(r.condition.kind == kind and r.metric == metric for r in report.estimates):
            out += [Heading(heading), *(_membership(report) if kind == "membership" else
                                        [paragraph(f"{metric_of(metric).describe()}."),
                                         _est_grid(report, kind, metric)])]
            out += [] if kind in placed else _figures(figs, kind)
            placed.add(kind)
            if kind == "attack":
                out += _attack_notes(report)
            if kind == "samples" and metric == "sample_fid":
                out += _judge_notes(report)
            if kind == "shift":
                out += _bn_table(report) + _ce_table(report) + _calibration(report) + _figures(figs, "calibration")
                placed.add("calibration")
    rest = [f for f in figs if f.section not in placed]  # e.g. reliability on clean inputs when nothing is shifted
    if rest:
        out += [Heading("Figures"), *[b for sec in dict.fromkeys(f.section for f in rest) for b in _figures(rest, sec)]]
    return out


# --- comparisons, checks, methods, provenance -----------------------------------------------------

COMPARISON_HEADER = ["variant", "baseline", "condition", "metric", "difference", "interval", "p"]


def comparison_cells(r: ComparisonRow) -> list[Span]:
    """A paired comparison's cells: who, where, the difference and interval, p raw and adjusted, seeds."""
    c = r.comparison
    return [r.variant, r.baseline, condition_label(r.condition), r.metric, fmt(c.diff, r.metric, signed=True),
            fmt_interval(c.ci_low, c.ci_high, r.metric, signed=True) + (CAVEAT_MARK if c.caveat else ""),
            fmt_p(c.p_value), fmt_p(r.p_adjusted), str(c.n_seeds)]


def _power_cells(r: ComparisonRow) -> list[Span]:
    """Effect size, probability of improvement, detectable difference and seeds to settle a comparison."""
    c = r.comparison
    pi = "n/a" if r.prob_improvement is None else f"{r.prob_improvement:.2f}" + (
        "" if r.prob_improvement_low is None else f" [{r.prob_improvement_low:.2f}, {r.prob_improvement_high:.2f}]")
    return ["n/a" if c.effect_size is None else f"{c.effect_size:.2f}", pi,
            "n/a" if c.mde is None else fmt(c.mde, r.metric),
            "none" if c.seeds_needed is None else str(c.seeds_needed)]


def _comparisons(report: Report) -> list[Block]:
    adjust = adjust_name(report)
    return [Heading("Paired comparisons"),
            paragraph(f"Each variant minus its baseline; difference and interval in the metric's units; p raw and "
                      f"{adjust}-adjusted ({len(report.comparisons)} comparisons)."),
            table([*COMPARISON_HEADER, f"p ({adjust})", "seeds", "d_z", "P(better)", "MDE", "seeds to settle"],
                  [comparison_cells(r) + _power_cells(r) for r in report.comparisons])]


def _checks(report: Report) -> list[Block]:
    return [Heading("Sanity checks"),
            table(["check", "status", "detail"], [[c.name, c.status, c.detail] for c in report.checks])
            if report.checks else paragraph(_style(report).no_checks)]


def _rmf(report: Report) -> list[Block]:
    """The run's evidence per NIST AI RMF MEASURE subcategory it bears on (harness.reports.rmf), "not
    assessed" where it holds none."""
    from harness.reports.rmf import NOT_ASSESSED, rmf_view

    view = rmf_view(report)
    return [Heading("Risk framework view (NIST AI RMF 1.0, MEASURE)"),
            paragraph("What this run's numbers say towards the framework's MEASURE subcategories it bears on. A "
                      "benchmark of model variants is one input to such an assessment, not the assessment: no "
                      "subcategory is marked as met."),
            table(["subcategory", "asks", "evidence in this run"],
                  [[v["id"], v["asks"], "; ".join(v["evidence"]) if v["assessed"] else NOT_ASSESSED] for v in view],
                  label="rmf")]


def _provenance(report: Report) -> list[Block]:
    p = report.provenance
    versions = ", ".join(f"{k} {v}" for k, v in (p.get("versions") or {}).items() if v)
    return [Heading("Provenance"), BulletList((
        (f"harness {p.get('harness')} (git {p.get('git') or 'unknown'}), Python {p.get('python')}, {versions}",),
        (f"device {p.get('device')} ({p.get('device_name')}), torch threads {p.get('torch_threads')}, "
         f"deterministic algorithms {p.get('deterministic_algorithms')}",),
        (f"platform {p.get('platform')}; started {p.get('started')}",),
        ("command: ", Code(" ".join(map(str, p.get("command") or [])))),
    ))]


def incomplete_note(report: Report) -> list[Block]:
    """The paragraph that opens every output of a partial run: how many planned cells are missing, of which
    models, and the command that finishes the run (nothing for a complete run)."""
    i = report.incomplete
    if i is None:
        return []
    if i.error is not None:
        return [paragraph(Bold("Completeness unknown"), f": the run's plan could not be made ({i.error}), so the "
                          "cells it lacks cannot be counted; the numbers use the cells stored.")]
    models = ", ".join(f"{v} seed {s}" for v, s in i.models[:10]) + (
        f" and {len(i.models) - 10} more" if len(i.models) > 10 else "")
    return [paragraph(Bold("Incomplete run"), f": {i.train_cells} training and {i.eval_cells} evaluation cells of "
                      f"the plan have no finished record (not run yet, or failed), of {models}. The numbers use the "
                      "cells stored and what they lack reads n/a. To finish the run: ", Code(i.command))]


# --- the documents --------------------------------------------------------------------------------


def loaded_data_notes(report: Report) -> list[str]:
    """One sentence per loaded variant (``Variant.weights``) that says what its weights were trained
    on (``trained_on``), saying whether the suite scores it on that same data: the suite's test set
    itself, or (one set split three ways) the set its test part is split off, whose examples the
    weights may have seen. A loaded variant that says nothing is named as such: whether its test
    numbers are on unseen data cannot be told."""
    s = report.suite
    test = s.get("test_dataset")
    notes = []
    for v in report.variants:
        if v.get("weights") is None:
            continue
        on = v.get("trained_on")
        if on is None:
            notes.append(f"{v['name']} loads weights ({v['weights']}) without saying what they were trained on: "
                         "whether its test examples are unseen cannot be told (set trained_on).")
        elif on == test or (test is None and on == s["dataset"]):
            where = f"the test set {test}" if test is not None else \
                f"{on}, whose test part this suite splits off: the weights may have seen these test examples"
            notes.append(f"{v['name']} is scored on data it was trained on ({where}): its numbers are not "
                         "held-out estimates.")
        else:
            notes.append(f"{v['name']} loads weights trained on {on}, not on the data it is tested on "
                         f"({test if test is not None else s['dataset'] + ' (its test part)'}).")
    return notes


def report_document(report: Report, figs: Sequence[figures.Figure]) -> Document:
    """The whole report; ``figs`` (harness.reports.figures.figures) go under their sections."""
    s = report.suite
    names: list[Span] = [span for i, v in enumerate(report.variants) for span in ((", ",) if i else ()) + (
        Code(v["name"]),)]
    out: list[Block] = [
        *incomplete_note(report),
        *claims_summary(report),  # the claims and their verdicts first, before the detail
        # for readers who are not statisticians: compared, found, how sure, not tested
        Heading("In plain words"), *(paragraph(p) for p in plain_summary(report)),
        paragraph(s["description"]),
        paragraph(*(("Dataset ", Code(s["dataset"])) if s.get("test_dataset") is None else
                    ("Trained on ", Code(s["dataset"]), ", tested on ", Code(s["test_dataset"]))),
                  f", {report.n_test} test examples; seeds {list(report.seeds)}; "
                  "variants ", *names, f". Every number is a mean over seeds with its {100 * report.level:g}% "
                  "interval in brackets; how intervals and tests are computed is under Methods.")]
    if notes := loaded_data_notes(report):
        out.append(paragraph(Bold("Loaded models"), ": " + " ".join(notes)))
    if report.excluded:
        out.append(paragraph(Bold("Excluded"), " (no usable model, or an evaluation that failed or never ran; each "
                             "comparison uses the seeds where both variants have a record): "
                             + "; ".join(report.excluded)))
    out += [Heading("Summary"), headline(report), *caveat_legend(report), *_figures(figs, "summary")]
    out += claims_section(report) + references_section(report)
    out += _training(report) + _compute(report) + _sweep_section(report) + _figures(figs, "training")
    out += _evaluation(report, figs) + _inference_cost(report)
    out += _comparisons(report) + _checks(report)
    out += _rmf(report)
    out += [Heading("Methods"), BulletList(tuple((Bold(k), f": {v}") for k, v in methods(report).items()))]
    out += _provenance(report)
    return Document(title(report), tuple(out))


def tables_document(report: Report) -> Document:
    """The claims' verdicts (with the rule they are judged by), then the headline estimates and every paired
    comparison, each table with its caption (for papers)."""
    adjust = adjust_name(report)
    pct = f"{100 * report.level:g}%"
    return Document(title(report), (
        *incomplete_note(report), *claims_summary(report),
        headline(report, caption=f"{report.suite['name']} {report.suite['version']}: mean over "
                                 f"{len(report.seeds)} seeds with its {pct} interval in brackets.",
                 label="headline estimates"),
        table([*COMPARISON_HEADER, f"p ({adjust})", "seeds"], [comparison_cells(r) for r in report.comparisons],
              caption=f"Paired comparisons: each variant minus its baseline on the same seeds and test examples, "
                      f"difference and {pct} interval in the metric's units; p raw and {adjust}-adjusted across "
                      f"the {len(report.comparisons)} comparisons.",
              label="paired comparisons", text_columns=4, long=True)))


MOST_SHOWN = 15  # the terminal's comparisons: the rest are in report.md


def summary_document(report: Report) -> Document:
    """The terminal's summary: the compact headline table, the comparisons whose interval excludes
    0 (the headline conditions first), the sanity checks' count and failures, the caveat and power notes."""
    adjust = adjust_name(report)
    out: list[Block] = [*incomplete_note(report), *claims_summary(report, compact=True),
                        headline(report, compact_columns(report),
                                 caption=f"{report.suite['name']} {report.suite['version']}: mean over "
                                         f"{len(report.seeds)} seeds [{100 * report.level:g}% interval]; every "
                                         "number in report.md")]
    shown = {k for _, k, _ in headline_columns(report)} | {"training"}
    clear = sorted((r for r in report.comparisons if r.comparison.ci_low > 0 or r.comparison.ci_high < 0),
                   key=lambda r: (r.condition.key if r.condition else "training") not in shown)
    if clear:
        out.append(table([*COMPARISON_HEADER[:6], f"p ({adjust})"],
                         [(cells := comparison_cells(r))[:6] + [cells[7]] for r in clear[:MOST_SHOWN]],
                         caption=f"Paired differences whose interval excludes 0 ({len(clear)} of "
                                 f"{len(report.comparisons)})"))
        if len(clear) > MOST_SHOWN:
            out.append(paragraph(f"... and {len(clear) - MOST_SHOWN} more in report.md"))
    if report.references:
        out.append(table(["published result", "agreement", "why"],
                         [[r.reference.citation, r.agreement, r.reason] for r in report.references],
                         caption="Published results beside this run (details in report.md)"))
    failed = [ch for ch in report.checks if ch.status == "fail"]
    out.append(paragraph(f"Sanity checks: {sum(ch.status == 'pass' for ch in report.checks)} passed, "
                         f"{len(failed)} failed"))
    if failed:
        out.append(BulletList(tuple((f"FAILED {ch.name}: {ch.detail}",) for ch in failed)))
    if caveats := caveat_text(report):
        out.append(paragraph(caveats, note=True))
    out.append(paragraph(methods(report)["power"], note=True))
    return Document(None, tuple(out))
