"""``Runtime(fast_paths=False)`` runs the general path and gives the run the shortcuts give.

The example meshes (routes, windowed streams, orchestrations with sagas) and meshes with
ordering, loop guards, rate limits and injected faults run twice, with and without the
shortcuts: the summary, the trace, the emitted events and the dead letters must be equal.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from engine.language.loader import load_mesh
from engine.runtime.events import read_events
from engine.runtime.interpreter import Fault, Runtime
from engine.runtime.trace import Trace

EXAMPLES = Path(__file__).resolve().parents[2] / "workflows"


def outputs(mesh, inputs, fast_paths: bool, **options) -> dict:
    records, emitted = [], []
    runtime = Runtime(mesh, trace=Trace(records), on_emit=emitted.append, fast_paths=fast_paths, **options)
    summary = runtime.run(inputs)
    return {"summary": summary, "trace": records, "emitted": emitted,
            "dead": [d.as_dict() for d in runtime.store.dead_letters()]}


FAULTS = {
    "arena": [Fault("stream:leaderboard", times=1), Fault("service:score-service/score.recorded", times=2)],
    "orders": [Fault("orchestration:fulfil-order/charge_payment", error="Declined"),
               Fault("route:vip-orders", times=1)],
    "arena-orchestrated": [Fault("orchestration:settle-match/update_ratings"),
                           Fault("service:score-service/score.recorded", times=1)],
}


@pytest.mark.parametrize("faulty", [False, True], ids=["clean", "faults"])
@pytest.mark.parametrize("example", sorted(FAULTS))
def test_each_example_runs_the_same_without_shortcuts(example, faulty):
    mesh, _ = load_mesh(str(EXAMPLES / example))
    inputs = list(read_events(str(EXAMPLES / example / "events.jsonl")))
    faults = FAULTS[example] if faulty else []
    fast = outputs(mesh, inputs, True, faults=faults, seed=3)
    assert outputs(mesh, inputs, False, faults=faults, seed=3) == fast
    assert fast["summary"]["delivered"] > 0 and fast["emitted"]
    assert bool(fast["summary"]["retries"] or fast["dead"]) or not faulty


ORDERED = """
kind: EventType
metadata: {name: step}
spec: {external: true}
---
kind: EventType
metadata: {name: echo}
spec: {}
---
kind: Service
metadata: {name: svc}
spec:
  subscriptions:
    - on: step
      ordering: {key: data.k, sequence: data.n, gap_timeout: 5s}
      emits: [echo]
      do: [{emit: {type: echo, data: {n: "{{ data.n }}"}}}]
    - on: echo
      loop: {policy: avoid-loop, max_hops: 3}
      emits: [echo]
      do: [{emit: {type: echo}}]
    - on: step
      name: limited
      rate_limit: {rate: 2, per: 1s, burst: 2, overflow: delay}
      do: [{log: "{{ data.n }}"}]
"""


def test_guards_run_the_same_without_shortcuts(mesh_of):
    mesh = mesh_of(*ORDERED.split("---\n"))
    inputs = [{"specversion": "1.0", "id": f"s{i}", "source": "t", "type": "step",
               "time": f"2026-01-01T00:00:{i // 4:02d}Z",
               "data": {"k": f"k{i % 2}", "n": (i // 2) ^ (i % 3 == 0)}}
              for i in range(24)]
    fast = outputs(mesh, inputs, True)
    assert outputs(mesh, inputs, False) == fast
    assert fast["summary"]["rate_limited"] and fast["summary"]["filtered"]


LOBBY = """
kind: EventType
metadata: {name: queued}
spec: {external: true}
---
kind: EventType
metadata: {name: lobby}
spec: {}
---
kind: Stream
metadata: {name: lobby}
spec:
  from: [queued]
  key: data.queue
  window: {count: 4, timeout: 30s}
  lateness: 5s
  aggregate:
    players: {collect: {field: data.player, max: 4}}
    best: {top_n: {by: data.rating, n: 2, field: data.player}}
    regions: {distinct: {field: data.region, max: 3}}
    n: {count: {}}
  emit: {type: lobby}
"""


def test_count_windows_and_list_aggregates_run_the_same_without_shortcuts(mesh_of):
    mesh = mesh_of(*LOBBY.split("---\n"))
    inputs = [{"specversion": "1.0", "id": f"q{i}", "source": "t", "type": "queued",
               "time": f"2026-01-01T00:{i * 7 // 60:02d}:{i * 7 % 60:02d}Z",
               "data": {"queue": f"q{i % 3 % 2}", "player": f"p{i}", "rating": i * 37 % 11,
                        "region": ["eu", "us", "ap", "sa"][i % 4]}}
              for i in range(40)]
    fast = outputs(mesh, inputs, True)
    assert outputs(mesh, inputs, False) == fast
    formed = [e["data"] for e in fast["emitted"] if e["type"] == "lobby"]
    assert {d["complete"] for d in formed} == {True, False}
