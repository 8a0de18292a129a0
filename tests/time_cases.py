"""One table of event times, for every entry point that reads one (tests/test_time_entry_points.py).

Each case is a value for an event's ``time`` and the verdict of engine.core.eventtime's rule:
the instant it stands for (epoch seconds), or a piece of the message that refuses it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

T0 = 1767225600  # 2026-01-01T00:00:00Z
LEAP_2016 = 1483228799.999999  # 2016-12-31T23:59:60Z: the last microsecond of that day


@dataclass(frozen=True)
class TimeCase:
    label: str
    value: Any
    epoch: float | None = None  # the instant, when accepted
    refusal: str | None = None  # a piece of the message, when refused

    @property
    def accepted(self) -> bool:
        return self.refusal is None


def _micros(n: int) -> float:
    return n / 1_000_000  # the float nearest the exact instant, as the parser gives it


FRACTIONS = [TimeCase(f"fraction of {n} digits", "2026-01-01T00:00:02." + "123456789"[:n] + "Z",
                      _micros((T0 + 2) * 1_000_000 + int("123456789"[:min(n, 6)].ljust(6, "0"))))
             for n in range(1, 10)]

TIME_CASES = [
    TimeCase("utc", "2026-01-01T00:00:02Z", T0 + 2.0),
    TimeCase("no offset", "2026-01-01T00:00:02", refusal="has no UTC offset"),
    TimeCase("no seconds, no offset", "2026-01-01T00:00", refusal="has no UTC offset"),
    TimeCase("date only", "2026-01-05", refusal="is a date without a time of day"),
    TimeCase("week date", "2026-W02-1", refusal="is not an RFC 3339 date-time"),
    TimeCase("week date and time", "2026-W02-1T00:00:00Z", refusal="is not an RFC 3339 date-time"),
    TimeCase("ordinal date", "2026-005T00:00:00Z", refusal="is not an RFC 3339 date-time"),
    TimeCase("basic format", "20260101T000002Z", refusal="is not an RFC 3339 date-time"),
    TimeCase("space for T", "2026-01-01 00:00:02Z", refusal="separates date and time with a space"),
    TimeCase("white space around", " 2026-01-01T00:00:02Z", refusal="has white space around it"),
    TimeCase("leap second", "2016-12-31T23:59:60Z", LEAP_2016),
    TimeCase("leap second with a fraction", "2016-12-31T23:59:60.5Z", LEAP_2016),
    TimeCase("leap second with an offset", "2017-01-01T00:59:60+01:00", LEAP_2016),
    TimeCase("leap second at the end of June", "2015-06-30T23:59:60Z", 1435708799.999999),
    TimeCase("second 60 mid-month", "2026-01-05T23:59:60Z", refusal="is not a leap second"),
    TimeCase("second 60 at local midnight", "2016-12-31T23:59:60+01:00", refusal="is not a leap second"),
    TimeCase("second 61", "2016-12-31T23:59:61Z", refusal="has no second 61"),
    *FRACTIONS,
    TimeCase("lowercase t and z", "2026-01-01t00:00:02z", T0 + 2.0),
    TimeCase("positive offset", "2026-01-01T05:30:02+05:30", T0 + 2.0),
    TimeCase("negative offset", "2025-12-31T16:00:02-08:00", T0 + 2.0),
    TimeCase("offset -00:00", "2026-01-01T00:00:02-00:00", T0 + 2.0),
    TimeCase("offset past 23:59", "2026-01-01T00:00:02+24:00", refusal="has an offset beyond"),
    TimeCase("hour 24", "2026-01-01T24:00:00Z", refusal="has no hour 24"),
    TimeCase("a day that does not exist", "2026-02-29T00:00:00Z", refusal="February 2026 has 28 days"),
    TimeCase("month 13", "2026-13-01T00:00:00Z", refusal="has no month 13"),
    TimeCase("first instant of year 0001", "0001-01-01T00:00:00Z", -62135596800.0),
    TimeCase("year 0000 that is 0001 in UTC", "0000-12-31T23:30:00-00:30", -62135596800.0),
    TimeCase("before year 0001 in UTC", "0001-01-01T00:00:00+00:01",
             refusal="is before 0001-01-01T00:00:00Z"),
    TimeCase("last second of year 9999", "9999-12-31T23:59:59Z", 253402300799.0),
    TimeCase("last microsecond of year 9999", "9999-12-31T23:59:59.999999Z", 253402300800.0),
    TimeCase("after year 9999 in UTC", "9999-12-31T23:30:00-01:00",
             refusal="is after 9999-12-31T23:59:59.999999Z"),
    TimeCase("year 10000", "10000-01-01T00:00:00Z", refusal="a year of more than four digits"),
    TimeCase("not a time", "not-a-time", refusal="'not-a-time' is not an RFC 3339 date-time"),
    TimeCase("empty", "", refusal="is not an RFC 3339 date-time"),
    TimeCase("a number", T0 + 2,
             refusal="must be an RFC 3339 string such as 2026-01-01T12:00:00Z, not a number"),
    TimeCase("a boolean", True, refusal="not a boolean"),
    TimeCase("an object", {"at": "2026-01-01T00:00:02Z"}, refusal="not an object"),
]

ACCEPTED = [c for c in TIME_CASES if c.accepted]
REFUSED = [c for c in TIME_CASES if not c.accepted]
