"""One run of a mesh on one input, steered through given deviations.

The runtime runs without its shortcuts (``fast_paths=False``): every delivery goes through the
schedule, where the steering can order it. Inputs arrive in file order, except those a ``late``
deviation holds back. The run keeps its history (each input as it entered and each event as it
was emitted, with the clock time) for the invariants, and may be cut short by ``on_point``
(a state already explored).

A state's fingerprint is a hash of everything that decides what happens next: the runtime's
checkpoint (its schedule without sequence numbers), the store's contents, the history so far,
the inputs still to come and held back, and the point itself.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from ..core.eventtime import parse_or_none as parse_time
from ..language import model as m
from ..runtime.events import BadInput
from ..runtime.interpreter import DEFAULT_MAX_HOPS, Runtime
from ..runtime.trace import Trace
from ..storage import MemoryStore
from .deviations import MAX_LATE, Deviation
from .steering import Point, Steering

History = list[tuple[float, str, dict]]  # (clock time, "input" | "emitted", event)
Judge = Callable[[History, float, Any], list]  # (history, end, store) -> the violations


class Cut(Exception):
    """The run reached a state already explored with as many deviations left: it stops here."""


@dataclass
class Outcome:
    asked: tuple[Deviation, ...]
    taken: tuple[Deviation, ...] = ()
    points: list[Point] = field(default_factory=list)
    violations: list = field(default_factory=list)
    cut: bool = False
    summary: dict = field(default_factory=dict)
    records: list[dict] | None = None
    history: History = field(default_factory=list)
    end: float = 0.0
    dead: list = field(default_factory=list)  # the dead letters the run left

    @property
    def complete(self) -> bool:
        """Every deviation asked for took effect."""
        return len(self.taken) == len(self.asked)


class Session:
    """Runs one mesh on one input as often as asked; each run is independent (a fresh store)."""

    def __init__(self, mesh: m.Mesh, inputs: Sequence[dict | BadInput], judge: Judge, *, seed: int = 0,
                 max_hops: int = DEFAULT_MAX_HOPS, clock: dict | None = None):
        self.mesh, self.inputs, self.judge = mesh, list(inputs), judge
        self.seed, self.max_hops = seed, max_hops
        self.clock = clock or {}  # `--from` and `--until` of a mesh's schedules: start, until, span

    def run(self, deviations: Sequence[Deviation] = (), *,
            on_point: Callable[[str, Point], None] | None = None, records: bool = False,
            inputs: Sequence[dict | BadInput] | None = None) -> Outcome:
        """Run once. *on_point* gets each recorded point with the state's fingerprint (it raises
        Cut to stop the run); *records* keeps the trace; *inputs* replaces the session's input."""
        outcome = Outcome(tuple(deviations), records=[] if records else None)
        trace = Trace(outcome.records)
        runtime = Runtime(self.mesh, store=MemoryStore.for_mesh(self.mesh.retention), seed=self.seed,
                          max_hops=self.max_hops, trace=trace, fast_paths=False)
        history = outcome.history
        runtime.on_emit = lambda event: history.append((runtime.clock.now(), "emitted", event))
        runtime.on_input = lambda event: history.append((runtime.clock.now(), "input", event))
        feeder = _Feeder(runtime, list(self.inputs if inputs is None else inputs))
        start_clock(runtime, self.clock, bool(feeder.inputs))
        hook = None
        if on_point is not None:
            def hook(point: Point) -> None:
                on_point(fingerprint(runtime, history, feeder, point), point)

        steering = steer(runtime, deviations, hook)
        feeder.steering = steering
        try:
            feeder.run()
        except Cut:
            outcome.cut = True
        outcome.taken, outcome.points = tuple(steering.taken), steering.points
        outcome.summary, outcome.end = trace.summary(), runtime.clock.now()
        outcome.dead = runtime.store.dead_letters()
        if not outcome.cut:
            outcome.violations = self.judge(history, outcome.end, runtime.store)
        return outcome


def steer(runtime: Runtime, deviations: Sequence[Deviation],
          on_point: Callable[[Point], None] | None = None) -> Steering:
    """Make *runtime* take *deviations* (a ``choice`` record in its trace where each is taken)."""
    def taken(deviation: Deviation, when: float | None) -> None:
        now = runtime.clock.now()  # a late input's choice: when the input would have come
        at = now if when is None else max(now, when) if runtime.clock_started else when
        runtime.trace.record(at, "choice", choice_kind=deviation.kind, at=deviation.at,
                             choice=deviation.choice, occurrence=deviation.occurrence,
                             why=deviation.describe())

    steering = Steering(deviations, footprint_of(runtime), on_point, taken)
    runtime.steer(steering)
    return steering


def start_clock(runtime: Runtime, clock: dict, has_input: bool) -> None:
    """Bound the schedules' ticks, and start the clock where ``--from`` says (or now, without
    input), as `meshctl run` does."""
    runtime.schedules.limit(clock.get("until"), clock.get("span"))
    if clock.get("start") is not None or not has_input:
        runtime.start_clock(clock.get("start"))


def feed(runtime: Runtime, steering: Steering, inputs: Sequence) -> None:
    """Feed *inputs* in order, except those a ``late`` deviation holds back, and finish the run."""
    feeder = _Feeder(runtime, list(inputs))
    feeder.steering = steering
    feeder.run()


class _Feeder:
    """Feeds the inputs in file order, holding back those a ``late`` deviation delays."""

    def __init__(self, runtime: Runtime, inputs: list):
        self.runtime, self.inputs = runtime, inputs
        self.position = 0
        self.held: list[list] = []  # [input, inputs still to arrive before it]
        self.steering: Steering | None = None

    def run(self) -> None:
        rt, inputs = self.runtime, self.inputs
        while self.position < len(inputs):
            item = inputs[self.position]
            self.position += 1
            following = len(inputs) - self.position
            if item.__class__ is dict and following and "id" in item:
                delay = self.steering.late(f"input {item['id']}", min(MAX_LATE, following),
                                           parse_time(item.get("time")))
                if delay:
                    self.held.append([item, delay])
                    continue
            rt.feed(item)
            self._release()
        for item, _ in self.held:
            rt.feed(item)
        rt.finish()

    def _release(self) -> None:
        due = []
        for entry in self.held:
            entry[1] -= 1
            if entry[1] == 0:
                due.append(entry)
        for entry in due:
            self.held.remove(entry)
            self.runtime.feed(entry[0])

    def state(self) -> list:
        return [self.position, [(item.get("id"), n) for item, n in self.held]]


def footprint_of(runtime: Runtime) -> Callable[[str, Any], frozenset | None]:
    """What a task touches: a delivery its consumer (its keyed state's owner if it keeps state,
    its orchestration for a trigger or a wait), a step its orchestration; any other task
    (timers, ticks, resequencing) may touch anything."""
    by_id, keyed = runtime.by_id, runtime.state.of

    def footprint(kind: str, payload: Any) -> frozenset | None:
        if kind in ("attempt", "complete"):
            consumer_id = (payload if kind == "attempt" else payload["delivery"])["consumer"]
            consumer = by_id.get(consumer_id)
            if consumer is None:
                return None
            if consumer.kind == "subscription" and f"service:{consumer.element.service}" in keyed:
                return frozenset({f"service:{consumer.element.service}"})
            if consumer.kind == "orchestration":
                return frozenset({f"orchestration:{consumer.element.name}"})
            if consumer.kind == "wait":
                return frozenset({"orchestration:" + consumer_id[len("wait:"):].split("/", 1)[0]})
            return frozenset({consumer_id})
        if isinstance(payload, dict) and isinstance(payload.get("run"), str):
            return frozenset({"orchestration:" + payload["run"].split(":", 1)[0]})
        return None
    return footprint


def fingerprint(runtime: Runtime, history: History, feeder: _Feeder, point: Point) -> str:
    snap = runtime.snapshot()
    snap.pop("trace", None)
    schedule = snap.pop("scheduler")
    tasks = sorted(json.dumps([when, kind, payload], sort_keys=True, default=str)
                   for when, _, kind, payload in schedule["tasks"])
    happened = [(when, kind, event.get("id"), event.get("source")) for when, kind, event in history]
    state = [point.kind, point.at, snap, tasks, runtime.store.contents(), happened, feeder.state()]
    return hashlib.sha1(json.dumps(state, sort_keys=True, default=str).encode()).hexdigest()
