"""Redis specifics of the broker: its errors are StorageErrors, translated at the boundary."""
from __future__ import annotations

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from engine.storage import StorageError
from engine.storage.broker import INPUT
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
