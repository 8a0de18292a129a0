"""Schedules at run time: their ticks, the event each tick emits, and missed ticks.

A tick is an instant of a schedule's timetable (:class:`Timetable`). Its event is made from
the schedule and the tick alone (:func:`tick_event`): its id is ``<schedule>@<tick time>``
and its time the tick's, so wherever and however often a tick is fired it is one event, and
a consumer that took it once skips a copy (dedup by source and id).

In ``meshctl run`` (:class:`ScheduleTicks`) each schedule's next tick waits in the runtime's
schedule as a task, ``schedule-tick``, which emits the event and schedules the tick after it:
the virtual clock reaches every tick in turn, so none is ever missed. Ticks fire from the
clock's start (the first input's time, or ``run --from``) up to, excluding, a bound: ``run
--until``, or else the time of the last input. A worker deployment fires ticks on the real
clock (engine/cluster/schedules.py) and may find some late: :func:`firings` says which to
fire, by the schedule's ``grace`` and ``catch_up``.
"""
from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import Any, Callable

from ..core import eventtime
from ..language import cron
from ..language import model as m
from ..language.templates import RenderError, compile_string, compile_value
from .ports import Pipeline

TICK = "schedule-tick"  # the task kind of a schedule's next tick in `meshctl run`
MAX_MISSED = 1_000_000  # missed cron ticks counted one by one; past it the count stops there
SPECVERSION = "1.0"


class Timetable:
    """The instants a schedule fires at."""

    def __init__(self, schedule: m.Schedule):
        self.schedule = schedule
        self.period = schedule.every
        if schedule.cron is not None:
            self._cron, self._zone = cron.parse(schedule.cron), cron.zone(schedule.timezone)

    def after(self, t: float) -> float | None:
        """The first tick strictly after *t* (None: never)."""
        if self.period is not None:
            return (math.floor(t / self.period + 1e-9) + 1) * self.period
        return self._cron.next_after(t, self._zone)

    def at_or_after(self, t: float) -> float | None:
        if self.period is not None:
            return math.ceil(t / self.period - 1e-9) * self.period
        return self._cron.next_after(t - 0.001, self._zone)  # cron ticks are whole minutes

    @property
    def fingerprint(self) -> str:
        """What the ticks depend on: a stored position made under another timetable is not reused."""
        s = self.schedule
        return f"every {s.every:g}" if s.every is not None else f"cron {s.cron} {s.timezone}"


@dataclass(frozen=True, slots=True)
class Firing:
    """One event to fire: at tick ``tick``, standing for ``missed`` ticks from ``first`` (fire_once)."""

    tick: float
    missed: int = 1
    first: float | None = None


def firings(table: Timetable, position: float, now: float) -> tuple[list[Firing], float | None]:
    """What to fire at *now* of the ticks from *position* (the first not yet fired) on, and the
    position after them. A tick more than ``grace`` late is missed: ``skip`` drops it,
    ``fire_once`` fires one event for all the missed ticks, at the latest of them."""
    schedule = table.schedule
    cutoff = now - schedule.grace  # a tick before this is missed
    count, first, last, t = _missed(table, position, cutoff)
    out = []
    if count and schedule.catch_up == "fire_once":
        out.append(Firing(last, count, first))
    while t is not None and t <= now:
        out.append(Firing(t))
        t = table.after(t)
    return out, t


Missed = tuple[int, float | None, float | None, float | None]


def _missed(table: Timetable, t: float | None, cutoff: float) -> Missed:
    """(how many ticks from *t* are before *cutoff*, the first, the last, the tick after them)."""
    if t is None or t >= cutoff:
        return 0, None, None, t
    if table.period is not None:  # counted, not walked: a long outage of a short interval
        p = table.period
        start, end = round(t / p), math.ceil(cutoff / p - 1e-9)
        return end - start, t, (end - 1) * p, end * p
    count, first, last = 0, t, t
    while t is not None and t < cutoff and count < MAX_MISSED:
        count, last, t = count + 1, t, table.after(t)
    if t is not None and t < cutoff:
        t = table.at_or_after(cutoff)
    return count, first, last, t


class TickEvents:
    """The event of a tick of one schedule (its templates compiled once)."""

    def __init__(self, schedule: m.Schedule, fast: bool = True):
        emit = schedule.emit
        self.schedule = schedule
        self._zone = cron.zone(schedule.timezone)
        self.producer = f"schedule:{schedule.name}"
        self._data = compile_value(emit.data, fast) if emit.data is not None else (lambda ctx: None)
        self._subject = compile_string(emit.subject, fast) if emit.subject is not None else None
        self._source = compile_string(emit.source, fast) if emit.source is not None else None

    def context(self, firing: Firing) -> dict:
        first = firing.first if firing.first is not None else firing.tick
        local = dt.datetime.fromtimestamp(firing.tick, self._zone).isoformat()
        return {"tick": {"time": eventtime.format(firing.tick), "local": local, "epoch": firing.tick,
                         "schedule": self.schedule.name, "missed": firing.missed,
                         "first": eventtime.format(first)}}

    def event(self, firing: Firing) -> dict:
        """The tick's event; RenderError if a template fails."""
        ctx = self.context(firing)
        when = ctx["tick"]["time"]
        event = {
            "specversion": SPECVERSION,
            "id": f"{self.schedule.name}@{when}",
            "source": str(self._source(ctx)) if self._source else f"meshctl/schedule/{self.schedule.name}",
            "type": self.schedule.emit.type.name,
            "time": when,
            "datacontenttype": "application/json",
            "data": self._data(ctx),
        }
        if self._subject is not None:
            event["subject"] = str(self._subject(ctx))
        return event


def fire(rt: Pipeline, events: TickEvents, firing: Firing) -> None:
    """Emit the event of *firing* into the mesh (a failing template dead-letters the tick)."""
    now = rt.clock.now()
    try:
        event = events.event(firing)
    except RenderError as exc:
        tick = {"schedule": events.schedule.name, "tick": eventtime.format(firing.tick)}
        rt.dead_letter(events.producer, tick, "template-error", "RenderError", exc.detail, queue="dlq")
        return
    rt.trace.count("ticks")
    rt.trace.record(now, "tick", event=event["id"], type=event["type"], schedule=events.schedule.name,
                    missed=firing.missed)
    rt.emit(event, events.producer)


class ScheduleTicks:
    """The schedules of a ``meshctl run``: each one's next tick is a task of the run's schedule."""

    def __init__(self, rt: Any, fast: bool = True):
        self.rt = rt
        self.tables = {name: Timetable(s) for name, s in rt.mesh.schedules.items()}
        self.events = {name: TickEvents(s, fast) for name, s in rt.mesh.schedules.items()}

    def tasks(self) -> dict[str, Callable[[Any], None]]:
        return {TICK: self.tick}

    @property
    def until(self) -> float | None:
        """Ticks fire before this time (None: not bounded yet); kept in checkpoints."""
        return self.rt.notes.get("schedules_until")

    @until.setter
    def until(self, value: float | None) -> None:
        self.rt.notes["schedules_until"] = value

    def limit(self, until: float | None = None, span: float | None = None) -> None:
        """Ticks fire before *until*, or for *span* seconds from the clock's start."""
        if until is not None:
            self.until = until
        elif span is not None:
            self.rt.notes["schedules_span"] = span
            start = self.rt.notes.get("schedules_start")
            if start is not None:
                self.until = start + span

    def begin(self, start: float) -> None:
        """The clock started at *start*: each schedule's first tick at or after it is due."""
        self.rt.notes["schedules_start"] = start
        span = self.rt.notes.get("schedules_span")
        if span is not None and self.until is None:
            self.until = start + span
        for name, table in self.tables.items():
            self._next(name, table.at_or_after(start))

    def bound(self) -> None:
        """No more input: without a bound of their own, ticks stop at the clock's time."""
        if self.until is None:
            self.until = self.rt.clock.now()

    def tick(self, task: dict) -> None:
        name, at = task["schedule"], task["at"]
        if self.until is not None and at >= self.until:
            return
        fire(self.rt, self.events[name], Firing(at))
        self._next(name, self.tables[name].after(at))

    def _next(self, name: str, at: float | None) -> None:
        if at is not None and (self.until is None or at < self.until):
            self.rt.scheduler.at(at, TICK, {"schedule": name, "at": at})
