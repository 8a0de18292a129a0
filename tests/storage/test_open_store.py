"""open_store(url): which backend a URL names, and how a bad URL or file is reported."""
from __future__ import annotations

import re
import sqlite3

import pytest

from engine.core.errors import UsageError
from engine.storage import MemoryStore, SqliteStore, StorageError, open_store
from engine.storage.sqlite import SCHEMA_VERSION


@pytest.mark.parametrize("url", [None, "", "memory", "memory:"])
def test_memory_urls(url):
    assert isinstance(open_store(url), MemoryStore)


@pytest.mark.parametrize("form", ["sqlite:{path}", "sqlite://{path}", "sqlite:///{path}"])
def test_sqlite_absolute_paths(tmp_path, form):
    path = tmp_path / "abs.db"
    store = open_store(form.format(path=path))
    try:
        assert isinstance(store, SqliteStore)
        assert store.path == str(path)
    finally:
        store.close()
    assert path.exists()


def test_sqlite_relative_path_is_relative_to_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub").mkdir()
    store = open_store("sqlite:sub/rel.db")
    store.close()
    assert (tmp_path / "sub" / "rel.db").exists()


def test_sqlite_home_path_is_expanded(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    store = open_store("sqlite:~/home.db")
    store.close()
    assert (tmp_path / "home.db").exists()


@pytest.mark.parametrize("url", ["sqlite:", "sqlite", "postgres:db", "memory://x", "mem:", "redis:host"])
def test_unknown_store_url_is_a_usage_error(url):
    with pytest.raises(UsageError) as info:
        open_store(url)
    assert info.value.exit_code == 2
    assert repr(url) in str(info.value) and "sqlite:PATH" in str(info.value)


@pytest.mark.parametrize("url", ["redis://127.0.0.1:1/0", "redis+cluster://127.0.0.1:1"])
def test_an_unreachable_redis_is_a_usage_error_naming_it(url):
    """A cluster's own errors (no node reachable) are not RedisErrors: they too are named."""
    with pytest.raises(UsageError, match=re.escape(f"cannot reach Redis at {url}")) as info:
        open_store(url)
    assert info.value.exit_code == 2


@pytest.mark.parametrize("prefix", ["", "a*b", "two words"])
def test_a_redis_prefix_must_be_a_plain_name(prefix):
    with pytest.raises(UsageError, match="prefix must be a non-empty name"):
        open_store(f"redis://127.0.0.1:1/0?prefix={prefix}")


def test_a_file_that_is_not_sqlite_is_a_storage_error_naming_it(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("this is not a database\n" * 100)
    with pytest.raises(StorageError, match="notes.txt") as info:
        open_store(f"sqlite:{path}")
    assert isinstance(info.value.__cause__, sqlite3.Error)
    assert path.read_text() == "this is not a database\n" * 100  # left untouched


def test_a_missing_directory_is_a_storage_error_naming_the_path(tmp_path):
    path = tmp_path / "no" / "such" / "dir" / "s.db"
    with pytest.raises(StorageError, match="s.db"):
        open_store(f"sqlite:{path}")


def test_a_store_written_by_a_newer_meshctl_is_refused(tmp_path):
    path = tmp_path / "newer.db"
    open_store(f"sqlite:{path}").close()
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 5}")
    db.close()
    with pytest.raises(StorageError, match=rf"newer\.db.*newer meshctl.*schema {SCHEMA_VERSION + 5}"):
        open_store(f"sqlite:{path}")


@pytest.mark.parametrize("version", [1, 2, SCHEMA_VERSION - 1])
def test_a_store_of_an_older_pre_release_layout_is_refused_naming_it(tmp_path, meshctl, version):
    """No migration: nothing was released before this layout. A clear error, never a traceback."""
    path = tmp_path / "older.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE journal (seq INTEGER PRIMARY KEY, journal TEXT, body TEXT)")
        db.execute(f"PRAGMA user_version = {version}")
    db.close()
    with pytest.raises(StorageError, match=rf"older\.db.*older, pre-release meshctl \(schema {version}\).*"
                                           r"start a new store"):
        open_store(f"sqlite:{path}")
    result = meshctl("dlq", "list", "--store", f"sqlite:{path}")
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert f"{path} was written by an older, pre-release meshctl" in result.output
