"""One event pattern: its compiler (with the errors that name the bad path) and its matcher.

The semantics are described in the package's docstring (:mod:`engine.language.patterns`).
The compiled form (``ObjectPattern`` of ``Leaf`` of ``Op``) and the value helpers
(``scalar_key``, ``scalars``, ``is_number``) are public to the pattern index and to the
feasibility analysis, which read compiled patterns; a leading underscore marks what no
other module uses.
"""
from __future__ import annotations

import difflib
import ipaddress
import math
import re
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, Hashable, Iterable

from engine.core.errors import MeshError

__all__ = ["CompiledPattern", "PatternError", "compile_pattern"]

MISSING = object()
_TRUE = ("bool", True)     # dictionary keys for booleans, so that True never equals 1
_FALSE = ("bool", False)
ARRAY = (list, tuple)
SCALAR = frozenset({str, int, float, bool, type(None)})  # JSON scalars: never a Mapping (no ABC check needed)
_NUMERIC_OPS = ("<", "<=", "=", ">", ">=")
_STRING_OPS = ("prefix", "suffix", "equals-ignore-case", "wildcard")
OPERATORS = ("anything-but", "cidr", "equals-ignore-case", "exists", "numeric", "prefix",
             "suffix", "wildcard")


class PatternError(MeshError):
    """An event pattern is malformed.

    ``path`` is the tuple of keys and list indices into the pattern that leads to the
    culprit, so callers can map it back to a YAML position; the message starts with the
    field it concerns, e.g. ``data.score: unknown operator 'numerc'``.
    """

    def __init__(self, message: str, path: Iterable[Hashable] = ()):
        self.path = tuple(path)
        self.message = message
        where = _describe(self.path)
        super().__init__(f"{where}: {message}" if where else message)


def _describe(path: tuple) -> str:
    """Render the field part of a pattern path: ``$or[1].detail.region``."""
    parts: list[str] = []
    for i, step in enumerate(path):
        if isinstance(step, int):
            if i and path[i - 1] == "$or":
                parts[-1] += f"[{step}]"
                continue
            break                       # a leaf index: the rest is inside the leaf
        parts.append(str(step))
    return ".".join(parts)


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def scalar_key(value: Any) -> Any:
    """Dictionary key of a scalar: numbers compare numerically, booleans stay apart."""
    if value is True:
        return _TRUE
    if value is False:
        return _FALSE
    return value


def scalars(value: Any, out: list) -> list:
    """Leaf values at a path: arrays flattened, objects contribute nothing."""
    if isinstance(value, ARRAY):
        for item in value:
            scalars(item, out)
    elif type(value) in SCALAR or not isinstance(value, Mapping):
        out.append(value)
    return out


# --------------------------------------------------------------------------- operators

class Op(ABC):
    """One element of a leaf that is not a plain value. ``spec`` identifies equal ops."""

    __slots__ = ("kind", "spec")

    @abstractmethod
    def test(self, value: Any) -> bool:
        """Whether a present scalar value passes this operator."""


class Prefix(Op):
    __slots__ = ("text", "fold")

    def __init__(self, text: str, fold: bool):
        self.text, self.fold = (text.lower() if fold else text), fold
        self.kind, self.spec = ("prefix-ic" if fold else "prefix"), (self.text, fold)

    def test(self, value):
        return isinstance(value, str) and (value.lower() if self.fold else value).startswith(self.text)


class Suffix(Op):
    __slots__ = ("text", "fold")

    def __init__(self, text: str, fold: bool):
        self.text, self.fold = (text.lower() if fold else text), fold
        self.kind, self.spec = ("suffix-ic" if fold else "suffix"), (self.text, fold)

    def test(self, value):
        return isinstance(value, str) and (value.lower() if self.fold else value).endswith(self.text)


class EqualsIgnoreCase(Op):
    __slots__ = ("text",)

    def __init__(self, text: str):
        self.text = text.lower()
        self.kind, self.spec = "equals-ignore-case", self.text

    def test(self, value):
        return isinstance(value, str) and value.lower() == self.text


class Wildcard(Op):
    __slots__ = ("regex",)

    def __init__(self, text: str, regex: re.Pattern):
        self.regex = regex
        self.kind, self.spec = "wildcard", text

    def test(self, value):
        return isinstance(value, str) and self.regex.fullmatch(value) is not None


class Numeric(Op):
    __slots__ = ("low", "low_open", "high", "high_open")

    def __init__(self, low: float, low_open: bool, high: float, high_open: bool):
        self.low, self.low_open, self.high, self.high_open = low, low_open, high, high_open
        self.kind, self.spec = "numeric", (low, low_open, high, high_open)

    def test(self, value):
        cls = value.__class__
        if cls is not int and cls is not float and not is_number(value):
            return False
        if value < self.low or (self.low_open and value == self.low):
            return False
        return value < self.high or (not self.high_open and value == self.high)

    def bounds(self) -> list[float]:
        return [b for b in (self.low, self.high) if math.isfinite(b)]


class Cidr(Op):
    __slots__ = ("network",)

    def __init__(self, network: ipaddress.IPv4Network | ipaddress.IPv6Network):
        self.network = network
        self.kind, self.spec = "cidr", str(network)

    def test(self, value):
        if not isinstance(value, str):
            return False
        try:
            address = ipaddress.ip_address(value)
        except ValueError:
            return False
        return address.version == self.network.version and address in self.network


class AnythingBut(Op):
    """Excluded values (a set of keys) or an excluded string shape (prefix, suffix...)."""

    __slots__ = ("excluded", "inner")

    def __init__(self, excluded: frozenset | None = None, inner: tuple[Op, ...] = ()):
        self.excluded, self.inner = excluded, inner
        self.kind = "anything-but"
        self.spec = ("values", excluded) if excluded is not None else tuple(op.spec for op in inner)

    def test(self, value):
        if self.excluded is not None:
            return scalar_key(value) not in self.excluded
        return not (isinstance(value, str) and any(op.test(value) for op in self.inner))


# --------------------------------------------------------------------------- compiled tree

class Leaf:
    """A list of alternatives at one field: exact values (a set of keys) plus operators."""

    __slots__ = ("exact", "ops", "exists_true", "exists_false")

    def __init__(self, exact: frozenset, ops: tuple[Op, ...], exists_true: bool, exists_false: bool):
        self.exact, self.ops = exact, ops
        self.exists_true, self.exists_false = exists_true, exists_false

    # flat on purpose: every pattern leaf of every event runs it (bench routing)
    def matches(self, value: Any) -> bool:  # noqa: C901
        if value is MISSING:
            return self.exists_false
        cls = value.__class__
        if cls is int or cls is float:  # a number is its own key, and its own only scalar
            if self.exists_true or value in self.exact:
                return True
            for op in self.ops:
                if op.test(value):
                    return True
            return False
        if isinstance(value, str):
            if value in self.exact or self.exists_true:
                return True
            return any(op.test(value) for op in self.ops)
        values = scalars(value, [])
        if not values:
            return self.exists_false
        if self.exists_true:
            return True
        exact, ops = self.exact, self.ops
        for item in values:
            if scalar_key(item) in exact:
                return True
            for op in ops:
                if op.test(item):
                    return True
        return False


class ObjectPattern:
    """Fields that must all match, plus at most one ``$or`` of alternative objects."""

    __slots__ = ("fields", "alternatives")

    def __init__(self, fields: tuple, alternatives: tuple):
        self.fields, self.alternatives = fields, alternatives

    def matches(self, value: Any) -> bool:
        if type(value) is dict:  # the common case first, without the Mapping ABC check
            get = value.get
        else:
            if isinstance(value, ARRAY):
                items = _elements(value, [])
                if items:
                    return any(self.matches(item) for item in items)
                value = MISSING
            get = value.get if isinstance(value, Mapping) else _absent
        for name, node in self.fields:
            if not node.matches(get(name, MISSING)):
                return False
        return not self.alternatives or any(alt.matches(value) for alt in self.alternatives)


def _absent(_name: str, default: Any) -> Any:
    return default


def _elements(value: Any, out: list) -> list:
    """Elements of a possibly nested array, flattened."""
    for item in value:
        if isinstance(item, ARRAY):
            _elements(item, out)
        else:
            out.append(item)
    return out


class CompiledPattern:
    """A validated event pattern; :meth:`matches` tests one event."""

    __slots__ = ("pattern", "_root")

    def __init__(self, pattern: Mapping, root: ObjectPattern):
        self.pattern = pattern
        self._root = root

    def matches(self, event: Any) -> bool:
        """True if ``event`` (a JSON object) satisfies the pattern."""
        return self._root.matches(event)

    def __repr__(self) -> str:
        return f"CompiledPattern({_plain(self.pattern)!r})"


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, ARRAY):
        return [_plain(v) for v in value]
    return value


# --------------------------------------------------------------------------- compiler

def compile_pattern(pattern: Mapping | CompiledPattern) -> CompiledPattern:
    """Validate an EventBridge event pattern and compile it for matching.

    Raises
    ------
    PatternError
        If the pattern is malformed; ``.path`` locates the culprit inside ``pattern``.

    Examples
    --------
    >>> p = compile_pattern({"detail": {"score": [{"numeric": [">", 0]}]}})
    >>> p.matches({"detail": {"score": 3}}), p.matches({"detail": {"score": "3"}})
    (True, False)
    """
    if isinstance(pattern, CompiledPattern):
        return pattern
    if not isinstance(pattern, Mapping):
        raise PatternError(f"an event pattern must be an object, got {_kind(pattern)}")
    return CompiledPattern(pattern, _compile_object(pattern, (), top=True))


def _kind(value: Any) -> str:
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, ARRAY):
        return "a list"
    shown = repr(value)
    shown = shown if len(shown) <= 60 else shown[:56] + "..."
    if is_number(value) and not _finite_number(value):
        return f"the out-of-range number {shown}"
    return f"{type(value).__name__} {shown}"


def _compile_object(obj: Mapping, path: tuple, top: bool = False) -> ObjectPattern:
    if not obj and not top:
        raise PatternError("an object in a pattern needs at least one field", path)
    fields, alternatives = [], ()
    for name, value in obj.items():
        here = path + (name,)
        if not isinstance(name, str):
            raise PatternError(f"pattern keys must be strings, got {name!r}", here)
        if name == "$or":
            alternatives = _compile_or(value, here)
        elif isinstance(value, Mapping):
            fields.append((name, _compile_object(value, here)))
        elif isinstance(value, ARRAY):
            fields.append((name, _compile_leaf(value, here)))
        else:
            raise PatternError(f"a pattern leaf must be a list of values, got {_kind(value)}", here)
    return ObjectPattern(tuple(fields), alternatives)


def _compile_or(value: Any, path: tuple) -> tuple[ObjectPattern, ...]:
    if not isinstance(value, ARRAY) or len(value) < 2:
        raise PatternError("$or must be a list of at least two object patterns", path)
    alternatives = []
    for i, alt in enumerate(value):
        if not isinstance(alt, Mapping):
            raise PatternError(f"each $or alternative must be an object, got {_kind(alt)}", path + (i,))
        alternatives.append(_compile_object(alt, path + (i,)))
    return tuple(alternatives)


def _compile_leaf(values: Any, path: tuple) -> Leaf:
    if not values:
        raise PatternError("a pattern leaf must not be an empty list (it would match nothing)", path)
    exact, ops, exists = set(), {}, set()
    for i, item in enumerate(values):
        here = path + (i,)
        if isinstance(item, Mapping):
            op = _compile_operator(item, here)
            if isinstance(op, bool):
                exists.add(op)
            else:
                ops.setdefault((op.kind, op.spec), op)
        elif isinstance(item, ARRAY):
            raise PatternError("nested lists are not allowed in a pattern leaf", here)
        elif item is None or isinstance(item, (str, bool)) or _finite_number(item):
            exact.add(scalar_key(item))
        else:
            raise PatternError(f"unsupported value in a pattern leaf: {_kind(item)}", here)
    return Leaf(frozenset(exact), tuple(ops.values()), True in exists, False in exists)


def _finite_number(value: Any) -> bool:
    """A number a float can hold: not NaN, not infinite, and no integer beyond ±1.8e308."""
    try:
        return is_number(value) and math.isfinite(value)
    except OverflowError:  # math.isfinite converts an int to a float first
        return False


def _compile_operator(item: Mapping, path: tuple) -> Op | bool:
    """One ``{"operator": argument}`` element; ``exists`` compiles to its bool."""
    if len(item) != 1:
        got = sorted(map(str, item))
        raise PatternError(f"an operator object must have exactly one key, got {got}", path)
    ((name, arg),) = item.items()
    here = path + (name,)
    compiler = _OPERATOR_COMPILERS.get(name)
    if compiler is None:
        raise PatternError(f"unknown operator {name!r}{_suggest(name, OPERATORS)}", here)
    return compiler(arg, here)


def _suggest(name: Any, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(str(name), list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else f" (expected one of {', '.join(choices)})"


def _string_arg(op: str, arg: Any, path: tuple) -> str:
    if not isinstance(arg, str):
        raise PatternError(f"{op}: expected a string, got {_kind(arg)}", path)
    return arg


def _ignore_case_arg(op: str, arg: Any, path: tuple) -> tuple[str, bool]:
    """``"text"`` or ``{"equals-ignore-case": "text"}`` (prefix and suffix)."""
    if isinstance(arg, Mapping):
        if list(arg) != ["equals-ignore-case"]:
            raise PatternError(
                f'{op}: expected a string or {{"equals-ignore-case": string}}, '
                f"got keys {sorted(map(str, arg))}",
                path,
            )
        return _string_arg(
            f"{op}: equals-ignore-case", arg["equals-ignore-case"], path + ("equals-ignore-case",)
        ), True
    if not isinstance(arg, str):
        raise PatternError(
            f'{op}: expected a string or {{"equals-ignore-case": string}}, got {_kind(arg)}', path
        )
    return arg, False


def _op_prefix(arg, path):
    return Prefix(*_ignore_case_arg("prefix", arg, path))


def _op_suffix(arg, path):
    return Suffix(*_ignore_case_arg("suffix", arg, path))


def _op_equals_ignore_case(arg, path):
    return EqualsIgnoreCase(_string_arg("equals-ignore-case", arg, path))


def _op_wildcard(arg, path):
    text = _string_arg("wildcard", arg, path)
    pieces, i, star = [], 0, False
    while i < len(text):
        char = text[i]
        if char == "*":
            if star:
                raise PatternError(f"wildcard: consecutive '*' characters are not allowed in {text!r}", path)
            pieces.append(".*")
            star = True
            i += 1
            continue
        if char == "\\":
            if i + 1 == len(text) or text[i + 1] not in "*\\":
                raise PatternError(f"wildcard: '\\' must be followed by '*' or '\\' in {text!r}", path)
            char = text[i + 1]
            i += 1
        pieces.append(re.escape(char))
        star = False
        i += 1
    return Wildcard(text, re.compile("".join(pieces), re.DOTALL))


def _op_numeric(arg, path):
    if not isinstance(arg, ARRAY) or len(arg) not in (2, 4):
        raise PatternError(
            f"numeric: expected [operator, number] or [operator, number, operator, number], got {_kind(arg)}",
            path,
        )
    for i in range(0, len(arg), 2):
        op, number = arg[i], arg[i + 1]
        if op not in _NUMERIC_OPS:
            raise PatternError(
                f"numeric: expected comparison operator, got {op!r} (use one of {', '.join(_NUMERIC_OPS)})",
                path + (i,),
            )
        if not _finite_number(number):
            raise PatternError(
                f"numeric: expected a number after {op!r}, got {_kind(number)}", path + (i + 1,)
            )
    if len(arg) == 2:
        op, n = arg
        return Numeric(
            n if op in (">", ">=", "=") else -math.inf,
            op == ">",
            n if op in ("<", "<=", "=") else math.inf,
            op == "<",
        )
    (low_op, low, high_op, high) = arg
    if low_op not in (">", ">=") or high_op not in ("<", "<="):
        raise PatternError(
            f"numeric: a range is a lower bound ('>' or '>=') then an upper bound ('<' or '<='), "
            f"got {low_op!r} then {high_op!r}",
            path,
        )
    if not low < high:
        raise PatternError(f"numeric: the lower bound {low!r} must be below the upper bound {high!r}", path)
    return Numeric(low, low_op == ">", high, high_op == "<")


def _op_exists(arg, path):
    if not isinstance(arg, bool):
        raise PatternError(f"exists: expected true or false, got {_kind(arg)}", path)
    return arg


def _op_cidr(arg, path):
    text = _string_arg("cidr", arg, path)
    try:
        return Cidr(ipaddress.ip_network(text, strict=False))
    except ValueError:
        raise PatternError(
            f"cidr: {text!r} is not an IPv4 or IPv6 network such as '10.0.0.0/24'", path
        ) from None


def _op_anything_but(arg, path):
    if isinstance(arg, Mapping):
        return _anything_but_string_op(arg, path)
    if isinstance(arg, ARRAY):
        if not arg:
            raise PatternError("anything-but: the list of excluded values must not be empty", path)
        items = [(value, path + (i,)) for i, value in enumerate(arg)]
    else:
        items = [(arg, path)]
    for value, here in items:
        if not (isinstance(value, str) or _finite_number(value)):
            raise PatternError(
                f"anything-but: excluded values must be strings or numbers, got {_kind(value)}", here
            )
    return AnythingBut(excluded=frozenset(value for value, _ in items))


def _anything_but_string_op(arg: Mapping, path: tuple) -> AnythingBut:
    if len(arg) != 1 or next(iter(arg)) not in _STRING_OPS:
        names = sorted(map(str, arg))
        hint = _suggest(names[0], _STRING_OPS) if len(names) == 1 else ""
        raise PatternError(
            f"anything-but: expected one of {', '.join(_STRING_OPS)} inside, got {names}{hint}", path
        )
    ((name, inner),) = arg.items()
    here = path + (name,)
    if name in ("prefix", "suffix"):
        return AnythingBut(inner=(_OPERATOR_COMPILERS[name](inner, here),))
    texts = inner if isinstance(inner, ARRAY) else [inner]
    if not texts:
        raise PatternError(f"anything-but: {name}: the list must not be empty", here)
    return AnythingBut(inner=tuple(_OPERATOR_COMPILERS[name](t, here) for t in texts))


_OPERATOR_COMPILERS = {
    "anything-but": _op_anything_but,
    "cidr": _op_cidr,
    "equals-ignore-case": _op_equals_ignore_case,
    "exists": _op_exists,
    "numeric": _op_numeric,
    "prefix": _op_prefix,
    "suffix": _op_suffix,
    "wildcard": _op_wildcard,
}
