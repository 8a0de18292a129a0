"""Partitions of a worker deployment: each is one worker's at a time, they move when workers
join and leave (SIGTERM hands them over at once), and a worker never runs the handlers of
work another worker has taken over. The handler of the mesh below appends each event's id to
a file: a second run of it would show there."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from engine.cluster.deployment import broker_store
from engine.cluster.worker import Worker, WorkerOptions
from engine.language.loader import load_mesh
from engine.storage.broker import APPLIED, partition_key

REPO = Path(__file__).resolve().parents[2]

MESH = """
apiVersion: meshctl/v1
kind: EventType
metadata: {name: job.done}
spec: {external: true}
---
apiVersion: meshctl/v1
kind: Service
metadata: {name: recorder}
spec:
  subscriptions:
    - on: job.done
      do: {call: {python: "handlers:record"}}
"""

HANDLERS = '''
import time

LOG = {log!r}


def record(event, context):
    with open(LOG, "a", encoding="utf-8") as log:
        log.write(event["id"] + "\\n")
    time.sleep({pause})
'''


def job(n: int, subject: str | None = None) -> dict:
    return {"specversion": "1.0", "id": f"j{n}", "source": "/jobs", "type": "job.done",
            "subject": subject or f"s{n}"}


def make_mesh(tmp_path: Path, pause: float = 0.0, settings: str = "") -> Path:
    mesh = tmp_path / "mesh"
    mesh.mkdir(exist_ok=True)
    (mesh / "mesh.yaml").write_text(MESH + settings)
    (mesh / "handlers.py").write_text(HANDLERS.format(log=str(tmp_path / "handled.log"), pause=pause))
    return mesh


def handled(tmp_path: Path) -> Counter:
    log = tmp_path / "handled.log"
    return Counter(log.read_text().split()) if log.exists() else Counter()


# --- where a delivery goes ------------------------------------------------------------------------

def test_deliveries_sharing_a_state_key_share_a_partition_key():
    """The subscriptions of a service with state reach the same key's state from one partition;
    an ordered subscription is keyed by its ordering key; one with no key by nothing."""
    from engine.runtime.interpreter import Runtime

    mesh, _ = load_mesh(str(REPO / "workflows" / "matchmaking"))
    rt = Runtime(mesh)
    event = {"id": "1", "source": "s", "type": "t", "data": {"match_id": "m-1", "queue": "eu/ranked"}}
    formed, reported = (rt.delivery_key(f"service:match-service/{t}", event)
                        for t in ("match.formed", "match.reported"))
    assert formed == reported == "service:match-service\x00m-1"
    assert rt.delivery_key("orchestration:settle-match", event) == "orchestration:settle-match\x00m-1"
    assert rt.delivery_key("service:matchmaker/ticket.accepted", event) == 'service:matchmaker\x00"eu/ranked"'
    assert rt.delivery_key("service:front-end/match.started", event) is None


# --- a batch taken over: no handler runs for work another worker has -------------------------------

@pytest.fixture
def deployment(tmp_path, redis_url):
    mesh_dir = make_mesh(tmp_path)
    mesh, _ = load_mesh(str(mesh_dir))
    brokers = []

    def worker(name: str, lease: float = 10.0) -> Worker:
        broker = broker_store(redis_url, "test", mesh)
        brokers.append(broker)
        return Worker(mesh, broker, WorkerOptions(name=name, lease=lease, http="simulate"))

    yield worker
    for broker in brokers:
        broker.close()


def _routed_batch(worker: Worker, count: int) -> tuple[int, list]:
    """*count* jobs of one subject ingested and routed by *worker*; their attempts, now in its hand."""
    events = [job(n, "one-subject") for n in range(count)]
    worker.broker.ingest(events)
    home = worker.broker.partition_for(partition_key(events[0]))
    assert worker.take(home)
    routed = worker.broker.read("input", worker.name, 100, partition=home)
    assert worker._unit(home, routed, worker._work(routed)) == APPLIED
    batch = worker.broker.read("tasks", worker.name, 100, partition=home)
    assert len(batch) == count
    return home, batch


def test_a_batch_whose_partition_was_taken_over_runs_no_handler(deployment, tmp_path):
    """The worker stalled past its lease with a batch in hand; another took the partition and
    did the batch. When the first comes back it runs nothing: each handler ran once."""
    stalled, taker = deployment("stalled", lease=0.3), deployment("taker")
    home, batch = _routed_batch(stalled, 5)
    time.sleep(0.4)  # the lease of the stalled worker expires
    assert taker.take(home)
    assert taker._take_over(home) == 5  # its former holder's entries, taken over in order
    assert handled(tmp_path) == {f"j{n}": 1 for n in range(5)}
    stalled._batch(home, batch)  # back: its partition is another's, so nothing is run
    assert handled(tmp_path) == {f"j{n}": 1 for n in range(5)}
    assert stalled.units["fenced"] >= 1 and home not in stalled.held
    assert stalled.broker.lane_backlog(stalled.lanes) == dict.fromkeys([*stalled.lanes, "delayed"], 0)


def test_a_batch_whose_entries_were_taken_is_dropped_not_redone_one_by_one(deployment, tmp_path):
    """The entries of a batch were taken from the worker while it ran them: its commit is
    fenced and it drops the batch, instead of running each entry's handler again alone."""
    worker, thief = deployment("worker"), deployment("thief")
    home, batch = _routed_batch(worker, 4)
    stolen = thief.broker.reclaim("tasks", "thief", 0, 100, partition=home)
    assert len(stolen) == 4
    worker._batch(home, batch)
    assert handled(tmp_path) == {f"j{n}": 1 for n in range(4)}  # the batch's one run, then fenced
    assert worker.units["fenced"] == 1 and worker.units["committed"] == 1  # (the routing unit)


def test_a_worker_whose_mesh_has_another_number_of_partitions_is_refused(tmp_path, redis_url, meshctl):
    mesh_dir = make_mesh(tmp_path)
    (tmp_path / "events.jsonl").write_text(json.dumps(job(1)) + "\n")
    assert meshctl("publish", mesh_dir, tmp_path / "events.jsonl", "--store", redis_url).exit_code == 0
    (tmp_path / "other").mkdir()
    other = make_mesh(tmp_path / "other", settings="---\napiVersion: meshctl/v1\nkind: Mesh\n"
                      "metadata: {name: jobs}\nspec: {deployment: {partitions: 3}}\n")
    result = meshctl("worker", other, "--store", redis_url, "--exit-when-idle")
    assert result.exit_code == 2
    assert f"the deployment at {redis_url} has 8 partitions and this mesh says 3" in result.output


# --- workers joining and leaving ------------------------------------------------------------------

def _status(meshctl, mesh_dir: Path, url: str) -> dict:
    return json.loads(meshctl("status", mesh_dir, "--store", url, "--format=json").stdout)


def _wait(what, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = what()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout}s: {what.__doc__}")


@pytest.mark.slow
def test_partitions_move_when_workers_join_and_leave_and_each_event_is_handled_once(
    tmp_path, redis_url, meshctl
):
    mesh_dir = make_mesh(tmp_path, pause=0.004)
    count = 1200
    (tmp_path / "events.jsonl").write_text("".join(json.dumps(job(n)) + "\n" for n in range(count)))
    assert meshctl("publish", mesh_dir, tmp_path / "events.jsonl", "--store", redis_url).exit_code == 0
    command = [sys.executable, "-c", "import sys; from cli import main; sys.exit(main())", "worker",
               str(mesh_dir), "--store", redis_url, "--lease=2", "--format=json"]

    def start(name: str) -> subprocess.Popen:
        return subprocess.Popen([*command, "--name", name], cwd=REPO, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)

    def holders() -> set:
        return {p["holder"] for p in _status(meshctl, mesh_dir, redis_url)["partitions"].values()}

    first = start("a")
    second = None
    try:
        def a_holds_all():
            """worker a holds every partition"""
            return holders() == {"a"}

        def both_hold():
            """a and b both hold partitions"""
            return holders() == {"a", "b"}

        _wait(a_holds_all)
        second = start("b")
        _wait(both_hold)
        text = meshctl("status", mesh_dir, "--store", redis_url).output
        assert "partition 0" in text and "held by a" in text and "held by b" in text
        second.send_signal(signal.SIGTERM)  # b finishes its unit and hands its partitions over
        assert second.wait(timeout=30) == 0
        _wait(a_holds_all)

        def drained():
            """every event handled"""
            status = _status(meshctl, mesh_dir, redis_url)
            return status["summary"]["events_in"] == count and not any(
                q["backlog"] for q in status["queues"].values())

        _wait(drained, timeout=120)
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=30)
    assert first.returncode == 0
    assert handled(tmp_path) == {f"j{n}": 1 for n in range(count)}  # none lost, none handled twice
    assert holders() == {None}  # both gone: every lease released
