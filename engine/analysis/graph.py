"""Mesh -> event-flow graph (``networkx.DiGraph``), and an orchestration's step graph.

Pure construction, no checks. Node ids are ``"<kind>:<name>"``; every node carries ``kind``,
``label`` and ``loc``; every edge carries ``kind`` and the ``loc`` where it is declared.

Node kinds: ``event`` (an event type), ``route``, ``subscription`` (one subscription of a
service; ``service`` names it), ``orchestration``, ``stream``, ``dlq`` (a dead-letter queue),
``endpoint`` (an HTTP URL), ``schedule`` (a source of events on a timetable).
Edge kinds: ``consumes`` (event -> consumer), ``emits`` (producer -> event), ``delivers``
(route -> subscription it targets directly; ``event`` names the type), ``dead-letters``
(consumer -> dlq), ``calls`` (consumer -> endpoint), ``awaits`` (event -> orchestration
with a wait step on it; ``step`` names it), ``runs`` (orchestration -> the orchestration a
`run:` step of it starts as a child run; ``steps`` names them). Only the first three carry events
between elements, so only they can form circular events (see :data:`FLOW_EDGES`). An
``emits`` edge lists the ``emit`` actions behind it (``actions``) and is marked ``handler``
when a Python handler of the producer may emit that type too, with data nobody can know.
"""
from __future__ import annotations

import networkx as nx

from ..language import model as m

FLOW_EDGES = frozenset({"consumes", "emits", "delivers"})


def event_id(name: str) -> str:
    return f"event:{name}"


def subscription_id(sub: m.Subscription) -> str:
    return f"subscription:{sub.service}/{sub.name}"


def build_flow_graph(mesh: m.Mesh) -> nx.DiGraph:
    """Every element of the mesh and how events flow between them."""
    g = nx.DiGraph()
    for et in mesh.event_types.values():
        g.add_node(
            event_id(et.name), kind="event", label=et.name, loc=et.loc, element=et, external=et.external
        )
    for policy_holder, node in _consumers(mesh, g):
        _add_dead_letter(g, node, m.resolve_delivery(mesh, policy_holder))
    _schedules(mesh, g)
    _add_runs(mesh, g)
    return g


def _schedules(mesh: m.Mesh, g: nx.DiGraph) -> None:
    """A schedule is a source: it consumes nothing and emits its type."""
    for schedule in mesh.schedules.values():
        node = f"schedule:{schedule.name}"
        g.add_node(node, kind="schedule", label=schedule.name, loc=schedule.loc, element=schedule)
        _emit_edge(g, node, schedule.emit.type, schedule.emit)


def _add_runs(mesh: m.Mesh, g: nx.DiGraph) -> None:
    """A ``runs`` edge per `run:` step naming a known orchestration (one per pair of orchestrations,
    listing the steps); an unknown one is reported by the analysis."""
    for orch in mesh.orchestrations.values():
        for step in orch.steps:
            if step.run is None or step.run.orchestration.name not in mesh.orchestrations:
                continue
            parent, child = f"orchestration:{orch.name}", f"orchestration:{step.run.orchestration.name}"
            if not g.has_edge(parent, child):
                g.add_edge(parent, child, kind="runs", loc=step.run.orchestration.loc, steps=[])
            g.edges[parent, child]["steps"].append(step.id)


def run_started_types(g: nx.DiGraph) -> set[str]:
    """Trigger types of the orchestrations a `run:` step starts: their runs need no such event."""
    return {g.nodes[v]["element"].trigger.on.name for _, v, k in g.edges(data="kind") if k == "runs"}


def _consumers(mesh: m.Mesh, g: nx.DiGraph):
    """Add every consumer node with its edges; yield (delivery ref, node id) for dead-letter edges."""
    for route in mesh.routes.values():
        node = f"route:{route.name}"
        g.add_node(node, kind="route", label=route.name, loc=route.loc, element=route)
        for src in route.sources:
            _consume(g, src, node, route.match)
        _route_outputs(mesh, g, route, node)
        yield route.delivery, node
    for service in mesh.services.values():
        for sub in service.subscriptions:
            node = subscription_id(sub)
            g.add_node(
                node, kind="subscription", label=service.name, loc=sub.loc, element=sub, service=service.name
            )
            _consume(g, sub.on, node, sub.match)
            handled = {ref.name for ref in sub.emits} if m.runs_handler(sub.actions) else set()
            _emits(g, node, sub.actions, sub.emits, handled)
            yield sub.delivery, node
    for orch in mesh.orchestrations.values():
        node = f"orchestration:{orch.name}"
        g.add_node(node, kind="orchestration", label=orch.name, loc=orch.loc, element=orch)
        _consume(g, orch.trigger.on, node, orch.trigger.match)
        _emits(g, node, orch.all_actions(), orch.declared_emits(), _handled(orch))
        _awaits(g, orch, node)
        for step in orch.steps:
            yield step.retry, node
    for stream in mesh.streams.values():
        node = f"stream:{stream.name}"
        g.add_node(node, kind="stream", label=stream.name, loc=stream.loc, element=stream)
        for src in stream.sources:
            _consume(g, src, node, stream.match)
        _emit_edge(g, node, stream.emit_type)
        if stream.late_emit_type is not None:
            _emit_edge(g, node, stream.late_emit_type)
        if stream.late_dead_letter:
            _add_dead_letter(g, node, m.DeliverySpec(stream.loc, dead_letter=stream.late_dead_letter))


def _awaits(g: nx.DiGraph, orch: m.Orchestration, node: str) -> None:
    """The events its wait steps await: a run takes one and goes on, so the edge is of its own
    kind, on no circular event."""
    for step in orch.steps:
        if step.wait is not None and step.wait.event is not None:
            g.add_edge(_ensure_event(g, step.wait.event), node, kind="awaits", loc=step.wait.event.loc,
                       pattern=step.wait.match, step=step.id)


def _ensure_event(g: nx.DiGraph, ref: m.Ref) -> str:
    node = event_id(ref.name)
    if node not in g:  # referenced but never declared: analysis reports it; keep the flow whole
        g.add_node(node, kind="event", label=ref.name, loc=ref.loc, element=None, external=False)
    return node


def _consume(g: nx.DiGraph, ref: m.Ref, consumer: str, pattern: m.Pattern | None) -> None:
    g.add_edge(_ensure_event(g, ref), consumer, kind="consumes", loc=ref.loc, pattern=pattern)


def _emit_edge(g: nx.DiGraph, producer: str, ref: m.Ref, action: m.EmitAction | None = None) -> None:
    target = _ensure_event(g, ref)
    if not g.has_edge(producer, target):
        g.add_edge(producer, target, kind="emits", loc=ref.loc, actions=[])
    if action is not None:
        g.edges[producer, target]["actions"].append(action)


def _emits(
    g: nx.DiGraph,
    producer: str,
    actions: tuple[m.Action, ...],
    declared: tuple[m.Ref, ...],
    handled: set[str],
) -> None:
    """Emit edges of the `emit` actions and of the declared types; those in *handled* (types a
    Python handler of the producer may emit, with any data) are marked ``handler``."""
    for action in actions:
        if isinstance(action, m.EmitAction):
            _emit_edge(g, producer, action.type, action)
        elif isinstance(action, m.CallAction) and action.http:
            _endpoint(g, producer, action.http, action.loc)
    for ref in declared:
        _emit_edge(g, producer, ref)
    for name in handled:
        if g.has_edge(producer, event_id(name)):
            g.edges[producer, event_id(name)]["handler"] = True


def _handled(orch: m.Orchestration) -> set[str]:
    """Types a handler of the orchestration may emit: what the runtime lets each attempt emit
    (see ``Step.may_emit``), for the steps and ends that run a handler."""
    out: set[str] = set()
    for step in orch.steps:
        if m.runs_handler(step.actions + step.compensate):
            out |= step.may_emit()
    if m.runs_handler(orch.on_success + orch.on_failure):
        out |= orch.end_may_emit()
    return out


def _endpoint(g: nx.DiGraph, producer: str, url: str, loc) -> None:
    node = f"endpoint:{url}"
    g.add_node(node, kind="endpoint", label=url, loc=loc, element=None)
    g.add_edge(producer, node, kind="calls", loc=loc)


def _route_outputs(mesh: m.Mesh, g: nx.DiGraph, route: m.Route, node: str) -> None:
    outputs = route.output_types()
    if route.publishes():
        for ref in outputs:
            _emit_edge(g, node, ref)
    for target in route.to:
        if target.kind == "http":
            _endpoint(g, node, target.value, target.loc)
        elif target.kind == "service" and target.value in mesh.services:
            for ref in outputs:
                for sub in mesh.services[target.value].subscriptions:
                    if sub.on.name == ref.name:
                        _ensure_event(g, ref)
                        g.add_edge(
                            node, subscription_id(sub), kind="delivers", loc=target.loc, event=ref.name
                        )


def _add_dead_letter(g: nx.DiGraph, node: str, spec: m.DeliverySpec | None) -> None:
    if spec is None or not spec.dead_letter:
        return
    dlq = f"dlq:{spec.dead_letter}"
    g.add_node(dlq, kind="dlq", label=spec.dead_letter, loc=spec.loc, element=None)
    g.add_edge(node, dlq, kind="dead-letters", loc=spec.loc, retry=spec.retry)


def flow_only(g: nx.DiGraph) -> nx.DiGraph:
    """The subgraph of edges that carry events between elements (where loops can form)."""
    edges = [
        (u, v, attrs)
        for u, nbrs in g.adj.items()
        for v, attrs in nbrs.items()
        if attrs.get("kind") in FLOW_EDGES
    ]
    ends = {n for u, v, _ in edges for n in (u, v)}
    return _copy(g, [n for n in g if n in ends], edges)


def induced(g: nx.DiGraph, nodes: set) -> nx.DiGraph:
    """``g.subgraph(nodes).copy()``, always in *g*'s order.

    Built directly: walking a subgraph view costs seconds on a big mesh, and a view of a small
    part iterates in the order of the node set, which changes with the string hash seed.
    """
    keep = [n for n in g if n in nodes]
    return _copy(g, keep, [(u, v, attrs) for u in keep for v, attrs in g.adj[u].items() if v in nodes])


def _copy(g: nx.DiGraph, nodes: list, edges: list) -> nx.DiGraph:
    out = g.__class__()
    out.graph.update(g.graph)
    out.add_nodes_from((n, g.nodes[n].copy()) for n in nodes)
    out.add_edges_from((u, v, attrs.copy()) for u, v, attrs in edges)
    return out


def produced_types(g: nx.DiGraph) -> set[str]:
    """Event type names something in the mesh produces (emits, or delivers directly)."""
    out = {g.nodes[v]["label"] for u, v, k in g.edges(data="kind") if k == "emits"}
    out |= {e for _, _, e in g.edges(data="event") if e}
    return out


def consumed_types(g: nx.DiGraph) -> set[str]:
    """Event type names something consumes, or an orchestration's wait step awaits."""
    return {g.nodes[u]["label"] for u, v, k in g.edges(data="kind") if k in ("consumes", "awaits")}


def build_step_graph(orch: m.Orchestration) -> nx.DiGraph:
    """Steps as nodes, an edge ``a -> b`` when b needs a (unknown ids become ``missing`` nodes)."""
    g = nx.DiGraph()
    for step in orch.steps:
        g.add_node(step.id, kind="step", label=step.id, loc=step.loc, element=step)
    for step in orch.steps:
        for need in step.needs:
            if need.name not in g:
                g.add_node(need.name, kind="missing", label=need.name, loc=need.loc, element=None)
            g.add_edge(need.name, step.id, kind="needs", loc=need.loc)
    return g
