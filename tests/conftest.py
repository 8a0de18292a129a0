"""Shared fixtures: a click runner and a helper that writes inline YAML meshes to disk."""
from __future__ import annotations

import json
import os
import textwrap
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import settings

from cli import main

REPO = Path(__file__).resolve().parent.parent

# Hypothesis fails an example that runs longer than its `deadline` (200 ms by default): a
# wall-clock bound, which a busy machine breaks. No property test here is bounded by time.
settings.register_profile("meshctl", deadline=None)
settings.load_profile("meshctl")


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def meshctl(runner):
    """Run meshctl with arguments; returns click's Result (exit_code, output)."""
    def run(*args: str):
        return runner.invoke(main, [str(a) for a in args], catch_exceptions=False)
    return run


@pytest.fixture
def write(tmp_path):
    """Write dedented YAML text to a file in a temporary mesh directory and return its path."""
    def _write(text: str, name: str = "mesh.yaml") -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return path
    return _write


@pytest.fixture
def diagnostics(meshctl):
    """Validate a path and return [(line, col, severity, code)] from the JSON report."""
    def _diagnostics(path) -> list[tuple[int, int, str, str]]:
        result = meshctl("validate", "--format", "json", path)
        report = json.loads(result.output)
        return [
            (d["line"], d["col"], d["severity"], d["code"])
            for m in report["meshes"]
            for d in m["diagnostics"]
        ]

    return _diagnostics


@pytest.fixture
def unjudged():
    """The JSON summary of an uninterrupted run without its verdict on the mesh's invariants, to
    compare with a resumed run's, which has none (it lacks the history before its restart:
    docs/invariants.md). The verdict must be that none broke."""
    def _unjudged(stdout: str) -> dict:
        summary = json.loads(stdout)
        assert summary.pop("invariants", {"violated": 0})["violated"] == 0
        return summary
    return _unjudged


# --- the Redis server of broker tests ------------------------------------------------------
REDIS_SERVER = os.environ.get("MESHCTL_TEST_REDIS", "redis://127.0.0.1:6379/0")


def _redis_problem() -> str | None:
    """Why broker tests cannot run here (None: they can)."""
    try:
        import redis
    except ImportError:
        return "the redis client is not installed (pip install -e '.[test]')"
    try:
        redis.Redis.from_url(REDIS_SERVER, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        return f"no Redis server at {REDIS_SERVER}: {exc}"
    return None


def _require(problem: str | None, tests: str) -> None:
    """Skip the test for *problem* (None: it can run), or fail it under CI=true, where a
    server the project's own files start must be there."""
    if problem is not None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true and {tests} cannot run: {problem}")
        pytest.skip(problem)


@pytest.fixture
def redis_url():
    """A redis:// store URL with a prefix of its own; its keys are deleted afterwards.

    Without a reachable server the test is skipped with the reason, except under CI=true,
    where broker tests must run: there it fails.
    """
    _require(_redis_problem(), "broker tests")
    import redis

    prefix = f"test-{uuid.uuid4().hex[:12]}"
    yield f"{REDIS_SERVER}?prefix={prefix}"
    client = redis.Redis.from_url(REDIS_SERVER)
    keys = [key for pattern in redis_key_patterns(prefix)
            for key in client.scan_iter(match=pattern, count=1000)]
    for start in range(0, len(keys), 500):
        client.delete(*keys[start:start + 500])
    client.close()


REDIS_CLUSTER = os.environ.get("MESHCTL_TEST_REDIS_CLUSTER", "redis+cluster://127.0.0.1:7000")


def _redis_cluster_problem() -> str | None:
    """Why tests on a Redis Cluster cannot run here (None: they can)."""
    try:
        from redis.cluster import RedisCluster
    except ImportError:
        return "the redis client is not installed (pip install -e '.[test]')"
    try:
        client = RedisCluster.from_url(REDIS_CLUSTER.replace("redis+cluster://", "redis://"),
                                       socket_connect_timeout=2)
        state = client.cluster_info().get("cluster_state")
        client.close()
    except Exception as exc:  # no node, not a cluster node: either way no cluster to test on
        return f"no Redis Cluster at {REDIS_CLUSTER} ({exc}); start one with .ci/start-redis-cluster"
    return None if state == "ok" else f"the Redis Cluster at {REDIS_CLUSTER} is not ready ({state})"


@pytest.fixture
def redis_cluster_url():
    """A redis+cluster:// store URL with a prefix of its own on a local Redis Cluster; its keys
    are deleted afterwards. Skipped (failed under CI=true) without a cluster, like redis_url."""
    _require(_redis_cluster_problem(), "cluster tests")
    from redis.cluster import RedisCluster

    prefix = f"test-{uuid.uuid4().hex[:12]}"
    yield f"{REDIS_CLUSTER}?prefix={prefix}"
    client = RedisCluster.from_url(REDIS_CLUSTER.replace("redis+cluster://", "redis://"))
    for node in client.get_primaries():
        connection = client.get_redis_connection(node)
        for pattern in redis_key_patterns(prefix):
            for key in connection.scan_iter(match=pattern, count=1000):
                client.delete(key)
    client.close()


def redis_key_patterns(prefix: str) -> list[str]:
    """SCAN patterns of every key a store (and its broker) of *prefix* writes: each key carries
    a hash tag, ``{prefix}`` or ``{prefix:partition}`` (engine/storage/redisstore.py); tests
    of the older layout write untagged ``prefix:...`` keys."""
    return [f"{{{prefix}}}:*", f"{{{prefix}:*", f"{prefix}:*"]  # (and an older meshctl's, untagged)

