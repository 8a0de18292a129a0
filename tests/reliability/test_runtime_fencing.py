"""T07: stale-worker fencing, the part not covered elsewhere: two processes resuming one SQLite run.

On Redis, a worker presumed dead whose late commit must be rejected is covered by
tests/cluster/test_worker.py. `meshctl run --store sqlite:PATH --resume` has no workers
and no leases: the question is what happens when it is started twice on one store (an
operator restarting a run that is in fact still going). Two sessions are opened on the
same checkpoint, as two processes would, and both go on from it; only one of them may
commit, or the journal holds every effect of the overlap twice.
"""
from __future__ import annotations

import collections

from runtime_harness import START, inputs, load

from engine.core.eventtime import format as iso
from engine.runtime.interpreter import Runtime
from engine.storage import SqliteStore, StorageError

MESH = """
apiVersion: meshctl/v1
kind: EventType
metadata: {name: job.submitted}
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


def session(path: str, mesh) -> tuple[SqliteStore, Runtime]:
    """What `meshctl run --resume` does first: open the store and restore its checkpoint."""
    store = SqliteStore(path)
    runtime = Runtime(mesh, store=store)
    if store.checkpoint() is not None:
        runtime.restore(store.checkpoint())
    return store, runtime


def test_two_sessions_resuming_one_sqlite_run_do_not_both_commit(tmp_path):
    mesh = load(tmp_path / "mesh", MESH)
    items = inputs([{"id": f"j{i}", "type": "job.submitted", "time": iso(START + i)} for i in range(200)])
    path = str(tmp_path / "run.db")
    store, runtime = session(path, mesh)
    for item in items[:100]:
        runtime.feed(item)
    store.commit(runtime.snapshot())  # then the process "dies"
    store.close()

    sessions = [session(path, mesh), session(path, mesh)]
    for _, runtime in sessions:  # both run between two commits, as concurrent processes do
        for item in items[runtime.fed:]:
            runtime.feed(item)
        runtime.finish()
    outcomes = []
    for store, runtime in sessions:
        try:
            store.commit(runtime.snapshot())
            outcomes.append("committed")
        except StorageError:
            outcomes.append("fenced")
        store.close()

    reader = SqliteStore(path)
    journals = {name: collections.Counter(e["id"] for e in reader.records(name))
                for name in ("input", "emitted")}
    reader.close()
    assert outcomes == ["committed", "fenced"]
    assert [sorted(set(j.values())) for j in journals.values()] == [[1], [1]]
    assert [len(j) for j in journals.values()] == [200, 200]
