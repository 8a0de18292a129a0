"""`meshctl run` with schedules: ticks on the virtual clock, bounded by --until, started by
the first input or --from, with deterministic ids and times."""
from __future__ import annotations

import json

MESH = """
apiVersion: meshctl/v1
kind: EventType
metadata: {name: report.due}
spec:
  schema: {type: object, required: [at, schedule, missed], properties: {at: {type: string}}}
---
apiVersion: meshctl/v1
kind: EventType
metadata: {name: order.placed}
spec: {external: true}
---
apiVersion: meshctl/v1
kind: Service
metadata: {name: reports}
spec:
  subscriptions:
    - on: report.due
      do: [{log: "report at {{ data.at }}"}]
    - on: order.placed
      do: [{log: "order"}]
---
apiVersion: meshctl/v1
kind: Schedule
metadata: {name: quarterly}
spec:
  every: 15m
  emit:
    type: report.due
    data: {at: "{{ tick.time }}", schedule: "{{ tick.schedule }}", missed: "{{ tick.missed }}"}
"""

NIGHTLY = """
---
apiVersion: meshctl/v1
kind: Schedule
metadata: {name: nightly}
spec:
  cron: "30 2 * * *"
  timezone: Europe/Paris
  emit:
    type: report.due
    subject: "night of {{ tick.time[:10] }}"
    data: {at: "{{ tick.time }}", schedule: "{{ tick.schedule }}", missed: "{{ tick.missed }}"}
"""


def emitted(meshctl, tmp_path, mesh, *args) -> tuple[dict, list[dict]]:
    out = tmp_path / "out.jsonl"
    result = meshctl("run", mesh, "--format", "json", "--output", out, *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout), [json.loads(line) for line in out.read_text().splitlines()]


def test_a_simulated_day_of_schedules_without_input(meshctl, write, tmp_path):
    mesh = write(MESH + NIGHTLY)
    summary, events = emitted(meshctl, tmp_path, mesh, "--from", "2026-03-28T12:00:00Z", "--until", "1d")
    quarterly = [e for e in events if e["source"] == "meshctl/schedule/quarterly"]
    nightly = [e for e in events if e["source"] == "meshctl/schedule/nightly"]
    assert len(quarterly) == 96  # 12:00 to 11:45 the next day
    assert quarterly[0]["id"] == "quarterly@2026-03-28T12:00:00Z"
    assert quarterly[0]["time"] == "2026-03-28T12:00:00Z"
    assert quarterly[-1]["time"] == "2026-03-29T11:45:00Z"
    # the spring-forward night of Europe/Paris: 02:30 does not exist, it fires at 03:30 CEST
    assert [(e["id"], e["time"], e["subject"]) for e in nightly] == [
        ("nightly@2026-03-29T01:30:00Z", "2026-03-29T01:30:00Z", "night of 2026-03-29")]
    assert nightly[0]["data"] == {"at": "2026-03-29T01:30:00Z", "schedule": "nightly", "missed": 1}
    assert summary["ticks"] == 97 and summary["emitted"] == 97 and summary["delivered"] == 97
    assert summary["events_in"] == 0 and summary["dead_lettered"] == 0


def test_until_as_a_time_excludes_it(meshctl, write, tmp_path):
    mesh = write(MESH)
    _, events = emitted(meshctl, tmp_path, mesh, "--from", "2026-01-01T00:00:00Z",
                        "--until", "2026-01-01T01:00:00Z")
    assert [e["time"][11:16] for e in events] == ["00:00", "00:15", "00:30", "00:45"]


def test_without_from_the_clock_starts_at_the_default_start(meshctl, write, tmp_path):
    _, events = emitted(meshctl, tmp_path, write(MESH), "--until", "30m")
    assert [e["id"] for e in events] == ["quarterly@2026-01-01T00:00:00Z", "quarterly@2026-01-01T00:15:00Z"]


def test_ticks_interleave_with_inputs_and_stop_at_the_last_one(meshctl, write, tmp_path):
    mesh = write(MESH)
    inputs = write("\n".join(json.dumps({"id": f"o-{i}", "source": "/shop", "type": "order.placed",
                                         "time": t}) for i, t in enumerate(
        ["2026-01-01T10:05:00Z", "2026-01-01T10:30:00Z", "2026-01-01T11:00:00Z"])) + "\n", "in.jsonl")
    trace = tmp_path / "trace.jsonl"
    summary, events = emitted(meshctl, tmp_path, mesh, "--events", inputs, "--trace", trace)
    # the clock starts at the first input (10:05): the first tick is 10:15; the last is the
    # last input's time, fired before the input itself
    assert [e["time"][11:16] for e in events] == ["10:15", "10:30", "10:45", "11:00"]
    records = [json.loads(line) for line in trace.read_text().splitlines()]
    order = [r.get("event") for r in records if r["kind"] in ("ingest", "tick")]
    assert order == ["o-0", "quarterly@2026-01-01T10:15:00Z", "quarterly@2026-01-01T10:30:00Z", "o-1",
                     "quarterly@2026-01-01T10:45:00Z", "quarterly@2026-01-01T11:00:00Z", "o-2"]
    assert summary["events_in"] == 3 and summary["ticks"] == 4
    # --until extends the ticks past the last input
    _, longer = emitted(meshctl, tmp_path, mesh, "--events", inputs, "--until", "2026-01-01T12:00:00Z")
    assert len(longer) == 7
    # a duration counts from the clock's start: the first input's time
    _, hour = emitted(meshctl, tmp_path, mesh, "--events", inputs, "--until", "1h")
    assert [e["time"][11:16] for e in hour] == ["10:15", "10:30", "10:45", "11:00"]


def test_the_same_run_gives_the_same_trace(meshctl, write, tmp_path):
    mesh = write(MESH + NIGHTLY)
    traces = []
    for name in ("a.jsonl", "b.jsonl"):
        result = meshctl("run", mesh, "--until", "2d", "--trace", tmp_path / name)
        assert result.exit_code == 0, result.output
        traces.append((tmp_path / name).read_bytes())
    assert traces[0] == traces[1] and traces[0]


def test_a_failing_tick_template_is_dead_lettered(meshctl, write, tmp_path):
    mesh = write(MESH.replace('"{{ tick.missed }}"', '"{{ tick.nothing }}"'))
    dlq = tmp_path / "dlq.jsonl"
    result = meshctl("run", mesh, "--until", "15m", "--format", "json", "--dlq-out", dlq)
    assert result.exit_code == 0, result.output
    [record] = [json.loads(line) for line in dlq.read_text().splitlines()]
    assert record["reason"] == "template-error" and record["consumer"] == "schedule:quarterly"
    assert record["event"] == {"schedule": "quarterly", "tick": "2026-01-01T00:00:00Z"}


def test_usage_errors(meshctl, write):
    mesh = write(MESH)
    no_bound = meshctl("run", mesh)
    bad = meshctl("run", mesh, "--until", "tomorrow")
    bad_from = meshctl("run", mesh, "--from", "1d", "--until", "1d")
    assert no_bound.exit_code == 2 and "needs --until" in no_bound.output
    assert bad.exit_code == 2 and "'tomorrow' is not an RFC 3339 time or a duration" in bad.output
    assert bad_from.exit_code == 2 and "'1d' is not an RFC 3339 time" in bad_from.output
    plain = write("apiVersion: meshctl/v1\nkind: EventType\nmetadata: {name: a}\n", "plain.yaml")
    missing = meshctl("run", plain)
    assert missing.exit_code == 2 and "Missing option '--events'" in missing.output


def test_a_durable_run_keeps_its_bound_across_resume(meshctl, write, tmp_path):
    mesh, db = write(MESH), tmp_path / "run.db"
    first = meshctl("run", mesh, "--until", "1h", "--store", f"sqlite:{db}", "--format", "json")
    assert first.exit_code == 0 and json.loads(first.stdout)["ticks"] == 4
    again = meshctl("run", mesh, "--until", "1h", "--store", f"sqlite:{db}", "--resume", "--format", "json")
    assert again.exit_code == 0 and json.loads(again.stdout)["ticks"] == 4
