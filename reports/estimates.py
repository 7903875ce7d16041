"""Evaluation estimates and their paired comparisons: per-example resampling, mCE, sample metrics.

Every evaluation metric of a variant on a condition is estimated from its per-seed, per-example
records by resampling the test examples (one draw per metric, shared by every variant and
condition: that is what pairs them), and each normalized variant is compared with its baseline on
the same draws. Metrics with one value per seed (a denoiser's sample metrics; training summaries,
see harness.reports.training) get a t-interval over seeds (:func:`t_estimate`) and a sign-flip test of the
per-seed differences (:func:`paired_seed_comparison`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from harness import stats
from harness.metrics import TWO_SAMPLE_METRICS
from harness.reports.cache import Resamples  # (variant, condition key, metric) -> (seeds with a record, resampled)
from harness.reports.checks import Evals
from harness.reports.rows import EstimateRow, PairedResult, mean_shift, metric_of
from harness.seeding import derive_seed
from harness.specs import Condition, clean
from harness.store import Cell
from harness.tasks import task_of


def _resampled_ece(cells: list[Cell], metric: str, n_resamples: int, seed: int) -> stats.Resampled | None:
    """Per-seed ECE of one variant on one condition (cells in seed order); None when the records
    lack what it needs. Per-example means and OOD metrics are resampled in batches by
    :func:`resample`."""
    if metric != "ece" or any(k not in c.arrays for c in cells for k in ("confidence", "correct")):
        return None
    return stats.resample_ece(np.stack([c.arrays["confidence"] for c in cells]),
                              np.stack([c.arrays["correct"] for c in cells]).astype(np.float64), n_resamples, seed)


def _two_sample(task: str, cond: Condition) -> tuple[str, ...]:
    """The metrics the task reports on ``cond`` that are computed from its cells' two score arrays,
    ``score_in`` and ``score_out`` (harness.metrics.TWO_SAMPLE_METRICS: OOD detection, membership
    inference), in the task's order."""
    return tuple(m for m in task_of(task).metrics(cond) if m in TWO_SAMPLE_METRICS
                 and metric_of(m).level == "example")


def _resampled_ood(conditions: list[Condition], evals: Evals, names: list[str], seeds: tuple[int, ...], task: str,
                   n_resamples: int) -> dict[tuple[str, str], dict[str, stats.Resampled]]:
    """(variant, condition key) -> {metric: resampled} for every condition with records whose metrics
    are two-sample ones (:func:`_two_sample`: an OOD set's, a membership attack's). A model's
    conditions that hold the same seeds and the same ``score_in`` (its one test set, scored once: a
    classifier's maximum softmax probability against each OOD set) are resampled together, so that
    side is sorted and summed once for all of them (harness.stats.resample_ood_sets); the numbers are
    those of one call per condition."""
    out: dict[tuple[str, str], dict[str, stats.Resampled]] = {}
    for v in names:
        # (seeds, metrics) -> groups of conditions with identical (S, n) ID scores
        groups: dict[tuple[tuple[int, ...], tuple[str, ...]], list[tuple[np.ndarray, list[tuple[str, np.ndarray]]]]]
        groups = defaultdict(list)
        for cond in conditions:
            ood = _two_sample(task, cond)
            by_seed = evals.get((v, cond.key), {})
            have = tuple(s for s in seeds if s in by_seed)
            if not ood or not have:
                continue
            score_in = np.stack([by_seed[s].arrays["score_in"] for s in have])
            score_out = np.stack([by_seed[s].arrays["score_out"] for s in have])
            same = groups[(have, ood)]
            match = next((g for g in same if g[0].shape == score_in.shape and np.array_equal(g[0], score_in)), None)
            if match is None:
                same.append((score_in, [(cond.key, score_out)]))
            else:
                match[1].append((cond.key, score_out))
        for (_, ood), same in groups.items():
            for score_in, outs in same:
                sets = stats.resample_ood_sets(score_in, [x for _, x in outs], ood, n_resamples, _boot_seed(ood[0]))
                out.update({(v, key): rs for (key, _), rs in zip(outs, sets, strict=True)})
    return out


def _boot_seed(metric: str) -> int:
    """One resampling seed per metric, shared by every variant (that is what pairs them) and every
    condition (so an attack at eps = 0 gets exactly the clean interval)."""
    # two-sample metrics share one set of draws (they come from one sort per seed and block); "ood" names
    # it, as it did when OOD metrics were the only ones
    return derive_seed(0, "ood" if metric in TWO_SAMPLE_METRICS else metric) % 2**32


def _subset(r: stats.Resampled, idx: list[int]) -> stats.Resampled:
    return stats.Resampled(r.point[idx], r.boot[:, idx], r.n_examples,
                           None if r.binary is None else r.binary[idx])


def resample(conditions: list[Condition], evals: Evals, names: list[str], seeds: tuple[int, ...], task: str,
             n_resamples: int) -> Resamples:
    """The resampled values of every (variant, condition, metric) with a record, in the order of the report's
    estimate rows (condition, metric, variant). Per-example means are resampled in one batch per metric; every
    OOD metric of a variant and condition comes from one sort per seed. The metrics of each condition are its
    task's (harness.tasks); per-seed ones are :func:`per_seed`'s."""
    resampled: Resamples = {}
    order: list[tuple[str, str, str]] = []
    means: dict[str, list[tuple[tuple[str, str, str], list[int], np.ndarray]]] = defaultdict(list)
    ood_sets = _resampled_ood(conditions, evals, names, seeds, task, n_resamples)
    for cond in conditions:
        wanted = [m for m in task_of(task).metrics(cond) if metric_of(m).level == "example"]
        ood = _two_sample(task, cond)
        for metric in wanted:
            for v in names:
                by_seed = evals.get((v, cond.key), {})
                have = [s for s in seeds if s in by_seed]
                cells = [by_seed[s] for s in have]
                if not have:
                    continue
                key = (v, cond.key, metric)
                array = metric_of(metric).per_example
                if metric not in ood and array is not None:  # batched below, one product per metric
                    if all(array in c.arrays for c in cells):
                        values = np.stack([c.arrays[array] for c in cells]).astype(np.float64)
                        means[metric].append((key, have, values))
                        order.append(key)
                    continue
                if metric in ood:  # every two-sample metric from one sort per seed and block (_resampled_ood)
                    if metric == ood[0]:
                        resampled.update({(v, cond.key, m): (have, ood_sets[(v, cond.key)][m]) for m in ood})
                    order.append(key)
                    continue
                r = _resampled_ece(cells, metric, n_resamples, _boot_seed(metric))
                if r is not None:
                    resampled[key] = (have, r)
                    order.append(key)
    for metric, jobs in means.items():
        for (key, have, _), r in zip(jobs, stats.resample_means([j[2] for j in jobs], n_resamples,
                                                                _boot_seed(metric)), strict=True):
            resampled[key] = (have, r)
    return {key: resampled[key] for key in order}


def evaluation_estimates(conditions: list[Condition], resampled: Resamples, names: list[str], task: str,
                         level: float, interval: str) -> list[EstimateRow]:
    """An estimate per (condition, metric, variant) with resampled values (:func:`resample`), in that order."""
    def row(v: str, cond: Condition, metric: str) -> EstimateRow:
        have, r = resampled[(v, cond.key, metric)]
        return EstimateRow(v, cond, metric, stats.estimate(r, level, _boot_seed(metric), interval,
                                                           metric_of(metric).bounds),
                           tuple(have), tuple(map(float, r.point)))

    return [row(v, cond, metric)
            for cond in conditions for metric in task_of(task).metrics(cond) if metric_of(metric).level == "example"
            for v in names if (v, cond.key, metric) in resampled]


def evaluation_comparisons(conditions: list[Condition], resampled: Resamples, pairs: list[tuple[str, str]],
                           task: str, level: float, interval: str) -> list[PairedResult]:
    """Each (variant, baseline) pair on each condition and metric, on the seeds both have and the
    same example draws, for the metrics its task compares there (a classifier's calibration on clean
    inputs only)."""
    out = []
    for cond in conditions:
        for metric in (m for m in task_of(task).compared(cond) if metric_of(m).level == "example"):
            for v, base in pairs:
                result = paired_result(resampled, metric, (v, cond), (base, cond), level, interval)
                if result is not None:
                    out.append(result)
    return out


def paired_result(resampled: Resamples, metric: str, a: tuple[str, Condition], b: tuple[str, Condition],
                  level: float, interval: str) -> PairedResult | None:
    """``a`` minus ``b``, each a (variant, condition), on ``metric``: paired per seed on the seeds both
    have and on the same example draws (every variant and condition of a metric shares them, so a
    variant can also be compared with itself under another condition); None without records of
    both. The result is labelled with ``a``'s condition."""
    (v, cond), (base, base_cond) = a, b
    if (v, cond.key, metric) not in resampled or (base, base_cond.key, metric) not in resampled:
        return None
    (sa, ra), (sb, rb) = resampled[(v, cond.key, metric)], resampled[(base, base_cond.key, metric)]
    common = [s for s in sa if s in sb]
    if not common or ra.n_examples != rb.n_examples:
        return None
    ra = _subset(ra, [sa.index(s) for s in common])
    rb = _subset(rb, [sb.index(s) for s in common])
    cmp = stats.compare(ra, rb, level, _boot_seed(metric), interval, bounds=metric_of(metric).difference_bounds)
    return PairedResult(v, base, cond, metric, cmp, tuple(common), ra.point, rb.point)


def n_test(resampled: Resamples) -> int:
    """The number of test examples behind the clean estimates (0 when there are none)."""
    return next((r.n_examples for (_, k, _), (_, r) in resampled.items() if k == "clean"), 0)


# --- per-seed summaries: one value per seed, no example level ------------------------------------


def t_estimate(values: Sequence[float], level: float, n_examples: int,
               bounds: tuple[float, float] = (-np.inf, np.inf)) -> stats.Estimate | None:
    """Mean over seeds with a t-interval, clipped to the metric's range (a proportion's to [0, 1])."""
    if not values:
        return None
    low, high = np.clip(stats.t_interval(values, level), *bounds)
    return stats.Estimate(stats.seed_mean(values), float(low), float(high), level,
                          "t-interval over seeds" if len(values) > 1 else "one seed: no interval",
                          len(values), n_examples)


def paired_seed_comparison(v: str, base: str, condition: Condition | None, metric: str, common: list[int],
                           a: np.ndarray, b: np.ndarray, level: float,
                           method: str = "t-interval over per-seed differences") -> PairedResult:
    """A comparison of (S,) per-seed summaries ``a`` (the variant's) and ``b`` (the baseline's) on
    the seeds ``common`` (no example level): t-interval and sign-flip p-value; the interval is
    clipped to the range of a difference of the metric (a fraction's to [-1, 1])."""
    d = a - b
    low, high = np.clip(stats.t_interval(d, level), *metric_of(metric).difference_bounds)
    comps = stats.Components(float(d.var(ddof=1)) / len(d), 0.0, 0.0, len(d))
    return PairedResult(v, base, condition, metric, stats.Comparison(
        stats.seed_mean(d), float(low), float(high), level, stats.sign_flip_test(d), method,
        f"sign-flip permutation over seeds (exact, {2 ** len(d)} sign patterns)", len(d), 0,
        effect_size=stats.effect_size(d), mde=stats.detectable_difference(comps, level),
        seeds_needed=stats.seeds_needed(stats.seed_mean(d), comps, level), components=comps), tuple(common), a, b)


def per_seed(conditions: list[Condition], evals: Evals, names: list[str], seeds: tuple[int, ...],
             pairs: list[tuple[str, str]], task: str, level: float) -> tuple[list[EstimateRow], list[PairedResult]]:
    """The task's per-seed evaluation metrics (level "seed": a denoiser's sample metrics), read from
    each cell's result: one value per seed (a statistic of the seed's whole set of samples, with no
    per-example level), so a t-interval over seeds per variant and, per (variant, baseline) pair on
    at least two common seeds and for the metrics the task compares, the paired per-seed
    differences with a sign-flip test, as the training comparisons are made. ``n_examples`` of an
    estimate is the ``n_samples`` its cells record (0 when they record none)."""
    estimates: list[EstimateRow] = []
    raw: list[PairedResult] = []
    t = task_of(task)
    for cond in conditions:
        compared = t.compared(cond)
        for metric in (m for m in t.metrics(cond) if metric_of(m).level == "seed"):
            values: dict[str, dict[int, float]] = {}
            for v in names:
                cells = evals.get((v, cond.key), {})
                values[v] = {s: float(c.result[metric]) for s in seeds if (c := cells.get(s)) is not None
                             and c.result.get(metric) is not None and np.isfinite(c.result[metric])}
                if values[v]:
                    n = int(next(c.result.get("n_samples", 0) for c in cells.values()))
                    est = t_estimate(list(values[v].values()), level, n, metric_of(metric).bounds)
                    assert est is not None
                    estimates.append(EstimateRow(v, cond, metric, est, tuple(values[v]), tuple(values[v].values())))
            for v, base in pairs:
                common = [s for s in seeds if s in values.get(v, {}) and s in values.get(base, {})]
                if len(common) < 2 or metric not in compared:
                    continue
                a, b = (np.array([values[u][s] for s in common]) for u in (v, base))
                raw.append(paired_seed_comparison(v, base, cond, metric, common, a, b, level))
    return estimates, raw


def lira(conditions: list[Condition], evals: Evals, names: list[str], seeds: tuple[int, ...],
         pairs: list[tuple[str, str]], level: float) -> tuple[list[EstimateRow], list[PairedResult]]:
    """LiRA (harness.membership.lira_metrics) on every membership condition whose cells hold the membership
    design's ``phi`` and ``in_mask``: per variant, each seed's model attacked with the variant's other seeds
    as shadows, one value per seed (level "seed", so a t-interval over seeds), and per (variant, baseline)
    pair the per-seed differences on the seeds both have, with a sign-flip test. A variant needs two seeds
    (a target and a shadow); its values depend on which seeds the run holds, as the shadows are those."""
    from harness.membership import LIRA_METRICS, lira_metrics

    estimates: list[EstimateRow] = []
    raw: list[PairedResult] = []
    for cond in (c for c in conditions if c.kind == "membership"):
        values: dict[str, dict[str, dict[int, float]]] = {m: {} for m in LIRA_METRICS}
        for v in names:
            cells = evals.get((v, cond.key), {})
            have = [s for s in seeds if s in cells and {"phi", "in_mask"} <= cells[s].arrays.keys()]
            if len(have) < 2:
                continue
            got = lira_metrics(np.stack([cells[s].arrays["phi"] for s in have]),
                               np.stack([cells[s].arrays["in_mask"] for s in have]))
            n = int(cells[have[0]].arrays["in_mask"].size)
            for metric in LIRA_METRICS:
                values[metric][v] = {s: float(x) for s, x in zip(have, got[metric], strict=True) if np.isfinite(x)}
                est = t_estimate(list(values[metric][v].values()), level, n, metric_of(metric).bounds)
                if est is not None:
                    estimates.append(EstimateRow(v, cond, metric, est, tuple(values[metric][v]),
                                                 tuple(values[metric][v].values())))
        for metric in LIRA_METRICS:
            for v, base in pairs:
                a_vals, b_vals = values[metric].get(v, {}), values[metric].get(base, {})
                common = [s for s in seeds if s in a_vals and s in b_vals]
                if len(common) >= 2:
                    a, b = (np.array([d[s] for s in common]) for d in (a_vals, b_vals))
                    raw.append(paired_seed_comparison(v, base, cond, metric, common, a, b, level))
    return estimates, raw


# --- corruption error (ImageNet-C's mCE) ----------------------------------------------------------


def corruption_error(err: dict[str, np.ndarray], ref_err: dict[str, np.ndarray], groups: list[list[str]],
                     clean_key: str, relative: bool) -> np.ndarray:
    """Mean over corruptions of (sum over severities of a model's error) / (the same for the
    reference); ``relative`` subtracts each model's clean error from each term first.

    ``err`` and ``ref_err`` map a condition key to error arrays of one common shape (e.g. (S,)
    per seed, or (B, S) replicates); ``groups`` lists each corruption's severity keys. A zero
    denominator gives NaN. Lower is better; the reference scores 1.
    """
    def total(e: dict[str, np.ndarray], keys: list[str]) -> np.ndarray:
        return sum((e[k] - e[clean_key] if relative else e[k] for k in keys), np.zeros_like(e[clean_key]))

    ratios = []
    for keys in groups:
        den = total(ref_err, keys)
        ratios.append(total(err, keys) / np.where(den == 0, np.nan, den))
    return np.mean(ratios, axis=0)


def _errors(resampled: Resamples, variant: str, keys: list[str],
            seeds: list[int]) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Error rates of ``variant`` on ``keys`` for ``seeds``: per seed (S,) and per replicate (B, S)."""
    point, boot = {}, {}
    for k in keys:
        have, r = resampled[(variant, k, "accuracy")]
        idx = [have.index(s) for s in seeds]
        point[k], boot[k] = 1 - r.point[idx], 1 - r.boot[:, idx]
    return point, boot


def corruption_errors(conditions: list[Condition], resampled: Resamples, pairs: list[tuple[str, str]],
                      names: list[str], level: float, interval: str = "auto") -> list[EstimateRow]:
    """mCE and relative mCE per variant (and BatchNorm mode), normalised by the variant's reference:
    the same architecture with the baseline norm, as ImageNet-C normalises by AlexNet.

    Per corruption c: CE_c = sum over severities of the variant's error / the reference's error;
    relative CE_c does the same with each error minus the model's clean error. mCE is the mean of
    CE_c over corruptions (1 = as robust as the reference, lower is better). Computed per seed
    from the stored accuracy replicates, whose example draws are shared by all variants, so the
    interval resamples seeds and examples like every other estimate. The reference itself is 1.
    """
    reference = {v: b for v, b in pairs} | {b: b for _, b in pairs}
    out = []
    for mode in dict.fromkeys(c.bn_mode for c in conditions if c.kind == "shift"):
        by_name: dict[str, list[str]] = defaultdict(list)
        for c in conditions:
            if c.kind == "shift" and c.name != "all" and c.bn_mode == mode:
                by_name[c.name].append(c.key)
        clean_key = clean(mode).key
        for v in names:
            ref = reference.get(v)
            keys = [k for ks in by_name.values() for k in ks] + [clean_key]
            if ref is None or not by_name or any((u, k, "accuracy") not in resampled for u in (v, ref) for k in keys):
                continue
            seeds = [s for s in resampled[(v, clean_key, "accuracy")][0]
                     if all(s in resampled[(u, k, "accuracy")][0] for u in (v, ref) for k in keys)]
            if not seeds:
                continue
            errors = {u: _errors(resampled, u, keys, seeds) for u in (v, ref)}
            groups = list(by_name.values())
            n = resampled[(v, clean_key, "accuracy")][1].n_examples
            for metric, relative in (("mce", False), ("relative_mce", True)):
                point, boot = (corruption_error(errors[v][i], errors[ref][i], groups, clean_key, relative)
                               for i in (0, 1))
                if np.isfinite(point).all() and np.isfinite(boot).all():
                    r = stats.Resampled(point=point, boot=boot, n_examples=n, binary=None)
                    est = stats.estimate(r, level, _boot_seed(metric), interval, metric_of(metric).bounds)
                    out.append(EstimateRow(v, mean_shift(mode), metric, est, tuple(seeds), tuple(map(float, point))))
    return out
