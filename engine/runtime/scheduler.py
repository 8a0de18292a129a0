"""Timed work in clock order: input arrivals, delivery attempts, retries, timeouts.

A heap ordered by (due time, sequence number): equal times run in the order they were
scheduled, which keeps runs deterministic.
"""
from __future__ import annotations

import heapq
from typing import Callable

from .clock import Clock


class Scheduler:
    def __init__(self, clock: Clock):
        self.clock = clock
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = 0

    def at(self, when: float, task: Callable[[], None]) -> None:
        """Run *task* at clock time *when* (at once if that is in the past)."""
        self._seq += 1
        heapq.heappush(self._heap, (max(when, self.clock.now()), self._seq, task))

    def after(self, delay: float, task: Callable[[], None]) -> None:
        self.at(self.clock.now() + max(delay, 0.0), task)

    def pending(self) -> int:
        return len(self._heap)

    def next_due(self) -> float | None:
        return self._heap[0][0] if self._heap else None

    def run_next(self) -> bool:
        """Advance the clock to the next task and run it; False when nothing is left."""
        if not self._heap:
            return False
        when, _, task = heapq.heappop(self._heap)
        self.clock.advance_to(when)
        task()
        return True

    def run_until_idle(self, until: float | None = None) -> None:
        """Run tasks until none is left (or the next is due after *until*)."""
        while self._heap and (until is None or self._heap[0][0] <= until):
            self.run_next()
