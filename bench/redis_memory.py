"""Bytes a Redis deployment holds per event: in flight (queued) and at rest (drained).

Generated orders (bench/orders.py) are published into a Redis store of their own prefix
(`meshctl publish`), measured (in flight), drained by one `meshctl worker --exit-when-idle`,
measured again (at rest), and, with ``--retention``, measured once more after the retention
has passed:

    python -m bench.redis_memory --events 10000 [--retention 5s] [--write]

The orders example (workflows/orders) is copied with a Mesh document whose ``retention``
sets runs, archive and dedup to ``--retention`` (none given: the defaults, seven days).
Memory per class of key comes from :func:`engine.storage.redismemory.memory_usage` (what
``meshctl status`` shows): keys counted by SCAN, bytes by ``MEMORY USAGE`` of a sample. On a
Redis of its own (``--redis``, nothing else using it) the growth of the server's
``used_memory`` per event is reported too (``server_bytes_per_event``): what it really costs.
Prints one JSON object; ``--write`` saves it to bench/results/redis_memory.json, from which
docs/performance.md takes its Redis memory section.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from .common import REPO, save_run
from .orders import ORDERS, generate

REDIS = "redis://127.0.0.1:6379/0"


def meshctl(*args: str) -> list[str]:
    return [sys.executable, "-c", "import sys; from cli import main; sys.exit(main())", *args]


def mesh_copy(workdir: Path, retention: str | None) -> Path:
    """The orders example, with a Mesh document keeping everything for *retention* (if given)."""
    mesh = workdir / "orders"
    shutil.copytree(ORDERS, mesh, ignore=shutil.ignore_patterns("*.test.yaml", "events.jsonl", "__pycache__"))
    if retention is not None:
        (mesh / "mesh.yaml").write_text(
            "apiVersion: meshctl/v1\nkind: Mesh\nmetadata: {name: orders}\nspec:\n"
            f"  retention: {{runs: {retention}, archive: {retention}, dedup: {retention}}}\n")
    return mesh


def per_event(report: dict, events: int) -> dict:
    """Bytes and keys per input event, per class and in all."""
    def figures(c: dict) -> dict:
        return {"keys": c["keys"], "bytes": c["bytes"], "bytes_per_event": round(c["bytes"] / events, 1)}

    return {**figures(report), "classes": {name: figures(c) for name, c in report["classes"].items()}}


def measure(events: int, retention: str | None, seconds_after: float, redis_url: str = REDIS,
            private: bool = False) -> dict:
    from engine.storage import open_broker

    url = f"{redis_url}?prefix=memory-{uuid.uuid4().hex[:10]}"
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        mesh, inputs = mesh_copy(workdir, retention), workdir / "orders.jsonl"
        generate(str(inputs), events)
        base = _used_memory(redis_url)
        subprocess.run(meshctl("publish", str(mesh), str(inputs), "--store", url), cwd=REPO, check=True,
                       capture_output=True, timeout=600)
        broker = open_broker(url)
        client = broker.store.client

        def held() -> dict:
            figures = per_event(broker.memory(), events)
            if private:
                grown = client.info("memory")["used_memory"] - base
                figures["server_bytes_per_event"] = round(grown / events, 1)
            return figures

        try:
            result = {"events": events, "retention": retention or "default (7d)", "in_flight": held()}
            start = time.perf_counter()
            worker = meshctl("worker", str(mesh), "--store", url, "--exit-when-idle", "--http=simulate")
            subprocess.run(worker, cwd=REPO, check=True, capture_output=True, timeout=1800)
            result["drain_seconds"] = round(time.perf_counter() - start, 1)
            result["at_rest"] = held()
            if seconds_after:
                time.sleep(seconds_after)
                result["after_retention"] = held()
        finally:
            broker.store.drop()
            broker.close()
    return result


def _used_memory(redis_url: str) -> int:
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        return client.info("memory")["used_memory"]
    finally:
        client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--retention", help="runs, archive and dedup retention of the mesh (e.g. 5s)")
    parser.add_argument("--wait", type=float, default=None,
                        help="seconds to wait after the drain before measuring again (default: the "
                             "retention plus 2 s, when one is given)")
    parser.add_argument("--redis", default=REDIS, help=f"the server (default {REDIS})")
    parser.add_argument("--private", action="store_true",
                        help="the server is this benchmark's alone: report its used_memory growth too")
    parser.add_argument("--write", action="store_true", help="save to bench/results/redis_memory.json")
    args = parser.parse_args()
    wait = args.wait
    if wait is None and args.retention:
        from engine.language.build import parse_duration

        wait = parse_duration(args.retention) + 2
    result = measure(args.events, args.retention, wait or 0.0, args.redis, args.private)
    print(json.dumps(result, indent=1))
    if args.write:
        command = "python -m bench.redis_memory " + " ".join(sys.argv[1:])
        saved = save_run("redis_memory", command, {"result": result})
        print(f"wrote {saved.relative_to(REPO)}")


if __name__ == "__main__":
    main()
