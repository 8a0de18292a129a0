"""`python -m bench state`: every contender keeps the same running count and sum per key.

The workload runs here on a tiny input over a few keys (so that every key sees many events
and its running sums depend on their order). Nothing here looks at a time: only at what the
contenders computed and at what the check column says about it.
"""
from __future__ import annotations

import functools

import pytest

import bench.__main__ as bench_main
from bench import state

EVENTS, KEYS = 400, 7


@pytest.fixture(scope="module")
def events():
    return state.make_events(EVENTS, KEYS)


@pytest.fixture
def mesh(tmp_path):
    return state.load_mesh(str(tmp_path))


def test_the_dict_loop_counts_and_sums_every_event(events):
    outputs, final = state.run_dict(events)
    assert len(outputs) == EVENTS and len(final) == KEYS
    assert sum(n for n, _ in final.values()) == EVENTS
    assert sum(total for _, total in final.values()) == sum(e["data"]["v"] for e in events)
    first = events[0]["data"]
    assert outputs[0] == (first["k"], 1, first["v"])


def test_meshctl_in_memory_agrees_with_the_dict_loop(events, mesh):
    assert state.run_memory(mesh, events) == state.run_dict(events)


def test_meshctl_on_sqlite_agrees_and_its_state_is_committed(events, mesh, tmp_path):
    outputs, final = state.run_sqlite(mesh, events, str(tmp_path / "state.db"), every=50)
    expected_outputs, expected_final = state.run_dict(events)
    assert sorted(outputs) == sorted(expected_outputs)
    assert final == expected_final  # read from the file opened again after the run


def test_bytewax_agrees_with_the_dict_loop(events):
    pytest.importorskip("bytewax.operators")
    outputs, final = state.run_bytewax(events)
    expected_outputs, expected_final = state.run_dict(events)
    assert sorted(outputs) == sorted(expected_outputs) and final == expected_final


def test_the_workload_through_the_bench_command(monkeypatch, capsys):
    monkeypatch.setattr(state, "rows", functools.partial(state.rows, size=EVENTS, keys=KEYS))
    assert bench_main.main(["state", "--no-write"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("state ")]
    cases = [line.split(" | ")[1].strip() for line in lines]
    assert cases[:3] == [f"Runtime in memory, {EVENTS} ev", f"Runtime on SQLite, {EVENTS} ev",
                         "Runtime on SQLite vs in memory"]
    assert cases[-1] == "Runtime in memory vs the limit"
    digests = {line.rsplit("digest ", 1)[1].strip() for line in lines}
    assert len(digests) == 1 and not any("DIFFERS" in line for line in lines)
    assert all(f"{EVENTS} counts, {KEYS} keys" in line for line in lines)


def test_a_contender_that_loses_an_update_is_flagged(monkeypatch):
    run_sqlite = state.run_sqlite

    def lossy(mesh, events, path, every=1000):
        return run_sqlite(mesh, events[:-1], path, every)  # one event never counted

    monkeypatch.setattr(state, "run_sqlite", lossy)
    rows = {row.case: row for row in state.rows(size=EVENTS, keys=KEYS)}
    assert "DIFFERS from dict loop" in rows[f"Runtime on SQLite, {EVENTS} ev"].check
    assert "DIFFERS" not in rows[f"Runtime in memory, {EVENTS} ev"].check
    assert all(row.met is None for row in rows.values())  # no target: nothing to meet
