"""Cron expressions of `Schedule`s: Vixie cron's syntax and day rule, and clock changes."""
from __future__ import annotations

import datetime as dt

import pytest

from engine.language.cron import CronError, parse, zone

UTC = dt.timezone.utc
PARIS = zone("Europe/Paris")


def ticks(expression: str, start: dt.datetime, n: int, tz=UTC) -> list[str]:
    cron, t, out = parse(expression), start.timestamp(), []
    for _ in range(n):
        t = cron.next_after(t, tz)
        out.append(dt.datetime.fromtimestamp(t, tz).isoformat())
    return out


JAN1 = dt.datetime(2026, 1, 1, tzinfo=UTC)  # a Thursday


def test_lists_ranges_steps_and_names():
    assert ticks("0,30 9-10 * * *", JAN1, 5) == [
        "2026-01-01T09:00:00+00:00", "2026-01-01T09:30:00+00:00", "2026-01-01T10:00:00+00:00",
        "2026-01-01T10:30:00+00:00", "2026-01-02T09:00:00+00:00"]
    assert ticks("*/20 0 * * *", JAN1, 2) == ["2026-01-01T00:20:00+00:00", "2026-01-01T00:40:00+00:00"]
    assert ticks("10-40/15 0 * * *", JAN1, 3) == [
        "2026-01-01T00:10:00+00:00", "2026-01-01T00:25:00+00:00", "2026-01-01T00:40:00+00:00"]
    assert ticks("50/5 0 1 * *", JAN1, 3) == [  # a/n: from a to the end of the field
        "2026-01-01T00:50:00+00:00", "2026-01-01T00:55:00+00:00", "2026-02-01T00:50:00+00:00"]
    assert ticks("0 12 * FEB mon-FRI", JAN1, 2) == ["2026-02-02T12:00:00+00:00", "2026-02-03T12:00:00+00:00"]
    assert ticks("0 0 * * 7", JAN1, 1) == ticks("0 0 * * 0", JAN1, 1) == ["2026-01-04T00:00:00+00:00"]


def test_macros():
    assert ticks("@daily", JAN1, 2) == ["2026-01-02T00:00:00+00:00", "2026-01-03T00:00:00+00:00"]
    assert ticks("@hourly", JAN1, 1) == ["2026-01-01T01:00:00+00:00"]
    assert ticks("@weekly", JAN1, 1) == ["2026-01-04T00:00:00+00:00"]
    assert ticks("@monthly", JAN1, 1) == ticks("0 0 1 * *", JAN1, 1) == ["2026-02-01T00:00:00+00:00"]
    assert ticks("@yearly", JAN1, 1) == ticks("@annually", JAN1, 1) == ["2027-01-01T00:00:00+00:00"]


def test_day_of_month_or_day_of_week_when_both_are_restricted():
    # the 13th, or any Friday (Vixie's OR); 2026-01-02 is a Friday, 2026-01-13 a Tuesday
    assert ticks("0 0 13 * 5", JAN1, 3) == [
        "2026-01-02T00:00:00+00:00", "2026-01-09T00:00:00+00:00", "2026-01-13T00:00:00+00:00"]
    # a field starting with `*` makes it AND again: Fridays only, every other day of month
    assert ticks("0 0 */2 * 5", JAN1, 2) == ["2026-01-09T00:00:00+00:00", "2026-01-23T00:00:00+00:00"]


def test_february_29_and_never():
    assert ticks("0 0 29 2 *", JAN1, 1) == ["2028-02-29T00:00:00+00:00"]
    assert parse("0 0 30 2 *").next_after(JAN1.timestamp(), UTC) is None


def test_spring_forward_a_skipped_time_fires_the_gap_later():
    """Europe/Paris, 2026-03-29: 02:00 CET becomes 03:00 CEST."""
    start = dt.datetime(2026, 3, 28, 12, tzinfo=PARIS)
    assert ticks("30 2 * * *", start, 2, PARIS) == ["2026-03-29T03:30:00+02:00", "2026-03-30T02:30:00+02:00"]
    # every half hour: 02:00 and 02:30 do not exist; they land on 03:00 and 03:30, fired once each
    night = dt.datetime(2026, 3, 29, 1, tzinfo=PARIS)
    assert ticks("*/30 * * * *", night, 3, PARIS) == [
        "2026-03-29T01:30:00+01:00", "2026-03-29T03:00:00+02:00", "2026-03-29T03:30:00+02:00"]


def test_fall_back_a_repeated_time_fires_once_at_its_first_occurrence():
    """Europe/Paris, 2026-10-25: 03:00 CEST becomes 02:00 CET; 02:xx happens twice."""
    start = dt.datetime(2026, 10, 24, 12, tzinfo=PARIS)
    assert ticks("30 2 * * *", start, 2, PARIS) == ["2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"]
    night = dt.datetime(2026, 10, 25, 1, 45, tzinfo=PARIS)
    assert ticks("0,30 * * * *", night, 4, PARIS) == [
        "2026-10-25T02:00:00+02:00", "2026-10-25T02:30:00+02:00",
        "2026-10-25T03:00:00+01:00", "2026-10-25T03:30:00+01:00"]


def test_a_time_zone_shifts_the_instants():
    ny = zone("America/New_York")
    assert ticks("0 9 * * *", JAN1, 1, ny) == ["2026-01-01T09:00:00-05:00"]


@pytest.mark.parametrize(("text", "message", "offset"), [
    ("61 * * * *", "minute: 61 is out of range 0-59", 0),
    ("* 24 * * *", "hour: 24 is out of range 0-23", 2),
    ("* * 0 * *", "day of month: 0 is out of range 1-31", 4),
    ("* * * FOO *", "month: 'FOO' is not a number from 1 to 12 or a name", 6),
    ("* * * * 1,8", "day of week: 8 is out of range 0-7", 10),
    ("5-1 * * * *", "minute: range '5-1' runs backwards", 0),
    ("*/0 * * * *", "minute: step '0' is not a number from 1 to 60", 2),
    ("1,,2 * * * *", "minute: empty item", 2),
    ("* * * *", "4 fields, expected 5", 7),
    ("* * * * * *", "6 fields, expected 5", 10),
    ("@often", "unknown macro '@often'", 0),
])
def test_errors_say_what_and_where(text, message, offset):
    with pytest.raises(CronError) as caught:
        parse(text)
    assert message in str(caught.value)
    assert caught.value.offset == offset


def test_unknown_zone():
    with pytest.raises(ValueError, match="no time zone 'Mars/Olympus'"):
        zone("Mars/Olympus")
