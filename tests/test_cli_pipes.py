"""A reader that goes away (`meshctl validate x | head -1`): meshctl exits 141 and says nothing.

Each command runs in a real process whose stdout is a pipe. Closing the reading end before
the process writes makes its first write fail every time, whatever the machine's speed; the
`| head -1` case (read a line, then close) may also find everything already written, so it
may exit 0, and is repeated. Either way nothing may reach stderr: no "internal error", no
"Exception ignored ... BrokenPipeError" from Python's flush at exit.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
ARENA = REPO / "workflows" / "arena"
MESHCTL = [sys.executable, "-c", "import sys; from cli import main; sys.exit(main())"]


@pytest.fixture(scope="module")
def dlq_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("pipes") / "dlq.jsonl"
    subprocess.run([*MESHCTL, "run", ARENA, "--events", ARENA / "events.jsonl", "--dlq-out", path],
                   cwd=REPO, check=True, capture_output=True, timeout=300)
    return path


COMMANDS = {
    "validate": ["validate", "workflows/arena", "workflows/orders", "workflows/arena-orchestrated"],
    "run": ["run", "workflows/arena", "--events", "workflows/arena/events.jsonl"],
    "run-json": ["run", "workflows/arena", "--events", "workflows/arena/events.jsonl", "--format", "json"],
    "test": ["test", "workflows"],
    "dlq-list": ["dlq", "list", "--dlq", "{dlq}"],
    "help": ["--help"],
    "run-help": ["run", "--help"],
    "render": ["render", "workflows/arena", "--format", "svg"],
}


def _start(args: list[str], dlq: Path, **streams) -> subprocess.Popen:
    return subprocess.Popen([*MESHCTL, *(a.format(dlq=dlq) for a in args)], cwd=REPO, **streams)


@pytest.mark.parametrize("name", COMMANDS)
def test_a_pipe_closed_before_any_output_exits_141_quietly(name, dlq_file):
    proc = _start(COMMANDS[name], dlq_file, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # nobody reads: the first write fails
    err = proc.stderr.read()
    assert proc.wait(timeout=300) == 141, err.decode()
    assert err == b""


@pytest.mark.parametrize("name", ["validate", "dlq-list", "test"])
def test_head_dash_1_exits_0_or_141_and_prints_nothing_more(name, dlq_file):
    for _ in range(3):
        proc = _start(COMMANDS[name], dlq_file, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        first = proc.stdout.readline()
        proc.stdout.close()
        err = proc.stderr.read()
        assert proc.wait(timeout=300) in (0, 141), err.decode()
        assert first and err == b""


def test_a_closed_stderr_exits_141_without_a_traceback(tmp_path):
    """An invalid mesh: its errors go to stderr, whose reader is gone."""
    (tmp_path / "mesh.yaml").write_text("apiVersion: meshctl/v1\nkind: Nope\n", encoding="utf-8")
    proc = subprocess.Popen([*MESHCTL, "run", tmp_path, "--events", ARENA / "events.jsonl"], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stderr.close()
    out = proc.stdout.read()
    assert proc.wait(timeout=300) == 141
    assert out == b""
