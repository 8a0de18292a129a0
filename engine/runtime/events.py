"""CloudEvents 1.0 envelopes as plain JSON dicts, and reading input event files.

An event is the dict of the CloudEvents JSON format (``id``, ``source``, ``type``,
``specversion``, ``time``, ``subject``, ``datacontenttype``, ``data`` and extension
attributes). The runtime never mutates an event once made; derived events are new dicts.

Extensions meshctl sets on every emitted event: ``causationid`` (the event that caused it),
``correlationid`` (the input event at the root of the chain), ``hopcount`` (emits since the
root) and ``causationpath`` (the consumers along the chain, comma-separated), which the loop
guard reads; ``traceparent``/``tracestate`` when its parent has them (:mod:`.tracecontext`); and
``inputwatermark`` when its parent has it (:mod:`.watermarks`).
"""
from __future__ import annotations

import hashlib
import itertools
import json
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from ..core import eventjson, eventtime
from ..core.errors import Location
from ..core.identity import identity
from ..language.source import Limits, load_documents, read_text
from .tracecontext import TRACEPARENT, inherited

SPECVERSION = "1.0"
REQUIRED = ("id", "source", "type")
LISTS = (".yaml", ".yml", ".json")  # file names read as a YAML/JSON list, not JSON Lines
EVENT_FILE_LIMITS = Limits(max_bytes=512 * 1024 * 1024, max_depth=64, max_nodes=50_000_000)
_sha1 = hashlib.sha1
BOM = b"\xef\xbb\xbf"
WATERMARK = "inputwatermark"  # the progress of the root input's partition before it (watermarks.py)
RAW_KEPT = 2000  # characters of a bad line kept in its dead letter


@dataclass(frozen=True, slots=True)
class BadInput:
    """An input record that is not a usable event: dead-lettered as ``schema-invalid``."""

    loc: Location
    problem: str
    raw: Any


def derive(parent: dict, consumer: str, index: int, type_: str, data: Any, now: float,
           subject: str | None = None, source: str | None = None, element: str | None = None) -> dict:
    """A new event caused by *parent*, emitted by *consumer*; its id is stable across retries.

    *element* is the consumer the loop guard knows (an orchestration, for events of its steps);
    it goes in ``causationpath``. The id hashes the parent's identity (source and id: parents
    from two sources may share an id) and the precise emitter, so it stays unique.
    """
    parent_id = parent["id"]
    digest = _sha1(f"{identity(parent)}|{consumer}|{index}".encode()).hexdigest()[:20]
    path = parent.get("causationpath")
    element = element or consumer
    hops = parent.get("hopcount", 0)
    event = {
        "specversion": SPECVERSION,
        "id": digest,
        "source": source or f"meshctl/{consumer}",
        "type": type_,
        "time": eventtime.format(now),
        "datacontenttype": "application/json",
        "data": data,
        "causationid": parent_id,
        "correlationid": parent.get("correlationid", parent_id),
        "hopcount": (hops if hops.__class__ is int else int(hops)) + 1,
        "causationpath": f"{path},{element}" if path else element,
    }
    if subject is not None:
        event["subject"] = subject
    if TRACEPARENT in parent:
        event.update(inherited(parent, digest))
    if WATERMARK in parent:
        event[WATERMARK] = parent[WATERMARK]
    return event


def derived_time(cause: dict, after: float, arrival: float) -> float:
    """The event time of an event caused by *cause*: the cause's ``time`` plus *after*, the
    seconds the mesh declares between them (retry backoff, ``sleep``, the steps an
    orchestration waited for). A cause without a time happened at *arrival* (the clock when it
    was first attempted).

    The one rule of derived event time (docs/streams.md, "Event time of derived events"): it
    depends on the events and the mesh only, never on when or where the work was done, so a
    deployment's workers stamp what ``meshctl run`` stamps.
    """
    born = eventtime.parse_or_none(cause.get("time"))
    return (born if born is not None else arrival) + after


ENGINE_OWNED = ("hopcount", "causationpath")  # extensions the loop guard reads: only the engine sets them


def as_input(event: dict) -> dict:
    """An event entering the mesh from outside, without the extensions that steer the loop guard.

    A client could otherwise set ``hopcount: -300`` (316 emits instead of 16) or a made-up
    ``causationpath``; an input is the root of its chain, so it starts from none. The event is
    returned as it is when it has neither (a copy only when something is dropped).
    """
    if "hopcount" not in event and "causationpath" not in event:
        return event
    return {k: v for k, v in event.items() if k not in ENGINE_OWNED}


def chain(event: dict) -> list[str]:
    """The consumers that produced this event's ancestors, oldest first."""
    path = event.get("causationpath")
    return path.split(",") if path else []


IdMaker = Callable[[dict, int], str]  # (record without an id, its index in the file) -> an id


def position_id(raw: dict, index: int) -> str:
    """``input-N``: the record's position, stable for one file (what ``run`` uses)."""
    return f"input-{index + 1}"


class ContentIds:
    """Ids from the records' content, for input that outlives one file (``publish`` to a deployment).

    The same record gets the same id every time; its n-th identical copy in one file gets
    ``-n`` appended. So publishing a file twice gives the same ids (the workers' dedup makes
    the second time harmless), and two files with different events never share an id.
    """

    def __init__(self) -> None:
        self.seen: Counter[str] = Counter()

    def __call__(self, raw: dict, index: int) -> str:
        text = json.dumps(raw, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
        digest = hashlib.sha1(text.encode()).hexdigest()[:20]
        self.seen[digest] += 1
        n = self.seen[digest]
        return f"in-{digest}" if n == 1 else f"in-{digest}-{n}"


def normalise(raw: Any, loc: Location, index: int, make_id: IdMaker = position_id) -> dict | BadInput:
    """An input record as a CloudEvent: defaults for what may be omitted, checks for what may not.

    ``specversion`` defaults to 1.0, ``source`` to ``meshctl/input``, ``id`` to a stable id made
    by *make_id* (the file position by default); ``type`` is required. ``time``, when present
    and not null, must be an event time by :mod:`engine.core.eventtime`'s rule.
    """
    if not isinstance(raw, dict):
        return BadInput(loc, "an event must be a JSON object", raw)
    event = dict(raw)
    event.setdefault("specversion", SPECVERSION)
    event.setdefault("source", "meshctl/input")
    if "id" not in event:
        event["id"] = make_id(raw, index)
    if event["specversion"] != SPECVERSION:
        return BadInput(loc, f"specversion must be {SPECVERSION!r}", raw)
    for attr in REQUIRED:
        if not isinstance(event.get(attr), str) or not event[attr]:
            return BadInput(loc, f"attribute {attr!r} must be a non-empty string", raw)
    if event.get("time") is not None:
        try:
            eventtime.parse(event["time"])
        except eventtime.EventTimeError as exc:
            return BadInput(loc, f"attribute 'time': {exc}", raw)
    return event


def parsed(raw: Any, loc: Location, index: int, make_id: IdMaker = position_id) -> dict | BadInput:
    """:func:`normalise` for a record parsed from YAML, held first to the rule of JSON input
    (:func:`engine.core.eventjson.problem`: depth, finite numbers), which YAML does not enforce."""
    problem = eventjson.problem(raw)
    if problem is not None:
        return BadInput(loc, problem, None)
    return normalise(raw, loc, index, make_id)


def _complete(raw: Any) -> bool:
    """True if *raw* needs nothing from :func:`normalise`: it would come back as an equal copy."""
    if raw.__class__ is not dict or raw.get("specversion") != SPECVERSION:
        return False
    for attr in REQUIRED:
        value = raw.get(attr)
        if value.__class__ is not str or not value:
            return False
    time = raw.get("time")
    return time is None or eventtime.parse_or_none(time) is not None


def read_events(path: str) -> Iterator[dict | BadInput]:
    """Events from a JSON Lines file (streamed) or a YAML/JSON list (``.yaml``, ``.yml``, ``.json``)."""
    if path.endswith(LISTS):
        for _, item in _read_list(path, position_id):
            yield item
        return
    for _, item in _read_lines(path, position_id):
        yield item


def read_located_events(path: str,
                        make_id: IdMaker = position_id) -> Iterator[tuple[Location, dict | BadInput]]:
    """Like :func:`read_events`, each event with where it was read; *make_id* names events without an id."""
    if path.endswith(LISTS):
        yield from _read_list(path, make_id)
        return
    for number, item in _read_lines(path, make_id):
        yield (item.loc if item.__class__ is BadInput else Location(path, number, 1)), item


def _read_lines(path: str, make_id: IdMaker) -> Iterator[tuple[int, dict | BadInput]]:
    """(line number, event) for each non-blank line of a JSON Lines file; a problem is a BadInput.

    Each line is decoded on its own (:mod:`engine.core.eventjson`): a line that is not UTF-8, not
    JSON, too deep or with a non-finite number is one BadInput, and the lines around it are read
    as usual. A byte order mark is skipped at the start of the file only. A decoded line is the
    reader's own dict: a complete envelope is used as it is, without the copy :func:`normalise`
    makes (and without a Location, which only a BadInput needs).
    """
    try:
        fh = open(path, "rb")
    except OSError as exc:
        yield 0, BadInput(Location(path), f"cannot read: {exc.strerror or exc}", None)
        return
    loads = eventjson.loads
    with fh:
        head = fh.readline()
        index = 0
        for number, raw in enumerate(itertools.chain((head[3:] if head[:3] == BOM else head,), fh), start=1):
            try:
                line = raw.decode()
                event = loads(line)
            except UnicodeDecodeError as exc:
                problem = eventjson.not_utf8(raw, exc)
                text = raw.decode("utf-8", "backslashreplace").rstrip("\r\n")[:RAW_KEPT]
                yield number, BadInput(Location(path, number, problem.col or 1), problem.message, text)
                continue
            except eventjson.EventJSONError as exc:
                if not line.strip():  # a blank line is never JSON: skipped
                    continue
                text = line.rstrip("\r\n")
                # line 2 is past the newline: the end
                col = len(text) + 1 if (exc.line or 1) > 1 else exc.col or 1
                yield number, BadInput(Location(path, number, col), exc.message, text[:RAW_KEPT])
                continue
            yield (
                number,
                event if _complete(event) else normalise(event, Location(path, number, 1), index, make_id),
            )
            index += 1


def _read_list(path: str, make_id: IdMaker) -> Iterator[tuple[Location, dict | BadInput]]:
    text, problems = read_text(path, path, EVENT_FILE_LIMITS)
    for problem in problems:
        yield problem.loc, BadInput(problem.loc, problem.message, None)
    if text is None:
        return
    documents, problems = load_documents(text, path, EVENT_FILE_LIMITS)
    for problem in problems:
        yield problem.loc, BadInput(problem.loc, problem.message, None)
    index = 0
    for doc in documents:
        items = doc.data if isinstance(doc.data, list) else [doc.data]
        for i, raw in enumerate(items):
            loc = doc.smap.at((i,)) if isinstance(doc.data, list) else doc.loc
            yield loc, parsed(raw, loc, index, make_id)
            index += 1
