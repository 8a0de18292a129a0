"""Where the runtime keeps what it must remember: ``open_store(url)``.

``memory:`` (default) keeps everything in the process. A SQLite store arrives with the
durable runtime; every implementation passes the same contract tests.
"""
from __future__ import annotations

from ..errors import UsageError
from .base import Store, StorageError
from .memory import MemoryStore

__all__ = ["MemoryStore", "StorageError", "Store", "open_store"]


def open_store(url: str | None) -> Store:
    """A store from its URL: ``memory:`` (or None) for now."""
    if url in (None, "", "memory", "memory:"):
        return MemoryStore()
    raise UsageError(f"unknown store {url!r}; available: memory:")
