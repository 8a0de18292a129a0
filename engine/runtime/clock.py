"""Where "now" comes from. The runtime never reads the wall clock itself.

``VirtualClock`` (the default for ``run`` and ``test``) only moves when the scheduler moves
it, so a 30-minute backoff takes no time and runs are reproducible. ``SystemClock`` is the
real clock for long-running workers. Instants are float epoch seconds; their text form
(RFC 3339) is :mod:`engine.core.eventtime`'s.
"""
from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the epoch."""

    def advance_to(self, when: float) -> None:
        """Move to *when* (never backwards); a real clock sleeps until then."""


class VirtualClock:
    """Deterministic time that jumps straight to the next scheduled moment."""

    def __init__(self, start: float = 0.0):
        self._now = float(start)

    def now(self) -> float:
        return self._now

    def advance_to(self, when: float) -> None:
        if when > self._now:
            self._now = when

    def jump(self, seconds: float) -> None:
        self._now += seconds


class SystemClock:
    """The real clock: ``advance_to`` sleeps."""

    def now(self) -> float:
        return time.time()

    def advance_to(self, when: float) -> None:
        delay = when - time.time()
        if delay > 0:
            time.sleep(delay)
