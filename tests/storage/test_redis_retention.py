"""Retention on Redis: what grows with the input expires (TTLs, trimmed journals), what a run
still needs (live state, the checkpoint, a run's trace, dead letters) does not.

A short retention (one second) is waited out with a margin; the tests assert keys and TTLs,
never how long anything took.
"""
from __future__ import annotations

import time

import pytest

from engine.core.deadletter import DeadLetter
from engine.core.errors import UsageError
from engine.language.model import Retention
from engine.storage import open_store

SHORT = Retention(runs=1.0, archive=1.0, dedup=1.0)
DAY = 86400.0


def wait_out(store, key: str) -> None:
    """Until *key* has expired (its TTL has passed), with a generous bound."""
    deadline = time.monotonic() + 30
    while store.client.exists(key) and time.monotonic() < deadline:
        time.sleep(0.1)


def write_some(store, n: int = 3) -> None:
    for i in range(n):
        store.append("input", {"id": f"e{i}", "type": "t"})
        store.append("emitted", {"id": f"d{i}", "type": "u"})
        store.append("trace", {"kind": "delivered", "n": i})
        store.mark_done(f"/s|e{i}", "svc", 100.0)
    store.retire_state("run:flow:e0@/s", {"id": "flow:e0@/s", "status": "completed"}, 100.0)
    store.put_state("run:flow:e1@/s", {"id": "flow:e1@/s", "status": "running"})
    store.put_dead_letter(DeadLetter(id="dl1", queue="svc", reason="failed", consumer="svc", attempts=1,
                                     first_attempt=None, last_attempt=None, error_type="E", error="boom",
                                     event={"id": "e9"}))


def test_what_grows_with_the_input_expires_and_what_a_run_needs_stays(redis_url):
    store = open_store(redis_url, SHORT)
    r = store.client
    write_some(store)
    store.commit({"position": 3})
    assert store.aged_out() == {}
    assert store.state_keys("run:") == ["run:flow:e0@/s", "run:flow:e1@/s"]
    for key in map(store.key, ("done:svc|/s|e0", "state:run:flow:e0@/s", "j:input", "j:emitted",
                               "runs:ended")):
        assert 0 < r.pttl(key) <= 1000, key
    for key in map(store.key, ("state:run:flow:e1@/s", "checkpoint", "j:trace", "dlq")):
        assert r.pttl(key) == -1, key  # no expiry: a live run, the run's own trace, dead letters

    wait_out(store, store.key("runs:ended"))
    wait_out(store, store.key("j:emitted"))
    store.close()
    store = open_store(redis_url, SHORT, create=False)
    assert not store.is_done("/s|e0", "svc")
    assert store.get_state("run:flow:e0@/s") is None
    assert store.state_keys("run:") == ["run:flow:e1@/s"]
    assert list(store.records("input")) == [] and list(store.records("emitted")) == []
    assert len(list(store.records("trace"))) == 3
    assert [d.id for d in store.dead_letters()] == ["dl1"]
    assert store.checkpoint() == {"position": 3}
    assert set(store.aged_out()) == {"runs", "archive", "dedup"}
    assert not [k for k in r.scan_iter(match=store.key("done:*"))]


def test_a_deployment_trims_its_trace_too(redis_url):
    store = open_store(redis_url, SHORT)
    store.tracking = True  # a worker's units
    store.append("trace", {"kind": "delivered"})
    store.commit_unit()
    assert 0 < store.client.pttl(store.key("j:trace")) <= 1000


def test_an_active_journal_is_trimmed_to_its_retention(redis_url):
    store = open_store(redis_url, SHORT)
    key = store.key("j:input")
    per_node = int(store.client.config_get("stream-node-max-entries")["stream-node-max-entries"])
    for i in range(3 * per_node):  # an entry per commit
        store.append("input", {"id": f"old{i}"})
        store.commit_unit()
    assert store.client.xlen(key) == 3 * per_node
    time.sleep(1.2)  # past the retention of what was written so far
    store.append("input", {"id": "new"})
    store.commit_unit()
    # trimmed by whole nodes: at most the node of the newest entry holds older ones
    assert store.client.xlen(key) <= per_node
    assert list(store.records("input"))[-1] == {"id": "new"}


def test_the_default_keeps_seven_days_and_forever_keeps_for_ever(redis_url):
    store = open_store(redis_url)
    write_some(store, 1)
    store.commit({"position": 1})
    r = store.client
    for key in map(store.key, ("done:svc|/s|e0", "state:run:flow:e0@/s", "j:input")):
        assert 6 * DAY * 1000 < r.pttl(key) <= 7 * DAY * 1000, key
    store.close()

    forever = Retention(runs=float("inf"), archive=float("inf"), dedup=float("inf"))
    store = open_store(redis_url + "-forever", forever)  # a prefix of its own, deleted below
    write_some(store, 1)
    store.commit({"position": 1})
    keys = [k for pattern in store.key_patterns() for k in store.client.scan_iter(match=pattern)]
    assert keys and all(store.client.pttl(k) == -1 for k in keys)
    assert store.aged_out() == {}
    store.client.delete(*keys)


def test_a_finished_run_redriven_is_live_again(redis_url):
    store = open_store(redis_url, SHORT)
    store.retire_state("run:r", {"status": "failed"}, 1.0)
    store.commit({})
    store.put_state("run:r", {"status": "running"})
    store.commit({})
    assert store.client.pttl(store.key("state:run:r")) == -1
    assert store.state_keys("run:") == ["run:r"]
    store.delete_state("run:r")
    store.commit({})
    assert store.state_keys("run:") == []


@pytest.mark.parametrize("later", [6 * DAY, 30 * DAY])
def test_dedup_counts_clock_time_as_well(redis_url, later):
    """A run's virtual clock may pass the dedup window long before the TTL does: the record's
    clock time is compared too, as SQLite does."""
    store = open_store(redis_url)
    store.mark_done("/s|e1", "svc", 1000.0)
    store.commit({})
    assert store.is_done("/s|e1", "svc", 1000.0 + later) == (later <= 7 * DAY)


def test_a_store_of_the_older_layout_is_refused_by_name(redis_url):
    store = open_store(redis_url)
    store.client.rpush(f"{store.prefix}:j:input", '{"id": "e1"}')  # journals were lists, keys untagged
    with pytest.raises(UsageError, match="older meshctl"):
        open_store(redis_url)
