"""The memory store's dedup records expire after ``dedup_window`` seconds of clock time."""
from __future__ import annotations

from engine.storage import MemoryStore


def test_a_pair_is_forgotten_a_window_after_it_was_last_marked():
    store = MemoryStore(dedup_window=10)
    for event in ("a", "b", "c"):  # marked at one time: one group
        store.mark_done(event, "c1", 100)
    store.mark_done("b", "c1", 105)  # marked again later: it lives on from then
    store.mark_done("d", "c1", 105)
    assert all(store.is_done(e, "c1", 110) for e in "abcd")
    store.mark_done("e", "c1", 111)  # the group of 100 expires
    assert store.is_done("a", "c1") is False and store.is_done("c", "c1") is False
    assert store.is_done("b", "c1", 111) and store.is_done("d", "c1", 111)
    store.mark_done("f", "c1", 116)  # and the group of 105
    assert not any(store.is_done(e, "c1") for e in "abcd")
    assert store.is_done("e", "c1", 116) and store.is_done("f", "c1", 116)


def test_is_done_judges_the_age_of_a_pair_not_yet_expired():
    store = MemoryStore(dedup_window=10)
    store.mark_done("a", "c1", 100)
    assert store.is_done("a", "c1", 110) and not store.is_done("a", "c1", 110.5)


def test_without_a_window_every_pair_is_kept():
    store = MemoryStore(dedup_window=None)
    store.mark_done("a", "c1", 0)
    store.mark_done("b", "c1", 1e9)
    assert store.is_done("a", "c1", 2e9) and store.is_done("b", "c1", 2e9)
