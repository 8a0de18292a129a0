"""T03: duplicate-delivery injection. Every event delivered one to three times, the copies
reordered within a window and some delivered again long after the first was acknowledged:
each event id still has exactly one committed effect (one `job.done`, or one dead letter).

A broker shim feeds the Runtime directly. The handler takes 2 s of virtual time, so some
copies arrive while the first attempt is still in flight: the handler runs again for
them (its invocations are at least once, as documented), but what the run commits
must not repeat. Both the memory and the SQLite store are checked.
"""
from __future__ import annotations

import collections
import random

import pytest
from runtime_harness import JOBS_MESH, inputs, jobs, load, read_log

from engine.runtime.interpreter import Runtime
from engine.storage import MemoryStore, SqliteStore

EVENTS = 600
FAILING = {"poison", "fatal", "refused"}


def broker(events: list[dict], rng: random.Random, window: float = 5.0) -> list[dict]:
    """Each event one to three times, copies shuffled within *window* places of the original;
    one event in ten comes once more about 100 places later, long after it was handled."""
    arrivals = []
    for place, event in enumerate(events):
        for _ in range(rng.choice([1, 1, 2, 3])):
            arrivals.append((place + rng.uniform(0, window), event))
        if rng.random() < 0.1:
            arrivals.append((place + 100 + rng.uniform(0, window), event))
    return [event for _, event in sorted(arrivals, key=lambda a: a[0])]


@pytest.mark.parametrize("store_kind", ["memory", "sqlite"])
def test_each_event_takes_effect_once_however_often_it_is_delivered(tmp_path, monkeypatch, store_kind):
    log = tmp_path / "effects.log"
    monkeypatch.setenv("MESHCTL_EFFECT_LOG", str(log))
    mesh = load(tmp_path / "mesh", JOBS_MESH)
    originals = jobs(EVENTS, seed=3)
    delivered = broker(originals, random.Random(3))
    store = MemoryStore() if store_kind == "memory" else SqliteStore(str(tmp_path / "store.db"))
    emitted: list[dict] = []
    runtime = Runtime(mesh, store=store, on_emit=emitted.append)
    summary = runtime.run(inputs(delivered))

    done = collections.Counter(e["causationid"] for e in emitted if e["type"] == "job.done")
    dead = collections.Counter(d.event["id"] for d in store.dead_letters())
    failing = {e["id"] for e in originals if e["data"]["kind"] in FAILING}
    assert len(delivered) > 1.5 * EVENTS
    assert set(done) == {e["id"] for e in originals} - failing and set(dead) == failing
    assert max(done.values()) == 1 and max(dead.values()) == 1
    assert len({e["id"] for e in emitted}) == len(emitted)
    assert summary["duplicates"] > 0

    invoked = collections.Counter(r["id"] for r in read_log(log))
    in_flight_repeats = sum(n - 1 for i, n in invoked.items() if i not in failing and n > 1)
    assert in_flight_repeats > 0  # the shim did deliver copies during a first attempt
