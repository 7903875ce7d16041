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


def test_every_relative_link_of_the_docs_resolves_and_every_page_is_reachable() -> None:
    """The README is short and points at docs/ for the rest: every page there is linked from it, and
    every relative link of the README and the pages names a file that exists (and, for an anchor within
    a page of the docs, a heading of that page)."""
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    readme = pages[0].read_text()
    for page in pages[1:]:
        assert f"docs/{page.name}" in readme, f"{page.name} is not linked from the README"

    def anchors(path: Path) -> set[str]:  # GitHub's heading ids: lower case, punctuation dropped, spaces to -
        return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-")
                for h in re.findall(r"^#+ (.*)$", path.read_text(), re.M)}

    for page in pages:
        for target, anchor in re.findall(r"\]\((?!https?:)([^)#\s]*)(?:#([^)\s]*))?\)", page.read_text()):
            path = (page.parent / target).resolve() if target else page
            assert path.exists(), f"{page.name}: link to {target} that does not exist"
            if anchor and path.suffix == ".md" and path.parent == ROOT / "docs":
                assert anchor in anchors(path), f"{page.name}: no heading #{anchor} in {path.name}"
