"""T25: dedup past a window. The memory store remembers an effect for `dedup_window` seconds
of clock time (one hour by default), so a redelivery later than that is *not* recognised:
the documented limit of `meshctl run` without a store. A durable store keeps dedup records
for the mesh's `retention.dedup` (seven days by default): a redelivery within it is
recognised, also by a new process after a restart; past it, it is processed again.

A redelivered event keeps its original `time`; the clock is moved on by other traffic
(a tick every ten minutes), as it would be in a long-running mesh.
"""
from __future__ import annotations

import collections

import pytest
from runtime_harness import START, inputs, iso, load

from engine.runtime.interpreter import Runtime
from engine.storage import MemoryStore, open_store

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


DAY = 24 * HOUR


def redelivered_after(url: str, mesh, delay: float) -> tuple[collections.Counter, collections.Counter, dict]:
    """Run `old`, close the store; a new process *delay* seconds of clock time later gets `old` again
    and `new`."""
    first: list[dict] = []
    store = open_store(url, mesh.retention)
    runtime = Runtime(mesh, store=store, on_emit=first.append)
    runtime.run(inputs([job("old")]))
    store.commit(runtime.snapshot())
    store.close()

    later: list[dict] = []
    store = open_store(url, mesh.retention)  # a new process, later
    runtime = Runtime(mesh, store=store, on_emit=later.append)
    runtime.restore(store.checkpoint())
    summary = runtime.run(inputs([*ticks(delay), job("old"), job("new")]))
    store.commit(runtime.snapshot())
    store.close()
    return effects(first), effects(later), summary


@pytest.mark.parametrize("backend", ["sqlite", "redis"])
def test_durable_stores_recognise_a_redelivery_within_the_retention_after_a_restart(
    tmp_path, request, backend
):
    url = f"sqlite:{tmp_path / 'run.db'}" if backend == "sqlite" else request.getfixturevalue("redis_url")
    # the default keeps 7 days
    first, later, summary = redelivered_after(url, load(tmp_path / "mesh", MESH), 6 * DAY)
    assert first == {"old": 1} and later == {"new": 1}
    assert summary["duplicates"] == 1


def durable_url(backend: str, tmp_path, request) -> str:
    return f"sqlite:{tmp_path / 'run.db'}" if backend == "sqlite" else request.getfixturevalue("redis_url")


@pytest.mark.parametrize("backend", ["sqlite", "redis"])
def test_a_durable_store_forgets_a_dedup_record_past_its_retention(tmp_path, request, backend):
    """The documented limit: past `retention.dedup` (7 days by default) a redelivery is processed again."""
    first, later, summary = redelivered_after(durable_url(backend, tmp_path, request),
                                              load(tmp_path / "mesh", MESH), 30 * DAY)
    assert first == {"old": 1} and later == {"old": 1, "new": 1}
    assert summary["duplicates"] == 0


@pytest.mark.parametrize("backend", ["sqlite", "redis"])
@pytest.mark.parametrize(("setting", "delay", "repeats"), [("forever", 30 * DAY, 0), ("2h", 3 * HOUR, 1),
                                                           ("2h", HOUR, 0)])
def test_the_mesh_declares_the_dedup_retention(tmp_path, request, backend, setting, delay, repeats):
    mesh = load(tmp_path / "mesh", MESH + f"""---
apiVersion: meshctl/v1
kind: Mesh
metadata: {{name: jobs}}
spec:
  retention: {{dedup: {setting}}}
""")
    first, later, _ = redelivered_after(durable_url(backend, tmp_path, request), mesh, delay)
    assert later == {"new": 1, **({"old": 1} if repeats else {})}
