"""engine.language.compiled_schema: compiled checks agree with jsonschema's Draft202012Validator.is_valid."""
from __future__ import annotations

import copy
import json
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from engine.language.compiled_schema import compile_check
from engine.language.loader import load_mesh
from engine.language.model import thaw

REPO = Path(__file__).resolve().parent.parent
WORKFLOWS = sorted(p for p in (REPO / "workflows").iterdir() if (p / "events.jsonl").exists())


def agree(schema, instance) -> bool:
    """Assert the compiled check and jsonschema agree on *instance*; return the verdict."""
    check = compile_check(schema)
    assert check is not None, schema
    expected = Draft202012Validator(schema).is_valid(instance)
    assert check(instance) is expected, (schema, instance)
    return expected


# --- random schemas of the subset, random and near-valid instances -------------------------

KEYS = ["a", "b", "c", "ä"]
TYPES = ["object", "array", "string", "number", "integer", "boolean", "null"]
STRINGS = ["", "a", "b", "ab", "ba", "aa", "abc", "xab", "bab", "é", "😀", "a😀", "😀😀b", "A1", "1", "ab1"]
PATTERNS = ["a", "^a", "b$", "^[ab]*$", "😀", "^.{2}$", "a|b", "^$", "[0-9]"]
NUMBERS = [0, 1, -1, 2, 3, 0.5, 1.0, 2.0, -0.5, 1.5, 0.1, 0.3, 10, 2**70, 1e20, 1.7e308, -2.5]

leaf_values = st.one_of(
    st.none(), st.booleans(), st.integers(-4, 4), st.sampled_from(NUMBERS),
    st.floats(-10, 10, allow_nan=False, allow_infinity=False), st.sampled_from(STRINGS),
    st.text(alphabet="ab😀é", max_size=4),
)
json_values = st.recursive(
    leaf_values,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(KEYS), inner, max_size=3),
    max_leaves=6,
)
numbers = st.sampled_from(NUMBERS) | st.integers(-3, 3)
sizes = st.integers(0, 3)

# keyword -> strategy of its value, given the strategy of subschemas
KEYWORDS = {
    "type": lambda sub: st.sampled_from(TYPES) | st.lists(st.sampled_from(TYPES), max_size=3),
    "enum": lambda sub: (
        st.lists(json_values, min_size=1, max_size=4) | st.lists(st.sampled_from(STRINGS), max_size=4)
    ),
    "const": lambda sub: json_values,
    "minimum": lambda sub: numbers,
    "maximum": lambda sub: numbers,
    "exclusiveMinimum": lambda sub: numbers,
    "exclusiveMaximum": lambda sub: numbers,
    "multipleOf": lambda sub: st.sampled_from([1, 2, 3, 0.5, 0.1, 1.5, 0.25, 1e-300]),
    "minLength": lambda sub: sizes,
    "maxLength": lambda sub: sizes,
    "pattern": lambda sub: st.sampled_from(PATTERNS),
    "items": lambda sub: sub,
    "minItems": lambda sub: sizes,
    "maxItems": lambda sub: sizes,
    "uniqueItems": lambda sub: st.sampled_from([True, True, False]),
    "properties": lambda sub: st.dictionaries(st.sampled_from(KEYS), sub, max_size=3),
    "required": lambda sub: st.lists(st.sampled_from(KEYS), max_size=3),
    "additionalProperties": lambda sub: sub,
    "description": lambda sub: st.text(max_size=3),
    "format": lambda sub: st.sampled_from(["email", "date-time", "uri"]),
    "default": lambda sub: json_values,
    "allOf": lambda sub: st.lists(sub, min_size=1, max_size=2),
    "anyOf": lambda sub: st.lists(sub, min_size=1, max_size=2),
    "oneOf": lambda sub: st.lists(sub, min_size=1, max_size=3),
    "not": lambda sub: sub,
    "if": lambda sub: sub,
    "then": lambda sub: sub,
    "else": lambda sub: sub,
    "minProperties": lambda sub: sizes,
    "maxProperties": lambda sub: sizes,
    "propertyNames": lambda sub: st.builds(
        lambda t: {"type": "string", **t}, st.sampled_from([{}, {"maxLength": 1}, {"enum": KEYS[:2]}])
    ),
}


# keywords that act on the same kind of instance, so that a schema often combines them
FAMILIES = [
    ["type", "enum", "const", "description", "format", "default"],
    ["type", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"],
    ["type", "minLength", "maxLength", "pattern", "enum"],
    ["type", "items", "minItems", "maxItems", "uniqueItems"],
    ["type", "properties", "required", "additionalProperties"],
    ["allOf", "anyOf", "oneOf", "not", "if", "then", "else"],
    ["type", "minProperties", "maxProperties", "propertyNames", "required"],
    sorted(KEYWORDS),
]


@st.composite
def keyword_schema(draw, sub):
    family = draw(st.sampled_from(FAMILIES))
    names = draw(st.lists(st.sampled_from(family), min_size=1, max_size=3, unique=True))
    return {name: draw(KEYWORDS[name](sub)) for name in names}


@st.composite
def object_schema(draw, sub):
    """The shape event schemas have: a typed object with properties, some required."""
    properties = draw(st.dictionaries(st.sampled_from(KEYS), sub, min_size=1, max_size=3))
    schema = {"type": "object", "properties": properties,
              "required": draw(st.lists(st.sampled_from(sorted(properties)), max_size=2, unique=True))}
    if draw(st.booleans()):
        schema["additionalProperties"] = draw(st.booleans() | sub)
    return schema


leaf_schemas = st.one_of(
    st.booleans(), st.just({}),
    st.builds(lambda t: {"type": t}, st.sampled_from(TYPES)),
    st.builds(lambda e: {"enum": e}, st.lists(json_values, min_size=1, max_size=3)),
)
def schema_node(sub):
    return keyword_schema(sub) | object_schema(sub)


schemas = st.recursive(leaf_schemas, schema_node, max_leaves=5)


def random_json(rng, depth=0):
    """A random JSON value, small, from the same pools as the schemas' literals."""
    roll = rng.random()
    if depth < 2 and roll < 0.15:
        return [random_json(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    if depth < 2 and roll < 0.3:
        return {rng.choice(KEYS): random_json(rng, depth + 1) for _ in range(rng.randint(0, 3))}
    return rng.choice([None, True, False, rng.randint(-4, 4), rng.choice(NUMBERS), rng.uniform(-10, 10),
                       rng.choice(STRINGS), "".join(rng.choices("ab😀é", k=rng.randint(0, 4)))])


def respell(rng, value):
    """*value*, perhaps with numbers and booleans written another way (1 as 1.0 or True, ...)."""
    if isinstance(value, list):
        return [respell(rng, v) for v in value]
    if isinstance(value, dict):
        return {k: respell(rng, v) for k, v in value.items()}
    if rng.random() < 0.5 or type(value) not in (bool, int, float):
        return value
    if type(value) is bool:
        return int(value)
    if type(value) is float:
        return int(value) if value.is_integer() else value
    return rng.choice([float(value), value == 1 if value in (0, 1) else value])


# the kinds of instance each keyword constrains
KINDS = {"minimum": "number", "maximum": "number", "exclusiveMinimum": "number",
         "exclusiveMaximum": "integer", "multipleOf": "integer", "minLength": "string", "maxLength": "string",
         "pattern": "string", "items": "array", "minItems": "array", "maxItems": "array",
         "uniqueItems": "array", "properties": "object", "required": "object",
         "additionalProperties": "object"}


def _near_object(rng, schema, depth):
    properties = schema.get("properties", {})
    names = set(schema.get("required", ())) | set(rng.choices(KEYS, k=rng.randint(0, 3)))
    if names and rng.random() < 0.2:
        names.discard(rng.choice(sorted(names)))
    return {name: near(rng, properties.get(name, schema.get("additionalProperties", True)), depth + 1)
            for name in sorted(names)}


def _near_array(rng, schema, depth):
    low = schema.get("minItems", 0)
    size = rng.randint(low, max(low, schema.get("maxItems", 3)))
    items = [near(rng, schema.get("items", True), depth + 1) for _ in range(size)]
    if items and rng.random() < 0.5:  # a repeat: the same element, or one equal but for its spelling
        repeat = respell(rng, rng.choice(items))
        items.insert(rng.randint(0, len(items)), repeat)
    return items


def _near_object(rng, schema, depth):
    properties = schema.get("properties", {})
    names = set(schema.get("required", ())) | set(rng.choices(KEYS, k=rng.randint(0, 3)))
    if names and rng.random() < 0.2:
        names.discard(rng.choice(sorted(names)))
    return {name: near(rng, properties.get(name, schema.get("additionalProperties", True)), depth + 1)
            for name in sorted(names)}


def _near_array(rng, schema, depth):
    low = schema.get("minItems", 0)
    size = rng.randint(low, max(low, schema.get("maxItems", 3)))
    items = [near(rng, schema.get("items", True), depth + 1) for _ in range(size)]
    if items and rng.random() < 0.5:  # a repeat: the same element, or one equal but for its spelling
        repeat = respell(rng, rng.choice(items))
        items.insert(rng.randint(0, len(items)), repeat)
    return items


def near(rng, schema, depth=0):
    """An instance built to satisfy *schema* where that is easy; often valid, sometimes not."""
    if not isinstance(schema, dict) or depth > 4 or rng.random() < 0.1:
        return random_json(rng)
    if "const" in schema and rng.random() < 0.5:
        return respell(rng, copy.deepcopy(schema["const"]))
    if schema.get("enum") and rng.random() < 0.5:
        return respell(rng, copy.deepcopy(rng.choice(schema["enum"])))
    declared = schema.get("type", TYPES)
    declared = [declared] if isinstance(declared, str) else declared or TYPES
    hinted = [KINDS[k] for k in schema if k in KINDS and KINDS[k] in declared]
    kind = rng.choice(hinted if hinted and rng.random() < 0.7 else declared)
    if kind == "object":
        return _near_object(rng, schema, depth)
    if kind == "array":
        return _near_array(rng, schema, depth)
    if kind == "string":
        return rng.choice([rng.choice(STRINGS), "".join(rng.choices("ab😀é", k=rng.randint(0, 4)))])
    if kind in ("number", "integer"):
        anchors = [
            schema[k] for k in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum") if k in schema
        ]
        value = rng.choice(anchors or [0]) + rng.choice([0, 1, -1, 2, 0.5])
        if "multipleOf" in schema and rng.random() < 0.5:
            value = schema["multipleOf"] * rng.randint(-3, 7) + rng.choice([0, 0, 1, 0.5, 0.1])
        if kind == "integer" and rng.random() < 0.5 and abs(value) < 1e300:
            value = float(int(value))
        return value
    if kind == "boolean":
        return rng.random() < 0.5
    return None


# top-level schemas: mostly keyword mixes, whose keywords then apply to the instance itself
top_schemas = st.sampled_from([0, 0, 0, 1, 2]).flatmap(
    lambda pick: (keyword_schema(schemas), object_schema(schemas), leaf_schemas)[pick])


@pytest.mark.slow
def test_agrees_with_jsonschema_on_random_schemas():
    verdicts: Counter = Counter()

    @settings(max_examples=300, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(top_schemas, st.randoms(use_true_random=False))
    def run(schema, rng):
        check = compile_check(schema)
        assert check is not None, schema
        validator = Draft202012Validator(schema)
        for instance in [near(rng, schema) for _ in range(14)] + [random_json(rng) for _ in range(2)]:
            expected = validator.is_valid(instance)
            assert check(instance) is expected, (schema, instance)
            verdicts[expected] += 1

    run()
    assert verdicts[True] > 1200 and verdicts[False] > 1200, verdicts


# --- chosen cases --------------------------------------------------------------------------

@pytest.mark.parametrize("schema, instance", [
    ({"type": "integer"}, True), ({"type": "integer"}, 1), ({"type": "integer"}, 1.0),
    ({"type": "integer"}, 1.5), ({"type": "number"}, False), ({"type": "number"}, 3),
    ({"type": "boolean"}, 0), ({"type": "boolean"}, True), ({"type": ["integer", "boolean"]}, True),
    ({"type": ["string", "null"]}, None), ({"type": []}, None), ({"minimum": 5}, True), ({"minimum": 5}, "x"),
    ({"maximum": 0}, True), ({"maximum": 0}, 1), ({"exclusiveMinimum": 1}, 1.0),
    ({"exclusiveMaximum": 1}, 0.999), ({"type": "integer", "minimum": 0}, -0.0),
    ({"type": "integer"}, float("inf")),
])
def test_types_and_bounds(schema, instance):
    agree(schema, instance)


@pytest.mark.parametrize("instance, valid", [
    (1, True), (1.0, True), (True, True), (False, False), (0, False), ("1", False), ([1], False),
])
def test_enum_compares_as_json(instance, valid):
    assert agree({"enum": [1, True]}, instance) is valid


def test_enum_of_values():
    assert agree({"enum": [1.0, "x"]}, 1) is True
    assert agree({"enum": ["b", "ab"]}, "a") is False
    assert agree({"enum": ["b", "ab"]}, "ab") is True
    assert agree({"enum": ["1"]}, 1) is False
    assert agree({"enum": []}, None) is False
    assert agree({"enum": [[1, True]]}, [1.0, True]) is True
    assert agree({"enum": [[1, True]]}, [True, 1]) is False
    assert agree({"enum": [[1]]}, [True]) is False


def test_const_objects_and_arrays():
    const = {"a": [1, {"b": None}], "c": False}
    assert agree({"const": const}, {"c": False, "a": [1.0, {"b": None}]}) is True
    assert agree({"const": const}, {"c": 0, "a": [1, {"b": None}]}) is False
    assert agree({"const": const}, {"c": False, "a": [1, {"b": None}], "d": 1}) is False
    assert agree({"const": const}, {"c": False, "a": [1, {}]}) is False
    assert agree({"const": None}, None) is True
    assert agree({"const": 0}, False) is False


def test_lengths_count_code_points():
    assert agree({"maxLength": 1}, "😀") is True
    assert agree({"minLength": 2}, "😀") is False
    assert agree({"minLength": 2, "maxLength": 2}, "é😀") is True
    assert agree({"maxLength": 0}, ["not", "a", "string"]) is True


def test_pattern_searches_anywhere():
    assert agree({"pattern": "b"}, "abc") is True
    assert agree({"pattern": "^b"}, "abc") is False
    assert agree({"pattern": "[0-9]+"}, "id-42") is True
    assert agree({"pattern": "^[A-Z]{2}$"}, "FR") is True
    assert agree({"pattern": "^[A-Z]{2}$"}, 12) is True


def test_objects_and_arrays():
    schema = {"type": "object", "required": ["a"],
              "properties": {"a": {"type": "string"}, "b": {"minimum": 0}},
              "additionalProperties": {"type": "integer"}}
    assert agree(schema, {"a": "x", "b": -1}) is False
    assert agree(schema, {"a": "x", "b": "not a number"}) is True
    assert agree(schema, {"a": "x", "z": 2.0}) is True
    assert agree(schema, {"a": "x", "z": True}) is False
    assert agree(schema, {"b": 1}) is False
    assert agree({"additionalProperties": False, "properties": {"a": True}}, {"a": 1, "b": 2}) is False
    assert agree({"additionalProperties": False}, {}) is True
    assert agree({"items": False}, []) is True
    assert agree({"items": False}, [1]) is False
    assert agree({"items": {"type": "string"}, "minItems": 1, "maxItems": 2}, ["a", "b"]) is True
    # not an array
    assert agree({"items": {"type": "string"}, "minItems": 1, "maxItems": 2}, ("a", 1)) is True


@pytest.mark.parametrize("items", [
    [1, 1.0], [1, True], [0, False], [[1], [True]], [{"a": 1}, {"a": 1.0}], [{"a": 1}, {"a": True}],
    [None, None], ["a", 1, "a"], [1.0, float("nan"), 1.0], [True, True], [], [[1, 2], [1, 2.0]],
])
def test_unique_items_mirror_jsonschema(items):
    agree({"uniqueItems": True}, items)
    agree({"uniqueItems": False}, items)


def test_multiple_of():
    for step in (2, 0.5, 0.1, 1e-300):
        for value in (0, 4, 5, 0.3, 7.5, 1e308, 2**80, -3, True, "x"):
            agree({"multipleOf": step}, value)


def test_boolean_and_annotation_schemas():
    assert compile_check(True)("anything") is True
    assert compile_check(False)(None) is False
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": "t", "description": "d",
              "default": 1, "examples": [1], "$comment": "c", "format": "email",
              "$defs": {"x": {"type": "string"}}, "type": "string"}
    assert agree(schema, "not an email") is True
    assert agree(schema, 3) is False


def test_raises_where_jsonschema_raises():
    nan = float("nan")
    for schema in ({"multipleOf": 0.5}, {"type": "number", "multipleOf": 0.5}):
        with pytest.raises(ValueError):
            Draft202012Validator(schema).is_valid(nan)
        with pytest.raises(ValueError):
            compile_check(schema)(nan)
    assert agree({"type": "string", "multipleOf": 0.5}, nan) is False
    assert agree({"minimum": 0}, nan) is True
    assert agree({"maximum": 0}, float("inf")) is False


@pytest.mark.parametrize("schema", [
    {"$ref": "https://example.com/other"}, {"$ref": "#/$defs/missing", "$defs": {}}, {"$ref": "#anchor"},
    {"anyOf": []}, {"oneOf": "x"}, {"allOf": [{"x-custom": 1}]}, {"if": {}, "then": {"x-custom": 1}},
    {"patternProperties": {"a": {}}}, {"dependentRequired": {}},
    {"prefixItems": [{}]}, {"contains": {}}, {"minProperties": -1}, {"unevaluatedProperties": False},
    {"items": {"$id": "https://example.com/s"}}, {"x-custom": 1},
    {"properties": {"a": {"anyOf": [{"dependentRequired": {}}]}}},
    {"items": {"$schema": "http://json-schema.org/draft-04/schema#"}},
    {"type": "integr"}, {"type": "string", "pattern": "("}, {"minimum": "0"}, {"maxLength": True},
    {"required": "a"}, {"enum": "ab"}, {"items": [{}]}, {"multipleOf": 0}, {"properties": []}, [],
])
def test_unsupported_schemas_compile_to_none(schema):
    assert compile_check(schema) is None


def test_local_references_and_recursion_agree_with_jsonschema():
    tree = {"$defs": {"node": {"type": "object", "required": ["v"], "additionalProperties": False,
                               "properties": {"v": {"type": "integer"},
                                              "kids": {"type": "array", "items": {"$ref": "#/$defs/node"}}}}},
            "$ref": "#/$defs/node"}
    check, validator = compile_check(tree), Draft202012Validator(tree)
    for instance in ({"v": 1}, {"v": 1, "kids": [{"v": 2, "kids": []}]}, {"v": 1, "kids": [{"v": "x"}]},
                     {"v": 1, "kids": [{"w": 2}]}, {"kids": []}, [],
                     {"v": 1, "kids": [{"v": 2, "kids": [{}]}]}):
        assert check(instance) is validator.is_valid(instance), instance
    whole = {"type": "array", "items": {"$ref": "#"}, "maxItems": 2}
    check, validator = compile_check(whole), Draft202012Validator(whole)
    for instance in ([], [[], [[]]], [[], [], []], [[[], [], []]], [1]):
        assert check(instance) is validator.is_valid(instance), instance


def test_the_dsl_schema_compiles_and_agrees_on_every_example_document():
    """`validate` checks documents with the compiled DSL schema first (jsonschema explains failures)."""
    from engine.language.schema import _kind_validator, kinds
    from engine.language.source import load_documents

    compiled = {
        kind: (compile_check(_kind_validator(kind).schema), _kind_validator(kind)) for kind in kinds()
    }
    assert all(check is not None for check, _ in compiled.values())
    tried = 0
    for path in sorted(REPO.glob("workflows/*/*.yaml")) + sorted(REPO.glob("tests/cases/**/*.yaml")):
        for doc in load_documents(path.read_text(encoding="utf-8", errors="replace"), str(path))[0]:
            if not isinstance(doc.data, dict) or doc.data.get("kind") not in compiled:
                continue
            check, validator = compiled[doc.data["kind"]]
            for variant in mutants(doc.data):
                if isinstance(variant, dict) and variant.get("kind") == doc.data["kind"]:
                    assert check(variant) is validator.is_valid(variant), (path, variant)
                    tried += 1
    assert tried > 500


# --- the example workflows -----------------------------------------------------------------

def mutants(data):
    """*data* and variants of it that break or stretch it one way at a time."""
    yield data
    if isinstance(data, dict):
        for key in data:
            yield {k: v for k, v in data.items() if k != key}
            for wrong in (None, True, 1.5, -1, "x", [], {}):
                yield {**data, key: wrong}
        yield {**data, "unexpected": 1}
    yield None
    yield [data]


def test_example_schemas_compile_and_agree():
    seen = Counter()
    for workflow in WORKFLOWS:
        mesh = load_mesh(str(workflow))[0]
        checks = {}
        for name, event_type in mesh.event_types.items():
            if event_type.schema is None:
                continue
            schema = thaw(event_type.schema)
            check = compile_check(schema)  # local $refs included
            assert check is not None, (workflow.name, name)
            checks[name] = (check, Draft202012Validator(schema))
        for line in (workflow / "events.jsonl").read_text(encoding="utf-8").splitlines():
            event = json.loads(line) if line.strip() else {}
            if event.get("type") not in checks:
                continue
            check, validator = checks[event["type"]]
            for data in mutants(event.get("data")):
                assert check(data) is validator.is_valid(data), (workflow.name, event["type"], data)
            seen[workflow.name] += 1
    assert seen["arena"] and seen["arena-orchestrated"], seen


# --- the object check: `type: object` with `required`/`properties` in one function -----------

EVENT_SCHEMA = {"type": "object", "required": ["id", "mode", "score"],
                "properties": {"id": {"type": "string"}, "mode": {"enum": ["ranked", "casual"]},
                               "score": {"type": "integer", "minimum": 0, "description": "points"},
                               "ratio": {"type": "number", "minimum": 0, "maximum": 1},
                               "tags": {"type": "array", "items": {"type": "string"}},
                               "won": {"type": "boolean"}}}
VALID = {"id": "m-1", "mode": "ranked", "score": 3, "ratio": 0.5, "tags": ["a"], "won": True}


def test_event_shaped_schemas_compile_to_one_object_check():
    assert compile_check(EVENT_SCHEMA).__name__ == "object_shape"
    assert (
        compile_check({"type": "object", "properties": {"a": {"type": "string"}}}).__name__ == "object_shape"
    )
    assert compile_check({"required": ["a"], "type": "object"}).__name__ != "object_shape"  # `type` not first


@pytest.mark.parametrize("change", [
    {}, {"id": 1}, {"id": None}, {"mode": "solo"}, {"mode": 1}, {"mode": ["ranked"]}, {"score": -1},
    {"score": 0}, {"score": 1.0}, {"score": 1.5}, {"score": -0.0}, {"score": True}, {"score": 2**80},
    {"score": "3"}, {"ratio": 1}, {"ratio": 1.0000001}, {"ratio": -0.0}, {"ratio": float("nan")},
    {"ratio": float("inf")}, {"ratio": False}, {"ratio": 10**400}, {"tags": []}, {"tags": [1]}, {"won": 1},
    {"won": None}, {"extra": 1},
])
def test_the_object_check_agrees_on_each_kind_of_property(change):
    agree(EVENT_SCHEMA, {**VALID, **change})


@pytest.mark.parametrize("instance", [None, [], "x", 3, {}, {"id": "x"},
                                      {"id": "x", "mode": "casual", "score": 0}])
def test_the_object_check_agrees_on_non_objects_and_missing_keys(instance):
    agree(EVENT_SCHEMA, instance)
    agree({k: v for k, v in EVENT_SCHEMA.items() if k != "required"}, instance)
    agree({k: v for k, v in EVENT_SCHEMA.items() if k != "properties"}, instance)


def test_the_object_check_keeps_the_schema_order_of_required_and_properties():
    """Only visible where jsonschema raises: a property check runs before a later `required` fails."""
    nan = {"a": float("nan")}
    properties_first = {"type": "object", "properties": {"a": {"multipleOf": 0.5}}, "required": ["b"]}
    required_first = {"type": "object", "required": ["b"], "properties": {"a": {"multipleOf": 0.5}}}
    for schema in (properties_first,):
        with pytest.raises(ValueError):
            Draft202012Validator(schema).is_valid(nan)
        with pytest.raises(ValueError):
            compile_check(schema)(nan)
    assert agree(required_first, nan) is False


def test_data_schemas_give_jsonschemas_verdicts_and_messages_on_the_examples():
    """DataSchemas.check (compiled checks, jsonschema for the message) against jsonschema alone."""
    from jsonschema.exceptions import best_match

    from engine.language.admission import DataSchemas, Rejection

    tried = Counter()
    for workflow in WORKFLOWS:
        mesh = load_mesh(str(workflow))[0]
        schemas = DataSchemas(mesh)
        for line in (workflow / "events.jsonl").read_text(encoding="utf-8").splitlines():
            event = json.loads(line) if line.strip() else {}
            et = mesh.event_types.get(event.get("type"))
            if et is None:
                continue
            validator = Draft202012Validator(thaw(et.schema)) if et.schema is not None else None
            for data in mutants(event.get("data")):
                expected = None
                if validator is not None and not validator.is_valid(data):
                    error = best_match(validator.iter_errors(data))
                    where = "".join(
                        f"[{p!r}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path
                    )
                    expected = Rejection("data" + where, error.message)
                assert schemas.check({**event, "data": data}) == expected, (
                    workflow.name,
                    event["type"],
                    data,
                )
                tried[expected is None] += 1
    assert tried[True] > 50 and tried[False] > 200, tried


ARRAY_SCHEMAS = [
    {"type": "array", "items": {"type": "string"}, "minItems": 2, "maxItems": 2},
    {"type": "array", "minItems": 1, "maxItems": 3, "items": {"type": "integer"}},
    {"type": "array", "items": {"minimum": 1}}, {"type": "array", "items": {"type": "number", "minimum": 0}},
    {"type": "array", "items": {"type": "object", "required": ["a"]}, "maxItems": 2},
    {"type": "array", "maxItems": 1.5}, {"type": "array", "minItems": 1, "items": True},
    {"type": "array", "items": False}, {"type": "array", "items": {"type": "string", "description": "d"}},
    {"type": "array", "items": {"type": "array", "items": {"type": "boolean"}}, "minItems": 1},
]
ARRAYS = [None, {}, "ab", 3, [], ["a"], ["a", "b"], ["a", 1], [1, 2], [0, 2], [1.0, 2.5], [True], [-1, 1, 2],
          [{"a": 1}], [{"b": 1}], [[True], [False, True]], [[1]], [[]], ["a", "b", "c", "d"]]


@pytest.mark.parametrize("schema", ARRAY_SCHEMAS, ids=str)
def test_array_shaped_schemas_compile_to_one_check_that_agrees(schema):
    assert compile_check(schema).__name__ == "array_shape"
    for instance in ARRAYS:
        agree(schema, instance)
        agree({"type": "object", "properties": {"p": schema}}, {"p": instance})


def test_the_array_check_keeps_the_schema_order_of_bounds_and_items():
    nan = [float("nan"), 1, 2]
    items_first = {"type": "array", "items": {"multipleOf": 0.5}, "maxItems": 2}
    bounds_first = {"type": "array", "maxItems": 2, "items": {"multipleOf": 0.5}}
    with pytest.raises(ValueError):
        Draft202012Validator(items_first).is_valid(nan)
    with pytest.raises(ValueError):
        compile_check(items_first)(nan)
    assert agree(bounds_first, nan) is False
    between = {"type": "array", "minItems": 1, "items": {"type": "string"}, "maxItems": 2}
    assert compile_check(between).__name__ != "array_shape"
    for instance in ARRAYS:
        agree(between, instance)
