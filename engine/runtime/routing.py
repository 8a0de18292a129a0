"""Stage route: an event goes to the consumers of its type that take it.

Per declared event type the consumers are fixed once, in declaration order, with an index of
their patterns (:class:`~engine.runtime.router.Targets`). Publishing checks the type is
declared and the data against its schema (else ``undeliverable`` / ``schema-invalid``), then
offers the event to each consumer whose pattern, if any, matches. A route delivering to a
service reaches that service's subscriptions to the type alone.
"""
from __future__ import annotations

from ..language.admission import DataSchemas, unknown_type
from .consumers import Consumer
from .ports import MESH, Pipeline
from .router import Targets, by_service, by_type

_ARCHIVED = frozenset({"ingress", "dlq-replay", "replay"})  # producers whose events are inputs of the archive
_NOBODY = Targets(())  # where a route's event goes when its service has no subscription to its type


class Routing:
    def __init__(self, rt: Pipeline, consumers: list[Consumer], schemas: DataSchemas):
        self.rt, self.schemas = rt, schemas
        self.store, self.trace = rt.store, rt.trace
        # without shortcuts every pattern goes through the index, however few a type has
        self._scan = scan = None if rt.fast_paths else 0
        grouped = by_type(consumers)
        # event type -> its consumers, and whether its data has a schema to check
        self.routes: dict[str, tuple[Targets, bool]] = {
            name: (Targets(grouped.get(name, ()), scan), declared.schema is not None)
            for name, declared in rt.mesh.event_types.items()}
        self._direct = by_service(consumers, scan)  # (service, type) -> the subscriptions a route delivers to
        self._only: dict[str, Targets] = {}  # consumer id -> itself, for deliveries to it alone (replay --to)

    def publish(self, event: dict, producer: str) -> None:
        """Send an event to every consumer of its type that takes it (pattern, if any, matching)."""
        rt = self.rt
        if producer in _ARCHIVED:
            self.store.append("input", event)
        type_ = event["type"]
        route = self.routes.get(type_)
        if route is None:
            if producer == "ingress" and rt.on_refused is not None:
                rt.on_refused(unknown_type(rt.mesh, type_))
            rt.dead_letter(MESH, event, "undeliverable", "UnknownEventType",
                           f"no event type {type_!r} is declared in the mesh", queue="dlq")
            return
        targets, has_schema = route
        problem = self.schemas.check(event) if has_schema else None
        if problem is not None:
            if producer == "ingress" and rt.on_refused is not None:
                rt.on_refused(problem)
            rt.dead_letter(MESH, event, "schema-invalid", "SchemaError", str(problem), queue="dlq")
            return
        self.route(event, producer, targets)

    def route(self, event: dict, producer: str, targets: Targets) -> None:
        """Offer an event to those of *targets* that take it. Only they cost anything: a
        consumer whose pattern did not match is not counted, and is recorded (``filtered``,
        ``why: match``) only when the trace is; an event nobody takes is ``unconsumed``."""
        taken = targets(event)
        trace = self.trace
        if not taken:
            trace.counts["unconsumed"] += 1
        if trace.sink is not None and targets.patterned:
            now = self.rt.clock.now()
            for consumer in targets.rejected(event, taken):
                trace.record(now, "filtered", event=event["id"], type=event["type"], consumer=consumer.id,
                             why="match")
        offer = self.rt.offer
        for consumer in taken:
            offer(event, consumer, producer)

    def targets_of(self, consumer_id: str) -> Targets:
        """The one consumer *consumer_id*, for deliveries meant for it alone."""
        found = self._only.get(consumer_id)
        if found is None:
            found = self._only[consumer_id] = Targets([self.rt.by_id[consumer_id]], self._scan)
        return found

    def deliver_direct(self, event: dict, producer: str, service: str) -> None:
        """A route's event for *service* alone: to its subscriptions on the event's type."""
        rt = self.rt
        rt.record_emitted(event, producer)
        problem = self.schemas.check(event) if event["type"] in rt.mesh.event_types else None
        if problem is not None:
            rt.dead_letter(producer, event, "schema-invalid", "SchemaError", str(problem), queue="dlq")
            return
        self.route(event, producer, self._direct.get((service, event["type"])) or _NOBODY)
