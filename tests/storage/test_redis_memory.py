"""Which class of key a Redis key of a deployment is, with or without a hash tag."""
from __future__ import annotations

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
