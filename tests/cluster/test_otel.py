"""OpenTelemetry spans of `meshctl worker`: one per delivery attempt and per orchestration step,
children of the trace context their event carries, caught with the SDK's in-memory exporter."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from engine.runtime.events import read_events
from engine.runtime.tracecontext import parse
from engine.storage import open_broker

REPO = Path(__file__).resolve().parents[2]
ARENA = REPO / "workflows" / "arena-orchestrated"
TRACE_ID, PARENT = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"


@pytest.fixture(scope="module")
def exporter():
    """An SDK tracer provider for the process, exporting into memory, for this module's tests only."""
    assert not isinstance(trace.get_tracer_provider(), TracerProvider), "a tracer provider is set already"
    provider = TracerProvider()
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    yield exporter
    provider.shutdown()
    # The API sets its provider once per process; the later tests must run without spans (their
    # runs compare traceparents byte for byte), so it is unset as OpenTelemetry's own test
    # helpers do (opentelemetry-test-utils, reset_trace_globals).
    trace._TRACER_PROVIDER_SET_ONCE = trace.Once()
    trace._TRACER_PROVIDER = None


def test_a_worker_makes_a_span_per_delivery_and_step_in_the_events_trace(meshctl, redis_url, exporter):
    exporter.clear()
    events = list(read_events(str(ARENA / "events.jsonl")))
    traced = next(e for e in events if e["type"] == "match.result.reported")
    events[events.index(traced)] = {**traced, "traceparent": f"00-{TRACE_ID}-{PARENT}-01"}
    broker = open_broker(redis_url)
    try:
        broker.ingest(events)
        result = meshctl("worker", ARENA, "--store", redis_url, "--exit-when-idle", "--http=simulate",
                         "--format=json")
        assert result.exit_code == 0, result.output
        emitted = list(broker.store.records("emitted"))
    finally:
        broker.close()
    spans = exporter.get_finished_spans()
    in_trace = [s for s in spans if format(s.context.trace_id, "032x") == TRACE_ID]
    names = {s.name.split(" ")[0] for s in in_trace}
    assert {"deliver", "step"} <= names, names
    # the input's own deliveries are children of the span its traceparent names
    first = [s for s in in_trace if s.attributes.get("cloudevents.event_id") == traced["id"]
             and s.name.startswith("deliver ")]
    assert first and all(format(s.parent.span_id, "016x") == PARENT and s.parent.is_remote for s in first)
    # every event it caused names a span of this trace as its parent: the trace nests
    span_ids = {format(s.context.span_id, "016x") for s in in_trace}
    caused = [e for e in emitted if e["correlationid"] == traced["id"]]
    assert caused and all(parse(e["traceparent"])[0] == TRACE_ID for e in caused)
    assert all(parse(e["traceparent"])[1] in span_ids for e in caused)
    # the other inputs carry no trace context: their spans are roots of traces of their own
    others = [s for s in spans if format(s.context.trace_id, "032x") != TRACE_ID]
    assert others and all(s.parent is None for s in others if s.name.startswith("deliver "))
    assert all(s.attributes["meshctl.consumer"] and "meshctl.attempt" in s.attributes for s in spans)


def test_meshctl_run_makes_the_same_spans(meshctl, exporter, tmp_path):
    exporter.clear()
    events = [json.loads(line) for line in (ARENA / "events.jsonl").read_text().splitlines()]
    traced = events[0]
    events[0] = {**traced, "traceparent": f"00-{TRACE_ID}-{PARENT}-01"}
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    result = meshctl("run", ARENA, "--events", tmp_path / "in.jsonl", "--output", tmp_path / "out.jsonl")
    assert result.exit_code == 0, result.output
    emitted = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    in_trace = [s for s in exporter.get_finished_spans() if format(s.context.trace_id, "032x") == TRACE_ID]
    assert {"deliver", "step"} <= {s.name.split(" ")[0] for s in in_trace}
    span_ids = {format(s.context.span_id, "016x") for s in in_trace}
    caused = [e for e in emitted if e["correlationid"] == traced["id"]]
    assert caused and all(parse(e["traceparent"])[1] in span_ids for e in caused)
    assert all("meshctl.worker" not in s.attributes for s in in_trace)
