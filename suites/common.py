"""What the built-in training-claim suites share: the evaluation battery and the reduced size.

Every suite evaluates its models on the whole battery (clean, corruptions, OOD, attacks and the
sanity checks), not on training alone; the reduced size keeps each kind of condition but fewer of
them, so CI exercises the whole path of every suite in well under a minute.
"""

from __future__ import annotations

from harness.specs import AttackSpec, EvalSpec, Size

SHIFTS = ("gaussian-noise", "gaussian-blur", "contrast")
EPS = (0.0, 0.05, 0.1, 0.2)


def battery(ood_sets: tuple[str, ...], eps: tuple[float, ...] = EPS, apgd_steps: int = 0,
            shifts: tuple[str, ...] = SHIFTS) -> EvalSpec:
    """Corruptions at severities 1-5, OOD detection by maximum softmax probability against
    ``ood_sets``, and FGSM and PGD-10 (L-inf) swept over ``eps``, plus APGD-CE with
    ``apgd_steps`` steps when that is positive; the sanity checks run with the attacks."""
    attacks = [AttackSpec("fgsm", eps), AttackSpec("pgd-linf", eps, (("restarts", 1), ("steps", 10)))]
    if apgd_steps:
        attacks.append(AttackSpec("apgd-ce", eps, (("steps", apgd_steps),)))
    return EvalSpec(shifts=shifts, ood_sets=ood_sets, ood_scores=("msp",), attacks=tuple(attacks))


def digits_battery() -> EvalSpec:
    """The battery of the sweep suites on digits, which evaluate many models: clean, the three
    corruptions at severity 3, OOD against faces, FGSM, PGD-10 and APGD-CE (20 steps, as the
    quick start) at eps 0 and 0.1, and the sanity checks."""
    eps = (0.0, 0.1)
    return EvalSpec(shifts=SHIFTS, severities=(3,), ood_sets=("faces",),
                    attacks=(AttackSpec("fgsm", eps), AttackSpec("pgd-linf", eps, (("restarts", 1), ("steps", 10))),
                             AttackSpec("apgd-ce", eps, (("steps", 20),))))


def reduced(variants: tuple[str, ...], ood_set: str, max_train: int | None = 2000, max_test: int | None = 200,
            epochs: int | None = 1, seeds: tuple[int, ...] = (0, 1)) -> Size:
    """The size CI runs: two seeds, the named variants, a capped split, one corruption at one
    severity, one OOD set and eps 0 and 0.1 (every kind of condition, and the checks)."""
    return Size("reduced", "what CI runs: 2 seeds, " + ", ".join(variants) + (
        f", {max_train} training and {max_test} test images" if max_train else "") + ", a smaller battery",
        seeds=seeds, variants=variants, epochs=epochs, max_train=max_train, max_test=max_test,
        shifts=("gaussian-noise",), severities=(3,), ood_sets=(ood_set,), eps=(0.0, 0.1))
