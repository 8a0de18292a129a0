"""Routing costs what the index costs: per event, only the consumers it reaches cost anything.

Work is counted, never timed: the lines of Python executed (``sys.settrace``) and the
patterns evaluated while one event is fed. In a mesh of 2,000 consumers with patterns on
one type, of which the event matches one, that work must be the same as among 20, for every
kind of consumer that has a ``match`` and for a route's delivery straight to a service; and
the index itself must find one match among 2,000 patterns of each indexed operator with the
same work as among 20. A loop over the consumers or patterns (to test them, or to count
those that did not match) executes thousands of lines more and fails here.
"""
from __future__ import annotations

import sys

import pytest

from bench.many_routes import KINDS, reading, write_mesh
from engine.language.loader import load_mesh
from engine.language.patterns import CompiledPattern, PatternIndex
from engine.runtime.interpreter import Runtime
from engine.runtime.trace import Trace

pytestmark = pytest.mark.slow  # starts servers and workers, or routes at volume

SMALL, BIG = 20, 2000
WARM = 5  # inputs fed before the measured one: first-use caches are filled by then


def lines_executed(fn) -> int:
    """Lines of Python executed by ``fn()``: a count of work that no clock can disturb."""
    count = 0

    def tracer(frame, event, arg):
        nonlocal count
        if event == "line":
            count += 1
        return tracer
    sys.settrace(tracer)
    try:
        fn()
    finally:
        sys.settrace(None)
    return count


@pytest.fixture
def evaluations(monkeypatch):
    """The patterns evaluated one by one (``CompiledPattern.matches``) from now on."""
    calls: list[CompiledPattern] = []
    real = CompiledPattern.matches
    monkeypatch.setattr(
        CompiledPattern, "matches", lambda self, event: calls.append(self) or real(self, event)
    )
    return calls


@pytest.fixture
def mesh_of_kind(tmp_path):
    def build(n: int, kind: str):
        mesh, _ = load_mesh(write_mesh(str(tmp_path / f"{kind}-{n}"), n, kind))
        return mesh

    return build


def unmatched(k: int) -> dict:
    """An input whose sensor no consumer of the generated meshes matches."""
    event = reading(k, 1)
    event["data"]["sensor"] = "s-none"
    return event


# operator -> (pattern number i, an event only pattern i matches)
OPERATORS = {
    "equality": (lambda i: {"data": {"k": [f"v{i:05d}"]}}, lambda i: {"data": {"k": f"v{i:05d}"}}),
    "prefix": (
        lambda i: {"data": {"k": [{"prefix": f"v{i:05d}-"}]}},
        lambda i: {"data": {"k": f"v{i:05d}-x"}},
    ),
    "suffix": (lambda i: {"data": {"k": [{"suffix": f"-{i:05d}"}]}}, lambda i: {"data": {"k": f"x-{i:05d}"}}),
    "equals-ignore-case": (
        lambda i: {"data": {"k": [{"equals-ignore-case": f"V{i:05d}"}]}},
        lambda i: {"data": {"k": f"v{i:05d}"}},
    ),
    "anything-but": (
        lambda i: {"data": {"k": [f"v{i:05d}"], "m": [{"anything-but": [f"x{i:05d}"]}]}},
        lambda i: {"data": {"k": f"v{i:05d}", "m": "y"}},
    ),
    "anything-but prefix": (
        lambda i: {"data": {"k": [f"v{i:05d}"], "m": [{"anything-but": {"prefix": f"x{i:05d}"}}]}},
        lambda i: {"data": {"k": f"v{i:05d}", "m": "y"}},
    ),
    "numeric": (
        lambda i: {"data": {"n": [{"numeric": [">=", i, "<", i + 1]}]}},
        lambda i: {"data": {"n": i + 0.5}},
    ),
    "exists": (lambda i: {"data": {f"f{i:05d}": [{"exists": True}]}}, lambda i: {"data": {f"f{i:05d}": 1}}),
}


@pytest.mark.parametrize("operator", OPERATORS)
def test_the_index_finds_one_match_among_2000_patterns_as_among_20(operator, evaluations):
    pattern, event = OPERATORS[operator]
    work = {}
    for n in (SMALL, BIG):
        index = PatternIndex()
        for i in range(n):
            index.add(i, pattern(i))
        target = 7919 % n
        assert index.match(event(target)) == [target]
        evaluations.clear()
        work[n] = lines_executed(lambda: index.match(event(target)))
        assert len(evaluations) <= 1
    assert work[BIG] <= work[SMALL] + 5, (
        f"{operator}: {work[SMALL]} lines among {SMALL} patterns, {work[BIG]} among {BIG}"
    )


@pytest.mark.parametrize("kind", KINDS)
def test_one_event_costs_the_same_among_2000_consumers_as_among_20(mesh_of_kind, evaluations, kind):
    work = {}
    for n in (SMALL, BIG):
        runtime = Runtime(mesh_of_kind(n, kind))
        for k in range(WARM):
            runtime.feed(reading(k, n))
        evaluations.clear()
        work[n] = lines_executed(lambda: runtime.feed(reading(WARM, n)))
        assert len(evaluations) <= 2, f"{len(evaluations)} patterns tested one by one among {n} consumers"
        assert runtime.trace.counts["matched"] == (WARM + 1) * (
            2 if kind in ("route", "publish", "direct") else 1
        )
    assert work[BIG] <= work[SMALL] + 20, (
        f"{kind}: {work[SMALL]} lines among {SMALL} consumers, {work[BIG]} among {BIG}"
    )


@pytest.mark.parametrize("kind", KINDS)
def test_rejections_are_not_counted_and_only_a_trace_records_them(mesh_of_kind, kind):
    mesh = mesh_of_kind(SMALL, kind)
    events = [reading(k, SMALL) for k in range(6)] + [unmatched(k) for k in range(6, 9)]
    records: list = []
    summary = Runtime(mesh, trace=Trace(records)).run(events)
    assert Runtime(mesh).run(events) == summary
    assert summary["filtered"] == 0
    # every unmatched input, and for streams every window event (nobody consumes them)
    assert summary["unconsumed"] == 3 + summary["windows_emitted"]
    rejected = [r for r in records if r["kind"] == "filtered"]
    assert {r["why"] for r in rejected} == {"match"}
    assert len(rejected) == 6 * (SMALL - 1) + 3 * SMALL  # each patterned consumer that did not take an event


def test_filtered_counts_when_and_avoid_loop_not_match(mesh_of, run):
    mesh = mesh_of(
        "kind: EventType\nmetadata: {name: ping}\nspec: {external: true}",
        "kind: EventType\nmetadata: {name: pong}",
        """
        kind: Service
        metadata: {name: svc}
        spec:
          subscriptions:
            - on: ping
              match: {data: {n: [{numeric: [">", 1]}]}}
              when: data.n < 5
              emits: [ping]
              loop: {max_hops: 3, policy: avoid-loop}
              do: [{emit: {type: ping, data: {n: "{{ data.n }}"}}}]
            - name: big
              on: ping
              match: {data: {n: [{numeric: [">", 100]}]}}
              do: [{log: "big"}]
        """,
    )
    out = run(mesh, [{"type": "ping", "data": {"n": n}} for n in (1, 3, 7, 500)])
    whys = sorted(r["why"] for r in out.kinds("filtered"))
    # n=1: no match anywhere (unconsumed); n=3: taken, its emitted ping is avoided by the
    # loop guard and rejected by `big`; n=7: `when` false; n=500: `when` false, `big` takes it
    assert whys == ["loop-avoided", "match", "match", "match", "match", "match", "when", "when"]
    assert out.summary["filtered"] == 3
    assert out.summary["unconsumed"] == 1
    assert out.summary["matched"] == 5


def test_a_route_for_a_service_that_no_subscription_accepts_is_unconsumed(mesh_of, run, evaluations):
    mesh = mesh_of(
        "kind: EventType\nmetadata: {name: ping}\nspec: {external: true}",
        "kind: EventType\nmetadata: {name: pong}",
        "kind: Route\nmetadata: {name: r}\nspec: {from: [ping], transform: {type: pong}, to: [svc]}",
        """
        kind: Service
        metadata: {name: svc}
        spec:
          subscriptions:
            - {on: pong, name: low, match: {data: {n: [{numeric: ["<", 10]}]}}, do: [{log: low}]}
            - {on: pong, name: high, match: {data: {n: [{numeric: [">", 100]}]}}, do: [{log: high}]}
        """,
    )
    out = run(mesh, [{"type": "ping", "data": {"n": n}} for n in (5, 50)])
    assert [r["consumer"] for r in out.kinds("deliver") if r["type"] == "pong"] == ["service:svc/low"]
    assert sorted(r["consumer"] for r in out.kinds("filtered")) == [
        "service:svc/high",
        "service:svc/high",
        "service:svc/low",
    ]
    assert (out.summary["filtered"], out.summary["unconsumed"], out.summary["matched"]) == (0, 1, 3)
