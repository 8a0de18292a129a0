"""HTTP calls that return: `call: {http: URL, method, body}` against a local server, through
`meshctl run --http live`. The answer is the action's output (`{status, body}`), read by later
actions as `response` and by later orchestration steps as `steps.ID.output`; every request
carries an `Idempotency-Key` that a retried attempt repeats."""
from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler

import pytest
from localhttp import serving, url_of


class _Service(BaseHTTPRequestHandler):
    """Answers each request with the next of ``script[path]`` (the last one repeats)."""

    script: dict = {}
    seen: list = []

    def _answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        type(self).seen.append({
            "method": self.command, "path": self.path, "key": self.headers.get("Idempotency-Key"),
            "type": self.headers.get("Content-Type"), "body": json.loads(body) if body else None,
        })
        answers = type(self).script.get(self.path, [(200, "application/json", b"{}")])
        count = sum(1 for s in type(self).seen if s["path"] == self.path)
        status, content_type, payload = answers[min(count, len(answers)) - 1]
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _answer  # noqa: N815 - the http.server API

    def log_message(self, *args):
        pass


@pytest.fixture
def service():
    _Service.script, _Service.seen = {}, []
    with serving(_Service) as server:
        yield url_of(server), _Service


TYPES = """
apiVersion: meshctl/v1
kind: EventType
metadata: {name: order.placed}
spec: {external: true}
---
apiVersion: meshctl/v1
kind: EventType
metadata: {name: order.priced}
---
"""

RETRY = "{retry: {max_attempts: 3, initial: 1s, jitter: none}}"


def _run(meshctl, write, tmp_path, spec: str, *extra: str, events: int = 1) -> tuple[dict, list[dict]]:
    mesh = write(TYPES + spec)
    lines = [json.dumps({"id": f"o{i}", "type": "order.placed", "data": {"sku": f"s{i}", "n": 2}})
             for i in range(1, events + 1)]
    (tmp_path / "e.jsonl").write_text("\n".join(lines) + "\n")
    out = tmp_path / "out.jsonl"
    result = meshctl("run", mesh, "--events", tmp_path / "e.jsonl", "--output", out, "--format", "json",
                     *extra)
    assert result.exit_code in (0, 1), result.output
    emitted = [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []
    return json.loads(result.stdout), emitted


def _service(do: str, delivery: str = RETRY) -> str:
    return f"""
apiVersion: meshctl/v1
kind: Service
metadata: {{name: pricing}}
spec:
  subscriptions:
    - on: order.placed
      emits: [order.priced]
      delivery: {delivery}
      do:
{do}
"""


def test_a_later_step_reads_the_json_answer_of_a_call(meshctl, write, tmp_path, service):
    url, svc = service
    svc.script["/quote/s1"] = [(200, "application/json", b'{"price": {"amount": 7, "cur": "EUR"}}')]
    spec = f"""
apiVersion: meshctl/v1
kind: Orchestration
metadata: {{name: price-order}}
spec:
  trigger: {{on: order.placed}}
  steps:
    - id: quote
      do: {{call: {{http: "{url}/quote/s1", method: GET}}}}
    - id: price
      needs: [quote]
      emits: [order.priced]
      do:
        emit:
          type: order.priced
          data:
            amount: "{{{{ steps.quote.output.body.price.amount * input.n }}}}"
            status: "{{{{ steps.quote.output.status }}}}"
"""
    summary, emitted = _run(meshctl, write, tmp_path, spec, "--http", "live")
    assert summary["dead_lettered"] == 0
    assert [e["data"] for e in emitted] == [{"amount": 14, "status": 200}]
    assert [(s["method"], s["body"], s["type"]) for s in svc.seen] == [("GET", None, None)]


def test_an_emit_after_a_call_reads_its_answer_as_response(meshctl, write, tmp_path, service):
    url, svc = service
    svc.script["/orders"] = [(201, "application/json; charset=utf-8", b'{"id": "ord-9"}')]
    do = f"""
        - call:
            http: "{url}/orders"
            body: {{sku: "{{{{ data.sku }}}}", n: "{{{{ data.n }}}}"}}
        - emit:
            type: order.priced
            data: {{ref: "{{{{ response.body.id }}}}", code: "{{{{ response.status }}}}"}}
"""
    summary, emitted = _run(meshctl, write, tmp_path, _service(do), "--http", "live")
    assert [e["data"] for e in emitted] == [{"ref": "ord-9", "code": 201}]
    [request] = svc.seen
    assert (request["method"], request["type"], request["body"]) == (
        "POST", "application/json", {"sku": "s1", "n": 2})


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "PATCH", "DELETE"])
def test_methods_and_which_send_a_body(meshctl, write, tmp_path, service, method):
    url, svc = service
    do = f"""        - call: {{http: "{url}/thing", method: {method}}}"""
    summary, _ = _run(meshctl, write, tmp_path, _service(do), "--http", "live")
    assert summary["dead_lettered"] == 0
    [request] = svc.seen
    assert request["method"] == method
    if method in ("GET", "DELETE"):
        assert (request["body"], request["type"]) == (None, None)
    else:  # no `body:`: the event itself, as a structured CloudEvent (what POST always sent)
        assert request["type"] == "application/cloudevents+json"
        assert (request["body"]["id"], request["body"]["data"]) == ("o1", {"sku": "s1", "n": 2})


def test_a_get_with_a_body_is_refused_by_validate(meshctl, write, tmp_path):
    do = '        - call: {http: "http://127.0.0.1:1/x", method: GET, body: {a: 1}}'
    path = write(TYPES + _service(do))
    result = meshctl("validate", path)
    assert result.exit_code == 1
    assert "mesh.yaml:20:17: error[bad-value]: spec.subscriptions[0].do[0].call: `body` is not allowed " \
        "with GET or DELETE" in result.output


def test_the_idempotency_key_is_the_same_on_every_attempt_of_a_delivery(meshctl, write, tmp_path, service):
    url, svc = service
    svc.script["/a"] = [(503, "text/plain", b"busy"), (200, "application/json", b'{"ok": true}')]
    do = f"""        - call: {{http: "{url}/a"}}
        - call: {{http: "{url}/b"}}"""
    summary, _ = _run(meshctl, write, tmp_path, _service(do), "--http", "live", events=2)
    assert summary["dead_lettered"] == 0
    keys = {}
    for request in svc.seen:
        keys.setdefault((request["body"]["id"], request["path"]), []).append(request["key"])
    # the first request (o1's) is answered 503: o1's attempt runs again, and sends /a twice
    assert {k: len(v) for k, v in keys.items()} == {
        ("o1", "/a"): 2, ("o1", "/b"): 1, ("o2", "/a"): 1, ("o2", "/b"): 1,
    }
    assert all(len(set(v)) == 1 and len(v[0]) == 64 for v in keys.values())  # equal across retries
    assert len({v[0] for v in keys.values()}) == 4  # and distinct per event and per action


def test_a_route_to_http_sends_an_idempotency_key_too(meshctl, write, tmp_path, service):
    url, svc = service
    svc.script["/hook"] = [(503, "text/plain", b"busy"), (200, "text/plain", b"")]
    spec = f"""
apiVersion: meshctl/v1
kind: Route
metadata: {{name: out}}
spec:
  from: [order.placed]
  to: [{{http: "{url}/hook"}}]
  delivery: {RETRY}
"""
    summary, _ = _run(meshctl, write, tmp_path, spec, "--http", "live")
    assert summary["dead_lettered"] == 0
    first, second = svc.seen
    assert first["key"] == second["key"] and len(first["key"]) == 64


def test_a_header_template_may_set_its_own_idempotency_key(meshctl, write, tmp_path, service):
    url, svc = service
    do = f"""        - call: {{http: "{url}/a", headers: {{Idempotency-Key: "order-{{{{ data.sku }}}}"}}}}"""
    _run(meshctl, write, tmp_path, _service(do), "--http", "live")
    assert [s["key"] for s in svc.seen] == ["order-s1"]


def test_a_non_json_answer_is_kept_as_text(meshctl, write, tmp_path, service):
    url, svc = service
    svc.script["/t"] = [(200, "text/plain; charset=utf-8", "ok: déjà".encode())]
    do = f"""        - call: {{http: "{url}/t", method: GET}}
        - emit: {{type: order.priced, data: {{said: "{{{{ response.body }}}}"}}}}"""
    _, emitted = _run(meshctl, write, tmp_path, _service(do), "--http", "live")
    assert [e["data"] for e in emitted] == [{"said": "ok: déjà"}]


@pytest.mark.parametrize(("content_type", "payload", "error"), [
    ("text/plain", b"x" * ((1 << 20) + 1), "HttpAnswerTooLarge"),
    ("application/json", b"{not json", "HttpBadAnswer"),
])
def test_an_unusable_answer_fails_without_retry(meshctl, write, tmp_path, service, content_type, payload,
                                                error):
    url, svc = service
    svc.script["/t"] = [(200, content_type, payload)]
    do = f"""        - call: {{http: "{url}/t", method: GET}}"""
    dlq = tmp_path / "dlq.jsonl"
    summary, _ = _run(meshctl, write, tmp_path, _service(do), "--http", "live", "--dlq-out", dlq)
    assert summary["dead_lettered"] == 1 and len(svc.seen) == 1
    assert error in dlq.read_text()


@pytest.mark.parametrize(("status", "requests"), [(400, 1), (404, 1), (429, 3), (500, 3), (503, 3)])
def test_a_4xx_is_not_retried_and_a_5xx_or_429_is(meshctl, write, tmp_path, service, status, requests):
    url, svc = service
    svc.script["/f"] = [(status, "application/json", b'{"error": "no"}')]
    do = f"""        - call: {{http: "{url}/f"}}"""
    summary, _ = _run(meshctl, write, tmp_path, _service(do), "--http", "live")
    assert summary["dead_lettered"] == 1 and len(svc.seen) == requests


def test_simulate_sends_nothing_and_answers_202_with_no_body(meshctl, write, tmp_path, service):
    url, svc = service
    do = f"""        - call: {{http: "{url}/a", method: PUT}}
        - emit:
            type: order.priced
            data: {{code: "{{{{ response.status }}}}", body: "{{{{ response.body }}}}"}}"""
    summary, emitted = _run(meshctl, write, tmp_path, _service(do))
    assert svc.seen == [] and summary["dead_lettered"] == 0
    assert [e["data"] for e in emitted] == [{"code": 202, "body": None}]
