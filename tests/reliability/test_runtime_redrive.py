"""T06: redriving the dead-letter queue twice processes each dead-lettered event once.

A run with its downstream down (`--fault ...=always:Outage`) dead-letters all 200 jobs.
The fault is then gone, and `meshctl dlq replay` runs twice, on a `--dlq-out` file and on
a SQLite store. The logged handler must have run once per fixed job in all (and its
downstream once per job.done), the second redrive must find nothing of them left, and
the queue must end holding only the jobs whose payload is still poison: once each.
"""
from __future__ import annotations

import collections
import json

import pytest
from runtime_harness import jobs, read_log, write_events, write_mesh

MESH = """
apiVersion: meshctl/v1
kind: EventType
metadata: {name: job.submitted}
spec: {external: true}
---
apiVersion: meshctl/v1
kind: EventType
metadata: {name: job.done}
---
apiVersion: meshctl/v1
kind: Service
metadata: {name: worker}
spec:
  subscriptions:
    - on: job.submitted
      name: perform
      delivery: {retry: {max_attempts: 3, initial: 1s, jitter: none}, dead_letter: jobs-dlq}
      do:
        - call: {python: "effects:perform"}
        - emit: {type: job.done, data: {n: "{{ data.n }}"}}
      emits: [job.done]
---
apiVersion: meshctl/v1
kind: Service
metadata: {name: ledger}
spec:
  subscriptions:
    - on: job.done
      name: record
      do: {call: {python: "effects:note", args: {name: ledger}}}
"""
EVENTS = 200
OUTAGE = "--fault=service:worker/perform=always:Outage"


@pytest.mark.parametrize("where", ["dlq-file", "sqlite-store"])
def test_redriving_twice_processes_each_dead_letter_once(tmp_path, monkeypatch, meshctl, where):
    log = tmp_path / "effects.log"
    monkeypatch.setenv("MESHCTL_EFFECT_LOG", str(log))
    mesh = write_mesh(tmp_path / "mesh", MESH)
    originals = [dict(e, data={**e["data"], "kind": "poison" if i % 25 == 0 else "ok"})
                 for i, e in enumerate(jobs(EVENTS, seed=6))]
    events = write_events(tmp_path / "events.jsonl", originals)
    source = (
        ["--dlq", tmp_path / "dlq.jsonl"]
        if where == "dlq-file"
        else ["--store", f"sqlite:{tmp_path / 'run.db'}"]
    )
    destination = ["--dlq-out", tmp_path / "dlq.jsonl"] if where == "dlq-file" else source

    failed = meshctl("run", mesh, "--events", events, OUTAGE, *destination, "--format=json")
    assert json.loads(failed.output)["dead_lettered"] == EVENTS and read_log(log) == []
    replays = []
    for n in (1, 2):
        result = meshctl("dlq", "replay", mesh, *source, "--output", tmp_path / f"replay{n}.jsonl",
                         "--format=json")
        assert result.exit_code == 0, result.output
        replays.append(json.loads(result.output))

    poison = {e["id"] for e in originals if e["data"]["kind"] == "poison"}
    assert [r["replayed"] for r in replays] == [EVENTS, len(poison)]  # the second finds only the poison
    assert [r["still_dead"] for r in replays] == [len(poison)] * 2
    done = [
        [json.loads(line) for line in (tmp_path / f"replay{n}.jsonl").read_text().splitlines()]
        for n in (1, 2)
    ]
    assert sorted(e["causationid"] for e in done[0]) == sorted(
        e["id"] for e in originals if e["id"] not in poison
    )
    assert done[1] == []

    invoked = collections.Counter((r["name"], r["id"]) for r in read_log(log))
    assert {i: n for (name, i), n in invoked.items() if name == "perform" and i not in poison} == \
        {e["id"]: 1 for e in originals if e["id"] not in poison}
    assert {i: n for (name, i), n in invoked.items() if name == "ledger"} == {e["id"]: 1 for e in done[0]}
    assert {i: n for (name, i), n in invoked.items() if i in poison} == {i: 2 * 3 for i in poison}

    left = json.loads(meshctl("dlq", "list", *source, "--format=json").output)
    assert sorted(r["event"]["id"] for r in left) == sorted(poison)
    assert {(r["reason"], r["attempts"], r["error_type"]) for r in left} == {
        ("retries-exhausted", 3, "ValueError")
    }
