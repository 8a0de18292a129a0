"""Keyed, event-time windows for one :class:`~engine.language.model.Stream`: a pure, deterministic operator.

:class:`WindowOperator` takes CloudEvents dicts one at a time and returns what they caused:
closed windows with their aggregates, late events and invalid events, as :class:`Output`
values. It reads no clock and does no I/O; its whole state is a JSON snapshot
(:meth:`WindowOperator.state`, :meth:`WindowOperator.restore`), so a caller can checkpoint it
and continue later with exactly the outputs an uninterrupted run would have given.

Semantics, precisely:

* **Field paths** (``key``, ``time``, aggregate fields) are dotted paths through nested
  mappings (``data.player``). A path that hits something other than a mapping is missing.
* **Event time** is read by :mod:`engine.core.eventtime`'s rule: an RFC 3339 date-time with ``Z``
  or a ``±HH:MM`` offset, kept to the microsecond, a leap second as the last microsecond of
  its day, years 0001-9999; or a number of epoch seconds (not a bool) in the same range.
  Window bounds beyond that range (a window ending after 9999) are written clamped to it.
* **Key**: a string, a finite number or a bool; numbers equal in value are one key (``1`` and
  ``1.0``), bools are not numbers. Without ``stream.key`` every event is in one group, key
  ``None``. A composite key (``stream.key`` a tuple of paths) reads each part by the same rule
  and is held as the canonical JSON text of the list of parts (integral numbers as integers):
  windows of one key are one string, and keys closing together come in the order of that text.
  Outputs carry the list.
* **Invalid** (``Output.kind == "invalid"``): the time or key is missing or unusable, an
  aggregate field is missing, or a ``sum``/``min``/``max``/``avg`` field is not a finite number
  (bools are not numbers). Nothing of the event is applied and the watermark does not move.
  Validity is checked before lateness: an invalid late event is reported as invalid.
* **Windows**: tumbling ``[j*size, j*size + size)``; hopping ``[j*every, j*every + size)`` for
  every integer ``j`` whose window contains the time (an event between windows, when
  ``every > size``, counts nowhere but still moves the watermark); session: per key, the union
  of overlapping intervals ``[t, t + gap)``, so two events are in one session when they are less
  than ``gap`` apart, and one event can join two sessions into one. A session is
  ``[first, last + gap)``.
* **Watermark** = largest valid event time seen minus ``stream.lateness`` (``-inf`` before the
  first event); it never goes back. After each event every window with ``end <= watermark``
  closes: it is returned once, in order of ``(end, start, key)``, and forgotten.
  :meth:`~WindowOperator.flush` moves the watermark to ``+inf``: every open window closes, and
  every later event is late.
* **Late** (``Output.kind == "late"``): a valid event none of whose windows is open any more,
  judged against the watermark before the event. Tumbling and hopping: the window of the event
  that ends last has ``end <= watermark`` (a hopping event some of whose windows are still open
  is added to those only). Session: ``t + gap <= watermark`` and no open session of its key
  overlaps ``[t, t + gap)``. An event behind the watermark whose window is still open is
  simply added. The operator keeps no memory of closed windows, so a session event with
  ``t + gap > watermark`` that would have joined an already closed session starts a new one.
* **Count windows** (``window: {count: N, timeout: D}``): per key, one open window at a time,
  filled in arrival order (so a window closes as soon as its Nth event arrives, not when the
  watermark shows nothing earlier can come). It closes (``complete``) with its Nth event, or
  unfilled (``complete: False``) when the watermark reaches its first event's time + ``D``;
  an event whose time is at or past that deadline does not join it: it closes it and opens
  the next. ``start`` and ``end`` are the smallest and largest event time in it. An event
  that would open a window whose deadline the watermark already reached is late; without a
  timeout only events after :meth:`~WindowOperator.flush` are. Unfilled windows close in order
  of ``(deadline, opening)``; the one an event fills or times out comes before those.
* **Aggregates**: ``count``, ``sum``, ``min``, ``max``, ``avg`` (a float), ``count_distinct``
  (values compared by their canonical JSON text, so ``1`` and ``1.0`` differ), ``first`` and
  ``last`` (by event time; equal times by arrival order). Sums are added in arrival order, so
  with floats the last bits may depend on the order events came in; integer sums are exact.
  The lists, each bounded: ``collect`` (a field's values in arrival order, the first ``max``),
  ``distinct`` (distinct values by canonical JSON, the first ``max`` seen), ``top_n`` (the
  ``n`` events with the largest number ``by``, ties by earlier event time then canonical JSON,
  so arrival order does not matter). Merged sessions list the earlier session's values first.
  A ``collect`` with a templated ``value`` lists the value rendered per event with ``data`` and
  ``event``; a render that fails is an ``"error"`` output, and nothing of the event is applied.
* **Partitioned** (``partitioned=True``, tumbling and hopping only; engine/runtime/watermarks.py):
  lateness is judged per event against the partition progress it was stamped with (``end +
  lateness <= stamp``: late for that window), and nothing closes on an event: the caller
  closes windows with :meth:`~WindowOperator.advance` when nothing pending can join them. An
  event for a window already closed is late whatever its stamp (it cannot be, when the caller
  keeps the rule).
"""
from __future__ import annotations

import heapq
import json
import math
from dataclasses import dataclass, field
from itertools import chain
from typing import Any, Callable, Mapping

from ..core import eventtime
from ..language import model
from ..language.templates import RenderError, compile_value
from .watermarks import stamp_of

__all__ = ["Output", "WindowOperator", "window_data"]

SNAPSHOT_VERSION = 3  # 3: count windows, and the list aggregates collect, top_n, distinct
_NUMERIC_OPS = frozenset({"sum", "min", "max", "avg"})
_LIST_OPS = frozenset({"collect", "top_n", "distinct"})
_ALL_OPS = _NUMERIC_OPS | _LIST_OPS | {"count", "count_distinct", "first", "last"}
_MISSING = object()
_INF = math.inf
_text_time = eventtime.parse_or_none
_format = eventtime.format
_canonical = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                              allow_nan=False).encode


@dataclass(frozen=True, slots=True)
class Output:
    """One result of the operator.

    ``kind`` is ``"window"`` (a closed window: ``key``, ``start``, ``end`` in epoch seconds and
    ``values`` by aggregate name), ``"late"`` (``event`` arrived after its windows closed),
    ``"invalid"`` (``event`` cannot be used; ``reason`` says why) or ``"error"`` (a ``collect``
    projection's template failed on ``event``: ``error`` is the RenderError, naming its location;
    nothing of the event is applied, and the caller fails its attempt).
    """

    kind: str
    key: Any = None
    start: float | None = None
    end: float | None = None
    values: dict[str, Any] = field(default_factory=dict)
    event: Any = None
    reason: str | None = None
    count: int | None = None  # count windows: the events in it, and whether it reached its count
    complete: bool | None = None
    seq: int | None = None  # count windows: the number of the event that opened it (unique)
    error: Exception | None = None  # "error": the RenderError of a collect projection


def window_data(output: Output) -> dict[str, Any]:
    """The default ``data`` of the event emitted for a closed window.

    ``key``, ``start`` and ``end`` (RFC 3339) come first, for a count window ``count`` and
    ``complete`` next, then each aggregate by name; an aggregate named like one of those is
    shadowed by the window's own field.
    """
    data: dict[str, Any] = {"key": output.key, "start": _format(output.start), "end": _format(output.end)}
    if output.count is not None:
        data["count"], data["complete"] = output.count, output.complete
    for name, value in output.values.items():
        data.setdefault(name, value)
    return data


class _Reject(Exception):
    """An event that cannot be used; carries the reason."""

    def __init__(self, reason: str):
        self.reason = reason


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return (
        "an object"
        if isinstance(value, Mapping)
        else "an array"
        if isinstance(value, list)
        else type(value).__name__
    )


def _getter(path: str) -> Callable[[Any], Any]:
    """A function reading a dotted path from an event, returning ``_MISSING`` when it is absent."""
    parts = tuple(path.split("."))
    if len(parts) == 1:
        (only,) = parts

        def get_one(event: Any) -> Any:
            try:
                return event[only]
            except (KeyError, TypeError, IndexError):
                return _MISSING

        return get_one
    if len(parts) == 2:
        outer, inner = parts

        def get_two(event: Any) -> Any:
            try:
                return event[outer][inner]
            except (KeyError, TypeError, IndexError):
                return _MISSING

        return get_two

    def get_many(event: Any) -> Any:
        try:
            for part in parts:
                event = event[part]
            return event
        except (KeyError, TypeError, IndexError):
            return _MISSING

    return get_many


def _is_number(value: Any) -> bool:
    kind = type(value)
    return kind is int or (kind is float and math.isfinite(value))


def _overflowed(a: Any, b: Any) -> float:
    """The sum of a float and an integer too large for a float: infinite, as float sums become
    (an infinite float stays as it is; otherwise the integer is beyond every float, and wins)."""
    for x in (a, b):
        if type(x) is float and not math.isfinite(x):
            return x
    return _INF if (a if type(a) is int else b) > 0 else -_INF


def _mean(total: Any, n: int) -> Any:
    """*total* / *n*; an integer total too large for a float gives the integer mean (floored)."""
    try:
        return total / n
    except OverflowError:
        return total // n


def _key_order(key: Any) -> tuple:
    """Sort order of keys of mixed types: none, bools, numbers, strings."""
    if key is None:
        return (0, 0)
    if type(key) is tuple:  # a wrapped bool, see WindowOperator._odd_key
        return (1, key[0])
    return (3, key) if type(key) is str else (2, key)


def _public_key(key: Any) -> Any:
    return key[0] if type(key) is tuple else key


def _composite_key(key: str) -> list:
    """The emitted form of a composite key, held as the JSON text of its parts: the list."""
    return json.loads(key)


def _key_part(path: str, value: Any) -> Any:
    """One part of a composite key that is not a string: a bool, or a number (integral ones as
    integers, so that ``1`` and ``1.0`` are one key, as they are for a one-field key)."""
    if value is _MISSING:
        raise _Reject(f"key field {path!r} is missing")
    if type(value) is bool:
        return value
    if _is_number(value):
        return int(value) if type(value) is float and value.is_integer() else value
    raise _Reject(f"key field {path!r} must be a string, a finite number or a bool, not {_json_type(value)}")


def _composite_getter(paths: tuple[str, ...]) -> Callable[[Any], str]:
    """Read a composite key: the canonical JSON text of its parts' list (a string, hashed and
    compared as one; bools stay apart from numbers in it, ``true`` is not ``1``)."""
    getters = tuple((path, _getter(path)) for path in paths)

    def get_parts(event: Any) -> str:
        parts = []
        for path, get in getters:
            value = get(event)
            parts.append(value if type(value) is str else _key_part(path, value))
        return _canonical(parts)

    return get_parts


# --- aggregate state -------------------------------------------------------------------------
# A window's accumulator is a list with one slot per aggregate, except avg (sum, count) and
# first/last (time, value), which take two. Neutral starting values make "new" and "update"
# the same code path.


def _neutral(op: str) -> list:
    return {
        "count": [0],
        "sum": [0],
        "min": [_INF],
        "max": [-_INF],
        "avg": [0, 0],
        "count_distinct": [None],
        "first": [_INF, None],
        "last": [-_INF, None],
        "collect": [None],  # a list of values, arrival order
        "distinct": [None],  # canonical JSON -> value, first seen first
        "top_n": [None],  # [by, time, canonical JSON, value], best first
    }[op]


_NO_VALUES: list = []  # what a stream of counts only reads from an event (never changed)


class _Aggregates:
    """The aggregates of a stream: read values from an event, fold them into accumulators."""

    def __init__(self, aggregates: tuple[model.Aggregate, ...], fast: bool = True):
        self.names = tuple(a.name for a in aggregates)
        self.ops = tuple(a.op for a in aggregates)
        unknown = sorted(set(self.ops) - _ALL_OPS)
        if unknown:
            raise ValueError(f"unknown aggregate operation(s): {', '.join(unknown)}")
        offsets, template = [], []
        for op in self.ops:
            offsets.append(len(template))
            template += _neutral(op)
        self.offsets = tuple(offsets)
        self.template = template
        self.sets = tuple(o for o, op in zip(offsets, self.ops) if op == "count_distinct")
        self.lists = tuple((o, op) for o, op in zip(offsets, self.ops) if op in _LIST_OPS)
        self.limits = {o: a.limit or 1 for o, a in zip(offsets, aggregates)}
        self.reads = tuple((a.name, a.op, _reader(a, fast)) for a in aggregates if a.op != "count")
        self.picks_of = {a.name: _getter(a.pick) for a in aggregates if a.op == "top_n" and a.pick}
        self.plan = tuple((op, off) for op, off in zip(self.ops, offsets))
        # value slots
        self.picks = tuple(o + 1 for o, op in zip(offsets, self.ops) if op in ("first", "last"))
        self.plain = not self.sets and not self.picks and not self.lists  # a copy is a dump

    def read(self, event: Any) -> list:
        """The values the event contributes, in aggregate order (count excluded); _Reject if unusable."""
        values = []
        for name, op, get in self.reads:
            value = get(event)
            if value is _MISSING:
                raise _Reject(f"aggregate {name!r} ({op}): field is missing")
            if op in _NUMERIC_OPS:
                if not _is_number(value):
                    raise _Reject(
                        f"aggregate {name!r} ({op}): expected a finite number, got {_json_type(value)}"
                    )
            elif op == "count_distinct":
                try:
                    value = _canonical(value)
                except (TypeError, ValueError) as exc:
                    raise _Reject(f"aggregate {name!r} ({op}): value is not JSON: {exc}") from None
            elif op in _LIST_OPS:
                value = self._read_listed(name, op, value, event)
            values.append(value)
        return values

    def _read_listed(self, name: str, op: str, value: Any, event: Any) -> Any:
        """collect: a copy of the value; distinct: (canonical, value); top_n: (by, canonical, value)."""
        if op == "top_n":
            if not _is_number(value):
                raise _Reject(
                    f"aggregate {name!r} ({op}): `by` expected a finite number, got {_json_type(value)}"
                )
            by, get = value, self.picks_of.get(name)
            if get is not None and (value := get(event)) is _MISSING:
                raise _Reject(f"aggregate {name!r} ({op}): field is missing")
        try:
            text = _canonical(value)
        except (TypeError, ValueError) as exc:
            raise _Reject(f"aggregate {name!r} ({op}): value is not JSON: {exc}") from None
        copy = json.loads(text) if type(value) in (dict, list) else value  # kept: not the event's own
        if op == "collect":
            return copy
        return (text, copy) if op == "distinct" else (by, text, copy)

    def new(self) -> list:
        acc = self.template.copy()
        for off in self.sets:
            acc[off] = set()
        for off, op in self.lists:
            acc[off] = {} if op == "distinct" else []
        return acc

    # flat on purpose: once per event and window of every stream (bench stream)
    def add(self, acc: list, values: list, t: float) -> None:  # noqa: C901
        """Fold one event's values (from :meth:`read`) at time *t* into *acc*."""
        i = 0
        for op, off in self.plan:
            if op == "count":
                acc[off] += 1
                continue
            value = values[i]
            i += 1
            if op == "sum":
                try:
                    acc[off] += value
                except OverflowError:
                    acc[off] = _overflowed(acc[off], value)
            elif op == "min":
                if value < acc[off]:
                    acc[off] = value
            elif op == "max":
                if value > acc[off]:
                    acc[off] = value
            elif op == "avg":
                try:
                    acc[off] += value
                except OverflowError:
                    acc[off] = _overflowed(acc[off], value)
                acc[off + 1] += 1
            elif op == "count_distinct":
                acc[off].add(value)
            elif op in _LIST_OPS:
                self._add_listed(op, acc[off], value, t, self.limits[off])
            elif op == "first":
                if t < acc[off]:
                    acc[off], acc[off + 1] = t, value
            elif t >= acc[off]:  # last: equal times, the later arrival wins
                acc[off], acc[off + 1] = t, value

    @staticmethod
    def _add_listed(op: str, items: Any, value: Any, t: float, limit: int) -> None:
        if op == "collect":
            if len(items) < limit:
                items.append(value)
        elif op == "distinct":
            if len(items) < limit:
                items.setdefault(value[0], value[1])
        else:  # top_n: largest by first; ties by earlier time, then by canonical JSON (not arrival)
            by, text, copy = value
            entry = [by, t, text, copy]
            if len(items) >= limit and _rank(entry) >= _rank(items[-1]):
                return
            items.append(entry)
            items.sort(key=_rank)
            del items[limit:]

    @classmethod
    def _merge_listed(cls, op: str, into: Any, other: Any, limit: int) -> Any:
        if op == "collect":
            return into + other[: limit - len(into)]
        if op == "distinct":
            for text, value in other.items():
                cls._add_listed(op, into, (text, value), 0.0, limit)
            return into
        return sorted(into + other, key=_rank)[:limit]  # top_n

    def merge(self, into: list, other: list) -> None:
        """Fold accumulator *other* (a session that comes later in time) into *into*."""
        for op, off in self.plan:
            if op == "count":
                into[off] += other[off]
            elif op == "sum" or op == "avg":
                try:
                    into[off] += other[off]
                except OverflowError:
                    into[off] = _overflowed(into[off], other[off])
                if op == "avg":
                    into[off + 1] += other[off + 1]
            elif op == "min":
                into[off] = min(into[off], other[off])
            elif op == "max":
                into[off] = max(into[off], other[off])
            elif op == "count_distinct":
                into[off] |= other[off]
            elif op in _LIST_OPS:
                into[off] = self._merge_listed(op, into[off], other[off], self.limits[off])
            elif (op == "first" and other[off] < into[off]) or (op == "last" and other[off] >= into[off]):
                into[off], into[off + 1] = other[off], other[off + 1]

    def values(self, acc: list) -> dict[str, Any]:
        out = {}
        for name, (op, off) in zip(self.names, self.plan):
            if op == "avg":
                out[name] = _mean(acc[off], acc[off + 1])
            elif op == "count_distinct":
                out[name] = len(acc[off])
            elif op in ("first", "last"):
                out[name] = acc[off + 1]
            elif op in _LIST_OPS:
                out[name] = _listed(op, acc[off])
            else:
                out[name] = acc[off]
        return out

    def dump(self, acc: list) -> list:
        """JSON form of an accumulator: its slots as they are, a count_distinct set sorted.

        Nothing is shared with *acc*: a first/last value that is an object or an array is copied.
        """
        if self.plain:
            return acc.copy()
        out = acc.copy()
        for off in self.sets:
            out[off] = sorted(out[off])
        for off in self.picks:
            if type(out[off]) in (dict, list):
                out[off] = json.loads(json.dumps(out[off]))
        for off, op in self.lists:  # JSON: a distinct mapping as [canonical, value] pairs
            items = list(out[off].items()) if op == "distinct" else out[off]
            out[off] = json.loads(json.dumps(items))
        return out

    def load(self, slots: list) -> list:
        """An accumulator from its :meth:`dump` form."""
        if type(slots) is not list or len(slots) != len(self.template):
            raise ValueError(f"snapshot accumulator {slots!r} does not have {len(self.template)} slots")
        acc = slots.copy()
        for off in self.sets:
            acc[off] = set(acc[off])
        for off, op in self.lists:
            acc[off] = dict(acc[off]) if op == "distinct" else list(acc[off])
        return acc


def _reader(aggregate: model.Aggregate, fast: bool) -> Callable[[Any], Any]:
    """What an aggregate reads of an event: its field, or its templated ``value`` rendered with the
    event's ``data`` and the ``event`` (a template that fails raises RenderError, at its location)."""
    if aggregate.value is None:
        return _getter(aggregate.field)
    render = compile_value(aggregate.value, fast)
    return lambda event: render({"data": event.get("data"), "event": event})


def _rank(entry: list) -> tuple:
    """Order of top_n entries ``[by, time, canonical, value]``: largest first, then earliest."""
    return (-entry[0], entry[1], entry[2])


def _listed(op: str, items: Any) -> list:
    """The emitted value of a list aggregate: a fresh list (the accumulator stays the operator's)."""
    if op == "distinct":
        values = list(items.values())
    elif op == "top_n":
        values = [entry[3] for entry in items]
    else:
        values = list(items)
    return json.loads(json.dumps(values))


class _Counted:
    """The open count window of one key: its events so far and their event-time bounds."""

    __slots__ = ("key", "seq", "first", "lo", "hi", "n", "acc", "alive")

    def __init__(self, key: Any, seq: int, first: float, lo: float, hi: float, n: int, acc: list):
        self.key, self.seq, self.first, self.lo, self.hi, self.n = key, seq, first, lo, hi, n
        self.acc, self.alive = acc, True


class _Session:
    """One open session of one key: ``[start, last + gap)``."""

    __slots__ = ("key", "start", "last", "acc", "alive")

    def __init__(self, key: Any, start: float, last: float, acc: list):
        self.key, self.start, self.last, self.acc, self.alive = key, start, last, acc, True


class WindowOperator:
    """Windowed aggregation of one stream; see the module docstring for the exact semantics.

    >>> from engine.core.errors import Location
    >>> loc = Location("t.yaml", 1, 1)
    >>> stream = model.Stream("s", loc, (), model.Window("tumbling", loc, size=10),
    ...                       (model.Aggregate("n", "count", None, loc),), model.Ref("out", loc))
    >>> op = WindowOperator(stream)
    >>> op.process({"time": 3}), op.process({"time": 12})
    ([], [Output(kind='window', key=None, start=0.0, end=10.0, values={'n': 1}, event=None, reason=None)])
    """

    def __init__(self, stream: model.Stream, fast_paths: bool = True, partitioned: bool = False):
        """*fast_paths* False: no shortcut (tumbling windows found as hopping ones are, a lone
        count added as every aggregate is); the same outputs. *partitioned*: judged by partition
        watermarks (see the module's docstring)."""
        window = stream.window
        self.stream = stream
        self.kind = window.kind
        self.partitioned = partitioned and window.kind in ("tumbling", "hopping")
        if self.partitioned:
            self.process = self._process_stamped  # type: ignore[method-assign]
        if self.kind == "session":
            self._gap = float(window.gap or 0)
            if not self._gap > 0:
                raise ValueError(f"stream {stream.name!r}: session gap must be positive")
        elif self.kind == "count":
            self._count = int(window.count or 0)
            if self._count < 1:
                raise ValueError(f"stream {stream.name!r}: count window must count at least 1 event")
            self._timeout = _INF if window.timeout is None else float(window.timeout)
            self.process = self._process_count  # type: ignore[method-assign]  # a count closes windows too
        else:
            self._size = float(window.size or 0)
            self._every = self._size if self.kind == "tumbling" else float(window.every or 0)
            if not (self._size > 0 and self._every > 0):
                raise ValueError(f"stream {stream.name!r}: window size and every must be positive")
        self._lateness = float(stream.lateness)
        self._aggs = _Aggregates(stream.aggregates, fast_paths)
        self._get_time = _getter(stream.time)
        self._composite = isinstance(stream.key, tuple)
        self._public = _composite_key if self._composite else _public_key
        if self._composite:
            self._get_key = _composite_getter(stream.key)  # a str: the fast path of a one-field key
        else:
            self._get_key = _getter(stream.key) if stream.key else None
        self._max_time = -_INF
        self._watermark = -_INF
        self._heap: list = []  # window indexes (tumbling, hopping) or (end, seq, session)
        self._buckets: dict[int, dict[Any, list]] = {}  # tumbling, hopping: index -> key -> acc
        self._sessions: dict[Any, list[_Session]] = {}  # per key, sorted by start
        self._open: dict[Any, _Counted] = {}  # count windows: the open one per key, in opening order
        self._saved: dict[int, list] = {}  # index -> its snapshot entry, while no event changed it
        self._bool_keys = False  # whether a key was a bool (kept wrapped in a tuple)
        self._seq = 0
        self._last_time: tuple[str | None, float] = (None, 0.0)  # events come in runs of one timestamp
        self._events = self._windows = self._late = self._invalid = 0
        self._add = (
            self._add_session
            if self.kind == "session"
            else self._add_count
            if self.kind == "count"
            else (self._add_tumbling if self.kind == "tumbling" and fast_paths else self._add_buckets)
        )
        # the commonest stream of all, a count per key and window: counted inline (a shortcut)
        self._one_count = fast_paths and self._aggs.ops == ("count",)
        self._read = self._aggs.read if self._aggs.reads else None  # counts alone read no field

    @property
    def counts(self) -> dict[str, int]:
        """Events taken, windows emitted, late and invalid events so far."""
        return {
            "events": self._events,
            "windows": self._windows,
            "late": self._late,
            "invalid": self._invalid,
        }

    @property
    def watermark(self) -> float:
        """Largest event time seen minus the lateness; ``-inf`` before any, ``+inf`` after flush."""
        return self._watermark

    # --- input ---------------------------------------------------------------------------------

    def process(self, event: dict) -> list[Output]:
        """Take one event; return the windows it closed, or the event itself as late or invalid."""
        self._events += 1
        try:
            raw = self._get_time(event)
            if type(raw) is str and raw == self._last_time[0]:
                t = self._last_time[1]
            elif type(raw) is str and (t := _text_time(raw)) is not None:  # the common case: a valid text
                self._last_time = (raw, t)
            else:
                t = self._time_of(raw)
            key = None
            if self._get_key is not None:
                key = self._get_key(event)
                if type(key) is not str:
                    key = self._odd_key(key)
            values = self._read(event) if self._read is not None else _NO_VALUES
        except _Reject as rejected:
            return self._reject(event, rejected)
        except RenderError as exc:  # a collect projection failed: nothing of the event is applied
            return [Output("error", event=event, reason=exc.detail, error=exc)]
        if not self._add(key, t, values):
            self._late += 1
            return [Output("late", key=self._public(key), event=event, reason=self._late_reason(t))]
        if t > self._max_time:
            self._max_time = t
            if t - self._lateness > self._watermark:
                self._watermark = t - self._lateness
                return self._close()
        return []

    def _process_count(self, event: dict) -> list[Output]:
        """:meth:`process` of a count window: the window the event fills closes at once, then those
        whose timeout the watermark passed."""
        self._events += 1
        fields = self._fields(event)
        if type(fields) is list:
            return fields
        t, key, values = fields
        out = self._add_count(key, t, values)
        if out is None:
            self._late += 1
            return [Output("late", key=self._public(key), event=event, reason=self._late_reason(t))]
        self._windows += len(out)
        if t > self._max_time:
            self._max_time = t
            if t - self._lateness > self._watermark:
                self._watermark = t - self._lateness
                out += self._close()
        return out

    def _process_stamped(self, event: dict) -> list[Output]:
        """:meth:`process` of a partitioned operator: late by the event's stamp, closing nothing."""
        self._events += 1
        fields = self._fields(event)
        if type(fields) is list:
            return fields
        t, key, values = fields
        closed = self._watermark
        stamp = stamp_of(event) - self._lateness
        self._watermark = stamp if stamp > closed else closed  # what is late for this event
        try:
            added = self._add(key, t, values)
        finally:
            self._watermark = closed
        if not added:
            self._late += 1
            return [Output("late", key=self._public(key), event=event, reason=self._stamped_reason(t, stamp))]
        if t > self._max_time:
            self._max_time = t
        return []

    def _stamped_reason(self, t: float, stamp: float) -> str:
        if self._watermark == _INF:
            return f"event time {_format(t)} arrived after the end of input (flush)"
        if stamp >= self._watermark:
            return (f"event time {_format(t)}: its window had closed when its input was routed (the input's "
                    f"partition had reached {_format(stamp + self._lateness)}, lateness included)")
        return f"event time {_format(t)} is behind the closed windows (up to {_format(self._watermark)})"

    def advance(self, limit: float) -> list[Output]:
        """Partitioned: close every window with ``end <= limit`` (nothing pending can join it)."""
        if limit <= self._watermark:
            return []
        self._watermark = limit
        return self._close()

    def key_text(self, event: dict) -> str:
        """The event's key as text, ``""`` when it has none or an unusable one (a deployment
        splits a partitioned stream's deliveries by it; the operator judges the key itself)."""
        if self._get_key is None:
            return ""
        try:
            key = self._get_key(event)
            if type(key) is not str:
                key = self._odd_key(key)
        except (_Reject, RenderError):
            return ""
        if type(key) is float and key.is_integer():
            key = int(key)  # 1 and 1.0 are one key
        return key if type(key) is str else _canonical(self._public(key))

    def next_end(self) -> float:
        """The end of the open window that closes first (``+inf``: none open)."""
        if not self._heap:
            return _INF
        return self._heap[0] * self._every + self._size

    def _fields(self, event: dict) -> tuple[float, Any, Any] | list[Output]:
        """An event's time, key and aggregated values (what :meth:`process` reads inline); or
        the output that refuses it: invalid, or a collect projection's error (nothing of the
        event is applied either way)."""
        try:
            t = self._time_of(self._get_time(event))
            key = None
            if self._get_key is not None:
                key = self._get_key(event)
                if type(key) is not str:
                    key = self._odd_key(key)
            return t, key, self._read(event) if self._read is not None else _NO_VALUES
        except _Reject as rejected:
            return self._reject(event, rejected)
        except RenderError as exc:
            return [Output("error", event=event, reason=exc.detail, error=exc)]

    def _reject(self, event: Any, rejected: _Reject) -> list[Output]:
        self._invalid += 1
        return [Output("invalid", event=event, reason=rejected.reason)]

    def _late_reason(self, t: float) -> str:
        if self._watermark == _INF:
            return f"event time {_format(t)} arrived after the end of input (flush)"
        return (
            f"event time {_format(t)} is behind the watermark {_format(self._watermark)} "
            "and its windows are closed"
        )

    def flush(self) -> list[Output]:
        """End of input: move the watermark to ``+inf`` and return every open window."""
        self._watermark = _INF
        return self._close()

    def _time_of(self, raw: Any) -> float:
        """Epoch seconds of a raw time field (the cases the inline path of process leaves)."""
        if raw is _MISSING:
            raise _Reject(f"time field {self.stream.time!r} is missing")
        try:
            return eventtime.from_epoch(raw) if type(raw) in (int, float) else eventtime.parse(raw)
        except eventtime.EventTimeError as exc:
            raise _Reject(f"time field {self.stream.time!r}: {exc}") from None

    def _odd_key(self, key: Any) -> Any:
        """A key that is not a string: numbers as they are, bools wrapped so True is not 1."""
        if key is _MISSING:
            raise _Reject(f"key field {self.stream.key!r} is missing")
        if type(key) is bool:
            self._bool_keys = True
            return (key,)
        if _is_number(key):
            return key
        raise _Reject(
            f"key field {self.stream.key!r} must be a string, a finite number or a bool, "
            f"not {_json_type(key)}"
        )

    # --- tumbling and hopping ------------------------------------------------------------------

    def _indexes(self, t: float) -> range:
        """Indexes j of the windows [j*every, j*every + size) that contain *t*."""
        every, size = self._every, self._size
        last = math.floor(t / every)
        while last * every > t:
            last -= 1
        while (last + 1) * every <= t:
            last += 1
        if every == size:
            return range(last, last + 1) if t < last * every + size else range(last + 1, last + 2)
        first = math.floor((t - size) / every) + 1
        while (first - 1) * every + size > t:
            first -= 1
        while first * every + size <= t:
            first += 1
        return range(first, last + 1)

    def _add_tumbling(self, key: Any, t: float, values: list) -> bool:
        """:meth:`_add_buckets` for one window per event, without the general index search."""
        size = self._size
        j = int(t // size)
        if j * size > t:
            j -= 1
        elif j * size + size <= t:
            j += 1
        if j * size + size <= self._watermark:
            return False
        if self._saved:
            self._saved.pop(j, None)
        bucket = self._buckets.get(j)
        if bucket is None:
            bucket = self._buckets[j] = {}
            heapq.heappush(self._heap, j)
        acc = bucket.get(key)
        if self._one_count:
            if acc is None:
                bucket[key] = [1]
            else:
                acc[0] += 1
            return True
        if acc is None:
            acc = bucket[key] = self._aggs.new()
        self._aggs.add(acc, values, t)
        return True

    def _add_buckets(self, key: Any, t: float, values: list) -> bool:
        indexes = self._indexes(t)
        if not indexes:
            return True  # between hopping windows: counted nowhere, but not late
        every, size, watermark = self._every, self._size, self._watermark
        if indexes[-1] * every + size <= watermark:
            return False
        aggs, buckets, saved = self._aggs, self._buckets, self._saved
        for j in indexes:
            if j * every + size <= watermark:
                continue  # this one already closed; a later one is open
            if saved:
                saved.pop(j, None)
            bucket = buckets.get(j)
            if bucket is None:
                bucket = buckets[j] = {}
                heapq.heappush(self._heap, j)
            acc = bucket.get(key)
            if acc is None:
                acc = bucket[key] = aggs.new()
            aggs.add(acc, values, t)
        return True

    # --- count windows -------------------------------------------------------------------------

    def _add_count(self, key: Any, t: float, values: list) -> list[Output] | None:
        """Add to the key's open count window (opening one if needed). Returns the windows this
        closed: the key's open one if the event is past its timeout (then the event opens the
        next), the one the event filled; None if the event is late: it would open a window whose
        timeout the watermark already passed."""
        out = []
        window = self._open.get(key)
        expired = window is not None and t >= window.first + self._timeout
        if (window is None or expired) and t + self._timeout <= self._watermark:
            return None
        if expired:
            window.alive = False  # timed out in event time: the event does not join it
            del self._open[key]
            out.append(self._counted(window, False))
            window = None
        if window is None:
            window = self._open[key] = _Counted(key, self._events, t, t, t, 0, self._aggs.new())
            heapq.heappush(self._heap, (t + self._timeout, window.seq, window))
        self._aggs.add(window.acc, values, t)
        window.n += 1
        if t < window.lo:
            window.lo = t
        elif t > window.hi:
            window.hi = t
        if window.n >= self._count:
            window.alive = False  # its heap entry is skipped when it comes up
            del self._open[key]
            out.append(self._counted(window, True))
        return out

    def _counted(self, window: _Counted, complete: bool) -> Output:
        return Output(
            "window", self._public(window.key), window.lo, window.hi, self._aggs.values(window.acc),
            count=window.n, complete=complete, seq=window.seq,
        )

    def _close_counted(self) -> list[Output]:
        heap, watermark, out = self._heap, self._watermark, []
        while heap and heap[0][0] <= watermark:
            _, _, window = heapq.heappop(heap)
            if window.alive:
                del self._open[window.key]
                out.append(self._counted(window, False))
        return out

    # --- sessions ------------------------------------------------------------------------------

    def _add_session(self, key: Any, t: float, values: list) -> bool:
        gap, aggs = self._gap, self._aggs
        sessions = self._sessions.get(key)
        if sessions is None:
            sessions = self._sessions[key] = []
        touching = [s for s in sessions if s.start < t + gap and t < s.last + gap]
        if not touching:
            if t + gap <= self._watermark:
                if not sessions:
                    del self._sessions[key]
                return False
            session = _Session(key, t, t, aggs.new())
            aggs.add(session.acc, values, t)
            sessions.append(session)
            sessions.sort(key=lambda s: s.start)
            self._push_session(session)
            return True
        into = touching[0]
        for other in touching[1:]:  # the event bridges sessions: join them into the first
            aggs.merge(into.acc, other.acc)
            into.last = max(into.last, other.last)
            other.alive = False
            sessions.remove(other)
        aggs.add(into.acc, values, t)
        into.start = min(into.start, t)
        into.last = max(into.last, t)
        return True

    def _push_session(self, session: _Session) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (session.last + self._gap, self._seq, session))

    # --- closing -------------------------------------------------------------------------------

    def _close(self) -> list[Output]:
        closed = (
            self._close_sessions()
            if self.kind == "session"
            else self._close_counted()
            if self.kind == "count"
            else self._close_buckets()
        )
        self._windows += len(closed)
        return closed

    def _close_buckets(self) -> list[Output]:
        heap, every, size, watermark = self._heap, self._every, self._size, self._watermark
        out: list[Output] = []
        public = self._public
        while heap and heap[0] * every + size <= watermark:
            j = heapq.heappop(heap)
            start = j * every
            bucket = self._buckets.pop(j)
            self._saved.pop(j, None)
            for key in sorted(bucket, key=_key_order):
                out.append(
                    Output("window", public(key), start, start + size, self._aggs.values(bucket[key]))
                )
        return out

    def _close_sessions(self) -> list[Output]:
        heap, gap, watermark = self._heap, self._gap, self._watermark
        done: list[_Session] = []
        while heap and heap[0][0] <= watermark:
            end, _, session = heapq.heappop(heap)
            if not session.alive:
                continue  # joined into another session
            if session.last + gap > end:
                self._push_session(session)  # grew since it was pushed
                continue
            session.alive = False
            done.append(session)
            sessions = self._sessions[session.key]
            sessions.remove(session)
            if not sessions:
                del self._sessions[session.key]
        done.sort(key=lambda s: (s.last + gap, s.start, _key_order(s.key)))
        return [
            Output("window", self._public(s.key), s.start, s.last + gap, self._aggs.values(s.acc))
            for s in done
        ]

    # --- snapshot ------------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """A JSON-ready snapshot of everything the operator holds, in a deterministic order.

        ``windows`` lists, for tumbling and hopping windows, ``[index, keys, slots]`` per open
        window index in ascending order, where *slots* holds the accumulators of the keys one
        after the other, each its list of slots (:meth:`_Aggregates.dump`), and for sessions
        ``[key, start, last, slots]`` per open session; keys in the order they came (which a
        restored operator keeps). A composite key is its JSON text, and ``key`` lists its paths.
        The data is fresh except the entries of windows no event changed since the last call,
        which are the same objects as then: a snapshot is read-only.
        """
        if self.kind == "session":
            dump = self._aggs.dump
            windows = [
                [_public_key(s.key), s.start, s.last, dump(s.acc)]
                for sessions in self._sessions.values()
                for s in sessions
            ]
        elif self.kind == "count":
            dump = self._aggs.dump
            windows = [
                [_public_key(w.key), w.seq, w.first, w.lo, w.hi, w.n, dump(w.acc)]
                for w in self._open.values()
            ]
        else:
            saved, buckets = self._saved, self._buckets
            windows = [saved.get(j) or self._save_bucket(j, buckets[j]) for j in sorted(buckets)]
        state = {
            "version": SNAPSHOT_VERSION,
            "stream": self.stream.name,
            "window": self.kind,
            "count": [self._count, self._timeout if self._timeout != _INF else None]
            if self.kind == "count"
            else None,
            "aggregates": [[a.name, a.op] for a in self.stream.aggregates],
            "max_time": None if self._max_time == -_INF else self._max_time,
            "flushed": self._watermark == _INF,
            "counts": dict(self.counts),
            "windows": windows,
        }
        if self._composite:  # its keys are the JSON text of their parts: a snapshot says which parts
            state["key"] = list(self.stream.key)
        if self.partitioned and abs(self._watermark) != _INF:  # how far advance closed windows
            state["closed"] = self._watermark
        return state

    def _save_bucket(self, j: int, bucket: dict[Any, list]) -> list:
        """The snapshot entry of window index *j*, kept until an event changes or closes it."""
        keys = [key[0] if type(key) is tuple else key for key in bucket] if self._bool_keys else list(bucket)
        accs = bucket.values()
        slots = list(chain.from_iterable(accs if self._aggs.plain else map(self._aggs.dump, accs)))
        entry = [j, keys, slots]
        self._saved[j] = entry
        return entry

    @classmethod
    def restore(
        cls, stream: model.Stream, state: Mapping[str, Any], fast_paths: bool = True,
        partitioned: bool = False,
    ) -> WindowOperator:
        """An operator for *stream* continuing from a :meth:`state` snapshot.

        Raises ValueError if the snapshot was taken from a differently shaped stream.
        """
        op = cls(stream, fast_paths, partitioned)
        expected = {
            "window": op.kind,
            "count": op.state()["count"],
            "aggregates": [[a.name, a.op] for a in stream.aggregates],
            "key": list(stream.key) if op._composite else None,
        }
        if state.get("version") != SNAPSHOT_VERSION:
            raise ValueError(
                f"snapshot version is {state.get('version')!r}, stream {stream.name!r} "
                f"needs {SNAPSHOT_VERSION}"
            )
        for name, value in expected.items():
            if state.get(name) != value:
                raise ValueError(
                    f"snapshot {name} is {state.get(name)!r}, stream {stream.name!r} needs {value!r}"
                )
        if state["max_time"] is not None:
            op._max_time = float(state["max_time"])
            op._watermark = op._max_time - op._lateness
        if op.partitioned:  # closed by advance, not by the events seen
            op._watermark = -_INF if state.get("closed") is None else float(state["closed"])
        if state["flushed"]:
            op._watermark = _INF
        counts = state["counts"]
        op._events, op._windows = counts["events"], counts["windows"]
        op._late, op._invalid = counts["late"], counts["invalid"]
        op._restore_windows(state["windows"])
        return op

    def _restore_windows(self, windows: list) -> None:
        if self.kind == "session":
            for key, start, last, slots in windows:
                self._restore_session(key, start, last, self._aggs.load(slots))
        elif self.kind == "count":
            for key, seq, first, lo, hi, n, slots in windows:
                self._restore_counted(key, int(seq), (float(first), float(lo), float(hi)), int(n), slots)
        else:
            width, load = len(self._aggs.template), self._aggs.load
            for j, keys, slots in windows:
                if len(slots) != len(keys) * width:
                    raise ValueError(
                        f"snapshot window {j!r} has {len(slots)} slots for {len(keys)} keys, not {width} each"
                    )
                if any(type(key) is bool for key in keys):
                    self._bool_keys = True
                    keys = [(key,) if type(key) is bool else key for key in keys]
                accs = (load(slots[i : i + width]) for i in range(0, len(slots), width))
                self._restore_bucket(int(j), dict(zip(keys, accs)))

    def _restore_counted(self, key: Any, seq: int, times: tuple, n: int, slots: list) -> None:
        if type(key) is bool:
            key, self._bool_keys = (key,), True
        window = _Counted(key, seq, *times, n, self._aggs.load(slots))
        self._open[key] = window
        heapq.heappush(self._heap, (window.first + self._timeout, window.seq, window))

    def _restore_session(self, key: Any, start: float, last: float, acc: list) -> None:
        if type(key) is bool:
            key, self._bool_keys = (key,), True
        session = _Session(key, float(start), float(last), acc)
        self._sessions.setdefault(key, []).append(session)
        self._push_session(session)

    def _restore_bucket(self, j: int, bucket: dict[Any, list]) -> None:
        if j in self._buckets:
            self._buckets[j].update(bucket)
        else:
            self._buckets[j] = bucket
            heapq.heappush(self._heap, j)
