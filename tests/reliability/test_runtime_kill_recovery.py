"""T02: random kill -9 mid-batch, and how long a restarted run takes to recover.

That nothing is lost or repeated is tests/test_crash.py (bench.crash_test: the crash-test
mesh, SIGKILLs at random times, outputs byte-identical to a clean run). This adds the
figure it lacks: with five SIGKILLs per run, each landing shortly after a random committed
position, how long every restarted `meshctl run --resume` takes to be taking input again
(store opened, checkpoint restored: schedule, windows, runs) is printed. It is a figure, not
an assertion: a timed assertion fails on a busy machine. The outputs must be identical.
"""
from __future__ import annotations

import random

import pytest
from runtime_harness import (
    meshctl,
    output_texts,
    outputs,
    run_with_sigkills,
    write_events,
)

from bench.crash_test import MESH, generate

pytestmark = pytest.mark.slow

EVENTS, KILLS = 1500, 5


def test_a_run_killed_five_times_recovers_with_identical_outputs(tmp_path):
    events = write_events(tmp_path / "events.jsonl", generate(EVENTS, seed=7))
    common = ["run", MESH, "--events", events, "--checkpoint-every=50", "--format=json"]
    meshctl(*common, f"--store=sqlite:{tmp_path / 'clean.db'}", *outputs(tmp_path / "clean"))
    crashed = run_with_sigkills([*common, f"--store=sqlite:{tmp_path / 'killed.db'}",
                                 *outputs(tmp_path / "killed")],
                                tmp_path / "killed.db", kills=KILLS, rng=random.Random(7), total=EVENTS)

    assert crashed["kills"] == KILLS and crashed["starts"] == KILLS + 1
    assert output_texts(tmp_path / "killed") == output_texts(tmp_path / "clean")
    assert len(crashed["recoveries"]) == KILLS
    # a figure to read, not a bound: no timed asserts
    print({"test": "T02", "recovery_s": crashed["recoveries"]})
