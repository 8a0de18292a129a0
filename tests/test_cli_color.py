"""Colour (`--color`, NO_COLOR, FORCE_COLOR) and the source snippets under `validate` diagnostics."""
from __future__ import annotations

import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from ping_mesh import PING_MESH as PASSING

from cli import main

REPO = Path(__file__).resolve().parent.parent

ANSI = re.compile(r"\x1b\[[0-9;]*m")
BAD = """\
apiVersion: meshctl/v1
kind: EventType
metadata: {name: ping}
spec: {externel: true}
"""


def invoke(*args, env=None):
    return CliRunner().invoke(main, [str(a) for a in args], env=env, catch_exceptions=False)


@pytest.fixture
def bad(tmp_path):
    (tmp_path / "mesh.yaml").write_text(BAD)
    return tmp_path


CLEAN = {"NO_COLOR": None, "FORCE_COLOR": None, "CLICOLOR_FORCE": None}


@pytest.mark.parametrize(("args", "env", "coloured"), [
    (["--color", "always"], {}, True),
    (["--color", "always"], {"NO_COLOR": "1"}, True),       # the flag wins over the environment
    (["--color", "never"], {"FORCE_COLOR": "1"}, False),
    ([], {}, False),                                        # auto, and CliRunner is no terminal
    (["--color", "auto"], {"FORCE_COLOR": "1"}, True),
    ([], {"CLICOLOR_FORCE": "1"}, True),
    ([], {"FORCE_COLOR": "0"}, False),
    ([], {"FORCE_COLOR": "1", "NO_COLOR": "1"}, False),     # in auto, NO_COLOR wins
    ([], {"FORCE_COLOR": "1", "NO_COLOR": ""}, True),       # an empty NO_COLOR is not set
])
def test_color_modes(bad, args, env, coloured):
    result = invoke(*args, "validate", bad, env={**CLEAN, **env})
    assert result.exit_code == 1
    assert bool(ANSI.search(result.output)) is coloured
    plain = invoke("validate", bad, env=CLEAN).output
    assert ANSI.sub("", result.output) == plain  # colour adds codes, never text


def test_colours_by_role(bad):
    output = invoke("--color", "always", "validate", bad).output
    assert "\x1b[31m\x1b[1merror[unknown-key]:\x1b[0m unknown key 'externel' in spec" in output  # red, bold
    assert "\x1b[32m\x1b[1mhint:\x1b[0m" in output
    assert "\x1b[31m\x1b[1m^~~~~~~~\x1b[0m" in output  # the caret has its severity's colour
    assert ": \x1b[31m\x1b[1minvalid\x1b[0m (1 error, 0 warnings)" in output


def test_stderr_is_coloured_too(bad, tmp_path):
    events = tmp_path / "events.jsonl"
    events.write_text('{"type": "ping"}\n')
    result = invoke("--color", "always", "run", bad, "--events", events)
    assert result.exit_code == 1
    assert "\x1b[31m\x1b[1merror[unknown-key]:" in result.stderr
    assert not ANSI.search(invoke("run", bad, "--events", events).stderr)


def test_test_report_colours_pass_fail_and_the_difference(tmp_path):
    (tmp_path / "mesh.yaml").write_text(PASSING)
    (tmp_path / "a.test.yaml").write_text(
        "tests:\n  - name: ok\n    given: [{type: ping}]\n    expect: {counts: {events_in: 1}}\n"
        "  - name: wrong\n    given: [{type: ping}]\n    expect: {counts: {events_in: 2}}\n")
    result = invoke("--color", "always", "test", tmp_path)
    assert result.exit_code == 1
    assert "\x1b[32m\x1b[1mPASS\x1b[0m ok\n" in result.output
    assert "\x1b[31m\x1b[1mFAIL\x1b[0m wrong\n" in result.output
    assert result.output.endswith("\x1b[32m\x1b[1m1 passed\x1b[0m, \x1b[31m\x1b[1m1 failed\x1b[0m\n")
    assert ANSI.sub("", result.output).endswith("1 passed, 1 failed\n")
    assert invoke("test", tmp_path).output.endswith(
        "\nFAIL wrong\n"
        f"  {tmp_path / 'a.test.yaml'}:7:34: expect.counts.events_in: "
        "expected events_in = 2, got 1\n1 passed, 1 failed\n"
    )


def _on_a_terminal(args: list[str], env: dict[str, str]) -> str:
    """Run meshctl with stdout and stderr on a pseudo-terminal; what it printed."""
    leader, follower = pty.openpty()
    environment = {k: v for k, v in os.environ.items() if k not in CLEAN} | env
    process = subprocess.Popen([sys.executable, "-c", "from cli import main; main()", *args], cwd=REPO,
                               stdin=subprocess.DEVNULL, stdout=follower, stderr=follower, env=environment)
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the terminal's other side is closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    assert process.wait(timeout=60) == 1
    return b"".join(chunks).decode()


@pytest.mark.slow
def test_auto_colours_a_terminal_unless_no_color(bad):
    assert ANSI.search(_on_a_terminal(["validate", str(bad)], {}))
    assert not ANSI.search(_on_a_terminal(["validate", str(bad)], {"NO_COLOR": "1"}))
    assert not ANSI.search(_on_a_terminal(["--color", "never", "validate", str(bad)], {}))


# --- snippets ----------------------------------------------------------------------------------

def test_snippet_under_the_first_line(bad):
    result = invoke("validate", bad)
    assert result.output == (
        f"{bad / 'mesh.yaml'}:4:8: error[unknown-key]: unknown key 'externel' in spec\n"
        "  |\n"
        "4 | spec: {externel: true}\n"
        "  |        ^~~~~~~~\n"
        "  hint: did you mean 'external'?\n"
        f"{bad}: invalid (1 error, 0 warnings)\n")


def test_format_short_has_no_snippets(bad):
    result = invoke("validate", "--format", "short", bad)
    assert result.output == (f"{bad / 'mesh.yaml'}:4:8: error[unknown-key]: unknown key 'externel' in spec\n"
                             "  hint: did you mean 'external'?\n"
                             f"{bad}: invalid (1 error, 0 warnings)\n")


@pytest.mark.parametrize(("line", "width"), [
    ("      do: {log: \"got {{ event.id }\"}", 19),  # a quoted scalar, quotes included
    ("      do: {log: 'got {{ event.id }'}", 19),
    ("      do: {log: \"\u202egot {{ event.id }\"}", 25),  # shown escaped: \u202e is 6 columns
    ("      do: {log: \"日本 {{ event.id }\"}", 20),  # wide characters take 2 columns
])
def test_caret_spans_the_token_and_control_characters_are_escaped(tmp_path, line, width):
    (tmp_path / "mesh.yaml").write_text(PASSING.replace('      do: {log: "got {{ event.id }}"}', line))
    lines = invoke("validate", tmp_path).output.splitlines()
    assert lines[0].endswith(": error[template-syntax]: template error: unexpected '}'")
    shown = line.replace("\u202e", "\\u202e")
    assert lines[1:4] == ["   |", f"12 | {shown}", "   | " + " " * 16 + "^" + "~" * (width - 1)]
    assert all(text.isprintable() for text in lines)


def test_snippet_keyed_on_a_block_key_and_a_long_line(tmp_path):
    long_value = "x" * 300
    (tmp_path / "mesh.yaml").write_text(
        BAD.replace("spec: {externel: true}", f"spec:\n  externel: {long_value}")
    )
    lines = invoke("validate", tmp_path).output.splitlines()
    assert lines[1:4] == ["  |", "5 |   externel: " + "x" * 108 + "...", "  |   ^~~~~~~~"]
    assert all(len(text) < 140 for text in lines)


def test_no_snippet_without_a_line(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert invoke("validate", empty).output == (
        f"{empty}: error[empty-mesh]: no .yaml or .yml files here\n"
        "  hint: a mesh is a YAML file or a directory of YAML files\n"
        f"{empty}: invalid (1 error, 0 warnings)\n"
    )


def test_quiet_keeps_snippets_of_errors(bad):
    lines = invoke("validate", "-q", bad).output.splitlines()
    assert lines[1:4] == ["  |", "4 | spec: {externel: true}", "  |        ^~~~~~~~"]


def test_notes_follow_the_snippet(tmp_path):
    (tmp_path / "mesh.yaml").write_text(BAD.replace("spec: {externel: true}", "spec: {external: true}\n"
                                                    "metadata: {name: pong}"))
    lines = invoke("validate", tmp_path).output.splitlines()
    assert lines[0].endswith(":5:1: error[duplicate-key]: duplicate key 'metadata' (first defined at line 3)")
    assert lines[1:4] == ["  |", "5 | metadata: {name: pong}", "  | ^~~~~~~~"]
    assert lines[4].endswith(":3:1: note: first defined here")
