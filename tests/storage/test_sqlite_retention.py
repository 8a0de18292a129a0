"""Retention in the SQLite store: finished runs live on disk only, and what is older than the
mesh's `retention` (runs, archive, dedup) is removed, saying what aged out and since when.

Time here is clock time as the runtime tells the store (``mark_done``/``retire_state``'s
``at``); nothing reads the wall clock.
"""
from __future__ import annotations

import math

from engine.language.model import Retention
from engine.storage import SqliteStore

DAY = 86400.0


def test_finished_runs_are_not_loaded_into_memory_when_the_store_opens(tmp_path):
    path = str(tmp_path / "s.db")
    store = SqliteStore(path)
    for i in range(50):
        store.retire_state(f"run:done-{i}", {"status": "completed", "i": i}, 10.0)
    store.put_state("run:live", {"status": "running"})
    store.commit({"fed": 1})
    assert list(store._state) == ["run:live"]  # what a run still reads, and nothing else
    store.close()
    store = SqliteStore(path)
    assert list(store._state) == ["run:live"]
    assert store.get_state("run:done-7") == {"status": "completed", "i": 7}
    assert len(store.state_keys("run:")) == 51
    store.close()


def test_runs_archive_and_dedup_records_age_out_by_their_own_retention(tmp_path):
    store = SqliteStore(str(tmp_path / "s.db"), Retention(runs=2 * DAY, archive=3 * DAY, dedup=1 * DAY))
    store.retire_state("run:old", {"status": "completed"}, 0.0)
    store.append("input", {"id": "e-old"})
    store.append("trace", {"seq": 1})
    store.mark_done("e-old", "c", 0.0)
    store.commit({"fed": 1})
    assert store.aged_out() == {}

    store.retire_state("run:new", {"status": "completed"}, 2.5 * DAY)  # the clock moves on
    store.append("input", {"id": "e-new"})
    store.mark_done("e-new", "c", 2.5 * DAY)
    store.commit({"fed": 2})
    assert store.aged_out() == {"runs": 0.5 * DAY, "dedup": 1.5 * DAY}  # the archive keeps 3 days
    assert store.get_state("run:old") is None and store.state_keys("run:") == ["run:new"]
    assert not store.is_done("e-old", "c", 2.5 * DAY) and store.is_done("e-new", "c", 2.5 * DAY)
    assert [r["id"] for r in store.records("input")] == ["e-old", "e-new"]

    store.mark_done("e-later", "c", 4 * DAY)
    store.commit({"fed": 3})
    assert [r["id"] for r in store.records("input")] == ["e-new"]
    # the trace is the run's own record: never aged out
    assert [r["seq"] for r in store.records("trace")] == [1]
    assert store.aged_out()["archive"] == 1 * DAY
    store.close()
    reopened = SqliteStore(str(tmp_path / "s.db"))
    assert reopened.aged_out() == {"runs": 0.5 * DAY, "dedup": 3 * DAY, "archive": 1 * DAY}
    reopened.close()


def test_a_dedup_record_past_the_window_no_longer_counts_even_before_it_is_removed(tmp_path):
    store = SqliteStore(str(tmp_path / "s.db"), Retention(dedup=100.0))
    store.mark_done("e", "c", 1000.0)
    assert store.is_done("e", "c", 1100.0) and not store.is_done("e", "c", 1100.5)
    store.commit({"fed": 1})
    assert store.is_done("e", "c", 1100.0) and not store.is_done("e", "c", 1100.5)
    store.close()


def test_forever_keeps_everything(tmp_path):
    store = SqliteStore(str(tmp_path / "s.db"), Retention(runs=math.inf, archive=math.inf, dedup=math.inf))
    store.retire_state("run:a", {"status": "completed"}, 0.0)
    store.mark_done("e", "c", 0.0)
    store.commit({"fed": 1})
    store.mark_done("f", "c", 1e9)
    store.commit({"fed": 2})
    assert store.aged_out() == {} and store.get_state("run:a") is not None and store.is_done("e", "c", 1e9)
    store.close()
