"""The broker interface: what the processes of a deployment share besides the store.

A :class:`~engine.storage.base.Store` is what a run must remember; a :class:`Broker` is what
a deployment (``meshctl worker``, ``serve``, ``publish``, ``status``) shares on top of it:

- *partitions*: a deployment's work is split into :attr:`Broker.partitions` parts (the
  mesh's ``deployment: {partitions: N}``, recorded at first use). Each partition has its own
  work queues, one per *lane*: :data:`INPUT` (events from the ingress, in arrival order),
  :data:`TASKS` (deliveries, retries, orchestration steps) and ``stream:<name>`` (the
  deliveries to a windowed stream), its own tasks due later, its own share of the store and
  one lease (:meth:`Broker.hold`): one worker at a time does a partition's work. An input
  event goes to the partition of :func:`partition_key`; a task goes to the partition its
  :class:`Task` names (None: the partition of the unit that made it). An entry read is *in
  hand* (pending) until a unit of work that acknowledges it commits; an entry whose worker
  died is taken over with :meth:`Broker.reclaim`. Tasks due later wait until
  :meth:`Broker.promote_due` moves them to their lane;
- units of work (:meth:`Broker.commit_unit`): a unit's writes to the broker's store, the
  tasks it schedules, its counters and the acknowledgement of its entries land together, or
  not at all; a unit of a partition is refused once another worker holds the partition;
- the worker registry (heartbeats) and the deployment's counters, for ``meshctl status``.

Broker errors are :class:`~engine.storage.base.StorageError`, translated at the boundary.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Protocol, Sequence, runtime_checkable

from ..core.identity import identity
from .base import Store

INPUT = "input"  # the lane of ingress events
TASKS = "tasks"  # the lane of deliveries, retries and steps
APPLIED, CONFLICT, FENCED = 1, 0, -1  # what a commit of a unit of work did


def partition_of(key: str, partitions: int) -> int:
    """The partition a key belongs to: the same in every process (CRC-32, not Python's hash)."""
    return zlib.crc32(key.encode("utf-8")) % partitions


def input_partition(event: dict, partitions: int, pinned: Mapping[str, str]) -> int:
    """The partition of an input event: its type's pinned key (*pinned*: event type -> key),
    else :func:`partition_key`. ``meshctl run`` counts inputs per partition by the same rule."""
    key = pinned.get(event.get("type")) if isinstance(event, dict) else None
    return partition_of(key or partition_key(event), partitions)


def partition_key(event: dict) -> str:
    """What an input event is partitioned by: its CloudEvents ``partitionkey`` extension if it
    has one, else its ``subject``, else its identity (source and id). Events of one key are
    routed by one worker, in arrival order."""
    for attribute in ("partitionkey", "subject"):
        value = event.get(attribute) if isinstance(event, dict) else None
        if isinstance(value, str) and value:
            return value
    return identity(event) if isinstance(event, dict) and "id" in event else repr(event)


@dataclass
class Entry:
    """One queue entry handed to this worker: ``deliveries`` counts this hand-out too.

    ``fields`` of an entry that :meth:`Broker.ingest` queued: ``{"e": event as JSON text}``;
    of a :class:`Task`: ``{"k": kind, "p": payload as JSON text}``.
    """

    lane: str
    id: str
    fields: dict
    deliveries: int = 1
    partition: int = 0


@dataclass(frozen=True, slots=True)
class Task:
    """Work for a lane: *kind* and its JSON-serialisable *payload*, due now (``due`` None) or
    at clock time ``due``, in *partition* (None: the committing unit's, or partition 0).
    *bound*: no event the task makes is earlier (event time) than this; given, the task
    counts in its partition's pending work (:meth:`Broker.watermarks`) until acknowledged."""

    lane: str
    kind: str
    payload: Any
    due: float | None = None
    partition: int | None = None
    bound: float | None = None


@runtime_checkable
class Broker(Protocol):
    store: Store  # the deployment's store: what its runs remember (state, dedup, dead letters)

    # --- partitions -----------------------------------------------------------------------
    @property
    def partitions(self) -> int:
        """The deployment's number of partitions (recorded with the default at first use)."""

    def configure(self, partitions: int, pinned: Mapping[str, str] | None = None) -> None:
        """Record the deployment's number of partitions, or check it: a usage error if the
        deployment has another number. *pinned*: event type -> the partition key of every
        input event of that type (instead of :func:`partition_key`)."""

    def partition_for(self, key: str) -> int:
        """The partition of a key (the same in every process)."""

    def home(self, record: str) -> int | None:
        """The partition whose share of the store holds *record* (``state:<key>``,
        ``dlq:<id>``); None if none does."""

    # --- the ingress ----------------------------------------------------------------------
    def ingest(self, events: list[dict]) -> list[str]:
        """Add events to the :data:`INPUT` lane of their partitions (by their type's pinned key,
        else :func:`partition_key`); their entry ids. All or none on one server; on a cluster
        all or none per partition."""

    def backlog(self) -> int:
        """Entries waiting in the input and task lanes (what the ingress's backpressure counts)."""

    def ping(self) -> bool:
        """Whether the broker answers (False on any failure: the health endpoint reports it)."""

    def durability_warning(self) -> str | None:
        """Why an acknowledged write could be lost in a crash of the broker (None: it cannot)."""

    # --- the queues -----------------------------------------------------------------------
    def ensure_lanes(self, lanes: Iterable[str]) -> None:
        """Make the lanes of every partition ready to be read (idempotent)."""

    def read(self, lane: str, worker: str, count: int, block_ms: int | None = None,
             partition: int = 0) -> list[Entry]:
        """Up to *count* new entries of a partition's lane, now in *worker*'s hand (waiting up
        to *block_ms* for some; None: not at all)."""

    def read_lanes(self, lanes: Sequence[str], worker: str, count: int, partitions: Sequence[int],
                   counts: Mapping[str, int] | None = None) -> list[Entry]:
        """Up to *count* (or ``counts[lane]``) new entries of each lane of each of *partitions*,
        in one round trip."""

    def reclaim(self, lane: str, worker: str, min_idle_ms: int, count: int,
                partition: int = 0) -> list[Entry]:
        """Entries in other workers' hands for *min_idle_ms* (a dead worker's), now *worker*'s,
        oldest first, with their delivery counts."""

    def promote_due(self, now: float, limit: int = 500, partitions: Sequence[int] | None = None) -> int:
        """Move up to *limit* tasks (per partition) due at clock time *now* to their lanes, in
        *partitions* (None: every one), in one round trip; how many moved."""

    def forward(self, partition: int) -> int:
        """Hand the tasks a partition's units made for other partitions on to them, each
        exactly once (on a cluster they wait in the unit's partition); how many moved."""

    def hold(self, partition: int, worker: str, ttl_ms: int) -> bool:
        """Take the partition's lease, or renew it if *worker* holds it; False if another does."""

    def release(self, partition: int, worker: str) -> None:
        """Give the partition's lease up, if *worker* holds it (another may take it at once)."""

    def holders(self) -> dict[int, str | None]:
        """Who holds each partition's lease (None: nobody)."""

    def lane_backlog(self, lanes: Sequence[str]) -> dict[str, int]:
        """Entries not yet acknowledged per lane (all partitions), and the tasks due later
        (key ``delayed``)."""

    def partition_backlog(self, lanes: Sequence[str]) -> dict[int, int]:
        """Entries not yet acknowledged in the lanes of each partition, and its tasks due later."""

    def pending(self, lanes: Sequence[str]) -> dict[str, int]:
        """Entries in a worker's hand and not yet acknowledged, per lane (all partitions)."""

    def partition_lag(self, lanes: Sequence[str]) -> dict[int, int]:
        """Entries of a partition's lanes that no worker has read yet (backlog less in hand)."""

    def owns(self, worker: str, entries: Sequence[Entry]) -> bool:
        """Whether every entry is still in *worker*'s hand."""

    # --- units of work --------------------------------------------------------------------
    def unit_store(self) -> Store:
        """The store as units of work use it: what a unit reads is checked again at its commit."""

    def begin_unit(self, partition: int | None = None) -> None:
        """Forget what the store buffered and read: a unit of work of *partition* starts (or is
        dropped). None: not a partition's unit (a command changing the deployment)."""

    def prefetch_done(self, pairs: Iterable[tuple[str, str]]) -> None:
        """Read the dedup records of (event key, consumer) pairs ahead, in one round trip."""

    def commit_unit(self, worker: str | None = None, entries: Sequence[Entry] = (),
                    tasks: Iterable[Task] = (), counters: Mapping[str, int] | None = None,
                    progress: float | None = None, holds: Mapping[str, float | None] | None = None) -> int:
        """Commit the store's writes, *tasks*, *counters* (added to the deployment's) and the
        acknowledgement of *entries*, if every value the unit read is unchanged, every entry is
        still *worker*'s and so is the unit's partition. Returns :data:`APPLIED`,
        :data:`CONFLICT` (a value read changed: do the unit again) or :data:`FENCED` (another
        worker has the entry or the partition now: drop the unit).

        *progress*: the unit's partition's input progress from now on (see
        :meth:`input_progress`); *holds*: work the unit's partition keeps outside its queues
        (an event a resequencer buffers), by name: its bound, counted in the partition's
        pending work like a task's, or None to remove it."""

    # --- event-time progress (docs/streams.md, "Windows fed by the mesh's own events") ------
    def input_progress(self, partition: int) -> float | None:
        """The largest event time among the inputs routed in *partition* so far (None: none)."""

    def watermarks(self) -> dict[int, tuple[float | None, float | None]]:
        """Per partition: its input progress, and the smallest bound of its pending work
        (tasks with a bound in its queues or due later, its holds); None: nothing."""

    # --- workers and counters -------------------------------------------------------------
    def heartbeat(self, worker: str, info: dict) -> None:
        """Say *worker* is alive, with what it reports about itself."""

    def leave(self, worker: str) -> None:
        """*worker* stopped: it is no longer listed."""

    def workers(self) -> dict[str, dict]:
        """The workers' last heartbeats, by name."""

    def counters(self) -> dict[str, int]:
        """The deployment's counters: every committed unit's added together."""

    # --- deployed meshes (meshctl deploy) ------------------------------------------------
    def deploy_mesh(self, version: str, snapshot: str, info: dict) -> None:
        """Keep a mesh version's *snapshot* (its files, as text) and make it the current one
        (deployed again, an older version becomes current again)."""

    def mesh_versions(self) -> list[dict]:
        """The mesh versions deployed and not retired, oldest deployment first, the current one
        last: each the *info* it was deployed with, plus ``version``."""

    def mesh_snapshot(self, version: str) -> str | None:
        """The snapshot of a deployed version; None once retired."""

    def retire_mesh(self, version: str) -> None:
        """Forget a drained version (its snapshot and its entry)."""

    def memory(self) -> dict:
        """What the deployment holds, per class of key (dedup records, runs, archive, queues,
        ...): ``{"classes": {class: {"keys": n, "bytes": b}}, "keys": n, "bytes": b,
        "estimate": bool, ...}``; ``estimate`` True when bytes or counts are sampled;
        ``unavailable`` (why) when the server would not say."""

    def close(self) -> None: ...
