"""`meshctl worker`: one of any number of processes sharing a mesh's work through a broker.

Each worker runs the same :class:`~engine.runtime.interpreter.Runtime` as ``meshctl run``,
on the real clock, but the runtime's schedule is the broker's queues (engine/storage/broker.py)
instead of an in-memory heap. Work is done in units: one queue entry (or an ordered batch of a
lane), whose effects — dedup records, dead letters, state, emitted events, new tasks, counters
— are committed together with the entry's acknowledgement, and only if the values the unit
read are unchanged and the entry is still this worker's. So a crash at any point either loses
the whole unit (it is redelivered) or nothing; a unit that lost a race with another worker is
done again on fresh state; and a worker that was presumed dead cannot commit over the one that
took its work.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import threading
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any, Callable

from ..core import eventjson, eventtime
from ..core.deadletter import DeadLetter
from ..core.identity import identity
from ..language import model as m
from ..runtime.clock import SystemClock
from ..runtime.events import REQUIRED, as_input
from ..runtime.interpreter import DEFAULT_MAX_HOPS, MESH, Fault, Runtime
from ..runtime.retry import NO_RETRY
from ..runtime.trace import JournalSink, Trace
from ..runtime.windows import WindowOperator
from ..storage.base import StorageError
from ..storage.broker import APPLIED, FENCED, INPUT, TASKS, Broker, Entry, Task
from .deployment import REDRIVE, REPLAY, RUN_REDRIVE
from .metrics import MetricsServer, TraceMetrics
from .otel import Spans, tracing

MAX_CONFLICTS = 20  # a unit redone this often in a row is left pending, for a later turn
FAILED = -2  # a unit whose work raised: nothing committed, its entries stay pending
LANE_BATCHES = 5  # a lane reads this many batches at a time: one holder feeds every worker
log = logging.getLogger(__name__)


def _delivery_of(entry: Entry) -> "_Pair | None":
    """The (event, consumer) an attempt entry delivers, for reading its dedup record ahead."""
    if entry.fields.get("k") != "attempt":
        return None
    d = json.loads(entry.fields["p"])
    return None if d.get("replay") else _Pair(d["event"], d["consumer"])


@dataclass
class _Pair:
    event: dict
    consumer: str


@dataclass
class WorkerOptions:
    name: str | None = None
    seed: int = 0
    http: str = "live"
    faults: list[Fault] = field(default_factory=list)
    max_hops: int = DEFAULT_MAX_HOPS
    batch: int = 20  # entries read at a time
    reclaim_after: float = 30.0  # seconds an entry may stay unacknowledged before others take it
    lease: float = 10.0  # seconds an ordered lane stays with a worker that stops renewing it
    max_deliveries: int = 5  # hand-outs of one entry before it is dead-lettered as poison
    exit_when_idle: bool = False  # drain: stop once every queue is empty (closing open windows)
    journal_trace: bool = False  # keep trace records in the store (P:j:trace)
    metrics_port: int | None = None  # serve /metrics on this port (0: a free one); None: no metrics
    metrics_host: str = "127.0.0.1"


class Outbox:
    """Stands in for the runtime's scheduler: collects the tasks a unit schedules, which
    are committed with the unit (into a queue now, or into the delayed set)."""

    def __init__(self, clock):
        self.clock = clock
        self.tasks: list[tuple[float, str, Any]] = []

    def at(self, when: float, kind: str, payload: Any) -> None:
        self.tasks.append((when, kind, payload))

    def pending(self) -> int:
        return len(self.tasks)


class Worker:
    def __init__(self, mesh: m.Mesh, broker: Broker, options: WorkerOptions):
        self.mesh, self.broker, self.options = mesh, broker, options
        self.store = store = broker.unit_store()  # what a unit reads is checked again at its commit
        self.name = options.name or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        journal = JournalSink(store) if options.journal_trace else None
        self.metrics = (
            None if options.metrics_port is None
            else TraceMetrics(lambda: self.lanes + [TASKS], broker, lambda: self.rt, forward=journal)
        )
        # the metrics read the trace records the runtime makes anyway: they are its sink
        self.trace = Trace(self.metrics if self.metrics is not None else journal)
        self.rt = Runtime(mesh, store=store, clock=SystemClock(), seed=options.seed, http=options.http,
                          faults=options.faults, max_hops=options.max_hops, trace=self.trace)
        self.tracing = tracing()  # OpenTelemetry spans, when installed and configured
        if self.tracing is not None:
            self.rt.wrap_tasks(Spans(self.tracing.tracer, self.rt, self.name).wrap)
        self.outbox = Outbox(self.rt.clock)
        self.rt.scheduler = self.outbox
        self.rt.register_task(REDRIVE, lambda record: self.rt.redeliver(DeadLetter.from_dict(record)))
        self.rt.register_task(RUN_REDRIVE, lambda task: self._redrive_run(task["run"]))
        self.rt.register_task(REPLAY, lambda task: self.rt.reinject(task["event"], task["to"]))
        self.lanes = [INPUT] + [f"stream:{name}" for name in mesh.streams]
        self.broker.ensure_lanes(self.lanes + [TASKS])
        self.units: Counter[str] = Counter()  # committed, conflicts, fenced, failed
        self._stop = threading.Event()
        self._last_reclaim = 0.0
        self._last_beat = 0.0

    # --- the loop ---------------------------------------------------------------------
    def stop(self, *_args) -> None:
        """Stop after the entries in hand are done (SIGTERM, SIGINT)."""
        self._stop.set()

    def run(self) -> dict:
        """Work until stopped (or, with ``exit_when_idle``, until nothing is left); the summary
        counts what this worker did."""
        previous = {}
        if threading.current_thread() is threading.main_thread():
            previous = {sig: signal.signal(sig, self.stop) for sig in (signal.SIGTERM, signal.SIGINT)}

        pause = 0.5
        server = None
        if self.metrics is not None:
            server = MetricsServer(self.metrics, self.options.metrics_host, self.options.metrics_port)
            server.start()
            log.info("metrics on %s", server.url, extra={"worker": self.name, "url": server.url})
        try:
            while not self._stop.is_set():
                try:
                    if self._turn():
                        break
                    pause = 0.5
                except StorageError as exc:
                    # The server is down or restarting: what is in hand stays pending, to be redone.
                    log.warning("Redis unavailable (%s); retrying in %gs", exc, pause,
                                extra={"worker": self.name})
                    self._stop.wait(pause)
                    pause = min(pause * 2, 10.0)
        finally:
            with contextlib.suppress(StorageError):
                for lane in self.lanes:
                    self.broker.release(lane, self.name)
                self.broker.leave(self.name)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            if server is not None:
                server.close()
            if self.tracing is not None:
                self.tracing.flush()
        return {**self.trace.summary(), "units": dict(self.units)}

    def _turn(self) -> bool:
        """One round over every queue; True when draining and nothing is left."""
        done = self.broker.promote_due(time.time())
        for lane in self.lanes:
            done += self._lane(lane)
        done += self._shared(block_ms=None if done else 200)  # (BLOCK 0 would wait forever)
        self._beat()
        return not done and self.options.exit_when_idle and self._idle() and not self._flush_windows()

    def _beat(self) -> None:
        now = time.time()
        if now - self._last_beat >= 1.0:
            self._last_beat = now
            self.broker.heartbeat(self.name, {"pid": os.getpid(), "host": socket.gethostname(),
                                              "seen": eventtime.format(now), "units": dict(self.units)})

    def _idle(self) -> bool:
        backlog = self.broker.lane_backlog(self.lanes + [TASKS])
        return not any(backlog.values())

    # --- ordered lanes: the input, and each windowed stream --------------------------------
    def _lane(self, lane: str) -> int:
        if not self.broker.hold(lane, self.name, int(self.options.lease * 1000)):
            return 0
        stale = self.broker.reclaim(lane, self.name, 0, self.options.batch)  # a former holder's, in order
        if stale:  # one at a time: an entry that kills its worker cannot take others down with it
            for entry in stale:
                self._unit([entry], self._lane_work(lane, [entry]))
            return len(stale)
        entries = self.broker.read(lane, self.name, self.options.batch * LANE_BATCHES)
        if entries:
            self._unit(entries, self._lane_work(lane, entries))
        return len(entries)

    def _lane_work(self, lane: str, entries: list[Entry]) -> Callable[[], None]:
        if lane == INPUT:
            return lambda: [self._ingest(entry) for entry in entries]
        name = lane.split(":", 1)[1]

        def work() -> None:
            self._load_windows([name])
            for entry in entries:
                self._task(entry)
            self._save_windows([name])
        return work

    def _load_windows(self, names: list[str]) -> None:
        for name in names:
            state = self.store.get_state(f"window:{name}")
            stream = self.mesh.streams[name]
            self.rt.streams.operators[name] = (WindowOperator.restore(stream, state) if state is not None
                                               else WindowOperator(stream))

    def _save_windows(self, names: list[str]) -> None:
        for name in names:
            self.store.put_state(f"window:{name}", self.rt.streams.operators[name].state())

    def _flush_windows(self) -> int:
        """Close every open window (drain mode, once all queues are empty); how many closed."""
        names = list(self.mesh.streams)
        if not names:
            return 0
        lanes = [f"stream:{n}" for n in names]
        held = [lane for lane in lanes if self.broker.hold(lane, self.name, int(self.options.lease * 1000))]
        if len(held) < len(lanes):
            # another worker has a lane: it is still busy, or gathering the lanes to flush. Let go
            # of ours, or two workers holding one stream each would wait for each other forever
            for lane in held:
                self.broker.release(lane, self.name)
            return 1

        def work() -> None:
            self._load_windows(names)
            self.rt.streams.flush()
            self._save_windows(names)
        before = self.trace.counts["windows_emitted"]
        self._unit([], work)
        return self.trace.counts["windows_emitted"] - before

    def _ingest(self, entry: Entry) -> None:
        """An event from the ingress: published into the mesh, or dead-lettered."""
        self.rt.trace.count("events_in")
        try:
            event = eventjson.loads(entry.fields.get("e", ""))  # serve and publish checked it; others may not
        except eventjson.EventJSONError as exc:
            event, problem = entry.fields, str(exc)
        else:
            problem = (
                None
                if isinstance(event, dict) and all(isinstance(event.get(a), str) for a in REQUIRED)
                else "not a CloudEvent with a string id, source and type"
            )
        # Every input counted in "events in" has its ingest record, the rejected ones too.
        now = self.rt.clock.now()
        if problem is not None:
            self.rt.trace.record(now, "ingest", event=None, type=None, rejected="schema-invalid")
            self.rt.dead_letter(MESH, {"raw": event}, "schema-invalid", "BadInput", problem, queue="dlq")
            return
        if entry.deliveries > self.options.max_deliveries:
            self.rt.trace.record(
                now, "ingest", event=event["id"], type=event["type"], rejected="retries-exhausted"
            )
            self._poison(MESH, event, entry.deliveries, "dlq")
            return
        event = as_input(event)
        self.rt.trace.record(now, "ingest", event=event["id"], type=event["type"])
        self.rt.publish(event, "ingress")

    # --- the shared task queue ---------------------------------------------------------
    def _shared(self, block_ms: int | None) -> int:
        entries: list[Entry] = []
        now = time.time()
        if now - self._last_reclaim >= self.options.reclaim_after / 4:
            self._last_reclaim = now
            entries = self.broker.reclaim(
                "tasks", self.name, int(self.options.reclaim_after * 1000), self.options.batch
            )
        if entries:  # taken over from a dead worker: one at a time, so a poison entry cannot take others down
            for entry in entries:
                self._unit([entry], lambda e=entry: self._task(e))
            return len(entries)
        entries = self.broker.read("tasks", self.name, self.options.batch, block_ms)
        if entries and self._unit(entries, lambda: self._tasks(entries), retries=3) != APPLIED:
            for entry in entries:  # the batch kept conflicting or failed: all of them, even when stopping
                self._unit([entry], lambda e=entry: self._task(e))
        return len(entries)

    def _tasks(self, entries: list[Entry]) -> None:
        """A batch of fresh tasks as one unit; the dedup records they need are read at once."""
        pairs = map(_delivery_of, entries)
        self.broker.prefetch_done((identity(e.event), e.consumer) for e in pairs if e is not None)
        for entry in entries:
            self._task(entry)

    def _task(self, entry: Entry) -> None:
        kind, payload = entry.fields["k"], json.loads(entry.fields["p"])
        if entry.deliveries > 1 and kind == "attempt":
            self._attempt_after_loss(payload, entry.deliveries)
        elif entry.deliveries > self.options.max_deliveries:
            event = (
                payload.get("event") or payload.get("delivery", {}).get("event") or {"task": kind, **payload}
            )
            self._poison(payload.get("consumer", MESH), event, entry.deliveries, "dlq")
        else:
            self.rt.dispatch(kind, payload)

    def _attempt_after_loss(self, d: dict, deliveries: int) -> None:
        """A delivery whose attempt was handed out before and never finished: each earlier
        hand-out counts as a failed attempt against the consumer's retry policy. The mesh's
        own machinery (windowed streams, orchestration triggers: no retries) is not charged
        for a worker's death; only --max-deliveries bounds it."""
        consumer = self.rt.by_id[d["consumer"]]
        if consumer.policy.retry is NO_RETRY:
            if deliveries > self.options.max_deliveries:
                self.store.mark_done(identity(d["event"]), consumer.id, self.rt.clock.now())
                self._poison(consumer.id, d["event"], deliveries, consumer.policy.queue)
                self.rt.settle(d)
            else:
                self.rt.dispatch("attempt", d)
            return
        number = d["number"] + deliveries - 1
        if number <= consumer.policy.retry.max_attempts:
            self.rt.dispatch("attempt", {**d, "number": number})
            return
        self.store.mark_done(identity(d["event"]), consumer.id, self.rt.clock.now())
        log.warning("the workers running an attempt of %s stopped %d times: its retries are exhausted",
                    consumer.id, deliveries - 1, extra={"worker": self.name, "consumer": consumer.id})
        self.rt.dead_letter(
            consumer.id,
            d["event"],
            "retries-exhausted",
            "WorkerLost",
            f"the worker running the attempt stopped before finishing it, {deliveries - 1} time(s)",
            attempts=number - 1,
            first=d["first"],
            queue=consumer.policy.queue,
        )
        self.rt.settle(d)

    def _poison(self, consumer: str, event: Any, deliveries: int, queue: str) -> None:
        log.warning("an entry for %s was handed out %d times without finishing: dead-lettered in %s",
                    consumer, deliveries - 1, queue, extra={"worker": self.name, "consumer": consumer})
        self.rt.dead_letter(
            consumer,
            event,
            "retries-exhausted",
            "WorkerLost",
            f"handed to a worker {deliveries - 1} times without finishing "
            f"(limit {self.options.max_deliveries})",
            attempts=deliveries - 1,
            queue=queue,
        )

    def _redrive_run(self, run_id: str) -> None:
        try:
            self.rt.orchestrator.redrive(run_id)
        except ValueError as exc:  # not redrivable (any more): say so, nothing else to do
            log.warning("redrive of run %s: %s", run_id, exc, extra={"worker": self.name, "run": run_id})

    # --- units of work ------------------------------------------------------------------
    def _unit(self, entries: list[Entry], work: Callable[[], None], retries: int = MAX_CONFLICTS) -> int:
        """Do *work* and commit its effects with the entries' acknowledgement; on a conflict
        do it again on fresh state (up to *retries* times). Returns the last outcome."""
        result = 0
        self._settle(False)  # what a unit left when the store failed under it never committed
        for _ in range(retries):
            counts = (
                Counter(self.trace.counts),
                Counter(self.trace.dead_by_reason),
                list(self.trace.failed_runs),
            )
            self.broker.begin_unit()
            self.outbox.tasks = []
            try:
                work()
            # a bug or a storage failure: the entries stay pending, to be redelivered
            except Exception as exc:
                self._restore(counts)
                self._settle(False)
                self.broker.begin_unit()
                self.units["failed"] += 1
                log.error("%s: %s (the entry will be redelivered)", type(exc).__name__, exc,
                          exc_info=not isinstance(exc, StorageError), extra={"worker": self.name})
                return FAILED
            deltas = self._counter_deltas(counts)
            result = self.broker.commit_unit(self.name, entries, self._tasks_due(), deltas)
            self._settle(result == APPLIED)
            if result == APPLIED:
                self.units["committed"] += 1
                return result
            self._restore(counts)
            if result == FENCED:
                self.units["fenced"] += 1
                return result
            self.units["conflicts"] += 1
        return result

    def _settle(self, committed: bool) -> None:
        if self.metrics is not None:
            self.metrics.settle(committed)

    def _tasks_due(self) -> list[Task]:
        now = self.rt.clock.now()
        return [
            Task(self._lane_of(kind, payload), kind, payload, when if when > now else None)
            for when, kind, payload in self.outbox.tasks
        ]

    @staticmethod
    def _lane_of(kind: str, payload: Any) -> str:
        """Deliveries to a windowed stream go to its ordered lane; everything else is shared."""
        consumer = (
            payload.get("consumer")
            if kind == "attempt"
            else payload.get("delivery", {}).get("consumer")
            if kind == "complete"
            else None
        )
        return consumer if isinstance(consumer, str) and consumer.startswith("stream:") else "tasks"

    def _counter_deltas(self, before: tuple[Counter, Counter, list]) -> dict[str, int]:
        deltas = dict(Counter(self.trace.counts) - before[0])
        return deltas | {f"dead:{r}": n for r, n in (self.trace.dead_by_reason - before[1]).items()}

    def _restore(self, counts: tuple[Counter, Counter, list]) -> None:
        self.trace.counts, self.trace.dead_by_reason = defaultdict(int, counts[0]), counts[1]
        self.trace.failed_runs = counts[2]
