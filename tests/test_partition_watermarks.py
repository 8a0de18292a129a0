"""Partition watermarks through `meshctl run` (docs/streams.md, "Windows fed by the mesh's own events").

A stream that takes events the mesh emits judges lateness by the progress of the input
partition each event comes from (its ``inputwatermark`` stamp), and closes a window only when
every partition's progress has passed it and no pending work can still join it. The 2-worker
deployment that gives the same results is tests/cluster/test_same_results_as_run.py.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

from engine.runtime.watermarks import task_bound
from engine.storage.broker import partition_of

MESH = """\
apiVersion: meshctl/v1
kind: Mesh
metadata: {name: scores}
spec: {deployment: {partitions: PARTITIONS}}
---
apiVersion: meshctl/v1
kind: EventType
metadata: {name: match.over}
spec: {external: true}
---
apiVersion: meshctl/v1
kind: EventType
metadata: {name: score}
---
apiVersion: meshctl/v1
kind: EventType
metadata: {name: score.window}
---
apiVersion: meshctl/v1
kind: Service
metadata: {name: scorer}
spec:
  subscriptions:
    - on: match.over
      emits: [score]
      delivery:
        retry: {max_attempts: 3, backoff: fixed, initial: 30s, jitter: none}
      do:
        - emit: {type: score, data: {player: "{{ data.player }}"}}
---
apiVersion: meshctl/v1
kind: Stream
metadata: {name: board}
spec:
  from: [score]
  key: data.player
  window: {tumbling: 1m}
  lateness: 10s
  aggregate: {n: {count: {}}}
  emit: {type: score.window}
  late: {dead_letter: late}
"""


def _mesh(tmp_path: Path, partitions: int) -> Path:
    folder = tmp_path / f"mesh-{partitions}"
    folder.mkdir()
    (folder / "mesh.yaml").write_text(MESH.replace("PARTITIONS", str(partitions)))
    return folder


def _match(n: int, subject: str, clock: str) -> dict:
    return {"specversion": "1.0", "type": "match.over", "source": "/games", "id": f"m-{n}",
            "subject": subject, "time": f"2026-03-01T{clock}Z", "data": {"player": subject}}


def _run(meshctl, tmp_path: Path, mesh: Path, records: list[dict], *args) -> tuple[dict, list, list, list]:
    names = ("in.jsonl", "out.jsonl", "dlq.jsonl", "trace.jsonl")
    events, out, dlq, trace = (tmp_path / name for name in names)
    events.write_text("".join(json.dumps(r) + "\n" for r in records))
    result = meshctl("run", mesh, "--events", events, "--output", out, "--dlq-out", dlq, "--trace", trace,
                     "--format", "json", *args)
    assert result.exit_code == 0, result.output
    lines = ([json.loads(x) for x in p.read_text().splitlines()] for p in (out, dlq, trace))
    return (json.loads(result.output), *lines)


def _windows(out: list[dict]) -> list[tuple]:
    return sorted((e["data"]["key"], e["data"]["start"][11:16], e["data"]["n"]) for e in out
                  if e["type"] == "score.window")


def _subjects(partitions: int) -> tuple[str, str]:
    """Two subjects whose inputs go to different partitions."""
    names = [f"p-{i}" for i in range(20)]
    first = names[0]
    return first, next(n for n in names if partition_of(n, partitions) != partition_of(first, partitions))


def test_an_event_is_late_by_the_progress_of_its_inputs_partition(meshctl, tmp_path):
    """One partition: m-3 (12:00:40) is read after m-2 (12:01:30), so its window (ending 12:01,
    10 s of lateness) had passed in its partition: late. m-4 (12:01:15) is behind m-2 too, but
    its window ends at 12:02: it joins. Each input and what it causes carry the stamp."""
    records = [_match(1, "p", "12:00:05"), _match(2, "p", "12:01:30"), _match(3, "p", "12:00:40"),
               _match(4, "p", "12:01:15")]
    summary, out, dead, _ = _run(meshctl, tmp_path, _mesh(tmp_path, 1), records)
    assert _windows(out) == [("p", "12:00", 1), ("p", "12:01", 2)]
    assert summary["late_events"] == 1
    assert [(d["reason"], d["event"]["causationid"]) for d in dead] == [("late-event", "m-3")]
    assert "its window had closed when its input was routed" in dead[0]["error"]
    stamps = {e["causationid"]: e.get("inputwatermark") for e in out if e["type"] == "score"}
    assert stamps == {"m-1": None, "m-2": "2026-03-01T12:00:05Z", "m-3": "2026-03-01T12:01:30Z",
                      "m-4": "2026-03-01T12:01:30Z"}


def test_a_window_closes_once_every_partition_has_passed_it(meshctl, tmp_path):
    """One partition: the 12:00 window closes as soon as m-2 (12:01:30) is read, before the
    inputs after it; with two partitions and every input in one of them, the other partition
    has no progress, and the windows wait for the end of input."""
    records = [_match(1, "p", "12:00:05"), _match(2, "p", "12:01:30"), _match(3, "p", "12:01:40")]
    _, out, _, trace = _run(meshctl, tmp_path, _mesh(tmp_path, 1), records)
    kinds = [(r["kind"], r.get("event"), r.get("start")) for r in trace if r["kind"] in ("ingest", "window")]
    assert kinds.index(("window", None, "2026-03-01T12:00:00Z")) < kinds.index(("ingest", "m-3", None))
    both = _run(meshctl, tmp_path, _mesh(tmp_path, 2), records)
    kinds = [r["kind"] for r in both[3] if r["kind"] in ("ingest", "window")]
    assert kinds == ["ingest"] * 3 + ["window"] * 2
    assert _windows(both[1]) == _windows(out) == [("p", "12:00", 1), ("p", "12:01", 2)]


def test_work_still_pending_keeps_its_window_open(meshctl, tmp_path):
    """Every score fails once and is emitted 30 s later. m-3 (partition B, 12:01:05) is read
    behind the clock, which m-2 (partition A, 12:03:00) moved on; m-4 then moves B's progress
    to 12:02:40: the 12:01 window has passed in both partitions, but m-3's retry is pending,
    and its score (12:01:35) can still join it. It does, although a later score reached the
    stream first (a watermark of arrival order would have found it late)."""
    a, b = _subjects(2)
    records = [_match(1, b, "12:00:00"), _match(2, a, "12:03:00"), _match(3, b, "12:01:05"),
               _match(4, b, "12:02:40")]
    summary, out, dead, trace = _run(meshctl, tmp_path, _mesh(tmp_path, 2), records,
                                     "--fault=service:scorer/match.over=1:Busy")
    assert dead == [] and summary["late_events"] == 0 and summary["retries"] == 4
    assert _windows(out) == sorted([(b, "12:00", 1), (b, "12:01", 1), (a, "12:03", 1), (b, "12:03", 1)])
    arrived = [r["event"] for r in trace if r["kind"] == "deliver" and r.get("consumer") == "stream:board"]
    scores = {e["id"]: e["causationid"] for e in out if e["type"] == "score"}
    assert [scores[e] for e in arrived] == ["m-1", "m-2", "m-3", "m-4"]  # m-2's 12:03:30 before m-3's


def test_an_inputwatermark_from_outside_is_replaced(meshctl, tmp_path):
    """The stamp is the engine's: an input's own is dropped, and its partition's progress set."""
    records = [{**_match(1, "p", "12:00:05"), "inputwatermark": "2030-01-01T00:00:00Z"},
               _match(2, "p", "12:00:20")]
    summary, out, dead, _ = _run(meshctl, tmp_path, _mesh(tmp_path, 1), records)
    assert dead == [] and summary["late_events"] == 0
    assert [e.get("inputwatermark") for e in out if e["type"] == "score"] == [None, "2026-03-01T12:00:05Z"]


WAITING = """\
apiVersion: meshctl/v1
kind: Mesh
metadata: {name: paid}
spec: {deployment: {partitions: 1}}
---
apiVersion: meshctl/v1
kind: EventType
metadata: {name: order.placed}
spec: {external: true}
---
apiVersion: meshctl/v1
kind: EventType
metadata: {name: payment.confirmed}
spec: {external: true}
---
apiVersion: meshctl/v1
kind: EventType
metadata: {name: sale}
---
apiVersion: meshctl/v1
kind: EventType
metadata: {name: sale.window}
---
apiVersion: meshctl/v1
kind: Orchestration
metadata: {name: checkout}
spec:
  trigger: {on: order.placed}
  steps:
    - id: await_payment
      wait:
        event: payment.confirmed
        correlate: {run: "{{ input.order }}", event: "{{ data.order }}"}
    - id: book
      needs: [await_payment]
      do: {emit: {type: sale, data: {order: "{{ input.order }}"}}}
---
apiVersion: meshctl/v1
kind: Stream
metadata: {name: sales}
spec:
  from: [sale]
  window: {tumbling: 1m}
  aggregate: {n: {count: {}}}
  emit: {type: sale.window}
"""


def test_a_run_that_waited_is_judged_by_the_event_it_waited_for(meshctl, tmp_path):
    """o-1 is placed at 12:00:05 and paid at 12:05:10; o-2 is placed at 12:05:00. What o-1's run
    makes after its wait carries the payment's time and its partition's progress then
    (12:05:00), not its trigger's: the sale at 12:05:10 is judged by what had been read when
    the payment came."""
    folder = tmp_path / "waiting"
    folder.mkdir()
    (folder / "mesh.yaml").write_text(WAITING)

    def event(n: int, type_: str, clock: str) -> dict:
        return {"specversion": "1.0", "type": type_, "source": "/shop", "id": f"{type_}-{n}",
                "time": f"2026-03-01T{clock}Z", "data": {"order": f"o-{n}"}}
    records = [event(1, "order.placed", "12:00:05"), event(2, "order.placed", "12:05:00"),
               event(1, "payment.confirmed", "12:05:10")]
    summary, out, dead, _ = _run(meshctl, tmp_path, folder, records)
    assert dead == [] and summary["late_events"] == 0
    [sale] = [e for e in out if e["type"] == "sale"]
    assert (sale["time"], sale["inputwatermark"]) == ("2026-03-01T12:05:10Z", "2026-03-01T12:05:00Z")


def test_a_tasks_bound_is_its_causes_time_or_its_start():
    assert task_bound("attempt", {"event": {"time": "2026-03-01T12:00:00Z"}}) == 1772366400.0
    assert task_bound("complete", {"delivery": {"event": {"time": "2026-03-01T12:00:00Z"}}}) == 1772366400.0
    assert task_bound("wait-timeout", {"run": "r", "at": 5.0}) == 5.0
    assert task_bound("schedule-tick", {"at": 5}) == 5.0
    assert task_bound("attempt", {"event": {}}) == task_bound("mystery", {"run": "r"}) == -math.inf
    assert task_bound("order-gap", {"expected": 3}) == math.inf
