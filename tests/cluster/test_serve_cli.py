"""`meshctl serve`: the listening policy, its usage errors, and a real server on a real socket.

Policy and usage errors go through click's CliRunner (they stop before anything listens);
the server itself runs as a subprocess against Redis (``redis_url``), stopped with SIGTERM.
"""
from __future__ import annotations

import http.client
import json
import signal
import socket
import sys
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import pytest


def as_set(events: list[dict]) -> list[str]:
    """Events in an order of their own: a deployment keeps the order of inputs per partition only."""
    return sorted(json.dumps(event, sort_keys=True) for event in events)

pytestmark = pytest.mark.slow  # starts servers and workers, or routes at volume

ARENA = Path(__file__).resolve().parent.parent.parent / "workflows" / "arena"
EVENTS = ARENA / "events.jsonl"


# --- refused before listening ----------------------------------------------------------------

@pytest.mark.parametrize("host", ["0.0.0.0", "::"])
def test_beyond_loopback_without_a_token_it_refuses_to_start(meshctl, host):
    result = meshctl("serve", ARENA, "--store", "redis://127.0.0.1:6379/0", "--host", host)
    assert result.exit_code == 2
    assert (
        f"meshctl: --host {host} is reachable from other machines: give a token (--token or MESHCTL_TOKEN), "
        "or --insecure" in result.output
    )


@pytest.mark.parametrize("args", [["--token", "t0ken"], ["--insecure"]])
def test_a_token_or_insecure_lets_it_past_the_policy(meshctl, args):
    result = meshctl("serve", ARENA, "--store", "memory:", "--host", "0.0.0.0", *args)
    assert result.exit_code == 2  # it got as far as the store, which must be a broker
    assert ("serve needs a broker store: --store redis://HOST:PORT/DB or redis+cluster://HOST:PORT "
            "(got 'memory:')") in result.output


def test_the_token_may_come_from_the_environment(runner):
    from cli import main

    result = runner.invoke(
        main, ["serve", str(ARENA), "--store", "memory:", "--host", "0.0.0.0"], env={"MESHCTL_TOKEN": "t0ken"}
    )
    assert result.exit_code == 2 and "serve needs a broker store" in result.output


@pytest.mark.parametrize("store", ["memory:", "sqlite:ingress.db"])
def test_a_store_that_is_not_a_broker_is_a_usage_error(meshctl, store, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = meshctl("serve", ARENA, "--store", store, "--port", "0")
    assert result.exit_code == 2
    assert (
        "meshctl: serve needs a broker store: --store redis://HOST:PORT/DB or redis+cluster://HOST:PORT "
        f"(got {store!r})" in result.output
    )


def test_without_uvicorn_it_says_how_to_install_it(meshctl, monkeypatch):
    monkeypatch.setitem(sys.modules, "uvicorn", None)  # makes `import uvicorn` fail
    result = meshctl("serve", ARENA, "--store", "redis://127.0.0.1:6379/0", "--port", "0")
    assert result.exit_code == 2
    assert (
        "meshctl: meshctl serve needs the HTTP server uvicorn: pip install 'meshctl[serve]'" in result.output
    )
    assert "Traceback" not in result.output


def test_an_invalid_mesh_is_exit_1(meshctl, write):
    mesh = write("apiVersion: meshctl/v1\nkind: EventType\nmetadata: {name: a}\nspec: {nope: 1}\n")
    result = meshctl("serve", mesh, "--store", "redis://127.0.0.1:6379/0", "--port", "0")
    assert result.exit_code == 1 and "error[" in result.output


def test_a_port_in_use_is_a_usage_error(meshctl, redis_url):
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    try:
        result = meshctl("serve", ARENA, "--store", redis_url, "--port", port)
    finally:
        taken.close()
    assert result.exit_code == 2
    assert f"meshctl: cannot listen on 127.0.0.1:{port}: Address already in use" in result.output


# --- a real server ----------------------------------------------------------------------------


def get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_serve_then_publish_queues_the_events_and_sigterm_stops_it(serve, redis_url, meshctl, queued):
    served = serve(ARENA, "--store", redis_url, "--port", "0")
    assert served.url.startswith("http://127.0.0.1:")
    assert get(f"{served.url}/healthz") == (200, {"status": "ok", "store": "up"})
    result = meshctl("publish", ARENA, EVENTS, "--url", served.url)
    assert (result.exit_code, result.output) == (0, f"published 32 events to {served.url}\n")
    events = queued(redis_url)
    assert len(events) == 32
    assert as_set(events) == as_set([json.loads(line) for line in EVENTS.read_text().splitlines()])
    code, stderr = served.stop()
    assert code == 0, stderr
    assert stderr.rstrip().endswith("meshctl serve: stopped")


def announce_a_body(url: str, length: int) -> http.client.HTTPResponse:
    """POST /events announcing *length* bytes of body and sending none: only an answer given
    before the body is read can come back (the timeout would fail the test otherwise)."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    connection.putrequest("POST", "/events")
    connection.putheader("Content-Type", "application/cloudevents-batch+json")
    connection.putheader("Content-Length", str(length))
    connection.endheaders()
    return connection.getresponse()


def test_a_body_over_the_limit_is_refused_before_it_is_read(serve, redis_url, queued):
    served = serve(ARENA, "--store", redis_url, "--port", "0", "--max-body", "1000")
    answer = announce_a_body(served.url, 50_000_000)
    assert answer.status == 413 and answer.getheader("Content-Type") == "application/problem+json"
    assert json.loads(answer.read()) == {
        "title": "Request Entity Too Large",
        "status": 413,
        "detail": "the body has 50000000 bytes; at most 1000 are accepted",
    }
    assert queued(redis_url) == []


def test_a_full_backlog_is_refused_before_the_body_is_read(serve, redis_url, meshctl, queued):
    assert meshctl("publish", ARENA, EVENTS, "--store", redis_url).exit_code == 0  # 32 entries wait
    served = serve(ARENA, "--store", redis_url, "--port", "0", "--max-backlog", "32")
    answer = announce_a_body(served.url, 900_000)
    assert answer.status == 503 and answer.getheader("Retry-After") == "1"
    assert answer.getheader("Content-Type") == "application/problem+json"
    assert json.loads(answer.read())["detail"] == (
        "the deployment is behind: 32 entries wait for the workers (limit 32); nothing was accepted: "
        "send them again after Retry-After"
    )
    assert len(queued(redis_url)) == 32


def post_one(url: str, event: dict) -> int:
    request = urllib.request.Request(
        f"{url}/events", json.dumps(event).encode(), {"Content-Type": "application/cloudevents+json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            assert json.loads(answer.read())["accepted"] == 1
            return answer.status
    except urllib.error.HTTPError as exc:
        assert exc.headers["Retry-After"] == "1" and json.loads(exc.read())["status"] == 503
        return exc.code


def test_every_event_acknowledged_under_overload_is_queued(serve, redis_url, queued):
    """Clients racing past the backlog limit: each event is either acknowledged (202) and in
    the queue, or refused (503) and not; nothing acknowledged is lost, even across SIGTERM."""
    served = serve(ARENA, "--store", redis_url, "--port", "0", "--max-backlog", "40", "--threads", "4")
    template = json.loads(EVENTS.read_text().splitlines()[0])
    events = [{**template, "id": f"load-{i}"} for i in range(200)]
    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda event: post_one(served.url, event), events))
    code, stderr = served.stop()
    assert code == 0, stderr
    acknowledged = {event["id"] for event, status in zip(events, statuses) if status == 202}
    assert {event["id"] for event in queued(redis_url)} == acknowledged
    assert len(acknowledged) >= 40 and statuses.count(503) > 0
    assert set(statuses) == {202, 503}


def test_with_a_token_publish_needs_it(serve, redis_url, meshctl, queued):
    served = serve(ARENA, "--store", redis_url, "--port", "0", env={"MESHCTL_TOKEN": "s3cret"})
    refused = meshctl("publish", ARENA, EVENTS, "--url", served.url)
    assert refused.exit_code == 1
    assert "refused events 1-32 with HTTP 401 Unauthorized: missing token" in refused.output
    accepted = meshctl("publish", ARENA, EVENTS, "--url", served.url, "--token", "s3cret")
    assert accepted.exit_code == 0 and len(queued(redis_url)) == 32


def test_insecure_listens_on_every_interface(serve, redis_url):
    served = serve(ARENA, "--store", redis_url, "--port", "0", "--host", "0.0.0.0", "--insecure")
    port = urlsplit(served.url).port
    assert served.url == f"http://0.0.0.0:{port}"
    assert get(f"http://127.0.0.1:{port}/healthz")[0] == 200
    assert served.stop()[0] == 0


def test_sigterm_answers_the_request_in_hand_before_it_stops(serve, redis_url, queued):
    """A request whose body is still arriving when SIGTERM comes is read, queued and answered
    202; then the server exits 0 (the drain waits up to 5 s)."""
    served = serve(ARENA, "--store", redis_url, "--port", "0")
    event = json.dumps(json.loads(EVENTS.read_text().splitlines()[0])).encode()
    parts = urlsplit(served.url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    connection.putrequest("POST", "/events")
    connection.putheader("Content-Type", "application/cloudevents+json")
    connection.putheader("Content-Length", str(len(event)))
    connection.endheaders(event[:10])
    assert get(f"{served.url}/healthz")[0] == 200  # answered after the first request's headers were read
    served.proc.send_signal(signal.SIGTERM)
    connection.send(event[10:])
    answer = connection.getresponse()
    assert answer.status == 202 and json.loads(answer.read())["accepted"] == 1
    code, stderr = served.stop()
    assert code == 0 and stderr.rstrip().endswith("meshctl serve: stopped"), stderr
    assert [e["id"] for e in queued(redis_url)] == [json.loads(event)["id"]]
