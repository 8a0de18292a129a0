"""Wait steps, signals, approvals, run timeouts and cancellation (issue #19), through the CLI.

The example `workflows/payments` waits for the `payment.confirmed` webhook for 30 minutes:
on the virtual clock of `meshctl run` the confirmed and the timed-out paths run in a few
milliseconds, and a run left waiting (an approval) is signalled or cancelled afterwards with
`meshctl runs signal|cancel` on the run's SQLite store. tests/cluster/test_waits_workers.py
runs the same paths on two workers.
"""
from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from engine.core.eventtime import format as iso
from engine.core.eventtime import parse

REPO = Path(__file__).resolve().parent.parent
PAYMENTS = REPO / "workflows" / "payments"


def _event(eid: str, etype: str, time: str, **data) -> dict:
    return {"specversion": "1.0", "id": eid, "source": "/t", "type": etype, "time": time, "data": data}


def _write_events(path: Path, *events: dict) -> Path:
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    return path


def _runs(meshctl, store: str) -> dict[str, dict]:
    result = meshctl("runs", "list", "--store", store, "--format", "json")
    assert result.exit_code == 0, result.output
    return {r["event"]["data"].get("order_id", r["id"]): r for r in json.loads(result.output)}


@pytest.fixture
def paid(meshctl, tmp_path):
    """The example run on its own events, into a SQLite store: (store URL, trace, emitted)."""
    store = f"sqlite:{tmp_path / 'pay.db'}"
    result = meshctl("run", PAYMENTS, "--events", PAYMENTS / "events.jsonl", "--store", store,
                     "--trace", tmp_path / "trace.jsonl", "--output", tmp_path / "out.jsonl")
    assert result.exit_code == 0, result.output
    trace = [json.loads(line) for line in (tmp_path / "trace.jsonl").read_text().splitlines()]
    emitted = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    return store, trace, emitted


def test_a_confirmed_payment_resumes_its_run_with_the_event_data(paid, meshctl):
    store, trace, emitted = paid
    runs = _runs(meshctl, store)
    assert runs["ord-1"]["status"] == "completed"
    step = runs["ord-1"]["steps"]["await_payment"]
    assert step["output"] == {"order_id": "ord-1", "amount": 40.0, "provider_ref": "psp-881"}
    assert step["received"]["event"] == "pay-1"
    paid_event = next(e for e in emitted if e["type"] == "order.paid" and e["data"]["order_id"] == "ord-1")
    assert paid_event["data"]["provider_ref"] == "psp-881"
    assert paid_event["time"] == "2026-03-02T10:04:30Z"  # the wait ends at the awaited event's time
    ends = [r for r in trace if r["kind"] == "wait-end" and r["run"] == runs["ord-1"]["id"]]
    assert [r["by"] for r in ends] == ["event"]


def test_an_unpaid_order_times_out_at_virtual_time_and_releases_its_stock(paid, meshctl):
    store, trace, emitted = paid
    run = _runs(meshctl, store)["ord-2"]
    assert run["status"] == "compensated"  # on_timeout: compensate
    assert "WaitTimeout" in run["error"] and run["compensated"] == ["hold_stock"]
    released = [e for e in emitted if e["type"] == "stock.released"]
    assert [(e["data"]["order_id"], e["time"]) for e in released] == [("ord-2", "2026-03-02T10:31:00Z")]
    failed = next(e for e in emitted if e["type"] == "order.payment.failed")
    assert failed["time"] == iso(parse("2026-03-02T10:01:00Z") + 1800)  # wait start + timeout


def test_an_approval_waits_after_the_run_and_a_signal_by_an_approver_completes_it(paid, meshctl, tmp_path):
    store, _, _ = paid
    assert _runs(meshctl, store)["ord-3"]["status"] == "waiting"
    shown = meshctl("runs", "show", "--store", store, "collect-payment:co-3")
    assert json.loads(shown.output)["steps"]["approve"]["status"] == "waiting"
    refused = meshctl("runs", "signal", "collect-payment:co-3", "approve", "--by", "eve", "--store", store,
                      "--mesh", PAYMENTS)
    assert refused.exit_code == 3 and "not 'eve'" in refused.output
    wrong = meshctl("runs", "signal", "collect-payment:co-3", "ship", "--by", "alice", "--store", store,
                    "--mesh", PAYMENTS)
    assert wrong.exit_code == 3 and "not waiting for signal 'ship'" in wrong.output
    result = meshctl("runs", "signal", "collect-payment:co-3", "approve", "--by", "alice", "--data",
                     '{"note": "checked"}', "--store", store, "--mesh", PAYMENTS, "--format", "json")
    assert result.exit_code == 0, result.output
    run = json.loads(result.output)["run"]
    assert run["status"] == "completed"
    output = run["steps"]["approve"]["output"]
    assert output["by"] == "alice" and output["data"] == {"note": "checked"} and output["at"]
    again = meshctl("runs", "signal", "collect-payment:co-3", "approve", "--by", "bob", "--store", store,
                    "--mesh", PAYMENTS)
    assert again.exit_code == 3 and "is completed" in again.output


def test_a_waiting_run_is_cancelled_with_compensation(paid, meshctl):
    store, _, _ = paid
    result = meshctl("runs", "cancel", "collect-payment:co-3", "--compensate", "--by", "ops",
                     "--store", store,
                     "--mesh", PAYMENTS, "--format", "json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["run"]["status"] == "cancelled" and out["run"]["error"] == "cancelled by ops"
    assert out["run"]["compensated"] == ["hold_stock"]
    assert out["run"]["steps"]["approve"]["status"] == "cancelled"
    assert out["summary"]["runs_cancelled"] == 1 and out["summary"]["emitted"] == 2  # released, failed
    assert _runs(meshctl, store)["ord-3"]["status"] == "cancelled"
    listed = meshctl("runs", "list", "--store", store, "--status", "cancelled")
    assert "collect-payment:co-3@/shop/checkout  cancelled" in listed.output
    again = meshctl("runs", "cancel", "collect-payment:co-3", "--store", store, "--mesh", PAYMENTS)
    assert again.exit_code == 3 and "is cancelled" in again.output


def test_signal_and_cancel_say_what_is_missing(paid, meshctl):
    store, _, _ = paid
    unknown = meshctl("runs", "signal", "collect-payment:co-9", "approve", "--store", store,
                      "--mesh", PAYMENTS)
    assert unknown.exit_code == 2 and "no run 'collect-payment:co-9'" in unknown.output
    no_mesh = meshctl("runs", "cancel", "collect-payment:co-3", "--store", store)
    assert no_mesh.exit_code == 2 and "--mesh PATH" in no_mesh.output
    bad = meshctl("runs", "signal", "collect-payment:co-3", "approve", "--data", "{no", "--store", store)
    assert bad.exit_code == 2 and "--data" in bad.output


MESH = """
apiVersion: meshctl/v1
kind: EventType
metadata: {name: job.started}
spec: {external: true, schema: {type: object, properties: {job: {type: string}}}}
---
apiVersion: meshctl/v1
kind: EventType
metadata: {name: job.progress}
spec: {external: true, schema: {type: object, properties: {job: {type: string}, pct: {type: number}}}}
---
apiVersion: meshctl/v1
kind: EventType
metadata: {name: job.note}
spec: {schema: {type: object}}
---
apiVersion: meshctl/v1
kind: Orchestration
metadata: {name: job}
spec:
  trigger: {on: job.started}
  timeout: 1h
  on_timeout: {on_timeout}
  steps:
    - id: prepare
      do: {emit: {type: job.note, data: {what: prepared}}}
      compensate: {emit: {type: job.note, data: {what: undone}}}
    - id: progress
      wait:
        event: job.progress
        correlate: {run: "{{ input.job }}", event: "{{ data.job }}"}
        match: {data: {pct: [{numeric: [">=", 50]}]}}
        timeout: 10m
        on_timeout: {continue: {pct: 0, job: "{{ input.job }}"}}
    - id: hold
      wait: {signal: go}
  on_failure: {emit: {type: job.note, data: {what: "{{ error }}"}}}
---
apiVersion: meshctl/v1
kind: Service
metadata: {name: notes}
spec:
  subscriptions:
    - {on: job.note, do: {log: "{{ data.what }}"}}
"""


@pytest.fixture
def job_mesh(tmp_path):
    def make(on_timeout: str = "fail") -> Path:
        path = tmp_path / "job"
        path.mkdir(exist_ok=True)
        (path / "mesh.yaml").write_text(textwrap.dedent(MESH).replace("{on_timeout}", on_timeout))
        return path
    return make


def _run(meshctl, mesh: Path, events: Path, tmp_path: Path):
    result = meshctl("run", mesh, "--events", events, "--format", "json", "--output", tmp_path / "o.jsonl",
                     "--trace", tmp_path / "t.jsonl")
    assert result.exit_code == 0, result.output
    emitted = [json.loads(line) for line in (tmp_path / "o.jsonl").read_text().splitlines()]
    trace = [json.loads(line) for line in (tmp_path / "t.jsonl").read_text().splitlines()]
    return json.loads(result.output), emitted, trace


def test_a_run_timeout_ends_a_waiting_run_timed_out_and_compensates_when_asked(
        meshctl, job_mesh, tmp_path):
    events = _write_events(tmp_path / "e.jsonl",
                           _event("j1", "job.started", "2026-01-01T00:00:00Z", job="a"),
                           _event("p1", "job.progress", "2026-01-01T00:01:00Z", job="a", pct=70))
    summary, emitted, trace = _run(meshctl, job_mesh("compensate"), events, tmp_path)
    assert summary["runs_timed_out"] == 1 and summary["failed_runs"][0]["status"] == "timed_out"
    notes = [(e["data"]["what"], e["time"]) for e in emitted if e["type"] == "job.note"]
    assert notes == [("prepared", "2026-01-01T00:00:00Z"), ("undone", "2026-01-01T01:00:00Z"),
                     ("run timed out after 3600s", "2026-01-01T01:00:00Z")]
    end = next(r for r in trace if r["kind"] == "run-end")
    assert end["status"] == "timed_out"
    summary, emitted, _ = _run(meshctl, job_mesh("fail"), events, tmp_path)
    assert summary["runs_timed_out"] == 1
    assert "undone" not in [e["data"]["what"] for e in emitted if e["type"] == "job.note"]


def test_a_wait_that_times_out_may_continue_with_a_default(meshctl, job_mesh, tmp_path):
    events = _write_events(tmp_path / "e.jsonl",
                           _event("j1", "job.started", "2026-01-01T00:00:00Z", job="a"),
                           _event("p0", "job.progress", "2026-01-01T00:01:00Z", job="a", pct=10),  # no match
                           _event("p1", "job.progress", "2026-01-01T00:02:00Z", job="b", pct=90))  # other run
    _, _, trace = _run(meshctl, job_mesh(), events, tmp_path)
    ends = [r for r in trace if r["kind"] == "wait-end"]
    assert [(r["step"], r["by"], r["t"]) for r in ends] == [("progress", "timeout", "2026-01-01T00:10:00Z")]
    assert any(r["kind"] == "wait-unmatched" and r["key"] == "job/progress=b" for r in trace)
    started = [r["step"] for r in trace if r["kind"] == "wait-start"]
    assert started == ["progress", "hold"]  # went on to the signal, with the default as output


def test_an_event_before_the_wait_is_not_kept_for_it(meshctl, job_mesh, tmp_path):
    events = _write_events(tmp_path / "e.jsonl",
                           _event("p1", "job.progress", "2026-01-01T00:00:00Z", job="a", pct=90),
                           _event("j1", "job.started", "2026-01-01T00:00:01Z", job="a"))
    _, _, trace = _run(meshctl, job_mesh(), events, tmp_path)
    assert [r["by"] for r in trace if r["kind"] == "wait-end"] == ["timeout"]


def test_meshctl_test_expects_a_timed_out_run(meshctl, job_mesh):
    mesh = job_mesh()
    (mesh / "job.test.yaml").write_text(textwrap.dedent("""
        tests:
          - name: the run times out while it waits for its signal
            given:
              - {type: job.started, id: j1, time: "2026-01-01T00:00:00Z", data: {job: a}}
            expect:
              runs: [{orchestration: job, event: j1, status: timed_out, error: "run timed out after 3600s"}]
              counts: {runs_timed_out: 1, runs_failed: 0}
          - name: counted as none when none does
            given:
              - {type: job.progress, id: p1, time: "2026-01-01T00:00:00Z", data: {job: a, pct: 60}}
            expect:
              counts: {runs_timed_out: 0}
    """))
    result = meshctl("test", mesh)
    assert result.exit_code == 0, result.output
    assert "2 passed, 0 failed" in result.output


def test_a_correlation_that_renders_nothing_fails_the_run_once(meshctl, job_mesh, tmp_path):
    events = _write_events(tmp_path / "e.jsonl", _event("j1", "job.started", "2026-01-01T00:00:00Z", job=""))
    summary, emitted, trace = _run(meshctl, job_mesh("compensate"), events, tmp_path)
    assert summary["runs_compensated"] == 1
    assert [r["step"] for r in trace if r["kind"] == "compensate"] == ["prepare"]
    failed = [e["data"]["what"] for e in emitted if e["type"] == "job.note"][-1]
    assert failed == "step 'progress' failed: TemplateError: `correlate.run` rendered nothing to correlate on"


def test_a_run_saved_waiting_is_completed_by_the_resumed_process(meshctl, runner, tmp_path, monkeypatch,
                                                                  unjudged):
    """The process dies after the checkouts were committed, with their runs waiting; the resumed
    one reads the webhooks and completes them: the same outcome as an uninterrupted run."""
    from cli import main
    from engine.runtime.interpreter import Runtime

    def args(db: Path) -> list[str]:
        return [str(a) for a in ("run", PAYMENTS, "--events", PAYMENTS / "events.jsonl", "--store",
                                 f"sqlite:{db}", "--format", "json", "--checkpoint-every", "1")]

    feed = Runtime.feed

    def crash_at_payment(self, item):  # inputs 1-2 (two checkouts) are committed, ord-1 waiting
        if self.fed == 2:
            raise SystemError("crash")
        return feed(self, item)

    with monkeypatch.context() as patch:
        patch.setattr(Runtime, "feed", crash_at_payment)
        assert runner.invoke(main, args(tmp_path / "a.db")).exit_code == 70
    waiting = _runs(meshctl, f"sqlite:{tmp_path / 'a.db'}")
    assert waiting["ord-1"]["status"] == "waiting"  # (ord-2's first step was still due: running)
    assert waiting["ord-1"]["steps"]["await_payment"]["status"] == "waiting"
    resumed = runner.invoke(main, [*args(tmp_path / "a.db"), "--resume"])
    whole = runner.invoke(main, args(tmp_path / "b.db"))
    assert json.loads(resumed.stdout) == unjudged(whole.stdout)
    assert _runs(meshctl, f"sqlite:{tmp_path / 'a.db'}")["ord-1"]["status"] == "completed"


def test_a_redriven_run_waits_again(meshctl, job_mesh, tmp_path):
    mesh = job_mesh("compensate")
    text = (mesh / "mesh.yaml").read_text().replace("    - id: hold\n      wait: {signal: go}\n", "")
    (mesh / "mesh.yaml").write_text(text.replace("on_timeout: {continue: {pct: 0, job: \"{{ input.job }}\"}}",
                                                 "on_timeout: fail"))
    store = f"sqlite:{tmp_path / 'job.db'}"
    events = _write_events(tmp_path / "e.jsonl", _event("j1", "job.started", "2026-01-01T00:00:00Z", job="a"))
    assert meshctl("run", mesh, "--events", events, "--store", store).exit_code == 0
    run = json.loads(meshctl("runs", "show", "--store", store, "job:j1").output)
    assert run["status"] == "failed" and "WaitTimeout" in run["error"]
    redriven = meshctl("runs", "redrive", mesh, "--store", store, "job:j1", "--format", "json")
    assert redriven.exit_code == 0, redriven.output
    run = json.loads(redriven.output)["run"]
    assert run["status"] == "failed" and run["redrives"] == 1  # waited 10 minutes again, in vain
    assert run["steps"]["progress"]["status"] == "failed"
