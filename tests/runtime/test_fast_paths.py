"""The runtime's shortcuts give the same run as its general path (``fast_paths=False``).

How an attempt's outcome reaches its commit does not matter: an attempt that takes no time
commits at once, read from the ``Attempt`` itself; one that sleeps waits in the schedule as
plain data (``Attempt.outcome``) and commits later. The general path commits every attempt
from the data form, schedules every first attempt, asks the pattern index however few
patterns a type has and counts windows without shortcuts: it must give the same trace,
outputs and dead letters, on meshes with routes, patterns, streams, retries and injected
faults. Counters do not depend on whether a trace sink records.
"""
from __future__ import annotations

import pytest

from engine.core.errors import Location
from engine.runtime.actions import Attempt
from engine.runtime.events import normalise
from engine.runtime.interpreter import Fault, Runtime
from engine.runtime.trace import Trace

TYPES = (
    """
kind: EventType
metadata: {name: ping}
spec: {external: true, schema: {type: object, properties: {n: {type: integer}, k: {type: string}}, required: [n]}}
""",  # noqa: E501 (YAML kept as written)
    """
kind: EventType
metadata: {name: pong}
spec: {schema: {type: object, properties: {n: {type: integer}}}}
""",
    """
kind: EventType
metadata: {name: tally}
spec: {}
""",
)
ROUTE = """
kind: Route
metadata: {name: big}
spec:
  from: [ping]
  match: {data: {n: [{numeric: [">", 2]}]}}
  transform: {type: pong, data: {n: "{{ data.n }}"}}
  to: [svc]
"""
SERVICE = """
kind: Service
metadata: {name: svc}
spec:
  subscriptions:
    - on: pong
      delivery: {retry: {max_attempts: 3, backoff: fixed, initial: 2s, jitter: none}}
      do: [{log: "got {{ data.n }}"}%s]
"""
STREAM = """
kind: Stream
metadata: {name: counts}
spec:
  from: [ping]
  key: data.k
  time: time
  window: {tumbling: 10s}
  aggregate: {n: {count: {}}}
  emit: {type: tally}
"""


def events(count: int = 30) -> list:
    return [
        normalise(
            {
                "id": f"e{i}",
                "type": "ping",
                "time": f"2026-01-01T00:00:{i:02d}Z",
                "data": {"n": i % 7, "k": f"k{i % 3}"},
            },
            Location("test", i + 1, 1),
            i,
        )
        for i in range(count)
    ]


def go(mesh, sink=True, **options):
    records, emitted = [], []
    runtime = Runtime(mesh, trace=Trace(records if sink else None), on_emit=emitted.append, **options)
    summary = runtime.run(events())
    return {"summary": summary, "trace": records, "emitted": emitted, "dead": runtime.store.dead_letters()}


@pytest.fixture
def outcome_calls(monkeypatch):
    """How often an attempt's outcome was copied into data (the scheduled form)."""
    calls = []
    original = Attempt.outcome
    monkeypatch.setattr(Attempt, "outcome", lambda self, error: calls.append(1) or original(self, error))
    return calls


MESHES = {
    "route, stream": ((*TYPES, ROUTE, SERVICE % "", STREAM), {}),
    "retries and faults": (
        (*TYPES, ROUTE, SERVICE % ", {fail: {error: Flaky, times: 1}}", STREAM),
        {"faults": [Fault("route:big", times=1)], "seed": 5},
    ),
}


@pytest.mark.parametrize("name", MESHES)
def test_immediate_and_scheduled_commits_give_the_same_run(mesh_of, outcome_calls, name):
    documents, options = MESHES[name]
    mesh = mesh_of(*documents)
    direct = go(mesh, **options)
    copied = len(outcome_calls)
    assert go(mesh, fast_paths=False, **options) == direct
    assert len(outcome_calls) > copied  # the general path committed from the data form
    assert direct["trace"] and direct["emitted"]


def test_an_attempt_that_takes_no_time_is_not_copied_into_data(mesh_of, outcome_calls):
    run = go(mesh_of(*TYPES, ROUTE, SERVICE % "", STREAM))
    assert run["summary"]["delivered"] > 30 and run["summary"]["windows_emitted"] > 0
    assert outcome_calls == []


def test_an_attempt_that_sleeps_waits_in_the_schedule_as_data(mesh_of, outcome_calls):
    run = go(mesh_of(*TYPES, ROUTE, SERVICE % ", {sleep: 1s}", STREAM))
    assert len(outcome_calls) == sum(
        1 for r in run["trace"] if r["kind"] == "deliver" and r["type"] == "pong"
    )
    assert outcome_calls


@pytest.mark.parametrize("name", MESHES)
def test_counters_and_outputs_do_not_depend_on_recording_the_trace(mesh_of, name):
    documents, options = MESHES[name]
    mesh = mesh_of(*documents)
    recorded, silent = go(mesh, **options), go(mesh, sink=False, **options)
    assert silent["trace"] == []
    assert (silent["summary"], silent["emitted"]) == (recorded["summary"], recorded["emitted"])
    assert [d.as_dict() for d in silent["dead"]] == [d.as_dict() for d in recorded["dead"]]


STREAM_FILTERED = STREAM.replace(
    "  key: data.k", "  match: {data: {n: [{numeric: [\"<\", 5]}]}}\n  key: data.k"
)


@pytest.mark.parametrize("name", MESHES)
def test_patterns_tested_one_by_one_route_as_the_index_does(mesh_of, name):
    documents, options = MESHES[name]
    mesh = mesh_of(*documents[:-1], STREAM_FILTERED)  # two patterns on ping: a route's and a stream's
    scanned = go(mesh, **options)
    indexed = go(mesh, fast_paths=False, **options)
    assert indexed == scanned
    assert any(r["kind"] == "filtered" and r["why"] == "match" for r in scanned["trace"])
    assert any(r["kind"] == "deliver" and r["consumer"] == "stream:counts" for r in scanned["trace"])


FANOUT = """
kind: Service
metadata: {name: echo}
spec:
  subscriptions:
    - on: ping
      emits: [pong]
      do: [{emit: {type: pong, data: {n: "{{ data.n }}"}}}]
"""
INLINE_MESHES = {
    **MESHES,
    "three consumers of the input, one emitting": ((*TYPES, ROUTE, SERVICE % "", FANOUT, STREAM), {}),
}


@pytest.mark.parametrize("name", INLINE_MESHES)
def test_inputs_attempted_at_once_run_as_through_the_schedule(mesh_of, name):
    documents, options = INLINE_MESHES[name]
    mesh = mesh_of(*documents)
    at_once = go(mesh, **options)
    scheduled = go(mesh, fast_paths=False, **options)  # every attempt scheduled
    assert scheduled == at_once
    kinds = [r["kind"] for r in at_once["trace"]]
    assert "emit" in kinds and "window" in kinds


@pytest.mark.parametrize("shape", ["without a time", "behind the clock"])
def test_an_input_arrives_after_what_is_due_until_it(mesh_of, shape):
    """An input without a time, or with one behind the clock, arrives now: what an earlier
    input left due now runs first, whether or not that one's attempts went through the schedule."""
    mesh = mesh_of(*TYPES, ROUTE, SERVICE % "", FANOUT, STREAM)
    odd = {"time": None} if shape == "without a time" else {"time": "2025-12-31T23:59:00Z"}
    timeless = [{**e, **odd} if i % 2 else e for i, e in enumerate(events())]
    runs = []
    for fast_paths in (True, False):
        records = []
        runtime = Runtime(mesh, trace=Trace(records), fast_paths=fast_paths)
        runtime.run(timeless)
        runs.append(records)
    assert runs[0] == runs[1]


def test_a_stream_attempt_without_window_output_gives_the_run_of_the_general_path(mesh_of):
    mesh = mesh_of(*TYPES, STREAM)
    lane = go(mesh)
    general = go(mesh, fast_paths=False)
    assert general == lane
    assert lane["summary"]["windows_emitted"] > 0


WIDE = """
kind: Stream
metadata: {name: wide}
spec:
  from: [ping]
  time: time
  window: {tumbling: 20s}
  aggregate: {n: {count: {}}}
  emit: {type: tally}
"""
UNTYPED_PING = TYPES[0].replace(
    ", schema: {type: object, properties: {n: {type: integer}, k: {type: string}}, required: [n]}", ""
)


@pytest.mark.parametrize("shape", ["in order", "duplicates", "without a time", "behind the clock"])
def test_inputs_only_streams_take_run_as_on_the_general_path(mesh_of, shape):
    """The fused path of inputs taken only by streams gives the general path's run."""
    mesh = mesh_of(UNTYPED_PING, *TYPES[1:], STREAM, WIDE)
    inputs = events(60)
    if shape == "duplicates":
        inputs = [e for e in inputs for _ in (0, 1)][:90]
    elif shape != "in order":
        odd = {"time": None} if shape == "without a time" else {"time": "2025-12-31T23:59:00Z"}
        inputs = [{**e, **odd} if i % 3 == 1 else e for i, e in enumerate(inputs)]

    def run(fast_paths: bool):
        emitted = []
        runtime = Runtime(mesh, trace=Trace(), on_emit=emitted.append, fast_paths=fast_paths)
        summary = runtime.run(inputs)
        snapshot = runtime.snapshot()
        del snapshot["scheduler"]["seq"]  # how many tasks went through the schedule: the general path's all
        return summary, emitted, [d.as_dict() for d in runtime.store.dead_letters()], snapshot

    assert Runtime(mesh).intake.stream_lanes  # ping is taken by the two streams alone
    assert Runtime(mesh, fast_paths=False).intake.stream_lanes == {}
    fused = run(True)
    assert run(False) == fused
    assert fused[0]["windows_emitted"] > 0 and fused[1]
    if shape == "duplicates":
        assert fused[0]["duplicates"] > 0


def test_only_plain_streams_without_schema_pattern_or_fault_take_the_fused_path(mesh_of):
    assert Runtime(mesh_of(*TYPES, STREAM)).intake.stream_lanes == {}  # ping has a schema
    untyped = (UNTYPED_PING, *TYPES[1:])
    assert set(Runtime(mesh_of(*untyped, STREAM)).intake.stream_lanes) == {"ping"}
    assert Runtime(mesh_of(*untyped, STREAM_FILTERED)).intake.stream_lanes == {}
    assert Runtime(mesh_of(*untyped, STREAM), faults=[Fault("stream:counts")]).intake.stream_lanes == {}
    # a subscription takes ping too
    assert Runtime(mesh_of(*untyped, STREAM, FANOUT)).intake.stream_lanes == {}
