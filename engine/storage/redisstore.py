"""The Redis store: the same contract as memory and SQLite, on a Redis 6.2+ server.

Reads go to Redis; writes are buffered and applied by one Lua script at :meth:`commit`, so
everything since the last commit lands together or not at all (a script runs atomically).
The broker of a deployment (engine/storage/redisbroker.py) commits its units of work with
the same script (:meth:`RedisStore.commit_unit`): the values a unit read are checked to be
unchanged (optimistic concurrency between workers), and the broker's own checks and writes
(the queue entry is still the worker's; its acknowledgement, new tasks, counters) are
applied in the same step, so an effect and its ack commit together.

Keys, under a prefix (``?prefix=`` in the URL, default ``meshctl``)::

    P:j:<journal>      stream of journal records (input, emitted, trace): one entry per commit,
                       its field ``b`` the JSON array of the records it appended
    P:done:<consumer>|<event key>  dedup record: the clock time it took effect (the key is the
                       event's identity, source and id: engine/runtime/identity.py)
    P:dlq              hash id -> dead letter JSON;  P:dlq:order  zset id by arrival
    P:state:<key>      JSON value;  P:statekeys  zset of live state keys (for prefix listing)
    P:runs:ended       zset of finished runs' state keys, by when they expire (ms)
    P:retention        hash: ``since``, server time (s) of the first write kept for a retention
                       (what aged_out counts from), and the writer's ``runs``, ``archive``, ``dedup``
    P:checkpoint       the last commit's checkpoint (single-process runs)
    P:input, P:tasks, P:lane:*, P:delayed, P:lease:*, P:workers, P:counters   the broker's
                       (engine/storage/redisbroker.py)

Retention (the mesh's ``retention``) is kept by Redis itself, counted in the server's time
from each write: a dedup record is written with a TTL of ``retention.dedup``, a finished run
with one of ``retention.runs`` (and leaves the live state index for ``P:runs:ended``), and each
commit trims the archive journals (``input``, ``emitted``; in a deployment the trace as well)
to the entries of the last ``retention.archive`` (``XTRIM MINID``, whole stream nodes) and
sets the journal to expire that long after its last write, so an idle deployment empties too.
Dead letters stay until redriven or purged; processed queue entries are deleted when acked.
"""
from __future__ import annotations

import json
import math
from typing import Any, Iterable, Iterator
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import redis

from ..core.deadletter import DeadLetter
from ..core.errors import UsageError
from ..language.model import DEFAULT_RETENTION, Retention
from .base import NotAStoreURL, StorageError
from .sqlite import DEDUP_WINDOW

DEFAULT_PREFIX = "meshctl"
ARCHIVED = ("input", "emitted")  # the journals `retention.archive` applies to in a run
FOREVER = -1  # a keep time (ms) of an op: no expiry

# ARGV[1]: JSON list of checks; ARGV[2]: JSON list of write ops. A check is [key, expected
# value or false], or ['XPENDING', stream, group, entry id, consumer]: the entry is pending
# in the group and the consumer's. An op is a Redis command as a list, or one of the
# composite ops below (their extra keys are built from KEYS[1], the prefix). Returns 1 when
# every op was applied; nothing is written when a read value changed (0) or an entry is no
# longer the consumer's (-1). A keep time is in ms of server time, -1 for ever.
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
  else
    local v = redis.call('GET', c[1])
    if v ~= c[2] then return 0 end
  end
end
local P = KEYS[1]
for _, op in ipairs(cjson.decode(ARGV[2])) do
  local name = op[1]
  if name == 'DLQ+' then
    local seq = redis.call('INCR', P .. ':dlq:seq')
    redis.call('HSET', P .. ':dlq', op[2], op[3])
    redis.call('ZADD', P .. ':dlq:order', seq, op[2])
  elseif name == 'DLQ-' then
    redis.call('HDEL', P .. ':dlq', op[2])
    redis.call('ZREM', P .. ':dlq:order', op[2])
  elseif name == 'STATE' then
    redis.call('SET', P .. ':state:' .. op[2], op[3])
    redis.call('ZADD', P .. ':statekeys', 0, op[2])
  elseif name == 'STATE-' then
    redis.call('DEL', P .. ':state:' .. op[2])
    redis.call('ZREM', P .. ':statekeys', op[2])
    redis.call('ZREM', P .. ':runs:ended', op[2])
  elseif name == 'ENDED' then  -- key, final value, keep
    local keep, ended = tonumber(op[4]), P .. ':runs:ended'
    redis.call('SET', P .. ':state:' .. op[2], op[3], 'PX', keep)
    redis.call('ZREM', P .. ':statekeys', op[2])
    redis.call('ZADD', ended, now() + keep, op[2])
    redis.call('ZREMRANGEBYSCORE', ended, '-inf', now())
    redis.call('PEXPIRE', ended, keep)  -- the index lives as long as its newest run
  elseif name == 'JOURNAL' then  -- journal, keep, JSON array of records
    local key, keep = P .. ':j:' .. op[2], tonumber(op[3])
    redis.call('XADD', key, '*', 'b', op[4])
    if keep >= 0 then
      redis.call('XTRIM', key, 'MINID', '~', now() - keep)
      redis.call('PEXPIRE', key, keep)  -- an idle journal goes with its newest entry
    end
  elseif name == 'RETENTION' then  -- runs, archive, dedup (seconds)
    local key = P .. ':retention'
    redis.call('HSETNX', key, 'since', tostring(now() / 1000))
    redis.call('HSET', key, 'runs', op[2], 'archive', op[3], 'dedup', op[4])
  else
    redis.call(unpack(op))
  end
end
return 1
"""


def redis_url(url: str) -> tuple[str, str]:
    """Split ``redis://host:port/db?prefix=NAME`` into the client URL and the key prefix."""
    parts = urlsplit(url)
    query = parse_qs(parts.query, keep_blank_values=True)
    prefix = query.pop("prefix", [DEFAULT_PREFIX])[-1]
    if not prefix or any(c in prefix for c in " *?[]"):
        raise UsageError(f"--store {url!r}: prefix must be a non-empty name without spaces or glob "
                         "characters")
    return urlunsplit(parts._replace(query=urlencode(query, doseq=True))), prefix


class RedisStore:
    """A :class:`~engine.storage.base.Store` on Redis, with the unit-of-work calls its broker uses."""

    def __init__(self, client: redis.Redis, prefix: str = DEFAULT_PREFIX, url: str = "",
                 retention: Retention = DEFAULT_RETENTION):
        self.client = client
        self.prefix = prefix
        self.url = url
        self.retention = retention
        self._retention_written = False
        self._commit_script = client.register_script(_COMMIT)
        self.tracking = False  # True in a worker: reads are checked again at commit
        self._checkpoint: dict | None = None
        self._checkpoint_read = False
        self.reset()

    @classmethod
    def open(cls, url: str, retention: Retention = DEFAULT_RETENTION, create: bool = True) -> "RedisStore":
        """The store at ``redis://HOST:PORT/DB[?prefix=NAME]`` (the registry's way in). Without
        *create*, a prefix under which nothing is stored is a usage error, and nothing is written.
        What grows with the input is kept for *retention* (TTLs and trimming, see above)."""
        if not url.startswith(("redis://", "rediss://", "unix://")):
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
            client = redis.Redis.from_url(client_url, decode_responses=True, socket_timeout=30,
                                          socket_connect_timeout=5, health_check_interval=30)
            client.ping()
        except (redis.RedisError, ValueError) as exc:
            raise UsageError(f"cannot reach Redis at {client_url}: {exc}") from exc
        return cls(client, prefix, url, retention)

    # --- the unit of work ------------------------------------------------------------
    def reset(self) -> None:
        """Forget buffered writes and cached reads (a worker starts each unit of work fresh)."""
        self._ops: list[list] = []
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
        if self.tracking and key not in self.reads:
            self.reads[key] = value if value is not None else False
        return value

    def _call(self, fn, *args):
        try:
            return fn(*args)
        except redis.RedisError as exc:
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
        once the store is older than that."""
        stored = self._call(self.client.hgetall, f"{self.prefix}:retention")
        if "since" not in stored:
            return {}
        seconds, micros = self._call(self.client.time)
        now = seconds + micros / 1e6
        keep = {kind: float(stored[kind]) for kind in ("runs", "archive", "dedup")}
        since = float(stored["since"])
        return {kind: now - k for kind, k in keep.items() if k != math.inf and now - k > since}

    def _write_ops(self) -> list[list]:
        ops = list(self._ops)
        for journal, records in self._journals.items():
            keep = self._keep_ms("journal", journal)
            ops.append(["JOURNAL", journal, keep, json.dumps(records, default=str)])
        dedup_ms = self._keep_ms("dedup")
        for (key, consumer), at in self._done.items():
            if dedup_ms == FOREVER:
                ops.append(["SET", self._done_key(key, consumer), repr(at)])
            else:
                ops.append(["SET", self._done_key(key, consumer), repr(at), "PX", dedup_ms])
        for record_id in self._dead_removed:
            ops.append(["DLQ-", record_id])
        for record in self._dead.values():
            ops.append(["DLQ+", record.id, json.dumps(record.as_dict(), default=str)])
        runs_ms = self._keep_ms("runs")
        for key in sorted(self._dirty):
            value = json.dumps(self._state[key], default=str)
            if key in self._retired and runs_ms != FOREVER:
                ops.append(["ENDED", key, value, runs_ms])
            else:
                ops.append(["STATE", key, value])
        for key in sorted(self._deleted):
            ops.append(["STATE-", key])
        return ops

    def commit_unit(self, checks: Iterable[list] = (), ops: Iterable[list] = ()) -> int:
        """Apply this unit's writes plus *ops* if every read value and every *check* still holds.

        A check is ``["XPENDING", stream, group, entry id, consumer]``: the entry is still
        pending in the group and the consumer's (the broker's: a worker presumed dead, whose
        entries were reclaimed, cannot commit). Returns the broker's outcome:
        :data:`~engine.storage.broker.APPLIED`, ``CONFLICT`` (a value read has changed: do the
        unit again) or ``FENCED`` (another worker owns the entry now: drop the unit).
        """
        all_checks = [[k, v] for k, v in self.reads.items()] + [list(c) for c in checks]
        kept = bool(self._journals or self._done or self._retired)  # writes that age out
        writes = self._write_ops() + list(ops)
        if kept and not self._retention_written:  # what aged_out counts from, once per process
            writes.append(["RETENTION", *(repr(float(k)) for k in
                                          (self.retention.runs, self.retention.archive, self.dedup_window))])
        applied = self._call(self._commit_script, [self.prefix], [json.dumps(all_checks), json.dumps(writes)])
        if applied == 1 and kept:
            self._retention_written = True
        self.reset()
        return int(applied)

    # --- the Store contract ----------------------------------------------------------
    def append(self, journal: str, record: dict) -> None:
        self._journals.setdefault(journal, []).append(record)

    def records(self, journal: str) -> Iterator[dict]:
        key, start = f"{self.prefix}:j:{journal}", "-"
        while True:
            chunk = self._call(self.client.xrange, key, start, "+", 100)  # commits, of any number of records
            for _, fields in chunk:
                yield from json.loads(fields["b"])
            if len(chunk) < 100:
                break
            start = "(" + chunk[-1][0]
        yield from list(self._journals.get(journal, ()))

    def _done_key(self, key: str, consumer: str) -> str:
        return f"{self.prefix}:done:{consumer}|{key}"  # a consumer id has no "|"

    def is_done(self, key: str, consumer: str, at: float | None = None) -> bool:
        if (key, consumer) in self._done:
            return True
        done_key = self._done_key(key, consumer)
        marked = self._fetched[done_key] if done_key in self._fetched else self._get(done_key)
        if marked is None:
            return False
        # As in SQLite: a record older than the window in clock time (a run's virtual clock; the
        # TTL counts the server's) no longer counts.
        return at is None or at - float(marked) <= self.dedup_window

    def prefetch_done(self, pairs: Iterable[tuple[str, str]]) -> None:
        """Read the dedup records of (event key, consumer) pairs in one round trip (as reads
        of this unit: checked at commit like any other)."""
        keys = [self._done_key(key, consumer) for key, consumer in pairs]
        keys = [k for k in dict.fromkeys(keys) if k not in self._fetched]
        if not keys:
            return
        for key, value in zip(keys, self._call(self.client.mget, keys)):
            self._fetched[key] = value
            if self.tracking and key not in self.reads:
                self.reads[key] = value if value is not None else False

    def mark_done(self, key: str, consumer: str, at: float = 0.0) -> None:
        self._done[(key, consumer)] = at

    def put_dead_letter(self, record: DeadLetter) -> bool:
        if record.id in self._dead or record.id in self._dead_removed:
            new = record.id in self._dead_removed  # put, or removed, in this unit already
        else:
            new = not self._call(self.client.hexists, f"{self.prefix}:dlq", record.id)
        self._dead.pop(record.id, None)
        self._dead[record.id] = record
        self._dead_removed.discard(record.id)
        return new

    def dead_letters(self, queue: str | None = None) -> list[DeadLetter]:
        ids = self._call(self.client.zrange, f"{self.prefix}:dlq:order", 0, -1)
        raws = self._call(self.client.hmget, f"{self.prefix}:dlq", ids) if ids else []
        stored = [DeadLetter.from_dict(json.loads(raw)) for raw in raws if raw is not None]
        hidden = self._dead_removed | set(self._dead)
        records = [r for r in stored if r.id not in hidden] + list(self._dead.values())
        return [r for r in records if queue is None or r.queue == queue]

    def remove_dead_letters(self, ids: Iterable[str]) -> int:
        removed = 0
        for record_id in set(ids):
            if record_id in self._dead_removed:
                continue
            pending = self._dead.pop(record_id, None) is not None
            if pending or self._call(self.client.hexists, f"{self.prefix}:dlq", record_id):
                self._dead_removed.add(record_id)
                removed += 1
        return removed

    def get_state(self, key: str) -> Any:
        if key in self._state:
            return self._state[key]
        if key in self._deleted:
            return None
        raw = self._get(f"{self.prefix}:state:{key}")
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
        stored = set(self._call(self.client.zrangebylex, f"{self.prefix}:statekeys",
                                f"[{prefix}", f"[{prefix}\U0010ffff"))
        if "run:".startswith(prefix) or prefix.startswith("run:"):  # finished runs not yet expired
            seconds, micros = self._call(self.client.time)
            ended = self._call(self.client.zrangebyscore, f"{self.prefix}:runs:ended",
                               f"({seconds * 1000 + micros // 1000}", "+inf")
            stored.update(k for k in ended if k.startswith(prefix))
        return sorted((stored | {k for k in self._dirty if k.startswith(prefix)}) - self._deleted)

    def commit(self, checkpoint: dict) -> None:
        # A single process is the only writer between its commits: its reads need no check,
        # and it keeps its state objects (the same object until replaced) across commits.
        state, retired = self._state, self._retired
        self.reads = {}
        self.commit_unit((), [["SET", f"{self.prefix}:checkpoint", json.dumps(checkpoint, default=str)]])
        for key in retired:
            state.pop(key, None)
        self._state = state
        self._checkpoint, self._checkpoint_read = checkpoint, True

    def checkpoint(self) -> dict | None:
        if not self._checkpoint_read:
            raw = self._call(self.client.get, f"{self.prefix}:checkpoint")
            self._checkpoint = json.loads(raw) if raw is not None else None
            self._checkpoint_read = True
        return self._checkpoint

    def _refuse_old_layout(self) -> None:
        """A store whose journals are lists was written by a meshctl from before they were
        streams: refused, naming it, rather than failing at its first commit."""
        pipe = self.client.pipeline(transaction=False)
        for journal in ("input", "emitted", "trace"):
            pipe.type(f"{self.prefix}:j:{journal}")
        if "list" in self._call(pipe.execute):
            self.close()
            raise UsageError(f"{self.url}: written by an older meshctl (its journals are Redis lists, "
                             "this one keeps streams): finish it with that version, or use another ?prefix=")

    def _holds_anything(self) -> bool:
        """Whether any key meshctl writes exists under this prefix (a deployment's queues, workers
        and counters, a run's checkpoint, dead letters, state): one round trip, no scan."""
        names = ("input", "tasks", "delayed", "workers", "counters", "checkpoint", "dlq:order", "statekeys",
                 "j:input")
        return bool(self._call(self.client.exists, *(f"{self.prefix}:{name}" for name in names)))

    def close(self) -> None:
        try:
            self.client.close()
        except Exception:  # closing a broken connection has nothing left to report
            pass
