"""The work queues of a Redis deployment: Redis Streams read by one consumer group of workers.

Three kinds of queue, all streams under the store's prefix ``P``:

- ``P:input``: events from the ingress (``serve``, ``publish``), routed in arrival order by
  whichever worker holds the ``input`` lease;
- ``P:lane:stream:<name>``: deliveries to a windowed stream, processed in order by the
  holder of that lane's lease (a window operator's state has one writer at a time);
- ``P:tasks``: everything else (deliveries, retries, orchestration steps), shared by all.

Work due later (retries, `sleep`, gap timers) waits in the sorted set ``P:delayed`` and is
moved to its queue when due. A processed entry is acknowledged and deleted in the same
commit as its effects, so a stream's length is its backlog. An entry whose worker died
stays pending in the group and is reclaimed (``XAUTOCLAIM``) after an idle time; its
delivery count says how often it was handed out.
"""
from __future__ import annotations

import json
import uuid
from dataclasses import dataclass

GROUP = "workers"
INPUT = "input"  # the lane of ingress events

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


@dataclass
class Entry:
    """One queue entry handed to this worker: ``deliveries`` counts this hand-out too."""

    stream: str
    id: str
    fields: dict
    deliveries: int = 1


class WorkQueues:
    def __init__(self, store):
        self.r, self.p = store.r, store.p
        self._promote = self.r.register_script(_PROMOTE)
        self._lease = self.r.register_script(_LEASE)
        self._release = self.r.register_script(_RELEASE)
        self.delayed = f"{self.p}:delayed"
        self.tasks = f"{self.p}:tasks"

    def stream(self, lane: str) -> str:
        """The stream of a lane (``input`` or ``stream:<name>``) or of the shared tasks (``tasks``)."""
        if lane == INPUT:
            return f"{self.p}:input"
        return self.tasks if lane == "tasks" else f"{self.p}:lane:{lane}"

    def ensure_groups(self, lanes: list[str]) -> None:
        """Create the consumer group of each queue (reading from its first entry) if missing."""
        import redis

        for lane in lanes:
            try:
                self.r.xgroup_create(self.stream(lane), GROUP, id="0", mkstream=True)
            except redis.ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    # --- reading --------------------------------------------------------------------------
    def read(self, lane: str, worker: str, count: int, block_ms: int | None = None) -> list[Entry]:
        """New entries for this worker (waiting up to *block_ms* for some; None: not at all)."""
        stream = self.stream(lane)
        reply = self.r.xreadgroup(GROUP, worker, {stream: ">"}, count=count, block=block_ms)
        return [Entry(stream, entry_id, fields) for _, entries in (reply or []) for entry_id, fields in entries]

    def reclaim(self, lane: str, worker: str, min_idle_ms: int, count: int) -> list[Entry]:
        """Entries idle for *min_idle_ms* in other workers' hands (a dead worker's), now this
        worker's, oldest first, with their delivery counts."""
        stream = self.stream(lane)
        reply = self.r.xautoclaim(stream, GROUP, worker, min_idle_ms, start_id="0-0", count=count)
        claimed = [(entry_id, fields) for entry_id, fields in reply[1] if fields is not None]
        if not claimed:
            return []
        pipe = self.r.pipeline(transaction=False)
        for entry_id, _ in claimed:
            pipe.xpending_range(stream, GROUP, min=entry_id, max=entry_id, count=1)
        counts = [info[0]["times_delivered"] if info else 1 for info in pipe.execute()]
        return [Entry(stream, entry_id, fields, n) for (entry_id, fields), n in zip(claimed, counts)]

    # --- what a commit does to the queues ------------------------------------------------
    @staticmethod
    def ack_ops(entries: list[Entry]) -> list[list]:
        ops = []
        for stream in dict.fromkeys(e.stream for e in entries):
            ids = [e.id for e in entries if e.stream == stream]
            ops += [["XACK", stream, GROUP, *ids], ["XDEL", stream, *ids]]
        return ops

    @staticmethod
    def ownership(entries: list[Entry], worker: str) -> list[list]:
        """Commit checks: each entry is still pending and this worker's."""
        return [[e.stream, e.id, worker] for e in entries]

    def enqueue_op(self, lane: str, kind: str, payload, when: float, now: float) -> list:
        """Add a task to a lane's queue now, or to the delayed set until *when*."""
        body = json.dumps(payload, default=str)
        if when <= now:
            return ["XADD", self.stream(lane), "*", "k", kind, "p", body]
        member = json.dumps({"q": self.stream(lane), "k": kind, "p": body, "u": uuid.uuid4().hex})
        return ["ZADD", self.delayed, repr(when), member]

    def promote_due(self, now: float, limit: int = 500) -> int:
        return int(self._promote([self.delayed], [repr(now), limit]))

    # --- leases: one worker at a time per ordered lane -------------------------------------
    def hold(self, lane: str, worker: str, ttl_ms: int) -> bool:
        """Take the lane's lease, or renew it if this worker holds it; False if another does."""
        return bool(self._lease([f"{self.p}:lease:{lane}"], [worker, ttl_ms]))

    def release(self, lane: str, worker: str) -> None:
        self._release([f"{self.p}:lease:{lane}"], [worker])

    # --- what is left to do -------------------------------------------------------------
    def backlog(self, lanes: list[str]) -> dict[str, int]:
        """Entries not yet acknowledged per queue (processed entries are deleted), and delayed tasks."""
        pipe = self.r.pipeline(transaction=False)
        for lane in lanes:
            pipe.xlen(self.stream(lane))
        pipe.zcard(self.delayed)
        counts = pipe.execute()
        return {**dict(zip(lanes, counts[:-1])), "delayed": counts[-1]}

    def pending(self, lanes: list[str]) -> dict[str, int]:
        """Entries handed to a worker and not yet acknowledged, per queue."""
        import redis

        out = {}
        for lane in lanes:
            try:
                out[lane] = self.r.xpending(self.stream(lane), GROUP)["pending"]
            except redis.ResponseError:  # no such stream or group yet: nothing handed out
                out[lane] = 0
        return out
