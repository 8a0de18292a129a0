"""A durable run stopped after any commit and resumed from the store emits the windows, and
routes the late events, of a run that never stopped. Many windows stay open across commits
(hopping windows, large lateness), so most checkpoints carry windows no event changed since
the one before (their snapshot entries are reused)."""
from __future__ import annotations

import random

import pytest

from engine.core.errors import Location
from engine.runtime.events import normalise
from engine.runtime.interpreter import Runtime
from engine.runtime.trace import Trace
from engine.storage import SqliteStore

TICK = """
kind: EventType
metadata: {name: tick}
spec: {external: true}
"""
WINDOW = """
kind: EventType
metadata: {name: tick.window}
"""
STREAM = """
kind: Stream
metadata: {name: ticks}
spec:
  from: [tick]
  key: data.k
  time: time
  window: %s
  lateness: 120s
  aggregate:
    n: {count: {}}%s
  emit: {type: tick.window}
"""
MORE = """
    total: {sum: data.v}
    seen: {count_distinct: data.v}
    opening: {first: data.v}"""
LISTS = MORE + """
    values: {collect: {field: data.v, max: 3}}
    best: {top_n: {by: data.v, n: 2, field: data}}
    kinds: {distinct: {field: data.v, max: 4}}"""


def inputs(seed: int, n: int = 600) -> list[dict]:
    rng = random.Random(seed)
    events = []
    for i in range(n):
        second = i + rng.randrange(-200, 5)  # out of order, some behind the watermark (late)
        events.append(
            {
                "id": f"t{i}",
                "type": "tick",
                "time": f"2026-01-01T{second // 3600:02d}:{second // 60 % 60:02d}:{second % 60:02d}Z"
                if second >= 0
                else "2026-01-01T00:00:00Z",
                "data": {"k": rng.choice(["a", "b", "c", 7, True]), "v": rng.randrange(5)},
            }
        )
    return [normalise(e, Location("test", i + 1, 1), i) for i, e in enumerate(events)]


def windows(emitted: list[dict]) -> list[tuple]:
    return [
        (
            e["data"]["key"],
            e["data"]["start"],
            e["data"]["n"],
            e["data"].get("total"),
            e["data"].get("seen"),
            e["data"].get("opening"),
            e["data"].get("end"),
            e["data"].get("complete"),
            e["data"].get("values"),
            e["data"].get("best"),
            e["data"].get("kinds"),
        )
        for e in emitted
        if e["type"] == "tick.window"
    ]


def durable_run(mesh, items: list[dict], path: str, every: int, stops: list[int]) -> tuple[list[dict], list]:
    """Feed *items*, committing every *every* inputs; at each input position in *stops* the
    process 'dies' (the runtime is dropped uncommitted) and a new one resumes from the store."""
    store = SqliteStore(path)
    runtime = Runtime(mesh, store=store, trace=Trace())
    runtime.notes["journal_trace"] = False
    pending = sorted(stops)
    while True:
        for item in items[runtime.fed :]:
            runtime.feed(item)
            if runtime.fed % every == 0:
                store.commit(runtime.snapshot())
            if pending and runtime.fed == pending[0]:
                break
        else:
            break
        pending.pop(0)
        store.close()  # what was fed since the last commit is lost, as in a crash
        store = SqliteStore(path)
        runtime = Runtime(mesh, store=store, trace=Trace())
        runtime.restore(store.checkpoint())
    runtime.finish()
    store.commit(runtime.snapshot())
    try:
        return list(store.records("emitted")), [d.event["id"] for d in store.dead_letters()]
    finally:
        store.close()


# "": count only
@pytest.mark.parametrize(
    ("window", "more"),
    [
        ("{tumbling: 60s}", MORE),
        ("{tumbling: 60s}", ""),
        ("{hopping: {size: 60s, every: 20s}}", MORE),
        ("{session: {gap: 5s}}", LISTS),
        ("{count: 7, timeout: 15s}", LISTS),  # open count windows are in the checkpoints too
    ],
)
@pytest.mark.parametrize("seed", [1, 2])
def test_a_run_resumed_after_any_commit_emits_the_windows_of_an_uninterrupted_one(
    mesh_of, tmp_path, window, more, seed
):
    mesh = mesh_of(TICK, WINDOW, STREAM % (window, more))
    items = inputs(seed)
    whole: list[dict] = []
    runtime = Runtime(mesh, trace=Trace(), on_emit=whole.append)
    runtime.run(items)
    late = [d.event["id"] for d in runtime.store.dead_letters()]
    assert len(windows(whole)) > 40 and len(late) > 10
    stops = random.Random(seed).sample(range(1, len(items)), 5)
    resumed, resumed_late = durable_run(mesh, items, str(tmp_path / "run.db"), every=25, stops=stops)
    assert windows(resumed) == windows(whole)
    assert [e["id"] for e in resumed] == [e["id"] for e in whole]
    assert resumed_late == late
