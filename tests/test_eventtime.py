"""engine.core.eventtime: the one parser and the one formatter of event times.

The same table of cases is checked at every entry point in tests/test_time_entry_points.py.
"""
from __future__ import annotations

import math
import random
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from time_cases import ACCEPTED, REFUSED, T0, TIME_CASES

from engine.core import eventtime
from engine.core.eventtime import FIRST, LAST, EventTimeError

FIRST_US, LAST_US = -62135596800 * 10**6, 253402300800 * 10**6 - 1
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def reference_text(micros: int) -> str:
    """The canonical text of an instant in microseconds, by datetime (the trailing zeros of a
    fraction cut)."""
    moment = EPOCH + timedelta(microseconds=micros)
    text = moment.replace(tzinfo=None).isoformat(timespec="seconds")  # strftime drops the zeros of year 0001
    return f"{text}.{moment.microsecond:06d}".rstrip("0") + "Z" if moment.microsecond else text + "Z"


# --- parsing: the table ----------------------------------------------------------------------

@pytest.mark.parametrize("case", TIME_CASES, ids=lambda c: c.label)
def test_the_rule(case):
    if case.accepted:
        assert eventtime.parse(case.value) == eventtime.parse_or_none(case.value) == case.epoch
    else:
        with pytest.raises(EventTimeError, match=case.refusal.replace("(", r"\(").replace(".", r"\.")):
            eventtime.parse(case.value)
        assert eventtime.parse_or_none(case.value) is None


@pytest.mark.parametrize("case", REFUSED, ids=lambda c: c.label)
def test_a_refusal_names_the_value_and_what_is_expected(case):
    with pytest.raises(EventTimeError) as info:
        eventtime.parse(case.value)
    message = str(info.value)
    if isinstance(case.value, str):
        assert message.startswith(repr(case.value))
    expected = ("RFC 3339", "years 0001-9999", "hours are 00-23", "±23:59", "has 28 days", "months are 01-12",
                "at 23:59:60 UTC on the last day of a month")
    assert any(words in message for words in expected), message


def test_an_accepted_time_reads_back_as_its_canonical_text():
    assert [
        eventtime.format(c.epoch)
        for c in ACCEPTED
        if c.value
        in (
            "2026-01-01t00:00:02z",
            "2026-01-01T05:30:02+05:30",
            "2016-12-31T23:59:60Z",
            "0000-12-31T23:30:00-00:30",
        )
    ] == [
        "2016-12-31T23:59:59.999999Z",
        "2026-01-01T00:00:02Z",
        "2026-01-01T00:00:02Z",
        "0001-01-01T00:00:00Z",
    ]


def test_a_long_text_is_cut_in_the_message():
    with pytest.raises(EventTimeError) as info:
        eventtime.parse("x" * 100_000)
    assert len(str(info.value)) < 300


def test_answers_do_not_depend_on_what_was_parsed_before():
    """The parser remembers texts: first sight, remembered, and past the size of its memory, the
    same answers."""
    texts = [c.value for c in TIME_CASES if isinstance(c.value, str)]
    expected = [c.epoch for c in TIME_CASES if isinstance(c.value, str)]
    for _ in range(3):
        assert [eventtime.parse_or_none(t) for t in texts] == expected
    many = [f"2026-01-01T{h:02d}:{m:02d}:{s:02d}Z" for h in range(2) for m in range(60) for s in range(60)]
    assert [eventtime.parse(t) for t in many] == [T0 + i for i in range(len(many))]
    assert [eventtime.parse_or_none(t) for t in texts] == expected
    for case in REFUSED:  # refused again, with the message, after being remembered as refused
        with pytest.raises(EventTimeError):
            eventtime.parse(case.value)


def test_epoch_seconds_for_a_stream_field():
    assert eventtime.from_epoch(12) == 12.0 and eventtime.from_epoch(-1.5) == -1.5
    assert eventtime.from_epoch(FIRST) == FIRST and eventtime.from_epoch(LAST) == LAST
    for bad in (FIRST - 1, LAST + 1, math.inf, math.nan, 1e300):
        with pytest.raises(EventTimeError, match="not a finite time in years 0001-9999"):
            eventtime.from_epoch(bad)
    for bad in (True, "12", None):
        with pytest.raises(EventTimeError, match="epoch seconds must be a number"):
            eventtime.from_epoch(bad)


# --- formatting ------------------------------------------------------------------------------

@pytest.mark.parametrize(("instant", "text"), [
    (0, "1970-01-01T00:00:00Z"), (0.0, "1970-01-01T00:00:00Z"), (-0.0, "1970-01-01T00:00:00Z"),
    (1.5, "1970-01-01T00:00:01.5Z"), (1.0001, "1970-01-01T00:00:01.0001Z"), (1.25, "1970-01-01T00:00:01.25Z"),
    (-0.5, "1969-12-31T23:59:59.5Z"), (-1, "1969-12-31T23:59:59Z"),
    (T0 + 0.000001, "2026-01-01T00:00:00.000001Z"), (T0 + 59.9999999, "2026-01-01T00:01:00Z"),
    (T0 + 5.1234564, "2026-01-01T00:00:05.123456Z"),  # to the nearest microsecond
    (FIRST, "0001-01-01T00:00:00Z"), (253402300799, "9999-12-31T23:59:59Z"),
])
def test_format(instant, text):
    assert eventtime.format(instant) == text


@pytest.mark.parametrize(("instant", "text"), [
    (LAST, "9999-12-31T23:59:59.999999Z"), (LAST + 60, "9999-12-31T23:59:59.999999Z"),
    (1e300, "9999-12-31T23:59:59.999999Z"), (math.inf, "9999-12-31T23:59:59.999999Z"),
    (FIRST - 0.5, "0001-01-01T00:00:00Z"), (-math.inf, "0001-01-01T00:00:00Z"),
])
def test_an_instant_beyond_the_range_is_written_as_its_nearest_end(instant, text):
    assert eventtime.format(instant) == text
    assert eventtime.writable(instant) == (instant == LAST)
    assert eventtime.parse(text) in (FIRST, LAST)


def test_nan_is_not_an_instant():
    with pytest.raises(ValueError, match="NaN"):
        eventtime.format(math.nan)


def test_whole_seconds_format_as_datetime_does_over_the_whole_range():
    rng = random.Random(5)
    seconds = [FIRST_US // 10**6, LAST_US // 10**6, 0, -1, 86399, 86400, -86401, T0] + \
              [rng.randrange(FIRST_US // 10**6, LAST_US // 10**6) for _ in range(3000)]
    for s in seconds:
        assert eventtime.format(s) == eventtime.format(float(s)) == reference_text(s * 10**6), s


def test_the_formatter_remembers_instants_without_changing_answers():
    instants = [T0 + i / 4 for i in range(6000)]  # past the size of its memory, twice
    first = [eventtime.format(t) for t in instants]
    assert first == [eventtime.format(t) for t in instants] == [reference_text(round(t * 4) * 250_000)
                                                                 for t in instants]


# --- round trips -----------------------------------------------------------------------------

@settings(max_examples=400, deadline=None)
@given(st.integers(FIRST_US, LAST_US))
def test_parse_of_format_is_the_same_instant_over_the_whole_range(micros):
    instant = micros / 10**6
    assert eventtime.parse(eventtime.format(instant)) == instant


@settings(max_examples=400, deadline=None)
@given(st.integers(-2**33 * 10**6, 2**33 * 10**6))  # a float holds every microsecond from 1698 to 2242
def test_format_of_parse_is_the_canonical_text(micros):
    text = reference_text(micros)
    assert eventtime.format(eventtime.parse(text)) == text
    assert eventtime.parse(text) == micros / 10**6


@settings(max_examples=300, deadline=None)
@given(st.floats(FIRST, LAST, allow_nan=False))
def test_any_instant_in_range_writes_a_text_that_reads_back_within_half_a_microsecond(instant):
    text = eventtime.format(instant)
    back = eventtime.parse(text)
    assert abs(back - instant) <= 0.5e-6 + abs(instant) * 2**-52
    assert eventtime.format(back) == text


@settings(max_examples=300, deadline=None)
@given(st.integers(86400, 3652057 * 86400), st.integers(-23 * 60 - 59, 23 * 60 + 59),
       st.text("0123456789", max_size=9), st.booleans())
def test_any_offset_and_fraction_reads_as_the_utc_instant(seconds, offset_minutes, digits, lowercase):
    """From 0001-01-02 to 9999-12-31 in UTC: every local time with its offset is that instant."""
    moment = datetime(1, 1, 1, tzinfo=timezone.utc) + timedelta(seconds=seconds)
    local = moment + timedelta(minutes=offset_minutes)
    sign, minutes = ("+" if offset_minutes >= 0 else "-"), abs(offset_minutes)
    text = (local.replace(tzinfo=None).isoformat(timespec="seconds") + (f".{digits}" if digits else "")
            + f"{sign}{minutes // 60:02d}:{minutes % 60:02d}")
    if lowercase:
        text = text.replace("T", "t")
    micros = int((moment - EPOCH).total_seconds()) * 10**6 + (int(digits[:6].ljust(6, "0")) if digits else 0)
    assert eventtime.parse(text) == micros / 10**6

