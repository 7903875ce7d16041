"""Tests for harness.attacks beyond the plugin contract (tests/test_contracts.py): the APGD
checkpoints and step-size rule against the paper's algorithm (Croce & Hein, 2020) on a scripted
trajectory, the DLR loss, the L2 ball, worst-case bookkeeping, the resolved defaults, and
cross-checks against a peer library (torchattacks) on a model trained on real digits."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from harness.attacks import APGD, FGSM, PGD, PGDL2, apgd_checkpoints, dlr_loss
from harness.data import Split, as_tensor
from harness.errors import ConfigError
from harness.models import build_model
from harness.seeding import torch_generator
from harness.specs import TrainSpec
from harness.training import train


@pytest.fixture(scope="module")
def trained(split: Split) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """A small CNN trained for two epochs on the digits, with the test split as tensors."""
    model = build_model("cnn", "batch", split.train.shape, 10, {"channels": (16, 32)}, None,
                        torch_generator(0, "init"))
    train(model, split, TrainSpec(epochs=2, eval_every=1000), 0)
    cpu = torch.device("cpu")
    return model.eval(), as_tensor(split.test.x, cpu), as_tensor(split.test.y, cpu)


def _robust_accuracy(model: nn.Module, x_adv: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float((model(x_adv).argmax(1) == y).float().mean())


def test_apgd_checkpoints_follow_the_paper() -> None:
    # p = 0, 0.22, 0.41, 0.57, 0.70, 0.80, 0.87, 0.93, 0.99, 1.05 (by hand); w = ceil(p * steps), below steps
    assert apgd_checkpoints(100) == [22, 41, 57, 70, 80, 87, 93, 99]
    assert apgd_checkpoints(10) == [3, 5, 6, 7, 8, 9]  # 2.2, 4.1, 5.7, 7.0, 8.0, 8.7 up; 9.3 and 9.9 reach 10
    assert apgd_checkpoints(50) == [11, 21, 29, 35, 40, 44, 47]  # 20.5, 28.5, 43.5, 46.5 up; 49.5 reaches 50
    assert apgd_checkpoints(5) == [2, 3, 4]  # 1.1, 2.05, 2.85, 3.5, 4.0 up, 4.35 reaches 5
    assert apgd_checkpoints(1) == []


def test_apgd_checkpoints_match_exact_arithmetic_for_every_budget() -> None:
    # Section 3.2 of the paper in whole hundredths, so nothing is rounded: p0 = 0, p1 = 22,
    # p(j+1) = p(j) + max(p(j) - p(j-1) - 3, 6); w = ceil(p * steps / 100) by integer division
    p = [0, 22]
    while p[-1] < 100:
        p.append(p[-1] + max(p[-1] - p[-2] - 3, 6))
    assert p == [0, 22, 41, 57, 70, 80, 87, 93, 99, 105]
    for steps in range(1, 301):
        exact = sorted({w for q in p[1:] if (w := -(-q * steps // 100)) < steps})
        assert apgd_checkpoints(steps) == exact, f"{steps} steps"


# --- APGD's step-size rule on a scripted trajectory ------------------------------------------


class _Scripted(nn.Module):
    """A 3-class model whose loss is scripted call by call, recording every input it is given.

    Call k maps x (N, 1, 1, D) to logits (5, level[k] + 1e-3 <directions[k, n], x[n]>, 0) for
    each example n, so the cross-entropy of class 0 is the scripted ``levels[k]`` (calls,) give or
    take 1e-2, and its input gradient points along the signs ``directions[k]`` (calls, N, D). Class
    0 always wins (levels stay below 5), so APGD never drops an example and traces every step.
    """

    def __init__(self, levels: torch.Tensor, directions: torch.Tensor) -> None:
        super().__init__()
        self.levels, self.directions = levels, directions
        self.inputs: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = len(self.inputs)
        assert k < len(self.levels), f"call {k}: APGD made more model calls than one per iterate"
        self.inputs.append(x.detach().clone())
        g = self.levels[k] + 1e-3 * (x.flatten(1) * self.directions[k]).sum(1)
        return torch.stack([torch.full_like(g, 5.0), g, torch.zeros_like(g)], dim=1)


# The loss of iterate k, in tenths: u/d rise/fall by 1, U/D by 5. One string per stretch between
# the checkpoints 0, 22, 41, 57, 70, 80, 87, 93, 99 of 100 steps; 'rises' counts the steps whose
# loss beat the previous iterate's, against the threshold rho * length (rho = 0.75). A count equal
# to the threshold halves: "at most a share rho", as in the authors' code (check_oscillation's <=).
_SCRIPT = (
    "uuuuu" + "d" * 17,                   # 1-22: 5 rises <= 16.5: halve (condition 1), back to x5
    "D" + "UUUUU" + "u" * 12 + "d",       # 23-41: 17 > 14.25, best 0.5 -> 2.0: keep
    "DDd" + "UUU" + "u" * 6 + "Uuu" + "d",  # 42-57: 12 <= 12 (best 2.0 -> 2.6): halve, back to x56
    "DDd" + "u" * 10,                     # 58-70: 10 > 9.75 (condition 2 off: halved last time): keep
    "DD" + "u" * 8,                       # 71-80: 8 > 7.5, but kept last time and best still 2.6: halve
    "U" + "d" * 6,                        # 81-87: 1 <= 5.25 (best 2.6 -> 2.7): halve, back to x81
    "D" + "u" * 5,                        # 88-93: 5 > 4.5, best still 2.7, but halved last time: keep
    "D" + "u" * 5,                        # 94-99: 5 > 4.5, but kept last time and best still 2.7: halve
    "d",                                  # 100: the last step
)
_RISES = (5, 17, 12, 10, 8, 1, 5, 5)
# the checkpoints that halve the step size (conditions 1, 1 at equality, 2, 1, 2), each with the
# iterate of best loss it restarts from; 41, 70 and 93 keep it
_HALVED_AT = {22: 5, 57: 56, 80: 56, 87: 81, 99: 81}


def _levels() -> torch.Tensor:
    tenths = [0]
    for letter in "".join(_SCRIPT):
        tenths.append(tenths[-1] + {"u": 1, "d": -1, "U": 5, "D": -5}[letter])
    return torch.tensor(tenths, dtype=torch.float64) / 10


def _paper_trajectory(x: torch.Tensor, x0: torch.Tensor, eps: float, directions: torch.Tensor,
                      halved_at: dict[int, int]) -> list[torch.Tensor]:
    """The iterates x0 .. x(steps) (each like x) of Algorithm 1 of Croce & Hein (2020), L-inf,
    with the step-size decisions given: ``halved_at`` maps a checkpoint k to the iterate of
    best loss that the step restarts from, with half the step size. The gradient's sign at
    iterate k is ``directions[k]`` (steps + 1, *x.shape)."""
    def p(v: torch.Tensor) -> torch.Tensor:  # P_S: the eps-ball around x, within [0, 1]
        return (x + (v - x).clamp(-eps, eps)).clamp(0, 1)

    xs, eta = [x0], 2 * eps  # eta(0) = 2 eps
    x_prev = x_cur = x0
    sign = directions[0]
    for k in range(len(directions) - 1):
        if k in halved_at:
            eta, x_cur, sign = eta / 2, xs[halved_at[k]], directions[halved_at[k]]
        a = 1.0 if k == 0 else 0.75
        z = p(x_cur + eta * sign)
        x_prev, x_cur = x_cur, p(x_cur + a * (z - x_cur) + (1 - a) * (x_cur - x_prev))
        xs.append(x_cur)
        sign = directions[k + 1]
    return xs


def test_apgd_scripted_loss_has_the_designed_rises_and_best_points() -> None:
    # the script is what its comments say (the trajectory test below relies on it)
    levels = _levels()
    assert [len(s) for s in _SCRIPT] == [22, 19, 16, 13, 10, 7, 6, 6, 1] and levels.max() < 5
    bounds = (0, 22, 41, 57, 70, 80, 87, 93, 99)
    rises = [int((levels[a + 1:b + 1] > levels[a:b]).sum()) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    assert tuple(rises) == _RISES
    best = [float(levels[:b + 1].max()) for b in bounds]
    improved = [after > before for before, after in zip(best[:-1], best[1:], strict=True)]
    assert improved == [True, True, True, False, False, True, False, False]
    for k, start in _HALVED_AT.items():
        assert int(levels[:k + 1].argmax()) == start
    # every loss is 0.1 or more from the best before it, so the 1e-2 around each level never decides
    assert ((levels[1:] - levels.cummax(0).values[:-1]).abs() >= 0.1 - 1e-9).all()


def test_apgd_follows_the_papers_algorithm_step_by_step() -> None:
    """Iterate by iterate against Algorithm 1 on the scripted loss: first step 2 eps to the
    corner (momentum 1), momentum 0.75 after, the step size halved at the checkpoints where
    condition 1 or 2 holds and kept at the others, the iterate restarted from the best point."""
    eps, steps = 0.25, 100
    # three examples: the middle of [0, 1], one whose ball [0, 1] cuts on both sides, one off-centre
    x = torch.tensor([[0.5, 0.5, 0.5, 0.5], [0.1, 0.9, 0.5, 0.3], [0.3, 0.6, 0.7, 0.45]],
                     dtype=torch.float64).view(3, 1, 1, 4)
    y = torch.zeros(3, dtype=torch.long)
    signs = torch.randint(0, 2, (steps + 1, *x.shape), generator=torch.Generator().manual_seed(0)) * 2.0 - 1
    model = _Scripted(_levels(), signs.to(torch.float64).flatten(2))
    x_adv = APGD(eps=eps, steps=steps).perturb(model, x, y, generator=torch.Generator().manual_seed(1))

    seen = model.inputs
    assert len(seen) == steps + 1 and all(s.shape == x.shape for s in seen), "one model call per iterate"
    x0 = seen[0]  # the random start: inside the ball, off its faces
    assert ((x0 - x).abs() < eps).all() and not torch.equal(x0, x)
    # by hand: 2 eps along the gradient's sign from inside the ball lands on its corner
    assert torch.equal(seen[1], (x + eps * signs[0]).clamp(0, 1))
    expected = _paper_trajectory(x, x0, eps, signs.to(torch.float64), _HALVED_AT)
    for k, (ours, paper) in enumerate(zip(seen, expected, strict=True)):
        assert torch.allclose(ours, paper, rtol=0, atol=1e-12), (
            f"iterate {k} is not the paper's: {ours.flatten(1).tolist()} vs {paper.flatten(1).tolist()}")
    assert torch.allclose(x_adv, expected[-1], rtol=0, atol=1e-12)  # nothing misclassified: the last iterate
    # each restart from the best point moves the iterate, so skipping one cannot go unseen
    assert all(not torch.equal(seen[k], seen[b]) for k, b in _HALVED_AT.items())


def test_dlr_loss_is_invariant_to_shift_and_scale_of_logits() -> None:
    z = torch.randn(16, 10, generator=torch.Generator().manual_seed(0))
    y = torch.arange(16) % 10
    assert torch.allclose(dlr_loss(z, y), dlr_loss(3.0 * z + 7.0, y), atol=1e-5)
    # correctly classified examples have a negative DLR loss, misclassified ones a positive one
    correct = z.argmax(1) == y
    assert (dlr_loss(z, y)[correct] < 0).all() and (dlr_loss(z, y)[~correct] > 0).all()


@pytest.mark.parametrize("atk", [PGDL2(eps=0.5), APGD(eps=0.5, norm="l2", steps=20)], ids=["pgd-l2", "apgd-l2"])
def test_l2_attacks_stay_in_the_l2_ball(atk, trained) -> None:  # type: ignore[no-untyped-def]
    model, x, y = trained
    x_adv = atk.perturb(model, x[:64], y[:64], generator=torch_generator(0, "l2"))
    assert ((x_adv - x[:64]).flatten(1).norm(dim=1) <= 0.5 + 1e-5).all()
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    assert _robust_accuracy(model, x_adv, y[:64]) < _robust_accuracy(model, x[:64], y[:64])


def test_dlr_needs_three_classes() -> None:
    with pytest.raises(ConfigError, match="at least 3 classes"):
        dlr_loss(torch.zeros(4, 2), torch.zeros(4, dtype=torch.long))


def test_defaults_are_documented_values() -> None:
    assert PGD(eps=0.1).step_size == pytest.approx(0.025)  # 2.5 * eps / steps
    assert (PGD(eps=0.1).steps, PGD(eps=0.1).restarts, PGD(eps=0.1).random_start) == (10, 1, True)
    assert (APGD(eps=0.1).steps, APGD(eps=0.1).loss, APGD(eps=0.1).rho) == (100, "ce", 0.75)


@pytest.mark.parametrize("kwargs, fragment", [
    ({"eps": 0.1, "norm": "l3"}, "unknown attack norm"),
    ({"eps": 0.1, "loss": "hinge"}, "unknown attack loss"),
    ({"eps": 0.1, "steps": 0}, "at least 1"),
    ({"eps": -0.5, "norm": "l2"}, "negative"),
    ({"eps": float("nan")}, "outside [0, 1]"),
])
def test_bad_parameters_are_config_errors(kwargs, fragment: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError, match=fragment.replace("[", r"\[").replace("]", r"\]")):
        APGD(**kwargs)


def test_more_restarts_never_weaken_pgd(trained) -> None:  # type: ignore[no-untyped-def]
    # worst case over restarts: an example broken by the first restart stays broken
    model, x, y = trained
    one = PGD(eps=0.1, restarts=1).perturb(model, x, y, generator=torch_generator(0, "r"))
    three = PGD(eps=0.1, restarts=3).perturb(model, x, y, generator=torch_generator(0, "r"))
    broken_one = model(one).argmax(1) != y
    broken_three = model(three).argmax(1) != y
    assert (broken_three | ~broken_one).all()
    assert broken_three.sum() >= broken_one.sum()


def test_apgd_is_at_least_as_strong_as_pgd_with_the_same_budget(trained) -> None:  # type: ignore[no-untyped-def]
    model, x, y = trained
    pgd = PGD(eps=0.1, steps=20).perturb(model, x, y, generator=torch_generator(0, "p"))
    apgd = APGD(eps=0.1, steps=20).perturb(model, x, y, generator=torch_generator(0, "p"))
    assert _robust_accuracy(model, apgd, y) <= _robust_accuracy(model, pgd, y) + 0.01


# --- the peer: torchattacks -------------------------------------------------------------------


def test_fgsm_matches_torchattacks_per_example(trained) -> None:  # type: ignore[no-untyped-def]
    import torchattacks  # the peer, from the 'test' extra: missing it is a failure, not a skip
    model, x, y = trained
    for eps in (0.02, 0.1, 0.3):
        ours = FGSM(eps=eps).perturb(model, x, y)
        theirs = torchattacks.FGSM(model, eps=eps)(x, y)
        assert torch.allclose(ours, theirs, atol=1e-6), f"FGSM inputs differ at eps {eps}"
        assert torch.equal(model(ours).argmax(1), model(theirs).argmax(1))


def test_pgd_breaks_at_least_as_many_examples_as_torchattacks(trained) -> None:  # type: ignore[no-untyped-def]
    import torchattacks  # the peer, from the 'test' extra: missing it is a failure, not a skip
    model, x, y = trained
    # the difference random starts alone make: one start against another, same attack
    slack = 3 / len(y)
    for eps in (0.05, 0.1, 0.2):
        torch.manual_seed(0)  # torchattacks draws its random start from the global generator
        theirs = _robust_accuracy(model, torchattacks.PGD(model, eps=eps, alpha=eps / 4, steps=10)(x, y), y)
        ours = _robust_accuracy(model, PGD(eps=eps, steps=10, alpha=eps / 4).perturb(
            model, x, y, generator=torch_generator(0, "peer")), y)
        assert ours <= theirs + slack, f"eps {eps}: harness PGD {ours:.3f} vs torchattacks {theirs:.3f}"


@pytest.mark.parametrize("loss", ["ce", "dlr"])
def test_apgd_robust_accuracy_matches_torchattacks_both_ways(loss: str, trained) -> None:  # type: ignore[no-untyped-def]
    """Neither weaker nor implausibly stronger than torchattacks' APGD (a port of the authors'
    code) with the same eps, steps, restarts, rho and loss.

    Like with like: 100 steps, where torchattacks' schedule (a first window of int(0.22 N) steps,
    each next 3% shorter down to 6%) lands on the paper's checkpoints; only the examples the
    model classifies correctly (torchattacks counts the rest broken before it starts); an
    example counts as broken when any iterate fooled the model, which both keep (torchattacks
    returns the last such iterate, the harness the first). What differs is the random start
    (torchattacks' touches a face of the ball), and torchattacks compares the first step's loss
    with 0 rather than the start's. Over 10 starts each on the 450 test digits at eps 0.1, the
    two mean robust accuracies agreed within 0.1 points (CE and DLR), and the number of examples
    left standing had a standard deviation of 2 to 3 for either attack, 3 to 4 for a difference
    of two runs; the tolerance, 3 points of about 420 examples (12), is 3 to 4 of those.
    """
    import torchattacks  # the peer, from the 'test' extra: missing it is a failure, not a skip
    model, x, y = trained
    with torch.no_grad():
        correct = model(x).argmax(1) == y
    x, y = x[correct], y[correct]
    assert len(y) >= 400
    ours = _robust_accuracy(model, APGD(eps=0.1, steps=100, loss=loss).perturb(
        model, x, y, generator=torch_generator(0, "peer")), y)
    with torch.random.fork_rng(devices=[]):  # torchattacks reseeds the global generator
        theirs = _robust_accuracy(model, torchattacks.APGD(
            model, norm="Linf", eps=0.1, steps=100, n_restarts=1, seed=0, loss=loss, rho=0.75)(x, y), y)
    # the budget is one that breaks about half of the examples, where a weaker attack shows most
    assert 0.25 < theirs < 0.75
    assert ours <= theirs + 0.03, f"harness APGD-{loss} weaker: {ours:.3f} vs torchattacks {theirs:.3f}"
    assert ours >= theirs - 0.03, f"harness APGD-{loss} implausibly stronger: {ours:.3f} vs torchattacks {theirs:.3f}"


# --- DLR against the paper's definition, by hand ----------------------------------------------


def test_dlr_loss_hand_computed_from_the_papers_definition() -> None:
    """DLR(x, y) = -(z_y - max_{i != y} z_i) / (z_pi1 - z_pi3), pi sorting the logits descending
    (Croce & Hein, 2020, eq. 6): the denominator spans the largest and the third-largest logit."""
    # sorted: 3, 1, 0, -2, so z_pi1 - z_pi3 = 3 - 0 = 3 for every label
    z = torch.tensor([[3.0, 1.0, 0.0, -2.0]] * 4, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 3])
    # y = 0 is the top class: -(3 - 1) / 3; the others: -(z_y - 3) / 3
    expected = torch.tensor([-2 / 3, 2 / 3, 1.0, 5 / 3], dtype=torch.float64)
    assert torch.allclose(dlr_loss(z, y), expected, rtol=0, atol=1e-12)
    # unsorted, and the top class not in column 0: logits (0.5, 4, -1, 2, 1), sorted 4, 2, 1, 0.5, -1
    z = torch.tensor([[0.5, 4.0, -1.0, 2.0, 1.0]] * 3, dtype=torch.float64)
    y = torch.tensor([1, 3, 2])
    # y = 1 on top: -(4 - 2) / (4 - 1); y = 3: -(2 - 4) / 3; y = 2: -(-1 - 4) / 3
    expected = torch.tensor([-2 / 3, 2 / 3, 5 / 3], dtype=torch.float64)
    assert torch.allclose(dlr_loss(z, y), expected, rtol=0, atol=1e-12)
    # a tie for the top: max over the other classes is the tied value, so both labels give 0
    z = torch.tensor([[2.0, 2.0, 1.0]] * 2, dtype=torch.float64)
    assert torch.allclose(dlr_loss(z, torch.tensor([0, 1])), torch.zeros(2, dtype=torch.float64), rtol=0, atol=1e-12)


def test_dlr_loss_is_invariant_to_shift_and_positive_scale_by_hand() -> None:
    z = torch.tensor([[3.0, 1.0, 0.0, -2.0], [0.5, 4.0, -1.0, 2.0]], dtype=torch.float64)
    y = torch.tensor([0, 3])
    # by hand: -(3 - 1) / (3 - 0); sorted 4, 2, 0.5, -1: -(2 - 4) / (4 - 0.5)
    expected = torch.tensor([-2 / 3, 2 / 3.5], dtype=torch.float64)
    for scale, shift in ((1.0, 10.0), (1.0, -7.5), (0.25, 0.0), (40.0, 3.0)):
        assert torch.allclose(dlr_loss(scale * z + shift, y), expected, rtol=0, atol=1e-9), (scale, shift)


def test_dlr_loss_on_two_classes_is_a_config_error_with_a_hint() -> None:
    with pytest.raises(ConfigError) as info:
        dlr_loss(torch.tensor([[1.0, 0.0]]), torch.tensor([0]))
    assert info.value.message == "the DLR loss needs at least 3 classes, the model has 2"
    assert "apgd-ce" in info.value.hint


# --- PGD's worst case against a plain PGD ------------------------------------------------------


def _plain_pgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, alpha: float, steps: int,
               generator: torch.Generator) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Every iterate of L-inf PGD on the whole batch, start and last included, each with the
    mask (N,) of the examples it misclassifies: a uniform start in the ball, steps of ``alpha``
    along the sign of the cross-entropy's input gradient, each projected onto the ball and [0, 1]."""
    lo, hi = (x - eps).clamp(0, 1), (x + eps).clamp(0, 1)
    x_cur = torch.min(torch.max(x + eps * (2 * torch.rand(x.shape, generator=generator) - 1), lo), hi)
    out = []
    for k in range(steps + 1):
        x_cur = x_cur.detach().requires_grad_(True)
        logits = model(x_cur)
        out.append((x_cur.detach(), (logits.argmax(1) != y).detach()))
        if k < steps:
            (grad,) = torch.autograd.grad(F.cross_entropy(logits, y, reduction="sum"), x_cur)
            x_cur = torch.min(torch.max(x_cur + alpha * grad.sign(), lo), hi)
    return out


@pytest.mark.parametrize("alpha", [None, 0.2], ids=["default-step", "step-2eps"])
def test_pgd_keeps_every_example_that_any_iterate_broke(alpha: float | None, trained) -> None:  # type: ignore[no-untyped-def]
    """The harness's PGD returns, per example, the first iterate that fooled the model, else the
    last; checked against a plain PGD on the whole batch (the model is in eval mode, so one
    example's iterates do not depend on the others and dropping broken ones changes nothing).
    With steps of 2 eps the iterates jump between corners of the ball, and some examples are
    broken at one iterate and classified correctly again at the last."""
    model, x, y = trained
    eps, steps = 0.1, 10
    iterates = _plain_pgd(model, x, y, eps, alpha if alpha is not None else 2.5 * eps / steps, steps,
                          torch.Generator().manual_seed(3))
    wrong = torch.stack([w for _, w in iterates])  # (steps + 1, N)
    ever, last = wrong.any(0), wrong[-1]
    assert (ever & ~last).sum() >= 1, "no example recovers at the last iterate: the test would be vacuous"
    assert 0.2 < ever.float().mean() < 0.8
    x_adv = PGD(eps=eps, steps=steps, alpha=alpha).perturb(model, x, y, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        broken = model(x_adv).argmax(1) != y
    assert torch.equal(broken, ever), f"{int((broken != ever).sum())} examples differ from the plain PGD's"
    # the first misclassified iterate, else the last; the two projections (a box clamp here, x plus a
    # clamped difference there) may round apart by an ulp
    first = wrong.float().argmax(0)
    expected = torch.stack([iterates[int(first[i]) if ever[i] else steps][0][i] for i in range(len(y))])
    assert torch.allclose(x_adv, expected, rtol=0, atol=1e-6), float((x_adv - expected).abs().max())
    assert (x_adv - x).abs().max() <= eps + 1e-7 and x_adv.min() >= 0 and x_adv.max() <= 1


def test_an_unknown_attack_norm_is_refused_with_the_norms_to_use() -> None:
    from harness.attacks import PGD
    from harness.errors import ConfigError

    with pytest.raises(ConfigError) as err:
        PGD(eps=0.1, norm="l1")
    assert (err.value.message, err.value.hint) == ("unknown attack norm 'l1'", "use 'linf' or 'l2'")


def test_a_negative_pgd_step_size_is_refused_with_the_rule_it_falls_back_to() -> None:
    from harness.attacks import check_alpha

    with pytest.raises(ConfigError) as err:
        check_alpha(-0.5)
    assert err.value.message == "PGD step size alpha must be non-negative, got -0.5"
    assert err.value.hint == "leave it out for 2.5 * eps / steps"
    check_alpha(None)
    check_alpha(0.0)  # zero is a step size (the attack then never moves), not an error


def test_an_unknown_loss_and_too_few_steps_are_refused_with_what_to_use() -> None:
    with pytest.raises(ConfigError) as err:
        PGD(eps=0.1, loss="hinge")
    assert (err.value.message, err.value.hint) == ("unknown attack loss 'hinge'", "use 'ce' (cross-entropy) or 'dlr'")
    with pytest.raises(ConfigError) as err:
        PGD(eps=0.1, steps=0)
    assert (err.value.message, err.value.hint) == ("steps and restarts must be at least 1, got 0 and 1",
                                                   "use e.g. steps=10, restarts=1")


def test_the_l2_projection_leaves_a_point_inside_the_ball_where_it_is() -> None:
    from harness.attacks import project

    x = torch.full((1, 1, 4, 4), 0.5)
    inside = x.clone()
    inside[0, 0, 0, 0] += 0.05  # an L2 distance of 0.05 in a ball of radius 0.5
    assert torch.equal(project(x, inside, 0.5, "l2"), inside)
    outside = x.clone()
    outside[0, 0, 0, 0] += 0.4  # 0.4 from x in a ball of radius 0.1: pulled back onto the sphere
    assert float((project(x, outside, 0.1, "l2") - x).norm()) == pytest.approx(0.1, rel=1e-6)


class _Seen(nn.Module):
    """A model that remembers every input it was shown, to tell afterwards which examples any
    iterate fooled: an iterate lies within eps of its own clean image and far from the others."""

    def __init__(self, model: nn.Module, x: torch.Tensor) -> None:
        super().__init__()
        self.model, self.clean, self.seen = model, x.flatten(1), []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model(x)
        self.seen.append((x.detach().flatten(1), out.detach().argmax(1)))
        return out


def test_apgd_returns_a_fooling_point_for_every_example_any_iterate_fooled(trained) -> None:  # type: ignore[no-untyped-def]
    """Once an iterate fools the model, APGD stops attacking that example and keeps that iterate;
    attacking it further could end on an iterate the model classifies correctly again."""
    model, x, y = trained
    x, y = x[:200], y[:200]
    seen = _Seen(model, x).eval()
    x_adv = APGD(eps=0.15, steps=20).perturb(seen, x, y, generator=torch.Generator().manual_seed(0))
    ever = torch.zeros(len(y), dtype=torch.bool)
    for inputs, pred in seen.seen:
        owner = torch.cdist(inputs, seen.clean).argmin(1)  # the example each input was made from
        ever[owner[pred != y[owner]]] = True
    with torch.no_grad():
        fooled = model(x_adv).argmax(1) != y
    assert 0.2 < ever.float().mean() < 0.95, "the test would be vacuous"
    assert torch.equal(fooled, ever), f"{int((fooled != ever).sum())} examples an iterate fooled are returned unfooled"
