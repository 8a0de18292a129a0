"""What one event costs a deployment, and what that predicts for many workers and Redis nodes.

    python -m bench.scalecost --events 5000 [--mesh arena|orders] [--rtt-ms 0.25] [--json]

Publishes generated game events (workflows/arena, no faults), or orders (workflows/orders),
into a fresh Redis prefix and drains them with one worker *in this process*, reading off:

- the worker's CPU per input event (``time.process_time``);
- Redis's CPU per input event (``INFO cpu``: main-thread user + system time of the server);
- Redis commands per input event (``INFO commandstats``: calls, the commands a Lua script
  runs included) and the round trips the worker made per input event (requests written to
  its connections: a pipeline or a script is one);
- the busiest partition's share of the worker's time in units of work: a partition is one
  worker's at a time, so that share of the work cannot be spread.

From these, :func:`predict` models the drain rate of N workers on M Redis primaries: each
worker is one process on a core of its own, busy for its CPU plus one network round trip
per request; each primary is one thread, busy for its share of Redis's CPU; the busiest
partition runs on one worker. The model is
checked against what this machine can measure: 1 and 2 worker processes, on the same two
cores as Redis and the publisher (:func:`predict_here`).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

from . import orders
from .common import REPO
from .e2e import generate

ARENA = REPO / "workflows" / "arena"
MESHES = {"arena": ARENA, "orders": REPO / "workflows" / "orders"}
REDIS = os.environ.get("MESHCTL_TEST_REDIS", "redis://127.0.0.1:6379/0")
WORKERS = (1, 2, 8, 32, 128)
PRIMARIES = (1, 3, 6)


@dataclass
class Cost:
    """Per input event, measured on one worker."""

    events: int
    seconds: float  # wall time of the drain
    worker_cpu_us: float
    redis_cpu_us: float
    commands: float  # Redis commands run (scripts' inner commands included)
    round_trips: float  # requests the worker sent (a pipeline or a script is one)
    loopback_rtt_us: float  # one PING round trip on this machine
    shares: tuple[float, ...] = (1.0,)  # each partition's share of the worker's unit time, by number

    @property
    def busiest_share(self) -> float:
        return max(self.shares)

    def busiest_worker_share(self, workers: int) -> float:
        """The largest share of the work one of *workers* gets: partition p is the (p mod n)-th
        live worker's (engine/cluster/worker.py), and a partition is one worker's at a time."""
        loads = [0.0] * min(workers, len(self.shares))
        for partition, share in enumerate(self.shares):
            loads[partition % len(loads)] += share
        return min(max(loads), 1.0)  # (shares add up to 1 but for rounding)


class _PartitionTime:
    """Attributes the worker's CPU between a unit's start and its commit to the unit's
    partition: a partition is one worker's at a time, so its share bounds the speed-up."""

    def __init__(self, broker):
        self.broker, self.busy = broker, {}
        self._begin, self._commit = broker.begin_unit, broker.commit_unit
        self._current, self._since = None, 0.0

    def __enter__(self):
        def begin(partition=None):
            self._current, self._since = partition, time.process_time()
            return self._begin(partition)

        def commit(*args, **kwargs):
            result = self._commit(*args, **kwargs)
            if self._current is not None:
                spent = time.process_time() - self._since
                self.busy[self._current] = self.busy.get(self._current, 0.0) + spent
            self._current = None
            return result

        self.broker.begin_unit, self.broker.commit_unit = begin, commit
        return self

    def __exit__(self, *exc):
        del self.broker.begin_unit, self.broker.commit_unit  # the class's methods again

    def shares(self) -> tuple[float, ...]:
        total, count = sum(self.busy.values()), max(self.busy, default=0) + 1
        return tuple(self.busy.get(p, 0.0) / total for p in range(count)) if total else (1.0,)


class _RoundTrips:
    """Counts the requests written by every redis-py connection while installed."""

    def __init__(self):
        from redis.connection import Connection

        self.count, self._cls = 0, Connection
        self._original = Connection.send_packed_command

    def __enter__(self):
        original, counter = self._original, self

        def counted(conn, command, check_health=True):
            counter.count += 1
            return original(conn, command, check_health)

        self._cls.send_packed_command = counted
        return self

    def __exit__(self, *exc):
        self._cls.send_packed_command = self._original


def _redis_cpu(client) -> float:
    info = client.info("cpu")
    user = info.get("used_cpu_user_main_thread", info["used_cpu_user"])
    system = info.get("used_cpu_sys_main_thread", info["used_cpu_sys"])
    return float(user) + float(system)


def _commands(client) -> int:
    stats = client.info("commandstats")
    return sum(v["calls"] for k, v in stats.items() if k not in ("cmdstat_info", "cmdstat_ping"))


def _rtt_us(client, n: int = 2000) -> float:
    start = time.perf_counter()
    for _ in range(n):
        client.ping()
    return (time.perf_counter() - start) / n * 1e6


def _inputs(mesh: str, path: Path, events: int) -> None:
    if mesh == "arena":
        generate(str(path), events, seed=11, players=200)
    else:
        orders.generate(str(path), events)


def measure(events: int, workdir: Path, mesh_name: str = "arena") -> Cost:
    """Publish *events* input events of *mesh_name* (``arena``: game events, whose windowed
    stream pins two thirds of them to one partition; ``orders``: an orchestration run per
    order, spread by key), then drain them with one in-process worker."""
    from engine.cluster.worker import Worker, WorkerOptions
    from engine.language.loader import load_mesh
    from engine.storage import open_broker

    from .scaleout import meshctl

    folder = MESHES[mesh_name]
    path = workdir / "events.jsonl"
    _inputs(mesh_name, path, events)
    url = f"{REDIS}?prefix=scalecost-{uuid.uuid4().hex[:10]}"
    subprocess.run(meshctl("publish", str(folder), str(path), "--store", url), cwd=REPO, check=True,
                   capture_output=True, timeout=300)
    broker = open_broker(url)
    client = broker.store.client
    try:
        mesh, _ = load_mesh(str(folder))
        worker = Worker(mesh, broker, WorkerOptions(name="cost", http="simulate", exit_when_idle=True))
        rtt = _rtt_us(client)
        cpu0, commands0 = _redis_cpu(client), _commands(client)
        wall0, proc0 = time.perf_counter(), time.process_time()
        with _RoundTrips() as trips, _PartitionTime(broker) as partitions:
            worker.run()
        wall, proc = time.perf_counter() - wall0, time.process_time() - proc0
        redis_cpu, commands = _redis_cpu(client) - cpu0, _commands(client) - commands0
        return Cost(events, wall, proc / events * 1e6, redis_cpu / events * 1e6,
                    commands / events, trips.count / events, rtt, partitions.shares())
    finally:
        broker.store.drop()
        broker.close()


def predict(cost: Cost, workers: int, primaries: int, rtt_us: float, scaling: float = 0.9) -> dict:
    """Events per second of *workers* processes (a core each) on *primaries* Redis primaries.

    A worker handles one event per ``worker CPU + round trips × RTT``; a primary one per
    ``Redis CPU`` (one thread), and *primaries* of them share the work with *scaling*
    efficiency each beyond the first (keys spread over slots unevenly; cross-slot hand-offs).
    A partition is one worker's at a time and partitions are dealt out in turn, so the worker
    with the largest share of the measured work bounds the rate too ("partitions": the
    speed-up stops at the number of partitions, or earlier when one partition does most of
    the work). The smallest bound is the prediction, and the bound that sets it is named.
    """
    per_worker = 1e6 / (cost.worker_cpu_us + cost.round_trips * rtt_us)
    bounds = {"workers": workers * per_worker, "partitions": per_worker / cost.busiest_worker_share(workers),
              "redis": 1e6 / cost.redis_cpu_us * (1 + (primaries - 1) * scaling)}
    bound = min(bounds, key=bounds.get)
    return {"workers": workers, "primaries": primaries, "events_per_s": round(bounds[bound]), "bound": bound}


def predict_here(cost: Cost, workers: int, cores: int = 2) -> dict:
    """This machine: workers, Redis and nothing else share *cores*; round trips are loopback
    ones and cost the worker its wait. A rate needs ``worker CPU + Redis CPU`` of core time
    per event in all, and no worker goes faster than alone."""
    alone = 1e6 / (cost.worker_cpu_us + cost.round_trips * cost.loopback_rtt_us)
    cores_bound = cores * 1e6 / (cost.worker_cpu_us + cost.redis_cpu_us)
    redis_bound = 1e6 / cost.redis_cpu_us
    busiest = alone / cost.busiest_worker_share(workers)
    rate = min(workers * alone, cores_bound, redis_bound, busiest)
    return {"workers": workers, "events_per_s": round(rate)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--mesh", choices=sorted(MESHES), default="arena",
                        help="arena (game events; a windowed stream) or orders (an orchestration per order)")
    parser.add_argument("--rtt-ms", type=float, default=0.25,
                        help="network round trip between a worker and Redis in the model (default 0.25)")
    parser.add_argument("--json", action="store_true", help="one JSON document instead of the text")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cost = measure(args.events, Path(tmp), args.mesh)
    model = [predict(cost, w, p, args.rtt_ms * 1000) for p in PRIMARIES for w in WORKERS]
    here = [predict_here(cost, w) for w in (1, 2)]
    if args.json:
        print(json.dumps({"cost": asdict(cost), "rtt_ms": args.rtt_ms, "model": model, "here": here}))
        return
    print(f"per input event of {args.mesh}, 1 worker, {cost.events} events in {cost.seconds:.1f} s:")
    print(f"  worker CPU {cost.worker_cpu_us:,.0f} µs, Redis CPU {cost.redis_cpu_us:,.0f} µs, "
          f"{cost.commands:.1f} Redis commands, {cost.round_trips:.1f} round trips "
          f"(loopback RTT {cost.loopback_rtt_us:.0f} µs); the busiest partition did "
          f"{cost.busiest_share:.0%} of the work")
    print(f"model at RTT {args.rtt_ms} ms (events/s):")
    for p in PRIMARIES:
        row = [m for m in model if m["primaries"] == p]
        print(f"  {p} primar{'y' if p == 1 else 'ies'}: " + ", ".join(
            f"{m['workers']} workers {m['events_per_s']:,} ({m['bound']})" for m in row))
    print("this machine (2 cores shared): " + ", ".join(
        f"{h['workers']} worker(s) {h['events_per_s']:,}" for h in here))


if __name__ == "__main__":
    main()
