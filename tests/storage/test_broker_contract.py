"""The Broker contract: every test runs against every backend with a broker (``deployment``).

``deployment.open()`` is another process's broker on the same deployment (a second worker,
``meshctl status``); ``broker`` is the first one opened. Redis tests are skipped without a
server, and fail under CI=true (tests/conftest.py).
"""
from __future__ import annotations

import importlib
import json
import time
from pathlib import Path

import pytest
from storage_backends import BROKERS

from engine.core.errors import UsageError
from engine.storage import BACKENDS, Store
from engine.storage.broker import APPLIED, CONFLICT, FENCED, INPUT, TASKS, Broker, Task, partition_key

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
    broker.begin_unit(0)
    assert store.get_state("window:s") is None  # read by this unit: checked at its commit
    other.begin_unit(0)
    theirs.put_state("window:s", {"by": "other"})
    assert other.commit_unit() == APPLIED
    store.put_state("window:s", {"by": "this"})
    assert broker.commit_unit(counters={"n": 1}) == CONFLICT
    assert other.store.get_state("window:s") == {"by": "other"} and other.counters() == {}


def test_reads_ahead_count_as_reads_of_the_unit(deployment, broker):
    other = deployment.open()
    store = broker.unit_store()
    broker.begin_unit(0)
    broker.prefetch_done([("k1", "c1"), ("k2", "c1")])
    assert store.is_done("k1", "c1") is False
    other.begin_unit(0)
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


# --- partitions and their leases -------------------------------------------------------------------

def partitioned(deployment, count: int = 4):
    broker = deployment.open()
    broker.configure(count)
    return broker


def test_a_deployment_keeps_the_number_of_partitions_it_started_with(deployment):
    first = partitioned(deployment, 4)
    assert first.partitions == 4 and deployment.open().partitions == 4
    with pytest.raises(UsageError, match="has 4 partitions and this mesh says 6"):
        deployment.open().configure(6)
    deployment.open().configure(4)  # the same number again is fine


def test_events_of_one_key_go_to_one_partition_in_order(deployment):
    broker = partitioned(deployment)
    keyed = [{**EVENT, "id": f"k{i}", "subject": "player-7"} for i in range(3)]
    broker.ingest(events(8) + keyed)
    broker.ensure_lanes([INPUT])
    home = broker.partition_for(partition_key(keyed[0]))
    assert partition_key(keyed[0]) == "player-7" and partition_key({**EVENT, "partitionkey": "x"}) == "x"
    read = {p: broker.read(INPUT, "w1", 100, partition=p) for p in range(4)}
    assert sum(map(len, read.values())) == 11 and len([p for p in read if read[p]]) > 1
    assert [json.loads(e.fields["e"])["id"] for e in read[home] if e.fields["e"].count("player-7")] == \
        ["k0", "k1", "k2"]
    assert all(e.partition == p for p in read for e in read[p])
    assert broker.partition_backlog([INPUT]) == {p: len(read[p]) for p in range(4)}
    assert broker.partition_lag([INPUT]) == dict.fromkeys(range(4), 0)  # all read: in hand, no lag


def test_lag_per_partition_is_what_no_worker_has_read(deployment):
    broker = partitioned(deployment)
    broker.ensure_lanes([TASKS, "stream:s"])
    broker.begin_unit()
    broker.commit_unit(tasks=[Task(TASKS, "a", {}, partition=2), Task(TASKS, "b", {}, partition=2),
                              Task("stream:s", "c", {}, partition=2), Task(TASKS, "d", {}, partition=1),
                              Task(TASKS, "later", {}, due=10**12, partition=3)])
    lanes = [TASKS, "stream:s"]
    assert broker.partition_lag(lanes) == {0: 0, 1: 1, 2: 3, 3: 0}  # a task due later is not lag
    taken = broker.read(TASKS, "w1", 1, partition=2)
    assert len(taken) == 1 and broker.partition_lag(lanes)[2] == 2
    assert broker.pending(lanes) == {TASKS: 1, "stream:s": 0}


def test_one_read_takes_new_entries_of_every_lane_of_a_partition(deployment):
    broker = partitioned(deployment)
    broker.ensure_lanes([TASKS, "stream:s"])
    broker.begin_unit()
    broker.commit_unit(tasks=[Task(TASKS, "a", {}, partition=2), Task("stream:s", "b", {}, partition=2),
                              Task(TASKS, "c", {}, partition=1)])
    entries = broker.read_lanes([TASKS, "stream:s"], "w1", 10, partitions=[2])
    assert sorted((e.lane, e.fields["k"], e.partition) for e in entries) == \
        [("stream:s", "b", 2), (TASKS, "a", 2)]
    assert broker.owns("w1", entries) and not broker.owns("w2", entries)
    assert [e.fields["k"] for e in broker.read(TASKS, "w1", 10, partition=1)] == ["c"]


def test_a_partition_lease_has_one_holder_until_released(deployment):
    broker, other = partitioned(deployment), deployment.open()
    assert broker.hold(1, "w1", 60_000) is True
    assert broker.hold(1, "w1", 60_000) is True  # renewed by its holder
    assert other.hold(1, "w2", 60_000) is False and other.hold(2, "w2", 60_000) is True
    assert broker.holders() == {0: None, 1: "w1", 2: "w2", 3: None}
    other.release(1, "w2")  # not the holder: nothing happens
    assert other.hold(1, "w2", 60_000) is False
    broker.release(1, "w1")
    assert other.hold(1, "w2", 60_000) is True


def test_a_unit_of_a_partition_taken_over_is_fenced_and_writes_nothing(deployment):
    """The lease expired (the holder stalled) and another worker took the partition: the old
    holder's unit is refused even though its entry is still in its hand."""
    broker, other = partitioned(deployment), deployment.open()
    broker.ensure_lanes([TASKS])
    broker.begin_unit()
    broker.commit_unit(tasks=[Task(TASKS, "a", {}, partition=3)])
    assert broker.hold(3, "slow", 1)  # a lease of 1 ms: gone at once
    [entry] = broker.read(TASKS, "slow", 1, partition=3)
    deadline = time.monotonic() + 5
    while not other.hold(3, "quick", 60_000) and time.monotonic() < deadline:
        time.sleep(0.01)
    broker.begin_unit(3)
    broker.unit_store().put_state("run:1", {"by": "slow"})
    assert broker.commit_unit("slow", [entry], [Task(TASKS, "b", {})], {"n": 1}) == FENCED
    assert other.store.get_state("run:1") is None and other.counters() == {}


def test_a_unit_adds_tasks_to_other_partitions_and_records_to_its_own(deployment):
    broker, reader = partitioned(deployment), deployment.open()
    broker.ensure_lanes([TASKS])
    broker.begin_unit(0)
    broker.unit_store().put_state("run:r", {"n": 1})
    broker.unit_store().mark_done("key", "c1", 1.0)
    tasks = [Task(TASKS, "here", {}), Task(TASKS, "there", {"x": 1}, partition=3),
             Task(TASKS, "later", {}, due=50.0, partition=2)]
    assert broker.commit_unit(tasks=tasks, counters={"n": 2}) == APPLIED
    assert broker.forward(0) == 0  # nothing left to move: moved with the commit
    assert [e.fields["k"] for e in reader.read(TASKS, "w", 10, partition=0)] == ["here"]
    assert [json.loads(e.fields["p"]) for e in reader.read(TASKS, "w", 10, partition=3)] == [{"x": 1}]
    assert reader.promote_due(100.0, partitions=[2]) == 1
    assert [e.fields["k"] for e in reader.read(TASKS, "w", 10, partition=2)] == ["later"]
    assert reader.home("state:run:r") == 0 and reader.home("state:run:none") is None
    assert reader.store.get_state("run:r") == {"n": 1} and reader.store.is_done("key", "c1")
    assert reader.counters() == {"n": 2}


# --- event-time progress: partition watermarks ------------------------------------------------------

def test_input_progress_is_committed_with_a_unit_of_its_partition(deployment):
    broker, reader = partitioned(deployment), deployment.open()
    assert broker.input_progress(2) is None
    assert reader.watermarks() == dict.fromkeys(range(4), (None, None))
    broker.begin_unit(2)
    assert broker.commit_unit(progress=1_714_824_100.25) == APPLIED
    assert reader.input_progress(2) == 1_714_824_100.25
    assert reader.watermarks()[2] == (1_714_824_100.25, None)


def test_bounded_tasks_and_holds_are_pending_work_until_acknowledged(deployment):
    """A task with a bound counts in its partition's pending work from its commit (due now,
    due later, or for another partition) until a unit acknowledges it; a hold until released;
    a task without a bound never counts."""
    broker, reader = partitioned(deployment), deployment.open()
    broker.ensure_lanes([TASKS])
    broker.begin_unit(0)
    assert broker.commit_unit(tasks=[Task(TASKS, "a", {}, partition=1, bound=50.0),
                                     Task(TASKS, "b", {}, partition=1, bound=70.0),
                                     Task(TASKS, "free", {}, partition=1),
                                     Task(TASKS, "later", {}, due=10**12, partition=2, bound=30.0),
                                     Task(TASKS, "here", {}, bound=90.0)],
                              holds={"buffered": 20.0}) == APPLIED
    broker.forward(0)  # on a cluster the tasks for other partitions wait in partition 0's outbox
    lows = {p: low for p, (_, low) in reader.watermarks().items()}
    assert lows == {0: 20.0, 1: 50.0, 2: 30.0, 3: None}
    entries = reader.read(TASKS, "w1", 10, partition=1)
    assert sorted(e.fields["k"] for e in entries) == ["a", "b", "free"]
    first = [e for e in entries if e.fields["k"] == "a"]
    reader.begin_unit(1)
    assert reader.commit_unit("w1", first) == APPLIED
    assert reader.watermarks()[1][1] == 70.0
    reader.begin_unit(1)
    assert reader.commit_unit("w1", [e for e in entries if e.fields["k"] != "a"]) == APPLIED
    assert reader.watermarks()[1][1] is None
    assert reader.promote_due(10**12 + 1, partitions=[2]) == 1
    assert reader.watermarks()[2][1] == 30.0  # promoted, still to be done
    [later] = reader.read(TASKS, "w1", 10, partition=2)
    reader.begin_unit(2)
    assert reader.commit_unit("w1", [later]) == APPLIED
    broker.begin_unit(0)
    assert broker.commit_unit(holds={"buffered": None}) == APPLIED
    assert {p: low for p, (_, low) in reader.watermarks().items()} == {0: 90.0, 1: None, 2: None, 3: None}


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
    new = deployment.open().memory()  # a new deployment holds nothing but its settings
    assert new["keys"] == 1 and list(new["classes"]) == ["leases, workers, counters"]
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


def test_deployed_mesh_versions_are_kept_listed_in_order_and_retired(broker, deployment):
    assert broker.mesh_versions() == []
    broker.deploy_mesh("aaa", '{"files": {}}', {"path": "one"})
    broker.deploy_mesh("bbb", '{"files": {"x": "y"}}', {"path": "two"})
    other = deployment.open()  # another process sees them
    assert [v["version"] for v in other.mesh_versions()] == ["aaa", "bbb"]
    assert other.mesh_versions()[0]["path"] == "one"
    assert other.mesh_snapshot("bbb") == '{"files": {"x": "y"}}'
    broker.deploy_mesh("aaa", '{"files": {}}', {"path": "one"})  # deployed again: current again
    assert [v["version"] for v in broker.mesh_versions()] == ["bbb", "aaa"]
    other.retire_mesh("bbb")
    assert [v["version"] for v in broker.mesh_versions()] == ["aaa"]
    assert broker.mesh_snapshot("bbb") is None
