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


@pytest.fixture
def redis_url():
    """A redis:// store URL with a prefix of its own; its keys are deleted afterwards.

    Without a reachable server the test is skipped with the reason, except under CI=true,
    where broker tests must run: there it fails.
    """
    problem = _redis_problem()
    if problem is not None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true and broker tests cannot run: {problem}")
        pytest.skip(problem)
    import redis

    prefix = f"test-{uuid.uuid4().hex[:12]}"
    yield f"{REDIS_SERVER}?prefix={prefix}"
    client = redis.Redis.from_url(REDIS_SERVER)
    keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
    for start in range(0, len(keys), 500):
        client.delete(*keys[start:start + 500])
    client.close()

