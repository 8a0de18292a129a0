"""Which ticks a deployment fires when it finds a schedule late: grace, skip and fire_once."""
from __future__ import annotations

from dataclasses import replace

import pytest

from engine.core.errors import Location
from engine.language import model as m
from engine.runtime.schedules import Firing, Timetable, firings

HERE = Location("mesh.yaml", 1, 1)
EMIT = m.EmitAction(HERE, m.Ref("beat", HERE))
EVERY_MINUTE = m.Schedule("beat", HERE, EMIT, HERE, every=60.0, grace=90.0)
T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z


def test_on_time_ticks_fire_one_by_one():
    table = Timetable(EVERY_MINUTE)
    assert firings(table, T0, T0 - 1) == ([], T0)
    assert firings(table, T0, T0) == ([Firing(T0)], T0 + 60)
    # late, but within grace: each fires as itself, with its own time
    assert firings(table, T0, T0 + 80) == ([Firing(T0), Firing(T0 + 60)], T0 + 120)


@pytest.mark.parametrize("cron", [False, True])
def test_skip_drops_the_ticks_later_than_grace(cron):
    schedule = replace(EVERY_MINUTE, every=None, cron="* * * * *") if cron else EVERY_MINUTE
    table = Timetable(schedule)
    # found 10 minutes late: ticks up to now - 90s are missed (0..8 min), 9 and 10 fire
    due, position = firings(table, T0, T0 + 600)
    assert due == [Firing(T0 + 540), Firing(T0 + 600)] and position == T0 + 660


@pytest.mark.parametrize("cron", [False, True])
def test_fire_once_stands_for_the_missed_ticks_at_the_latest(cron):
    schedule = replace(EVERY_MINUTE, catch_up="fire_once")
    if cron:
        schedule = replace(schedule, every=None, cron="* * * * *")
    due, position = firings(Timetable(schedule), T0, T0 + 600)
    assert due == [Firing(T0 + 480, missed=9, first=T0), Firing(T0 + 540), Firing(T0 + 600)]
    assert position == T0 + 660


def test_a_long_outage_of_a_short_interval_is_counted_not_walked():
    schedule = replace(EVERY_MINUTE, every=1.0, grace=0.0, catch_up="fire_once")
    year = 365 * 86400.0
    due, position = firings(Timetable(schedule), T0, T0 + year)
    assert due == [Firing(T0 + year - 1, missed=int(year), first=T0), Firing(T0 + year)]
    assert position == T0 + year + 1


def test_a_schedule_that_never_fires_again():
    table = Timetable(replace(EVERY_MINUTE, every=None, cron="0 0 30 2 *"))
    assert firings(table, None, T0) == ([], None)
