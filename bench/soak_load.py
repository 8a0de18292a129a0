"""T27: open-loop load at 50, 80, 100 and 120 % of measured capacity, over HTTP.

    python -m bench.soak_load [--workers 2] [--seconds 20] [--max-backlog 5000]

A deployment of the game example — `meshctl serve` with ``--max-backlog`` and ``--workers``
`meshctl worker` processes on one Redis — is first driven closed-loop (as fast as the
ingress takes events) to measure its capacity: input events processed per second. Then, on
a fresh deployment per level, an open-loop producer offers events at each fraction of that
capacity for ``--seconds``: every 100 ms it posts what is due, whatever happened to the
previous posts. A batch the ingress refuses with 503 (its backlog limit: backpressure) is
counted as shed and not sent again. After the offer stops, the deployment is given as long
again to finish.

Prints one JSON line: the capacity, and per level the offered, accepted and processed rates,
events shed, p50/p99 end-to-end latency (publication → each emitted event), the largest
backlog, the peak resident memory of the workers and the ingress, Redis's peak memory, and
whether the deployment drained.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path
from urllib.error import HTTPError
from urllib.request import Request, urlopen

from .common import REPO
from .e2e import generate
from .scaleout import ARENA, REDIS, meshctl
from .soak_redis import Deployment, latencies, percentile

BATCH = "application/cloudevents-batch+json"


class Ingress:
    """A `meshctl serve` process on a free port."""

    def __init__(self, url: str, max_backlog: int, workdir: Path):
        self.log = open(workdir / "serve.log", "w")
        self.proc = subprocess.Popen(meshctl("serve", str(ARENA), "--store", url, "--port", "0",
                                             f"--max-backlog={max_backlog}", "--threads", "8"),
                                     cwd=REPO, stdout=self.log, stderr=subprocess.PIPE, text=True)
        for line in self.proc.stderr:
            if "listening on " in line:
                self.url = line.split("listening on ", 1)[1].strip() + "/events"
                break
        else:
            raise RuntimeError(f"meshctl serve did not start: {self.proc.wait()}")
        threading.Thread(target=lambda: [None for _ in self.proc.stderr], daemon=True).start()

    def post(self, events: list[dict]) -> int:
        """Send a batch; the HTTP status (202 accepted, 503 refused: the deployment is behind)."""
        request = Request(self.url, json.dumps(events).encode(), {"Content-Type": BATCH}, method="POST")
        try:
            with urlopen(request, timeout=30) as answer:
                answer.read()
                return answer.status
        except HTTPError as exc:
            exc.read()
            return exc.code

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self.log.close()


def rss_mb(pid: int) -> float:
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


# noqa: C901
def run_level(events: list[dict], rate: float | None, seconds: float, workers: int, max_backlog: int,  # noqa: C901
              workdir: Path) -> dict:
    """One deployment driven for *seconds*: open loop at *rate* events/s, or closed loop (None)."""
    from engine.storage import open_broker

    url = f"{REDIS}?prefix=load-{uuid.uuid4().hex[:10]}"
    broker = open_broker(url)
    store = broker.store
    deployment = Deployment(url, workdir, reclaim_after=10.0, faults=[])
    for _ in range(workers):
        deployment.start()
    ingress = Ingress(url, max_backlog, workdir)
    time.sleep(1.5)  # the workers start up
    published: dict[str, float] = {}
    counts = {"offered": 0, "accepted": 0, "shed": 0}
    peaks = {"backlog": 0, "rss_mb": 0.0, "redis_mb": 0.0}
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            backlog = broker.backlog()
            peaks["backlog"] = max(peaks["backlog"], backlog)
            rss = deployment.rss_mb() + rss_mb(ingress.proc.pid)
            peaks["rss_mb"] = max(peaks["rss_mb"], round(rss, 1))
            used = store.client.info("memory")["used_memory"]
            peaks["redis_mb"] = max(peaks["redis_mb"], round(used / 2**20, 1))
            time.sleep(0.25)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    processed_before = broker.counters().get("events_in", 0)
    start, sent = time.time(), 0
    while time.time() - start < seconds and sent < len(events):
        if rate is None:
            due = min(sent + 200, len(events))
        else:
            due = min(int((time.time() - start) * rate), sent + 1000, len(events))
            if due <= sent:
                time.sleep(0.1)
                continue
        batch = events[sent:due]
        counts["offered"] += len(batch)
        status = ingress.post(batch)
        if status == 202:
            now = time.time()
            counts["accepted"] += len(batch)
            for event in batch:
                published[event["id"]] = now
        else:
            counts["shed"] += len(batch)
            if rate is None:
                time.sleep(0.05)
        sent = due
        if rate is not None:
            time.sleep(0.1)
    offer_time = time.time() - start
    processed_in_offer = broker.counters().get("events_in", 0) - processed_before
    deadline = time.time() + seconds
    while broker.backlog() and time.time() < deadline:
        time.sleep(0.25)
    drained = broker.backlog() == 0
    stop.set()
    sampler.join()
    ingress.stop()
    deployment.stop()
    wait = latencies(list(store.records("emitted")), published)
    store.drop()
    broker.close()
    return {"offered_per_s": round(counts["offered"] / offer_time, 1),
            "accepted_per_s": round(counts["accepted"] / offer_time, 1),
            "processed_per_s": round(processed_in_offer / offer_time, 1), "shed": counts["shed"],
            "latency_p50_s": percentile(wait, 50), "latency_p99_s": percentile(wait, 99),
            "max_backlog": peaks["backlog"], "peak_rss_mb": peaks["rss_mb"],
            "redis_peak_mb": peaks["redis_mb"], "drained": drained}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each level's offer")
    parser.add_argument("--max-backlog", type=int, default=5000, help="the ingress's backpressure limit")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "events.jsonl"
        generate(str(path), 400_000, players=1000)
        events = [json.loads(line) for line in open(path)]
        closed = run_level(events, None, args.seconds, args.workers, args.max_backlog, Path(tmp))
        capacity = closed["processed_per_s"]
        result = {"test": "T27", "workers": args.workers, "seconds_per_level": args.seconds,
                  "max_backlog": args.max_backlog, "capacity_per_s": capacity, "closed_loop": closed}
        for percent in (50, 80, 100, 120):
            result[f"{percent}%"] = run_level(events, capacity * percent / 100, args.seconds, args.workers,
                                              args.max_backlog, Path(tmp))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
