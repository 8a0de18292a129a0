"""The store interface the runtime depends on: small on purpose.

State lives under string keys (orchestration runs ``run:<id>``, circuit breakers
``breaker:<consumer>``, stream windows ``window:<stream>``) as JSON-serialisable values, so
durable stores can keep them in one table and commit them with the rest of an effect.
"""
from __future__ import annotations

from typing import Any, Iterable, Protocol, runtime_checkable

from ..errors import MeshError
from ..runtime.deadletter import DeadLetter


class StorageError(MeshError):
    """A store failed (its own errors are translated to this at the boundary)."""


@runtime_checkable
class Store(Protocol):
    def append_event(self, event: dict) -> None:
        """Archive an event that entered or was emitted in the mesh."""

    def is_done(self, event_id: str, consumer: str) -> bool:
        """Whether this consumer already took effect for this event (dedup)."""

    def mark_done(self, event_id: str, consumer: str) -> None:
        """Record that the consumer's effect for this event is committed."""

    def put_dead_letter(self, record: DeadLetter) -> None: ...

    def dead_letters(self, queue: str | None = None) -> list[DeadLetter]:
        """Dead letters in the order they were recorded (optionally of one queue)."""

    def remove_dead_letters(self, ids: Iterable[str]) -> int:
        """Delete dead letters by id; returns how many existed."""

    def get_state(self, key: str) -> Any:
        """A state value, or None."""

    def put_state(self, key: str, value: Any) -> None: ...
