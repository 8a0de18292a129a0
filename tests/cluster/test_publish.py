"""`meshctl publish`: checked before anything is sent, stable ids, to a store or to an ingress.

Refusals of an ingress and batch splitting are tested against the ingress app served by the
standard library's wsgiref in a thread, with an in-test broker (no Redis); publishing to a
store uses Redis (``redis_url``).
"""
from __future__ import annotations

import json
import threading
from collections import Counter
from pathlib import Path
from wsgiref.simple_server import WSGIRequestHandler, make_server

import pytest
from time_cases import ACCEPTED, REFUSED, TIME_CASES

from engine.analysis.validate import require_valid
from engine.cluster.ingress import Ingress
from engine.cluster.publish import RefusedRecords, checked_events
from engine.language.admission import Admission, Rejection


def as_set(events: list[dict]) -> list[str]:
    """Events in an order of their own: a deployment keeps the order of inputs per partition only."""
    return sorted(json.dumps(event, sort_keys=True) for event in events)

pytestmark = pytest.mark.slow  # starts servers and workers, or routes at volume

ARENA = Path(__file__).resolve().parent.parent.parent / "workflows" / "arena"
EVENTS = ARENA / "events.jsonl"
LINES = EVENTS.read_text().splitlines()


class Broker:
    def __init__(self):
        self.events, self.batches = [], []

    def ingest(self, events):
        self.events += events
        self.batches.append(len(events))
        return [f"{i}-0" for i in range(len(events))]

    def ping(self):
        return True


class Quiet(WSGIRequestHandler):
    def log_message(self, *args):  # no access log in the test output
        pass


@pytest.fixture
def ingress():
    """``ingress(**options)`` -> (URL, broker) of the ingress app served in a thread."""
    servers = []

    def _ingress(admission=None, **options):
        broker = Broker()
        app = Ingress(admission or Admission(require_valid(str(ARENA)).mesh), broker, **options)
        server = make_server("127.0.0.1", 0, app.wsgi, handler_class=Quiet)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_port}", broker
    yield _ingress
    for server in servers:
        server.shutdown()
        server.server_close()


def write_events(tmp_path, lines: list[str], name: str = "events.jsonl") -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


# --- checked first: one bad record and nothing is sent -------------------------------------

def test_a_bad_line_is_located_and_nothing_is_sent(meshctl, ingress, tmp_path):
    url, broker = ingress()
    events = write_events(tmp_path, [LINES[0], '{"type": "match.requested",', LINES[1]])
    result = meshctl("publish", ARENA, events, "--url", url)
    assert result.exit_code == 1
    # the end of the line
    assert result.output.splitlines()[0].startswith(f"{events}:2:28: error[bad-event]: not JSON: ")
    assert broker.events == []


def test_an_event_the_mesh_refuses_is_located_with_the_field(meshctl, ingress, tmp_path):
    url, broker = ingress()
    bad = json.loads(LINES[1])
    bad["data"]["mode"] = "hardcore"
    unknown = {**json.loads(LINES[0]), "type": "match.requestd"}
    events = write_events(tmp_path, [LINES[0], json.dumps(bad), "", json.dumps(unknown)])
    result = meshctl("publish", ARENA, events, "--url", url)
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        f"{events}:2:1: error[rejected-event]: data.mode: 'hardcore' is not one of ['ranked', 'casual']",
        f"{events}:4:1: error[rejected-event]: type: no event type 'match.requestd' is declared in the mesh",
        "  hint: did you mean 'match.requested'?",
        f"meshctl: 2 of the 3 records of {events} are bad or refused: nothing was sent",
    ]
    assert broker.events == []


def test_a_yaml_list_is_located_by_its_items(meshctl, ingress, tmp_path):
    url, broker = ingress()
    events = tmp_path / "events.yaml"
    events.write_text("- type: match.requested\n  source: /lobby\n  data: {request_id: r-1}\n")
    result = meshctl("publish", ARENA, events, "--url", url)
    assert result.exit_code == 1
    assert result.output.startswith(
        f"{events}:1:3: error[rejected-event]: data: 'players' is a required property"
    )


# --- to an ingress ----------------------------------------------------------------------------


def test_publish_posts_batches_and_says_how_many_were_accepted(meshctl, ingress):
    url, broker = ingress()
    result = meshctl("publish", ARENA, EVENTS, "--url", url, "--batch", "10")
    assert (result.exit_code, result.output) == (0, f"published 32 events to {url}\n")
    assert broker.batches == [10, 10, 10, 2]
    assert broker.events == [json.loads(line) for line in LINES]


def test_a_batch_too_large_for_the_ingress_is_split(meshctl, ingress):
    url, broker = ingress(max_body=2000)
    result = meshctl("publish", ARENA, EVENTS, "--url", url)
    assert result.exit_code == 0 and len(broker.events) == 32
    assert max(broker.batches) < 32


class RefuseMatchFinished:
    """An ingress whose mesh differs from the publisher's: it refuses every match.finished."""

    def rejections(self, event):
        return [Rejection("type", "not taken here")] if event["type"] == "match.finished" else []


def test_a_refusal_of_the_ingress_is_shown_with_the_lines_of_the_file(meshctl, ingress):
    url, broker = ingress(admission=RefuseMatchFinished())
    result = meshctl("publish", ARENA, EVENTS, "--url", url, "--batch", "2")
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert lines[0] == (
        f"meshctl: the ingress at {url}/events refused events 3-4 with HTTP 400 Bad Request: 2 of 2 "
        "events refused (2 problems); nothing was accepted; 2 events accepted before that "
        "(publishing the file again is harmless: the events keep their ids)"
    )
    assert lines[1:] == [f"  {EVENTS}:3:1: type: not taken here", f"  {EVENTS}:4:1: type: not taken here"]
    assert len(broker.events) == 2


def test_a_wrong_token_is_reported(meshctl, ingress):
    url, _ = ingress(token="right")
    result = meshctl("publish", ARENA, EVENTS, "--url", url, "--token", "wrong")
    assert result.exit_code == 1
    assert (
        "refused events 1-32 with HTTP 401 Unauthorized: the token is not valid; nothing was accepted"
        in result.output
    )


def test_an_ingress_that_is_not_running_is_reported(meshctl, unused_port):
    result = meshctl("publish", ARENA, EVENTS, "--url", f"http://127.0.0.1:{unused_port}")
    assert result.exit_code == 1
    assert (
        f"meshctl: cannot reach the ingress at http://127.0.0.1:{unused_port}/events: "
        "[Errno 111] Connection refused; nothing was accepted" in result.output
    )


@pytest.fixture
def unused_port():
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "give exactly one of --url (a running `meshctl serve`) and --store redis://..."),
        (["--url", "http://h:1", "--store", "redis://h"], "give exactly one of --url"),
        (["--url", "ftp://h"], "--url 'ftp://h': expected http://HOST:PORT"),
        (
            ["--store", "memory:"],
            "publish needs a broker store: --store redis://HOST:PORT/DB or redis+cluster://HOST:PORT "
            "(got 'memory:')",
        ),
    ],
)
def test_usage_errors(meshctl, args, message):
    result = meshctl("publish", ARENA, EVENTS, *args)
    assert result.exit_code == 2 and message in result.output


# --- to a store, and the ids ----------------------------------------------------------------------


def test_publish_to_a_store_queues_the_events(meshctl, redis_url, queued):
    result = meshctl("publish", ARENA, EVENTS, "--store", redis_url, "--batch", "7")
    assert (result.exit_code, result.output) == (0, f"published 32 events to {redis_url}\n")
    assert as_set(queued(redis_url)) == as_set([json.loads(line) for line in LINES])


def test_events_without_an_id_get_the_same_ids_every_time(meshctl, redis_url, queued, tmp_path):
    events = [{k: v for k, v in json.loads(line).items() if k != "id"} for line in LINES[:3]]
    path = write_events(tmp_path, [json.dumps(e) for e in [events[0], events[1], events[0], events[2]]])
    for _ in range(2):
        assert meshctl("publish", ARENA, path, "--store", redis_url).exit_code == 0
    ids = Counter(e["id"] for e in queued(redis_url))
    assert len(ids) == 4 and set(ids.values()) == {2}  # the second publish repeats the first: dedup skips it
    assert any(f"{i}-2" in ids for i in ids)  # the same record twice in a file: two events
    other = write_events(tmp_path, [json.dumps(events[2])], "other.jsonl")
    assert meshctl("publish", ARENA, other, "--store", redis_url).exit_code == 0
    [again] = Counter(e["id"] for e in queued(redis_url)) - ids
    assert again in ids  # by content, not by position


# --- event times: the one rule (tests/time_cases.py) -------------------------------------------

EVENT = json.loads(LINES[0])


def test_publish_to_a_store_refuses_exactly_the_refused_times_then_queues_the_rest(
    meshctl, redis_url, queued, tmp_path
):
    every = write_events(
        tmp_path,
        [json.dumps({**EVENT, "id": f"case-{n}", "time": c.value}) for n, c in enumerate(TIME_CASES)],
        "every.jsonl",
    )
    result = meshctl("publish", ARENA, every, "--store", redis_url)
    assert result.exit_code == 1
    shown = [line for line in result.output.splitlines() if ": error[" in line]
    refused_lines = [n + 1 for n, c in enumerate(TIME_CASES) if not c.accepted]
    assert [int(line.split(":")[1]) for line in shown] == refused_lines[:10]  # the first 10, then a count
    assert f"... and {len(refused_lines) - 10} more ({len(refused_lines)} in all)" in result.output
    told = []  # every problem, as publish finds them
    with pytest.raises(RefusedRecords):
        checked_events(str(every), Admission(require_valid(str(ARENA)).mesh), told.append)
    assert [d.loc.line for d in told] == refused_lines
    for diagnostic, case in zip(told, REFUSED):
        assert "time" in diagnostic.message and case.refusal in diagnostic.message, (case.label, diagnostic)
    assert queued(redis_url) == []  # one bad record and nothing is sent
    good = write_events(
        tmp_path,
        [json.dumps({**EVENT, "id": f"case-{n}", "time": c.value}) for n, c in enumerate(ACCEPTED)],
        "good.jsonl",
    )
    assert meshctl("publish", ARENA, good, "--store", redis_url).exit_code == 0
    in_file_order = sorted(queued(redis_url), key=lambda e: int(e["id"].split("-")[1]))
    assert [e["time"] for e in in_file_order] == [c.value for c in ACCEPTED]


def test_a_huge_retry_after_is_waited_out_only_as_long_as_our_patience(meshctl, monkeypatch):
    """A hostile or broken ingress answering 503 with `Retry-After: 99999999999` costs at most
    the publisher's patience (10 × --timeout), then a located refusal: never an OverflowError."""
    import engine.cluster.publish as publish

    clock, slept = [0.0], []
    monkeypatch.setattr(publish.time, "monotonic", lambda: clock[0])

    def sleep(seconds):
        slept.append(seconds)
        clock[0] += seconds

    monkeypatch.setattr(publish.time, "sleep", sleep)

    def always_behind(environ, start_response):
        start_response(
            "503 Service Unavailable", [("Retry-After", "99999999999"), ("Content-Type", "text/plain")]
        )
        return [b"behind"]

    server = make_server("127.0.0.1", 0, always_behind, handler_class=Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        result = meshctl("publish", ARENA, EVENTS, "--url", f"http://127.0.0.1:{server.server_port}")
    finally:
        server.shutdown()
        server.server_close()
    assert result.exit_code == 1, result.output
    assert "503" in result.output and "internal error" not in result.output
    assert slept == [300.0]
