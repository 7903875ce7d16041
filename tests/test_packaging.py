"""The wheel installs one import name, harness: the top-level folders reports/ and suites/ are mapped
into it as harness.reports and harness.suites (pyproject.toml's [tool.setuptools]), so a user's own
``reports`` or ``suites`` package is never shadowed. setuptools cannot discover mapped packages, so
pyproject.toml lists them; these tests keep the list equal to the folders on disk."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = Path(__file__).resolve().parents[1]
SETUPTOOLS = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]


def _packages_on_disk() -> set[str]:
    folders = {"harness": "harness", **SETUPTOOLS["package-dir"]}
    found = set()
    for package, folder in folders.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            parts = init.parent.relative_to(ROOT / folder).parts
            found.add(".".join((package, *parts)))
    return found


def test_every_package_folder_is_listed_and_every_listed_package_exists() -> None:
    listed = set(SETUPTOOLS["packages"])
    assert len(listed) == len(SETUPTOOLS["packages"]), "a package is listed twice"
    on_disk = _packages_on_disk()
    assert {"harness", "harness.reports", "harness.suites", "harness.suites.quickstart",
            "harness.tasks.denoise"} <= on_disk
    assert listed == on_disk, (f"not listed in pyproject.toml: {sorted(on_disk - listed)}; "
                               f"listed but not on disk: {sorted(listed - on_disk)}")


def test_the_wheel_holds_one_top_level_name_harness_with_reports_and_suites_inside(tmp_path: Path) -> None:
    """Build the wheel a user installs (setuptools' PEP 517 backend, in a subprocess, from a copy of the
    sources so the checkout gets no build/ folder) and read its file list."""
    source = tmp_path / "src"
    for name in ("harness", "reports", "suites"):
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    out = tmp_path / "dist"
    subprocess.run([sys.executable, "-c", f"import setuptools.build_meta as b; b.build_wheel({str(out)!r})"],
                   cwd=source, check=True, capture_output=True, timeout=300)
    (wheel,) = out.glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"harness"}
    assert "harness/reports/build.py" in names and "harness/suites/quickstart/__init__.py" in names
    assert "harness/reports/schema/results-v4.schema.json" in names and "harness/py.typed" in names
    shipped = {n.rpartition("/")[0] for n in names if n.endswith("/__init__.py")}
    assert shipped == {p.replace(".", "/") for p in SETUPTOOLS["packages"]}
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    targets = [line.split("=", 1)[1].strip() for line in zipfile.ZipFile(wheel).read(entry_points).decode().splitlines()
               if "=" in line]
    outside = [t for t in targets if not t.startswith("harness.")]
    assert targets and not outside, outside


def test_the_installed_package_maps_the_folders_into_harness() -> None:
    # installed (editable in a checkout, a wheel under tox): harness.reports and harness.suites import
    # from folders named reports/ and suites/ (the checkout's, or the wheel's harness/reports/ ...)
    import harness.reports
    import harness.suites
    import harness.suites.quickstart

    assert Path(harness.reports.__file__).parent.name == "reports"
    assert Path(harness.suites.__file__).parent.name == "suites"
    assert harness.suites.quickstart.SUITE.name == "quickstart"
    assert importlib.util.find_spec("harness.reports.build") is not None
