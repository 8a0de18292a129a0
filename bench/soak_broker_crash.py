"""T24: SIGKILL the Redis server while events are being published; count what was
acknowledged and then lost.

    python -m bench.soak_broker_crash [--seconds 3] [--port 6391]

For each persistence setting (no append-only file; ``appendfsync everysec``; ``appendfsync
always``) a private ``redis-server`` is started on ``--port`` with its data in a temporary
directory. A producer publishes game events into it (``RedisBroker.ingest``, batches of
100) and records the ids each acknowledged batch held; after ``--seconds`` the server is
SIGKILLed mid-stream and started again on the same directory. Acknowledged events missing
from the restarted server's input queue were acknowledged but lost. What `meshctl worker`
and `meshctl serve` warn at start for that setting is reported too.

A SIGKILL of the server process leaves what it wrote in the operating system's page cache,
so ``everysec`` loses nothing here; only a crash of the machine (or a power cut) loses its
last second. Prints one JSON line.
"""
from __future__ import annotations

import argparse
import json
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from .e2e import generate

SETTINGS = {"no-aof": ["--appendonly", "no", "--save", ""],
            "everysec": ["--appendonly", "yes", "--appendfsync", "everysec", "--save", ""],
            "always": ["--appendonly", "yes", "--appendfsync", "always", "--save", ""]}


def start_server(port: int, folder: Path, setting: str) -> subprocess.Popen:
    import redis

    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder),
                             *SETTINGS[setting]], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = redis.Redis(port=port)
    for _ in range(100):
        try:
            client.ping()
            return proc
        except redis.RedisError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"redis-server did not start on port {port}")


def crash_once(setting: str, port: int, seconds: float, events: list[dict], folder: Path) -> dict:
    from engine.storage import open_broker, open_store
    from engine.storage.base import StorageError

    folder.mkdir()
    server = start_server(port, folder, setting)
    url = f"redis://127.0.0.1:{port}/0?prefix=crash"
    broker = open_broker(url)
    warning = broker.durability_warning()
    acked: list[str] = []
    failed = threading.Event()

    def produce() -> None:
        i = 0
        while not failed.is_set():
            batch = [{**events[(i + k) % len(events)], "id": f"e-{i + k}"} for k in range(100)]
            try:
                broker.ingest(batch)
            except StorageError:
                failed.set()
                return
            acked.extend(e["id"] for e in batch)
            i += 100

    producer = threading.Thread(target=produce, daemon=True)
    producer.start()
    time.sleep(seconds)
    server.send_signal(signal.SIGKILL)
    server.wait()
    producer.join(timeout=60)
    broker.close()
    restarted = start_server(port, folder, setting)
    try:
        after = open_store(url)
        present = {json.loads(fields["e"])["id"] for _, fields in after.client.xrange("crash:input")}
        after.close()
    finally:
        restarted.send_signal(signal.SIGTERM)
        restarted.wait()
    lost = [i for i in acked if i not in present]
    return {"acknowledged": len(acked), "lost_after_ack": len(lost), "present_after_restart": len(present),
            "warning_at_start": warning}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="publish this long before the kill")
    parser.add_argument("--port", type=int, default=6391)
    args = parser.parse_args()
    if shutil.which("redis-server") is None:
        raise SystemExit("redis-server is not installed (Debian: apt-get install redis-server)")
    with tempfile.TemporaryDirectory() as tmp:
        generate(str(Path(tmp) / "events.jsonl"), 300)
        events = [json.loads(line) for line in open(Path(tmp) / "events.jsonl")]
        result = {"test": "T24", "seconds_before_kill": args.seconds}
        for setting in SETTINGS:
            result[setting] = crash_once(setting, args.port, args.seconds, events, Path(tmp) / setting)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
