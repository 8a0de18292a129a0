"""Commands that read or change what a run left never create a store.

`dlq`, `runs` and `replay` need an existing store: a missing (or empty) SQLite file, or a Redis
prefix holding none of meshctl's keys, is a usage error naming it (exit 2), and nothing is
created.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from engine.cluster.deployment import commit_changes, is_deployment
from engine.core.deadletter import DeadLetter
from engine.storage import open_store

REPO = Path(__file__).resolve().parent.parent
ARENA = REPO / "workflows" / "arena"
ORDERS = REPO / "workflows" / "orders"

READERS = {
    "dlq list": ["dlq", "list", "--store", "{url}"],
    "dlq show": ["dlq", "show", "--store", "{url}", "abc"],
    "dlq replay": ["dlq", "replay", ARENA, "--store", "{url}"],
    "dlq purge": ["dlq", "purge", "--store", "{url}", "--all"],
    "dlq purge --dry-run": ["dlq", "purge", "--store", "{url}", "--all", "--dry-run"],
    "runs list": ["runs", "list", "--store", "{url}"],
    "runs show": ["runs", "show", "--store", "{url}", "fulfil-order:chk-1"],
    "runs redrive": ["runs", "redrive", ORDERS, "--store", "{url}", "fulfil-order:chk-1"],
    "replay": ["replay", ORDERS, "--store", "{url}"],
}


def _args(template, url):
    return [str(a).format(url=url) for a in template]


@pytest.mark.parametrize("name", READERS)
def test_a_missing_sqlite_store_is_an_error_and_stays_missing(meshctl, tmp_path, name):
    db = tmp_path / "nonexist.db"
    result = meshctl(*_args(READERS[name], f"sqlite:{db}"))
    assert result.exit_code == 2
    assert (
        f"meshctl: no store at {db}: give the --store sqlite:PATH of an earlier `meshctl run --store`"
        in result.output
    )
    assert list(tmp_path.iterdir()) == []  # no file, no -wal, no -shm


@pytest.mark.parametrize("name", ["dlq list", "runs list", "replay"])
def test_an_empty_file_is_not_a_store_and_is_left_empty(meshctl, tmp_path, name):
    db = tmp_path / "empty.db"
    db.touch()
    result = meshctl(*_args(READERS[name], f"sqlite:{db}"))
    assert result.exit_code == 2 and f"no store at {db}" in result.output
    assert db.stat().st_size == 0 and sorted(p.name for p in tmp_path.iterdir()) == ["empty.db"]


def test_an_existing_store_is_read_as_before(meshctl, tmp_path):
    db = f"sqlite:{tmp_path / 'run.db'}"
    assert meshctl("run", ARENA, "--events", ARENA / "events.jsonl", "--store", db).exit_code == 0
    listing = meshctl("dlq", "list", "--store", db)
    assert listing.exit_code == 0 and listing.output.endswith("3 dead letters\n")
    assert meshctl("runs", "list", "--store", db).output == "0 runs\n"


@pytest.mark.parametrize("name", ["dlq list", "dlq purge", "runs list", "runs show", "replay"])
def test_an_empty_redis_prefix_is_an_error_and_gets_no_key(meshctl, redis_url, name):
    import redis

    result = meshctl(*_args(READERS[name], redis_url))
    assert result.exit_code == 2 and f"no store at {redis_url}: no key of prefix" in result.output
    from engine.storage.redisstore import RedisStore

    store = RedisStore.from_url(redis_url)  # (opening it writes nothing)
    client = redis.Redis.from_url(redis_url.split("?")[0])
    assert [key for pattern in store.key_patterns() for key in client.scan_iter(match=pattern)] == []
    client.close()
    store.close()


def test_dlq_purge_leaves_a_deployment_a_deployment(meshctl, redis_url):
    """Purging once wrote an empty checkpoint into the deployment: after that, `dlq replay` and
    `runs redrive` took it for the store of a `meshctl run`."""
    store = open_store(redis_url)
    for n in (1, 2):
        store.put_dead_letter(DeadLetter.make("dlq", "retries-exhausted", "service:a/x",
                                              {"id": f"e{n}", "source": "s"}, "TimeoutError", "slow",
                                              attempts=3))
    commit_changes(store)
    assert is_deployment(store)
    dry = meshctl("dlq", "purge", "--store", redis_url, "--reason", "retries-exhausted", "--dry-run")
    assert dry.output.endswith("would purge 2, keep 0 (dry run: nothing was removed)\n")
    assert len(open_store(redis_url).dead_letters()) == 2
    result = meshctl("dlq", "purge", "--store", redis_url, "--reason", "retries-exhausted")
    assert result.output == "purged 2, kept 0\n"
    again = open_store(redis_url)
    assert is_deployment(again) and again.checkpoint() is None and again.dead_letters() == []
    store.close()
    again.close()
