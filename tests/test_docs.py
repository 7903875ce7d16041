"""Docs that cannot drift: the CLI reference is generated from --help, the README's quick
start is what CI runs, and every command is documented."""

from __future__ import annotations

import re
from pathlib import Path

from harness.cli import COMMANDS, cli_reference

ROOT = Path(__file__).resolve().parents[1]


def _norm(text: str) -> str:
    return text.replace("optional arguments:", "options:")  # argparse's heading before Python 3.10


def test_cli_reference_is_current() -> None:
    assert _norm((ROOT / "docs" / "cli.md").read_text()) == _norm(cli_reference()), \
        "docs/cli.md is stale: run python docs/make_cli_md.py"


def test_every_command_is_in_the_readme_and_the_reference() -> None:
    readme = (ROOT / "README.md").read_text()
    reference = (ROOT / "docs" / "cli.md").read_text()
    for name in COMMANDS:
        assert f"harness {name}" in readme and f"## harness {name}" in reference


def test_ci_runs_the_readme_test_command_exactly() -> None:
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"## Quick start.*?```bash\n(.*?)```", readme, re.S)
    assert block is not None
    run_cmd, test_cmd = block.group(1).strip().splitlines()
    assert "harness run quickstart" in run_cmd and "tox" in test_cmd
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert test_cmd in ci


def test_the_plugin_guides_suite_example_builds() -> None:
    # the worked example is code a plugin author copies: it must construct, claims included
    from harness.specs import Claim, Suite

    guide = (ROOT / "docs" / "plugins.md").read_text()
    code = guide.split("`my_norm_suite/__init__.py`:", 1)[1].split("```python", 1)[1].split("```", 1)[0]
    namespace: dict[str, object] = {}
    exec(compile(code, "docs/plugins.md", "exec"), namespace)
    suite = namespace["SUITE"]
    assert isinstance(suite, Suite) and suite.claims
    assert all(isinstance(c, Claim) for c in suite.claims)
