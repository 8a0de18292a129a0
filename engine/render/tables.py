"""The mesh's elements as plain tables, for the HTML page under the diagram.

A diagram shows how things connect; the tables say what each thing *is* (key, schema fields,
match pattern, retry policy) and where it is written (``file:line``), so a reader can go from
a box to the YAML that declares it. Cells are plain strings: escaping is the template's job.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any, Sequence

from ..core.errors import Diagnostic, Location
from ..language import model as m
from .summary import actions_summary, fmt_seconds, retry_summary, schedule_summary, window_summary


@dataclass(frozen=True, slots=True)
class Row:
    cells: tuple[str, ...]
    loc: str = ""


@dataclass(frozen=True, slots=True)
class Table:
    """One titled table; every row ends with the element's source location."""

    title: str
    columns: tuple[str, ...]
    rows: tuple[Row, ...]

    @property
    def anchor(self) -> str:
        return "t-" + "".join(c if c.isalnum() else "-" for c in self.title.lower())


def location(loc: Location | None, root: str = "") -> str:
    """``file:line`` relative to the mesh root: short enough for a table cell, enough to jump to."""
    if loc is None:
        return ""
    file = loc.file
    if root and os.path.isdir(root):
        rel = os.path.relpath(file, root)
        file = file if rel.startswith("..") else rel
    return f"{file}:{loc.line}" if loc.line > 0 else file


def _names(refs: Sequence[m.Ref]) -> str:
    return ", ".join(ref.name for ref in refs)


def _compact(value: Any) -> str:
    """Patterns and templates as one-line JSON: faithful, and short enough for a cell."""
    return json.dumps(m.thaw(value), ensure_ascii=False, separators=(", ", ": "))


def _table(title: str, columns: Sequence[str], rows: list[Row]) -> tuple[Table, ...]:
    return (Table(title, tuple(columns), tuple(rows)),) if rows else ()


def mesh_tables(mesh: m.Mesh) -> tuple[Table, ...]:
    """Every element kind of the mesh that has at least one element, one table each."""
    return (
        _event_types(mesh) + _routes(mesh) + _services(mesh) + _orchestrations(mesh)
        + _streams(mesh) + _schedules(mesh) + _keyed_state(mesh) + _policies(mesh)
    )


def schema_fields(schema: Any) -> str:
    """Top-level fields of a data schema, required ones starred: ``order_id*, items*, note``."""
    if not isinstance(schema, dict) and not hasattr(schema, "get"):
        return ""
    required = set(schema.get("required") or ())
    props = schema.get("properties") or {}
    return ", ".join(f"{name}{'*' if name in required else ''}" for name in props)


def _event_types(mesh: m.Mesh) -> tuple[Table, ...]:
    rows = [
        Row(
            (
                et.name,
                et.key or "",
                "yes" if et.external else "",
                schema_fields(et.schema),
                et.description or "",
            ),
            location(et.loc, mesh.root),
        )
        for et in mesh.event_types.values()
    ]
    return _table(
        "Event types", ("type", "key", "external", "schema fields (* required)", "description"), rows
    )


def _targets(route: m.Route) -> str:
    out = [t.value if t.kind != "publish" else "publish" for t in route.to]
    return ", ".join(v or "" for v in out) or "publish"


def _routes(mesh: m.Mesh) -> tuple[Table, ...]:
    rows = []
    for route in mesh.routes.values():
        match = _compact(route.match.value) if route.match else ""
        if route.when is not None:
            match = (match + " when " if match else "when ") + route.when.text
        out = route.transform.type.name if route.transform and route.transform.type else ""
        rows.append(
            Row(
                (
                    route.name,
                    _names(route.sources),
                    match,
                    out,
                    _targets(route),
                    policy_text(mesh, route.delivery),
                ),
                location(route.loc, mesh.root),
            )
        )
    return _table("Routes", ("route", "from", "match", "transform to", "to", "delivery"), rows)


def policy_text(mesh: m.Mesh, ref: m.PolicyRef | None) -> str:
    """A delivery reference as the reader needs it: the policy's name, and what it does."""
    if ref is None:
        return ""
    summary = retry_summary(m.resolve_delivery(mesh, ref))
    if ref.name:
        return f"{ref.name} ({summary})" if summary else f"{ref.name} (unknown policy)"
    return summary or "inline"


def _services(mesh: m.Mesh) -> tuple[Table, ...]:
    rows = []
    for svc in mesh.services.values():
        for sub in svc.subscriptions:
            on = sub.on.name + (" " + _compact(sub.match.value) if sub.match else "")
            if sub.when is not None:
                on += f" when {sub.when.text}"
            emits = _names(sub.emits) or ", ".join(
                a.type.name for a in sub.actions if isinstance(a, m.EmitAction)
            )
            rows.append(
                Row(
                    (
                        svc.name,
                        sub.name,
                        on,
                        actions_summary(sub.actions),
                        emits,
                        policy_text(mesh, sub.delivery),
                    ),
                    location(sub.loc, mesh.root),
                )
            )
    return _table("Services", ("service", "subscription", "on", "does", "emits", "delivery"), rows)


def _orchestrations(mesh: m.Mesh) -> tuple[Table, ...]:
    rows = []
    for orch in mesh.orchestrations.values():
        rows += _step_rows(mesh, orch, with_name=True)
    return _table("Orchestrations", ("orchestration", "step", "needs", "does", "flags", "compensate"), rows)


def _step_rows(mesh: m.Mesh, orch: m.Orchestration, with_name: bool) -> list[Row]:
    rows = []
    for step in orch.steps:
        flags = []
        if step.when is not None:
            flags.append(f"when {step.when.text}")
        if step.foreach is not None:
            flags.append(f"foreach {step.foreach.text}")
        if step.retry is not None:
            flags.append("retry " + policy_text(mesh, step.retry))
        if step.timeout is not None:
            flags.append(f"timeout {step.timeout:g}s")
        cells = (
            step.id,
            _names(step.needs) or "(start)",
            actions_summary(step.actions),
            "; ".join(flags),
            actions_summary(step.compensate),
        )
        rows.append(Row(((orch.name,) if with_name else ()) + cells, location(step.loc, mesh.root)))
    return rows


def orchestration_tables(mesh: m.Mesh, orch: m.Orchestration) -> tuple[Table, ...]:
    """The orchestration's trigger, outcomes and steps."""
    trig = orch.trigger
    rows = [
        Row(
            (
                "trigger",
                trig.on.name
                + (" " + _compact(trig.match.value) if trig.match else "")
                + (f" when {trig.when.text}" if trig.when else ""),
            ),
            location(trig.loc, mesh.root),
        )
    ]
    rows += [
        Row((key, actions_summary(acts) or "(nothing)"), location(acts[0].loc, mesh.root) if acts else "")
        for key, acts in (("on_success", orch.on_success), ("on_failure", orch.on_failure))
    ]
    return _table("Orchestration", ("part", "what"), rows) + _table(
        "Steps", ("step", "needs", "does", "flags", "compensate"), _step_rows(mesh, orch, False)
    )


def _streams(mesh: m.Mesh) -> tuple[Table, ...]:
    rows = []
    for st in mesh.streams.values():
        aggs = ", ".join(f"{a.name}={a.op}({a.field or ('value' if a.value else '')})" for a in st.aggregates)
        late = (
            f"DLQ {st.late_dead_letter}"
            if st.late_dead_letter
            else (st.late_emit_type.name if st.late_emit_type else "")
        )
        rows.append(
            Row(
                (
                    st.name,
                    _names(st.sources),
                    window_summary(st.window),
                    ", ".join(st.key_paths),
                    aggs,
                    st.emit_type.name,
                    late,
                ),
                location(st.loc, mesh.root),
            )
        )
    return _table("Streams", ("stream", "from", "window", "key", "aggregates", "emits", "late events"), rows)


def _schedules(mesh: m.Mesh) -> tuple[Table, ...]:
    rows = [
        Row((s.name, schedule_summary(s), s.emit.type.name,
             f"{s.catch_up}, grace {fmt_seconds(s.grace)}"), location(s.loc, mesh.root))
        for s in mesh.schedules.values()
    ]
    return _table("Schedules", ("schedule", "fires", "emits", "missed ticks"), rows)


def _keyed_state(mesh: m.Mesh) -> tuple[Table, ...]:
    """The `state:` of services and orchestrations: what a handler's `context.state` is keyed by."""
    owners = [("service", s.name, s.state) for s in mesh.services.values() if s.state is not None]
    owners += [("orchestration", o.name, o.state)
               for o in mesh.orchestrations.values() if o.state is not None]
    rows = [
        Row(
            (
                f"{kind} {name}",
                spec.key.text,
                fmt_seconds(spec.ttl) if spec.ttl is not None else "for ever",
                f"{spec.max_bytes:,} B",
                schema_fields(spec.schema),
            ),
            location(spec.loc, mesh.root),
        )
        for kind, name, spec in owners
    ]
    return _table("Keyed state", ("owner", "key", "ttl", "max size", "schema fields (* required)"), rows)


def _policies(mesh: m.Mesh) -> tuple[Table, ...]:
    rows = []
    for pol in mesh.policies.values():
        r, spec = pol.spec.retry, pol.spec
        retry = ""
        if r is not None:
            retry = f"{r.max_attempts} attempts, {r.backoff} from {r.initial:g}s ×{r.multiplier:g}"
            retry += f", max {r.max_delay:g}s" if r.max_delay else ""
            retry += f", {r.jitter} jitter"
        cb = spec.circuit_breaker
        breaker = f"open after {cb.failure_threshold} failures for {cb.reset_after:g}s" if cb else ""
        breaker += ", holding deliveries" if cb and cb.pauses else ""
        non_retry = ", ".join(r.non_retryable) if r else ""
        rows.append(
            Row((pol.name, retry, non_retry, spec.dead_letter or "", breaker), location(pol.loc, mesh.root))
        )
    return _table(
        "Delivery policies", ("policy", "retry", "non-retryable", "dead letter", "circuit breaker"), rows
    )


def diagnostics_table(diagnostics: Sequence[Diagnostic], root: str = "") -> tuple[Table, ...]:
    rows = [
        Row((d.severity, d.code, d.message + (f" (hint: {d.hint})" if d.hint else "")), location(d.loc, root))
        for d in diagnostics
    ]
    return _table("Diagnostics", ("severity", "code", "message"), rows)
