"""W3C traceparent through `meshctl run`: an input's trace id reappears on every event it caused
(service emits, orchestration steps, windows it closed), with a span id of each event's own;
inputs without one cause events without one. A window of a stream judged by partition
watermarks is closed by no event (docs/streams.md): it starts no trace."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.runtime.tracecontext import inherited, parse

REPO = Path(__file__).resolve().parent.parent
ARENA = REPO / "workflows" / "arena-orchestrated"


def trace_id(n: int) -> str:
    return f"{n + 1:032x}"


def traced_inputs(tmp_path: Path, every: int = 1, mesh: Path = ARENA) -> tuple[Path, dict[str, str]]:
    """The mesh's example events, each *every*-th one with a traceparent of its own trace id."""
    traced, lines = {}, []
    for n, line in enumerate((mesh / "events.jsonl").read_text().splitlines()):
        event = json.loads(line)
        if n % every == 0:
            event["traceparent"] = f"00-{trace_id(n)}-{n + 1:016x}-01"
            event["tracestate"] = f"shop=n{n}"
            traced[event["id"]] = trace_id(n)
        lines.append(json.dumps(event))
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path, traced


def emitted(meshctl, events: Path, out: Path, mesh: Path = ARENA) -> list[dict]:
    result = meshctl("run", mesh, "--events", events, "--output", out, "--format", "json")
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in out.read_text().splitlines()]


def test_every_event_an_input_caused_carries_its_trace_id(meshctl, tmp_path):
    events, traced = traced_inputs(tmp_path, every=2)
    out = emitted(meshctl, events, tmp_path / "out.jsonl")
    kinds = set()
    for event in out:
        root = event["correlationid"]
        if root in traced:
            parsed = parse(event["traceparent"])
            assert parsed is not None and parsed[0] == traced[root], event
            assert event["tracestate"].startswith("shop=n")
            kinds.add(event["source"].split("/")[1].split(":")[0])
        else:  # an input without one, or a window the partition watermarks closed
            assert "traceparent" not in event and "tracestate" not in event, event
    # a service's emits and an orchestration's steps carried it
    assert "orchestration" in kinds
    assert any(e["type"] == "leaderboard.window" for e in out)  # windows, all without a trace
    span_ids = [parse(e["traceparent"])[1] for e in out if "traceparent" in e]
    assert len(set(span_ids)) == len(span_ids)  # each event is a span of its own


def test_a_window_closed_by_an_event_carries_its_trace_id(meshctl, tmp_path):
    """The arena's leaderboard takes inputs only (no partition watermarks): the event whose
    arrival closes a window gives the window's event its trace."""
    events, traced = traced_inputs(tmp_path, mesh=ARENA.parent / "arena")
    windows = [e for e in emitted(meshctl, events, tmp_path / "out.jsonl", ARENA.parent / "arena")
               if e["type"] == "leaderboard.window"]
    carried = [e for e in windows if "traceparent" in e]
    assert carried and all(parse(e["traceparent"])[0] == traced[e["correlationid"]] for e in carried)


def test_traced_runs_are_the_same_byte_for_byte(meshctl, tmp_path):
    events, _ = traced_inputs(tmp_path)
    first = emitted(meshctl, events, tmp_path / "a.jsonl")
    assert first == emitted(meshctl, events, tmp_path / "b.jsonl")


@pytest.mark.parametrize("value", [
    "garbage", "00-" + "0" * 32 + "-00f067aa0ba902b7-01",
    "00-4bf92f3577b34da6a3ce929d0e0e4736-" + "0" * 16 + "-01",
    "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra", 42,
])
def test_a_traceparent_that_does_not_parse_is_not_carried(value):
    assert parse(value) is None
    assert inherited({"traceparent": value, "tracestate": "a=b"}, "child") == {}


def test_a_later_version_is_read_as_version_00():
    value = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-more"
    child = inherited({"traceparent": value}, "child")["traceparent"]
    assert child.startswith("00-4bf92f3577b34da6a3ce929d0e0e4736-") and child.endswith("-00")
