"""Every example of workflows/, amplified to thousands of events, survives SIGKILLs unchanged.

Each example runs once undisturbed and once SIGKILLed three times, each soon after a commit
past a random point of its input, and resumed with ``--resume`` on ``--store sqlite:PATH``:
the outputs (``--output``, ``--dlq-out``, ``--trace``) must be byte-identical, the summary
equal, and so must the orchestration runs the store keeps, step outputs included: what a
Python handler returns in an orchestration reaches no output file. A handler that kept
state in its module (the orchestrated arena's ratings did, in a dict) fails it: the resumed
process starts with that state empty. What a subscription's handler returns is not kept
anywhere, so state lost there shows in no output; `handler-module-state` of validate is what
catches it. The input comes from the benchmarks' generators where there is one (bench/e2e.py
for the arena, bench/orders.py for orders, bench/matchmaking.py for matchmaking); the
orchestrated arena's, the payments' and the versions' own events are repeated with fresh
ids, match or order ids and times (a payment's run waits across the kills); billing's invoices are made here.
"""
from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from runtime_harness import meshctl, output_texts, outputs, run_with_sigkills, write_events

from bench import e2e, matchmaking, orders
from engine.commands.runs import list_runs
from engine.core.eventtime import format as iso
from engine.core.eventtime import parse as parse_time

pytestmark = pytest.mark.slow

WORKFLOWS = Path(__file__).resolve().parents[2] / "workflows"
EVENTS, KILLS = 1500, 3


def _repeated(example: str, n: int) -> list[dict]:
    """The example's events repeated up to *n*, each copy with its own ids and match, order and trip ids,
    later in time."""
    base = [json.loads(line) for line in (WORKFLOWS / example / "events.jsonl").read_text().splitlines()]
    events: list[dict] = []
    for copy in range(n // len(base) + 1):
        for event in base:
            event = json.loads(json.dumps(event))
            event["id"] = f"{event['id']}-c{copy}"
            event["time"] = iso(parse_time(event["time"]) + 600 * copy)
            if "match_id" in event["data"]:
                event["data"]["match_id"] = event["subject"] = f"{event['data']['match_id']}-c{copy}"
            if "order_id" in event["data"]:  # each copy's payments are for its own orders
                event["data"]["order_id"] = f"{event['data']['order_id']}-c{copy}"
            if "trip_id" in event["data"]:  # and its trips are trips of their own
                event["data"]["trip_id"] = event["subject"] = f"{event['data']['trip_id']}-c{copy}"
            events.append(event)
    return events[:n]


def _generated(module, path: Path, n: int) -> list[dict]:
    module.generate(str(path), n)
    return [json.loads(line) for line in path.read_text().splitlines()]


def _beats(n: int) -> list[dict]:
    """Heartbeats sent from outside, one a minute from noon on the night clocks go forward in
    Paris: the reports example's schedules tick between them (and across the kills)."""
    start = parse_time("2026-03-28T12:00:00Z")
    return [{"specversion": "1.0", "id": f"probe-{i}", "source": "/probe", "type": "heartbeat",
             "time": iso(start + 60 * i), "data": {"at": iso(start + 60 * i)}} for i in range(n)]


def _invoices(n: int) -> list[dict]:
    """Paid invoices of 40 accounts, two seconds apart, each account's numbered in sequence."""
    rng, start, sequence = random.Random(19), parse_time("2024-09-02T10:00:00Z"), {}
    events = []
    for i in range(n):
        account = f"acct-{rng.randrange(40)}"
        sequence[account] = sequence.get(account, 0) + 1
        data = {"invoice_id": f"inv-{i}", "account": account, "amount": rng.randrange(1, 500)}
        events.append({"specversion": "1.0", "id": f"inv-{i}", "source": "/payments", "type": "invoice.paid",
                       "time": iso(start + 2 * i), "subject": f"inv-{i}", "sequence": sequence[account],
                       "data": data})
    return events


INPUTS = {
    "arena": lambda tmp, n: _generated(e2e, tmp / "gen.jsonl", n),
    "orders": lambda tmp, n: _generated(orders, tmp / "gen.jsonl", n),
    "arena-orchestrated": lambda tmp, n: _repeated("arena-orchestrated", n),
    "matchmaking": lambda tmp, n: _generated(matchmaking, tmp / "gen.jsonl", n),
    "payments": lambda tmp, n: _repeated("payments", n),
    "reports": lambda tmp, n: _beats(4 * n),  # cheap too (see billing): the kills must land
    "trip-booking": lambda tmp, n: _repeated("trip-booking", n),  # parents waiting for child runs
    "versions": lambda tmp, n: _repeated("versions", n),
    "checkout": lambda tmp, n: _repeated("checkout", n),  # waits that time out, across the kills
    "buggy-checkout": lambda tmp, n: _repeated("buggy-checkout", n),
    # four times as many: each is cheap, and a run that ends before a kill lands proves nothing
    "billing": lambda tmp, n: _invoices(4 * n),
}


def test_every_example_is_covered():
    assert sorted(INPUTS) == sorted(p.name for p in WORKFLOWS.iterdir() if p.is_dir())


@pytest.mark.parametrize("example", sorted(INPUTS))
def test_an_example_killed_three_times_and_resumed_gives_the_same_outputs(example, tmp_path):
    events = write_events(tmp_path / "events.jsonl", INPUTS[example](tmp_path, EVENTS))
    common = ["run", WORKFLOWS / example, "--events", events, "--checkpoint-every=50", "--format=json"]
    clean = meshctl(*common, f"--store=sqlite:{tmp_path / 'clean.db'}", *outputs(tmp_path / "clean"))
    crashed = run_with_sigkills([*common, f"--store=sqlite:{tmp_path / 'killed.db'}",
                                 *outputs(tmp_path / "killed")],
                                tmp_path / "killed.db", kills=KILLS, rng=random.Random(example), total=EVENTS)

    assert (crashed["kills"], crashed["starts"]) == (KILLS, KILLS + 1)  # kills follow progress: all land
    reference, killed = output_texts(tmp_path / "clean"), output_texts(tmp_path / "killed")
    assert [name for name in reference if reference[name] != killed[name]] == []
    # the uninterrupted run is judged against the invariants; a resumed one is not (it lacks
    # the history before its restart: docs/invariants.md), so its summary has no such line
    summary = json.loads(clean.stdout)
    assert summary.pop("invariants", {"violated": 0})["violated"] == 0
    assert crashed["summary"] == summary
    assert reference["out"] and reference["trace"]  # the run did something to compare
    # a step's output (what a Python handler returned) is in no output file: in the runs the store keeps
    clean_runs, killed_runs = (sorted(list_runs(f"sqlite:{tmp_path / name}.db"), key=lambda r: r["id"])
                               for name in ("clean", "killed"))
    assert clean_runs == killed_runs
