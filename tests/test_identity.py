"""An event is identified by its source and id together (CloudEvents), everywhere.

Two events that share an id but come from different sources are two events: every kind of
consumer (subscription, ordered subscription, orchestration, stream) takes both, on memory
and SQLite, through a Redis deployment, in archive replay, dead-letter replay and run
redrive. A true repeat (same source and same id) is a duplicate everywhere. And a dead
letter is counted once: `dead-lettered` in the summary equals what the queue holds.
"""
from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from identity_mesh import (
    BILLING,
    CONSUMERS,
    EU,
    REPEAT,
    SHIP,
    US,
    lines,
    ok,
    placed,
    write_events,
    write_mesh,
)

from bench.orders import order
from engine.core.identity import identity, run_id

REPO = Path(__file__).resolve().parent.parent
ORDERS = REPO / "workflows" / "orders"


@pytest.fixture
def mesh(tmp_path) -> Path:
    return write_mesh(tmp_path)


# --- the key -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("a", "b"), [
    (("a|b", "c"), ("a", "b|c")), (("1:a", "b"), ("1", "a|b")), (("a", "b@c"), ("a@b", "c")),
    (("", "x"), ("x", "")), (("/s", "1"), ("/s1", "")),
])
def test_the_key_tells_apart_any_two_source_id_pairs(a, b):
    first, second = ({"source": s, "id": i} for s, i in (a, b))
    assert identity(first) != identity(second)
    assert run_id("o", first) != run_id("o", second)


def test_the_key_remembered_for_one_event_is_never_given_for_another():
    a, b = {"source": "/a", "id": "1"}, {"source": "/b", "id": "1"}
    assert [identity(e) for e in (a, a, b, b, a, {**b})] == [
        "2:/a|1",
        "2:/a|1",
        "2:/b|1",
        "2:/b|1",
        "2:/a|1",
        "2:/b|1",
    ]
    assert identity({"id": "1"}) == "0:|1"  # no source (made inside meshctl or by a test): the empty one


def test_run_ids_are_readable_and_escape_only_what_would_be_ambiguous():
    assert (
        run_id("fulfil-order", {"source": "/shop/checkout", "id": "chk-1"})
        == "fulfil-order:chk-1@/shop/checkout"
    )
    assert run_id("o", {"source": "mailto:a@b", "id": "x@y%z"}) == "o:x%40y%25z@mailto:a@b"


# --- meshctl run ---------------------------------------------------------------------------------

@pytest.mark.parametrize("store", ["memory:", "sqlite"])
def test_same_id_from_two_sources_is_two_events_and_a_true_repeat_is_one(meshctl, mesh, tmp_path, store):
    if store == "sqlite":
        store = f"sqlite:{tmp_path / 'run.db'}"
    events = write_events(tmp_path / "in.jsonl", [EU, US, REPEAT])
    out = tmp_path / "out.jsonl"
    summary = ok(meshctl("run", mesh, "--events", events, "--store", store, "--output", out, "--format",
                         "json"))
    assert summary["events_in"] == 3 and summary["duplicates"] == CONSUMERS  # the repeat, at each consumer
    assert (summary["runs_started"], summary["runs_completed"]) == (2, 2)
    emitted = lines(out)
    billed = sorted(e["data"]["n"] for e in emitted if e["type"] == "order.billed")
    shipped = sorted(e["data"]["n"] for e in emitted if e["type"] == "order.shipped")
    (tallied,) = [e for e in emitted if e["type"] == "order.tallied"]
    assert billed == shipped == [1, 2] and tallied["data"]["orders"] == 2
    assert len({e["id"] for e in emitted}) == len(emitted)  # children of the two parents do not collide
    assert summary["dead_lettered"] == 0


def test_the_ordered_subscription_takes_each_source_s_event(meshctl, mesh, tmp_path):
    events = write_events(tmp_path / "in.jsonl", [EU, US, REPEAT])
    trace = tmp_path / "trace.jsonl"
    ok(meshctl("run", mesh, "--events", events, "--trace", trace, "--format", "json"))
    ledger = "service:ledger/order.placed"
    logged = [r["message"] for r in lines(trace) if r["kind"] == "log" and r["consumer"] == ledger]
    assert logged == ["1", "2"]


def test_runs_of_two_sources_are_listed_shown_and_redriven_apart(meshctl, mesh, tmp_path):
    db = f"sqlite:{tmp_path / 'runs.db'}"
    events = write_events(tmp_path / "in.jsonl", [EU, US])
    assert ok(meshctl("run", mesh, "--events", events, "--store", db, "--fault", f"{SHIP}=always:Down",
                      "--format", "json"))["runs_failed"] == 2
    listing = meshctl("runs", "list", "--store", db).output
    assert "fulfil:o-1@/shop/eu  failed" in listing and "fulfil:o-1@/shop/us  failed" in listing
    ambiguous = meshctl("runs", "show", "--store", db, "fulfil:o-1")
    assert ambiguous.exit_code == 2
    assert "run 'fulfil:o-1' is ambiguous: events from 2 sources have that id: fulfil:o-1@/shop/eu, " \
           "fulfil:o-1@/shop/us" in ambiguous.output
    assert meshctl("runs", "redrive", mesh, "--store", db, "fulfil:o-1").exit_code == 2
    shown = json.loads(meshctl("runs", "show", "--store", db, "fulfil:o-1@/shop/us").output)
    assert shown["event"]["source"] == "/shop/us"
    redriven = ok(meshctl("runs", "redrive", mesh, "--store", db, "fulfil:o-1@/shop/us", "--format", "json"))
    assert redriven["run"]["status"] == "completed" and redriven["summary"]["runs_completed"] == 1
    listed = json.loads(meshctl("runs", "list", "--store", db, "--format", "json").output)
    statuses = {r["id"]: r["status"] for r in listed}
    assert statuses == {"fulfil:o-1@/shop/eu": "failed", "fulfil:o-1@/shop/us": "completed"}
    missing = meshctl("runs", "show", "--store", db, "fulfil:o-2")
    assert missing.exit_code == 2 and "no run 'fulfil:o-2'" in missing.output


def test_a_short_run_id_names_the_only_run_of_its_event(meshctl, mesh, tmp_path):
    db = f"sqlite:{tmp_path / 'runs.db'}"
    ok(meshctl("run", mesh, "--events", write_events(tmp_path / "in.jsonl", [EU]), "--store", db, "--format",
               "json"))
    assert (
        json.loads(meshctl("runs", "show", "--store", db, "fulfil:o-1").output)["id"] == "fulfil:o-1@/shop/eu"
    )


def test_archive_replay_copies_each_source_s_event_once(meshctl, mesh, tmp_path):
    db = f"sqlite:{tmp_path / 'archive.db'}"
    ok(meshctl("run", mesh, "--events", write_events(tmp_path / "in.jsonl", [EU, US, REPEAT]), "--store", db,
               "--format", "json"))
    args = ["replay", mesh, "--store", db, "--to", BILLING, "--format", "json"]
    first = ok(meshctl(*args))
    assert (first["selected"], first["duplicates"], first["emitted"]) == (3, 1, 2)  # the repeat's copy is one
    again = ok(meshctl(*args))
    assert (again["delivered"], again["duplicates"], again["emitted"]) == (0, 3, 0)


def test_dead_letters_of_two_sources_are_two_records_and_both_replay(meshctl, mesh, tmp_path):
    dlq, out = tmp_path / "dlq.jsonl", tmp_path / "out.jsonl"
    events = write_events(tmp_path / "in.jsonl", [EU, US, REPEAT])
    summary = ok(meshctl("run", mesh, "--events", events, "--fault", f"{BILLING}=always:Down", "--dlq-out",
                         dlq, "--format", "json"))
    records = lines(dlq)
    assert summary["dead_lettered"] == len(records) == 2
    assert sorted(r["event"]["source"] for r in records) == ["/shop/eu", "/shop/us"]
    replay = ok(meshctl("dlq", "replay", mesh, "--dlq", dlq, "--output", out, "--format", "json"))
    assert (replay["replayed"], replay["dead_lettered"]) == (2, 0)
    assert sorted(e["data"]["n"] for e in lines(out) if e["type"] == "order.billed") == [1, 2]
    assert dlq.read_text() == ""


# --- dead letters counted once ---------------------------------------------------------------------

@pytest.mark.parametrize("store", ["memory:", "sqlite"])
def test_a_repeated_invalid_event_is_one_dead_letter_and_a_duplicate(meshctl, mesh, tmp_path, store):
    if store == "sqlite":
        store = f"sqlite:{tmp_path / 'bad.db'}"
    bad = {**placed("/shop/eu", 1, id_="bad-1"), "data": {"n": "one"}}
    other = {**bad, "source": "/shop/us"}  # not a repeat: another source
    events = write_events(tmp_path / "in.jsonl", [bad, bad, other, bad, EU])
    dlq = tmp_path / "dlq.jsonl"
    summary = ok(meshctl("run", mesh, "--events", events, "--store", store, "--dlq-out", dlq, "--format",
                         "json"))
    assert summary["dead_lettered"] == len(lines(dlq)) == 2
    assert summary["dead_lettered_by_reason"] == {"schema-invalid": 2}
    assert summary["duplicates"] == 2


def test_a_dead_letter_replayed_and_failing_again_counts_again(meshctl, mesh, tmp_path):
    dlq = tmp_path / "dlq.jsonl"
    events = write_events(tmp_path / "in.jsonl", [EU])
    meshctl("run", mesh, "--events", events, "--fault", f"{BILLING}=always:Down", "--dlq-out", dlq)
    replay = ok(meshctl("dlq", "replay", mesh, "--dlq", dlq, "--fault", f"{BILLING}=always:Down", "--format",
                        "json"))
    assert (replay["replayed"], replay["dead_lettered"], replay["duplicates"]) == (1, 1, 0)
    assert len(lines(dlq)) == 1


# --- the orders example ----------------------------------------------------------------------------

def reused_orders(n: int, reuse: int) -> tuple[list[dict], list[dict]]:
    """*n* generated orders, and *reuse* more from another source that reuse the ids of
    orders that complete (distinct orders, later in time)."""
    rng = random.Random(7)
    originals = [order(i, rng) for i in range(1, n + 1)]
    plain = [
        o
        for o in originals
        if o["data"]["payment"]["token"].startswith("tok_")
        and "_declined_" not in o["data"]["payment"]["token"]
        and "_flaky_" not in o["data"]["payment"]["token"]
        and o["data"]["total"] > 0
    ]
    copies = []
    for k, o in enumerate(plain[:reuse]):
        data = {**o["data"], "order_id": f"mob-{k:04d}"}
        copies.append({**o, "source": "/shop/mobile", "subject": data["order_id"], "data": data,
                       "time": f"2026-01-02T00:{k // 60:02d}:{k % 60:02d}Z"})
    assert len(copies) == reuse
    return originals, copies


@pytest.mark.parametrize("store", ["memory:", "sqlite"])
def test_fifty_orders_reusing_ids_from_another_source_are_fifty_more_runs(meshctl, tmp_path, store):
    originals, copies = reused_orders(120, 50)
    completed = []
    for name, events in (("alone", originals), ("with", originals + copies)):
        url = f"sqlite:{tmp_path / f'{name}.db'}" if store == "sqlite" else store
        path = write_events(tmp_path / f"{name}.jsonl", events)
        completed.append(ok(meshctl("run", ORDERS, "--events", path, "--store", url, "--format", "json")))
    alone, both = completed
    assert both["runs_completed"] == alone["runs_completed"] + 50
    assert both["duplicates"] == alone["duplicates"] and both["events_in"] == alone["events_in"] + 50
