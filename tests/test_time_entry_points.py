"""The one rule of event time at every entry point: each case of tests/time_cases.py gets the
verdict of engine.eventtime at the edge check, in `run`'s input files (memory and SQLite), in a
stream's time field and in `render --trace` (`publish --store` and the `serve` ingress: in
tests/cluster).
"""
from __future__ import annotations

import html
import json
import re
from pathlib import Path

import pytest

from engine import eventtime
from engine.check import require_valid
from engine.eventcheck import Admission
from time_cases import TIME_CASES

REPO = Path(__file__).resolve().parent.parent
ARENA = REPO / "workflows" / "arena"

TICKS = """\
apiVersion: meshctl/v1
kind: EventType
metadata: {name: tick}
spec: {external: true}
---
apiVersion: meshctl/v1
kind: Service
metadata: {name: clock}
spec:
  subscriptions:
    - on: tick
      do: {log: "tick"}
"""

READINGS = """\
apiVersion: meshctl/v1
kind: EventType
metadata: {name: reading}
spec: {external: true}
---
apiVersion: meshctl/v1
kind: EventType
metadata: {name: reading.window}
---
apiVersion: meshctl/v1
kind: Stream
metadata: {name: readings}
spec:
  from: [reading]
  time: data.at
  window: {tumbling: 60s}
  lateness: 400000000000   # more than 10,000 years: no case is late, whatever the order
  aggregate: {n: {count: {}}}
  emit: {type: reading.window}
---
apiVersion: meshctl/v1
kind: Service
metadata: {name: board}
spec:
  subscriptions:
    - on: reading.window
      do: {log: "window"}
"""


def lines_of(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def write_lines(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def mesh(tmp_path: Path, text: str) -> Path:
    folder = tmp_path / "mesh"
    folder.mkdir()
    (folder / "mesh.yaml").write_text(text)
    return folder


def case_id(n: int) -> str:
    return f"case-{n}"


# --- the edge check: publish and serve use Admission ---------------------------------------------

@pytest.fixture(scope="module")
def arena_admission():
    return Admission(require_valid(str(ARENA)).mesh)


ARENA_EVENT = json.loads((ARENA / "events.jsonl").read_text().splitlines()[0])


@pytest.mark.parametrize("case", TIME_CASES, ids=lambda c: c.label)
def test_the_edge_check(arena_admission, case):
    found = arena_admission.rejections({**ARENA_EVENT, "time": case.value})
    if case.accepted:
        assert found == []
    else:
        assert [r.field for r in found] == ["time"] and case.refusal in found[0].message


# --- run: input files, in memory and in SQLite ---------------------------------------------------

@pytest.mark.parametrize("store", ["memory:", "sqlite"])
def test_run_dead_letters_exactly_the_refused_times_with_their_line(meshctl, tmp_path, store):
    folder = mesh(tmp_path, TICKS)
    events = write_lines(tmp_path / "in.jsonl", [{"type": "tick", "id": case_id(n), "time": c.value}
                                                 for n, c in enumerate(TIME_CASES)])
    dlq, trace = tmp_path / "dlq.jsonl", tmp_path / "trace.jsonl"
    url = store if store == "memory:" else f"sqlite:{tmp_path / 'run.db'}"
    result = meshctl("run", folder, "--events", events, "--store", url, "--dlq-out", dlq, "--trace", trace,
                     "--format", "json")
    assert result.exit_code == 0
    dead = {int(r["event"]["location"].split(":")[-2]): r for r in lines_of(dlq)}
    assert sorted(dead) == [n + 1 for n, c in enumerate(TIME_CASES) if not c.accepted]
    for n, case in enumerate(TIME_CASES):
        if not case.accepted:
            record = dead[n + 1]
            assert (record["reason"], record["consumer"], record["error_type"]) == ("schema-invalid", "mesh", "BadInput")
            assert record["error"].startswith(f"{events}:{n + 1}:1: attribute 'time': ") and case.refusal in record["error"]
    delivered = {r["event"] for r in lines_of(trace) if r["kind"] == "deliver"}
    assert delivered == {case_id(n) for n, c in enumerate(TIME_CASES) if c.accepted}
    assert json.loads(result.output)["events_in"] == len(TIME_CASES)


def test_a_null_time_is_an_absent_time_in_run_as_at_the_edge(meshctl, arena_admission, tmp_path):
    assert arena_admission.rejections({**ARENA_EVENT, "time": None}) == []
    events = write_lines(tmp_path / "in.jsonl", [{"type": "tick", "time": None}])
    result = meshctl("run", mesh(tmp_path, TICKS), "--events", events, "--format", "json")
    assert json.loads(result.output)["dead_lettered"] == 0


# --- a stream's time field -----------------------------------------------------------------------

def test_a_stream_time_field_refuses_exactly_the_refused_texts(meshctl, tmp_path):
    texts = [c for c in TIME_CASES if not isinstance(c.value, (int, float))]  # numbers: epoch seconds, below
    events = write_lines(tmp_path / "in.jsonl", [
        {"type": "reading", "id": case_id(n), "time": "2026-01-01T00:00:00Z", "data": {"at": c.value}}
        for n, c in enumerate(texts)])
    dlq, out = tmp_path / "dlq.jsonl", tmp_path / "out.jsonl"
    result = meshctl("run", mesh(tmp_path, READINGS), "--events", events, "--dlq-out", dlq, "--output", out)
    assert result.exit_code == 0
    dead = {r["event"]["id"]: r for r in lines_of(dlq)}
    assert sorted(dead) == sorted(case_id(n) for n, c in enumerate(texts) if not c.accepted)
    for n, case in enumerate(texts):
        if not case.accepted:
            assert (dead[case_id(n)]["reason"], dead[case_id(n)]["consumer"]) == ("schema-invalid", "stream:readings")
            assert case.refusal in dead[case_id(n)]["error"], case.label
    windows = [e["data"] for e in lines_of(out)]
    assert sum(w["n"] for w in windows) == sum(1 for c in texts if c.accepted)
    for window in windows:  # bounds in the one format, and readable by the one parser
        assert eventtime.format(eventtime.parse(window["start"])) == window["start"]


def test_a_stream_time_field_takes_a_number_as_epoch_seconds_in_the_same_range(meshctl, tmp_path):
    events = write_lines(tmp_path / "in.jsonl", [
        {"type": "reading", "id": f"r{n}", "time": "2026-01-01T00:00:00Z", "data": {"at": at}}
        for n, at in enumerate([1767225602, 1767225602.5, -62135596801, 1e300, True])])
    dlq, out = tmp_path / "dlq.jsonl", tmp_path / "out.jsonl"
    assert meshctl("run", mesh(tmp_path, READINGS), "--events", events, "--dlq-out", dlq, "--output", out).exit_code == 0
    assert [(w["start"], w["n"]) for w in (e["data"] for e in lines_of(out))] == [("2026-01-01T00:00:00Z", 2)]
    errors = {r["event"]["id"]: r["error"] for r in lines_of(dlq)}
    assert "is not a finite time in years 0001-9999" in errors["r2"] and "in years 0001-9999" in errors["r3"]
    assert "not a boolean" in errors["r4"]


# --- render --trace ------------------------------------------------------------------------------

def test_render_trace_reads_exactly_the_accepted_times(meshctl, tmp_path):
    records = [{"seq": 1, "t": "0001-01-01T00:00:00Z", "kind": "log", "message": "origin"}] + [
        {"seq": n + 2, "t": c.value, "kind": "log", "message": c.label} for n, c in enumerate(TIME_CASES)]
    trace, page = write_lines(tmp_path / "trace.jsonl", records), tmp_path / "trace.html"
    assert meshctl("render", "--trace", trace, "--format", "html", "-o", page).exit_code == 0
    times = [html.unescape(t) for t in re.findall(r'<td class="time">(.*?)</td>', page.read_text())]
    assert len(times) == len(records)
    for case, shown in zip(TIME_CASES, times[1:]):
        assert (shown != "") == case.accepted, (case.label, shown)
