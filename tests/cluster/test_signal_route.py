"""`POST /runs/{run}/signals/{name}` of the ingress: who may signal, and what each refusal says.

The deployment side (finding the run, queueing the signal) is a function the ingress is
given; here it is a stand-in that records the calls. tests/cluster/test_waits_workers.py
runs the route against `meshctl serve` and two workers."""
from __future__ import annotations

import json

import pytest
from test_ingress import asgi

from engine.cluster.ingress import Ingress
from engine.core.errors import RunStateError, UsageError

RUN = "collect-payment:co-3@/shop/checkout"
PATH = "/runs/collect-payment:co-3@/shop/checkout/signals/approve"  # as ASGI gives it: decoded


class Deployment:
    def __init__(self):
        self.calls: list[tuple] = []

    def signal(self, run, name, data, by):
        self.calls.append((run, name, data, by))
        if run != RUN:
            raise UsageError(f"no run {run!r}")
        if by not in ("alice", "bob"):
            raise RunStateError(f"signal {name!r} of run {run!r} is an approval by one of alice, bob")
        return {"id": run}


class _Queue:
    def ingest(self, events):
        return []

    def ping(self):
        return True

    def backlog(self):
        return 0


@pytest.fixture
def post():
    """``post(path, body, bearer, **ingress options)`` -> (status, JSON answer); ``post.calls``."""
    deployment = Deployment()

    def _post(path=PATH, body=None, bearer=None, **options):
        app = Ingress(None, _Queue(), signals=deployment.signal, **options)
        headers = {"content-type": "application/json"}
        if bearer:
            headers["authorization"] = f"Bearer {bearer}"
        try:
            data = json.dumps(body).encode() if body else b""
            status, _, answer, _ = asgi(app, "POST", path, data, headers)
        finally:
            app.close()
        return status, json.loads(answer)
    _post.calls = deployment.calls
    return _post


TOKENS = {"token": "shared", "principals": {"tok-a": "alice", "tok-e": "eve"}}


def test_a_principal_signals_as_itself(post):
    status, answer = post(body={"data": {"note": "ok"}}, bearer="tok-a", **TOKENS)
    assert (status, answer) == (202, {"run": RUN, "signal": "approve", "by": "alice", "queued": 1})
    assert post.calls == [(RUN, "approve", {"note": "ok"}, "alice")]


def test_with_the_shared_token_the_body_says_who(post):
    status, answer = post(body={"by": "bob"}, bearer="shared", **TOKENS)
    assert status == 202 and answer["by"] == "bob"


def test_a_principal_cannot_claim_to_be_another(post):
    status, answer = post(body={"by": "alice"}, bearer="tok-e", **TOKENS)
    assert status == 403 and "'eve'" in answer["detail"] and not post.calls


@pytest.mark.parametrize(("bearer", "status"), [(None, 401), ("wrong", 401)])
def test_without_a_valid_token_nothing_is_signalled(post, bearer, status):
    assert post(body={"by": "bob"}, bearer=bearer, **TOKENS)[0] == status
    assert not post.calls


def test_no_such_run_is_404_and_a_refused_signal_409(post):
    status, answer = post(path="/runs/collect-payment:co-9/signals/approve", body={"by": "bob"}, **{})
    assert status == 404 and "no run" in answer["detail"]
    status, answer = post(body={"by": "carol"})
    assert status == 409 and "approval by one of alice, bob" in answer["detail"]


@pytest.mark.parametrize(("body", "detail"), [
    (["x"], 'a JSON object with "data" and/or "by"'),
    ({"by": 3}, '"by" must be a string'),
    ({"data": 1, "who": "x"}, 'a JSON object with "data" and/or "by"'),
])
def test_a_bad_body_is_400(post, body, detail):
    status, answer = post(body=body)
    assert status == 400 and detail in answer["detail"]


def test_a_path_without_a_signal_name_is_404(post):
    assert post(path="/runs/x/signals/")[0] == 404


def test_without_a_signals_function_there_is_no_such_route():
    app = Ingress(None, _Queue())
    try:
        status, _, answer, _ = asgi(app, "POST", PATH, b"", {})
    finally:
        app.close()
    assert status == 404
