"""The ``store`` fixture: every contract test runs once per backend (memory, sqlite, redis);
the ``deployment`` fixture: every broker contract test once per backend with a broker (redis).

``reopen(store)`` closes a store and opens it again from the same place, the way a restarted
process would. Only durable backends can do that; for the memory store the test is skipped,
with the reason, because nothing of a memory store outlives it.

Which backends they run on is in storage_backends.py; how each is opened is here.
"""
from __future__ import annotations

import pytest
from storage_backends import BROKERS, STORES

from engine.storage import MemoryStore, open_broker, open_store

#: The journals the runtime writes; the memory store keeps only the journals it is asked to.
JOURNALS = ("input", "emitted", "trace")


class Backend:
    """Opens (and reopens) one kind of store in a test's temporary directory."""

    def __init__(self, name: str, tmp_path):
        self.name = name
        self.url = {"memory": "memory:", "sqlite": f"sqlite:{tmp_path / 'store.db'}"}.get(name, name)
        self.durable = name != "memory"
        self.opened: list = []

    def open(self):
        store = MemoryStore(keep=JOURNALS) if self.name == "memory" else open_store(self.url)
        self.opened.append(store)
        return store

    def reopen(self, store):
        if not self.durable:
            pytest.skip("memory store is not durable: nothing survives closing it, "
                        "so there is nothing to reopen")
        store.close()
        return self.open()

    def close_all(self) -> None:
        for store in self.opened:
            store.close()


SERVERS = {"redis": "redis_url", "redis+cluster": "redis_cluster_url"}  # the fixture giving each one's URL


@pytest.fixture(params=STORES)
def backend(request, tmp_path):
    server = SERVERS.get(request.param)
    name = request.param if server is None else request.getfixturevalue(server)
    backend = Backend(name, tmp_path)
    yield backend
    backend.close_all()


@pytest.fixture
def store(backend):
    """A new, empty store of each backend."""
    return backend.open()


@pytest.fixture
def reopen(backend):
    """``reopen(store)`` -> the same store as a restarted process sees it (durable backends only)."""
    return backend.reopen


class Deployment:
    """Opens brokers on one deployment: each :meth:`open` is another process's view of it."""

    def __init__(self, url: str):
        self.url = url
        self.opened: list = []

    def open(self):
        broker = open_broker(self.url)
        self.opened.append(broker)
        return broker

    def close_all(self) -> None:
        for broker in self.opened:
            broker.close()


@pytest.fixture(params=BROKERS)
def deployment(request):
    """A new, empty deployment of each backend that has a broker."""
    server = SERVERS.get(request.param)
    deployment = Deployment(request.getfixturevalue(server) if server else request.param)
    yield deployment
    deployment.close_all()


@pytest.fixture
def broker(deployment):
    """A broker on a new, empty deployment of one partition (the lanes' contract; partitions
    have tests of their own)."""
    broker = deployment.open()
    broker.configure(1)
    return broker
