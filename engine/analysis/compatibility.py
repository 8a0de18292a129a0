"""Can a reader's JSON Schema read what a writer's schema lets through?

`breaks(reader, writer)` answers for the subset of JSON Schema that event types use (`type`,
`enum`, `const`, `properties`, `required`, `additionalProperties`, `items`, numeric and length
bounds, `multipleOf`, `pattern`, `format`, `anyOf`/`oneOf`/`allOf`, local `$ref`s): it lists
the places where some data valid under the writer may be invalid under the reader. The
answer is sound, not complete: a keyword it cannot reason about counts as a break unless
both sides say the same thing, so "no breaks" is a proof, a break is a reason to look.

A schema registry's modes are pairs of such questions (Confluent's semantics):
backward — the new schema reads data written with the old one; forward — the old schema
reads new data; full — both. `mode_breaks` applies a mode to a history of versions.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Iterator, Mapping

MODES = ("none", "backward", "forward", "full", "backward_transitive", "forward_transitive",
         "full_transitive")
JSON_TYPES = ("null", "boolean", "object", "array", "number", "string", "integer")
# keywords that never make an instance invalid
# (`format` too: data is checked without format assertions, as jsonschema does by default)
_ANNOTATIONS = frozenset({"title", "description", "default", "examples", "$comment", "deprecated",
                          "readOnly", "writeOnly", "$schema", "$id", "$defs", "definitions", "$anchor",
                          "format"})
# keywords this module reasons about
_KNOWN = frozenset({"type", "enum", "const", "properties", "required", "additionalProperties", "items",
                    "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf",
                    "minLength", "maxLength", "minItems", "maxItems", "uniqueItems", "minProperties",
                    "maxProperties", "pattern", "anyOf", "oneOf", "allOf", "$ref"})
_MAX_DEPTH = 64  # local $refs may recurse; deeper than this is not followed


@dataclass(frozen=True, slots=True)
class Break:
    """One way data valid under the writer may be invalid under the reader, at *path* (the
    JSON Schema keyword path inside the reader's schema, e.g. ``("properties", "score", "type")``)
    and *field* (the data path, e.g. ``data.score``)."""

    path: tuple[str, ...]
    field: str
    message: str


@dataclass(frozen=True, slots=True)
class _Side:
    """A schema node with the root its local `$ref`s resolve against."""

    node: Any
    root: Any

    def at(self, node: Any) -> "_Side":
        return _Side(node, self.root)

    def get(self, key: str, default: Any = None) -> Any:
        return self.node.get(key, default) if isinstance(self.node, Mapping) else default


def breaks(reader: Any, writer: Any) -> list[Break]:
    """Every found way data valid under *writer* may fail *reader* (empty: the reader reads it all)."""
    return list(_subset(_Side(writer, writer), _Side(reader, reader), (), "data", 0))


def mode_breaks(mode: str, history: list[Any]) -> Iterator[tuple[int, int, Break]]:
    """The breaks of a *history* of schemas (oldest first) under a compatibility *mode*: each as
    ``(index of the newer, index of the older, break)``; a break of a backward check is in the
    newer schema (it cannot read the older's data), of a forward check in the older one."""
    if mode == "none":
        return
    transitive = mode.endswith("_transitive")
    base = mode.removesuffix("_transitive")
    for new in range(1, len(history)):
        olds = range(new) if transitive else [new - 1]
        for old in olds:
            if base in ("backward", "full"):
                for found in breaks(history[new], history[old]):
                    yield new, old, found
            if base in ("forward", "full"):
                for found in breaks(history[old], history[new]):
                    yield new, old, found


# --- the subset relation ----------------------------------------------------------------------

def _subset(w: _Side, r: _Side, path: tuple, field: str, depth: int) -> Iterator[Break]:
    """Whether every instance of *w* is one of *r*: the breaks found."""
    if depth > _MAX_DEPTH:
        if w.node != r.node:
            yield Break(path, field, "the schemas nest too deeply to compare")
        return
    w, r = _deref(w), _deref(r)
    if _anything(r.node) or w.node is False:
        return
    if r.node is False:
        yield Break(path, field, "the reader accepts nothing here, the writer may send a value")
        return
    if w.node is True:
        w = w.at({})
    finite = None if _has_combinator(w.node) else _finite(w.node)
    if finite is not None:  # a writer that lists its values: each is checked (a sound superset)
        yield from _values(finite, r, path, field, depth)
        return
    if _has_combinator(w.node) or _has_combinator(r.node):
        yield from _combinators(w, r, path, field, depth)
        return
    yield from _plain(w, r, path, field, depth)


def _plain(w: _Side, r: _Side, path: tuple, field: str, depth: int) -> Iterator[Break]:
    """Two schemas without combinators, keyword by keyword (the writer lists no values)."""
    if _finite(r.node) is not None:
        yield Break((*path, "enum"), field, "the reader lists the values it takes, the writer does not")
        return
    yield from _types(w, r, path, field)
    for check in (_numbers, _strings, _unknown):
        yield from check(w.node, r.node, path, field)
    types = _types_of(w.node)
    if types is None or "array" in types:
        yield from _arrays(w, r, path, field, depth)
    if types is None or "object" in types:
        yield from _objects(w, r, path, field, depth)


def _anything(node: Any) -> bool:
    return node is True or (isinstance(node, Mapping) and not (set(node) - _ANNOTATIONS))


def _deref(side: _Side) -> _Side:
    """Follow a local `$ref` (alone or with annotations); a remote one is left as written."""
    for _ in range(_MAX_DEPTH):
        ref = side.get("$ref")
        if not isinstance(ref, str) or not ref.startswith("#"):
            return side
        target = _pointer(side.root, ref)
        if target is None:
            return side
        rest = {k: v for k, v in side.node.items() if k != "$ref"}
        side = side.at({**target, **rest} if isinstance(target, Mapping) and rest else target)
    return side


def _pointer(root: Any, ref: str) -> Any:
    node = root
    for part in ref[1:].split("/")[1:] if ref != "#" else []:
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def _has_combinator(node: Any) -> bool:
    return isinstance(node, Mapping) and any(k in node for k in ("anyOf", "oneOf", "allOf"))


def _combinators(w: _Side, r: _Side, path: tuple, field: str, depth: int) -> Iterator[Break]:
    """A writer's `anyOf`/`oneOf`: each branch (with its siblings) must be readable; a reader's
    `allOf`: every branch must read the writer; a reader's `anyOf`: one branch must read it
    all; a reader's `oneOf` or a writer's `allOf` only if written the same."""
    wn, rn = w.node, r.node
    for kw in ("anyOf", "oneOf"):
        if isinstance(wn.get(kw), list):
            rest = {k: v for k, v in wn.items() if k != kw}
            for i, branch in enumerate(wn[kw]):
                merged = {**rest, **branch} if isinstance(branch, Mapping) else branch
                yield from _subset(w.at(merged), r, path, field, depth + 1)
            return
    if "allOf" in wn and wn.get("allOf") != rn.get("allOf"):
        yield Break((*path, "allOf"), field, "the writer's `allOf` differs from the reader's: cannot compare")
        return
    rest = {k: v for k, v in rn.items() if k not in ("anyOf", "oneOf", "allOf")}
    if isinstance(rn.get("allOf"), list):
        for i, branch in enumerate(rn["allOf"]):
            yield from _subset(w, r.at(branch), (*path, "allOf", str(i)), field, depth + 1)
    if isinstance(rn.get("anyOf"), list):
        if not any(not list(_subset(w, r.at(b), path, field, depth + 1)) for b in rn["anyOf"]):
            yield Break((*path, "anyOf"), field,
                        "no branch of the reader's `anyOf` reads all the writer sends")
    if "oneOf" in rn and rn.get("oneOf") != wn.get("oneOf"):
        yield Break((*path, "oneOf"), field, "the reader's `oneOf` differs from the writer's: cannot compare")
    if (_has_combinator(rn)) and set(rest) - _ANNOTATIONS:
        yield from _subset(w, r.at(rest), path, field, depth + 1)


def _finite(node: Any) -> list | None:
    """The values a schema allows when it lists them (`enum`, `const`), else None."""
    if "const" in node:
        return [node["const"]]
    if isinstance(node.get("enum"), list):
        return list(node["enum"])
    return None


def _values(values: list, r: _Side, path: tuple, field: str, depth: int) -> Iterator[Break]:
    """A writer that sends only listed values: each is checked against the reader itself."""
    for value in values:
        problem = _invalid(value, r, depth)
        if problem is not None:
            yield Break(path, field, f"the writer may send {value!r}, {problem}")
            return


def _invalid(value: Any, r: _Side, depth: int) -> str | None:
    """Why one *value* fails the reader's schema (the subset of keywords above), or None."""
    r = _deref(r)
    if depth > _MAX_DEPTH or _anything(r.node):
        return None
    if r.node is False:
        return "which the reader refuses"
    node = r.node
    for check in (_invalid_combined, _invalid_scalar, _invalid_container):
        problem = check(value, r, node, depth)
        if problem is not None:
            return problem
    return None


def _invalid_combined(value: Any, r: _Side, node: Mapping, depth: int) -> str | None:
    if any(_invalid(value, r.at(b), depth + 1) is not None for b in node.get("allOf", ())):
        return "which a branch of the reader's `allOf` refuses"
    if "anyOf" in node and all(_invalid(value, r.at(b), depth + 1) is not None for b in node["anyOf"]):
        return "which no branch of the reader's `anyOf` takes"
    if "oneOf" in node and sum(_invalid(value, r.at(b), depth + 1) is None for b in node["oneOf"]) != 1:
        return "which not exactly one branch of the reader's `oneOf` takes"
    return None


def _invalid_scalar(value: Any, r: _Side, node: Mapping, depth: int) -> str | None:
    kind = _json_type(value)
    declared = _types_of(node) if _finite(node) is None else None
    if declared is not None and not _type_allowed(kind, declared):
        return f"a {kind}, which the reader's type ({_or(declared)}) refuses"
    allowed = _finite(node)
    if allowed is not None and not any(_same_json(value, a) for a in allowed):
        return "which the reader's `enum` does not list"
    if kind in ("integer", "number"):
        low, high = _lower(node), _upper(node)
        if low is not None and (value < low[0] or (low[1] and value == low[0])):
            return f"below the reader's lower bound {_bound(low, '')}"
        if high is not None and (value > high[0] or (high[1] and value == high[0])):
            return f"above the reader's upper bound {_bound(high, '')}"
        step = node.get("multipleOf")
        if isinstance(step, (int, float)) and not math.isclose(value / step, round(value / step)):
            return f"not a multiple of {step}"
    if kind == "string":
        if len(value) < node.get("minLength", 0) or len(value) > node.get("maxLength", math.inf):
            return "whose length the reader's bounds refuse"
        if "pattern" in node and re.search(node["pattern"], value) is None:
            return f"which does not match the reader's pattern {node['pattern']!r}"
    return None


def _invalid_container(value: Any, r: _Side, node: Mapping, depth: int) -> str | None:
    if isinstance(value, list):
        if not node.get("minItems", 0) <= len(value) <= node.get("maxItems", math.inf):
            return "whose length the reader's bounds refuse"
        if "items" in node and any(_invalid(v, r.at(node["items"]), depth + 1) for v in value):
            return "an item of which the reader refuses"
        if node.get("uniqueItems") is True and any(
                _same_json(a, b) for i, a in enumerate(value) for b in value[i + 1:]):
            return "with repeated items, which the reader refuses"
    if isinstance(value, Mapping):
        if not node.get("minProperties", 0) <= len(value) <= node.get("maxProperties", math.inf):
            return "whose number of fields the reader's bounds refuse"
        missing = [k for k in node.get("required", ()) if k not in value]
        if missing:
            return f"which lacks {missing[0]!r}, required by the reader"
        props, extra = node.get("properties", {}), node.get("additionalProperties", True)
        for k, v in value.items():
            if _invalid(v, r.at(props.get(k, extra)), depth + 1) is not None:
                return f"whose field {k!r} the reader refuses"
    unknown = sorted(set(node) - _KNOWN - _ANNOTATIONS)
    return f"and the reader's `{unknown[0]}` cannot be checked" if unknown else None


def _same(a: Any, b: Any) -> bool:
    """JSON equality: 1 == 1.0, but True is not 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return a == b


def _same_json(a: Any, b: Any) -> bool:
    """Deep JSON equality (for `uniqueItems`)."""
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same_json(x, y) for x, y in zip(a, b))
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(_same_json(a[k], b[k]) for k in a)
    return not isinstance(a, (list, Mapping)) and not isinstance(b, (list, Mapping)) and _same(a, b)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer()):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _types_of(node: Any) -> set[str] | None:
    """The types a schema node allows (None: any); a listed value set gives its values' types."""
    finite = _finite(node)
    if finite is not None:
        return {_json_type(v) for v in finite}
    declared = node.get("type")
    if declared is None:
        return None
    return {declared} if isinstance(declared, str) else set(declared)


def _type_allowed(t: str, allowed: set[str]) -> bool:
    return t in allowed or (t == "integer" and "number" in allowed)


def _types(w: _Side, r: _Side, path: tuple, field: str) -> Iterator[Break]:
    rt = _types_of(r.node)
    if rt is None:
        return
    wt = _types_of(w.node)
    if wt is None:
        yield Break((*path, "type"), field, f"the reader only takes {_or(rt)}, the writer any type")
        return
    narrowed = sorted(t for t in wt if not _type_allowed(t, rt))
    if narrowed:
        yield Break((*path, "type"), field,
                    f"type narrowed: the writer may send {_or(narrowed)}, the reader takes {_or(rt)}")


def _can_be(node: Any, *types: str) -> bool:
    declared = _types_of(node)
    return declared is None or any(t in declared for t in types) or (
        "integer" in declared and "number" in types)


# --- numbers and strings: bounds ------------------------------------------------------------

def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _lower(node: Mapping) -> tuple[float, bool] | None:
    """The tighter of `minimum` and `exclusiveMinimum`: (bound, exclusive)."""
    bounds = [(node[kw], kw != "minimum") for kw in ("minimum", "exclusiveMinimum") if _number(node.get(kw))]
    return max(bounds, key=lambda b: (b[0], b[1])) if bounds else None


def _upper(node: Mapping) -> tuple[float, bool] | None:
    """The tighter of `maximum` and `exclusiveMaximum`: (bound, exclusive)."""
    bounds = [(node[kw], kw != "maximum") for kw in ("maximum", "exclusiveMaximum") if _number(node.get(kw))]
    return min(bounds, key=lambda b: (b[0], not b[1])) if bounds else None


def _negated(b: tuple | None) -> tuple | None:
    """An upper bound as the lower bound of the negated values."""
    return None if b is None else (-b[0], b[1])


def _within_lower(w: tuple | None, r: tuple | None) -> bool:
    """The writer's lower bound keeps its values at or above the reader's."""
    if r is None:
        return True
    if w is None:
        return False
    return w[0] > r[0] or (w[0] == r[0] and (w[1] or not r[1]))


def _numbers(w: Mapping, r: Mapping, path: tuple, field: str) -> Iterator[Break]:
    if not _can_be(w, "number", "integer"):
        return
    if not _within_lower(_lower(w), _lower(r)):
        yield Break((*path, "minimum"), field,
                    f"lower bound raised: the reader needs {_bound(_lower(r), '')}, "
                    f"the writer allows {_bound(_lower(w), 'no')}")
    if not _within_lower(_negated(_upper(w)), _negated(_upper(r))):
        yield Break((*path, "maximum"), field,
                    f"upper bound lowered: the reader needs {_bound(_upper(r), '')}, "
                    f"the writer allows {_bound(_upper(w), 'no')}")
    rm, wm = r.get("multipleOf"), w.get("multipleOf")
    if _number(rm) and not _divides(rm, wm):
        sent = "any number" if wm is None else f"multiples of {wm}"
        yield Break((*path, "multipleOf"), field,
                    f"the reader needs multiples of {rm}, the writer sends {sent}")


def _divides(r: float, w: Any) -> bool:
    if not isinstance(w, (int, float)) or w == 0:
        return False
    q = w / r
    return math.isclose(q, round(q)) and round(q) != 0


def _bound(b: tuple | None, none: str) -> str:
    if b is None:
        return f"{none} bound".strip()
    return f"{'exclusive ' if b[1] else ''}{b[0]}"


def _strings(w: Mapping, r: Mapping, path: tuple, field: str) -> Iterator[Break]:
    if _can_be(w, "string"):
        yield from _lengths(w, r, path, field, "minLength", "maxLength", "characters")
        if "pattern" in r and r["pattern"] != w.get("pattern"):
            yield Break((*path, "pattern"), field, f"the reader's `pattern` {r['pattern']!r} is not the "
                        f"writer's ({w['pattern']!r})" if "pattern" in w else
                        f"the reader adds `pattern` {r['pattern']!r}")


def _lengths(w: Mapping, r: Mapping, path: tuple, field: str, least: str, most: str, what: str
             ) -> Iterator[Break]:
    if least in r and w.get(least, 0) < r[least]:
        yield Break((*path, least), field,
                    f"the reader needs at least {r[least]} {what}, the writer allows {w.get(least, 0)}")
    if most in r and (most not in w or w[most] > r[most]):
        shown = f"up to {w[most]}" if most in w else "any number"
        yield Break((*path, most), field,
                    f"the reader takes at most {r[most]} {what}, the writer allows {shown}")


def _unknown(w: Mapping, r: Mapping, path: tuple, field: str) -> Iterator[Break]:
    """Keywords outside the subset: the reader's must be the writer's, word for word."""
    for kw in sorted(set(r) - _KNOWN - _ANNOTATIONS):
        if r[kw] != w.get(kw):
            yield Break((*path, kw), field, f"cannot compare `{kw}`: the reader's differs from the writer's")


# --- arrays and objects ---------------------------------------------------------------------------

def _arrays(w: _Side, r: _Side, path: tuple, field: str, depth: int) -> Iterator[Break]:
    wn, rn = w.node, r.node
    yield from _lengths(wn, rn, path, field, "minItems", "maxItems", "items")
    if rn.get("uniqueItems") is True and wn.get("uniqueItems") is not True:
        yield Break((*path, "uniqueItems"), field, "the reader needs unique items, the writer allows repeats")
    if "items" in rn:
        yield from _subset(w.at(wn.get("items", True)), r.at(rn["items"]), (*path, "items"), f"{field}[]",
                           depth + 1)


def _objects(w: _Side, r: _Side, path: tuple, field: str, depth: int) -> Iterator[Break]:
    wn, rn = w.node, r.node
    yield from _lengths(wn, rn, path, field, "minProperties", "maxProperties", "fields")
    yield from _required(wn, rn, path, field)
    wp, rp = wn.get("properties", {}), rn.get("properties", {})
    w_extra, r_extra = wn.get("additionalProperties", True), rn.get("additionalProperties", True)
    for name in sorted(set(wp) | set(rp)):
        at = (*path, "properties", name) if name in rp else (*path, "additionalProperties")
        sub = f"{field}.{name}"
        if name not in rp and r_extra is False:
            why = f"field {name!r} is no longer declared by the reader, which takes no other fields"
            yield Break(at, sub, why)
            continue
        yield from _subset(w.at(wp.get(name, w_extra)), r.at(rp.get(name, r_extra)), at, sub, depth + 1)
    if r_extra is not True and w_extra is not False:
        if r_extra is False:
            yield Break((*path, "additionalProperties"), f"{field}.*",
                        "the reader takes no undeclared fields, the writer may send some")
        else:
            yield from _subset(w.at(w_extra), r.at(r_extra), (*path, "additionalProperties"), f"{field}.*",
                               depth + 1)


def _required(wn: Mapping, rn: Mapping, path: tuple, field: str) -> Iterator[Break]:
    """A field the reader requires must be one the writer always sends, unless the reader's
    schema gives it a `default` (its handlers read the default when it is missing)."""
    guaranteed = set(wn.get("required", ()))
    props = rn.get("properties", {})
    for name in rn.get("required", ()):
        if name in guaranteed:
            continue
        if isinstance(props.get(name), Mapping) and "default" in props[name]:
            continue
        yield Break((*path, "required"), f"{field}.{name}",
                    f"the reader requires {name!r} (with no `default`), the writer may leave it out")


def _or(types) -> str:
    names = sorted(types)
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + f" or {names[-1]}"


