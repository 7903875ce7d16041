"""harness.normswap: every normalization layer of a model the harness did not write, swapped.

The swap is checked against independent references: a ResNet-18 swapped to BatchNorm and given the
original's weights computes the original's outputs exactly; a swapped layer norm computes a
layer norm written out by hand; channel counts are the original layers'. And the same on a
user-written model that holds maps, flat features and tokens, and through a suite: a variant whose
model is an importable factory ("package.module:name"), trained by the harness and loaded from
weights trained in plain PyTorch.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from torch import nn

from harness.errors import ConfigError
from harness.models import SpatialRMSNorm, TokenNorm, build_model, factory_name, resolve_factory
from harness.normswap import norm_layers, slots, swap_norms
from harness.seeding import torch_generator
from harness.specs import Variant

torchvision = pytest.importorskip("torchvision")


def _resnet18() -> nn.Module:
    torch.manual_seed(0)
    return torchvision.models.resnet18(num_classes=10)


def _features(mod: nn.Module) -> int:
    """The channels a norm layer is built for, read off its parameters and settings."""
    inner = mod.norm if isinstance(mod, TokenNorm) else mod
    for attr in ("num_features", "num_channels"):
        if isinstance(n := getattr(inner, attr, None), int):
            return n
    return int(inner.weight.numel())


@pytest.mark.parametrize("norm", ["batch", "group", "layer", "rms", "none"])
def test_a_torchvision_resnet_gets_the_norm_in_every_slot(norm: str) -> None:
    net = _resnet18()
    before = {name: mod.num_features for name, mod in norm_layers(net)}
    assert len(before) == 20  # stem, 8 blocks x 2, 3 downsampling shortcuts
    others = {k for k in net.state_dict() if not any(k.startswith(f"{n}.") for n in before)}
    swap_norms(net, norm, torch.zeros(2, 3, 32, 32))
    after = dict(norm_layers(net))
    expected = {"batch": nn.BatchNorm2d, "group": nn.GroupNorm, "layer": nn.GroupNorm, "rms": SpatialRMSNorm}
    if norm == "none":
        assert not after and all(isinstance(net.get_submodule(n), nn.Identity) for n in before)
    else:
        assert set(after) == set(before)
        assert all(type(after[n]) is expected[norm] and _features(after[n]) == c for n, c in before.items())
        if norm == "layer":  # one group: all of (C, H, W) of an example
            assert all(m.num_groups == 1 for m in after.values())
    assert others <= set(net.state_dict())  # every other layer kept under its name
    assert net(torch.rand(4, 3, 32, 32)).shape == (4, 10)


def test_a_resnet_swapped_to_batchnorm_with_the_originals_weights_is_the_original() -> None:
    original = _resnet18()
    with torch.no_grad():  # running statistics that are not the defaults
        for _, bn in norm_layers(original):
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.5, 2.0)
    swapped = swap_norms(_resnet18(), "batch", torch.zeros(2, 3, 32, 32))
    swapped.load_state_dict(original.state_dict())  # strict: the same keys and shapes
    x = torch.rand(5, 3, 32, 32)
    torch.testing.assert_close(swapped.eval()(x), original.eval()(x), rtol=0, atol=0)


def test_a_swapped_layer_norm_is_a_layer_norm_written_out() -> None:
    net = swap_norms(_resnet18(), "layer", torch.zeros(2, 3, 32, 32))
    layer = net.get_submodule("layer1.0.bn1")
    h = torch.randn(3, 64, 8, 8) * 3 + 1
    flat = h.flatten(1)
    by_hand = ((flat - flat.mean(1, keepdim=True)) / (flat.var(1, unbiased=False, keepdim=True) + layer.eps).sqrt())
    torch.testing.assert_close(layer(h), by_hand.view_as(h), rtol=1e-5, atol=1e-5)


class UserNet(nn.Module):
    """A user-written model: a conv stem with BatchNorm2d, a token block with a LayerNorm over each
    token's features, and a flat head with BatchNorm1d."""

    def __init__(self, width: int = 8, classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU())
        self.token_norm = nn.LayerNorm(width)
        self.mix = nn.Linear(width, width)
        self.head = nn.Sequential(nn.Linear(width, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, classes))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        maps = self.stem(x)  # (N, C, H, W)
        tokens = maps.flatten(2).transpose(1, 2)  # (N, H * W, C)
        tokens = tokens + self.mix(self.token_norm(tokens))
        return tokens.mean(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def make_user_net(width: int = 8) -> nn.Module:
    return UserNet(width)


def test_a_user_written_model_gets_the_norm_for_maps_tokens_and_features() -> None:
    example = torch.zeros(2, 1, 8, 8)
    assert [(s.name, s.features, s.layout) for s in slots(UserNet(), example)] == [
        ("stem.1", 8, "maps"), ("token_norm", 8, "tokens"), ("head.1", 16, "flat")]
    batch = swap_norms(UserNet(), "batch", example)
    assert isinstance(batch.token_norm, TokenNorm) and isinstance(batch.token_norm.norm, nn.BatchNorm1d)
    layer = swap_norms(UserNet(), "layer", example)
    assert isinstance(layer.token_norm, nn.LayerNorm)  # a per-token norm applies to tokens as it is
    assert isinstance(layer.get_submodule("stem.1"), nn.GroupNorm) and isinstance(layer.head[1], nn.LayerNorm)
    rms = swap_norms(UserNet(), "rms", example)
    assert isinstance(rms.token_norm, nn.RMSNorm) and isinstance(rms.head[1], nn.RMSNorm)
    for net in (batch, layer, rms):
        assert net(torch.rand(3, 1, 8, 8)).shape == (3, 10)
    # BatchNorm on tokens: statistics per feature over the batch and the tokens
    tokens = torch.randn(4, 6, 8) * 2 + 3
    out = batch.token_norm.train()(tokens)
    torch.testing.assert_close(out.reshape(-1, 8).mean(0), torch.zeros(8), rtol=0, atol=1e-5)


def test_what_cannot_be_swapped_is_refused_by_name() -> None:
    class Unused(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.used, self.spare = nn.BatchNorm1d(4), nn.BatchNorm1d(4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.used(x)

    with pytest.raises(ConfigError, match="layer 'spare' \\(BatchNorm1d\\) is not used by a forward pass"):
        swap_norms(Unused(), "group", torch.zeros(2, 4))
    conv1d = nn.Sequential(nn.Conv1d(2, 4, 3), nn.BatchNorm1d(4))
    with pytest.raises(ConfigError, match="layer '1' \\(BatchNorm1d\\) sees inputs of shape \\(2, 4, 6\\)"):
        swap_norms(conv1d, "layer", torch.zeros(2, 2, 8))


def test_a_variant_names_its_own_models_factory() -> None:
    spec = factory_name(make_user_net)
    assert spec.endswith(":make_user_net") and resolve_factory(spec) is make_user_net
    assert Variant.of("mine-layer", make_user_net, "group", options=(("width", 4),)).model == spec
    with pytest.raises(ConfigError, match="cannot be imported by name"):
        factory_name(lambda: UserNet())
    with pytest.raises(ConfigError, match="cannot import 'no_such_module'"):
        resolve_factory("no_such_module:f")
    with pytest.raises(ConfigError, match="has no 'missing'"):
        resolve_factory(f"{__name__}:missing")
    net = build_model(spec, "group", (1, 8, 8), 10, {"width": 4}, None, torch_generator(0, "init"))
    assert isinstance(net.net.get_submodule("stem.1"), nn.GroupNorm) and net.net.stem[0].out_channels == 4
    again = build_model(spec, "layer", (1, 8, 8), 10, {"width": 4}, None, torch_generator(0, "init"))
    # paired initialization: the same seed draws the same weights whatever fills the slot
    torch.testing.assert_close(net.net.stem[0].weight, again.net.stem[0].weight, rtol=0, atol=0)
    with pytest.raises(ConfigError, match="gives outputs of shape \\(2, 10\\).*has 3 classes"):
        build_model(spec, "group", (1, 8, 8), 3, {}, None, torch_generator(0, "init"))


@pytest.mark.slow
def test_a_suite_runs_a_users_model_trained_and_loaded(tmp_path: Path) -> None:
    """End to end, as a researcher would: a model written and trained in plain PyTorch, saved as a
    state dict, evaluated by a suite with its own layers ("as-built") beside the same architecture
    with its norm swapped and trained by the harness; the report says which model was loaded."""
    from harness.data import stratified_split
    from harness.registry import suites
    from harness.reports.build import build_report
    from harness.runner import run
    from harness.sources import load

    base = suites.get("quickstart")
    split = stratified_split(load(base.dataset), base.test_fraction, base.val_fraction, base.split_seed)
    torch.manual_seed(0)
    net = UserNet(width=8)  # trained by hand, as a user would, on the suite's training split
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    x, y = torch.from_numpy(split.train.x), torch.from_numpy(split.train.y)
    for _ in range(10):
        for i in range(0, len(x), 32):
            opt.zero_grad()
            nn.functional.cross_entropy(net(x[i:i + 32]), y[i:i + 32]).backward()
            opt.step()
    weights = tmp_path / "mine.pt"
    torch.save(net.state_dict(), weights)
    spec = factory_name(make_user_net)
    suite = dataclasses.replace(
        base.with_overrides(seeds=(0, 1)), name="own-model", train=dataclasses.replace(base.train, epochs=10, lr=3e-3),
        variants=(Variant("mine", spec, "as-built", weights=str(weights), trained_on="digits"),
                  Variant("mine-layer", spec, "layer", compare_to="mine")),
        evaluation=dataclasses.replace(base.evaluation, shifts=("gaussian-noise",), severities=(3,),
                                       ood_sets=("faces",), attacks=base.evaluation.attacks[:1], checks=False),
        claims=())
    summary = run(suite, tmp_path / "run", device="cpu", executor="serial", progress=False)
    assert summary.ok and summary.failures == ()
    report = build_report(tmp_path / "run")
    clean = {e.variant: e.estimate.value for e in report.estimates
             if e.condition.kind == "clean" and e.metric == "accuracy"}
    with torch.no_grad():
        by_hand = float((net.eval()(torch.from_numpy(split.test.x)).argmax(1) == torch.from_numpy(split.test.y))
                        .float().mean())
    assert clean["mine"] == pytest.approx(by_hand, abs=1e-6) and by_hand > 0.5  # the loaded model is the user's model
    assert 0.5 < clean["mine-layer"] <= 1.0  # trained by the harness with its norm swapped
    # the loaded model is reported as loaded: no training summary, its training rows say so
    assert {t.variant for t in report.training_summary} == {"mine-layer"}
    assert {r.result.get("trained") for r in report.training if r.variant == "mine"} == {False}
    assert {(c.variant, c.baseline) for c in report.comparisons} == {("mine-layer", "mine")}  # paired
    from harness.reports.render import write_reports

    markdown = write_reports(report, tmp_path / "run")["report"].read_text()
    assert "| mine | 0 | loaded |" in markdown.replace("`", ""), markdown
    # trained on the suite's own digits (the test part is split off them): the report says so
    assert "mine is scored on data it was trained on (digits, whose test part this suite splits off" in markdown


@pytest.mark.parametrize(("suite", "variant", "says"), [
    ({"dataset": "mnist-train", "test_dataset": "mnist"}, {"trained_on": "mnist"},
     "m is scored on data it was trained on (the test set mnist)"),
    ({"dataset": "digits", "test_dataset": None}, {"trained_on": "digits"},
     "m is scored on data it was trained on (digits, whose test part this suite splits off"),
    ({"dataset": "mnist-train", "test_dataset": "mnist"}, {"trained_on": "mnist-train"},
     "m loads weights trained on mnist-train, not on the data it is tested on (mnist)"),
    ({"dataset": "digits", "test_dataset": None}, {},
     "m loads weights (w.pt) without saying what they were trained on"),
])
def test_the_report_says_what_a_loaded_models_weights_were_trained_on(suite: dict[str, object],
                                                                     variant: dict[str, object], says: str) -> None:
    from types import SimpleNamespace

    from harness.reports.content import loaded_data_notes

    report = SimpleNamespace(suite=suite, variants=[{"name": "m", "weights": "w.pt", **variant},
                                                    {"name": "trained", "weights": None}])
    notes = loaded_data_notes(report)  # type: ignore[arg-type]
    assert len(notes) == 1 and notes[0].startswith(says), notes
    with pytest.raises(ConfigError, match="but loads no weights"):
        Variant("v", "mlp", "none", trained_on="mnist")
