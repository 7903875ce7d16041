"""The suite author's reference, read from the code: every field of the specifications a suite
file writes, and every registered plugin's options with their defaults.

Nothing here is written twice. A field's type is its annotation as written, its default the
dataclass's, and its description what the code already says of it: the clauses of the class
docstring that name it in double backticks (those that begin with it where there are any, else
every one that names it), and the comment on its line or on the comment lines right above it in
the class body. A plugin's summary is the registry's (:meth:`harness.registry.Registry.summary`),
its options the parameters of its constructor or factory after the ones every plugin of its kind
takes (:data:`KINDS`), each described by the clauses of its docstring that begin with it.

:func:`spec_docs` and :func:`plugin_doc` are what ``harness show KIND NAME`` and
``docs/reference.md`` (:func:`reference_markdown`, written by ``docs/make_reference_md.py``) read.
Only the standard library is imported here; a plugin's own module is imported when it is asked for.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import io
import re
import textwrap
import tokenize
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from harness.errors import ConfigError, unknown_name
from harness.registry import REGISTRIES, Registry

if TYPE_CHECKING:
    from collections.abc import Mapping


@dataclass(frozen=True)
class Field:
    """One field of a specification, or one option of a plugin.

    ``type`` is the annotation as written (``""`` where there is none); ``default`` the default's
    ``repr`` (a factory's call as written, e.g. ``TrainSpec()``), or ``"required"``; ``doc`` the
    description the code gives (``""`` where it gives none), with double-backtick markup as single
    backticks."""

    name: str
    type: str
    default: str
    doc: str

    @property
    def required(self) -> bool:
        return self.default == REQUIRED

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.type, "default": self.default, "required": self.required,
                "doc": self.doc}


REQUIRED = "required"  # Field.default of a field or option without a default


@dataclass(frozen=True)
class SpecDoc:
    """One specification dataclass: its qualified name, the first sentence of its docstring and its fields."""

    name: str
    path: str  # "harness.specs.Suite"
    summary: str
    fields: tuple[Field, ...]


@dataclass(frozen=True)
class KindDoc:
    """What every plugin of one kind is called with, and where a suite sets the rest.

    ``contract`` names the parameters the harness passes itself (positionally when ``positional``:
    the first ``len(contract)`` parameters, whatever their names; else by these names); every other
    parameter of the constructor or factory is an option. ``options`` says where a suite file sets
    the options ("" for a kind whose plugins take none)."""

    contract: tuple[str, ...]
    positional: bool
    options: str


# The call each kind's plugins must accept is the kind's contract (docs/plugins.md); the harness
# calls them so (harness.models.build_model, harness.tasks.classify.evaluation, harness.runner, ...).
_VARIANT_OPTIONS = "a variant's `options`: `Variant(name, model, norm, options=((\"option\", value),))`"
_ATTACK_PARAMS = "an attack's `params` (`eps` holds its radii): `AttackSpec(name, eps, params=((\"option\", value),))`"
KINDS: Mapping[str, KindDoc] = MappingProxyType({
    "suites": KindDoc((), True, ""),
    "models": KindDoc(("in_shape", "n_classes", "norm"), True, _VARIANT_OPTIONS),
    "denoisers": KindDoc(("in_shape", "norm"), True, _VARIANT_OPTIONS),
    "text-models": KindDoc(("vocab", "n_out", "norm"), True, _VARIANT_OPTIONS),
    "norms": KindDoc(("num_features", "spatial"), True, ""),
    "datasets": KindDoc((), True, ""),
    "shifts": KindDoc(("x", "severity", "generator"), True, ""),
    "text-shifts": KindDoc(("text", "severity", "rng"), True, ""),
    "attacks": KindDoc(("eps",), False, _ATTACK_PARAMS),
    "text-attacks": KindDoc(("eps",), False, _ATTACK_PARAMS),
    # a score of logits is called with them; a score of features (Mahalanobis) is built with no
    # arguments and fitted, so its options keep their defaults
    "ood-scores": KindDoc(("logits",), False, "no suite field: a suite names the score, which is built with these "
                                               "defaults"),
    "metrics": KindDoc((), True, ""),
    "executors": KindDoc(("workers",), True, ""),
    "tasks": KindDoc((), True, "the suite's `task_options`, an instance of the task's options type"),
})

# the specifications a suite file writes, in the order a suite file meets them
SPEC_NAMES = ("Suite", "Variant", "TrainSpec", "EvalSpec", "AttackSpec", "Claim", "Size", "Reference", "Expected")


@dataclass(frozen=True)
class PluginDoc:
    """One registered plugin: what ``harness show KIND NAME`` prints.

    ``kind`` is the registry's (plural) kind; ``target`` the ``"module:attr"`` it was registered
    as and ``origin`` the distribution (or file) that registered it; ``call`` how the harness calls
    it (``MLP(in_shape, n_classes, norm, **options)``); ``options_type`` the options' dataclass
    where the options are one (a task's), else ""."""

    kind: str
    name: str
    summary: str
    target: str
    origin: str
    call: str
    set_by: str
    options_type: str
    options: tuple[Field, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "summary": self.summary, "target": self.target,
                "origin": self.origin, "call": self.call, "options_set_by": self.set_by,
                "options_type": self.options_type, "options": [o.to_dict() for o in self.options]}

    def lines(self) -> list[str]:
        """The plugin as ``harness show`` prints it: one line each."""
        out = [f"{self.kind[:-1]} {self.name}: {self.summary}",
               f"from:       {self.target} ({self.origin})",
               *([f"called as:  {self.call}"] if self.call else [])]
        if not self.options:
            return [*out, "options:    none"]
        out.append(f"options:    set by {self.set_by}" if self.set_by else "options:")
        if self.options_type:
            out.append(f"            fields of {self.options_type}")
        width = max(len(o.name) for o in self.options)
        for o in self.options:
            typed = f" ({o.type})" if o.type else ""
            out.append(f"  {o.name:<{width}} = {o.default}{typed}")
            if o.doc:
                out.append(f"  {'':<{width}}   {o.doc}")
        return out


# --- descriptions from docstrings and comments ------------------------------------------------

_ROLE = re.compile(r":[\w:.-]+:`(~?)([^`<]*?)\s*(?:<[^`>]*>)?`")  # :class:`X`, :func:`~a.b`, :ref:`t <x>`
_SENTENCE_END = re.compile(r"(?<!\be\.g)(?<!\bi\.e)(?<!\bal)(?<!\bvs)(?<!\bcf)(?<!\b[A-Z])[.!?](?=\s)")


def _clauses(doc: str) -> list[str]:
    """The docstring's sentences, each cut at its semicolons outside parentheses and backticks,
    with lines joined; the markup as in :func:`markdown_text`."""
    out: list[str] = []
    for para in inspect.cleandoc(doc).split("\n\n"):
        text = " ".join(para.split())
        start = 0
        for match in _SENTENCE_END.finditer(text):
            out += _split_semicolons(text[start:match.end()])
            start = match.end()
        out += _split_semicolons(text[start:])
    return [c for c in (c.strip() for c in out) if c]


def _split_semicolons(sentence: str) -> list[str]:
    parts, depth, ticks, start = [], 0, False, 0
    for i, ch in enumerate(sentence):
        if ch == "`":
            ticks = not ticks
        elif ticks:
            continue
        elif ch in "([":
            depth += 1
        elif ch in ")]":
            depth = max(depth - 1, 0)
        elif ch == ";" and depth == 0:
            parts.append(sentence[start:i])
            start = i + 1
    return [*parts, sentence[start:]]


def markdown_text(text: str) -> str:
    """Docstring markup as Markdown: ``x`` and :role:`x` as `x` (:role:`~a.b` as `b`)."""
    text = _ROLE.sub(lambda m: "`" + (m.group(2).rsplit(".", 1)[-1] if m.group(1) else m.group(2)) + "`", text)
    return re.sub(r"``([^`]*)``", r"`\1`", text)


def _described(name: str, clauses: list[str], subject_only: bool = False) -> str:
    """What ``clauses`` say of ``name``: those that begin with it (``name`` is ..., ``a`` / ``name``
    ...), else (unless ``subject_only``) every one that names it; of a list of fields each followed
    by its description in parentheses (``a`` (...), ``name`` (...) and ``b`` (...)), its own item."""
    mark = f"``{name}``"
    subject = re.compile(r"^(?:``\w+``\s*(?:/|,|and|or)\s*)*" + re.escape(mark) + r"(?!\w)")
    named = [c for c in clauses if mark in c]
    # a clause that begins with the name and says something of it ("``restarts`` 1" in a list of
    # defaults does not)
    chosen = [c for c in named if subject.match(c) and len(re.findall(r"[A-Za-z]{2,}", subject.sub("", c))) >= 2] \
        or ([] if subject_only else named)
    return " ".join(_sentence(markdown_text(_item(mark, c))) for c in chosen)


def _item(mark: str, clause: str) -> str:
    """``mark``'s item where ``clause`` is a list of ``field`` (description) items, else the clause."""
    items, depth, start = [], 0, 0
    text = clause.rstrip(".")
    for i, ch in enumerate(text):
        depth += (ch == "(") - (ch == ")")
        for sep in (", ", " and "):
            if depth == 0 and text.startswith(sep, i) and text[i - 1:i] == ")":
                items.append(text[start:i])
                start = i + len(sep)
    items.append(text[start:])
    pattern = re.compile(r"^``\w+`` \(.*\)$")
    if len(items) > 1 and all(pattern.match(item) for item in items):
        return next((item for item in items if item.startswith(mark)), clause)
    return clause


def _sentence(text: str) -> str:
    """``text`` with a capital first letter and a closing period."""
    text = text.strip()
    if not text:
        return text
    return text[:1].upper() + text[1:] + ("" if text.endswith((".", "!", "?")) else ".")


def _summary(doc: str) -> str:
    """The first sentence of a docstring, its markup as in :func:`markdown_text`."""
    para = " ".join(inspect.cleandoc(doc).split("\n\n")[0].split())
    match = _SENTENCE_END.search(para)
    return markdown_text(para[:match.end()] if match else para)


@dataclass(frozen=True)
class _Body:
    """What a class body says of its annotated fields: their comments and their defaults as written."""

    comments: dict[str, tuple[str, ...]]  # the comment lines above a field (joined), then the one on its line
    defaults: dict[str, str]


def _class_body(cls: type) -> _Body:
    """The comment of each annotated field of ``cls``'s own body (the comment lines right above it,
    then the comment on its lines) and each default's source text; empty without the source."""
    try:
        source = textwrap.dedent(inspect.getsource(cls))
        tree = ast.parse(source)
    except (OSError, TypeError, SyntaxError):
        return _Body({}, {})
    node = tree.body[0]
    if not isinstance(node, ast.ClassDef):
        return _Body({}, {})
    notes = {tok.start[0]: tok.string.lstrip("#").strip()
             for tok in tokenize.generate_tokens(io.StringIO(source).readline) if tok.type == tokenize.COMMENT}
    lines = source.splitlines()
    comments: dict[str, tuple[str, ...]] = {}
    defaults: dict[str, str] = {}
    for item in node.body:
        if not (isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name)):
            continue
        above: list[str] = []
        n = item.lineno - 1
        while n >= 1 and lines[n - 1].lstrip().startswith("#"):
            above.insert(0, notes[n])
            n -= 1
        on = [notes[n] for n in range(item.lineno, (item.end_lineno or item.lineno) + 1) if n in notes]
        comments[item.target.id] = tuple(c for c in (" ".join(above), " ".join(on)) if c)
        if item.value is not None:
            defaults[item.target.id] = ast.get_source_segment(source, _factory(item.value)) or ""
    return _Body(comments, defaults)


def _factory(value: ast.expr) -> ast.expr:
    """The expression a default stands for: a ``field(default_factory=lambda: X)``'s X, else itself."""
    if isinstance(value, ast.Call) and getattr(value.func, "id", getattr(value.func, "attr", "")) == "field":
        for kw in value.keywords:
            if kw.arg == "default_factory":
                return kw.value.body if isinstance(kw.value, ast.Lambda) else kw.value
    return value


def _annotation(annotation: Any) -> str:
    if annotation is inspect.Parameter.empty:
        return ""
    return annotation if isinstance(annotation, str) else inspect.formatannotation(annotation)


def dataclass_fields(cls: type, doc: str | None = None, subject_only: bool = False) -> tuple[Field, ...]:
    """Every field of the dataclass ``cls``: name, type as written, default and description
    (from ``doc``, else ``cls``'s docstring, then the docstring of the class that declares the
    field, as :func:`_described` reads them with ``subject_only``; and the field's comments)."""
    clauses = _clauses(doc if doc is not None else cls.__doc__ or "")
    bodies: dict[type, _Body] = {}
    out = []
    for f in dataclasses.fields(cls):
        owner = next((c for c in cls.__mro__ if f.name in c.__dict__.get("__annotations__", {})), cls)
        body = bodies.setdefault(owner, _class_body(owner))
        text = _described(f.name, clauses, subject_only)
        if not text and owner is not cls:
            text = _described(f.name, _clauses(owner.__doc__ or ""), subject_only)
        comments = [_sentence(markdown_text(c)) for c in body.comments.get(f.name, ())]
        description = " ".join(t for t in (text, *comments) if t)
        if f.default is not dataclasses.MISSING:
            default = repr(f.default)
        elif f.default_factory is not dataclasses.MISSING:
            factory = f.default_factory
            default = f"{factory.__name__}()" if isinstance(factory, type) else \
                body.defaults.get(f.name) or repr(factory())
        else:
            default = REQUIRED
        out.append(Field(f.name, _annotation(f.type), default, description))
    return tuple(out)


# --- the specifications -----------------------------------------------------------------------


def spec_docs() -> tuple[SpecDoc, ...]:
    """Every specification a suite file writes (:data:`SPEC_NAMES`), with its fields."""
    from harness import specs

    out = []
    for name in SPEC_NAMES:
        cls = getattr(specs, name)
        out.append(SpecDoc(name, f"{cls.__module__}.{name}", _summary(cls.__doc__ or ""), dataclass_fields(cls)))
    return tuple(out)


# --- the plugins ------------------------------------------------------------------------------


def kind_of(text: str) -> str:
    """The registry kind ``text`` names, plural (``models``) or singular (``model``); an unknown
    kind is an error whose hint lists the kinds."""
    for kind in (text, text + "s"):
        if kind in REGISTRIES:
            return kind
    raise unknown_name("plugin kind", text, sorted(REGISTRIES))


def plugin_doc(kind: str, name: str) -> PluginDoc:
    """The reference of one registered plugin; ``kind`` singular or plural. Imports the plugin."""
    reg: Registry[Any] = REGISTRIES[kind_of(kind)]
    if reg.kind == "suites":
        raise ConfigError(f"suite {name!r} is described by 'harness show {name}'",
                          hint=f"run 'harness show {name}' (its data, variants, battery); suites take no options")
    entry = reg.entry(name)  # an unknown name: "did you mean" and every name of the kind
    obj = reg.get(name)
    rule = KINDS.get(reg.kind, KindDoc((), True, ""))
    options_type = ""
    if reg.kind == "tasks":
        # a task is an object; its options are the fields of its options type (Suite.task_options)
        cls = getattr(obj, "options_type", None)
        options = dataclass_fields(cls) if cls is not None else ()
        options_type = f"{cls.__module__}.{cls.__qualname__}" if cls is not None else ""
        call = f"Suite(..., task={name!r}" + (f", task_options={cls.__name__}(...))" if cls is not None else ")")
    elif reg.kind == "metrics" or not callable(obj):
        options, call = (), ""  # an object the harness reads, not calls
    else:
        options, call = _call_options(obj, rule)
    return PluginDoc(reg.kind, name, reg.summary(name), entry.target, entry.origin, call,
                     rule.options if options else "", options_type, options)


def _call_options(obj: Any, rule: KindDoc) -> tuple[tuple[Field, ...], str]:
    """The options of a plugin's constructor or factory, and the call the harness makes."""
    label = getattr(obj, "__name__", type(obj).__name__)
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):  # a builtin without a signature: nothing to say of its options
        return (), f"{label}({', '.join(rule.contract)})"
    params = [p for p in sig.parameters.values() if p.kind is not p.VAR_POSITIONAL]
    if rule.positional:
        taken, rest = params[:len(rule.contract)], params[len(rule.contract):]
        passed = [p.name for p in taken]
    else:
        rest = [p for p in params if p.name not in rule.contract]
        passed = [p.name for p in params if p.name in rule.contract]
    doc = obj.__doc__ or ""
    if inspect.isclass(obj) and not dataclasses.is_dataclass(obj) and obj.__init__.__doc__:
        doc += "\n\n" + obj.__init__.__doc__  # a constructor may document its own arguments
    # only what the docstring says of an option as its subject: a plugin's docstring is prose about
    # the plugin, whose other mentions of an option ("Defaults: ``steps`` 10") are not its description
    clauses = _clauses(doc)
    documented = {f.name: f.doc for f in dataclass_fields(obj, doc, subject_only=True)} \
        if inspect.isclass(obj) and dataclasses.is_dataclass(obj) else {}
    options = []
    for p in rest:
        if p.kind is p.VAR_KEYWORD:
            options.append(Field(f"**{p.name}", "", "any keyword", ""))
            continue
        default = REQUIRED if p.default is p.empty else repr(p.default)
        options.append(Field(p.name, _annotation(p.annotation), default,
                             documented.get(p.name) or _described(p.name, clauses, subject_only=True)))
    return tuple(options), f"{label}({', '.join([*passed, *(['**options'] if options else [])])})"


def plugin_docs(kind: str, origin: str | None = None) -> tuple[PluginDoc, ...]:
    """Every plugin of ``kind``, by name; only those registered by ``origin`` when given."""
    reg = REGISTRIES[kind_of(kind)]
    return tuple(plugin_doc(reg.kind, n) for n in reg.names() if origin is None or reg.entry(n).origin == origin)


# --- docs/reference.md ------------------------------------------------------------------------

PROJECT = "norm-harness"  # the distribution whose plugins docs/reference.md lists


def _cell(text: str) -> str:
    return text.replace("|", "\\|") if text else ""


def _code(text: str) -> str:
    return f"`{text}`" if text else ""


def _fields_table(fields: tuple[Field, ...], what: str = "field") -> list[str]:
    rows = [f"| {what} | type | default | description |", "|---|---|---|---|"]
    rows += [f"| `{f.name}` | {_cell(_code(f.type))} | {_cell(f.default if f.required else _code(f.default))} | "
             f"{_cell(f.doc)} |" for f in fields]
    return rows


def reference_markdown() -> str:
    """docs/reference.md: every specification's fields, then the project's plugins by kind."""
    parts = [
        "# Suite file reference", "",
        "Generated from the code by `python docs/make_reference_md.py`; `tests/test_reference.py` fails when it "
        "is stale. Every field of the specifications a suite file writes (`harness.specs`), then every plugin "
        f"that {PROJECT} registers, by kind, with its options and their defaults. `harness show KIND NAME` "
        "(`harness show model mlp`, `harness show attack pgd-linf`; `--json` for machines) prints one plugin, "
        "from any package; `harness list KIND` lists a kind. A field's description is what its class docstring "
        "and comments say of it; \"required\" means it has no default.", "",
        "## Specifications", ""]
    for spec in spec_docs():
        parts += [f"### {spec.name}", "", f"`{spec.path}`: {spec.summary}", "", *_fields_table(spec.fields), ""]
    parts += ["## Plugins", "",
              "A plugin is called with its kind's arguments, which the harness passes itself; the rest of its "
              "parameters are its options.", ""]
    for kind, reg in REGISTRIES.items():
        if kind == "suites":
            continue
        docs = plugin_docs(kind, PROJECT)
        if not docs:
            continue
        rule = KINDS.get(kind, KindDoc((), True, ""))
        parts += [f"### {kind}", "", f"{reg.description[:1].upper()}{reg.description[1:]}."]
        if rule.contract:
            parts[-1] += " Called with " + ", ".join(f"`{c}`" for c in rule.contract) + "."
        if rule.options:
            parts[-1] += f" Options are set by {rule.options}."
        parts += ["", "| name | options (defaults) | summary |", "|---|---|---|"]
        parts += [f"| `{d.name}` | {_cell(', '.join(_code(f'{o.name}={o.default}') for o in d.options) or '-')} "
                  f"| {_cell(d.summary)} |" for d in docs]
        parts.append("")
        for d in docs:
            if d.options_type:
                parts += [f"#### Options of task {d.name}: `{d.options_type}`", "",
                          *_fields_table(d.options, "option"), ""]
    return "\n".join(parts)
