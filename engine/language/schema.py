"""The JSON Schema of the DSL, and schema errors turned into located diagnostics.

The only module that imports ``jsonschema``. The schema is ``schemas/meshctl.schema.json``
(installed as package data ``engine/schemas``). Validators never fetch anything: every
``$ref`` outside the schema itself is unresolvable by construction (no network, no files).
"""
from __future__ import annotations

import difflib
import json
from functools import lru_cache
from importlib import resources
from typing import Any, Iterable, Iterator

from jsonschema import Draft202012Validator, ValidationError
from jsonschema.exceptions import best_match
from referencing import Registry, Resource
from referencing.exceptions import NoSuchResource, Unresolvable

from ..core.errors import Diagnostic
from .compiled_schema import compile_check
from .source import Document, SourceMap

API_VERSION = "meshctl/v1"


def schema_text() -> str:
    """The DSL's JSON Schema as shipped (for ``meshctl schema`` and editors)."""
    return resources.files("engine").joinpath("schemas", "meshctl.schema.json").read_text("utf-8")


@lru_cache(maxsize=1)
def dsl_schema() -> dict:
    return json.loads(schema_text())


def _refuse(uri: str):
    raise NoSuchResource(ref=uri)


def offline_registry(*schemas: dict) -> Registry:
    """A registry holding *schemas* whose retriever refuses everything else (no network, no files)."""
    registry = Registry(retrieve=_refuse)
    for schema in schemas:
        if "$id" in schema:
            registry = registry.with_resource(schema["$id"], Resource.from_contents(schema))
    return registry


@lru_cache(maxsize=1)
def _dsl_validator() -> Draft202012Validator:
    schema = dsl_schema()
    return Draft202012Validator(schema, registry=offline_registry(schema))


def kinds() -> list[str]:
    return list(dsl_schema()["properties"]["kind"]["enum"])


@lru_cache(maxsize=None)
def _kind_validator(kind: str) -> Draft202012Validator:
    """The schema with its `if kind == ...` branch already taken: the same errors, a third of the work."""
    schema = dict(dsl_schema())
    branch = next(b["then"] for b in schema.pop("allOf") if b["if"]["properties"]["kind"]["const"] == kind)
    schema["properties"] = {**schema["properties"], **branch["properties"]}
    schema["required"] = [*schema["required"], *branch.get("required", [])]
    return Draft202012Validator(schema, registry=offline_registry(dsl_schema()))


def _validator_for(data: dict) -> Draft202012Validator:
    kind = data.get("kind")
    return _kind_validator(kind) if isinstance(kind, str) and kind in kinds() else _dsl_validator()


_FAST: dict[int, Any] = {}


def _fast_check(validator: Draft202012Validator):
    """The validator's schema compiled to a predicate (engine/language/compiled_schema.py): most documents are
    valid, and saying so is 30 times faster than jsonschema; jsonschema explains the others.
    (Keyed by identity: the validators are cached for the life of the process.)"""
    check = _FAST.get(id(validator))
    if check is None:
        check = _FAST[id(validator)] = compile_check(validator.schema) or validator.is_valid
    return check


def check_document(doc: Document) -> list[Diagnostic]:
    """Every schema problem of one document, each at the key or value to edit."""
    if not isinstance(doc.data, dict):
        return [Diagnostic(doc.loc, "wrong-type", f"a document must be a mapping, not {_json_type(doc.data)}",
                           hint="start the document with apiVersion, kind, metadata and spec")]
    validator = _validator_for(doc.data)
    found = (
        []
        if _fast_check(validator)(doc.data)
        else schema_diagnostics(validator.iter_errors(doc.data), doc.smap)
    )
    spec = doc.data.get("spec", {})
    if not found and doc.data.get("kind") == "EventType" and "schema" in spec:
        found += check_data_schema(spec["schema"], doc.smap, ("spec", "schema"))
    owns_state = doc.data.get("kind") in ("Service", "Orchestration")
    if not found and owns_state and "schema" in spec.get("state", {}):
        found += check_data_schema(spec["state"]["schema"], doc.smap, ("spec", "state", "schema"))
    return found


_SOUND_SCHEMAS: set[str] = set()  # data schemas (as canonical JSON) already found sound
_MAX_SOUND = 65536


def check_data_schema(schema: Any, smap: SourceMap, prefix: tuple) -> list[Diagnostic]:
    """An EventType's data schema must be a valid Draft 2020-12 schema with local ``$ref``s only.

    Checking against the metaschema takes about a millisecond, and meshes repeat small
    schemas: one found sound is not checked again (its soundness does not depend on where it is).
    """
    text = _canonical(schema)
    if text is not None and text in _SOUND_SCHEMAS:
        return []
    found = _data_schema_problems(schema, smap, prefix)
    if not found and text is not None and len(_SOUND_SCHEMAS) < _MAX_SOUND:
        _SOUND_SCHEMAS.add(text)
    return found


def _canonical(schema: Any) -> str | None:
    try:
        return json.dumps(schema, sort_keys=True)
    except (TypeError, ValueError, RecursionError):
        return None


def _data_schema_problems(schema: Any, smap: SourceMap, prefix: tuple) -> list[Diagnostic]:
    meta = Draft202012Validator(Draft202012Validator.META_SCHEMA, registry=_meta_registry())
    found = []
    for err in meta.iter_errors(schema):
        path = (*prefix, *err.absolute_path)
        found.append(Diagnostic(smap.at(path), "bad-event-schema", f"invalid JSON Schema: {err.message}"))
    for path, ref in _refs(schema, prefix):
        if not ref.startswith("#"):
            found.append(
                Diagnostic(
                    smap.at(path),
                    "remote-ref",
                    f"{path[-1]} {ref!r} leaves the document",
                    hint="only local references ('#/$defs/...') are followed; inline the schema",
                )
            )
    return found


@lru_cache(maxsize=1)
def _meta_registry() -> Registry:
    from jsonschema_specifications import REGISTRY  # the metaschemas, bundled offline

    return REGISTRY.combine(Registry(retrieve=_refuse))


def _refs(node: Any, path: tuple) -> Iterator[tuple[tuple, str]]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("$ref", "$dynamicRef") and isinstance(value, str):  # the keywords that load a schema
                yield (*path, key), value
            else:
                yield from _refs(value, (*path, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _refs(value, (*path, i))


def data_validator(schema: dict) -> Draft202012Validator:
    """A validator for event ``data``; any ``$ref`` that leaves the schema fails, offline."""
    return Draft202012Validator(schema, registry=offline_registry())


def first_data_error(validator: Draft202012Validator, data: Any) -> tuple[tuple, str] | None:
    """The most relevant violation of ``data``, as (path into the data, message), or None."""
    error = best_match(validator.iter_errors(data))
    return None if error is None else (tuple(error.absolute_path), error.message)


__all__ = [
    "API_VERSION",
    "check_document",
    "check_data_schema",
    "data_validator",
    "dsl_schema",
    "first_data_error",
    "kinds",
    "offline_registry",
    "schema_diagnostics",
    "schema_text",
    "Unresolvable",
]


# --- turning jsonschema errors into diagnostics ---------------------------------------------


def schema_diagnostics(errors: Iterable[ValidationError], smap: SourceMap) -> list[Diagnostic]:
    """One diagnostic per problem: a required key that is missing because it was misspelt
    (``subscriptons:``) is told once, as the unknown key with its did-you-mean."""
    leaves = [leaf for error in errors for leaf in _leaves(error)]
    misspelt = {
        (tuple(e.absolute_path), meant)
        for e in leaves
        if e.validator == "additionalProperties"
        for _, meant in _misspellings(e)
    }
    return [
        d
        for e in leaves
        if not (e.validator == "required" and (tuple(e.absolute_path), _missing(e)) in misspelt)
        for d in _translated(e, smap)
    ]


def _leaves(error: ValidationError) -> Iterator[ValidationError]:
    """The errors to report: those of the likely alternative of an anyOf/oneOf, else the error."""
    if error.validator in ("anyOf", "oneOf") and error.context:
        inner = _likely_branch(error)
        if inner:
            for each in inner:
                yield from _leaves(each)
            return
    yield error


def _translated(error: ValidationError, smap: SourceMap) -> list[Diagnostic]:
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        return _unknown_keys(error, smap)
    return [_diagnostic(error, smap)]


def _likely_branch(error: ValidationError) -> list[ValidationError]:
    """The errors of the alternative the user most likely meant: its type fits, and it fails least."""
    branches: dict[int, list[ValidationError]] = {}
    for inner in error.context:
        branches.setdefault(inner.relative_schema_path[0], []).append(inner)
    depth = len(error.absolute_path)
    fitting = [errs for errs in branches.values() if not any(_type_mismatch(e, depth) for e in errs)]
    if not fitting:
        # best_match gives the error itself back when every alternative is a type mismatch:
        # then the alternatives are the message (no branch to descend into).
        best = best_match([error])
        return [] if best is error else [best]
    return min(fitting, key=len)


def _type_mismatch(inner: ValidationError, depth: int) -> bool:
    """An alternative's error saying the value itself (at *depth*) has a type it does not take."""
    return inner.validator == "type" and len(inner.absolute_path) == depth


def _diagnostic(error: ValidationError, smap: SourceMap) -> Diagnostic:
    path = tuple(error.absolute_path)
    where = _dotted(path)
    translate = _TRANSLATORS.get(error.validator, _generic)
    return translate(error, path, where, smap)


def _misspellings(error: ValidationError) -> list[tuple[str, str | None]]:
    """Each key the mapping may not have, with the allowed key it most likely misspells (or None)."""
    allowed = sorted(error.schema.get("properties", {}))
    extras = sorted((k for k in error.instance if k not in allowed), key=str)
    free = [a for a in allowed if a not in error.instance]
    return [(extra, _closest(str(extra), free)) for extra in extras]


def _closest(word: str, choices: list[str]) -> str | None:
    """The choice *word* most likely misspells: a close match, or the same letters swapped
    (`no` for `on`, which is too short for a close match)."""
    near = difflib.get_close_matches(word, choices, n=1)
    return near[0] if near else next((c for c in choices if len(c) > 1 and sorted(c) == sorted(word)), None)


def _unknown_keys(error, smap) -> list[Diagnostic]:
    """One diagnostic per unknown key of the mapping, each at the key itself."""
    path = tuple(error.absolute_path)
    where = _dotted(path)
    allowed = sorted(error.schema.get("properties", {}))
    place = f" in {where}" if where else ""
    return [
        Diagnostic(
            smap.key((*path, extra)),
            "unknown-key",
            f"unknown key {extra!r}{place}",
            hint=f"did you mean {meant!r}?" if meant else f"allowed keys: {', '.join(allowed)}",
        )
        for extra, meant in _misspellings(error)
    ]


def _missing(error: ValidationError) -> str:
    return error.message.split("'")[1] if "'" in error.message else error.message


def _missing_key(error, path, where, smap) -> Diagnostic:
    missing = _missing(error)
    place = f" in {where}" if where else " in the document"
    hint = None
    if not path and missing in ("apiVersion", "kind", "metadata", "spec"):
        hint = f"every document starts with apiVersion: {API_VERSION}, kind, metadata: {{name}}, spec"
    return Diagnostic(smap.key(path), "missing-key", f"missing required key {missing!r}{place}", hint=hint)


def _wrong_type(error, path, where, smap) -> Diagnostic:
    expected = error.validator_value
    expected = " or ".join(expected) if isinstance(expected, list) else expected
    return Diagnostic(
        smap.at(path),
        "wrong-type",
        f"{where or 'document'} must be {_article(expected)}, not {_json_type(error.instance)}",
        hint=_describe(error),
    )


def _no_alternative(error, path, where, smap) -> Diagnostic:
    """An anyOf/oneOf none of whose alternatives takes this type of value: name the types they take."""
    depth = len(error.absolute_path)
    kinds: list[str] = []
    for inner in error.context or ():
        if _type_mismatch(inner, depth):
            for kind in (
                inner.validator_value if isinstance(inner.validator_value, list) else [inner.validator_value]
            ):
                if kind not in kinds:
                    kinds.append(kind)
    if not kinds:
        return _generic(error, path, where, smap)
    return Diagnostic(
        smap.at(path),
        "wrong-type",
        f"{where or 'document'} must be {' or '.join(_article(k) for k in kinds)}, "
        f"not {_json_type(error.instance)}",
        hint=_describe(error),
    )


def _bad_choice(error, path, where, smap) -> Diagnostic:
    choices = error.validator_value if error.validator == "enum" else [error.validator_value]
    if path == ("kind",):
        near = difflib.get_close_matches(str(error.instance), choices, n=1)
        hint = f"did you mean {near[0]!r}?" if near else f"kinds are: {', '.join(choices)}"
        return Diagnostic(smap.at(path), "unknown-kind", f"unknown kind {error.instance!r}", hint=hint)
    if path == ("apiVersion",):
        return Diagnostic(
            smap.at(path),
            "bad-api-version",
            f"apiVersion {error.instance!r} is not supported",
            hint=f"use apiVersion: {API_VERSION}",
        )
    near = difflib.get_close_matches(str(error.instance), [str(c) for c in choices], n=1)
    listed = ", ".join(json.dumps(c) for c in choices)
    hint = f"did you mean {near[0]!r}?" if near else None
    return Diagnostic(
        smap.at(path), "bad-value", f"{where}: {json.dumps(error.instance)} is not one of {listed}", hint=hint
    )


def _bad_pattern(error, path, where, smap) -> Diagnostic:
    return Diagnostic(
        smap.at(path),
        "bad-value",
        f"{where}: {json.dumps(error.instance)} is not allowed here",
        hint=_describe(error) or f"must match {error.validator_value}",
    )


def _refused(error, path, where, smap) -> Diagnostic:
    """A `not`: the schema holding it says in its description what is refused."""
    return Diagnostic(smap.at(path), "bad-value", f"{where}: {_describe(error) or 'not allowed here'}")


def _generic(error, path, where, smap) -> Diagnostic:
    description = _describe(error)
    message = error.message if len(error.message) < 160 else error.message[:157] + "..."
    return Diagnostic(smap.at(path), "bad-value", f"{where or 'document'}: {message}", hint=description)


_TRANSLATORS = {
    "required": _missing_key,
    "type": _wrong_type,
    "enum": _bad_choice,
    "const": _bad_choice,
    "pattern": _bad_pattern,
    "anyOf": _no_alternative,
    "oneOf": _no_alternative,
    "not": _refused,
}


def _describe(error: ValidationError) -> str | None:
    text = error.schema.get("description") if isinstance(error.schema, dict) else None
    return text.split(". ")[0].rstrip(".") if text else None


def _dotted(path: tuple) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _json_type(value: Any) -> str:
    return {
        dict: "a mapping",
        list: "a list",
        str: "a string",
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        type(None): "null",
    }.get(type(value), type(value).__name__)


def _article(word: str) -> str:
    names = {
        "object": "a mapping",
        "array": "a list",
        "string": "a string",
        "integer": "an integer",
        "number": "a number",
        "boolean": "a boolean",
        "null": "null",
    }
    return names.get(word, word)
