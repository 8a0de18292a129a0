"""Fixtures of the deployment tests: a `meshctl serve` process, and what a store's input queue holds.

``redis_url`` (a Redis store with a prefix of its own, cleaned up afterwards; skipped without
a server, failed under CI=true) comes from tests/conftest.py.
"""
from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

REPO = Path(__file__).resolve().parent.parent.parent


@pytest.fixture(autouse=True)
def no_token_from_the_environment(monkeypatch):
    """A MESHCTL_TOKEN of the shell running the tests must not change what they see."""
    monkeypatch.delenv("MESHCTL_TOKEN", raising=False)


class Served:
    """A running `meshctl serve`: its URL, and :meth:`stop` (SIGTERM) -> (exit code, stderr)."""

    def __init__(self, proc: subprocess.Popen, url: str, lines: list[str]):
        self.proc, self.url, self.lines = proc, url, lines

    def stop(self) -> tuple[int, str]:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        _, rest = self.proc.communicate(timeout=20)
        return self.proc.returncode, "".join(self.lines) + rest


@pytest.fixture
def serve():
    """``serve(*args, env={...})`` starts `meshctl serve ARGS` and waits for its "listening on" line."""
    started: list[Served] = []

    def _serve(*args, env: dict | None = None) -> Served:
        environment = {k: v for k, v in os.environ.items() if k != "MESHCTL_TOKEN"} | (env or {})
        command = [
            sys.executable,
            "-c",
            "import sys; from cli import main; sys.exit(main())",
            "serve",
            *map(str, args),
        ]
        proc = subprocess.Popen(
            command, cwd=REPO, env=environment, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        lines = []
        for line in proc.stderr:  # ends when the process exits without listening
            lines.append(line)
            if "listening on " in line:
                served = Served(proc, line.split("listening on ", 1)[1].strip(), lines)
                started.append(served)
                return served
        proc.wait(timeout=20)
        raise AssertionError(f"meshctl serve exited {proc.returncode} without listening:\n{''.join(lines)}")

    yield _serve
    for served in started:
        with contextlib.suppress(Exception):
            served.stop()


@pytest.fixture
def queued():
    """``queued(store_url)`` -> the events in a Redis store's input queues (``{PREFIX:p}:input``
    of every partition), oldest first (events queued in the same millisecond to different
    partitions have no order between them: compare those as sets)."""
    import redis

    def _queued(store_url: str) -> list[dict]:
        parts = urlsplit(store_url)
        prefix = parse_qs(parts.query)["prefix"][0]
        client = redis.Redis.from_url(parts._replace(query="").geturl(), decode_responses=True)
        try:
            entries = [(tuple(map(int, entry_id.split("-"))), json.loads(fields["e"]))
                       for stream in client.scan_iter(match=f"{{{prefix}:*}}:input")
                       for entry_id, fields in client.xrange(stream)]
            return [event for _, event in sorted(entries, key=lambda pair: pair[0])]
        finally:
            client.close()

    return _queued

