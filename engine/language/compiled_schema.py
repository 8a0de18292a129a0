"""Fast event-data checks: a JSON Schema compiled into a plain Python predicate.

:func:`compile_check` turns a schema into a function equivalent to
``Draft202012Validator(schema).is_valid`` for a subset of JSON Schema; for any schema that uses
something outside the subset it returns ``None`` and the caller keeps using jsonschema.

The subset: boolean schemas; ``type`` (a name or a list of names); ``enum``, ``const``;
``minimum``, ``maximum``, ``exclusiveMinimum``, ``exclusiveMaximum``, ``multipleOf``;
``minLength``, ``maxLength``, ``pattern``; ``items`` (one schema), ``minItems``, ``maxItems``,
``uniqueItems``; ``properties``, ``required``, ``additionalProperties``, ``minProperties``,
``maxProperties``, ``propertyNames``; ``allOf``, ``anyOf``, ``oneOf``, ``not``, ``if``/``then``/
``else``; and ``$ref`` to ``#`` or a JSON pointer inside the same schema (recursion included).
Ignored, as jsonschema ignores them: the annotations ``title``, ``description``, ``default``,
``examples``, ``$comment``, ``format`` (jsonschema checks no format unless given a format
checker), ``$defs`` (compiled when a ``$ref`` reaches them) and a top-level ``$schema`` and
``$id`` (the validator's class fixes the dialect there; in a subschema ``$schema`` switches
dialects and ``$id`` moves the base of references, so both are refused). Any other keyword, an unknown type
name, a regex Python cannot compile, or a keyword
value of the wrong JSON type makes the whole schema unsupported.

Semantics mirror jsonschema's, not only the specification's: ``integer`` accepts ``1.0``,
booleans are neither integers nor numbers, ``enum``/``const`` compare with jsonschema's equality
(``1 == 1.0`` but ``True != 1``, recursively), ``pattern`` is ``re.search``, lengths count code
points, ``uniqueItems`` follows jsonschema's sort-then-compare algorithm. Keywords are checked in
the schema's order and the first failure ends the check, so even the rare instance on which
jsonschema raises (``multipleOf`` on NaN) raises here too.

The predicate is built from closures specialised per keyword: no schema lookups at call time.
The shapes event data usually has are one closure each: ``type: object`` with ``required``/
``properties`` (whose lone types, string enums and numeric ranges are tested inline) and
``type: array`` with ``items``/``minItems``/``maxItems``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from fractions import Fraction
from itertools import pairwise
from numbers import Number
from typing import Any

Check = Callable[[Any], bool]

__all__ = ["compile_check"]


class _Unsupported(Exception):
    """The schema uses something outside the subset."""


def compile_check(schema: Any) -> Check | None:
    """A predicate equivalent to ``Draft202012Validator(schema).is_valid``, or None if unsupported."""
    _ROOTS.append((schema, {}))
    try:
        return _compile(schema, top=True)
    except (_Unsupported, RecursionError):
        return None
    finally:
        _ROOTS.pop()


# The schema being compiled and its compiled `$ref` targets, for `$ref` to resolve against.
_ROOTS: list[tuple[Any, dict[str, Check]]] = []


# --- jsonschema's notions of type and equality ---------------------------------------------


def _is_number(x: Any) -> bool:
    t = type(x)
    if t is int or t is float:
        return True
    return not isinstance(x, bool) and isinstance(x, Number)


def _is_integer(x: Any) -> bool:
    t = type(x)
    if t is int:
        return True
    if t is float:
        return x.is_integer()
    if isinstance(x, bool):
        return False
    return isinstance(x, int) or (isinstance(x, float) and x.is_integer())


_TRUE, _FALSE = object(), object()  # stand-ins so that True and False equal only themselves


def _unbool(x: Any) -> Any:
    if x is True:
        return _TRUE
    if x is False:
        return _FALSE
    return x


def _equal(a: Any, b: Any) -> bool:
    """jsonschema's equality: JSON values, with booleans distinct from numbers at every depth."""
    if a is b:
        return True
    if isinstance(a, str) or isinstance(b, str):
        return a == b
    if isinstance(a, Sequence) and isinstance(b, Sequence):
        if len(a) != len(b):
            return False
        for x, y in zip(a, b):
            if not _equal(x, y):
                return False
        return True
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        if len(a) != len(b):
            return False
        for key, value in a.items():
            if key not in b or not _equal(value, b[key]):
                return False
        return True
    return _unbool(a) == _unbool(b)


def _unique(items: list) -> bool:
    """jsonschema's uniqueness: sort when the items allow it and compare neighbours, else all pairs."""
    try:
        ordered = sorted(_unbool(x) for x in items)
        for left, right in pairwise(ordered):
            if _equal(left, right):
                return False
    except TypeError:  # items of kinds that do not order: compare every pair
        seen: list = []
        for x in items:
            x = _unbool(x)
            for earlier in seen:
                if _equal(earlier, x):
                    return False
            seen.append(x)
    return True


# --- compiling ---------------------------------------------------------------------------


def _always(x: Any) -> bool:
    return True


def _never(x: Any) -> bool:
    return False


_CLASSES = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None)}
_TYPES = frozenset(_CLASSES) | {"number", "integer"}
_IGNORED = frozenset({"title", "description", "default", "examples", "$comment", "format", "$defs"})


def _is_num_value(v: Any) -> bool:
    return type(v) in (int, float)


def _compile(schema: Any, top: bool = False) -> Check:
    if schema is True:
        return _always
    if schema is False:
        return _never
    if type(schema) is not dict:
        raise _Unsupported
    checks: list[Check] = []
    keywords: list[str] = []
    for key, value in schema.items():
        if key in _IGNORED:
            if key == "$defs" and type(value) is not dict:
                raise _Unsupported
            continue
        if key in ("$schema", "$id") and top:
            continue
        build = _KEYWORDS.get(key) if type(key) is str else None
        if build is None:
            raise _Unsupported
        check = build(value, schema)
        if check is not _always:
            checks.append(check)
            keywords.append(key)
    return (
        _object_shape(schema, keywords, checks) or _array_shape(schema, keywords, checks) or _all_of(checks)
    )


def _object_shape(schema: dict, keywords: list[str], checks: list[Check]) -> Check | None:
    """``type: object`` with ``required`` and/or ``properties`` (an event's data, usually) as one check.

    The same verdict as the keywords one after another: a non-object fails ``type`` and passes
    the others; on an object, ``required`` and ``properties`` run in the schema's order.
    """
    if (
        schema.get("type") != "object"
        or keywords[0:1] != ["type"]
        or len(keywords) < 2
        or not set(keywords[1:]) <= {"required", "properties"}
    ):
        return None
    found = dict(zip(keywords, checks))
    names = found["required"].names if "required" in found else ()
    entries = found["properties"].entries if "properties" in found else ()
    return _object_check(True, names, entries, keywords[1] == "required")


def _all_of(checks: list[Check]) -> Check:
    if _never in checks:  # keeps the schema order up to the first always-failing keyword
        checks = checks[: checks.index(_never) + 1]
    if not checks:
        return _always
    if len(checks) == 1:
        return checks[0]
    if len(checks) == 2:
        first, second = checks

        def both(x: Any) -> bool:
            return first(x) and second(x)

        return both
    if len(checks) == 3:
        first, second, third = checks

        def three(x: Any) -> bool:
            return first(x) and second(x) and third(x)

        return three
    sequence = tuple(checks)

    def every(x: Any) -> bool:
        for check in sequence:
            if not check(x):
                return False
        return True

    return every


# --- one builder per keyword: (keyword value, whole schema) -> check -------------------------


def _type_names(value: Any) -> list[str]:
    """The type names of a ``type`` keyword (a name or a list of them); _Unsupported if any is unknown."""
    names = [value] if type(value) is str else value
    if type(names) is not list or any(type(n) is not str or n not in _TYPES for n in names):
        raise _Unsupported
    return names


def _type(value: Any, schema: dict) -> Check:
    names = _type_names(value)
    if not names:
        return _never
    classes = tuple(dict.fromkeys(_CLASSES[n] for n in names if n in _CLASSES))
    if "number" in names:
        numeric: Check | None = _is_number
    elif "integer" in names:
        numeric = _is_integer
    else:
        numeric = None
    if numeric is not None and not classes:
        return numeric
    if numeric is not None:

        def class_or_numeric(x: Any) -> bool:
            return isinstance(x, classes) or numeric(x)

        return class_or_numeric
    if classes == (type(None),):
        return lambda x: x is None
    if len(classes) == 1:
        (cls,) = classes

        def of_class(x: Any) -> bool:
            return isinstance(x, cls)

        return of_class

    def of_classes(x: Any) -> bool:
        return isinstance(x, classes)

    return of_classes


def _enum(value: Any, schema: dict) -> Check:
    if type(value) is not list:
        raise _Unsupported
    options = tuple(value)
    if not options:
        return _never
    if all(type(o) is str for o in options):
        strings = frozenset(options)

        def one_of_strings(x: Any) -> bool:
            if type(x) is str:
                return x in strings
            for option in options:
                if _equal(option, x):
                    return True
            return False

        return one_of_strings

    def one_of(x: Any) -> bool:
        for option in options:
            if _equal(option, x):
                return True
        return False

    return one_of


def _const(value: Any, schema: dict) -> Check:
    def equals(x: Any) -> bool:
        return _equal(x, value)

    return equals


def _numeric_value(value: Any) -> Any:
    if not _is_num_value(value):
        raise _Unsupported
    return value


def _minimum(value: Any, schema: dict) -> Check:
    bound = _numeric_value(value)

    def at_least(x: Any) -> bool:
        t = type(x)
        if t is int or t is float or _is_number(x):
            return not x < bound
        return True

    return at_least


def _maximum(value: Any, schema: dict) -> Check:
    bound = _numeric_value(value)

    def at_most(x: Any) -> bool:
        t = type(x)
        if t is int or t is float or _is_number(x):
            return not x > bound
        return True

    return at_most


def _exclusive_minimum(value: Any, schema: dict) -> Check:
    bound = _numeric_value(value)

    def above(x: Any) -> bool:
        t = type(x)
        if t is int or t is float or _is_number(x):
            return not x <= bound
        return True

    return above


def _exclusive_maximum(value: Any, schema: dict) -> Check:
    bound = _numeric_value(value)

    def below(x: Any) -> bool:
        t = type(x)
        if t is int or t is float or _is_number(x):
            return not x >= bound
        return True

    return below


def _multiple_of(value: Any, schema: dict) -> Check:
    step = _numeric_value(value)
    if not step > 0:
        raise _Unsupported
    if type(step) is float:
        # a float quotient is integral or not; it can overflow to infinity, then count exactly
        def multiple_of_float(x: Any) -> bool:
            if not _is_number(x):
                return True
            quotient = x / step
            try:
                return int(quotient) == quotient
            except OverflowError:
                return (Fraction(x) / Fraction(step)).denominator == 1

        return multiple_of_float

    def multiple_of_int(x: Any) -> bool:
        if not _is_number(x):
            return True
        return not x % step

    return multiple_of_int


def _length_value(value: Any) -> Any:
    if not _is_num_value(value):
        raise _Unsupported
    return value


def _min_length(value: Any, schema: dict) -> Check:
    bound = _length_value(value)

    def long_enough(x: Any) -> bool:
        return not isinstance(x, str) or not len(x) < bound

    return long_enough


def _max_length(value: Any, schema: dict) -> Check:
    bound = _length_value(value)

    def short_enough(x: Any) -> bool:
        return not isinstance(x, str) or not len(x) > bound

    return short_enough


def _pattern(value: Any, schema: dict) -> Check:
    if type(value) is not str:
        raise _Unsupported
    try:
        search = re.compile(value).search
    except (re.error, RecursionError, OverflowError, ValueError):
        raise _Unsupported from None

    def matches(x: Any) -> bool:
        return not isinstance(x, str) or search(x) is not None

    return matches


def _items(value: Any, schema: dict) -> Check:
    item = _compile(value)
    if item is _always:
        return _always
    if item is _never:
        return lambda x: not isinstance(x, list) or not x

    def each_item(x: Any) -> bool:
        if not isinstance(x, list):
            return True
        for element in x:
            if not item(element):
                return False
        return True

    return each_item


def _min_items(value: Any, schema: dict) -> Check:
    bound = _length_value(value)

    def enough_items(x: Any) -> bool:
        return not isinstance(x, list) or not len(x) < bound

    return enough_items


def _max_items(value: Any, schema: dict) -> Check:
    bound = _length_value(value)

    def few_enough_items(x: Any) -> bool:
        return not isinstance(x, list) or not len(x) > bound

    return few_enough_items


def _unique_items(value: Any, schema: dict) -> Check:
    if type(value) is not bool:
        raise _Unsupported
    if not value:
        return _always
    return lambda x: not isinstance(x, list) or _unique(x)


def _property_names(schema: dict) -> frozenset:
    properties = schema.get("properties", {})
    if type(properties) is not dict:
        raise _Unsupported
    return frozenset(properties)


def _array_shape(schema: dict, keywords: list[str], checks: list[Check]) -> Check | None:
    """``type: array`` with ``items`` and/or ``minItems``/``maxItems`` as one check.

    The same verdict as the keywords one after another: a non-array fails ``type`` and passes
    the others; on an array the bounds are checked before or after the items, as in the
    schema (only an item check that raises could tell the difference).
    """
    rest = keywords[1:]
    if (
        schema.get("type") != "array"
        or keywords[0:1] != ["type"]
        or not rest
        or not set(rest) <= {"items", "minItems", "maxItems"}
    ):
        return None
    if "items" in rest and 0 < rest.index("items") < len(rest) - 1:
        return None  # bounds on both sides of `items`: left to the general path
    bounds_first = not rest or rest[0] != "items"
    low, high = schema.get("minItems", 0), schema.get("maxItems", math.inf)
    items = checks[keywords.index("items")] if "items" in rest else None  # the check of `items` on the array
    sub = schema.get("items") if items is not None else None
    keys = sub.keys() - _IGNORED if type(sub) is dict else None
    cls = (
        _CLASSES[sub["type"]]
        if keys == {"type"} and type(sub["type"]) is str and sub["type"] in _CLASSES
        else None
    )  # items of one class: tested here

    def array_shape(x: Any) -> bool:
        if not isinstance(x, list):
            return False
        if bounds_first and (len(x) < low or len(x) > high):
            return False
        if cls is not None:
            for element in x:
                if not isinstance(element, cls):
                    return False
        elif items is not None and not items(x):
            return False
        return bounds_first or not (len(x) < low or len(x) > high)

    return array_shape


# How a property's value is checked inside an object check (see _property_entry).
_CLASS, _STRINGS, _RANGE, _CHECK = range(4)
_BOUNDED = frozenset({"type", "minimum", "maximum"})
_EXACT = {"integer": (int,), "number": (int, float)}


def _properties(value: Any, schema: dict) -> Check:
    if type(value) is not dict or any(type(name) is not str for name in value):
        raise _Unsupported
    entries = []
    for name, subschema in value.items():
        check = _compile(subschema)
        if check is not _always:
            entries.append(_property_entry(name, subschema, check))
    if not entries:
        return _always
    return _object_check(False, (), tuple(entries), False)


def _property_entry(name: str, subschema: Any, check: Check) -> tuple:
    """(name, kind, argument, check): the common subschemas are tested inline, without a call.

    ``_CLASS``: a lone one-class ``type`` (isinstance). ``_STRINGS``: a lone ``enum`` of strings
    (a string is looked up; anything else goes to *check*). ``_RANGE``: ``integer``/``number``
    with ``minimum``/``maximum``, argument (exact types, low, high); a value of an exact type
    is compared, anything else (booleans, 1.0 for an integer...) goes to *check*.
    """
    keys = subschema.keys() - _IGNORED if type(subschema) is dict else None
    if keys == {"type"} and type(subschema["type"]) is str and subschema["type"] in _CLASSES:
        return name, _CLASS, _CLASSES[subschema["type"]], check
    if keys == {"enum"} and all(type(o) is str for o in subschema["enum"]):
        return name, _STRINGS, frozenset(subschema["enum"]), check
    if (
        keys
        and "type" in keys
        and keys <= _BOUNDED
        and type(subschema["type"]) is str
        and subschema["type"] in _EXACT
    ):
        low, high = subschema.get("minimum", -math.inf), subschema.get("maximum", math.inf)
        return name, _RANGE, (_EXACT[subschema["type"]], low, high), check
    return name, _CHECK, None, check


def _object_check(typed: bool, names: tuple, entries: tuple, required_first: bool) -> Check:  # noqa: C901
    """``required`` *names* and ``properties`` *entries* (one may be empty); *typed*: non-objects fail."""

    # one closure, flat on purpose: it runs on every event's data (bench e2e); a call per
    # property would cost more than its branches
    def object_shape(x: Any) -> bool:  # noqa: C901
        if not isinstance(x, dict):
            return not typed
        if required_first:
            for name in names:
                if name not in x:
                    return False
        for name, kind, arg, check in entries:
            if name not in x:
                continue
            v = x[name]
            if kind == _CLASS:
                if not isinstance(v, arg):
                    return False
            elif kind == _STRINGS and type(v) is str:
                if v not in arg:
                    return False
            elif kind == _RANGE and type(v) in arg[0]:
                if v < arg[1] or v > arg[2]:
                    return False
            elif not check(v):
                return False
        if not required_first:
            for name in names:
                if name not in x:
                    return False
        return True

    object_shape.names, object_shape.entries = names, entries  # type: ignore[attr-defined]
    return object_shape


def _required(value: Any, schema: dict) -> Check:
    if type(value) is not list or any(type(name) is not str for name in value):
        raise _Unsupported
    names = tuple(value)
    if not names:
        return _always

    def has_all(x: Any) -> bool:
        if not isinstance(x, dict):
            return True
        for name in names:
            if name not in x:
                return False
        return True

    has_all.names = names  # type: ignore[attr-defined]
    return has_all


def _additional_properties(value: Any, schema: dict) -> Check:
    known = _property_names(schema)
    extra = _compile(value)
    if extra is _always:
        return _always
    if extra is _never:

        def no_extras(x: Any) -> bool:
            if not isinstance(x, dict):
                return True
            for name in x:
                if name not in known:
                    return False
            return True

        return no_extras

    def extras_valid(x: Any) -> bool:
        if not isinstance(x, dict):
            return True
        for name in x:
            if name not in known and not extra(x[name]):
                return False
        return True

    return extras_valid


# --- references and combinations --------------------------------------------------------


def _ref(value: Any, schema: dict) -> Check:
    """A local reference (``#`` or ``#/json/pointer``) into the schema being compiled."""
    if type(value) is not str or not (value == "#" or value.startswith("#/")):
        raise _Unsupported
    root, done = _ROOTS[-1]
    if value in done:
        return done[value]
    target: Any = root
    for part in value[2:].split("/") if value != "#" else ():
        part = part.replace("~1", "/").replace("~0", "~")
        if type(target) is dict and part in target:
            target = target[part]
        elif type(target) is list and part.isdigit() and int(part) < len(target):
            target = target[int(part)]
        else:
            raise _Unsupported
    compiled: list[Check] = []
    done[value] = lambda x: compiled[0](x)  # what a recursive reference calls while the target compiles
    compiled.append(_compile(target))
    done[value] = compiled[0]
    return compiled[0]


def _subschemas(value: Any) -> list[Check]:
    if type(value) is not list or not value:
        raise _Unsupported
    return [_compile(sub) for sub in value]


def _all_of_keyword(value: Any, schema: dict) -> Check:
    return _all_of([c for c in _subschemas(value) if c is not _always])


def _any_of(value: Any, schema: dict) -> Check:
    checks = tuple(_subschemas(value))
    return lambda x: any(check(x) for check in checks)


def _one_of(value: Any, schema: dict) -> Check:
    checks = tuple(_subschemas(value))
    return lambda x: sum(1 for check in checks if check(x)) == 1


def _not(value: Any, schema: dict) -> Check:
    check = _compile(value)
    return lambda x: not check(x)


def _if(value: Any, schema: dict) -> Check:
    condition = _compile(value)
    then = _compile(schema.get("then", True))
    otherwise = _compile(schema.get("else", True))
    return lambda x: then(x) if condition(x) else otherwise(x)


def _taken_by_if(value: Any, schema: dict) -> Check:
    """``then``/``else`` act through ``if`` (alone, jsonschema ignores them); still compiled, so
    a subschema outside the subset makes the whole schema unsupported."""
    _compile(value)
    return _always


def _min_properties(value: Any, schema: dict) -> Check:
    if type(value) is not int or value < 0:
        raise _Unsupported
    return lambda x: not isinstance(x, dict) or len(x) >= value


def _max_properties(value: Any, schema: dict) -> Check:
    if type(value) is not int or value < 0:
        raise _Unsupported
    return lambda x: not isinstance(x, dict) or len(x) <= value


def _property_names_keyword(value: Any, schema: dict) -> Check:
    check = _compile(value)
    if check is _always:
        return _always
    return lambda x: not isinstance(x, dict) or all(check(name) for name in x)


_KEYWORDS: dict[str, Callable[[Any, dict], Check]] = {
    "$ref": _ref,
    "allOf": _all_of_keyword,
    "anyOf": _any_of,
    "oneOf": _one_of,
    "not": _not,
    "if": _if,
    "then": _taken_by_if,
    "else": _taken_by_if,
    "minProperties": _min_properties,
    "maxProperties": _max_properties,
    "propertyNames": _property_names_keyword,
    "type": _type,
    "enum": _enum,
    "const": _const,
    "minimum": _minimum,
    "maximum": _maximum,
    "exclusiveMinimum": _exclusive_minimum,
    "exclusiveMaximum": _exclusive_maximum,
    "multipleOf": _multiple_of,
    "minLength": _min_length,
    "maxLength": _max_length,
    "pattern": _pattern,
    "items": _items,
    "minItems": _min_items,
    "maxItems": _max_items,
    "uniqueItems": _unique_items,
    "properties": _properties,
    "required": _required,
    "additionalProperties": _additional_properties,
}
