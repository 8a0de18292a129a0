"""Which producer -> consumer hops of the event flow can actually happen.

A consumer's pattern can make a hop impossible: a route on ``status: [failed]`` is never
triggered by an ``emit`` whose data sets ``status: ok``. Here every event type node is split
per producer, and a consumes edge is kept only if the consumer's pattern may accept what
that producer emits, judged from the *constant* parts of its ``emit`` templates. Anything
templated, or a pattern using ``$or``, is assumed to match: pruning is only ever safe.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Mapping

import networkx as nx

from . import model as m
from .graph import flow_only, induced
from .patterns import PatternError, compile_pattern

UNKNOWN = object()  # a value only known at run time (a template)


@dataclass(frozen=True, slots=True)
class Pruned:
    producer: str
    event: str
    consumer: str
    reason: str


def feasible_flow(graph: nx.DiGraph, full: nx.DiGraph | None = None) -> tuple[nx.DiGraph, list[Pruned]]:
    """The looping part of the flow graph, with event nodes split per producer (``event:T@producer``)
    and impossible hops removed.

    Pruning only removes hops, so every loop of the result lies inside a strongly connected
    part of the plain flow graph: only those parts are split and checked. *full* is
    ``flow_only(graph)`` when the caller has it already.
    """
    full = flow_only(graph) if full is None else full
    looping = set().union(*(c for c in nx.strongly_connected_components(full)
                            if len(c) > 1 or full.has_edge(*(next(iter(c)),) * 2)))
    flow = full if len(looping) == len(full) else induced(full, looping)
    h = nx.DiGraph()
    pruned: list[Pruned] = []
    for node, attrs in flow.nodes(data=True):
        if attrs["kind"] != "event":
            h.add_node(node, **attrs)
    for u, v, attrs in flow.edges(data=True):
        if attrs["kind"] == "delivers":
            h.add_edge(u, v, **attrs)
    patterns = {n: _usable_pattern(a.get("element")) for n, a in flow.nodes(data=True) if a["kind"] != "event"}
    for node, attrs in flow.nodes(data=True):
        if attrs["kind"] != "event":
            continue
        consumers = list(flow.successors(node))
        for producer in flow.predecessors(node):
            copy = f"{node}@{producer}"
            h.add_node(copy, **attrs, original=node)
            h.add_edge(producer, copy, **flow.edges[producer, node], original=(producer, node))
            emitted = [_emitted(a) for a in flow.edges[producer, node].get("actions") or []]
            for consumer in consumers:
                reason = _excluded(patterns[consumer], emitted)
                if reason is None:
                    h.add_edge(copy, consumer, **flow.edges[node, consumer], original=(node, consumer))
                else:
                    pruned.append(Pruned(producer, node, consumer, reason))
    return h, pruned


def _usable_pattern(element: Any) -> Mapping | None:
    """The consumer's pattern if pruning may use it (none, or one with `$or`: never prune)."""
    pattern = _pattern_of(element)
    return None if pattern is None or _has_or(pattern.value) else pattern.value


def _excluded(pattern: Mapping | None, emitted: list[dict]) -> str | None:
    """Why the pattern rejects every one of these emitted events, or None if it may accept one."""
    if pattern is None or not emitted:
        return None
    reasons = []
    for event in emitted:
        reason = _rejects(pattern, event)
        if reason is None:
            return None
        reasons.append(reason)
    return reasons[0]


def _pattern_of(element: Any) -> m.Pattern | None:
    if isinstance(element, m.Orchestration):
        return element.trigger.match
    return getattr(element, "match", None)


def _has_or(node: Any) -> bool:
    if isinstance(node, Mapping):
        return "$or" in node or any(_has_or(v) for v in node.values())
    return False


def _emitted(action: m.EmitAction) -> dict:
    """The event an emit produces, as far as it is known before run time."""
    data = _known(action.data.value) if action.data is not None else None
    return {"type": action.type.name, "data": data}


def _known(value: Any) -> Any:
    if isinstance(value, str):
        return UNKNOWN if ("{{" in value or "{%" in value) else value
    if isinstance(value, Mapping):
        return {k: _known(v) for k, v in value.items()}
    if isinstance(value, tuple):
        items = [_known(v) for v in value]
        return UNKNOWN if any(i is UNKNOWN or _contains_unknown(i) for i in items) else items
    return value


def _contains_unknown(value: Any) -> bool:
    if value is UNKNOWN:
        return True
    if isinstance(value, dict):
        return any(_contains_unknown(v) for v in value.values())
    if isinstance(value, list):
        return any(_contains_unknown(v) for v in value)
    return False


def _rejects(pattern: Mapping, event: dict) -> str | None:
    """A reason the pattern cannot match *event*, checking one leaf at a time; None if it may match."""
    for path, leaf in _leaves(pattern, ()):
        if path[0] != "data":
            continue  # other attributes (source, subject...) are not known statically
        value, known = _lookup(event, path)
        if not known:
            continue
        leaf_json = json.dumps(m.thaw(leaf), sort_keys=True)
        value_json = None if value is _MISSING else json.dumps(value, sort_keys=True)
        if not _leaf_accepts(path, leaf_json, value_json):
            shown = "absent" if value is _MISSING else repr(value)
            return f"{'.'.join(map(str, path))} is {shown} in the emit; the pattern wants {m.thaw(leaf)}"
    return None


@lru_cache(maxsize=65536)
def _leaf_accepts(path: tuple, leaf_json: str, value_json: str | None) -> bool:
    """Whether one pattern leaf accepts one constant (or absent) value; memoised, meshes repeat them."""
    probe_event = _nest(path, json.loads(value_json)) if value_json is not None else {}
    try:
        return compile_pattern(_nest(path, json.loads(leaf_json))).matches(probe_event)
    except PatternError:
        return True  # an invalid pattern is reported elsewhere; never prune on it


_MISSING = object()


def _leaves(node: Mapping, path: tuple):
    for key, value in node.items():
        if isinstance(value, Mapping):
            yield from _leaves(value, (*path, key))
        else:
            yield (*path, key), value


def _lookup(event: dict, path: tuple) -> tuple[Any, bool]:
    """(value, known): _MISSING when provably absent; known is False when a template decides."""
    node: Any = event
    for part in path:
        if node is UNKNOWN:
            return None, False
        if not isinstance(node, dict):
            return _MISSING, not _contains_unknown(event.get("data"))
        if part not in node:
            return _MISSING, not _contains_unknown(event.get("data"))
        node = node[part]
    if node is UNKNOWN or _contains_unknown(node):
        return None, False
    return node, True


def _nest(path: tuple, value: Any) -> dict:
    for part in reversed(path):
        value = {part: value}
    return value
