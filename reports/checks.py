"""The sanity battery: automated checks that catch broken adversarial evaluations.

Each check reads stored records only (the model-side evidence was gathered at evaluation time
by ``harness.tasks.classify.evaluation``'s check conditions) and returns pass, fail or n/a with the numbers
behind the verdict. They follow the checklist of Carlini et al. (2019): eps = 0 is clean
accuracy, accuracy falls with eps, iterative attacks beat single-step ones, a large eps reaches
chance, twice the steps of the strongest attack change little, random noise and a transfer attack are weaker
than white-box, gradients are finite and non-zero, and the model is deterministic and blind to
batch composition. Thresholds are constants below, stated in every detail line.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from harness.specs import Condition, Suite, attack
from harness.store import Cell

PGD_FGSM_MARGIN = 0.005  # PGD's mean accuracy may exceed FGSM's by half a point (random starts)
FGSM_ONLY_SHARE = 0.01  # share of examples that FGSM breaks and PGD does not
CHANCE_MARGIN = 0.05  # a large eps must bring accuracy within 5 points of the majority-class rate
STRONGER_MARGIN = 0.02  # twice the effort may break at most 2 more points of the examples
STRONGER_LOSS_MARGIN = 0.02  # ... or raise a denoiser's mean attacked loss by at most 2% of itself
ZERO_GRAD_SHARE = 0.01  # share of examples whose input gradient is exactly zero
LOGIT_TOLERANCE = 1e-4  # batch composition may move a logit by float rounding (relative to its size), not more

Evals = dict[tuple[str, str], dict[int, Cell]]  # (variant, condition key) -> seed -> cell


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # "pass", "fail" or "n/a"
    detail: str


@dataclass(frozen=True, eq=False)
class Records:
    """What the checks read: evaluation cells by variant and condition, and the suite; ``outcome``
    is the per-example array of the suite's task that the attacks act on ("correct" for a
    classifier, "denoise_loss" for a denoiser), ``higher_is_better`` its direction."""

    evals: Evals
    variants: list[str]
    suite: dict[str, Any]
    pairs: list[tuple[str, str]]
    outcome: str = "correct"
    higher_is_better: bool = True

    def cells(self, variant: str, cond: Condition) -> dict[int, Cell]:
        return {s: c for s, c in self.evals.get((variant, cond.key), {}).items() if c.arrays}

    def mean(self, variant: str, cond: Condition, array: str = "correct") -> float | None:
        """Mean over seeds of the per-seed mean of ``array``; None without records."""
        cells = self.cells(variant, cond)
        return float(np.mean([c.arrays[array].mean() for c in cells.values()])) if cells else None

    @property
    def attacks(self) -> list[dict[str, Any]]:
        return list(self.suite["evaluation"]["attacks"])

    def check(self, name: str) -> Condition | None:
        """The suite's check condition ``name`` (its task's battery decides which it runs), else None."""
        conditions = Suite.from_dict(self.suite).conditions() if self.attacks else []
        return next((c for c in conditions if c.kind == "check" and c.name == name), None)


def _verdict(name: str, failures: list[str], n: int, ok_text: str) -> Check:
    if n == 0:
        return Check(name, "n/a", "no records for this check")
    return Check(name, "fail" if failures else "pass", "; ".join(failures) if failures else ok_text)


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _sweeps(r: Records) -> list[tuple[dict[str, Any], list[Condition]]]:
    return [(a, [attack(a["name"], e, tuple(tuple(p) for p in a["params"])) for e in sorted(a["eps"])])
            for a in r.attacks]


def eps_zero(r: Records) -> Check:
    mismatch = total = n = 0
    # a classifier's predictions and outcomes; a denoiser's per-example losses
    what = "predictions" if r.outcome == "correct" else "losses"
    for v in r.variants:
        clean = r.cells(v, Condition("clean"))
        for _, conds in _sweeps(r):
            for cond in conds:
                if cond.param("eps") != 0:
                    continue
                for s, c in r.cells(v, cond).items():
                    if s in clean:
                        n += 1
                        diff = np.zeros(len(c.arrays[r.outcome]), dtype=bool)
                        for array in (a for a in ("pred", r.outcome) if a in clean[s].arrays):
                            diff |= clean[s].arrays[array] != c.arrays[array]
                        mismatch, total = mismatch + int(diff.sum()), total + len(diff)
    return Check(f"eps = 0 reproduces clean {what}", "n/a" if n == 0 else "fail" if mismatch else "pass",
                 f"{mismatch} of {total} per-example {what} differ across {n} records" if n
                 else "no attack was run at eps = 0")


def eps_ball(r: Records) -> Check:
    worst, n = 0.0, 0
    for v in r.variants:
        for _, conds in _sweeps(r):
            for cond in conds:
                for c in r.cells(v, cond).values():
                    norm = c.result.get("norm", "linf")
                    n += 1
                    worst = max(worst, float(c.arrays[norm].max()) - cond.param("eps"))
    return _verdict("perturbations stay inside the eps-ball", [] if worst <= 1e-6 else
                    [f"a perturbation exceeds its eps by {worst:.2e}"], n,
                    f"largest excess over eps, in each attack's norm: {max(worst, 0):.1e} ({n} records)")


def monotone(r: Records) -> Check:
    """A larger ball holds every smaller one, so the attacked outcome never improves with eps:
    accuracy never rises; a denoiser's loss never falls."""
    bad, n = [], 0
    sign = 1.0 if r.higher_is_better else -1.0  # +1: higher is better, so a rise is the failure
    show = _pct if r.outcome == "correct" else (lambda x: f"{x:.4g}")
    for v in r.variants:
        for a, conds in _sweeps(r):
            means = [(c.param("eps"), m) for c in conds if (m := r.mean(v, c, r.outcome)) is not None]
            n += len(means) > 1
            bad += [f"{v} {a['name']} eps {e1:g}->{e2:g}: {show(m1)} -> {show(m2)}"
                    for (e1, m1), (e2, m2) in zip(means, means[1:], strict=False) if sign * (m2 - m1) > 1e-12]
    title, ok = (("accuracy never rises with eps", "non-increasing") if r.outcome == "correct"
                 else ("the loss never falls with eps", "non-decreasing"))
    return _verdict(title, bad, n, f"{ok} in all {n} (variant, attack) sweeps")


PGD_FGSM = "PGD is at least as strong as FGSM, on average and per example"


def pgd_beats_fgsm(r: Records) -> Check:
    by_name = {a["name"]: a for a in r.attacks}
    if "fgsm" not in by_name or "pgd-linf" not in by_name:
        return Check(PGD_FGSM, "n/a", "the suite does not run both fgsm and pgd-linf")
    fg, pg = by_name["fgsm"], by_name["pgd-linf"]
    bad, n = [], 0
    for v in r.variants:
        for e in sorted(set(fg["eps"]) & set(pg["eps"])):
            f_cells = r.cells(v, attack("fgsm", e, tuple(tuple(p) for p in fg["params"])))
            p_cells = r.cells(v, attack("pgd-linf", e, tuple(tuple(p) for p in pg["params"])))
            seeds = sorted(set(f_cells) & set(p_cells))
            if not seeds:
                continue
            n += 1
            f_ok = np.concatenate([f_cells[s].arrays["correct"] for s in seeds])
            p_ok = np.concatenate([p_cells[s].arrays["correct"] for s in seeds])
            only_fgsm = float((~f_ok & p_ok).mean())
            if p_ok.mean() > f_ok.mean() + PGD_FGSM_MARGIN or only_fgsm > FGSM_ONLY_SHARE:
                bad.append(f"{v} eps {e:g}: PGD {_pct(p_ok.mean())} vs FGSM {_pct(f_ok.mean())}, "
                           f"{_pct(only_fgsm)} of examples broken by FGSM only")
    return _verdict(PGD_FGSM, bad, n,
                    f"in all {n} (variant, eps) pairs PGD's accuracy is within {_pct(PGD_FGSM_MARGIN)} of FGSM's "
                    f"or lower, and FGSM alone breaks at most {_pct(FGSM_ONLY_SHARE)} of examples")


FLIPS_RANDOM = "HotFlip is at least as strong as random flips of the same budget"
FLIPS_MARGIN = 0.005  # HotFlip's mean accuracy may exceed random flips' by half a point (it stops at a flipped text)


def flips_beat_random(r: Records) -> Check:
    """A guided attack that cannot beat random edits of its budget is not searching: HotFlip's mean accuracy
    at each number of edits is at most random edits' (plus :data:`FLIPS_MARGIN`), per variant, for each HotFlip
    sweep against the random sweep of the same kind of edits (flips only, or flips, insertions and deletions:
    the same parameters)."""
    hots = [a for a in r.attacks if a["name"] == "hotflip"]
    rnds = {json.dumps(a["params"], sort_keys=True): a for a in r.attacks if a["name"] == "random-flip"}
    pairs = [(h, rnds[k]) for h in hots if (k := json.dumps(h["params"], sort_keys=True)) in rnds]
    if not pairs:
        return Check(FLIPS_RANDOM, "n/a", "the suite does not run hotflip and random-flip with the same edits")
    bad, n = [], 0
    for hot, rnd in pairs:
        edits = " with insertions and deletions" if dict(map(tuple, hot["params"])).get("insert_delete") else ""
        for v in r.variants:
            for e in sorted(set(hot["eps"]) & set(rnd["eps"]) - {0}):
                h = r.mean(v, attack("hotflip", e, tuple(tuple(p) for p in hot["params"])))
                m = r.mean(v, attack("random-flip", e, tuple(tuple(p) for p in rnd["params"])))
                if h is None or m is None:
                    continue
                n += 1
                if h > m + FLIPS_MARGIN:
                    bad.append(f"{v} {e:g} edits{edits}: HotFlip {_pct(h)} vs random {_pct(m)}")
    return _verdict(FLIPS_RANDOM, bad, n, f"in all {n} (variant, budget) pairs HotFlip's accuracy is within "
                                          f"{_pct(FLIPS_MARGIN)} of random edits' of the same kind or lower")


def _chance(r: Records, v: str) -> float | None:
    cells = r.cells(v, Condition("clean"))
    if not cells or "label" not in next(iter(cells.values())).arrays:
        return None
    labels = next(iter(cells.values())).arrays["label"]
    return float(np.bincount(labels).max() / len(labels))


def large_eps(r: Records) -> Check:
    cond = r.check("large-eps")
    if cond is None:
        return Check("a large eps reaches chance", "n/a", "no records for this check")
    bad, n, worst = [], 0, 0.0
    for v in r.variants:
        acc, chance = r.mean(v, cond), _chance(r, v)
        if acc is None or chance is None:
            continue
        n += 1
        worst = max(worst, acc - chance)
        if acc > chance + CHANCE_MARGIN:
            bad.append(f"{v}: {_pct(acc)} at eps {cond.param('eps'):g}, chance {_pct(chance)}")
    return _verdict("a large eps reaches chance", bad, n,
                    f"PGD at eps {cond.param('eps'):g} is at most {_pct(max(worst, 0))} above the "
                    f"majority-class rate for all {n} variants (allowed {_pct(CHANCE_MARGIN)})")


def stronger(r: Records) -> Check:
    """The worst case over the suite's attacks at the check's eps (``<outcome>_base``) against the
    worst case once the strongest is run again with twice its steps (``<outcome>``): a classifier's
    robust accuracy may drop by STRONGER_MARGIN, a denoiser's mean loss rise by STRONGER_LOSS_MARGIN
    of itself."""
    cond = r.check("stronger")
    accuracy = r.outcome == "correct"
    bad, n, worst = [], 0, 0.0
    for v in r.variants:
        if cond is None or not r.cells(v, cond):
            continue
        base, more = r.mean(v, cond, f"{r.outcome}_base"), r.mean(v, cond, r.outcome)
        assert base is not None and more is not None
        n += 1
        # how much the extra effort made the outcome worse: points of accuracy lost, or the loss's relative rise
        gain = base - more if accuracy else (more - base) / base if base > 0 else 0.0
        worst = max(worst, gain)
        if gain > (STRONGER_MARGIN if accuracy else STRONGER_LOSS_MARGIN):
            bad.append(f"{v}: {_pct(base)} -> {_pct(more)}" if accuracy else f"{v}: {base:.4g} -> {more:.4g}")
    eps = f" at eps {cond.param('eps'):g}" if cond else ""
    if accuracy:
        title, allowed, what = ("twice the steps of the strongest attack change robust accuracy little",
                                _pct(STRONGER_MARGIN), "largest drop")
        advice = "robust accuracies are overestimated; add restarts or a stronger attack such as apgd-ce"
    else:
        title, allowed, what = ("twice the steps of the attack raise the loss little",
                                f"{_pct(STRONGER_LOSS_MARGIN)} of the loss", "largest relative rise")
        advice = "the attacked losses are underestimated; give pgd-linf more steps or restarts"
    if bad:
        return Check(title, "fail", "worst case over the suite's attacks, then with the strongest one run again with "
                     f"twice its steps{eps}: " + "; ".join(bad)
                     + f" (allowed {allowed}): the attacks have not converged, so {advice}")
    return _verdict(title, [], n, f"{what} {_pct(worst)}{eps} over {n} variants (allowed {allowed})")


def _weaker_than_white_box(r: Records, name: str, title: str) -> Check:
    cond, white = r.check(name), r.check("stronger")
    bad, n = [], 0
    for v in r.variants:
        if cond is None or white is None or not r.cells(v, cond) or not r.cells(v, white):
            continue
        other, wb = r.mean(v, cond), r.mean(v, white, "correct_base")
        n += 1
        if other < wb:  # type: ignore[operator]
            bad.append(f"{v}: {_pct(other)} under {name} vs {_pct(wb)} under the white-box attacks")  # type: ignore[arg-type]
    return _verdict(title, bad, n,
                    f"the white-box attacks (worst case) are stronger for all {n} variants it applies to")


def noise(r: Records) -> Check:
    return _weaker_than_white_box(r, "noise", "random noise of the same size is weaker than the attack")


def transfer(r: Records) -> Check:
    return _weaker_than_white_box(r, "transfer", "a transfer attack from the paired variant is weaker than white-box")


def gradients(r: Records) -> Check:
    cond = r.check("gradients")
    bad, n = [], 0
    for v in r.variants:
        cells = r.cells(v, cond) if cond else {}
        if not cells:
            continue
        n += 1
        g = np.concatenate([c.arrays["grad_l1"] for c in cells.values()])
        zero = float((g == 0).mean())
        if not np.isfinite(g).all() or zero > ZERO_GRAD_SHARE:
            bad.append(f"{v}: {_pct(zero)} of input gradients are zero, "
                       f"{int((~np.isfinite(g)).sum())} non-finite")
    return _verdict("input gradients are finite and non-zero", bad, n,
                    f"finite everywhere, zero for at most {_pct(ZERO_GRAD_SHARE)} of examples, all {n} variants")


def _max_of(r: Records, name: str, array: str) -> dict[str, float]:
    """Largest value of ``array`` per (variant, seed) record of a check."""
    cond = r.check(name)
    return {f"{v} seed {s}": float(c.arrays[array].max())
            for v in r.variants for s, c in (r.cells(v, cond) if cond else {}).items()}


def repeat(r: Records) -> Check:
    diffs = _max_of(r, "repeat", "max_abs_diff")
    return _verdict("repeated forward passes give identical logits",
                    [f"{k}: logits move by {d:.1e}" for k, d in diffs.items() if d != 0], len(diffs),
                    f"bit-identical in all {len(diffs)} models")


def batch_composition(r: Records) -> Check:
    cond = r.check("batch-composition")
    cells = [c for v in r.variants for c in (r.cells(v, cond) if cond else {}).values()]
    # relative to the logits' size (at least 1): float rounding grows with them
    worst = max((float((c.arrays["max_abs_diff"] / c.arrays.get("logit_scale", 1.0)).max()) for c in cells),
                default=0.0)
    flipped = sum(int((~c.arrays["pred_same"]).sum()) for c in cells)
    bad = [] if worst <= LOGIT_TOLERANCE and flipped == 0 else [
        f"largest relative logit change {worst:.1e}, {flipped} predictions changed"]
    return _verdict("predictions do not depend on batch composition", bad, len(cells),
                    f"largest logit change {worst:.1e} of the logits' size (allowed {LOGIT_TOLERANCE:.0e}), "
                    f"no prediction changed, {len(cells)} models")


CHECKS: tuple[Callable[[Records], Check], ...] = (
    eps_zero, eps_ball, monotone, pgd_beats_fgsm, flips_beat_random, large_eps, stronger, noise, transfer,
    gradients, repeat, batch_composition,
)


def run_checks(r: Records, names: tuple[str, ...] | None = None) -> list[Check]:
    """Every check, in order, or those of ``names`` (function names, e.g. a task's
    harness.tasks.Task.checks); a suite without attacks gets one n/a line."""
    if not r.attacks:
        return [Check("adversarial sanity checks", "n/a", "the suite runs no attack")]
    return [c(r) for c in CHECKS if names is None or c.__name__ in names]


