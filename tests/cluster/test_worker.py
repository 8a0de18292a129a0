"""`meshctl worker` on Redis: the same results as `meshctl run`, effects once under races,
poison entries dead-lettered, graceful stop, and the deployment commands (status, dlq)."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.analysis.validate import require_valid
from engine.cluster.deployment import broker_store
from engine.cluster.worker import Worker, WorkerOptions
from engine.runtime.events import read_events
from engine.storage import open_broker
from engine.storage.broker import APPLIED, FENCED, partition_key

pytestmark = pytest.mark.slow  # starts servers and workers, or routes at volume

REPO = Path(__file__).resolve().parents[2]
ARENA = REPO / "workflows" / "arena"
EVENTS = ARENA / "events.jsonl"
MATCH = {
    "specversion": "1.0",
    "id": "req-1",
    "source": "/lobby",
    "type": "match.requested",
    "time": "2026-01-01T00:00:00Z",
    "data": {"request_id": "m-1", "players": ["p1", "p2"], "region": "eu-west", "mode": "ranked", "round": 1},
}


@pytest.fixture
def broker(redis_url):
    """A broker set up for the arena mesh, as `meshctl publish` would be."""
    broker = broker_store(redis_url, "test", require_valid(str(ARENA)).mesh)
    yield broker
    broker.close()


@pytest.fixture
def store(broker):
    return broker.store


def drain(meshctl, url: str, *extra: str) -> dict:
    result = meshctl(
        "worker", ARENA, "--store", url, "--exit-when-idle", "--http=simulate", "--format=json", *extra
    )
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_one_worker_gives_the_summary_of_meshctl_run(meshctl, broker, store, redis_url, unjudged):
    broker.ingest(list(read_events(str(EVENTS))))
    worker = drain(meshctl, redis_url)
    reference = unjudged(meshctl("run", ARENA, "--events", EVENTS, "--format=json").stdout)
    assert {k: v for k, v in worker.items() if k != "units"} == reference
    assert worker["units"]["committed"] > 0 and "fenced" not in worker["units"]
    assert len(list(store.records("emitted"))) == reference["emitted"] == 50


def test_status_and_dead_letters_of_a_deployment(meshctl, broker, store, redis_url):
    broker.ingest(list(read_events(str(EVENTS))))
    drain(meshctl, redis_url)
    status = json.loads(meshctl("status", ARENA, "--store", redis_url, "--format=json").stdout)
    assert all(q["backlog"] == 0 for q in status["queues"].values()) and status["delayed"] == 0
    assert status["dead_letters"] == {"dlq": 1, "late-scores": 2}
    assert status["summary"]["events_in"] == 32 and status["workers"] == {}
    memory = status["memory"]
    # dlq, its order, seq: in each partition that holds dead letters
    assert memory["estimate"] and memory["classes"]["dead letters"]["keys"] in (3, 6, 9)
    assert memory["classes"]["dedup records"]["keys"] > 0 and memory["bytes"] > 0
    text = meshctl("status", ARENA, "--store", redis_url).output
    assert "memory (estimate" in text and "dedup records" in text and "archive: input" in text
    listed = json.loads(meshctl("dlq", "list", "--store", redis_url, "--format=json").stdout)
    assert sorted(r["reason"] for r in listed) == ["late-event", "late-event", "loop-detected"]

    replay = meshctl("dlq", "replay", ARENA, "--store", redis_url, "--reason", "late-event")
    assert replay.exit_code == 0 and "queued" in replay.output and "2" in replay.output
    again = drain(meshctl, redis_url)
    assert again["delivered"] == 2  # each redriven to the stream, where it is late again
    assert sorted(r.reason for r in store.dead_letters()) == ["late-event", "late-event", "loop-detected"]


def test_a_worker_presumed_dead_cannot_commit_over_the_one_that_took_its_entry(broker, redis_url):
    mesh = require_valid(str(ARENA)).mesh
    other = open_broker(redis_url)
    slow = Worker(mesh, broker, WorkerOptions(name="slow", http="simulate"))
    quick = Worker(mesh, other, WorkerOptions(name="quick", http="simulate"))
    broker.ingest([MATCH])
    home = broker.partition_for(partition_key(MATCH))
    routed = route(slow, home)
    assert len(routed) == 1
    [entry] = slow.broker.read("tasks", "slow", 1, partition=home)
    slow.broker.release(home, "slow")  # as if "slow" had stopped answering and its lease expired
    assert quick.take(home)
    [taken] = quick.broker.reclaim("tasks", "quick", 0, 1, partition=home)
    assert taken.deliveries == 2
    assert slow._unit(home, [entry], lambda: slow._task(entry)) == FENCED
    assert quick._unit(home, [taken], lambda: quick._task(taken)) == APPLIED
    quick.options.exit_when_idle = True
    quick.run()
    emitted = [e["type"] for e in other.store.records("emitted")]
    assert emitted == ["match.created"]  # once, by the worker that owned the delivery
    other.close()


def route(worker: Worker, partition: int) -> list:
    """Take a partition and route the input waiting in it, as one unit; the entries routed."""
    assert worker.take(partition)
    routed = worker.broker.read("input", worker.name, 10, partition=partition)
    assert worker._unit(partition, routed, worker._work(routed)) == APPLIED
    worker.broker.release(partition, worker.name)
    return routed


def _hand_out(broker, lane: str, times: int) -> None:
    """Hand the lane's entries (of every partition) to a worker that never acknowledges them,
    *times* times."""
    broker.ensure_lanes([lane])
    assert any([broker.read(lane, "ghost", 100, partition=p) for p in range(broker.partitions)])
    for _ in range(times - 1):
        assert any([broker.reclaim(lane, "ghost", 0, 100, partition=p) for p in range(broker.partitions)])


def test_an_input_that_keeps_killing_its_workers_is_dead_lettered_as_poison(
    meshctl, broker, store, redis_url
):
    broker.ingest([MATCH])
    _hand_out(broker, "input", 5)
    summary = drain(meshctl, redis_url, "--max-deliveries=5")
    [letter] = store.dead_letters()
    assert (letter.reason, letter.error_type, letter.consumer, letter.attempts) == (
        "retries-exhausted",
        "WorkerLost",
        "mesh",
        5,
    )
    assert summary["delivered"] == 0 and summary["dead_lettered"] == 1


def test_lost_attempts_count_against_the_retry_policy(meshctl, broker, store, redis_url):
    mesh = require_valid(str(ARENA)).mesh
    router = Worker(mesh, broker, WorkerOptions(name="router", http="simulate"))
    broker.ingest([MATCH])
    route(router, broker.partition_for(partition_key(MATCH)))
    _hand_out(broker, "tasks", 3)  # three workers died in the attempt: the default policy allows 3
    drain(meshctl, redis_url, "--reclaim-after=0.1")
    [letter] = store.dead_letters()
    assert (letter.reason, letter.error_type, letter.attempts) == ("retries-exhausted", "WorkerLost", 3)
    assert letter.consumer == "service:match-service/match.requested"
    assert list(store.records("emitted")) == []


def test_a_stream_delivery_lost_with_its_worker_is_processed_not_dead_lettered(
    meshctl, broker, store, redis_url
):
    """Windowed streams have no retry policy: a worker's death is not charged to them."""
    mesh = require_valid(str(ARENA)).mesh
    router = Worker(mesh, broker, WorkerOptions(name="router", http="simulate"))
    broker.ingest(
        [
            {
                **MATCH,
                "id": "gs-1",
                "type": "match.finished",
                "data": {
                    "match_id": "m-1",
                    "player_id": "p1",
                    "opponent_id": "p2",
                    "region": "eu-west",
                    "mode": "ranked",
                    "score": 0,
                    "won": False,
                },
            }
        ]
    )
    route(router, broker.partition_for("stream:leaderboard"))  # where the stream's inputs go
    _hand_out(broker, "stream:leaderboard", 2)
    summary = drain(meshctl, redis_url, "--reclaim-after=0.1", "--lease=0.5")
    assert summary["windows_emitted"] == 1 and store.dead_letters() == []


def test_sigterm_finishes_what_is_in_hand_and_leaves_nothing_pending(broker, redis_url):
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from cli import main; sys.exit(main())",
            "worker",
            str(ARENA),
            "--store",
            redis_url,
            "--name",
            "w-term",
            "--http=simulate",
            "--format=json",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        broker.ingest(list(read_events(str(EVENTS))))
        deadline = time.time() + 60
        while (
            broker.counters().get("events_in", 0) < 32 or "w-term" not in broker.workers()
        ) and time.time() < deadline:
            time.sleep(0.05)  # all routed, and its heartbeat written
        assert "w-term" in broker.workers()
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert json.loads(out)["events_in"] == 32 and "w-term: stopped" in err
    assert broker.pending(["tasks"]) == {"tasks": 0}
    assert "w-term" not in broker.workers()
    assert set(broker.holders().values()) == {None}  # every partition was given up


def test_worker_and_status_need_a_redis_store(meshctl, tmp_path):
    for args in (
        ["worker", ARENA, "--store", f"sqlite:{tmp_path / 'x.db'}"],
        ["status", ARENA, "--store", "memory:"],
    ):
        result = meshctl(*args)
        assert result.exit_code == 2 and "needs a broker store: --store redis://" in result.output


def test_a_journaled_trace_has_an_ingest_record_per_input_counted(meshctl, broker, store, redis_url):
    broker.ingest([MATCH, {"id": "no-type"}, {**MATCH, "id": "req-2"}])  # the ingress would refuse the 2nd
    summary = drain(meshctl, redis_url, "--journal-trace")
    ingests = [r for r in store.records("trace") if r["kind"] == "ingest"]
    assert len(ingests) == summary["events_in"] == 3
    # (a deployment's journals keep the order of each partition, not across partitions)
    assert sorted((r["event"] or "", r.get("rejected") or "") for r in ingests) == [
        ("", "schema-invalid"),
        ("req-1", ""),
        ("req-2", ""),
    ]
