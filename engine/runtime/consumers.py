"""Every element that receives events, compiled once: what it takes, how it is retried, what it does.

A consumer id names it in traces, dedup records and dead letters: ``route:NAME``,
``service:SERVICE/SUBSCRIPTION``, ``orchestration:NAME``, ``wait:ORCHESTRATION/STEP`` (a wait
step on an event: it takes the awaited events to the runs waiting for them), ``stream:NAME``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..language import model as m
from ..language.patterns import CompiledPattern, compile_pattern
from ..language.templates import compile_condition
from .retry import DEFAULT_RETRY, NO_RETRY
from .waits import wait_targets

DEFAULT_QUEUE = "dlq"


@dataclass(frozen=True, slots=True)
class Policy:
    """A resolved delivery policy: always a retry spec and a queue."""

    retry: m.RetrySpec
    queue: str
    breaker: m.CircuitBreaker | None = None


@dataclass(slots=True)
class Consumer:
    id: str
    kind: str  # route | subscription | orchestration | wait | stream
    element: object
    types: tuple[str, ...]
    pattern: CompiledPattern | None
    condition: Callable | None
    policy: Policy
    loop: m.Loop | None
    declared: frozenset[str] | None  # event types it may emit; None: not enforced


def resolve_policy(
    mesh: m.Mesh, ref: m.PolicyRef | None, default_retry: m.RetrySpec = DEFAULT_RETRY
) -> Policy:
    spec = m.resolve_delivery(mesh, ref)
    if spec is None:
        return Policy(default_retry, DEFAULT_QUEUE)
    return Policy(spec.retry or default_retry, spec.dead_letter or DEFAULT_QUEUE, spec.circuit_breaker)


def _pattern(p: m.Pattern | None) -> CompiledPattern | None:
    return compile_pattern(p.value) if p is not None else None


def _condition(t: m.TemplateString | None, fast: bool):
    return compile_condition(t, fast) if t is not None else None


def build_consumers(mesh: m.Mesh, fast: bool = True) -> list[Consumer]:
    """Every consumer of the mesh, in a stable order (routes, subscriptions, orchestrations, waits,
    streams).
    *fast* False: their `when` conditions compile without template shortcuts."""
    out: list[Consumer] = []
    for r in mesh.routes.values():
        out.append(
            Consumer(
                f"route:{r.name}",
                "route",
                r,
                tuple(s.name for s in r.sources),
                _pattern(r.match),
                _condition(r.when, fast),
                resolve_policy(mesh, r.delivery),
                r.loop,
                None,
            )
        )
    for sub in mesh.subscriptions():
        out.append(
            Consumer(
                f"service:{sub.service}/{sub.name}",
                "subscription",
                sub,
                (sub.on.name,),
                _pattern(sub.match),
                _condition(sub.when, fast),
                resolve_policy(mesh, sub.delivery),
                sub.loop,
                frozenset(ref.name for ref in sub.emits),
            )
        )
    for o in mesh.orchestrations.values():
        out.append(
            Consumer(
                f"orchestration:{o.name}",
                "orchestration",
                o,
                (o.trigger.on.name,),
                _pattern(o.trigger.match),
                _condition(o.trigger.when, fast),
                Policy(NO_RETRY, DEFAULT_QUEUE),
                o.loop,
                None,
            )
        )
    for target in wait_targets(mesh):
        wait = target.step.wait
        out.append(Consumer(target.id, "wait", target, (wait.event.name,), _pattern(wait.match), None,
                            Policy(NO_RETRY, DEFAULT_QUEUE), None, None))
    for s in mesh.streams.values():
        out.append(
            Consumer(
                f"stream:{s.name}",
                "stream",
                s,
                tuple(r.name for r in s.sources),
                _pattern(s.match),
                None,
                Policy(NO_RETRY, s.late_dead_letter or DEFAULT_QUEUE),
                None,
                None,
            )
        )
    return out
