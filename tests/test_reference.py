"""The suite author's reference (harness.reference): docs/reference.md is what the code generates,
every field of every specification is in it with a description, and ``harness show KIND NAME``
prints a plugin's options with the defaults its code declares."""

from __future__ import annotations

import dataclasses
import inspect
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from harness import reference, registry, specs
from harness.cli import main
from harness.reference import KINDS, SPEC_NAMES, dataclass_fields, plugin_doc, reference_markdown

ROOT = Path(__file__).resolve().parents[1]


def test_reference_md_is_current() -> None:
    assert (ROOT / "docs" / "reference.md").read_text(encoding="utf-8") == reference_markdown(), \
        "docs/reference.md is stale: run python docs/make_reference_md.py"


def _section(text: str, heading: str) -> str:
    return text.split(f"\n{heading}\n", 1)[1].split("\n#", 1)[0]


def test_every_field_of_every_specification_is_in_the_reference_with_a_description() -> None:
    text = (ROOT / "docs" / "reference.md").read_text(encoding="utf-8")
    for name in SPEC_NAMES:
        cls = getattr(specs, name)
        rows = [line for line in _section(text, f"### {name}").splitlines() if line.startswith("| `")]
        assert [r.split("`")[1] for r in rows] == [f.name for f in dataclasses.fields(cls)], name
        for f, row in zip(dataclasses.fields(cls), rows, strict=True):
            cells = row.split(" | ")
            # the default as the code declares it, and a description: a new field must say what it is
            if f.default is not dataclasses.MISSING:
                assert cells[2] == f"`{f.default!r}`".replace("|", "\\|"), (name, f.name)
            assert cells[3].strip(" |"), f"{name}.{f.name} has no description: say what it is in the class " \
                                         "docstring (``name`` ...) or in a comment on its line"


def test_descriptions_come_from_the_docstring_and_the_comments() -> None:
    docs = {f.name: f for f in dataclass_fields(_Example)}
    assert docs["alpha"].doc == "`alpha` is the first one."  # the clause that begins with it, not the mention
    assert docs["alpha"].default == "required"
    assert docs["beta"].doc == "`beta` (the second). Said above. Said on its line."  # its item of a list
    assert docs["beta"].type == "tuple[int, ...]" and docs["beta"].default == "(1, 2)"
    assert docs["gamma"].doc == "`gamma` (the third)."
    assert docs["gamma"].default == "_Other(x=1)"  # a factory's call as written
    assert docs["delta"].doc == "Beside `alpha`, `delta` matters."  # no clause begins with it: its mentions
    assert docs["epsilon"].doc == "" and docs["epsilon"].default == "_Other()"


@dataclass(frozen=True)
class _Other:
    x: int = 0


@dataclass(frozen=True)
class _Example:
    """An example. ``alpha`` is the first one; ``beta`` (the second) and ``gamma`` (the third).
    Beside ``alpha``, ``delta`` matters."""

    alpha: int
    # said above
    beta: tuple[int, ...] = (1, 2)  # said on its line
    gamma: Any = field(default_factory=lambda: _Other(x=1))
    delta: str = ""
    epsilon: _Other = field(default_factory=_Other)


def test_show_model_mlp_lists_hidden_with_its_default(capsys: pytest.CaptureFixture[str]) -> None:
    from harness.models import MLP

    hidden = inspect.signature(MLP).parameters["hidden"].default
    assert main(["show", "model", "mlp"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("model mlp: Multilayer perceptron")
    assert "from:       harness.models:MLP (norm-harness)" in out
    assert "called as:  MLP(in_shape, n_classes, norm, **options)" in out
    assert f"  hidden = {hidden!r} (tuple[int, ...])" in out
    assert not any(line.lstrip().startswith(("in_shape", "n_classes", "norm ")) for line in out)  # the contract's

    assert main(["show", "models", "mlp", "--json"]) == 0  # plural too, and the same as JSON
    data = json.loads(capsys.readouterr().out)
    assert data["kind"] == "models" and data["target"] == "harness.models:MLP"
    assert data["options"] == [{"name": "hidden", "type": "tuple[int, ...]", "default": repr(hidden),
                                "required": False, "doc": ""}]


def test_show_attack_lists_its_params_but_not_eps(capsys: pytest.CaptureFixture[str]) -> None:
    from harness.attacks import PGD

    assert main(["show", "attack", "pgd-linf"]) == 0
    out = capsys.readouterr().out
    names = [line.split("=")[0].strip() for line in out.splitlines() if line.startswith("  ") and " = " in line]
    assert names == [f.name for f in dataclasses.fields(PGD) if f.name != "eps"]
    assert "called as:  PGD(eps, **options)" in out


def test_show_a_plugin_registered_in_code(capsys: pytest.CaptureFixture[str]) -> None:
    def tiny(in_shape: Any, n_classes: int, norm: Any, width: int = 3, **extra: Any) -> None:
        """A tiny model. ``width`` is the number of units."""

    registry.models.register("tiny-model", tiny)
    try:
        assert main(["show", "model", "tiny-model"]) == 0
    finally:
        registry.models.unregister("tiny-model")
    out = capsys.readouterr().out.splitlines()
    assert out == ["model tiny-model: A tiny model.",
                   f"from:       <object {tiny!r}> (python)",
                   "called as:  tiny(in_shape, n_classes, norm, **options)",
                   "options:    set by " + KINDS["models"].options,
                   "  width   = 3 (int)",
                   "            `width` is the number of units.",
                   "  **extra = any keyword"]


def test_show_unknown_kind_or_name_says_what_exists(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", "modle", "mlp"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "Error: unknown plugin kind 'modle'"
    assert err[1].startswith("Hint: did you mean 'models'") and "attacks, datasets" in err[1]
    assert main(["show", "attack", "pgd-lnf"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "Error: unknown attack 'pgd-lnf'"
    assert err[1].startswith("Hint: did you mean 'pgd-linf'")
    assert err[1].endswith(f"available: {', '.join(registry.attacks.names())}")
    assert main(["show", "attack"]) == 2  # a kind without a name
    err = capsys.readouterr().err.splitlines()
    assert err == ["Error: 'harness show attack' needs the name of one of the attacks",
                   f"Hint: e.g. 'harness show attack NAME'; available: {', '.join(registry.attacks.names())}"]


def test_show_suite_is_unchanged(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", "quickstart"]) == 0
    alone = capsys.readouterr().out
    assert alone.startswith("quickstart 1.0.0:")
    assert main(["show", "suite", "quickstart"]) == 0
    assert capsys.readouterr().out == alone


@pytest.mark.parametrize("kind", sorted(k for k in KINDS if KINDS[k].contract))
def test_every_builtin_plugin_takes_its_kinds_arguments(kind: str) -> None:
    """The options ``harness show`` lists are what follows the kind's own arguments: so every plugin's
    signature must begin with them (positional kinds) or name them (keyword kinds), and what is left
    has defaults (a suite may leave out any option of a built-in)."""
    rule = KINDS[kind]
    reg = registry.REGISTRIES[kind]
    for name in reg.names():
        if reg.entry(name).origin != reference.PROJECT:
            continue
        params = list(inspect.signature(reg.get(name)).parameters)
        if rule.positional:
            assert tuple(params[:len(rule.contract)]) == rule.contract, (kind, name, params)
        elif kind != "ood-scores":  # a score of features is built without its logits (Mahalanobis)
            assert set(rule.contract) <= set(params), (kind, name, params)
        options = plugin_doc(kind, name).options
        assert not {o.name for o in options} & set(rule.contract), (kind, name)
        assert not [o.name for o in options if o.required], (kind, name)


def test_show_plugin_imports_only_the_plugin() -> None:
    # lazy imports: the plugin's module (and torch, which it needs), not the runner, the tasks or the reports
    code = ("import sys, contextlib, io\n"
            "from harness.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            "    assert main(['show', 'model', 'mlp']) == 0\n"
            "print(*sorted(m for m in sys.modules if m.startswith(('harness', 'matplotlib', 'scipy'))))")
    # a suite folder another test registered in this process is in $HARNESS_SUITE_PATH (registering a folder
    # puts it there, for worker processes), and its suites would be imported: not what is measured here
    env = {k: v for k, v in os.environ.items() if k != "HARNESS_SUITE_PATH"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60, env=env)
    assert proc.returncode == 0, proc.stderr
    loaded = proc.stdout.split()
    assert {"harness.reference", "harness.models"} <= set(loaded)
    heavy = ("harness.runner", "harness.planning", "harness.store", "harness.tasks", "harness.reports", "harness.specs",
             "matplotlib", "scipy")
    assert [m for m in loaded if m.startswith(heavy)] == []
