"""Real-time limits on Python handlers, with no thread left behind.

A handler runs in the calling thread. On the main thread (where ``meshctl run``, ``meshctl
test`` and ``meshctl worker`` run handlers) a ``SIGALRM`` timer interrupts it when its time is
up: :class:`TimeLimitExceeded` is raised inside the handler, wherever it is (a ``time.sleep``,
a loop of Python code), and unwinds it. Signals reach only the main thread, so elsewhere the
handler runs to its end and is measured: one that took longer than its limit fails all the
same, it just could not be stopped sooner. Either way nothing keeps running after the call.

Code that checks no signals (a long call into a C extension) is interrupted only when it
returns to Python. A handler that catches the exception and carries on is failed when it
returns, by the same measure.

The timer is nested-safe: one already running when a limit starts (an outer limit, a test
runner's own alarm) has its handler and remaining time put back afterwards, and if it comes
due first, its handler is called then, as it would have been.

Limits are real time: the virtual clock of ``run`` and ``test`` does not move while a handler
runs, and a handler's own slowness is what a limit is for.
"""
from __future__ import annotations

import signal
import threading
import time
from typing import Any, Callable

_TICK = 1e-4  # the shortest timer armed: setitimer reads 0 as "disarm"


class TimeLimitExceeded(BaseException):
    """A handler ran past its limit. A BaseException, like KeyboardInterrupt, so that a
    handler's own ``except Exception`` does not swallow it.

    ``how`` it was found out: ``interrupted`` (stopped at the limit), ``caught`` (interrupted,
    it caught the exception and went on, and was failed when it returned), ``measured`` (not
    on the main thread, it ran to its end and was failed then)."""

    def __init__(self, limit: float, how: str):
        super().__init__(f"ran longer than {limit:g}s ({how})")
        self.limit = limit
        self.how = how


def can_interrupt() -> bool:
    """Whether a limit here interrupts a handler (rather than measuring it afterwards)."""
    return hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()


def run_within(call: Callable[[], Any], limit: float | None) -> Any:
    """``call()``, failed with :class:`TimeLimitExceeded` if it takes longer than *limit*
    seconds (None: no limit)."""
    if limit is None:
        return call()
    started, alarm = time.monotonic(), can_interrupt()
    result = _Alarm(limit).run(call) if alarm else call()
    if time.monotonic() - started > limit:
        raise TimeLimitExceeded(limit, "caught" if alarm else "measured")
    return result


class _Alarm:
    """One limit armed on ``ITIMER_REAL``, with whatever timer was running before put back."""

    def __init__(self, limit: float):
        self.limit = limit
        self.done = False  # the call has ended: a late ring changes nothing
        self.deadline = 0.0
        self.outer: float | None = None  # when the timer found running is due
        self.interval = 0.0  # and its period, if it repeats
        self.previous: Any = signal.SIG_DFL

    def run(self, call: Callable[[], Any]) -> Any:
        # disarm what runs before taking over its signal: in between, nothing can ring
        left, self.interval = signal.setitimer(signal.ITIMER_REAL, 0)
        now = time.monotonic()
        self.deadline = now + self.limit
        self.outer = now + left if left > 0 else None
        previous = signal.signal(signal.SIGALRM, self._ring)
        self.previous = signal.SIG_DFL if previous is None else previous  # None: set outside Python
        try:
            try:
                self._arm(now)
                return call()
            finally:
                self.done = True
                signal.setitimer(signal.ITIMER_REAL, 0)
        finally:
            signal.signal(signal.SIGALRM, self.previous)
            if self.outer is not None:
                signal.setitimer(signal.ITIMER_REAL, max(self.outer - time.monotonic(), _TICK), self.interval)

    def _arm(self, now: float) -> None:
        due = self.deadline if self.outer is None else min(self.deadline, self.outer)
        signal.setitimer(signal.ITIMER_REAL, max(due - now, _TICK))

    def _ring(self, signum: int, frame: Any) -> None:
        if self.done:
            return
        if self.outer is not None and self.outer <= self.deadline:
            self._outer_due(signum, frame)
            return
        self.done = True
        raise TimeLimitExceeded(self.limit, "interrupted")

    def _outer_due(self, signum: int, frame: Any) -> None:
        """The timer found running comes due first: do what it would have done, then go on."""
        self.outer = self.outer + self.interval if self.interval > 0 else None
        self._arm(time.monotonic())
        if callable(self.previous):
            self.previous(signum, frame)  # may raise: run() puts everything back on the way out
        elif self.previous == signal.SIG_DFL:  # SIGALRM's default action ends the process
            signal.signal(signal.SIGALRM, signal.SIG_DFL)
            signal.raise_signal(signal.SIGALRM)


__all__ = ["TimeLimitExceeded", "can_interrupt", "run_within"]
