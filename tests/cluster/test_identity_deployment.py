"""Event identity (source and id) in a Redis deployment: `meshctl publish` then `meshctl worker`.

The same mesh and events as tests/test_identity.py: two events sharing an id from two sources
are both taken by every consumer, a true repeat is a duplicate, dead letters of the two are
two records that both redrive, their runs are told apart, and a repeated invalid event is one
dead letter (the deployment's `dead-lettered` counter equals its queue).
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from identity_mesh import (
    BILLING,
    CONSUMERS,
    EU,
    REPEAT,
    SHIP,
    US,
    placed,
    write_events,
    write_mesh,
)

from engine.storage import open_broker

pytestmark = pytest.mark.slow  # starts servers and workers, or routes at volume


@pytest.fixture
def mesh(tmp_path) -> Path:
    return write_mesh(tmp_path)


@pytest.fixture
def broker(redis_url):
    broker = open_broker(redis_url)
    yield broker
    broker.close()


@pytest.fixture
def store(broker):
    return broker.store


def drain(meshctl, mesh, url: str, *extra: str) -> dict:
    result = meshctl(
        "worker", mesh, "--store", url, "--exit-when-idle", "--http=simulate", "--format=json", *extra
    )
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def published(meshctl, mesh, url: str, path) -> None:
    result = meshctl("publish", mesh, path, "--store", url)
    assert result.exit_code == 0, result.output


def test_two_sources_sharing_an_id_are_two_events_in_a_deployment(meshctl, mesh, store, redis_url, tmp_path):
    events = write_events(tmp_path / "in.jsonl", [EU, US, REPEAT])
    published(meshctl, mesh, redis_url, events)
    worker = drain(meshctl, mesh, redis_url)
    reference = json.loads(meshctl("run", mesh, "--events", events, "--format=json").output)
    assert {k: v for k, v in worker.items() if k != "units"} == reference
    assert worker["duplicates"] == CONSUMERS and worker["runs_completed"] == 2
    emitted = list(store.records("emitted"))
    assert sorted(e["data"]["n"] for e in emitted if e["type"] == "order.billed") == [1, 2]
    assert [e["data"]["orders"] for e in emitted if e["type"] == "order.tallied"] == [2]
    runs = json.loads(meshctl("runs", "list", "--store", redis_url, "--format", "json").output)
    assert sorted(r["id"] for r in runs) == ["fulfil:o-1@/shop/eu", "fulfil:o-1@/shop/us"]


def test_dead_letters_and_runs_of_two_sources_redrive_apart(meshctl, mesh, store, redis_url, tmp_path):
    published(meshctl, mesh, redis_url, write_events(tmp_path / "in.jsonl", [EU, US, REPEAT]))
    first = drain(
        meshctl, mesh, redis_url, "--fault", f"{BILLING}=always:Down", "--fault", f"{SHIP}=always:Down"
    )
    assert (first["dead_lettered"], first["runs_failed"]) == (2, 2)
    listed = json.loads(meshctl("dlq", "list", "--store", redis_url, "--format=json").output)
    assert sorted(r["event"]["source"] for r in listed) == ["/shop/eu", "/shop/us"]
    assert meshctl("dlq", "replay", mesh, "--store", redis_url, "--format", "json").exit_code == 0
    ambiguous = meshctl("runs", "redrive", mesh, "--store", redis_url, "fulfil:o-1")
    assert ambiguous.exit_code == 2 and "is ambiguous" in ambiguous.output
    assert meshctl("runs", "redrive", mesh, "--store", redis_url, "fulfil:o-1@/shop/us").exit_code == 0
    drain(meshctl, mesh, redis_url)
    billed = sorted(e["data"]["n"] for e in store.records("emitted") if e["type"] == "order.billed")
    assert (
        billed == [1, 2]
        and json.loads(meshctl("dlq", "list", "--store", redis_url, "--format=json").output) == []
    )
    statuses = {
        r["id"]: r["status"]
        for r in json.loads(meshctl("runs", "list", "--store", redis_url, "--format", "json").output)
    }
    assert statuses == {"fulfil:o-1@/shop/eu": "failed", "fulfil:o-1@/shop/us": "completed"}


def test_a_repeated_invalid_event_is_one_dead_letter_in_a_deployment(meshctl, mesh, broker, store, redis_url):
    bad = {**placed("/shop/eu", 1, id_="bad-1"), "data": {"n": "one"}}
    # the ingress would refuse them: queued directly
    broker.ingest([bad, bad, {**bad, "source": "/shop/us"}, bad])
    drain(meshctl, mesh, redis_url)
    status = json.loads(meshctl("status", mesh, "--store", redis_url, "--format=json").output)
    listed = json.loads(meshctl("dlq", "list", "--store", redis_url, "--format=json").output)
    assert status["summary"]["dead_lettered"] == len(listed) == 2
    assert status["summary"]["duplicates"] == 2
