"""The ingress ASGI application, called with ASGI messages: no socket, no server, no Redis.

The store is a small in-test broker with the two calls the ingress makes (``ingest``,
``ping``); the end-to-end tests against Redis are in test_serve_cli.py.
"""
from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from time_cases import TIME_CASES

from engine.analysis.validate import require_valid
from engine.cluster.ingress import BATCH, STRUCTURED, Backlog, Ingress
from engine.language.admission import Admission
from engine.storage.base import StorageError

REPO = Path(__file__).resolve().parent.parent.parent
ARENA = REPO / "workflows" / "arena"
TOKEN = "s3cret-token"


class Broker:
    """Keeps what it is given; ``up`` and ``fail`` make it unhealthy or refuse writes."""

    def __init__(self):
        self.events: list[dict] = []
        self.up, self.fail = True, False
        self.waiting = 0  # what backlog() reports

    def ingest(self, events: list[dict]) -> list[str]:
        if self.fail:
            raise StorageError("connection refused")
        self.events += events
        return [f"{len(self.events) - len(events) + i + 1}-0" for i in range(len(events))]

    def ping(self) -> bool:
        return self.up

    def backlog(self) -> int:
        return self.waiting


@pytest.fixture(scope="module")
def admission():
    return Admission(require_valid(str(ARENA)).mesh)


@pytest.fixture
def broker():
    return Broker()


def asgi(app, method: str, path: str, body: bytes, headers: dict[str, str], declared: int | None = None):
    """One request through *app*: (status, headers, body bytes, whether the body was read)."""
    length = len(body) if declared is None else declared
    raw = [(b"content-length", str(length).encode())]
    raw += [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()]
    scope = {"type": "http", "method": method, "path": path, "headers": raw}
    pending, sent = [{"type": "http.request", "body": body, "more_body": False}], []

    async def receive():
        return pending.pop() if pending else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    start, answer = sent
    names = {name.decode(): value.decode() for name, value in start["headers"]}
    return start["status"], names, answer["body"], not pending


@pytest.fixture
def call(admission, broker):
    """``call(method, path, body, headers, **options)`` -> (status, headers, JSON body)."""
    def _call(method="POST", path="/events", body=b"", headers=None, **options):
        app = Ingress(admission, broker, **options)
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        try:
            status, answer_headers, answer, _ = asgi(app, method, path, data, headers or {})
        finally:
            app.close()
        return status, answer_headers, json.loads(answer)
    return _call


def arena_events() -> list[dict]:
    return [json.loads(line) for line in (ARENA / "events.jsonl").read_text().splitlines() if line.strip()]


REQUESTED = arena_events()[0]  # a valid match.requested


# --- accepted ------------------------------------------------------------------------------

def test_a_structured_event_is_queued_and_acknowledged(call, broker):
    status, headers, body = call(body=REQUESTED, headers={"Content-Type": STRUCTURED})
    assert status == 202 and headers["Content-Type"] == "application/json"
    assert body == {"accepted": 1, "ids": ["1-0"]}
    assert broker.events == [REQUESTED]


def test_a_binary_event_takes_its_attributes_from_ce_headers_and_its_data_from_the_body(call, broker):
    headers = {
        "ce-specversion": "1.0",
        "ce-id": "b-1",
        "ce-source": "/lobby%2Feu",
        "ce-type": "match.requested",
        "ce-time": "2024-05-04T12:00:00Z",
        "Content-Type": "application/json",
    }
    status, _, body = call(body=REQUESTED["data"], headers=headers)
    assert status == 202 and body["accepted"] == 1
    assert broker.events == [
        {
            "specversion": "1.0",
            "id": "b-1",
            "source": "/lobby/eu",
            "type": "match.requested",
            "time": "2024-05-04T12:00:00Z",
            "datacontenttype": "application/json",
            "data": REQUESTED["data"],
        }
    ]


def test_a_batch_is_queued_whole(call, broker):
    events = arena_events()
    status, _, body = call(body=events, headers={"Content-Type": BATCH})
    assert status == 202 and body["accepted"] == len(events) == 32
    assert broker.events == events


def test_content_type_parameters_are_ignored(call, broker):
    status, _, _ = call(body=REQUESTED, headers={"Content-Type": f"{STRUCTURED}; charset=UTF-8"})
    assert status == 202


# --- refused: nothing is queued -----------------------------------------------------------


def problems(body: dict) -> list[tuple]:
    return [(p["index"], p["field"], p["message"]) for p in body["problems"]]


def test_a_bad_batch_names_each_event_and_field_and_queues_nothing(call, broker):
    missing = {k: v for k, v in REQUESTED.items() if k != "source"}
    unknown = {**REQUESTED, "type": "match.requestd"}
    invalid = {**REQUESTED, "data": {**REQUESTED["data"], "mode": "hardcore"}}
    status, headers, body = call(body=[REQUESTED, missing, unknown, invalid], headers={"Content-Type": BATCH})
    assert status == 400 and headers["Content-Type"] == "application/problem+json"
    assert body["detail"] == "3 of 4 events refused (3 problems); nothing was accepted"
    assert problems(body) == [
        (1, "source", "required attribute 'source' is missing"),
        (2, "type", "no event type 'match.requestd' is declared in the mesh"),
        (3, "data.mode", "'hardcore' is not one of ['ranked', 'casual']"),
    ]
    assert body["problems"][1]["hint"] == "did you mean 'match.requested'?"
    assert broker.events == []


def test_an_event_type_produced_inside_the_mesh_is_refused(call, broker):
    status, _, body = call(body={**REQUESTED, "type": "match.created"}, headers={"Content-Type": STRUCTURED})
    assert status == 400
    assert problems(body) == [
        (0, "type", "event type 'match.created' is produced inside the mesh, not taken from outside")
    ]


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"specversion": "0.3"}, "specversion", "specversion '0.3' is not supported; use '1.0'"),
        ({"id": ""}, "id", "required attribute 'id' is empty"),
        ({"source": 7}, "source", "required attribute 'source' must be a string, not a number"),
        (
            {"time": "yesterday"},
            "time",
            "'yesterday' is not an RFC 3339 date-time: expected YYYY-MM-DDTHH:MM:SS[.fraction] "
            "then Z or ±HH:MM, such as 2026-01-01T12:00:00Z",
        ),
        ({"Region": "eu"}, "Region", "attribute name 'Region' must be lower-case letters and digits only"),
        (
            {"tags": ["a"]},
            "tags",
            "extension attribute 'tags' must be a string, an integer or a boolean, not an array",
        ),
        ({"data_base64": "eA=="}, "data_base64", "an event has either data or data_base64, not both"),
    ],
)
def test_envelope_problems(call, change, field, message):
    status, _, body = call(body={**REQUESTED, **change}, headers={"Content-Type": STRUCTURED})
    assert status == 400 and problems(body) == [(0, field, message)]


@pytest.mark.parametrize("case", TIME_CASES, ids=lambda c: c.label)
def test_event_times_get_the_verdict_of_the_one_rule(call, broker, case):
    """tests/time_cases.py: the same verdicts as the parser itself, `run`, `publish`, streams and render."""
    status, _, body = call(body={**REQUESTED, "time": case.value}, headers={"Content-Type": STRUCTURED})
    if case.accepted:
        assert status == 202 and broker.events == [{**REQUESTED, "time": case.value}]
    else:
        [(index, field, message)] = problems(body)
        assert (status, index, field) == (400, 0, "time") and case.refusal in message
        assert broker.events == []


def test_a_binary_event_takes_its_time_from_ce_time_by_the_same_rule(call, broker):
    headers = {
        "ce-specversion": "1.0",
        "ce-id": "b-1",
        "ce-source": "/lobby",
        "ce-type": "match.requested",
        "Content-Type": "application/json",
    }
    status, _, body = call(body=REQUESTED["data"], headers={**headers, "ce-time": "2026-01-01T00:00:02"})
    assert status == 400 and "has no UTC offset" in problems(body)[0][2]
    status, _, _ = call(body=REQUESTED["data"], headers={**headers, "ce-time": "2016-12-31T23:59:60Z"})
    assert status == 202


def test_a_binary_event_without_ce_type_is_refused(call, broker):
    headers = {
        "ce-specversion": "1.0",
        "ce-id": "b-1",
        "ce-source": "/lobby",
        "Content-Type": "application/json",
    }
    status, _, body = call(body=REQUESTED["data"], headers=headers)
    assert status == 400 and problems(body) == [(0, "type", "required attribute 'type' is missing")]
    assert broker.events == []


@pytest.mark.parametrize(
    ("body", "ctype", "detail"),
    [
        (b'{"id": ', STRUCTURED, "the event is refused: not JSON: Expecting value (line 1, column 8)"),
        (
            b'{"n": NaN}',
            STRUCTURED,
            "the event is refused: NaN is not JSON: numbers must be finite (line 1, column 7)",
        ),
        (
            b"\xff{}",
            STRUCTURED,
            "the event is refused: not UTF-8 text: invalid start byte 0xff at byte 1 (line 1, column 1)",
        ),
        (b"[" * 100_000, BATCH, "the batch is refused: nested more than 65 levels deep (line 1, column 66)"),
        (b'{"id": "x"}', BATCH, "a batch must be a JSON array of events"),
    ],
)
def test_bad_json_is_a_400_saying_why(call, broker, body, ctype, detail):
    status, _, answer = call(body=body, headers={"Content-Type": ctype})
    assert (status, answer["detail"]) == (400, detail)
    assert broker.events == []


def test_a_batch_element_that_is_not_an_object_is_named(call):
    status, _, body = call(body=[REQUESTED, 7], headers={"Content-Type": BATCH})
    assert status == 400 and problems(body) == [(1, "event", "an event must be a JSON object, not a number")]


# --- limits, routes, media types ----------------------------------------------------------


def test_a_body_over_the_limit_is_413(call, broker):
    status, _, body = call(body=arena_events(), headers={"Content-Type": BATCH}, max_body=1000)
    assert status == 413 and body["detail"].endswith("at most 1000 are accepted")
    assert broker.events == []


def test_a_batch_over_the_cap_is_413(call, broker):
    status, _, body = call(body=arena_events(), headers={"Content-Type": BATCH}, max_batch=10)
    assert status == 413 and body["detail"] == "the batch has 32 events; at most 10 per request"


@pytest.mark.parametrize(
    ("method", "path", "status", "allow"),
    [
        ("GET", "/events", 405, "POST"),
        ("POST", "/healthz", 405, "GET"),
        ("GET", "/", 404, None),
        ("POST", "/event", 404, None),
    ],
)
def test_routes(call, method, path, status, allow):
    got, headers, body = call(method, path)
    assert (got, body["status"], headers.get("Allow")) == (status, status, allow)


def test_a_body_that_is_not_a_cloudevent_is_415(call):
    status, _, body = call(body=REQUESTED, headers={"Content-Type": "application/json"})
    assert status == 415 and "application/cloudevents+json" in body["detail"]


# --- auth -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("authorization", "detail"),
    [
        (None, "missing token: send the header Authorization: Bearer TOKEN"),
        ("Basic czNjcmV0", "missing token: send the header Authorization: Bearer TOKEN"),
        ("Bearer wrong", "the token is not valid"),
        (f"Bearer {TOKEN}x", "the token is not valid"),
    ],
)
def test_without_the_right_token_it_is_401_and_nothing_is_queued(call, broker, authorization, detail):
    headers = {"Content-Type": STRUCTURED, **({"Authorization": authorization} if authorization else {})}
    status, answer_headers, body = call(body=REQUESTED, headers=headers, token=TOKEN)
    assert (status, body["detail"]) == (401, detail)
    assert answer_headers["WWW-Authenticate"].startswith("Bearer")
    assert broker.events == []


def test_with_the_token_it_is_accepted(call, broker):
    headers = {"Content-Type": STRUCTURED, "Authorization": f"bearer {TOKEN}"}
    assert call(body=REQUESTED, headers=headers, token=TOKEN)[0] == 202


def test_health_needs_no_token(call):
    assert call("GET", "/healthz", token=TOKEN)[0] == 200


# --- the store ------------------------------------------------------------------------------


def test_health_follows_the_store(call, broker):
    assert call("GET", "/healthz")[::2] == (200, {"status": "ok", "store": "up"})
    broker.up = False
    assert call("GET", "/healthz")[::2] == (503, {"status": "unavailable", "store": "down"})


def test_a_store_failure_is_503_and_nothing_is_acknowledged(call, broker):
    broker.fail = True
    status, headers, body = call(body=REQUESTED, headers={"Content-Type": STRUCTURED})
    assert status == 503 and headers["Retry-After"] == "1"
    assert "nothing is acknowledged" in body["detail"]


def test_a_bug_is_a_500_without_details_and_is_logged(admission, broker):
    logged = []
    app = Ingress(admission, None, log=logged.append)  # no store: ingest fails with AttributeError
    data = json.dumps(REQUESTED).encode()
    status, _, body, _ = asgi(app, "POST", "/events", data, {"Content-Type": STRUCTURED})
    app.close()
    assert status == 500 and "AttributeError" not in body.decode()
    assert "AttributeError" in logged[0]


def test_a_deployment_behind_its_backlog_limit_refuses_with_retry_after(call, broker):
    """Backpressure: past --max-backlog nothing is queued, and the client is told when to retry."""
    event = arena_events()[0]
    broker.waiting = 500
    status, headers, body = call(
        body=event, headers={"Content-Type": "application/cloudevents+json"}, max_backlog=500
    )
    assert (status, headers["Retry-After"]) == (503, "1") and "500 entries wait" in body["detail"]
    assert broker.events == []
    broker.waiting = 499
    status, _, _ = call(body=event, headers={"Content-Type": "application/cloudevents+json"}, max_backlog=500)
    assert status == 202 and len(broker.events) == 1


def test_a_full_backlog_refuses_before_the_body_is_read(admission, broker):
    """The refusal comes from the headers alone: the body is neither received nor parsed."""
    broker.waiting = 10
    app = Ingress(admission, broker, max_backlog=10)
    try:
        status, headers, body, read = asgi(app, "POST", "/events", b"not even JSON", {"Content-Type": BATCH})
    finally:
        app.close()
    assert (status, headers["Retry-After"], headers["Content-Type"]) == (503, "1", "application/problem+json")
    assert json.loads(body)["title"] == "Service Unavailable"
    assert not read and broker.events == []


def test_the_token_is_checked_before_the_backlog(call, broker):
    """A client without the token learns nothing of the deployment's state."""
    broker.waiting = 10
    status, _, body = call(body=REQUESTED, headers={"Content-Type": STRUCTURED}, token=TOKEN, max_backlog=10)
    assert (status, body["detail"]) == (401, "missing token: send the header Authorization: Bearer TOKEN")


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class CountingBroker(Broker):
    def __init__(self):
        super().__init__()
        self.reads = 0

    def backlog(self) -> int:
        self.reads += 1
        if self.fail:
            raise StorageError("connection refused")
        return self.waiting


def test_the_backlog_is_read_once_per_refresh_and_counts_what_was_queued_since():
    broker, clock = CountingBroker(), Clock()
    backlog = Backlog(broker, refresh=0.005, clock=clock)
    assert backlog.stale()
    broker.waiting = 7
    backlog.refresh()
    assert (backlog.stale(), backlog.waiting(), broker.reads) == (False, 7, 1)
    backlog.queued(3)
    broker.waiting = 100  # not seen until the figure is stale
    clock.now += 0.004
    assert (backlog.stale(), backlog.waiting()) == (False, 10)
    clock.now += 0.001
    assert backlog.stale()
    backlog.refresh()
    assert (backlog.waiting(), broker.reads) == (100, 2)


def test_a_backlog_the_store_cannot_tell_keeps_the_last_figure():
    broker, clock = CountingBroker(), Clock()
    backlog = Backlog(broker, clock=clock)
    broker.waiting = 5
    backlog.refresh()
    backlog.queued(1)
    broker.fail = True
    clock.now += 1
    backlog.refresh()
    assert (backlog.waiting(), backlog.stale()) == (6, False)


def test_events_accepted_count_towards_the_backlog_before_the_next_read(admission):
    """Between two reads of the broker's figure, what this ingress queued is counted: a burst
    cannot overshoot the limit by more than the requests already past the check."""
    broker = CountingBroker()
    app = Ingress(admission, broker, max_backlog=3)
    app.backlog = Backlog(broker, refresh=3600.0)
    statuses = []
    try:
        for _ in range(5):
            data = json.dumps(REQUESTED).encode()
            statuses.append(asgi(app, "POST", "/events", data, {"Content-Type": STRUCTURED})[0])
    finally:
        app.close()
    assert statuses == [202, 202, 202, 503, 503] and broker.reads == 1 and len(broker.events) == 3
