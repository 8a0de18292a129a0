"""The game example end to end over HTTP and Redis: `meshctl serve` takes the events that
`meshctl publish` posts, two `meshctl worker` processes run the mesh, and the result is
that of `meshctl run` on the same file."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.storage import open_broker

pytestmark = pytest.mark.slow  # starts servers and workers, or routes at volume

REPO = Path(__file__).resolve().parents[2]
ARENA = REPO / "workflows" / "arena"
EVENTS = ARENA / "events.jsonl"


def _worker(url: str, name: str) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from cli import main; sys.exit(main())",
            "worker",
            str(ARENA),
            "--store",
            url,
            "--name",
            name,
            "--http=simulate",
            "--format=json",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_serve_publish_and_two_workers_run_the_game_example(serve, redis_url, meshctl):
    served = serve(ARENA, "--store", redis_url, "--port", "0", "--token", "s3cret")
    workers = [_worker(redis_url, name) for name in ("a", "b")]
    broker = open_broker(redis_url)
    try:
        deadline = time.time() + 30
        while set(broker.workers()) != {"a", "b"} and time.time() < deadline:
            time.sleep(0.1)  # both workers up (their heartbeats) before the events arrive
        published = meshctl("publish", ARENA, EVENTS, "--url", served.url, "--token", "s3cret")
        assert published.exit_code == 0, published.output
        deadline = time.time() + 60
        while time.time() < deadline:  # the workers run until stopped: wait until the mesh is quiet
            status = json.loads(meshctl("status", ARENA, "--store", redis_url, "--format=json").stdout)
            quiet = (
                status["summary"]["events_in"] == 32
                and status["delayed"] == 0
                and all(q["backlog"] == 0 for q in status["queues"].values())
            )
            if quiet:
                break
            time.sleep(0.2)
        assert quiet, status
        assert set(status["workers"]) == {"a", "b"}  # both alive, seen by `meshctl status`
    finally:
        for proc in workers:
            proc.send_signal(signal.SIGTERM)
        outputs = [proc.communicate(timeout=30) for proc in workers]
    assert [proc.returncode for proc in workers] == [0, 0], [err for _, err in outputs]
    assert sum(json.loads(out)["events_in"] for out, _ in outputs) == 32  # each input routed once
    # A long-running deployment closes a window when event time passes it; drain to close the last ones.
    drained = meshctl(
        "worker", ARENA, "--store", redis_url, "--exit-when-idle", "--http=simulate", "--format=json"
    )
    assert drained.exit_code == 0, drained.output
    code, log = served.stop()
    assert code == 0, log

    reference = json.loads(meshctl("run", ARENA, "--events", EVENTS, "--format=json").stdout)
    status = json.loads(meshctl("status", ARENA, "--store", redis_url, "--format=json").stdout)
    assert {
        k: status["summary"][k]
        for k in (
            "events_in",
            "emitted",
            "dead_lettered",
            "windows_emitted",
            "late_events",
            "dead_lettered_by_reason",
        )
    } == {
        k: reference[k]
        for k in (
            "events_in",
            "emitted",
            "dead_lettered",
            "windows_emitted",
            "late_events",
            "dead_lettered_by_reason",
        )
    }
    emitted = list(broker.store.records("emitted"))
    assert len(emitted) == 50 and len({e["id"] for e in emitted}) == 50
    broker.close()
