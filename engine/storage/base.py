"""The store interface the runtime depends on: small on purpose.

What a run must remember lives here: journals (``input``, ``emitted``, ``trace``), dedup
records per (event key, consumer) — the key is the event's identity, its source and id
(:func:`~engine.core.identity.identity`), an opaque string to the store — dead letters, and
state under string keys (orchestration runs ``run:<id>``) as JSON-serialisable values. A store
keeps what grows with the input only for the mesh's :class:`~engine.language.model.Retention`: finished
runs, the archive journals and dedup records age out, so memory (and a durable store's disk)
is bounded by the work in flight and the retention, not by the length of the input. Writes
since the last :meth:`Store.commit`
become durable together with the runtime's checkpoint (its schedule, clock, counters,
stream windows and input position), in one transaction: after a crash, a restart from the
last checkpoint neither loses nor repeats an effect.

A backend's store class is also opened from its URL, by the registry of engine/storage/__init__.py:
``cls.open(url, retention, create) -> Store`` (raising :class:`NotAStoreURL` for a URL of its
scheme it cannot read).
"""
from __future__ import annotations

from typing import Any, Iterable, Iterator, Protocol, runtime_checkable

from ..core.deadletter import DeadLetter
from ..core.errors import MeshError


class StorageError(MeshError):
    """A store failed (its own errors are translated to this at the boundary)."""


class StoreFenced(StorageError):
    """Another process committed to the store since this one read it: nothing was written.
    Open the store again (to see what the other wrote) and redo the work."""


class NotAStoreURL(ValueError):
    """A backend's ``open`` was given a URL of its scheme that names no store (``sqlite:``)."""


@runtime_checkable
class Store(Protocol):
    def append(self, journal: str, record: dict) -> None:
        """Add a record to a journal (``input``, ``emitted``, ``trace``)."""

    def records(self, journal: str) -> Iterator[dict]:
        """A journal's committed and pending records, in order (a memory store keeps only the
        journals it was told to keep)."""

    def is_done(self, key: str, consumer: str, at: float | None = None) -> bool:
        """Whether this consumer already took effect for the event of identity *key* (dedup), as
        seen at clock time *at*."""

    def mark_done(self, key: str, consumer: str, at: float = 0.0) -> None:
        """Record that the consumer's effect for the event of identity *key* is committed (at
        clock time *at*)."""

    def put_dead_letter(self, record: DeadLetter) -> bool:
        """Add a dead letter, or replace the one with its id (it then moves to the end). True if
        the record is new to the queue: a run counts it as dead-lettered only then."""

    def dead_letters(self, queue: str | None = None) -> list[DeadLetter]:
        """Dead letters in the order they were recorded (optionally of one queue)."""

    def remove_dead_letters(self, ids: Iterable[str]) -> int:
        """Delete dead letters by id; returns how many existed."""

    def get_state(self, key: str) -> Any:
        """A state value, or None. The same object is returned until it is replaced."""

    def put_state(self, key: str, value: Any) -> None: ...

    def retire_state(self, key: str, value: Any, at: float) -> None:
        """*value* is final (a finished run, at clock time *at*): the run no longer reads it, so
        the store need not hold it in memory; a durable store keeps it for its retention."""

    def delete_state(self, key: str) -> None:
        """Remove a state value (gone for good at the next commit; absent to reads at once)."""

    def state_keys(self, prefix: str) -> list[str]:
        """The keys of state values that start with *prefix*, sorted."""

    def commit(self, checkpoint: dict) -> None:
        """Make every write since the last commit durable, with *checkpoint*, atomically."""

    def checkpoint(self) -> dict | None:
        """The checkpoint of the last commit (None for a new store)."""

    def aged_out(self) -> dict[str, float]:
        """What retention removed: per kind (``runs``, ``archive``, ``dedup``) the clock time
        before which its records are gone (only kinds of which something was removed)."""

    def close(self) -> None:
        """Let go of what the store holds open (a file, a connection); writes not committed are lost."""
