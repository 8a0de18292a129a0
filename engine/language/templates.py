"""User templates (Jinja2, sandboxed): parsing, and the event fields a template reads.

The only module that compiles *user* template text; it does so from strings only, in the
sandbox of :mod:`engine.language.sandbox` (``StrictUndefined``, a budget per render). Rendering at run
time builds on this.

Fast paths: ``{{ data.x }}`` and ``{{ data.x | default(LITERAL) }}`` read a present, plain value
straight from the event (:class:`FieldRead`), values are turned into JSON by exact type first,
and validation reads plain templates without Jinja's parser. Each must answer exactly as the
plain Jinja way does; ``fast=False`` (:func:`compile_string`, :func:`compile_value`,
:func:`compile_condition`, :func:`syntax_error`, :func:`referenced_fields`) selects that
reference implementation, which the tests compare the fast paths with.
"""
from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable, Iterator

import jinja2
from jinja2 import TemplateSyntaxError, nodes
from jinja2.exceptions import SecurityError

from ..core.errors import Location
from .model import TemplateString, TemplateValue
from .sandbox import (
    GLOBAL_NAMES,
    MAX_OUTPUT,
    budget,
    environment,
    shape,
)

FieldPath = tuple  # tuple[str | int, ...]


class RenderError(Exception):
    """A template failed at run time (missing field, sandbox refusal...), with its location."""

    def __init__(self, message: str, loc: Location):
        super().__init__(f"{loc}: {message}")
        self.loc = loc
        self.detail = message


_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_DOTTED = rf"{_NAME}(?:\.{_NAME})*"  # data.player.id
_PATH = re.compile(rf"^\s*{_DOTTED}\s*$")
_ABSENT = object()


@dataclass(frozen=True, slots=True)
class FieldRead:
    """The field a shortcut template reads: ``{{ root.rest... }}``, or with ``| default(...)``."""

    root: str
    rest: tuple[str, ...]
    defaulted: bool = False


def _walk(ctx: Mapping, root: str, rest: tuple[str, ...]) -> Any:
    """The value at a dotted path through plain dicts, or _ABSENT when a step is missing or not a dict.
    The one walker of every shortcut (hot: it takes the parts, not a FieldRead)."""
    node = ctx.get(root, _ABSENT)
    for part in rest:
        if type(node) is not dict or part not in node:
            return _ABSENT
        node = node[part]
    return node


def _lookup(field: FieldRead, slow: Callable[[Mapping], Any]) -> Callable[[Mapping], Any]:
    """``{{ data.player.id }}`` on plain JSON: walk the dicts directly; anything else goes to Jinja.

    Jinja would give the same value (event keys win over attributes in this sandbox); missing
    fields and non-dict steps take the slow path, so its errors stay exactly the same.
    """
    root, rest = field.root, field.rest

    def fast(ctx: Mapping) -> Any:
        node = _walk(ctx, root, rest)
        if node is _ABSENT:
            return slow(ctx)
        try:
            if isinstance(node, (dict, list)):
                return _native(node)
            if isinstance(node, str):
                return _capped(node)
        except (RecursionError, SecurityError):
            # too deep to copy, too long or not JSON: the general path refuses it, as a
            # RenderError at the template's location, exactly as with fast=False
            return slow(ctx)
        return node if node is None or isinstance(node, (bool, int, float)) else slow(ctx)
    return fast


_LITERAL = r"""-?\d+(?:\.\d+)?|'[^'\\]*'|"[^"\\]*"|[Tt]rue|[Ff]alse|[Nn]one"""
_DEFAULTED = re.compile(rf"^\s*(?P<path>{_DOTTED})\s*\|\s*default"
                        rf"\s*\(\s*(?:{_LITERAL})\s*\)\s*$")
# a string this long costs a render far less than its budget: the fast path cannot hide a refusal
_SHORT = 10_000


def _present_or(field: FieldRead, slow: Callable[[Mapping], Any]) -> Callable[[Mapping], Any]:
    """``{{ data.x | default(1) }}``: Jinja's ``default`` returns a present value unchanged.

    So a present scalar is the answer without Jinja; anything missing, a list, a mapping or a
    long string goes to Jinja, which applies the default and charges the render budget.
    """
    root, rest = field.root, field.rest

    def fast(ctx: Mapping) -> Any:
        node = _walk(ctx, root, rest)
        if node is None or type(node) in (bool, int, float) or (type(node) is str and len(node) <= _SHORT):
            return node
        return slow(ctx)
    return fast


_SINGLE = re.compile(r"^\s*\{\{(?P<expr>(?:(?!\}\}|\{\{).)*)\}\}\s*$", re.S)


Render = Callable[[Mapping], Any]


def compile_string(template: TemplateString, fast: bool = True) -> Render:
    """Compile once; the result renders a context. ``"{{ expr }}"`` alone keeps the native type.

    A template that does not compile (`validate` reports it first) fails each render, at its location.
    ``fast=False``: always the plain Jinja way (no field-read shortcut, the general conversion
    to JSON values), the reference the shortcuts answer exactly as.
    """
    return _compiled(template, fast)[0]


def _compiled(template: TemplateString, fast: bool) -> tuple[Render, FieldRead | None]:
    """The render of *template*, and the field it reads by a shortcut (None: no shortcut)."""
    try:
        return _compile_string(template, fast)
    except TemplateSyntaxError as exc:
        error = RenderError(f"{type(exc).__name__}: {exc.message}", template.loc)

        def refuse(ctx: Mapping) -> Any:
            raise error
        return refuse, None


def _compile_string(template: TemplateString, fast: bool = True) -> tuple[Render, FieldRead | None]:
    text, loc = template.text, template.loc
    single = _SINGLE.match(text)
    if single:
        expr = _expression(single.group("expr"))
        if not fast:
            return _guarded(lambda ctx: _native_reference(expr(**ctx)), loc), None
        slow = _guarded(lambda ctx: _native(expr(**ctx)), loc)
        field = _field_read(single.group("expr"))
        if field is None:
            return slow, None
        return (_present_or(field, slow) if field.defaulted else _lookup(field, slow)), field
    if "{{" not in text and "{%" not in text:  # literal text, in both ways (Jinja never sees it)
        return (lambda ctx: text), None
    compiled = _template(text)
    return _guarded(lambda ctx: _streamed(compiled, ctx), loc), None


def _field_read(expr: str) -> FieldRead | None:
    """The field ``expr`` reads if it is ``a.b.c`` or ``a.b.c | default(LITERAL)``, else None."""
    path = _PATH.match(expr)
    defaulted = None if path else _DEFAULTED.match(expr)
    if path is None and defaulted is None:
        return None
    root, *rest = (path.group(0).strip() if path else defaulted.group("path")).split(".")
    return FieldRead(root, tuple(rest), defaulted is not None)


# Compiled once per text: meshes repeat templates (a generated mesh of 10,000 routes took 18 s
# to start, nearly all in Jinja compiling the same few texts). What Jinja compiles renders any
# context and holds none, so one object serves every consumer.
@lru_cache(maxsize=8192)
def _expression(text: str) -> Callable[..., Any]:
    return environment().compile_expression(text, undefined_to_none=False)


@lru_cache(maxsize=8192)
def _template(text: str) -> jinja2.Template:
    return environment().from_string(text)


def condition_text(text: str) -> str:
    """A `when` as template text: a bare expression (``data.score > 0``) becomes ``{{ ... }}``."""
    return text if "{{" in text or "{%" in text else "{{ " + text + " }}"


def compile_condition(template: TemplateString, fast: bool = True) -> Callable[[Mapping], bool]:
    """A `when`: a bare expression (``data.score > 0``) or a template; false-ish text is false.
    ``fast``: as for :func:`compile_string`."""
    render = compile_string(TemplateString(condition_text(template.text), template.loc), fast)

    def holds(ctx: Mapping) -> bool:
        value = render(ctx)
        if isinstance(value, str):
            return value.strip().lower() not in ("", "false", "0", "none", "null", "no")
        return bool(value)
    return holds


def compile_value(value: TemplateValue, fast: bool = True) -> Render:
    """Compile every template inside a JSON value; rendering returns plain dicts and lists.
    ``fast=False``: every template the plain Jinja way, as :func:`compile_string` says."""
    return _compile_part(value.value, iter(value.strings), fast)[0]


def _compile_part(node: Any, locs: Iterator[TemplateString], fast: bool) -> tuple[Render, FieldRead | None]:
    """The render of one node of a JSON value, and the field it reads by a shortcut."""
    if isinstance(node, str):
        return _compiled(next(locs), fast)
    if isinstance(node, Mapping):
        return _mapping([(key, *_compile_part(item, locs, fast)) for key, item in node.items()]), None
    if isinstance(node, tuple):
        items = [_compile_part(item, locs, fast)[0] for item in node]
        return (lambda ctx: [item(ctx) for item in items]), None
    return (lambda ctx: node), None


_PLAIN_TYPES = frozenset({bool, int, float, type(None)})


def _mapping(parts: list[tuple[Any, Render, FieldRead | None]]) -> Render:
    """Render ``{key: template, ...}``; the keys whose template reads a field by a shortcut are read here.

    A value the shortcut would return as it is (a short string, a number, a boolean, null; a
    list or mapping for ``{{ path }}``) is taken here, without the calls; anything else, a
    missing field included, goes to the part itself, which answers as it always does.
    """
    if all(field is None for _, _, field in parts):
        return lambda ctx: {key: part(ctx) for key, part, _ in parts}
    entries = tuple((key, field.root, field.rest, field.defaulted, part) if field is not None
                    else (key, None, (), False, part) for key, part, field in parts)

    def render_mapping(ctx: Mapping) -> dict:
        out = {}
        for key, root, rest, defaulted, part in entries:
            if root is not None:
                node = _walk(ctx, root, rest)
                kind = type(node)
                longest = _SHORT if defaulted else MAX_OUTPUT
                if kind in _PLAIN_TYPES or (kind is str and len(node) <= longest):
                    out[key] = node
                    continue
                if not defaulted and (kind is list or kind is dict):
                    try:
                        out[key] = _native(node)
                        continue
                    except (RecursionError, SecurityError):  # too deep, too long or not JSON:
                        pass  # the part refuses it as a RenderError at its location
            out[key] = part(ctx)
        return out

    return render_mapping


def _guarded(render: Callable[[Mapping], Any], loc: Location) -> Callable[[Mapping], Any]:
    def run(ctx: Mapping) -> Any:
        try:
            with budget():
                return render(ctx)
        except RenderError:
            raise
        except Exception as exc:  # jinja2 raises many types (UndefinedError, SecurityError, TypeError...)
            raise RenderError(_explain(exc), loc) from exc

    return run


def _explain(exc: Exception) -> str:
    # Python's wording depends on where the limit was hit; the cause does not
    if isinstance(exc, RecursionError):
        return "RecursionError: a value or a call is nested too deeply to render"
    return f"{type(exc).__name__}: {exc}"


def _streamed(compiled: jinja2.Template, ctx: Mapping) -> str:
    """Render chunk by chunk, stopping as soon as the output passes the cap."""
    chunks, size = [], 0
    for chunk in compiled.generate(ctx):
        size += len(chunk)
        if size > MAX_OUTPUT:
            raise SecurityError(f"template output is longer than {MAX_OUTPUT} characters")
        chunks.append(chunk)
    return "".join(chunks)


def _capped(text: str) -> str:
    if len(text) > MAX_OUTPUT:
        raise SecurityError(f"template output is longer than {MAX_OUTPUT} characters")
    return text


def _native(value: Any) -> Any:
    """Turn what an expression returns into plain JSON-like data: exact JSON types first (the
    fast path), then as :func:`_native_reference` does."""
    cls = value.__class__
    if cls is str:
        return _capped(value)
    if cls in _PLAIN_TYPES:
        return value
    if cls is list:
        return [_native(v) for v in value]
    if cls is dict:
        return {k: _native(v) for k, v in value.items()}
    return _general(value, _native)


def _native_reference(value: Any) -> Any:
    """The general conversion to JSON values, by isinstance only: the reference of :func:`_native`."""
    return _general(value, _native_reference)


def _general(value: Any, inner: Callable[[Any], Any]) -> Any:
    """One step of the general conversion; *inner* converts the items of a container."""
    if isinstance(value, jinja2.Undefined):
        str(value)  # StrictUndefined raises here, naming the missing field
    if isinstance(value, Mapping):
        return {k: inner(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [inner(v) for v in value]
    if isinstance(value, str):
        return _capped(value)
    if value is None or isinstance(value, (bool, int, float)):
        return value
    raise SecurityError(f"a template may only produce JSON values, not {type(value).__name__}")


@lru_cache(maxsize=65536)
def _parsed(text: str) -> nodes.Template | TemplateSyntaxError:
    """Parse once for every check that reads the same template (meshes repeat templates a lot)."""
    try:
        tree = environment().parse(text)
    except TemplateSyntaxError as exc:
        return exc
    loads = next(tree.find_all((nodes.Extends, nodes.Include, nodes.Import, nodes.FromImport)), None)
    if loads is not None:  # the sandbox has no loader: say so at validate time, not at run time
        return TemplateSyntaxError(
            "a template cannot load other templates (extends, include, import)", loads.lineno
        )
    unknown = _unknown_name(tree)
    if unknown is None and any(name in text for name in GLOBAL_NAMES):
        unknown = _global_attribute(tree)
    return unknown if unknown is not None else tree


def _unknown_name(tree: nodes.Template) -> TemplateSyntaxError | None:
    """A filter or test the sandbox does not have: Jinja finds out only when it compiles, so at
    run time; validate says it here, with the closest name there is."""
    env = environment()
    for node in tree.find_all((nodes.Filter, nodes.Test)):
        known = env.filters if isinstance(node, nodes.Filter) else env.tests
        if node.name not in known:
            what = "filter" if isinstance(node, nodes.Filter) else "test"
            close = difflib.get_close_matches(
                node.name, [n for n in known if not n.startswith("meshctl_")], n=1
            )
            hint = f"; did you mean {close[0]!r}?" if close else ""
            if node.name == "random":
                hint = ": runs are deterministic, so templates have no randomness"
            return TemplateSyntaxError(f"no {what} named {node.name!r}{hint}", node.lineno)
    return None


def _global_attribute(tree: nodes.Template) -> TemplateSyntaxError | None:
    """``dict.clear(data)``, ``range['x']``, ``namespace|attr('y')``: the globals are functions with nothing
    to read in them (the runtime refuses it too); said at validate time, unless the template reuses the
    name."""
    own = {n.name for n in tree.find_all(nodes.Name) if n.ctx != "load"}
    for node in tree.find_all((nodes.Getattr, nodes.Getitem, nodes.Filter)):
        if isinstance(node, nodes.Filter) and node.name != "attr":
            continue
        inner = node.node
        if isinstance(inner, nodes.Name) and inner.name in GLOBAL_NAMES and inner.name not in own:
            return TemplateSyntaxError(
                f"{inner.name!r} is a function that builds a new value: it has no attributes "
                "or items, and templates cannot change their input",
                node.lineno,
            )
    return None


_LONG_CHAIN = 32  # parts of a `{{ a.b.c }}` chain past which it is parsed, for the nesting limit

_PLAIN = re.compile(rf"(?:[^{{}}]|\{{\{{[ \t]*{_DOTTED}[ \t]*\}}\}})*")
_FIELD = re.compile(rf"\{{\{{[ \t]*({_DOTTED})[ \t]*\}}\}}")
_WORDS = frozenset(
    {
        "and",
        "or",
        "not",
        "in",
        "is",
        "if",
        "else",
        "elif",
        "endif",
        "for",
        "endfor",
        "true",
        "false",
        "none",
        "True",
        "False",
        "None",
        "recursive",
        "with",
        "without",
        "import",
        "from",
        "as",
        "set",
        "block",
        "extends",
        "include",
        "macro",
        "call",
        "filter",
        "raw",
        "pass",
        "loop",
        "self",
        "super",
    }
)


def _plain_chains(text: str) -> list[tuple[str, FieldPath]] | None:
    """For text that is only literal text and ``{{ name.attr... }}`` (most templates), the chains
    :func:`_chains` would find, without Jinja's lexer and parser; None for anything else."""
    if _PLAIN.fullmatch(text) is None:
        return None
    chains = []
    for found in _FIELD.finditer(text):
        parts = found.group(1).split(".")
        if not _WORDS.isdisjoint(parts) or parts[0] in GLOBAL_NAMES or len(parts) > _LONG_CHAIN:
            return None  # keywords parse differently, `dict.x` is an error, a long chain may nest too deep
        chains += [(parts[0], tuple(parts[1:end])) for end in range(len(parts), 1, -1)]
    return chains


def syntax_error(text: str, fast: bool = True) -> TemplateSyntaxError | None:
    """The template's syntax error, or None if it parses and compiles as the runtime compiles it
    (a :class:`TemplateTooComplex` when it nests too deeply for Jinja or Python). ``fast=False``:
    always by Jinja's parser, the reference of the reading of plain templates without it."""
    if fast and _plain_chains(text) is not None:
        return None
    tree = _parsed(text)
    if isinstance(tree, TemplateSyntaxError):
        return tree
    if _near_python_limits(tree):
        try:  # Python's own limits on the code Jinja writes show only when it compiles
            _compile_string(TemplateString(text, Location("<template>", 1, 1)))
        except TemplateSyntaxError as exc:
            return exc
    return None


_DEEP = 24  # levels of nodes below which Jinja's code stays far from Python's 200 nested parentheses


def _near_python_limits(tree: nodes.Template) -> bool:
    """Only a deep template, or one with 20 loops (Python compiles 20 nested ones), can fail to compile once
    parsed; compiling the others at validate time would cost ~0.7 ms each for nothing."""
    depth, loops, _ = shape(tree)
    return depth > _DEEP or loops >= 20


SECRETS = "secrets"  # the name templates read secrets by, in the URL and headers of HTTP requests
_SECRET_NAME = re.compile(rf"^{_NAME}$")


@dataclass(frozen=True, slots=True)
class SecretReads:
    """How a template reads ``secrets``: the names it reads as ``secrets.NAME`` (or ``secrets['NAME']``),
    and the line of its first other use (the whole mapping, a computed name), None when there is none."""

    names: tuple[str, ...] = ()
    other: int | None = None

    def __bool__(self) -> bool:
        return bool(self.names) or self.other is not None


_NO_SECRETS = SecretReads()


def secret_reads(text: str) -> SecretReads:
    """What *text* reads of ``secrets`` (a template that does not parse reads nothing: validate
    reports its syntax error).

    >>> secret_reads("Bearer {{ secrets.API_TOKEN }}")
    SecretReads(names=('API_TOKEN',), other=None)
    """
    if SECRETS not in text:
        return _NO_SECRETS
    tree = _parsed(text)
    if isinstance(tree, TemplateSyntaxError):
        return _NO_SECRETS
    names: list[str] = []
    by_name: set[int] = set()
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        inner = node.node
        if not (isinstance(inner, nodes.Name) and inner.name == SECRETS):
            continue
        key = node.attr if isinstance(node, nodes.Getattr) else getattr(node.arg, "value", None)
        if isinstance(key, str) and _SECRET_NAME.match(key):
            names.append(key)
            by_name.add(id(inner))
    other = next(
        (n.lineno for n in tree.find_all(nodes.Name) if n.name == SECRETS and id(n) not in by_name), None
    )
    return SecretReads(tuple(dict.fromkeys(names)), other)


def referenced_fields(text: str, fast: bool = True) -> list[tuple[str, FieldPath]]:
    """Every ``name.attr[...]`` chain the template reads, as (root name, path), longest chains only.
    ``fast=False``: always by Jinja's parser, as :func:`syntax_error`.

    >>> referenced_fields("{{ data.player.id }} scored {{ data['score'] | int }}")
    [('data', ('player', 'id')), ('data', ('score',))]
    """
    chains = _plain_chains(text) if fast else None
    if chains is None:
        tree = _parsed(text)
        if isinstance(tree, TemplateSyntaxError):
            return []
        chains = list(_chains(tree))
    chains = list(dict.fromkeys(chains))
    return [
        c for c in chains if not any(o != c and o[0] == c[0] and o[1][: len(c[1])] == c[1] for o in chains)
    ]


def _chains(node: nodes.Node) -> Iterator[tuple[str, FieldPath]]:
    chain = _chain(node)
    if chain is not None and chain[1]:
        yield chain
    for child in node.iter_child_nodes():
        yield from _chains(child)


def _chain(node: nodes.Node) -> tuple[str, FieldPath] | None:
    path: list = []
    while True:
        if isinstance(node, nodes.Getattr):
            path.append(node.attr)
            node = node.node
        elif isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
            path.append(node.arg.value)
            node = node.node
        elif isinstance(node, nodes.Name):
            return node.name, tuple(reversed(path))
        else:
            return None
