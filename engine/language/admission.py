"""Whether an event may enter a mesh: one set of checks for the runtime and for the mesh's edge.

The runtime dead-letters a published event whose ``data`` fails its type's schema
(:class:`DataSchemas`). The edge — the HTTP ingress (``meshctl serve``) and ``meshctl
publish`` — refuses an event before it is queued (:class:`Admission`): the CloudEvents 1.0
envelope, a declared ``external`` event type, then the same data check. Both use the same
compiled schemas, so what the edge accepts the runtime never refuses as schema-invalid.

Problems are values (:class:`Rejection`): the event attribute or data path at fault, what is
wrong, and where it helps a hint. Callers add the position (a batch index, a file line).
"""
from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from ..core import eventtime
from ..core.errors import Diagnostic, Location, Severity
from ..core.eventjson import json_type
from . import model as m
from .compiled_schema import compile_check
from .schema import data_validator, first_data_error

SPECVERSION = "1.0"
REQUIRED = ("id", "source", "specversion", "type")
STRINGS = ("subject", "datacontenttype", "dataschema")  # optional attributes that must be strings
ATTRIBUTE_NAME = re.compile(r"[a-z0-9]+")  # CloudEvents: lower-case ASCII letters and digits
DATA = ("data", "data_base64")  # members of the JSON format that are not attributes


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why an event is refused: ``field`` is an attribute (``type``) or a data path (``data.score``)."""

    field: str
    message: str
    hint: str | None = None

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"

    def as_dict(self) -> dict:
        return {"field": self.field, "message": self.message, **({"hint": self.hint} if self.hint else {})}


class DataSchemas:
    """Each event type's data schema, compiled on first use into a fast check (jsonschema explains
    failures)."""

    def __init__(self, mesh: m.Mesh):
        self.mesh = mesh
        # type name -> predicate (always true without a schema)
        self._fast: dict[str, Callable[[Any], bool]] = {}
        self._validators: dict[str, Any] = {}

    def check(self, event: dict) -> Rejection | None:
        """The data's first schema violation, if any (the event's type must be declared in the mesh)."""
        type_ = event["type"]
        key = type_
        if "dataschema" in event and self.mesh.event_types[type_].versions:
            key, problem = self._versioned(type_, event["dataschema"])
            if problem is not None:
                return problem
        fast = self._fast.get(key) or self._compile(key)
        data = event.get("data")
        try:
            if fast(data):
                return None
            error = first_data_error(self._validators[key], data)
        except (OverflowError, ValueError, RecursionError) as exc:
            # data a keyword cannot compute with: an integer beyond a float's range under a float
            # multipleOf, one too long to print in the message, nesting past the recursion limit
            return Rejection(
                "data",
                f"cannot be checked against the schema of {type_!r}: {type(exc).__name__}",
                "numbers beyond ±1.8e308 and very deep nesting cannot be checked",
            )
        if error is None:
            return None
        path, message = error
        where = "data" + "".join(f"[{p!r}]" if isinstance(p, int) else f".{p}" for p in path)
        return Rejection(clip(where), clip(message))

    def _versioned(self, type_: str, dataschema: Any) -> tuple[str, Rejection | None]:
        """The schema key of an event that names a version of its type in ``dataschema``: an
        earlier one (``TYPE@N``) or the current (``TYPE``); another URI is the producer's own
        business and checks the current schema."""
        et = self.mesh.event_types[type_]
        prefix = m.DATASCHEMA.format(type=type_, version="")
        if not isinstance(dataschema, str) or not dataschema.startswith(prefix):
            return type_, None
        number = dataschema[len(prefix):]
        version = et.schema_of(int(number)) if number.isdigit() else None
        if version is None:
            known = ", ".join(str(v.version) for v in et.versions)
            return type_, Rejection(
                "dataschema", f"names version {number!r} of {type_!r}, which declares {known}",
                "send a declared version, or declare this one in the type's `previous`")
        return (type_ if version.version == et.version else f"{type_}@{version.version}"), None

    def _compile(self, key: str) -> Callable[[Any], bool]:
        type_, _, number = key.partition("@")
        et = self.mesh.event_types[type_]
        raw = et.schema_of(int(number)).schema if number else et.schema
        if raw is None:
            fast = _valid
        else:
            schema = m.thaw(raw)
            validator = self._validators[key] = data_validator(schema)
            fast = compile_check(schema) or validator.is_valid
        self._fast[key] = fast
        return fast


MESSAGE_KEPT = 500  # characters of a message; jsonschema's repeat the offending value, which may be megabytes


def clip(text: str, keep: int = MESSAGE_KEPT) -> str:
    """*text*, or its start and how long it was when it is longer than *keep*.

    >>> clip("x" * 600, 10)
    'xxxxxxxxxx... (600 characters)'
    """
    return text if len(text) <= keep else f"{text[:keep]}... ({len(text)} characters)"


def _shown(value: Any) -> str:
    return clip(repr(value), 200)


def _valid(data: Any) -> bool:
    return True


class Admission:
    """The checks of the mesh's edge: every reason an event from outside is refused."""

    def __init__(self, mesh: m.Mesh, schemas: DataSchemas | None = None):
        self.mesh = mesh
        self.schemas = schemas if schemas is not None else DataSchemas(mesh)

    def rejections(self, event: Any) -> list[Rejection]:
        """Every envelope problem; then, for a well-formed event, its type's and its data's."""
        if not isinstance(event, dict):
            return [Rejection("event", f"an event must be a JSON object, not {json_type(event)}")]
        found = list(envelope_problems(event))
        if not found:
            found = list(self._type_problems(event))
        if not found:
            data_problem = self.schemas.check(event)
            found = [data_problem] if data_problem is not None else []
        return found

    def _type_problems(self, event: dict) -> Iterator[Rejection]:
        et = self.mesh.event_types.get(event["type"])
        if et is None:
            yield unknown_type(self.mesh, event["type"])
        elif not et.external:
            yield Rejection(
                "type",
                f"event type {_shown(event['type'])} is produced inside the mesh, not taken from outside",
                "declare it `external: true` if outside systems publish it",
            )


def unknown_type(mesh: m.Mesh, type_: str) -> Rejection:
    """An event of a type the mesh does not declare: refused at the edge, undeliverable inside."""
    near = difflib.get_close_matches(type_, list(mesh.event_types), n=1)
    return Rejection(
        "type",
        f"no event type {_shown(type_)} is declared in the mesh",
        f"did you mean {near[0]!r}?" if near else None,
    )


def refused_input(loc: Location, problem: Any, severity: Severity = "error") -> Diagnostic:
    """How an input record refused at entry is told, by `publish` (which then sends nothing) and
    by `run` (which dead-letters it): where it is, what is wrong, and a hint where one helps.
    *problem* is a :class:`Rejection`, or the BadInput of a record that is not an event at all."""
    if isinstance(problem, Rejection):
        return Diagnostic(loc, "rejected-event", str(problem), severity, hint=problem.hint)
    return Diagnostic(problem.loc, "bad-event", problem.problem, severity)


def envelope_problems(event: dict) -> Iterator[Rejection]:
    """CloudEvents 1.0 (JSON format) envelope checks: required attributes, attribute names and types.

    An optional attribute set to null counts as absent, as the JSON format says.
    """
    yield from _required_problems(event)
    if (
        isinstance(event.get("specversion"), str)
        and event["specversion"]
        and event["specversion"] != SPECVERSION
    ):
        yield Rejection(
            "specversion", f"specversion {_shown(event['specversion'])} is not supported; use {SPECVERSION!r}"
        )
    if event.get("time") is not None:
        try:
            eventtime.parse(event["time"])
        except eventtime.EventTimeError as exc:
            yield Rejection("time", str(exc))
    for attr in STRINGS:
        if event.get(attr) is not None and not isinstance(event[attr], str):
            yield Rejection(attr, f"attribute {attr!r} must be a string, not {json_type(event[attr])}")
    if "data" in event and "data_base64" in event:
        yield Rejection("data_base64", "an event has either data or data_base64, not both")
    yield from _extension_problems(event)


def _required_problems(event: dict) -> Iterator[Rejection]:
    for attr in REQUIRED:
        value = event.get(attr)
        if not isinstance(value, str) or not value:
            what = ("is missing" if value is None else "is empty" if value == ""
                    else f"must be a string, not {json_type(value)}")
            yield Rejection(attr, f"required attribute {attr!r} {what}")


def _extension_problems(event: dict) -> Iterator[Rejection]:
    for name, value in event.items():
        if name in DATA or name in REQUIRED or name in STRINGS or name == "time":
            continue
        if not isinstance(name, str) or not ATTRIBUTE_NAME.fullmatch(name):
            yield Rejection(
                clip(str(name)), f"attribute name {_shown(name)} must be lower-case letters and digits only"
            )
        elif value is not None and not isinstance(value, (str, int)):
            yield Rejection(
                name,
                f"extension attribute {name!r} must be a string, an integer or a boolean, "
                f"not {json_type(value)}",
            )
