"""The in-memory store: the default for `run` and `test`, and a real implementation, not a mock."""
from __future__ import annotations

from typing import Any, Iterable

from ..runtime.deadletter import DeadLetter


class MemoryStore:
    def __init__(self, keep_events: bool = False):
        self.keep_events = keep_events  # the archive is off by default: runs may stream millions of events
        self.events: list[dict] = []
        self._done: set[tuple[str, str]] = set()
        self._dead: dict[str, DeadLetter] = {}
        self._state: dict[str, Any] = {}

    def append_event(self, event: dict) -> None:
        if self.keep_events:
            self.events.append(event)

    def is_done(self, event_id: str, consumer: str) -> bool:
        return (event_id, consumer) in self._done

    def mark_done(self, event_id: str, consumer: str) -> None:
        self._done.add((event_id, consumer))

    def put_dead_letter(self, record: DeadLetter) -> None:
        self._dead[record.id] = record

    def dead_letters(self, queue: str | None = None) -> list[DeadLetter]:
        return [r for r in self._dead.values() if queue is None or r.queue == queue]

    def remove_dead_letters(self, ids: Iterable[str]) -> int:
        return sum(self._dead.pop(i, None) is not None for i in set(ids))

    def get_state(self, key: str) -> Any:
        return self._state.get(key)

    def put_state(self, key: str, value: Any) -> None:
        self._state[key] = value
