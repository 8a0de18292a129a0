"""Event time: the one RFC 3339 parser and the one formatter of meshctl.

Every entry point reads an event's ``time`` with :func:`parse` (the edge check of ``publish``
and ``serve``, the input files of ``run`` and ``test``, the runtime, streams, ``replay``
options, ``render --trace``), and every time meshctl writes (emitted events, trace ``t``,
window bounds, dead letters) comes from :func:`format`. So what one of them accepts, all
accept, and a time written by meshctl reads back as the same instant.

The rule (docs/run.md, "Event time"):

* **Accepted**: an RFC 3339 ``date-time``: ``YYYY-MM-DD``, ``T``, ``HH:MM:SS``, an optional
  fraction of a second of any length, and a required offset: ``Z`` or ``+HH:MM``/``-HH:MM``
  (``-00:00`` means UTC). ``t`` and ``z`` may be lowercase. The fraction is kept to the
  microsecond; further digits are dropped (never rounded up into the next second).
* **Leap second**: second ``60`` is accepted where one can happen: at ``23:59:60`` UTC (once
  the offset is applied) on the last day of a month. Epoch time has no leap seconds, so it
  counts as ``23:59:59.999999`` of that day: it keeps its day, minute and window, is never
  earlier than another instant of that minute, and its own fraction is dropped.
* **Range**: years 0001 to 9999 in UTC, after the offset is applied.
* **Refused**, with a message saying what is expected: no offset, a date alone, a space
  instead of ``T``, week and ordinal dates, other ISO 8601 forms, dates that do not exist,
  anything out of range, and anything that is not a string.

Instants are float epoch seconds (what the clock gives). :func:`format` writes UTC with
``Z`` and fractional digits only when needed (``.5``, not ``.500``), exact to the
microsecond: ``parse(format(t)) == t`` for every instant *t* read by :func:`parse`. An
instant beyond the range (a window that would end after 9999, a timer set past it) is
written as the first or last representable instant instead: :func:`format` never fails on a
number. A float holds every microsecond from 1698 to 2242 (2**33 seconds around 1970);
further out, times keep what a float can hold (about 30 µs in 9999).

This module imports nothing from the rest of the engine: every layer may use it.
"""
from __future__ import annotations

import math
import re
from typing import Any

from .eventjson import json_type

__all__ = [
    "EXAMPLE",
    "FIRST",
    "LAST",
    "EventTimeError",
    "format",
    "from_epoch",
    "parse",
    "parse_or_none",
    "writable",
]

EXAMPLE = "2026-01-01T12:00:00Z"
FIRST = -62135596800.0  # 0001-01-01T00:00:00Z, the first instant that can be written
LAST = 253402300800.0  # 9999-12-31T23:59:59.999999Z, the last: a float there cannot tell it from 10000-01-01
_MICRO = 1_000_000
_FIRST_US = -62135596800 * _MICRO
_LAST_US = 253402300800 * _MICRO - 1  # 9999-12-31T23:59:59.999999Z
_KEEP = 4096  # entries of each cache: a run reads and writes the same few instants over and over

# date, time of day, the first six digits of a fraction, the offset's sign and its HH:MM
_DATE_TIME = re.compile(
    r"(\d{4}-\d\d-\d\d)[Tt]((?:[01]\d|2[0-3]):[0-5]\d:(?:[0-5]\d|60))(?:\.(\d{1,6})\d*)?"
    r"(?:[Zz]|([+-])((?:[01]\d|2[0-3]):[0-5]\d))",
    re.ASCII,
)
_SHAPE = re.compile(r"\d{4}-\d\d-\d\d[Tt](\d\d):(\d\d):(\d\d)(?:\.\d+)?(?:[Zz]|[+-](\d\d):(\d\d))", re.ASCII)
_SCALE = (0, 100_000, 10_000, 1_000, 100, 10, 1)  # microseconds per unit of a fraction of n digits
_NO_OFFSET = re.compile(r"\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d(?::\d\d(?:\.\d+)?)?", re.ASCII)
_LONG_YEAR = re.compile(r"[+-]?\d{5,}-", re.ASCII)
_DATE_ONLY = re.compile(r"\d{4}-\d\d-\d\d", re.ASCII)
_SPACED = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?(?:[Zz]|[+-]\d\d:\d\d)", re.ASCII)
_MONTH_DAYS = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)


class EventTimeError(ValueError):
    """A value that is not an event time meshctl accepts; the message says what is expected."""


# --- parsing ---------------------------------------------------------------------------------

_PARSED: dict[str, float | None] = {}  # text -> instant (None: refused); inputs repeat their times
_UNSEEN = object()


def parse(value: Any) -> float:
    """Epoch seconds of an RFC 3339 date-time; :class:`EventTimeError` says why not.

    >>> parse("2026-01-01T01:00:05.25+01:00"), parse("2016-12-31t23:59:60z")
    (1767225605.25, 1483228799.999999)
    """
    if value.__class__ is str:
        when = _PARSED.get(value)
        if when is None:
            when = _remember(value)
            if when is None:
                _micros(value)  # raises, saying what is wrong
        return when
    if isinstance(value, str):  # a subclass of str: as its plain text
        return parse(str(value))
    raise EventTimeError(
        f"an event time must be an RFC 3339 string such as {EXAMPLE}, not {json_type(value)}"
    )


def parse_or_none(value: Any) -> float | None:
    """Like :func:`parse`, with ``None`` for anything refused: for a time checked already, or that may be
    absent."""
    if value.__class__ is str:
        when = _PARSED.get(value, _UNSEEN)
        return _remember(value) if when is _UNSEEN else when
    return parse_or_none(str(value)) if isinstance(value, str) else None


def from_epoch(value: Any) -> float:
    """A number of epoch seconds as an instant (a stream's time field may hold one), range-checked.

    >>> from_epoch(12)
    12.0
    """
    if value.__class__ in (int, float) and FIRST <= value <= LAST:
        return float(value)
    if value.__class__ in (int, float):
        return _refuse(f"{value!r} epoch seconds is not a finite time in years 0001-9999")
    return _refuse(f"epoch seconds must be a number, not {json_type(value)}")


def _remember(text: str) -> float | None:
    if len(_PARSED) >= _KEEP:
        _PARSED.clear()
    try:
        when = _micros(text) / _MICRO  # int / int: the float nearest the exact instant
    except EventTimeError:
        when = None
    _PARSED[text] = when
    return when


def _micros(text: str) -> int:
    """Microseconds since the epoch of an RFC 3339 date-time; EventTimeError says what is wrong."""
    match = _DATE_TIME.fullmatch(text)
    if match is None:
        return _refuse(_unreadable(text))
    date, clock, fraction, sign, offset = match.groups()
    days = _DAYS.get(date)
    if days is None:
        days = _day_number(text, date)
    second = clock[6:]
    utc = days * 86400 + _MINUTES[clock[:5]] + int(second)
    if sign is not None:
        utc = utc - _MINUTES[offset] if sign == "+" else utc + _MINUTES[offset]
    if second == "60":  # utc is now the midnight after the leap second, if it is one
        if utc % 86400 or _civil(utc // 86400)[2] != 1:
            return _refuse(
                f"{_shown(text)} is not a leap second: second 60 exists only at 23:59:60 UTC "
                "on the last day of a month"
            )
        micros = utc * _MICRO - 1  # the last microsecond of that day: see the module docstring
    else:
        micros = utc * _MICRO + int(fraction) * _SCALE[len(fraction)] if fraction else utc * _MICRO
    if micros < _FIRST_US:
        return _refuse(
            f"{_shown(text)} is before 0001-01-01T00:00:00Z in UTC: event times must lie in years 0001-9999"
        )
    if micros > _LAST_US:
        return _refuse(
            f"{_shown(text)} is after 9999-12-31T23:59:59.999999Z in UTC: "
            "event times must lie in years 0001-9999"
        )
    return micros


_DAYS: dict[str, int] = {}  # "YYYY-MM-DD" -> days since the epoch, for dates that exist
_MINUTES = {f"{h:02d}:{m:02d}": h * 3600 + m * 60 for h in range(24) for m in range(60)}  # "HH:MM" -> seconds


def _day_number(text: str, date: str) -> int:
    """Days since 1970-01-01 of the *date* of *text*, which must exist (proleptic Gregorian, year 0
    included)."""
    year, month, day = int(date[:4]), int(date[5:7]), int(date[8:])
    if not 1 <= month <= 12:
        return _refuse(f"{_shown(text)} has no month {month:02d}: months are 01-12")
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    last = 29 if month == 2 and leap else _MONTH_DAYS[month - 1]
    if not 1 <= day <= last:
        return _refuse(
            f"{_shown(text)} has no day {day:02d}: {_MONTHS[month - 1]} {year:04d} has {last} days"
        )
    y = year - (month <= 2)  # a year that starts in March: the leap day comes last
    era, of_era = divmod(y, 400)
    of_year = (153 * (month - 3 if month > 2 else month + 9) + 2) // 5 + day - 1
    if len(_DAYS) >= _KEEP:
        _DAYS.clear()
    days = _DAYS[date] = era * 146097 + of_era * 365 + of_era // 4 - of_era // 100 + of_year - 719468
    return days


def _civil(days: int) -> tuple[int, int, int]:
    """(year, month, day) of a day since 1970-01-01: the inverse of :func:`_day_number`."""
    era, of_era = divmod(days + 719468, 146097)
    year_of_era = (of_era - of_era // 1460 + of_era // 36524 - of_era // 146096) // 365
    of_year = of_era - (365 * year_of_era + year_of_era // 4 - year_of_era // 100)
    shifted = (5 * of_year + 2) // 153
    day = of_year - (153 * shifted + 2) // 5 + 1
    month = shifted + 3 if shifted < 10 else shifted - 9
    return era * 400 + year_of_era + (month <= 2), month, day


def _unreadable(text: str) -> str:
    """The message for a text that is not shaped like an RFC 3339 date-time: the likely mistake first."""
    shown = _shown(text)
    if text != text.strip() and _DATE_TIME.fullmatch(text.strip()):
        return f"{shown} has white space around it: an RFC 3339 time is exactly {text.strip()!r}"
    shape = _SHAPE.fullmatch(text)
    if shape is not None:  # a field out of its range
        hour, minute, second, off_hour, off_minute = (int(n or 0) for n in shape.groups())
        if off_hour > 23 or off_minute > 59:
            return f"{shown} has an offset beyond ±23:59"
        name, number = (
            ("hour", hour) if hour > 23 else ("minute", minute) if minute > 59 else ("second", second)
        )
        return (
            f"{shown} has no {name} {number:02d}: hours are 00-23, minutes 00-59, "
            "seconds 00-59 (60 for a leap second)"
        )
    if _LONG_YEAR.match(text):
        return f"{shown} has a year of more than four digits: event times must lie in years 0001-9999"
    if _NO_OFFSET.fullmatch(text):
        example = f"{text[:10]}T{text[11:]}" + ("Z" if len(text) >= 19 else ":00Z")
        return f"{shown} has no UTC offset: an RFC 3339 time ends with Z (UTC) or ±HH:MM, as in {example}"
    if _DATE_ONLY.fullmatch(text):
        return (f"{shown} is a date without a time of day: expected an RFC 3339 date-time "
                f"such as {text}T00:00:00Z")
    if _SPACED.fullmatch(text):
        return f"{shown} separates date and time with a space: RFC 3339 uses T, as in {text[:10]}T{text[11:]}"
    return (
        f"{shown} is not an RFC 3339 date-time: expected YYYY-MM-DDTHH:MM:SS[.fraction] "
        f"then Z or ±HH:MM, such as {EXAMPLE}"
    )


def _refuse(message: str) -> Any:
    raise EventTimeError(message)


def _shown(text: str) -> str:
    return repr(text) if len(text) <= 64 else repr(text[:60]) + "…"



# --- formatting ------------------------------------------------------------------------------

_TEXTS: dict[float, str] = {}  # instant -> text: a run writes the same few instants over and over
_DATES: dict[int, str] = {}  # days since the epoch -> "YYYY-MM-DD" (a run spans few days)


def format(instant: float) -> str:  # noqa: A001 - the module's verb: eventtime.format(t)
    """RFC 3339 text of epoch seconds: UTC, ``Z``, fractional digits only when needed.

    >>> format(0), format(1.5), format(1.0001), format(1767225605.000001)
    ('1970-01-01T00:00:00Z', '1970-01-01T00:00:01.5Z', '1970-01-01T00:00:01.0001Z',
    '2026-01-01T00:00:05.000001Z')
    >>> format(LAST + 60)  # past the last instant that can be written: the last one
    '9999-12-31T23:59:59.999999Z'
    """
    text = _TEXTS.get(instant)
    if text is None:
        if len(_TEXTS) >= _KEEP:
            _TEXTS.clear()
        text = _TEXTS[instant] = _format(instant)
    return text


def writable(instant: float) -> bool:
    """Whether *instant* lies in years 0001-9999, so :func:`format` writes it as it is (not clamped)."""
    return FIRST <= instant <= LAST


def _format(instant: float) -> str:
    if not FIRST <= instant < LAST:
        if instant != instant:
            raise ValueError("NaN is not an instant")
        return _text(_LAST_US if instant > 0 else _FIRST_US)  # clamped: see the module docstring
    if instant.__class__ is int or instant.is_integer():
        return _whole(int(instant))  # whole seconds, the common case: no fraction to work out
    whole = math.floor(instant)
    return _text(int(whole) * _MICRO + round((instant - whole) * _MICRO))  # instant - whole is exact


def _text(micros: int) -> str:
    seconds, micros = divmod(min(max(micros, _FIRST_US), _LAST_US), _MICRO)
    if not micros:
        return _whole(seconds)
    return f"{_whole(seconds)[:-1]}.{micros:06d}".rstrip("0") + "Z"


def _whole(seconds: int) -> str:
    day, second = divmod(seconds, 86400)
    date = _DATES.get(day) or _date(day)
    hour, second = divmod(second, 3600)
    minute, second = divmod(second, 60)
    return f"{date}T{hour:02d}:{minute:02d}:{second:02d}Z"


def _date(day: int) -> str:
    if len(_DATES) >= _KEEP:
        _DATES.clear()
    year, month, mday = _civil(day)
    text = _DATES[day] = f"{year:04d}-{month:02d}-{mday:02d}"
    return text
