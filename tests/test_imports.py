"""No import cycles among the project's modules (harness/, reports/, suites/: the packages harness,
harness.reports and harness.suites, as pyproject.toml's package-dir maps them).

Every module is parsed with :mod:`ast`, never imported, and each import of a project module counts,
wherever it stands: at the top, inside a function or a method, under ``try``. The one exception is an
import under ``if TYPE_CHECKING:`` (or ``typing.TYPE_CHECKING``), which never runs and only feeds the
type checker; its ``else:`` branch counts. Imports by string (``importlib.import_module``, the
registries' ``"module:attr"`` targets) are not read.

An import resolves to the module it executes: ``import harness.stats`` and ``from harness import
stats`` to ``harness.stats``; ``from harness.stats import estimate`` to ``harness.stats``; ``from .
import x`` and ``from .x import y`` relative to the importing module's package; a name that is no
submodule (``from harness import __version__``) to the package's ``__init__``. A module importing
itself is no cycle. A cycle is a strongly connected component of two or more modules, shown as the
shortest cycle through each import inside it, as ``a -> b -> a``.
"""

from __future__ import annotations

import ast
from collections import deque
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = Path(__file__).resolve().parents[1]
# package name -> its folder: harness/ is harness, and the folders pyproject.toml maps into it
PACKAGES = {"harness": "harness",
            **tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]["package-dir"]}


# --- the import graph -----------------------------------------------------------------------------


def project_modules(root: Path, packages: Sequence[str] | Mapping[str, str]) -> dict[str, Path]:
    """Every module of ``packages`` (folder names under ``root``, or package name -> folder; subpackages
    included): dotted name -> file; a package's name maps to its ``__init__.py``."""
    folders = dict(packages) if isinstance(packages, Mapping) else {p: p for p in packages}
    out = {}
    for package, folder in folders.items():
        for file in sorted((root / folder).rglob("*.py")):
            parts = (*package.split("."), *file.relative_to(root / folder).with_suffix("").parts)
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = file
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


class _Imports(ast.NodeVisitor):
    """The dotted names a module imports, with the names each ``from`` import takes, at any depth
    except under ``if TYPE_CHECKING:``."""

    def __init__(self, module: str, is_package: bool) -> None:
        self.package = module if is_package else module.rpartition(".")[0]
        self.found: list[tuple[str, tuple[str, ...]]] = []  # (module named, names taken from it)

    def visit_If(self, node: ast.If) -> None:
        if _is_type_checking(node.test):
            for child in node.orelse:  # the body only feeds the type checker
                self.visit(child)
        else:
            self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        self.found.extend((alias.name, ()) for alias in node.names)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        base = node.module or ""
        if node.level:
            parts = self.package.split(".")
            parent = parts[: len(parts) - (node.level - 1)] if node.level > 1 else parts
            base = ".".join([*parent, base] if base else parent)
        self.found.append((base, tuple(alias.name for alias in node.names)))


def _resolve(name: str, known: Collection[str]) -> str | None:
    """The longest project module that ``name`` is or lies inside, else None."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in known:
            return candidate
    return None


def import_graph(root: Path, packages: Sequence[str] | Mapping[str, str]) -> dict[str, set[str]]:
    """Module -> the project modules it imports (see the module docstring for what counts)."""
    modules = project_modules(root, packages)
    graph: dict[str, set[str]] = {}
    for module, file in modules.items():
        visitor = _Imports(module, file.name == "__init__.py")
        visitor.visit(ast.parse(file.read_text(encoding="utf-8"), filename=str(file)))
        targets = set()
        for base, names in visitor.found:
            if not names:
                targets.add(_resolve(base, modules))
            for name in names:  # a submodule taken by name, else an attribute of the module
                targets.add(f"{base}.{name}" if f"{base}.{name}" in modules else _resolve(base, modules))
        graph[module] = {t for t in targets if t is not None and t != module}
    return graph


# --- cycles ---------------------------------------------------------------------------------------


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of ``graph`` (Tarjan, iterative), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in graph:
                    continue
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                out.append(sorted(component))
    return out


def _shortest_path(graph: dict[str, set[str]], start: str, goal: str, inside: set[str]) -> list[str]:
    """The shortest path start -> ... -> goal through ``inside`` (breadth first, ties by name)."""
    came_from: dict[str, str | None] = {start: None}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        if node == goal:
            path = [node]
            while (previous := came_from[path[-1]]) is not None:
                path.append(previous)
            return path[::-1]
        for child in sorted(graph[node] & inside):
            if child not in came_from:
                came_from[child] = node
                queue.append(child)
    raise AssertionError(f"no path {start} -> {goal} inside a strongly connected component")


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every import cycle: for each import a -> b inside a strongly connected component of two or
    more modules, the shortest cycle through it, as [a, b, ..., a], rotated to start at its smallest
    module; without repeats, sorted. Empty when the graph is acyclic (self-loops aside)."""
    cycles = set()
    for component in strongly_connected(graph):
        if len(component) < 2:
            continue
        inside = set(component)
        for a in component:
            for b in sorted(graph[a] & inside - {a}):
                loop = [a, *_shortest_path(graph, b, a, inside)[:-1]]
                first = loop.index(min(loop))
                loop = loop[first:] + loop[:first]
                cycles.add((*loop, loop[0]))
    return sorted(list(c) for c in cycles)


def show(cycles: list[list[str]]) -> str:
    return "\n".join(" -> ".join(c) for c in cycles)


# --- the tests ------------------------------------------------------------------------------------


def test_the_project_has_no_import_cycle() -> None:
    graph = import_graph(ROOT, PACKAGES)
    assert {"harness", "harness.runner", "harness.data", "harness.reports.build", "harness.suites.quickstart",
            "harness.suites"} <= set(graph)
    assert "harness.errors" in graph["harness.registry"], "the imports were read"
    cycles = find_cycles(graph)
    assert not cycles, (f"{len(cycles)} import cycle(s) among the project's modules (imports inside "
                        f"functions count):\n{show(cycles)}")


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def test_a_cycle_through_an_import_inside_a_function_is_found(tmp_path: Path) -> None:
    """A tiny package: a imports b at the top, b imports a inside a function (relatively); c imports
    a only under TYPE_CHECKING, d imports c under typing.TYPE_CHECKING's else branch and itself."""
    _write(tmp_path, {
        "pkg/__init__.py": '"""A package."""\n',
        "pkg/a.py": "from pkg import b\n",
        "pkg/b.py": "def f():\n    from . import a\n    return a\n",
        "pkg/c.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.a import b\n",
        "pkg/d.py": "import typing\nif typing.TYPE_CHECKING:\n    pass\nelse:\n    import pkg.c\nimport pkg.d\n",
        "pkg/sub/__init__.py": "from ..d import typing\n",
        "pkg/sub/e.py": "from .. import __doc__\nimport pkg.sub\n",
    })
    graph = import_graph(tmp_path, ["pkg"])
    assert graph == {"pkg": set(), "pkg.a": {"pkg.b"}, "pkg.b": {"pkg.a"}, "pkg.c": set(), "pkg.d": {"pkg.c"},
                     "pkg.sub": {"pkg.d"}, "pkg.sub.e": {"pkg", "pkg.sub"}}
    assert find_cycles(graph) == [["pkg.a", "pkg.b", "pkg.a"]]
    assert show(find_cycles(graph)) == "pkg.a -> pkg.b -> pkg.a"

    _write(tmp_path, {"pkg/b.py": "def f():\n    from pkg import c\n    return c\n"})  # the cycle broken
    graph = import_graph(tmp_path, ["pkg"])
    assert graph["pkg.b"] == {"pkg.c"}
    assert find_cycles(graph) == []


def test_every_import_of_a_longer_cycle_is_shown() -> None:
    """x -> y -> z -> x and z -> y: two cycles in one component, each shown once, from its smallest
    module; a separate two-module cycle; self-loops and edges out of the graph ignored."""
    graph = {"x": {"y", "x"}, "y": {"z"}, "z": {"x", "y", "outside"}, "p": {"q"}, "q": {"p"}, "r": {"x"}}
    assert find_cycles(graph) == [["p", "q", "p"], ["x", "y", "z", "x"], ["y", "z", "y"]]
    assert find_cycles({"x": {"x"}, "y": {"x"}}) == []
