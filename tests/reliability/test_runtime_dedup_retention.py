"""T25: dedup past a window. The memory store remembers an effect for `dedup_window` seconds
of clock time (one hour by default), so a redelivery later than that is *not* recognised:
the documented limit of `meshctl run` without a store. Durable stores keep every dedup
record: a redelivery is recognised at any age, also by a new process after a restart.

A redelivered event keeps its original `time`; the clock is moved on by other traffic
(a tick every ten minutes), as it would be in a long-running mesh.
"""
from __future__ import annotations

import collections

import pytest

from engine.runtime.interpreter import Runtime
from engine.storage import MemoryStore, open_store
from runtime_harness import START, iso, inputs, load

MESH = """
apiVersion: meshctl/v1
kind: EventType
metadata: {name: job.submitted}
spec: {external: true}
---
apiVersion: meshctl/v1
kind: EventType
metadata: {name: tick}
spec: {external: true}
---
apiVersion: meshctl/v1
kind: EventType
metadata: {name: job.done}
---
apiVersion: meshctl/v1
kind: Route
metadata: {name: finish}
spec:
  from: [job.submitted]
  transform: {type: job.done}
"""
HOUR = 3600.0


def job(name: str) -> dict:
    return {"id": name, "type": "job.submitted", "time": iso(START)}


def ticks(*offsets: float) -> list[dict]:
    """Other traffic, at these seconds after the start: it moves the clock on."""
    return [{"id": f"tick-{offset:.0f}", "type": "tick", "time": iso(START + offset)} for offset in offsets]


def effects(emitted: list[dict]) -> collections.Counter:
    return collections.Counter(e["causationid"] for e in emitted if e["type"] == "job.done")


def test_the_memory_store_recognises_a_redelivery_within_its_window_only(tmp_path):
    mesh = load(tmp_path / "mesh", MESH)
    within, past = job("within"), job("past")
    items = [within, past, *ticks(600, 1200, 1800, 2400, 3000, HOUR - 10), within, *ticks(HOUR + 60), past]
    emitted: list[dict] = []
    summary = Runtime(mesh, store=MemoryStore(), on_emit=emitted.append).run(inputs(items))
    assert effects(emitted) == {"within": 1, "past": 2}  # the documented limit: one hour of clock time
    assert summary["duplicates"] == 1

    emitted.clear()
    Runtime(mesh, store=MemoryStore(dedup_window=None), on_emit=emitted.append).run(inputs(items))
    assert effects(emitted) == {"within": 1, "past": 1}  # without a window, every record is kept


@pytest.mark.parametrize("backend", ["sqlite", "redis"])
def test_durable_stores_recognise_a_redelivery_at_any_age_after_a_restart(tmp_path, request, backend):
    url = f"sqlite:{tmp_path / 'run.db'}" if backend == "sqlite" else request.getfixturevalue("redis_url")
    mesh = load(tmp_path / "mesh", MESH)
    first: list[dict] = []
    store = open_store(url)
    runtime = Runtime(mesh, store=store, on_emit=first.append)
    runtime.run(inputs([job("old")]))
    store.commit(runtime.snapshot())
    store.close()

    month = 30 * 24 * HOUR
    later: list[dict] = []
    store = open_store(url)  # a new process, a month of clock time later
    runtime = Runtime(mesh, store=store, on_emit=later.append)
    runtime.restore(store.checkpoint())
    summary = runtime.run(inputs([*ticks(month), job("old"), job("new")]))
    store.close()
    assert effects(first) == {"old": 1} and effects(later) == {"new": 1}
    assert summary["duplicates"] == 1
