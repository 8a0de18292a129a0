"""Ordering (resequencing), rate limits, and fixes around loops, sagas and stream flushes."""
from __future__ import annotations

from engine.runtime.interpreter import Fault

PING = "kind: EventType\nmetadata: {name: ping}\nspec: {external: true}"
PONG = "kind: EventType\nmetadata: {name: pong}"


def ordered(extra: str = "", do: str = '[{log: "{{ data.seq }}"}]') -> str:
    return f"""kind: Service
metadata: {{name: svc}}
spec:
  subscriptions:
    - on: ping
      do: {do}
      ordering: {{key: data.k, sequence: data.seq, gap_timeout: 10s{extra}}}
      delivery: {{retry: {{max_attempts: 3, initial: 5s, jitter: none}}}}"""


def ev(seq, k="a", t=0, i=None):
    return {
        "id": i or f"{k}{seq}-{t}",
        "type": "ping",
        "time": f"2026-01-01T00:00:{t:02d}Z",
        "data": {"k": k, "seq": seq},
    }


def delivered(out):
    return [(r["event"], r["t"][-3:-1]) for r in out.kinds("ok")]


def test_out_of_order_events_are_delivered_in_sequence_per_key(mesh_of, run):
    mesh = mesh_of(PING, ordered())
    out = run(mesh, [ev(2, t=0), ev(1, "b", t=1), ev(3, t=2), ev(1, t=3), ev(2, "b", t=4)])
    assert [m for m in (r["message"] for r in out.kinds("log"))] == ["1", "1", "2", "3", "2"]
    assert delivered(out) == [("b1-1", "01"), ("a1-3", "03"), ("a2-0", "03"), ("a3-2", "03"), ("b2-4", "04")]


def test_a_retried_event_is_not_overtaken(mesh_of, run):
    mesh = mesh_of(PING, ordered(do='[{fail: {times: 1}}, {log: "{{ data.seq }}"}]'))
    out = run(mesh, [ev(1, t=0), ev(2, t=1)])
    assert [r["message"] for r in out.kinds("log")] == ["1", "2"]
    # every first attempt fails once: seq 2 (in at 1s) waits for seq 1's retry at 5s, then needs its own retry
    assert delivered(out) == [("a1-0", "05"), ("a2-1", "10")]


def test_gap_delivers_after_timeout_and_late_number_is_dead_lettered(mesh_of, run):
    mesh = mesh_of(PING, ordered())
    out = run(mesh, [ev(1, t=0), ev(3, t=1), ev(2, t=30), ev(3, t=31, i="again")])
    assert [r["message"] for r in out.kinds("log")] == ["1", "3"]
    (gap,) = out.kinds("gap")
    assert gap["missing"] == [2, 2] and gap["t"].endswith("00:00:11Z")
    assert [d.reason for d in out.dead] == ["late-event"]
    assert out.summary["duplicates"] == 1 and out.summary["sequence_gaps"] == 1


def test_gap_can_dead_letter_instead(mesh_of, run):
    mesh = mesh_of(PING, ordered(", on_gap: dead_letter, start: 10"))
    out = run(mesh, [ev(12, t=0), ev(13, t=1), ev(14, t=20)])
    assert [(d.reason, d.event["data"]["seq"]) for d in out.dead] == [
        ("sequence-gap", 12),
        ("sequence-gap", 13),
    ]
    assert [r["message"] for r in out.kinds("log")] == ["14"]


def test_missing_ordering_field_is_dead_lettered(mesh_of, run):
    out = run(mesh_of(PING, ordered()), [{"type": "ping", "data": {"k": "a"}}])
    assert [d.reason for d in out.dead] == ["schema-invalid"]


def limited(overflow: str) -> str:
    return f"""kind: Service
metadata: {{name: svc}}
spec:
  subscriptions:
    - on: ping
      do: {{log: x}}
      rate_limit: {{rate: 2, per: 1s, burst: 2, overflow: {overflow}}}"""


def test_rate_limit_spreads_a_burst(mesh_of, run):
    out = run(
        mesh_of(PING, limited("delay")), [{"type": "ping", "time": "2026-01-01T00:00:00Z"} for _ in range(6)]
    )
    assert [r["t"][11:] for r in out.kinds("ok")] == [
        "00:00:00Z",
        "00:00:00Z",
        "00:00:00.5Z",
        "00:00:01Z",
        "00:00:01.5Z",
        "00:00:02Z",
    ]
    assert out.summary["rate_limited"] == 4 and out.dead == []


def test_rate_limit_can_dead_letter(mesh_of, run):
    out = run(
        mesh_of(PING, limited("dead_letter")),
        [{"type": "ping", "time": "2026-01-01T00:00:00Z"}] * 1
        + [{"type": "ping", "time": "2026-01-01T00:00:00Z"} for _ in range(3)],
    )
    assert [d.reason for d in out.dead] == ["rate-limited", "rate-limited"]


def test_loop_bound_on_an_orchestration_is_enforced(mesh_of, run):
    orch = """kind: Orchestration
metadata: {name: again}
spec:
  trigger: {on: ping}
  loop: {max_hops: 2}
  steps: [{id: s, do: {emit: {type: ping}}}]"""
    out = run(mesh_of(PING, orch), [{"type": "ping"}])
    assert out.summary["runs_started"] == 2 and [d.reason for d in out.dead] == ["loop-detected"]


def test_a_step_finishing_after_a_failure_is_compensated_too(mesh_of, run):
    orch = """kind: Orchestration
metadata: {name: o}
spec:
  trigger: {on: ping}
  steps:
    - {id: slow, needs: [], do: [{sleep: 5s}], compensate: {log: undo-slow}}
    - {id: quick, needs: [], do: [{sleep: 1s}], compensate: {log: undo-quick}}
    - {id: boom, needs: [quick], do: {fail: {error: Boom}}}"""
    out = run(mesh_of(PING, orch), [{"type": "ping"}])
    # newest first, slow finished last
    assert [r["step"] for r in out.kinds("compensate")] == ["slow", "quick"]
    assert [r["message"] for r in out.kinds("log")] == ["undo-slow", "undo-quick"]


def test_fault_on_a_step_and_logs_of_on_failure(mesh_of, run):
    orch = """kind: Orchestration
metadata: {name: o}
spec:
  trigger: {on: ping}
  steps: [{id: s, do: {log: ran}}]
  on_failure: {log: "failed: {{ error }}"}"""
    out = run(mesh_of(PING, orch), [{"type": "ping"}], faults=[Fault("orchestration:o/s", None, "Down")])
    assert [r["message"] for r in out.kinds("log")] == [
        "failed: step 's' failed: Down: injected fault (attempt 1)"
    ]


def test_stream_emit_data_sees_data_at_end_of_input(mesh_of, run):
    stream = """kind: Stream
metadata: {name: st}
spec:
  from: [ping]
  window: {tumbling: 1m}
  aggregate: {n: {count: {}}}
  emit: {type: pong, data: {count: "{{ data.n }}", also: "{{ n }}"}}"""
    sink = "kind: Service\nmetadata: {name: sink}\nspec: {subscriptions: [{on: pong, do: {log: x}}]}"
    out = run(mesh_of(PING, PONG, stream, sink), [{"type": "ping", "time": "2026-01-01T00:00:00Z"}] * 1)
    (window,) = out.emitted
    assert window["data"] == {"count": 1, "also": 1}
    assert window["causationid"].startswith("stream:st:null:")
