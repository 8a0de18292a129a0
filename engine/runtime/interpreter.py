"""The runtime: publishes events, delivers them to consumers with retries, dead-letters failures.

One engine for every clock. Delivery to each consumer is at-least-once with its effect
once: a (event identity, consumer) pair that took effect is recorded in the store and a
redelivery of it is skipped. An event's identity is its source and id together
(:func:`~engine.core.identity.identity`): the id alone is only unique per source. Each
attempt runs synchronously at its scheduled time, takes ``elapsed`` (virtual) seconds, and
its effects — emitted events, direct deliveries, dead letters — are committed when it
completes. Every input ends delivered, filtered, unconsumed (counted) or dead-lettered;
nothing is dropped.

:class:`Runtime` is the facade of a pipeline of stages (see :mod:`engine.runtime.ports`):
admit (intake) -> route (routing) -> guard (guards) -> attempt (attempts) -> commit (commits)
-> dead-letter (deadletters). It builds them, sets its operations to their methods, and
keeps what is the run's own: the clock, the schedule and checkpoints.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable

from ..core.deadletter import DeadLetter
from ..language import model as m
from ..language.admission import DataSchemas
from ..storage import MemoryStore, Store
from .actions import Toolbox
from .attempts import Attempts
from .clock import Clock, VirtualClock
from .commits import Commits
from .consumers import build_consumers
from .deadletters import DeadLetters
from .events import BadInput
from .guards import Guards
from .intake import Intake
from .keyedstate import KeyedStates
from .orchestrator import Orchestrator
from .ordering import Resequencer, ordering_key
from .ports import DEFAULT_MAX_HOPS, DEFAULT_START, MESH, Fault
from .routing import Routing
from .scheduler import Scheduler, TrackedScheduler
from .schedules import ScheduleTicks
from .secrets import Secrets
from .streams import StreamRunner
from .trace import Trace
from .watermarks import Watermarks, task_bound

__all__ = ["DEFAULT_MAX_HOPS", "DEFAULT_START", "MESH", "Fault", "Runtime"]


class Runtime:
    """Runs a mesh on events: ``feed`` inputs one at a time (or ``run`` them all), then ``finish``.

    ``fast_paths=False`` turns every shortcut of the runtime off (fused stream delivery, the
    attempt and commit shortcuts, inputs attempted without the schedule, patterns tested one
    by one, window counting shortcuts, orchestration steps advanced from the ended ones and
    contexts without ``steps``, template field reads): the general path runs, with the same
    results.
    """

    def __init__(self, mesh: m.Mesh, *, store: Store | None = None, clock: Clock | None = None, seed: int = 0,
                 http: str = "simulate", faults: Iterable[Fault] = (), max_hops: int = DEFAULT_MAX_HOPS,
                 trace: Trace | None = None, on_emit: Callable[[dict], None] | None = None,
                 fast_paths: bool = True):
        self.mesh = mesh
        self.store = store if store is not None else MemoryStore.for_mesh(mesh.retention)
        self.clock = clock if clock is not None else VirtualClock(DEFAULT_START)
        self.clock_started = clock is not None
        self._tasks: dict[str, Callable[[Any], None]] = {}
        self.scheduler = Scheduler(self.clock, self.dispatch)  # a worker puts its outbox here
        self.seed = seed
        self.max_hops = max_hops
        self.fast_paths = fast_paths
        self.trace = trace if trace is not None else Trace()
        self.on_emit = on_emit
        self.on_refused: Callable[[Any], None] | None = None  # told of each input refused at entry
        self.on_input: Callable[[dict], None] | None = None  # told of each input as it enters (invariants)
        self.chooser = None  # settles the choice points a deployment could settle otherwise (see steer)
        self.tools = Toolbox(mesh.root, http, logging=self.trace.recording, allow=mesh.allowed_modules,
                             fast=fast_paths, secrets=Secrets(mesh.secrets, mesh.root))
        self.trace.redact = self.tools.secrets.scrub  # a secret value never reaches a trace record
        self._faults = {f.consumer: f for f in faults}
        self.consumers = build_consumers(mesh, fast_paths)
        self.by_id = {c.id: c for c in self.consumers}
        self.schemas = DataSchemas(mesh)  # shared with the ingress: the same checks at the edge
        self.notes: dict = {}  # settings of the run that a resumed session must keep (kept in checkpoints)
        self.finished = False
        self.state = KeyedStates(mesh, self.store, fast_paths)  # `state:` of services and orchestrations
        self.orchestrator = Orchestrator(self)
        self.streams = StreamRunner(self, fast_paths)
        self.watermarks = Watermarks(mesh, self.streams.advance)
        if self.watermarks.enabled:  # the schedule's tasks count as pending work (watermarks.py)
            self.scheduler = TrackedScheduler(self.clock, self.dispatch, self.watermarks.pending, task_bound,
                                              self.watermarks.check)
        self.resequencer = Resequencer(self)
        self.schedules = ScheduleTicks(self, fast_paths)  # the ticks of `Schedule`s, as tasks
        self._wire()

    def _wire(self) -> None:
        """Build the stages, and make each operation of the pipeline the bound method of the
        stage that does it: a call from one stage to the next is one plain call."""
        self.dead_letters = dead = DeadLetters(self)
        self.dead_letter = dead.dead_letter
        self.redeliver = dead.redeliver
        self.guards = guards = Guards(self, self.resequencer)
        self.offer, self.schedule_attempt, self.settle = guards.offer, guards.schedule_attempt, guards.settle
        self.breaker_open, self.breaker_outcome = guards.breaker_open, guards.breaker_outcome
        effects = {**self.orchestrator.effects(), **self.streams.effects()}
        self.commits = commits = Commits(self, guards, effects)
        self.commit, self.emit, self.record_emitted = commits.commit, commits.emit, commits.record_emitted
        self.publish_outbox, self.trace_outcome = commits.publish_outbox, commits.trace_outcome
        self.verdict = commits.verdict
        self.attempts = attempts = Attempts(self, guards, self.orchestrator, self.streams, self._faults)
        self.attempt, self.run_attempt = attempts.attempt, attempts.run_attempt
        self.inject_fault = attempts.inject_fault
        self.routing = routing = Routing(self, self.consumers, self.schemas)
        self.publish, self.route = routing.publish, routing.route
        self.targets_of, self.deliver_direct = routing.targets_of, routing.deliver_direct
        self.intake = Intake(self, routing, guards, self.streams, guards.limited)
        self._tasks.update({"attempt": attempts.attempt, "complete": commits.complete, **dead.tasks(),
                            **self.orchestrator.tasks(), **self.resequencer.tasks()})
        self._tasks.update(self.schedules.tasks())

    # --- the interface a worker drives the runtime by ---------------------------------
    def register_task(self, kind: str, handler: Callable[[Any], None]) -> None:
        """Make *handler* run the scheduled tasks of *kind* (a worker's redrive and replay tasks)."""
        self._tasks[kind] = handler

    def wrap_tasks(self, wrap: Callable[[str, Callable[[Any], None]], Callable[[Any], None]]) -> None:
        """Run each task through ``wrap(kind, handler)`` from now on (an observer's spans): the
        tasks registered so far, and the first attempts an input makes at once."""
        self._tasks = {kind: wrap(kind, handler) for kind, handler in self._tasks.items()}
        self.attempt = self._tasks["attempt"]

    def steer(self, chooser) -> None:
        """Let *chooser* settle the points where a deployment could do otherwise than `run`
        (engine.runtime.choices): `meshctl explore` and `run --replay-choices`."""
        self.chooser = self.scheduler.chooser = self.attempts.chooser = chooser

    def dispatch(self, kind: str, payload: Any) -> None:
        """Run one task taken from the schedule (or a worker's queue): ``attempt``, ``complete``..."""
        self._tasks[kind](payload)

    # (settle, dead_letter, publish, redeliver: the pipeline's operations, set in _wire)

    def delivery_key(self, consumer_id: str, event: dict) -> str | None:
        """What deliveries of *event* to a consumer are keyed by, or None if nothing: the
        consumer's ``state:`` owner and key (the key its ordering key, if it is ordered: its
        resequencer and its state stay together), else the consumer and its ordering key. Two
        consumers sharing a state owner get the same key for the same state key. A worker
        deployment partitions deliveries by it."""
        consumer = self.by_id.get(consumer_id)
        if consumer is None:
            return None
        if consumer.kind == "wait":  # by its correlation value: where the runs waiting for it are listed
            return self.orchestrator.waits.delivery_key(consumer_id, event)
        ordering = getattr(consumer.element, "ordering", None)
        order = ordering_key(event, ordering) if ordering is not None else None
        owner = {"subscription": lambda e: f"service:{e.service}",
                 "orchestration": lambda e: f"orchestration:{e.name}"}.get(consumer.kind)
        keyed = self.state.of.get(owner(consumer.element)) if owner is not None else None
        if keyed is None:
            return None if order is None else f"{consumer_id}\x00{order}"
        if order is not None:
            return f"{keyed.owner}\x00{order}"
        try:
            key = str(keyed.key({"data": event.get("data"), "event": event, "vars": {}, "attempt": 1}))
        except Exception:  # a key that does not render: the attempt reports it, wherever it runs
            return None
        return f"{keyed.owner}\x00{key}"

    # --- input ------------------------------------------------------------------------
    @property
    def faults(self) -> dict[str, Fault]:
        """The injected faults by consumer id (a redrive may clear them)."""
        return self._faults

    @faults.setter
    def faults(self, value: dict[str, Fault]) -> None:
        self._faults = self.attempts.faults = value

    @property
    def fed(self) -> int:
        """Inputs consumed: the input position a checkpoint records."""
        return self.intake.fed

    @fed.setter
    def fed(self, value: int) -> None:
        self.intake.fed = value

    def start_clock(self, at: float | None) -> None:
        """A virtual clock that no input has started yet starts at *at* (None: the default start);
        the schedules' ticks run from there."""
        if not self.clock_started and isinstance(self.clock, VirtualClock):
            self.clock = self.scheduler.clock = VirtualClock(at if at is not None else DEFAULT_START)
            self.clock_started = True
            self.schedules.begin(self.clock.now())

    def feed(self, item: dict | BadInput) -> None:
        """One input: due work before its time runs first, then it is published at its time."""
        self.intake.feed(item)

    def run(self, items: Iterable[dict | BadInput]) -> dict:
        """Feed every input, run to quiescence, close open stream windows; return the summary."""
        feed = self.feed
        for item in items:
            feed(item)
        self.finish()
        return self.trace.summary()

    def finish(self) -> None:
        self.schedules.bound()  # no more input: ticks stop at `--until`, or now
        self.scheduler.run_until_idle()
        self.streams.flush()
        self.scheduler.run_until_idle()
        self.finished = True

    # --- checkpoints --------------------------------------------------------------------
    def snapshot(self) -> dict:
        """Everything in memory a restart needs, as JSON-like data (the store holds the rest)."""
        return {"version": 1, "clock": self.clock.now(), "clock_started": self.clock_started, "fed": self.fed,
                "finished": self.finished, "seed": self.seed, "scheduler": self.scheduler.snapshot(),
                "trace": self.trace.snapshot(), "breakers": self.guards.breakers,
                "streams": self.streams.snapshot(), "buckets": self.guards.buckets.state, "notes": self.notes,
                **({"watermarks": self.watermarks.snapshot()} if self.watermarks.enabled else {})}

    def restore(self, snap: dict) -> None:
        """Continue from a checkpoint taken by :meth:`snapshot` (on a runtime built for the same mesh)."""
        self.clock = VirtualClock(snap["clock"]) if isinstance(self.clock, VirtualClock) else self.clock
        self.scheduler.clock = self.clock
        self.clock_started = snap["clock_started"]
        self.fed, self.finished = snap["fed"], snap["finished"]
        self.scheduler.restore(snap["scheduler"])
        self.trace.restore(snap["trace"])
        self.guards.breakers = snap["breakers"]
        self.streams.restore(snap["streams"])
        self.guards.buckets.state = snap.get("buckets", {})
        self.notes = snap.get("notes", {})
        if self.watermarks.enabled:
            self.watermarks.restore(snap.get("watermarks"))

    def reset_breakers(self) -> None:
        """Close every circuit (an operator's redrive: circuits left open do not block it)."""
        self.guards.breakers = {}

    # --- dead-letter redrive and archive replay -----------------------------------------
    def replay(self, records: Iterable[DeadLetter], spacing: float = 0.0) -> dict:
        """Deliver dead-lettered events again (fresh attempts, dedup bypassed), one every
        *spacing* seconds if given; succeeded ones leave the queue."""
        replayed = self.dead_letters.replay(records, spacing)
        self.finish()
        return {"replayed": replayed, "still_dead": len(self.store.dead_letters())}

    def reinject(self, event: dict, to: str | None) -> None:
        """Publish a replayed copy of an archived event (to consumer *to* only, if given)."""
        self.dead_letters.reinject(event, to)

    def reinject_all(self, events: list[dict], to: str | None, spacing: float = 0.0) -> None:
        """Re-inject archived copies, one every *spacing* seconds of clock time if given."""
        self.dead_letters.reinject_all(events, to, spacing)

