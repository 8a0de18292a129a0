"""The runtime's pipeline, and what each of its parts may see of the others.

An input goes through six stages, each in a module of its own::

    admit (intake) -> route (routing) -> guard (guards) -> attempt (attempts)
        -> commit (commits) -> dead-letter (deadletters)

* **admit** (:mod:`.intake`): an input record enters at its time; a refused one is dead-lettered.
* **route** (:mod:`.routing`): its type's consumers whose pattern matches are offered it.
* **guard** (:mod:`.guards`): loop guards, the hop limit, ordering, rate limits and circuit
  breakers may hold, delay or dead-letter an offer before its attempt.
* **attempt** (:mod:`.attempts`): the consumer's handler runs (`when`, injected faults).
* **commit** (:mod:`.commits`): the outcome takes effect once: dedup record, emitted events,
  direct deliveries, effects; or a retry is scheduled.
* **dead-letter** (:mod:`.deadletters`): what cannot be delivered is kept with its reason, and
  can be delivered again (redrive, replay).

Each stage is an object holding the state it owns. They call one another through a
:class:`Pipeline`: the :class:`~engine.runtime.interpreter.Runtime` facade builds the stages and
sets each operation of the pipeline to the bound method of the stage that does it, so a call
from one stage to the next is one plain call. Orchestrations, streams and the resequencer see
the narrower :class:`Host`. This module imports no part of the runtime that uses it, so no
import goes back up.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Protocol

from ..core.deadletter import DeadLetter
from ..language import model as m
from ..storage import Store
from .actions import Attempt, Toolbox
from .clock import Clock
from .consumers import Consumer
from .keyedstate import KeyedStates
from .router import Targets
from .trace import Trace
from .watermarks import Watermarks

DEFAULT_MAX_HOPS = 16
MESH = "mesh"  # the consumer named in dead letters of events no consumer could take
DEFAULT_START = 1_767_225_600.0  # 2026-01-01T00:00:00Z: the virtual clock's start when input has no time

Handler = Callable[[Attempt], None]


@dataclass
class Fault:
    """A fault injected from outside the mesh (`run --fault`, test files): fail a consumer's attempts."""

    consumer: str
    times: int | None = None  # None: always
    error: str = "InjectedFault"


class Schedule(Protocol):
    """Where timed work waits: the in-memory :class:`~engine.runtime.scheduler.Scheduler`, or a
    worker's outbox whose tasks go to the Redis queues."""

    clock: Clock

    def at(self, when: float, kind: str, payload: Any) -> None: ...

    def pending(self) -> int: ...


class Host(Protocol):
    """What orchestrations, streams and the resequencer use of the runtime.

    A delivery ``d`` is a dict (it waits in the checkpointed schedule as data): ``event``,
    ``consumer`` (its id), ``number`` (the attempt, from 1), ``first`` (clock time of the
    first attempt), ``producer`` ("ingress" or the emitting consumer), ``replay`` (a redrive:
    dedup does not apply), ``after`` (from the second attempt on: the seconds of retry backoff
    and ``sleep`` declared since the event's time, see :func:`~engine.runtime.events.derived_time`)
    and, for an ordered consumer, ``order_key``.
    """

    mesh: m.Mesh
    store: Store
    clock: Clock
    scheduler: Schedule
    trace: Trace
    tools: Toolbox
    seed: int
    by_id: dict[str, Consumer]
    fast_paths: bool  # False: every shortcut off, the general path runs
    state: KeyedStates  # the keyed state of services and orchestrations
    watermarks: Watermarks  # partition watermarks: inputs stamped, work held outside the schedule
    max_hops: int  # how far from its input an event (or a child run) may be
    chooser: Any  # a Chooser (engine.runtime.choices) or None: what `explore` lets differ

    def dead_letter(self, consumer: str, event: Any, reason: str, error_type: str | None, detail: str, *,
                    attempts: int = 0, first: float | None = None, queue: str) -> None:
        """Put *event* in dead-letter *queue* with *reason* (counted and recorded once)."""

    def emit(self, event: dict, producer: str) -> None:
        """Publish an event emitted inside the mesh (recorded, counted, then routed)."""

    def publish_outbox(self, parent: dict, producer: str, outbox: list, when: float,
                       element: str | None = None) -> None:
        """Emit what a committed attempt put in its outbox, at event time *when*; ids are stable
        across retries."""

    def trace_outcome(self, event_id: str, consumer: str, outcome: dict, now: float) -> None:
        """Record the logs and calls of an attempt's outcome (kept as data)."""

    def verdict(self, spec: m.RetrySpec, error: dict, number: int, event: dict, age: float, now: float,
                consumer: str) -> str | None:
        """None to retry the failed attempt *number*; else the reason to dead-letter it. *age*: the
        event time declared since the event's own, up to the end of the attempt."""

    def inject_fault(self, consumer_id: str, attempt: Attempt) -> None:
        """Raise the fault injected into *consumer_id*, if it applies to this attempt."""

    def schedule_attempt(self, event: dict, consumer: Consumer, producer: str, replay: bool = False,
                         order_key: Any = None) -> None:
        """Schedule the first attempt of a delivery now (``order_key``: it holds its key's line)."""

    def breaker_open(self, key: str, breaker: m.CircuitBreaker | None, now: float) -> bool:
        """Whether the circuit kept under *key* keeps an attempt from running now."""

    def breaker_outcome(self, key: str, breaker: m.CircuitBreaker | None, ok: bool, now: float) -> None:
        """Tell the circuit kept under *key* how an attempt ended."""


class Pipeline(Host, Protocol):
    """The operations the stages call of one another, each done by the stage named."""

    clock_started: bool
    max_hops: int
    faults: dict[str, Fault]
    on_emit: Callable[[dict], None] | None
    on_refused: Callable[[Any], None] | None
    on_input: Callable[[dict], None] | None

    def start_clock(self, at: float | None) -> None:
        """(facade) A virtual clock not started yet starts at *at* (None: the default start)."""

    def publish(self, event: dict, producer: str) -> None:
        """(routing) Send an event to every consumer of its type that takes it."""

    def route(self, event: dict, producer: str, targets: Targets) -> None:
        """(routing) Offer an event to those of *targets* that take it."""

    def targets_of(self, consumer_id: str) -> Targets:
        """(routing) The one consumer *consumer_id*, for deliveries meant for it alone."""

    def deliver_direct(self, event: dict, producer: str, service: str) -> None:
        """(routing) A route's event for *service* alone: to its subscriptions on the event's type."""

    def offer(self, event: dict, consumer: Consumer, producer: str, replay: bool = False) -> None:
        """(guards) Apply the guards, then schedule (or run) the first attempt."""

    def settle(self, d: dict) -> None:
        """(guards) A delivery is over: an ordered key may release its next event."""

    def attempt(self, d: dict) -> None:
        """(attempts) Run one attempt of delivery *d* now."""

    def run_attempt(self, d: dict, consumer: Consumer, now: float, handler: Handler) -> None:
        """(attempts) Run an attempt that was not skipped, and commit what it produced."""

    def commit(self, d: dict, outcome: Any, error: dict | None) -> None:
        """(commits) Commit an attempt's outcome (the attributes of an Attempt)."""

    def record_emitted(self, event: dict, producer: str) -> None:
        """(commits) Count, record and journal an event emitted inside the mesh."""

    def redeliver(self, record: DeadLetter) -> bool:
        """(deadletters) Take a dead letter out of its queue and deliver its event again."""
