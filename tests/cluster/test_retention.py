"""A drained deployment on Redis ends within its retention: once the mesh's `retention` has
passed, nothing per event is left (dedup records, finished runs, the archive), only what is
kept by design (dead letters, counters, the empty queues). Issue 18 asks it of 100,000 events;
this drains 2,000 orders with a retention of two seconds, and asserts keys and bytes.
"""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from bench.orders import generate
from engine.language.model import DEFAULT_PARTITIONS

pytestmark = pytest.mark.slow  # drains 2,000 orders through a worker

REPO = Path(__file__).resolve().parents[2]
ORDERS = REPO / "workflows" / "orders"
PER_EVENT = ("dedup records", "runs", "archive: input", "archive: emitted", "trace journal")
# what the orders mesh leaves after its retention, whatever the number of orders: per
# partition two empty queues with their group, the counters, the retention record
# (docs/scale-out.md)
LEFT_AFTER_RETENTION = 4 * 1024 * DEFAULT_PARTITIONS


def memory(meshctl, mesh: Path, url: str) -> dict:
    result = meshctl("status", mesh, "--store", url, "--format=json")
    assert result.exit_code == 0, result.output
    return json.loads(result.output)["memory"]


def test_a_drained_deployment_ends_within_its_retention(meshctl, tmp_path, redis_url):
    mesh = tmp_path / "orders"
    shutil.copytree(ORDERS, mesh, ignore=shutil.ignore_patterns("*.test.yaml", "events.jsonl", "__pycache__"))
    (mesh / "mesh.yaml").write_text("apiVersion: meshctl/v1\nkind: Mesh\nmetadata: {name: orders}\n"
                                    "spec:\n  retention: {runs: 2s, archive: 2s, dedup: 2s}\n")
    events = tmp_path / "orders.jsonl"
    generate(str(events), 2000)
    assert meshctl("publish", mesh, events, "--store", redis_url).exit_code == 0
    queued = memory(meshctl, mesh, redis_url)
    assert queued["classes"]["queues"]["bytes"] > 2000 * 300  # the orders wait in the input queue

    worker = meshctl("worker", mesh, "--store", redis_url, "--exit-when-idle", "--http=simulate",
                     "--journal-trace", "--format=json")
    assert worker.exit_code == 0, worker.output
    assert json.loads(worker.stdout)["runs_started"] > 1900

    deadline = time.monotonic() + 120  # a bound for a loaded machine, not a measurement
    held = memory(meshctl, mesh, redis_url)
    while any(name in held["classes"] for name in PER_EVENT) and time.monotonic() < deadline:
        time.sleep(0.5)
        held = memory(meshctl, mesh, redis_url)
    assert not [name for name in PER_EVENT if name in held["classes"]], held
    assert held["bytes"] <= LEFT_AFTER_RETENTION, held

    shown = meshctl("runs", "show", "fulfil-order:chk-0000001@/shop/checkout", "--store", redis_url)
    assert shown.exit_code == 2 and "aged out of the store" in shown.output
    assert json.loads(meshctl("runs", "list", "--store", redis_url, "--format=json").output) == []


def test_replay_reads_the_archive_within_its_retention_and_notes_what_aged_out(meshctl, tmp_path, redis_url):
    arena = REPO / "workflows" / "arena"
    mesh = tmp_path / "arena"
    shutil.copytree(arena, mesh, ignore=shutil.ignore_patterns("*.test.yaml", "__pycache__"))
    (mesh / "mesh.yaml").write_text("apiVersion: meshctl/v1\nkind: Mesh\nmetadata: {name: arena}\n"
                                    "spec:\n  retention: {archive: 2s}\n")
    assert meshctl("publish", mesh, arena / "events.jsonl", "--store", redis_url).exit_code == 0
    worker = meshctl("worker", mesh, "--store", redis_url, "--exit-when-idle", "--http=simulate")
    assert worker.exit_code == 0, worker.output

    within = json.loads(meshctl("replay", mesh, "--store", redis_url, "--format=json").stdout)
    assert within["selected"] > 32 and within["queued"] == within["selected"] and "aged_out" not in within

    deadline = time.monotonic() + 60
    while any(held["keys"] for name, held in memory(meshctl, mesh, redis_url)["classes"].items()
              if name.startswith("archive")) and time.monotonic() < deadline:
        time.sleep(0.5)
    past = meshctl("replay", mesh, "--store", redis_url)
    assert past.exit_code == 0 and "aged out of the archive" in past.stderr
    assert json.loads(meshctl("replay", mesh, "--store", redis_url, "--format=json").stdout)["selected"] == 0
