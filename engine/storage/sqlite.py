"""The SQLite store: one file, WAL, every commit one transaction.

Writes are buffered in memory and written by :meth:`SqliteStore.commit` together with the
runtime's checkpoint in a single ``BEGIN IMMEDIATE`` transaction, so the effects of
processing events (emitted events, dead letters, dedup records, run state) and the input
position they correspond to become durable together, or not at all. Journal records, state
values and the checkpoint are encoded when committed, as they are then (before the write lock
is taken); a commit writes one journal row per journal, the JSON array of its new records.
State values and dead letters are also cached in memory, so the runtime sees the same objects
it wrote. A commit
is fenced: it fails (StorageError, nothing written) if another process committed to the
file since this one read it, so a run resumed twice at once cannot record its effects twice.
Dedup records are (event key, consumer) rows of ``done``, the key being the event's identity
(source and id; the column kept its first name, ``event_id``). Dedup lookups are answered
from what this store read and wrote (a Bloom filter of every
pair, :class:`SeenPairs`): a pair it never saw is not done without a query, and another
process's newer records cannot matter, as they would fence this store's commit anyway.

Foreign errors are translated to :class:`StorageError` here. A new file gets the tables of
:data:`SCHEMA`; a file of another layout (an older pre-release's, or a newer meshctl's) is
refused with a StorageError naming it, never read half-way.
"""
from __future__ import annotations

import json
import math
import os
import sqlite3
import time
import urllib.parse
import zlib
from collections import defaultdict
from typing import Any, Iterable, Iterator

from ..core.deadletter import DeadLetter
from ..core.errors import UsageError
from ..language.model import DEFAULT_RETENTION, Retention
from .base import NotAStoreURL, StorageError, StoreFenced

SCHEMA_VERSION = 4  # PRAGMA user_version of a store file of this layout
# ``batch`` is 2 in every row: the row holds a zlib-compressed JSON array of records (the
# column stays so that files written since the layout was fixed still open).
SCHEMA = """
CREATE TABLE journal (seq INTEGER PRIMARY KEY, journal TEXT NOT NULL, body TEXT NOT NULL,
                      batch INTEGER NOT NULL DEFAULT 0, at REAL);
CREATE INDEX journal_by_name ON journal (journal, seq);
CREATE TABLE done (event_id TEXT NOT NULL, consumer TEXT NOT NULL, at REAL,
                   PRIMARY KEY (event_id, consumer)) WITHOUT ROWID;
CREATE TABLE dead_letter (id TEXT PRIMARY KEY, seq INTEGER NOT NULL, queue TEXT NOT NULL, body TEXT NOT NULL);
CREATE TABLE state (key TEXT PRIMARY KEY, body TEXT NOT NULL, ended_at REAL);
CREATE TABLE checkpoint (id INTEGER PRIMARY KEY CHECK (id = 1), body TEXT NOT NULL,
                         generation INTEGER NOT NULL DEFAULT 0);
CREATE TABLE aged_out (kind TEXT PRIMARY KEY, before REAL NOT NULL) WITHOUT ROWID;
"""
DEDUP_WINDOW = 7 * 86400.0  # the default of `retention.dedup` in a durable store
# the journals `retention.archive` applies to (the trace is the run's own record)
ARCHIVED = ("input", "emitted")
_compress, _decompress = zlib.compress, zlib.decompress
BATCH = 10_000  # records per journal row at most (a row stays far below SQLite's length limit)


# ``json.dumps(value, separators=(",", ":"), default=str)`` byte for byte, from one encoder made
# once: ``json.dumps`` with arguments other than the defaults would make a new one every call.
_dumps = json.JSONEncoder(separators=(",", ":"), default=str).encode


class SqliteStore:
    def __init__(self, path: str, retention: Retention = DEFAULT_RETENTION, create: bool = True):
        self.path = path
        self.retention = retention
        try:
            self._db = _connect(path, create)
        except sqlite3.Error as exc:
            raise StorageError(f"cannot open store {path}: {exc}") from exc
        try:
            self._enable_wal()
            self._db.execute("PRAGMA synchronous=FULL")  # a commit that returned survives power loss
            self._create_schema()
            self._load()
        except BaseException as exc:
            self._db.close()  # a store that failed to open holds no connection
            if isinstance(exc, sqlite3.Error):
                raise StorageError(f"cannot open store {path}: {exc}") from exc
            raise
        # Since the last commit: journal -> records appended; pair -> clock time it was marked;
        # key -> (final value, clock time it ended).
        self._journal: defaultdict[str, list] = defaultdict(list)
        self._done: dict[tuple[str, str], float] = {}
        self._retired: dict[str, tuple[Any, float]] = {}
        # the latest clock time the runtime told this store of: what retention counts from
        self._now = -math.inf
        self._pruned_at = -math.inf
        self._seen: SeenPairs | None = None  # built on the first dedup lookup
        self._dirty_state: set[str] = set()
        self._deleted_state: set[str] = set()
        self._dead_changes: dict[str, DeadLetter | None] = {}

    @classmethod
    def open(cls, url: str, retention: Retention = DEFAULT_RETENTION, create: bool = True) -> "SqliteStore":
        """The store of ``sqlite:PATH`` (the registry's way in). Without *create*, a file that
        is not there (or empty: SQLite would make it a new store) is a usage error naming it."""
        path = sqlite_path(url)
        if not path:
            raise NotAStoreURL(url)
        if not create and not _holds_sqlite(path):
            raise UsageError(f"no store at {path}: give the --store sqlite:PATH of an earlier "
                             "`meshctl run --store`")
        return cls(path, retention, create)

    def _enable_wal(self, timeout: float = 10.0) -> None:
        """Switch to WAL. On a new file, connections switching at once can deadlock, and SQLite
        then answers 'locked' at once instead of waiting: retry, within the busy timeout."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._db.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.002)

    def _create_schema(self) -> None:
        """Make the tables of a new file; refuse a file of another layout, naming it."""
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version == 0:
            self._db.execute("BEGIN IMMEDIATE")
            try:  # another process may have made them while we waited for the write lock: look again
                if self._db.execute("PRAGMA user_version").fetchone()[0] == 0:
                    for statement in filter(str.strip, SCHEMA.split(";")):
                        self._db.execute(statement)
                    self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
            version = SCHEMA_VERSION
        if version > SCHEMA_VERSION:
            raise StorageError(f"{self.path} was written by a newer meshctl (schema {version})")
        if version < SCHEMA_VERSION:
            raise StorageError(f"{self.path} was written by an older, pre-release meshctl "
                               f"(schema {version}), whose layout this one does not read: "
                               "start a new store (another --store path)")

    def _load(self) -> None:
        # Only what runs still read: finished runs stay on disk (get_state reads one when asked)
        rows = self._db.execute("SELECT key, body FROM state WHERE ended_at IS NULL")
        self._state = {k: json.loads(b) for k, b in rows}
        self._aged_out = dict(self._db.execute("SELECT kind, before FROM aged_out"))
        rows = self._db.execute("SELECT body FROM dead_letter ORDER BY seq")
        self._dead = {r.id: r for r in (DeadLetter.from_dict(json.loads(b)) for (b,) in rows)}
        row = self._db.execute("SELECT body, generation FROM checkpoint WHERE id = 1").fetchone()
        self._checkpoint = json.loads(row[0]) if row else None
        self._generation = row[1] if row else None
        self._dead_seq = self._db.execute("SELECT COALESCE(MAX(seq), 0) FROM dead_letter").fetchone()[0]

    # --- journals ---------------------------------------------------------------------
    def append(self, journal: str, record: dict) -> None:
        self._journal[journal].append(record)  # encoded when committed, as it is then

    def records(self, journal: str) -> Iterator[dict]:
        try:
            rows = self._db.execute("SELECT body FROM journal WHERE journal = ? ORDER BY seq", (journal,))
            for (body,) in rows:
                yield from journal_row_records(body)
        except sqlite3.Error as exc:
            raise StorageError(f"{self.path}: {exc}") from exc
        for record in list(self._journal.get(journal, ())):
            yield json.loads(_dumps(record))  # a copy, as a committed record would be

    def _journal_rows(self) -> list[tuple[str, bytes, float | None]]:
        """(journal, compressed JSON array of records, clock time) rows of what was appended since
        the last commit, each array encoded in one call. Compressed: a batch of events is about
        ten times smaller for about 10 µs per kilobyte-sized event (zlib's fastest level)."""
        at = self._now if self._now > -math.inf else None
        return [(journal, _compress(_dumps(records[start:start + BATCH]).encode(), 1), at)
                for journal, records in self._journal.items() for start in range(0, len(records), BATCH)]

    # --- dedup ------------------------------------------------------------------------
    @property
    def dedup_window(self) -> float:
        return self.retention.dedup if self.retention.dedup is not None else DEDUP_WINDOW

    def is_done(self, key: str, consumer: str, at: float | None = None) -> bool:
        pair = (key, consumer)
        marked = self._done.get(pair)
        if marked is None:
            seen = self._seen
            if seen is None:
                seen = self._seen = self._read_pairs(SeenPairs.BITS)
            if not seen.may_hold(pair):
                return False  # most pairs asked about are new: no query for them
            try:
                row = self._db.execute("SELECT at FROM done WHERE event_id = ? AND consumer = ?",
                                       pair).fetchone()
            except sqlite3.Error as exc:
                raise StorageError(f"{self.path}: {exc}") from exc
            if row is None:
                return False
            marked = row[0]
        # as in memory: a record older than the dedup window (not yet removed) no longer counts
        return at is None or marked is None or at - marked <= self.dedup_window

    def mark_done(self, key: str, consumer: str, at: float = 0.0) -> None:
        self._done[(key, consumer)] = at  # into the filter when committed (is_done looks here first)
        if at > self._now:
            self._now = at

    def _remember_done(self) -> None:
        """After a commit: the pairs it wrote go into the filter (rebuilt bigger when full, so
        false positives, which cost a query, stay rare)."""
        seen = self._seen
        if seen is not None:
            seen.add_all(self._done)
            if seen.full:  # read back from the file: pairs aged out since do not count any more
                self._seen = self._read_pairs(SeenPairs.BITS)

    def _read_pairs(self, bits: int) -> "SeenPairs":
        """A filter of every pair in the file (pairs marked since the last commit are in ``_done``)."""
        seen = SeenPairs(bits)
        try:
            seen.add_all(self._db.execute("SELECT event_id, consumer FROM done"))
        except sqlite3.Error as exc:
            raise StorageError(f"{self.path}: {exc}") from exc
        return self._read_pairs(bits * 4) if seen.full else seen

    # --- dead letters -------------------------------------------------------------------
    def put_dead_letter(self, record: DeadLetter) -> bool:
        new = self._dead.pop(record.id, None) is None  # every record is cached: no query
        self._dead[record.id] = record
        self._dead_changes.pop(record.id, None)  # written in put order: the seq follows the re-put
        self._dead_changes[record.id] = record
        return new

    def dead_letters(self, queue: str | None = None) -> list[DeadLetter]:
        return [r for r in self._dead.values() if queue is None or r.queue == queue]

    def remove_dead_letters(self, ids: Iterable[str]) -> int:
        removed = 0
        for ident in set(ids):
            if self._dead.pop(ident, None) is not None:
                removed += 1
                self._dead_changes[ident] = None
        return removed

    # --- state --------------------------------------------------------------------------
    def get_state(self, key: str) -> Any:
        value = self._state.get(key)
        if value is not None:
            return value
        if key in self._deleted_state:
            return None
        if key in self._retired:
            return self._retired[key][0]
        try:  # a finished value lives on disk only (a copy each time: nothing in the run holds it)
            row = self._db.execute("SELECT body FROM state WHERE key = ? AND ended_at IS NOT NULL",
                                   (key,)).fetchone()
        except sqlite3.Error as exc:
            raise StorageError(f"{self.path}: {exc}") from exc
        return json.loads(row[0]) if row else None

    def state_keys(self, prefix: str) -> list[str]:
        try:
            stored = [k for (k,) in self._db.execute("SELECT key FROM state WHERE substr(key, 1, ?) = ?",
                                                      (len(prefix), prefix))]
        except sqlite3.Error as exc:
            raise StorageError(f"{self.path}: {exc}") from exc
        live = (k for k in (*self._state, *self._retired) if k.startswith(prefix))
        return sorted({*stored, *live} - self._deleted_state)

    def put_state(self, key: str, value: Any) -> None:
        self._state[key] = value
        self._retired.pop(key, None)  # a finished run redriven runs again
        self._dirty_state.add(key)
        self._deleted_state.discard(key)

    def delete_state(self, key: str) -> None:
        self._state.pop(key, None)
        self._retired.pop(key, None)
        self._dirty_state.discard(key)
        self._deleted_state.add(key)

    def retire_state(self, key: str, value: Any, at: float) -> None:
        self._state.pop(key, None)
        self._dirty_state.discard(key)
        self._retired[key] = (value, at)  # written at the next commit, then only on disk
        if at > self._now:
            self._now = at

    # --- commit ---------------------------------------------------------------------------
    def commit(self, checkpoint: dict) -> None:
        """Write everything buffered and the checkpoint in one transaction."""
        # Encoded before the write lock is taken: a value that cannot be encoded writes nothing.
        journal_rows = self._journal_rows()
        states = [(k, _dumps(self._state[k]), None) for k in sorted(self._dirty_state)]
        states += [(k, _dumps(value), at) for k, (value, at) in sorted(self._retired.items())]
        body = _dumps(checkpoint)
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._db.execute("SELECT generation FROM checkpoint WHERE id = 1").fetchone()
                if (row[0] if row else None) != self._generation:
                    raise StoreFenced(f"{self.path}: another process has committed to this store since "
                                       "this one read it (is the run going on elsewhere?); nothing of this "
                                       "commit was written")
                self._db.executemany("INSERT INTO journal (journal, body, batch, at) VALUES (?, ?, 2, ?)",
                                     journal_rows)
                self._db.executemany("INSERT OR REPLACE INTO done (event_id, consumer, at) VALUES (?, ?, ?)",
                                     sorted((e, c, at) for (e, c), at in self._done.items()))
                self._write_dead_letters()
                self._db.executemany("INSERT OR REPLACE INTO state (key, body, ended_at) VALUES (?, ?, ?)",
                                     states)
                self._db.executemany("DELETE FROM state WHERE key = ?",
                                     [(k,) for k in sorted(self._deleted_state)])
                aged = self._age_out()
                generation = (self._generation or 0) + 1
                self._db.execute("INSERT OR REPLACE INTO checkpoint (id, body, generation) VALUES (1, ?, ?)",
                                 (body, generation))
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise StorageError(f"{self.path}: commit failed: {exc}") from exc
        self._remember_done()
        self._journal, self._done, self._dirty_state, self._dead_changes = defaultdict(list), {}, set(), {}
        self._retired, self._deleted_state = {}, set()
        self._checkpoint, self._generation = checkpoint, generation
        if aged is not None:
            self._pruned_at = self._now
            self._aged_out.update(aged)

    # --- retention ------------------------------------------------------------------------
    def _age_out(self) -> dict[str, float] | None:
        """Inside a commit: delete what is older than its retention, once the clock has moved on
        by an eighth of the shortest retention since the last time (each pass scans the tables,
        which retention keeps bounded). Returns the kinds it removed something of, with the
        clock time before which they are gone; None if it was not time yet."""
        keep = {"runs": self.retention.runs, "archive": self.retention.archive, "dedup": self.dedup_window}
        if self._now == -math.inf or self._now - self._pruned_at < min(keep.values()) / 8:
            return None
        statements = {
            "runs": "DELETE FROM state WHERE ended_at IS NOT NULL AND ended_at < ?",
            "archive": f"DELETE FROM journal WHERE journal IN {ARCHIVED} AND at < ?",
            "dedup": "DELETE FROM done WHERE at < ?",
        }
        aged = {}
        for kind, statement in statements.items():
            if keep[kind] == math.inf:
                continue
            before = self._now - keep[kind]
            if self._db.execute(statement, (before,)).rowcount:
                aged[kind] = before
        self._db.executemany("INSERT OR REPLACE INTO aged_out VALUES (?, ?)", aged.items())
        return aged

    def aged_out(self) -> dict[str, float]:
        return dict(self._aged_out)

    def _write_dead_letters(self) -> None:
        for ident, record in self._dead_changes.items():
            if record is None:
                self._db.execute("DELETE FROM dead_letter WHERE id = ?", (ident,))
            else:
                self._dead_seq += 1
                self._db.execute("INSERT OR REPLACE INTO dead_letter VALUES (?, ?, ?, ?)",
                                 (ident, self._dead_seq, record.queue, _dumps(record.as_dict())))

    def checkpoint(self) -> dict | None:
        return self._checkpoint

    def close(self) -> None:
        try:
            self._db.close()
        except sqlite3.Error as exc:
            raise StorageError(f"{self.path}: {exc}") from exc


class SeenPairs:
    """A Bloom filter of (event key, consumer) pairs: ``may_hold`` is False only for a pair never added.

    Blocked: the pair's hash picks one 64-bit word and three bits in it, so a lookup reads one
    word. ``full`` past one pair per 12 bits, where about 1 lookup in 60 of a new pair would
    still need a query.
    """

    BITS = 1 << 25  # 4 MiB: 2.8 million pairs before it grows (a rebuild reads every pair back)

    def __init__(self, bits: int):
        self.bits = bytearray(max(bits, 64) // 8)
        self.words = memoryview(self.bits).cast("Q")
        self.mask = len(self.words) - 1  # a power of two
        self.limit = bits // 12
        self.count = 0

    @property
    def full(self) -> bool:
        return self.count > self.limit

    def add(self, pair: tuple[str, str]) -> None:
        self.add_all((pair,))

    def add_all(self, pairs: Iterable[tuple[str, str]]) -> None:
        words, mask, count = self.words, self.mask, 0
        for pair in pairs:
            h = hash(pair)
            words[h & mask] |= 1 << (h >> 40 & 63) | 1 << (h >> 46 & 63) | 1 << (h >> 52 & 63)
            count += 1
        self.count += count

    def may_hold(self, pair: tuple[str, str]) -> bool:
        h = hash(pair)
        bits = 1 << (h >> 40 & 63) | 1 << (h >> 46 & 63) | 1 << (h >> 52 & 63)
        return self.words[h & self.mask] & bits == bits


def _connect(path: str, create: bool) -> sqlite3.Connection:
    """A connection; without *create*, opening a file that is not there fails instead of making it."""
    if create:
        return sqlite3.connect(path, isolation_level=None, timeout=10.0)
    uri = "file:" + urllib.parse.quote(os.path.abspath(path)) + "?mode=rw"
    return sqlite3.connect(uri, uri=True, isolation_level=None, timeout=10.0)


def journal_row_records(body: bytes) -> list:
    """The records of one journal row: a zlib-compressed JSON array of them."""
    return json.loads(_decompress(body))


def _holds_sqlite(path: str) -> bool:
    """A file that may be a store: SQLite would turn a missing or empty one into a new store."""
    try:
        return os.path.getsize(path) > 0
    except OSError:
        return False


def sqlite_path(url: str) -> str:
    """``sqlite:PATH`` or ``sqlite:///PATH`` -> PATH."""
    path = url[len("sqlite:"):]
    if path.startswith("///"):
        path = "/" + path[3:].lstrip("/")
    elif path.startswith("//"):
        path = path[2:]
    return os.path.expanduser(path)
