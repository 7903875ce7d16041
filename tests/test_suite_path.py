"""Tests for suites loaded from folders (harness.registry.add_suite_path, ``--suite-path DIR`` and
``$HARNESS_SUITE_PATH``): what a folder registers and under which origin, every way a folder can
be wrong (each a one-line error naming the file), and a real run of a suite from a folder with
the default process executor, whose spawned workers must find a norm the suite file registers
in code."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import harness.registry as reg
from harness.cli import main
from harness.errors import ConfigError, PluginError
from harness.specs import Suite

ROOT = Path(__file__).resolve().parents[1]

TINY = """\
from harness.specs import EvalSpec, Suite, TrainSpec, Variant

SUITE = Suite(name={name!r}, version="0.1.0", description={description!r}, dataset="digits",
              variants=(Variant("mlp-none", "mlp", "none"), Variant("mlp-layer", "mlp", "layer")), seeds=(0,),
              train=TrainSpec(epochs=1), evaluation=EvalSpec(shifts=()), max_train=300)
"""


def _suite_file(folder: Path, stem: str, name: str, description: str = "a suite from a file") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{stem}.py"
    path.write_text(TINY.format(name=name, description=description))
    return path


@pytest.fixture
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """Undo everything add_suite_path does to this process: registry entries, the modules it
    imported from the test's folder, sys.path, the loaded-folder memo and $HARNESS_SUITE_PATH
    (which later subprocesses would inherit)."""
    reg.suites.names()  # discover the installed suites first: they are part of what is restored
    entries, loaded = dict(reg.suites._entries), dict(reg.suites._loaded)
    paths, memo = list(sys.path), dict(reg._suite_paths)
    monkeypatch.delenv(reg.SUITE_PATH_ENV, raising=False)
    yield
    reg.suites._entries, reg.suites._loaded = entries, loaded
    sys.path[:] = paths
    # only the folder's modules: anything else imported meanwhile (harness.runner ...) must stay one module
    for name, module in list(sys.modules.items()):
        if str(getattr(module, "__file__", None) or "").startswith(str(tmp_path.resolve()) + os.sep):
            del sys.modules[name]
    reg._suite_paths.clear()
    reg._suite_paths.update(memo)


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


# --- what a folder registers -------------------------------------------------------------------


def test_a_folder_registers_the_suite_of_each_module_and_package_under_its_name(tmp_path: Path, isolated: None) -> None:
    one = _suite_file(tmp_path, "sp_alpha", "sp-alpha")
    package = tmp_path / "sp_beta"
    package.mkdir()
    (package / "__init__.py").write_text(TINY.format(name="sp-beta-suite", description="from a package"))
    (tmp_path / "sp_helper.py").write_text("VALUE = 1\n")  # no SUITE: imported, not registered
    (tmp_path / "_sp_private.py").write_text("raise RuntimeError('never imported')\n")
    (tmp_path / "notes.txt").write_text("not a module\n")
    (tmp_path / "data").mkdir()  # a folder without __init__.py is not a package

    assert reg.add_suite_path(tmp_path) == ["sp-alpha", "sp-beta-suite"]
    alpha = reg.suites.get("sp-alpha")
    assert isinstance(alpha, Suite) and alpha is sys.modules["sp_alpha"].SUITE
    assert reg.suites.entry("sp-alpha") == reg.Entry("sp-alpha", "sp_alpha:SUITE", str(one.resolve()))
    assert reg.suites.entry("sp-beta-suite").origin == str((package / "__init__.py").resolve())
    assert reg.suites.get("sp-beta-suite").description == "from a package"
    assert "sp_helper" in sys.modules and "_sp_private" not in sys.modules
    assert "quickstart" in reg.suites  # the installed suites are still there
    # workers started from here inherit the folder
    assert os.environ[reg.SUITE_PATH_ENV] == str(tmp_path.resolve())
    # a second call is a no-op, not a duplicate
    assert reg.add_suite_path(tmp_path) == ["sp-alpha", "sp-beta-suite"]
    assert os.environ[reg.SUITE_PATH_ENV] == str(tmp_path.resolve())


def test_a_missing_folder_is_a_config_error(tmp_path: Path, isolated: None) -> None:
    with pytest.raises(ConfigError) as info:
        reg.add_suite_path(tmp_path / "nope")
    assert info.value.message == f"suite path '{tmp_path / 'nope'}' does not exist"
    assert info.value.hint == "pass a folder of suite modules (*.py files or packages that define SUITE)"
    assert not isinstance(info.value, PluginError)


def test_a_file_instead_of_a_folder_is_a_config_error(tmp_path: Path, isolated: None) -> None:
    path = _suite_file(tmp_path, "sp_file", "sp-file")
    with pytest.raises(ConfigError) as info:
        reg.add_suite_path(path)
    assert info.value.message == f"suite path '{path}' is not a folder"
    assert info.value.hint == f"pass the folder that holds it: --suite-path {tmp_path}"
    assert "sp-file" not in reg.suites


def test_a_file_that_fails_to_import_names_the_file_and_nothing_of_the_folder_is_registered(
        tmp_path: Path, isolated: None) -> None:
    _suite_file(tmp_path, "sp_a_good", "sp-good")
    broken = tmp_path / "sp_b_broken.py"
    broken.write_text("import harness_no_such_module_xyz\n")
    with pytest.raises(PluginError) as info:
        reg.add_suite_path(tmp_path)
    assert info.value.message == (f"suite file {broken.resolve()} failed to import: ModuleNotFoundError: "
                                  "No module named 'harness_no_such_module_xyz'")
    assert info.value.hint == ("fix the file or move it out of the suite path; run with --debug for the "
                               "traceback")
    assert isinstance(info.value.__cause__, ModuleNotFoundError)
    assert "sp-good" not in reg.suites, "a folder is registered whole or not at all"
    assert "sp_b_broken" not in sys.modules


def test_a_suite_named_like_an_installed_one_names_both_origins(tmp_path: Path, isolated: None) -> None:
    path = _suite_file(tmp_path, "sp_clash", "quickstart")
    with pytest.raises(PluginError) as info:
        reg.add_suite_path(tmp_path)
    assert info.value.message == ("suites 'quickstart' is registered twice: by norm-harness "
                                  "(harness.suites.quickstart:SUITE) "
                                  f"and by {path.resolve()} (sp_clash:SUITE)")
    assert info.value.hint == ("rename one of the two suites (the name of its Suite), or uninstall the package that "
                               "registers the other")
    assert reg.suites.get("quickstart").description.startswith("BatchNorm and LayerNorm")  # the installed one stays


def test_two_files_with_one_suite_name_name_both_files(tmp_path: Path, isolated: None) -> None:
    first = _suite_file(tmp_path / "a", "sp_first", "sp-twin")
    second = _suite_file(tmp_path / "b", "sp_second", "sp-twin")
    reg.add_suite_path(tmp_path / "a")
    with pytest.raises(PluginError) as info:
        reg.add_suite_path(tmp_path / "b")
    assert info.value.message == (f"suites 'sp-twin' is registered twice: by {first.resolve()} (sp_first:SUITE) "
                                  f"and by {second.resolve()} (sp_second:SUITE)")
    assert reg.suites.entry("sp-twin").origin == str(first.resolve())


def test_a_file_named_like_an_installed_module_is_refused_rather_than_shadowing_it(
        tmp_path: Path, isolated: None) -> None:
    import json

    path = _suite_file(tmp_path, "json", "sp-json")
    with pytest.raises(PluginError) as info:
        reg.add_suite_path(tmp_path)
    assert info.value.message == (f"suite file {path.resolve()} cannot be imported as module 'json': that name is "
                                  f"already taken by {json.__file__}")
    assert info.value.hint == "rename json.py to a name no other module has"
    assert sys.modules["json"] is json


def test_a_module_name_that_another_folder_would_give_is_refused(tmp_path: Path, isolated: None) -> None:
    # 'harness' is norm-harness's one import name (its built-in suites are harness.suites): a folder
    # module must not replace it
    path = _suite_file(tmp_path, "harness", "sp-harness")
    expected = f"suite file {path.resolve()} cannot be imported as module 'harness': that name is already taken by "
    with pytest.raises(PluginError, match=re.escape(expected)) as info:
        reg.add_suite_path(tmp_path)
    assert info.value.hint == "rename harness.py to a name no other module has"
    import harness.suites.quickstart  # the real package is still the one imported

    assert harness.suites.quickstart.SUITE.name == "quickstart"


def test_a_file_named_suites_or_reports_no_longer_clashes_with_norm_harness(
        tmp_path: Path, isolated: None, monkeypatch: pytest.MonkeyPatch) -> None:
    # the installed package claims no generic top-level name, so a user's own suites.py is theirs to
    # name so. (python -m pytest in a checkout puts the checkout on sys.path, where the folder
    # suites/ would take the name: a user's process has no such entry, nor has this test.)
    checkout = Path(__file__).resolve().parents[1]
    monkeypatch.setattr(sys, "path", [p for p in sys.path if Path(p or ".").resolve() != checkout])
    _suite_file(tmp_path, "suites", "sp-suites")
    reg.add_suite_path(tmp_path)
    assert reg.suites.get("sp-suites").name == "sp-suites"


def test_a_file_name_that_is_no_module_name_is_refused_with_a_fix(tmp_path: Path, isolated: None) -> None:
    path = _suite_file(tmp_path, "my-suite", "sp-hyphen")
    with pytest.raises(PluginError) as info:
        reg.add_suite_path(tmp_path)
    assert info.value.message == (f"suite file {path.resolve()} cannot be imported: 'my-suite' is not a Python "
                                  "module name")
    assert info.value.hint == "rename it to letters, digits and underscores, e.g. 'my_suite'"


def test_suite_that_is_not_a_suite_and_a_badly_named_suite_are_refused(tmp_path: Path, isolated: None) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "sp_dict.py").write_text("SUITE = {'name': 'x'}\n")
    with pytest.raises(PluginError) as info:
        reg.add_suite_path(tmp_path / "a")
    assert info.value.message == (f"suite file {(tmp_path / 'a' / 'sp_dict.py').resolve()} defines SUITE as a dict, "
                                  "not a harness.specs.Suite")
    assert info.value.hint == "set SUITE = harness.specs.Suite(...), or rename the variable in a helper module"
    path = _suite_file(tmp_path / "b", "sp_badname", "My Suite")
    with pytest.raises(PluginError) as info:
        reg.add_suite_path(tmp_path / "b")
    assert info.value.message == (f"suite file {path.resolve()} names its suite 'My Suite', which is not "
                                  "lowercase-with-hyphens")
    assert info.value.hint == "set the Suite's name to lowercase words joined by hyphens, e.g. 'my-norms'"


def test_what_a_suite_file_defines_pickles_by_reference_into_spawned_workers(tmp_path: Path, isolated: None) -> None:
    # the process executor pickles tasks and the worker initializer; a suite file's module name is
    # stable and its folder on sys.path, so a spawned process can import it to unpickle
    import multiprocessing
    import pickle

    _suite_file(tmp_path, "sp_pickled", "sp-pickled")
    with (tmp_path / "sp_pickled.py").open("a") as f:
        f.write("\n\ndef describe(x):\n    return f'{SUITE.name} got {x}'\n")
    reg.add_suite_path(tmp_path)
    describe = sys.modules["sp_pickled"].describe
    assert b"sp_pickled" in pickle.dumps(describe)  # by reference: module and name, not code
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        assert pool.map(describe, [1, 2]) == ["sp-pickled got 1", "sp-pickled got 2"]


# --- the command line --------------------------------------------------------------------------


def test_list_and_show_take_suite_path_and_name_the_file(tmp_path: Path, isolated: None,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    path = _suite_file(tmp_path / "one", "sp_listed", "sp-listed", "listed from a folder")
    _suite_file(tmp_path / "two", "sp_second_listed", "sp-second")
    assert main(["list", "suites", "--suite-path", str(tmp_path / "one"), "--suite-path", str(tmp_path / "two")]) == 0
    rows = {line.split()[0]: line for line in _lines(capsys.readouterr().out)}
    assert rows["sp-listed"].split(None, 1)[1] == f"listed from a folder [{path.resolve()}]"
    assert "sp-second" in rows
    assert "[" not in rows["quickstart"], "built-ins name no origin"
    assert main(["show", "sp-listed", "--suite-path", str(tmp_path / "one")]) == 0
    assert capsys.readouterr().out.startswith("sp-listed 0.1.0: listed from a folder\n")


def test_a_missing_suite_path_on_the_command_line_is_one_error_line(tmp_path: Path, isolated: None,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "quickstart", "--suite-path", str(tmp_path / "nope"), "--run-dir", str(tmp_path / "r")]) == 2
    captured = capsys.readouterr()
    assert _lines(captured.err) == [f"Error: suite path '{tmp_path / 'nope'}' does not exist",
                                    "Hint: pass a folder of suite modules (*.py files or packages that define SUITE)"]
    assert captured.out == "" and not (tmp_path / "r").exists()


def _cli(*args: str, env: dict[str, str] | None = None, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """``python -m harness.cli ARGS`` with only the suite folders ``env`` names."""
    full = {k: v for k, v in os.environ.items() if k != reg.SUITE_PATH_ENV}
    full.update({"NO_COLOR": "1", "COLUMNS": "200", **(env or {})})
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], capture_output=True, text=True, env=full,
                          cwd=cwd, timeout=300)


def test_a_broken_suite_file_is_one_error_line_and_a_traceback_only_with_debug(tmp_path: Path) -> None:
    broken = tmp_path / "sp_broken.py"
    broken.write_text("SUITE = 1 / 0\n")
    proc = _cli("show", "--suite-path", str(tmp_path), "anything")
    assert proc.returncode == 2
    assert _lines(proc.stderr) == [f"Error: suite file {broken.resolve()} failed to import: ZeroDivisionError: "
                                   "division by zero",
                                   "Hint: fix the file or move it out of the suite path; run with --debug for the "
                                   "traceback"]
    assert proc.stdout == ""
    debug = _cli("--debug", "show", "--suite-path", str(tmp_path), "anything")
    assert debug.returncode != 0 and "Traceback" in debug.stderr and "ZeroDivisionError" in debug.stderr


def test_the_environment_variable_adds_folders_too(tmp_path: Path) -> None:
    path = _suite_file(tmp_path / "one", "sp_env", "sp-env", "from the environment")
    listed = _cli("list", "suites", env={reg.SUITE_PATH_ENV: f"{tmp_path / 'one'}{os.pathsep}"})
    assert listed.returncode == 0, listed.stderr
    (row,) = [line for line in _lines(listed.stdout) if line.startswith("sp-env ")]
    assert row.split(None, 1)[1] == f"from the environment [{path.resolve()}]"
    missing = _cli("list", env={reg.SUITE_PATH_ENV: str(tmp_path / "nope")})
    assert missing.returncode == 2
    assert _lines(missing.stderr) == [
        f"Error: suite path '{tmp_path / 'nope'}' (from $HARNESS_SUITE_PATH) does not exist",
        "Hint: remove it from $HARNESS_SUITE_PATH, or create it"]


# --- a real run, with worker processes ---------------------------------------------------------

NORM_IN_A_FILE = '''\
"""A suite whose folder also defines a norm, registered in code: the spawned workers of the
process executor must load this file again to find it."""

from harness.registry import norms
from harness.specs import EvalSpec, Suite, TrainSpec, Variant


def centred_layer(num_features, spatial):
    """LayerNorm, defined in a suite file."""
    from harness.models import layer_norm

    return layer_norm(num_features, spatial)


norms.register("sp-centred", centred_layer)

SUITE = Suite(name="sp-run", version="0.1.0", description="a suite from a folder with its own norm", dataset="digits",
              variants=(Variant("mlp-none", "mlp", "none"), Variant("mlp-sp-centred", "mlp", "sp-centred")),
              seeds=(0,), train=TrainSpec(epochs=1), evaluation=EvalSpec(shifts=(), membership=False, cost=False),
              max_train=300, max_test=200)
'''


@pytest.mark.slow
def test_run_with_suite_path_and_the_default_executor_trains_in_worker_processes(tmp_path: Path) -> None:
    from harness.store import Store

    (tmp_path / "suites").mkdir()
    (tmp_path / "suites" / "sp_run.py").write_text(NORM_IN_A_FILE)
    run_dir = tmp_path / "run"
    # two workers, so the spawn path is taken whatever the machine's core count
    proc = _cli("run", "--suite-path", str(tmp_path / "suites"), "sp-run", "--run-dir", str(run_dir), "--workers", "2",
                "--no-progress", "--quiet", "--resamples", "200", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    with Store(run_dir, create=False) as store:
        cells = list(store.cells())
        provenance = store.get_meta("provenance")
    assert provenance["executor"] == "process" and provenance["workers"] == 2
    assert all(c.status == "done" for c in cells), [(c.variant, c.error) for c in cells if c.status != "done"]
    assert sorted((c.kind, c.variant) for c in cells) == sorted(
        [(k, v) for v in ("mlp-none", "mlp-sp-centred") for k in ("train", "eval")])
    clean = {c.variant: float(c.arrays["correct"].mean()) for c in cells
             if c.kind == "eval" and c.condition == {"kind": "clean", "name": "", "params": {}}}
    assert len(clean) == 2 and min(clean.values()) > 0.3, clean  # trained: chance is 0.1
    assert (run_dir / "report.md").exists()
