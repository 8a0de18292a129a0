"""Which class of key a Redis key of a deployment is, with or without a hash tag; what
`status` says when the server will not tell."""
from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("redis")

from engine.storage.redismemory import OTHER, key_class  # noqa: E402


@pytest.mark.parametrize(("key", "expected"), [
    ("m:j:input", "archive: input"),
    ("m:j:emitted", "archive: emitted"),
    ("m:j:trace", "trace journal"),
    ("m:done:svc|/s|e1", "dedup records"),
    ("m:state:run:fulfil:1@/s", "runs"),
    ("m:runs:ended", "runs"),
    ("m:state:order:c:1", "state"),
    ("m:statekeys", "state"),
    ("m:dlq", "dead letters"),
    ("m:dlq:order", "dead letters"),
    ("m:input", "queues"),
    ("m:tasks", "queues"),
    ("m:lane:stream:s", "queues"),
    ("m:delayed", "queues"),
    ("m:lease:input", OTHER),
    ("m:counters", OTHER),
    ("m:inputs", OTHER),
    ("{m:3}:done:svc|/s|e1", "dedup records"),
    ("{m}:input", "queues"),
    ("mm:input", None),
    ("{mm:1}:input", None),
    ("other:done:x", None),
])
def test_key_class(key, expected):
    assert key_class("m", key) == expected


def test_a_server_that_refuses_the_commands_gives_memory_unavailable(redis_url, monkeypatch):
    import redis

    from engine.storage import open_broker

    broker = open_broker(redis_url)

    def refused(*args, **kwargs):
        raise redis.ResponseError("NOPERM this user has no permissions to run the 'scan' command")

    monkeypatch.setattr(broker.store.client, "scan", refused)
    report = broker.memory()
    assert report["unavailable"].startswith("NOPERM") and report["classes"] == {}
    broker.close()


def test_status_says_memory_is_unavailable_and_goes_on(redis_url, monkeypatch, meshctl):
    import redis

    def refused(*args, **kwargs):
        raise redis.ResponseError("NOPERM this user has no permissions to run the 'scan' command")

    monkeypatch.setattr(redis.Redis, "scan", refused)
    arena = Path(__file__).resolve().parents[2] / "workflows" / "arena"
    result = meshctl("status", arena, "--store", redis_url)
    assert result.exit_code == 0, result.output
    assert "memory: unavailable (NOPERM" in result.output and "events in" in result.output
