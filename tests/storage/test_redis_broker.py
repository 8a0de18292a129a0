"""Redis specifics of the broker: its errors are StorageErrors, translated at the boundary;
on a cluster, tasks for other partitions go through the outbox."""
from __future__ import annotations

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from engine.storage import StorageError, open_broker
from engine.storage.broker import APPLIED, INPUT, TASKS, Task
from engine.storage.redisbroker import RedisBroker
from engine.storage.redisstore import RedisStore


@pytest.fixture
def gone():
    """A broker on a port where no server listens (no retries: the failure is immediate)."""
    client = redis.Redis(port=1, socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0),
                         decode_responses=True)
    broker = RedisBroker(RedisStore(client, "gone"))
    yield broker
    broker.close()


def test_a_broker_whose_server_is_gone_fails_with_storage_errors_and_says_so(gone):
    assert gone.ping() is False
    for call in (lambda: gone.ingest([{"id": "e1"}]), lambda: gone.read(INPUT, "w1", 1), gone.commit_unit,
                 lambda: gone.ensure_lanes([INPUT]), lambda: gone.pending([INPUT]), gone.workers):
        with pytest.raises(StorageError, match="redis gone"):
            call()


def test_on_a_cluster_a_task_for_another_partition_is_moved_exactly_once(redis_cluster_url, monkeypatch):
    """A unit's task for another slot waits in its partition's outbox; a move that stopped
    after adding the task (before removing it from the outbox) does not add it again."""
    broker = open_broker(redis_cluster_url)
    try:
        broker.configure(4)
        broker.ensure_lanes([TASKS])
        broker.begin_unit(0)
        with monkeypatch.context() as patch:
            patch.setattr(broker, "forward", lambda partition: 0)  # the worker dies right after its commit
            assert broker.commit_unit(tasks=[Task(TASKS, "there", {"n": 1}, partition=3)]) == APPLIED
        assert broker.lane_backlog([TASKS])[TASKS] == 0  # in the outbox, not yet in partition 3
        with monkeypatch.context() as patch:
            patch.setattr(broker._r, "xdel", lambda *args: 0)  # the move stops before the outbox is trimmed
            assert broker.forward(0) == 1
        assert broker.forward(0) == 0  # moved before: skipped, and the outbox emptied
        assert broker.forward(0) == 0
        assert [e.fields["k"] for e in broker.read(TASKS, "w", 10, partition=3)] == ["there"]
    finally:
        broker.close()
