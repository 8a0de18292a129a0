"""The ``scale`` workload of ``python -m bench``: a deployment's rate with 1 and 2 workers,
what one event costs the worker and Redis, and the model of bench/scalecost.py checked
against the two measured rates.

A measured drain includes the workers' start-up (Python, the mesh), timed on an empty
deployment and added to the model's time for the same input. The worker rows run
`meshctl worker` processes on Redis (bench/scaleout.py, no faults: the
processing rate, not retry backoff) and check their results against a single-process run.
Without a Redis server at ``MESHCTL_TEST_REDIS`` (default 127.0.0.1:6379) the workload
gives one row saying so.
"""
from __future__ import annotations

import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from .common import REPO, Row, fmt_rate, log
from .scalecost import ARENA, PRIMARIES, measure, predict, predict_here
from .scaleout import REDIS, compare, meshctl


def _redis_missing() -> str | None:
    try:
        import redis

        redis.Redis.from_url(REDIS, socket_connect_timeout=2).ping()
    except Exception as exc:  # any failure: no rows but the one saying why
        return f"{type(exc).__name__}: {exc}"
    return None


def startup_seconds() -> float:
    """Wall time of a worker that drains an empty deployment: start, load the mesh, find nothing
    to do, stop. Part of every measured drain, so the model's rate pays it too."""
    url = f"{REDIS}?prefix=scale-empty-{uuid.uuid4().hex[:10]}"
    start = time.perf_counter()
    subprocess.run(meshctl("worker", str(ARENA), "--store", url, "--exit-when-idle", "--http=simulate"),
                   cwd=REPO, capture_output=True, timeout=120, check=True)
    seconds = time.perf_counter() - start
    import redis

    client = redis.Redis.from_url(REDIS)
    keys = list(client.scan_iter(match="{scale-empty-*", count=1000))  # its keys' hash tags
    if keys:
        client.delete(*keys)
    return seconds


def rows(quick: bool = False) -> list[Row]:
    missing = _redis_missing()
    if missing:
        return [Row("scale", "deployment on Redis", "-", check=f"no Redis at {REDIS} ({missing})")]
    n = 2000 if quick else 10_000
    out: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as folder:
        log(f"scale: cost of one event, {n:,} events, 1 in-process worker")
        (Path(folder) / "cost").mkdir()
        cost = measure(n, Path(folder) / "cost")
        startup = startup_seconds()
        measured = {}
        for workers in (1, 2):
            log(f"scale: {workers} worker process(es), {n:,} events")
            workdir = Path(folder) / f"workers-{workers}"
            workdir.mkdir()
            result = compare(n, workers, False, workdir, faults=False)
            measured[workers] = (result["events_per_s"], result["identical"])
    out.append(Row("scale", "per event: worker CPU / Redis CPU", f"{cost.worker_cpu_us:,.0f} µs",
                   f"Redis {cost.redis_cpu_us:,.0f} µs", cost.worker_cpu_us / cost.redis_cpu_us,
                   "worker / Redis",
                   check=f"{cost.commands:.1f} commands, {cost.round_trips:.2f} round trips"))
    for workers in (1, 2):
        rate, identical = measured[workers]
        model = n / (startup + n / predict_here(cost, workers)["events_per_s"])
        out.append(Row("scale", f"{workers} worker(s), {n:,} ev, measured vs model", fmt_rate(rate),
                       f"model {fmt_rate(model)}", rate / model, "of the model", "",
                       None, "same results as run" if identical else "results DIFFER from run"))
    one, two = measured[1][0], measured[2][0]
    modelled = predict_here(cost, 2)["events_per_s"] / predict_here(cost, 1)["events_per_s"]
    out.append(Row("scale", "2 workers vs 1 (2 cores, Redis on them too)", fmt_rate(two),
                   f"1 worker {fmt_rate(one)}", two / one, "growth", "", None,
                   f"model {modelled:.2f}× "
                   f"without the start-up of {startup:.1f} s"))
    for primaries in PRIMARIES:
        line = [predict(cost, w, primaries, 250) for w in (8, 32, 128)]
        out.append(Row("scale", f"model, {primaries} primar{'y' if primaries == 1 else 'ies'}, RTT 0.25 ms",
                       " / ".join(fmt_rate(m["events_per_s"], "") for m in line) + " ev/s",
                       check="8 / 32 / 128 workers; bound: " + ", ".join(m["bound"] for m in line)))
    return out
