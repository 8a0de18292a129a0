"""The JSON Schema compatibility checker (engine/analysis/compatibility.py).

Hand-written cases pin each rule; property tests hold it to jsonschema itself: whenever it
finds no break, no instance valid under the writer is invalid under the reader (sound), a
schema always reads itself, and its check of one value agrees with jsonschema.
"""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from engine.analysis.compatibility import MODES, breaks, mode_breaks

OBJ = {"type": "object"}


def obj(required=(), closed=False, **props):
    schema = {**OBJ, "properties": props, "required": list(required)}
    if closed:
        schema["additionalProperties"] = False
    return schema


def fields(found):
    return [b.field for b in found]


# --- the rules, one by one ------------------------------------------------------------------

def test_a_schema_reads_itself():
    s = obj(["a"], a={"type": "string", "minLength": 1}, n={"type": "integer", "minimum": 0})
    assert breaks(s, s) == []


def test_adding_a_required_field_breaks_backward_unless_it_has_a_default():
    old = obj(["a"], closed=True, a={"type": "string"})
    new = obj(["a", "b"], closed=True, a={"type": "string"}, b={"type": "string"})
    assert fields(breaks(new, old)) == ["data.b"]
    assert "requires 'b'" in breaks(new, old)[0].message
    defaulted = obj(["a", "b"], closed=True, a={"type": "string"}, b={"type": "string", "default": ""})
    assert breaks(defaulted, old) == []


def test_removing_a_required_field_breaks_forward():
    old = obj(["a", "b"], a={"type": "string"}, b={"type": "string"})
    new = obj(["a"], a={"type": "string"}, b={"type": "string"})
    assert breaks(new, old) == []  # backward: the new reader does not need b
    assert fields(breaks(old, new)) == ["data.b"]  # forward: old readers need it


def test_narrowing_a_type_breaks_backward_and_widening_breaks_forward():
    old = obj(["n"], n={"type": "number"})
    new = obj(["n"], n={"type": "integer"})
    (found,) = breaks(new, old)
    assert found.path == ("properties", "n", "type") and "narrowed" in found.message
    assert breaks(old, new) == []  # an integer is a number
    assert breaks(obj(n={"type": ["string", "null"]}), obj(n={"type": "string"})) == []
    assert fields(breaks(obj(n={"type": "string"}), obj(n={"type": ["string", "null"]}))) == ["data.n"]


def test_narrowing_an_enum_breaks_backward():
    old = obj(e={"enum": ["a", "b"]})
    new = obj(e={"enum": ["a"]})
    (found,) = breaks(new, old)
    assert "'b'" in found.message
    assert breaks(old, new) == []
    assert breaks(obj(e={"type": "string"}), old) == []  # any string reads a listed one
    assert fields(breaks(old, obj(e={"type": "string"}))) == ["data.e"]


def test_bounds():
    def num(**kw):
        return {"type": "number", **kw}
    assert breaks(num(minimum=0), num(minimum=1)) == []
    assert breaks(num(minimum=1), num(minimum=0))[0].path == ("minimum",)
    assert breaks(num(exclusiveMinimum=0), num(minimum=0))  # 0 itself
    assert breaks(num(minimum=0), num(exclusiveMinimum=0)) == []
    assert breaks(num(maximum=10), num(maximum=5, minimum=0)) == []
    assert breaks(num(maximum=5), num(maximum=10))[0].path == ("maximum",)
    assert breaks(num(maximum=5), num())  # unbounded writer
    assert breaks(num(multipleOf=2), num(multipleOf=4)) == []
    assert breaks(num(multipleOf=4), num(multipleOf=2))
    s = {"type": "string"}
    assert breaks({**s, "maxLength": 3}, {**s, "maxLength": 5})
    assert breaks({**s, "minLength": 3}, {**s, "minLength": 5}) == []


def test_patterns_must_be_the_same():
    s = {"type": "string"}
    assert breaks({**s, "pattern": "^a"}, s)
    assert breaks({**s, "pattern": "^a"}, {**s, "pattern": "^a"}) == []
    assert breaks(s, {**s, "pattern": "^a"}) == []


def test_closing_an_open_object_breaks_backward():
    open_ = obj(a={"type": "string"})
    closed = obj(closed=True, a={"type": "string"})
    assert breaks(open_, closed) == []
    assert fields(breaks(closed, open_)) == ["data.*"]


def test_a_field_added_to_an_open_writer_may_clash():
    """The old writer takes undeclared fields of any type: one named like the new field may
    have been sent as a number (the open content model, as schema registries rule it)."""
    old = obj(a={"type": "string"})
    new = obj(a={"type": "string"}, b={"type": "string"})
    assert fields(breaks(new, old)) == ["data.b"]
    assert breaks(new, obj(closed=True, a={"type": "string"})) == []


def test_a_field_dropped_from_a_closed_reader_breaks():
    w = obj(closed=True, a={"type": "string"}, b={"type": "string"})
    r = obj(closed=True, a={"type": "string"})
    assert fields(breaks(r, w)) == ["data.b"]


def test_nested_items_and_properties():
    old = obj(xs={"type": "array", "items": obj(["id"], id={"type": "integer"})})
    new = obj(xs={"type": "array", "items": obj(["id"], id={"type": "string"})})
    (found,) = breaks(new, old)
    assert found.field == "data.xs[].id"
    assert found.path == ("properties", "xs", "items", "properties", "id", "type")
    assert breaks({"type": "array", "uniqueItems": True}, {"type": "array"})
    assert breaks({"type": "array", "minItems": 1}, {"type": "array", "minItems": 2}) == []


def test_combinators():
    either = {"anyOf": [{"type": "string"}, {"type": "integer"}]}
    assert breaks(either, {"type": "string"}) == []
    assert breaks({"type": "string"}, either)[0].message.startswith("type narrowed")
    assert breaks(either, either) == []
    assert breaks({"allOf": [{"type": "integer"}, {"minimum": 0}]}, {"type": "integer", "minimum": 1}) == []
    assert breaks({"allOf": [{"type": "integer"}, {"minimum": 2}]}, {"type": "integer", "minimum": 1})
    assert breaks({"oneOf": [{"type": "string"}]}, {"type": "string"})  # cannot compare: a break


def test_local_refs_are_followed():
    defs = {"$defs": {"id": {"type": "string"}}}
    old = {**defs, **obj(["id"], id={"$ref": "#/$defs/id"})}
    new = {"$defs": {"id": {"type": "integer"}}, **obj(["id"], id={"$ref": "#/$defs/id"})}
    assert breaks(old, old) == []
    assert fields(breaks(new, old)) == ["data.id"]
    recursive = {"$defs": {"t": obj(kids={"type": "array", "items": {"$ref": "#/$defs/t"}})},
                 "$ref": "#/$defs/t"}
    assert breaks(recursive, recursive) == []


def test_unknown_keywords_count_as_breaks_unless_equal():
    assert breaks({"type": "object", "patternProperties": {"^x": {"type": "string"}}}, OBJ)
    same = {"type": "object", "patternProperties": {"^x": {"type": "string"}}}
    assert breaks(same, same) == []
    assert breaks(OBJ, same) == []  # the reader adds nothing


def test_booleans_and_annotations():
    assert breaks(True, {"type": "string"}) == []
    assert breaks({"description": "any"}, {"type": "string"}) == []
    assert breaks(False, {"type": "string"})
    assert breaks({"type": "string"}, False) == []
    assert breaks({"type": "string", "format": "email"}, {"type": "string"}) == []  # not asserted


@pytest.mark.parametrize("mode, expected", [
    ("none", []),
    ("backward", [(1, 0), (2, 1)]),
    ("forward", []),
    ("full", [(1, 0), (2, 1)]),
    ("backward_transitive", [(1, 0), (2, 0), (2, 1)]),
])
def test_modes_over_a_history(mode, expected):
    """Each version narrows the enum: new readers cannot read older data."""
    history = [{"enum": [1, 2, 3]}, {"enum": [1, 2]}, {"enum": [1]}]
    got = sorted({(new, old) for new, old, _ in mode_breaks(mode, history)})
    assert got == expected


def test_forward_transitive_checks_every_older_reader():
    history = [{"type": "integer", "maximum": 10}, {"type": "integer"}, {"type": "integer", "maximum": 20}]
    assert sorted({(n, o) for n, o, _ in mode_breaks("forward_transitive", history)}) == [(1, 0), (2, 0)]
    assert sorted({(n, o) for n, o, _ in mode_breaks("forward", history)}) == [(1, 0)]
    assert "full_transitive" in MODES


# --- properties against jsonschema ------------------------------------------------------------

NAMES = ["a", "b", "c"]
scalars = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.sampled_from([0.5, -1.5, 2.0]),
                    st.sampled_from(["", "a", "ab", "b", "abc"]))
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(st.sampled_from(NAMES + ["d"]), inner, max_size=3)),
    max_leaves=8,
)
TYPES = ["null", "boolean", "integer", "number", "string", "array", "object"]


def _leaf():
    typed = st.fixed_dictionaries(
        {"type": st.one_of(st.sampled_from(TYPES), st.lists(st.sampled_from(TYPES), min_size=1, max_size=2,
                                                           unique=True))},
        optional={"minimum": st.integers(-2, 2), "maximum": st.integers(-2, 2),
                  "exclusiveMinimum": st.integers(-2, 2), "multipleOf": st.sampled_from([1, 2, 0.5]),
                  "minLength": st.integers(0, 2), "maxLength": st.integers(0, 2),
                  "pattern": st.sampled_from(["^a", "b"])},
    )
    listed = st.one_of(st.fixed_dictionaries({"enum": st.lists(scalars, min_size=1, max_size=3)}),
                       st.fixed_dictionaries({"const": scalars}))
    return st.one_of(typed, listed, st.just({}), st.booleans())


def _extend(inner):
    objects = st.fixed_dictionaries(
        {"type": st.just("object"), "properties": st.dictionaries(st.sampled_from(NAMES), inner, max_size=3)},
        optional={"required": st.lists(st.sampled_from(NAMES), max_size=3, unique=True),
                  "additionalProperties": st.one_of(st.just(False), inner),
                  "minProperties": st.integers(0, 2), "maxProperties": st.integers(0, 3)},
    )
    arrays = st.fixed_dictionaries(
        {"type": st.just("array")},
        optional={"items": inner, "minItems": st.integers(0, 2), "maxItems": st.integers(0, 3),
                  "uniqueItems": st.booleans()},
    )
    combined = st.builds(lambda kw, subs: {kw: subs}, st.sampled_from(["anyOf", "oneOf", "allOf"]),
                         st.lists(inner, min_size=1, max_size=2))
    return st.one_of(objects, arrays, combined)


schemas = st.recursive(_leaf(), _extend, max_leaves=6)
FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _valid(schema, value) -> bool:
    return Draft202012Validator(schema).is_valid(value)


@FAST
@given(schemas)
def test_every_schema_reads_itself(schema):
    assert breaks(schema, schema) == [] or _has(schema, "oneOf", "allOf")


def _has(schema, *keywords) -> bool:
    if isinstance(schema, dict):
        return any(k in schema for k in keywords) or any(_has(v, *keywords) for v in schema.values())
    if isinstance(schema, list):
        return any(_has(v, *keywords) for v in schema)
    return False


@FAST
@given(schemas, values)
def test_one_value_is_judged_as_jsonschema_judges_it(schema, value):
    assert (breaks(schema, {"const": value}) == []) == _valid(schema, value)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(writer=schemas, reader=schemas, samples=st.lists(values, min_size=5, max_size=20))
def test_no_break_found_means_every_writer_value_reads(writer, reader, samples):
    if breaks(reader, writer):
        return
    for value in samples:
        if _valid(writer, value):
            assert _valid(reader, value), (writer, reader, value)


@FAST
@given(schemas, st.data())
def test_widening_the_reader_never_breaks(schema, data):
    """Accepting null as well (anyOf) or dropping every constraint keeps the writer readable."""
    wider = {"anyOf": [schema, {"type": "null"}]}
    assert breaks(wider, schema) == [] or _has(schema, "oneOf", "allOf")
    assert breaks({}, schema) == []
