"""Keyed state in a deployment: workers that race on one key lose no update.

Each worker checks at commit that what its unit of work read is unchanged (the Redis store
tracks a worker's reads); a unit that read a state value another worker has since replaced
is done again on the new value. The first test shows, on two stores side by side, that the
check is what prevents a lost update: without it, the second commit would overwrite the
first. The second runs two `meshctl worker` processes on three hot keys.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from engine.language.loader import load_mesh
from engine.runtime.actions import Attempt
from engine.runtime.keyedstate import KeyedStates
from engine.storage import open_store
from engine.storage.broker import APPLIED, CONFLICT

REPO = Path(__file__).resolve().parents[2]

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
  state: {key: "{{ data.player }}"}
  subscriptions:
    - on: point.scored
      emits: [tally.counted]
      do: {call: {python: "handlers:count"}}
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
    context.state["n"] = context.state.get("n", 0) + 1
    context.emit("tally.counted", {"player": event["data"]["player"], "n": context.state["n"]})
'''


@pytest.fixture
def mesh_dir(tmp_path):
    (tmp_path / "mesh").mkdir()
    (tmp_path / "mesh" / "mesh.yaml").write_text(MESH)
    (tmp_path / "mesh" / "handlers.py").write_text(HANDLERS)
    return tmp_path / "mesh"


def _increment(states: KeyedStates, now: float) -> dict:
    """One attempt of `count` on ann's key, as a worker's unit runs it: read, change, check."""
    event = {"id": "e1", "source": "t", "type": "point.scored", "data": {"player": "ann"}}
    context = {"data": event["data"], "event": event}
    attempt = Attempt("service:scorer/point.scored", event, 1, now, context, None)
    keyed = states.of["service:scorer"]
    keyed.begin(attempt, attempt.context, now)
    attempt.state.value["n"] = attempt.state.value.get("n", 0) + 1
    keyed.end(attempt)
    return attempt.state_write


@pytest.mark.parametrize("tracked", [True, False])
def test_a_worker_that_read_a_key_another_replaced_does_not_commit(mesh_dir, redis_url, tracked):
    mesh, _ = load_mesh(str(mesh_dir))
    seed = open_store(redis_url)
    seed.put_state("kv:service:scorer:ann", {"value": {"n": 5}, "updated": 0.0, "expires": None})
    assert seed.commit_unit() == APPLIED
    first, second = open_store(redis_url), open_store(redis_url)
    first.tracking = second.tracking = tracked  # a worker's store tracks its reads
    first_states, second_states = KeyedStates(mesh, first), KeyedStates(mesh, second)
    first_write = _increment(first_states, 1.0)  # both units read n = 5 ...
    second_write = _increment(second_states, 1.0)
    assert second_states.apply(second_write, 1.0)
    assert second.commit_unit() == APPLIED  # ... the second commits n = 6 first
    assert first_states.apply(first_write, 1.0)  # the value the first's unit read still looks current to it
    if tracked:
        assert first.commit_unit() == CONFLICT  # but not to the store: its unit is done again
        assert first_states.apply(_increment(first_states, 2.0), 2.0)  # done again: reads n = 6
        assert first.commit_unit() == APPLIED
        assert open_store(redis_url).get_state("kv:service:scorer:ann")["value"] == {"n": 7}
    else:  # what the check prevents: the first overwrites the second's write with its own n = 6
        assert first.commit_unit() == APPLIED
        assert open_store(redis_url).get_state("kv:service:scorer:ann")["value"] == {"n": 6}


def test_a_key_written_since_an_attempt_read_it_absent_fails_the_runtime_check(mesh_dir, redis_url):
    mesh, _ = load_mesh(str(mesh_dir))
    first, second = open_store(redis_url), open_store(redis_url)
    first_states, second_states = KeyedStates(mesh, first), KeyedStates(mesh, second)
    first_write = _increment(first_states, 1.0)
    assert second_states.apply(_increment(second_states, 1.0), 1.0) and second.commit_unit() == APPLIED
    assert not first_states.apply(first_write, 1.0)  # read absent, now n = 1: the attempt runs again


@pytest.mark.slow
def test_two_workers_on_three_hot_keys_count_every_event_once(mesh_dir, redis_url, meshctl, tmp_path):
    players = ["ann", "bob", "cy"]
    lines = [json.dumps({"id": f"e{i}", "source": "t", "type": "point.scored",
                         "data": {"player": players[i % 7 % 3]}}) for i in range(600)]
    (tmp_path / "events.jsonl").write_text("\n".join(lines) + "\n")
    published = meshctl("publish", mesh_dir, tmp_path / "events.jsonl", "--store", redis_url)
    assert published.exit_code == 0, published.output
    command = [sys.executable, "-c", "import sys; from cli import main; sys.exit(main())", "worker",
               str(mesh_dir), "--store", redis_url, "--exit-when-idle", "--format=json"]
    workers = [subprocess.Popen([*command, "--name", name], cwd=REPO, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True) for name in ("a", "b")]
    done = [proc.communicate(timeout=240) for proc in workers]
    assert [proc.returncode for proc in workers] == [0, 0], [err[-2000:] for _, err in done]
    expected = {p: sum(1 for i in range(600) if players[i % 7 % 3] == p) for p in players}
    found = {p: json.loads(meshctl("state", "show", "--store", redis_url, "scorer", p).output)["value"]["n"]
             for p in players}
    assert found == expected
    status = json.loads(meshctl("status", mesh_dir, "--store", redis_url, "--format=json").stdout)
    assert status["summary"]["emitted"] == 600 and status["summary"]["dead_lettered"] == 0
