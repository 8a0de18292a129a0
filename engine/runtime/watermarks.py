"""Windows fed by the mesh's own events: partition watermarks, the same in `run` and a deployment.

A tumbling or hopping stream that reads the events' ``time`` and takes a type the mesh itself
emits (a score an orchestration step emits, say) would otherwise see its events in the order
work happened to finish: in a deployment that order depends on the workers, so which events
are late, and so the windows, would too. Such a stream (a *partitioned* stream) is judged by
the inputs instead (docs/streams.md, "Windows fed by the mesh's own events"):

- Inputs are counted per partition (the deployment's partitions; ``meshctl run`` counts its
  inputs by the same rule, :func:`~engine.storage.broker.input_partition`). An input's
  partition's *progress* is the largest event time among the inputs routed in it so far.
- Each input is stamped with the progress of its partition before it, as the extension
  :data:`WATERMARK`; every event it causes inherits the stamp (``events.derive``).
- An event is late for a window when ``end + lateness <= its stamp``: a fact of the input
  order of one partition, never of timing.
- A window closes once no event can still join it: ``end + lateness <= the smallest progress
  of all partitions`` (an input not yet routed is late for it), and ``end <= the smallest
  bound of all pending work`` (tasks, and events a resequencer holds: no derived event is
  earlier than what caused it, so nothing pending can still fall in the window).

So the windows, the late events and the counters are those of ``meshctl run`` however many
workers share the work and whatever order they finish it in. A partition that has had no
input yet holds such windows back until it has one (or the input ends: ``run``, a draining
worker).
"""
from __future__ import annotations

import heapq
import math
from typing import Any, Callable

from ..core import eventtime
from ..language import model as m
from ..storage.broker import input_partition
from .events import WATERMARK

_INF = math.inf
_parse = eventtime.parse_or_none


def _time_or_floor(raw: Any) -> float:
    """Epoch seconds of an RFC 3339 text; ``-inf`` for anything else (no time: no bound)."""
    t = _parse(raw) if isinstance(raw, str) else None
    return -_INF if t is None else t


def stream_key(name: str) -> str:
    """The partition key of a windowed stream: its deliveries, its windows and its pinned inputs."""
    return f"stream:{name}"


def stream_inputs(mesh: m.Mesh) -> dict[str, str]:
    """Event type -> the partition key of its inputs, for the types windowed streams take: all
    of them go to the stream's partition (``stream:<name>``), routed there in arrival order, so
    a window sees its events in the order `meshctl run` does, however many workers run (the
    first stream by name, for a type that several take). Not those of partitioned streams:
    their deliveries go by their key, and their windows do not depend on arrival order."""
    pinned: dict[str, str] = {}
    split = partitioned_streams(mesh)
    for name in sorted(set(mesh.streams) - split):
        for source in mesh.streams[name].sources:
            pinned.setdefault(source.name, stream_key(name))
    return pinned


def emitted_types(mesh: m.Mesh) -> frozenset[str]:
    """Every event type something in the mesh can emit (routes, services, orchestrations, streams)."""
    out: set[str] = set()
    for route in mesh.routes.values():
        out.update(ref.name for ref in route.output_types())
    for sub in mesh.subscriptions():
        out.update(m.emit_types(sub.actions) | {ref.name for ref in sub.emits})
    for orch in mesh.orchestrations.values():
        out.update(m.emit_types(orch.all_actions()) | orch.end_may_emit()
                   | {ref.name for ref in orch.declared_emits()})
        for step in orch.steps:
            out.update(step.may_emit())
    for stream in mesh.streams.values():
        out.add(stream.emit_type.name)
        if stream.late_emit_type is not None:
            out.add(stream.late_emit_type.name)
    return frozenset(out)


def partitioned_streams(mesh: m.Mesh) -> frozenset[str]:
    """The streams judged by partition watermarks: tumbling or hopping, on the events' ``time``,
    taking at least one type the mesh emits."""
    emitted = emitted_types(mesh)
    return frozenset(
        s.name for s in mesh.streams.values()
        if s.window.kind in ("tumbling", "hopping") and s.time == "time"
        and any(ref.name in emitted for ref in s.sources)
    )


def stamp_of(event: dict) -> float:
    """The partition progress an event was stamped with (``-inf``: none, or its input had none)."""
    return _time_or_floor(event.get(WATERMARK))


def task_bound(kind: str, payload: Any) -> float:
    """No event a task makes is earlier than this: its cause's event time (a derived event's
    time is its cause's plus declared delays), or the event time the task's payload says its
    work starts at (``at``: an orchestration's steps, a timeout, a schedule's tick). ``-inf``
    when unknown (it holds windows back until done); ``+inf`` for a task that makes nothing new
    (a gap timer: what it lets go is held)."""
    if kind == "order-gap":
        return _INF
    if kind in ("attempt", "offer", "complete"):
        event = payload.get("event") if kind != "complete" else payload.get("delivery", {}).get("event")
        return _time_or_floor(event.get("time") if isinstance(event, dict) else None)
    at = payload.get("at") if isinstance(payload, dict) else None
    return float(at) if isinstance(at, (int, float)) and not isinstance(at, bool) else -_INF


class InputProgress:
    """Per partition, the largest event time among the inputs routed in it so far."""

    def __init__(self, partitions: int, pinned: dict[str, str]):
        self.partitions, self.pinned = partitions, pinned
        self.of = [-_INF] * partitions

    def stamp(self, event: dict, partition: int | None = None) -> dict:
        """*event* stamped with its partition's progress before it (a copy; without the stamp
        when the partition has none), and the progress moved on by its time."""
        p = input_partition(event, self.partitions, self.pinned) if partition is None else partition
        before = self.of[p]
        t = _time_or_floor(event.get("time"))
        if t > before:
            self.of[p] = t
        stamped = {k: v for k, v in event.items() if k != WATERMARK}
        if before != -_INF:
            stamped[WATERMARK] = eventtime.format(before)
        return stamped

    def low(self) -> float:
        return min(self.of)

    def snapshot(self) -> list:
        return [None if t == -_INF else t for t in self.of]

    def restore(self, state: list | None) -> None:
        if state and len(state) == self.partitions:
            self.of = [-_INF if t is None else float(t) for t in state]


class Pending:
    """Pending work by name, each with its bound; the smallest bound at hand (lazy heap)."""

    def __init__(self):
        self.bounds: dict[Any, float] = {}
        self._heap: list[tuple[float, int, Any]] = []
        self._seq = 0

    def add(self, name: Any, bound: float) -> None:
        self.bounds[name] = bound
        self._seq += 1
        heapq.heappush(self._heap, (bound, self._seq, name))

    def discard(self, name: Any) -> None:
        self.bounds.pop(name, None)

    def low(self) -> float:
        heap, bounds = self._heap, self.bounds
        while heap:
            bound, _, name = heap[0]
            if bounds.get(name) == bound:
                return bound
            heapq.heappop(heap)  # done, or added again with another bound
        return _INF


class Watermarks:
    """The runtime's side of partition watermarks: stamps inputs, keeps the pending work of a
    run (its schedule's tasks and the events held), and closes the windows of partitioned
    streams once both lows allow it (*close*: ``close(progress low, pending low)``).

    A worker sets :attr:`holds` to a dict: holds are then collected for its unit's commit
    instead, and the deployment's broker keeps the pending work."""

    def __init__(self, mesh: m.Mesh, close: Callable[[float, float], None]):
        self.streams = partitioned_streams(mesh)
        self.enabled = bool(self.streams)
        self.progress = InputProgress(mesh.partitions, stream_inputs(mesh))
        self.pending = Pending()
        self.holds: dict[str, float | None] | None = None
        self._close = close
        self._seen: tuple[float, float] | None = None

    def stamp(self, event: dict, partition: int | None = None) -> dict:
        return self.progress.stamp(event, partition) if self.enabled else event

    def hold(self, name: str, event: dict) -> None:
        """Work kept outside the schedule (an event a resequencer buffers) counts as pending."""
        if not self.enabled:
            return
        bound = _time_or_floor(event.get("time"))
        if self.holds is not None:
            self.holds[name] = bound
        else:
            self.pending.add(("hold", name), bound)

    def release(self, name: str) -> None:
        if not self.enabled:
            return
        if self.holds is not None:
            self.holds[name] = None
        else:
            self.pending.discard(("hold", name))

    def check(self) -> None:
        """Close what the run's lows allow (after each task and input; cheap when they did not move)."""
        lows = (self.progress.low(), self.pending.low())
        if lows != self._seen:
            self._seen = lows
            self._close(*lows)

    def snapshot(self) -> dict:
        holds = {name[1]: bound for name, bound in self.pending.bounds.items() if isinstance(name, tuple)}
        return {"progress": self.progress.snapshot(), "holds": {k: _num(v) for k, v in holds.items()}}

    def restore(self, state: dict | None) -> None:
        if not state:
            return
        self.progress.restore(state.get("progress"))
        for name, bound in state.get("holds", {}).items():
            self.pending.add(("hold", name), -_INF if bound is None else float(bound))
        self._seen = None


def _num(value: float) -> float | None:
    return None if value == -_INF else value
