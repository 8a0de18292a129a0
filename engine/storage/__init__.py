"""Where the runtime keeps what it must remember: ``open_store(url)``.

``memory:`` (default) keeps everything in the process; ``sqlite:PATH`` keeps it in one
SQLite file, committed in transactions with the runtime's checkpoints; ``redis://HOST:PORT/DB``
keeps it on a Redis server, where several workers share it (``?prefix=NAME`` separates
meshes on one server). All pass the same contract tests (tests/storage).
"""
from __future__ import annotations

from ..errors import UsageError
from ..model import DEFAULT_RETENTION, Retention
from .base import Store, StorageError, StoreFenced
from .memory import MemoryStore
from .sqlite import SqliteStore, sqlite_path

__all__ = ["MemoryStore", "SqliteStore", "StorageError", "Store", "StoreFenced", "open_store"]


def open_store(url: str | None, retention: Retention = DEFAULT_RETENTION) -> Store:
    """A store from its URL: ``memory:`` (or None), ``sqlite:PATH`` or ``redis://HOST:PORT/DB``,
    keeping what runs leave behind for *retention* (the mesh's, where a mesh is known)."""
    if url in (None, "", "memory", "memory:"):
        return MemoryStore.for_mesh(retention)
    if url.startswith("sqlite:") and sqlite_path(url):
        return SqliteStore(sqlite_path(url), retention)
    if url.startswith(("redis://", "rediss://", "unix://")):
        from .redisstore import RedisStore  # the client is an optional extra

        return RedisStore.from_url(url)
    raise UsageError(f"unknown store {url!r}; use memory:, sqlite:PATH or redis://HOST:PORT/DB")
