"""T26: input whose times jump back and forth by an hour, on the virtual clock. The clock never
goes back, a retry never runs before its delay is over, the watermark never moves
backwards, and a window is never emitted before the watermark passed its end.

Every event is taken by a subscription that fails twice (fixed 10-minute backoff) and by
a keyed one-minute window. One event in four is stamped an hour ahead, one in four an hour
behind. Events from the past do not move the clock; those from the future move it an hour
on, and every retry due meanwhile runs first, at its own time. Late is judged against the
watermark as it stood when the window operator took the event.
"""
from __future__ import annotations

import collections
import math

from runtime_harness import START, TimedTrace, inputs, iso, load

from engine.core.eventtime import parse as parse_time
from engine.runtime.interpreter import Runtime

MESH = """
apiVersion: meshctl/v1
kind: EventType
metadata: {name: job.submitted}
spec: {external: true}
---
apiVersion: meshctl/v1
kind: EventType
metadata: {name: job.window}
---
apiVersion: meshctl/v1
kind: Service
metadata: {name: worker}
spec:
  subscriptions:
    - on: job.submitted
      delivery: {retry: {max_attempts: 3, backoff: fixed, initial: 10m, jitter: none}}
      do: {fail: {times: 2, error: Unavailable}}
---
apiVersion: meshctl/v1
kind: Stream
metadata: {name: per-minute}
spec:
  from: [job.submitted]
  key: data.group
  time: time
  window: {tumbling: 60s}
  lateness: 30s
  aggregate: {n: {count: {}}}
  emit: {type: job.window}
"""
HOUR, SIZE, BACKOFF = 3600.0, 60.0, 600.0
JUMPS = [0.0, HOUR, 0.0, -HOUR]


def jumping(n: int) -> list[dict]:
    return [{"id": f"j{i}", "type": "job.submitted", "time": iso(START + 20 * i + JUMPS[i % 4]),
             "data": {"group": f"g{i % 3}"}} for i in range(n)]


def test_retries_and_windows_never_fire_early_and_the_watermark_never_goes_back(tmp_path):
    mesh = load(tmp_path / "mesh", MESH)
    emitted: list[dict] = []
    runtime = Runtime(mesh, trace=TimedTrace(), on_emit=emitted.append)
    operator = runtime.streams.operators["per-minute"]
    taken = []  # (event, watermark before, watermark after, outputs) as the operator saw them
    process = operator.process

    def recording(event):
        before = operator.watermark
        outputs = process(event)
        taken.append((event, before, operator.watermark, outputs))
        return outputs
    operator.process = recording
    events = jumping(400)
    runtime.run(inputs(events))

    clock = [r["now"] for r in runtime.trace.sink]
    assert clock == sorted(clock)
    attempts = collections.defaultdict(list)
    for record in runtime.trace.sink:
        if record["kind"] == "deliver" and record["consumer"].startswith("service:"):
            attempts[record["event"]].append(record["now"])
    assert len(attempts) == len(events)
    for times in attempts.values():
        assert [b - a for a, b in zip(times, times[1:])] == [BACKOFF, BACKOFF]  # never early, never late

    watermarks = [w for _, before, after, _ in taken for w in (before, after)]
    assert watermarks == sorted(watermarks) and len(taken) == len(events)
    late = 0
    for event, before, after, outputs in taken:
        end = (math.floor(parse_time(event["time"]) / SIZE) + 1) * SIZE
        assert any(o.kind == "late" for o in outputs) == (end <= before)
        late += end <= before
        assert all(o.end <= after for o in outputs if o.kind == "window")
    windows = collections.Counter(
        (e["data"]["key"], e["data"]["start"]) for e in emitted if e["type"] == "job.window"
    )
    # each window once, the rest closed at the end
    assert max(windows.values()) == 1 and 0 < late < len(events)
    assert runtime.trace.counts["late_events"] == late
    assert sum(e["data"]["n"] for e in emitted if e["type"] == "job.window") + late == len(events)
