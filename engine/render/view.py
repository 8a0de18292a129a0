"""What a diagram shows, independent of the output format.

Every renderer draws a :class:`RenderView`: a small, frozen list of nodes and edges with the
words already chosen (labels, retry summaries, badges). Building the view once keeps the
four formats in agreement about *what* is drawn; they only differ in *how*.

Two views exist: the whole event flow of a mesh (:func:`flow_view`) and one orchestration's
step graph (:func:`orchestration_view`).
"""
from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Iterable, Sequence

from ..core.errors import Diagnostic, UsageError
from ..language import model as m
from .summary import actions_summary, fmt_seconds, retry_summary, schedule_summary, window_summary
from .tables import (
    Table,
    diagnostics_table,
    location,
    mesh_tables,
    orchestration_tables,
)

if TYPE_CHECKING:
    import networkx as nx

#: Edge kinds drawn against the layout direction (undoing work goes backwards).
BACKWARD_KINDS = frozenset({"compensates"})


@dataclass(frozen=True, slots=True)
class ViewNode:
    """One box: ``label`` on top, then an optional ``sublabel`` and a line of ``badges``.

    ``entry`` marks where events come in (an external event type, a trigger): the layout keeps
    those on the left when it has to break a cycle.
    """

    id: str
    label: str
    kind: str
    sublabel: str = ""
    group: str | None = None
    badges: tuple[str, ...] = ()
    loc: str = ""
    entry: bool = False


@dataclass(frozen=True, slots=True)
class ViewEdge:
    """One arrow; ``marked`` when it lies on a circular-event cycle."""

    src: str
    dst: str
    kind: str
    label: str = ""
    marked: bool = False


@dataclass(frozen=True, slots=True)
class RenderView:
    """Everything a renderer needs: the diagram and, for HTML, the element tables."""

    title: str
    nodes: tuple[ViewNode, ...]
    edges: tuple[ViewEdge, ...]
    tables: tuple[Table, ...] = ()
    subtitle: str = ""

    def groups(self) -> dict[str, list[ViewNode]]:
        """Grouped nodes by group name, in first-seen order (a service and its subscriptions)."""
        out: dict[str, list[ViewNode]] = {}
        for node in self.nodes:
            if node.group is not None:
                out.setdefault(node.group, []).append(node)
        return out

    def kinds(self) -> list[str]:
        """Node kinds present, in first-seen order (for legends)."""
        return list(dict.fromkeys(node.kind for node in self.nodes))

    def edge_kinds(self) -> list[str]:
        return list(dict.fromkeys(edge.kind for edge in self.edges))

    def has_cycles(self) -> bool:
        return any(edge.marked for edge in self.edges)


# --- flow view ----------------------------------------------------------------------------

def flow_view(
    mesh: m.Mesh,
    graph: "nx.DiGraph",
    cycles: Iterable[tuple[str, str]] = (),
    diagnostics: Sequence[Diagnostic] = (),
) -> RenderView:
    """The whole event flow; ``cycles`` holds the (u, v) graph edges on circular-event cycles."""
    marked = set(cycles)
    nodes = tuple(_flow_node(mesh, node, data) for node, data in graph.nodes(data=True))
    edges = tuple(
        ViewEdge(u, v, data["kind"], _edge_label(data), (u, v) in marked)
        for u, v, data in graph.edges(data=True)
    )
    tables = mesh_tables(mesh) + diagnostics_table(diagnostics, mesh.root)
    name = mesh.root.rstrip("/").rsplit("/", 1)[-1] or mesh.root
    return RenderView(f"Event flow: {name}", nodes, edges, tables, subtitle=_counts(mesh))


def _counts(mesh: m.Mesh) -> str:
    parts = [
        (len(mesh.event_types), "event type"), (len(mesh.routes), "route"),
        (len(mesh.services), "service"), (len(mesh.orchestrations), "orchestration"),
        (len(mesh.streams), "stream"), (len(mesh.schedules), "schedule"),
    ]
    return ", ".join(f"{n} {word}{'' if n == 1 else 's'}" for n, word in parts if n)


def _flow_node(mesh: m.Mesh, node: str, data: dict) -> ViewNode:
    kind, element = data["kind"], data.get("element")
    loc = location(data.get("loc"), mesh.root)
    label, sublabel, group, badges = data["label"], "", None, ()
    if kind == "event":
        sublabel = "undeclared" if element is None else ("external" if element.external else "")
        badges = _version_badge(element)
    elif kind in ("subscription", "route"):
        spec = m.resolve_delivery(mesh, element.delivery)
        sublabel, badges = retry_summary(spec), _consumer_badges(element) + _breaker_badge(spec)
        if kind == "subscription":
            label, group = element.name, element.service
    elif kind == "stream":
        sublabel = window_summary(element.window)
    elif kind == "orchestration":
        sublabel = f"{len(element.steps)} steps"
    elif kind == "dlq":
        sublabel = "dead-letter queue"
    elif kind == "schedule":
        sublabel = schedule_summary(element)
    return ViewNode(node, label, kind, sublabel, group, badges, loc,
                    entry=sublabel == "external" or kind == "schedule")


def _version_badge(element: m.EventType | None) -> tuple[str, ...]:
    """``v2 backward``: a versioned type's current version and compatibility mode (docs/versions.md)."""
    if element is None or not element.versions:
        return ()
    return (f"v{element.version} {element.compatibility}",)


def _breaker_badge(spec: m.DeliverySpec | None) -> tuple[str, ...]:
    """``breaker 5 → 1m``: opens after 5 failures in a row, stays open 1 minute (``, pause``: it
    holds the deliveries due meanwhile)."""
    cb = spec.circuit_breaker if spec is not None else None
    pause = ", pause" if cb is not None and cb.pauses else ""
    return () if cb is None else (f"breaker {cb.failure_threshold} → {fmt_seconds(cb.reset_after)}{pause}",)


def _consumer_badges(element: m.Route | m.Subscription) -> tuple[str, ...]:
    badges = []
    if element.match is not None:
        badges.append("match")
    if element.when is not None:
        badges.append("when")
    if getattr(element, "ordering", None) is not None:
        badges.append("ordered")
    if getattr(element, "version", None) is not None:
        badges.append(f"reads v{element.version}")  # a subscription pinned to a schema version
    if element.loop is not None:
        badges.append(f"loop ≤{element.loop.max_hops}")
    return tuple(badges)


def _edge_label(data: dict) -> str:
    if data["kind"] == "delivers":
        return data.get("event") or ""
    if data["kind"] == "runs":  # a `run:` step starts a child run of the other orchestration
        return "run: " + ", ".join(data.get("steps", ()))
    if data["kind"] == "consumes" and data.get("pattern") is not None:
        return "match"
    if data["kind"] == "awaits":
        return f"awaited by {data['step']}"
    return ""


# --- orchestration view -------------------------------------------------------------------

def orchestration_view(mesh: m.Mesh, name: str, diagnostics: Sequence[Diagnostic] = ()) -> RenderView:
    """One orchestration: trigger -> steps (edges = needs) -> on_success / on_failure.

    ``on_success`` follows the last steps (those no step needs); ``on_failure`` follows every
    step, since any step can fail (an action or template error, a timeout, an injected fault).

    Raises
    ------
    UsageError
        *name* is not an orchestration of the mesh (with a did-you-mean suggestion).
    """
    orch = mesh.orchestrations.get(name)
    if orch is None:
        raise UsageError(_unknown_orchestration(mesh, name))
    nodes = [_trigger_node(mesh, orch)] + [_step_node(mesh, step) for step in orch.steps]
    nodes += _missing_nodes(orch) + _child_nodes(mesh, orch)
    edges = _step_edges(orch) + _run_edges(orch)
    nodes, edges = nodes + _awaited_nodes(mesh, orch), edges + _awaited_edges(orch)
    leaves = [f"step:{s.id}" for s in orch.steps if not any(s.id in _needs(o) for o in orch.steps)]
    every = [f"step:{s.id}" for s in orch.steps]
    for key, actions, kind, froms in (("on_success", orch.on_success, "success", leaves),
                                      ("on_failure", orch.on_failure, "failure", every)):
        nodes.append(ViewNode(f"end:{key}", key, kind, actions_summary(actions) or "(nothing)"))
        edges += [ViewEdge(step, f"end:{key}", kind) for step in froms]
    tables = orchestration_tables(mesh, orch) + diagnostics_table(diagnostics, mesh.root)
    subtitle = orch.description or ""
    return RenderView(f"Orchestration: {orch.name}", tuple(nodes), tuple(edges), tables, subtitle)


def _unknown_orchestration(mesh: m.Mesh, name: str) -> str:
    known = sorted(mesh.orchestrations)
    if not known:
        return f"unknown orchestration {name!r}: this mesh has no orchestrations"
    message = f"unknown orchestration {name!r}"
    close = difflib.get_close_matches(name, known, n=1)
    if close:
        message += f"; did you mean {close[0]!r}?"
    return message + f" (known: {', '.join(known)})"


def _needs(step: m.Step) -> set[str]:
    return {ref.name for ref in step.needs}


def _trigger_node(mesh: m.Mesh, orch: m.Orchestration) -> ViewNode:
    trigger = orch.trigger
    badges = tuple(b for b, v in (("match", trigger.match), ("when", trigger.when)) if v is not None)
    if orch.timeout is not None:  # the run's own bound, from its start
        badges += (f"run timeout {fmt_seconds(orch.timeout)} → {orch.on_timeout}",)
    loc = location(orch.trigger.loc, mesh.root)
    return ViewNode("trigger", orch.trigger.on.name, "trigger", "trigger", None, badges, loc, entry=True)


def _awaited_nodes(mesh: m.Mesh, orch: m.Orchestration) -> list[ViewNode]:
    """What the wait steps wait for, where it comes in: an event type, or a signal."""
    out: dict[str, ViewNode] = {}
    for step in orch.steps:
        wait = step.wait
        if wait is None:
            continue
        if wait.event is not None:
            out.setdefault(f"awaited:event:{wait.event.name}", ViewNode(
                f"awaited:event:{wait.event.name}", wait.event.name, "awaited", "awaited event", None,
                ("match",) if wait.match is not None else (), location(wait.event.loc, mesh.root),
                entry=True))
        else:
            sub = "approval" if wait.approvers else "signal"
            out.setdefault(f"awaited:signal:{wait.signal}", ViewNode(
                f"awaited:signal:{wait.signal}", wait.signal, "awaited", sub, None, tuple(wait.approvers),
                location(wait.loc, mesh.root), entry=True))
    return list(out.values())


def _awaited_edges(orch: m.Orchestration) -> list[ViewEdge]:
    edges = []
    for step in orch.steps:
        wait = step.wait
        if wait is not None:
            what = f"event:{wait.event.name}" if wait.event is not None else f"signal:{wait.signal}"
            corr = wait.correlate
            label = "" if corr is None else f"{_bare(corr.event)} = {_bare(corr.run)}"
            edges.append(ViewEdge(f"awaited:{what}", f"step:{step.id}", "awaits", label))
    return edges


def _bare(template: m.TemplateString) -> str:
    """A template that is one expression, without its braces (`data.order_id`)."""
    found = re.fullmatch(r"\{\{\s*(.*?)\s*\}\}", template.text.strip())
    return found.group(1) if found else template.text


def _step_node(mesh: m.Mesh, step: m.Step) -> ViewNode:
    """A step box: id, what it does, and a badge per behaviour that changes how it runs."""
    if step.wait is not None:
        return _wait_node(mesh, step)
    badges = []
    if step.when is not None:
        badges.append("when")
    if step.foreach is not None:
        badges.append("foreach" + (f" ×{step.concurrency}" if step.concurrency else ""))
    if step.retry is not None:
        spec = m.resolve_delivery(mesh, step.retry)
        badges.append(f"retry {spec.retry.max_attempts}x" if spec and spec.retry else "retry")
    if step.timeout is not None:
        badges.append(f"timeout {fmt_seconds(step.timeout)}")
    if step.compensate:
        badges.append("compensate")
    policy = m.resolve_delivery(mesh, step.retry)
    breaker = step.circuit_breaker or (policy.circuit_breaker if policy is not None else None)
    if breaker is not None and breaker.pauses:  # a step's breaker never pauses, whatever its policy says
        breaker = replace(breaker, on_open="dead_letter")
    badges += _breaker_badge(m.DeliverySpec(step.loc, circuit_breaker=breaker))
    return ViewNode(
        f"step:{step.id}",
        step.id,
        "step",
        f"run {step.run.orchestration.name}" if step.run is not None else actions_summary(step.actions),
        None,
        tuple(badges),
        location(step.loc, mesh.root),
    )


def _wait_node(mesh: m.Mesh, step: m.Step) -> ViewNode:
    """A wait step: what it waits for, its timeout and what the timeout does."""
    wait = step.wait
    what = f"wait for {wait.event.name}" if wait.event is not None else f"wait for signal {wait.signal}"
    badges = ["when"] if step.when is not None else []
    if wait.timeout is not None:
        then = {"fail": "fail", "compensate": "compensate", "continue": "continue"}[wait.on_timeout]
        badges.append(f"timeout {fmt_seconds(wait.timeout)} → {then}")
    if wait.approvers:
        badges.append("approval")
    if step.compensate:
        badges.append("compensate")
    return ViewNode(f"step:{step.id}", step.id, "wait", what, None, tuple(badges),
                    location(step.loc, mesh.root))


def _missing_nodes(orch: m.Orchestration) -> list[ViewNode]:
    known = {s.id for s in orch.steps}
    missing = dict.fromkeys(ref.name for s in orch.steps for ref in s.needs if ref.name not in known)
    return [ViewNode(f"step:{name}", name, "missing", "unknown step") for name in missing]


def _child_nodes(mesh: m.Mesh, orch: m.Orchestration) -> list[ViewNode]:
    """The orchestrations its `run:` steps start (as child runs), one box each."""
    names = dict.fromkeys(s.run.orchestration.name for s in orch.steps if s.run is not None)
    known = mesh.orchestrations
    return [ViewNode(f"orchestration:{name}", name, "orchestration", "child run",
                     loc=location(known[name].loc, mesh.root) if name in known else "")
            for name in names]


def _run_edges(orch: m.Orchestration) -> list[ViewEdge]:
    return [ViewEdge(f"step:{s.id}", f"orchestration:{s.run.orchestration.name}", "runs", "run")
            for s in orch.steps if s.run is not None]


def _step_edges(orch: m.Orchestration) -> list[ViewEdge]:
    """needs edges, trigger -> roots, and a dashed reverse edge per compensable predecessor."""
    by_id = {s.id: s for s in orch.steps}
    edges = [ViewEdge("trigger", f"step:{s.id}", "triggers") for s in orch.steps if not s.needs]
    for step in orch.steps:
        for ref in step.needs:
            edges.append(ViewEdge(f"step:{ref.name}", f"step:{step.id}", "needs"))
    for step in orch.steps:
        for ref in step.needs:
            before = by_id.get(ref.name)
            if before is not None and before.compensate:
                label = "undo: " + actions_summary(before.compensate)
                edges.append(ViewEdge(f"step:{step.id}", f"step:{before.id}", "compensates", label))
    return edges


__all__ = [
    "BACKWARD_KINDS",
    "RenderView",
    "ViewEdge",
    "ViewNode",
    "flow_view",
    "orchestration_view",
]
