"""Checks of event type versions: numbering, the declared compatibility mode, and readers.

An event type may declare earlier versions of its schema (`previous`) and a compatibility
mode; a subscription may read an earlier version (`version`). `meshctl validate` reports:

- ``bad-schema-version``: two versions with one number, an earlier version not below the
  current one, a subscription reading a version the type does not declare;
- ``incompatible-schema-version``: a version breaks the type's mode against an earlier one;
- ``version-reader-break``: a consumer reads a version (a subscription its `version`, every
  other consumer the current one) that cannot read data the mesh may deliver to it (what the
  mesh emits is the current version; an external type may come in any declared version).
"""
from __future__ import annotations

from typing import Iterator

import networkx as nx

from ..core.errors import Diagnostic, Location, Note
from ..language import model as m
from .compatibility import Break, breaks, mode_breaks
from .graph import event_id

NOTED_BREAKS = 3  # further breaks of one pair shown as notes


def check_versions(mesh: m.Mesh, graph: nx.DiGraph) -> Iterator[Diagnostic]:
    for et in mesh.event_types.values():
        if et.versions:
            numbering = list(_numbering(et))
            yield from numbering
            if not numbering:
                yield from _history(et)
    for label, ref, version, loc in _readers(mesh):
        et = mesh.event_types.get(ref.name)
        if et is not None and not list(_numbering(et)):
            yield from _reader(label, version, loc or ref.loc, et, _written(et, graph))


def _readers(mesh: m.Mesh) -> Iterator[tuple[str, m.Ref, int | None, Location | None]]:
    """Every consumer of an event type: (what it is, the type it reads, the version it reads —
    None: the current one —, where that version is written)."""
    for sub in mesh.subscriptions():
        yield f"subscription {sub.label}", sub.on, sub.version, sub.version_loc
    for route in mesh.routes.values():
        for ref in route.sources:
            yield f"route {route.name}", ref, None, None
    for orchestration in mesh.orchestrations.values():
        yield f"orchestration {orchestration.name}", orchestration.trigger.on, None, None
    for stream in mesh.streams.values():
        for ref in stream.sources:
            yield f"stream {stream.name}", ref, None, None


def _numbering(et: m.EventType) -> Iterator[Diagnostic]:
    seen: dict[int, m.SchemaVersion] = {}
    for version in et.versions:
        if version.version in seen:
            yield Diagnostic(version.loc, "bad-schema-version",
                             f"event type {et.name!r} declares version {version.version} twice",
                             hint="number each version once; the current schema is `version`",
                             notes=(Note(seen[version.version].loc, "first declared here"),))
        elif version.version > et.version:
            yield Diagnostic(version.loc, "bad-schema-version",
                             f"earlier version {version.version} of {et.name!r} is above the current "
                             f"version {et.version}",
                             hint="the current schema is the newest: raise `version` above every `previous`")
        seen.setdefault(version.version, version)


def _history(et: m.EventType) -> Iterator[Diagnostic]:
    """One diagnostic per pair of versions that breaks the mode, in the schema that cannot read."""
    pairs: dict[tuple[int, int, bool], list[Break]] = {}
    history = [v.schema for v in et.versions]
    base = et.compatibility.removesuffix("_transitive")
    for new, old, found in mode_breaks(et.compatibility, history):
        # which side's check found it: a backward break is in the newer schema (it cannot read)
        backward = base in ("backward", "full") and found in breaks(history[new], history[old])
        pairs.setdefault((new, old, backward), []).append(found)
    for (new, old, backward), found in pairs.items():
        newer, older = et.versions[new], et.versions[old]
        reader, writer = (newer, older) if backward else (older, newer)
        direction = "backward" if backward else "forward"
        first = found[0]
        yield Diagnostic(
            reader.locate(first.path),
            "incompatible-schema-version",
            f"version {reader.version} of {et.name!r} cannot read data written with version "
            f"{writer.version} ({direction} compatibility): {first.field}: {first.message}",
            hint=_hint(first, direction),
            notes=(Note(writer.loc, f"version {writer.version} of the schema"),
                   *_more(reader, found[1:])),
        )


def _written(et: m.EventType, graph: nx.DiGraph) -> list[m.SchemaVersion]:
    """The versions the mesh may deliver: the current one if anything in the mesh emits the
    type (or the type is unversioned), every declared one if it comes from outside."""
    node = event_id(et.name)
    if not et.versions:
        return []
    if et.external:
        return list(et.versions)
    produced = node in graph and graph.in_degree(node) > 0
    return [et.versions[-1]] if produced else []


def _reader(label: str, version: int | None, loc: Location, et: m.EventType,
            written: list[m.SchemaVersion]) -> Iterator[Diagnostic]:
    if not et.versions and version in (None, et.version):
        return
    if version is None:
        reads = et.versions[-1]
    else:
        found = et.schema_of(version) if et.versions else None
        if found is None:
            declared = ", ".join(str(v.version) for v in et.versions) or f"only version {et.version}"
            yield Diagnostic(loc, "bad-schema-version",
                             f"{label} reads version {version} of {et.name!r}, which declares {declared}",
                             hint="read a declared version, or declare it in the type's `previous`")
            return
        reads = found
    for writer in written:
        if writer.version == reads.version:
            continue
        found_breaks = breaks(reads.schema, writer.schema)
        if found_breaks:
            first = found_breaks[0]
            source = "may come from outside" if et.external else "is emitted in the mesh"
            yield Diagnostic(
                loc,
                "version-reader-break",
                f"{label} reads version {reads.version} of {et.name!r}, but data of "
                f"version {writer.version} {source}: {first.field}: {first.message}",
                hint=f"read version {writer.version} (or a later one that reads it), or make version "
                     f"{reads.version} able to read it",
                notes=(Note(writer.loc, f"version {writer.version}, which the mesh may deliver"),
                       Note(reads.locate(first.path), f"where version {reads.version} refuses it"),
                       *_more(reads, found_breaks[1:])),
            )


def _more(reader: m.SchemaVersion, found: list[Break]) -> tuple[Note, ...]:
    notes = tuple(Note(reader.locate(b.path), f"also {b.field}: {b.message}") for b in found[:NOTED_BREAKS])
    if len(found) > NOTED_BREAKS:
        notes += (Note(reader.loc, f"and {len(found) - NOTED_BREAKS} more"),)
    return notes


def _hint(found: Break, direction: str) -> str:
    if direction == "backward":
        return ("a new version must read the data of the old: keep the field optional, give a new "
                "required field a `default`, widen rather than narrow (or change `compatibility`)")
    return ("old readers must read the new data: keep what they require, narrow rather than widen "
            "(or change `compatibility`)")
