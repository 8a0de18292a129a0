"""Issue #19, resilience through the CLI: a circuit breaker that pauses (`on_open: pause`)
instead of dead-lettering, and `dlq replay` / `replay` throttled with `--rate`."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from engine.core.eventtime import parse

REPO = Path(__file__).resolve().parent.parent
BILLING = REPO / "workflows" / "billing"
EVENTS = BILLING / "events.jsonl"
LEDGER = "service:ledger/invoice.paid"
RECEIPTS = "service:receipts/invoice.booked"


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _copy(tmp_path: Path, edit=None) -> Path:
    """The billing example in *tmp_path*, its delivery policies changed by ``edit(text)``."""
    mesh = tmp_path / "billing"
    shutil.copytree(BILLING, mesh)
    if edit is not None:
        delivery = mesh / "delivery.yaml"
        delivery.write_text(edit(delivery.read_text()))
    return mesh


def _events(path: Path, count: int, at: str = "2024-09-02T10:00:00Z") -> Path:
    """*count* invoices of one account, paid at the same instant."""
    with path.open("w") as fh:
        for n in range(1, count + 1):
            fh.write(json.dumps({"specversion": "1.0", "id": f"inv-{n}", "source": "/payments",
                                 "type": "invoice.paid", "time": at, "sequence": n,
                                 "data": {"invoice_id": f"inv-{n}", "account": "acme", "amount": n}}) + "\n")
    return path


def _run(meshctl, mesh: Path, events: Path, *extra) -> dict:
    result = meshctl("run", mesh, "--events", events, "--format", "json", *extra)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


# --- on_open: pause ---------------------------------------------------------------------


def test_a_pausing_breaker_holds_deliveries_and_loses_none(meshctl, tmp_path):
    trace, dlq = tmp_path / "t.jsonl", tmp_path / "d.jsonl"
    summary = _run(meshctl, BILLING, EVENTS, "--fault", f"{LEDGER}=2:TimeoutError", "--trace", trace,
                   "--dlq-out", dlq)
    assert summary["dead_lettered"] == 0 and dlq.read_text() == ""
    assert summary["held"] > 0 and summary["released"] == summary["held"]
    records = _records(trace)
    held = [r for r in records if r["kind"] == "held"]
    assert held and all(r["consumer"] == LEDGER and "until" in r for r in held)
    opened = [r for r in records if r["kind"] == "circuit-open"]
    assert {r["until"] for r in held} <= {r["until"] for r in opened}  # held until it half-opens
    # every invoice booked once, each account's in its sequence order
    booked = [r["event"] for r in records if r["kind"] == "ok" and r["consumer"] == LEDGER]
    assert sorted(booked) == sorted(e["id"] for e in _records(EVENTS))
    acme = [e for e in booked if e.startswith("inv-1")]
    assert acme == sorted(acme)
    # a held attempt uses no attempt: each delivery failed twice (the fault) and then succeeded
    assert {r["attempt"] for r in records if r["kind"] == "ok" and r["consumer"] == LEDGER} == {3}


def test_while_the_probe_fails_the_others_stay_held(meshctl, tmp_path):
    trace = tmp_path / "t.jsonl"
    _run(meshctl, BILLING, EVENTS, "--fault", f"{LEDGER}=2:TimeoutError", "--trace", trace)
    records = [r for r in _records(trace) if r.get("consumer") == LEDGER]
    first_open = next(r for r in records if r["kind"] == "circuit-open")
    half_open = first_open["until"]
    at_half_open = [r for r in records if r["t"] == half_open]
    # one probe is attempted and fails; the circuit opens again and the rest are held again
    assert [r["kind"] for r in at_half_open][:3] == ["deliver", "circuit-open", "retry"]
    assert [r for r in at_half_open if r["kind"] == "deliver"] == at_half_open[:1]
    assert any(r["kind"] == "held" for r in at_half_open)


def test_the_default_breaker_dead_letters_what_a_pausing_one_holds(meshctl, tmp_path):
    mesh = _copy(tmp_path, lambda text: text.replace(", on_open: pause", ""))
    summary = _run(meshctl, mesh, EVENTS, "--fault", f"{LEDGER}=2:TimeoutError")
    assert summary["dead_lettered_by_reason"]["circuit-open"] > 0
    assert "held" not in summary  # no breaker of this mesh pauses: no held lines
    text = meshctl("run", mesh, "--events", EVENTS).output
    assert "held" not in text


def test_the_summary_shows_held_and_released(meshctl):
    result = meshctl("run", BILLING, "--events", EVENTS, "--fault", f"{LEDGER}=2:TimeoutError")
    lines = dict(line.rsplit(None, 1) for line in result.stdout.splitlines())
    assert int(lines["held (circuit open)"]) == int(lines["released"]) > 0
    assert lines["dead-lettered"] == "0"


def test_a_target_that_never_recovers_exhausts_its_retries_through_the_probes(meshctl, tmp_path):
    trace = tmp_path / "t.jsonl"
    summary = _run(meshctl, BILLING, EVENTS, "--fault", f"{LEDGER}=always:TimeoutError", "--trace", trace)
    # each probe uses an attempt: every delivery ends, dead-lettered with its attempts used up
    assert summary["dead_lettered_by_reason"] == {"retries-exhausted": 6}
    assert summary["released"] == summary["held"]
    dead = [r for r in _records(trace) if r["kind"] == "dead-letter"]
    assert {r["attempts"] for r in dead} == {4}


def test_a_probe_filtered_by_when_lets_the_next_held_delivery_probe(meshctl, tmp_path, write):
    mesh = write("""
apiVersion: meshctl/v1
kind: EventType
metadata: {name: job.done}
spec:
  external: true
  schema: {type: object, properties: {n: {type: integer}}}
---
apiVersion: meshctl/v1
kind: Service
metadata: {name: sink}
spec:
  subscriptions:
    - on: job.done
      when: "{{ data.n != 1 }}"
      delivery:
        retry: {max_attempts: 2, backoff: fixed, initial: 1s, jitter: none}
        circuit_breaker: {failure_threshold: 1, reset_after: 10s, on_open: pause}
      do: {call: {python: "flaky:handle"}}
""")
    (mesh.parent / "flaky.py").write_text(
        "def handle(event, context):\n"
        "    if event['data']['n'] == 0:\n"
        "        raise TimeoutError('job 0 always times out')\n"
        "    return {}\n")
    events = tmp_path / "e.jsonl"
    lines = [{"specversion": "1.0", "id": f"j{n}", "source": "/t", "type": "job.done", "data": {"n": n},
              "time": "2024-01-01T00:00:00Z"} for n in (0, 1, 2, 3)]
    events.write_text("".join(json.dumps(e) + "\n" for e in lines))
    trace = tmp_path / "t.jsonl"
    # j0 fails: the circuit opens, j1-j3 and j0's retry are held. At half-open j1 is the probe,
    # but `when` filters it: it says nothing of the target, and j2 probes instead (the circuit
    # is not left waiting for a probe that will never end).
    summary = _run(meshctl, mesh.parent, events, "--trace", trace)
    assert summary["filtered"] == 1 and summary["dead_lettered_by_reason"] == {"retries-exhausted": 1}
    assert summary["released"] == summary["held"] == 4
    ok = [r["event"] for r in _records(trace) if r["kind"] == "ok"]
    assert ok == ["j2", "j3"]


# --- --rate -----------------------------------------------------------------------------


def _dead_receipts(meshctl, tmp_path: Path, events: Path) -> Path:
    """A dead-letter file of the receipts mailer, its circuit tripped by a burst of failures."""
    dlq = tmp_path / "dlq.jsonl"
    summary = _run(meshctl, BILLING, events, "--fault", f"{RECEIPTS}=1:TimeoutError", "--dlq-out", dlq)
    assert summary["dead_lettered_by_reason"] == {"circuit-open": summary["dead_lettered"]}
    return dlq


@pytest.mark.parametrize("count", [3, 20])
def test_replaying_into_a_flaky_consumer_trips_its_breaker_without_rate_and_not_with(
        meshctl, tmp_path, count):
    """Issue #19: replaying dead letters into a consumer that fails each delivery's first
    attempt re-tripped its breaker (3 failures in a row); spread out, each retry succeeds."""
    dlq = _dead_receipts(meshctl, tmp_path, _events(tmp_path / "e.jsonl", count))
    assert len(dlq.read_text().splitlines()) == count
    flaky = ("--fault", f"{RECEIPTS}=1:TimeoutError")
    at_once = tmp_path / "at-once.jsonl"
    shutil.copy(dlq, at_once)
    burst = meshctl("dlq", "replay", BILLING, "--dlq", at_once, *flaky, "--format", "json")
    assert burst.exit_code == 0, burst.output
    assert json.loads(burst.stdout)["dead_lettered_by_reason"] == {"circuit-open": count}
    assert len(at_once.read_text().splitlines()) == count

    trace = tmp_path / "t.jsonl"
    spread = meshctl("dlq", "replay", BILLING, "--dlq", dlq, *flaky, "--rate", "2/s", "--trace", trace,
                     "--format", "json")
    assert spread.exit_code == 0, spread.output
    summary = json.loads(spread.stdout)
    assert summary["replayed"] == count and summary["dead_lettered"] == 0 and summary["still_dead"] == 0
    assert dlq.read_text() == ""
    firsts = [parse(r["t"]) for r in _records(trace) if r["kind"] == "deliver" and r["attempt"] == 1]
    assert len(firsts) == count
    assert [round(b - a, 6) for a, b in zip(firsts, firsts[1:])] == [0.5] * (count - 1)


def test_rate_per_minute_spaces_replays_in_virtual_time(meshctl, tmp_path):
    dlq = _dead_receipts(meshctl, tmp_path, _events(tmp_path / "e.jsonl", 3))
    trace = tmp_path / "t.jsonl"
    result = meshctl("dlq", "replay", BILLING, "--dlq", dlq, "--rate", "30/m", "--trace", trace)
    assert result.exit_code == 0, result.output
    firsts = [parse(r["t"]) for r in _records(trace) if r["kind"] == "deliver" and r["attempt"] == 1]
    assert [b - a for a, b in zip(firsts, firsts[1:])] == [2.0, 2.0]


@pytest.mark.parametrize("rate, message", [
    ("5", "is not a rate: give N/s, N/m or N/h"),
    ("fast", "is not a rate"),
    ("-1/s", "is not a rate"),
    ("5/d", "is not a rate"),
    ("0/s", "the rate must be above 0"),
    ("2000000/s", "at most 1,000,000/s"),
    ("0.01/h", "at least 1 event a day"),
])
def test_a_bad_rate_is_a_usage_error(meshctl, tmp_path, rate, message):
    dlq = tmp_path / "d.jsonl"
    dlq.write_text("")
    for command in (("dlq", "replay", BILLING, "--dlq", dlq), ("replay", BILLING, "--store", "sqlite:x.db")):
        result = meshctl(*command, "--rate", rate)
        assert result.exit_code == 2, result.output
        assert "Invalid value for '--rate'" in result.output and message in result.output
        assert "Traceback" not in result.output


def test_replay_of_the_archive_with_rate_spaces_the_copies(meshctl, tmp_path):
    db = tmp_path / "billing.db"
    _run(meshctl, BILLING, EVENTS, "--store", f"sqlite:{db}")
    trace = tmp_path / "t.jsonl"
    result = meshctl("replay", BILLING, "--store", f"sqlite:{db}", "--to", RECEIPTS, "--rate", "1/s",
                     "--trace", trace, "--format", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["selected"] == 6
    ingested = [parse(r["t"]) for r in _records(trace) if r["kind"] == "ingest"]
    assert len(ingested) == 6 and [b - a for a, b in zip(ingested, ingested[1:])] == [1.0] * 5


def test_dlq_replay_with_rate_continues_a_durable_run(meshctl, tmp_path):
    db = tmp_path / "billing.db"
    _run(meshctl, BILLING, _events(tmp_path / "e.jsonl", 5), "--store", f"sqlite:{db}",
         "--fault", f"{RECEIPTS}=1:TimeoutError")
    flaky = ("--fault", f"{RECEIPTS}=1:TimeoutError")
    result = meshctl("dlq", "replay", BILLING, "--store", f"sqlite:{db}", *flaky, "--rate", "1/s",
                     "--format", "json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["replayed"] == 5 and summary["still_dead"] == 0 and summary["dead_lettered"] == 0


def test_render_marks_a_pausing_breaker(meshctl, tmp_path):
    diagram = meshctl("render", BILLING, "--format", "mermaid")
    assert diagram.exit_code == 0, diagram.output
    assert "breaker 3 → 30s, pause]" in diagram.stdout and "breaker 3 → 1m]" in diagram.stdout
    page = tmp_path / "billing.html"
    assert meshctl("render", BILLING, "--format", "html", "-o", page).exit_code == 0
    html = page.read_text()
    assert "open after 3 failures for 30s, holding deliveries" in html
    assert "open after 3 failures for 60s<" in html


def test_meshctl_test_paces_a_replay_and_checks_held_counts(meshctl):
    result = meshctl("test", BILLING / "billing.test.yaml", "-k", "two a second")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("PASS replayed at two a second")


@pytest.mark.parametrize("then, message", [
    ("{replay_dead_letters: true, replay_rate: 0/s}", ":6:52: error[bad-rate]: '0/s': the rate must be"),
    ("{replay_dead_letters: true, replay_rate: fast}", ":6:52: error[bad-rate]: 'fast' is not a rate"),
    ("{given: [{type: invoice.paid}], replay_rate: 2/s}", ":6:43: error[bad-rate]: `replay_rate` paces"),
])
def test_meshctl_test_rejects_a_bad_replay_rate(meshctl, tmp_path, then, message):
    mesh = _copy(tmp_path)
    test_file = mesh / "rate.test.yaml"
    test_file.write_text(
        "tests:\n  - name: paced\n    given:\n"
        "      - {type: invoice.paid, sequence: 1, data: {invoice_id: i, account: a, amount: 1}}\n"
        "    expect: {}\n"
        f"    then: {then}\n")
    result = meshctl("test", test_file)
    assert result.exit_code == 1, result.output
    assert message in result.output, result.output


def test_a_count_of_held_for_a_mesh_that_does_not_pause_says_why(meshctl, tmp_path):
    mesh = _copy(tmp_path, lambda text: text.replace(", on_open: pause", ""))
    test_file = mesh / "held.test.yaml"
    test_file.write_text(
        "tests:\n  - name: counts\n    given:\n"
        "      - {type: invoice.paid, sequence: 1, data: {invoice_id: i, account: a, amount: 1}}\n"
        "    expect: {counts: {held: 0}}\n")
    result = meshctl("test", test_file)
    assert result.exit_code == 1
    assert "count 'held' exists only in a mesh with a circuit breaker that pauses" in result.output


def test_a_step_breaker_cannot_pause(meshctl, write):
    mesh = write("""
apiVersion: meshctl/v1
kind: EventType
metadata: {name: go}
spec: {external: true}
---
apiVersion: meshctl/v1
kind: Orchestration
metadata: {name: o}
spec:
  trigger: {on: go}
  steps:
    - id: a
      do: {log: hi}
      circuit_breaker: {failure_threshold: 2, on_open: pause}
""")
    result = meshctl("validate", mesh)
    assert result.exit_code == 1
    assert "mesh.yaml:14:56: error[bad-value]: spec.steps[0].circuit_breaker.on_open: a step's circuit " \
           "breaker cannot pause" in result.output
