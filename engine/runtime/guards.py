"""Stage guard: what may hold, delay or dead-letter an offer before its attempt runs.

An offer passes, in order: the consumer's loop guard (``loop``: filtered or dead-lettered as
``loop-detected``), the mesh's hop limit, and for an ordered consumer the resequencer, which
holds it until its turn. Its first attempt is then scheduled now. When the attempt is due,
the consumer's rate limit (delay or ``rate-limited``) and circuit breaker (``circuit-open``,
or held with ``on_open: pause``) are asked before it runs (:meth:`Guards.throttled`,
:meth:`Guards.circuit`, :meth:`Guards.blocked`).

Shortcut (``fast_paths``): while an input is fed and none of its type's consumers holds
offers, its first attempts run at once instead of through the schedule, in the order the
schedule would run them.
"""
from __future__ import annotations

from typing import Any

from ..core.eventtime import format as iso
from ..language import model as m
from .consumers import Consumer
from .events import chain
from .ordering import Resequencer
from .ports import Pipeline
from .ratelimit import Buckets


class Guards:
    def __init__(self, rt: Pipeline, resequencer: Resequencer):
        self.rt = rt
        self.trace, self.resequencer = rt.trace, resequencer
        consumers = list(rt.by_id.values())
        self.ordered = frozenset(c.id for c in consumers if getattr(c.element, "ordering", None) is not None)
        self.limited = frozenset(c.id for c in consumers
                                 if getattr(c.element, "rate_limit", None) is not None)
        # consumers that never hold an offer before its attempt (no loop guard, no ordering)
        self.plain = frozenset(c.id for c in consumers if c.loop is None and c.id not in self.ordered)
        self.inline = False  # True while an input's first attempts may run at once (feed)
        self.buckets = Buckets()
        self.breakers: dict[str, dict] = {}
        if any(c.policy.breaker is not None and c.policy.breaker.pauses for c in consumers):
            for key in ("held", "released"):  # summary lines of a mesh whose breakers pause
                self.trace.counts.setdefault(key, 0)

    def types_without_holds(self) -> frozenset[str]:
        """Event types none of whose consumers may hold or drop an offer before its attempt
        (ordering, loop guards): their deliveries are attempts in publish order, nothing else."""
        if not self.rt.fast_paths:
            return frozenset()
        held = {t for c in self.rt.by_id.values() if c.id not in self.plain for t in c.types}
        return frozenset(self.rt.mesh.event_types) - held

    def offer(self, event: dict, consumer: Consumer, producer: str, replay: bool = False) -> None:
        """Apply the loop guard, then schedule the first attempt now."""
        rt = self.rt
        self.trace.counts["matched"] += 1
        hops = event.get("hopcount")
        if self.inline and consumer.id in self.plain and (hops is None or int(hops) < rt.max_hops):
            # An input's attempt, run as the schedule would run it: after the ones offered before
            # it and before anything they schedule (which goes to the schedule, as it did).
            self.inline = False
            rt.attempt({"event": event, "consumer": consumer.id, "number": 1, "first": rt.clock.now(),
                        "producer": producer, "replay": replay})
            self.inline = True
            return
        if consumer.loop is not None and not self._loop_allows(event, consumer):
            return
        if int(event.get("hopcount", 0)) >= rt.max_hops:
            rt.dead_letter(consumer.id, event, "loop-detected", "LoopDetected",
                           f"the event is {event.get('hopcount')} hops from its input (limit {rt.max_hops})",
                           queue=consumer.policy.queue)
            return
        if consumer.id in self.ordered and not replay:
            self.resequencer.offer(event, consumer, producer)
            return
        self.schedule_attempt(event, consumer, producer, replay=replay)

    def _loop_allows(self, event: dict, consumer: Consumer) -> bool:
        """The consumer's loop guard: False if the event was filtered or dead-lettered instead."""
        passes = chain(event).count(consumer.id)
        if consumer.loop.policy == "avoid-loop" and passes:
            self.trace.count("filtered")
            self.trace.record(self.rt.clock.now(), "filtered", event=event["id"], type=event["type"],
                              consumer=consumer.id, why="loop-avoided")
            return False
        if passes >= consumer.loop.max_hops:
            self.rt.dead_letter(consumer.id, event, "loop-detected", "LoopDetected",
                                f"{consumer.id} already handled this chain {passes} times "
                                f"(max_hops {consumer.loop.max_hops})", queue=consumer.policy.queue)
            return False
        return True

    def schedule_attempt(self, event: dict, consumer: Consumer, producer: str, replay: bool = False,
                         order_key: Any = None) -> None:
        """The first attempt of a delivery, now. ``order_key``: it holds the line of an ordered
        key. A delivery is data (see :class:`~engine.runtime.ports.Host`)."""
        now = self.rt.clock.now()
        d = {"event": event, "consumer": consumer.id, "number": 1, "first": now, "producer": producer,
             "replay": replay}
        if order_key is not None:
            d["order_key"] = order_key
        self.rt.scheduler.at(now, "attempt", d)

    def settle(self, d: dict) -> None:
        """A delivery is over (done, filtered, dead-lettered): an ordered key may release its next event."""
        if "order_key" in d:
            self.resequencer.settled(d["consumer"], d["order_key"])

    # --- when the attempt is due --------------------------------------------------------
    def throttled(self, d: dict, consumer: Consumer, now: float) -> bool:
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
            self.rt.scheduler.at(now + wait, "attempt", {**d, "reserved": True})
        else:
            self.rt.dead_letter(consumer.id, event, "rate-limited", "RateLimited",
                                f"more than {limit.rate:g} per {limit.per:g}s", attempts=d["number"] - 1,
                                first=d["first"], queue=consumer.policy.queue)
            self.settle(d)
        return True

    def circuit(self, consumer: Consumer, now: float) -> float | None:
        """None if the consumer's circuit breaker lets this attempt run; else until when it keeps
        it from running (see :meth:`breaker_until`)."""
        return self.breaker_until(consumer.id, consumer.policy.breaker, now)

    def breaker_result(self, consumer: Consumer, ok: bool, now: float) -> None:
        """Tell the consumer's circuit breaker how an attempt ended."""
        self.breaker_outcome(consumer.id, consumer.policy.breaker, ok, now)

    # a breaker is kept by a key: a consumer's id, or an orchestration step's (engine/runtime/subruns.py)
    def breaker_open(self, key: str, breaker: m.CircuitBreaker | None, now: float) -> bool:
        """Whether the circuit of *key* is open (half-open: one probe at a time goes through)."""
        return self.breaker_until(key, breaker, now) is not None

    def breaker_until(self, key: str, breaker: m.CircuitBreaker | None, now: float) -> float | None:
        """None if the circuit of *key* lets this attempt run (closed, or it is the probe of a
        half-open circuit); else until when it keeps it from running: the end of the open
        time, or of the probe in flight (one probe at a time while half-open)."""
        state = self.breakers.get(key)
        if breaker is None or state is None or state.get("open_until") is None:
            return None
        if now < state["open_until"]:
            return state["open_until"]
        probe_until = state.get("probe_until")
        if state.get("probing") and probe_until is not None and now < probe_until:
            return probe_until
        # This attempt is the probe. Until it says how long it took (probe_ran), it holds the
        # circuit for one reset_after: a probe lost with its worker does not block it for good.
        state.update(probing=True, probe_until=now + breaker.reset_after)
        return None

    def probe_ran(self, consumer: Consumer, ends: float) -> None:
        """The probe's handler ran; its outcome commits at *ends* (a `when` that filtered it: now,
        and the next attempt due is the probe)."""
        state = self.breakers.get(consumer.id)
        if state is not None and state.get("probing"):
            state["probe_until"] = ends

    def blocked(self, d: dict, consumer: Consumer, now: float, until: float) -> None:
        """An attempt the circuit keeps from running: dead-lettered as ``circuit-open``, or, with
        ``on_open: pause``, held until *until* (no attempt used; an ordered key stays busy, so
        its later events wait behind it)."""
        if not consumer.policy.breaker.pauses:
            self.rt.dead_letter(consumer.id, d["event"], "circuit-open", "CircuitOpen",
                                f"circuit of {consumer.id} is open", attempts=d["number"] - 1,
                                first=d["first"], queue=consumer.policy.queue)
            self.settle(d)
            return
        if not d.get("held"):
            self.trace.count("held")
        self.trace.record(now, "held", event=d["event"]["id"], consumer=consumer.id, attempt=d["number"],
                          until=iso(until))
        # a held attempt takes a rate-limit token afresh when it is let through
        self.rt.scheduler.at(until, "attempt", {**d, "held": True, "reserved": False})

    def released(self, d: dict) -> dict:
        """A held delivery is let through (or found done): counted, and no longer marked held."""
        self.trace.count("released")
        return {k: v for k, v in d.items() if k != "held"}

    def breaker_outcome(self, key: str, breaker: m.CircuitBreaker | None, ok: bool, now: float) -> None:
        """Tell the circuit of *key* how an attempt ended: enough failures in a row (or a failed
        probe) open it for ``reset_after``."""
        if breaker is None:
            return
        state = self.breakers.setdefault(key, {"failures": 0, "open_until": None, "probing": False})
        if ok:
            state.update(failures=0, open_until=None, probing=False)
            return
        state["failures"] += 1
        if state.get("probing") or state["failures"] >= breaker.failure_threshold:
            state.update(open_until=now + breaker.reset_after, probing=False)
            self.trace.record(now, "circuit-open", consumer=key, until=iso(now + breaker.reset_after))
