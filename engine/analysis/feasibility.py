"""Which producer -> consumer hops of the event flow can actually happen.

A consumer's filter can make a hop impossible: a route on ``status: [failed]`` (or with
``when: data.status == 'failed'``) is never triggered by an ``emit`` whose data sets
``status: ok``. A hop is pruned only when every event the producer may emit of that type is
rejected, judged from the *constant* parts of its ``emit`` templates. Anything else may match:
a templated value, a pattern using ``$or``, a `when` beyond simple comparisons
(:mod:`engine.language.conditions`), and any emit of a Python handler, which may send every type its
element declares (``emits:``) with any data. So pruning never hides a loop that can happen.

Each event type node is split in two layers of hubs, so that the split graph stays linear in
the size of the mesh: producers are grouped by what they are known to emit (a *signature*:
unknown, or one list of constant shapes) and consumers by their filter (none, or one distinct
pattern and `when`). A producer feeds the hub of its signature, each pattern hub feeds its
consumers, and a signature hub feeds a pattern hub only if that filter may accept that
signature: ``producers + consumers + signatures x filters`` edges, where splitting per
producer and consumer would cost ``producers x consumers``.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Mapping

import networkx as nx

from ..language import model as m
from ..language.conditions import Condition, condition
from ..language.patterns import PatternError, compile_pattern
from ..language.patterns.compiled import scalar_key, scalars
from .graph import flow_only, induced

UNKNOWN = object()  # a value only known at run time (a template)


@dataclass(frozen=True, slots=True)
class Pruned:
    """Hops left out: from *producer* (and *others* more producers) to every consumer of
    *consumers*, through *event* (node ids of the plain flow graph), all inside one strongly
    connected part of it, where a hop could close a loop. The consumers filter alike and
    reject what those producers emit, for *reason* (the first producer's)."""

    event: str
    producer: str
    others: int
    consumers: tuple[str, ...]
    reason: str


@dataclass(frozen=True, slots=True)
class Filter:
    """What a consumer checks before it acts: a pattern pruning may use, and a `when`."""

    pattern: Mapping | None
    when: Condition | None

    @property
    def key(self) -> tuple[str | None, str | None]:
        """Equal for consumers that filter alike (they share one hub)."""
        pattern = json.dumps(m.thaw(self.pattern), sort_keys=True) if self.pattern is not None else None
        return pattern, self.when.text if self.when is not None else None

    def rejects(self, emitted: list[dict] | None) -> str | None:
        """Why every one of these emitted events is refused, or None if one may pass
        (*emitted* None: what is emitted is unknown)."""
        if emitted is None or (self.pattern is None and self.when is None):
            return None
        reasons = []
        for event in emitted:
            reason = _rejects(self.pattern, event) if self.pattern is not None else None
            if reason is None and self.when is not None:
                reason = self.when.rejects(event.get("data"), UNKNOWN)
            if reason is None:
                return None
            reasons.append(reason)
        return reasons[0]

    def exact_leaf(self) -> tuple[str, tuple, frozenset] | None:
        """``(how, path, keys)``: a field of ``data`` that must hold one of a few plain values,
        else the event is rejected. ``pattern``: a pattern leaf listing plain values only (keys
        as the pattern matcher compares them); ``when``: a `when` term ``==`` or ``in`` constants
        (compared as Python does)."""
        if self.pattern is not None:
            for path, leaf in _leaves(self.pattern, ()):
                if path[0] == "data" and isinstance(leaf, tuple) and leaf and all(map(_plain, leaf)):
                    return "pattern", path, frozenset(scalar_key(item) for item in leaf)
        equality = self.when.equality() if self.when is not None else None
        if equality is not None:
            return "when", ("data", *equality[0]), frozenset(equality[1])
        return None


def _plain(item: Any) -> bool:
    return (
        item is None
        or isinstance(item, (str, bool))
        or (isinstance(item, (int, float)) and math.isfinite(item))
    )


class _FilterIndex:
    """The filters of one event type bucketed by an exact-valued leaf each, so that a signature
    is checked in full only against the filters that may accept it (a superset, never fewer)."""

    def __init__(self, filters: list[Filter]):
        self.count = len(filters)
        self.always: list[int] = []  # no exact leaf: always checked in full
        self.buckets: dict[tuple, dict[Any, list[int]]] = {}
        self.under: dict[tuple, list[int]] = {}
        for j, f in enumerate(filters):
            leaf = f.exact_leaf()
            if leaf is None:
                self.always.append(j)
                continue
            self.under.setdefault(leaf[:2], []).append(j)
            bucket = self.buckets.setdefault(leaf[:2], {})
            for key in leaf[2]:
                bucket.setdefault(key, []).append(j)

    def candidates(self, emitted: list[dict] | None) -> list[int]:
        if emitted is None:
            return list(range(self.count))
        found = set(self.always)
        for (how, path), bucket in self.buckets.items():
            for event in emitted:
                value, known = _lookup(event, path)
                if not known or (how == "when" and (value is _MISSING or not _hashable(value))):
                    found.update(self.under[how, path])  # a `when` judges an absent field unknown
                    break
                if how == "when":
                    found.update(bucket.get(value, ()))
                elif value is not _MISSING:
                    for item in scalars(value, []):
                        found.update(bucket.get(scalar_key(item), ()))
        return sorted(found)


def _hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


SIGNATURE = "signature"  # the ``hub`` attribute of a split event node: which layer it belongs to
FILTER = "filter"


def feasible_flow(graph: nx.DiGraph, full: nx.DiGraph | None = None) -> tuple[nx.DiGraph, list[Pruned]]:
    """The looping part of the flow graph, each event node split into hubs (``event:T#s0``,
    ``event:T#f0``: ``original`` names the event node, ``hub`` the layer), impossible hops removed.

    Pruning only removes hops, so every loop of the result lies inside a strongly connected
    part of the plain flow graph: only those parts are split and checked. *full* is
    ``flow_only(graph)`` when the caller has it already. Edges from a producer and to a
    consumer carry ``original``, the plain graph's edge; hub-to-hub edges have kind ``hub``.
    """
    full = flow_only(graph) if full is None else full
    part: dict[str, int] = {}
    for i, c in enumerate(nx.strongly_connected_components(full)):
        if len(c) > 1 or full.has_edge(*(next(iter(c)),) * 2):
            part.update(dict.fromkeys(c, i))
    flow = full if len(part) == len(full) else induced(full, set(part))
    h = nx.DiGraph()
    pruned: list[Pruned] = []
    for node, attrs in flow.nodes(data=True):
        if attrs["kind"] != "event":
            h.add_node(node, **attrs)
    for u, v, attrs in flow.edges(data=True):
        if attrs["kind"] == "delivers":
            h.add_edge(u, v, **attrs)
    filters = {n: consumer_filter(a.get("element")) for n, a in flow.nodes(data=True) if a["kind"] != "event"}
    for node, attrs in flow.nodes(data=True):
        if attrs["kind"] == "event":
            pruned += _split(flow, h, node, attrs, filters, part)
    return h, pruned


def _split(
    flow: nx.DiGraph, h: nx.DiGraph, node: str, attrs: dict, filters: dict, part: dict[str, int]
) -> list[Pruned]:
    """Add the hubs of one event node with their edges to *h*; the groups of hops left out
    that could have closed a loop (inside *node*'s strongly connected *part*)."""
    signatures: dict[str, tuple[list[dict] | None, list[str]]] = {}
    for producer in flow.predecessors(node):
        emitted = emitted_on(flow.edges[producer, node])
        signatures.setdefault(_signature(emitted), (emitted, []))[1].append(producer)
    groups: dict[tuple, tuple[Filter, list[str]]] = {}
    for consumer in flow.successors(node):
        groups.setdefault(filters[consumer].key, (filters[consumer], []))[1].append(consumer)
    sigs, accepts = list(signatures.values()), [f for f, _ in groups.values()]
    index = _FilterIndex(accepts)
    accepted: list[set[int]] = [set() for _ in accepts]  # per filter: the signatures it accepts
    for i, (emitted, producers) in enumerate(sigs):
        hub = f"{node}#s{i}"
        h.add_node(hub, **attrs, original=node, hub=SIGNATURE)
        for producer in producers:
            h.add_edge(producer, hub, **flow.edges[producer, node], original=(producer, node))
        for j in index.candidates(emitted):
            if accepts[j].rejects(emitted) is None:
                h.add_edge(hub, f"{node}#f{j}", kind="hub", loc=attrs["loc"])
                accepted[j].add(i)
    for j, (_, consumers) in enumerate(groups.values()):
        hub = f"{node}#f{j}"
        h.add_node(hub, **attrs, original=node, hub=FILTER)
        for consumer in consumers:
            h.add_edge(hub, consumer, **flow.edges[node, consumer], original=(node, consumer))
    return _left_out(node, sigs, groups, accepted, part)


def _left_out(
    node: str, sigs: list, groups: dict, accepted: list[set[int]], part: dict[str, int]
) -> list[Pruned]:
    """Per filter, the producers of its event whose hops to it were pruned where that mattered.

    Costs what the accepted hops cost, not signatures x filters: what a filter rejects is
    everything it does not accept."""
    inside = [[p for p in producers if part.get(p) == part[node]] for _, producers in sigs]
    total = sum(map(len, inside))
    out = []
    for j, (accepts, consumers) in enumerate(groups.values()):
        looping = tuple(c for c in consumers if part.get(c) == part[node])
        rejected = total - sum(len(inside[i]) for i in accepted[j])
        if not looping or not rejected:
            continue
        first = next(i for i, producers in enumerate(inside) if producers and i not in accepted[j])
        out.append(Pruned(node, inside[first][0], rejected - 1, looping, accepts.rejects(sigs[first][0])))
    return out


def emitted_on(edge: Mapping) -> list[dict] | None:
    """The events an ``emits`` edge may carry, as far as known before run time; None when
    unknown: a handler may emit the type, or the producer is not an `emit` (a route, a stream)."""
    actions = edge.get("actions") or []
    if edge.get("handler") or not actions:
        return None
    return [_emitted(a) for a in actions]


def _signature(emitted: list[dict] | None) -> str:
    """A key equal for producers known to emit the same things (templated parts all alike)."""
    if emitted is None:
        return "*"
    return json.dumps(emitted, sort_keys=True, default=lambda value: "\0{{template}}")


def consumer_filter(element: Any) -> Filter:
    """The filter pruning may use: a pattern without `$or`, and a `when` (None where absent)."""
    pattern = _pattern_of(element)
    usable = None if pattern is None or _has_or(pattern.value) else pattern.value
    when = element.trigger.when if isinstance(element, m.Orchestration) else getattr(element, "when", None)
    return Filter(usable, condition(when.text) if when is not None else None)


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
