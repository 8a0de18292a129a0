"""A run whose handlers keep keyed state, SIGKILLed between commits and resumed, ends with the
outputs and the state of an undisturbed run: a state write commits with its attempt or not
at all, so a resumed run neither loses nor repeats one."""
from __future__ import annotations

import json
import random

import pytest
from runtime_harness import meshctl, output_texts, outputs, run_with_sigkills, write_events

pytestmark = pytest.mark.slow

MESH = """
apiVersion: meshctl/v1
kind: EventType
metadata: {name: point.scored}
spec: {external: true}
---
apiVersion: meshctl/v1
kind: EventType
metadata: {name: tally.counted}
---
apiVersion: meshctl/v1
kind: Service
metadata: {name: scorer}
spec:
  state: {key: "{{ data.player }}", ttl: 40m}
  subscriptions:
    - on: point.scored
      emits: [tally.counted]
      delivery: {retry: {max_attempts: 3, initial: 1s, jitter: none}}
      do:
        - call: {python: "handlers:count"}
        - sleep: 3s
---
apiVersion: meshctl/v1
kind: Service
metadata: {name: board}
spec:
  subscriptions:
    - on: tally.counted
      do: {log: "{{ data.player }} has {{ data.n }}"}
"""

HANDLERS = '''
def count(event, context):
    state = context.state
    state["n"] = state.get("n", 0) + 1
    state["last"] = event["id"]
    if event["data"]["flaky"] and context.attempt == 1:
        raise RuntimeError("flaky")
    context.emit("tally.counted", {"player": event["data"]["player"], "n": state["n"]})
'''

EVENTS, KILLS = 3000, 4


def test_a_stateful_run_killed_and_resumed_ends_with_the_same_outputs_and_state(tmp_path):
    mesh = tmp_path / "mesh"
    mesh.mkdir()
    (mesh / "mesh.yaml").write_text(MESH)
    (mesh / "handlers.py").write_text(HANDLERS)
    rng = random.Random(5)
    events = write_events(tmp_path / "events.jsonl", [
        {"id": f"e{i}", "source": "test", "type": "point.scored",
         "time": f"2026-01-01T{i // 3600:02d}:{i // 60 % 60:02d}:{i % 60:02d}Z",
         "data": {"player": f"p{rng.randrange(40)}", "flaky": i % 11 == 0}}
        for i in range(EVENTS)
    ])
    common = ["run", mesh, "--events", events, "--checkpoint-every=50", "--format=json"]
    clean = meshctl(*common, f"--store=sqlite:{tmp_path / 'clean.db'}", *outputs(tmp_path / "clean"))
    killed_args = [*common, f"--store=sqlite:{tmp_path / 'killed.db'}", *outputs(tmp_path / "killed")]
    crashed = run_with_sigkills(killed_args, tmp_path / "killed.db", kills=KILLS, rng=rng, total=EVENTS)
    assert (crashed["kills"], crashed["starts"]) == (KILLS, KILLS + 1)
    reference, killed = output_texts(tmp_path / "clean"), output_texts(tmp_path / "killed")
    assert [name for name in reference if reference[name] != killed[name]] == []
    assert crashed["summary"] == json.loads(clean.stdout)
    assert '"state-conflict"' in reference["trace"]  # attempts on one key did overlap
    states = [json.loads(meshctl("state", "list", "--store", f"sqlite:{tmp_path / name}.db",
                                 "--format", "json").stdout) for name in ("clean", "killed")]
    assert states[0] == states[1] and 30 <= len(states[0]) <= 40
