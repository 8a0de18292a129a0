"""Which consumers an event goes to: per event, only the index's candidates cost anything.

A :class:`Targets` holds the consumers one kind of event may reach (every consumer of an
event type, or a service's subscriptions to one type when a route delivers to the service)
in their stable declaration order. What is constant is computed once: the consumers without
a pattern, and an index of the others' patterns keyed by position. Routing an event then
costs the index lookup plus the consumers it returns, however many routes the mesh has;
the consumers whose pattern rejected the event are listed only on request (the trace).
"""
from __future__ import annotations

from typing import Sequence

from ..language.patterns import PatternIndex
from .consumers import Consumer

SCAN_UPTO = 2  # patterns tested one by one up to this many: the index's fixed cost is higher (a shortcut)


class Targets:
    """The consumers an event of one kind may reach, and those it does reach."""

    __slots__ = ("consumers", "patterned", "_free", "_index")

    def __init__(self, consumers: Sequence[Consumer], scan_upto: int | None = None) -> None:
        """*scan_upto*: test up to this many patterns one by one rather than with the index
        (None: :data:`SCAN_UPTO`; 0: always the index, the general path)."""
        self.consumers = tuple(consumers)
        self.patterned = tuple(c for c in self.consumers if c.pattern is not None)
        self._free = tuple(i for i, c in enumerate(self.consumers) if c.pattern is None)
        self._index: PatternIndex | None = None
        if len(self.patterned) > (SCAN_UPTO if scan_upto is None else scan_upto):
            self._index = PatternIndex()
            for position, consumer in enumerate(self.consumers):
                if consumer.pattern is not None:
                    self._index.add(position, consumer.pattern)

    def __call__(self, event: dict) -> Sequence[Consumer]:
        """The consumers that take ``event``, in declaration order: those without a pattern
        and those whose pattern matches (the same answer with or without the index)."""
        if not self.patterned:
            return self.consumers
        if self._index is None:
            return [c for c in self.consumers if c.pattern is None or c.pattern.matches(event)]
        positions = self._index.match(event)
        if self._free:
            positions = sorted(positions + list(self._free))
        consumers = self.consumers
        return [consumers[i] for i in positions]

    def rejected(self, event: dict, taken: Sequence[Consumer]) -> list[Consumer]:
        """The consumers whose pattern did not match ``event``, given what it was routed to.

        Linear in the consumers: called only when the trace is recorded.
        """
        chosen = {c.id for c in taken}
        return [c for c in self.patterned if c.id not in chosen]


def by_type(consumers: Sequence[Consumer]) -> dict[str, list[Consumer]]:
    """Consumers per event type they take, each list in declaration order."""
    out: dict[str, list[Consumer]] = {}
    for consumer in consumers:
        for type_ in consumer.types:
            out.setdefault(type_, []).append(consumer)
    return out


def by_service(consumers: Sequence[Consumer], scan_upto: int | None = None) -> dict[tuple[str, str], Targets]:
    """Per (service, event type): the service's subscriptions to the type, for routes that
    deliver straight to the service (*scan_upto* as for :class:`Targets`)."""
    grouped: dict[tuple[str, str], list[Consumer]] = {}
    for consumer in consumers:
        if consumer.kind == "subscription":
            grouped.setdefault((consumer.element.service, consumer.types[0]), []).append(consumer)
    return {key: Targets(subscriptions, scan_upto) for key, subscriptions in grouped.items()}
