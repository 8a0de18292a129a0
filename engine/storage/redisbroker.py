"""The Redis broker: a deployment's partitions, queues, leases, workers and counters on a Redis
6.2+ server or a Redis Cluster.

A deployment's work is split into partitions (engine/storage/broker.py). Each partition *p*
keeps its queues and its share of the store under one Redis Cluster hash tag, ``{P:p}``
(``P`` the store's prefix; the store's keys are listed in engine/storage/redisstore.py), so
that a unit of work of the partition commits with one script on one slot:

- ``{P:p}:input``: events from the ingress (``serve``, ``publish``) whose partition key falls
  in *p*, routed in arrival order;
- ``{P:p}:tasks``: deliveries, retries, orchestration steps;
- ``{P:p}:lane:stream:<name>``: deliveries to a windowed stream, processed in order;
- ``{P:p}:delayed``: tasks due later (retries, `sleep`, gap timers), a sorted set moved to
  their queue when due;
- ``{P:p}:lease``: the worker that holds the partition: only it reads the partition's
  queues, and a unit it commits is refused once the lease is another's;
- ``{P:p}:counters``: the deployment's counters, as the partition's units added to them;
- ``{P:p}:progress`` and ``{P:p}:pending`` (meshes whose windows take the mesh's own events,
  docs/streams.md): the largest event time among the partition's inputs routed so far, and
  a sorted set of the partition's pending work by the earliest event time it can still make
  (tasks by a ``w`` field, removed with their acknowledgement; a resequencer's buffered
  events as ``h:<name>``);
- ``{P:p}:outbox`` (Redis Cluster only): tasks a unit made for other partitions. A script
  cannot write to another slot, so they are committed here with the unit, then moved to
  their partition, each exactly once: the move sets ``{P:q}:fwd:<p>-<entry id>`` (kept a
  day) in the target's slot together with the task, and skips a task whose marker is set.
  On one server a unit's commit adds them to their partitions directly.

The queues are Redis Streams read by one consumer group (:data:`GROUP`). A processed entry
is acknowledged and deleted in the same commit as its effects, so a stream's length is its
backlog. An entry whose worker died stays pending in the group and is reclaimed
(``XAUTOCLAIM``) by the partition's next holder; its delivery count says how often it was
handed out. ``{P}:meta`` holds the deployment's number of partitions, ``{P}:workers`` the
heartbeats.
"""
from __future__ import annotations

import json
import uuid
from typing import Iterable, Mapping, Sequence

import redis

from ..core.errors import UsageError
from ..language.model import DEFAULT_PARTITIONS
from .base import StorageError
from .broker import INPUT, TASKS, Entry, Task, input_partition, partition_of
from .redismemory import memory_usage
from .redisstore import REDIS_ERRORS, RedisStore

GROUP = "workers"  # the consumer group every worker reads through
FORWARD_MARK_SECONDS = 86400  # how long a moved outbox entry's marker is kept

# Move up to ARGV[2] delayed tasks due at ARGV[1] to their queues; returns how many moved.
_PROMOTE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, member in ipairs(due) do
  local task = cjson.decode(member)
  if task.w then
    redis.call('XADD', task.q, '*', 'k', task.k, 'p', task.p, 'w', task.w)
  else
    redis.call('XADD', task.q, '*', 'k', task.k, 'p', task.p)
  end
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

# Move one outbox entry to its partition unless it was moved before: KEYS[1] its marker,
# KEYS[2] the target queue or delayed set, KEYS[3] the target's pending work; ARGV: kind,
# payload, delayed member, due ('' now), marker seconds, pending name ('' none), its bound.
_FORWARD = """
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[5]) then return 0 end
if ARGV[4] == '' and ARGV[6] == '' then
  redis.call('XADD', KEYS[2], '*', 'k', ARGV[1], 'p', ARGV[2])
elseif ARGV[4] == '' then
  redis.call('XADD', KEYS[2], '*', 'k', ARGV[1], 'p', ARGV[2], 'w', ARGV[6])
else
  redis.call('ZADD', KEYS[2], ARGV[4], ARGV[3])
end
if ARGV[6] ~= '' then redis.call('ZADD', KEYS[3], ARGV[7], ARGV[6]) end
return 1
"""

# Add events to one partition's input, all or none: KEYS[1] the queue, ARGV the events.
_INGEST = """
local ids = {}
for i, event in ipairs(ARGV) do ids[i] = redis.call('XADD', KEYS[1], '*', 'e', event) end
return ids
"""


class RedisBroker:
    """A :class:`~engine.storage.broker.Broker` on the server and prefix of a :class:`RedisStore`."""

    def __init__(self, store: RedisStore):
        self.store = store
        self._r, self._p = store.client, store.prefix
        self._promote = self._r.register_script(_PROMOTE)
        self._lease = self._r.register_script(_LEASE)
        self._release = self._r.register_script(_RELEASE)
        self._forward = self._r.register_script(_FORWARD)
        self._ingest = self._r.register_script(_INGEST)
        self._held: set[int] = set()  # partitions this process holds: its units are fenced by the lease

    def _call(self, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except REDIS_ERRORS as exc:
            raise StorageError(f"redis {self.store.url or self._p}: {exc}") from exc

    def _key(self, name: str, partition: int | None = None) -> str:
        return self.store.key(name, partition)

    def stream(self, lane: str, partition: int = 0) -> str:
        """The stream of a partition's lane."""
        return self._key(lane if lane in (INPUT, TASKS) else f"lane:{lane}", partition)

    def _run(self, pipe) -> list:
        return self._call(pipe.execute)

    # --- partitions ---------------------------------------------------------------------------
    @property
    def partitions(self) -> int:
        if not self.store.partitions:
            self.configure(DEFAULT_PARTITIONS, None)
        return self.store.partitions

    def configure(self, partitions: int, pinned: Mapping[str, str] | None = None) -> None:
        settings = {"partitions": partitions, "pinned": dict(sorted((pinned or {}).items()))}
        if not self._call(self._r.set, self._key("meta"), json.dumps(settings), nx=True):
            recorded = json.loads(self._call(self._r.get, self._key("meta")))
            if recorded["partitions"] != partitions:
                where, had = self.store.url or self._p, recorded["partitions"]
                raise UsageError(f"the deployment at {where} has {had} partitions and this mesh says "
                                 f"{partitions} (deployment.partitions of its Mesh document): use the mesh "
                                 "it was started with, or a new --store prefix")
            if pinned is None:
                settings = recorded
            elif recorded.get("pinned") != settings["pinned"]:
                self._call(self._r.set, self._key("meta"), json.dumps(settings))  # the mesh's streams changed
        self.store.meta = settings

    def partition_for(self, key: str) -> int:
        return partition_of(key, self.partitions)

    def home(self, record: str) -> int | None:
        return self.store.partition_of_record(record)

    # --- the ingress ------------------------------------------------------------------------
    def ingest(self, events: list[dict]) -> list[str]:
        """Add events to the input queues of their partitions: all or none on one server, all or
        none per partition on a cluster; durable as far as the server's persistence settings
        make any write durable (see :meth:`durability_warning`)."""
        if not events:
            return []
        pinned = self.store.meta.get("pinned", {})  # event type -> partition key of its inputs
        where = [input_partition(e, self.partitions, pinned) for e in events]
        if not self.store.cluster:
            pipe = self._r.pipeline(transaction=True)
            for event, partition in zip(events, where):
                pipe.xadd(self.stream(INPUT, partition), {"e": json.dumps(event)})
            return list(self._run(pipe))
        ids: list[str] = [""] * len(events)
        for partition in dict.fromkeys(where):
            places = [i for i, p in enumerate(where) if p == partition]
            added = self._call(self._ingest, [self.stream(INPUT, partition)],
                               [json.dumps(events[i]) for i in places])
            for i, entry_id in zip(places, added):
                ids[i] = entry_id
        return ids

    def backlog(self) -> int:
        """Entries waiting in the input and task queues (processed entries are deleted)."""
        pipe = self._r.pipeline(transaction=False)
        for partition in range(self.partitions):
            pipe.xlen(self.stream(INPUT, partition))
            pipe.xlen(self.stream(TASKS, partition))
        return sum(self._run(pipe))

    def ping(self) -> bool:
        try:
            return bool(self._r.ping())
        except Exception:  # any failure means "not healthy": the health endpoint reports it
            return False

    def durability_warning(self) -> str | None:
        try:
            aof = self._first(self._r.config_get("appendonly")).get("appendonly")
            fsync = self._first(self._r.config_get("appendfsync")).get("appendfsync")
        except REDIS_ERRORS:
            return "cannot read the server's persistence settings (CONFIG GET refused): durability unknown"
        if aof != "yes":
            return ("the Redis server runs without the append-only file (appendonly no): events and effects "
                    "acknowledged since its last snapshot are lost if the server crashes")
        if fsync != "always":
            return (f"appendfsync is {fsync!r}: up to about a second of acknowledged writes is lost if the "
                    "server's machine crashes (use appendfsync always for none)")
        return None

    @staticmethod
    def _first(reply: dict) -> dict:
        """A CONFIG GET reply; a cluster's is per node (the first node's stands for all)."""
        nested = [v for v in reply.values() if isinstance(v, dict)]
        return nested[0] if nested else reply

    # --- the queues -------------------------------------------------------------------------
    def ensure_lanes(self, lanes: Iterable[str]) -> None:
        """Create the consumer group of each queue of each partition (reading from its first
        entry) if missing."""
        pipe = self._r.pipeline(transaction=False)
        for partition in range(self.partitions):
            for lane in lanes:
                pipe.xgroup_create(self.stream(lane, partition), GROUP, id="0", mkstream=True)
        for reply in self._call(pipe.execute, raise_on_error=False):
            if isinstance(reply, Exception) and "BUSYGROUP" not in str(reply):
                raise StorageError(f"redis {self.store.url or self._p}: {reply}")

    def read(self, lane: str, worker: str, count: int, block_ms: int | None = None,
             partition: int = 0) -> list[Entry]:
        reply = self._call(self._r.xreadgroup, GROUP, worker, {self.stream(lane, partition): ">"},
                           count=count, block=block_ms)
        return [Entry(lane, entry_id, fields, 1, partition)
                for _, entries in (reply or []) for entry_id, fields in entries]

    def read_lanes(self, lanes: Sequence[str], worker: str, count: int, partitions: Sequence[int],
                   counts: Mapping[str, int] | None = None) -> list[Entry]:
        by_count: dict[int, list[str]] = {}  # XREADGROUP's COUNT is per call: one call per count
        for lane in lanes:
            by_count.setdefault((counts or {}).get(lane, count), []).append(lane)
        pipe = self._r.pipeline(transaction=False)
        for partition in partitions:  # a partition's streams share a slot
            for n, group in by_count.items():
                pipe.xreadgroup(GROUP, worker, {self.stream(lane, partition): ">" for lane in group}, count=n)
        lane_of = {self.stream(lane, p): (lane, p) for p in partitions for lane in lanes}
        read = []
        for reply in self._run(pipe):
            for stream, entries in reply or []:
                lane, partition = lane_of[stream]
                read += [Entry(lane, entry_id, fields, 1, partition) for entry_id, fields in entries]
        return read

    def reclaim(self, lane: str, worker: str, min_idle_ms: int, count: int,
                partition: int = 0) -> list[Entry]:
        stream = self.stream(lane, partition)
        reply = self._call(self._r.xautoclaim, stream, GROUP, worker, min_idle_ms,
                           start_id="0-0", count=count)
        claimed = [(entry_id, fields) for entry_id, fields in reply[1] if fields is not None]
        if not claimed:
            return []
        pipe = self._r.pipeline(transaction=False)
        for entry_id, _ in claimed:
            pipe.xpending_range(stream, GROUP, min=entry_id, max=entry_id, count=1)
        counts = [info[0]["times_delivered"] if info else 1 for info in self._run(pipe)]
        return [Entry(lane, entry_id, fields, n, partition) for (entry_id, fields), n in zip(claimed, counts)]

    def owns(self, worker: str, entries: Sequence[Entry]) -> bool:
        if not entries:
            return True
        pipe = self._r.pipeline(transaction=False)
        for e in entries:
            pipe.xpending_range(self.stream(e.lane, e.partition), GROUP, min=e.id, max=e.id, count=1)
        return all(info and info[0]["consumer"] == worker for info in self._run(pipe))

    def promote_due(self, now: float, limit: int = 500, partitions: Sequence[int] | None = None) -> int:
        chosen = range(self.partitions) if partitions is None else partitions
        if self.store.cluster:  # (a script in a cluster pipeline is not loaded on its node for us)
            return sum(int(self._call(self._promote, [self._key("delayed", p)], [repr(now), limit]))
                       for p in chosen)
        pipe = self._r.pipeline(transaction=False)
        for partition in chosen:
            self._promote(keys=[self._key("delayed", partition)], args=[repr(now), limit], client=pipe)
        return sum(map(int, self._run(pipe)))

    def forward(self, partition: int) -> int:
        if not self.store.cluster:
            return 0  # on one server a unit's commit adds its tasks to their partitions itself
        outbox = self._key("outbox", partition)
        moved = 0
        while True:
            entries = self._call(self._r.xrange, outbox, "-", "+", count=200)
            if not entries:
                return moved
            for entry_id, f in entries:
                target = int(f["t"])
                queue = self.stream(f["l"], target) if not f["d"] else self._key("delayed", target)
                task = {"q": self.stream(f["l"], target), "k": f["k"], "p": f["p"],
                        "u": f"{partition}-{entry_id}"}
                if f.get("w"):
                    task["w"] = f["w"]
                mark = self._key(f"fwd:{partition}-{entry_id}", target)
                moved += int(self._call(self._forward, [mark, queue, self._key("pending", target)],
                                        [f["k"], f["p"], json.dumps(task), f["d"], FORWARD_MARK_SECONDS,
                                         f.get("w", ""), f.get("b", "")]))
            # the moved tasks count in their target's pending work now (a crash before this
            # line forwards them again: the markers skip them, and this is done then)
            names = [f["w"] for _, f in entries if f.get("w")]
            if names:
                self._call(self._r.zrem, self._key("pending", partition), *names)
            self._call(self._r.xdel, outbox, *(entry_id for entry_id, _ in entries))
            if len(entries) < 200:
                return moved

    def hold(self, partition: int, worker: str, ttl_ms: int) -> bool:
        held = bool(self._call(self._lease, [self._key("lease", partition)], [worker, ttl_ms]))
        (self._held.add if held else self._held.discard)(partition)
        return held

    def release(self, partition: int, worker: str) -> None:
        self._held.discard(partition)
        self._call(self._release, [self._key("lease", partition)], [worker])

    def holders(self) -> dict[int, str | None]:
        pipe = self._r.pipeline(transaction=False)
        for partition in range(self.partitions):
            pipe.get(self._key("lease", partition))
        return dict(enumerate(self._run(pipe)))

    def _lane_counts(self, lanes: Sequence[str]) -> dict[int, list[int]]:
        """Per partition: the length of each lane, then the number of tasks due later."""
        pipe = self._r.pipeline(transaction=False)
        for partition in range(self.partitions):
            for lane in lanes:
                pipe.xlen(self.stream(lane, partition))
            pipe.zcard(self._key("delayed", partition))
        counts, width = self._run(pipe), len(lanes) + 1
        return {p: counts[p * width:(p + 1) * width] for p in range(self.partitions)}

    def lane_backlog(self, lanes: Sequence[str]) -> dict[str, int]:
        """Entries not yet acknowledged per queue (processed entries are deleted), and delayed tasks."""
        per = self._lane_counts(lanes)
        totals = [sum(column) for column in zip(*per.values())] if per else [0] * (len(lanes) + 1)
        return {**dict(zip(lanes, totals[:-1])), "delayed": totals[-1]}

    def partition_backlog(self, lanes: Sequence[str]) -> dict[int, int]:
        return {p: sum(counts) for p, counts in self._lane_counts(lanes).items()}

    def _pending_counts(self, lanes: Sequence[str]) -> dict[int, list[int]]:
        """Per partition: the entries of each lane in a worker's hand."""
        pipe = self._r.pipeline(transaction=False)
        for partition in range(self.partitions):
            for lane in lanes:
                pipe.xpending(self.stream(lane, partition), GROUP)
        replies = self._call(pipe.execute, raise_on_error=False)
        counts = []
        for reply in replies:
            if isinstance(reply, redis.ResponseError):  # no such stream or group yet: nothing handed out
                counts.append(0)
            elif isinstance(reply, Exception):
                raise StorageError(f"redis {self.store.url or self._p}: {reply}")
            else:
                counts.append(reply["pending"])
        width = len(lanes)
        return {p: counts[p * width:(p + 1) * width] for p in range(self.partitions)}

    def pending(self, lanes: Sequence[str]) -> dict[str, int]:
        per = self._pending_counts(lanes)
        return {lane: sum(per[p][i] for p in per) for i, lane in enumerate(lanes)}

    def partition_lag(self, lanes: Sequence[str]) -> dict[int, int]:
        lengths, in_hand = self._lane_counts(lanes), self._pending_counts(lanes)
        return {p: max(sum(lengths[p][:-1]) - sum(in_hand[p]), 0) for p in lengths}

    # --- units of work ----------------------------------------------------------------------
    def unit_store(self) -> RedisStore:
        self.store.tracking = True
        return self.store

    def begin_unit(self, partition: int | None = None) -> None:
        self.store.reset()
        self.store.partition = partition

    def prefetch_done(self, pairs: Iterable[tuple[str, str]]) -> None:
        self.store.prefetch_done(pairs)

    def commit_unit(self, worker: str | None = None, entries: Sequence[Entry] = (),
                    tasks: Iterable[Task] = (), counters: Mapping[str, int] | None = None,
                    progress: float | None = None, holds: Mapping[str, float | None] | None = None) -> int:
        store = self.store
        if store.partition is None and entries:
            store.partition = entries[0].partition  # a unit of one partition's entries is that partition's
        home = store.partition
        # Each entry must still be pending in the group and the worker's (a worker presumed
        # dead, whose entries were reclaimed, cannot commit), and the partition its lease.
        checks = [["XPENDING", self.stream(e.lane, e.partition), GROUP, e.id, worker] for e in entries]
        if home is not None and home in self._held:
            checks.append(["LEASE", self._key("lease", home), worker])
        ops, elsewhere, outboxed = [], {}, False
        for task in tasks:
            target = task.partition if task.partition is not None else (home if home is not None else 0)
            if target == home or not store.cluster:
                ops += self._enqueue_ops(task, target)
            elif home is not None:  # another slot: through the outbox, moved after the commit
                ops += self._outbox_ops(task, home, target)
                outboxed = True
            else:
                elsewhere.setdefault(target, []).extend(self._enqueue_ops(task, target))
        if counters:
            key = self._key("counters", home)
            ops += [["HINCRBY", key, name, n] for name, n in counters.items()]
        if progress is not None:
            ops.append(["SET", self._key("progress", home), repr(progress)])
        pending = self._key("pending", home)
        for name, bound in (holds or {}).items():
            ops.append(["ZREM", pending, f"h:{name}"] if bound is None
                       else ["ZADD", pending, repr(bound), f"h:{name}"])
        outcome = store.commit_unit(checks, ops + self._ack_ops(entries), elsewhere)
        if outcome == 1 and outboxed:
            self.forward(home)
        return outcome

    def _enqueue_ops(self, task: Task, partition: int) -> list[list]:
        """The task into its queue (or the delayed set); with a bound, into the partition's
        pending work too, under a name its entry carries (``w``) until it is acknowledged."""
        body = json.dumps(task.payload, default=str)
        name = uuid.uuid4().hex
        pending = self._key("pending", partition)
        counted = [] if task.bound is None else [["ZADD", pending, repr(task.bound), name]]
        if task.due is None:
            marked = [] if task.bound is None else ["w", name]
            queue = self.stream(task.lane, partition)
            return [["XADD", queue, "*", "k", task.kind, "p", body, *marked], *counted]
        fields = {"q": self.stream(task.lane, partition), "k": task.kind, "p": body, "u": name}
        if task.bound is not None:
            fields["w"] = name
        return [["ZADD", self._key("delayed", partition), repr(task.due), json.dumps(fields)], *counted]

    def _outbox_ops(self, task: Task, home: int, target: int) -> list[list]:
        """The task into the home partition's outbox; with a bound, counted in the home's
        pending work until :meth:`forward` has moved it (and counted it) in its target's."""
        due = "" if task.due is None else repr(task.due)
        body = json.dumps(task.payload, default=str)
        fields = ["t", str(target), "l", task.lane, "k", task.kind, "p", body, "d", due]
        if task.bound is None:
            return [["XADD", self._key("outbox", home), "*", *fields]]
        name = uuid.uuid4().hex
        return [["XADD", self._key("outbox", home), "*", *fields, "w", name, "b", repr(task.bound)],
                ["ZADD", self._key("pending", home), repr(task.bound), name]]

    def _ack_ops(self, entries: Sequence[Entry]) -> list[list]:
        ops = []
        for lane, partition in dict.fromkeys((e.lane, e.partition) for e in entries):
            of_lane = [e for e in entries if e.lane == lane and e.partition == partition]
            stream = self.stream(lane, partition)
            ids = [e.id for e in of_lane]
            ops += [["XACK", stream, GROUP, *ids], ["XDEL", stream, *ids]]
            names = [e.fields["w"] for e in of_lane if e.fields.get("w")]
            if names:
                ops.append(["ZREM", self._key("pending", partition), *names])
        return ops

    # --- event-time progress ----------------------------------------------------------------
    def input_progress(self, partition: int) -> float | None:
        value = self._call(self._r.get, self._key("progress", partition))
        return None if value is None else float(value)

    def watermarks(self) -> dict[int, tuple[float | None, float | None]]:
        count = self.partitions
        first = self._r.pipeline(transaction=False)
        for partition in range(count):  # a partition's progress before its pending work: see below
            first.get(self._key("progress", partition))
            first.zrange(self._key("pending", partition), 0, 0, withscores=True)
        replies = self._run(first)
        # Pending work is read twice, the second pass after the first has answered: a task that
        # moves from one partition's outbox to another partition between two reads (on a Redis
        # Cluster) is counted in both while it moves, so one of the passes sees it.
        second = self._r.pipeline(transaction=False)
        for partition in range(count):
            second.zrange(self._key("pending", partition), 0, 0, withscores=True)
        again = self._run(second)
        out = {}
        for p in range(count):
            progress, seen = replies[2 * p], [r[0][1] for r in (replies[2 * p + 1], again[p]) if r]
            out[p] = (None if progress is None else float(progress), min(seen) if seen else None)
        return out

    # --- workers and counters ---------------------------------------------------------------
    def heartbeat(self, worker: str, info: dict) -> None:
        self._call(self._r.hset, self._key("workers"), worker, json.dumps(info))

    def leave(self, worker: str) -> None:
        self._call(self._r.hdel, self._key("workers"), worker)

    def workers(self) -> dict[str, dict]:
        raw = self._call(self._r.hgetall, self._key("workers"))
        return {name: json.loads(info) for name, info in sorted(raw.items())}

    def counters(self) -> dict[str, int]:
        pipe = self._r.pipeline(transaction=False)
        homes = [None, *range(self.store.partitions)]
        for home in homes:
            pipe.hgetall(self._key("counters", home))
        total: dict[str, int] = {}
        for counts in self._run(pipe):
            for name, n in counts.items():
                total[name] = total.get(name, 0) + int(n)
        return total

    def deploy_mesh(self, version: str, snapshot: str, info: dict) -> None:
        # the snapshot first: a version listed always has its files
        self._call(self._r.set, self._key(f"mesh:{version}"), snapshot)
        order = self._call(self._r.incr, self._key("meshes:seq"))
        self._call(self._r.hset, self._key("meshes"), version, json.dumps({**info, "seq": order}))

    def mesh_versions(self) -> list[dict]:
        raw = self._call(self._r.hgetall, self._key("meshes"))
        listed = [{**json.loads(info), "version": version} for version, info in raw.items()]
        return sorted(listed, key=lambda info: info["seq"])

    def mesh_snapshot(self, version: str) -> str | None:
        return self._call(self._r.get, self._key(f"mesh:{version}"))

    def retire_mesh(self, version: str) -> None:
        self._call(self._r.hdel, self._key("meshes"), version)
        self._call(self._r.delete, self._key(f"mesh:{version}"))

    def memory(self) -> dict:
        """Keys and bytes per class of key, estimated (engine/storage/redismemory.py). A server
        that refuses SCAN or MEMORY (an ACL, a managed service) gives ``unavailable``: why."""
        try:
            if not self.store.cluster:
                return {"estimate": True, **memory_usage(self._r, self._p)}
            return {"estimate": True, **_added(memory_usage(self._r.get_redis_connection(node), self._p)
                                               for node in self._r.get_primaries())}
        except redis.ResponseError as exc:
            return {"estimate": True, "unavailable": str(exc), "classes": {}, "keys": 0, "bytes": 0,
                    "exact_counts": False, "scanned": 0}
        except REDIS_ERRORS as exc:
            raise StorageError(f"redis {self.store.url or self._p}: {exc}") from exc

    def close(self) -> None:
        self.store.close()


def _added(reports) -> dict:
    """The memory reports of a cluster's primaries as one (each holds its own slots' keys)."""
    total = {"classes": {}, "keys": 0, "bytes": 0, "exact_counts": True, "scanned": 0}
    for report in reports:
        for name, held in report["classes"].items():
            into = total["classes"].setdefault(name, {"keys": 0, "bytes": 0})
            into["keys"] += held["keys"]
            into["bytes"] += held["bytes"]
        total["keys"] += report["keys"]
        total["bytes"] += report["bytes"]
        total["exact_counts"] &= report["exact_counts"]
        total["scanned"] += report["scanned"]
    return total
