"""What `validate` checks of the ``Check`` kind (docs/invariants.md).

The parts an invariant shares with the rest of the mesh are checked by the general rules:
:mod:`engine.analysis.rules` takes the event types of its selectors, its templates, its
conditions and its patterns from the iterators here. What only an invariant has is checked
here: a ``state:`` owner that the mesh has, and a ``per`` that reads the event.
"""
from __future__ import annotations

import difflib
from typing import Iterator

from ..core.errors import Diagnostic
from ..language import model as m
from ..language.templates import condition_text, referenced_fields, syntax_error

_EVENT_ROOTS = ("data", "event")  # what a `per` reads of the event it keys


def _invariants(mesh: m.Mesh) -> Iterator[m.Invariant]:
    for check in mesh.checks.values():
        yield from check.invariants


def _types(selectors: tuple[m.Selector, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(s.type.name for s in selectors))


def selector_refs(mesh: m.Mesh) -> Iterator[m.Ref]:
    """The event type of every selector of every invariant."""
    for invariant in _invariants(mesh):
        yield from (s.type for s in invariant.selectors())


def invariant_templates(mesh: m.Mesh) -> Iterator[tuple[m.TemplateString, tuple[str, ...]]]:
    """Every template of the invariants, with the event types it is rendered on."""
    for invariant in _invariants(mesh):
        if invariant.per is not None:
            yield invariant.per, _types(invariant.selectors())
        for selector in invariant.selectors():
            if selector.when is not None:
                yield selector.when, (selector.type.name,)
        for side in (invariant.total, invariant.equals):
            if side is not None:
                yield side.value, _types(side.of)
        if invariant.that is not None:
            yield invariant.that, _types(invariant.always)  # a `state` invariant's: no event type


def invariant_conditions(mesh: m.Mesh) -> Iterator[m.TemplateString]:
    """The templates read as conditions: selectors' `when` and invariants' `that`."""
    for invariant in _invariants(mesh):
        yield from (s.when for s in invariant.selectors() if s.when is not None)
        if invariant.that is not None:
            yield invariant.that


def invariant_patterns(mesh: m.Mesh) -> Iterator[tuple[m.Pattern, tuple[str, ...]]]:
    """Every selector's `match`, with its event type."""
    for invariant in _invariants(mesh):
        for selector in invariant.selectors():
            if selector.match is not None:
                yield selector.match, (selector.type.name,)


def state_owners(mesh: m.Mesh) -> list[str]:
    """``service:NAME`` and ``orchestration:NAME`` of every element that declares ``state:``."""
    return [f"service:{s.name}" for s in mesh.services.values() if s.state is not None] + [
        f"orchestration:{o.name}" for o in mesh.orchestrations.values() if o.state is not None
    ]


def check_invariants(mesh: m.Mesh) -> Iterator[Diagnostic]:
    """`state:` owners the mesh lacks (or that keep no state), and `per` keys that read no event."""
    owners = state_owners(mesh)
    for invariant in _invariants(mesh):
        if invariant.state is not None and invariant.state.name not in owners:
            yield _unknown_owner(mesh, invariant.state, owners)
        if invariant.per is not None and not _reads_event(invariant.per):
            yield Diagnostic(
                invariant.per.loc,
                "per-reads-nothing",
                f"`per` of invariant {invariant.name!r} reads nothing of the event: "
                "every event has the same key",
                severity="warning",
                hint="key by a field of the event, e.g. `per: \"{{ data.order_id }}\"`, or leave `per` out",
            )


def _unknown_owner(mesh: m.Mesh, ref: m.Ref, owners: list[str]) -> Diagnostic:
    kind, _, name = ref.name.partition(":")
    element = (mesh.services if kind == "service" else mesh.orchestrations).get(name)
    if element is not None:
        return Diagnostic(ref.loc, "unknown-state-owner", f"{kind} {name!r} declares no `state:`",
                          hint="only a service or an orchestration with `state:` keeps keyed state")
    near = difflib.get_close_matches(ref.name, owners, n=1)
    listed = ", ".join(owners) if owners else "none in this mesh"
    return Diagnostic(ref.loc, "unknown-state-owner", f"unknown state owner {ref.name!r}",
                      hint=f"did you mean {near[0]!r}?" if near else f"owners with `state:`: {listed}")


def _reads_event(template: m.TemplateString) -> bool:
    """Whether *template* reads the event (a template that does not parse is reported as such)."""
    text = condition_text(template.text)
    return syntax_error(text) is not None or any(root in _EVENT_ROOTS for root, _ in referenced_fields(text))
