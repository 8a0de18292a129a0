"""The Jinja2 sandbox user templates run in, and the budget every render gets.

Jinja2's sandbox keeps a template away from Python internals, but bounds nothing:
``{{ 'a' * 10**9 }}`` builds a gigabyte, and two nested loops over an event's list can spin
for hours. Here each render gets a budget, so that a bad template costs one refused
render (a ``SecurityError``), never the worker:

- **steps**: every loop iteration, call, attribute or item lookup and operator spends one, and
  a filter spends one per item it walks; a wall-clock deadline backs the count up;
- **sizes**: ``*``, ``**``, ``+``, ``~``, ``%`` and the filters and string methods that pad,
  repeat or join check the size of what they would build *before* building it;
- **a small surface**: data is read-only (``ImmutableSandboxedEnvironment``), only
  side-effect-free string and container methods are callable, ``str.format`` is refused
  (the ``format`` filter remains), and the globals are ``range`` (capped), ``dict`` and
  ``namespace``. The environment has no loader: ``include``/``import``/``extends`` fail.

Only :mod:`engine.templates` uses it, and only to compile template *text*.
"""
from __future__ import annotations

import contextvars
import operator
import re
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from functools import lru_cache, wraps
from types import MappingProxyType
from typing import Any, Callable

import jinja2
from jinja2 import StrictUndefined, filters, nodes, pass_environment, pass_eval_context
from jinja2.compiler import CodeGenerator
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.visitor import NodeTransformer

_VERSION = re.match(r"(\d+)\.(\d+)\.(\d+)", jinja2.__version__)
if _VERSION is None or tuple(map(int, _VERSION.groups())) < (3, 1, 6):  # the last sandbox escapes were fixed in 3.1.6
    raise ImportError(f"meshctl needs Jinja2 >= 3.1.6 for its sandbox fixes, found {jinja2.__version__}")

MAX_OUTPUT = 1_000_000  # characters of one rendered template, and of any value a template builds
MAX_ITEMS = 100_000  # items of a list or range a template builds
MAX_INT_BITS = 6_400  # size of an integer built by `*` or `**`
MAX_EXPONENT = 100
MAX_JSON_INDENT = 8
MAX_STEPS = 1_000_000  # loop iterations, calls, lookups, operators and filter items of one render
MAX_SECONDS = 0.5  # wall-clock cap of one render, should the steps be slow ones


class Budget:
    """What one render may still spend."""

    __slots__ = ("steps", "deadline", "clock_at")

    def __init__(self) -> None:
        self.steps = MAX_STEPS
        self.deadline = time.monotonic() + MAX_SECONDS
        self.clock_at = MAX_STEPS  # look at the clock again once steps fall below this

    def spend(self, steps: int) -> None:
        self.steps -= steps
        if self.steps < 0:
            raise SecurityError(f"the template ran over its budget of {MAX_STEPS:,} steps")
        if self.steps < self.clock_at:
            self.clock_at = self.steps - 1000
            if time.monotonic() > self.deadline:
                raise SecurityError(f"the template ran longer than {MAX_SECONDS:g}s")


_budget: contextvars.ContextVar[Budget | None] = contextvars.ContextVar("template_budget", default=None)


@contextmanager
def budget() -> Iterator[Budget]:
    """Run one render under a fresh budget; sandboxed code run outside any budget is refused."""
    current = Budget()
    token = _budget.set(current)
    try:
        yield current
    finally:
        _budget.reset(token)


def spend(steps: int = 1) -> None:
    current = _budget.get()
    if current is None:
        raise SecurityError("templates only run inside a render budget")
    current.spend(steps)


def size(value: Any, limit: int = MAX_OUTPUT) -> int:
    """Characters *value* stands for: strings by length, containers by their items (counted just past *limit*).

    >>> size(["ab", {"c": "de"}])
    10
    """
    total, stack = 0, [value]
    while stack and total <= limit:
        item = stack.pop()
        total += 1
        if isinstance(item, (str, bytes)):
            total += len(item)
        elif isinstance(item, Mapping):
            stack += item.keys()
            stack += item.values()
        elif isinstance(item, _CONTAINERS):  # plain items count one each here; the others are walked
            sized = [x for x in item if isinstance(x, _SIZED)]
            total += len(item) - len(sized)
            stack += sized
    return total


_CONTAINERS = (list, tuple, set, frozenset)
_SIZED = (str, bytes, Mapping, *_CONTAINERS)


def _fits(total: int, what: str) -> None:
    if total > MAX_OUTPUT:
        raise SecurityError(f"{what} would build more than {MAX_OUTPUT:,} characters")


# --- operators ----------------------------------------------------------------------------

def _multiply(left: Any, right: Any) -> Any:
    if isinstance(left, int) and isinstance(right, int):
        if left.bit_length() + right.bit_length() > MAX_INT_BITS:
            raise SecurityError(f"the product is larger than {MAX_INT_BITS} bits")
    for seq, times in ((left, right), (right, left)):
        if isinstance(seq, (str, list, tuple)) and isinstance(times, int):
            if len(seq) * times > MAX_ITEMS:
                raise SecurityError(f"repetition builds more than {MAX_ITEMS:,} items")
            _fits(size(seq) * times, "repetition")
    return operator.mul(left, right)


def _power(left: Any, right: Any) -> Any:
    if isinstance(right, (int, float)) and abs(right) > MAX_EXPONENT:
        raise SecurityError(f"exponent {right} is over the limit of {MAX_EXPONENT}")
    if isinstance(left, int) and isinstance(right, int) and left.bit_length() * right > MAX_INT_BITS:
        raise SecurityError(f"the power is larger than {MAX_INT_BITS} bits")
    return operator.pow(left, right)


def _add(left: Any, right: Any) -> Any:
    if isinstance(left, (list, tuple)) and isinstance(right, (list, tuple)) and len(left) + len(right) > MAX_ITEMS:
        raise SecurityError(f"`+` builds more than {MAX_ITEMS:,} items")
    if isinstance(left, (str, list, tuple)) and isinstance(right, (str, list, tuple)):
        _fits(size(left) + size(right), "`+`")
    return operator.add(left, right)


_PRINTF = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")


def _printf_size(fmt: str, values: Any) -> int:
    """Upper bound of ``fmt % values``: the text, the values, and every field width and precision."""
    total = len(fmt) + size(values)
    for found in _PRINTF.finditer(fmt):
        for number in found.groups():
            if number == "*" or (number and len(number) > 7):
                raise SecurityError("a `%` format takes its width from its arguments, or a huge one")
            total += int(number or 0)
    return total


def _modulo(left: Any, right: Any) -> Any:
    if isinstance(left, str):
        _fits(_printf_size(left, right), "`%` formatting")
    return operator.mod(left, right)


_BINOPS: dict[str, Callable[[Any, Any], Any]] = {"*": _multiply, "**": _power, "+": _add, "%": _modulo}


# --- filters ------------------------------------------------------------------------------
# Each replaces a Jinja2 filter that can build a value much larger than its input; it checks
# the size first, then calls the original.

def _batch(value: Iterable, linecount: int, fill_with: Any = None) -> Any:
    if linecount > MAX_ITEMS:
        raise SecurityError(f"batch({linecount}) is over the limit of {MAX_ITEMS:,} items")
    return filters.do_batch(value, linecount, fill_with)


def _center(value: str, width: int = 80) -> str:
    _fits(width, "center()")
    return filters.do_center(value, width)


def _format(value: str, *args: Any, **kwargs: Any) -> str:
    _fits(_printf_size(str(value), kwargs or args), "format()")
    return filters.do_format(value, *args, **kwargs)


def _indent(s: str, width: int | str = 4, first: bool = False, blank: bool = False) -> str:
    pad = width if isinstance(width, int) else len(str(width))
    _fits(len(str(s)) + pad * (str(s).count("\n") + 1), "indent()")
    return filters.do_indent(s, width, first, blank)


@pass_eval_context
def _join(eval_ctx, value: Iterable, d: str = "", attribute: Any = None) -> str:
    items = list(value)
    _fits(sum(size(item) for item in items) + len(d) * len(items), "join()")
    return filters.sync_do_join(eval_ctx, items, d, attribute)


@pass_eval_context
def _replace(eval_ctx, s: str, old: str, new: str, count: int | None = None) -> str:
    _fits(_replaced_size(str(s), str(old), str(new)), "replace()")
    return filters.do_replace(eval_ctx, s, old, new, count)


@pass_eval_context
def _slice(eval_ctx, value: Any, slices: int, fill_with: Any = None) -> Any:
    if slices > MAX_ITEMS:
        raise SecurityError(f"slice({slices}) is over the limit of {MAX_ITEMS:,} items")
    return filters.sync_do_slice(value, slices, fill_with)


@pass_environment
def _sum(environment, iterable: Iterable, attribute: Any = None, start: Any = 0) -> Any:
    if not isinstance(start, (int, float)):
        raise SecurityError("sum() adds numbers only")
    return filters.sync_do_sum(environment, iterable, attribute, start)


@pass_eval_context
def _tojson(eval_ctx, value: Any, indent: int | None = None) -> Any:
    if indent is not None and indent > MAX_JSON_INDENT:
        raise SecurityError(f"tojson indent {indent} is over the limit of {MAX_JSON_INDENT}")
    return filters.do_tojson(eval_ctx, value, indent)


@pass_environment
def _wordwrap(environment, s: str, width: int = 79, break_long_words: bool = True,
              wrapstring: str | None = None, break_on_hyphens: bool = True) -> str:
    text = str(s)
    lines = len(text) // max(width, 1) + text.count("\n") + 1
    _fits(len(text) + lines * len(wrapstring or "\n"), "wordwrap()")
    return filters.do_wordwrap(environment, s, width, break_long_words, wrapstring, break_on_hyphens)


def _replaced_size(s: str, old: str, new: str) -> int:
    hits = len(s) + 1 if not old else s.count(old)
    return len(s) + hits * len(new)


_CHECKED_FILTERS = {"batch": _batch, "center": _center, "format": _format, "indent": _indent, "join": _join,
                    "replace": _replace, "slice": _slice, "sum": _sum, "tojson": _tojson, "wordwrap": _wordwrap}


def _metered(function: Callable) -> Callable:
    """A filter that spends one step, plus one per item of its input when that has a length."""
    passes = getattr(function, "jinja_pass_arg", None) is not None

    @wraps(function)
    def run(*args: Any, **kwargs: Any) -> Any:
        value = args[1] if passes and len(args) > 1 else args[0] if args else None
        spend(1 + (len(value) if isinstance(value, (str, list, tuple, dict, range)) else 0))
        return function(*args, **kwargs)
    return run


def _loop(iterable: Iterable) -> Iterator:
    """What a `{% for %}` walks: one step per iteration."""
    for item in iterable:
        spend()
        yield item


def _concat(parts: list) -> str:
    """``a ~ b``, built only if it fits."""
    spend()
    _fits(sum(size(part) for part in parts), "`~`")
    return "".join(str(part) for part in parts)


def _range(*args: int) -> range:
    items = range(*args)
    if len(items) > MAX_ITEMS:
        raise SecurityError(f"range() of {len(items):,} items is over the limit of {MAX_ITEMS:,}")
    return items


def _no_format(*args: Any, **kwargs: Any) -> str:
    raise SecurityError("str.format is not available in templates; use the `format` filter ('%s'|format(x))")


# --- the environment ----------------------------------------------------------------------

class _Meter(NodeTransformer):
    """Route every loop and every ``~`` through the budget (``_loop`` and ``_concat`` filters)."""

    def visit_For(self, node: nodes.For) -> nodes.For:
        self.generic_visit(node)
        node.iter = nodes.Filter(node.iter, "meshctl_loop", [], [], None, None, lineno=node.iter.lineno)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Filter:
        self.generic_visit(node)
        return nodes.Filter(nodes.List(node.nodes, lineno=node.lineno), "meshctl_concat", [], [], None, None,
                            lineno=node.lineno)


class _MeteredCodeGenerator(CodeGenerator):
    """Compiles templates with their loops and concatenations metered (see :class:`_Meter`)."""

    def visit_Template(self, node: nodes.Template, frame: Any = None) -> None:
        node = _Meter().visit(node)
        node.set_environment(self.environment)
        super().visit_Template(node, frame)


_SAFE_METHODS = frozenset({
    # str: read or reshape text, never make it longer than `replace`/`join` allow (checked in `call`)
    "capitalize", "casefold", "count", "endswith", "find", "index", "isalnum", "isalpha", "isascii", "isdecimal",
    "isdigit", "isidentifier", "islower", "isnumeric", "isprintable", "isspace", "istitle", "isupper", "join",
    "lower", "lstrip", "partition", "removeprefix", "removesuffix", "replace", "rfind", "rindex", "rpartition",
    "rsplit", "rstrip", "split", "splitlines", "startswith", "strip", "swapcase", "title", "upper",
    # mappings, sequences and numbers: read only
    "get", "items", "keys", "values", "bit_length", "is_integer",
})
_DATA = (str, bytes, int, float, list, tuple, dict, set, frozenset, range, MappingProxyType)


class MeshSandbox(ImmutableSandboxedEnvironment):
    """The sandbox with a budget: see the module docstring for what it bounds."""

    intercepted_binops = frozenset(_BINOPS)
    code_generator_class = _MeteredCodeGenerator

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        """Plain data exposes only the side-effect-free methods listed in ``_SAFE_METHODS``."""
        if not super().is_safe_attribute(obj, attr, value):
            return False
        return not (isinstance(obj, _DATA) and callable(value)) or attr in _SAFE_METHODS

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        return None if super().wrap_str_format(value) is None else _no_format

    def getattr(self, obj: Any, attribute: str) -> Any:
        """``data.items`` is the field `items`, not the dict method: event keys win over attributes."""
        spend()
        if isinstance(obj, Mapping) and attribute in obj:
            return obj[attribute]
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        spend()
        return super().getitem(obj, argument)

    def call(self, context: Any, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        spend()
        owner, name = getattr(obj, "__self__", None), getattr(obj, "__name__", "")
        if isinstance(owner, str) and name == "join" and len(args) == 1:
            args = (list(args[0]),)
            _fits(sum(size(item) for item in args[0]) + len(owner) * len(args[0]), "join()")
        elif isinstance(owner, str) and name == "replace" and len(args) >= 2:
            _fits(_replaced_size(owner, str(args[0]), str(args[1])), "replace()")
        return super().call(context, obj, *args, **kwargs)

    def call_binop(self, context: Any, op: str, left: Any, right: Any) -> Any:
        spend()
        return _BINOPS[op](left, right)


@lru_cache(maxsize=1)
def environment() -> MeshSandbox:
    """The one sandbox all user templates compile in."""
    env = MeshSandbox(undefined=StrictUndefined, autoescape=False)
    env.globals = {"range": _range, "dict": dict, "namespace": env.globals["namespace"]}
    env.filters = {name: _metered(_CHECKED_FILTERS.get(name, function)) for name, function in env.filters.items()}
    env.filters["meshctl_loop"] = _loop
    env.filters["meshctl_concat"] = _concat
    return env
