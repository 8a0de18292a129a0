"""The DSL reference (docs/dsl.md) must keep up with the schema.

The schema is the single source of truth for the YAML; these tests fail when a
key is added to it without a description, or without a row in the reference.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

ROOT = Path(__file__).resolve().parent.parent
SCHEMA_PATH = ROOT / "schemas" / "meshctl.schema.json"
DOC_PATH = ROOT / "docs" / "dsl.md"

# Keywords whose value is one subschema, or a list / a map of subschemas.
_ONE = ("items", "additionalProperties", "then", "else", "not", "contains",
        "unevaluatedProperties", "unevaluatedItems", "propertyNames")
_LIST = ("anyOf", "allOf", "oneOf", "prefixItems")
_MAP = ("$defs", "patternProperties", "dependentSchemas")
# `if` is skipped on purpose: its `properties` only test a discriminator
# (`kind`) and declare no key of their own.


@pytest.fixture(scope="module")
def schema() -> dict:
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


def resolve(root: dict, ref: str) -> dict:
    """Follow a local JSON pointer such as ``#/$defs/retry``."""
    assert ref.startswith("#"), f"only local $refs are allowed in the schema, got {ref!r}"
    node = root
    for part in ref[1:].split("/")[1:] if ref != "#" else []:
        part = part.replace("~1", "/").replace("~0", "~")
        node = node[part]
    return node


def iter_properties(root: dict):
    """Yield ``(where, key, property_schema)`` for every ``properties`` entry.

    Walks every subschema reachable from the root and every ``$defs`` entry,
    following local ``$ref``s; each subschema is visited once, so recursive
    definitions do not loop.
    """
    seen: set[int] = set()
    stack: list[tuple[str, object]] = [("#", root)]
    while stack:
        where, node = stack.pop()
        if not isinstance(node, dict) or id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node.get("$ref"), str):
            stack.append((node["$ref"], resolve(root, node["$ref"])))
        for key, sub in (node.get("properties") or {}).items():
            yield where, key, sub
            stack.append((f"{where}/properties/{key}", sub))
        for kw in _ONE:
            if isinstance(node.get(kw), dict):
                stack.append((f"{where}/{kw}", node[kw]))
        for kw in _LIST:
            for i, sub in enumerate(node.get(kw) or []):
                stack.append((f"{where}/{kw}/{i}", sub))
        for kw in _MAP:
            for name, sub in (node.get(kw) or {}).items():
                stack.append((f"{where}/{kw}/{name}", sub))


def has_description(root: dict, node: dict) -> bool:
    """A property is described by its own `description` or by its $ref target's."""
    seen: set[int] = set()
    while isinstance(node, dict) and id(node) not in seen:
        seen.add(id(node))
        if isinstance(node.get("description"), str) and node["description"].strip():
            return True
        if not isinstance(node.get("$ref"), str):
            return False
        node = resolve(root, node["$ref"])
    return False


def documented_keys() -> set[str]:
    """Backticked names in the first cell of every Markdown table row of the reference."""
    keys: set[str] = set()
    for line in DOC_PATH.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line.startswith("|"):
            continue
        cells = line.strip("|").split("|")
        keys.update(re.findall(r"`([^`]+)`", cells[0]))
    return keys


def test_schema_is_valid_draft_2020_12(schema):
    Draft202012Validator.check_schema(schema)


def test_walk_finds_the_schema_keys(schema):
    """Guard the walker itself: a few keys from deep in the schema are found."""
    keys = {key for _, key, _ in iter_properties(schema)}
    for key in ("apiVersion", "max_hops", "jitter", "compensate", "gap_timeout",
                "count_distinct", "publish", "failure_threshold", "level"):
        assert key in keys


def test_every_schema_property_has_a_description(schema):
    missing = sorted({f"{where}/properties/{key}"
                      for where, key, sub in iter_properties(schema)
                      if not has_description(schema, sub)})
    assert not missing, "schema properties without a description:\n  " + "\n  ".join(missing)


def test_every_schema_key_has_a_row_in_the_reference(schema):
    documented = documented_keys()
    missing = sorted({key for _, key, _ in iter_properties(schema) if key not in documented})
    assert not missing, (f"keys of {SCHEMA_PATH.name} with no table row in docs/dsl.md: "
                         + ", ".join(missing))
