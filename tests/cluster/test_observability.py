"""Observability of a deployment through the CLI: `/metrics` of `serve` and of a worker in the
Prometheus text format, traceparent through a 1-worker deployment, JSON log lines."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from engine.runtime.events import read_events
from engine.runtime.tracecontext import parse
from engine.storage import open_broker
from engine.storage.broker import partition_key

REPO = Path(__file__).resolve().parents[2]
ARENA = REPO / "workflows" / "arena"
EVENTS = ARENA / "events.jsonl"
CLI = [sys.executable, "-c", "import sys; from cli import main; sys.exit(main())"]


def scrape(url: str) -> dict[str, dict[tuple, float]]:
    """``{sample name: {sorted label pairs: value}}`` of a /metrics answer, read by prometheus_client."""
    with urllib.request.urlopen(url, timeout=10) as answer:
        assert answer.headers["Content-Type"].startswith("text/plain")
        text = answer.read().decode()
    samples: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def total(samples: dict, name: str, **labels) -> float:
    return sum(v for k, v in samples.get(name, {}).items() if set(labels.items()) <= set(k))


@pytest.fixture
def broker(redis_url):
    broker = open_broker(redis_url)
    yield broker
    broker.close()


def test_serve_metrics_count_requests_and_events_by_type(serve, redis_url):
    served = serve(ARENA, "--store", redis_url, "--port", "0")
    events = list(read_events(str(EVENTS)))[:6]
    for event in events:
        request = urllib.request.Request(f"{served.url}/events", data=json.dumps(event).encode(),
                                         headers={"Content-Type": "application/cloudevents+json"})
        assert urllib.request.urlopen(request, timeout=10).status == 202
    samples = scrape(f"{served.url}/metrics")
    by_type: dict[str, int] = {}
    for event in events:
        by_type[event["type"]] = by_type.get(event["type"], 0) + 1
    for type_, n in by_type.items():
        assert total(samples, "meshctl_ingress_events_total", type=type_) == n
    assert total(samples, "meshctl_ingress_requests_total", status="202") == len(events)
    assert total(samples, "meshctl_queue_backlog", queue="input") == len(events)
    assert total(samples, "meshctl_partition_backlog") == len(events)  # each in the partition of its key
    assert total(samples, "meshctl_partition_lag") == len(events)  # and no worker has read any
    assert "meshctl_partition_holder" not in samples  # no worker yet
    assert samples["meshctl_ingress_request_duration_seconds_count"][()] == len(events)
    code, _ = served.stop()
    assert code == 0


def start_worker(redis_url: str, *extra: str) -> tuple[subprocess.Popen, str]:
    """A `meshctl worker` with --metrics-port 0, and its metrics URL (read from its log)."""
    command = [*CLI, "worker", ARENA, "--store", redis_url, "--http=simulate", "--metrics-port", "0",
               "--format=json", *extra]
    proc = subprocess.Popen(command, cwd=REPO, text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    for line in proc.stderr:
        if "metrics on " in line:
            return proc, line.split("metrics on ", 1)[1].strip()
    proc.wait(timeout=20)
    raise AssertionError(f"the worker exited {proc.returncode} without serving metrics")


@pytest.mark.slow
def test_worker_metrics_show_its_counters_after_events(broker, redis_url):
    events = list(read_events(str(EVENTS)))
    broker.ingest(events)
    proc, url = start_worker(redis_url, "--name", "w-metrics")
    try:
        deadline = time.monotonic() + 60
        while True:  # until every event is in and the queues are empty
            samples = scrape(url)
            drained = total(samples, "meshctl_events_in_total") == len(events) and not any(
                samples.get("meshctl_queue_backlog", {}).values())
            if drained or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert drained, samples
        for type_ in {e["type"] for e in events}:
            sent = sum(e["type"] == type_ for e in events)
            assert total(samples, "meshctl_events_in_total", type=type_) == sent
        ok = total(samples, "meshctl_deliveries_total", outcome="ok")
        assert ok > 0 and total(samples, "meshctl_delivery_duration_seconds_count") > 0
        summary_dead = total(samples, "meshctl_runtime_total", counter="dead_lettered")
        assert total(samples, "meshctl_dead_letters_total") == summary_dead > 0  # the arena has a loop
        assert total(samples, "meshctl_deliveries_total", outcome="dead-lettered") > 0
        assert ("queue", "stream:leaderboard") in {p for k in samples["meshctl_queue_lag"] for p in k}
        assert set(samples["meshctl_circuit_state"].values()) <= {0.0, 1.0, 2.0}
        held = [dict(labels) for labels in samples["meshctl_partition_holder"]]
        partitions = {dict(labels)["partition"] for labels in samples["meshctl_partition_backlog"]}
        assert {h["partition"]: h["worker"] for h in held} == dict.fromkeys(partitions, "w-metrics")
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert json.loads(out)["events_in"] == len(events)


@pytest.mark.slow
def test_traceparent_reappears_on_every_event_in_a_deployment(meshctl, broker, redis_url):
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    events = list(read_events(str(EVENTS)))
    traced = events[0]["id"]
    events[0] = {**events[0], "traceparent": f"00-{trace_id}-00f067aa0ba902b7-01", "tracestate": "shop=1"}
    broker.ingest(events)
    result = meshctl("worker", ARENA, "--store", redis_url, "--exit-when-idle", "--http=simulate",
                     "--format=json")
    assert result.exit_code == 0, result.output
    emitted = list(broker.store.records("emitted"))
    caused = [e for e in emitted if e["correlationid"] == traced]
    assert caused
    assert all(parse(e["traceparent"])[0] == trace_id and e["tracestate"] == "shop=1" for e in caused)
    assert not any("traceparent" in e for e in emitted if e["correlationid"] != traced)


def test_worker_logs_json_lines(meshctl, redis_url):
    result = meshctl("worker", ARENA, "--store", redis_url, "--exit-when-idle", "--name", "w-json",
                     "--log-format", "json", "--format=json")
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stderr.splitlines()]
    assert [line["message"] for line in lines if line["level"] == "info"][-1] == "stopped"
    assert all(line["command"] == "worker" and line["time"].endswith("Z") for line in lines)
    assert {line.get("worker") for line in lines if line["level"] == "info"} == {"w-json"}


def test_a_poison_entry_is_logged_as_a_warning(meshctl, broker, redis_url):
    event = next(read_events(str(EVENTS)))
    broker.ingest([event])
    broker.ensure_lanes(["input"])
    home = broker.partition_for(partition_key(event))  # (its type is not pinned: no mesh configured)
    assert broker.read("input", "ghost", 100, partition=home)  # a worker that dies with it, five times over
    for _ in range(4):
        assert broker.reclaim("input", "ghost", 0, 100, partition=home)
    result = meshctl("worker", ARENA, "--store", redis_url, "--exit-when-idle", "--name", "w-poison",
                     "--log-format", "json", "--format=json")
    assert result.exit_code == 0, result.output
    [warning] = [json.loads(line) for line in result.stderr.splitlines() if '"warning"' in line
                 and "handed out" in line]
    assert warning["consumer"] == "mesh" and warning["logger"] == "engine.cluster.worker"
    assert warning["message"].startswith("an entry for mesh was handed out 5 times")
