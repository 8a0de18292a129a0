"""Schedules in a worker deployment: each tick fires exactly once across workers, a killed
worker's ticks are fired by the one that takes over, and ticks missed while no worker ran
follow `catch_up`. Ticks are counted by their deterministic ids, never by wall-clock time."""
from __future__ import annotations

import datetime as dt
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from engine.cluster.deployment import broker_store
from engine.cluster.schedules import state_key
from engine.language.loader import load_mesh

pytestmark = pytest.mark.slow  # starts workers and lets a few seconds of ticks pass

REPO = Path(__file__).resolve().parents[2]

MESH = """
apiVersion: meshctl/v1
kind: Mesh
metadata: {name: ticking}
spec: {deployment: {partitions: 4}}
---
apiVersion: meshctl/v1
kind: EventType
metadata: {name: heartbeat}
spec:
  schema: {type: object, required: [at, missed], properties: {at: {type: string}, missed: {type: integer}}}
---
apiVersion: meshctl/v1
kind: Service
metadata: {name: monitor}
spec:
  subscriptions:
    - on: heartbeat
      do: [{log: "beat {{ data.at }}"}]
---
apiVersion: meshctl/v1
kind: Schedule
metadata: {name: beat}
spec:
  every: 1s
  CATCH_UP
  emit:
    type: heartbeat
    data: {at: "{{ tick.time }}", missed: "{{ tick.missed }}"}
"""


def start(mesh: Path, url: str, name: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", "import sys; from cli import main; sys.exit(main())", "worker", str(mesh),
         "--store", url, "--name", name, "--lease", "1", "--reclaim-after", "1", "--http=simulate",
         "--format=json"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode in (0, -9), err


def ticks(broker) -> list[dict]:
    return [e for e in broker.store.records("emitted") if e["type"] == "heartbeat"]


def wait_for(broker, count: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while len({e["id"] for e in ticks(broker)}) < count and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len({e["id"] for e in ticks(broker)}) >= count, "the ticks stopped"


def seconds(events: list[dict]) -> list[int]:
    return sorted(int(dt.datetime.fromisoformat(e["time"].replace("Z", "+00:00")).timestamp())
                  for e in events)


@pytest.fixture
def deployment(redis_url, tmp_path):
    def make(catch_up: str = ""):
        mesh = tmp_path / "mesh.yaml"
        mesh.write_text(MESH.replace("CATCH_UP", catch_up or "catch_up: skip"), encoding="utf-8")
        broker = broker_store(redis_url, "test", load_mesh(str(mesh))[0])
        return mesh, broker
    return make


def test_two_workers_one_killed_fire_each_tick_exactly_once(deployment, redis_url):
    mesh, broker = deployment()
    home = broker.partition_for(state_key("beat"))
    workers = {name: start(mesh, redis_url, name) for name in ("w1", "w2")}
    try:
        wait_for(broker, 3)
        holder = broker.holders()[home]
        assert holder in workers
        workers[holder].send_signal(signal.SIGKILL)  # the worker firing the ticks dies
        workers[holder].wait(timeout=10)
        before = len({e["id"] for e in ticks(broker)})
        wait_for(broker, before + 4)  # the other one took the partition over and goes on
        survivor = next(name for name in workers if name != holder)
        assert broker.holders()[home] == survivor
    finally:
        for proc in workers.values():
            stop(proc)
    events = ticks(broker)
    ids = Counter(e["id"] for e in events)
    assert [i for i, n in ids.items() if n > 1] == []  # no tick fired twice
    times = seconds(events)
    # and none skipped, even while the partition changed hands
    assert times == list(range(times[0], times[0] + len(times)))
    assert all(e["id"] == f"beat@{e['time']}" and e["data"]["missed"] == 1 for e in events)
    assert broker.counters()["ticks"] == len(events)
    assert broker.counters()["delivered"] >= len(events)  # each went to the monitor


@pytest.mark.parametrize("catch_up", ["skip", "fire_once"])
def test_ticks_missed_while_no_worker_ran(deployment, redis_url, catch_up):
    mesh, broker = deployment(f"catch_up: {catch_up}\n  grace: 1s")
    first = start(mesh, redis_url, "w1")
    try:
        wait_for(broker, 2)
    finally:
        stop(first)
    before = seconds(ticks(broker))
    time.sleep(4)  # a downtime of 4 ticks, longer than the grace of 1s
    second = start(mesh, redis_url, "w2")
    try:
        wait_for(broker, len(before) + 3)
    finally:
        stop(second)
    events = sorted(ticks(broker), key=lambda e: e["time"])
    after = [e for e in events if seconds([e])[0] > before[-1]]
    assert Counter(e["id"] for e in events).most_common(1)[0][1] == 1
    gap = seconds(after)[0] - before[-1]
    if catch_up == "skip":
        assert gap > 2 and all(e["data"]["missed"] == 1 for e in events)  # the missed ticks never fired
    else:
        # one event for the missed ticks, at the latest of them, then the others on time
        assert after[0]["data"]["missed"] == gap  # it stands for every tick since the last one fired
        assert after[0]["data"]["missed"] >= 2
        following = seconds(after)
        assert following == list(range(following[0], following[0] + len(following)))
