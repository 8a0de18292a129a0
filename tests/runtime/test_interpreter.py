"""The interpreter on small inline meshes: delivery, retries, dead letters, loops, determinism."""
from __future__ import annotations

import pytest

from engine.runtime.interpreter import Fault

PING = """
kind: EventType
metadata: {name: ping}
spec: {external: true, schema: {type: object, properties: {n: {type: integer}}, required: [n]}}
"""
PONG = """
kind: EventType
metadata: {name: pong}
spec: {schema: {type: object, properties: {n: {type: integer}, doubled: {type: integer}}}}
"""


def service(do: str, delivery: str = "", emits: str = "[pong]", extra: str = "") -> str:
    return f"""
kind: Service
metadata: {{name: svc}}
spec:
  subscriptions:
    - on: ping
      do: {do}
      emits: {emits}
{delivery}{extra}"""


def t0(i: int = 0) -> dict:
    return {"id": f"e{i}", "type": "ping", "time": f"2026-01-01T00:00:{i:02d}Z", "data": {"n": i}}


def test_emit_keeps_native_types_and_records_causation(mesh_of, run):
    mesh = mesh_of(
        PING,
        PONG,
        service('[{emit: {type: pong, data: {n: "{{ data.n }}", doubled: "{{ data.n * 2 }}"}}}]'),
        "kind: Service\nmetadata: {name: sink}\nspec: {subscriptions: [{on: pong, do: {log: x}}]}",
    )
    out = run(mesh, [t0(3)])
    (pong,) = out.emitted
    assert pong["data"] == {"n": 3, "doubled": 6}
    assert (pong["causationid"], pong["correlationid"], pong["hopcount"]) == ("e3", "e3", 1)
    assert pong["causationpath"] == "service:svc/ping"
    assert out.summary["emitted"] == 1 and out.summary["dead_lettered"] == 0


def test_exponential_retry_schedule_then_dead_letter(mesh_of, run):
    policy = ("      delivery: {retry: {max_attempts: 4, backoff: exponential, initial: 1s, multiplier: 3, "
              "max_delay: 5s, jitter: none}}\n")
    mesh = mesh_of(PING, PONG, service("[{fail: {error: Boom}}]", policy, emits="[]"))
    out = run(mesh, [t0()])
    assert [r["t"] for r in out.kinds("deliver")] == [
        "2026-01-01T00:00:00Z",
        "2026-01-01T00:00:01Z",
        "2026-01-01T00:00:04Z",
        "2026-01-01T00:00:09Z",
    ]
    assert [r["delay"] for r in out.kinds("retry")] == [1.0, 3.0, 5.0]
    (dead,) = out.dead
    assert (dead.reason, dead.attempts, dead.error_type, dead.consumer) == (
        "retries-exhausted",
        4,
        "Boom",
        "service:svc/ping",
    )
    assert (dead.first_attempt, dead.last_attempt) == ("2026-01-01T00:00:00Z", "2026-01-01T00:00:09Z")
    assert dead.problem()["type"] == "https://meshctl.dev/problems/retries-exhausted"


@pytest.mark.parametrize(("jitter", "low", "high"), [("full", 0.0, 1.0), ("equal", 0.5, 1.0)])
def test_jitter_stays_in_bounds_and_depends_on_the_seed(mesh_of, run, jitter, low, high):
    policy = (f"      delivery: {{retry: {{max_attempts: 6, backoff: exponential, initial: 2s, "
              f"jitter: {jitter}}}}}\n")
    mesh = mesh_of(PING, PONG, service("[{fail: {}}]", policy, emits="[]"))
    delays = [r["delay"] for r in run(mesh, [t0()], seed=7).kinds("retry")]
    for n, delay in enumerate(delays, start=1):
        base = 2.0 * 2 ** (n - 1)
        assert low * base <= delay <= high * base
    assert delays == [r["delay"] for r in run(mesh, [t0()], seed=7).kinds("retry")]
    assert delays != [r["delay"] for r in run(mesh, [t0()], seed=8).kinds("retry")]


def test_non_retryable_and_expired(mesh_of, run):
    policy = (
        "      delivery: {retry: {max_attempts: 9, initial: 10m, jitter: none, max_event_age: 15m,"
        " non_retryable: [Fatal]}}\n"
    )
    mesh = mesh_of(
        PING,
        PONG,
        service(
            '[{fail: {error: "{{ \'Fatal\' }}"}}]'.replace('"{{ \'Fatal\' }}"', "Fatal"), policy, emits="[]"
        ),
    )
    assert [(d.reason, d.attempts) for d in run(mesh, [t0()]).dead] == [("non-retryable", 1)]
    mesh = mesh_of(PING, PONG, service("[{fail: {error: Slow}}]", policy, emits="[]"))
    assert [(d.reason, d.attempts) for d in run(mesh, [t0()]).dead] == [("expired", 2)]


def test_fail_times_then_succeed(mesh_of, run):
    policy = "      delivery: {retry: {max_attempts: 3, jitter: none}}\n"
    mesh = mesh_of(PING, PONG, service("[{fail: {times: 2}}, {emit: {type: pong, data: {n: 1}}}]", policy))
    out = run(mesh, [t0()])
    assert out.summary["retries"] == 2 and out.summary["dead_lettered"] == 0
    assert [e["type"] for e in out.emitted] == ["pong"]


def test_template_error_is_dead_lettered_with_its_location(mesh_of, run):
    mesh = mesh_of(PING, PONG, service('[{emit: {type: pong, data: {n: "{{ data.missing }}"}}}]'))
    (dead,) = run(mesh, [t0()]).dead
    assert dead.reason == "template-error" and dead.attempts == 1
    assert "mesh.yaml:" in dead.error and "missing" in dead.error


def test_bad_input_is_dead_lettered_not_dropped(mesh_of, run):
    mesh = mesh_of(PING, PONG, service("[{log: ok}]", emits="[]"))
    out = run(
        mesh, [{"type": "ping", "data": {"n": "not a number"}}, {"type": "nope"}, ["not", "an", "object"]]
    )
    assert sorted(d.reason for d in out.dead) == ["schema-invalid", "schema-invalid", "undeliverable"]
    assert out.summary["events_in"] == 3 and out.summary["delivered"] == 0


def test_redelivered_event_acts_once(mesh_of, run):
    mesh = mesh_of(PING, PONG, service("[{emit: {type: pong}}]"))
    out = run(mesh, [t0(1), t0(1)])
    assert out.summary["duplicates"] == 1 and len(out.emitted) == 1


def test_undeclared_loop_stops_at_the_hop_limit(mesh_of, run):
    mesh = mesh_of(
        PING,
        "kind: Service\nmetadata: {name: echo}\n"
        "spec: {subscriptions: [{on: ping, do: [{emit: {type: ping, data: {n: 1}}}], emits: [ping]}]}",
    )
    out = run(mesh, [t0()], max_hops=5)
    (dead,) = out.dead
    assert dead.reason == "loop-detected" and len(out.emitted) == 5
    assert dead.chain == ["service:echo/ping"] * 5


def test_declared_loop_passes_max_hops_times(mesh_of, run):
    mesh = mesh_of(
        PING,
        "kind: Service\nmetadata: {name: echo}\nspec: {subscriptions: [{on: ping, "
        "do: [{emit: {type: ping, data: {n: 1}}}], emits: [ping], loop: {max_hops: 3}}]}",
    )
    out = run(mesh, [t0()])
    assert len(out.kinds("deliver")) == 3 and [d.reason for d in out.dead] == ["loop-detected"]
    assert out.dead[0].chain == ["service:echo/ping"] * 3


def test_avoid_loop_skips_consumers_on_the_chain(mesh_of, run):
    mesh = mesh_of(
        PING,
        "kind: Service\nmetadata: {name: echo}\nspec: {subscriptions: [{on: ping, "
        "do: [{emit: {type: ping, data: {n: 1}}}], emits: [ping], loop: {max_hops: 3, policy: avoid-loop}}]}",
    )
    out = run(mesh, [t0()])
    assert len(out.kinds("deliver")) == 1 and out.dead == []
    assert [r["why"] for r in out.kinds("filtered")] == ["loop-avoided"]


def test_match_and_when_filter(mesh_of, run):
    mesh = mesh_of(
        PING,
        PONG,
        service(
            "[{emit: {type: pong}}]",
            extra="      match: {data: {n: [{numeric: ['>', 1]}]}}\n      when: data.n < 5\n",
        ),
    )
    out = run(mesh, [t0(1), t0(3), t0(7)])
    assert len(out.emitted) == 1
    assert sorted(r["why"] for r in out.kinds("filtered")) == ["match", "when"]


def test_injected_fault_from_outside(mesh_of, run):
    mesh = mesh_of(
        PING,
        PONG,
        service(
            "[{emit: {type: pong, data: {n: 1}}}]",
            "      delivery: {retry: {max_attempts: 2, jitter: none}}\n",
        ),
    )
    out = run(mesh, [t0()], faults=[Fault("service:svc/ping", None, "Down")])
    assert [(d.reason, d.error_type, d.attempts) for d in out.dead] == [("retries-exhausted", "Down", 2)]
    replay = out.runtime
    replay.faults = {}
    assert replay.replay(out.dead) == {"replayed": 1, "still_dead": 0}
    assert [e["type"] for e in out.emitted] == ["pong"]


def test_circuit_breaker_opens_then_probes(mesh_of, run):
    policy = ("      delivery: {retry: {max_attempts: 1}, "
              "circuit_breaker: {failure_threshold: 2, reset_after: 30s}}\n")
    handlers = """
        def flaky(event, context):
            if event["data"]["n"] < 2:
                raise ConnectionError("down")
            context.emit("pong", {"n": event["data"]["n"]})
    """
    mesh = mesh_of(PING, PONG, service('[{call: {python: "h:flaky"}}]', policy), files={"h.py": handlers})
    events = [
        t0(0),
        t0(1),
        t0(2),
        {"id": "later", "type": "ping", "time": "2026-01-01T00:01:00Z", "data": {"n": 9}},
    ]
    out = run(mesh, events)
    assert [(d.reason, d.event["id"]) for d in out.dead] == [
        ("retries-exhausted", "e0"),
        ("retries-exhausted", "e1"),
        ("circuit-open", "e2"),
    ]
    assert [e["causationid"] for e in out.emitted] == ["later"]  # after reset_after, the probe succeeded


def test_same_seed_same_trace(mesh_of, run):
    policy = "      delivery: {retry: {max_attempts: 4, jitter: full}}\n"
    mesh = mesh_of(PING, PONG, service("[{fail: {times: 2}}, {emit: {type: pong}}]", policy))
    events = [t0(i) for i in range(5)]
    assert run(mesh, events, seed=3).trace == run(mesh, events, seed=3).trace


def test_python_handler_gets_idempotency_key_and_may_emit_only_declared(mesh_of, run):
    handlers = """
        def good(event, context):
            context.emit("pong", {"n": event["data"]["n"]})
            return {"key": context.idempotency_key}

        def bad(event, context):
            context.emit("ping", {"n": 0})
    """
    mesh = mesh_of(PING, PONG, service('[{call: {python: "h:good"}}]'), files={"h.py": handlers})
    out = run(mesh, [t0(4)])
    assert [e["data"] for e in out.emitted] == [{"n": 4}]
    mesh = mesh_of(PING, PONG, service('[{call: {python: "h:bad"}}]'), files={"h.py": handlers})
    (dead,) = run(mesh, [t0(4)]).dead
    assert (dead.reason, dead.error_type) == ("non-retryable", "UndeclaredEmit")
    assert dead.error.endswith(
        "mesh.yaml:17:19: service:svc/ping emitted 'ping', which its `emits` does not list"
    )


def test_idempotency_keys_hold_across_retries_and_tell_sources_apart(mesh_of, run):
    handlers = """
        def flaky(event, context):
            context.log(context.idempotency_key)
            if context.attempt == 1:
                raise TimeoutError("once")
    """
    retry = "      delivery: {retry: {max_attempts: 2, initial: 1s, jitter: none}}\n"
    mesh = mesh_of(
        PING, service('[{call: {python: "h:flaky"}}]', delivery=retry, emits="[]"), files={"h.py": handlers}
    )
    out = run(mesh, [{**t0(1), "source": "/a"}, {**t0(1), "source": "/b"}])
    keys = [r["message"] for r in out.kinds("log")]
    assert len(keys) == 4 and len(set(keys)) == 2  # one key per delivery, the same on its retry
    assert keys.count("2:/a|e1:service:svc/ping") == 2


def test_memory_dedup_window(mesh_of, run):
    mesh = mesh_of(PING, PONG, service("[{emit: {type: pong, data: {n: 1}}}]"))
    late = {**t0(1), "time": "2026-01-01T02:00:00Z"}  # the same event id, two hours later
    out = run(mesh, [t0(1), t0(1), late])
    assert out.summary["duplicates"] == 1  # within the hour: recognised; after it: forgotten (memory store)
    assert len(out.emitted) == 2
