"""Static checks over a loaded mesh and its event-flow graph.

Each check is a generator of :class:`Diagnostic` (one concern per function); :func:`analyse`
runs them all. Codes, severities and what to do about each are listed in docs/validate.md.
"""
from __future__ import annotations

import difflib
import importlib.util
from itertools import islice
from typing import Iterable, Iterator

import networkx as nx

from ..core.errors import Diagnostic, Location, Note
from ..language import model as m
from ..language.handlers import allowed_by, local_module, nearby_modules
from ..language.patterns import PatternError, compile_pattern
from ..language.sandbox import TemplateTooComplex
from ..language.templates import condition_text, referenced_fields, secret_reads, syntax_error
from .feasibility import FILTER, SIGNATURE, feasible_flow
from .graph import build_step_graph, consumed_types, flow_only, produced_types, run_started_types
from .handlerstate import module_state_diagnostics
from .invariants import (
    check_invariants,
    invariant_conditions,
    invariant_patterns,
    invariant_templates,
    selector_refs,
)
from .subruns import check_run_cycles, check_run_targets
from .versions import check_versions

MAX_CYCLES_PER_TANGLE = 10
MAX_CYCLES_TOTAL = 100
# hops of a tangle whose cycles are listed; a bigger one shows one (listing costs seconds)
MAX_LISTED_TANGLE = 2_000


def analyse(mesh: m.Mesh, graph: nx.DiGraph) -> list[Diagnostic]:
    """Every static problem of the mesh, in source order."""
    found: list[Diagnostic] = []
    for check in (check_references, check_undeclared_emits, check_steps, check_templates, check_secrets,
                  check_patterns, check_fields, check_handlers, check_policies, check_run_targets,
                  check_invariants):
        found += check(mesh)
    found += check_event_cycles(graph)
    found += check_run_cycles(graph)
    found += check_overload(mesh, graph)
    found += check_versions(mesh, graph)
    return found


# --- references ---------------------------------------------------------------------------

def _unknown(ref: m.Ref, what: str, known: Iterable[str], code: str, hint: str | None = None) -> Diagnostic:
    near = difflib.get_close_matches(ref.name, list(known), n=1)
    return Diagnostic(ref.loc, code, f"unknown {what} {ref.name!r}",
                      hint=f"did you mean {near[0]!r}?" if near else hint)


def _type_refs(mesh: m.Mesh) -> Iterator[m.Ref]:
    for route in mesh.routes.values():
        yield from route.sources
        if route.transform is not None and route.transform.type is not None:
            yield route.transform.type
    for sub in mesh.subscriptions():
        yield sub.on
        yield from sub.emits
        yield from _emit_refs(sub.actions)
    for orch in mesh.orchestrations.values():
        yield orch.trigger.on
        yield from _emit_refs(orch.all_actions())
        yield from orch.declared_emits()
        yield from (s.wait.event for s in orch.steps if s.wait is not None and s.wait.event is not None)
    for stream in mesh.streams.values():
        yield from stream.sources
        yield stream.emit_type
        if stream.late_emit_type is not None:
            yield stream.late_emit_type
    yield from (schedule.emit.type for schedule in mesh.schedules.values())
    yield from selector_refs(mesh)


def _emit_refs(actions: Iterable[m.Action]) -> Iterator[m.Ref]:
    return (a.type for a in actions if isinstance(a, m.EmitAction))


def _policy_refs(mesh: m.Mesh) -> Iterator[m.PolicyRef]:
    for route in mesh.routes.values():
        yield route.delivery
    for sub in mesh.subscriptions():
        yield sub.delivery
    for orch in mesh.orchestrations.values():
        for step in orch.steps:
            yield step.retry


def check_references(mesh: m.Mesh) -> Iterator[Diagnostic]:
    """Unknown event types, services and delivery policies; route targets with nothing to receive."""
    declare = "declare it with `kind: EventType`"
    for ref in _type_refs(mesh):
        if ref.name not in mesh.event_types:
            yield _unknown(ref, "event type", mesh.event_types, "unknown-event-type", declare)
    for ref in _policy_refs(mesh):
        if ref is not None and ref.name is not None and ref.name not in mesh.policies:
            yield _unknown(m.Ref(ref.name, ref.loc), "delivery policy", mesh.policies, "unknown-policy",
                           "declare it with `kind: DeliveryPolicy`")
    for route in mesh.routes.values():
        for target in route.to:
            if target.kind != "service":
                continue
            service = mesh.services.get(target.value)
            if service is None:
                yield _unknown(m.Ref(target.value, target.loc), "service", mesh.services, "unknown-service")
                continue
            subscribed = {sub.on.name for sub in service.subscriptions}
            for ref in route.output_types():
                if ref.name not in subscribed:
                    yield Diagnostic(
                        target.loc,
                        "unreceived-delivery",
                        f"route {route.name!r} delivers {ref.name!r} to service {service.name!r}, "
                        f"which has no subscription on it",
                        hint=f"add a subscription `on: {ref.name}` to {service.name!r}",
                        notes=(Note(service.loc, f"service {service.name!r} is defined here"),),
                    )


def check_undeclared_emits(mesh: m.Mesh) -> Iterator[Diagnostic]:
    """A subscription may only emit the types listed in its `emits`."""
    for sub in mesh.subscriptions():
        declared = {ref.name for ref in sub.emits}
        for ref in _emit_refs(sub.actions):
            if ref.name not in declared:
                yield Diagnostic(
                    ref.loc,
                    "undeclared-emit",
                    f"subscription {sub.label!r} emits {ref.name!r} but does not declare it",
                    hint=f"add {ref.name!r} to its `emits:` list",
                    notes=(Note(sub.loc, "subscription here"),),
                )


# --- orchestration steps ------------------------------------------------------------------


def check_steps(mesh: m.Mesh) -> Iterator[Diagnostic]:
    """Unknown `needs`, `needs` cycles, and steps that can never run because of them."""
    for orch in mesh.orchestrations.values():
        g = build_step_graph(orch)
        ids = [s.id for s in orch.steps]
        blocked: set[str] = set()
        for node, kind in g.nodes(data="kind"):
            if kind == "missing":
                blocked.add(node)
                for _, dependant, loc in g.out_edges(node, data="loc"):
                    near = difflib.get_close_matches(node, ids, n=1)
                    yield Diagnostic(
                        loc,
                        "unknown-step",
                        f"step {dependant!r} of {orch.name!r} needs unknown step {node!r}",
                        hint=f"did you mean {near[0]!r}?" if near else f"steps are: {', '.join(ids)}",
                    )
        for tangle in _tangles(g):
            blocked |= tangle
            cycle = nx.find_cycle(g.subgraph(tangle), source=min(tangle))
            path = " -> ".join([u for u, _ in cycle] + [cycle[0][0]])
            first = g.nodes[cycle[0][1]]
            yield Diagnostic(
                first["loc"],
                "needs-cycle",
                f"steps of {orch.name!r} need each other: {path}",
                hint="a step cannot (even indirectly) need itself; remove one of the `needs`",
                notes=tuple(Note(g.edges[u, v]["loc"], f"{v} needs {u}") for u, v in cycle),
            )
        for node in sorted(_downstream(g, blocked) - blocked):
            yield Diagnostic(
                g.nodes[node]["loc"],
                "unreachable-step",
                f"step {node!r} of {orch.name!r} can never run",
                hint="it needs a step that is unknown or part of a `needs` cycle",
            )


def _tangles(g: nx.DiGraph) -> list[set[str]]:
    """Strongly connected parts that contain a cycle (more than one node, or a self-loop)."""
    return sorted(
        (c for c in nx.strongly_connected_components(g) if len(c) > 1 or g.has_edge(*(next(iter(c)),) * 2)),
        key=lambda c: sorted(c),
    )


def _downstream(g: nx.DiGraph, sources: set[str]) -> set[str]:
    out = set(sources)
    for node in sources:
        out |= nx.descendants(g, node)
    return out


# --- circular events ----------------------------------------------------------------------


def check_event_cycles(
    graph: nx.DiGraph, per_tangle: int = MAX_CYCLES_PER_TANGLE, total: int = MAX_CYCLES_TOTAL
) -> Iterator[Diagnostic]:
    """Every elementary cycle of events (bounded per strongly connected part), as a located path.

    A cycle through a consumer that declares ``loop: {max_hops: N}`` is a warning; any other
    cycle is an error, since each event would be processed forever.
    """
    full = flow_only(graph)
    flow, pruned = feasible_flow(graph, full)
    yield from _pruned_notes(graph, pruned)
    shown = 0
    for tangle in _tangles(flow):
        cycles, more = _example_cycles(flow, tangle, per_tangle)
        for cycle in sorted(cycles, key=lambda c: (len(_plain_ids(flow, c)), sorted(_plain_ids(flow, c)))):
            if shown >= total:
                return
            shown += 1
            yield _cycle_diagnostic(flow, _rotate(flow, cycle))
        if more:
            first = flow.nodes[min(tangle)]
            which = f"the first {len(cycles)} are" if len(cycles) > 1 else "one is"
            elements = len({flow.nodes[n].get("original", n) for n in tangle})
            yield Diagnostic(
                first["loc"],
                "cycles-truncated",
                f"more circular paths exist among these {elements} elements; only {which} shown",
                severity="warning",
                hint="break the loops shown first, then validate again",
            )


def _example_cycles(flow: nx.DiGraph, tangle: set[str], limit: int) -> tuple[list[list[str]], bool]:
    """Up to *limit* elementary cycles of a tangle, and whether it has more.

    A tangle of more than ``MAX_LISTED_TANGLE`` hops gives one cycle, found by a depth-first
    search that stops at the first loop: enumerating the cycles of a dense tangle costs seconds
    and tells no more. It has more than that one exactly when it has more hops than nodes (a
    strongly connected part with as many hops as nodes is a single ring).
    """
    names = sorted(tangle)
    sub = nx.DiGraph()
    sub.add_nodes_from(names)
    sub.add_edges_from((u, v) for u in names for v in flow.succ[u] if v in tangle)
    if sub.number_of_edges() > MAX_LISTED_TANGLE:
        return [[u for u, _ in nx.find_cycle(sub, source=names[0])]], sub.number_of_edges() > len(names)
    # networkx walks sets of nodes, whose order for strings changes with Python's hash seed:
    # on integer labels (given in sorted order) the same cycles are found in every process.
    numbered = nx.relabel_nodes(sub, {name: i for i, name in enumerate(names)}, copy=True)
    cycles = [[names[i] for i in cycle] for cycle in islice(nx.simple_cycles(numbered), limit + 1)]
    return cycles[:limit], len(cycles) > limit


def cycle_edges(graph: nx.DiGraph, limit: int = MAX_CYCLES_TOTAL) -> set[tuple[str, str]]:
    """Edges of *graph* lying on feasible circular events (inside a tangle), for diagrams to mark."""
    flow, _ = feasible_flow(graph)
    edges: set[tuple[str, str]] = set()
    for tangle in _tangles(flow):
        edges |= {
            flow.edges[u, v].get("original", (u, v))
            for u in tangle
            for v in flow.succ[u]
            if v in tangle and flow.edges[u, v]["kind"] != "hub"
        }
    return edges


def _pruned_notes(graph: nx.DiGraph, pruned: list) -> Iterator[Diagnostic]:
    """Say which hops were left out of loop detection where it mattered (they would close a
    loop): one note per event type and group of consumers that filter alike."""
    for p in pruned:
        some = len(p.consumers) > 1 or p.others
        producers = _name(graph.nodes[p.producer]) + (f" and {p.others} more" if p.others else "")
        yield Diagnostic(
            graph.edges[p.event, p.consumers[0]]["loc"],
            "pruned-edge",
            f"{_names(graph, p.consumers)} cannot receive {graph.nodes[p.event]['label']} from "
            f"{producers}: {p.reason}; "
            f"{'these hops are' if some else 'this hop is'} left out of loop detection",
            severity="info",
        )


def _names(graph: nx.DiGraph, nodes: Iterable[str]) -> str:
    nodes = list(nodes)
    first = _name(graph.nodes[nodes[0]])
    return first if len(nodes) == 1 else f"{first} and {len(nodes) - 1} more"


def _plain_ids(flow: nx.DiGraph, cycle: list[str]) -> list[str]:
    """The cycle's nodes named as in a graph split per producer: ``event:T@producer`` for an
    event, keeping the order of reports stable whatever the hubs are called."""
    out = []
    for i, node in enumerate(cycle):
        hub = flow.nodes[node].get("hub")
        if hub == FILTER:
            continue
        out.append(f"{flow.nodes[node]['original']}@{cycle[i - 1]}" if hub == SIGNATURE else node)
    return out


def _rotate(graph: nx.DiGraph, cycle: list[str]) -> list[str]:
    """Start the cycle at its alphabetically first event type (by producer next), so output is
    stable and readable."""
    keys = {
        node: plain
        for node, plain in zip(
            [n for n in cycle if graph.nodes[n].get("hub") != FILTER], _plain_ids(graph, cycle)
        )
    }
    events = [
        n
        for n in cycle
        if graph.nodes[n].get("hub") == SIGNATURE
        or (graph.nodes[n]["kind"] == "event" and "hub" not in graph.nodes[n])
    ] or cycle
    start = cycle.index(min(events, key=lambda n: keys.get(n, n)))
    return cycle[start:] + cycle[:start]


def _cycle_diagnostic(graph: nx.DiGraph, cycle: list[str]) -> Diagnostic:
    """The report of one cycle of the split graph, as the user sees it: each event once, and
    an event a route delivers straight to a service shown between the two."""
    labels, notes, elements, loc = [], [], [], None
    for u, v in zip(cycle, cycle[1:] + cycle[:1]):
        edge = graph.edges[u, v]
        if graph.nodes[u].get("hub") != FILTER:
            labels.append(graph.nodes[u]["label"])
            elements.append(graph.nodes[u]["element"])
        if edge["kind"] == "hub":
            continue
        if edge["kind"] == "delivers":
            labels.append(edge["event"])
        loc = loc or edge["loc"]
        notes.append(_edge_note(graph, u, v))
    path = " -> ".join(labels + labels[:1])
    loops = [e.loop for e in elements if getattr(e, "loop", None) is not None]
    if loops:
        hops = min(loop.max_hops for loop in loops)
        return Diagnostic(
            loc,
            "bounded-loop",
            f"circular events, declared bounded (max_hops {hops}): {path}",
            severity="warning",
            notes=tuple(notes),
        )
    return Diagnostic(
        loc,
        "event-cycle",
        f"circular events: {path}",
        notes=tuple(notes),
        hint="break the loop, or declare it intentional with `loop: {max_hops: N}` on one of its consumers",
    )


def _edge_note(graph: nx.DiGraph, u: str, v: str) -> Note:
    a, b, edge = graph.nodes[u], graph.nodes[v], graph.edges[u, v]
    what = {
        "consumes": f"{_name(b)} consumes {a['label']}",
        "emits": f"{_name(a)} emits {b['label']}",
        "delivers": f"{_name(a)} delivers {edge.get('event')} to {_name(b)}",
    }[edge["kind"]]
    return Note(edge["loc"], what)


def _name(node: dict) -> str:
    if node["kind"] == "subscription":
        sub = node["element"]
        return (
            f"service {sub.service!r} (subscription {sub.name!r})"
            if sub.name != sub.on.name
            else f"service {sub.service!r}"
        )
    return f"{node['kind']} {node['label']!r}"


# --- overload and dead flows --------------------------------------------------------------


def check_overload(mesh: m.Mesh, graph: nx.DiGraph) -> Iterator[Diagnostic]:
    """Events produced but never consumed; consumed but never produced nor external; unused types."""
    produced, consumed = produced_types(graph), consumed_types(graph)
    produced |= run_started_types(graph)  # a `run:` step starts its child with an event of that type
    for route in mesh.routes.values():  # a route's output that leaves the mesh over HTTP is consumed there
        outputs = {ref.name for ref in route.output_types()}
        produced |= outputs
        if any(t.kind == "http" for t in route.to):
            consumed |= outputs
    for name, et in mesh.event_types.items():
        if name in produced and name not in consumed:
            yield Diagnostic(
                et.loc,
                "unconsumed-event",
                f"event type {name!r} is emitted but nothing consumes it",
                severity="warning",
                hint="event overload: drop the emit, or subscribe to it",
            )
        elif name in consumed and name not in produced and not et.external:
            yield Diagnostic(
                et.loc,
                "unproduced-event",
                f"event type {name!r} is consumed but nothing produces it",
                severity="warning",
                hint="a dead flow: emit it somewhere, or mark it `external: true` if it comes from outside",
            )
        elif name not in consumed and name not in produced and not et.external:
            yield Diagnostic(
                et.loc,
                "unused-event-type",
                f"event type {name!r} is neither produced nor consumed",
                severity="warning",
                hint="remove it, or mark it `external: true`",
            )


# --- templates and fields -----------------------------------------------------------------


def check_templates(mesh: m.Mesh) -> Iterator[Diagnostic]:
    """Template syntax errors, at the template's location."""
    conditions = {id(t) for t in _conditions(mesh)}
    for template, _context in _templates(mesh):
        error = syntax_error(condition_text(template.text) if id(template) in conditions else template.text)
        if isinstance(error, TemplateTooComplex):
            yield Diagnostic(
                template.loc,
                "template-too-complex",
                f"template error: {error.message}",
                hint="split it into several templates or steps, or nest fewer loops and brackets",
            )
        elif error is not None:
            yield Diagnostic(
                template.loc,
                "template-syntax",
                f"template error: {error.message}",
                hint="templates are Jinja2: `{{ data.field }}`, `{% if ... %}`",
            )


def _conditions(mesh: m.Mesh) -> Iterator[m.TemplateString]:
    """Every `when`: a bare expression, checked as the runtime compiles it."""
    whens = [r.when for r in mesh.routes.values()] + [s.when for s in mesh.subscriptions()]
    for orch in mesh.orchestrations.values():
        whens += [orch.trigger.when, *(step.when for step in orch.steps)]
    whens += invariant_conditions(mesh)
    return (w for w in whens if w is not None)


def _templates(mesh: m.Mesh) -> Iterator[tuple[m.TemplateString, tuple[str, ...]]]:
    """Every template with the event types whose `data` it reads."""
    for route in mesh.routes.values():
        types = tuple(r.name for r in route.sources)
        for t in m.template_strings(
            route.when,
            route.transform.data if route.transform else None,
            route.transform.subject if route.transform else None,
            *(target.url for target in route.to),
        ):
            yield t, types
    for sub in mesh.subscriptions():
        for t in m.template_strings(sub.when, *m.action_templates(sub.actions)):
            yield t, (sub.on.name,)
    yield from _state_keys(mesh)
    for orch in mesh.orchestrations.values():
        templates = [orch.trigger.when, orch.state.key if orch.state is not None else None]
        for step in orch.steps:
            templates += [step.when, step.foreach, *m.action_templates(step.actions + step.compensate)]
            templates.append(step.run.input if step.run is not None else None)
        templates += m.action_templates(orch.on_success + orch.on_failure)
        templates.append(orch.output)
        for t in m.template_strings(*templates):
            yield t, (orch.trigger.on.name,)
        yield from _wait_templates(orch)
    for stream in mesh.streams.values():
        for t in m.template_strings(stream.emit_data):
            yield t, ()
        for t in m.template_strings(*(a.value for a in stream.aggregates)):  # collect projections
            yield t, tuple(r.name for r in stream.sources)
    yield from _schedule_templates(mesh)
    yield from invariant_templates(mesh)


def _schedule_templates(mesh: m.Mesh) -> Iterator[tuple[m.TemplateString, tuple[str, ...]]]:
    """A schedule's `emit` templates read `tick`, no event."""
    for schedule in mesh.schedules.values():
        for t in m.template_strings(*m.action_templates((schedule.emit,))):
            yield t, ()


def _wait_templates(orch: m.Orchestration) -> Iterator[tuple[m.TemplateString, tuple[str, ...]]]:
    """A wait's templates: `correlate.run` and the default in the run's context (its trigger's
    data), `correlate.event` on the awaited event."""
    for wait in (s.wait for s in orch.steps if s.wait is not None):
        for t in m.template_strings(wait.default, wait.correlate.run if wait.correlate else None):
            yield t, (orch.trigger.on.name,)
        if wait.correlate is not None and wait.event is not None:
            yield wait.correlate.event, (wait.event.name,)


def _state_keys(mesh: m.Mesh) -> Iterator[tuple[m.TemplateString, tuple[str, ...]]]:
    """A service's state key, rendered on every event the service takes."""
    for service in mesh.services.values():
        if service.state is not None:
            yield service.state.key, tuple(dict.fromkeys(sub.on.name for sub in service.subscriptions))


def check_secrets(mesh: m.Mesh) -> Iterator[Diagnostic]:
    """`secrets` only in the URL and headers of an HTTP request, and only as `secrets.NAME`: there a
    value goes to the server it is meant for; anywhere else it would end in events, variables, logs,
    traces or dead letters. Naming each secret lets a request read just those, and only when sent."""
    requests = _request_templates(mesh)
    conditions = {id(t) for t in _conditions(mesh)}
    for template, _types in _templates(mesh):
        reads = secret_reads(condition_text(template.text) if id(template) in conditions else template.text)
        if not reads:
            continue
        if id(template) not in requests:
            yield Diagnostic(
                template.loc,
                "secret-outside-request",
                "template reads `secrets` outside the URL and headers of an HTTP request",
                hint="use `{{ secrets.NAME }}` only in `call: {http: URL, headers: ...}` or a route's "
                "`to: {http: URL}`: anywhere else its value would be written to events, traces or logs",
            )
        elif reads.other is not None:
            yield Diagnostic(
                template.loc,
                "secret-by-name",
                "template reads `secrets` other than as `secrets.NAME`",
                hint="name each secret: `{{ secrets.API_TOKEN }}`, not all of `secrets` nor a computed name",
            )


def _request_templates(mesh: m.Mesh) -> set[int]:
    """The templates that may read `secrets`: URLs and headers of HTTP calls, URLs of route targets."""
    allowed = {id(target.url) for route in mesh.routes.values() for target in route.to if target.url}
    for action in _all_actions(mesh):
        if isinstance(action, m.CallAction) and action.http:
            allowed |= {id(t) for t in m.template_strings(action.url, action.headers)}
    return allowed


def check_patterns(mesh: m.Mesh) -> Iterator[Diagnostic]:
    """Every `match` must be a valid EventBridge pattern; the error points at the bad key."""
    for pattern, _types in _patterns(mesh):
        try:
            compile_pattern(pattern.value)
        except PatternError as exc:
            path = tuple(exc.path)
            while path and path not in pattern.keys:
                path = path[:-1]
            yield Diagnostic(
                pattern.keys.get(path, pattern.loc),
                "bad-pattern",
                f"invalid pattern: {exc}",
                hint="patterns use EventBridge syntax: see docs/dsl.md#patterns",
            )


def check_fields(mesh: m.Mesh) -> Iterator[Diagnostic]:
    """Fields read by templates, patterns, keys and orderings that the event type's schema lacks."""
    for template, types in _templates(mesh):
        for root, path in referenced_fields(template.text):
            if root in ("data", "input") and path:
                yield from _field_problems(mesh, types, path, template.loc, "template reads")
            elif root == "event" and len(path) > 1 and path[0] == "data":
                yield from _field_problems(mesh, types, path[1:], template.loc, "template reads")
    for pattern, types in _patterns(mesh):
        for path, loc in _pattern_fields(pattern):
            if path[0] == "data" and len(path) > 1:
                yield from _field_problems(mesh, types, path[1:], loc, "pattern matches")
    for dotted, types, loc in _field_paths(mesh):
        parts = tuple(dotted.split("."))
        if parts[0] == "data" and len(parts) > 1:
            yield from _field_problems(mesh, types, parts[1:], loc, "field path")


def _patterns(mesh: m.Mesh) -> Iterator[tuple[m.Pattern, tuple[str, ...]]]:
    for route in mesh.routes.values():
        if route.match:
            yield route.match, tuple(r.name for r in route.sources)
    for sub in mesh.subscriptions():
        if sub.match:
            yield sub.match, (sub.on.name,)
    for orch in mesh.orchestrations.values():
        if orch.trigger.match:
            yield orch.trigger.match, (orch.trigger.on.name,)
        for wait in (s.wait for s in orch.steps if s.wait is not None and s.wait.match is not None):
            yield wait.match, (wait.event.name,)
    for stream in mesh.streams.values():
        if stream.match:
            yield stream.match, tuple(r.name for r in stream.sources)
    yield from invariant_patterns(mesh)


def _pattern_fields(pattern: m.Pattern) -> Iterator[tuple[tuple, Location]]:
    """Each event field a pattern tests, with the location of its key (``$or`` branches included)."""

    def walk(node, field, at):
        for key, value in node.items():
            if key == "$or" and isinstance(value, tuple):
                for i, alternative in enumerate(value):
                    if hasattr(alternative, "items"):
                        yield from walk(alternative, field, (*at, key, i))
            elif hasattr(value, "items"):
                yield from walk(value, (*field, key), (*at, key))
            else:
                yield (*field, key), pattern.keys.get((*at, key), pattern.loc)

    return walk(pattern.value, (), ())


def _field_paths(mesh: m.Mesh) -> Iterator[tuple[str, tuple[str, ...], Location]]:
    for et in mesh.event_types.values():
        if et.key:
            yield et.key, (et.name,), et.loc
    for sub in mesh.subscriptions():
        if sub.ordering:
            yield sub.ordering.key, (sub.on.name,), sub.ordering.loc
            yield sub.ordering.sequence, (sub.on.name,), sub.ordering.loc
    for stream in mesh.streams.values():
        types = tuple(r.name for r in stream.sources)
        for dotted in (*stream.key_paths, stream.time, *(a.field for a in stream.aggregates)):
            if dotted:
                yield dotted, types, stream.loc


def _field_problems(
    mesh: m.Mesh, types: tuple[str, ...], path: tuple, loc: Location, what: str
) -> Iterator[Diagnostic]:
    for name in types:
        et = mesh.event_types.get(name)
        if et is None or et.schema is None:
            continue
        verdict = field_verdict(et.schema, path)
        if verdict == "ok":
            continue
        dotted = "data." + ".".join(str(p) for p in path)
        if verdict == "forbidden":
            yield Diagnostic(
                loc,
                "unknown-field",
                f"{what} {dotted}, which {name!r} can never have",
                hint="its schema forbids other properties (additionalProperties: false)",
                notes=(Note(et.loc, f"event type {name!r}"),),
            )
        else:
            yield Diagnostic(
                loc,
                "undeclared-field",
                f"{what} {dotted}, which the schema of {name!r} does not declare",
                severity="warning",
                hint=_field_hint(et.schema, path),
                notes=(Note(et.loc, f"event type {name!r}"),),
            )


def field_verdict(schema, path: tuple) -> str:
    """``ok`` if *path* may exist in data valid under *schema*; ``undeclared`` or ``forbidden`` if not.

    >>> field_verdict({"properties": {"a": {"properties": {"b": {}}}}}, ("a", "c"))
    'undeclared'
    """
    node = schema
    for part in path:
        node = _resolve(schema, node)
        if not hasattr(node, "get") or any(
            k in node for k in ("anyOf", "oneOf", "allOf", "if", "patternProperties")
        ):
            return "ok"  # composed schemas: too many shapes to judge, so say nothing
        if isinstance(part, int) or node.get("type") == "array":
            node = node.get("items", {})
            continue
        props = node.get("properties")
        if props is None:
            return "forbidden" if node.get("additionalProperties") is False else "ok"
        if part not in props:
            return "forbidden" if node.get("additionalProperties") is False else "undeclared"
        node = props[part]
    return "ok"


def _resolve(root, node):
    seen = 0
    while (
        hasattr(node, "get")
        and isinstance(node.get("$ref"), str)
        and node["$ref"].startswith("#/")
        and seen < 32
    ):
        target = root
        for part in node["$ref"][2:].split("/"):
            target = (
                target.get(part.replace("~1", "/").replace("~0", "~"), {}) if hasattr(target, "get") else {}
            )
        node, seen = target, seen + 1
    return node


def _field_hint(schema, path: tuple) -> str | None:
    node = schema
    for part in path[:-1]:
        node = _resolve(schema, node).get("properties", {}).get(part, {}) if hasattr(node, "get") else {}
    props = list(_resolve(schema, node).get("properties", {})) if hasattr(node, "get") else []
    near = difflib.get_close_matches(str(path[-1]), props, n=1)
    return (
        f"did you mean {near[0]!r}?" if near else (f"declared fields: {', '.join(props)}" if props else None)
    )


# --- code references and policies ---------------------------------------------------------


def check_handlers(mesh: m.Mesh) -> Iterator[Diagnostic]:
    """`call: {python: module:function}` must name a module of the mesh directory or one the mesh allows.

    Decided from file names alone (:mod:`engine.language.handlers`): validate never imports user code. A
    module of the mesh directory is then read (parsed, never run) for module-level state
    (:mod:`engine.analysis.handlerstate`), once however many handlers name it.
    """
    local: dict[str, m.CallAction] = {}
    for action in _all_actions(mesh):
        if not (isinstance(action, m.CallAction) and action.python):
            continue
        module = action.python.partition(":")[0]
        top = module.split(".")[0]
        path = local_module(mesh.root, module)
        if path is not None:
            local.setdefault(path, action)
            continue
        if allowed_by(module, mesh.allowed_modules) is None:
            near = nearby_modules(mesh.root, module)
            yield Diagnostic(
                action.loc,
                "handler-not-allowed",
                f"handler {action.python!r}: module {module!r} is neither in the mesh directory nor allowed",
                hint=f"did you mean {near[0]!r}?"
                if near
                else f"put {top}.py in the mesh directory, or list {module!r} in `allow_modules` of a "
                 "`Mesh` document",
            )
        elif importlib.util.find_spec(top) is None:  # finds, never imports, a top-level module
            yield Diagnostic(
                action.loc,
                "unknown-handler",
                f"module {top!r} of handler {action.python!r} is not installed",
                hint=f"install the package that provides {top!r}, or fix `allow_modules`",
            )
    for path, action in local.items():
        yield from module_state_diagnostics(mesh.root, action.python.partition(":")[0], path, action.loc,
                                            action.python)


def _all_actions(mesh: m.Mesh) -> Iterator[m.Action]:
    for sub in mesh.subscriptions():
        yield from sub.actions
    for orch in mesh.orchestrations.values():
        yield from orch.all_actions()


def check_policies(mesh: m.Mesh) -> Iterator[Diagnostic]:
    """Retry settings that cannot do what they seem to say; windows that skip events."""
    specs = [p.spec for p in mesh.policies.values()]
    specs += [r.inline for r in _policy_refs(mesh) if r is not None and r.inline is not None]
    for spec in specs:
        retry = spec.retry
        if retry and retry.max_delay is not None and retry.max_delay < retry.initial:
            yield Diagnostic(
                retry.loc,
                "retry-cap-below-initial",
                f"max_delay ({retry.max_delay:g}s) is below initial ({retry.initial:g}s): "
                 "every delay is the cap",
                severity="warning",
            )
        if retry and retry.backoff == "exponential" and retry.max_delay is None and retry.max_attempts > 12:
            yield Diagnostic(
                retry.loc,
                "uncapped-backoff",
                "exponential backoff without max_delay over many attempts grows to days",
                severity="warning",
                hint="set max_delay",
            )
    for stream in mesh.streams.values():
        w = stream.window
        if w.kind == "hopping" and w.every > w.size:
            yield Diagnostic(
                w.loc,
                "window-gaps",
                f"hopping windows start every {w.every:g}s but last {w.size:g}s: "
                "events between windows are never counted",
                severity="warning",
            )
