"""The event time of derived events (docs/streams.md, "Event time of derived events"), through `meshctl run`.

An event made inside the mesh carries its cause's time plus the time the mesh declares between
them: retry backoff, `sleep`, the steps an orchestration waited for. A window's result carries
the window's end. Not the clock of whoever processed it: so an input that arrives behind the
clock, whose work `run` does at the clock's time, still stamps its own time on what it causes,
and `max_event_age` counts the declared time only.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

NOON = "2026-03-01T12:00:00Z"

SLEEPER = """\
apiVersion: meshctl/v1
kind: EventType
metadata: {name: order.placed}
spec: {external: true}
---
apiVersion: meshctl/v1
kind: EventType
metadata: {name: order.packed}
---
apiVersion: meshctl/v1
kind: Service
metadata: {name: packer}
spec:
  subscriptions:
    - on: order.placed
      emits: [order.packed]
      delivery:
        retry: {max_attempts: 4, backoff: fixed, initial: 10s, jitter: none, max_event_age: AGE}
      do:
        - sleep: 5s
        - emit: {type: order.packed, data: {n: "{{ data.n }}"}}
"""

SETTLE = """\
apiVersion: meshctl/v1
kind: EventType
metadata: {name: match.over}
spec: {external: true}
---
apiVersion: meshctl/v1
kind: EventType
metadata: {name: step.done}
---
apiVersion: meshctl/v1
kind: EventType
metadata: {name: run.done}
---
apiVersion: meshctl/v1
kind: Orchestration
metadata: {name: settle}
spec:
  trigger: {on: match.over}
  steps:
    - id: slow
      do: [{sleep: 3s}, {emit: {type: step.done, data: {step: slow}}}]
    - id: slower
      needs: []
      do: [{sleep: 7s}, {emit: {type: step.done, data: {step: slower}}}]
    - id: after_both
      needs: [slow, slower]
      retry: {max_attempts: 2, backoff: fixed, initial: 20s, jitter: none}
      do: {emit: {type: step.done, data: {step: after_both}}}
      compensate: {emit: {type: step.done, data: {step: undo}}}
    - id: fails
      needs: [after_both]
      when: "{{ data.fail | default(false) }}"
      do: [{sleep: 1s}, {fail: {error: Broken}}]
  on_success: {emit: {type: run.done, data: {ok: true}}}
  on_failure: {emit: {type: run.done, data: {ok: false}}}
"""

WINDOWS = """\
apiVersion: meshctl/v1
kind: EventType
metadata: {name: score}
spec: {external: true}
---
apiVersion: meshctl/v1
kind: EventType
metadata: {name: score.window}
---
apiVersion: meshctl/v1
kind: Stream
metadata: {name: board}
spec:
  from: [score]
  window: {tumbling: 1m}
  aggregate: {n: {count: {}}}
  emit: {type: score.window}
"""


def _mesh(tmp_path: Path, text: str) -> Path:
    folder = tmp_path / "mesh"
    folder.mkdir()
    (folder / "mesh.yaml").write_text(text)
    return folder


def _events(tmp_path: Path, records: list[dict]) -> Path:
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _run(meshctl, tmp_path: Path, mesh: Path, records: list[dict], *args) -> tuple[dict, list, list]:
    out, dlq = tmp_path / "out.jsonl", tmp_path / "dlq.jsonl"
    result = meshctl("run", mesh, "--events", _events(tmp_path, records), "--output", out, "--dlq-out", dlq,
                     "--format", "json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.output), _jsonl(out), _jsonl(dlq)


def _order(n: int, time: str) -> dict:
    return {"type": "order.placed", "id": f"o-{n}", "time": time, "data": {"n": n}}


@pytest.mark.parametrize("store", ["memory:", "sqlite"])
def test_a_derived_event_carries_its_causes_time_plus_its_sleep(meshctl, tmp_path, store):
    """o-2 arrives behind the clock (its time is an hour before o-1's): `run` does its work at
    the clock's time, but what it causes carries o-2's own time plus the 5 s sleep."""
    mesh = _mesh(tmp_path, SLEEPER.replace("AGE", "1h"))
    url = store if store == "memory:" else f"sqlite:{tmp_path / 'run.db'}"
    _, out, _ = _run(meshctl, tmp_path, mesh, [_order(1, NOON), _order(2, "2026-03-01T11:00:00Z")],
                     "--store", url)
    assert [(e["data"]["n"], e["time"]) for e in out] == [(1, "2026-03-01T12:00:05Z"),
                                                          (2, "2026-03-01T11:00:05Z")]


def test_retry_backoff_is_declared_time_and_max_event_age_counts_it(meshctl, tmp_path):
    """Two attempts fail at once (the injected fault comes before the sleep), each followed by
    10 s of backoff; the third sleeps 5 s and emits: 25 s after the cause. With max_event_age 1m
    the late input is retried too (its hour behind the clock is not age); with 15s the second
    retry (10 + 10 > 15) would come too late: expired after two attempts."""
    fault = "--fault=service:packer/order.placed=2:Busy"
    mesh = _mesh(tmp_path, SLEEPER.replace("AGE", "1m"))
    summary, out, dead = _run(meshctl, tmp_path, mesh, [_order(1, NOON), _order(2, "2026-03-01T11:00:00Z")],
                              fault)
    assert (summary["retries"], dead) == (4, [])
    assert [(e["data"]["n"], e["time"]) for e in out] == [(1, "2026-03-01T12:00:25Z"),
                                                          (2, "2026-03-01T11:00:25Z")]

    (tmp_path / "mesh" / "mesh.yaml").write_text(SLEEPER.replace("AGE", "15s"))
    summary, out, dead = _run(meshctl, tmp_path, tmp_path / "mesh", [_order(1, NOON)], fault)
    assert out == [] and [(d["reason"], d["attempts"]) for d in dead] == [("expired", 2)]


def test_an_orchestrations_events_follow_its_step_graph(meshctl, tmp_path):
    """`after_both` starts when the slower of its needs ended (7 s), fails once and is retried
    20 s later; the run ends there. A run whose last step fails after 1 s is compensated then."""
    mesh = _mesh(tmp_path, SETTLE)
    fault = "--fault=orchestration:settle/after_both=1:Busy"
    records = [{"type": "match.over", "id": "m-1", "time": NOON, "data": {}},
               {"type": "match.over", "id": "m-2", "time": "2026-03-01T11:00:00Z", "data": {"fail": True}}]
    _, out, _ = _run(meshctl, tmp_path, mesh, records, fault)
    times = {(e["causationid"], e["data"].get("step", e["data"].get("ok"))): e["time"][11:19] for e in out}
    assert times == {
        ("m-1", "slow"): "12:00:03", ("m-1", "slower"): "12:00:07", ("m-1", "after_both"): "12:00:27",
        ("m-1", True): "12:00:27",
        ("m-2", "slow"): "11:00:03", ("m-2", "slower"): "11:00:07", ("m-2", "after_both"): "11:00:27",
        ("m-2", "undo"): "11:00:28", ("m-2", False): "11:00:28",
    }


def test_a_windows_result_carries_the_windows_end(meshctl, tmp_path):
    """Closed by a later event or by the end of input: at the window's end either way."""
    mesh = _mesh(tmp_path, WINDOWS)
    times = ("2026-03-01T12:00:10Z", "2026-03-01T12:00:50Z", "2026-03-01T12:03:20Z")
    records = [{"type": "score", "id": f"s-{i}", "time": t, "data": {}} for i, t in enumerate(times)]
    summary, out, _ = _run(meshctl, tmp_path, mesh, records)
    assert summary["windows_emitted"] == 2
    assert [(e["data"]["n"], e["data"]["end"], e["time"]) for e in out] == [
        (2, "2026-03-01T12:01:00Z", "2026-03-01T12:01:00Z"),
        (1, "2026-03-01T12:04:00Z", "2026-03-01T12:04:00Z"),
    ]
