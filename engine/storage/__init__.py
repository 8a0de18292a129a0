"""Where the runtime keeps what it must remember: ``open_store(url)``; and what a deployment
shares: ``open_broker(url)``.

``memory:`` (default) keeps everything in the process; ``sqlite:PATH`` keeps it in one
SQLite file, committed in transactions with the runtime's checkpoints; ``redis://HOST:PORT/DB``
keeps it on a Redis server, where several workers share it (``?prefix=NAME`` separates
meshes on one server) through its broker; ``redis+cluster://HOST:PORT`` on a Redis Cluster
(any of its nodes), the same way. All stores pass the same contract tests
(tests/storage/test_store_contract.py), all brokers theirs (tests/storage/test_broker_contract.py).

A backend is one line of :data:`BACKENDS`: the URL scheme, the module and class of its store
(and of its broker, if it has one). Its module is imported only when a URL of its scheme is
opened, so an optional client library (``redis``) is needed only by those who use it.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass

from ..core.errors import UsageError
from ..language.model import DEFAULT_RETENTION, Retention
from .base import NotAStoreURL, StorageError, Store, StoreFenced
from .broker import Broker
from .memory import MemoryStore
from .sqlite import SqliteStore

__all__ = ["BACKENDS", "Backend", "Broker", "MemoryStore", "SqliteStore", "StorageError", "Store",
           "StoreFenced", "broker_for", "broker_forms", "open_broker", "open_store"]


@dataclass(frozen=True, slots=True)
class Backend:
    """Where a backend lives: ``"module:Class"`` of its store and, if it has one, of its broker
    (made from a store: ``Broker(store)``). *form* is its URL as the help shows it; *missing*
    what to install when its module's imports fail."""

    store: str
    form: str
    broker: str | None = None
    missing: str | None = None


_REDIS = Backend("engine.storage.redisstore:RedisStore", "redis://HOST:PORT/DB",
                 broker="engine.storage.redisbroker:RedisBroker",
                 missing="a redis:// store needs the Redis client: pip install 'meshctl[redis]'")

#: URL scheme -> backend. A URL without a scheme (``memory``, ``""``) is the memory store's.
BACKENDS: dict[str, Backend] = {
    "memory": Backend("engine.storage.memory:MemoryStore", "memory:"),
    "sqlite": Backend("engine.storage.sqlite:SqliteStore", "sqlite:PATH"),
    "redis": _REDIS,
    "rediss": _REDIS,
    "unix": _REDIS,
    "redis+cluster": Backend("engine.storage.redisstore:RedisStore", "redis+cluster://HOST:PORT",
                             broker="engine.storage.redisbroker:RedisBroker", missing=_REDIS.missing),
}


def open_store(url: str | None, retention: Retention = DEFAULT_RETENTION, create: bool = True) -> Store:
    """A store from its URL: ``memory:`` (or None), ``sqlite:PATH`` or ``redis://HOST:PORT/DB``,
    keeping what runs leave behind for *retention* (the mesh's, where a mesh is known).

    With ``create=False`` (commands that read or change what a run left) a store that does not
    exist is a usage error naming it, and nothing is created: no SQLite file, no Redis key.
    """
    url = url or "memory:"
    backend = BACKENDS.get(url.partition(":")[0])
    if backend is None:
        raise _unknown(url)
    try:
        return _load(backend, backend.store).open(url, retention, create)
    except NotAStoreURL:
        raise _unknown(url) from None


def broker_for(store: Store) -> Broker | None:
    """The broker of a deployment whose store this is (None: the store's backend has none)."""
    kind = f"{type(store).__module__}:{type(store).__qualname__}"
    for backend in BACKENDS.values():
        if backend.broker is not None and backend.store == kind:
            return _load(backend, backend.broker)(store)
    return None


def open_broker(url: str | None, retention: Retention = DEFAULT_RETENTION) -> Broker | None:
    """The broker at *url* (None, and nothing left open, when its backend has none); its store
    keeps what runs leave behind for *retention* (the mesh's, for a worker)."""
    store = open_store(url, retention)
    broker = broker_for(store)
    if broker is None:
        store.close()
    return broker


def broker_forms() -> list[str]:
    """The URL forms of the backends that have a broker (for messages)."""
    return list(dict.fromkeys(b.form for b in BACKENDS.values() if b.broker is not None))


def _load(backend: Backend, where: str):
    module, _, name = where.partition(":")
    try:
        return getattr(importlib.import_module(module), name)
    except ImportError as exc:
        if backend.missing is None or exc.name == module:
            raise
        raise UsageError(backend.missing) from exc


def _unknown(url: str) -> UsageError:
    forms = list(dict.fromkeys(b.form for b in BACKENDS.values()))
    return UsageError(f"unknown store {url!r}; use {', '.join(forms[:-1])} or {forms[-1]}")
