"""Wait steps on two `meshctl worker` processes sharing one Redis store (issue #19).

The example `workflows/payments` (its payment timeout cut to seconds) runs on the real clock:
a confirmed payment resumes its run on whichever worker holds the run, an unpaid order times
out and is compensated, a run waiting for an approval is cancelled with `meshctl runs cancel`,
another approved with `meshctl runs signal`, a third over HTTP (`meshctl serve`, as the
principal whose token it sends). The webhooks are published once their runs wait:
an event is not kept for a run that waits for it later.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import quote

import pytest

pytestmark = pytest.mark.slow  # two workers on the real clock, and a timeout to wait out

REPO = Path(__file__).resolve().parents[2]
TIMEOUT = 8  # seconds the example waits for a payment here (30m in the example)


def _checkout(n: int, amount: float) -> dict:
    return {"specversion": "1.0", "id": f"co-{n}", "source": "/shop/checkout", "type": "checkout.submitted",
            "subject": f"ord-{n}", "data": {"order_id": f"ord-{n}", "amount": amount, "currency": "EUR"}}


def _paid(n: int, amount: float) -> dict:
    return {"specversion": "1.0", "id": f"pay-{n}", "source": "/psp/webhooks", "type": "payment.confirmed",
            "subject": f"psp-{n}",
            "data": {"order_id": f"ord-{n}", "amount": amount, "provider_ref": f"psp-{n}"}}


@pytest.fixture
def mesh(tmp_path) -> Path:
    path = tmp_path / "payments"
    shutil.copytree(REPO / "workflows" / "payments", path)
    text = (path / "collect-payment.yaml").read_text()
    assert "timeout: 30m" in text
    (path / "collect-payment.yaml").write_text(text.replace("timeout: 30m", f"timeout: {TIMEOUT}s"))
    return path


def _publish(meshctl, mesh: Path, store: str, tmp_path: Path, *events: dict) -> None:
    path = tmp_path / f"events-{events[0]['id']}.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    result = meshctl("publish", mesh, path, "--store", store)
    assert result.exit_code == 0, result.output


def _runs(meshctl, store: str) -> dict[str, dict]:
    result = meshctl("runs", "list", "--store", store, "--format", "json")
    assert result.exit_code == 0, result.output
    return {r["event"]["data"]["order_id"]: r for r in json.loads(result.output)}


def _until(meshctl, store: str, check, what: str, within: float = 60.0) -> dict[str, dict]:
    deadline = time.monotonic() + within
    while True:
        runs = _runs(meshctl, store)
        if check(runs):
            return runs
        if time.monotonic() > deadline:
            seen = {k: (r["status"], {s: v["status"] for s, v in r["steps"].items()})
                    for k, r in runs.items()}
            raise AssertionError(f"not {what} within {within}s: {json.dumps(seen)}")
        time.sleep(0.2)


def _post(url: str, token: str | None, body: dict | None = None) -> tuple[int, dict]:
    headers = {"Content-Type": "application/json"} | ({"Authorization": f"Bearer {token}"} if token else {})
    request = urllib.request.Request(url, json.dumps(body or {}).encode(), headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _waiting_at(step: str, *orders: str):
    return lambda runs: all(o in runs and runs[o]["status"] == "waiting"
                            and runs[o]["steps"][step]["status"] == "waiting" for o in orders)


@pytest.mark.parametrize("server", ["redis_url", "redis_cluster_url"])
def test_two_workers_confirm_time_out_cancel_and_approve(server, request, mesh, meshctl, serve, tmp_path):
    """On one Redis server, and on a Redis Cluster (where a wait's tasks for the partitions of
    its correlation key and of its run go through their unit's partition outbox)."""
    redis_url = request.getfixturevalue(server)
    served = serve(mesh, "--store", redis_url, "--port", "0", "--token", "shared", "--principal", "bob=tok-b")
    command = [sys.executable, "-c", "import sys; from cli import main; sys.exit(main())", "worker",
               str(mesh), "--store", redis_url, "--format=json"]
    workers = [subprocess.Popen([*command, "--name", name], cwd=REPO, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True) for name in ("w1", "w2")]
    try:
        _publish(meshctl, mesh, redis_url, tmp_path, _checkout(1, 40.0), _checkout(2, 75.5),
                 _checkout(3, 1500.0), _checkout(4, 2400.0), _checkout(5, 3100.0))
        _until(meshctl, redis_url, _waiting_at("await_payment", "ord-1", "ord-2", "ord-3", "ord-4", "ord-5"),
               "waiting for their payments")
        _publish(meshctl, mesh, redis_url, tmp_path, _paid(1, 40.0), _paid(3, 1500.0), _paid(4, 2400.0),
                 _paid(5, 3100.0))
        _until(meshctl, redis_url, _waiting_at("approve", "ord-3", "ord-4", "ord-5"), "waiting for approval")
        signals = f"{served.url}/runs/{quote('collect-payment:co-5@/shop/checkout', safe='')}/signals/approve"
        assert _post(signals, None)[0] == 401
        status, problem = _post(signals, "shared", {"by": "eve"})
        assert status == 409 and "not 'eve'" in problem["detail"], problem
        status, problem = _post(signals, "tok-b", {"by": "alice"})
        assert status == 403, problem  # bob's token cannot approve as alice
        missing = f"{served.url}/runs/collect-payment%3Aco-9/signals/approve"
        assert _post(missing, "shared")[0] == 404
        status, answer = _post(signals, "tok-b", {"data": {"note": "ok"}})
        assert (status, answer["by"], answer["queued"]) == (202, "bob", 1), answer
        refused = meshctl("runs", "signal", "collect-payment:co-4", "approve", "--by", "eve",
                          "--store", redis_url)
        assert refused.exit_code == 3, refused.output
        cancel = meshctl("runs", "cancel", "collect-payment:co-3", "--compensate", "--by", "ops",
                         "--store", redis_url)
        assert cancel.exit_code == 0 and "cancel queued" in cancel.output, cancel.output
        signal = meshctl("runs", "signal", "collect-payment:co-4", "approve", "--by", "alice",
                         "--store", redis_url)
        assert signal.exit_code == 0 and "signal queued" in signal.output, signal.output
        runs = _until(meshctl, redis_url,
                      lambda r: all(r[o]["status"] not in ("running", "waiting") for o in r) and len(r) == 5,
                      "all ended", within=TIMEOUT + 60)
    finally:
        for proc in workers:
            proc.terminate()
        outputs = [proc.communicate(timeout=60) for proc in workers]
    assert [proc.returncode for proc in workers] == [0, 0], [err[-2000:] for _, err in outputs]
    assert {o: r["status"] for o, r in runs.items()} == {
        "ord-1": "completed", "ord-2": "compensated", "ord-3": "cancelled", "ord-4": "completed",
        "ord-5": "completed"}
    assert runs["ord-1"]["steps"]["await_payment"]["output"]["provider_ref"] == "psp-1"
    assert "WaitTimeout" in runs["ord-2"]["error"] and runs["ord-2"]["compensated"] == ["hold_stock"]
    assert runs["ord-3"]["error"] == "cancelled by ops" and runs["ord-3"]["compensated"] == ["hold_stock"]
    assert runs["ord-4"]["steps"]["approve"]["output"]["by"] == "alice"
    assert runs["ord-5"]["steps"]["approve"]["output"] | {"at": None} == {
        "signal": "approve", "by": "bob", "at": None, "data": {"note": "ok"}}
    status = json.loads(meshctl("status", mesh, "--store", redis_url, "--format=json").stdout)
    summary = status["summary"]
    assert summary["runs_started"] == 5 and summary["runs_completed"] == 3
    assert summary["runs_compensated"] == 1 and summary["runs_cancelled"] == 1
    assert summary["dead_lettered"] == 0
