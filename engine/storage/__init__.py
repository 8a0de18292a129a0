"""Where the runtime keeps what it must remember: ``open_store(url)``.

``memory:`` (default) keeps everything in the process; ``sqlite:PATH`` keeps it in one
SQLite file, committed in transactions with the runtime's checkpoints. Both pass the same
contract tests (tests/storage).
"""
from __future__ import annotations

from ..errors import UsageError
from .base import Store, StorageError
from .memory import MemoryStore
from .sqlite import SqliteStore, sqlite_path

__all__ = ["MemoryStore", "SqliteStore", "StorageError", "Store", "open_store"]


def open_store(url: str | None) -> Store:
    """A store from its URL: ``memory:`` (or None), or ``sqlite:PATH``."""
    if url in (None, "", "memory", "memory:"):
        return MemoryStore()
    if url.startswith("sqlite:") and sqlite_path(url):
        return SqliteStore(sqlite_path(url))
    raise UsageError(f"unknown store {url!r}; use memory: or sqlite:PATH")
