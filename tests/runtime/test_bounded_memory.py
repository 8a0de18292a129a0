"""What a run holds in memory is the work in flight, not the work done (stage 7).

Structural checks, no clock and no RSS: after each input, the store holds orchestration runs
only while they run, and dedup records only within their window. The measured figures (peak
RSS at 10k/100k/1M orders) are `python -m bench memory`.
"""
from __future__ import annotations

import random
from pathlib import Path

import pytest

from bench.orders import order
from engine.language.loader import load_mesh
from engine.runtime.interpreter import Runtime
from engine.storage import MemoryStore, SqliteStore

ORDERS = Path(__file__).resolve().parents[2] / "workflows" / "orders"


@pytest.fixture(scope="module")
def orders_mesh():
    mesh, diagnostics = load_mesh(str(ORDERS))
    assert not [d for d in diagnostics if d.severity == "error"]
    return mesh


def live_runs(store) -> int:
    """Runs a store holds in memory (a SQLite store's finished runs are on disk only)."""
    states = store._state
    return sum(key.startswith("run:") for key in states)


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_finished_runs_leave_memory_as_the_input_goes_on(orders_mesh, tmp_path, kind):
    store = MemoryStore() if kind == "memory" else SqliteStore(str(tmp_path / "o.db"))
    runtime = Runtime(orders_mesh, store=store)
    rng, most = random.Random(5), 0
    for i in range(1, 601):
        runtime.feed(order(i, rng))  # a second apart; a run ends within a minute or so (retries)
        most = max(most, live_runs(store))
        if kind == "sqlite" and i % 50 == 0:
            store.commit(runtime.snapshot())
    runtime.finish()
    summary = runtime.trace.summary()
    assert (
        summary["runs_started"] > 550
        and summary["runs_completed"] + summary["runs_compensated"] == summary["runs_started"]
    )
    assert most < 60  # in flight at once, never the 600 done
    assert live_runs(store) == 0
    if kind == "sqlite":
        store.commit(runtime.snapshot())
        # every one kept on disk for `meshctl runs`
        assert len(store.state_keys("run:")) == summary["runs_started"]
        store.close()


def test_dedup_records_stay_within_their_window(orders_mesh):
    store = MemoryStore(dedup_window=120.0)
    runtime = Runtime(orders_mesh, store=store)
    rng, most = random.Random(5), 0
    for i in range(1, 601):
        runtime.feed(order(i, rng))
        most = max(most, len(store._done))
    runtime.finish()
    assert most < 120 * 10  # about six records per order a second, kept two minutes: not 600 orders' worth
