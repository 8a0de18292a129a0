"""Extensions that steer the loop guard (`hopcount`, `causationpath`) belong to the engine: an
input event's own are dropped, so a client cannot buy itself more hops or forge its chain, and
a value of the wrong type is not an internal error (stage 8, classes 4 and 5)."""
from __future__ import annotations

import json

import pytest

LOOP = """
apiVersion: meshctl/v1
kind: EventType
metadata: {name: ping}
spec: {external: true}
---
apiVersion: meshctl/v1
kind: Service
metadata: {name: echo}
spec:
  subscriptions:
    - on: ping
      emits: [ping]
      loop: {max_hops: 100}
      do: {emit: {type: ping, data: {n: 1}}}
"""


@pytest.mark.parametrize("extra", [{}, {"hopcount": -300}, {"hopcount": "abc"}, {"hopcount": 15},
                                   {"causationpath": "service:echo/ping," * 50}, {"hopcount": None}])
def test_an_input_cannot_steer_the_loop_guard(meshctl, write, tmp_path, extra):
    mesh = write(LOOP)
    events = tmp_path / "events.jsonl"
    events.write_text(
        json.dumps({"type": "ping", "id": "p1", "time": "2026-01-01T00:00:00Z", **extra}) + "\n"
    )
    result = meshctl("run", mesh.parent, "--events", events, "--format", "json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["emitted"] == 16  # the default limit of 16 hops, whatever the input said
    assert summary["dead_lettered_by_reason"] == {"loop-detected": 1}
