"""Checks of `run:` steps: the orchestration they name, and orchestrations that run themselves.

A run cycle is a path back to an orchestration that goes through at least one `run:` step
(``runs`` edges of the flow graph) and otherwise through events: A runs B, or A runs B which
emits what triggers A. Each child run is one hop further from its input, so the runtime stops
one at the hop limit anyway (``loop-detected``); but a cycle that nothing bounds is almost
always a mistake, so it is an error unless an orchestration on it declares ``loop: {max_hops:
N}`` (then a ``bounded-loop`` warning, and the runtime stops the N+1th run of it in a chain).
Cycles of events alone are :func:`~engine.analysis.rules.check_event_cycles`' business.
"""
from __future__ import annotations

import difflib
from typing import Iterator

import networkx as nx

from ..core.errors import Diagnostic, Note
from ..language import model as m
from .graph import flow_only


def check_run_targets(mesh: m.Mesh) -> Iterator[Diagnostic]:
    """A `run:` step must name an orchestration of the mesh."""
    known = sorted(mesh.orchestrations)
    for orch in mesh.orchestrations.values():
        for step in orch.steps:
            ref = step.run.orchestration if step.run is not None else None
            if ref is None or ref.name in mesh.orchestrations:
                continue
            near = difflib.get_close_matches(ref.name, known, n=1)
            yield Diagnostic(
                ref.loc,
                "unknown-orchestration",
                f"step {step.id!r} of {orch.name!r} runs unknown orchestration {ref.name!r}",
                hint=f"did you mean {near[0]!r}?" if near else f"orchestrations are: {', '.join(known)}",
            )


def check_run_cycles(graph: nx.DiGraph) -> Iterator[Diagnostic]:
    """Every orchestration that (transitively) runs itself, once per set of elements involved."""
    runs = sorted((u, v) for u, v, k in graph.edges(data="kind") if k == "runs")
    if not runs:
        return
    paths = flow_only(graph)
    paths.add_edges_from((u, v, graph.edges[u, v]) for u, v in runs)
    seen: set[frozenset] = set()
    for parent, child in runs:
        try:
            back = nx.shortest_path(paths, child, parent)
        except nx.NetworkXNoPath:
            continue
        cycle = [parent] + back[:-1]  # (empty for a step that runs its own orchestration)
        key = frozenset(cycle)
        if key in seen:
            continue
        seen.add(key)
        yield _diagnostic(graph, _rotate(graph, cycle))


def _rotate(graph: nx.DiGraph, cycle: list[str]) -> list[str]:
    """Start at the alphabetically first orchestration, so reports are stable."""
    start = cycle.index(min(n for n in cycle if graph.nodes[n]["kind"] == "orchestration"))
    return cycle[start:] + cycle[:start]


def _diagnostic(graph: nx.DiGraph, cycle: list[str]) -> Diagnostic:
    hops = list(zip(cycle, cycle[1:] + cycle[:1]))
    labels = [graph.nodes[n]["label"] for n in cycle]
    path = " -> ".join(labels + labels[:1])
    notes = tuple(Note(graph.edges[u, v]["loc"], _hop(graph, u, v)) for u, v in hops)
    first = next(graph.edges[u, v]["loc"] for u, v in hops if graph.edges[u, v]["kind"] == "runs")
    loops = [graph.nodes[n]["element"].loop for n in cycle if graph.nodes[n]["kind"] == "orchestration"
             and graph.nodes[n]["element"].loop is not None]
    if loops:
        return Diagnostic(
            first, "bounded-loop",
            f"orchestrations run each other, declared bounded (max_hops {min(x.max_hops for x in loops)}): "
            f"{path}",
            severity="warning", notes=notes,
        )
    return Diagnostic(
        first, "run-cycle", f"orchestration runs itself: {path}", notes=notes,
        hint="a `run:` step must not lead back to its own orchestration; if it is meant to recurse, "
             "bound it with `loop: {max_hops: N}` on the orchestration",
    )


def _hop(graph: nx.DiGraph, u: str, v: str) -> str:
    edge = graph.edges[u, v]
    a, b = _who(graph.nodes[u]), _who(graph.nodes[v])
    if edge["kind"] == "runs":
        return f"{a} runs {b} (step {', '.join(edge['steps'])})"
    if edge["kind"] == "consumes":
        return f"{b} consumes {a}"
    if edge["kind"] == "delivers":
        return f"{a} delivers {edge.get('event')} to {b}"
    return f"{a} emits {b}"


def _who(node: dict) -> str:
    if node["kind"] == "event":
        return node["label"]
    if node["kind"] == "subscription":
        return f"service {node['service']!r}"
    return f"{node['kind']} {node['label']!r}"
