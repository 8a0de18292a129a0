"""The Store contract: every test runs against every backend through the ``store`` fixture.

Writes are visible at once to the store that made them; only :meth:`Store.commit` makes them
durable. Tests that ``reopen`` a store check durability and are skipped for the memory store.
"""
from __future__ import annotations

import importlib
from pathlib import Path

from storage_backends import STORES

from engine.core.deadletter import DeadLetter
from engine.storage import BACKENDS, MemoryStore, SqliteStore, Store


def letter(n: int, queue: str = "orders.dlq", reason: str = "retries-exhausted") -> DeadLetter:
    event = {"id": f"e{n}", "type": "order.placed", "data": {"n": n}}
    return DeadLetter.make(queue, reason, "billing", event, "HTTPError", f"boom {n}", attempts=3)


def ids(letters: list[DeadLetter]) -> list[str]:
    return [r.id for r in letters]


# --- typing -----------------------------------------------------------------------------------

def test_every_backend_satisfies_the_protocol(tmp_path):
    memory: Store = MemoryStore()  # checked statically by mypy/pyright
    sqlite: Store = SqliteStore(str(tmp_path / "typing.db"))
    try:
        assert isinstance(memory, Store)
        assert isinstance(sqlite, Store)  # runtime_checkable: every method is there
    finally:
        sqlite.close()  # type: ignore[attr-defined]


def test_the_fixture_store_satisfies_the_protocol(store):
    assert isinstance(store, Store)


def protocol_methods() -> list[str]:
    return sorted(name for name, value in vars(Store).items() if callable(value) and not name.startswith("_"))


def test_every_registered_store_class_has_the_protocol_and_an_opener():
    """Checked without opening anything: a backend whose server is absent is still checked."""
    for scheme, backend in BACKENDS.items():
        module, _, name = backend.store.partition(":")
        cls = getattr(importlib.import_module(module), name)
        missing = [m for m in protocol_methods() if not callable(getattr(cls, m, None))]
        assert missing == [], f"{scheme}: {name} lacks {missing}"
        assert callable(getattr(cls, "open", None)), f"{scheme}: {name} has no open(url, retention, create)"


def test_the_contract_runs_on_every_registered_backend():
    assert {BACKENDS[name].store for name in STORES} == {b.store for b in BACKENDS.values()}


def test_the_contract_calls_every_protocol_method():
    source = Path(__file__).read_text(encoding="utf-8")
    assert [m for m in protocol_methods() if f".{m}(" not in source] == []


# --- journals ---------------------------------------------------------------------------------

def test_a_new_journal_is_empty(store):
    assert list(store.records("trace")) == []


def test_records_come_back_in_append_order_per_journal(store):
    for n in range(5):
        store.append("trace", {"n": n})
        store.append("emitted", {"m": -n})
    assert list(store.records("trace")) == [{"n": n} for n in range(5)]
    assert list(store.records("emitted")) == [{"m": -n} for n in range(5)]
    assert list(store.records("input")) == []


def test_records_are_visible_before_and_after_commit(store):
    store.append("trace", {"n": 1})
    assert list(store.records("trace")) == [{"n": 1}]
    store.commit({"fed": 1})
    store.append("trace", {"n": 2})
    assert list(store.records("trace")) == [{"n": 1}, {"n": 2}]  # committed first, then pending
    store.commit({"fed": 2})
    assert list(store.records("trace")) == [{"n": 1}, {"n": 2}]


def test_a_record_is_committed_as_it_is_at_commit(store, reopen):
    record = {"n": 1, "tags": ["a"]}
    store.append("trace", record)
    record["tags"].append("b")  # changed after append, before commit
    assert list(store.records("trace")) == [{"n": 1, "tags": ["a", "b"]}]
    store.commit({"fed": 1})
    store = reopen(store)
    assert list(store.records("trace")) == [{"n": 1, "tags": ["a", "b"]}]


def test_committed_records_survive_a_reopen(store, reopen):
    store.append("trace", {"n": 1, "text": "café ☕", "nested": {"list": [1, 2.5, None, True]}})
    store.append("emitted", {"id": "x"})
    store.commit({"fed": 1})
    store.append("trace", {"n": 2})
    store.commit({"fed": 2})
    store = reopen(store)
    assert list(store.records("trace")) == [
        {"n": 1, "text": "café ☕", "nested": {"list": [1, 2.5, None, True]}}, {"n": 2}]
    assert list(store.records("emitted")) == [{"id": "x"}]


def test_uncommitted_records_are_lost_on_reopen(store, reopen):
    store.append("trace", {"n": 1})
    store.commit({"fed": 1})
    store.append("trace", {"n": 2})  # never committed: a crash here loses it, by contract
    store = reopen(store)
    assert list(store.records("trace")) == [{"n": 1}]


def test_appending_after_a_reopen_continues_the_journal(store, reopen):
    store.append("trace", {"n": 1})
    store.commit({"fed": 1})
    store = reopen(store)
    store.append("trace", {"n": 2})
    store.commit({"fed": 2})
    store = reopen(store)
    assert list(store.records("trace")) == [{"n": 1}, {"n": 2}]


# --- dedup ------------------------------------------------------------------------------------

def test_is_done_after_mark_done_only_for_that_pair(store):
    assert not store.is_done("e1", "billing")
    store.mark_done("e1", "billing")
    assert store.is_done("e1", "billing")
    assert not store.is_done("e1", "shipping")
    assert not store.is_done("e2", "billing")
    store.mark_done("e1", "billing")  # idempotent
    store.commit({"fed": 1})
    assert store.is_done("e1", "billing")


def test_done_survives_a_reopen_after_commit(store, reopen):
    store.mark_done("e1", "billing")
    store.commit({"fed": 1})
    store.mark_done("e1", "billing")  # marked again in a later commit: still one record
    store.mark_done("e2", "billing")
    store.commit({"fed": 2})
    store = reopen(store)
    assert store.is_done("e1", "billing") and store.is_done("e2", "billing")
    assert not store.is_done("e1", "shipping")


def test_done_without_commit_is_lost_on_reopen(store, reopen):
    store.mark_done("e1", "billing")
    store = reopen(store)
    assert not store.is_done("e1", "billing")


# --- dead letters -----------------------------------------------------------------------------

def test_dead_letters_come_back_in_the_order_they_were_put(store):
    letters = [letter(n) for n in range(4)]
    for record in letters:
        store.put_dead_letter(record)
    assert store.dead_letters() == letters


def test_a_dead_letter_put_again_moves_to_the_end(store):
    a, b, c = letter(1), letter(2), letter(3)
    for record in (a, b, c, a):
        store.put_dead_letter(record)
    assert ids(store.dead_letters()) == [b.id, c.id, a.id]


def test_put_dead_letter_says_whether_the_record_is_new_to_the_queue(store, backend):
    a, b = letter(1), letter(2)
    assert store.put_dead_letter(a) is True
    assert store.put_dead_letter(a) is False  # replaced: a run counts it as a duplicate
    store.commit({"fed": 1})
    store = backend.reopen(store) if backend.durable else store
    assert store.put_dead_letter(a) is False  # committed before
    assert store.put_dead_letter(b) is True
    store.remove_dead_letters([a.id])
    assert store.put_dead_letter(a) is True  # taken out (a replay), then failed again: new again
    assert store.put_dead_letter(a) is False


def test_dead_letters_filtered_by_queue(store):
    a, b, c = letter(1, "orders.dlq"), letter(2, "payments.dlq"), letter(3, "orders.dlq")
    for record in (a, b, c):
        store.put_dead_letter(record)
    assert store.dead_letters("orders.dlq") == [a, c]
    assert store.dead_letters("payments.dlq") == [b]
    assert store.dead_letters("nothing.dlq") == []


def test_remove_dead_letters_returns_how_many_existed(store):
    a, b, c = letter(1), letter(2), letter(3)
    for record in (a, b, c):
        store.put_dead_letter(record)
    assert store.remove_dead_letters([a.id, c.id, "no-such-id", a.id]) == 2
    assert store.dead_letters() == [b]
    assert store.remove_dead_letters([a.id]) == 0
    assert store.remove_dead_letters([]) == 0


def test_a_removed_dead_letter_can_be_put_again(store):
    a, b = letter(1), letter(2)
    store.put_dead_letter(a)
    store.put_dead_letter(b)
    store.remove_dead_letters([a.id])
    store.put_dead_letter(a)
    assert store.dead_letters() == [b, a]


def test_dead_letters_survive_a_reopen_in_order(store, reopen):
    a, b, c = letter(1), letter(2, "payments.dlq"), letter(3)
    store.put_dead_letter(a)
    store.put_dead_letter(b)
    store.commit({"fed": 1})
    store.put_dead_letter(c)
    store.put_dead_letter(a)  # moves to the end, in a later commit
    store.commit({"fed": 2})
    store = reopen(store)
    assert store.dead_letters() == [b, c, a]  # equal records, rebuilt from their JSON
    assert store.dead_letters("payments.dlq") == [b]


def test_re_put_order_within_one_commit_survives_a_reopen(store, reopen):
    a, b, c = letter(1), letter(2), letter(3)
    for record in (a, b, c, a):  # all before the same commit
        store.put_dead_letter(record)
    store.commit({"fed": 1})
    before = ids(store.dead_letters())
    store = reopen(store)
    assert ids(store.dead_letters()) == before == [b.id, c.id, a.id]


def test_remove_then_put_within_one_commit_survives_a_reopen(store, reopen):
    a, b = letter(1), letter(2)
    store.put_dead_letter(a)
    store.put_dead_letter(b)
    store.commit({"fed": 1})
    store.remove_dead_letters([a.id])
    store.put_dead_letter(a)  # replayed and failed again: now the newest
    store.commit({"fed": 2})
    store = reopen(store)
    assert ids(store.dead_letters()) == [b.id, a.id]


def test_removal_is_persisted(store, reopen):
    a, b = letter(1), letter(2)
    store.put_dead_letter(a)
    store.put_dead_letter(b)
    store.commit({"fed": 1})
    assert store.remove_dead_letters([a.id]) == 1
    store.commit({"fed": 2})
    store = reopen(store)
    assert store.dead_letters() == [b]
    assert store.remove_dead_letters([a.id]) == 0


def test_uncommitted_dead_letter_changes_are_lost_on_reopen(store, reopen):
    a, b = letter(1), letter(2)
    store.put_dead_letter(a)
    store.commit({"fed": 1})
    store.put_dead_letter(b)
    store.remove_dead_letters([a.id])
    store = reopen(store)
    assert store.dead_letters() == [a]


# --- state ------------------------------------------------------------------------------------

def test_missing_state_is_none(store):
    assert store.get_state("run:nope") is None


def test_state_is_the_same_object_until_replaced(store):
    value = {"status": "running", "steps": ["reserve"]}
    store.put_state("run:1", value)
    assert store.get_state("run:1") is value
    value["steps"].append("charge")  # the runtime mutates what it holds; the store sees it
    store.commit({"fed": 1})
    assert store.get_state("run:1") is value
    replacement = {"status": "done"}
    store.put_state("run:1", replacement)
    assert store.get_state("run:1") is replacement


STATE = {
    "status": "running",
    "text": "naïve café — 日本語 ☕",
    "floats": [0.1, 1e-300, 1.7976931348623157e308, -2.5, 3.0],
    "ints": [0, -1, 2**53],
    "nested": {"a": [{"b": None, "c": [True, False]}], "": {}},
    "empty": [],
}


def test_state_round_trips_through_json_after_commit_and_reopen(store, reopen):
    store.put_state("run:1", STATE)
    store.put_state("run:2", "a string")
    store.put_state("counter", 41)
    store.commit({"fed": 1})
    store.put_state("counter", 42)  # replaced in a later commit
    store.commit({"fed": 2})
    store = reopen(store)
    assert store.get_state("run:1") == STATE
    assert [store.get_state("run:2"), store.get_state("counter")] == ["a string", 42]
    assert store.get_state("run:1") is store.get_state("run:1")  # identity holds after a reopen too


def test_state_mutated_after_put_is_committed_as_it_is_at_commit(store, reopen):
    value = {"steps": []}
    store.put_state("run:1", value)
    value["steps"].append("reserve")
    store.commit({"fed": 1})
    store = reopen(store)
    assert store.get_state("run:1") == {"steps": ["reserve"]}


def test_uncommitted_state_is_lost_on_reopen(store, reopen):
    store.put_state("run:1", {"v": 1})
    store.commit({"fed": 1})
    store.put_state("run:1", {"v": 2})
    store.put_state("run:2", {"v": 1})
    store = reopen(store)
    assert store.get_state("run:1") == {"v": 1}
    assert store.get_state("run:2") is None


# --- commit and checkpoint --------------------------------------------------------------------

def test_a_new_store_has_no_checkpoint(store):
    assert store.checkpoint() is None


def test_checkpoint_is_the_last_committed(store):
    store.commit({"fed": 1})
    store.commit({"fed": 2, "clock": 12.5, "windows": {"w": [1, 2]}})
    assert store.checkpoint() == {"fed": 2, "clock": 12.5, "windows": {"w": [1, 2]}}


def test_checkpoint_survives_a_reopen(store, reopen):
    snapshot = {"fed": 3, "clock": 0.25, "schedule": [{"at": 1.5, "task": "retry"}], "note": "ünïcode"}
    store.commit(snapshot)
    store = reopen(store)
    assert store.checkpoint() == snapshot


def test_nothing_committed_means_a_reopened_store_is_empty(store, reopen):
    store.append("trace", {"n": 1})
    store.mark_done("e1", "billing")
    store.put_dead_letter(letter(1))
    store.put_state("run:1", {"v": 1})
    store = reopen(store)
    assert store.checkpoint() is None
    assert list(store.records("trace")) == []
    assert not store.is_done("e1", "billing")
    assert store.dead_letters() == [] and store.get_state("run:1") is None


def test_an_empty_commit_only_moves_the_checkpoint(store, reopen):
    store.append("trace", {"n": 1})
    store.commit({"fed": 1})
    store.commit({"fed": 1, "finished": True})
    store = reopen(store)
    assert list(store.records("trace")) == [{"n": 1}]
    assert store.checkpoint() == {"fed": 1, "finished": True}


def test_memory_store_discards_journals_it_was_not_asked_to_keep():
    """A documented memory-only behaviour, outside the contract: a run may stream millions of events."""
    store = MemoryStore(keep=["trace"])
    store.append("trace", {"n": 1})
    store.append("emitted", {"n": 1})
    assert list(store.records("trace")) == [{"n": 1}]
    assert list(store.records("emitted")) == []


# --- retired (final) state: finished runs -------------------------------------------------------

def test_a_retired_value_leaves_memory_and_a_durable_store_keeps_it(store, reopen, backend):
    """A finished run is retired: the run reads it no more; only a durable store keeps it (for
    `meshctl runs`)."""
    store.put_state("run:a", {"status": "running"})
    store.put_state("run:b", {"status": "running"})
    store.commit({"fed": 1})
    store.retire_state("run:a", {"status": "completed"}, 100.0)
    if not backend.durable:
        assert store.get_state("run:a") is None and store.state_keys("run:") == ["run:b"]
        return
    assert store.get_state("run:a") == {"status": "completed"}  # before and after the commit that writes it
    store.commit({"fed": 2})
    assert store.get_state("run:a") == {"status": "completed"}
    assert store.state_keys("run:") == ["run:a", "run:b"]
    store = reopen(store)
    assert store.get_state("run:a") == {"status": "completed"}
    assert store.state_keys("run:") == ["run:a", "run:b"]


def test_a_retired_value_put_again_is_live_again(store, reopen, backend):
    """A redriven run runs again: put after retire makes it live state, kept as such across a reopen."""
    store.retire_state("run:a", {"status": "failed"}, 50.0)
    store.commit({"fed": 1})
    again = {"status": "running"}
    store.put_state("run:a", again)
    assert store.get_state("run:a") is again
    store.commit({"fed": 2})
    if backend.durable:
        store = reopen(store)
        assert store.get_state("run:a") == again


def test_what_aged_out_is_empty_for_a_new_store(store):
    assert store.aged_out() == {}


# --- state keys ---------------------------------------------------------------------------------

def test_state_keys_lists_the_keys_with_a_prefix_sorted_pending_and_committed(store, reopen):
    store.put_state("run:b", {"n": 2})
    store.put_state("order:x", {"n": 0})
    store.commit({"fed": 1})
    store.put_state("run:a", {"n": 1})  # pending: listed too
    assert store.state_keys("run:") == ["run:a", "run:b"]
    assert store.state_keys("order:") == ["order:x"]
    assert store.state_keys("nothing:") == []
    assert store.state_keys("") == ["order:x", "run:a", "run:b"]
    store.commit({"fed": 2})
    store = reopen(store)
    assert store.state_keys("run:") == ["run:a", "run:b"]


def test_deleted_state_is_absent_at_once_and_gone_after_commit_and_reopen(store, reopen):
    store.put_state("kv:a", {"n": 1})
    store.put_state("kv:b", {"n": 2})
    store.commit({"fed": 1})
    store.delete_state("kv:a")
    assert store.get_state("kv:a") is None
    assert store.state_keys("kv:") == ["kv:b"]
    store.commit({"fed": 2})
    store = reopen(store)
    assert store.get_state("kv:a") is None
    assert store.state_keys("kv:") == ["kv:b"]


def test_state_put_after_delete_in_one_commit_is_kept(store, reopen):
    store.put_state("kv:a", {"n": 1})
    store.commit({"fed": 1})
    store.delete_state("kv:a")
    store.put_state("kv:a", {"n": 2})
    store.delete_state("kv:never")  # deleting what is not there is no error
    store.commit({"fed": 2})
    store = reopen(store)
    assert store.get_state("kv:a") == {"n": 2}
    assert store.state_keys("kv:") == ["kv:a"]


def test_uncommitted_delete_is_undone_by_reopen(store, reopen):
    store.put_state("kv:a", {"n": 1})
    store.commit({"fed": 1})
    store.delete_state("kv:a")
    store = reopen(store)
    assert store.get_state("kv:a") == {"n": 1}


# --- close ------------------------------------------------------------------------------------

def test_close_keeps_what_was_committed_and_drops_the_rest(store, backend):
    store.append("input", {"n": 1})
    store.put_state("run:a", {"n": 1})
    store.commit({"fed": 1})
    store.append("input", {"n": 2})
    store.put_state("run:a", {"n": 2})
    store.close()
    if not backend.durable:
        return  # nothing of a memory store outlives it: closing it is all there is to check
    again = backend.open()
    assert list(again.records("input")) == [{"n": 1}]
    assert again.get_state("run:a") == {"n": 1} and again.checkpoint() == {"fed": 1}


def test_closing_twice_is_harmless(store):
    store.close()
    store.close()
