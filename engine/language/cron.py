"""Cron expressions of `Schedule` documents: parsing, and the next tick in a time zone.

Five fields, as Vixie cron reads them: minute (0-59), hour (0-23), day of month (1-31),
month (1-12 or ``jan``-``dec``), day of week (0-7, 0 and 7 both Sunday, or ``sun``-``sat``).
A field is a comma list of items; an item is ``*``, a value, a range ``a-b``, each optionally
followed by a step ``/n`` (``a/n`` means from *a* to the field's end). The ``@hourly``,
``@daily`` (``@midnight``), ``@weekly``, ``@monthly`` and ``@yearly`` (``@annually``) macros
stand for their usual expressions. Day of month and day of week follow Vixie's rule: when
either field starts with ``*`` a day must match both, otherwise either is enough.

Ticks are wall-clock times of the schedule's time zone (``zoneinfo``), turned into instants:

* a wall time that does not exist (the hour skipped when clocks go forward) fires the length
  of the gap later: 02:30 on the spring-forward day of Europe/Paris fires at 03:30 CEST; if
  that instant is a tick of its own too, the schedule fires once there;
* a wall time that happens twice (the hour repeated when clocks go back) fires once, at its
  first occurrence (``fold=0``).

Written here rather than taken from a library: about 150 lines, no dependency, and the two
DST rules above are ours to state (docs/schedules.md).
"""
from __future__ import annotations

import bisect
import datetime as dt
import difflib
import zoneinfo
from dataclasses import dataclass
from typing import Iterator

from ..core.errors import Diagnostic, Location
from .model import Schedule

MONTHS = {name: i for i, name in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), start=1)}
WEEKDAYS = {name: i for i, name in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))}
MACROS = {
    "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *",
}
_FIELDS = (  # (name, least, most, names)
    ("minute", 0, 59, {}), ("hour", 0, 23, {}), ("day of month", 1, 31, {}),
    ("month", 1, 12, MONTHS), ("day of week", 0, 7, WEEKDAYS),
)
SEARCH_DAYS = 9 * 366  # 29 February may be 8 years away (2096 -> 2104): past this, never
_SLACK = dt.timedelta(hours=3)  # more than any clock change: how far back a wall time may map


class CronError(ValueError):
    """A cron expression that cannot be read; ``offset`` is where in its text (0-based)."""

    def __init__(self, message: str, offset: int = 0):
        super().__init__(message)
        self.offset = offset


@dataclass(frozen=True, slots=True)
class Cron:
    text: str
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    any_day: bool  # the day-of-month field starts with `*`
    any_weekday: bool  # the day-of-week field starts with `*`

    def matches_day(self, day: dt.date) -> bool:
        if day.month not in self.months:
            return False
        dom, dow = day.day in self.days, day.isoweekday() % 7 in self.weekdays
        return (dom and dow) if self.any_day or self.any_weekday else (dom or dow)

    def walls(self, start: dt.datetime) -> Iterator[dt.datetime]:
        """Matching wall-clock minutes at or after *start* (naive), in order, for SEARCH_DAYS."""
        day, first = start.date(), (start.hour, start.minute)
        for _ in range(SEARCH_DAYS):
            if self.matches_day(day):
                for hour in self.hours[bisect.bisect_left(self.hours, first[0]):]:
                    for minute in self.minutes:
                        if (hour, minute) >= first:
                            yield dt.datetime.combine(day, dt.time(hour, minute))
            day, first = day + dt.timedelta(days=1), (0, 0)

    def next_after(self, t: float, zone: dt.tzinfo) -> float | None:
        """The first tick strictly after instant *t* (epoch seconds) in *zone*; None if never."""
        here = dt.datetime.fromtimestamp(t, zone)
        local = here.replace(tzinfo=None, second=0, microsecond=0)
        # Away from a clock change (the zone's offset the same 3 hours before and at the tick
        # found), a wall time is one instant: no need to look around it.
        offset = here.utcoffset()
        for wall in self.walls(local):
            instant = (wall - offset).replace(tzinfo=dt.timezone.utc).timestamp()
            if instant > t:
                before = dt.datetime.fromtimestamp(t - _SLACK.total_seconds(), zone).utcoffset()
                if before == offset == dt.datetime.fromtimestamp(instant, zone).utcoffset():
                    return instant
                break
        return self._next_near_change(t, zone, local)

    def _next_near_change(self, t: float, zone: dt.tzinfo, local: dt.datetime) -> float | None:
        best: float | None = None
        horizon: dt.datetime | None = None
        for wall in self.walls(local - _SLACK):
            if horizon is not None and wall > horizon:
                break
            instant = wall.replace(tzinfo=zone, fold=0).timestamp()  # fold=0: the rules above
            if instant > t and (best is None or instant < best):
                best, horizon = instant, wall + _SLACK
        return best


def parse(text: str) -> Cron:
    """The cron expression *text*; CronError says what is wrong and where."""
    body, macro = text, text.strip().lower()
    if macro.startswith("@"):
        if macro not in MACROS:
            raise CronError(f"unknown macro {text.strip()!r}: one of {', '.join(MACROS)}", text.index("@"))
        body = MACROS[macro]
    fields, at = [], 0
    for part in body.split():
        at = body.index(part, at)
        fields.append((part, at if body is text else 0))
        at += len(part)
    if len(fields) != 5:
        raise CronError(f"{len(fields)} fields, expected 5: minute hour day-of-month month day-of-week",
                        fields[5][1] if len(fields) > 5 else len(text.rstrip()))
    values = [_field(part, offset, spec) for (part, offset), spec in zip(fields, _FIELDS)]
    weekdays = frozenset(0 if d == 7 else d for d in values[4])
    return Cron(text, tuple(sorted(values[0])), tuple(sorted(values[1])), frozenset(values[2]),
                frozenset(values[3]), weekdays, fields[2][0].startswith("*"), fields[4][0].startswith("*"))


def _field(part: str, offset: int, spec: tuple) -> set[int]:
    name, least, most, names = spec
    found: set[int] = set()
    at = offset
    for item in part.split(","):
        if not item:
            raise CronError(f"{name}: empty item in {part!r}", at)
        found |= _item(item, at, name, least, most, names)
        at += len(item) + 1
    return found


def _item(item: str, at: int, name: str, least: int, most: int, names: dict) -> set[int]:
    span, _, step_text = item.partition("/")
    step = 1
    if step_text or item.endswith("/"):
        if not step_text.isdigit() or not 0 < int(step_text) <= most - least + 1:
            raise CronError(f"{name}: step {step_text!r} is not a number from 1 to {most - least + 1}",
                            at + len(span) + 1)
        step = int(step_text)
    if span == "*":
        low, high = least, most
    else:
        first, dash, last = span.partition("-")
        low = _value(first, at, name, least, most, names)
        high = _value(last, at + len(first) + 1, name, least, most, names) if dash else (
            most if step_text else low)
        if high < low:
            raise CronError(f"{name}: range {span!r} runs backwards", at)
    return set(range(low, high + 1, step))


def _value(text: str, at: int, name: str, least: int, most: int, names: dict) -> int:
    if text.lower() in names:
        return names[text.lower()]
    if not text.isdigit():
        known = f" or a name ({', '.join(names)})" if names else ""
        raise CronError(f"{name}: {text!r} is not a number from {least} to {most}{known}", at)
    if not least <= int(text) <= most:
        raise CronError(f"{name}: {text} is out of range {least}-{most}", at)
    return int(text)


def zone(name: str) -> dt.tzinfo:
    """The IANA time zone *name*; ValueError if there is none of that name."""
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise ValueError(f"no time zone {name!r}") from exc


def zone_names() -> set[str]:
    """Every IANA time zone name known here (for a did-you-mean)."""
    try:
        return zoneinfo.available_timezones()
    except OSError:  # pragma: no cover - a system without time zone data
        return set()


REFERENCE = 1_767_225_600.0  # 2026-01-01T00:00:00Z: where validate looks for a first tick


def schedule_problems(schedule: Schedule, zone_loc: Location) -> Iterator[Diagnostic]:
    """What is wrong with a schedule's `cron` and `timezone`, located where each is written."""
    tz: dt.tzinfo = dt.timezone.utc
    try:
        tz = zone(schedule.timezone)
    except ValueError:
        near = difflib.get_close_matches(schedule.timezone, sorted(zone_names()), n=1)
        yield Diagnostic(
            zone_loc, "unknown-timezone",
            f"schedule {schedule.name!r}: no time zone {schedule.timezone!r}",
            hint=f"did you mean {near[0]!r}?" if near else "an IANA name such as `Europe/Paris` or `UTC`",
        )
    if schedule.cron is None:
        return
    try:
        expression = parse(schedule.cron)
    except CronError as exc:
        yield Diagnostic(
            schedule.timing_loc, "bad-cron",
            f"schedule {schedule.name!r}: cron {schedule.cron!r}: {exc} (at character {exc.offset + 1})",
            hint="five fields: minute hour day-of-month month day-of-week, e.g. `30 2 * * MON-FRI`",
        )
        return
    if expression.next_after(REFERENCE, tz) is None:
        yield Diagnostic(
            schedule.timing_loc, "bad-cron",
            f"schedule {schedule.name!r}: cron {schedule.cron!r} never fires (no such day)",
            hint="check the day of month against the month (`30 2` is 30 February)",
        )
