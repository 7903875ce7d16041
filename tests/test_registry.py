"""Tests for harness.registry: registration, lazy "module:attr" targets, duplicate and bad names,
did-you-mean errors for unknown names, loud failures of plugins that do not import, and the
registry-of-registries lookup."""

from __future__ import annotations

import os
import sys

import pytest

import harness.registry as reg
from harness.errors import ConfigError, PluginError, UnknownNameError
from harness.registry import Registry


def widget() -> str:
    """A widget for the tests."""
    return "widget"


def other_widget() -> str:
    return "other"


@pytest.fixture
def widgets() -> Registry:
    # a kind with no entry-point group installed, so only what a test registers is there
    return Registry("widgets", "things for tests")


def test_fresh_registry_is_empty(widgets: Registry) -> None:
    assert widgets.names() == []
    assert "anything" not in widgets


def test_register_object_then_get_returns_it(widgets: Registry) -> None:
    widgets.register("spinner", widget)
    assert widgets.get("spinner") is widget
    assert "spinner" in widgets
    assert widgets.names() == ["spinner"]
    assert list(widgets) == ["spinner"]
    assert widgets.entry("spinner").origin == "python"
    assert widgets.summary("spinner") == "A widget for the tests."


def test_lazy_string_is_imported_on_first_get(widgets: Registry) -> None:
    # a stdlib module that nothing in the harness imports, so we can see when it gets imported
    module = "colorsys"
    sys.modules.pop(module, None)
    widgets.register("hsv", f"{module}:rgb_to_hsv")
    assert module not in sys.modules, "registering a 'module:attr' string must not import it"
    value = widgets.get("hsv")
    assert module in sys.modules
    assert value is sys.modules[module].rgb_to_hsv
    assert widgets.get("hsv") is value  # cached


def test_lazy_string_with_dotted_attribute(widgets: Registry) -> None:
    widgets.register("join", "os:path.join")
    assert widgets.get("join") is os.path.join


def test_same_name_same_target_is_not_an_error(widgets: Registry) -> None:
    widgets.register("spinner", "os.path:join")
    widgets.register("spinner", "os.path:join")
    assert widgets.names() == ["spinner"]


def test_duplicate_name_with_another_target_names_both_origins(widgets: Registry) -> None:
    widgets.register("spinner", "os.path:join")
    with pytest.raises(PluginError) as info:
        widgets.register("spinner", "os.path:split")
    msg = info.value.message
    assert "'spinner'" in msg and "registered twice" in msg
    assert "os.path:join" in msg and "os.path:split" in msg
    assert msg.count("python") == 2  # both origins named
    assert info.value.hint
    # the first registration is kept, not silently overridden
    assert widgets.get("spinner") is os.path.join


def test_duplicate_object_registration_is_an_error(widgets: Registry) -> None:
    widgets.register("spinner", widget)
    with pytest.raises(PluginError, match="registered twice"):
        widgets.register("spinner", other_widget)
    assert widgets.get("spinner") is widget


@pytest.mark.parametrize("name", ["Spinner", "SPIN", "my_widget", "my widget", " spin", "spin-", "-spin",
                                  "a--b", "", "spin.ner"])
def test_bad_names_are_rejected(widgets: Registry, name: str) -> None:
    with pytest.raises(PluginError, match="not lowercase-with-hyphens"):
        widgets.register(name, widget)
    assert widgets.names() == []


@pytest.mark.parametrize("name", ["spin", "pgd-linf", "gaussian-noise", "l2", "a-1-b"])
def test_good_names_are_accepted(widgets: Registry, name: str) -> None:
    widgets.register(name, widget)
    assert widgets.names() == [name]


def test_unknown_name_suggests_close_match_and_lists_available(widgets: Registry) -> None:
    widgets.register("spinner", widget)
    widgets.register("gizmo", other_widget)
    with pytest.raises(UnknownNameError) as info:
        widgets.get("spiner")
    err = info.value
    assert isinstance(err, ConfigError)
    assert err.message == "unknown widget 'spiner'"
    assert "did you mean 'spinner'" in err.hint
    assert "available:" in err.hint
    assert "gizmo" in err.hint and "spinner" in err.hint


def test_unknown_name_without_close_match_still_lists_available(widgets: Registry) -> None:
    widgets.register("spinner", widget)
    with pytest.raises(UnknownNameError) as info:
        widgets.entry("zzzzzzzz")
    assert "did you mean" not in info.value.hint
    assert info.value.hint == "available: spinner"


def test_unknown_name_in_empty_registry(widgets: Registry) -> None:
    with pytest.raises(UnknownNameError) as info:
        widgets.get("spinner")
    assert "(none registered)" in info.value.hint


def test_target_that_fails_to_import_names_the_plugin(widgets: Registry) -> None:
    widgets.register("broken", "harness_no_such_module_xyz:thing")
    assert "broken" in widgets  # registering is lazy; the failure comes on use
    with pytest.raises(PluginError) as info:
        widgets.get("broken")
    msg = info.value.message
    assert "'broken'" in msg
    assert "harness_no_such_module_xyz:thing" in msg
    assert "failed to import" in msg and "ModuleNotFoundError" in msg
    assert isinstance(info.value.__cause__, ModuleNotFoundError)


def test_missing_attribute_fails_as_plugin_error(widgets: Registry) -> None:
    widgets.register("ghost", "os:no_such_attribute_xyz")
    with pytest.raises(PluginError, match="'ghost'.*AttributeError"):
        widgets.get("ghost")


def test_unregister_removes_the_name(widgets: Registry) -> None:
    widgets.register("spinner", widget)
    widgets.unregister("spinner")
    assert "spinner" not in widgets
    with pytest.raises(UnknownNameError):
        widgets.get("spinner")


def test_entry_point_group_replaces_hyphens() -> None:
    assert Registry("ood-scores", "").group == "harness.ood_scores"
    assert reg.ood_scores.group == "harness.ood_scores"


def test_registry_lookup_by_kind() -> None:
    assert reg.registry("attacks") is reg.attacks
    assert reg.registry("ood-scores") is reg.ood_scores
    assert set(reg.REGISTRIES) == {"suites", "models", "norms", "datasets", "shifts", "attacks", "ood-scores",
                                   "metrics", "executors", "denoisers", "tasks", "text-shifts", "text-models",
                                   "text-attacks"}


def test_registry_unknown_kind_suggests_plural() -> None:
    with pytest.raises(UnknownNameError) as info:
        reg.registry("attack")
    assert info.value.message == "unknown plugin kind 'attack'"
    assert "did you mean 'attacks'" in info.value.hint
    assert "available:" in info.value.hint and "ood-scores" in info.value.hint


def test_builtins_come_from_entry_points() -> None:
    # the project registers its own built-ins through pyproject.toml entry points
    entry = reg.attacks.entry("pgd-linf")
    assert entry.target == "harness.attacks:PGD"
    assert entry.origin == "norm-harness"


@pytest.mark.parametrize(("doc", "expected"), [
    ("One line.", "One line."),
    ("A sentence wrapped\n    over two lines, then another. Second one.",
     "A sentence wrapped over two lines, then another."),
    ("Uses :data:`TORCHVISION_RESNETS` and ``arch``; :func:`~harness.x.y` too. More.",
     "Uses TORCHVISION_RESNETS and arch; harness.x.y too."),
    ("A literal ``torchvision:resnet18.\n    IMAGENET1K_V1`` wrapped. Next.",
     "A literal torchvision:resnet18.IMAGENET1K_V1 wrapped."),
    ("Attacks (Croce & Hein et al. 2020), e.g. APGD, i.e. step-size-free, vs. PGD. Next.",
     "Attacks (Croce & Hein et al. 2020), e.g. APGD, i.e. step-size-free, vs. PGD."),
    ("Shapes: x (N, D). y (N,) int64.", "Shapes: x (N, D)."),
    ("No final stop\n\nSecond paragraph.", "No final stop"),
    ("", ""),
])
def test_a_summary_is_the_first_sentence_in_plain_text(doc: str, expected: str) -> None:
    from harness.registry import first_sentence

    assert first_sentence(doc) == expected


def test_every_registered_summary_is_a_whole_sentence_without_markup() -> None:
    from harness.registry import REGISTRIES

    for kind, plugins in REGISTRIES.items():
        for name in plugins.names():
            text = plugins.summary(name)
            assert "``" not in text and ":data:`" not in text and ":func:`" not in text, (kind, name, text)
            assert "\n" not in text, (kind, name)
