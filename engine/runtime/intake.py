"""Stage admit: an input record enters the mesh at its time.

What is due before the input's time runs first (the clock never goes back: an input without
a time, or behind the clock, arrives now); then it is counted, recorded and published. A
record refused on reading (:class:`~engine.runtime.events.BadInput`) is dead-lettered as
``schema-invalid`` instead, and still counted as an input.

Shortcut (``fast_paths``): an input of a type that only plain streams take (no data schema,
pattern, fault, rate limit, breaker or hold) goes through one fused frame with the same
steps, counts and records in the same order (inputs feeding windows come by the million).
"""
from __future__ import annotations

from ..core.eventtime import parse_or_none as parse_time
from ..core.identity import identity
from .consumers import Consumer
from .events import BadInput, as_input
from .guards import Guards
from .ports import MESH, Pipeline
from .routing import Routing
from .streams import StreamRunner

Lane = tuple[tuple[str, str, Consumer], ...]  # (consumer id, stream name, consumer) per stream taking a type


class Intake:
    def __init__(self, rt: Pipeline, routing: Routing, guards: Guards, streams: StreamRunner,
                 limited: frozenset):
        self.rt, self.guards, self.streams = rt, guards, streams
        self.store, self.trace = rt.store, rt.trace
        self.fed = 0  # inputs consumed: the input position a checkpoint records
        self.inline_types = guards.types_without_holds()
        self.stream_lanes = self._types_only_streams_take(routing, limited) if rt.fast_paths else {}
        # partition watermarks (watermarks.py): each input stamped with its partition's progress,
        # and what its progress lets close closed after it; None without partitioned streams
        watermarks = rt.watermarks
        self._stamp = watermarks.stamp if watermarks.enabled else None
        self._check = watermarks.check if watermarks.enabled else None

    def _types_only_streams_take(self, routing: Routing, limited: frozenset) -> dict[str, Lane]:
        """Event types without a data schema whose consumers are all streams without a
        pattern, an injected fault, a rate limit or a breaker, and plain (see guards): inputs
        of theirs take the fused path of :meth:`_into_streams`."""
        lanes = {}
        faults = self.rt.faults
        for name, (targets, has_schema) in routing.routes.items():
            consumers = targets.consumers
            if consumers and not targets.patterned and not has_schema and name in self.inline_types and all(
                    c.kind == "stream" and c.id not in faults and c.id not in limited
                    and c.policy.breaker is None for c in consumers):
                lanes[name] = tuple((c.id, c.element.name, c) for c in consumers)
        return lanes

    def feed(self, item: dict | BadInput) -> None:
        """One input: due work before its time runs first, then it is published at its time."""
        if item.__class__ is dict:
            item = as_input(item)
            if self._stamp is not None:
                item = self._stamp(item)
        lane = self.stream_lanes.get(item.get("type")) if item.__class__ is dict else None
        if lane is not None and self._into_streams(item, lane):
            if self._check is not None:
                self._check()
            return
        rt = self.rt
        self.fed += 1
        if isinstance(item, BadInput):
            self._refuse(item)
            return
        when = parse_time(item.get("time"))
        if not rt.clock_started:
            rt.start_clock(when)
        # An input arrives at its time, or now if it has none or the clock is past it (the
        # clock never goes back): what is due until then runs first.
        scheduler, now = rt.scheduler, rt.clock.now()
        if when is not None and when > now:
            now = when
        if not scheduler.idle_at(now):
            scheduler.run_until_idle(until=now)
        rt.clock.advance_to(now)
        self._ingested(item, now)
        # Nothing is due before the input (and the next input waits for what it leaves due):
        # its first attempts run now, in the order the schedule would run them, without a
        # trip through it (see Guards.offer).
        guards = self.guards
        guards.inline = item["type"] in self.inline_types
        try:
            rt.publish(item, "ingress")
        finally:
            guards.inline = False
        if self._check is not None:
            self._check()

    def _ingested(self, item: dict, now: float) -> None:
        """Count and record the input that arrives now, and tell ``on_input`` (invariants)."""
        trace = self.trace
        trace.counts["events_in"] += 1
        if trace.sink is not None:
            trace.record(now, "ingest", event=item["id"], type=item["type"])
        if self.rt.on_input is not None:
            self.rt.on_input(item)

    def _refuse(self, item: BadInput) -> None:
        """A record that is not a usable event: dead-lettered as ``schema-invalid``."""
        rt = self.rt
        if rt.on_refused is not None:
            rt.on_refused(item)
        # Counted in "events in", so recorded as an input too: a trace's figures are the summary's.
        self.trace.count("events_in")
        if self.trace.sink is not None:
            self.trace.record(rt.clock.now(), "ingest", event=None, type=None, rejected="schema-invalid")
        rt.dead_letter(MESH, {"raw": item.raw, "location": str(item.loc)}, "schema-invalid", "BadInput",
                       f"{item.loc}: {item.problem}", queue="dlq")

    def _into_streams(self, item: dict, lane: Lane) -> bool:
        """The general path of :meth:`feed` for an input taken only by streams, fused into
        one frame: the same steps, counts and records in the same order. False, having done
        nothing, when a step would go beyond it: no time, the clock not started, work due, a
        hop count, a trace to record."""
        rt = self.rt
        when, trace = parse_time(item.get("time")), self.trace
        if when is None or trace.sink is not None or not rt.clock_started or "hopcount" in item:
            return False
        clock = rt.clock
        now = clock.now()
        if when > now:
            if not rt.scheduler.idle_at(when):
                return False
            clock.advance_to(when)
            now = when
        elif not rt.scheduler.idle_at(now):
            return False
        self.fed += 1
        counts, store, operators, key = trace.counts, self.store, self.streams.operators, identity(item)
        counts["events_in"] += 1
        store.append("input", item)
        if rt.on_input is not None:
            rt.on_input(item)
        for consumer_id, stream_name, consumer in lane:
            counts["matched"] += 1
            if store.is_done(key, consumer_id, now):
                counts["duplicates"] += 1
                continue
            counts["delivered"] += 1
            outputs = operators[stream_name].process(item)
            if outputs:
                d = {"event": item, "consumer": consumer_id, "number": 1, "first": now, "producer": "ingress",
                     "replay": False}
                rt.run_attempt(d, consumer, now, self.streams.output_handler(consumer.element, outputs))
            else:
                store.mark_done(key, consumer_id, now)
        return True
