"""Where "now" comes from. The runtime never reads the wall clock itself.

``VirtualClock`` (the default for ``run`` and ``test``) only moves when the scheduler moves
it, so a 30-minute backoff takes no time and runs are reproducible. ``SystemClock`` is the
real clock for long-running workers.
"""
from __future__ import annotations

import time
from datetime import datetime, timezone
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


_ISO_TEXTS: dict[float, str] = {}  # iso() of recent times: a run formats the same few instants over and over
_ISO_KEEP = 4096


def iso(ts: float) -> str:
    """RFC 3339 in UTC with a ``Z``, milliseconds only when needed.

    >>> iso(0), iso(1.5)
    ('1970-01-01T00:00:00Z', '1970-01-01T00:00:01.500Z')
    """
    text = _ISO_TEXTS.get(ts)
    if text is None:
        if len(_ISO_TEXTS) >= _ISO_KEEP:
            _ISO_TEXTS.clear()
        text = _ISO_TEXTS[ts] = _format(ts)
    return text


def _format(ts: float) -> str:
    cls = ts.__class__
    if cls is int or (cls is float and ts.is_integer()):  # whole seconds: the day's date, then arithmetic
        day, second = divmod(int(ts), 86400)
        date = _DATES.get(day) or _date(day)
        hour, second = divmod(second, 3600)
        minute, second = divmod(second, 60)
        return f"{date}T{hour:02d}:{minute:02d}:{second:02d}Z"
    moment = datetime.fromtimestamp(ts, tz=timezone.utc)
    if moment.microsecond:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


_DATES: dict[int, str] = {}  # days since the epoch -> "YYYY-MM-DD" (a run spans few days)


def _date(day: int) -> str:
    """The date of a day since the epoch, as datetime formats it (and refuses it out of range)."""
    if len(_DATES) >= _ISO_KEEP:
        _DATES.clear()
    text = _DATES[day] = datetime.fromtimestamp(day * 86400, tz=timezone.utc).strftime("%Y-%m-%d")
    return text


_PARSED: dict[str, float | None] = {}  # parse_time() of recent texts: inputs repeat their timestamps


def parse_time(value) -> float | None:
    """Epoch seconds from an RFC 3339 string or a number; None if it is neither."""
    if value.__class__ is str:
        when = _PARSED.get(value, _UNSEEN)
        if when is _UNSEEN:
            if len(_PARSED) >= _ISO_KEEP:
                _PARSED.clear()
            when = _PARSED[value] = _parse_text(value)
        return when
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return _parse_text(value) if isinstance(value, str) else None


_UNSEEN = object()


def _parse_text(value: str) -> float | None:
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()
