"""Tests for harness.cli: help for every command, the Error:/Hint: format and exit statuses for
usage and configuration errors, list/show/--version output, and that start-up does not import
torch (so --help and listing stay instant)."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness import __version__
from harness.cli import COMMANDS, build_parser, main

ROOT = Path(__file__).resolve().parents[1]


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


def _run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=60)


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


# --- help --------------------------------------------------------------------------------------


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: harness")
    for command in COMMANDS:
        assert command in out, command
    for command, sub in _subcommands().items():
        # the one-line help of each command is shown in the overview
        (help_text,) = [a.help for a in build_parser()._subparsers._group_actions[0]._choices_actions
                        if a.dest == command]
        assert help_text and help_text in out, command
        assert sub.description, f"'{command}' has no description"


def test_parser_and_dispatch_agree() -> None:
    assert set(_subcommands()) == set(COMMANDS)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: harness {command}")
    # every option is documented
    for action in _subcommands()[command]._actions:
        if action.option_strings and action.dest != "help":
            assert action.help, f"harness {command} {action.option_strings[0]} has no help text"
            assert action.option_strings[-1] in out


def test_no_command_prints_help_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "usage: harness" in capsys.readouterr().out


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == __version__


# --- errors ------------------------------------------------------------------------------------


def test_unknown_suite_is_one_error_and_a_hint() -> None:
    proc = _run_cli("run", "quickstartt")
    assert proc.returncode == 2
    lines = _lines(proc.stderr)
    assert "Error: unknown suite 'quickstartt'" in lines
    hints = [line for line in lines if line.startswith("Hint:")]
    assert len(hints) == 1 and hints[0].startswith("Hint: did you mean 'quickstart'?")
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""


def test_bad_seeds_are_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["run", "quickstart", "--seeds", "a"])
    assert info.value.code == 2
    captured = capsys.readouterr()
    lines = _lines(captured.err)
    assert lines == ["Error: argument --seeds: seeds must be comma-separated integers, got 'a'",
                     "Hint: run 'harness run --help' for usage"]
    assert captured.out == ""


@pytest.mark.parametrize(
    ("args", "prefix", "fragment"),
    [
        (["run", "quickstart", "--epochs", "0"], "Error: argument --epochs:", "positive integer"),
        (["run", "quickstart", "--workers", "0"], "Error: argument --workers:", "positive integer"),
        (["run", "quickstart", "--variants", ","], "Error: argument --variants:", "name"),
        (["report", "x", "--level", "1.5"], "Error: argument --level:", "1.5"),
        (["frobnicate"], "Error: argument COMMAND: invalid choice:", "'frobnicate'"),
    ],
)
def test_other_usage_errors(args: list[str], prefix: str, fragment: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(args)
    assert info.value.code == 2
    captured = capsys.readouterr()
    lines = _lines(captured.err)
    assert len(lines) == 2
    assert lines[0].startswith(prefix) and fragment in lines[0]
    assert lines[1].startswith("Hint: run 'harness")
    assert captured.out == ""


def test_unknown_executor_is_one_error_and_nothing_is_written(capsys: pytest.CaptureFixture[str],
                                                              tmp_path: Path) -> None:
    assert main(["run", "quickstart", "--executor", "proces", "--run-dir", str(tmp_path / "r")]) == 2
    lines = _lines(capsys.readouterr().err)
    assert "Error: unknown executor 'proces'" in lines
    assert "Hint: did you mean 'process'? available: process, serial" in lines
    assert not (tmp_path / "r").exists()


def test_report_of_missing_run_dir(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    missing = tmp_path / "nonexistent"
    assert main(["report", str(missing)]) == 2
    lines = _lines(capsys.readouterr().err)
    assert lines[0] == f"Error: {missing} is not a run directory (no store.sqlite)"
    assert lines[1].startswith("Hint:")
    assert not missing.exists(), "reporting must not create a run directory"


def test_report_nonexistent_via_subprocess() -> None:
    proc = _run_cli("report", "/nonexistent")
    assert proc.returncode == 2
    assert _lines(proc.stderr)[0].startswith("Error: /nonexistent is not a run directory")
    assert "Traceback" not in proc.stderr


def test_unknown_kind_in_list(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "attack"]) == 2
    lines = _lines(capsys.readouterr().err)
    assert lines[0] == "Error: unknown plugin kind 'attack'"
    assert lines[1].startswith("Hint: did you mean 'attacks'?")


def test_debug_shows_the_exception(capsys: pytest.CaptureFixture[str]) -> None:
    from harness.errors import UnknownNameError

    with pytest.raises(UnknownNameError):
        main(["--debug", "show", "quickstartt"])


# --- list / show -------------------------------------------------------------------------------


def test_list_all_kinds(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line for line in out.splitlines() if line and not line.startswith(" ")}
    assert "quickstart" in rows["suites"]
    assert "cnn" in rows["models"] and "mlp" in rows["models"]
    assert "fgsm" in rows["attacks"] and "pgd-linf" in rows["attacks"]
    assert "msp" in rows["ood-scores"]


def test_list_json(capsys: pytest.CaptureFixture[str]) -> None:
    import json

    assert main(["list", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["attacks"] == ["apgd-ce", "apgd-dlr", "fgsm", "pgd-l2", "pgd-linf"]
    assert "batch" in data["norms"]
    assert data["executors"] == ["process", "serial"]


def test_list_attacks(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "attacks"]) == 0
    lines = _lines(capsys.readouterr().out)
    names = [line.split()[0] for line in lines]
    assert names == ["apgd-ce", "apgd-dlr", "fgsm", "pgd-l2", "pgd-linf"]
    described = dict(zip(names, lines, strict=True))
    assert "Auto-PGD" in described["apgd-ce"]
    assert "difference of logits ratio" in described["apgd-dlr"]
    assert "Fast gradient sign method" in described["fgsm"]
    assert "L2" in described["pgd-l2"]
    assert "Projected gradient descent" in described["pgd-linf"]


def test_list_suites_shows_each_suites_own_description(capsys: pytest.CaptureFixture[str]) -> None:
    from harness.registry import suites

    assert main(["list", "suites"]) == 0
    (line,) = _lines(capsys.readouterr().out)
    assert line.startswith("quickstart")
    # the one-line description must describe this suite, not the Suite class in general
    assert suites.get("quickstart").description in line


def test_show_quickstart(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", "quickstart"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("quickstart 1.0.0:")
    (variants,) = [line for line in out.splitlines() if line.startswith("variants:")]
    for v in ("cnn-none", "cnn-batch", "cnn-layer", "mlp-none", "mlp-batch", "mlp-layer"):
        assert v in variants
    assert "seeds:      0, 1, 2" in out
    assert "fgsm eps 0, 0.02, 0.05, 0.1, 0.2" in out
    # 6 variants x 3 seeds; 1 clean + 15 shift + 3 ood + 15 attack conditions + 7 sanity checks
    assert "cells:      18 training, 738 evaluation" in out
    assert "checks:     gradients, repeat, batch-composition, noise, transfer, stronger, large-eps" in out


def test_show_json(capsys: pytest.CaptureFixture[str]) -> None:
    import json

    assert main(["show", "quickstart", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["name"] == "quickstart" and data["dataset"] == "digits"
    assert len(data["variants"]) == 6


def test_show_unknown_suite(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", "quickstar"]) == 2
    err = capsys.readouterr().err
    assert "Error: unknown suite 'quickstar'" in err
    assert "Hint: did you mean 'quickstart'?" in err


# --- start-up cost -----------------------------------------------------------------------------


def test_importing_the_cli_does_not_import_torch() -> None:
    code = "import sys, harness.cli; print('torch' in sys.modules, 'numpy' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["False", "False"]


def test_help_and_list_do_not_import_torch() -> None:
    code = ("import sys, contextlib, io\n"
            "from harness.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            "    main(['list'])\n"
            "    try:\n"
            "        main(['--help'])\n"
            "    except SystemExit:\n"
            "        pass\n"
            "print('torch' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"


def test_version_via_subprocess() -> None:
    proc = _run_cli("--version")
    assert proc.returncode == 0
    assert proc.stdout.strip() == __version__
