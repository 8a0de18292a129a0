"""T09: out-of-order input against the watermark. With bounded disorder d <= lateness, every
window equals a batch computation over the sorted input; the ~1 % of events that arrive
later than d + lateness + a window are all routed as late (dead-lettered, or emitted as a
side output), counted, and none is silently dropped.

Why the split is exact: an event delayed by at most d arrives when no event later than
t + d has been seen, so the watermark (latest time - lateness) is still before t and its
window is open. An event delayed by more than d + lateness + size arrives after events of
t + size + lateness (the input has one every half second), so its window has closed.
"""
from __future__ import annotations

import collections
import math
import random

import pytest
from runtime_harness import START, inputs, iso, load

from engine.core.eventtime import parse as parse_time
from engine.runtime.interpreter import Runtime

pytestmark = pytest.mark.slow

SIZE, LATENESS, DISORDER = 60, 30, 20
EVENTS = 5000


def mesh_text(late: str) -> str:
    return f"""
apiVersion: meshctl/v1
kind: EventType
metadata: {{name: reading.taken}}
spec: {{external: true}}
---
apiVersion: meshctl/v1
kind: EventType
metadata: {{name: reading.window}}
---
apiVersion: meshctl/v1
kind: EventType
metadata: {{name: reading.late}}
---
apiVersion: meshctl/v1
kind: Stream
metadata: {{name: per-minute}}
spec:
  from: [reading.taken]
  key: data.sensor
  time: time
  window: {{tumbling: {SIZE}s}}
  lateness: {LATENESS}s
  aggregate:
    n: {{count: {{}}}}
    total: {{sum: data.value}}
    low: {{min: data.value}}
    high: {{max: data.value}}
  emit: {{type: reading.window}}
  late: {late}
"""


def arrivals(seed: int) -> tuple[list[dict], set[str]]:
    """Readings in arrival order, and the ids of those sent too late (only in the first 80 %,
    so that enough later input follows them to have closed their windows)."""
    rng = random.Random(seed)
    t, out, too_late = START, [], set()
    for i in range(EVENTS):
        t += rng.expovariate(2.0)
        event = {"id": f"r{i}", "type": "reading.taken", "time": iso(t),
                 "data": {"sensor": f"s{rng.randrange(6)}", "value": rng.randrange(1000)}}
        delay = rng.uniform(0, DISORDER)
        if i < 0.8 * EVENTS and rng.random() < 0.01:
            delay = rng.uniform(DISORDER + LATENESS + SIZE + 30, 600)
            too_late.add(event["id"])
        out.append((parse_time(event["time"]) + delay, event))
    return [event for _, event in sorted(out, key=lambda pair: pair[0])], too_late


def batch(events: list[dict]) -> dict:
    """The windows of the events, computed over them sorted by time: (key, start, end) -> aggregates."""
    groups = collections.defaultdict(list)
    for event in sorted(events, key=lambda e: parse_time(e["time"])):
        start = math.floor(parse_time(event["time"]) / SIZE) * SIZE
        groups[(event["data"]["sensor"], iso(start), iso(start + SIZE))].append(event["data"]["value"])
    return {window: {"n": len(v), "total": sum(v), "low": min(v), "high": max(v)} for window,
            v in groups.items()}


@pytest.mark.parametrize("late", ["{dead_letter: late-readings}", "{emit: {type: reading.late}}"])
def test_on_time_windows_equal_a_batch_and_every_late_event_is_routed(tmp_path, late):
    mesh = load(tmp_path / "mesh", mesh_text(late))
    order, too_late = arrivals(seed=9)
    emitted: list[dict] = []
    runtime = Runtime(mesh, on_emit=emitted.append)
    summary = runtime.run(inputs(order))

    windows = {(w["data"]["key"], w["data"]["start"], w["data"]["end"]):
               {k: w["data"][k] for k in ("n", "total", "low", "high")}
               for w in emitted if w["type"] == "reading.window"}
    assert windows == batch([e for e in order if e["id"] not in too_late])
    if "dead_letter" in late:
        routed = [(d.event["id"], d.reason, d.queue) for d in runtime.store.dead_letters()]
        assert sorted(routed) == sorted((i, "late-event", "late-readings") for i in too_late)
    else:
        routed = [e["causationid"] for e in emitted if e["type"] == "reading.late"]
        assert sorted(routed) == sorted(too_late) and runtime.store.dead_letters() == []
    assert len(too_late) >= 0.005 * EVENTS and summary["late_events"] == len(too_late)
    assert sum(w["n"] for w in windows.values()) + len(too_late) == summary["events_in"] == EVENTS
