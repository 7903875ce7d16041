"""The run's evidence seen through the NIST AI Risk Management Framework (AI RMF 1.0, NIST AI 100-1).

The framework's MEASURE function asks that an AI system's trustworthiness be measured; several of its
subcategories are questions a norm-harness run answers in part. :data:`SUBCATEGORIES` says, once,
which subcategories a run bears on, what each asks (in our words; the framework's own text is at
https://doi.org/10.6028/NIST.AI.100-1), and which of the report's numbers speak to it. For each,
:func:`rmf_view` gives the evidence this run holds, or says "not assessed" where it holds none: a
subcategory is never marked as met. The framework is about deployed systems and their context; a
benchmark of model variants is one input to such an assessment, not the assessment.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from harness.reports.rows import Report

NOT_ASSESSED = "not assessed"


def _by_variant(report: Report, key: str, metric: str) -> dict[str, Any]:
    return {r.variant: r.estimate for r in report.estimates if r.condition.key == key and r.metric == metric}


def _span(report: Report, key: str, metric: str, what: str) -> str | None:
    """"what: from LOW (variant) to HIGH (variant)" over the variants' estimates of ``metric`` on ``key``."""
    from harness.registry import metrics
    from harness.reports.vocabulary import fmt

    est = _by_variant(report, key, metric)
    if not est:
        return None
    lo = min(est, key=lambda v: est[v].value)
    hi = max(est, key=lambda v: est[v].value)
    pct = "%" if metrics.get(metric).scale == 100 else ""
    return (f"{what} from {fmt(est[lo].value, metric)}{pct} ({lo}) to {fmt(est[hi].value, metric)}{pct} ({hi}), "
            f"over {est[lo].n_seeds} seeds each")


def _deployment(report: Report) -> list[str]:
    out = [s for s in (_span(report, "shift:all", "accuracy", "accuracy under corruptions (mean over severities)"),)
           if s]
    natural = sorted({r.condition.key for r in report.estimates if r.condition.kind == "natural"})
    out += [s for k in natural if (s := _span(report, k, "accuracy", f"accuracy on {k.split(':', 1)[1]}"))]
    return out


def _valid(report: Report) -> list[str]:
    out = [s for s in (_span(report, "clean", "accuracy", "held-out accuracy"),
                       _span(report, "clean", "ece", "calibration error")) if s]
    if out:
        out.append("limits of generalization: every number holds for this dataset, these architectures and this "
                   "training budget only")
    return out


def _safe(report: Report) -> list[str]:
    keys = sorted({r.condition.key for r in report.estimates if r.condition.kind == "ood" and r.metric == "auroc"})
    return [s for k in keys if (s := _span(report, k, "auroc", f"detecting {k.split(':')[1]} as out of distribution "
                                                                "(AUROC)"))]


def _secure(report: Report) -> list[str]:
    worst = sorted({r.condition.key for r in report.estimates if r.condition.name == "worst-case"},
                   key=lambda k: float(k.split("eps=")[1].split(",")[0]))
    worst = [k for k in worst if float(k.split("eps=")[1].split(",")[0]) > 0]
    key = worst[len(worst) // 2] if worst else None  # a middle radius: the largest often leaves nothing standing
    top = _span(report, key, "accuracy", f"accuracy at {key.split(':', 2)[2]}, the worst case over the attacks") \
        if key else None
    out = [top] if top else []
    attack_checks = [c for c in report.checks if c.status in ("pass", "fail")]
    if out and attack_checks:
        failed = [c.name for c in attack_checks if c.status == "fail"]
        out.append(f"{len(attack_checks) - len(failed)} of {len(attack_checks)} sanity checks of the attacks pass"
                   + (f" (failed: {'; '.join(failed)})" if failed else ""))
    return out


def _privacy(report: Report) -> list[str]:
    keys = sorted({r.condition.key for r in report.estimates if r.condition.kind == "membership"})
    out = [s for k in keys for s in (
        _span(report, k, "membership_auroc", "membership inference by the loss-threshold attack (AUROC, 0.5 is "
                                             "chance)"),
        _span(report, k, "lira_online_tpr_01pct", "members found by LiRA (online) at 0.1% false positives")) if s]
    if out:
        out.append("data leakage beyond membership (reconstruction, attribute inference) is not measured")
    return out


def _environment(report: Report) -> list[str]:
    # time and energy are in the training summary (machine-dependent): named, not copied here, so results.json
    # stays the same between identical runs; FLOPs are counted, the same on every machine
    from harness.reports.methods import energy_method
    from harness.reports.vocabulary import fmt

    summaries = report.training_summary
    if not any(t.seconds_per_step is not None for t in summaries):
        return []
    out = ["training time per step is measured for every trained variant (the training summary, wall-clock on "
           "the run's machine)"]
    flops = {t.variant: t.train_flops.value for t in summaries if t.train_flops is not None}
    if flops:
        lo, hi = min(flops, key=flops.__getitem__), max(flops, key=flops.__getitem__)
        out.append(f"training compute is counted: from {fmt(flops[lo], 'train_flops')} GFLOPs ({lo}) to "
                   f"{fmt(flops[hi], 'train_flops')} GFLOPs ({hi}) per run, matrix products and convolutions only")
    if any(r.condition.kind == "cost" for r in report.estimates):
        out.append("inference cost is measured per variant (latency, throughput, peak memory, FLOPs: the inference "
                   "cost section, wall-clock on the run's machine)")
    method = energy_method(report)
    if method:
        out.append("the energy of training is given per variant and to the target, paired across variants (the "
                   "training compute and energy table); " + method[len("Energy: "):].rstrip(".")
                   + "; emissions are not estimated")
    return out


def _tevv(report: Report) -> list[str]:
    out = [f"every interval is a {100 * report.level:g}% interval of a method validated by simulation "
           "(docs/statistics.md); claims are judged as one pre-declared family"]
    ran = [c for c in report.checks if c.status in ("pass", "fail")]
    if ran:
        out.append(f"{sum(c.status == 'pass' for c in ran)} of {len(ran)} sanity checks of the evaluation pass")
    return out


@dataclass(frozen=True)
class Subcategory:
    """One MEASURE subcategory the run bears on: its ``id``, what it asks (``asks``, paraphrased), and
    ``evidence``: the sentences of a report that speak to it (none: not assessed)."""

    id: str
    asks: str
    evidence: Callable[[Report], list[str]]


SUBCATEGORIES = (
    Subcategory("MEASURE 2.3", "performance is measured in conditions like those of deployment", _deployment),
    Subcategory("MEASURE 2.5", "the system is shown to be valid and reliable, and the limits of its generalization "
                "are documented", _valid),
    Subcategory("MEASURE 2.6", "the system is safe, and fails safely when it is used beyond its knowledge limits",
                _safe),
    Subcategory("MEASURE 2.7", "security and resilience are evaluated and documented", _secure),
    Subcategory("MEASURE 2.10", "privacy risk is examined and documented", _privacy),
    Subcategory("MEASURE 2.12", "environmental impact and sustainability of training are assessed and documented",
                _environment),
    Subcategory("MEASURE 2.13", "the effectiveness of the test, evaluation, verification and validation metrics "
                "and processes is evaluated", _tevv),
)


def rmf_view(report: Report) -> list[dict[str, Any]]:
    """Per subcategory of :data:`SUBCATEGORIES`: ``id``, ``asks``, ``assessed`` and ``evidence``
    (sentences; empty where the run holds none, then ``assessed`` is False)."""
    out = []
    for sub in SUBCATEGORIES:
        evidence = sub.evidence(report)
        out.append({"id": sub.id, "asks": sub.asks, "assessed": bool(evidence), "evidence": evidence})
    return out
