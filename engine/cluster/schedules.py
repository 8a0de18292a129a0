"""Schedules in a worker deployment: each tick fired once, whichever workers run or die.

A schedule belongs to one partition (that of the key ``schedule:<name>``), so only the worker
holding it fires its ticks. Its position, the first tick not yet fired, is the state
``schedule:<name>`` of that partition. A tick is fired by a unit of work of the partition:
it reads the position, emits the events of the ticks due (:func:`~engine.runtime.schedules.firings`)
and writes the next position, and all of it commits together with the deliveries the events
make, or not at all. The commit checks that the position read is still stored and the
partition still this worker's lease, so two workers (one presumed dead, one taking over)
cannot both fire a tick: the loser's unit is redone on the new position and fires nothing. A
worker killed before its commit leaves the position as it was: the next holder fires the tick,
late. The events' ids are made from the schedule and the tick, so even a copy would be one
event to every consumer.

The first worker of a deployment starts a schedule at its first tick from then on: ticks from
before the deployment are not missed ticks. A position stored for another timetable (the
mesh's `cron` or `every` changed) starts over the same way.
"""
from __future__ import annotations

from typing import Any, Callable

from ..runtime.schedules import TickEvents, Timetable, fire, firings
from ..storage.broker import APPLIED

_NEVER = float("inf")


class Ticker:
    """Fires the due ticks of the schedules in the partitions a worker holds.

    *unit* runs work as a unit of a partition and returns its outcome (the worker's ``_unit``).
    """

    def __init__(self, rt: Any, store: Any, partition_for: Callable[[str], int],
                 unit: Callable[[int, list, Callable[[], None]], int]):
        self.rt, self.store, self.unit = rt, store, unit
        schedules = rt.mesh.schedules
        self.tables = {name: Timetable(s) for name, s in schedules.items()}
        self.events = {name: TickEvents(s) for name, s in schedules.items()}
        self.partition = {name: partition_for(state_key(name)) for name in schedules}
        self._next: dict[str, float] = {}  # the position last committed: no unit before it is due

    def turn(self, partitions: set[int] | list[int], now: float) -> int:
        """Fire what is due in *partitions*; how many units committed."""
        done = 0
        for name, partition in self.partition.items():
            if partition not in partitions or self._next.get(name, 0.0) > now:
                continue
            position: list[float | None] = []
            if self.unit(partition, [], lambda n=name, out=position: self._fire(n, out)) == APPLIED:
                self._next[name] = position[-1] if position[-1] is not None else _NEVER
                done += 1
            else:  # fenced, failed or conflicting: read the position again next turn
                self._next.pop(name, None)
        return done

    def _fire(self, name: str, out: list) -> None:
        """The unit's work: fire the ticks due from the stored position, store the next one."""
        key, table = state_key(name), self.tables[name]
        stored = self.store.get_state(key)
        now = self.rt.clock.now()
        if stored is None or stored.get("timetable") != table.fingerprint:
            position = table.at_or_after(now)
        else:
            due, position = firings(table, stored["next"], now)
            for firing in due:
                fire(self.rt, self.events[name], firing)
            if stored["next"] is not None and position == stored["next"]:
                out.append(position)  # nothing due: nothing to write
                return
        self.store.put_state(key, {"next": position, "timetable": table.fingerprint})
        out.append(position)


def state_key(name: str) -> str:
    """The state (and partition key) of a schedule's position in a deployment."""
    return f"schedule:{name}"
