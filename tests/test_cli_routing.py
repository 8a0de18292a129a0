"""`meshctl run` and `meshctl replay` on many routes: the summary counts what was routed, not
every route an event did not match (that would cost every route for every event)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.many_routes import reading, write_mesh

ORDERS = Path(__file__).resolve().parent.parent / "workflows" / "orders"
ROUTES = 2000


def summary(result) -> dict:
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


@pytest.mark.slow
def test_a_run_on_2000_routes_counts_what_was_routed(meshctl, tmp_path):
    mesh = write_mesh(str(tmp_path / "mesh"), ROUTES)
    events = [reading(k, ROUTES) for k in range(4)] + [
        dict(reading(4, ROUTES), data={"sensor": "s-none", "value": 1})
    ]
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    trace = tmp_path / "trace.jsonl"
    silent = summary(meshctl("run", mesh, "--events", path, "--format", "json"))
    traced = summary(meshctl("run", mesh, "--events", path, "--format", "json", "--trace", trace))
    assert silent == traced
    # four readings each taken by one route, then by the sink; one reading nobody takes
    assert (silent["events_in"], silent["matched"], silent["delivered"], silent["emitted"]) == (5, 8, 8, 4)
    assert (silent["filtered"], silent["unconsumed"], silent["dead_lettered"]) == (0, 1, 0)
    records = [json.loads(line) for line in trace.read_text().splitlines()]
    rejected = [r for r in records if r["kind"] == "filtered"]
    assert len(rejected) == 4 * (ROUTES - 1) + ROUTES and {r["why"] for r in rejected} == {"match"}
    assert [r["consumer"] for r in records if r["kind"] == "deliver" and r["event"] == "r-0000001"] == \
        [f"route:route-{7919 % ROUTES:05d}"]


def test_replay_to_a_consumer_whose_pattern_rejects_counts_unconsumed(meshctl, tmp_path):
    db = f"sqlite:{tmp_path / 'orders.db'}"
    assert meshctl("run", ORDERS, "--events", ORDERS / "events.jsonl", "--store", db).exit_code == 0
    result = summary(meshctl("replay", ORDERS, "--store", db, "--to", "route:vip-orders", "--format", "json"))
    assert result["selected"] == result["events_in"] > 0
    # the route's pattern (total >= 500) takes some completed orders; the others reach nobody
    assert result["matched"] > 0 and result["unconsumed"] > 0
    assert result["matched"] + result["unconsumed"] == result["selected"]
    assert result["filtered"] == 0


def test_a_replay_journals_trace_records_only_when_a_trace_is_kept(meshctl, tmp_path):
    from engine.storage import open_store

    db = f"sqlite:{tmp_path / 'orders.db'}"
    assert meshctl("run", ORDERS, "--events", ORDERS / "events.jsonl", "--store", db).exit_code == 0
    summary(meshctl("replay", ORDERS, "--store", db, "--to", "route:vip-orders", "--format", "json"))
    assert sum(1 for _ in open_store(db).records("trace")) == 0  # rejections cost nothing unasked
    trace = tmp_path / "t.jsonl"
    summary(meshctl("replay", ORDERS, "--store", db, "--format", "json", "--trace", trace))
    records = [json.loads(line) for line in trace.read_text().splitlines()]
    assert any(r["kind"] == "filtered" and r["why"] == "match" for r in records)
