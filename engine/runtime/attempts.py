"""Stage attempt: a consumer's handler runs on one delivery.

An attempt that is due is skipped if its event already took effect at the consumer (dedup,
not for a redrive), then the guards that act when it is due are asked (rate limit, circuit
breaker). It runs: an injected fault fails it, a `when` that does not hold filters it,
otherwise the handler compiled for the consumer fills an :class:`~engine.runtime.actions.Attempt`.
Its outcome commits at once, or after the (virtual) time the attempt took.

Shortcuts (``fast_paths``): most events into a stream close no window, so such an attempt's
commit is its dedup record alone and is made here without an Attempt around it; an attempt
that takes no time commits from the Attempt itself rather than from a copy of it as data.
"""
from __future__ import annotations

from types import SimpleNamespace
from typing import Callable

from ..core import eventtime
from ..core.identity import identity
from ..language import model as m
from ..language.templates import RenderError, compile_string, compile_value
from .actions import ActionFailed, Attempt, Request, compile_actions, error_data, idempotency_key, run_actions
from .choices import CRASH, CRASH_RESTART, DUPLICATE, FAIL, OK, attempt_label, attempt_options, chosen_failure
from .consumers import Consumer
from .events import derive, derived_time
from .guards import Guards
from .orchestrator import Orchestrator
from .ports import Fault, Handler, Pipeline
from .streams import StreamRunner


class Attempts:
    def __init__(self, rt: Pipeline, guards: Guards, orchestrator: Orchestrator, streams: StreamRunner,
                 faults: dict[str, Fault]):
        self.rt, self.guards, self.orchestrator, self.streams = rt, guards, orchestrator, streams
        self.faults = faults
        self.chooser = None  # settles the choice points of an attempt (engine.runtime.choices)
        self.store, self.trace, self.by_id = rt.store, rt.trace, rt.by_id
        self.fast = rt.fast_paths
        self.handlers: dict[str, Handler] = {c.id: self._compile(c) for c in rt.by_id.values()}

    def attempt(self, d: dict) -> None:
        """Run one attempt now; its outcome commits now, or after the time it takes (`sleep`)."""
        event, consumer, now = d["event"], self.by_id[d["consumer"]], self.rt.clock.now()
        guards = self.guards
        # Any attempt, not only the first: with several workers a task can run twice (a worker
        # presumed dead finishes after all), and the effect must still happen once.
        if not d["replay"] and self.store.is_done(identity(event), consumer.id, now):
            self.trace.count("duplicates")
            guards.settle(guards.released(d) if "held" in d else d)
            return
        if consumer.id in guards.limited and guards.throttled(d, consumer, now):
            return
        probe = False
        if consumer.policy.breaker is not None:
            until = guards.circuit(consumer, now)
            if until is not None:
                guards.blocked(d, consumer, now, until)
                return
            probe = guards.breakers.get(consumer.id, {}).get("probing", False)
            if "held" in d:
                d = guards.released(d)
        number, trace = d["number"], self.trace
        trace.counts["delivered"] += 1
        if trace.sink is not None:
            trace.record(now, "deliver", event=event["id"], type=event["type"], **{"from": d["producer"]},
                         consumer=consumer.id, attempt=number)
        handler = self.handlers[consumer.id]
        if self.fast and consumer.kind == "stream" and consumer.id not in self.faults:
            # Most events go into their windows and close none: that attempt's commit is its
            # dedup record alone, so it is made here without the Attempt and outcome around it.
            stream = consumer.element
            outputs = self.streams.operators[stream.name].process(event)
            if not outputs:
                self.store.mark_done(identity(event), consumer.id, now)
                if trace.sink is not None:
                    trace.record(now, "ok", event=event["id"], consumer=consumer.id, attempt=number)
                if "order_key" in d:
                    guards.settle(d)
                return
            handler = self.streams.output_handler(stream, outputs)
        self.run_attempt(d, consumer, now, handler, probe)

    def run_attempt(self, d: dict, consumer: Consumer, now: float, handler: Handler,
                    probe: bool = False) -> None:
        """An attempt that was not skipped (duplicate, throttled, circuit open): run its handler
        and commit what it produced, now or after the time it took. *probe*: it is the probe of
        a half-open circuit, which learns when the outcome commits."""
        event, number = d["event"], d["number"]
        context = {"data": event.get("data"), "event": event, "vars": {}, "attempt": number}
        attempt = Attempt(consumer.id, event, number, now, context, consumer.declared,
                          at=derived_time(event, d.get("after", 0.0), d["first"]))
        error: Exception | None = None
        decision = OK if self.chooser is None else self._choose(d, consumer, now)
        try:
            if self.faults:
                self.inject_fault(consumer.id, attempt)
            if decision is FAIL:
                raise chosen_failure(number)
            if consumer.condition is not None and not consumer.condition(attempt.context):
                self._filtered_by_when(event, consumer.id)
                self.guards.settle(d)
                if probe:
                    self.guards.probe_ran(consumer, now)
                return
            handler(attempt)
        except (ActionFailed, RenderError) as exc:
            error = exc
        rt = self.rt
        if probe:
            self.guards.probe_ran(consumer, now + attempt.elapsed)
        if decision is CRASH:
            self._crashed(d, now + attempt.elapsed)
            return
        if attempt.elapsed > 0:
            rt.scheduler.at(now + attempt.elapsed, "complete",
                            {"delivery": d, "outcome": attempt.outcome(error)})
        elif self.fast:  # it commits at once: read the attempt itself rather than a copy of it as data
            rt.commit(d, attempt, None if error is None else error_data(error))
        else:
            outcome = attempt.outcome(error)
            rt.commit(d, SimpleNamespace(**outcome), outcome["error"])

    def _choose(self, d: dict, consumer: Consumer, now: float) -> str:
        """Ask the chooser what happens to this attempt; a copy of the delivery is due now."""
        options = attempt_options(consumer.kind, d["number"], consumer.policy.retry.max_attempts,
                                  not d["replay"])
        decision = self.chooser.attempt(attempt_label(consumer.id, d["event"], d["number"]), options)
        if decision is DUPLICATE:
            self.trace.record(now, "duplicate", event=d["event"]["id"], consumer=consumer.id,
                              attempt=d["number"])
            self.rt.scheduler.at(now, "attempt", dict(d))
        return decision

    def _crashed(self, d: dict, ended: float) -> None:
        """The attempt's effects happened and its acknowledgement was lost: the delivery is taken
        again once the worker's lease runs out."""
        self.trace.record(ended, "crash", event=d["event"]["id"], consumer=d["consumer"], attempt=d["number"],
                          retake=eventtime.format(ended + CRASH_RESTART))
        self.rt.scheduler.at(ended + CRASH_RESTART, "attempt", {**d, "reserved": False})

    def inject_fault(self, consumer_id: str, attempt: Attempt) -> None:
        fault = self.faults.get(consumer_id)
        if fault is not None and (fault.times is None or attempt.number <= fault.times):
            raise ActionFailed(fault.error, f"injected fault (attempt {attempt.number})")

    def _filtered_by_when(self, event: dict, consumer: str) -> None:
        now = self.rt.clock.now()
        self.store.mark_done(identity(event), consumer, now)
        self.trace.count("filtered")
        self.trace.record(now, "filtered", event=event["id"], type=event["type"], consumer=consumer,
                          why="when")

    # --- what each kind of consumer does -------------------------------------------------
    def _compile(self, consumer: Consumer) -> Handler:
        if consumer.kind == "subscription":
            steps = compile_actions(consumer.element.actions, self.rt.tools)
            keyed = self.rt.state.of.get(f"service:{consumer.element.service}")
            if keyed is None:
                return lambda attempt: run_actions(steps, attempt)

            def with_state(attempt: Attempt) -> None:
                keyed.begin(attempt, attempt.context, attempt.now)
                run_actions(steps, attempt)
                keyed.end(attempt)
            return with_state
        if consumer.kind == "route":
            return self._route_handler(consumer.element)
        if consumer.kind == "orchestration":
            return self.orchestrator.handler(consumer.element)
        if consumer.kind == "wait":
            return self.orchestrator.waits.handler(consumer.element)
        return self.streams.handler(consumer.element)

    def _route_handler(self, route: m.Route) -> Callable[[Attempt], None]:
        t = route.transform
        data = compile_value(t.data, self.fast) if t is not None and t.data is not None else None
        subject = compile_string(t.subject, self.fast) if t is not None and t.subject is not None else None
        new_type = t.type.name if t is not None and t.type is not None else None
        tools = self.rt.tools
        targets: list[tuple[str, str | Request]] = []
        for target in route.to:
            if target.kind == "service":
                targets.append(("service", target.value))
            elif target.kind == "http":  # its URL may read the event and `secrets`
                url = target.url or m.TemplateString(target.value, target.loc)
                targets.append(("http", Request(url, None, tools)))
        publish = route.publishes()

        def handle(attempt: Attempt) -> None:
            event, ctx = attempt.event, attempt.context
            type_ = new_type or event["type"]
            out_data = data(ctx) if data is not None else event.get("data")
            out_subject = str(subject(ctx)) if subject is not None else event.get("subject")
            for position, (kind, value) in enumerate(targets):
                if kind == "service":
                    attempt.direct.append((type_, out_data, out_subject, value))
                else:
                    preview = derive(event, f"route:{route.name}", 0, type_, out_data,
                                     attempt.at + attempt.elapsed, out_subject)
                    url, shown, _ = value.render(ctx)
                    attempt.calls.append(shown)
                    key = idempotency_key(event, attempt.consumer, position)
                    tools.post(url, preview, {"Idempotency-Key": key}, None, shown)
            if publish:
                attempt.emit(type_, out_data, out_subject)
            attempt.output = {"type": type_}
        return handle
