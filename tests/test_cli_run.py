"""`meshctl run`, `meshctl dlq` and `meshctl render --trace` through the CLI."""
from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from localhttp import serving

REPO = Path(__file__).resolve().parent.parent
ARENA = REPO / "workflows" / "arena"
SCORE = "service:score-service/score.recorded"


EVENTS_IN = len((ARENA / "events.jsonl").read_text().splitlines())


def test_run_prints_a_summary(meshctl):
    result = meshctl("run", ARENA, "--events", ARENA / "events.jsonl")
    assert result.exit_code == 0
    lines = {k.strip(): v for k, v in (line.rsplit(None, 1) for line in result.output.splitlines())}
    assert lines["events in"] == str(EVENTS_IN) and lines["loop-detected"] == "1"
    assert int(lines["dead-lettered"]) == int(lines["loop-detected"]) + int(lines["late-event"])


def test_run_writes_trace_output_and_dead_letters(meshctl, tmp_path):
    trace, out, dlq = tmp_path / "t.jsonl", tmp_path / "o.jsonl", tmp_path / "d.jsonl"
    result = meshctl("run", ARENA, "--events", ARENA / "events.jsonl", "--trace", trace, "--output", out,
                     "--dlq-out", dlq, "--format", "json")
    summary = json.loads(result.output)
    emitted = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(emitted) == summary["emitted"]
    assert all(e["specversion"] == "1.0" and "causationid" in e for e in emitted)
    records = [json.loads(line) for line in trace.read_text().splitlines()]
    assert [r["seq"] for r in records] == list(range(1, len(records) + 1))
    assert len(dlq.read_text().splitlines()) == summary["dead_lettered"]


def test_same_seed_gives_byte_identical_traces(meshctl, tmp_path):
    args = ["run", ARENA, "--events", ARENA / "events.jsonl", "--fault", f"{SCORE}=2:TimeoutError"]
    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        meshctl(*args, "--seed", seed, "--trace", tmp_path / f"{name}.jsonl")
    a, b, c = ((tmp_path / f"{n}.jsonl").read_bytes() for n in "abc")
    assert a == b
    assert a != c  # jitter depends on the seed


def test_fault_retry_dead_letter_then_replay(meshctl, tmp_path):
    dlq = tmp_path / "dlq.jsonl"
    meshctl("run", ARENA, "--events", ARENA / "events.jsonl", "--fault", f"{SCORE}=always:TimeoutError",
            "--dlq-out", dlq)
    listing = meshctl("dlq", "list", "--dlq", dlq, "--reason", "retries-exhausted").output
    assert f"retries-exhausted  {SCORE}  score.recorded" in listing
    record_id = listing.split()[0]
    problem = json.loads(meshctl("dlq", "show", "--dlq", dlq, record_id).output)
    assert problem["type"] == "https://meshctl.dev/problems/retries-exhausted"
    assert problem["title"] == "Retries exhausted" and problem["error_type"] == "TimeoutError"
    before = len(dlq.read_text().splitlines())
    replay = meshctl("dlq", "replay", ARENA, "--dlq", dlq, "--reason", "retries-exhausted", "--format",
                     "json")
    summary = json.loads(replay.output)
    assert summary["replayed"] >= 1 and summary["dead_lettered"] == 0
    assert len(dlq.read_text().splitlines()) == before - summary["replayed"]
    assert "retries-exhausted" not in meshctl("dlq", "list", "--dlq", dlq).output


def test_dlq_purge(meshctl, tmp_path):
    dlq = tmp_path / "dlq.jsonl"
    meshctl("run", ARENA, "--events", ARENA / "events.jsonl", "--dlq-out", dlq)
    late = sum(json.loads(line)["reason"] == "late-event" for line in dlq.read_text().splitlines())
    total = len(dlq.read_text().splitlines())
    assert meshctl("dlq", "purge", "--dlq", dlq).exit_code == 2  # a filter or --all is required
    assert (
        meshctl("dlq", "purge", "--dlq", dlq, "--reason", "late-event").output
        == f"purged {late}, kept {total - late}\n"
    )
    assert meshctl("dlq", "purge", "--dlq", dlq, "--all").output == f"purged {total - late}, kept 0\n"
    assert late >= 1 and total > late


@pytest.mark.parametrize("source", ["--dlq", "--store"])
def test_dlq_purge_dry_run_lists_what_it_would_remove_and_removes_nothing(meshctl, tmp_path, source):
    dlq, db = tmp_path / "dlq.jsonl", f"sqlite:{tmp_path / 'run.db'}"
    meshctl("run", ARENA, "--events", ARENA / "events.jsonl", "--dlq-out", dlq, "--store", db)
    where = [source, dlq if source == "--dlq" else db]
    listing = meshctl("dlq", "list", *where).output
    late = [line for line in listing.splitlines() if "  late-event  " in line]
    dry = meshctl("dlq", "purge", *where, "--reason", "late-event", "--dry-run")
    assert dry.exit_code == 0 and len(late) == 2
    assert dry.output == "\n".join(late) + "\nwould purge 2, keep 1 (dry run: nothing was removed)\n"
    assert meshctl("dlq", "list", *where).output == listing
    assert meshctl("dlq", "purge", *where, "--all", "--dry-run").output.endswith(
        "would purge 3, keep 0 (dry run: nothing was removed)\n"
    )
    assert meshctl("dlq", "purge", *where, "--reason", "late-event").output == "purged 2, kept 1\n"
    # a filter or --all, as without --dry-run
    assert meshctl("dlq", "purge", *where, "--dry-run").exit_code == 2


@pytest.mark.parametrize(("args", "code", "message"), [
    (["--fault", "service:nope=2"], 2, "--fault 'service:nope=2': expected CONSUMER[=TIMES|always][:ERROR]"),
    (["--fault", f"{SCORE}=x"], 2, "expected CONSUMER[=TIMES|always][:ERROR]"),
    (["--max-hops", "0"], 2, "Invalid value for '--max-hops'"),
])
def test_run_usage_errors(meshctl, args, code, message):
    result = meshctl("run", ARENA, "--events", ARENA / "events.jsonl", *args)
    assert result.exit_code == code and message in result.output


def test_run_refuses_an_invalid_mesh(meshctl):
    result = meshctl("run", REPO / "tests/cases/invalid/event-cycle.yaml", "--events", ARENA / "events.jsonl")
    assert result.exit_code == 1 and "error[event-cycle]" in result.output


def test_garbage_input_lines_are_dead_lettered(meshctl, tmp_path):
    events = tmp_path / "bad.jsonl"
    events.write_text('{"type": "match.requested", "data": "x"}\nnot json\n[1, 2]\n{"type": "nope"}\n')
    dlq = tmp_path / "d.jsonl"
    result = meshctl("run", ARENA, "--events", events, "--dlq-out", dlq, "--format", "json")
    summary = json.loads(result.stdout)
    assert result.exit_code == 0 and summary["events_in"] == 4
    reasons = sorted(json.loads(line)["reason"] for line in dlq.read_text().splitlines())
    assert reasons == ["schema-invalid", "schema-invalid", "schema-invalid", "undeliverable"]
    located = [json.loads(line)["error"] for line in dlq.read_text().splitlines()]
    assert any(f"{events}:2:1: not JSON" in e for e in located)


def test_every_input_counted_has_its_ingest_record(meshctl, tmp_path):
    # events_in counts rejected inputs too; a trace that left them out drew fewer events in
    # than the summary said (issue #15's "45 events in" against 46).
    events, trace = tmp_path / "bad.jsonl", tmp_path / "t.jsonl"
    good = (ARENA / "events.jsonl").read_text().splitlines()[0]
    events.write_text(f'{good}\nnot json\n[1, 2]\n{{"type": "nope"}}\n{good}\n')
    summary = json.loads(
        meshctl("run", ARENA, "--events", events, "--trace", trace, "--format", "json").stdout
    )
    ingests = [r for r in map(json.loads, trace.read_text().splitlines()) if r["kind"] == "ingest"]
    assert len(ingests) == summary["events_in"] == 5
    assert [r.get("rejected") for r in ingests] == [None, "schema-invalid", "schema-invalid", None, None]
    assert [r["event"] for r in ingests[1:3]] == [None, None]
    assert ingests[0]["event"] == ingests[4]["event"]  # a repeat is an input too (then a duplicate)


@pytest.mark.parametrize("fmt", ["mermaid", "svg", "html"])
def test_render_a_trace(meshctl, tmp_path, fmt):
    trace = tmp_path / "t.jsonl"
    meshctl("run", ARENA, "--events", ARENA / "events.jsonl", "--trace", trace)
    result = meshctl("render", "--trace", trace, "--format", fmt)
    assert result.exit_code == 0 and "score-service" in result.output


def test_render_needs_a_path_or_a_trace(meshctl):
    assert meshctl("render").exit_code == 2


class _Recorder(BaseHTTPRequestHandler):
    received: list = []
    status = 200

    def do_POST(self):  # noqa: N802 - the http.server API
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append((self.path, self.headers["Content-Type"], json.loads(body)))
        self.send_response(type(self).status)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def http_sink():
    _Recorder.received = []
    with serving(_Recorder) as server:
        yield server, _Recorder


@pytest.mark.parametrize(("status", "dead"), [(200, 0), (503, 1), (400, 1)])
def test_http_targets_live(meshctl, write, tmp_path, http_sink, status, dead):
    server, recorder = http_sink
    recorder.status = status
    port = server.server_address[1]
    mesh = write(f"""
        apiVersion: meshctl/v1
        kind: EventType
        metadata: {{name: ping}}
        spec: {{external: true}}
        ---
        apiVersion: meshctl/v1
        kind: Route
        metadata: {{name: out}}
        spec:
          from: [ping]
          to: [{{http: "http://127.0.0.1:{port}/hook"}}]
          delivery: {{retry: {{max_attempts: 2, initial: 1s, jitter: none}}}}
        """)
    events = tmp_path / "e.jsonl"
    events.write_text('{"id": "p1", "type": "ping", "data": {"x": 1}}\n')
    summary = json.loads(
        meshctl("run", mesh, "--events", events, "--http", "live", "--format", "json").output
    )
    assert summary["dead_lettered"] == dead
    attempts = 1 if status in (200, 400) else 2  # 4xx is not retried, 5xx is
    assert len(recorder.received) == attempts
    path, content_type, body = recorder.received[0]
    assert (path, content_type, body["type"], body["data"], body["causationid"]) == (
        "/hook", "application/cloudevents+json", "ping", {"x": 1}, "p1")


def test_durable_store_run_resume_and_dlq(meshctl, tmp_path, unjudged):
    db = f"sqlite:{tmp_path / 'run.db'}"
    args = ["run", ARENA, "--events", ARENA / "events.jsonl", "--store", db]
    first = unjudged(meshctl(*args, "--fault", f"{SCORE}=always:TimeoutError", "--format", "json",
                             "--trace", tmp_path / "t0.jsonl").stdout)
    reasons = first["dead_lettered_by_reason"]
    assert reasons["retries-exhausted"] >= 1 and reasons["circuit-open"] >= 1
    again = meshctl(*args)
    assert (
        again.exit_code == 2
        and f"already holds a run ({EVENTS_IN} inputs read): add --resume" in again.output
    )
    resumed = meshctl(*args, "--resume", "--format", "json", "--trace", tmp_path / "t.jsonl")
    assert json.loads(resumed.stdout) == first  # finished: nothing more to do
    # the whole trace, from the store
    assert (tmp_path / "t.jsonl").read_text() == (tmp_path / "t0.jsonl").read_text()
    total = first["dead_lettered"]
    assert meshctl("dlq", "list", "--store", db).output.endswith(f"{total} dead letters\n")
    replay = json.loads(meshctl("dlq", "replay", ARENA, "--store", db, "--format", "json").output)
    # a replay meets the same guard and watermark
    unfixable = reasons["late-event"] + reasons["loop-detected"]
    assert (replay["replayed"], replay["still_dead"]) == (total, unfixable)
    purged = meshctl("dlq", "purge", "--store", db, "--reason", "late-event").output
    assert purged == f"purged {reasons['late-event']}, kept {reasons['loop-detected']}\n"
    assert meshctl("dlq", "list", "--store", db).output.endswith("1 dead letter\n")


@pytest.mark.parametrize(("args", "message"), [
    (["dlq", "list"], "give exactly one of --dlq FILE and --store URL"),
    (["dlq", "list", "--store", "memory:"], "--store must be durable here"),
    (["dlq", "list", "--store", "postgres://x"], "unknown store 'postgres://x'"),
    (["run", ARENA, "--events", ARENA / "events.jsonl", "--resume"], "--resume needs a durable store"),
])
def test_store_usage_errors(meshctl, args, message):
    result = meshctl(*args)
    assert result.exit_code == 2 and message in result.output


def test_a_trace_is_kept_only_if_asked_for_from_the_start(meshctl, tmp_path):
    db = f"sqlite:{tmp_path / 'run.db'}"
    args = ["run", ARENA, "--events", ARENA / "events.jsonl", "--store", db]
    assert meshctl(*args).exit_code == 0
    late = meshctl(*args, "--resume", "--trace", tmp_path / "t.jsonl")
    assert late.exit_code == 2 and "was started without --trace, so its trace was not kept" in late.output
