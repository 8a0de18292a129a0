"""Stage commit: an attempt's outcome takes effect, once.

A succeeded attempt records its dedup mark, emits its outbox (ids stable across retries),
delivers a route's events to its services, dead-letters what it put aside and applies its
effects (an orchestration run to start, a window closed). A failed one is retried after its
policy's delay, or dead-lettered with the reason :meth:`Commits.verdict` gives. An attempt
that took (virtual) time commits when it completes, from its outcome kept as data in the
schedule; it is checked for a duplicate again then.
"""
from __future__ import annotations

from types import SimpleNamespace
from typing import Callable

from ..core import eventtime
from ..core.identity import identity
from ..language import model as m
from . import retry as retry_delays
from .actions import Attempt
from .events import derive, derived_time
from .guards import Guards
from .ports import Pipeline


class Commits:
    def __init__(self, rt: Pipeline, guards: Guards, effects: dict[str, Callable[[dict], None]]):
        self.rt, self.guards, self.effects = rt, guards, effects
        self.store, self.trace, self.by_id, self.seed = rt.store, rt.trace, rt.by_id, rt.seed
        # what events of a versioned type carry: the version of the schema they were made with
        self.dataschemas = {et.name: m.DATASCHEMA.format(type=et.name, version=et.version)
                            for et in rt.mesh.event_types.values() if et.versions}

    def complete(self, task: dict) -> None:
        """The outcome of an attempt that took time, kept as data in the schedule, commits now."""
        # (an outcome checkpointed before keyed state existed has no state_write)
        outcome = SimpleNamespace(**{"state_write": None, **task["outcome"]})
        self.commit(task["delivery"], outcome, task["outcome"]["error"])

    def commit(self, d: dict, outcome: Attempt | SimpleNamespace, error: dict | None) -> None:
        """Commit an attempt's outcome: *outcome* has the attributes of an Attempt (logs, outbox, ...)."""
        now = self.rt.clock.now()
        if self.trace.sink is not None:
            self._trace_logs(d["event"]["id"], d["consumer"], outcome.logs, outcome.calls, now)
        # An attempt that took time is checked again when it commits: a copy of the event
        # delivered meanwhile may have taken effect first, and the effect must happen once.
        if outcome.elapsed > 0 and not d["replay"] and \
                self.store.is_done(identity(d["event"]), d["consumer"], now):
            self.trace.count("duplicates")
            self.guards.settle(d)
            return
        # event time declared since the event's own: earlier attempts' backoff and this one's sleeps
        after = d.get("after", 0.0) + outcome.elapsed
        if error is None:
            self._succeeded(d, outcome, now, derived_time(d["event"], after, d["first"]))
        else:
            self._failed(d, error, now, after)

    def trace_outcome(self, event_id: str, consumer: str, outcome: dict, now: float) -> None:
        self._trace_logs(event_id, consumer, outcome["logs"], outcome["calls"], now)

    def _trace_logs(self, event_id: str, consumer: str, logs: list, calls: list, now: float) -> None:
        for level, message in logs:
            self.trace.record(now, "log", event=event_id, consumer=consumer, level=level, message=message)
        for target in calls:
            self.trace.record(now, "call", event=event_id, consumer=consumer, target=target)

    def _succeeded(self, d: dict, outcome: Attempt | SimpleNamespace, now: float, when: float) -> None:
        consumer, event, rt = self.by_id[d["consumer"]], d["event"], self.rt
        if outcome.state_write is not None and not rt.state.apply(outcome.state_write, now):
            # its state key changed since the attempt read it: the attempt runs again on the new value
            self.trace.count("state_conflicts")
            self.trace.record(now, "state-conflict", event=event["id"], consumer=consumer.id,
                              key=outcome.state_write["key"])
            rt.scheduler.at(now, "attempt", {**d, "reserved": False})
            return
        if consumer.policy.breaker is not None:
            self.guards.breaker_result(consumer, True, now)
        self.store.mark_done(identity(event), consumer.id, rt.clock.now())
        if self.trace.sink is not None:
            self.trace.record(now, "ok", event=event["id"], consumer=consumer.id, attempt=d["number"])
        if outcome.outbox:
            self.publish_outbox(event, consumer.id, outcome.outbox, when)
        base = len(outcome.outbox)
        for offset, (type_, data, subject, service) in enumerate(outcome.direct):
            direct = derive(event, consumer.id, base + offset, type_, data, when, subject)
            rt.deliver_direct(direct, consumer.id, service)
        for queue, reason, dead_event, detail in outcome.dead:
            rt.dead_letter(consumer.id, dead_event, reason, reason, detail, queue=queue)
        for kind, payload in outcome.effects:
            self.effects[kind](payload)
        if "order_key" in d:
            self.guards.settle(d)

    def publish_outbox(self, parent: dict, producer: str, outbox: list, when: float,
                       element: str | None = None) -> None:
        """Emit what a committed attempt put in its outbox at event time *when* (an entry may carry
        its own: a window's end); ids are stable across retries.

        *element* is the consumer that owns *producer* (an orchestration owns its steps).
        """
        for index, (type_, data, subject, src, *time) in enumerate(outbox):
            self.emit(derive(parent, producer, index, type_, data, time[0] if time else when, subject, src,
                             element), element or producer)

    def emit(self, event: dict, producer: str) -> None:
        """Publish an event emitted inside the mesh (recorded, counted, then routed)."""
        self.record_emitted(event, producer)
        self.rt.publish(event, producer)

    def record_emitted(self, event: dict, producer: str) -> None:
        """Count, record and journal an event emitted inside the mesh (then tell ``on_emit``)."""
        if self.dataschemas and event["type"] in self.dataschemas:
            event["dataschema"] = self.dataschemas[event["type"]]
        self.trace.counts["emitted"] += 1
        if self.trace.sink is not None:
            self.trace.record(self.rt.clock.now(), "emit", event=event["id"], type=event["type"],
                              cause=event.get("causationid"), by=producer)
        self.store.append("emitted", event)
        if self.rt.on_emit is not None:
            self.rt.on_emit(event)

    def _failed(self, d: dict, error: dict, now: float, after: float) -> None:
        consumer, event, rt = self.by_id[d["consumer"]], d["event"], self.rt
        self.guards.breaker_result(consumer, False, now)
        spec = consumer.policy.retry
        reason = self.verdict(spec, error, d["number"], event, after, now, consumer.id)
        if reason is None:
            delay = retry_delays.delay(spec, d["number"], self.seed, identity(event), consumer.id)
            self.trace.count("retries")
            self.trace.record(now, "retry", event=event["id"], consumer=consumer.id, attempt=d["number"],
                              delay=round(delay, 6), error=f"{error['type']}: {error['detail']}")
            rt.scheduler.at(now + delay, "attempt",
                            {**d, "number": d["number"] + 1, "reserved": False, "after": after + delay})
            return
        self.store.mark_done(identity(event), consumer.id, rt.clock.now())
        rt.dead_letter(consumer.id, event, reason, error["type"], error["detail"], attempts=d["number"],
                       first=d["first"], queue=consumer.policy.queue)
        self.guards.settle(d)

    def verdict(self, spec: m.RetrySpec, error: dict, number: int, event: dict, age: float, now: float,
                consumer: str) -> str | None:
        """None to retry the failed attempt *number*; else the reason to dead-letter it.

        *age* is the event's age at the end of the attempt in event time: the backoff and sleeps
        declared since the event's time (:func:`~engine.runtime.events.derived_time`), so
        ``max_event_age`` expires the same retry in ``run`` and in a deployment, however long
        the event waited in a queue."""
        if error["template"]:
            return "template-error"
        if not error["retryable"] or error["type"] in spec.non_retryable:
            return "non-retryable"
        if number >= spec.max_attempts:
            return "retries-exhausted"
        delay = retry_delays.delay(spec, number, self.seed, identity(event), consumer)
        if not eventtime.writable(now + delay):
            return "expired"  # the retry would come after the last instant an event time can hold
        if spec.max_event_age is not None and age + delay > spec.max_event_age:
            return "expired"  # the retry would come after the event's age budget: stop now, not later
        return None

