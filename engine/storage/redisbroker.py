"""The Redis broker: a deployment's queues, leases, workers and counters on a Redis 6.2+ server.

The queues are Redis Streams read by one consumer group (:data:`GROUP`), under the store's
prefix ``P`` (the keys of the store itself are listed in engine/storage/redisstore.py):

- ``P:input``: events from the ingress (``serve``, ``publish``), routed in arrival order by
  whichever worker holds the ``input`` lease;
- ``P:lane:stream:<name>``: deliveries to a windowed stream, processed in order by the
  holder of that lane's lease (a window operator's state has one writer at a time);
- ``P:tasks``: everything else (deliveries, retries, orchestration steps), shared by all.

Work due later (retries, `sleep`, gap timers) waits in the sorted set ``P:delayed`` and is
moved to its queue when due. A processed entry is acknowledged and deleted in the same
commit as its effects (the store's commit script, given this broker's checks and writes),
so a stream's length is its backlog. An entry whose worker died stays pending in the group
and is reclaimed (``XAUTOCLAIM``) after an idle time; its delivery count says how often it
was handed out. ``P:lease:<lane>`` holds a lane's lease, ``P:workers`` the heartbeats and
``P:counters`` the deployment's counters.
"""
from __future__ import annotations

import json
import uuid
from typing import Iterable, Mapping, Sequence

import redis

from .base import StorageError
from .broker import INPUT, TASKS, Entry, Task
from .redismemory import memory_usage
from .redisstore import RedisStore

GROUP = "workers"  # the consumer group every worker reads through

# Move up to ARGV[2] delayed tasks due at ARGV[1] to their queues; returns how many moved.
_PROMOTE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, member in ipairs(due) do
  local task = cjson.decode(member)
  redis.call('XADD', task.q, '*', 'k', task.k, 'p', task.p)
  redis.call('ZREM', KEYS[1], member)
end
return #due
"""

# Take or renew a lease: KEYS[1] the lease, ARGV[1] the worker, ARGV[2] milliseconds.
_LEASE = """
local holder = redis.call('GET', KEYS[1])
if holder == false then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class RedisBroker:
    """A :class:`~engine.storage.broker.Broker` on the server and prefix of a :class:`RedisStore`."""

    def __init__(self, store: RedisStore):
        self.store = store
        self._r, self._p = store.client, store.prefix
        self._promote = self._r.register_script(_PROMOTE)
        self._lease = self._r.register_script(_LEASE)
        self._release = self._r.register_script(_RELEASE)
        self._delayed = f"{self._p}:delayed"

    def _call(self, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except redis.RedisError as exc:
            raise StorageError(f"redis {self.store.url or self._p}: {exc}") from exc

    def stream(self, lane: str) -> str:
        """The stream of a lane."""
        if lane in (INPUT, TASKS):
            return f"{self._p}:{lane}"
        return f"{self._p}:lane:{lane}"

    # --- the ingress ------------------------------------------------------------------------
    def ingest(self, events: list[dict]) -> list[str]:
        """Add events to the input queue, all or none; durable as far as the server's
        persistence settings make any write durable (see :meth:`durability_warning`)."""
        if not events:
            return []
        pipe = self._r.pipeline(transaction=True)
        for event in events:
            pipe.xadd(self.stream(INPUT), {"e": json.dumps(event)})
        return list(self._call(pipe.execute))

    def backlog(self) -> int:
        """Entries waiting in the input and task queues (processed entries are deleted)."""
        pipe = self._r.pipeline(transaction=False)
        pipe.xlen(self.stream(INPUT))
        pipe.xlen(self.stream(TASKS))
        return sum(self._call(pipe.execute))

    def ping(self) -> bool:
        try:
            return bool(self._r.ping())
        except Exception:  # any failure means "not healthy": the health endpoint reports it
            return False

    def durability_warning(self) -> str | None:
        try:
            aof = self._r.config_get("appendonly").get("appendonly")
            fsync = self._r.config_get("appendfsync").get("appendfsync")
        except redis.RedisError:
            return "cannot read the server's persistence settings (CONFIG GET refused): durability unknown"
        if aof != "yes":
            return ("the Redis server runs without the append-only file (appendonly no): events and effects "
                    "acknowledged since its last snapshot are lost if the server crashes")
        if fsync != "always":
            return (f"appendfsync is {fsync!r}: up to about a second of acknowledged writes is lost if the "
                    "server's machine crashes (use appendfsync always for none)")
        return None

    # --- the queues -------------------------------------------------------------------------
    def ensure_lanes(self, lanes: Iterable[str]) -> None:
        """Create the consumer group of each queue (reading from its first entry) if missing."""
        for lane in lanes:
            try:
                self._r.xgroup_create(self.stream(lane), GROUP, id="0", mkstream=True)
            except redis.ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise StorageError(f"redis {self.store.url or self._p}: {exc}") from exc
            except redis.RedisError as exc:
                raise StorageError(f"redis {self.store.url or self._p}: {exc}") from exc

    def read(self, lane: str, worker: str, count: int, block_ms: int | None = None) -> list[Entry]:
        reply = self._call(self._r.xreadgroup, GROUP, worker, {self.stream(lane): ">"},
                           count=count, block=block_ms)
        return [Entry(lane, entry_id, fields) for _, entries in (reply or []) for entry_id, fields in entries]

    def reclaim(self, lane: str, worker: str, min_idle_ms: int, count: int) -> list[Entry]:
        stream = self.stream(lane)
        reply = self._call(self._r.xautoclaim, stream, GROUP, worker, min_idle_ms,
                           start_id="0-0", count=count)
        claimed = [(entry_id, fields) for entry_id, fields in reply[1] if fields is not None]
        if not claimed:
            return []
        pipe = self._r.pipeline(transaction=False)
        for entry_id, _ in claimed:
            pipe.xpending_range(stream, GROUP, min=entry_id, max=entry_id, count=1)
        counts = [info[0]["times_delivered"] if info else 1 for info in self._call(pipe.execute)]
        return [Entry(lane, entry_id, fields, n) for (entry_id, fields), n in zip(claimed, counts)]

    def promote_due(self, now: float, limit: int = 500) -> int:
        return int(self._call(self._promote, [self._delayed], [repr(now), limit]))

    def hold(self, lane: str, worker: str, ttl_ms: int) -> bool:
        return bool(self._call(self._lease, [f"{self._p}:lease:{lane}"], [worker, ttl_ms]))

    def release(self, lane: str, worker: str) -> None:
        self._call(self._release, [f"{self._p}:lease:{lane}"], [worker])

    def lane_backlog(self, lanes: Sequence[str]) -> dict[str, int]:
        """Entries not yet acknowledged per queue (processed entries are deleted), and delayed tasks."""
        pipe = self._r.pipeline(transaction=False)
        for lane in lanes:
            pipe.xlen(self.stream(lane))
        pipe.zcard(self._delayed)
        counts = self._call(pipe.execute)
        return {**dict(zip(lanes, counts[:-1])), "delayed": counts[-1]}

    def pending(self, lanes: Sequence[str]) -> dict[str, int]:
        out = {}
        for lane in lanes:
            try:
                out[lane] = self._r.xpending(self.stream(lane), GROUP)["pending"]
            except redis.ResponseError:  # no such stream or group yet: nothing handed out
                out[lane] = 0
            except redis.RedisError as exc:
                raise StorageError(f"redis {self.store.url or self._p}: {exc}") from exc
        return out

    # --- units of work ----------------------------------------------------------------------
    def unit_store(self) -> RedisStore:
        self.store.tracking = True
        return self.store

    def begin_unit(self) -> None:
        self.store.reset()

    def prefetch_done(self, pairs: Iterable[tuple[str, str]]) -> None:
        self.store.prefetch_done(pairs)

    def commit_unit(self, worker: str | None = None, entries: Sequence[Entry] = (),
                    tasks: Iterable[Task] = (), counters: Mapping[str, int] | None = None) -> int:
        # Each entry must still be pending in the group and the worker's (a worker presumed
        # dead, whose entries were reclaimed, cannot commit).
        checks = [["XPENDING", self.stream(e.lane), GROUP, e.id, worker] for e in entries]
        key = f"{self._p}:counters"
        ops = [self._enqueue_op(task) for task in tasks]
        ops += [["HINCRBY", key, name, n] for name, n in (counters or {}).items()]
        return self.store.commit_unit(checks, ops + self._ack_ops(entries))

    def _enqueue_op(self, task: Task) -> list:
        body = json.dumps(task.payload, default=str)
        if task.due is None:
            return ["XADD", self.stream(task.lane), "*", "k", task.kind, "p", body]
        member = json.dumps({"q": self.stream(task.lane), "k": task.kind, "p": body, "u": uuid.uuid4().hex})
        return ["ZADD", self._delayed, repr(task.due), member]

    def _ack_ops(self, entries: Sequence[Entry]) -> list[list]:
        ops = []
        for lane in dict.fromkeys(e.lane for e in entries):
            ids = [e.id for e in entries if e.lane == lane]
            ops += [["XACK", self.stream(lane), GROUP, *ids], ["XDEL", self.stream(lane), *ids]]
        return ops

    # --- workers and counters ---------------------------------------------------------------
    def heartbeat(self, worker: str, info: dict) -> None:
        self._call(self._r.hset, f"{self._p}:workers", worker, json.dumps(info))

    def leave(self, worker: str) -> None:
        self._call(self._r.hdel, f"{self._p}:workers", worker)

    def workers(self) -> dict[str, dict]:
        raw = self._call(self._r.hgetall, f"{self._p}:workers")
        return {name: json.loads(info) for name, info in sorted(raw.items())}

    def counters(self) -> dict[str, int]:
        return {k: int(v) for k, v in self._call(self._r.hgetall, f"{self._p}:counters").items()}

    def memory(self) -> dict:
        """Keys and bytes per class of key, estimated (engine/storage/redismemory.py). A server
        that refuses SCAN or MEMORY (an ACL, a managed service) gives ``unavailable``: why."""
        try:
            return {"estimate": True, **memory_usage(self._r, self._p)}
        except redis.ResponseError as exc:
            return {"estimate": True, "unavailable": str(exc), "classes": {}, "keys": 0, "bytes": 0,
                    "exact_counts": False, "scanned": 0}
        except redis.RedisError as exc:
            raise StorageError(f"redis {self.store.url or self._p}: {exc}") from exc

    def close(self) -> None:
        self.store.close()
