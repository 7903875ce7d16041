"""The one module that owns every plugin registry.

A plugin kind (suites, models, denoisers, norms, datasets, shifts, attacks, ood-scores, metrics,
executors) has one :class:`Registry`. Entries are found through the entry-point group
``harness.<kind>`` (hyphens become underscores); the project registers its own built-ins there too (see pyproject.toml),
so the plugin path is exercised by every run. An entry is a ``"module:attr"`` reference that
is imported on first use, which keeps ``harness --help`` and ``harness list`` free of torch.

Rules the registries enforce:

* names are lowercase words joined by hyphens (``pgd-linf``, ``gaussian-noise``);
* a duplicate name is an error naming both origins, never a silent override;
* an unknown name fails with "did you mean" and the list of available names;
* a plugin that fails to import is an error naming it, never silently skipped.

Suites that are not packaged yet come from folders: :func:`add_suite_path` (``--suite-path DIR``
on the command line, or ``$HARNESS_SUITE_PATH``) registers the ``SUITE`` of every module in a
folder, with the file as its origin.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from harness.errors import ConfigError, PluginError, unknown_name

if TYPE_CHECKING:
    from harness.metricspec import Metric
    from harness.tasks import Task

T = TypeVar("T")

_NAME = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
# metric names are keys of results.json and of claims (steps_to_target): identifiers, not hyphenated
_IDENTIFIER = re.compile(r"^[a-z][a-z0-9]*(?:_[a-z0-9]+)*$")


@dataclass(frozen=True)
class Entry:
    """One registered name: where it points and who registered it."""

    name: str
    target: str  # "module:attr"
    origin: str  # distribution name, "python" for register() calls, or a file for add_suite_path


def _import(target: str) -> Any:
    module_name, _, attr = target.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split(".") if attr else []:
        obj = getattr(obj, part)
    return obj


class Registry(Generic[T]):
    """Names to lazily imported plugin objects of one kind."""

    def __init__(self, kind: str, description: str, names: re.Pattern[str] | None = None) -> None:
        self.kind = kind
        self.description = description
        self.pattern = names or _NAME  # what a name of this kind may look like
        self.group = "harness." + kind.replace("-", "_")  # entry-point groups allow no hyphens
        self._entries: dict[str, Entry] = {}
        self._loaded: dict[str, T] = {}
        self._discovered = False

    # -- registration -------------------------------------------------------------------
    def _add(self, entry: Entry) -> None:
        if not self.pattern.match(entry.name):
            raise PluginError(
                f"{self.kind} name {entry.name!r} from {entry.origin} is not lowercase-with-"
                f"{'underscores' if self.pattern is _IDENTIFIER else 'hyphens'}",
                hint=f"rename the entry point, e.g. {'my_metric' if self.pattern is _IDENTIFIER else 'my-attack'!r}",
            )
        old = self._entries.get(entry.name)
        if old is not None and old.target != entry.target:
            raise PluginError(
                f"{self.kind} {entry.name!r} is registered twice: by {old.origin} "
                f"({old.target}) and by {entry.origin} ({entry.target})",
                hint="uninstall one of the two packages or rename one entry",
            )
        self._entries[entry.name] = entry

    def register(self, name: str, obj: T | str) -> None:
        """Register ``obj`` (an object or a ``"module:attr"`` string) under ``name`` at run time."""
        self._discover()
        if isinstance(obj, str):
            self._add(Entry(name, obj, "python"))
        else:
            self._add(Entry(name, f"<object {obj!r}>", "python"))
            self._loaded[name] = obj

    def unregister(self, name: str) -> None:
        """Remove a name (used by tests that register temporary plugins)."""
        self._entries.pop(name, None)
        self._loaded.pop(name, None)

    def _discover(self) -> None:
        if self._discovered:
            return
        self._discovered = True
        for ep in metadata.entry_points(group=self.group):
            origin = ep.dist.name if ep.dist is not None else "unknown distribution"
            self._add(Entry(ep.name, ep.value, origin))
        # suite folders named in $HARNESS_SUITE_PATH: how a spawned worker finds the suites (and the
        # plugins their modules register in code) that its parent loaded with add_suite_path
        _load_env_suite_paths()

    # -- lookup -------------------------------------------------------------------------
    def names(self) -> list[str]:
        self._discover()
        return sorted(self._entries)

    def entry(self, name: str) -> Entry:
        self._discover()
        try:
            return self._entries[name]
        except KeyError:
            raise unknown_name(self.kind[:-1], name, self.names()) from None

    def get(self, name: str) -> T:
        """The plugin object for ``name``, importing it on first use."""
        if name in self._loaded:
            return self._loaded[name]
        entry = self.entry(name)
        try:
            obj = _import(entry.target)
        except Exception as exc:  # any import-time failure of a plugin is reported, not hidden
            raise PluginError(
                f"{self.kind} plugin {name!r} ({entry.target}, from {entry.origin}) failed to import: "
                f"{type(exc).__name__}: {exc}",
                hint=f"fix or uninstall {entry.origin}; run with --debug for the traceback",
            ) from exc
        self._loaded[name] = obj
        return obj

    def __contains__(self, name: object) -> bool:
        self._discover()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def summary(self, name: str) -> str:
        """The plugin's own description, else the first sentence of its docstring as plain text
        (:func:`first_sentence`; imports the plugin)."""
        obj = self.get(name)
        description = getattr(obj, "description", None)
        if isinstance(description, str):  # a Suite instance describes itself
            return description
        return first_sentence(getattr(obj, "__doc__", None) or "")


def first_sentence(doc: str) -> str:
    """The first sentence of a docstring's first paragraph, its lines joined and its Sphinx markup
    read as plain text (``x`` and :role:`x` as x; :role:`text <target>` as text). A sentence ends
    at a period, question or exclamation mark followed by a space, or at the paragraph's end; the
    periods of "e.g.", "i.e.", "et al.", "vs.", "cf." and of an initial ("J. Smith") do not end one."""
    para = " ".join(doc.strip().split("\n\n")[0].split())
    para = re.sub(r":[\w:.-]+:`~?([^`<]*?)\s*(?:<[^`>]*>)?`", r"\1", para)  # :data:`X`, :func:`~a.b`, :ref:`t <x>`
    para = re.sub(r"``([^`]*)``", lambda m: re.sub(r"\.\s+", ".", m.group(1)), para)  # a wrapped dotted name
    match = re.search(r"(?<!\be\.g)(?<!\bi\.e)(?<!\bal)(?<!\bvs)(?<!\bcf)(?<!\b[A-Z])[.!?](?=\s)", para)
    return para[:match.end()] if match else para


suites: Registry[Any] = Registry("suites", "experiment suites (harness run NAME)")
models: Registry[Callable[..., Any]] = Registry("models", "architectures with a normalization slot")
norms: Registry[Callable[..., Any]] = Registry("norms", "normalization layers that fill the slot")
denoisers: Registry[Callable[..., Any]] = Registry(
    "denoisers", "diffusion denoisers with a normalization slot (suites with task 'denoise')")
datasets: Registry[Callable[..., Any]] = Registry("datasets", "image sets: in-distribution and OOD")
shifts: Registry[Callable[..., Any]] = Registry("shifts", "corruptions (x, severity, generator) -> x'")
text_shifts: Registry[Callable[..., Any]] = Registry(
    "text-shifts", "text corruptions (text, severity, numpy generator) -> text'")
text_models: Registry[Callable[..., Any]] = Registry(
    "text-models", "text models over byte tokens with a normalization slot (classifiers and language models)")
text_attacks: Registry[Callable[..., Any]] = Registry(
    "text-attacks", "attacks on text models: in the embeddings, or character flips (frozen dataclasses)")
attacks: Registry[Callable[..., Any]] = Registry("attacks", "adversarial attacks (frozen dataclasses)")
ood_scores: Registry[Callable[..., Any]] = Registry("ood-scores", "OOD scores from logits (higher = more ID)")
metrics: Registry[Metric] = Registry("metrics", "metrics: how each is computed, which way is better, its range and "
                                    "how it is shown (harness.metricspec.Metric)", names=_IDENTIFIER)
executors: Registry[Callable[..., Any]] = Registry("executors", "how cells are scheduled")
tasks: Registry[Task] = Registry("tasks", "task kinds: what a suite's variants are and how they are trained, "
                                 "evaluated and reported (harness.tasks.Task)")

REGISTRIES: dict[str, Registry[Any]] = {
    r.kind: r for r in (suites, models, denoisers, norms, datasets, shifts, text_shifts, text_models, text_attacks,
                        attacks, ood_scores, metrics, executors, tasks)
}


def registry(kind: str) -> Registry[Any]:
    """The registry of one plugin kind, by name (``"attacks"``, ``"ood-scores"`` ...)."""
    try:
        return REGISTRIES[kind]
    except KeyError:
        raise unknown_name("plugin kind", kind, sorted(REGISTRIES)) from None


# --- suites from folders (--suite-path) ----------------------------------------------------

SUITE_PATH_ENV = "HARNESS_SUITE_PATH"
_MODULE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_suite_paths: dict[Path, list[str]] = {}  # folders loaded in this process -> the suite names they gave
_env_loaded = False


def add_suite_path(path: str | os.PathLike[str]) -> list[str]:
    """Register the suites of a folder that is not an installed package; returns their names.

    Every ``*.py`` file and every package (a subfolder with ``__init__.py``) directly in ``path``,
    except names starting with ``_`` or ``.``, is imported as a top-level module of its own name
    (the folder is appended to ``sys.path``), in sorted order; each that defines a module-level
    ``SUITE`` (a :class:`harness.specs.Suite`) is registered under ``SUITE.name``, with the file as
    its origin. Other modules (helpers) are imported and otherwise left alone. The module name is
    stable, so anything defined in the file pickles by reference, like an installed module's.

    A folder that does not exist is a :class:`~harness.errors.ConfigError`; a file that fails to
    import, a module name that another module already has, a ``SUITE`` that is not a Suite or
    is badly named, and a suite name that is already registered (by a package or another file)
    are a :class:`~harness.errors.PluginError` naming the file. Nothing of the folder is
    registered unless all of it is. Loading a folder again is a no-op.

    The folder is also added to ``$HARNESS_SUITE_PATH``, so worker processes started from here
    (the ``process`` executor spawns them) load the same modules at their first registry lookup:
    a plugin that a suite file registers in code (``norms.register(...)``) exists there too.
    """
    return _add_suite_path(path, source="")


def _add_suite_path(path: str | os.PathLike[str], source: str) -> list[str]:
    where = f" (from ${SUITE_PATH_ENV})" if source == "env" else ""
    folder = Path(path).expanduser()
    if not folder.exists():
        raise ConfigError(f"suite path {str(path)!r}{where} does not exist",
                          hint=f"remove it from ${SUITE_PATH_ENV}, or create it" if where else
                          "pass a folder of suite modules (*.py files or packages that define SUITE)")
    if not folder.is_dir():
        raise ConfigError(f"suite path {str(path)!r}{where} is not a folder",
                          hint=f"pass the folder that holds it: --suite-path {folder.parent}")
    folder = folder.resolve()
    if folder in _suite_paths:
        return list(_suite_paths[folder])
    suites._discover()  # installed suites first, so a clash names both origins
    if folder in _suite_paths:  # the discovery just loaded it from $HARNESS_SUITE_PATH
        return list(_suite_paths[folder])
    found: list[tuple[Entry, Any]] = []
    for file in _suite_files(folder):
        suite = _import_suite_file(file, folder)
        if suite is None:
            continue
        name, target = suite.name, f"{_module_name(file)}:SUITE"
        if not isinstance(name, str) or not _NAME.match(name):
            raise PluginError(f"suite file {file} names its suite {name!r}, which is not lowercase-with-hyphens",
                              hint="set the Suite's name to lowercase words joined by hyphens, e.g. 'my-norms'")
        old = suites._entries.get(name) or next((e for e, _ in found if e.name == name), None)
        if old is not None and old.target != target:
            raise PluginError(f"suites {name!r} is registered twice: by {old.origin} ({old.target}) and by {file} "
                              f"({target})", hint="rename one of the two suites (the name of its Suite), or uninstall "
                              "the package that registers the other")
        found.append((Entry(name, target, str(file)), suite))
    for entry, suite in found:
        suites._add(entry)
        suites._loaded[entry.name] = suite
    _suite_paths[folder] = [entry.name for entry, _ in found]
    listed = [p for p in os.environ.get(SUITE_PATH_ENV, "").split(os.pathsep) if p]
    if str(folder) not in listed:
        os.environ[SUITE_PATH_ENV] = os.pathsep.join([*listed, str(folder)])
    return list(_suite_paths[folder])


def _suite_files(folder: Path) -> list[Path]:
    """The modules of a suite folder: ``*.py`` files and packages' ``__init__.py``, sorted by name."""
    out = []
    for child in sorted(folder.iterdir()):
        if child.name.startswith(("_", ".")):
            continue
        if child.is_file() and child.suffix == ".py":
            out.append(child)
        elif child.is_dir() and (child / "__init__.py").is_file():
            out.append(child / "__init__.py")
    return out


def _module_name(file: Path) -> str:
    return file.parent.name if file.name == "__init__.py" else file.stem


def _import_suite_file(file: Path, folder: Path) -> Any:
    """Import one module of a suite folder under its own name; its ``SUITE``, or None."""
    import importlib.util

    name = _module_name(file)
    if not _MODULE_NAME.match(name):
        fixed = re.sub(r"\W", "_", name)
        fixed = fixed if fixed[:1].isalpha() or fixed[:1] == "_" else "suite_" + fixed
        raise PluginError(f"suite file {file} cannot be imported: {name!r} is not a Python module name",
                          hint=f"rename it to letters, digits and underscores, e.g. {fixed!r}")
    rename = f"rename {file.parent.name if file.name == '__init__.py' else file.name} to a name no other module has"
    module = sys.modules.get(name)
    if module is None:
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):  # a broken module of that name elsewhere: still taken
            spec = None
        taken = spec.origin if spec is not None else None
        if spec is not None and (taken is None or Path(taken).resolve() != file):
            raise PluginError(f"suite file {file} cannot be imported as module {name!r}: that name is already "
                              f"taken by {taken or 'a namespace package'}",
                              hint=rename)
        if str(folder) not in sys.path:
            sys.path.append(str(folder))  # appended: a suite file never shadows an installed module
        importlib.invalidate_caches()  # the folder's files may be newer than the import system's listing
        try:
            module = importlib.import_module(name)
        except Exception as exc:  # any import-time failure of a suite file is reported, not hidden
            raise PluginError(f"suite file {file} failed to import: {type(exc).__name__}: {exc}",
                              hint="fix the file or move it out of the suite path; run with --debug for the "
                                   "traceback") from exc
    loaded = getattr(module, "__file__", None)
    if loaded is None or Path(loaded).resolve() != file:
        raise PluginError(f"suite file {file} cannot be imported as module {name!r}: that name is already taken "
                          f"by {loaded or 'a module without a file'}",
                          hint=rename)
    suite = getattr(module, "SUITE", None)
    # harness.specs imports this module, so this one reads Suite from the loaded module instead of
    # importing it: an instance of Suite exists only once harness.specs has been imported
    specs = sys.modules.get("harness.specs")
    if suite is not None and (specs is None or not isinstance(suite, specs.Suite)):
        raise PluginError(f"suite file {file} defines SUITE as a {type(suite).__name__}, not a harness.specs.Suite",
                          hint="set SUITE = harness.specs.Suite(...), or rename the variable in a helper module")
    return suite


def _load_env_suite_paths() -> None:
    """Load the folders in ``$HARNESS_SUITE_PATH`` once per process (see :func:`add_suite_path`)."""
    global _env_loaded
    if _env_loaded:
        return
    _env_loaded = True  # first, so the registrations of the loaded modules do not come back here
    for folder in os.environ.get(SUITE_PATH_ENV, "").split(os.pathsep):
        if folder:
            _add_suite_path(folder, source="env")
