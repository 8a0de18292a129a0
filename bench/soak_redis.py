"""T22 soak: several workers on Redis, one SIGKILLed every few seconds, while events stream in.

    python -m bench.soak_redis --workers 4 --events 50000 --kill-every 30

The game example's input (generated, plus one schema-invalid "poison" result per 1,000
events) is published into a Redis store by a producer thread at ``--rate`` events per
second (0: as fast as it can), while ``--workers`` `meshctl worker` processes run the mesh
(every ``match.requested`` fails its first attempt). Every ``--kill-every`` seconds a random
worker is SIGKILLed and a new one started. Once everything is published and the deployment
is quiet, the workers are stopped (SIGTERM) and a draining worker closes the open windows.

Prints one JSON line: events, kills, lost (effects of the single-process reference run
missing from the deployment), duplicate effects (an emitted event or dead letter recorded
twice), dead letters against injected poison, the largest pending-entries list seen, and
p50/p99 end-to-end latency (publish → each emitted event, wall clock).
"""
from __future__ import annotations

import argparse
import json
import random
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path

from .common import REPO
from .e2e import generate
from .scaleout import ARENA, REDIS, meshctl, outcome, single_process

FAULTS = ["service:match-service/match.requested=1:ConnectionError"]


def with_poison(path: Path, every: int = 1000) -> int:
    """Insert a result without its score (schema-invalid) after every *every* events."""
    lines = path.read_text().splitlines()
    out, poison = [], 0
    for i, line in enumerate(lines, start=1):
        out.append(line)
        if i % every == 0:
            poison += 1
            out.append(json.dumps({"specversion": "1.0", "id": f"poison-{poison}", "source": "/soak",
                                   "type": "match.finished", "time": json.loads(line)["time"],
                                   "data": {"match_id": f"x-{poison}", "player_id": "p-x",
                                            "opponent_id": "p-y", "region": "eu-west", "mode": "ranked",
                                            "won": True}}))
    path.write_text("\n".join(out) + "\n")
    return poison


def percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return round(values[min(len(values) - 1, int(p / 100 * len(values)))], 4)


class Deployment:
    """Worker processes on one store, started, killed and stopped by name."""

    def __init__(self, url: str, workdir: Path, reclaim_after: float, faults: list[str], extra: tuple = ()):
        self.url, self.workdir, self.reclaim_after, self.faults, self.extra = (
            url,
            workdir,
            reclaim_after,
            faults,
            extra,
        )
        self.procs: dict[str, subprocess.Popen] = {}
        self.started = 0

    def start(self) -> str:
        self.started += 1
        name = f"w{self.started}"
        log = open(self.workdir / f"{name}.log", "w")
        self.procs[name] = subprocess.Popen(
            meshctl("worker", str(ARENA), "--store", self.url, "--name", name, "--http=simulate",
                    f"--reclaim-after={self.reclaim_after}", f"--lease={self.reclaim_after}", "--format=json",
                    *(f"--fault={f}" for f in self.faults), *self.extra),
            cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
        return name

    def kill(self, rng: random.Random) -> str:
        alive = sorted(n for n, p in self.procs.items() if p.poll() is None)
        victim = rng.choice(alive)
        self.procs[victim].send_signal(signal.SIGKILL)
        self.procs[victim].wait()
        return victim

    def stop(self) -> dict[str, int]:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        return {name: proc.wait(timeout=120) for name, proc in self.procs.items()}

    def rss_mb(self) -> float:
        """Resident memory of the live workers, in MiB (from /proc)."""
        total = 0
        for proc in self.procs.values():
            try:
                for line in open(f"/proc/{proc.pid}/status"):
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
            except OSError:
                continue
        return round(total / 1024, 1)


def quiet(broker, expected_inputs: int) -> bool:

    counted = broker.counters().get("events_in", 0)
    backlog = broker.lane_backlog(["input", "tasks", "stream:leaderboard"])
    return counted >= expected_inputs and not any(backlog.values())


def pending(broker) -> int:

    return sum(broker.pending(["input", "tasks", "stream:leaderboard"]).values())


def latencies(emitted: list[dict], published: dict[str, float]) -> list[float]:
    """Seconds from an input's publication to each event emitted because of it."""
    from engine.core.eventtime import parse_or_none

    out = []
    for event in emitted:
        root, when = event.get("correlationid"), parse_or_none(event.get("time"))
        if root in published and when is not None:
            out.append(when - published[root])
    return out


def soak(workers: int, events: int, kill_every: float, rate: float, seed: int, workdir: Path) -> dict:
    from engine.runtime.events import read_events
    from engine.storage import open_broker

    path = workdir / "events.jsonl"
    generate(str(path), events, seed=seed, players=500)
    poison = with_poison(path)
    reference = single_process(path, workdir, FAULTS)
    items = list(read_events(str(path)))
    url = f"{REDIS}?prefix=soak-{uuid.uuid4().hex[:10]}"
    broker = open_broker(url)
    store = broker.store
    deployment = Deployment(url, workdir, reclaim_after=5.0, faults=FAULTS)
    for _ in range(workers):
        deployment.start()
    rng = random.Random(seed)
    published: dict[str, float] = {}
    done = threading.Event()

    def produce() -> None:
        start, sent, batch = time.time(), 0, 200
        while sent < len(items):
            if rate:
                time.sleep(max(0.0, start + sent / rate - time.time()))
            chunk = items[sent:sent + batch]
            broker.ingest(chunk)
            now = time.time()
            for event in chunk:
                published[event["id"]] = now
            sent += len(chunk)
        done.set()

    producer = threading.Thread(target=produce, daemon=True)
    began = time.time()
    producer.start()
    kills, max_pending, peak_rss, next_kill = [], 0, 0.0, began + kill_every
    while not (done.is_set() and quiet(broker, len(items))):
        time.sleep(0.5)
        max_pending = max(max_pending, pending(broker))
        peak_rss = max(peak_rss, deployment.rss_mb())
        if time.time() >= next_kill:
            kills.append(deployment.kill(rng))
            deployment.start()
            next_kill = time.time() + kill_every
        if time.time() - began > 3600:
            break
    processed = time.time() - began
    codes = deployment.stop()
    drain = subprocess.run(meshctl("worker", str(ARENA), "--store", url, "--exit-when-idle",
                                   "--http=simulate", "--format=json", *(f"--fault={f}" for f in FAULTS)),
                           cwd=REPO, capture_output=True, text=True, timeout=600)
    from engine.cluster.deployment import deployment_summary

    emitted = list(store.records("emitted"))
    dead = [r.as_dict() for r in store.dead_letters()]
    got = outcome(emitted, dead, deployment_summary(broker))
    lost = len(set(reference["emitted"]) - set(got["emitted"])) + len(
        set(reference["dead"]) - set(got["dead"])
    )
    ids = [e["id"] for e in emitted]
    wait = latencies(emitted, published)
    result = {"test": "T22", "workers": workers, "events": len(items), "kill_every_s": kill_every,
              "kills": len(kills), "seconds": round(processed, 1),
              "events_per_s": round(len(items) / processed, 1), "lost": lost,
              "duplicate_effects": len(ids) - len(set(ids)), "identical": got == reference,
              "dead_letters": len(dead), "poison": poison,
              "schema_invalid_dead": got["summary"]["dead_lettered_by_reason"].get("schema-invalid", 0),
              "max_pending": max_pending, "pel_at_end": pending(broker), "peak_worker_rss_mb": peak_rss,
              "latency_p50_s": percentile(wait, 50), "latency_p99_s": percentile(wait, 99),
              # SIGTERM: 0 once a worker runs; -15 if it came while the worker was still starting
              "sigterm_exit_codes": sorted({code for name, code in codes.items() if name not in kills}),
              "drain_exit": drain.returncode}
    store.drop()
    broker.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--kill-every", type=float, default=30.0, metavar="SECONDS")
    parser.add_argument("--rate", type=float, default=0.0,
                        help="events per second published (0: as fast as possible)")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        print(json.dumps(soak(args.workers, args.events, args.kill_every, args.rate, args.seed, Path(tmp))),
              flush=True)


if __name__ == "__main__":
    main()
