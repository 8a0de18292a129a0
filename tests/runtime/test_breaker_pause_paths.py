"""A pausing breaker (issue #19) runs the same with the runtime's shortcuts off, and a run
resumed from a checkpoint taken while deliveries were held ends as an uninterrupted one."""
from __future__ import annotations

from pathlib import Path

import pytest

from engine.language.loader import load_mesh
from engine.runtime.events import read_events
from engine.runtime.interpreter import Fault, Runtime
from engine.runtime.trace import Trace

BILLING = Path(__file__).resolve().parents[2] / "workflows" / "billing"
FAULTS = {
    "pause": [Fault("service:ledger/invoice.paid", times=2, error="TimeoutError")],
    "never-recovers": [Fault("service:ledger/invoice.paid", error="TimeoutError")],
    "dead-letter": [Fault("service:receipts/invoice.booked", times=1, error="TimeoutError")],
}


def outputs(runtime: Runtime, records: list, inputs: list) -> dict:
    summary = runtime.run(inputs)
    return {"summary": summary, "trace": records, "dead": [d.as_dict() for d in runtime.store.dead_letters()]}


@pytest.mark.parametrize("case", sorted(FAULTS))
def test_a_pausing_breaker_runs_the_same_without_shortcuts(case):
    mesh, _ = load_mesh(str(BILLING))
    inputs = list(read_events(str(BILLING / "events.jsonl")))
    runs = []
    for fast in (True, False):
        records: list = []
        runtime = Runtime(mesh, trace=Trace(records), faults=FAULTS[case], fast_paths=fast)
        runs.append(outputs(runtime, records, inputs))
    assert runs[0] == runs[1]
    assert runs[0]["summary"]["held"] > 0 or case == "dead-letter"


def test_a_checkpoint_taken_while_deliveries_are_held_resumes_to_the_same_end():
    mesh, _ = load_mesh(str(BILLING))
    inputs = list(read_events(str(BILLING / "events.jsonl")))
    faults = FAULTS["pause"]
    whole: list = []
    reference = outputs(Runtime(mesh, trace=Trace(whole), faults=faults), whole, inputs)

    first: list = []
    runtime = Runtime(mesh, trace=Trace(first), faults=faults)
    for item in inputs[:3]:
        runtime.feed(item)
    runtime.scheduler.run_until_idle(until=runtime.clock.now() + 5)  # the circuit is open now
    assert runtime.trace.counts["held"] > runtime.trace.counts["released"]
    snapshot = runtime.snapshot()
    resumed = Runtime(mesh, store=runtime.store, trace=Trace(first), faults=faults)
    resumed.restore(snapshot)
    rest = outputs(resumed, first, inputs[3:])
    assert rest["summary"] == reference["summary"] and rest["dead"] == reference["dead"] == []
