"""The durable store as an archive: `meshctl replay` and `meshctl runs list|show|redrive`."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

ORDERS = Path(__file__).resolve().parent.parent / "workflows" / "orders"
SHIP = "orchestration:fulfil-order/ship"


@pytest.fixture
def stored(meshctl, tmp_path):
    """A finished durable run of the orders example in which every ship step failed."""
    db = f"sqlite:{tmp_path / 'orders.db'}"
    result = meshctl("run", ORDERS, "--events", ORDERS / "events.jsonl", "--store", db, "--fault",
                     f"{SHIP}=always:CarrierDown")
    assert result.exit_code == 0
    return db


def summary(result):
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_runs_list_and_show(meshctl, stored):
    listing = meshctl("runs", "list", "--store", stored, "--status", "compensated").output
    assert (
        "fulfil-order:chk-00001@/shop/checkout  compensated  ship  step 'ship' failed: CarrierDown" in listing
    )
    assert listing.endswith("10 runs\n")
    # two declined cards
    assert listing.count("  charge_payment  step 'charge_payment' failed: PaymentDeclined") == 2
    run = json.loads(meshctl("runs", "show", "--store", stored, "fulfil-order:chk-00001").output)
    assert (
        run["steps"]["ship"]["status"] == "failed"
        and run["steps"]["reserve_inventory"]["status"] == "compensated"
    )


def test_redrive_reruns_from_the_failed_step_with_new_event_ids(meshctl, stored, tmp_path):
    trace = tmp_path / "redrive.jsonl"
    out = summary(meshctl("runs", "redrive", ORDERS, "--store", stored, "fulfil-order:chk-00001", "--format",
                          "json", "--trace", trace))
    assert out["run"]["status"] == "completed" and out["run"]["redrives"] == 1
    records = [json.loads(line) for line in trace.read_text().splitlines()]
    started = [r["step"] for r in records if r["kind"] == "step-start"]
    assert started == ["reserve_inventory", "charge_payment", "ship"]  # compensated steps run again
    assert out["summary"]["duplicates"] == 0  # their events got new ids: the warehouse acts on them
    again = meshctl("runs", "redrive", ORDERS, "--store", stored, "fulfil-order:chk-00001")
    assert (
        again.exit_code == 2
        and "is completed: only failed or compensated runs can be redriven" in again.output
    )
    missing = meshctl("runs", "redrive", ORDERS, "--store", stored, "fulfil-order:nope")
    assert missing.exit_code == 2 and "no run 'fulfil-order:nope'" in missing.output


def test_a_redrive_lists_the_runs_that_failed_again_in_it_and_only_those(meshctl, stored):
    """The stored run had ten compensated runs; the session summary of a redrive names its own."""
    out = summary(meshctl("runs", "redrive", ORDERS, "--store", stored, "fulfil-order:chk-00003", "--format",
                          "json"))
    assert out["summary"]["failed_runs"] == [{"id": "fulfil-order:chk-00003@/shop/checkout",
                                              "status": "compensated"}]
    text = meshctl("runs", "redrive", ORDERS, "--store", stored, "fulfil-order:chk-00007").output
    assert "failed runs:\n  fulfil-order:chk-00007@/shop/checkout  compensated\n" in text
    assert "chk-00003" not in text.split("failed runs:")[1]


def test_replay_a_time_range_once(meshctl, stored):
    args = ["replay", ORDERS, "--store", stored, "--since", "2024-06-11T09:14:00Z", "--until",
            "2024-06-11T09:16:00Z", "--match", '{"type": ["order.placed"]}', "--format", "json"]
    first = summary(meshctl(*args))
    assert (first["selected"], first["events_in"], first["runs_started"], first["duplicates"]) == (2, 2, 2, 0)
    second = summary(meshctl(*args))
    assert (second["selected"], second["runs_started"], second["duplicates"]) == (2, 0, 2)


def test_replay_to_one_consumer(meshctl, stored, tmp_path):
    result = summary(meshctl("replay", ORDERS, "--store", stored, "--to",
                             "service:notifications/order.failed", "--trace", tmp_path / "t.jsonl",
                             "--format", "json"))
    assert result["selected"] == 10 and result["delivered"] == 10
    records = [json.loads(line) for line in (tmp_path / "t.jsonl").read_text().splitlines()]
    assert {r["consumer"] for r in records if r["kind"] == "deliver"} == {
        "service:notifications/order.failed"
    }
    assert all(r["replayof"] for r in records if r["kind"] == "ingest")


@pytest.mark.parametrize(("args", "message"), [
    (["replay", ORDERS, "--store", "memory:"], "holds no run"),
    (["replay", ORDERS, "--since", "soon"], "'soon' is not an RFC 3339 date-time"),
    (["replay", ORDERS, "--match", "{not json"], "not an EventBridge pattern in JSON"),
    (["replay", ORDERS, "--to", SHIP], "not a consumer of the mesh"),
])
def test_archive_usage_errors(meshctl, stored, args, message):
    if "--store" not in args:
        args = [*args, "--store", stored]
    result = meshctl(*args)
    assert result.exit_code == 2 and message in result.output
