"""`meshctl worker`: one of any number of processes sharing a mesh's work through a broker.

Each worker runs the same :class:`~engine.runtime.interpreter.Runtime` as ``meshctl run``,
on the real clock, but the runtime's schedule is the broker's queues (engine/storage/broker.py)
instead of an in-memory heap. The work is split into partitions; a worker holds about
partitions / live workers of them (partition *p* goes to the *p mod n*-th live worker by
name), gives a partition up when the live workers change, takes over the partitions of
workers that left or stopped renewing their lease, and on SIGTERM finishes the unit in hand
and releases its partitions at once. Work is done in units: one queue entry (or a batch of
one partition's lane), whose effects — dedup records, dead letters, state, emitted events, new
tasks, counters — are committed together with the entry's acknowledgement, and only if the
values the unit read are unchanged, the entry is still this worker's and so is the
partition. So a crash at any point either loses the whole unit (it is redelivered) or
nothing; a unit that lost a race is done again on fresh state; a worker that was presumed
dead cannot commit over the one that took its work, and never runs work of a partition it
no longer holds.

Where work goes (docs/scale-out.md#partitions): an input by its partition key
(:func:`~engine.storage.broker.partition_key`); a delivery to an ordered consumer by its
ordering key, to a consumer with ``state:`` by its state key, to a windowed stream by the
stream's name (by its key, for a stream judged by partition watermarks), to any other
consumer by the event's partition key; every other task stays in the partition of the unit
that made it.
"""
from __future__ import annotations

import contextlib
import itertools
import json
import logging
import math
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
from ..runtime.watermarks import stream_inputs, stream_key, task_bound
from ..storage.base import StorageError
from ..storage.broker import APPLIED, FENCED, INPUT, TASKS, Broker, Entry, Task, partition_key
from .deployment import OFFER, REDRIVE, REPLAY, RUN_REDRIVE, queue_lanes
from .metrics import MetricsServer, TraceMetrics
from .otel import Spans, tracing
from .schedules import Ticker
from .versions import TAG, Deployed, retire_drained, tag_of, version_deltas

MAX_CONFLICTS = 20  # a unit redone this often in a row is left pending, for a later turn
FAILED = -2  # a unit whose work raised: nothing committed, its entries stay pending
LANE_BATCHES = 5  # each lane of a partition is read this many batches at a time (one unit)
BALANCE_EVERY = 0.25  # seconds between looks at the live workers (and lease renewals)
CLOSE_EVERY = 0.2  # seconds between looks at the partition watermarks (windows to close)
IDLE_PAUSE = 0.05  # seconds a worker waits after a turn that found nothing to do
VERSIONS_EVERY = 1.0  # seconds between looks for mesh versions deployed or drained
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
    reclaim_after: float = 30.0  # seconds between looks for entries left in hand by a failed unit
    lease: float = 10.0  # seconds a partition stays with a worker that stops renewing its lease
    max_deliveries: int = 5  # hand-outs of one entry before it is dead-lettered as poison
    exit_when_idle: bool = False  # drain: stop once every queue is empty (closing open windows)
    journal_trace: bool = False  # keep trace records in the store ({P:p}:j:trace)
    metrics_port: int | None = None  # serve /metrics on this port (0: a free one); None: no metrics
    metrics_host: str = "127.0.0.1"


@dataclass
class _Version:
    """One mesh version's runtime in a worker (one only, without ``meshctl deploy``)."""

    version: str | None
    mesh: m.Mesh
    rt: Runtime
    offer: Callable  # the runtime's own offer (the worker puts its own in front)
    ordered: set[str]


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
    def __init__(self, mesh: m.Mesh | None, broker: Broker, options: WorkerOptions,
                 deployed: Deployed | None = None):
        """A worker of *mesh*, or (*mesh* None) of the versions *deployed* in the broker's store."""
        self.broker, self.options, self.deployed = broker, options, deployed
        self.store = store = broker.unit_store()  # what a unit reads is checked again at its commit
        self.name = options.name or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        journal = JournalSink(store) if options.journal_trace else None
        self.metrics = (
            None if options.metrics_port is None
            else TraceMetrics(lambda: self.lanes, broker, lambda: self.rt, forward=journal)
        )
        # the metrics read the trace records the runtime makes anyway: they are its sink
        self.trace = Trace(self.metrics if self.metrics is not None else journal)
        self.clock = SystemClock()
        self.tracing = tracing()  # OpenTelemetry spans, when installed and configured
        self.outbox = Outbox(self.clock)  # every version's runtime schedules into it
        self._mesh = mesh
        self.runtimes: dict[str | None, _Version] = {}
        self.version: str | None = None
        self._use(deployed.current if deployed is not None else None)
        self.broker.configure(self.mesh.partitions, stream_inputs(self.mesh))
        self.lanes = self._lanes()
        self.broker.ensure_lanes(self.lanes)
        self._last_versions = time.time()
        self._ticker()
        self.units: Counter[str] = Counter()  # committed, conflicts, fenced, failed
        self.held: set[int] = set()  # the partitions this worker holds
        self._renewed: dict[int, float] = {}  # when each held partition's lease was last renewed
        self._stale: set[int] = set()  # held partitions that may have entries left in someone's hand
        self._stop = threading.Event()
        self._last_reclaim = 0.0
        self._last_beat = 0.0
        self._last_balance = 0.0
        # partition watermarks (engine/runtime/watermarks.py): the input progress a unit moved,
        # and per partitioned stream and partition the end of its first open window as last saved.
        # A partitioned stream's deliveries are split over the partitions by its key, each
        # partition keeping the windows of its keys: nothing of it depends on arrival order.
        # (self.watermarks and self._split: the runtime's in use, set by _use)
        self._progress: float | None = None
        self._next_end: dict[tuple[str, int], float] = {}
        self._last_close = 0.0

    # --- versions: one runtime per mesh version ---------------------------------------------
    def _runtime(self, version: str | None) -> _Version:
        """The runtime of a version (of the worker's mesh: None), made on first use."""
        found = self.runtimes.get(version)
        if found is not None:
            return found
        mesh = self._mesh if version is None else self.deployed.meshes[version]
        o = self.options
        rt = Runtime(mesh, store=self.store, clock=self.clock, seed=o.seed, http=o.http, faults=o.faults,
                     max_hops=o.max_hops, trace=self.trace)
        if self.tracing is not None:
            rt.wrap_tasks(Spans(self.tracing.tracer, rt, self.name).wrap)
        rt.scheduler = self.outbox
        rt.register_task(REDRIVE, lambda record: rt.redeliver(DeadLetter.from_dict(record)))
        rt.register_task(RUN_REDRIVE, lambda task: self._redrive_run(task["run"]))
        rt.register_task(REPLAY, lambda task: rt.reinject(task["event"], task["to"]))
        rt.register_task(OFFER, lambda task: self._offer(
            task["event"], rt.by_id[task["consumer"]], task["producer"]))
        ordered = {c.id for c in rt.by_id.values() if getattr(c.element, "ordering", None)}
        made = self.runtimes[version] = _Version(version, mesh, rt, rt.offer, ordered)
        # an offer to an ordered consumer goes to the partition of its key, where its resequencer is
        rt.offer = self._offer_in_partition
        return made

    def _use(self, version: str | None) -> None:
        """Work with a version's runtime from now on (a unit's work starts with this)."""
        chosen = self._runtime(version)
        self.version, self.mesh, self.rt = version, chosen.mesh, chosen.rt
        self._offer, self._ordered = chosen.offer, chosen.ordered
        self.watermarks = chosen.rt.watermarks
        self._split = self.watermarks.streams
        self.watermarks.holds = {}  # the unit's held work, committed with it

    def _lanes(self) -> list[str]:
        meshes = [v.mesh for v in self.runtimes.values()] + (
            list(self.deployed.meshes.values()) if self.deployed is not None else [])
        return queue_lanes(sorted({name for mesh in meshes for name in mesh.streams}))

    def _current(self) -> str | None:
        return self.deployed.current if self.deployed is not None else None

    def _version_of(self, entry: Entry) -> str | None:
        """The version an entry runs on: its tag's; the current one for input and untagged tasks
        (commands' redrives and replays)."""
        if self.deployed is None:
            return None
        tag = self._tag(entry)
        if tag is not None and tag not in self.deployed.meshes:
            self.deployed.refresh()  # deployed since this worker last looked
        if tag in self.deployed.meshes:
            return tag
        if tag is not None:
            log.warning("an entry of mesh version %s, which is not deployed: run on version %s", tag,
                        self.deployed.current, extra={"worker": self.name})
        return self.deployed.current

    def _see_deploys(self, entries: list[Entry]) -> None:
        """Before input is taken, the versions deployed so far: input queued after a deploy
        runs on the version it made current."""
        if self.deployed is not None and any(entry.lane == INPUT for entry in entries):
            self.deployed.refresh()

    @staticmethod
    def _tag(entry: Entry) -> str | None:
        if entry.lane == INPUT:
            return None
        try:
            return tag_of(json.loads(entry.fields.get("p", "null")))
        except ValueError:
            return None

    def _ticker(self) -> None:
        """The `Schedule`s fire on the current version (made again when another becomes current)."""
        self.ticker = Ticker(self._runtime(self._current()).rt, self.store, self.broker.partition_for,
                             self._unit_of_current)
        self._ticking = self._current()

    def _unit_of_current(self, partition: int, entries: list[Entry], work: Callable[[], None]) -> int:
        def current() -> None:
            self._use(self._current())
            work()
        return self._unit(partition, entries, current)

    def _versions(self) -> None:
        """Take up newly deployed versions, retire the drained ones, drop their runtimes."""
        now = time.time()
        if self.deployed is None or now - self._last_versions < VERSIONS_EVERY:
            return
        self._last_versions = now
        for version in retire_drained(self.broker):
            log.info("mesh version %s drained: retired", version, extra={"worker": self.name})
        self.deployed.refresh()
        for version in set(self.runtimes) - set(self.deployed.meshes):
            del self.runtimes[version]
        if self._ticking != self._current():
            self._ticker()
        lanes = self._lanes()
        if lanes != self.lanes:
            self.broker.ensure_lanes(lanes)
            self.lanes = lanes

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
            # hand the partitions over at once: the others take them without waiting for expiry
            with contextlib.suppress(StorageError):
                self.broker.leave(self.name)
                for partition in sorted(self.held):
                    self.broker.release(partition, self.name)
            self.held.clear()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            if server is not None:
                server.close()
            if self.tracing is not None:
                self.tracing.flush()
            if self.deployed is not None:
                self.deployed.close()
        return {**self.trace.summary(), "units": dict(self.units)}

    def _turn(self) -> bool:
        """One round over the partitions held; True when draining and nothing is left."""
        self._balance()
        self._versions()
        now = time.time()
        if now - self._last_reclaim >= self.options.reclaim_after / 4:
            self._last_reclaim = now
            self._stale.update(self.held)  # look for entries a failed unit left in hand
        done = sum(self._take_over(partition) for partition in sorted(self._stale & self.held))
        fresh = sorted(self.held - self._stale)
        if fresh and not self._stop.is_set():
            done += self.broker.promote_due(now, partitions=fresh)
            for partition in fresh:  # one partition's entries in hand at a time: less to redo if it dies
                done += self._partition(partition)
            done += self.ticker.turn(fresh, time.time())
            done += self._close_windows(fresh)
        self._beat()
        if done:
            return False
        if self.options.exit_when_idle and self._idle() and not self._flush_windows():
            return True
        self._stop.wait(IDLE_PAUSE)
        return False

    def _beat(self, force: bool = False) -> None:
        now = time.time()
        if force or now - self._last_beat >= 1.0:
            self._last_beat = now
            self.broker.heartbeat(self.name, {"pid": os.getpid(), "host": socket.gethostname(),
                                              "seen": eventtime.format(now), "at": now,
                                              "partitions": sorted(self.held), "units": dict(self.units)})

    def _idle(self) -> bool:
        backlog = self.broker.lane_backlog(self.lanes)
        return not any(backlog.values())

    # --- partitions: which this worker holds -------------------------------------------------
    def _balance(self) -> None:
        """Take the partitions that are this worker's share (partition p is the (p mod n)-th live
        worker's, by name), give up the others, and renew the leases of those kept."""
        now = time.time()
        if now - self._last_balance < BALANCE_EVERY:
            return
        self._last_balance = now
        if not self._last_beat:
            self._beat(force=True)  # be listed before counting the live workers
        alive = self.options.lease + 2.0  # a worker whose heartbeat is older has died
        live = sorted({name for name, info in self.broker.workers().items()
                       if now - float(info.get("at", 0)) < alive} | {self.name})
        count = self.broker.partitions
        share = {p for p in range(count) if live[p % len(live)] == self.name}
        for partition in sorted(self.held - share):
            self.broker.release(partition, self.name)
            self.held.discard(partition)
        for partition in sorted(share):
            self.take(partition)

    def take(self, partition: int) -> bool:
        """Take (or renew) a partition's lease; False, and the partition dropped, if another
        worker holds it. A partition newly taken has its former holder's entries taken over first."""
        asked = time.time()  # the lease runs from no earlier than this
        if not self.broker.hold(partition, self.name, int(self.options.lease * 1000)):
            self.held.discard(partition)
            return False
        if partition not in self.held:
            self._stale.add(partition)
            self.held.add(partition)
        self._renewed[partition] = asked
        return True

    def _holds(self, partition: int) -> bool:
        """Whether this worker surely still holds *partition*: its lease was renewed less than
        half a lease ago (so it cannot have expired), or is renewed now."""
        if partition not in self.held:
            return False
        if time.time() - self._renewed.get(partition, 0.0) < self.options.lease / 2:
            return True
        return self.take(partition)

    def _take_over(self, partition: int) -> int:
        """What a former holder (or a failed unit) of a held partition left in hand: done first,
        in order and one entry at a time (an entry that kills its worker cannot take others down)."""
        self.broker.forward(partition)  # what a former holder committed for other partitions
        stale = [entry for lane in self.lanes
                 for entry in self.broker.reclaim(lane, self.name, 0, self.options.batch, partition)]
        if not stale:
            self._stale.discard(partition)
        self._see_deploys(stale)
        for entry in stale:  # in hand now: done even when stopping
            if self._unit(partition, [entry], self._work([entry])) == FENCED:
                break
        return len(stale)

    def _partition(self, partition: int) -> int:
        """New entries of a held partition: its ordered lanes in big batches (one unit each), its
        tasks a batch at a time; all that was read is in hand, so it is done even when stopping."""
        if self._stop.is_set():
            return 0
        batch = self.options.batch
        entries = self.broker.read_lanes(self.lanes, self.name, batch * LANE_BATCHES, [partition],
                                         counts={TASKS: batch})
        self._see_deploys(entries)
        for lane in self.lanes:
            of_lane = [e for e in entries if e.lane == lane]
            for _, group in itertools.groupby(of_lane, key=self._version_of):  # a unit runs one version
                self._batch(partition, list(group))
        return len(entries)

    def _batch(self, partition: int, entries: list[Entry]) -> None:
        """A batch of one lane as one unit. If it keeps conflicting or fails, each entry is done
        alone, but only while it is still this worker's: a batch whose partition or entries
        were taken over is dropped, and no handler runs for work another worker now has."""
        outcome = self._unit(partition, entries, self._work(entries), retries=3)
        if outcome in (APPLIED, FENCED):
            return
        for entry in entries:
            if not self._holds(partition) or not self.broker.owns(self.name, [entry]):
                self._stale.add(partition)  # what is left is taken over (or redone) from the stream
                return
            if self._unit(partition, [entry], self._work([entry])) == FENCED:
                return

    def _work(self, entries: list[Entry]) -> Callable[[], None]:
        lane, version = entries[0].lane, self._version_of(entries[0])
        if lane == INPUT:
            return lambda: [self._use(version), self._inputs(entries)]
        if lane == TASKS:
            return lambda: [self._use(version), self._tasks(entries)]
        name = lane.split(":", 1)[1]

        def work() -> None:
            self._use(version)
            self._load_windows([name])
            self._tasks(entries)
            self._save_windows([name])
        return work

    def _window_key(self, name: str) -> str:
        """Where the unit's partition keeps a stream's windows (its share, for a split stream)."""
        return f"window:{name}@{self.store.partition}" if name in self._split else f"window:{name}"

    def _load_windows(self, names: list[str]) -> None:
        for name in names:
            state = self.store.get_state(self._window_key(name))
            self.rt.streams.operators[name] = self.rt.streams.operator(name, state)

    def _save_windows(self, names: list[str]) -> None:
        for name in names:
            operator = self.rt.streams.operators[name]
            self.store.put_state(self._window_key(name), operator.state())
            if name in self._split:
                self._next_end[(name, self.store.partition)] = operator.next_end()

    def _close_windows(self, partitions: list[int]) -> int:
        """Close the windows of the partitioned streams in *partitions* that nothing can join any
        more, by the deployment's partition watermarks (engine/runtime/watermarks.py); how many
        units that took. Looked at every CLOSE_EVERY seconds."""
        now = time.time()
        self._use(self._current())  # the windows of the current version's streams
        if not self._split or not partitions or now - self._last_close < CLOSE_EVERY:
            return 0
        self._last_close = now
        marks = self.broker.watermarks()
        progress = min(-math.inf if p is None else p for p, _ in marks.values())
        pending = min(math.inf if b is None else b for _, b in marks.values())
        units = 0
        for partition in partitions:
            for name in sorted(self._split):
                limit = min(progress - self.mesh.streams[name].lateness, pending)
                if self._next_end.get((name, partition), -math.inf) <= limit:  # unknown: look
                    self._unit(partition, [], self._advance([name], progress, pending))
                    units += 1
        return units

    def _advance(self, names: list[str], progress: float, pending: float) -> Callable[[], None]:
        def work() -> None:
            self._use(self._current())
            self._load_windows(names)
            self.rt.streams.advance(progress, pending, names)
            self._save_windows(names)
        return work

    def _flush_windows(self) -> int:
        """Close every open window of the streams in the partitions held (drain mode, once all
        queues are empty); how many closed."""
        before = self.trace.counts["windows_emitted"]
        self._use(self._current())
        for partition in sorted(self.held):
            names = [n for n in self.mesh.streams
                     if n in self._split or self._stream_partition(n) == partition]
            if names:
                self._unit(partition, [], self._flush(names))
        return self.trace.counts["windows_emitted"] - before

    def _flush(self, names: list[str]) -> Callable[[], None]:
        def work() -> None:
            self._use(self._current())
            self._load_windows(names)
            for other in set(self.mesh.streams) - set(names):  # another partition's: flushed there
                self.rt.streams.operators[other] = self.rt.streams.operator(other)
            self.rt.streams.flush()
            self._save_windows(names)
        return work

    def _inputs(self, entries: list[Entry]) -> None:
        """A batch of one partition's inputs; with partitioned streams each is stamped with the
        partition's progress before it, and the progress they reach is committed with them."""
        if self.watermarks.enabled:
            partition = entries[0].partition
            before = self.broker.input_progress(partition)
            self.watermarks.progress.of[partition] = before = -math.inf if before is None else before
            for entry in entries:
                self._ingest(entry)
            after = self.watermarks.progress.of[partition]
            self._progress = after if after > before else None
            return
        for entry in entries:
            self._ingest(entry)

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
        event = self.watermarks.stamp(as_input(event), entry.partition)
        self.rt.trace.record(now, "ingest", event=event["id"], type=event["type"])
        self.rt.publish(event, "ingress")

    # --- tasks ----------------------------------------------------------------------
    def _tasks(self, entries: list[Entry]) -> None:
        """A batch of fresh tasks as one unit; the dedup records they need are read at once."""
        pairs = map(_delivery_of, entries)
        self.broker.prefetch_done((identity(e.event), e.consumer) for e in pairs if e is not None)
        for entry in entries:
            self._task(entry)

    def _task(self, entry: Entry) -> None:
        kind, payload = entry.fields["k"], json.loads(entry.fields["p"])
        if isinstance(payload, dict):
            payload.pop(TAG, None)  # the version it runs on is chosen already
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
        hand-out counts against the consumer's retry policy (once the attempts and the losses
        exceed ``max_attempts`` it is dead-lettered), and the attempt is redone as it was. The mesh's
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
            # redone as it was (its number, its event time): a crash is not the handler failing,
            # so it goes on as in `meshctl run`; the losses only bring exhaustion closer
            self.rt.dispatch("attempt", d)
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
    def _unit(self, partition: int, entries: list[Entry], work: Callable[[], None],
              retries: int = MAX_CONFLICTS) -> int:
        """Do *work* of a held partition and commit its effects with the entries'
        acknowledgement; on a conflict do it again on fresh state (up to *retries* times).
        Returns the last outcome: FENCED at once, running nothing, if the partition is no
        longer surely this worker's."""
        result = 0
        self._settle(False)  # what a unit left when the store failed under it never committed
        for _ in range(retries):
            if not self._holds(partition):
                self.units["fenced"] += 1
                return FENCED
            counts = (
                Counter(self.trace.counts),
                Counter(self.trace.dead_by_reason),
                list(self.trace.failed_runs),
            )
            self.broker.begin_unit(partition)
            self.outbox.tasks = []
            self._progress = None
            self.watermarks.holds = {}  # the unit's held work, committed with it
            try:
                work()
            # a bug or a storage failure: the entries stay pending, to be redelivered
            except Exception as exc:
                self._restore(counts)
                self._settle(False)
                self.broker.begin_unit()
                self._stale.add(partition)  # its entries are taken back from the stream, counted
                self.units["failed"] += 1
                log.error("%s: %s (the entry will be redelivered)", type(exc).__name__, exc,
                          exc_info=not isinstance(exc, StorageError), extra={"worker": self.name})
                return FAILED
            deltas = self._counter_deltas(counts)
            if self.version is not None:
                done = sum(self._tag(entry) == self.version for entry in entries)
                deltas |= version_deltas(self.version, len(self.outbox.tasks), done, deltas)
            result = self.broker.commit_unit(self.name, entries, self._tasks_due(), deltas,
                                             progress=self._progress, holds=self.watermarks.holds)
            self._settle(result == APPLIED)
            if result == APPLIED:
                self.units["committed"] += 1
                return result
            self._restore(counts)
            if result == FENCED:
                self.units["fenced"] += 1
                self.held.discard(partition)  # taken over: nothing more of it is done here
                return result
            self.units["conflicts"] += 1
        return result

    def _settle(self, committed: bool) -> None:
        if self.metrics is not None:
            self.metrics.settle(committed)

    def _tasks_due(self) -> list[Task]:
        now, bounded = self.rt.clock.now(), self.watermarks.enabled
        return [
            Task(self._lane_of(kind, payload), kind, self._tagged(payload), when if when > now else None,
                 self._partition_of(kind, payload), task_bound(kind, payload) if bounded else None)
            for when, kind, payload in self.outbox.tasks
        ]

    def _tagged(self, payload: Any) -> Any:
        """A task's payload with the version of the unit that made it (with versions deployed)."""
        if self.version is None or not isinstance(payload, dict):
            return payload
        return {**payload, TAG: self.version}

    @staticmethod
    def _lane_of(kind: str, payload: Any) -> str:
        """Deliveries to a windowed stream go to its ordered lane; everything else is a task."""
        consumer = (
            payload.get("consumer")
            if kind == "attempt"
            else payload.get("delivery", {}).get("consumer")
            if kind == "complete"
            else None
        )
        return consumer if isinstance(consumer, str) and consumer.startswith("stream:") else TASKS

    def _partition_of(self, kind: str, payload: Any) -> int | None:
        """The partition of a new task: a first offer or attempt goes to its delivery's; a task
        of a wait step to the one its payload names (``to_key``: that key's, ``to_partition``: a
        run's home; engine/runtime/waits.py); any other task stays in the unit's (None)."""
        if isinstance(payload, dict) and "to_key" in payload:
            return self.broker.partition_for(payload["to_key"])
        if isinstance(payload, dict) and payload.get("to_partition") is not None:
            return payload["to_partition"]
        if kind not in ("attempt", OFFER) or payload.get("number", 1) != 1 or payload.get("replay"):
            return None
        return self._delivery_partition(payload["consumer"], payload["event"])

    def _delivery_partition(self, consumer: str, event: dict) -> int:
        """A delivery's partition: a windowed stream's by its name (one window operator per
        stream, as in `meshctl run`); an ordered or keyed consumer's by its key (a state key is
        its owner's: all subscriptions of a service share it); any other's by the event's
        partition key (so the deliveries of one busy partition spread out)."""
        if consumer.startswith("stream:"):
            name = consumer[len("stream:"):]
            if name in self._split:  # by the stream's key: each partition keeps its keys' windows
                key = self.rt.streams.operators[name].key_text(event)
                return self.broker.partition_for(f"{stream_key(name)}:{key}")
            return self._stream_partition(name)
        key = self.rt.delivery_key(consumer, event)
        return self.broker.partition_for(partition_key(event) if key is None else key)

    def _stream_partition(self, name: str) -> int:
        return self.broker.partition_for(stream_key(name))

    def _offer_in_partition(self, event: dict, consumer: Any, producer: str, replay: bool = False) -> None:
        """An offer to an ordered consumer from a unit of another partition than its key's
        becomes a task there (where its resequencer state is); any other offer is made here."""
        if consumer.id in self._ordered and not replay:
            target = self._delivery_partition(consumer.id, event)
            if target != self.store.partition:
                self.outbox.at(self.rt.clock.now(), OFFER,
                               {"event": event, "consumer": consumer.id, "producer": producer})
                return
        self._offer(event, consumer, producer, replay)

    def _counter_deltas(self, before: tuple[Counter, Counter, list]) -> dict[str, int]:
        deltas = dict(Counter(self.trace.counts) - before[0])
        return deltas | {f"dead:{r}": n for r, n in (self.trace.dead_by_reason - before[1]).items()}

    def _restore(self, counts: tuple[Counter, Counter, list]) -> None:
        self.trace.counts, self.trace.dead_by_reason = defaultdict(int, counts[0]), counts[1]
        self.trace.failed_runs = counts[2]
