"""The Redis store: the same contract as memory and SQLite, on a Redis 6.2+ server or cluster.

Reads go to Redis; writes are buffered and applied by one Lua script at :meth:`commit`, so
everything since the last commit lands together or not at all (a script runs atomically).
The broker of a deployment (engine/storage/redisbroker.py) commits its units of work with
the same script (:meth:`RedisStore.commit_unit`): the values a unit read are checked to be
unchanged (optimistic concurrency between workers), and the broker's own checks and writes
(the queue entry is still the worker's, the partition still its lease; its acknowledgement,
new tasks, counters) are applied in the same step, so an effect and its ack commit together.

Every key carries a Redis Cluster hash tag, so that one commit script only touches keys of
one slot. A store written by one process (``meshctl run --store``) keeps all its keys under
one tag, ``{P}``; a deployment's store is split into partitions (engine/storage/broker.py),
and what a unit of partition *p* reads and writes lives under the tag ``{P:p}``. ``P`` is the
prefix (``?prefix=`` in the URL, default ``meshctl``); ``T`` below is either tag::

    T:j:<journal>      stream of journal records (input, emitted, trace): one entry per commit,
                       its field ``b`` the JSON array of the records it appended
    T:done:<consumer>|<event key>  dedup record: the clock time it took effect (the key is the
                       event's identity, source and id: engine/runtime/identity.py)
    T:dlq              hash id -> dead letter JSON;  T:dlq:order  zset id by arrival
    T:state:<key>      JSON value;  T:statekeys  zset of live state keys (for prefix listing)
    T:runs:ended       zset of finished runs' state keys, by when they expire (ms)
    T:retention        hash: ``since``, server time (s) of the first write kept for a retention
                       (what aged_out counts from), and the writer's ``runs``, ``archive``, ``dedup``
    {P}:checkpoint     the last commit's checkpoint (single-process runs)
    {P}:meta           a deployment's settings (its number of partitions)
    {P:p}:input, :tasks, :lane:*, :delayed, :lease, :outbox, :fwd:*, :counters; {P}:workers
                       the broker's (engine/storage/redisbroker.py)

All key names are built by :meth:`RedisStore.key` (and the broker's by its ``_key``).
Outside a unit of work (``meshctl dlq``, ``runs``, ``state`` on a deployment) reads look in
every partition, and a write goes to the partition its key was found in.

Retention (the mesh's ``retention``) is kept by Redis itself, counted in the server's time
from each write: a dedup record is written with a TTL of ``retention.dedup``, a finished run
with one of ``retention.runs`` (and leaves the live state index for ``T:runs:ended``), and each
commit trims the archive journals (``input``, ``emitted``; in a deployment the trace as well)
to the entries of the last ``retention.archive`` (``XTRIM MINID``, whole stream nodes) and
sets the journal to expire that long after its last write, so an idle deployment empties too.
Dead letters stay until redriven or purged; processed queue entries are deleted when acked.
"""
from __future__ import annotations

import hashlib
import json
import math
from typing import Any, Iterable, Iterator, Mapping
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import redis
from redis.cluster import RedisCluster

from ..core.deadletter import DeadLetter
from ..core.errors import UsageError
from ..language.model import DEFAULT_RETENTION, Retention
from .base import NotAStoreURL, StorageError
from .broker import partition_of
from .sqlite import DEDUP_WINDOW

# what the client raises when the server or cluster fails: a cluster's own errors (no node
# reachable, a slot no node serves) are not RedisErrors
REDIS_ERRORS = (redis.RedisError, redis.exceptions.RedisClusterException)
DEFAULT_PREFIX = "meshctl"
CLUSTER_SCHEME = "redis+cluster"
ARCHIVED = ("input", "emitted")  # the journals `retention.archive` applies to in a run
FOREVER = -1  # a keep time (ms) of an op: no expiry

# KEYS[1]: any key of the slot the script works in (a Redis Cluster routes the script by it).
# ARGV[1]: JSON list of checks; ARGV[2]: JSON list of write ops. A check is [key, expected
# value, or its SHA-1 (a unit read a big window state: its digest is sent back, not itself),
# or false: absent]; ['XPENDING', stream, group, entry id, consumer]: the entry is pending in
# the group and the consumer's; or ['LEASE', key, holder]: the partition's lease is the
# holder's. An op is a Redis command as a list, or one of the composite ops below, whose
# second element is the tag their keys are under. Returns 1 when every op was applied;
# nothing is written when a read value changed (0) or an entry or lease is no longer the
# consumer's (-1). A keep time is in ms of server time, -1 for ever.
_COMMIT = """
if redis.replicate_commands then redis.replicate_commands() end  -- Redis 6.2: TIME before writes
local now_ms = nil
local function now()
  if not now_ms then
    local t = redis.call('TIME')
    now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  end
  return now_ms
end
local checks = cjson.decode(ARGV[1])
for _, c in ipairs(checks) do
  if c[1] == 'XPENDING' and #c == 5 then
    local info = redis.call('XPENDING', c[2], c[3], c[4], c[4], 1)
    if #info == 0 or info[1][2] ~= c[5] then return -1 end
  elseif c[1] == 'LEASE' and #c == 3 then
    if redis.call('GET', c[2]) ~= c[3] then return -1 end
  else
    local v = redis.call('GET', c[1])
    if v ~= c[2] and (v == false or c[2] == false or redis.sha1hex(v) ~= c[2]) then return 0 end
  end
end
for _, op in ipairs(cjson.decode(ARGV[2])) do
  local name, T = op[1], op[2]
  if name == 'DLQ+' then
    local seq = redis.call('INCR', T .. ':dlq:seq')
    redis.call('HSET', T .. ':dlq', op[3], op[4])
    redis.call('ZADD', T .. ':dlq:order', seq, op[3])
  elseif name == 'DLQ-' then
    redis.call('HDEL', T .. ':dlq', op[3])
    redis.call('ZREM', T .. ':dlq:order', op[3])
  elseif name == 'STATE' then
    redis.call('SET', T .. ':state:' .. op[3], op[4])
    redis.call('ZADD', T .. ':statekeys', 0, op[3])
  elseif name == 'STATE-' then
    redis.call('DEL', T .. ':state:' .. op[3])
    redis.call('ZREM', T .. ':statekeys', op[3])
    redis.call('ZREM', T .. ':runs:ended', op[3])
  elseif name == 'ENDED' then  -- key, final value, keep
    local keep, ended = tonumber(op[5]), T .. ':runs:ended'
    redis.call('SET', T .. ':state:' .. op[3], op[4], 'PX', keep)
    redis.call('ZREM', T .. ':statekeys', op[3])
    redis.call('ZADD', ended, now() + keep, op[3])
    redis.call('ZREMRANGEBYSCORE', ended, '-inf', now())
    redis.call('PEXPIRE', ended, keep)  -- the index lives as long as its newest run
  elseif name == 'JOURNAL' then  -- journal, keep, JSON array of records
    local key, keep = T .. ':j:' .. op[3], tonumber(op[4])
    redis.call('XADD', key, '*', 'b', op[5])
    if keep >= 0 then
      redis.call('XTRIM', key, 'MINID', '~', now() - keep)
      redis.call('PEXPIRE', key, keep)  -- an idle journal goes with its newest entry
    end
  elseif name == 'RETENTION' then  -- runs, archive, dedup (seconds)
    local key = T .. ':retention'
    redis.call('HSETNX', key, 'since', tostring(now() / 1000))
    redis.call('HSET', key, 'runs', op[3], 'archive', op[4], 'dedup', op[5])
  else
    redis.call(unpack(op))
  end
end
return 1
"""


def redis_url(url: str) -> tuple[str, str]:
    """Split ``redis://host:port/db?prefix=NAME`` into the client URL and the key prefix (a
    ``redis+cluster://`` URL gives a ``redis://`` client URL: the cluster's entry node)."""
    parts = urlsplit(url)
    query = parse_qs(parts.query, keep_blank_values=True)
    prefix = query.pop("prefix", [DEFAULT_PREFIX])[-1]
    if not prefix or any(c in prefix for c in " *?[]{}"):
        raise UsageError(f"--store {url!r}: prefix must be a non-empty name without spaces, braces or glob "
                         "characters")
    if parts.scheme == CLUSTER_SCHEME:
        parts = parts._replace(scheme="redis")
    return urlunsplit(parts._replace(query=urlencode(query, doseq=True))), prefix


def _digest(value: str | bool) -> str | bool:
    """What a commit checks a value read against: itself if short, else its SHA-1 (hex)."""
    if value is False or len(value) <= 64:
        return value
    return hashlib.sha1(value.encode("utf-8")).hexdigest()


class RedisStore:
    """A :class:`~engine.storage.base.Store` on Redis, with the unit-of-work calls its broker uses."""

    def __init__(self, client: redis.Redis | RedisCluster, prefix: str = DEFAULT_PREFIX, url: str = "",
                 retention: Retention = DEFAULT_RETENTION):
        self.client = client
        self.prefix = prefix
        self.url = url
        self.retention = retention
        self._retention_written: set[int | None] = set()  # the partitions told the retention
        self.cluster = isinstance(client, RedisCluster)
        self._commit_script = client.register_script(_COMMIT)
        self.tracking = False  # True in a worker: reads are checked again at commit
        self.partition: int | None = None  # the partition of the unit of work being done (None: none)
        self._checkpoint: dict | None = None
        self._checkpoint_read = False
        self._where: dict[str, int | None] = {}  # outside a unit: the partition a record was found in
        self._meta: dict | None = None
        self.reset()

    @property
    def meta(self) -> dict:
        """A deployment's settings, as its broker recorded them (empty: not a deployment, or
        not yet configured)."""
        if self._meta is None:
            raw = self._call(self.client.get, self.key("meta"))
            self._meta = json.loads(raw) if raw else {}
        return self._meta

    @meta.setter
    def meta(self, settings: dict) -> None:
        self._meta = settings

    @property
    def partitions(self) -> int:
        """A deployment's number of partitions (0: not a deployment, or not yet configured)."""
        return int(self.meta.get("partitions", 0))

    # --- keys ---------------------------------------------------------------------------
    def tag(self, partition: int | None = None) -> str:
        """The hash tag of a partition's keys (None: the store's own, of single-process runs
        and of what a deployment shares)."""
        return f"{{{self.prefix}}}" if partition is None else f"{{{self.prefix}:{partition}}}"

    def key(self, name: str, partition: int | None = None) -> str:
        """The Redis key of *name* (``state:<key>``, ``dlq``...) in a partition (None: the store's own)."""
        return f"{self.tag(partition)}:{name}"

    def homes(self) -> list[int | None]:
        """Where records may be: every partition of a deployment, and the store's own tag."""
        return [None, *range(self.partitions)]

    def home(self, record: str) -> int | None:
        """The partition a write of *record* (``state:<key>``, ``dlq:<id>``...) goes to: the
        unit's; outside a unit, where it was found, else where its name hashes to."""
        if self.partition is not None or not self.partitions:
            return self.partition
        if record in self._where:
            return self._where[record]
        return partition_of(record, self.partitions)

    def key_patterns(self) -> list[str]:
        """SCAN patterns that match every key of this store (and of its broker)."""
        return [f"{{{self.prefix}}}:*", f"{{{self.prefix}:*"]

    def drop(self) -> int:
        """Delete every key of this store and its broker (on every node of a cluster); how many."""
        clients = ([self.client.get_redis_connection(node) for node in self.client.get_primaries()]
                   if self.cluster else [self.client])
        keys = [key for client in clients for pattern in self.key_patterns()
                for key in self._call(lambda: list(client.scan_iter(match=pattern, count=1000)))]
        for key in keys:
            self._call(self.client.delete, key)  # one by one: on a cluster keys of many slots
        return len(keys)

    @classmethod
    def open(cls, url: str, retention: Retention = DEFAULT_RETENTION, create: bool = True) -> "RedisStore":
        """The store at ``redis://HOST:PORT/DB[?prefix=NAME]`` or ``redis+cluster://HOST:PORT[?prefix=NAME]``
        (the registry's way in). Without *create*, a prefix under which nothing is stored is a
        usage error, and nothing is written. What grows with the input is kept for *retention*
        (TTLs and trimming, see above)."""
        if not url.startswith(("redis://", "rediss://", "unix://", f"{CLUSTER_SCHEME}://")):
            raise NotAStoreURL(url)
        store = cls.from_url(url, retention)
        store._refuse_old_layout()
        if not create and not store._holds_anything():
            store.close()
            raise UsageError(f"no store at {url}: no key of prefix {store.prefix!r} on that server "
                             "(give the --store of a worker deployment or an earlier `meshctl run --store`)")
        return store

    @classmethod
    def from_url(cls, url: str, retention: Retention = DEFAULT_RETENTION) -> "RedisStore":
        client_url, prefix = redis_url(url)
        try:
            if url.startswith(f"{CLUSTER_SCHEME}://"):
                client = RedisCluster.from_url(client_url, decode_responses=True, socket_timeout=30,
                                               socket_connect_timeout=5)
            else:
                client = redis.Redis.from_url(client_url, decode_responses=True, socket_timeout=30,
                                              socket_connect_timeout=5, health_check_interval=30)
            client.ping()
        except (*REDIS_ERRORS, ValueError) as exc:
            raise UsageError(f"cannot reach Redis at {url}: {exc}") from exc
        return cls(client, prefix, url, retention)

    # --- the unit of work ------------------------------------------------------------
    def reset(self) -> None:
        """Forget buffered writes and cached reads (a worker starts each unit of work fresh)."""
        self._journals: dict[str, list[dict]] = {}
        self._done: dict[tuple[str, str], float] = {}
        self._dead: dict[str, DeadLetter] = {}
        self._dead_removed: set[str] = set()
        self._state: dict[str, Any] = {}  # read or written in this unit: the same object until replaced
        self._dirty: set[str] = set()
        self._deleted: set[str] = set()  # state keys removed in this unit
        self._retired: set[str] = set()  # final values: out of _state once committed
        self.reads: dict[str, str | bool] = {}  # key -> raw value seen (False: absent), when tracking
        self._fetched: dict[str, str | None] = {}  # dedup records read ahead (prefetch_done)

    def _get(self, key: str) -> str | None:
        value = self._call(self.client.get, key)
        self._track(key, value)
        return value

    def _find(self, name: str) -> tuple[int | None, str | None]:
        """Where record *name* is and its raw value: in a unit, in the unit's partition (a read
        checked at commit); outside one, the first partition that has it."""
        if self.partition is not None or not self.partitions:
            return self.partition, self._get(self.key(name, self.partition))
        if name in self._where:
            return self._where[name], self._get(self.key(name, self._where[name]))
        pipe = self.client.pipeline(transaction=False)
        for home in self.homes():
            pipe.get(self.key(name, home))
        for home, value in zip(self.homes(), self._call(pipe.execute)):
            if value is not None:
                self._where[name] = home
                self._track(self.key(name, home), value)
                return home, value
        self._track(self.key(name, self.home(name)), None)  # where a write of it would go
        return None, None

    def _track(self, key: str, value: str | None) -> None:
        if self.tracking and key not in self.reads:
            self.reads[key] = value if value is not None else False

    def _call(self, fn, *args):
        try:
            return fn(*args)
        except REDIS_ERRORS as exc:
            raise StorageError(f"redis {self.url or self.prefix}: {exc}") from exc

    # --- retention ------------------------------------------------------------------------
    @property
    def dedup_window(self) -> float:
        return self.retention.dedup if self.retention.dedup is not None else DEDUP_WINDOW

    def _keep_ms(self, kind: str, journal: str = "") -> int:
        """How long (ms) a write of *kind* (``runs``, ``dedup``, ``journal``) is kept; FOREVER
        for ever. The trace journal is a run's own record (its resume counts it): it is trimmed
        only in a deployment (whose units check their reads: ``tracking``)."""
        if kind == "journal":
            seconds = self.retention.archive if journal in ARCHIVED or self.tracking else math.inf
        else:
            seconds = self.dedup_window if kind == "dedup" else self.retention.runs
        return FOREVER if seconds == math.inf else max(1, int(seconds * 1000))

    def aged_out(self) -> dict[str, float]:
        """Per kind, the server time before which its records are gone: every write expires
        after its retention (the last writer's, as stored), so that is now minus the retention,
        once the store is older than that (the oldest partition's first kept write)."""
        pipe = self.client.pipeline(transaction=False)
        for home in self.homes():
            pipe.hgetall(self.key("retention", home))
        told = [stored for stored in self._call(pipe.execute) if "since" in stored]
        if not told:
            return {}
        seconds, micros = self._call(self.client.time)
        now = seconds + micros / 1e6
        keep = {kind: float(told[0][kind]) for kind in ("runs", "archive", "dedup")}
        since = min(float(stored["since"]) for stored in told)
        return {kind: now - k for kind, k in keep.items() if k != math.inf and now - k > since}

    def _write_ops(self) -> dict[int | None, list[list]]:
        """This unit's writes, by the partition they go to."""
        ops: dict[int | None, list[list]] = {}

        def add(record: str, op: list) -> None:
            ops.setdefault(self.home(record), []).append(op)

        for journal, records in self._journals.items():
            add(f"j:{journal}", ["JOURNAL", self.tag(self.home(f"j:{journal}")), journal,
                                 self._keep_ms("journal", journal), json.dumps(records, default=str)])
        dedup_ms = self._keep_ms("dedup")
        for (key, consumer), at in self._done.items():
            name = self._done_name(key, consumer)
            expiry = [] if dedup_ms == FOREVER else ["PX", dedup_ms]
            add(name, ["SET", self.key(name, self.home(name)), repr(at), *expiry])
        for record_id in self._dead_removed:
            add(f"dlq:{record_id}", ["DLQ-", self.tag(self.home(f"dlq:{record_id}")), record_id])
        for record in self._dead.values():
            add(f"dlq:{record.id}", ["DLQ+", self.tag(self.home(f"dlq:{record.id}")), record.id,
                                     json.dumps(record.as_dict(), default=str)])
        runs_ms = self._keep_ms("runs")
        for key in sorted(self._dirty):
            value, tag = json.dumps(self._state[key], default=str), self.tag(self.home(f"state:{key}"))
            if key in self._retired and runs_ms != FOREVER:
                add(f"state:{key}", ["ENDED", tag, key, value, runs_ms])
            else:
                add(f"state:{key}", ["STATE", tag, key, value])
        for key in sorted(self._deleted):
            add(f"state:{key}", ["STATE-", self.tag(self.home(f"state:{key}")), key])
        return ops

    def commit_unit(self, checks: Iterable[list] = (), ops: Iterable[list] = (),
                    elsewhere: Mapping[int | None, list[list]] | None = None) -> int:
        """Apply this unit's writes plus *ops* if every read value and every *check* still holds.

        A check is ``["XPENDING", stream, group, entry id, consumer]``: the entry is still
        pending in the group and the consumer's (the broker's: a worker presumed dead, whose
        entries were reclaimed, cannot commit); or ``["LEASE", key, worker]``: the unit's
        partition is still the worker's. Returns the broker's outcome:
        :data:`~engine.storage.broker.APPLIED`, ``CONFLICT`` (a value read has changed: do the
        unit again) or ``FENCED`` (another worker owns the entry now: drop the unit).

        *checks* and *ops* belong to the unit's partition, *elsewhere* to others. On one server
        everything is one script; on a cluster a unit writes to its own partition only, and what a command
        outside a unit changes in several partitions is one script per partition.
        """
        all_checks = [[k, _digest(v)] for k, v in self.reads.items()] + [list(c) for c in checks]
        kept = bool(self._journals or self._done or self._retired)  # writes that age out
        groups = self._write_ops()
        home = self.partition
        if kept and home not in self._retention_written:  # what aged_out counts from
            groups.setdefault(home, []).append(
                ["RETENTION", self.tag(home),
                 *(repr(float(k)) for k in (self.retention.runs, self.retention.archive, self.dedup_window))])
        groups.setdefault(home, []).extend(ops)
        for where, more in (elsewhere or {}).items():
            groups.setdefault(where, []).extend(more)
        if not self.cluster:
            batches = [(home, all_checks, [op for group in groups.values() for op in group])]
        else:
            batches = [(home, all_checks, groups.pop(home))]
            batches += [(where, [], group) for where, group in groups.items() if group]
        outcome = 1
        for where, batch_checks, batch_ops in batches:
            outcome = int(self._call(self._commit_script, [self.key("commit", where)],
                                     [json.dumps(batch_checks), json.dumps(batch_ops)]))
            if outcome != 1:
                break
        if outcome == 1 and kept:
            self._retention_written.add(home)
        self.reset()
        return outcome

    # --- the Store contract ----------------------------------------------------------
    def append(self, journal: str, record: dict) -> None:
        self._journals.setdefault(journal, []).append(record)

    def records(self, journal: str) -> Iterator[dict]:
        homes = [self.partition] if self.partition is not None else self.homes()
        for home in homes:
            key, start = self.key(f"j:{journal}", home), "-"
            while True:
                chunk = self._call(self.client.xrange, key, start, "+", 100)  # commits, of any size
                for _, fields in chunk:
                    yield from json.loads(fields["b"])
                if len(chunk) < 100:
                    break
                start = "(" + chunk[-1][0]
        yield from list(self._journals.get(journal, ()))

    @staticmethod
    def _done_name(key: str, consumer: str) -> str:
        return f"done:{consumer}|{key}"  # a consumer id has no "|"

    def is_done(self, key: str, consumer: str, at: float | None = None) -> bool:
        if (key, consumer) in self._done:
            return True
        name = self._done_name(key, consumer)
        done_key = self.key(name, self.partition)
        if self.partition is not None and done_key in self._fetched:
            marked = self._fetched[done_key]
        else:
            marked = self._find(name)[1]
        if marked is None:
            return False
        # As in SQLite: a record older than the window in clock time (a run's virtual clock; the
        # TTL counts the server's) no longer counts.
        return at is None or at - float(marked) <= self.dedup_window

    def prefetch_done(self, pairs: Iterable[tuple[str, str]]) -> None:
        """Read the dedup records of (event key, consumer) pairs of this unit's partition in one
        round trip (as reads of this unit: checked at commit like any other)."""
        keys = [self.key(self._done_name(key, consumer), self.partition) for key, consumer in pairs]
        keys = [k for k in dict.fromkeys(keys) if k not in self._fetched]
        if not keys:
            return
        for key, value in zip(keys, self._call(self.client.mget, keys)):
            self._fetched[key] = value
            self._track(key, value)

    def mark_done(self, key: str, consumer: str, at: float = 0.0) -> None:
        self._done[(key, consumer)] = at

    def _has_dead_letter(self, record_id: str) -> bool:
        homes = [self._where[f"dlq:{record_id}"]] if f"dlq:{record_id}" in self._where else (
            [self.partition] if self.partition is not None or not self.partitions else self.homes())
        for home in homes:
            if self._call(self.client.hexists, self.key("dlq", home), record_id):
                self._where[f"dlq:{record_id}"] = home
                return True
        return False

    def put_dead_letter(self, record: DeadLetter) -> bool:
        if record.id in self._dead or record.id in self._dead_removed:
            new = record.id in self._dead_removed  # put, or removed, in this unit already
        else:
            new = not self._has_dead_letter(record.id)
        self._dead.pop(record.id, None)
        self._dead[record.id] = record
        self._dead_removed.discard(record.id)
        return new

    def dead_letters(self, queue: str | None = None) -> list[DeadLetter]:
        stored = []
        for home in ([self.partition] if self.partition is not None else self.homes()):
            ids = self._call(self.client.zrange, self.key("dlq:order", home), 0, -1)
            raws = self._call(self.client.hmget, self.key("dlq", home), ids) if ids else []
            for raw in raws:
                if raw is not None:
                    stored.append(DeadLetter.from_dict(json.loads(raw)))
                    if self.partition is None:
                        self._where[f"dlq:{stored[-1].id}"] = home
        hidden = self._dead_removed | set(self._dead)
        records = [r for r in stored if r.id not in hidden] + list(self._dead.values())
        return [r for r in records if queue is None or r.queue == queue]

    def remove_dead_letters(self, ids: Iterable[str]) -> int:
        removed = 0
        for record_id in set(ids):
            if record_id in self._dead_removed:
                continue
            pending = self._dead.pop(record_id, None) is not None
            if pending or self._has_dead_letter(record_id):
                self._dead_removed.add(record_id)
                removed += 1
        return removed

    def partition_of_record(self, record: str) -> int | None:
        """The partition that holds *record* (``state:<key>``, ``dlq:<id>``), None if none does."""
        if record.startswith("dlq:"):
            return self._where.get(record) if self._has_dead_letter(record[4:]) else None
        home, value = self._find(record)
        return home if value is not None else None

    def get_state(self, key: str) -> Any:
        if key in self._state:
            return self._state[key]
        if key in self._deleted:
            return None
        raw = self._find(f"state:{key}")[1]
        value = json.loads(raw) if raw is not None else None
        if value is not None:
            self._state[key] = value
        return value

    def put_state(self, key: str, value: Any) -> None:
        self._state[key] = value
        self._retired.discard(key)  # a finished run redriven runs again
        self._dirty.add(key)
        self._deleted.discard(key)

    def delete_state(self, key: str) -> None:
        self._state.pop(key, None)
        self._dirty.discard(key)
        self._retired.discard(key)
        self._deleted.add(key)

    def retire_state(self, key: str, value: Any, at: float) -> None:
        """Written with a TTL of ``retention.runs``; out of this process's memory once committed
        (a worker forgets every unit's state anyway)."""
        self._state[key] = value
        self._dirty.add(key)
        self._deleted.discard(key)
        self._retired.add(key)

    def state_keys(self, prefix: str) -> list[str]:
        stored: set[str] = set()
        runs = "run:".startswith(prefix) or prefix.startswith("run:")  # finished runs not yet expired
        if runs:
            seconds, micros = self._call(self.client.time)
            now_ms = seconds * 1000 + micros // 1000
        for home in ([self.partition] if self.partition is not None else self.homes()):
            found = self._call(self.client.zrangebylex, self.key("statekeys", home),
                               f"[{prefix}", f"[{prefix}\U0010ffff")
            if runs:
                ended = self._call(self.client.zrangebyscore, self.key("runs:ended", home),
                                   f"({now_ms}", "+inf")
                found = [*found, *(k for k in ended if k.startswith(prefix))]
            stored.update(found)
            if self.partition is None:
                self._where.update((f"state:{k}", home) for k in found)
        return sorted((stored | {k for k in self._dirty if k.startswith(prefix)}) - self._deleted)

    def commit(self, checkpoint: dict) -> None:
        # A single process is the only writer between its commits: its reads need no check,
        # and it keeps its state objects (the same object until replaced) across commits.
        state, retired = self._state, self._retired
        self.reads = {}
        self.commit_unit((), [["SET", self.key("checkpoint"), json.dumps(checkpoint, default=str)]])
        for key in retired:
            state.pop(key, None)
        self._state = state
        self._checkpoint, self._checkpoint_read = checkpoint, True

    def checkpoint(self) -> dict | None:
        if not self._checkpoint_read:
            raw = self._call(self.client.get, self.key("checkpoint"))
            self._checkpoint = json.loads(raw) if raw is not None else None
            self._checkpoint_read = True
        return self._checkpoint

    def _refuse_old_layout(self) -> None:
        """A store whose journals are lists, under the prefix without a hash tag, was written by a
        meshctl from before its journals were streams and its keys were tagged: refused, naming
        it, rather than silently not seen."""
        pipe = self.client.pipeline(transaction=False)
        for journal in ("input", "emitted", "trace"):
            pipe.type(f"{self.prefix}:j:{journal}")
        if "list" in self._call(pipe.execute):
            self.close()
            raise UsageError(f"{self.url}: written by an older meshctl (its journals are Redis lists, "
                             "this one keeps streams): finish it with that version, or use another ?prefix=")

    def _holds_anything(self) -> bool:
        """Whether any key meshctl writes exists under this prefix (a deployment's settings and
        workers, a run's checkpoint, dead letters, state): a few keys, no scan."""
        names = ("meta", "workers", "checkpoint", "dlq:order", "statekeys", "j:input")
        pipe = self.client.pipeline(transaction=False)
        for name in names:
            pipe.exists(self.key(name))
        return any(self._call(pipe.execute))

    def close(self) -> None:
        try:
            self.client.close()
        except Exception:  # closing a broken connection has nothing left to report
            pass
