"""T04: poison messages go to the dead-letter queue without holding up healthy traffic.

One consumer takes 1,000 events of which about 10 % are poison: retryable (`ValueError`,
tried `max_attempts` times), non-retryable by the policy's list (`Fatal`) or by the
exception's own flag (`Refused`), both tried once. Each poison event becomes exactly one
dead letter that keeps the original envelope, the reason and the attempts; each healthy
event is handled at the virtual time it arrives, however many retries wait in the
schedule (its latency is never more than the backoff cap, and in fact zero).
"""
from __future__ import annotations

import collections
import random

import pytest
from runtime_harness import START, TimedTrace, inputs, load, read_log

from engine.core.eventtime import format as iso
from engine.runtime.interpreter import Runtime
from engine.storage import MemoryStore, SqliteStore

MESH = """
apiVersion: meshctl/v1
kind: EventType
metadata: {name: job.submitted}
spec: {external: true}
---
apiVersion: meshctl/v1
kind: Service
metadata: {name: worker}
spec:
  subscriptions:
    - on: job.submitted
      name: perform
      delivery:
        retry: {max_attempts: 4, backoff: exponential, initial: 1s, multiplier: 2, max_delay: 8s,
                jitter: full, non_retryable: [Fatal]}
        dead_letter: poison-q
      do: {call: {python: "effects:perform"}}
"""
MAX_ATTEMPTS, CAP = 4, 8.0
EXPECTED = {"poison": ("retries-exhausted", MAX_ATTEMPTS, "ValueError"),
            "fatal": ("non-retryable", 1, "Fatal"), "refused": ("non-retryable", 1, "Refused")}


def traffic(n: int, seed: int) -> list[dict]:
    """Events 0.5 s apart (so retries of a poison event overlap many healthy ones)."""
    rng = random.Random(seed)
    kinds = ["ok"] * 90 + ["poison"] * 6 + ["fatal"] * 2 + ["refused"] * 2
    return [{"id": f"m{i}", "type": "job.submitted", "source": "poison-test", "time": iso(START + i / 2),
             "subject": f"s{i}", "data": {"n": i, "kind": rng.choice(kinds)}} for i in range(n)]


@pytest.mark.parametrize("store_kind", ["memory", "sqlite"])
def test_poison_is_dead_lettered_once_and_healthy_events_are_not_delayed(tmp_path, monkeypatch, store_kind):
    log = tmp_path / "effects.log"
    monkeypatch.setenv("MESHCTL_EFFECT_LOG", str(log))
    mesh = load(tmp_path / "mesh", MESH)
    items = inputs(traffic(1000, seed=4))
    store = MemoryStore() if store_kind == "memory" else SqliteStore(str(tmp_path / "store.db"))
    runtime = Runtime(mesh, store=store, trace=TimedTrace())
    runtime.run(items)
    if store_kind == "sqlite":  # what a restarted process, or `meshctl dlq`, reads back
        store.commit(runtime.snapshot())
        store.close()
        store = SqliteStore(str(tmp_path / "store.db"))

    poison = {e["id"]: e for e in items if e["data"]["kind"] in EXPECTED}
    dead = store.dead_letters()
    assert len(dead) == len(poison) and len({d.event["id"] for d in dead}) == len(poison)
    invoked = collections.Counter(r["id"] for r in read_log(log))
    for record in dead:
        original = poison[record.event["id"]]
        reason, attempts, error_type = EXPECTED[original["data"]["kind"]]
        assert record.event == original  # the whole envelope as it came in
        assert (record.reason, record.attempts, record.error_type) == (reason, attempts, error_type)
        assert (record.queue, record.consumer) == ("poison-q", "service:worker/perform")
        assert record.first_attempt == original["time"] and invoked[original["id"]] == attempts

    trace = runtime.trace.sink
    arrived = {r["event"]: r["now"] for r in trace if r["kind"] == "ingest"}
    handled = {r["event"]: r["now"] for r in trace if r["kind"] == "ok"}
    healthy = [e["id"] for e in items if e["id"] not in poison]
    assert sorted(handled) == sorted(healthy)
    latency = sorted(handled[i] - arrived[i] for i in healthy)
    assert latency[int(0.99 * len(latency))] <= CAP and latency[-1] == 0.0
    waiting = [r for r in trace if r["kind"] == "retry"]
    assert len(waiting) == (MAX_ATTEMPTS - 1) * sum(e["data"]["kind"] == "poison" for e in poison.values())
