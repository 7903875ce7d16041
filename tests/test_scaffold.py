"""Tests for harness.scaffold (``harness new suite NAME``): the package it writes installs, its
entry point makes the suite visible to ``harness list``, and the test it ships passes, run for
real in a subprocess; bad names, taken names, a missing --dir and an existing folder are
one-line errors that write nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.cli import main
from harness.scaffold import new_suite

NAME = "scaffold-check"  # registered nowhere, so the generated package cannot clash on install


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


@pytest.mark.slow
def test_new_suite_writes_a_package_that_installs_lists_and_passes_its_own_test(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["new", "suite", NAME, "--dir", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    package = tmp_path / f"harness-suite-{NAME}"
    assert captured.out.strip() == str(package)
    assert f"pip install -e {package}" in captured.err
    assert sorted(p.name for p in tmp_path.iterdir()) == [package.name], "no staging folder is left behind"
    assert sorted(str(p.relative_to(package)) for p in package.rglob("*") if p.is_file()) == [
        "README.md", "harness_suite_scaffold_check/__init__.py", "pyproject.toml", "tests/test_scaffold_check.py"]
    pyproject = (package / "pyproject.toml").read_text()  # (tomllib is not in Python 3.10)
    assert f'name = "harness-suite-{NAME}"' in pyproject
    assert f'[project.entry-points."harness.suites"]\n{NAME} = "harness_suite_scaffold_check:SUITE"\n' in pyproject
    readme = (package / "README.md").read_text()
    for step in ("pip install -e .", f"harness run {NAME} --size reduced", "pytest"):
        assert step in readme

    # install it as pip would for a user, but offline and into a folder of its own
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--no-index", "--target", str(site), str(package)], check=True, capture_output=True, timeout=300)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
           "NO_COLOR": "1", "COLUMNS": "200"}
    env.pop("HARNESS_SUITE_PATH", None)
    listed = subprocess.run([sys.executable, "-m", "harness.cli", "list", "suites"], capture_output=True, text=True,
                            env=env, cwd=tmp_path, timeout=120)
    assert listed.returncode == 0, listed.stderr
    (row,) = [line for line in _lines(listed.stdout) if line.startswith(NAME + " ")]
    assert row.split(None, 1)[1] == f"LayerNorm vs none, MLP, on scikit-learn digits (8x8) [harness-suite-{NAME}]"

    tested = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], capture_output=True,
                            text=True, env=env, cwd=package, timeout=600)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert _lines(tested.stdout)[-1].startswith("2 passed"), tested.stdout


def test_the_generated_suite_runs_from_its_folder_before_it_is_installed(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    package = new_suite(NAME, tmp_path)
    # a subprocess: --suite-path changes the registry and sys.path of the process that uses it
    env = {k: v for k, v in os.environ.items() if k != "HARNESS_SUITE_PATH"}
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "show", "--suite-path", str(package), NAME, "--size",
                           "reduced"], capture_output=True, text=True, env={**env, "NO_COLOR": "1"}, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == f"{NAME} 0.1.0: LayerNorm vs none, MLP, on scikit-learn digits (8x8)"
    assert "variants:   mlp-none, mlp-layer" in lines and "seeds:      0, 1" in lines
    assert "claim:      layer reaches 95% held-out accuracy in fewer steps than none" in lines


@pytest.mark.parametrize("name", ["Digits", "my_suite", "my suite", "-x", "x-", "a--b", "", "ünï"])
def test_a_name_that_is_not_lowercase_with_hyphens_is_refused(name: str, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["new", "suite", "--dir", str(tmp_path), "--", name]) == 2  # "--": "-x" is a name here
    captured = capsys.readouterr()
    assert _lines(captured.err) == [f"Error: suite name {name!r} is not lowercase words joined by hyphens",
                                    "Hint: use letters a-z, digits and single hyphens, e.g. 'my-norms'"]
    assert captured.out == "" and list(tmp_path.iterdir()) == []


def test_an_existing_folder_is_never_overwritten(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / f"harness-suite-{NAME}"
    target.mkdir()
    (target / "mine.txt").write_text("keep me")
    assert main(["new", "suite", NAME, "--dir", str(tmp_path)]) == 2
    assert _lines(capsys.readouterr().err) == [
        f"Error: {target} already exists",
        "Hint: pick another NAME or --dir, or move the folder away: harness new never overwrites"]
    assert [p.name for p in target.iterdir()] == ["mine.txt"] and (target / "mine.txt").read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == [target.name]


def test_a_name_already_registered_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["new", "suite", "quickstart", "--dir", str(tmp_path)]) == 2
    assert _lines(capsys.readouterr().err) == [
        "Error: a suite named 'quickstart' is already registered (by norm-harness)",
        "Hint: pick another NAME; 'harness list suites' shows the names in use"]
    assert list(tmp_path.iterdir()) == []


def test_a_missing_dir_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope"
    assert main(["new", "suite", NAME, "--dir", str(missing)]) == 2
    assert _lines(capsys.readouterr().err) == [
        f"Error: --dir '{missing}' is not an existing folder",
        "Hint: create it first, or pass the folder to write harness-suite-NAME into"]
    assert not missing.exists()


def test_new_needs_a_kind_and_a_name(capsys: pytest.CaptureFixture[str]) -> None:
    for args, missing in ((["new"], "KIND"), (["new", "suite"], "NAME")):
        with pytest.raises(SystemExit) as info:
            main(args)
        assert info.value.code == 2
        assert _lines(capsys.readouterr().err) == [f"Error: the following arguments are required: {missing}",
                                                   f"Hint: run 'harness {' '.join(args)} --help' for usage"]
