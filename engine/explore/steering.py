"""The chooser of an explored (or replayed) run: it takes the given deviations where their
points come, `run`'s choice everywhere else, and records the points where it could have
chosen otherwise once every deviation has been taken (the places a search branches from).

Partial-order reduction: at a point where tasks are due together, only the tasks that touch
what the first one touches (the same consumer, keyed state or orchestration) are alternatives.
Two deliveries to consumers that share nothing give the same state in either order, so
running them the other way round is not tried; what they go on to cause meets again at later
points.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from ..runtime.choices import DUPLICATE, OK, Due, task_label
from .deviations import Deviation

Footprint = Callable[[str, Any], frozenset | None]  # (kind, payload) -> what a task touches; None: anything


@dataclass(frozen=True, slots=True)
class Point:
    """A choice point met after every deviation was taken: the deviations a search may add there."""

    kind: str
    at: str
    occurrence: int
    alternatives: tuple[str, ...]

    def deviations(self) -> list[Deviation]:
        return [Deviation(self.kind, self.at, choice, self.occurrence) for choice in self.alternatives]


class Steering:
    def __init__(self, deviations: Iterable[Deviation], footprint: Footprint,
                 on_point: Callable[[Point], None] | None = None,
                 on_taken: Callable[[Deviation, float | None], None] | None = None):
        self.pending = {d.key: d for d in deviations}
        self.total = len(self.pending)
        self.taken: list[Deviation] = []
        self.points: list[Point] = []
        self.footprint = footprint
        self.on_point, self.on_taken = on_point, on_taken
        self.met: Counter = Counter()

    @property
    def free(self) -> bool:
        """Every deviation has been taken: the rest of the run is `run`'s, and points are recorded."""
        return len(self.taken) == self.total

    def order(self, due: list[Due]) -> int:
        labels = [task_label(kind, payload) for _, _, kind, payload in due]
        first = labels[0]
        occurrence = self._meet("order", first)
        wanted = self._take(("order", first, occurrence), labels)
        if wanted is not None:
            return labels.index(wanted)
        if self.free:
            touched = self.footprint(due[0][2], due[0][3])
            alternatives = []
            for (_, _, kind, payload), label in zip(due[1:], labels[1:]):
                if label == first or label in alternatives:
                    continue  # a copy of the same task: the same state in either order
                other = self.footprint(kind, payload)
                if touched is None or other is None or touched & other:
                    alternatives.append(label)
            self._record(Point("order", first, occurrence, tuple(alternatives)))
        return 0

    def attempt(self, label: str, options: tuple[str, ...]) -> str:
        occurrence = self._meet("attempt", label)
        if occurrence > 1:  # a copy of a copy is not tried
            options = tuple(o for o in options if o != DUPLICATE)
        wanted = self._take(("attempt", label, occurrence), options)
        if wanted is not None:
            return wanted
        if self.free:
            self._record(Point("attempt", label, occurrence, options))
        return OK

    def late(self, label: str, most: int, when: float | None = None) -> int:
        """How many of the next inputs the input *label* arrives after (0: in its place); at most
        *most*. *when*: the input's own time (where the choice is recorded)."""
        options = tuple(str(n) for n in range(1, most + 1))
        wanted = self._take(("late", label, self._meet("late", label)), options, when)
        if wanted is not None:
            return int(wanted)
        if self.free:
            self._record(Point("late", label, 1, options))
        return 0

    # ----------------------------------------------------------------------------------
    def _meet(self, kind: str, label: str) -> int:
        self.met[(kind, label)] += 1
        return self.met[(kind, label)]

    def _take(self, key: tuple[str, str, int], possible, when: float | None = None) -> str | None:
        deviation = self.pending.get(key)
        if deviation is None or deviation.choice not in possible:
            return None
        del self.pending[key]
        self.taken.append(deviation)
        if self.on_taken is not None:
            self.on_taken(deviation, when)
        # the option itself, not the equal text read from a file: the runtime compares by identity
        return possible[possible.index(deviation.choice)]

    def _record(self, point: Point) -> None:
        if not point.alternatives:
            return
        self.points.append(point)
        if self.on_point is not None:
            self.on_point(point)
