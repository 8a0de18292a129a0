"""Where the runtime keeps what it must remember: ``open_store(url)``.

``memory:`` (default) keeps everything in the process; ``sqlite:PATH`` keeps it in one
SQLite file, committed in transactions with the runtime's checkpoints; ``redis://HOST:PORT/DB``
keeps it on a Redis server, where several workers share it (``?prefix=NAME`` separates
meshes on one server). All pass the same contract tests (tests/storage).
"""
from __future__ import annotations

import os

from ..core.errors import UsageError
from ..language.model import DEFAULT_RETENTION, Retention
from .base import StorageError, Store, StoreFenced
from .memory import MemoryStore
from .sqlite import SqliteStore, sqlite_path

__all__ = ["MemoryStore", "SqliteStore", "StorageError", "Store", "StoreFenced", "open_store"]


def open_store(url: str | None, retention: Retention = DEFAULT_RETENTION, create: bool = True) -> Store:
    """A store from its URL: ``memory:`` (or None), ``sqlite:PATH`` or ``redis://HOST:PORT/DB``,
    keeping what runs leave behind for *retention* (the mesh's, where a mesh is known).

    With ``create=False`` (commands that read or change what a run left) a store that does not
    exist is a usage error naming it, and nothing is created: no SQLite file, no Redis key.
    """
    if url in (None, "", "memory", "memory:"):
        return MemoryStore.for_mesh(retention)
    if url.startswith("sqlite:") and sqlite_path(url):
        path = sqlite_path(url)
        if not create and not _holds_sqlite(path):
            raise UsageError(f"no store at {path}: give the --store sqlite:PATH of an earlier `meshctl run --store`")
        return SqliteStore(path, retention, create)
    if url.startswith(("redis://", "rediss://", "unix://")):
        from .redisstore import RedisStore  # the client is an optional extra

        store = RedisStore.from_url(url)
        if not create and not store.holds_anything():
            store.close()
            raise UsageError(f"no store at {url}: no key of prefix {store.p!r} on that server "
                             "(give the --store of a worker deployment or an earlier `meshctl run --store`)")
        return store
    raise UsageError(f"unknown store {url!r}; use memory:, sqlite:PATH or redis://HOST:PORT/DB")


def _holds_sqlite(path: str) -> bool:
    """A file that may be a store: SQLite would turn a missing or empty one into a new store."""
    try:
        return os.path.getsize(path) > 0
    except OSError:
        return False
