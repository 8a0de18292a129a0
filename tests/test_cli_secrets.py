"""`{{ secrets.NAME }}` in the URL and headers of HTTP requests: the value reaches the server
(a local one on 127.0.0.1), and nothing meshctl writes holds it, only `***`: the trace, the
emitted events (`--output`), the dead letters (`--dlq-out`), the store, the summary, error
messages, diagrams. `validate` refuses `secrets` anywhere else."""
from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from localhttp import serving, url_of

TOKEN = "tok-9f8e7d6c5b4a-SECRET"
SIG = "p@ss w/rd+1"  # sent URL-encoded: the encoded form must not show either
LEAKS = (TOKEN, SIG, "p%40ss%20w/rd%2B1", "p%40ss%20w%2Frd%2B1", "p%40ss+w%2Frd%2B1")


class _Echo(BaseHTTPRequestHandler):
    """Answers 500 on paths starting /fail, else 200 with the request's path and headers echoed
    back as JSON (a server that repeats what it was sent: the worst case for a secret)."""

    seen: list = []

    def _answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        type(self).seen.append({"path": self.path, "auth": self.headers.get("Authorization")})
        status = 500 if self.path.startswith("/fail") else 200
        payload = json.dumps({"path": self.path, "headers": dict(self.headers)}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = _answer  # noqa: N815 - the http.server API

    def log_message(self, *args):
        pass


@pytest.fixture
def echo():
    _Echo.seen = []
    with serving(_Echo) as server:
        yield url_of(server), _Echo


@pytest.fixture
def secret_env(monkeypatch):
    monkeypatch.setenv("MESHCTL_SECRET_API_TOKEN", TOKEN)
    monkeypatch.setenv("MESHCTL_SECRET_SIG", SIG)


TYPES = """
apiVersion: meshctl/v1
kind: EventType
metadata: {name: order.placed}
spec: {external: true}
---
apiVersion: meshctl/v1
kind: EventType
metadata: {name: order.sent}
---
"""

RETRY = "{retry: {max_attempts: 2, initial: 1s, jitter: none}}"
QUERY = "t={{ secrets.API_TOKEN }}&sig={{ secrets.SIG | urlencode }}"


def _service(url: str, path: str) -> str:
    """A subscription that calls *path* with the token in a header and both secrets in the URL,
    then emits and keeps (`set`) the answer, which echoes them back."""
    return f"""
apiVersion: meshctl/v1
kind: Service
metadata: {{name: sender}}
spec:
  subscriptions:
    - on: order.placed
      emits: [order.sent]
      delivery: {RETRY}
      do:
        - call:
            http: "{url}{path}/{{{{ data.id }}}}?{QUERY}"
            headers: {{Authorization: "Bearer {{{{ secrets.API_TOKEN }}}}"}}
        - set: {{answer: "{{{{ response.body }}}}"}}
        - emit: {{type: order.sent, data: "{{{{ response.body }}}}"}}
"""


def _run(meshctl, write, tmp_path: Path, spec: str, *extra: str) -> tuple[object, list[Path]]:
    mesh = write(TYPES + spec)
    event = {"id": "o1", "type": "order.placed", "data": {"id": "o1"}}
    (tmp_path / "e.jsonl").write_text(json.dumps(event) + "\n")
    written = [tmp_path / name for name in ("trace.jsonl", "out.jsonl", "dlq.jsonl")]
    result = meshctl("run", mesh, "--events", tmp_path / "e.jsonl", "--trace", written[0],
                     "--output", written[1], "--dlq-out", written[2],
                     "--store", f"sqlite:{tmp_path / 'run.db'}", *extra)
    assert result.exit_code == 0, result.output
    return result, written


def _assert_nowhere(result, tmp_path: Path) -> None:
    """No secret value, plain or URL-encoded, in any file of the run nor in what it printed."""
    for leak in LEAKS:
        assert leak not in result.output
        for path in tmp_path.rglob("*"):
            if path.is_file() and path.suffix != ".env":
                assert leak.encode() not in path.read_bytes(), (leak, path.name)


def test_secrets_reach_the_server_in_a_header_and_the_url_and_nothing_written(
        meshctl, write, tmp_path, echo, secret_env):
    url, server = echo
    result, (trace, out, _) = _run(meshctl, write, tmp_path, _service(url, "/hook"), "--http", "live")
    [request] = server.seen
    assert request["auth"] == f"Bearer {TOKEN}"
    assert request["path"] == f"/hook/o1?t={TOKEN}&sig=p%40ss%20w/rd%2B1"
    [sent] = [json.loads(line) for line in out.read_text().splitlines()]
    # the echoed answer is the call's output, `response`, a variable and an event: masked in each
    assert sent["data"]["headers"]["Authorization"] == "Bearer ***"
    assert sent["data"]["path"] == "/hook/o1?t=***&sig=***"
    records = [json.loads(line) for line in trace.read_text().splitlines()]
    assert f"{url}/hook/o1?t=***&sig=***" in json.dumps(records)
    _assert_nowhere(result, tmp_path)


def test_a_failing_call_says_its_url_with_the_secrets_masked(meshctl, write, tmp_path, echo, secret_env):
    url, server = echo
    result, (trace, _, dlq) = _run(meshctl, write, tmp_path, _service(url, "/fail"), "--http", "live")
    assert len(server.seen) == 2  # retried, then dead-lettered
    [letter] = [json.loads(line) for line in dlq.read_text().splitlines()]
    assert letter["error_type"] == "HttpError"
    assert letter["error"] == f"POST {url}/fail/o1?t=***&sig=*** answered 500"
    _assert_nowhere(result, tmp_path)
    for form in ("mermaid", "html"):  # a drawing of the run's trace
        drawn = meshctl("render", "--trace", trace, "--format", form)
        assert drawn.exit_code == 0 and all(leak not in drawn.output for leak in LEAKS)


def test_an_unreachable_url_holding_a_secret_is_masked_too(meshctl, write, tmp_path, secret_env):
    spec = _service("http://127.0.0.1:9", "/x")  # nothing listens there
    result, (_, _, dlq) = _run(meshctl, write, tmp_path, spec, "--http", "live")
    [letter] = [json.loads(line) for line in dlq.read_text().splitlines()]
    assert letter["error_type"] == "HttpUnreachable"
    assert letter["error"].startswith("POST http://127.0.0.1:9/x/o1?t=***&sig=***: ")
    _assert_nowhere(result, tmp_path)


def test_a_route_posts_to_a_url_with_a_secret(meshctl, write, tmp_path, echo, secret_env):
    url, server = echo
    spec = f"""
apiVersion: meshctl/v1
kind: Route
metadata: {{name: out}}
spec:
  from: [order.placed]
  to: [{{http: "{url}/fail/{{{{ data.id }}}}?t={{{{ secrets.API_TOKEN }}}}"}}]
  delivery: {RETRY}
"""
    result, (trace, _, dlq) = _run(meshctl, write, tmp_path, spec, "--http", "live")
    assert [r["path"] for r in server.seen] == [f"/fail/o1?t={TOKEN}"] * 2
    [letter] = [json.loads(line) for line in dlq.read_text().splitlines()]
    assert letter["error"] == f"POST {url}/fail/o1?t=*** answered 500"
    _assert_nowhere(result, tmp_path)


def test_an_orchestration_step_output_keeps_no_secret(meshctl, write, tmp_path, echo, secret_env):
    url, _ = echo
    spec = f"""
apiVersion: meshctl/v1
kind: Orchestration
metadata: {{name: send}}
spec:
  trigger: {{on: order.placed}}
  steps:
    - id: call
      do:
        call:
          http: "{url}/hook"
          method: GET
          headers: {{X-Token: "{{{{ secrets.API_TOKEN }}}}"}}
    - id: tell
      needs: [call]
      emits: [order.sent]
      do: {{emit: {{type: order.sent, data: "{{{{ steps.call.output.body.headers }}}}"}}}}
"""
    result, (_, out, _) = _run(meshctl, write, tmp_path, spec, "--http", "live")
    [sent] = [json.loads(line) for line in out.read_text().splitlines()]
    assert sent["data"]["X-Token"] == "***"
    shown = meshctl("runs", "list", "--store", f"sqlite:{tmp_path / 'run.db'}")
    assert TOKEN not in shown.output
    _assert_nowhere(result, tmp_path)


def test_a_missing_secret_fails_the_attempt_naming_it_and_where_to_set_it(
        meshctl, write, tmp_path, echo, monkeypatch):
    url, server = echo
    monkeypatch.delenv("MESHCTL_SECRET_API_TOKEN", raising=False)
    monkeypatch.setenv("MESHCTL_SECRET_SIG", SIG)
    result, (_, _, dlq) = _run(meshctl, write, tmp_path, _service(url, "/hook"), "--http", "live")
    assert server.seen == []  # nothing was sent
    [letter] = [json.loads(line) for line in dlq.read_text().splitlines()]
    assert (letter["error_type"], letter["attempts"]) == ("SecretMissing", 1)  # never retried
    assert letter["error"] == ("secret 'API_TOKEN' is not defined: set the environment variable "
                                "MESHCTL_SECRET_API_TOKEN")
    _assert_nowhere(result, tmp_path)


def test_simulate_reads_no_secret_and_shows_the_url_masked(meshctl, write, tmp_path, monkeypatch):
    monkeypatch.delenv("MESHCTL_SECRET_API_TOKEN", raising=False)
    result, (trace, _, dlq) = _run(meshctl, write, tmp_path, _service("https://api.example.com", "/hook"))
    assert dlq.read_text() == ""
    assert "https://api.example.com/hook/o1?t=***&sig=***" in trace.read_text()


def test_a_secrets_file_and_the_environment_winning_over_it(meshctl, write, tmp_path, echo, monkeypatch):
    url, server = echo
    (tmp_path / "secrets.env").write_text(f"# for the hook\n\nAPI_TOKEN = \"{TOKEN}\"\nSIG=from-file\n")
    monkeypatch.setenv("HOOK_SIG", SIG)
    settings = """
apiVersion: meshctl/v1
kind: Mesh
metadata: {name: shop}
spec: {secrets: {env: HOOK_, file: secrets.env}}
---
"""
    result, _ = _run(meshctl, write, tmp_path, settings + _service(url, "/hook"), "--http", "live")
    [request] = server.seen
    assert request["auth"] == f"Bearer {TOKEN}"
    assert request["path"].endswith("&sig=p%40ss%20w/rd%2B1")  # HOOK_SIG, not the file's
    _assert_nowhere(result, tmp_path)


def test_a_malformed_secrets_file_names_its_line_not_its_text(meshctl, write, tmp_path, echo):
    url, _ = echo
    (tmp_path / "secrets.env").write_text(f"API_TOKEN={TOKEN}\n{SIG}\n")
    settings = """
apiVersion: meshctl/v1
kind: Mesh
metadata: {name: shop}
spec: {secrets: {env: false, file: secrets.env}}
---
"""
    result, (_, _, dlq) = _run(meshctl, write, tmp_path, settings + _service(url, "/hook"), "--http", "live")
    [letter] = [json.loads(line) for line in dlq.read_text().splitlines()]
    assert letter["error"] == "secrets.env:2: expected NAME=VALUE, with NAME letters, digits and `_`"
    _assert_nowhere(result, tmp_path)


def test_a_diagram_draws_the_template_never_a_value(meshctl, write, tmp_path, secret_env):
    mesh = write(TYPES + _service("https://api.example.com", "/hook"))
    drawn = meshctl("render", mesh)
    assert drawn.exit_code == 0
    assert "secrets.API_TOKEN" in drawn.output and TOKEN not in drawn.output


BAD = """
apiVersion: meshctl/v1
kind: Service
metadata: {{name: s}}
spec:
  subscriptions:
    - on: order.placed
      emits: [order.sent]
      when: {when}
      do:
        - call: {{http: "https://x.example.com/{{{{ data.id }}}}", headers: {{A: "{header}"}}}}
        - emit: {{type: order.sent, subject: "{subject}"}}
"""


@pytest.mark.parametrize(("when", "header", "subject", "expect"), [
    ('"true"', "{{ secrets.T }}", "{{ secrets.T }}", (21, 45, "secret-outside-request")),
    ('"secrets.T == 1"', "{{ secrets.T }}", "s", (18, 13, "secret-outside-request")),
    ('"true"', "{{ secrets[data.k] }}", "s", (20, 76, "secret-by-name")),
    ('"true"', "{{ secrets }}", "s", (20, 76, "secret-by-name")),
])
def test_validate_refuses_secrets_outside_a_request_or_not_by_name(
        diagnostics, write, when, header, subject, expect):
    path = write(TYPES + BAD.format(when=when, header=header, subject=subject))
    assert expect + ("error",) in [(line, col, code, sev) for line, col, sev, code in diagnostics(path)]


def test_validate_accepts_secrets_in_urls_and_headers(meshctl, write):
    spec = _service("https://api.example.com", "/hook") + f"""
---
apiVersion: meshctl/v1
kind: Route
metadata: {{name: out}}
spec:
  from: [order.placed]
  to: [{{http: "https://hooks.example.com/{{{{ secrets['HOOK'] }}}}"}}]
  delivery: {RETRY}
"""
    result = meshctl("validate", write(TYPES + spec))
    assert result.exit_code == 0, result.output
