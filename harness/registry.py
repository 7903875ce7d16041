"""The one module that owns every plugin registry.

A plugin kind (suites, models, norms, datasets, shifts, attacks, ood-scores, metrics,
executors) has one :class:`Registry`. Entries are found through the entry-point group
``harness.<kind>`` (hyphens become underscores); the project registers its own built-ins there too (see pyproject.toml),
so the plugin path is exercised by every run. An entry is a ``"module:attr"`` reference that
is imported on first use, which keeps ``harness --help`` and ``harness list`` free of torch.

Rules the registries enforce:

* names are lowercase words joined by hyphens (``pgd-linf``, ``gaussian-noise``);
* a duplicate name is an error naming both origins, never a silent override;
* an unknown name fails with "did you mean" and the list of available names;
* a plugin that fails to import is an error naming it, never silently skipped.
"""

from __future__ import annotations

import difflib
import importlib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import metadata
from typing import Any, Generic, TypeVar

from harness.errors import PluginError, UnknownNameError

T = TypeVar("T")

_NAME = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")


@dataclass(frozen=True)
class Entry:
    """One registered name: where it points and who registered it."""

    name: str
    target: str  # "module:attr"
    origin: str  # distribution name, or "python" for register() calls


def _import(target: str) -> Any:
    module_name, _, attr = target.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split(".") if attr else []:
        obj = getattr(obj, part)
    return obj


class Registry(Generic[T]):
    """Names to lazily imported plugin objects of one kind."""

    def __init__(self, kind: str, description: str) -> None:
        self.kind = kind
        self.description = description
        self.group = "harness." + kind.replace("-", "_")  # entry-point groups allow no hyphens
        self._entries: dict[str, Entry] = {}
        self._loaded: dict[str, T] = {}
        self._discovered = False

    # -- registration -------------------------------------------------------------------
    def _add(self, entry: Entry) -> None:
        if not _NAME.match(entry.name):
            raise PluginError(
                f"{self.kind} name {entry.name!r} from {entry.origin} is not lowercase-with-hyphens",
                hint="rename the entry point, e.g. 'my-attack'",
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
        """The plugin's own description, else the first line of its docstring (imports the plugin)."""
        obj = self.get(name)
        description = getattr(obj, "description", None)
        if isinstance(description, str):  # a Suite instance describes itself
            return description
        doc = getattr(obj, "__doc__", None) or ""
        return doc.strip().splitlines()[0] if doc.strip() else ""


def unknown_name(kind: str, name: str, available: list[str]) -> UnknownNameError:
    close = difflib.get_close_matches(name, available, n=3, cutoff=0.5)
    guess = f"did you mean {' or '.join(repr(c) for c in close)}? " if close else ""
    return UnknownNameError(
        f"unknown {kind} {name!r}",
        hint=f"{guess}available: {', '.join(available) if available else '(none registered)'}",
    )


suites: Registry[Any] = Registry("suites", "experiment suites (harness run NAME)")
models: Registry[Callable[..., Any]] = Registry("models", "architectures with a normalization slot")
norms: Registry[Callable[..., Any]] = Registry("norms", "normalization layers that fill the slot")
datasets: Registry[Callable[..., Any]] = Registry("datasets", "image sets: in-distribution and OOD")
shifts: Registry[Callable[..., Any]] = Registry("shifts", "corruptions (x, severity, generator) -> x'")
attacks: Registry[Callable[..., Any]] = Registry("attacks", "adversarial attacks (frozen dataclasses)")
ood_scores: Registry[Callable[..., Any]] = Registry("ood-scores", "OOD scores from logits (higher = more ID)")
metrics: Registry[Callable[..., Any]] = Registry("metrics", "pure metric functions on numpy arrays")
executors: Registry[Callable[..., Any]] = Registry("executors", "how cells are scheduled")

REGISTRIES: dict[str, Registry[Any]] = {
    r.kind: r for r in (suites, models, norms, datasets, shifts, attacks, ood_scores, metrics, executors)
}


def registry(kind: str) -> Registry[Any]:
    """The registry of one plugin kind, by name (``"attacks"``, ``"ood-scores"`` ...)."""
    try:
        return REGISTRIES[kind]
    except KeyError:
        raise unknown_name("plugin kind", kind, sorted(REGISTRIES)) from None
