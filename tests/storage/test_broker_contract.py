"""The Broker contract: every test runs against every backend with a broker (``deployment``).

``deployment.open()`` is another process's broker on the same deployment (a second worker,
``meshctl status``); ``broker`` is the first one opened. Redis tests are skipped without a
server, and fail under CI=true (tests/conftest.py).
"""
from __future__ import annotations

import importlib
import json
from pathlib import Path

from storage_backends import BROKERS

from engine.storage import BACKENDS, Store
from engine.storage.broker import APPLIED, CONFLICT, FENCED, INPUT, TASKS, Broker, Task

EVENT = {"specversion": "1.0", "id": "e1", "source": "/s", "type": "t.happened"}


def events(n: int) -> list[dict]:
    return [{**EVENT, "id": f"e{i}"} for i in range(n)]


def protocol_methods() -> list[str]:
    return sorted(name for name, value in vars(Broker).items()
                  if callable(value) and not name.startswith("_"))


# --- typing -----------------------------------------------------------------------------------

def test_every_registered_broker_class_has_the_protocol():
    for scheme, backend in BACKENDS.items():
        if backend.broker is None:
            continue
        module, _, name = backend.broker.partition(":")
        cls = getattr(importlib.import_module(module), name)
        missing = [m for m in protocol_methods() if not callable(getattr(cls, m, None))]
        assert missing == [], f"{scheme}: {name} lacks {missing}"


def test_the_contract_runs_on_every_registered_broker():
    assert {BACKENDS[name].broker for name in BROKERS} == {b.broker for b in BACKENDS.values() if b.broker}


def test_the_contract_calls_every_protocol_method():
    source = Path(__file__).read_text(encoding="utf-8")
    assert [m for m in protocol_methods() if f".{m}(" not in source] == []


def test_the_fixture_broker_satisfies_the_protocol(broker):
    assert isinstance(broker, Broker) and isinstance(broker.store, Store)
    assert broker.unit_store() is broker.store


# --- the ingress --------------------------------------------------------------------------------

def test_ingested_events_wait_in_the_input_lane_in_order(broker):
    assert broker.ingest([]) == [] and broker.backlog() == 0
    ids = broker.ingest(events(3))
    assert len(set(ids)) == 3 and broker.backlog() == 3
    broker.ensure_lanes([INPUT])
    entries = broker.read(INPUT, "w1", 10)
    assert [e.id for e in entries] == ids
    assert [json.loads(e.fields["e"])["id"] for e in entries] == ["e0", "e1", "e2"]
    assert {(e.lane, e.deliveries) for e in entries} == {(INPUT, 1)}


def test_ping_and_durability_warning(broker):
    assert broker.ping() is True
    warning = broker.durability_warning()
    assert warning is None or isinstance(warning, str) and warning


# --- reading, pending, acknowledging -------------------------------------------------------------

def test_an_entry_is_handed_to_one_worker_and_pending_until_acknowledged(deployment, broker):
    other = deployment.open()
    broker.ensure_lanes([INPUT, INPUT])  # ensuring again is harmless
    broker.ingest(events(4))
    mine, theirs = broker.read(INPUT, "w1", 2), other.read(INPUT, "w2", 10)
    assert len(mine) == 2 and len(theirs) == 2 and not {e.id for e in mine} & {e.id for e in theirs}
    assert broker.read(INPUT, "w1", 10, block_ms=None) == []
    assert broker.pending([INPUT, TASKS]) == {INPUT: 4, TASKS: 0}
    broker.begin_unit()
    assert broker.commit_unit("w1", mine) == APPLIED
    assert broker.pending([INPUT]) == {INPUT: 2} and broker.lane_backlog([INPUT])[INPUT] == 2
    other.begin_unit()
    assert other.commit_unit("w2", theirs) == APPLIED
    assert broker.backlog() == 0 and broker.lane_backlog([INPUT]) == {INPUT: 0, "delayed": 0}


def test_a_lane_never_used_has_nothing_pending(broker):
    assert broker.pending(["stream:never"]) == {"stream:never": 0}
    assert broker.lane_backlog(["stream:never"]) == {"stream:never": 0, "delayed": 0}


def test_an_idle_entry_is_reclaimed_with_its_delivery_count(deployment, broker):
    other = deployment.open()
    broker.ensure_lanes([TASKS])
    broker.begin_unit()
    broker.commit_unit(tasks=[Task(TASKS, "attempt", {"n": 1})])
    [entry] = broker.read(TASKS, "dead-worker", 1)
    assert other.reclaim(TASKS, "w2", 60_000, 10) == []  # not idle long enough
    [taken] = other.reclaim(TASKS, "w2", 0, 10)
    assert (taken.id, taken.lane, taken.deliveries) == (entry.id, TASKS, 2)
    assert (taken.fields["k"], json.loads(taken.fields["p"])) == ("attempt", {"n": 1})


# --- units of work ---------------------------------------------------------------------------------

def test_a_unit_commits_its_writes_tasks_counters_and_acks_together(deployment, broker):
    broker.ensure_lanes([INPUT, TASKS, "stream:s"])
    broker.ingest(events(1))
    [entry] = broker.read(INPUT, "w1", 1)
    store = broker.unit_store()
    broker.begin_unit()
    store.put_state("run:1", {"step": "a"})
    tasks = [Task(TASKS, "attempt", {"n": 1}), Task("stream:s", "attempt", {"n": 2})]
    assert broker.commit_unit("w1", [entry], tasks, {"events_in": 1, "dead:loop": 2}) == APPLIED
    status = deployment.open()
    assert status.store.get_state("run:1") == {"step": "a"}
    assert status.lane_backlog([INPUT, TASKS, "stream:s"]) == \
        {INPUT: 0, TASKS: 1, "stream:s": 1, "delayed": 0}
    [task] = status.read(TASKS, "w2", 10)
    assert (task.fields["k"], json.loads(task.fields["p"])) == ("attempt", {"n": 1})
    broker.begin_unit()
    broker.commit_unit(counters={"events_in": 2})
    assert status.counters() == {"events_in": 3, "dead:loop": 2}


def test_a_unit_whose_entry_was_taken_over_is_fenced_and_writes_nothing(deployment, broker):
    other = deployment.open()
    broker.ingest(events(1))
    broker.ensure_lanes([INPUT, TASKS])
    [entry] = broker.read(INPUT, "slow", 1)
    [taken] = other.reclaim(INPUT, "quick", 0, 1)  # as if "slow" had stopped answering
    broker.begin_unit()
    broker.unit_store().put_state("run:1", {"by": "slow"})
    assert broker.commit_unit("slow", [entry], [Task(TASKS, "attempt", {})], {"events_in": 1}) == FENCED
    assert other.store.get_state("run:1") is None and other.lane_backlog([TASKS])[TASKS] == 0
    assert other.counters() == {} and other.pending([INPUT]) == {INPUT: 1}
    other.begin_unit()
    assert other.commit_unit("quick", [taken]) == APPLIED


def test_a_unit_whose_reads_changed_conflicts_and_writes_nothing(deployment, broker):
    other = deployment.open()
    store, theirs = broker.unit_store(), other.unit_store()
    broker.begin_unit()
    assert store.get_state("window:s") is None  # read by this unit: checked at its commit
    other.begin_unit()
    theirs.put_state("window:s", {"by": "other"})
    assert other.commit_unit() == APPLIED
    store.put_state("window:s", {"by": "this"})
    assert broker.commit_unit(counters={"n": 1}) == CONFLICT
    assert other.store.get_state("window:s") == {"by": "other"} and other.counters() == {}


def test_reads_ahead_count_as_reads_of_the_unit(deployment, broker):
    other = deployment.open()
    store = broker.unit_store()
    broker.begin_unit()
    broker.prefetch_done([("k1", "c1"), ("k2", "c1")])
    assert store.is_done("k1", "c1") is False
    other.begin_unit()
    other.unit_store().mark_done("k2", "c1", 1.0)
    assert other.commit_unit() == APPLIED
    assert broker.commit_unit() == CONFLICT  # k2 was read (ahead) and has changed since


def test_begin_unit_forgets_what_was_buffered(deployment, broker):
    store = broker.unit_store()
    broker.begin_unit()
    store.put_state("run:1", {"n": 1})
    broker.begin_unit()
    assert broker.commit_unit() == APPLIED
    assert deployment.open().store.get_state("run:1") is None


# --- tasks due later ---------------------------------------------------------------------------------

def test_a_task_due_later_waits_until_promoted(broker):
    broker.ensure_lanes([TASKS])
    broker.begin_unit()
    broker.commit_unit(tasks=[Task(TASKS, "timer", {"n": 1}, due=1000.0),
                              Task(TASKS, "timer", {"n": 2}, due=2000.0)])
    assert broker.lane_backlog([TASKS]) == {TASKS: 0, "delayed": 2}
    assert broker.promote_due(999.0) == 0
    assert broker.promote_due(1500.0) == 1
    assert broker.lane_backlog([TASKS]) == {TASKS: 1, "delayed": 1}
    [entry] = broker.read(TASKS, "w1", 10)
    assert (entry.fields["k"], json.loads(entry.fields["p"])) == ("timer", {"n": 1})
    assert broker.promote_due(5000.0, limit=10) == 1 and broker.lane_backlog([TASKS])["delayed"] == 0


# --- leases ---------------------------------------------------------------------------------------

def test_a_lease_has_one_holder_until_released(deployment, broker):
    other = deployment.open()
    assert broker.hold(INPUT, "w1", 60_000) is True
    assert broker.hold(INPUT, "w1", 60_000) is True  # renewed by its holder
    assert other.hold(INPUT, "w2", 60_000) is False
    other.release(INPUT, "w2")  # not the holder: nothing happens
    assert other.hold(INPUT, "w2", 60_000) is False
    broker.release(INPUT, "w1")
    assert other.hold(INPUT, "w2", 60_000) is True


# --- workers and counters --------------------------------------------------------------------------

def test_heartbeats_list_the_workers_until_they_leave(deployment, broker):
    status = deployment.open()
    assert status.workers() == {}
    broker.heartbeat("w2", {"pid": 2, "seen": "2026-01-01T00:00:01Z"})
    broker.heartbeat("w1", {"pid": 1, "seen": "2026-01-01T00:00:00Z"})
    broker.heartbeat("w1", {"pid": 1, "seen": "2026-01-01T00:00:05Z"})
    assert status.workers() == {"w1": {"pid": 1, "seen": "2026-01-01T00:00:05Z"},
                                "w2": {"pid": 2, "seen": "2026-01-01T00:00:01Z"}}
    assert list(status.workers()) == ["w1", "w2"]
    broker.leave("w1")
    assert list(status.workers()) == ["w2"]


def test_a_new_deployment_has_no_counters(broker):
    assert broker.counters() == {}


# --- close -------------------------------------------------------------------------------------

def test_what_was_queued_outlives_the_broker_that_queued_it(deployment):
    broker = deployment.open()
    broker.ingest(events(2))
    broker.close()
    assert deployment.open().backlog() == 2


# --- memory -------------------------------------------------------------------------------------

def test_memory_counts_keys_and_bytes_per_class(deployment, broker):
    assert deployment.open().memory()["keys"] == 0  # a new deployment holds nothing
    broker.ensure_lanes([INPUT, TASKS])
    broker.ingest(events(20))
    store = broker.unit_store()
    broker.begin_unit()
    for i in range(5):
        store.mark_done(f"/s|e{i}", "svc", 1.0)
    broker.commit_unit()
    report = deployment.open().memory()
    classes = report["classes"]
    assert classes["dedup records"]["keys"] == 5 and classes["queues"]["keys"] >= 2
    assert all(c["bytes"] > 0 for c in classes.values())
    assert report["keys"] == sum(c["keys"] for c in classes.values())
    assert report["bytes"] == sum(c["bytes"] for c in classes.values())
