"""The in-memory store: the default for `run` and `test`, and a real implementation, not a mock.

Journals are kept only when asked (``keep``): a run may stream millions of events.
"""
from __future__ import annotations

from typing import Any, Iterable, Iterator

from ..runtime.deadletter import DeadLetter


class MemoryStore:
    def __init__(self, keep: Iterable[str] = ()):
        self.keep = frozenset(keep)
        self._journals: dict[str, list[dict]] = {}
        self._done: set[tuple[str, str]] = set()
        self._dead: dict[str, DeadLetter] = {}
        self._state: dict[str, Any] = {}
        self._checkpoint: dict | None = None

    def append(self, journal: str, record: dict) -> None:
        if journal in self.keep:
            self._journals.setdefault(journal, []).append(record)

    def records(self, journal: str) -> Iterator[dict]:
        return iter(self._journals.get(journal, ()))

    def is_done(self, event_id: str, consumer: str) -> bool:
        return (event_id, consumer) in self._done

    def mark_done(self, event_id: str, consumer: str) -> None:
        self._done.add((event_id, consumer))

    def put_dead_letter(self, record: DeadLetter) -> None:
        self._dead.pop(record.id, None)  # a re-dead-lettered record moves to the end
        self._dead[record.id] = record

    def dead_letters(self, queue: str | None = None) -> list[DeadLetter]:
        return [r for r in self._dead.values() if queue is None or r.queue == queue]

    def remove_dead_letters(self, ids: Iterable[str]) -> int:
        return sum(self._dead.pop(i, None) is not None for i in set(ids))

    def get_state(self, key: str) -> Any:
        return self._state.get(key)

    def state_keys(self, prefix: str) -> list[str]:
        return sorted(k for k in self._state if k.startswith(prefix))

    def put_state(self, key: str, value: Any) -> None:
        self._state[key] = value

    def commit(self, checkpoint: dict) -> None:
        self._checkpoint = checkpoint

    def checkpoint(self) -> dict | None:
        return self._checkpoint

    def close(self) -> None:
        pass
