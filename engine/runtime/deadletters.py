"""Stage dead-letter: what cannot be delivered is kept with its reason, and delivered again on demand.

Every stage dead-letters through :meth:`DeadLetters.dead_letter`: the record goes to the
store's queue once per (event identity, consumer, reason), counted and recorded. A redrive
(``meshctl dlq replay``) takes records out and offers their events again with dedup
bypassed; an archive replay re-injects copies of archived events (:meth:`DeadLetters.reinject`).
"""
from __future__ import annotations

from typing import Any, Iterable

from ..core.deadletter import DeadLetter
from ..core.eventtime import format as iso
from ..core.eventtime import parse_or_none as parse_time
from .events import chain
from .ports import Pipeline

REDELIVER = "redeliver"  # the task that takes one dead letter back into the mesh (a throttled replay)
REINJECT = "reinject"  # the task that re-injects a copy of an archived event (a throttled replay)


class DeadLetters:
    def __init__(self, rt: Pipeline):
        self.rt = rt
        self.store, self.trace = rt.store, rt.trace

    def tasks(self) -> dict:
        return {REDELIVER: lambda record: self.redeliver(DeadLetter.from_dict(record)),
                REINJECT: lambda task: self.reinject(task["event"], task["to"])}

    def dead_letter(self, consumer: str, event: Any, reason: str, error_type: str | None, detail: str, *,
                    attempts: int = 0, first: float | None = None, queue: str) -> None:
        now = self.rt.clock.now()
        detail = self.rt.tools.secrets.redact(detail)  # a safety net: messages quote URLs masked already
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

    # --- redrive ------------------------------------------------------------------------
    def replay(self, records: Iterable[DeadLetter], spacing: float = 0.0) -> int:
        """Deliver dead-lettered events again (fresh attempts, dedup bypassed); how many were.
        With a *spacing* (seconds), one every *spacing* of clock time from now, in order, so a
        breaker or a rate limit of the consumer sees them spread out (``--rate``)."""
        records = list(records)
        if not self.rt.clock_started:
            times = [parse_time(t) for r in records for t in (
                r.last_attempt, r.first_attempt, r.event.get("time") if isinstance(r.event, dict) else None)]
            times = [t for t in times if t is not None]
            if times:  # a redrive happens after the failure: the virtual clock carries on from there
                self.rt.start_clock(max(times))
        if spacing <= 0:
            return sum(self.redeliver(record) for record in records)
        now = self.rt.clock.now()
        records = [r for r in records if isinstance(r.event, dict) and "id" in r.event]
        for n, record in enumerate(records):
            self.rt.scheduler.at(now + n * spacing, REDELIVER, record.as_dict())
        return len(records)

    def reinject_all(self, events: list[dict], to: str | None, spacing: float = 0.0) -> None:
        """Re-inject archived copies now, or one every *spacing* seconds of clock time (``--rate``)."""
        now = self.rt.clock.now()
        for n, event in enumerate(events):
            if spacing <= 0:
                self.reinject(event, to)
            else:
                self.rt.scheduler.at(now + n * spacing, REINJECT, {"event": event, "to": to})

    def redeliver(self, record: DeadLetter) -> bool:
        """Take a dead letter out of its queue and deliver its event again (False: it has no event)."""
        if not isinstance(record.event, dict) or "id" not in record.event:
            return False
        self.store.remove_dead_letters([record.id])
        rt = self.rt
        if record.consumer in rt.by_id:
            rt.offer(record.event, rt.by_id[record.consumer], "dlq-replay", replay=True)
        else:
            rt.publish(record.event, "dlq-replay")
        return True

    def reinject(self, event: dict, to: str | None) -> None:
        """Publish a replayed copy of an archived event (to consumer *to* only, if given)."""
        rt = self.rt
        self.trace.count("events_in")
        self.trace.record(rt.clock.now(), "ingest", event=event["id"], type=event["type"],
                          replayof=event["replayof"])
        if to is None:
            rt.publish(event, "replay")
        else:
            rt.route(event, "replay", rt.targets_of(to))
