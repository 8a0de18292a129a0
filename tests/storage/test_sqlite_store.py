"""SQLite specifics: WAL, the schema version, atomic commits, and several processes on one file."""
from __future__ import annotations

import json
import multiprocessing
import sqlite3
import time

import pytest

from engine.core.deadletter import DeadLetter
from engine.storage import SqliteStore, StorageError, StoreFenced
from engine.storage.sqlite import SCHEMA_VERSION, journal_row_records


@pytest.fixture
def path(tmp_path) -> str:
    return str(tmp_path / "store.db")


def pragma(path: str, name: str):
    db = sqlite3.connect(path)
    try:
        return db.execute(f"PRAGMA {name}").fetchone()[0]
    finally:
        db.close()


def letter(n: int) -> DeadLetter:
    return DeadLetter.make("orders.dlq", "retries-exhausted", "billing", {"id": f"e{n}"}, "HTTPError", "boom")


def test_wal_mode_and_schema_version(path):
    SqliteStore(path).close()
    assert pragma(path, "journal_mode") == "wal"
    assert pragma(path, "user_version") == SCHEMA_VERSION


def test_reopening_keeps_the_schema_and_what_was_committed(path):
    store = SqliteStore(path)
    store.append("trace", {"n": 1})
    store.commit({"fed": 1})
    store.close()
    for _ in range(2):
        SqliteStore(path).close()
    assert pragma(path, "user_version") == SCHEMA_VERSION
    store = SqliteStore(path)
    assert list(store.records("trace")) == [{"n": 1}]
    store.close()


class LockedAtFirst:
    """A connection whose first switches to WAL fail as when connections open a new file at once.

    Each waits for the other's lock, so SQLite answers 'locked' at once instead of calling
    the busy handler; the store must retry rather than fail to open.
    """

    def __init__(self, db: sqlite3.Connection, failures: int, error: str = "database is locked"):
        self._db, self.failures, self.error = db, failures, error

    def execute(self, sql: str, *args):
        if "journal_mode=WAL" in sql and self.failures:
            self.failures -= 1
            raise sqlite3.OperationalError(self.error)
        return self._db.execute(sql, *args)

    def __getattr__(self, name: str):
        return getattr(self._db, name)


def test_a_locked_switch_to_wal_is_retried(path, monkeypatch):
    connect = sqlite3.connect
    monkeypatch.setattr(sqlite3, "connect", lambda *a, **k: LockedAtFirst(connect(*a, **k), failures=3))
    SqliteStore(path).close()
    monkeypatch.undo()
    assert pragma(path, "journal_mode") == "wal"


def test_other_errors_on_the_switch_to_wal_are_not_retried(path, monkeypatch):
    connect = sqlite3.connect
    monkeypatch.setattr(sqlite3, "connect",
                        lambda *a, **k: LockedAtFirst(connect(*a, **k), failures=1, error="disk I/O error"))
    with pytest.raises(StorageError, match=r"cannot open store .*store\.db: disk I/O error"):
        SqliteStore(path)


# --- a commit is all or nothing -----------------------------------------------------------------

def fill_second_commit(store: SqliteStore) -> None:
    """Writes of every kind, for a commit that will fail half-way."""
    store.append("trace", {"n": 2})
    store.mark_done("e2", "billing")
    store.put_dead_letter(letter(2))
    store.remove_dead_letters([letter(1).id])
    store.put_state("run:1", {"v": 2})


def assert_only_first_commit(path: str) -> None:
    store = SqliteStore(path)
    try:
        assert store.checkpoint() == {"fed": 1}
        assert list(store.records("trace")) == [{"n": 1}]
        assert store.is_done("e1", "billing") and not store.is_done("e2", "billing")
        assert store.dead_letters() == [letter(1)]
        assert store.get_state("run:1") == {"v": 1}
    finally:
        store.close()


@pytest.fixture
def committed_once(path) -> SqliteStore:
    store = SqliteStore(path)
    store.append("trace", {"n": 1})
    store.mark_done("e1", "billing")
    store.put_dead_letter(letter(1))
    store.put_state("run:1", {"v": 1})
    store.commit({"fed": 1})
    fill_second_commit(store)
    yield store
    store.close()


def test_a_bug_in_the_middle_of_a_commit_surfaces_as_itself_and_writes_nothing(
        committed_once, path, monkeypatch):
    """Not a storage failure, so not translated: the caller's bug stays visible as what it is.

    The journal and dedup rows were already inserted when the failure struck; the
    transaction is rolled back, so neither they nor the new checkpoint are visible.
    """

    def broken(self):
        raise ZeroDivisionError("bug while writing dead letters")

    monkeypatch.setattr(SqliteStore, "_write_dead_letters", broken)
    with pytest.raises(ZeroDivisionError):
        committed_once.commit({"fed": 2})
    assert committed_once.checkpoint() == {"fed": 1}
    assert_only_first_commit(path)


def test_a_sqlite_error_in_the_middle_of_a_commit_is_a_storage_error_and_writes_nothing(
    committed_once, path, monkeypatch
):
    """sqlite3 errors are translated at the boundary: StorageError naming the file, cause kept."""

    def failing(self):
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(SqliteStore, "_write_dead_letters", failing)
    with pytest.raises(StorageError, match=r"store\.db: commit failed: disk I/O error") as info:
        committed_once.commit({"fed": 2})
    assert isinstance(info.value.__cause__, sqlite3.OperationalError)
    assert_only_first_commit(path)


def test_an_unserialisable_state_fails_the_whole_commit(committed_once, path):
    loop: list = []
    loop.append(loop)  # json.dumps raises even with default=str
    committed_once.put_state("run:2", loop)
    with pytest.raises(ValueError, match="Circular reference"):
        committed_once.commit({"fed": 2})
    assert_only_first_commit(path)


def test_writes_of_a_failed_commit_are_kept_for_the_next_one(committed_once, path, monkeypatch):
    with monkeypatch.context() as patch:
        patch.setattr(SqliteStore, "_write_dead_letters", lambda self: 1 / 0)
        with pytest.raises(ZeroDivisionError):
            committed_once.commit({"fed": 2})
    committed_once.commit({"fed": 2})  # the retry writes everything since the last good commit
    committed_once.close()
    store = SqliteStore(path)
    try:
        assert store.checkpoint() == {"fed": 2}
        assert list(store.records("trace")) == [{"n": 1}, {"n": 2}]
        assert store.is_done("e2", "billing")
        assert store.dead_letters() == [letter(2)]
        assert store.get_state("run:1") == {"v": 2}
    finally:
        store.close()


def test_a_commit_locked_out_past_the_busy_timeout_is_a_storage_error_and_can_be_retried(path):
    """BEGIN IMMEDIATE waits for another writer up to the busy timeout; past it, StorageError, writes kept."""
    store = SqliteStore(path)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO state (key, body) VALUES ('other', '1')")
    try:
        store._db.execute("PRAGMA busy_timeout = 50")  # so the test is quick: the lock is held throughout
        store.append("trace", {"n": 1})
        with pytest.raises(StorageError, match="locked"):
            store.commit({"fed": 1})
        other.execute("COMMIT")
        store.commit({"fed": 1})  # once the other writer is gone, the same writes go through
        assert list(store.records("trace")) == [{"n": 1}]
    finally:
        other.close()
        store.close()


# --- several processes on one file (T21, small) ------------------------------------------------

COMMITS = 200
PROCESSES = 3


def commit_many(path: str, worker: int, start, results) -> None:
    """Open the store together with the others, then commit COMMITS times; report the time or the error."""
    try:
        start.wait(20)
        began = time.monotonic()
        store = SqliteStore(path)
        for n in range(COMMITS):
            while True:
                store.append("trace", {"worker": worker, "n": n})
                store.put_state(f"worker:{worker}", {"n": n})
                try:
                    store.commit({"worker": worker, "n": n})
                    break
                except StoreFenced:  # another process committed in between: open again and redo
                    store.close()
                    store = SqliteStore(path)
        store.close()
        results.put((worker, time.monotonic() - began))
    except BaseException as exc:  # noqa: BLE001 - everything goes back to the test
        results.put((worker, f"{type(exc).__name__}: {exc}"))


def test_processes_opening_a_new_file_and_committing_to_it(tmp_path):
    """No unhandled 'database is locked', every record present, file intact.

    The file is new, so the processes also race to switch it to WAL and to create the schema.
    """
    path = str(tmp_path / "shared.db")
    context = multiprocessing.get_context("spawn")
    start, results = context.Barrier(PROCESSES), context.Queue()  # all open the file at the same moment
    workers = [context.Process(target=commit_many, args=(path, w, start, results)) for w in range(PROCESSES)]
    for process in workers:
        process.start()
    reported = dict(results.get(timeout=30) for _ in workers)
    for process in workers:
        process.join(10)
    errors = {w: r for w, r in reported.items() if isinstance(r, str)}
    assert errors == {} and [p.exitcode for p in workers] == [0] * PROCESSES
    elapsed = max(reported.values())

    db = sqlite3.connect(path)
    try:
        batches = db.execute(
            "SELECT body, batch FROM journal WHERE journal = 'trace' ORDER BY seq"
        ).fetchall()
        rows = [record for body, batch in batches for record in journal_row_records(body)]
        assert all(batch for _, batch in batches)  # each commit's records in one row
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        db.close()
    assert len(rows) == PROCESSES * COMMITS
    for w in range(PROCESSES):  # each process's records are all there, in its own order
        assert [r["n"] for r in rows if r["worker"] == w] == list(range(COMMITS))
    store = SqliteStore(path)
    try:
        assert [store.get_state(f"worker:{w}") for w in range(PROCESSES)] == [{"n": COMMITS - 1}] * PROCESSES
    finally:
        store.close()
    print(
        json.dumps(
            {
                "test": "T21-small",
                "processes": PROCESSES,
                "commits": PROCESSES * COMMITS,
                "seconds": round(elapsed, 2),
                "commits_per_s": round(PROCESSES * COMMITS / elapsed),
            }
        )
    )


# --- journal rows: one per journal and commit, a JSON array of its records ------------------


def journal_rows(path: str) -> list[tuple[str, int, int]]:
    """(journal, batch flag, records in the row) of every row, in order."""
    db = sqlite3.connect(path)
    try:
        rows = db.execute("SELECT journal, batch, body FROM journal ORDER BY seq").fetchall()
    finally:
        db.close()
    return [(name, batch, len(journal_row_records(body))) for name, batch, body in rows]


def test_a_commit_writes_one_row_per_journal_split_past_the_batch_size(path, monkeypatch):
    monkeypatch.setattr("engine.storage.sqlite.BATCH", 3)
    store = SqliteStore(path)
    try:
        for n in range(7):
            store.append("input", {"n": n})
            if n % 2:
                store.append("emitted", {"m": n})
        store.commit({"fed": 7})
        store.append("input", {"n": 7})
        assert [r["n"] for r in store.records("input")] == list(range(8))  # committed, then pending
        store.commit({"fed": 8})
    finally:
        store.close()
    assert journal_rows(path) == [
        ("input", 2, 3),
        ("input", 2, 3),
        ("input", 2, 1),
        ("emitted", 2, 3),
        ("input", 2, 1),
    ]
    store = SqliteStore(path)
    try:
        assert [r["n"] for r in store.records("input")] == list(range(8))
        assert list(store.records("emitted")) == [{"m": 1}, {"m": 3}, {"m": 5}]
    finally:
        store.close()


@pytest.mark.parametrize(
    "value",
    [
        {
            "specversion": "1.0",
            "id": "t1",
            "time": "2026-01-01T00:00:05Z",
            "data": {"k": "k0042", "n": [1, 2.5, None]},
        },
        {"text": "é ✓ \u2028 \x00 \" \\ \U0001f600", "nested": [[[{"x": True}]]], "empty": [{}, []]},
        {3: "int key", 2.5: "float key", None: "null key", True: "bool key"},
        {"floats": [1e300, -0.0, 0.1, float("inf"), float("-inf")]},
        {"bytes": b"x", "set": {1}, "when": __import__("datetime").date(2026, 1, 1)},  # default=str
        ("a", "tuple"),
        "a string",
        12,
        None,
    ],
)
def test_records_are_encoded_byte_for_byte_as_json_dumps(value):
    from engine.storage.sqlite import _dumps

    assert _dumps(value) == json.dumps(value, separators=(",", ":"), default=str)


def test_a_value_inside_one_that_failed_to_encode_encodes_afterwards():
    """The encoder is reused: what it noted while encoding a value that failed must not remain."""
    from engine.storage.sqlite import _dumps

    loop: list = []
    loop.append(loop)
    outer = {"fine": [1], "loop": loop}
    with pytest.raises(ValueError, match="Circular reference"):
        _dumps(outer)
    outer["loop"] = []
    assert _dumps(outer) == '{"fine":[1],"loop":[]}'


# --- dedup lookups: answered from a filter of the pairs seen, a query only for a likely hit ---


def queries(store: SqliteStore) -> list[str]:
    """Every statement the store's connection runs from now on."""
    seen: list[str] = []
    store._db.set_trace_callback(seen.append)
    return seen


def test_seen_pairs_never_forgets_a_pair_and_rarely_claims_a_new_one():
    from engine.storage.sqlite import SeenPairs

    seen = SeenPairs(1 << 16)
    added = [(f"e{i}", f"c{i % 7}") for i in range(4000)]
    for pair in added:
        seen.add(pair)
    assert all(seen.may_hold(pair) for pair in added)
    claimed = sum(seen.may_hold((f"new{i}", "c0")) for i in range(4000))
    assert claimed < 4000 * 0.05 and not seen.full


def test_a_new_pair_is_not_done_without_a_query_and_a_known_one_is_looked_up(path):
    store = SqliteStore(path)
    try:
        store.mark_done("e1", "billing")
        store.commit({"fed": 1})
        ran = queries(store)
        assert not store.is_done("e2", "billing")
        assert not [q for q in ran if "FROM done WHERE" in q]
        assert store.is_done("e1", "billing")
        assert [q for q in ran if "FROM done WHERE" in q]
    finally:
        store.close()


def test_dedup_answers_survive_reopening_and_the_filter_growing(path, monkeypatch):
    from engine.storage.sqlite import SeenPairs

    monkeypatch.setattr(SeenPairs, "BITS", 64)  # full after 5 pairs: it is rebuilt bigger several times
    store = SqliteStore(path)
    try:
        for i in range(50):
            store.mark_done(f"old{i}", "billing")
        store.commit({"fed": 50})
    finally:
        store.close()
    store = SqliteStore(path)
    try:
        assert store.is_done("old0", "billing") and not store.is_done("old0", "shipping")
        for i in range(200):
            store.mark_done(f"new{i}", "billing")
            if i % 40 == 0:
                store.commit({"fed": 50 + i})
        assert all(
            store.is_done(f"old{i}", "billing") and store.is_done(f"new{i}", "billing") for i in range(50)
        )
        assert not any(store.is_done(f"new{i}", "shipping") for i in range(200))
        assert len(store._seen.bits) * 8 > 64
    finally:
        store.close()


def test_pairs_marked_are_done_before_and_after_their_commit_and_after_a_failed_one(path, monkeypatch):
    store = SqliteStore(path)
    try:
        assert not store.is_done("e0", "billing")  # the filter is built now
        store.mark_done("e1", "billing")
        ran = queries(store)
        assert store.is_done("e1", "billing") and not ran  # pending: no query
        with monkeypatch.context() as patch:
            patch.setattr(SqliteStore, "_write_dead_letters", lambda self: 1 / 0)
            with pytest.raises(ZeroDivisionError):
                store.commit({"fed": 1})
        assert store.is_done("e1", "billing")
        store.commit({"fed": 1})
        assert store._seen.may_hold(("e1", "billing"))  # in the filter once committed
        ran.clear()
        assert store.is_done("e1", "billing") and [q for q in ran if "FROM done WHERE" in q]
        assert not store.is_done("e1", "shipping")
    finally:
        store.close()


def test_a_pair_another_process_marks_later_fences_the_commit_that_missed_it(path):
    """The filter answers as of what this store read; a commit by another process since then
    fences this store's commit, so an effect done twice is never recorded twice."""
    first, second = SqliteStore(path), SqliteStore(path)
    try:
        assert not first.is_done("e1", "billing")  # the filter is built: nothing done yet
        second.mark_done("e1", "billing")
        second.commit({"fed": 1})
        first.mark_done("e1", "billing")
        with pytest.raises(StoreFenced):
            first.commit({"fed": 1})
    finally:
        first.close()
        second.close()
