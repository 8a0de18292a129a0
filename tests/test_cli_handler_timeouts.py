"""Python handlers that outlive their `timeout`: interrupted in the calling thread (SIGALRM on
the main thread), failed with `HandlerTimeout`, retried by the policy, their emits dropped, and
no thread or timer left behind. Off the main thread a handler runs to its end and is failed by
measure. An orchestration step's `timeout` limits its handlers too. Also what `validate` says
of a `call` without exactly one target, or with a timeout of zero.

No test here asserts how long anything took: each checks what happened."""
from __future__ import annotations

import json
import signal
import threading

import pytest

from engine.runtime.timelimit import TimeLimitExceeded, run_within
from engine.storage import open_broker

TYPES = """
apiVersion: meshctl/v1
kind: EventType
metadata: {name: job.submitted}
spec: {external: true}
---
apiVersion: meshctl/v1
kind: EventType
metadata: {name: job.done}
---
"""

HANDLERS = """
import time


def sleeps(event, context):
    context.emit("job.done", {"by": "sleeps"})
    time.sleep(30)


def spins(event, context):
    context.emit("job.done", {"by": "spins"})
    while True:
        pass


def swallows(event, context):
    try:
        time.sleep(30)
    except BaseException:
        time.sleep(0.3)
    context.emit("job.done", {"by": "swallows"})
    return {"finished": True}


def naps(event, context):
    time.sleep(0.3)
    context.emit("job.done", {"by": "naps"})
    return {"finished": True}


def quick(event, context):
    context.emit("job.done", {"by": "quick"})
    return {"finished": True}
"""


def _service(call: str, delivery: str = "{retry: {max_attempts: 3, initial: 1s, jitter: none}}") -> str:
    return f"""
apiVersion: meshctl/v1
kind: Service
metadata: {{name: worker}}
spec:
  subscriptions:
    - on: job.submitted
      emits: [job.done]
      delivery: {delivery}
      do:
        - call: {call}
"""


def _orchestration(step_timeout: str, call: str) -> str:
    return f"""
apiVersion: meshctl/v1
kind: Orchestration
metadata: {{name: job}}
spec:
  trigger: {{on: job.submitted}}
  steps:
    - id: work
      timeout: {step_timeout}
      retry: {{max_attempts: 2, backoff: fixed, initial: 1s, jitter: none}}
      emits: [job.done]
      do: {{call: {call}}}
"""


@pytest.fixture
def run(meshctl, write, tmp_path):
    """``run(spec)`` runs the mesh TYPES + spec (with the handlers beside it) on one event:
    (summary, trace records, dead letters, emitted events)."""

    def _run(spec: str) -> tuple[dict, list[dict], list[dict], list[dict]]:
        mesh = write(TYPES + spec)
        write(HANDLERS, "jobs.py")
        event = {"id": "j1", "type": "job.submitted", "data": {}}
        (tmp_path / "e.jsonl").write_text(json.dumps(event) + "\n")
        files = {name: tmp_path / f"{name}.jsonl" for name in ("trace", "dlq", "out")}
        result = meshctl("run", mesh, "--events", tmp_path / "e.jsonl", "--format", "json",
                         "--trace", files["trace"], "--dlq-out", files["dlq"], "--output", files["out"])
        assert result.exit_code == 0, result.output
        read = {name: [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
                for name, path in files.items()}
        return json.loads(result.stdout), read["trace"], read["dlq"], read["out"]

    return _run


@pytest.mark.parametrize("handler", ["sleeps", "spins"])
def test_a_handler_past_its_timeout_is_retried_then_dead_lettered_without_its_emits(run, handler):
    summary, trace, dlq, out = run(_service(f'{{python: "jobs:{handler}", timeout: 200ms}}'))
    assert (summary["delivered"], summary["retries"], summary["emitted"]) == (3, 2, 0)
    [letter] = dlq
    assert (letter["reason"], letter["error_type"]) == ("retries-exhausted", "HandlerTimeout")
    assert letter["attempts"] == 3
    assert letter["error"] == f"handler 'jobs:{handler}' ran longer than its timeout of 0.2s"
    retried = [r["error"] for r in trace if r["kind"] == "retry"]
    assert retried == [f"HandlerTimeout: {letter['error']}"] * 2
    assert out == [] and not any(r["kind"] == "emit" for r in trace)


def test_a_handler_timeout_listed_as_non_retryable_is_dead_lettered_at_once(run):
    delivery = "{retry: {max_attempts: 3, initial: 1s, jitter: none, non_retryable: [HandlerTimeout]}}"
    summary, _, dlq, _ = run(_service('{python: "jobs:sleeps", timeout: 0.2}', delivery))
    assert summary["delivered"] == 1 and summary["retries"] == 0
    assert [(d["reason"], d["error_type"]) for d in dlq] == [("non-retryable", "HandlerTimeout")]


def test_a_handler_within_its_timeout_emits(run):
    summary, _, dlq, out = run(_service('{python: "jobs:quick", timeout: 30s}'))
    assert dlq == [] and summary["retries"] == 0
    assert [e["data"] for e in out] == [{"by": "quick"}]


def test_a_handler_that_catches_its_timeout_still_fails_when_it_returns(run):
    _, _, dlq, out = run(_service('{python: "jobs:swallows", timeout: 0.2}', "{retry: {max_attempts: 1}}"))
    assert [(d["error_type"], d["error"]) for d in dlq] == [
        ("HandlerTimeout", "handler 'jobs:swallows' ran longer than its timeout of 0.2s "
         "(it caught the interruption and went on: failed when it returned)")
    ]
    assert out == []


def test_a_step_timeout_limits_the_handlers_of_the_step(run):
    summary, trace, _, out = run(_orchestration("200ms", '{python: "jobs:sleeps"}'))
    assert summary["runs_failed"] == 1 and summary["retries"] == 1
    failed = [r["error"] for r in trace if r["kind"] == "retry"]
    assert failed == ["HandlerTimeout: handler 'jobs:sleeps' ran longer than its step's timeout of 0.2s"]
    assert out == []


def test_the_smaller_of_the_call_and_step_timeouts_applies(run):
    _, trace, _, _ = run(_orchestration("30s", '{python: "jobs:sleeps", timeout: 0.2}'))
    assert [r["error"] for r in trace if r["kind"] == "retry"] == [
        "HandlerTimeout: handler 'jobs:sleeps' ran longer than its timeout of 0.2s"
    ]


def test_no_thread_and_no_timer_is_left_behind(run):
    threads = threading.active_count()
    previous = signal.getsignal(signal.SIGALRM)
    run(_service('{python: "jobs:sleeps", timeout: 0.1}'))
    run(_orchestration("100ms", '{python: "jobs:spins"}'))
    assert threading.active_count() == threads
    assert signal.getsignal(signal.SIGALRM) is previous
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


def test_off_the_main_thread_a_handler_runs_to_its_end_and_is_failed_by_measure(run):
    found: list = []
    spec = _service('{python: "jobs:naps", timeout: 0.1}')
    thread = threading.Thread(target=lambda: found.append(run(spec)))
    thread.start()
    thread.join()
    [(summary, _, dlq, out)] = found
    assert summary["delivered"] == 3 and out == []
    assert {d["error"] for d in dlq} == {
        "handler 'jobs:naps' ran longer than its timeout of 0.1s "
        "(off the main thread it cannot be interrupted: failed when it returned)"
    }


# --- the timer, nested: one already running is put back, or rings first --------------------


class _Outer(BaseException):
    """What the timer found running raises when it rings."""


@pytest.fixture
def outer_timer():
    """An outer SIGALRM handler raising _Outer; the original handler and timer restored after."""
    original = signal.signal(signal.SIGALRM, _ring_outer)
    yield
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, original)


def _ring_outer(signum, frame):
    raise _Outer


def test_a_timer_already_running_is_put_back_with_its_handler(outer_timer):
    signal.setitimer(signal.ITIMER_REAL, 60)
    assert run_within(lambda: "answer", 5) == "answer"
    with pytest.raises(TimeLimitExceeded):
        run_within(lambda: threading.Event().wait(30), 0.05)
    left, _ = signal.getitimer(signal.ITIMER_REAL)
    assert 0 < left <= 60
    assert signal.getsignal(signal.SIGALRM) is _ring_outer


def test_a_timer_already_running_that_comes_due_first_rings_as_it_would_have(outer_timer):
    signal.setitimer(signal.ITIMER_REAL, 0.05)
    with pytest.raises(_Outer):
        run_within(lambda: threading.Event().wait(30), 20)
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    assert signal.getsignal(signal.SIGALRM) is _ring_outer


def test_limits_nest(outer_timer):
    def inner():
        with pytest.raises(TimeLimitExceeded) as caught:
            run_within(lambda: threading.Event().wait(30), 0.05)
        return caught.value.limit

    assert run_within(inner, 20) == 0.05
    with pytest.raises(TimeLimitExceeded) as caught:  # the inner call's longer limit keeps the outer one
        run_within(lambda: run_within(lambda: threading.Event().wait(30), 20), 0.05)
    assert caught.value.limit == 0.05


# --- a worker runs handlers on its main thread: the limit holds there too ------------------


@pytest.mark.slow
def test_a_worker_interrupts_a_handler_past_its_timeout(meshctl, write, redis_url):
    mesh = write(TYPES + _service('{python: "jobs:sleeps", timeout: 0.2}',
                                  "{retry: {max_attempts: 2, initial: 10ms, jitter: none}}"))
    write(HANDLERS, "jobs.py")
    broker = open_broker(redis_url)
    try:
        broker.ingest([{"specversion": "1.0", "id": "j1", "source": "/jobs", "type": "job.submitted",
                        "data": {}}])
        result = meshctl("worker", mesh, "--store", redis_url, "--exit-when-idle", "--format=json")
        assert result.exit_code == 0, result.output
        [letter] = broker.store.dead_letters()
        assert (letter.reason, letter.error_type) == ("retries-exhausted", "HandlerTimeout")
        assert letter.attempts == 2
        assert letter.error == "handler 'jobs:sleeps' ran longer than its timeout of 0.2s"
        assert list(broker.store.records("emitted")) == []
    finally:
        broker.close()
