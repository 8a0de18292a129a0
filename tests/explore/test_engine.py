"""The exploration engine below the CLI: steering a run through deviations, the search and its
state hashing, minimisation, choices files. Judged here by a plain function over the history
(the `Check` invariants are tested in tests/test_invariants.py and through `meshctl explore`)."""
from __future__ import annotations

import json

import pytest
from checkout_runs import EXAMPLES, GATEWAY, Broken, gateway_attempt, nothing, session

from engine.core.errors import UsageError
from engine.explore import counterexample
from engine.explore.deviations import Deviation
from engine.explore.minimize import minimize
from engine.explore.search import Bounds, search
from engine.explore.session import Session
from engine.language.loader import load_mesh
from engine.runtime.events import read_events
from engine.runtime.interpreter import Runtime


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_a_run_without_deviations_is_meshctl_runs_run(path):
    mesh, _ = load_mesh(str(path))
    inputs = list(read_events(str(path / "events.jsonl")))
    explored = Session(mesh, inputs, nothing).run()
    assert explored.complete and not explored.cut
    assert explored.summary == Runtime(mesh).run(inputs)


def test_the_same_deviations_give_the_same_run_record_for_record():
    s = session("buggy-checkout")
    deviations = [Deviation("attempt", gateway_attempt(s, "o-1"), "crash"),
                  Deviation("late", "input o-1", "1")]
    first, second = s.run(deviations, records=True), s.run(deviations, records=True)
    assert first.records == second.records
    assert first.taken == tuple(deviations[::-1])  # the late input is met first


def test_a_failure_is_retried_by_the_consumers_policy():
    s = session("buggy-checkout")
    out = s.run([Deviation("attempt", gateway_attempt(s, "o-1"), "fail")], records=True)
    retry = next(r for r in out.records if r["kind"] == "retry")
    assert retry["consumer"] == GATEWAY and retry["error"].startswith("ExploredFailure")
    assert retry["delay"] == 900.0  # the policy's 15m, no jitter
    assert out.summary["retries"] == 1


def test_a_crash_keeps_no_effect_and_the_delivery_is_taken_again_after_the_lease():
    s = session("checkout")
    label = gateway_attempt(s, "o-1")
    out = s.run([Deviation("attempt", label, "crash")], records=True)
    crash = next(r for r in out.records if r["kind"] == "crash")
    assert crash["retake"] == "2026-05-04T09:00:30Z"
    captured = [r for r in out.records if r["kind"] == "emit" and r["type"] == "payment.captured"]
    assert [r["t"] for r in captured][0] == "2026-05-04T09:00:30Z"  # one capture, from the retaken attempt
    assert len(captured) == 2  # (and ord-2's)


def test_a_duplicate_delivery_is_skipped_by_dedup():
    s = session("checkout")
    out = s.run([Deviation("attempt", gateway_attempt(s, "o-1"), "duplicate")], records=True)
    assert out.summary["duplicates"] == 1
    assert sum(r["kind"] == "emit" and r["type"] == "payment.captured" for r in out.records) == 2


def test_a_late_input_arrives_after_the_next():
    s = session("checkout")
    out = s.run([Deviation("late", "input o-1", "1")], records=True)
    assert [r["event"] for r in out.records if r["kind"] == "ingest"] == ["o-2", "o-1"]
    choice = out.records[0]  # recorded where the input would have come, not at the clock's default start
    assert choice["kind"] == "choice" and choice["t"] == "2026-05-04T09:00:00Z"


def test_a_deviation_whose_point_never_comes_is_reported_not_taken():
    s = session("checkout")
    out = s.run([Deviation("attempt", "service:nobody <- x y #1", "fail")])
    assert not out.complete and out.taken == ()
    assert out.points == []  # a run that did not take its deviations branches nowhere


def test_tasks_of_unrelated_consumers_are_not_reordered(write):
    """Partial-order reduction: deliveries to two services that share nothing, due at the same
    time, are one order; two deliveries to one consumer are two."""
    path = write("""
        apiVersion: meshctl/v1
        kind: EventType
        metadata: {name: ping}
        spec: {external: true}
        ---
        apiVersion: meshctl/v1
        kind: EventType
        metadata: {name: pong}
        ---
        apiVersion: meshctl/v1
        kind: Service
        metadata: {name: a}
        spec:
          subscriptions:
            - on: ping
              emits: [pong]
              do:
                - emit: {type: pong, data: {n: 1}}
                - emit: {type: pong, data: {n: 2}}
        ---
        apiVersion: meshctl/v1
        kind: Service
        metadata: {name: b}
        spec:
          subscriptions:
            - on: pong
              do: {log: "b {{ data.n }}"}
        ---
        apiVersion: meshctl/v1
        kind: Service
        metadata: {name: c}
        spec:
          subscriptions:
            - on: pong
              do: {log: "c {{ data.n }}"}
    """)
    mesh, _ = load_mesh(str(path))
    ping = [{"specversion": "1.0", "id": "p1", "source": "/t", "type": "ping",
             "time": "2026-01-01T00:00:00Z"}]
    orders = [p for p in Session(mesh, ping, nothing).run().points if p.kind == "order"]
    assert orders, "four deliveries of two pongs are due together"
    for point in orders:  # each alternative goes to the consumer of the first task, never the other's
        consumer = point.at.split(" <- ")[0]
        assert point.alternatives and all(alt.split(" <- ")[0] == consumer for alt in point.alternatives)
    assert orders[0].at.startswith("service:b/pong") and len(orders[0].alternatives) == 1


def test_search_finds_the_planted_bug_with_one_failure():
    report = search(session("buggy-checkout"), Bounds(depth=2))
    assert report.found is not None and report.stopped_by == "violation"
    assert [d.choice for d in report.found.taken] == ["fail"]
    assert report.found.taken[0].at.startswith(GATEWAY)


def test_search_spends_the_whole_space_of_the_fixed_mesh():
    report = search(session("checkout"), Bounds(depth=2))
    assert report.found is None and report.exhausted and report.coverage == 1.0
    assert report.per_level[0] == 1 and len(report.per_level) == 3


def test_state_hashing_tries_fewer_runs_and_finds_the_same():
    hashed = search(session("checkout"), Bounds(depth=2))
    plain = search(session("checkout"), Bounds(depth=2, hashing=False))
    assert plain.exhausted and hashed.exhausted
    assert hashed.cut > 0
    assert sum(hashed.per_level) == hashed.runs < plain.runs


def test_a_search_out_of_runs_says_how_much_it_covered():
    report = search(session("checkout"), Bounds(depth=2, max_runs=40, seed=3))
    assert report.runs == 40 and report.stopped_by == "runs" and not report.exhausted
    assert 0 < report.coverage < 1 and report.sampled and report.states > 0


def test_minimising_drops_what_the_violation_does_not_need():
    s = session("buggy-checkout")
    noisy = [Deviation("late", "input o-1", "1"), Deviation("attempt", gateway_attempt(s, "o-1"), "fail"),
             Deviation("attempt", gateway_attempt(s, "o-2"), "duplicate")]
    found = s.run(noisy)
    assert found.violations and found.complete
    minimal = minimize(s, found)
    assert [d.choice for d in minimal.deviations] == ["fail"]
    assert [e["id"] for e in minimal.inputs] == ["o-1"]
    assert minimal.outcome.violations == [Broken("checkout", "never", "ord-1")]
    assert any(r["kind"] == "choice" for r in minimal.outcome.records)


def test_a_counterexample_file_replays_its_choices(tmp_path):
    s = session("buggy-checkout")
    found = search(s, Bounds(depth=1)).found
    minimal = minimize(s, found)
    path = tmp_path / "ce.jsonl"
    path.write_text("\n".join(counterexample.lines("workflows/buggy-checkout", minimal, 0)) + "\n")
    header = json.loads(path.read_text().splitlines()[0])
    assert header["kind"] == "counterexample"
    assert header["choices"] == [d.as_dict() for d in minimal.deviations]
    choices = counterexample.read_choices(str(path))
    again = s.run(choices.deviations, inputs=choices.events, records=True)
    assert again.records == minimal.outcome.records


@pytest.mark.parametrize("text, message", [
    ("[1, 2]", "not a choices file"),
    ('{"choices": {"kind": "late"}}', "`choices` must be a list"),
    ('{"choices": [{"kind": "swap", "at": "x", "choice": "1"}]}', "kind 'swap' is not one of"),
    ('{"choices": [{"kind": "attempt", "at": "x", "choice": "explode"}]}', "one of fail, crash, duplicate"),
    ('{"choices": [{"kind": "late", "at": "input x", "choice": "9"}]}', "1 to 3"),
    ('{"choices": [{"kind": "late", "at": "", "choice": "1"}]}', "label of a choice point"),
    ('{"choices": [], "events": [1]}', "`events` must be a list of events"),
])
def test_a_bad_choices_file_is_a_usage_error_that_says_where(tmp_path, text, message):
    path = tmp_path / "choices.json"
    path.write_text(text)
    with pytest.raises(UsageError) as caught:
        counterexample.read_choices(str(path))
    assert message in str(caught.value) and str(path) in str(caught.value)


def test_a_step_that_crashes_is_attempted_again_after_the_lease_and_the_run_goes_on():
    s = session("checkout")
    step = "step-attempt checkout:o-1@/shop/request_payment #1"
    out = s.run([Deviation("attempt", step, "crash")], records=True)
    crash = next(r for r in out.records if r["kind"] == "crash")
    assert crash["run"] == "checkout:o-1@/shop" and crash["t"] == "2026-05-04T09:00:00Z"
    requests = [r for r in out.records if r["kind"] == "emit" and r["type"] == "payment.requested"]
    assert requests[0]["t"] == "2026-05-04T09:00:30Z"  # the crashed attempt emitted nothing
    assert out.summary["runs_completed"] == 2 and not out.violations


def test_a_step_fails_by_choice_only_where_its_policy_retries(write):
    """A step with `retry: {max_attempts: 2}` may fail on its first attempt, not its second."""
    path = write("""
        apiVersion: meshctl/v1
        kind: EventType
        metadata: {name: go}
        spec: {external: true}
        ---
        apiVersion: meshctl/v1
        kind: Orchestration
        metadata: {name: flow}
        spec:
          trigger: {on: go}
          steps:
            - id: only
              retry: {max_attempts: 2, backoff: fixed, initial: 5s, jitter: none}
              do: {log: "step"}
    """)
    mesh, _ = load_mesh(str(path))
    go = [{"specversion": "1.0", "id": "g1", "source": "/t", "type": "go", "time": "2026-01-01T00:00:00Z"}]
    session_ = Session(mesh, go, nothing)
    first = next(p for p in session_.run().points if p.at.endswith("/only #1"))
    assert first.alternatives == ("fail", "crash")
    failed = session_.run([Deviation("attempt", first.at, "fail")], records=True)
    second = next(p for p in failed.points if p.at.endswith("/only #2"))
    assert second.alternatives == ("crash",)
    assert failed.summary["retries"] == 1 and failed.summary["runs_completed"] == 1
