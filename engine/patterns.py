"""EventBridge-compatible event patterns: compile one, match it, or index many.

A pattern is a JSON object that mirrors the shape of the events it selects. Fields are
ANDed, nested objects descend, and every leaf is a list whose elements are ORed::

    {"source": ["game.match"], "detail": {"score": [{"numeric": [">=", 40, "<", 60]}]}}

The matcher is shape-agnostic: it works on any JSON object (an EventBridge envelope, a
CloudEvent with ``data``...). Mappings of any kind are objects, lists and tuples are
arrays, so frozen patterns and events (``engine.model.freeze``) work unchanged.

Public API::

    compile_pattern(pattern) -> CompiledPattern   raises PatternError naming the bad path
    CompiledPattern.matches(event) -> bool
    PatternIndex().add(key, pattern); .match(event) -> [key, ...] in insertion order

Semantics, in one place (AWS EventBridge content filtering, with choices made where the
documentation is silent):

* An event value that is an array matches a leaf when any element matches. Arrays of
  objects are matched element-wise: all fields under one array come from the same element.
* Exact values are strings, numbers (compared numerically: ``5`` matches ``5.0``),
  booleans and null. ``[null]`` needs the field present with a null value.
* ``prefix``, ``suffix``, ``equals-ignore-case`` and ``wildcard`` match strings only;
  ``numeric`` matches JSON numbers only (never numeric strings, never booleans).
* ``anything-but`` matches a present value that is not excluded; a missing field never
  matches. Its string forms (``{"prefix": ...}`` and so on) exclude only strings.
* ``exists`` looks at leaf values: ``true`` needs at least one non-object value at the
  path (null counts), ``false`` needs none (a missing field, an empty array, or an object).
* ``$or`` takes a list of at least two object patterns, each combined with its siblings.
* The empty top-level pattern ``{}`` matches every event; an empty nested object is an error.
"""
from __future__ import annotations

import difflib
import ipaddress
import math
import re
from abc import ABC, abstractmethod
from bisect import bisect_left
from collections.abc import Mapping
from typing import Any, Hashable, Iterable

from engine.errors import MeshError

__all__ = ["CompiledPattern", "PatternError", "PatternIndex", "compile_pattern"]

_MISSING = object()
_TRUE = ("bool", True)     # dictionary keys for booleans, so that True never equals 1
_FALSE = ("bool", False)
_ARRAY = (list, tuple)
_SCALAR = frozenset({str, int, float, bool, type(None)})  # JSON scalars: never a Mapping (no ABC check needed)
_NUMERIC_OPS = ("<", "<=", "=", ">", ">=")
_STRING_OPS = ("prefix", "suffix", "equals-ignore-case", "wildcard")
OPERATORS = ("anything-but", "cidr", "equals-ignore-case", "exists", "numeric", "prefix",
             "suffix", "wildcard")
_MAX_ALTERNATIVES = 256    # $or expansions an index entry may have before it is scanned


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


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _key(value: Any) -> Any:
    """Dictionary key of a scalar: numbers compare numerically, booleans stay apart."""
    if value is True:
        return _TRUE
    if value is False:
        return _FALSE
    return value


def _scalars(value: Any, out: list) -> list:
    """Leaf values at a path: arrays flattened, objects contribute nothing."""
    if isinstance(value, _ARRAY):
        for item in value:
            _scalars(item, out)
    elif type(value) in _SCALAR or not isinstance(value, Mapping):
        out.append(value)
    return out


# --------------------------------------------------------------------------- operators

class _Op(ABC):
    """One element of a leaf that is not a plain value. ``spec`` identifies equal ops."""

    __slots__ = ("kind", "spec")

    @abstractmethod
    def test(self, value: Any) -> bool:
        """Whether a present scalar value passes this operator."""


class _Prefix(_Op):
    __slots__ = ("text", "fold")

    def __init__(self, text: str, fold: bool):
        self.text, self.fold = (text.lower() if fold else text), fold
        self.kind, self.spec = ("prefix-ic" if fold else "prefix"), (self.text, fold)

    def test(self, value):
        return isinstance(value, str) and (value.lower() if self.fold else value).startswith(self.text)


class _Suffix(_Op):
    __slots__ = ("text", "fold")

    def __init__(self, text: str, fold: bool):
        self.text, self.fold = (text.lower() if fold else text), fold
        self.kind, self.spec = ("suffix-ic" if fold else "suffix"), (self.text, fold)

    def test(self, value):
        return isinstance(value, str) and (value.lower() if self.fold else value).endswith(self.text)


class _EqualsIgnoreCase(_Op):
    __slots__ = ("text",)

    def __init__(self, text: str):
        self.text = text.lower()
        self.kind, self.spec = "equals-ignore-case", self.text

    def test(self, value):
        return isinstance(value, str) and value.lower() == self.text


class _Wildcard(_Op):
    __slots__ = ("regex",)

    def __init__(self, text: str, regex: re.Pattern):
        self.regex = regex
        self.kind, self.spec = "wildcard", text

    def test(self, value):
        return isinstance(value, str) and self.regex.fullmatch(value) is not None


class _Numeric(_Op):
    __slots__ = ("low", "low_open", "high", "high_open")

    def __init__(self, low: float, low_open: bool, high: float, high_open: bool):
        self.low, self.low_open, self.high, self.high_open = low, low_open, high, high_open
        self.kind, self.spec = "numeric", (low, low_open, high, high_open)

    def test(self, value):
        cls = value.__class__
        if cls is not int and cls is not float and not _is_number(value):
            return False
        if value < self.low or (self.low_open and value == self.low):
            return False
        return value < self.high or (not self.high_open and value == self.high)

    def bounds(self) -> list[float]:
        return [b for b in (self.low, self.high) if math.isfinite(b)]


class _Cidr(_Op):
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


class _AnythingBut(_Op):
    """Excluded values (a set of keys) or an excluded string shape (prefix, suffix...)."""

    __slots__ = ("excluded", "inner")

    def __init__(self, excluded: frozenset | None = None, inner: tuple[_Op, ...] = ()):
        self.excluded, self.inner = excluded, inner
        self.kind = "anything-but"
        self.spec = ("values", excluded) if excluded is not None else tuple(op.spec for op in inner)

    def test(self, value):
        if self.excluded is not None:
            return _key(value) not in self.excluded
        return not (isinstance(value, str) and any(op.test(value) for op in self.inner))


# --------------------------------------------------------------------------- compiled tree

class _Leaf:
    """A list of alternatives at one field: exact values (a set of keys) plus operators."""

    __slots__ = ("exact", "ops", "exists_true", "exists_false")

    def __init__(self, exact: frozenset, ops: tuple[_Op, ...], exists_true: bool, exists_false: bool):
        self.exact, self.ops = exact, ops
        self.exists_true, self.exists_false = exists_true, exists_false

    def matches(self, value: Any) -> bool:
        if value is _MISSING:
            return self.exists_false
        cls = value.__class__
        if cls is str:
            if value in self.exact or self.exists_true:
                return True
            return any(op.test(value) for op in self.ops)
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
        values = _scalars(value, [])
        if not values:
            return self.exists_false
        if self.exists_true:
            return True
        exact, ops = self.exact, self.ops
        for item in values:
            if _key(item) in exact:
                return True
            for op in ops:
                if op.test(item):
                    return True
        return False


class _Object:
    """Fields that must all match, plus at most one ``$or`` of alternative objects."""

    __slots__ = ("fields", "alternatives")

    def __init__(self, fields: tuple, alternatives: tuple):
        self.fields, self.alternatives = fields, alternatives

    def matches(self, value: Any) -> bool:
        if type(value) is dict:  # the common case first, without the Mapping ABC check
            get = value.get
        else:
            if isinstance(value, _ARRAY):
                items = _elements(value, [])
                if items:
                    return any(self.matches(item) for item in items)
                value = _MISSING
            get = value.get if isinstance(value, Mapping) else _absent
        for name, node in self.fields:
            if not node.matches(get(name, _MISSING)):
                return False
        return not self.alternatives or any(alt.matches(value) for alt in self.alternatives)


def _absent(_name: str, default: Any) -> Any:
    return default


def _elements(value: Any, out: list) -> list:
    """Elements of a possibly nested array, flattened."""
    for item in value:
        if isinstance(item, _ARRAY):
            _elements(item, out)
        else:
            out.append(item)
    return out


class CompiledPattern:
    """A validated event pattern; :meth:`matches` tests one event."""

    __slots__ = ("pattern", "_root")

    def __init__(self, pattern: Mapping, root: _Object):
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
    if isinstance(value, _ARRAY):
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
    if isinstance(value, _ARRAY):
        return "a list"
    return f"{type(value).__name__} {value!r}"


def _compile_object(obj: Mapping, path: tuple, top: bool = False) -> _Object:
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
        elif isinstance(value, _ARRAY):
            fields.append((name, _compile_leaf(value, here)))
        else:
            raise PatternError(f"a pattern leaf must be a list of values, got {_kind(value)}", here)
    return _Object(tuple(fields), alternatives)


def _compile_or(value: Any, path: tuple) -> tuple[_Object, ...]:
    if not isinstance(value, _ARRAY) or len(value) < 2:
        raise PatternError("$or must be a list of at least two object patterns", path)
    alternatives = []
    for i, alt in enumerate(value):
        if not isinstance(alt, Mapping):
            raise PatternError(f"each $or alternative must be an object, got {_kind(alt)}", path + (i,))
        alternatives.append(_compile_object(alt, path + (i,)))
    return tuple(alternatives)


def _compile_leaf(values: Any, path: tuple) -> _Leaf:
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
        elif isinstance(item, _ARRAY):
            raise PatternError("nested lists are not allowed in a pattern leaf", here)
        elif item is None or isinstance(item, (str, bool)) or _finite_number(item):
            exact.add(_key(item))
        else:
            raise PatternError(f"unsupported value in a pattern leaf: {_kind(item)}", here)
    return _Leaf(frozenset(exact), tuple(ops.values()), True in exists, False in exists)


def _finite_number(value: Any) -> bool:
    return _is_number(value) and math.isfinite(value)


def _compile_operator(item: Mapping, path: tuple) -> _Op | bool:
    """One ``{"operator": argument}`` element; ``exists`` compiles to its bool."""
    if len(item) != 1:
        raise PatternError(f"an operator object must have exactly one key, got {sorted(map(str, item))}", path)
    (name, arg), = item.items()
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
            raise PatternError(f'{op}: expected a string or {{"equals-ignore-case": string}}, '
                               f"got keys {sorted(map(str, arg))}", path)
        return _string_arg(f"{op}: equals-ignore-case", arg["equals-ignore-case"],
                           path + ("equals-ignore-case",)), True
    if not isinstance(arg, str):
        raise PatternError(f'{op}: expected a string or {{"equals-ignore-case": string}}, got {_kind(arg)}', path)
    return arg, False


def _op_prefix(arg, path):
    return _Prefix(*_ignore_case_arg("prefix", arg, path))


def _op_suffix(arg, path):
    return _Suffix(*_ignore_case_arg("suffix", arg, path))


def _op_equals_ignore_case(arg, path):
    return _EqualsIgnoreCase(_string_arg("equals-ignore-case", arg, path))


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
    return _Wildcard(text, re.compile("".join(pieces), re.DOTALL))


def _op_numeric(arg, path):
    if not isinstance(arg, _ARRAY) or len(arg) not in (2, 4):
        raise PatternError(f"numeric: expected [operator, number] or [operator, number, operator, number], "
                           f"got {_kind(arg)}", path)
    for i in range(0, len(arg), 2):
        op, number = arg[i], arg[i + 1]
        if op not in _NUMERIC_OPS:
            raise PatternError(f"numeric: expected comparison operator, got {op!r} "
                               f"(use one of {', '.join(_NUMERIC_OPS)})", path + (i,))
        if not _finite_number(number):
            raise PatternError(f"numeric: expected a number after {op!r}, got {_kind(number)}", path + (i + 1,))
    if len(arg) == 2:
        op, n = arg
        return _Numeric(n if op in (">", ">=", "=") else -math.inf, op == ">",
                        n if op in ("<", "<=", "=") else math.inf, op == "<")
    (low_op, low, high_op, high) = arg
    if low_op not in (">", ">=") or high_op not in ("<", "<="):
        raise PatternError(f"numeric: a range is a lower bound ('>' or '>=') then an upper bound ('<' or '<='), "
                           f"got {low_op!r} then {high_op!r}", path)
    if not low < high:
        raise PatternError(f"numeric: the lower bound {low!r} must be below the upper bound {high!r}", path)
    return _Numeric(low, low_op == ">", high, high_op == "<")


def _op_exists(arg, path):
    if not isinstance(arg, bool):
        raise PatternError(f"exists: expected true or false, got {_kind(arg)}", path)
    return arg


def _op_cidr(arg, path):
    text = _string_arg("cidr", arg, path)
    try:
        return _Cidr(ipaddress.ip_network(text, strict=False))
    except ValueError:
        raise PatternError(f"cidr: {text!r} is not an IPv4 or IPv6 network such as '10.0.0.0/24'", path) from None


def _op_anything_but(arg, path):
    if isinstance(arg, Mapping):
        return _anything_but_string_op(arg, path)
    if isinstance(arg, _ARRAY):
        if not arg:
            raise PatternError("anything-but: the list of excluded values must not be empty", path)
        items = [(value, path + (i,)) for i, value in enumerate(arg)]
    else:
        items = [(arg, path)]
    for value, here in items:
        if not (isinstance(value, str) or _finite_number(value)):
            raise PatternError(f"anything-but: excluded values must be strings or numbers, got {_kind(value)}", here)
    return _AnythingBut(excluded=frozenset(value for value, _ in items))


def _anything_but_string_op(arg: Mapping, path: tuple) -> _AnythingBut:
    if len(arg) != 1 or next(iter(arg)) not in _STRING_OPS:
        names = sorted(map(str, arg))
        hint = _suggest(names[0], _STRING_OPS) if len(names) == 1 else ""
        raise PatternError(f"anything-but: expected one of {', '.join(_STRING_OPS)} inside, got {names}{hint}", path)
    (name, inner), = arg.items()
    here = path + (name,)
    if name in ("prefix", "suffix"):
        return _AnythingBut(inner=(_OPERATOR_COMPILERS[name](inner, here),))
    texts = inner if isinstance(inner, _ARRAY) else [inner]
    if not texts:
        raise PatternError(f"anything-but: {name}: the list must not be empty", here)
    return _AnythingBut(inner=tuple(_OPERATOR_COMPILERS[name](t, here) for t in texts))


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


# --------------------------------------------------------------------------- index
#
# Every pattern is expanded into alternatives (one per path through its $or branches), and
# each alternative gets one bit. Per field path, the index keeps the bitmask of alternatives
# that constrain the path and, for each leaf element, the bitmask of alternatives using it,
# in dictionaries keyed by exact value, by prefix or suffix, or by numeric segment. Matching
# one event looks up only the values the event carries, ORs the masks of satisfied elements,
# and kills every alternative that constrains a path its field did not satisfy: the cost
# grows with the number of distinct fields and satisfied elements, not with the number of
# patterns, and big-integer ORs do the per-pattern work 30 bits at a time.

class _TooManyAlternatives(Exception):
    pass


def _alternatives(obj: _Object, prefix: tuple, limit: int) -> list[tuple]:
    """The pattern as a disjunction of conjunctions of ``(path, leaf)`` constraints."""
    result: list[tuple] = [()]
    for name, node in obj.fields:
        path = prefix + (name,)
        options = [((path, node),)] if isinstance(node, _Leaf) else _alternatives(node, path, limit)
        result = _product(result, options, limit)
    if obj.alternatives:
        options = [c for alt in obj.alternatives for c in _alternatives(alt, prefix, limit)]
        result = _product(result, options, limit)
    return result


def _product(left: list[tuple], right: list[tuple], limit: int) -> list[tuple]:
    if len(left) * len(right) > limit:
        raise _TooManyAlternatives
    return [a + b for a in left for b in right]


def _or_into(table: dict, key: Any, bit: int) -> None:
    table[key] = table.get(key, 0) | bit


class _Field:
    """What the index knows about one field path; every ``int`` is a bitmask of alternatives."""

    __slots__ = ("constrained", "required", "exists_true", "exists_false", "exact", "affixes",
                 "ignore_case", "bounds", "segments", "scanned")

    def __init__(self) -> None:
        self.constrained = self.required = self.exists_true = self.exists_false = 0
        self.exact: dict = {}
        self.affixes: dict[str, dict[int, dict[str, int]]] = {}   # kind -> length -> text -> mask
        self.ignore_case: dict[str, int] = {}
        self.bounds: list = []        # sorted finite bounds of the numeric ranges
        self.segments: list = [0]     # mask per segment of the number line (see _add_range)
        self.scanned: dict = {}       # spec -> [op, mask]: anything-but, wildcard, cidr

    def add(self, bit: int, leaf: _Leaf) -> None:
        self.constrained |= bit
        if leaf.exists_true:
            self.exists_true |= bit
        if leaf.exists_false:
            self.exists_false |= bit
        self.required = self.constrained & ~self.exists_false
        for key in leaf.exact:
            _or_into(self.exact, key, bit)
        for op in leaf.ops:
            self._add_op(bit, op)

    def _add_op(self, bit: int, op: _Op) -> None:
        if isinstance(op, (_Prefix, _Suffix)):
            by_length = self.affixes.setdefault(op.kind, {})
            _or_into(by_length.setdefault(len(op.text), {}), op.text, bit)
        elif isinstance(op, _EqualsIgnoreCase):
            _or_into(self.ignore_case, op.text, bit)
        elif isinstance(op, _Numeric):
            self._add_range(bit, op)
        else:
            self.scanned.setdefault((op.kind, op.spec), [op, 0])[1] |= bit

    def satisfied(self, values: list) -> int:
        """Mask of alternatives whose leaf at this path accepts one of ``values``."""
        mask = self.exists_true
        exact, affixes, ranges, scanned = self.exact, self.affixes, self.bounds, self.scanned
        for value in values:
            hit = exact.get(_key(value))
            if hit:
                mask |= hit
            if isinstance(value, str):
                if affixes or self.ignore_case:
                    mask |= self._string_mask(value)
            elif ranges and _is_number(value) and value == value:     # not NaN
                mask |= self._numeric_mask(value)
            for op, op_mask in scanned.values():
                if op.test(value):
                    mask |= op_mask
        return mask

    def _string_mask(self, value: str) -> int:
        mask = 0
        lowered = value.lower() if (self.ignore_case or "prefix-ic" in self.affixes
                                    or "suffix-ic" in self.affixes) else value
        hit = self.ignore_case.get(lowered)
        if hit:
            mask |= hit
        for kind, by_length in self.affixes.items():
            text = lowered if kind.endswith("-ic") else value
            size = len(text)
            for length, table in by_length.items():
                if length <= size:
                    hit = table.get(text[:length] if kind.startswith("prefix") else text[size - length:])
                    if hit:
                        mask |= hit
        return mask

    def _add_range(self, bit: int, op: _Numeric) -> None:
        """OR ``bit`` into every segment of the number line that ``op`` accepts.

        ``bounds`` are the sorted finite bounds of all ranges at this path; segment ``2i``
        is the open interval below ``bounds[i]`` and ``2i + 1`` is ``bounds[i]`` itself.
        A new bound splits its interval in three, each inheriting the interval's mask.
        """
        bounds, segments = self.bounds, self.segments
        for bound in op.bounds():
            i = bisect_left(bounds, bound)
            if i == len(bounds) or bounds[i] != bound:
                bounds.insert(i, bound)
                segments[2 * i:2 * i + 1] = [segments[2 * i]] * 3
        first = 0 if op.low == -math.inf else 2 * bisect_left(bounds, op.low) + (2 if op.low_open else 1)
        last = len(segments) - 1 if op.high == math.inf else 2 * bisect_left(bounds, op.high) + (0 if op.high_open else 1)
        for segment in range(first, last + 1):
            segments[segment] |= bit

    def _numeric_mask(self, value: float) -> int:
        i = bisect_left(self.bounds, value)
        if i < len(self.bounds) and self.bounds[i] == value:
            return self.segments[2 * i + 1]
        return self.segments[2 * i]


def _set_bits(mask: int) -> list[int]:
    """Positions of the 1 bits of ``mask``, ascending."""
    digits = bin(mask)[:1:-1]
    found, i = [], digits.find("1")
    while i >= 0:
        found.append(i)
        i = digits.find("1", i + 1)
    return found


class PatternIndex:
    """Many patterns under caller-chosen keys; :meth:`match` finds those an event satisfies.

    Examples
    --------
    >>> index = PatternIndex()
    >>> index.add("big", {"detail": {"total": [{"numeric": [">", 100]}]}})
    >>> index.add("eu", {"detail": {"region": [{"prefix": "eu-"}]}})
    >>> index.match({"detail": {"total": 250, "region": "eu-west"}})
    ['big', 'eu']
    """

    def __init__(self) -> None:
        self._entries: list[tuple[Any, CompiledPattern]] = []
        self._owner: list[int] = []       # alternative bit -> entry number
        self._all = 0                     # every alternative
        self._free = 0                    # alternatives that need no field to be present
        self._verify = 0                  # alternatives the masks alone cannot decide
        self._shared_entries = False      # some entry owns several alternatives ($or)
        self._fields: list[_Field] = []
        self._field_ids: dict[tuple, int] = {}
        self._trie: dict[str, list] = {}  # name -> [field id or None, sub-trie]

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, key: Any, pattern: Mapping | CompiledPattern) -> None:
        """Index ``pattern`` (compiled or not) under ``key``; raises PatternError if malformed."""
        compiled = compile_pattern(pattern)
        entry = len(self._entries)
        self._entries.append((key, compiled))
        try:
            alternatives = _alternatives(compiled._root, (), _MAX_ALTERNATIVES)
        except _TooManyAlternatives:
            alternatives = None
        if alternatives is not None and len(alternatives) > 1:
            self._shared_entries = True
        for conjunction in alternatives if alternatives is not None else [()]:
            bit = 1 << len(self._owner)
            self._owner.append(entry)
            self._all |= bit
            if alternatives is None:
                self._verify |= bit     # unconstrained here: always a candidate, always checked
            paths = [path for path, _ in conjunction]
            if len(set(paths)) < len(paths):
                self._verify |= bit     # two leaves on one path ($or and a sibling): AND them later
            for path, leaf in conjunction:
                self._field(path).add(bit, leaf)
            if all(leaf.exists_false for _, leaf in conjunction):
                self._free |= bit

    def _field(self, path: tuple) -> _Field:
        fid = self._field_ids.get(path)
        if fid is None:
            fid = self._field_ids[path] = len(self._fields)
            self._fields.append(_Field())
            trie = self._trie
            for name in path[:-1]:
                trie = trie.setdefault(name, [None, {}])[1]
            trie.setdefault(path[-1], [None, {}])[0] = fid
        return self._fields[fid]

    def match(self, event: Any) -> list:
        """Keys of the patterns ``event`` satisfies, in the order they were added."""
        if not isinstance(event, Mapping):
            return [key for key, compiled in self._entries if compiled.matches(event)]
        found: dict[int, list] = {}
        nested = self._collect(event, self._trie, found)
        fields = self._fields
        union, kill = self._free, 0
        for fid, values in found.items():
            field = fields[fid]
            satisfied = field.satisfied(values)
            if nested:      # exists:false is judged per array element: let the check decide
                satisfied |= field.exists_false
            union |= satisfied
            kill |= field.constrained & ~satisfied
        survivors = union & ~kill   # every survivor needs no field or has a satisfied one
        absent = len(fields) - len(found)
        if absent and survivors:
            # Kill the survivors that need an absent field, unless there are so many absent
            # fields (patterns on many distinct fields) that checking survivors is cheaper.
            if absent * (1 + self._all.bit_length() // 4000) > 4 * survivors.bit_count():
                return self._keys(survivors, survivors, event)
            for fid, field in enumerate(fields):
                if fid not in found:
                    kill |= field.required
            survivors &= ~kill
        return self._keys(survivors, self._all if nested else self._verify, event)

    def _keys(self, survivors: int, verify: int, event: Any) -> list:
        bits = _set_bits(survivors)
        if not survivors & verify and not self._shared_entries:
            return [self._entries[entry][0] for entry in map(self._owner.__getitem__, bits)]
        check = set(_set_bits(survivors & verify))
        keys, last = [], -1
        for bit in bits:
            entry = self._owner[bit]
            if entry == last:
                continue
            last = entry
            key, compiled = self._entries[entry]
            if bit not in check or compiled.matches(event):
                keys.append(key)
        return keys

    def _collect(self, obj: Mapping, trie: dict, found: dict) -> bool:
        """Gather leaf values at indexed paths; True if one crossed an array of objects."""
        nested = False
        for name, (fid, sub) in trie.items():
            value = obj.get(name, _MISSING)
            if value is _MISSING:
                continue
            if isinstance(value, str):
                if fid is not None:
                    found.setdefault(fid, []).append(value)
            elif self._descend(value, fid, sub, found, False):
                nested = True
        return nested

    def _descend(self, value: Any, fid: int | None, sub: dict, found: dict, in_array: bool) -> bool:
        if type(value) not in _SCALAR and isinstance(value, Mapping):
            if not sub:
                return False
            return self._collect(value, sub, found) or in_array
        if isinstance(value, _ARRAY):
            nested = False
            for item in value:
                nested = self._descend(item, fid, sub, found, True) or nested
            return nested
        if fid is not None:
            found.setdefault(fid, []).append(value)
        return False
