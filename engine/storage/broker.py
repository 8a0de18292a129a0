"""The broker interface: what the processes of a deployment share besides the store.

A :class:`~engine.storage.base.Store` is what a run must remember; a :class:`Broker` is what
a deployment (``meshctl worker``, ``serve``, ``publish``, ``status``) shares on top of it:

- work queues, one per *lane*: :data:`INPUT` (events from the ingress, in arrival order),
  :data:`TASKS` (deliveries, retries, orchestration steps: shared by every worker) and any
  other name (``stream:<name>``: an ordered lane of a windowed stream). An entry read is
  *in hand* (pending) until a unit of work that acknowledges it commits; an entry whose
  worker died is taken over with :meth:`Broker.reclaim`. Tasks due later wait until
  :meth:`Broker.promote_due` moves them to their lane;
- leases, so an ordered lane has one holder at a time (:meth:`Broker.hold`);
- units of work (:meth:`Broker.commit_unit`): a unit's writes to the broker's store, the
  tasks it schedules, its counters and the acknowledgement of its entries land together, or
  not at all;
- the worker registry (heartbeats) and the deployment's counters, for ``meshctl status``.

Broker errors are :class:`~engine.storage.base.StorageError`, translated at the boundary.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Protocol, Sequence, runtime_checkable

from .base import Store

INPUT = "input"  # the lane of ingress events
TASKS = "tasks"  # the lane every worker takes work from
APPLIED, CONFLICT, FENCED = 1, 0, -1  # what a commit of a unit of work did


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


@dataclass(frozen=True, slots=True)
class Task:
    """Work for a lane: *kind* and its JSON-serialisable *payload*, due now (``due`` None) or
    at clock time ``due``."""

    lane: str
    kind: str
    payload: Any
    due: float | None = None


@runtime_checkable
class Broker(Protocol):
    store: Store  # the deployment's store: what its runs remember (state, dedup, dead letters)

    # --- the ingress ----------------------------------------------------------------------
    def ingest(self, events: list[dict]) -> list[str]:
        """Add events to the :data:`INPUT` lane, all or none; their entry ids."""

    def backlog(self) -> int:
        """Entries waiting in the input and task lanes (what the ingress's backpressure counts)."""

    def ping(self) -> bool:
        """Whether the broker answers (False on any failure: the health endpoint reports it)."""

    def durability_warning(self) -> str | None:
        """Why an acknowledged write could be lost in a crash of the broker (None: it cannot)."""

    # --- the queues -----------------------------------------------------------------------
    def ensure_lanes(self, lanes: Iterable[str]) -> None:
        """Make the lanes ready to be read (idempotent)."""

    def read(self, lane: str, worker: str, count: int, block_ms: int | None = None) -> list[Entry]:
        """Up to *count* new entries of a lane, now in *worker*'s hand (waiting up to
        *block_ms* for some; None: not at all)."""

    def reclaim(self, lane: str, worker: str, min_idle_ms: int, count: int) -> list[Entry]:
        """Entries in other workers' hands for *min_idle_ms* (a dead worker's), now *worker*'s,
        oldest first, with their delivery counts."""

    def promote_due(self, now: float, limit: int = 500) -> int:
        """Move up to *limit* tasks due at clock time *now* to their lanes; how many moved."""

    def hold(self, lane: str, worker: str, ttl_ms: int) -> bool:
        """Take the lane's lease, or renew it if *worker* holds it; False if another does."""

    def release(self, lane: str, worker: str) -> None:
        """Give the lane's lease up, if *worker* holds it."""

    def lane_backlog(self, lanes: Sequence[str]) -> dict[str, int]:
        """Entries not yet acknowledged per lane, and the tasks due later (key ``delayed``)."""

    def pending(self, lanes: Sequence[str]) -> dict[str, int]:
        """Entries in a worker's hand and not yet acknowledged, per lane."""

    # --- units of work --------------------------------------------------------------------
    def unit_store(self) -> Store:
        """The store as units of work use it: what a unit reads is checked again at its commit."""

    def begin_unit(self) -> None:
        """Forget what the store buffered and read: a unit of work starts (or is dropped)."""

    def prefetch_done(self, pairs: Iterable[tuple[str, str]]) -> None:
        """Read the dedup records of (event key, consumer) pairs ahead, in one round trip."""

    def commit_unit(self, worker: str | None = None, entries: Sequence[Entry] = (),
                    tasks: Iterable[Task] = (), counters: Mapping[str, int] | None = None) -> int:
        """Commit the store's writes, *tasks*, *counters* (added to the deployment's) and the
        acknowledgement of *entries*, if every value the unit read is unchanged and every entry
        is still *worker*'s. Returns :data:`APPLIED`, :data:`CONFLICT` (a value read changed:
        do the unit again) or :data:`FENCED` (another worker has the entry now: drop the unit)."""

    # --- workers and counters -------------------------------------------------------------
    def heartbeat(self, worker: str, info: dict) -> None:
        """Say *worker* is alive, with what it reports about itself."""

    def leave(self, worker: str) -> None:
        """*worker* stopped: it is no longer listed."""

    def workers(self) -> dict[str, dict]:
        """The workers' last heartbeats, by name."""

    def counters(self) -> dict[str, int]:
        """The deployment's counters: every committed unit's added together."""

    def memory(self) -> dict:
        """What the deployment holds, per class of key (dedup records, runs, archive, queues,
        ...): ``{"classes": {class: {"keys": n, "bytes": b}}, "keys": n, "bytes": b,
        "estimate": bool, ...}``; ``estimate`` True when bytes or counts are sampled;
        ``unavailable`` (why) when the server would not say."""

    def close(self) -> None: ...
