"""The in-memory store: the default for `run` and `test`, and a real implementation, not a mock.

A run may stream millions of events through it, so it keeps what grows with the input only
as long as needed: journals only when asked (``keep``), finished orchestration runs not at
all (nothing reads them once the run has ended: ``meshctl test`` reads outcomes from the
trace), and dedup records for ``dedup_window`` seconds of clock time (the mesh's
``retention.dedup``, one hour by default; ``None`` keeps them all). A duplicate of an event
arriving later than that after the original is not recognised.
"""
from __future__ import annotations

import math
from collections import deque
from typing import Any, Iterable, Iterator

from ..core.deadletter import DeadLetter
from ..language.model import Retention
from .base import NotAStoreURL

DEDUP_WINDOW = 3600.0  # the default of `retention.dedup` in memory


class MemoryStore:
    def __init__(self, keep: Iterable[str] = (), dedup_window: float | None = DEDUP_WINDOW):
        self.keep = frozenset(keep)
        self.dedup_window = dedup_window
        self._journals: dict[str, list[dict]] = {}
        self._done: dict[tuple[str, str], float] = {}  # pair -> when it was last marked
        # Pairs in the order they were marked, grouped by the clock time they were marked at
        # (events come in runs of one time): expiry looks at a group's time, not each pair's.
        self._done_order: deque[tuple[float, list[tuple[str, str]]]] = deque()
        self._last_group: tuple[float, list[tuple[str, str]]] | None = None
        self._dead: dict[str, DeadLetter] = {}
        self._state: dict[str, Any] = {}
        self._checkpoint: dict | None = None

    def append(self, journal: str, record: dict) -> None:
        if journal in self.keep:
            self._journals.setdefault(journal, []).append(record)

    def records(self, journal: str) -> Iterator[dict]:
        return iter(self._journals.get(journal, ()))

    def is_done(self, key: str, consumer: str, at: float | None = None) -> bool:
        marked = self._done.get((key, consumer))
        if marked is None:
            return False
        return at is None or self.dedup_window is None or at - marked <= self.dedup_window

    def mark_done(self, key: str, consumer: str, at: float = 0.0) -> None:
        pair = (key, consumer)
        self._done[pair] = at
        if self.dedup_window is None:
            return
        last = self._last_group
        if last is not None and last[0] == at:
            last[1].append(pair)
            return
        self._last_group = last = (at, [pair])
        order, done = self._done_order, self._done
        order.append(last)
        horizon = at - self.dedup_window
        while order and order[0][0] < horizon:
            when, pairs = order.popleft()
            for old in pairs:
                if done.get(old) == when:  # not marked again since
                    del done[old]

    def put_dead_letter(self, record: DeadLetter) -> bool:
        new = self._dead.pop(record.id, None) is None  # a re-dead-lettered record moves to the end
        self._dead[record.id] = record
        return new

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

    def delete_state(self, key: str) -> None:
        self._state.pop(key, None)

    def retire_state(self, key: str, value: Any, at: float) -> None:
        self._state.pop(key, None)  # nothing can read it after the run: `meshctl runs` needs a durable store

    @classmethod
    def for_mesh(cls, retention: Retention, keep: Iterable[str] = ()) -> "MemoryStore":
        """A memory store keeping dedup records for the mesh's ``retention.dedup`` (default one hour)."""
        if retention.dedup is None:
            return cls(keep)
        return cls(keep, dedup_window=None if retention.dedup == math.inf else retention.dedup)

    @classmethod
    def open(cls, url: str, retention: Retention, create: bool = True) -> "MemoryStore":
        """The store of ``memory:`` (the registry's way in); a new one each time."""
        if url not in ("memory", "memory:"):
            raise NotAStoreURL(url)
        return cls.for_mesh(retention)

    def commit(self, checkpoint: dict) -> None:
        self._checkpoint = checkpoint

    def checkpoint(self) -> dict | None:
        return self._checkpoint

    def aged_out(self) -> dict[str, float]:
        return {}

    def close(self) -> None:
        pass

    def contents(self) -> dict:
        """What the store holds that a later step can read, as plain data: `meshctl explore`
        hashes it to know a state it has seen (journals are left out: nothing reads them back)."""
        dead = sorted((key, record.as_dict()) for key, record in self._dead.items())
        return {"done": sorted(self._done.items()), "dead": dead, "state": self._state}
