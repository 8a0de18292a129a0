"""T42: what sits in a mesh directory, and the names it has, cannot hang or forge output.

Only regular files are read: a FIFO (which nobody writes to: reading it would wait for
ever) and a Unix socket named ``*.yaml`` are each one located ``not-a-file`` error, for
`validate` and for `meshctl test`. A file name, an event type or an event id holding a
newline, a carriage return, an ANSI escape or a Unicode line separator or bidi override is
printed escaped (``\\n``, ``\\x1b``, ``\\u2028``): every diagnostic and listing keeps one line
per item, whatever the names.
"""
from __future__ import annotations

import json
import os
import socket

import pytest
from click.testing import CliRunner

from cli import main

TYPE = "apiVersion: meshctl/v1\nkind: EventType\nmetadata: {name: ping}\nspec: {external: true}\n"
SERVICE = (
    TYPE + "---\napiVersion: meshctl/v1\nkind: Service\nmetadata: {name: s}\nspec:\n  subscriptions:\n"
    "    - {on: ping, do: {log: hi}}\n"
)
HOSTILE = ["a\nb.yaml:1:1: error[forged]: c", "a\rb", "a\x1b[2Kb", "a\u2028b", "a\u202eb", "a\tb"]


def invoke(*args) -> tuple[int, str]:
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    return result.exit_code, result.output


def _fifo(path):
    os.mkfifo(path)


def _socket(path):
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(path))
    return sock


@pytest.mark.parametrize("make", [_fifo, _socket], ids=["fifo", "socket"])
@pytest.mark.parametrize("command", ["validate", "test"])
def test_only_regular_files_are_read(tmp_path, make, command):
    (tmp_path / "mesh.yaml").write_text(SERVICE)
    name = "odd.test.yaml" if command == "test" else "odd.yaml"
    keep = make(tmp_path / name)
    try:
        code, output = invoke(command, tmp_path)
    finally:
        if keep is not None:
            keep.close()
    assert code == 1
    assert f"{tmp_path / name}: error[not-a-file]: not a regular file (a FIFO, socket or device)" in output


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_file_names_print_on_one_line(tmp_path, name):
    (tmp_path / f"{name}.yaml").write_text(TYPE.replace("spec: {external: true}\n", ""))
    code, output = invoke("validate", "--format", "short", tmp_path)
    assert code == 0
    lines = output.splitlines()
    assert len(lines) == 3, lines  # the warning, its hint, the summary
    assert all(line.isprintable() for line in lines)
    assert lines[0].endswith(
        ": warning[unused-event-type]: event type 'ping' is neither produced nor consumed"
    )
    code, output = invoke("validate", tmp_path)  # with the source line and its caret
    lines = output.splitlines()
    assert len(lines) == 6, lines
    assert all(line.isprintable() for line in lines)
    assert lines[2] == "3 | metadata: {name: ping}"


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_event_names_print_on_one_line(tmp_path, name):
    (tmp_path / "mesh.yaml").write_text(SERVICE)
    events, dlq = tmp_path / "events.jsonl", tmp_path / "dlq.jsonl"
    events.write_text(json.dumps({"type": name, "id": name, "source": "t42", "data": {}}) + "\n")
    code, _ = invoke("run", tmp_path, "--events", events, "--dlq-out", dlq)
    assert code == 0
    code, output = invoke("dlq", "list", "--dlq", dlq)
    assert code == 0
    lines = output.splitlines()
    assert len(lines) == 2 and lines[1] == "1 dead letter"
    assert lines[0].isprintable() and "UnknownEventType" in lines[0]
