"""BatchNorm folding (harness.folding): the folded model computes what the model did, within float
tolerance, for every registered image model with BatchNorm; the count of folded layers is what each
architecture has; the per-input norms never fold; a layer whose output goes elsewhere too is left alone;
and a wrong fold is caught, never returned."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from harness import folding
from harness.folding import RTOL, fold_batchnorm, fold_plan, max_difference
from harness.models import build_model
from harness.registry import models

SHAPE = (1, 8, 8)
# BatchNorm layers each registered model folds at norm "batch": every one that follows a convolution or a
# linear layer; the LSTM's cell-state norm follows none, and the ViT's act on reshaped tokens (TokenNorm)
EXPECTED = {"mlp": 2, "cnn": 2, "resnet": 6, "gru": 2, "lstm": 2, "vit": 0, "torchvision-resnet": 20}
# models with BatchNorm that does not fold, by name in the model
KEPT = {"lstm": {"net.norm_c"}, "vit": {"net.blocks.0.norm1.norm", "net.blocks.0.norm2.norm",
                                        "net.blocks.1.norm1.norm", "net.blocks.1.norm2.norm", "net.final_norm.norm"}}


def _model(name: str, norm: str, seed: int = 0) -> nn.Module:
    """A model of ``name`` with BatchNorm statistics and affine parameters far from their defaults, so a fold
    that drops or misplaces any term changes the outputs."""
    g = torch.Generator().manual_seed(seed)
    model = build_model(name, norm, SHAPE, 10, {}, None, g)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.weight.copy_(torch.rand(m.num_features, generator=g) * 2 + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=g))
        model.train()
        for _ in range(3):  # running statistics of inputs with another mean and spread
            model(torch.rand(32, *SHAPE, generator=g) * 3 - 1)
    return model.eval()


def _inputs(n: int = 16, seed: int = 1) -> torch.Tensor:
    return torch.rand(n, *SHAPE, generator=torch.Generator().manual_seed(seed))


def test_every_registered_image_model_is_expected() -> None:
    assert set(models.names()) == set(EXPECTED), "a new model: add the BatchNorm layers it folds to EXPECTED"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_folded_batchnorm_model_gives_the_same_outputs_and_folds_what_the_architecture_has(name: str) -> None:
    if name == "torchvision-resnet":
        pytest.importorskip("torchvision")
    model = _model(name, "batch")
    x = _inputs()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    folded, n = fold_batchnorm(model, x)
    assert n == EXPECTED[name]
    assert {b for b, _ in fold_plan(model, x).kept} == KEPT.get(name, set())
    n_bn = sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in folded.modules())
    assert n_bn == len(KEPT.get(name, ()))  # the folded ones are gone
    # the tolerance: RTOL (1e-4) of the largest logit, on inputs the plan never saw
    x_new = _inputs(32, seed=7)
    diff, scale = max_difference(model, folded, x_new)
    assert diff <= RTOL * max(1.0, scale), f"{name}: folded outputs differ by {diff:.3g} (largest {scale:.3g})"
    if n:
        assert sum(p.numel() for p in folded.parameters()) < sum(p.numel() for p in model.parameters())
    # the model itself is untouched
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


@pytest.mark.parametrize("norm", ["layer", "group", "rms", "none"])
@pytest.mark.parametrize("name", ["mlp", "cnn", "resnet", "gru", "vit"])
def test_per_input_norms_never_fold(name: str, norm: str) -> None:
    model = _model(name, norm)
    folded, n = fold_batchnorm(model, _inputs())
    assert n == 0
    assert max_difference(model, folded, _inputs())[0] == 0.0


def test_a_trained_model_folds_within_tolerance() -> None:
    """A cnn-batch trained for some steps (statistics and weights learnt, not drawn) folds exactly too."""
    g = torch.Generator().manual_seed(3)
    model = build_model("cnn", "batch", SHAPE, 4, {"channels": (8, 16)}, None, g)
    x, y = torch.rand(256, *SHAPE, generator=g), torch.randint(0, 4, (256,), generator=g)
    x[y == 1] *= 0.3  # something to learn
    x[y == 2] = x[y == 2].clamp_min(0.5)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model.train()
    for i in range(60):
        idx = torch.arange(i % 8 * 32, i % 8 * 32 + 32)
        opt.zero_grad()
        nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
        opt.step()
    model.eval()
    bn = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert all(float((m.running_var - 1).abs().max()) > 0.05 for m in bn)  # statistics far from the defaults
    folded, n = fold_batchnorm(model, x[:32])
    diff, scale = max_difference(model, folded, x)
    assert n == 2 and diff <= RTOL * max(1.0, scale)


def test_a_wrong_fold_is_an_error_never_a_silently_wrong_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fold without the BatchNorm's shift (the bias term) changes the outputs: fold_batchnorm refuses it."""
    right = folding._fuse

    def no_shift(layer: nn.Module, bn: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
        weight, bias = right(layer, bn)
        return weight, torch.zeros_like(bias)

    monkeypatch.setattr(folding, "_fuse", no_shift)
    with pytest.raises(RuntimeError, match="changed the outputs"):
        fold_batchnorm(_model("mlp", "batch"), _inputs())


class _Shared(nn.Module):
    """A linear layer whose output BatchNorm reads and the model reads again: it cannot fold."""

    def __init__(self) -> None:
        super().__init__()
        self.lin, self.bn = nn.Linear(6, 4), nn.BatchNorm1d(4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.lin(x)
        return self.bn(y) + y


class _Tokens(nn.Module):
    """A linear layer of 3-D output (N, T, D) and a BatchNorm1d over (N, D, T): its channel is not the feature."""

    def __init__(self) -> None:
        super().__init__()
        self.lin, self.bn = nn.Linear(5, 5), nn.BatchNorm1d(5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.lin(x).transpose(1, 2))


class _Twice(nn.Module):
    """One convolution called twice, once into BatchNorm and once not: folding would change the other call."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.bn = nn.Conv2d(3, 3, 1), nn.BatchNorm2d(3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x)) + self.conv(x)


@pytest.mark.parametrize(("model", "x", "why"), [
    (_Shared(), torch.rand(8, 6), "read elsewhere"),
    (_Tokens(), torch.rand(8, 3, 5), "not the whole output"),
    (_Twice(), torch.rand(2, 3, 4, 4), "also goes elsewhere"),
    (nn.Sequential(nn.BatchNorm1d(6), nn.Linear(6, 2)), torch.rand(8, 6), "not the whole output"),
    (nn.Sequential(nn.Linear(6, 6), nn.ReLU(), nn.BatchNorm1d(6)), torch.rand(8, 6), "follows a ReLU"),
])
def test_a_batchnorm_the_pass_does_not_show_folding_safely_is_kept_and_says_why(model: nn.Module, x: torch.Tensor,
                                                                                why: str) -> None:
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.fill_(0.3)
            m.running_var.fill_(2.0)
    model.eval()
    plan = fold_plan(model, x)
    assert plan.pairs == () and len(plan.kept) == 1 and why in plan.kept[0][1]
    folded, n = fold_batchnorm(model, x)
    assert n == 0 and max_difference(model, folded, x)[0] == 0.0


def test_a_bias_free_convolution_gets_the_shift_as_its_bias() -> None:
    model = nn.Sequential(nn.Conv2d(2, 4, 3, bias=False), nn.BatchNorm2d(4), nn.ReLU())
    with torch.no_grad():
        model[1].running_mean.uniform_(-1, 1)
        model[1].running_var.uniform_(0.5, 2)
        model[1].bias.uniform_(-1, 1)
    model.eval()
    x = torch.rand(4, 2, 6, 6)
    folded, n = fold_batchnorm(model, x)
    assert n == 1 and isinstance(folded[1], nn.Identity) and folded[0].bias is not None
    diff, scale = max_difference(model, folded, x)
    assert diff <= RTOL * max(1.0, scale)


def test_folding_needs_eval_mode() -> None:
    with pytest.raises(RuntimeError, match="eval mode"):
        fold_batchnorm(nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2)), torch.rand(4, 2))
