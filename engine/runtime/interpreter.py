"""The runtime: publishes events, delivers them to consumers with retries, dead-letters failures.

One engine for every clock. Delivery to each consumer is at-least-once with its effect
once: a (event identity, consumer) pair that took effect is recorded in the store and a
redelivery of it is skipped. An event's identity is its source and id together
(:func:`~engine.core.identity.identity`): the id alone is only unique per source. Each
attempt runs synchronously at its scheduled time, takes ``elapsed`` (virtual) seconds, and
its effects — emitted events, direct deliveries, dead letters — are committed when it
completes. Every input ends delivered, filtered, unconsumed (counted) or dead-lettered;
nothing is dropped.
"""
from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, Callable, Iterable

from ..core import eventtime
from ..core.deadletter import DeadLetter
from ..core.identity import identity
from ..language import model as m
from ..language.admission import DataSchemas, unknown_type
from ..language.templates import RenderError, compile_string, compile_value
from ..storage import MemoryStore, Store
from . import retry as retry_delays
from .actions import (
    ActionFailed,
    Attempt,
    Toolbox,
    compile_actions,
    error_data,
    run_actions,
)
from .clock import Clock, VirtualClock, iso, parse_time
from .consumers import Consumer, build_consumers
from .events import BadInput, as_input, chain, derive
from .ordering import Resequencer
from .ratelimit import Buckets
from .router import Targets, by_service, by_type
from .scheduler import Scheduler
from .trace import Trace

DEFAULT_MAX_HOPS = 16
MESH = "mesh"  # the consumer named in dead letters of events no consumer could take
DEFAULT_START = 1_767_225_600.0  # 2026-01-01T00:00:00Z: the virtual clock's start when input has no time
_ARCHIVED = frozenset({"ingress", "dlq-replay", "replay"})  # producers whose events are inputs of the archive
_NOBODY = Targets(())  # where a route's event goes when its service has no subscription to its type


@dataclass
class Fault:
    """A fault injected from outside the mesh (`run --fault`, test files): fail a consumer's attempts."""

    consumer: str
    times: int | None = None  # None: always
    error: str = "InjectedFault"


class Runtime:
    def __init__(self, mesh: m.Mesh, *, store: Store | None = None, clock: Clock | None = None, seed: int = 0,
                 http: str = "simulate", faults: Iterable[Fault] = (), max_hops: int = DEFAULT_MAX_HOPS,
                 trace: Trace | None = None, on_emit: Callable[[dict], None] | None = None):
        from .orchestrator import Orchestrator  # orchestrator builds on this module
        from .streams import StreamRunner

        self.mesh = mesh
        self.store = store if store is not None else MemoryStore.for_mesh(mesh.retention)
        self.clock = clock if clock is not None else VirtualClock(DEFAULT_START)
        self._clock_started = clock is not None
        self.scheduler = Scheduler(self.clock, self._dispatch)
        self.seed = seed
        self.max_hops = max_hops
        self.trace = trace if trace is not None else Trace()
        self.on_emit = on_emit
        self.on_refused: Callable[[Any], None] | None = None  # told of each input refused at entry (its problem)
        self.tools = Toolbox(mesh.root, http, logging=self.trace.recording, allow=mesh.allowed_modules)
        self.faults = {f.consumer: f for f in faults}
        self.consumers = build_consumers(mesh)
        self.by_id = {c.id: c for c in self.consumers}
        self._routes: dict[str, tuple[Targets, bool]] = {}  # event type -> its consumers, has a data schema
        self._build_router()
        self._direct = by_service(self.consumers)  # (service, type) -> the subscriptions a route delivers to
        self._only: dict[str, Targets] = {}  # consumer id -> itself, for deliveries to one consumer (replay --to)
        self._ordered = frozenset(c.id for c in self.consumers if getattr(c.element, "ordering", None) is not None)
        self._limited = frozenset(c.id for c in self.consumers if getattr(c.element, "rate_limit", None) is not None)
        self._inline = False  # True while an input's first attempts may run at once (feed)
        self._plain = frozenset(c.id for c in self.consumers if c.loop is None and c.id not in self._ordered)
        self._inline_types = self._types_without_holds()
        self._stream_lanes = self._types_only_streams_take()
        self.schemas = DataSchemas(mesh)  # shared with the ingress: the same checks at the edge
        self._handlers: dict[str, Callable[[Attempt], None]] = {}
        self._breakers: dict[str, dict] = {}
        self.fed = 0  # inputs consumed: the input position a checkpoint records
        self.notes: dict = {}  # settings of the run that a resumed session must keep (kept in checkpoints)
        self.finished = False
        self.orchestrator = Orchestrator(self)
        self.streams = StreamRunner(self)
        self.resequencer = Resequencer(self)
        self.buckets = Buckets()
        for consumer in self.consumers:
            self._handlers[consumer.id] = self._compile(consumer)
        self._tasks: dict[str, Callable[[Any], None]] = {
            "attempt": self.attempt, "complete": self._complete, **self.orchestrator.tasks(),
            **self.resequencer.tasks()}
        self._effects: dict[str, Callable[[dict], None]] = {**self.orchestrator.effects(), **self.streams.effects()}

    def _types_without_holds(self) -> frozenset[str]:
        """Event types none of whose consumers may hold or drop an offer before its attempt
        (ordering, loop guards): their deliveries are attempts in publish order, nothing else."""
        held = {t for c in self.consumers if c.id not in self._plain for t in c.types}
        return frozenset(self.mesh.event_types) - held

    def _types_only_streams_take(self) -> dict[str, tuple[tuple[str, str, Consumer], ...]]:
        """Event types without a data schema whose consumers are all streams without a
        pattern, an injected fault, a rate limit or a breaker, and plain (see above): inputs
        of theirs take the fused path of :meth:`_into_streams`."""
        lanes = {}
        for name, (targets, has_schema) in self._routes.items():
            consumers = targets.consumers
            if consumers and not targets.patterned and not has_schema and name in self._inline_types and all(
                    c.kind == "stream" and c.id not in self.faults and c.id not in self._limited
                    and c.policy.breaker is None for c in consumers):
                lanes[name] = tuple((c.id, c.element.name, c) for c in consumers)
        return lanes

    def _dispatch(self, kind: str, payload: Any) -> None:
        self._tasks[kind](payload)

    # --- input ------------------------------------------------------------------------
    def run(self, items: Iterable[dict | BadInput]) -> dict:
        """Feed every input, run to quiescence, close open stream windows; return the summary."""
        feed = self.feed
        for item in items:
            feed(item)
        self.finish()
        return self.trace.summary()

    def feed(self, item: dict | BadInput) -> None:
        """One input: due work before its time runs first, then it is published at its time."""
        if item.__class__ is dict:
            item = as_input(item)
        lane = self._stream_lanes.get(item.get("type")) if item.__class__ is dict else None
        if lane is not None and self._into_streams(item, lane):
            return
        self.fed += 1
        if isinstance(item, BadInput):
            if self.on_refused is not None:
                self.on_refused(item)
            # Counted in "events in", so recorded as an input too: a trace's figures are the summary's.
            self.trace.count("events_in")
            if self.trace.sink is not None:
                self.trace.record(self.clock.now(), "ingest", event=None, type=None, rejected="schema-invalid")
            self.dead_letter(MESH, {"raw": item.raw, "location": str(item.loc)}, "schema-invalid", "BadInput",
                             f"{item.loc}: {item.problem}", queue="dlq")
            return
        when = parse_time(item.get("time"))
        if not self._clock_started and isinstance(self.clock, VirtualClock):
            self.clock = self.scheduler.clock = VirtualClock(when if when is not None else DEFAULT_START)
            self._clock_started = True
        # An input arrives at its time, or now if it has none or the clock is past it (the
        # clock never goes back): what is due until then runs first.
        scheduler, trace, now = self.scheduler, self.trace, self.clock.now()
        if when is not None and when > now:
            now = when
        if not scheduler.idle_at(now):
            scheduler.run_until_idle(until=now)
        self.clock.advance_to(now)
        trace.counts["events_in"] += 1
        if trace.sink is not None:
            trace.record(now, "ingest", event=item["id"], type=item["type"])
        # Nothing is due before the input (and the next input waits for what it leaves due):
        # its first attempts run now, in the order the schedule would run them, without a
        # trip through it (see offer).
        self._inline = item["type"] in self._inline_types
        try:
            self.publish(item, "ingress")
        finally:
            self._inline = False

    def _into_streams(self, item: dict, lane: tuple[tuple[str, str, Consumer], ...]) -> bool:
        """The general path of :meth:`feed` for an input taken only by streams, fused into
        one frame (inputs feeding windows come by the million): the same steps, counts and
        records in the same order. False, having done nothing, when a step would go beyond
        it: no time, the clock not started, work due, a hop count, a trace to record."""
        when, trace = parse_time(item.get("time")), self.trace
        if when is None or trace.sink is not None or not self._clock_started or "hopcount" in item:
            return False
        clock = self.clock
        now = clock.now()
        if when > now:
            if not self.scheduler.idle_at(when):
                return False
            clock.advance_to(when)
            now = when
        elif not self.scheduler.idle_at(now):
            return False
        self.fed += 1
        counts, store, operators, key = trace.counts, self.store, self.streams.operators, identity(item)
        counts["events_in"] += 1
        store.append("input", item)
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
                self._run_attempt(d, consumer, now, self.streams.output_handler(consumer.element, outputs))
            else:
                store.mark_done(key, consumer_id, now)
        return True

    def finish(self) -> None:
        self.scheduler.run_until_idle()
        self.streams.flush()
        self.scheduler.run_until_idle()
        self.finished = True

    # --- checkpoints --------------------------------------------------------------------
    def snapshot(self) -> dict:
        """Everything in memory a restart needs, as JSON-like data (the store holds the rest)."""
        return {"version": 1, "clock": self.clock.now(), "clock_started": self._clock_started, "fed": self.fed,
                "finished": self.finished, "seed": self.seed, "scheduler": self.scheduler.snapshot(),
                "trace": self.trace.snapshot(), "breakers": self._breakers, "streams": self.streams.snapshot(),
                "buckets": self.buckets.state, "notes": self.notes}

    def restore(self, snap: dict) -> None:
        """Continue from a checkpoint taken by :meth:`snapshot` (on a runtime built for the same mesh)."""
        self.clock = VirtualClock(snap["clock"]) if isinstance(self.clock, VirtualClock) else self.clock
        self.scheduler.clock = self.clock
        self._clock_started = snap["clock_started"]
        self.fed, self.finished = snap["fed"], snap["finished"]
        self.scheduler.restore(snap["scheduler"])
        self.trace.restore(snap["trace"])
        self._breakers = snap["breakers"]
        self.streams.restore(snap["streams"])
        self.buckets.state = snap.get("buckets", {})
        self.notes = snap.get("notes", {})

    # --- publishing and routing ---------------------------------------------------------
    def _build_router(self) -> None:
        """Per declared event type: its consumers in a stable order (with an index of their
        patterns), and whether its data has a schema to check."""
        consumers = by_type(self.consumers)
        for name, declared in self.mesh.event_types.items():
            self._routes[name] = (Targets(consumers.get(name, ())), declared.schema is not None)

    def publish(self, event: dict, producer: str) -> None:
        """Send an event to every consumer of its type that takes it (pattern, if any, matching)."""
        if producer in _ARCHIVED:
            self.store.append("input", event)
        type_ = event["type"]
        route = self._routes.get(type_)
        if route is None:
            if producer == "ingress" and self.on_refused is not None:
                self.on_refused(unknown_type(self.mesh, type_))
            self.dead_letter(MESH, event, "undeliverable", "UnknownEventType",
                             f"no event type {type_!r} is declared in the mesh", queue="dlq")
            return
        targets, has_schema = route
        problem = self.schemas.check(event) if has_schema else None
        if problem is not None:
            if producer == "ingress" and self.on_refused is not None:
                self.on_refused(problem)
            self.dead_letter(MESH, event, "schema-invalid", "SchemaError", str(problem), queue="dlq")
            return
        self.route(event, producer, targets)

    def route(self, event: dict, producer: str, targets: Targets) -> None:
        """Offer an event to those of *targets* that take it. Only they cost anything: a
        consumer whose pattern did not match is not counted, and is recorded (``filtered``,
        ``why: match``) only when the trace is; an event nobody takes is ``unconsumed``."""
        taken = targets(event)
        if not taken:
            self.trace.counts["unconsumed"] += 1
        if self.trace.sink is not None and targets.patterned:
            now = self.clock.now()
            for consumer in targets.rejected(event, taken):
                self.trace.record(now, "filtered", event=event["id"], type=event["type"], consumer=consumer.id,
                                  why="match")
        for consumer in taken:
            self.offer(event, consumer, producer)

    def targets_of(self, consumer_id: str) -> Targets:
        """The one consumer *consumer_id*, for deliveries meant for it alone."""
        found = self._only.get(consumer_id)
        if found is None:
            found = self._only[consumer_id] = Targets([self.by_id[consumer_id]])
        return found

    def _schema_problem(self, event: dict) -> str | None:
        problem = self.schemas.check(event)
        return None if problem is None else str(problem)

    def offer(self, event: dict, consumer: Consumer, producer: str, replay: bool = False) -> None:
        """Apply the loop guard, then schedule the first attempt now."""
        self.trace.counts["matched"] += 1
        hops = event.get("hopcount")
        if self._inline and consumer.id in self._plain and (hops is None or int(hops) < self.max_hops):
            # An input's attempt, run as the schedule would run it: after the ones offered before
            # it and before anything they schedule (which goes to the schedule, as it did).
            self._inline = False
            self.attempt({"event": event, "consumer": consumer.id, "number": 1, "first": self.clock.now(),
                          "producer": producer, "replay": replay})
            self._inline = True
            return
        if consumer.loop is not None and not self._loop_allows(event, consumer):
            return
        if int(event.get("hopcount", 0)) >= self.max_hops:
            self.dead_letter(consumer.id, event, "loop-detected", "LoopDetected",
                             f"the event is {event.get('hopcount')} hops from its input (limit {self.max_hops})",
                             queue=consumer.policy.queue)
            return
        if consumer.id in self._ordered and not replay:
            self.resequencer.offer(event, consumer, producer)
            return
        self.schedule_attempt(event, consumer, producer, replay=replay)

    def _loop_allows(self, event: dict, consumer: Consumer) -> bool:
        """The consumer's loop guard: False if the event was filtered or dead-lettered instead."""
        passes = chain(event).count(consumer.id)
        if consumer.loop.policy == "avoid-loop" and passes:
            self.trace.count("filtered")
            self.trace.record(self.clock.now(), "filtered", event=event["id"], type=event["type"],
                              consumer=consumer.id, why="loop-avoided")
            return False
        if passes >= consumer.loop.max_hops:
            self.dead_letter(consumer.id, event, "loop-detected", "LoopDetected",
                             f"{consumer.id} already handled this chain {passes} times "
                             f"(max_hops {consumer.loop.max_hops})", queue=consumer.policy.queue)
            return False
        return True

    def schedule_attempt(self, event: dict, consumer: Consumer, producer: str, replay: bool = False,
                         order_key: Any = None) -> None:
        """The first attempt of a delivery, now. ``order_key``: it holds the line of an ordered key.

        A delivery is data (it waits in the checkpointed schedule): ``number`` is the attempt
        number (from 1), ``first`` the clock time of the first attempt, ``producer`` "ingress"
        or the consumer that emitted the event, ``replay`` a redrive from the dead-letter
        queue (dedup does not apply).
        """
        now = self.clock.now()
        d = {"event": event, "consumer": consumer.id, "number": 1, "first": now, "producer": producer, "replay": replay}
        if order_key is not None:
            d["order_key"] = order_key
        self.scheduler.at(now, "attempt", d)

    def _settle(self, d: dict) -> None:
        """A delivery is over (done, filtered, dead-lettered): an ordered key may release its next event."""
        if "order_key" in d:
            self.resequencer.settled(d["consumer"], d["order_key"])

    def _throttled(self, d: dict, consumer: Consumer, now: float) -> bool:
        """Apply the consumer's rate limit; True if the attempt was delayed or dead-lettered instead."""
        limit = getattr(consumer.element, "rate_limit", None)
        if limit is None or d.get("reserved"):
            return False
        wait = self.buckets.take(consumer.id, limit, now, reserve=limit.overflow == "delay")
        if wait <= 0:
            return False
        event = d["event"]
        if limit.overflow == "delay":
            self.trace.count("rate_limited")
            self.trace.record(now, "throttled", event=event["id"], consumer=consumer.id, delay=round(wait, 6))
            self.scheduler.at(now + wait, "attempt", {**d, "reserved": True})
        else:
            self.dead_letter(consumer.id, event, "rate-limited", "RateLimited",
                             f"more than {limit.rate:g} per {limit.per:g}s", attempts=d["number"] - 1,
                             first=d["first"], queue=consumer.policy.queue)
            self._settle(d)
        return True

    # --- attempts -------------------------------------------------------------------------
    def attempt(self, d: dict) -> None:
        """Run one attempt now; its outcome commits now, or after the time it takes (`sleep`)."""
        event, consumer, now = d["event"], self.by_id[d["consumer"]], self.clock.now()
        # Any attempt, not only the first: with several workers a task can run twice (a worker
        # presumed dead finishes after all), and the effect must still happen once.
        if not d["replay"] and self.store.is_done(identity(event), consumer.id, now):
            self.trace.count("duplicates")
            self._settle(d)
            return
        if consumer.id in self._limited and self._throttled(d, consumer, now):
            return
        if consumer.policy.breaker is not None and self._circuit_open(consumer, now):
            self.dead_letter(consumer.id, event, "circuit-open", "CircuitOpen", f"circuit of {consumer.id} is open",
                             attempts=d["number"] - 1, first=d["first"], queue=consumer.policy.queue)
            self._settle(d)
            return
        number, trace = d["number"], self.trace
        trace.counts["delivered"] += 1
        if trace.sink is not None:
            trace.record(now, "deliver", event=event["id"], type=event["type"], **{"from": d["producer"]},
                         consumer=consumer.id, attempt=number)
        handler = self._handlers[consumer.id]
        if consumer.kind == "stream" and consumer.id not in self.faults:
            # Most events go into their windows and close none: that attempt's commit is its
            # dedup record alone, so it is made here without the Attempt and outcome around it.
            stream = consumer.element
            outputs = self.streams.operators[stream.name].process(event)
            if not outputs:
                self.store.mark_done(identity(event), consumer.id, now)
                if trace.sink is not None:
                    trace.record(now, "ok", event=event["id"], consumer=consumer.id, attempt=number)
                if "order_key" in d:
                    self._settle(d)
                return
            handler = self.streams.output_handler(stream, outputs)
        self._run_attempt(d, consumer, now, handler)

    def _run_attempt(self, d: dict, consumer: Consumer, now: float, handler: Callable[[Attempt], None]) -> None:
        """An attempt that was not skipped (duplicate, throttled, circuit open): run its handler
        and commit what it produced, now or after the time it took."""
        event, number = d["event"], d["number"]
        attempt = Attempt(consumer.id, event, number, now, {"data": event.get("data"), "event": event, "vars": {},
                                                            "attempt": number}, consumer.declared)
        error: Exception | None = None
        try:
            if self.faults:
                self.inject_fault(consumer.id, attempt)
            if consumer.condition is not None and not consumer.condition(attempt.context):
                self._filtered_by_when(event, consumer.id)
                self._settle(d)
                return
            handler(attempt)
        except (ActionFailed, RenderError) as exc:
            error = exc
        if attempt.elapsed > 0:
            self.scheduler.at(now + attempt.elapsed, "complete", {"delivery": d, "outcome": attempt.outcome(error)})
        else:  # it commits at once: read the attempt itself rather than a copy of it as data
            self._commit(d, attempt, None if error is None else error_data(error))

    def inject_fault(self, consumer_id: str, attempt: Attempt) -> None:
        fault = self.faults.get(consumer_id)
        if fault is not None and (fault.times is None or attempt.number <= fault.times):
            raise ActionFailed(fault.error, f"injected fault (attempt {attempt.number})")

    def _filtered_by_when(self, event: dict, consumer: str) -> None:
        self.store.mark_done(identity(event), consumer, self.clock.now())
        self.trace.count("filtered")
        self.trace.record(self.clock.now(), "filtered", event=event["id"], type=event["type"], consumer=consumer,
                          why="when")

    def _complete(self, task: dict) -> None:
        """The outcome of an attempt that took time, kept as data in the schedule, commits now."""
        self._commit(task["delivery"], SimpleNamespace(**task["outcome"]), task["outcome"]["error"])

    def _commit(self, d: dict, outcome: Attempt | SimpleNamespace, error: dict | None) -> None:
        """Commit an attempt's outcome: *outcome* has the attributes of an Attempt (logs, outbox, ...)."""
        now = self.clock.now()
        if self.trace.sink is not None:
            self._trace_logs(d["event"]["id"], d["consumer"], outcome.logs, outcome.calls, now)
        # An attempt that took time is checked again when it commits: a copy of the event
        # delivered meanwhile may have taken effect first, and the effect must happen once.
        if outcome.elapsed > 0 and not d["replay"] and self.store.is_done(identity(d["event"]), d["consumer"], now):
            self.trace.count("duplicates")
            self._settle(d)
            return
        if error is None:
            self._succeeded(d, outcome, now)
        else:
            self._failed(d, error, now)

    def trace_outcome(self, event_id: str, consumer: str, outcome: dict, now: float) -> None:
        self._trace_logs(event_id, consumer, outcome["logs"], outcome["calls"], now)

    def _trace_logs(self, event_id: str, consumer: str, logs: list, calls: list, now: float) -> None:
        for level, message in logs:
            self.trace.record(now, "log", event=event_id, consumer=consumer, level=level, message=message)
        for target in calls:
            self.trace.record(now, "call", event=event_id, consumer=consumer, target=target)

    def _succeeded(self, d: dict, outcome: Attempt | SimpleNamespace, now: float) -> None:
        consumer, event = self.by_id[d["consumer"]], d["event"]
        if consumer.policy.breaker is not None:
            self._breaker_result(consumer, True, now)
        self.store.mark_done(identity(event), consumer.id, self.clock.now())
        if self.trace.sink is not None:
            self.trace.record(now, "ok", event=event["id"], consumer=consumer.id, attempt=d["number"])
        if outcome.outbox:
            self.publish_outbox(event, consumer.id, outcome.outbox, now)
        base = len(outcome.outbox)
        for offset, (type_, data, subject, service) in enumerate(outcome.direct):
            self._deliver_direct(derive(event, consumer.id, base + offset, type_, data, now, subject), consumer.id,
                                 service)
        for queue, reason, dead_event, detail in outcome.dead:
            self.dead_letter(consumer.id, dead_event, reason, reason, detail, queue=queue)
        for kind, payload in outcome.effects:
            self._effects[kind](payload)
        if "order_key" in d:
            self._settle(d)

    def publish_outbox(self, parent: dict, producer: str, outbox: list, now: float, element: str | None = None) -> None:
        """Emit what a committed attempt put in its outbox; ids are stable across retries.

        *element* is the consumer that owns *producer* (an orchestration owns its steps).
        """
        for index, (type_, data, subject, src) in enumerate(outbox):
            self.emit(derive(parent, producer, index, type_, data, now, subject, src, element), element or producer)

    def emit(self, event: dict, producer: str) -> None:
        """Publish an event emitted inside the mesh (recorded, counted, then routed)."""
        self._emitted(event, producer)
        self.publish(event, producer)

    def _emitted(self, event: dict, producer: str) -> None:
        self.trace.counts["emitted"] += 1
        if self.trace.sink is not None:
            self.trace.record(self.clock.now(), "emit", event=event["id"], type=event["type"],
                              cause=event.get("causationid"), by=producer)
        self.store.append("emitted", event)
        if self.on_emit is not None:
            self.on_emit(event)

    def _deliver_direct(self, event: dict, producer: str, service: str) -> None:
        """A route's event for *service* alone: to its subscriptions on the event's type."""
        self._emitted(event, producer)
        problem = self._schema_problem(event) if event["type"] in self.mesh.event_types else None
        if problem is not None:
            self.dead_letter(producer, event, "schema-invalid", "SchemaError", problem, queue="dlq")
            return
        self.route(event, producer, self._direct.get((service, event["type"])) or _NOBODY)

    def _failed(self, d: dict, error: dict, now: float) -> None:
        consumer, event = self.by_id[d["consumer"]], d["event"]
        self._breaker_result(consumer, False, now)
        spec = consumer.policy.retry
        reason = self.verdict(spec, error, d["number"], event, d["first"], now, consumer.id)
        if reason is None:
            delay = retry_delays.delay(spec, d["number"], self.seed, identity(event), consumer.id)
            self.trace.count("retries")
            self.trace.record(now, "retry", event=event["id"], consumer=consumer.id, attempt=d["number"],
                              delay=round(delay, 6), error=f"{error['type']}: {error['detail']}")
            self.scheduler.at(now + delay, "attempt", {**d, "number": d["number"] + 1, "reserved": False})
            return
        self.store.mark_done(identity(event), consumer.id, self.clock.now())
        self.dead_letter(consumer.id, event, reason, error["type"], error["detail"], attempts=d["number"],
                               first=d["first"], queue=consumer.policy.queue)
        self._settle(d)

    def verdict(self, spec: m.RetrySpec, error: dict, number: int, event: dict, first: float, now: float,
                consumer: str) -> str | None:
        """None to retry the failed attempt *number*; else the reason to dead-letter it."""
        if error["template"]:
            return "template-error"
        if not error["retryable"] or error["type"] in spec.non_retryable:
            return "non-retryable"
        if number >= spec.max_attempts:
            return "retries-exhausted"
        delay = retry_delays.delay(spec, number, self.seed, identity(event), consumer)
        if not eventtime.writable(now + delay):
            return "expired"  # the retry would come after the last instant an event time can hold
        if spec.max_event_age is not None:
            born = parse_time(event.get("time"))
            if now + delay - (born if born is not None else first) > spec.max_event_age:
                return "expired"  # the retry would come after the event's age budget: stop now, not later
        return None

    def dead_letter(self, consumer: str, event: Any, reason: str, error_type: str | None, detail: str, *,
              attempts: int = 0, first: float | None = None, queue: str) -> None:
        now = self.clock.now()
        record = DeadLetter.make(queue, reason, consumer, event, error_type, detail, attempts,
                                 iso(first) if first is not None else None, iso(now) if attempts else None,
                                 chain(event) if isinstance(event, dict) else [])
        if not self.store.put_dead_letter(record):
            # The queue holds this very failure already (same event identity, consumer and
            # reason: a true repeat of a dead-lettered event): the record is refreshed, and
            # counted as a duplicate, so `dead-lettered` and the queue agree.
            self.trace.count("duplicates")
            return
        self.trace.count("dead_lettered")
        self.trace.dead_by_reason[reason] += 1
        self.trace.record(now, "dead-letter", event=event.get("id") if isinstance(event, dict) else None,
                          type=event.get("type") if isinstance(event, dict) else None, consumer=consumer,
                          reason=reason, attempts=attempts, error=f"{error_type}: {detail}", queue=queue)

    # --- circuit breakers --------------------------------------------------------------
    def reset_breakers(self) -> None:
        self._breakers = {}

    def _circuit_open(self, consumer: Consumer, now: float) -> bool:
        breaker = consumer.policy.breaker
        state = self._breakers.get(consumer.id)
        if breaker is None or state is None or state.get("open_until") is None:
            return False
        if now < state["open_until"]:
            return True
        if state.get("probing"):
            return True  # one probe at a time while half-open
        state["probing"] = True
        return False

    def _breaker_result(self, consumer: Consumer, ok: bool, now: float) -> None:
        breaker = consumer.policy.breaker
        if breaker is None:
            return
        state = self._breakers.setdefault(consumer.id, {"failures": 0, "open_until": None, "probing": False})
        if ok:
            state.update(failures=0, open_until=None, probing=False)
            return
        state["failures"] += 1
        if state["probing"] or state["failures"] >= breaker.failure_threshold:
            state.update(open_until=now + breaker.reset_after, probing=False)
            self.trace.record(now, "circuit-open", consumer=consumer.id, until=iso(now + breaker.reset_after))

    # --- what each kind of consumer does -------------------------------------------------
    def _compile(self, consumer: Consumer) -> Callable[[Attempt], None]:
        if consumer.kind == "subscription":
            steps = compile_actions(consumer.element.actions, self.tools)
            return lambda attempt: run_actions(steps, attempt)
        if consumer.kind == "route":
            return self._route_handler(consumer.element)
        if consumer.kind == "orchestration":
            return self.orchestrator.handler(consumer.element)
        return self.streams.handler(consumer.element)

    def _route_handler(self, route: m.Route) -> Callable[[Attempt], None]:
        t = route.transform
        data = compile_value(t.data) if t is not None and t.data is not None else None
        subject = compile_string(t.subject) if t is not None and t.subject is not None else None
        new_type = t.type.name if t is not None and t.type is not None else None
        targets = []
        for target in route.to:
            if target.kind == "service":
                targets.append(("service", target.value))
            elif target.kind == "http":
                targets.append(("http", target.value))
        publish = route.publishes()

        def handle(attempt: Attempt) -> None:
            event, ctx = attempt.event, attempt.context
            type_ = new_type or event["type"]
            out_data = data(ctx) if data is not None else event.get("data")
            out_subject = str(subject(ctx)) if subject is not None else event.get("subject")
            for kind, value in targets:
                if kind == "service":
                    attempt.direct.append((type_, out_data, out_subject, value))
                else:
                    preview = derive(event, f"route:{route.name}", 0, type_, out_data, attempt.now, out_subject)
                    attempt.calls.append(value)
                    self.tools.post(value, preview, {}, None)
            if publish:
                attempt.emit(type_, out_data, out_subject)
            attempt.output = {"type": type_}
        return handle

    # --- dead-letter redrive -------------------------------------------------------------
    def replay(self, records: Iterable[DeadLetter]) -> dict:
        """Deliver dead-lettered events again (fresh attempts, dedup bypassed); succeeded ones leave the queue."""
        records = list(records)
        if not self._clock_started and isinstance(self.clock, VirtualClock):
            times = [parse_time(t) for r in records for t in (r.last_attempt, r.first_attempt,
                                                               r.event.get("time") if isinstance(r.event, dict) else None)]
            times = [t for t in times if t is not None]
            if times:  # a redrive happens after the failure: the virtual clock carries on from there
                self.clock = self.scheduler.clock = VirtualClock(max(times))
                self._clock_started = True
        replayed = sum(self.redeliver(record) for record in records)
        self.finish()
        return {"replayed": replayed, "still_dead": len(self.store.dead_letters())}

    def redeliver(self, record: DeadLetter) -> bool:
        """Take a dead letter out of its queue and deliver its event again (False: it has no event)."""
        if not isinstance(record.event, dict) or "id" not in record.event:
            return False
        self.store.remove_dead_letters([record.id])
        if record.consumer in self.by_id:
            self.offer(record.event, self.by_id[record.consumer], "dlq-replay", replay=True)
        else:
            self.publish(record.event, "dlq-replay")
        return True
