"""Count windows and list aggregates through the command line: validate, run, test."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

ARENA = Path(__file__).resolve().parents[1] / "workflows" / "arena"

LOBBY = """
apiVersion: meshctl/v1
kind: EventType
metadata: {name: queued}
spec: {external: true}
---
apiVersion: meshctl/v1
kind: EventType
metadata: {name: lobby}
spec: {external: true}
---
apiVersion: meshctl/v1
kind: Stream
metadata: {name: lobby}
spec:
  from: [queued]
  key: data.queue
  window: %s
  aggregate:
    players: %s
  emit: {type: lobby}
"""


@pytest.mark.parametrize(("window", "players", "found"), [
    ("{count: 4}", "{collect: {field: data.p, max: 4}}", []),
    ("{count: 4, timeout: 2m}", "{top_n: {by: data.r, n: 3}}", []),
    ("{count: 4}", "{collect: {field: data.p}}", [(19, 14, "error", "unbounded-aggregate")]),
    ("{count: 4}", "{distinct: {field: data.p, max: 10001}}", [(19, 14, "error", "unbounded-aggregate")]),
    ("{count: 4}", "{top_n: {by: data.r, n: 20000}}", [(19, 14, "error", "unbounded-aggregate")]),
    ("{count: 0}", "{count: {}}", [(17, 19, "error", "bad-value")]),
    ("{count: 100001}", "{count: {}}", [(17, 19, "error", "bad-value")]),
    ("{tumbling: 1m, timeout: 2m}", "{count: {}}", [(17, 3, "error", "missing-key")]),
    ("{count: 4, timeout: 0s}", "{count: {}}", [(17, 31, "error", "bad-value")]),
])
def test_validate_checks_count_windows_and_the_bounds_of_list_aggregates(write, diagnostics, window, players,
                                                                          found):
    errors = [d for d in diagnostics(write(LOBBY % (window, players))) if d[2] == "error"]
    assert errors == found


def test_validate_says_which_bound_is_missing_or_too_large(write, meshctl):
    result = meshctl("validate", write(LOBBY % ("{count: 4}", "{collect: {field: data.p}}")))
    assert result.exit_code == 1
    assert ("error[unbounded-aggregate]: aggregate 'players' (collect) needs `max`, the most values "
            "a window keeps") in result.output
    assert "hint: add `max: N` with N from 1 to 10,000" in result.output
    result = meshctl("validate", write(LOBBY % ("{count: 4}", "{top_n: {by: data.r, n: 20000}}")))
    assert "aggregate 'players' (top_n) keeps at most `n: 10000` values, not 20000" in result.output


QUEUED = [("q1", "12:00:00", "p1", "eu-west/ranked"), ("q2", "12:00:10", "p2", "eu-west/ranked"),
          ("q3", "12:00:20", "p3", "us-east/ranked"), ("q4", "12:00:30", "p4", "eu-west/ranked"),
          ("q5", "12:00:40", "p5", "eu-west/ranked"), ("q6", "12:03:00", "p6", "eu-west/casual")]


def test_run_forms_a_match_of_four_and_times_out_a_partial_lobby(meshctl, tmp_path):
    events = tmp_path / "queued.jsonl"
    events.write_text("".join(json.dumps(
        {"specversion": "1.0", "id": i, "source": "/lobby", "type": "player.queued",
         "time": f"2024-05-04T{t}Z",
         "data": {"player_id": p, "region": q.split("/")[0], "mode": q.split("/")[1], "queue": q}}) + "\n"
        for i, t, p, q in QUEUED))
    out = tmp_path / "out.jsonl"
    result = meshctl("run", ARENA, "--events", events, "--output", out)
    assert result.exit_code == 0, result.output
    assert "windows emitted              3" in result.output
    formed = [json.loads(line) for line in out.read_text().splitlines()]
    seen = [(e["data"]["key"], e["data"]["players"], e["data"]["complete"], e["causationid"]) for e in formed]
    assert seen == [
        ("eu-west/ranked", ["p1", "p2", "p4", "p5"], True, "q5"),  # the fourth player forms it
        ("us-east/ranked", ["p3"], False, "q6"),  # 12:03:00 is past 12:00:20 + 2m: timed out
        ("eu-west/casual", ["p6"], False,  # open at the end of the input; its id names the opening event
         'stream:lobby:"eu-west/casual":1714824180.0:1714824180.0:6'),
    ]


def test_meshctl_test_runs_the_lobby_cases_of_the_arena(meshctl):
    result = meshctl("test", ARENA, "-k", "lobby")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1] == "2 passed, 0 failed"
