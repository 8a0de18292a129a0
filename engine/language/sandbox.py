"""The Jinja2 sandbox user templates run in, and the budget every render gets.

Jinja2's sandbox keeps a template away from Python internals, but bounds nothing:
``{{ 'a' * 10**9 }}`` builds a gigabyte, two nested loops over an event's list can spin for
hours, and ``big == other_big`` compares two large containers in one operator. Here each
render gets a budget, so that a bad template costs one refused render (a ``SecurityError``),
never the worker, and the decision is the same on every machine and every run:

- **steps** (:data:`MAX_STEPS`): a loop iteration, an attribute or item lookup, an operator
  and a call spend one; a call of a macro or a recursive loop :data:`CALL_STEPS`. Every
  operation whose cost grows with its operands spends in proportion to their *weight*: one
  step per item or key at any depth, one per :data:`CHARS_PER_STEP` characters of a string
  (:func:`weight`). That covers comparisons and ``in`` (rewritten by :class:`_Meter` into
  :func:`_compare`), the comparison tests (``eq``, ``in``...), every filter (``sort`` and
  the other sorting filters times log2 of the length), string and container methods,
  slices, ``~``, ``+``, ``*``, ``%`` and each printed value; what a filter, method or
  slice builds is charged by its size as well;
- **sizes**: ``*``, ``**``, ``+``, ``~``, ``%`` and the filters and string methods that pad,
  repeat or join check the size of what they would build *before* building it
  (:data:`MAX_OUTPUT`, :data:`MAX_ITEMS`, :data:`MAX_INT_BITS`);
- **depth**: macros, ``caller()`` and recursive loops nest at most :data:`MAX_DEPTH` calls
  deep, well before Python's own recursion limit;
- **nothing to change**: a template reads its input and cannot change it, nor anything
  another template or a later consumer sees. What it may call is an allowlist
  (:meth:`MeshSandbox.call`): the side-effect-free methods of plain data (``_SAFE_METHODS``),
  its own macros, ``caller()``, blocks and loops, and the three globals ``range`` (capped),
  ``dict`` and ``namespace``, which are functions that build a new value. No Python type,
  function or module is reachable, and nothing but plain data and Jinja's own objects has
  attributes or items a template may read (so ``dict.clear(data)`` is refused whatever the
  path to ``dict.clear``). The only assignment Jinja has, ``{% set ns.x = ... %}``, writes to
  a namespace the render itself made. ``str.format`` is refused (the ``format`` filter
  remains). The environment has no loader: ``include``/``import``/``extends`` fail;
- **compile size**: a template nests at most :data:`MAX_NESTING` levels of expressions and
  statements, :data:`MAX_BLOCKS` of block tags and :data:`MAX_BRACKETS` of brackets, so that
  Jinja's parser and compiler and Python's ``compile()`` never run out of stack, wherever they
  are called from; whatever still fails to compile (Python's 20 nested loops) is a
  :class:`TemplateTooComplex` as well.

No render reads a clock before it has spent :data:`GUARD_EVERY` steps, far more than any
legitimate template does. Past that, the CPU time of the rendering thread is looked at every
:data:`GUARD_EVERY` steps, a last resort against a cost this model would have missed; the
step budget is calibrated to run out long before :data:`MAX_CPU_SECONDS` (docs/security.md,
"The template budget: cost model").

Only :mod:`engine.language.templates` uses it, and only to compile template *text*.
"""
from __future__ import annotations

import contextvars
import operator
import re
import time
import types
from collections.abc import Collection, Iterable, Iterator, Mapping, Set
from contextlib import contextmanager
from functools import lru_cache, wraps
from types import MappingProxyType
from typing import Any, Callable

import jinja2
from jinja2 import (
    StrictUndefined,
    Undefined,
    filters,
    nodes,
    pass_environment,
    pass_eval_context,
)
from jinja2.compiler import CodeGenerator
from jinja2.exceptions import SecurityError, TemplateSyntaxError
from jinja2.lexer import Token, TokenStream
from jinja2.runtime import BlockReference, LoopContext, Macro
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import Namespace
from jinja2.visitor import NodeTransformer

_VERSION = re.match(r"(\d+)\.(\d+)\.(\d+)", jinja2.__version__)
# the last sandbox escapes were fixed in 3.1.6
if _VERSION is None or tuple(map(int, _VERSION.groups())) < (3, 1, 6):
    raise ImportError(f"meshctl needs Jinja2 >= 3.1.6 for its sandbox fixes, found {jinja2.__version__}")

MAX_OUTPUT = 1_000_000  # characters of one rendered template, and of any value a template builds
MAX_ITEMS = 100_000  # items of a list or range a template builds
MAX_INT_BITS = 6_400  # size of an integer built by `*` or `**`
MAX_EXPONENT = 100
MAX_JSON_INDENT = 8
MAX_STEPS = 1_000_000  # what one render may spend (see the module docstring)
CHARS_PER_STEP = 16  # characters of a string an operation reads or builds for one step
# an attribute of anything but a dict, a method or global call: the sandbox's checks cost that
LOOKUP_STEPS = 8
CALL_STEPS = 20  # a macro, caller() or recursive-loop call: Jinja's call machinery costs that
# filters that work through text in Python (wordwrap, urlize...) spend this many times the weight
TEXT_FACTOR = 16
MAX_DEPTH = 50  # nested macro / caller() / recursive-loop calls of one render
GUARD_EVERY = 100_000  # steps between two looks at the CPU clock; none before the first GUARD_EVERY
MAX_CPU_SECONDS = 5.0  # the last-resort guard: CPU time of the rendering thread past GUARD_EVERY steps
# levels of nodes in a template (a 100-term sum nests 100 `+`): Python compiles 200 parentheses
MAX_NESTING = 100
MAX_BRACKETS = 20  # nested (, [ and { in a template: Jinja's parser spends ~13 frames on each
# nested {% for %}, {% if %}, {% macro %}...: ~4 frames each (Python compiles only 20 nested loops)
MAX_BLOCKS = 40


class Budget:
    """What one render may still spend, and how deep its calls are nested."""

    __slots__ = ("steps", "depth", "guard_at", "cpu_since")

    def __init__(self) -> None:
        self.steps = MAX_STEPS
        self.depth = 0
        self.guard_at = MAX_STEPS - GUARD_EVERY  # below this many steps left, look at the budget closely
        self.cpu_since: float | None = None

    def spend(self, steps: int) -> None:
        self.steps -= steps
        if self.steps < self.guard_at:
            self._check()

    def _check(self) -> None:
        """Out of steps, or (every GUARD_EVERY steps) past the CPU-time guard."""
        if self.steps < 0:
            raise SecurityError(f"the template ran over its budget of {MAX_STEPS:,} steps")
        self.guard_at = max(self.steps - GUARD_EVERY, 0)
        now = time.thread_time()  # CPU time of this thread: a stopped or descheduled process does not age it
        if self.cpu_since is None:
            self.cpu_since = now
        elif now - self.cpu_since > MAX_CPU_SECONDS:
            raise SecurityError(f"the template used more than {MAX_CPU_SECONDS:g}s of CPU time "
                                f"(a last-resort guard: its steps did not reflect its cost)")


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


def _current() -> Budget:
    current = _budget.get()
    if current is None:
        raise SecurityError("templates only run inside a render budget")
    return current


def spend(steps: int = 1) -> None:
    _current().spend(steps)


def charge(*values: Any, base: int = 1) -> None:
    """Spend *base* steps plus the :func:`weight` of each value (an operation that reads them all)."""
    current = _current()
    total = base
    for value in values:
        total += weight(value, current.steps - total)
    current.spend(total)


_ATOMS = frozenset({int, float, bool, type(None)})


def weight(value: Any, limit: int = MAX_STEPS) -> int:
    """Steps an operation that reads all of *value* spends (counted just past *limit*).

    One per item and key at any depth, and one per ``CHARS_PER_STEP`` characters of a string.
    A shared object is counted wherever it occurs, as comparing or printing it would read it.

    >>> weight(["ab", {"c": "d" * 40}])
    7
    """
    kind = type(value)
    if kind is str:
        return 1 + len(value) // CHARS_PER_STEP
    if kind in _ATOMS:
        return 1
    return _measure(value, limit, CHARS_PER_STEP)


def size(value: Any, limit: int = MAX_OUTPUT) -> int:
    """Characters *value* stands for: strings by length, containers by their items (counted just past
    *limit*).

    >>> size(["ab", {"c": "de"}])
    10
    """
    if type(value) is str:
        return 1 + len(value)
    return _measure(value, limit, 1)


def _measure(value: Any, limit: int, chars: int) -> int:
    """One per item at any depth, plus ``len // chars`` per string; stops once past *limit*."""
    total, stack = 0, [value]
    while stack and total <= limit:
        item = stack.pop()
        total += 1
        kind = type(item)
        if kind is str or isinstance(item, (str, bytes)):
            total += len(item) // chars
        # an undefined value fails in the operation itself
        elif kind in _ATOMS or isinstance(item, Undefined):
            continue
        elif kind is range:
            total += len(item)
        elif isinstance(item, Mapping):
            stack += item.keys()
            stack += item.values()
        # lists, tuples, sets, read-only views: plain items count one each here
        elif isinstance(item, Collection):
            nested = [x for x in item if type(x) not in _ATOMS]
            total += len(item) - len(nested)
            stack += nested
    return total


def _shallow(value: Any) -> int:
    """Steps of an operation that walks *value* one level: its items, or a string's characters."""
    if isinstance(value, str):
        return 1 + len(value) // CHARS_PER_STEP
    if isinstance(value, Collection) and not isinstance(value, Undefined):
        return 1 + len(value)
    return 1


def _built(value: Any) -> int:
    """Steps for building *value*: its length for a string (per CHARS_PER_STEP) or a plain container."""
    if isinstance(value, str):
        return len(value) // CHARS_PER_STEP
    if type(value) in (list, tuple, dict, set):
        return len(value)
    return 0


def _measured(*values: Any) -> int:
    """The size of *values* for a size check, once walking them is spent (as their weight)."""
    charge(*values, base=0)
    return sum(size(value) for value in values)


def _fits(total: int, what: str) -> None:
    if total > MAX_OUTPUT:
        raise SecurityError(f"{what} would build more than {MAX_OUTPUT:,} characters")


# --- comparisons --------------------------------------------------------------------------
# Jinja compiles `==`, `<`, `in`... to Python's operators, which the sandbox never sees.
# :class:`_Meter` rewrites each comparison whose cost is not bounded by a literal operand
# into a call of `_compare`, which charges it first.

_COMPARISONS: dict[str, Callable[[Any, Any], Any]] = {
    "eq": operator.eq,
    "ne": operator.ne,
    "lt": operator.lt,
    "lteq": operator.le,
    "gt": operator.gt,
    "gteq": operator.ge,
    "in": lambda left, right: left in right,
    "notin": lambda left, right: left not in right,
}
_HASHED = (Mapping, Set, range)  # `x in` these hashes x (or does arithmetic) instead of walking the container


def comparison_steps(left: Any, op: str, right: Any, limit: int = MAX_STEPS) -> int:
    """Steps of ``left OP right`` (OP named as Jinja names it: eq, ne, lt, lteq, gt, gteq, in, notin).

    Equality and ordering stop at the first difference, or at once when lengths differ: the
    lighter operand bounds them. ``in`` walks its container (a string: both strings), except
    a mapping, set or range, which hashes the needle.
    """
    if op in ("in", "notin"):
        if isinstance(right, str):
            return weight(left, limit) + weight(right, limit)
        if isinstance(right, _HASHED):
            return weight(left, limit)
        return weight(right, limit)
    lighter = weight(left, limit)
    return min(lighter, weight(right, lighter))


def _compare(left: Any, op: str, right: Any) -> Any:
    """``left OP right``, spent before it runs (see :func:`comparison_steps`)."""
    current = _current()
    if type(left) in _ATOMS and type(right) in _ATOMS:
        current.spend(1)
    else:
        if op in ("in", "notin"):
            right = _materialized(right)  # `x in generator` compares x with each item it yields
        current.spend(1 + comparison_steps(left, op, right, current.steps))
    return _COMPARISONS[op](left, right)


# --- operators ----------------------------------------------------------------------------


def _charged(result: Any) -> Any:
    """*result*, once what building it cost is spent (a string or container the operation made)."""
    spend(_built(result))
    return result


def _multiply(left: Any, right: Any) -> Any:
    if isinstance(left, int) and isinstance(right, int):
        if left.bit_length() + right.bit_length() > MAX_INT_BITS:
            raise SecurityError(f"the product is larger than {MAX_INT_BITS} bits")
    for seq, times in ((left, right), (right, left)):
        if isinstance(seq, (str, list, tuple)) and isinstance(times, int):
            if len(seq) * times > MAX_ITEMS:
                raise SecurityError(f"repetition builds more than {MAX_ITEMS:,} items")
            _fits(_measured(seq) * times, "repetition")
    return _charged(operator.mul(left, right))


def _power(left: Any, right: Any) -> Any:
    if isinstance(right, (int, float)) and abs(right) > MAX_EXPONENT:
        raise SecurityError(f"exponent {right} is over the limit of {MAX_EXPONENT}")
    if isinstance(left, int) and isinstance(right, int) and left.bit_length() * right > MAX_INT_BITS:
        raise SecurityError(f"the power is larger than {MAX_INT_BITS} bits")
    return operator.pow(left, right)


def _add(left: Any, right: Any) -> Any:
    if (
        isinstance(left, (list, tuple))
        and isinstance(right, (list, tuple))
        and len(left) + len(right) > MAX_ITEMS
    ):
        raise SecurityError(f"`+` builds more than {MAX_ITEMS:,} items")
    if isinstance(left, (str, list, tuple)) and isinstance(right, (str, list, tuple)):
        _fits(_measured(left, right), "`+`")
    return _charged(operator.add(left, right))


_PRINTF = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")


def _printf_size(fmt: str, values: Any) -> int:
    """Upper bound of ``fmt % values``: the text, the values, and every field width and precision."""
    total = len(fmt) + _measured(values)
    for found in _PRINTF.finditer(fmt):
        for number in found.groups():
            if number == "*" or (number and len(number) > 7):
                raise SecurityError("a `%` format takes its width from its arguments, or a huge one")
            total += int(number or 0)
    return total


def _modulo(left: Any, right: Any) -> Any:
    if isinstance(left, str):
        _fits(_printf_size(left, right), "`%` formatting")
    return _charged(operator.mod(left, right))


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
    _fits(size(items) + len(d) * len(items), "join()")
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
def _wordwrap(
    environment,
    s: str,
    width: int = 79,
    break_long_words: bool = True,
    wrapstring: str | None = None,
    break_on_hyphens: bool = True,
) -> str:
    text = str(s)
    lines = len(text) // max(width, 1) + text.count("\n") + 1
    _fits(len(text) + lines * len(wrapstring or "\n"), "wordwrap()")
    return filters.do_wordwrap(environment, s, width, break_long_words, wrapstring, break_on_hyphens)


def _replaced_size(s: str, old: str, new: str) -> int:
    hits = len(s) + 1 if not old else s.count(old)
    return len(s) + hits * len(new)


_CHECKED_FILTERS = {
    "batch": _batch,
    "center": _center,
    "format": _format,
    "indent": _indent,
    "join": _join,
    "replace": _replace,
    "slice": _slice,
    "sum": _sum,
    "tojson": _tojson,
    "wordwrap": _wordwrap,
}


# --- what filters and tests spend -----------------------------------------------------------
# By default a filter reads all of its operands (one step plus their weight) and is charged
# for what it builds. The exceptions are the filters that look at one end or at the length of
# their input (one step), and the ones that walk it one level without comparing or printing
# its items (its length). Sorting filters compare: their weight times log2 of the length.

_FLAT_FILTERS = frozenset(
    {"abs", "attr", "count", "d", "default", "filesizeformat", "first", "last", "length", "round"}
)
_SHALLOW_FILTERS = frozenset(
    {
        "batch",
        "items",
        "list",
        "map",
        "reject",
        "rejectattr",
        "reverse",
        "select",
        "selectattr",
        "slice",
        "sum",
    }
)
_SORTING_FILTERS = frozenset({"dictsort", "groupby", "sort"})
_TEXT_FILTERS = frozenset({"pprint", "title", "urlencode", "urlize", "wordcount", "wordwrap"})
_ITERATING_FILTERS = _SORTING_FILTERS | {
    "batch",
    "join",
    "list",
    "map",
    "max",
    "min",
    "reject",
    "rejectattr",
    "reverse",
    "select",
    "selectattr",
    "slice",
    "sum",
    "unique",
}


def _materialized(value: Any) -> Any:
    """A generator or iterator as a list, so that what comes out of it can be weighed before it is used."""
    return list(value) if isinstance(value, Iterator) else value


def _metered(name: str, function: Callable) -> Callable:
    """*function* (a filter) spending its cost, as described above, before it runs."""
    passes = getattr(function, "jinja_pass_arg", None) is not None

    if name in _FLAT_FILTERS:

        @wraps(function)
        def flat(*args: Any, **kwargs: Any) -> Any:
            spend()
            return function(*args, **kwargs)

        return flat

    first = 1 if passes else 0
    shallow, sorting, iterating = (
        name in _SHALLOW_FILTERS,
        name in _SORTING_FILTERS,
        name in _ITERATING_FILTERS,
    )
    factor = TEXT_FACTOR if name in _TEXT_FILTERS else 1

    @wraps(function)
    def run(*args: Any, **kwargs: Any) -> Any:
        if len(args) <= first:
            return function(*args, **kwargs)  # a missing argument: Jinja's own error
        value = args[first]
        if iterating and isinstance(value, Iterator):
            value = _materialized(value)
            args = (*args[:first], value, *args[first + 1 :])
        current = _current()
        steps = 1 + (_shallow(value) if shallow else weight(value, current.steps))
        if sorting and isinstance(value, Collection):
            steps *= max(1, len(value).bit_length())
        steps *= factor
        for other in (*args[first + 1 :], *kwargs.values()):
            steps += weight(other, current.steps - steps)
        current.spend(steps)
        return _charged(function(*args, **kwargs))

    return run


_OPERATOR_TESTS = {
    "eq": "eq",
    "equalto": "eq",
    "==": "eq",
    "ne": "ne",
    "!=": "ne",
    "lt": "lt",
    "lessthan": "lt",
    "<": "lt",
    "le": "lteq",
    "<=": "lteq",
    "gt": "gt",
    "greaterthan": "gt",
    ">": "gt",
    "ge": "gteq",
    ">=": "gteq",
    "in": "in",
}


def _metered_test(name: str, function: Callable) -> Callable:
    """*function* (a test): a comparison spends what :func:`comparison_steps` says, ``lower``/``upper`` the
    text's weight, any other test one step."""
    op = _OPERATOR_TESTS.get(name)

    @wraps(function)
    def run(*args: Any, **kwargs: Any) -> Any:
        if op is not None and len(args) == 2:
            left, right = args
            if op == "in":
                right = _materialized(right)
            current = _current()
            current.spend(1 + comparison_steps(left, op, right, current.steps))
            return function(left, right)
        if name in ("lower", "upper") and args:
            charge(args[0])
        else:
            spend()
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
    _fits(_measured(*parts), "`~`")
    return _charged("".join(str(part) for part in parts))


def _sliced(value: Any, start: Any, stop: Any, step: Any) -> Any:
    """``value[start:stop:step]``: a copy, charged by its size."""
    spend()
    return _charged(value[start:stop:step])


def _output(value: Any) -> str:
    """What ``{{ value }}`` prints, once reading the value and building its text are spent."""
    current = _current()
    if type(value) is str:
        current.spend(1 + len(value) // CHARS_PER_STEP)
        return value
    current.spend(weight(value, current.steps))
    text = str(value)
    current.spend(len(text) // CHARS_PER_STEP)
    return text


def _range(*args: int) -> range:
    items = range(*args)
    if len(items) > MAX_ITEMS:
        raise SecurityError(f"range() of {len(items):,} items is over the limit of {MAX_ITEMS:,}")
    return items


def _no_format(*args: Any, **kwargs: Any) -> str:
    raise SecurityError("str.format is not available in templates; use the `format` filter ('%s'|format(x))")


def _dict(*args: Any, **kwargs: Any) -> dict:
    """The ``dict`` global: a new dict, never the type (whose methods would change any dict)."""
    return dict(*args, **kwargs)


def _namespace(*args: Any, **kwargs: Any) -> Namespace:
    """The ``namespace`` global: a new namespace (a copy of its arguments), never the class."""
    return Namespace(*args, **kwargs)


_GLOBALS = {"range": _range, "dict": _dict, "namespace": _namespace}
GLOBAL_NAMES = frozenset(_GLOBALS)
_CALLABLE = frozenset(map(id, (*_GLOBALS.values(), _no_format)))  # the functions a template may call


class TemplateTooComplex(TemplateSyntaxError):
    """A template nested too deeply for Jinja or Python to compile: refused before it runs out of stack."""


def shape(tree: nodes.Node) -> tuple[int, int, nodes.Node]:
    """How deep *tree* nests (a comparison chain counts one level per operator, as :class:`_Meter` makes it),
    how many ``{% for %}`` it holds, and its deepest node. Walked without recursion (reading the fields
    directly: ``iter_child_nodes`` costs twice as much), and no further once past ``MAX_NESTING``."""
    deepest, loops, found, stack = 0, 0, tree, [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, nodes.Compare):
            depth += len(node.ops) - 1
        elif isinstance(node, nodes.For):
            loops += 1
        if depth > deepest:
            deepest, found = depth, node
            if depth > MAX_NESTING:
                break
        depth += 1
        for field in node.fields:
            value = getattr(node, field, None)
            if isinstance(value, nodes.Node):
                stack.append((value, depth))
            elif type(value) is list:
                stack += [(item, depth) for item in value if isinstance(item, nodes.Node)]
    return deepest, loops, found


def _check_nesting(tree: nodes.Node, name: str | None, filename: str | None) -> None:
    depth, _, node = shape(tree)
    if depth > MAX_NESTING:
        chain = isinstance(node, (nodes.BinExpr, nodes.Compare))
        advice = " (`a + b + ...` nests one level per operator: add many terms as a list, `[a, b, c]|sum`)"
        raise TemplateTooComplex(
            f"expressions and statements nest more than {MAX_NESTING} levels deep{advice if chain else ''}",
            getattr(node, "lineno", None) or 1,
            name,
            filename,
        )


_OPENERS = frozenset({"for", "if", "macro", "call", "filter", "with", "block", "autoescape"})
_CLOSERS = frozenset(f"end{name}" for name in _OPENERS)


def _bounded(tokens: Iterator[Token], name: str | None, filename: str | None) -> Iterator[Token]:
    """*tokens*, refused once brackets nest more than ``MAX_BRACKETS`` deep or ``{% for %}``, ``{% if %}``...
    more than ``MAX_BLOCKS``: before the parser recurses into them (13 and 4 Python frames a level)."""
    brackets = blocks = 0
    tag = False  # the previous token opened a {% tag %}
    for token in tokens:
        kind = token.type
        if kind in ("lparen", "lbracket", "lbrace"):
            brackets += 1
            if brackets > MAX_BRACKETS:
                raise TemplateTooComplex(
                    f"brackets nest more than {MAX_BRACKETS} deep", token.lineno, name, filename
                )
        elif kind in ("rparen", "rbracket", "rbrace"):
            brackets -= 1
        elif tag and kind == "name":
            if token.value in _OPENERS:
                blocks += 1
                if blocks > MAX_BLOCKS:
                    raise TemplateTooComplex(
                        f"{{% {token.value} %}} and other blocks nest more than {MAX_BLOCKS} deep",
                        token.lineno,
                        name,
                        filename,
                    )
            elif token.value in _CLOSERS:
                blocks -= 1
        tag = kind == "block_begin"
        yield token


def _describe(obj: Any) -> str:
    """How a refusal names what a template tried to reach."""
    for name, function in _GLOBALS.items():
        if obj is function:
            return f"the global {name!r} (a function that builds a new value)"
    if isinstance(obj, type):
        return f"the type {obj.__name__!r}"
    qualname = getattr(obj, "__qualname__", None)
    return f"{type(obj).__name__} {qualname!r}" if isinstance(qualname, str) else f"a {type(obj).__name__}"


# --- the environment ----------------------------------------------------------------------


class _Meter(NodeTransformer):
    """Route what Jinja runs as plain Python through the budget.

    Loops go through ``_loop``, ``~`` through ``_concat``, each printed ``{{ value }}``
    through ``_output``, slices ``x[a:b]`` through ``_sliced``, and each comparison through ``_compare``
    unless one side is a
    literal: ``data.total > 0`` or ``x in ['a', 'b']`` cost at most the literal's size and
    stay plain Python. A chain ``a < b < c`` becomes ``(a < b) and (b < c)``: the same
    short-circuit, with ``b`` evaluated again when the first part holds (templates have no
    side effects; the second evaluation is charged too).
    """

    def visit_For(self, node: nodes.For) -> nodes.For:
        self.generic_visit(node)
        node.iter = _filter(node.iter, "meshctl_loop")
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Filter:
        self.generic_visit(node)
        return _filter(nodes.List(node.nodes, lineno=node.lineno), "meshctl_concat")

    def visit_Output(self, node: nodes.Output) -> nodes.Output:
        self.generic_visit(node)
        node.nodes = [
            child
            if isinstance(child, (nodes.TemplateData, nodes.Const))
            else _filter(child, "meshctl_output")
            for child in node.nodes
        ]
        return node

    def visit_Getitem(self, node: nodes.Getitem) -> nodes.Expr:
        self.generic_visit(node)
        if not isinstance(node.arg, nodes.Slice):
            return node  # `x[i]` goes through the sandbox's getitem
        bounds = (node.arg.start, node.arg.stop, node.arg.step)  # Jinja compiles a slice to plain Python
        return _filter(
            node.node, "meshctl_slice", *(b or nodes.Const(None, lineno=node.lineno) for b in bounds)
        )

    def visit_Compare(self, node: nodes.Compare) -> nodes.Expr:
        self.generic_visit(node)
        parts, left = [], node.expr
        for operand in node.ops:
            parts.append(_comparison(left, operand))
            left = operand.expr
        chained = parts[0]
        for part in parts[1:]:
            chained = nodes.And(chained, part, lineno=node.lineno)
        return chained


def _filter(node: nodes.Expr, name: str, *args: nodes.Expr) -> nodes.Filter:
    return nodes.Filter(node, name, list(args), [], None, None, lineno=node.lineno)


def _comparison(left: nodes.Expr, operand: nodes.Operand) -> nodes.Expr:
    """``left OP operand``: plain Python when a literal bounds its cost, else metered by ``_compare``."""
    bounded = (
        _literal(operand.expr) if operand.op in ("in", "notin") else _literal(left) or _literal(operand.expr)
    )
    if bounded:
        return nodes.Compare(left, [operand], lineno=left.lineno)
    return _filter(left, "meshctl_compare", nodes.Const(operand.op, lineno=left.lineno), operand.expr)


def _literal(node: nodes.Expr) -> bool:
    """A constant, or a list or tuple of constants, written in the template."""
    if isinstance(node, (nodes.List, nodes.Tuple)):
        return all(isinstance(item, nodes.Const) for item in node.items)
    return isinstance(node, nodes.Const)


class _MeteredCodeGenerator(CodeGenerator):
    """Compiles templates with their loops, concatenations, output and comparisons metered (see
    :class:`_Meter`)."""

    def visit_Template(self, node: nodes.Template, frame: Any = None) -> None:
        node = _Meter().visit(node)
        node.set_environment(self.environment)
        super().visit_Template(node, frame)


_SAFE_METHODS = frozenset(
    {
        # str: read or reshape text, never make it longer than `replace`/`join` allow (checked in `call`)
        "capitalize",
        "casefold",
        "count",
        "endswith",
        "find",
        "index",
        "isalnum",
        "isalpha",
        "isascii",
        "isdecimal",
        "isdigit",
        "isidentifier",
        "islower",
        "isnumeric",
        "isprintable",
        "isspace",
        "istitle",
        "isupper",
        "join",
        "lower",
        "lstrip",
        "partition",
        "removeprefix",
        "removesuffix",
        "replace",
        "rfind",
        "rindex",
        "rpartition",
        "rsplit",
        "rstrip",
        "split",
        "splitlines",
        "startswith",
        "strip",
        "swapcase",
        "title",
        "upper",
        # mappings, sequences and numbers: read only
        "get",
        "items",
        "keys",
        "values",
        "bit_length",
        "is_integer",
    }
)
_DATA = (str, bytes, int, float, list, tuple, dict, set, frozenset, range, MappingProxyType)
# Code and types: nothing a template may read from or look into. A type's methods change any
# instance given to them (`dict.clear(data)`), whatever path led to the type.
_OPAQUE = (
    type,
    types.ModuleType,
    types.FunctionType,
    types.BuiltinFunctionType,
    types.MethodType,
    types.MethodDescriptorType,
    types.WrapperDescriptorType,
    types.MethodWrapperType,
    types.ClassMethodDescriptorType,
    types.GetSetDescriptorType,
    types.MemberDescriptorType,
    types.GenericAlias,
)
# calls that run template code: macros, caller(), loop(), self.block()
_NESTING = (Macro, LoopContext, BlockReference)
# O(1) in their owner
_LOOKUP_METHODS = frozenset({"get", "items", "keys", "values", "bit_length", "is_integer"})


class MeshSandbox(ImmutableSandboxedEnvironment):
    """The sandbox with a budget: see the module docstring for what it bounds."""

    intercepted_binops = frozenset(_BINOPS)
    code_generator_class = _MeteredCodeGenerator

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        """Plain data exposes only the side-effect-free methods listed in ``_SAFE_METHODS``; types, functions
        and methods expose nothing."""
        if isinstance(obj, _OPAQUE) or not super().is_safe_attribute(obj, attr, value):
            return False
        return not (isinstance(obj, _DATA) and callable(value)) or attr in _SAFE_METHODS

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        return None if super().wrap_str_format(value) is None else _no_format

    def getattr(self, obj: Any, attribute: str) -> Any:
        """``data.items`` is the field `items`, not the dict method: event keys win over attributes."""
        if type(obj) is dict and attribute in obj:
            spend()
            return obj[attribute]
        spend(LOOKUP_STEPS)
        if isinstance(obj, Mapping) and attribute in obj:
            return obj[attribute]
        if isinstance(obj, _OPAQUE):  # else `dict.nope` would fall back to `dict['nope']`, a generic alias
            raise SecurityError(f"templates cannot read attributes of {_describe(obj)} (here {attribute!r})")
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        spend()
        if isinstance(obj, _OPAQUE):
            raise SecurityError(f"templates cannot look into {_describe(obj)} (here [{argument!r}])")
        return super().getitem(obj, argument)

    def call(self, context: Any, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        """An allowlist: a listed method of plain data, a macro (or ``caller()``, a recursive ``loop()``,
        ``self.block()``), ``loop.cycle()``/``loop.changed()``, or a global. Nothing else, so no method taken
        from a type (``dict.update``) and no method of a value that would change it."""
        owner = getattr(obj, "__self__", None)
        if isinstance(owner, _DATA):
            return self._call_method(context, obj, owner, args, kwargs)
        if isinstance(obj, _NESTING):
            return self._call_nested(context, obj, args, kwargs)
        if not (id(obj) in _CALLABLE or isinstance(owner, LoopContext) or isinstance(obj, Undefined)):
            raise SecurityError(
                f"templates cannot call {_describe(obj)}: they read their input and cannot change it"
            )
        # dict(), namespace() copy one level
        spend(LOOKUP_STEPS + sum(map(_shallow, args)) + sum(map(_shallow, kwargs.values())))
        return _charged(super().call(context, obj, *args, **kwargs))

    def _call_method(self, context: Any, method: Any, owner: Any, args: tuple, kwargs: dict) -> Any:
        """``owner.name(...)``: reads its arguments, and all of *owner* unless it is an O(1) lookup."""
        name = getattr(method, "__name__", "")
        if name not in _SAFE_METHODS:  # reached some other way than an attribute lookup (which checks it too)
            raise SecurityError(
                f"templates cannot call {type(owner).__name__}.{name}(): "
                "they read their input and cannot change it"
            )
        if isinstance(owner, str) and name == "join" and len(args) == 1:
            args = (list(args[0]),)
        read = (*args, *kwargs.values())
        charge(*read, base=LOOKUP_STEPS) if name in _LOOKUP_METHODS else charge(
            owner, *read, base=LOOKUP_STEPS
        )
        if isinstance(owner, str) and name == "join" and len(args) == 1:
            _fits(size(args[0]) + len(owner) * len(args[0]), "join()")
        elif isinstance(owner, str) and name == "replace" and len(args) >= 2:
            _fits(_replaced_size(owner, str(args[0]), str(args[1])), "replace()")
        return _charged(super().call(context, method, *args, **kwargs))

    def _call_nested(self, context: Any, obj: Any, args: tuple, kwargs: dict) -> Any:
        """A macro, ``caller()``, recursive ``loop()`` or ``self.block()`` call: CALL_STEPS, at most MAX_DEPTH
        deep,
        its output charged."""
        current = _current()
        current.spend(CALL_STEPS)
        if current.depth >= MAX_DEPTH:
            raise SecurityError(
                f"the template nests macro, block or recursive-loop calls more than {MAX_DEPTH} deep"
            )
        current.depth += 1
        try:
            output = super().call(context, obj, *args, **kwargs)
        finally:
            current.depth -= 1
        if isinstance(output, str):
            _fits(len(output), "a macro, block or loop call")
        return _charged(output)

    def call_binop(self, context: Any, op: str, left: Any, right: Any) -> Any:
        spend()
        return _BINOPS[op](left, right)

    # --- compiling: every way Jinja or Python can run out of stack is a TemplateTooComplex

    def _tokenize(
        self, source: str, name: str | None, filename: str | None = None, state: str | None = None
    ) -> TokenStream:
        """Jinja's own, with the limits checked token by token (this sandbox has no extensions to apply)."""
        lexer = self.lexer
        tokens = lexer.wrap(
            lexer.tokeniter(self.preprocess(source, name, filename), name, filename, state), name, filename
        )
        return TokenStream(_bounded(tokens, name, filename), name, filename)

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        try:
            tree = super()._parse(source, name, filename)
        except (RecursionError, MemoryError) as exc:
            raise TemplateTooComplex(
                f"too complex to parse ({type(exc).__name__})", 1, name, filename
            ) from None
        _check_nesting(tree, name, filename)  # before anything walks the tree recursively
        return tree

    def compile_expression(self, source: str, undefined_to_none: bool = True) -> Any:
        try:
            return super().compile_expression(source, undefined_to_none)
        except (RecursionError, MemoryError) as exc:
            raise TemplateTooComplex(f"too complex to parse ({type(exc).__name__})", 1) from None

    def _generate(
        self, source: nodes.Template, name: str | None, filename: str | None, defer_init: bool = False
    ) -> str:
        _check_nesting(source, name, filename)  # compile_expression() parses without _parse
        try:
            return super()._generate(source, name, filename, defer_init)
        except (RecursionError, MemoryError) as exc:
            raise TemplateTooComplex(
                f"too complex to compile ({type(exc).__name__})", 1, name, filename
            ) from None

    def _compile(self, source: str, filename: str) -> types.CodeType:
        try:
            return super()._compile(source, filename)
        # Python's limits on the code Jinja generated
        except (SyntaxError, RecursionError, MemoryError) as exc:
            reason = exc.msg if isinstance(exc, SyntaxError) else type(exc).__name__
            raise TemplateTooComplex(
                f"too complex to compile ({reason}: nest fewer loops, blocks or brackets)", 1
            ) from None


@lru_cache(maxsize=1)
def environment() -> MeshSandbox:
    """The one sandbox all user templates compile in."""
    env = MeshSandbox(undefined=StrictUndefined, autoescape=False)
    env.globals = dict(_GLOBALS)
    # `random` is left out: a run must give the same result every time (the seed drives jitter only)
    env.filters = {
        name: _metered(name, _CHECKED_FILTERS.get(name, function))
        for name, function in env.filters.items()
        if name != "random"
    }
    env.tests = {name: _metered_test(name, function) for name, function in env.tests.items()}
    env.filters.update(
        meshctl_loop=_loop,
        meshctl_concat=_concat,
        meshctl_output=_output,
        meshctl_compare=_compare,
        meshctl_slice=_sliced,
    )
    return env
