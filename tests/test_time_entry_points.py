"""The one rule of event time at every entry point: each case of tests/time_cases.py gets the
verdict of engine.core.eventtime at the edge check, in `run`'s input files (memory and SQLite), in a
stream's time field and in `render --trace` (`publish --store` and the `serve` ingress: in
tests/cluster). Then instants the runtime derives past year 9999: never an internal error (exit 70).
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from time_cases import TIME_CASES

from engine.analysis.validate import require_valid
from engine.core import eventtime
from engine.language.admission import Admission

REPO = Path(__file__).resolve().parent.parent
ARENA = REPO / "workflows" / "arena"
LAST_TEXT = "9999-12-31T23:59:59.999999Z"

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
  lateness: 3652500d   # 10,000 years, the longest: no case is late, whatever the order
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
            assert (record["reason"], record["consumer"], record["error_type"]) == (
                "schema-invalid",
                "mesh",
                "BadInput",
            )
            assert (
                record["error"].startswith(f"{events}:{n + 1}:1: attribute 'time': ")
                and case.refusal in record["error"]
            )
    delivered = {r["event"] for r in lines_of(trace) if r["kind"] == "deliver"}
    assert delivered == {case_id(n) for n, c in enumerate(TIME_CASES) if c.accepted}
    assert json.loads(result.stdout)["events_in"] == len(TIME_CASES)


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
            assert (dead[case_id(n)]["reason"], dead[case_id(n)]["consumer"]) == (
                "schema-invalid",
                "stream:readings",
            )
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
    assert (
        meshctl(
            "run", mesh(tmp_path, READINGS), "--events", events, "--dlq-out", dlq, "--output", out
        ).exit_code
        == 0
    )
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
    # The page's rows carry each record's time as milliseconds (null: not a time it reads).
    data = re.search(r'<script type="application/json" id="trace-data">(.*?)</script>', page.read_text(),
                     re.S)
    times = [row[1] for row in json.loads(data.group(1))["rows"]]
    assert len(times) == len(records)
    for case, shown in zip(TIME_CASES, times[1:]):
        assert (shown is not None) == case.accepted, (case.label, shown)


# --- instants past year 9999: handled, never exit 70 ---------------------------------------------

END_OF_TIME = """\
apiVersion: meshctl/v1
kind: EventType
metadata: {name: go}
spec: {external: true}
---
apiVersion: meshctl/v1
kind: EventType
metadata: {name: done}
---
apiVersion: meshctl/v1
kind: DeliveryPolicy
metadata: {name: hourly}
spec:
  retry: {max_attempts: 5, backoff: fixed, initial: 1h, jitter: none}
  circuit_breaker: {failure_threshold: 1, reset_after: 2h}
---
apiVersion: meshctl/v1
kind: Service
metadata: {name: worker}
spec:
  subscriptions:
    - on: go
      delivery: hourly
      do: [{fail: {error: TimeoutError}}]
---
apiVersion: meshctl/v1
kind: Orchestration
metadata: {name: late}
spec:
  trigger: {on: go}
  steps:
    - id: work
      retry: {max_attempts: 5, backoff: fixed, initial: 1h, jitter: none}
      do: [{fail: {error: TimeoutError}}]
---
apiVersion: meshctl/v1
kind: Service
metadata: {name: sleeper}
spec:
  subscriptions:
    - on: go
      emits: [done]
      do: [{sleep: 2h}, {emit: {type: done}}]
---
apiVersion: meshctl/v1
kind: Service
metadata: {name: sink}
spec:
  subscriptions:
    - on: done
      do: {log: "done"}
"""


@pytest.mark.parametrize("store", ["memory:", "sqlite"])
def test_a_retry_after_the_end_of_time_is_dead_lettered_as_expired(meshctl, tmp_path, store):
    events = write_lines(tmp_path / "in.jsonl",
                         [{"type": "go", "id": "go-1", "time": "9999-12-31T23:30:00Z"}])
    dlq, trace, out = tmp_path / "dlq.jsonl", tmp_path / "trace.jsonl", tmp_path / "out.jsonl"
    url = store if store == "memory:" else f"sqlite:{tmp_path / 'run.db'}"
    result = meshctl("run", mesh(tmp_path, END_OF_TIME), "--events", events, "--store", url, "--dlq-out", dlq,
                     "--trace", trace, "--output", out, "--format", "json")
    assert result.exit_code == 0
    summary = json.loads(result.output)
    assert (summary["dead_lettered"], summary["runs_failed"], summary["retries"]) == (1, 1, 0)
    [dead] = lines_of(dlq)
    assert (dead["consumer"], dead["reason"], dead["attempts"]) == ("service:worker/go", "expired", 1)
    assert dead["first_attempt"] == dead["last_attempt"] == "9999-12-31T23:30:00Z"
    records = lines_of(trace)
    assert [r["until"] for r in records if r["kind"] == "circuit-open"] == [LAST_TEXT]  # 01:30 in year 10000
    assert [r["attempt"] for r in records if r["kind"] == "step-start"] == [1]  # the step's retry expired too
    # the sleeper's work ends after the end of time: what it emits carries the last instant
    assert [e["time"] for e in lines_of(out)] == [LAST_TEXT]
    assert all(eventtime.parse_or_none(r["t"]) is not None for r in records)


def test_the_reported_retry_past_9999_no_longer_exits_70(meshctl, tmp_path):
    events = write_lines(tmp_path / "in.jsonl", [{**ARENA_EVENT, "time": "9999-12-31T23:59:59Z"}])
    dlq = tmp_path / "dlq.jsonl"
    result = meshctl("run", ARENA, "--events", events, "--fault", "service:match-service/match.requested",
                     "--dlq-out", dlq)
    assert result.exit_code == 0
    assert [(r["consumer"], r["reason"]) for r in lines_of(dlq)] == [("service:match-service/match.requested",
                                                                      "expired")]


@pytest.mark.parametrize("store", ["memory:", "sqlite"])
def test_a_window_that_ends_after_9999_is_emitted_with_its_end_clamped(meshctl, tmp_path, store):
    finished = json.loads((ARENA / "events.jsonl").read_text().splitlines()[2])
    assert finished["type"] == "match.finished" and finished["data"]["mode"] == "ranked"
    events = write_lines(tmp_path / "in.jsonl", [{**finished, "time": "9999-12-31T23:59:30Z"}])
    out, trace = tmp_path / "out.jsonl", tmp_path / "trace.jsonl"
    url = store if store == "memory:" else f"sqlite:{tmp_path / 'run.db'}"
    result = meshctl("run", ARENA, "--events", events, "--store", url, "--output", out, "--trace", trace)
    assert result.exit_code == 0
    [window] = [e["data"] for e in lines_of(out) if e["type"] == "leaderboard.window"]
    assert (window["start"], window["end"]) == ("9999-12-31T23:59:00Z", LAST_TEXT)
    [record] = [r for r in lines_of(trace) if r["kind"] == "window"]
    assert (record["start"], record["end"]) == ("9999-12-31T23:59:00Z", LAST_TEXT)
    page = tmp_path / "trace.html"
    assert meshctl("render", "--trace", trace, "--format", "html", "-o", page).exit_code == 0
