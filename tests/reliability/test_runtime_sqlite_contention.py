"""T21: several processes committing read-modify-write transactions to one SQLite store,
one of them killed inside a transaction and another SIGKILLed from outside.

Four processes each run 300 transactions through the store: read the process's counter,
then in one commit write the incremented counter, a journal row, a dedup record and
(every tenth) a dead letter. Process 0 kills itself inside its 100th commit, after the
journal and dedup rows were written and before COMMIT; process 1 is SIGKILLed at a
random moment once it is under way. Both are restarted and carry on from what the store
holds. A commit based on what another process has since changed is fenced (StoreFenced,
nothing written); the process opens the store again and redoes it. No process may see an
unhandled "database is locked", the file must pass
`PRAGMA integrity_check`, and every process's rows must match its counter exactly: a
transaction is there whole or not at all. (tests/storage/test_sqlite_store.py already
covers processes racing to create a new file.)
"""
from __future__ import annotations

import json
import multiprocessing
import os
import random
import signal
import sqlite3
import time

import pytest

from engine.core.deadletter import DeadLetter
from engine.storage import SqliteStore, StoreFenced
from engine.storage.sqlite import journal_row_records

pytestmark = pytest.mark.slow

PROCESSES, TRANSACTIONS = 4, 300
KILL_INSIDE = 100  # process 0 dies inside this commit


def letter(worker: int, n: int) -> DeadLetter:
    return DeadLetter.make(
        "contention", "retries-exhausted", f"w{worker}", {"id": f"w{worker}-{n}"}, "Boom", "x"
    )


def transact(path: str, worker: int, kill_inside: int | None, errors) -> None:
    """Run this process's transactions from where the store says it is."""
    try:
        store = SqliteStore(path)
        while (n := (store.get_state(f"counter:{worker}") or {"n": 0})["n"] + 1) <= TRANSACTIONS:
            store.append("ledger", {"worker": worker, "n": n})
            store.mark_done(f"w{worker}-{n}", "ledger")
            if n % 10 == 0:
                store.put_dead_letter(letter(worker, n))
            store.put_state(f"counter:{worker}", {"n": n})
            if n == kill_inside:  # the journal and dedup rows are written when this runs
                store._write_dead_letters = lambda: os.kill(os.getpid(), signal.SIGKILL)
            try:
                store.commit({"worker": worker, "n": n})
            except StoreFenced:  # another process committed since this one read: read again, redo
                store.close()
                store = SqliteStore(path)
        store.close()
    except BaseException as exc:  # noqa: BLE001 - everything goes back to the test
        errors.put((worker, f"{type(exc).__name__}: {exc}"))
        raise


def counter(path: str, worker: int) -> int:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        row = db.execute("SELECT body FROM state WHERE key = ?", (f"counter:{worker}",)).fetchone()
    except sqlite3.OperationalError:  # the schema is not there yet
        row = None
    finally:
        db.close()
    return json.loads(row[0])["n"] if row else 0


def test_processes_contending_with_kills_keep_every_transaction_whole(tmp_path):
    path = str(tmp_path / "shared.db")
    SqliteStore(path).close()  # the schema exists; creating it concurrently is tested elsewhere
    context = multiprocessing.get_context("spawn")
    errors = context.Queue()

    def start(worker: int, kill_inside: int | None = None):
        process = context.Process(target=transact, args=(path, worker, kill_inside, errors))
        process.start()
        return process

    processes = {w: start(w, KILL_INSIDE if w == 0 else None) for w in range(PROCESSES)}
    # well before its end: each commit takes about a millisecond
    target = random.Random(21).randrange(50, 150)
    while processes[1].is_alive() and counter(path, 1) < target:
        time.sleep(0.005)
    time.sleep(random.Random(21).uniform(0, 0.02))
    os.kill(processes[1].pid, signal.SIGKILL)
    restarted = []
    for worker in range(PROCESSES):
        processes[worker].join(60)
        if processes[worker].exitcode == -signal.SIGKILL:
            restarted.append(worker)
            processes[worker] = start(worker)
    for process in processes.values():
        process.join(60)

    reported = []
    while not errors.empty():
        reported.append(errors.get())
    assert reported == [] and [p.exitcode for p in processes.values()] == [0] * PROCESSES
    assert restarted == [0, 1]

    db = sqlite3.connect(path)
    try:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        rows = db.execute("SELECT body, batch FROM journal WHERE journal = 'ledger' ORDER BY seq")
        ledger = [record for body, batch in rows for record in journal_row_records(body)]  # a row: a commit's
        done = sorted(event for (event,) in db.execute("SELECT event_id FROM done WHERE consumer = 'ledger'"))
    finally:
        db.close()
    for worker in range(PROCESSES):
        assert [r["n"] for r in ledger if r["worker"] == worker] == list(range(1, TRANSACTIONS + 1))
    assert done == sorted(f"w{w}-{n}" for w in range(PROCESSES) for n in range(1, TRANSACTIONS + 1))
    store = SqliteStore(path)
    try:
        assert [store.get_state(f"counter:{w}") for w in range(PROCESSES)] == [
            {"n": TRANSACTIONS}
        ] * PROCESSES
        assert len(store.dead_letters()) == PROCESSES * TRANSACTIONS // 10
    finally:
        store.close()
