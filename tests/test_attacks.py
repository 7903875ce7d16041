"""Tests for harness.attacks beyond the plugin contract (tests/test_contracts.py): the APGD
step-size schedule, the DLR loss, the L2 ball, worst-case bookkeeping, the resolved defaults,
and a cross-check against a peer library (torchattacks) on a model trained on real digits."""

from __future__ import annotations

import pytest
import torch
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
    # p = 0, 0.22, 0.41, 0.57, 0.70, 0.80, 0.87, 0.93, 0.99 (times the steps, rounded up)
    assert apgd_checkpoints(100) == [22, 41, 57, 70, 80, 87, 93, 99]
    assert apgd_checkpoints(10) == [3, 5, 6, 7, 8, 9]


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
