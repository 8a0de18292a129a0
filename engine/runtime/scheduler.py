"""Timed work in clock order, kept as plain data so it can be checkpointed.

A task is ``(kind, payload)``: a name the runtime dispatches on and a JSON-like payload
(never a closure), so the whole schedule can be saved with a checkpoint and restored. The
heap is ordered by (due time, sequence number): equal times run in the order they were
scheduled, which keeps runs deterministic.
"""
from __future__ import annotations

import heapq
from typing import Any, Callable

from .clock import Clock

Task = tuple[str, Any]


class Scheduler:
    def __init__(self, clock: Clock, dispatch: Callable[[str, Any], None]):
        self.clock = clock
        self.dispatch = dispatch
        self._heap: list[tuple[float, int, str, Any]] = []
        self._seq = 0
        self.chooser = None  # asks which of the tasks due at one instant runs first (engine.runtime.choices)

    def at(self, when: float, kind: str, payload: Any) -> None:
        """Run task *kind* with *payload* at clock time *when* (at once if that is in the past)."""
        self._seq += 1
        heapq.heappush(self._heap, (max(when, self.clock.now()), self._seq, kind, payload))

    def idle_at(self, now: float) -> bool:
        """True if no task is due at or before *now*."""
        return not self._heap or self._heap[0][0] > now

    def pending(self) -> int:
        return len(self._heap)

    def run_next(self) -> bool:
        """Advance the clock to the next task and run it; False when nothing is left."""
        if not self._heap:
            return False
        when, _, kind, payload = self._pop()
        self.clock.advance_to(when)
        self.dispatch(kind, payload)
        return True

    def _pop(self) -> tuple[float, int, str, Any]:
        """The next task: the first due, or the one the chooser picks among those due with it."""
        heap = self._heap
        if self.chooser is None or len(heap) < 2:
            return heapq.heappop(heap)
        when = heap[0][0]
        due = sorted(task for task in heap if task[0] == when)
        if len(due) < 2:
            return heapq.heappop(heap)
        task = due[self.chooser.order(due)]
        heap.remove(task)
        heapq.heapify(heap)
        return task

    def run_until_idle(self, until: float | None = None) -> None:
        """Run tasks until none is left (or the next is due after *until*)."""
        if self.chooser is not None:
            while self._heap and (until is None or self._heap[0][0] <= until):
                self.run_next()
            return
        heap = self._heap
        while heap and (until is None or heap[0][0] <= until):  # run_next, inline: it runs once per delivery
            when, _, kind, payload = heapq.heappop(heap)
            self.clock.advance_to(when)
            self.dispatch(kind, payload)
            heap = self._heap  # (a task may restore the schedule)

    def snapshot(self) -> dict:
        return {"seq": self._seq, "tasks": [list(t) for t in sorted(self._heap)]}

    def restore(self, state: dict) -> None:
        self._seq = state["seq"]
        self._heap = [tuple(t) for t in state["tasks"]]
        heapq.heapify(self._heap)


class TrackedScheduler(Scheduler):
    """A schedule that keeps each task's bound in *pending* while it waits, and calls *after*
    once a task has run (partition watermarks, engine/runtime/watermarks.py)."""

    def __init__(self, clock: Clock, dispatch: Callable[[str, Any], None], pending,
                 bound: Callable[[str, Any], float], after: Callable[[], None]):
        super().__init__(clock, dispatch)
        self.tracked, self.bound, self.after = pending, bound, after

    def at(self, when: float, kind: str, payload: Any) -> None:
        super().at(when, kind, payload)
        self.tracked.add(self._seq, self.bound(kind, payload))

    def run_next(self) -> bool:
        if not self._heap:
            return False
        when, seq, kind, payload = self._pop()
        self.clock.advance_to(when)
        self.dispatch(kind, payload)
        self.tracked.discard(seq)
        self.after()
        return True

    def run_until_idle(self, until: float | None = None) -> None:
        while self._heap and (until is None or self._heap[0][0] <= until):
            self.run_next()

    def restore(self, state: dict) -> None:
        super().restore(state)
        for _, seq, kind, payload in self._heap:
            self.tracked.add(seq, self.bound(kind, payload))
