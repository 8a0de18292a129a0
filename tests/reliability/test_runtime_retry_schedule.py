"""T05: the retry schedule on the virtual clock, for every backoff shape and jitter mode.

Forty events fail every attempt. The time between two attempts of one event, read from
the clock (not from the trace's own `delay` field), must lie within the bounds docs/run.md
gives for retry n: base `initial` (fixed), `initial * n` (linear) or `initial *
multiplier^(n-1)` (exponential), capped at `max_delay`; then `none` keeps it, `full` draws
in [0, base], `equal` in [base/2, base]. Each event is tried exactly `max_attempts` times and
dead-lettered at its last attempt. Jittered delays must spread over their range and differ
between events, or failing consumers would retry in lockstep. The largest settings (1,000
attempts, `multiplier: 1000`) never overflow a float: a delay is at most `36500d`.
"""
from __future__ import annotations

import collections

import pytest
from runtime_harness import START, TimedTrace, inputs, load

from engine.core.eventtime import format as iso
from engine.language.model import MAX_DURATION, RetrySpec
from engine.runtime.interpreter import Runtime
from engine.runtime.retry import base_delay, delay

ATTEMPTS, INITIAL, MULTIPLIER, CAP = 6, 2.0, 3.0, 20.0
EVENTS = 40


def mesh_text(backoff: str, jitter: str) -> str:
    return f"""
apiVersion: meshctl/v1
kind: EventType
metadata: {{name: tick}}
spec: {{external: true}}
---
apiVersion: meshctl/v1
kind: Service
metadata: {{name: flaky}}
spec:
  subscriptions:
    - on: tick
      delivery:
        retry: {{max_attempts: {ATTEMPTS}, backoff: {backoff}, initial: {INITIAL:g}s,
                multiplier: {MULTIPLIER:g}, max_delay: {CAP:g}s, jitter: {jitter}}}
      do: {{fail: {{error: Unavailable}}}}
"""


def base(backoff: str, n: int) -> float:
    """The documented delay before retry n, before jitter."""
    raw = {"fixed": INITIAL, "linear": INITIAL * n, "exponential": INITIAL * MULTIPLIER ** (n - 1)}[backoff]
    return min(raw, CAP)


def bounds(backoff: str, jitter: str, n: int) -> tuple[float, float]:
    full = base(backoff, n)
    return {"none": (full, full), "full": (0.0, full), "equal": (full / 2, full)}[jitter]


@pytest.mark.parametrize("jitter", ["none", "full", "equal"])
@pytest.mark.parametrize("backoff", ["fixed", "linear", "exponential"])
def test_delays_stay_in_the_documented_bounds_and_stop_at_max_attempts(tmp_path, backoff, jitter):
    mesh = load(tmp_path / "mesh", mesh_text(backoff, jitter))
    events = [{"id": f"t{i}", "type": "tick", "time": iso(START + 7 * i)} for i in range(EVENTS)]
    runtime = Runtime(mesh, trace=TimedTrace(), seed=11)
    runtime.run(inputs(events))

    attempts = collections.defaultdict(list)
    for record in runtime.trace.sink:
        if record["kind"] == "deliver":
            attempts[record["event"]].append(record["now"])
    assert sorted(attempts) == sorted(e["id"] for e in events)
    by_retry = collections.defaultdict(list)
    for times in attempts.values():
        assert len(times) == ATTEMPTS
        for n, (before, after) in enumerate(zip(times, times[1:]), start=1):
            low, high = bounds(backoff, jitter, n)
            assert low - 1e-6 <= after - before <= high + 1e-6, (n, after - before, low, high)
            by_retry[n].append(after - before)
    dead = {d.event["id"]: d for d in runtime.store.dead_letters()}
    assert set(dead) == set(attempts)
    for event_id, record in dead.items():
        assert (record.reason, record.attempts) == ("retries-exhausted", ATTEMPTS)
        assert record.last_attempt == iso(attempts[event_id][-1])

    if jitter != "none":
        for n, delays in by_retry.items():
            low, high = bounds(backoff, jitter, n)
            spread = (max(delays) - min(delays)) / (high - low)
            assert spread > 0.5 and len(set(delays)) == EVENTS, (n, spread)


@pytest.mark.parametrize(("initial", "max_delay", "expected"), [
    (0.001, 30.0, 30.0),  # the cap, long before 1000**n would overflow a float
    (MAX_DURATION, None, MAX_DURATION),  # no cap: the longest duration
    (0.0, None, 0.0),  # nothing grows from zero
])
def test_the_largest_backoff_stays_finite(initial, max_delay, expected):
    spec = RetrySpec(loc=None, max_attempts=1000, backoff="exponential", initial=initial, multiplier=1000.0,
                     max_delay=max_delay, jitter="none")
    assert [base_delay(spec, n) for n in (200, 999)] == [expected, expected]
    assert 0.0 <= delay(spec, 999, 0, "e-1", "service:s/a") <= MAX_DURATION
