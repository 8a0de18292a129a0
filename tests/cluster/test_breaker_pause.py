"""Issue #19 on Redis: a circuit breaker with `on_open: pause` holds deliveries as delayed
tasks in the broker, so a worker that stops while they are held loses none of them; a new
worker releases them, and `dlq replay --rate` queues redrives spread out in time."""
from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from engine.analysis.validate import require_valid
from engine.cluster.deployment import broker_store
from engine.cluster.worker import Worker, WorkerOptions
from engine.runtime.events import read_events
from engine.runtime.interpreter import Fault

pytestmark = pytest.mark.slow  # runs workers on the real clock

REPO = Path(__file__).resolve().parents[2]
BILLING = REPO / "workflows" / "billing"
LEDGER = "service:ledger/invoice.paid"
RECEIPTS = "service:receipts/invoice.booked"


@pytest.fixture
def mesh_dir(tmp_path):
    """The billing example with breakers of a second: real-clock tests wait that long, no more.
    (A pause in a deployment is on the real clock: holding for 30s would hold the test too.)"""
    mesh = tmp_path / "billing"
    shutil.copytree(BILLING, mesh)
    delivery = mesh / "delivery.yaml"
    text = delivery.read_text().replace("initial: 1s", "initial: 200ms")
    for long in ("reset_after: 30s", "reset_after: 1m"):
        text = text.replace(long, "reset_after: 1s")
    delivery.write_text(text)
    # inputs of one account reach its partition in any order: a gap timer of 60s would keep
    # a draining worker waiting that long for nothing
    services = mesh / "services.yaml"
    services.write_text(services.read_text().replace("sequence}", "sequence, gap_timeout: 3s}"))
    return mesh


@pytest.fixture
def broker(redis_url, mesh_dir):
    broker = broker_store(redis_url, "test", require_valid(str(mesh_dir)).mesh)
    yield broker
    broker.close()


def _wait_for(condition, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def status_of(meshctl, mesh_dir: Path, url: str) -> dict:
    return json.loads(meshctl("status", mesh_dir, "--store", url, "--format=json").stdout)


def _drain(meshctl, mesh_dir: Path, url: str, *extra: str) -> dict:
    result = meshctl("worker", mesh_dir, "--store", url, "--exit-when-idle", "--http=simulate",
                     "--format=json", *extra)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_held_deliveries_survive_a_worker_restart(meshctl, broker, redis_url, mesh_dir):
    broker.ingest(list(read_events(str(BILLING / "events.jsonl"))))
    mesh = require_valid(str(mesh_dir)).mesh
    first = Worker(mesh, broker, WorkerOptions(name="first", http="simulate",
                                               faults=[Fault(LEDGER, 2, "TimeoutError")]))
    thread = threading.Thread(target=first.run)
    thread.start()
    try:
        _wait_for(lambda: broker.counters().get("held", 0) > 0)
    finally:
        first.stop()
        thread.join(timeout=30)
    assert not thread.is_alive()
    counters = broker.counters()
    waiting = counters.get("held", 0) - counters.get("released", 0)
    status = json.loads(meshctl("status", mesh_dir, "--store", redis_url, "--format=json").stdout)
    assert waiting > 0 and status["delayed"] >= waiting  # the held ones wait in the broker, not in a worker
    assert status["summary"]["held"] == counters["held"]

    # a new worker, its breakers closed, takes them when they come due; none is lost or dead
    _drain(meshctl, mesh_dir, redis_url, "--fault", f"{LEDGER}=2:TimeoutError")
    assert broker.store.dead_letters() == []
    summary = json.loads(meshctl("status", mesh_dir, "--store", redis_url, "--format=json").stdout)["summary"]
    assert summary["dead_lettered"] == 0 and summary["held"] == summary["released"] > 0
    # every delivery ended, none as a dead letter: each was done
    assert status_of(meshctl, mesh_dir, redis_url)["delayed"] == 0


def test_a_pausing_breaker_in_a_deployment_dead_letters_nothing(meshctl, broker, redis_url, mesh_dir):
    broker.ingest(list(read_events(str(BILLING / "events.jsonl"))))
    worker = _drain(meshctl, mesh_dir, redis_url, "--fault", f"{LEDGER}=2:TimeoutError")
    assert worker["dead_lettered"] == 0 and worker["held"] == worker["released"] > 0
    status = json.loads(meshctl("status", mesh_dir, "--store", redis_url, "--format=json").stdout)
    assert status["delayed"] == 0 and status["dead_letters"] == {}


def test_dlq_replay_with_rate_queues_redrives_spread_out(meshctl, broker, redis_url, mesh_dir):
    broker.ingest(list(read_events(str(BILLING / "events.jsonl"))))
    flaky = ("--fault", f"{RECEIPTS}=1:TimeoutError")
    _drain(meshctl, mesh_dir, redis_url, *flaky)
    assert {r.reason for r in broker.store.dead_letters()} == {"circuit-open"}
    # all at once, the redrives fail together and trip the breaker again
    assert meshctl("dlq", "replay", mesh_dir, "--store", redis_url).exit_code == 0
    _drain(meshctl, mesh_dir, redis_url, *flaky)
    assert [r.reason for r in broker.store.dead_letters()] == ["circuit-open"] * 6
    # at 2/s each retry (200 ms later) succeeds before the next redrive fails
    queued = meshctl("dlq", "replay", mesh_dir, "--store", redis_url, "--rate", "2/s", "--format=json")
    assert queued.exit_code == 0, queued.output
    assert json.loads(queued.stdout) == {"queued": 6}
    assert status_of(meshctl, mesh_dir, redis_url)["delayed"] == 5  # the first is due now, then 1/2 s apart
    worker = _drain(meshctl, mesh_dir, redis_url, *flaky)
    assert worker["dead_lettered"] == 0 and broker.store.dead_letters() == []


def test_worker_metrics_show_the_held_deliveries(broker, redis_url, mesh_dir):
    pytest.importorskip("prometheus_client")
    from prometheus_client.parser import text_string_to_metric_families

    def held_now(url: str) -> float | None:
        with urllib.request.urlopen(url, timeout=10) as answer:
            text = answer.read().decode()
        found = [s.value for f in text_string_to_metric_families(text) for s in f.samples
                 if s.name == "meshctl_held_deliveries"]
        return found[0] if found else None

    broker.ingest(list(read_events(str(BILLING / "events.jsonl"))))
    command = [sys.executable, "-c", "import sys; from cli import main; sys.exit(main())", "worker", mesh_dir,
               "--store", redis_url, "--http=simulate", "--metrics-port", "0", "--format=json",
               "--fault", f"{LEDGER}=always:TimeoutError"]
    proc = subprocess.Popen(command, cwd=REPO, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        url = next(line.split("metrics on ", 1)[1].strip() for line in proc.stderr if "metrics on " in line)
        seen = []
        _wait_for(lambda: seen.append(held_now(url)) or seen[-1])  # a target that is down: some wait
        assert None not in seen  # the gauge is there from the first scrape (0 until something waits)
        counters = broker.counters()
        assert 0 < seen[-1] <= counters["held"]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    assert proc.returncode == 0
