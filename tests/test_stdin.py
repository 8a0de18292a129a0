"""`-` reads standard input: a mesh (`validate -`, `render -`, `run -`), events (`run --events -`,
`publish PATH -`) and a trace (`render --trace -`)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli import main
from engine.commands.scaffold import FILES

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
MESH = "---\n".join(FILES[name] for name in ("mesh.yaml", "event-types.yaml", "services.yaml")).replace(
    "@NAME@", "s"
)
EVENTS = FILES["events.jsonl"].replace("@NAME@", "s")


def invoke(*args, input=None):
    return CliRunner().invoke(main, [str(a) for a in args], input=input, catch_exceptions=False)


def meshctl_process(*args, input: str | None = None, shell_suffix: str = "") -> subprocess.CompletedProcess:
    """meshctl in its own process, so that `-` is the real standard input (fd 0)."""
    command = [sys.executable, "-c", "from cli import main; main()", *map(str, args)]
    if shell_suffix:
        quoted = " ".join(f"'{word}'" for word in command)
        return subprocess.run(["bash", "-c", f"{quoted} {shell_suffix}"], cwd=REPO, capture_output=True,
                              text=True, timeout=120)
    return subprocess.run(command, cwd=REPO, input=input, capture_output=True, text=True, timeout=120)


@pytest.fixture
def mesh(tmp_path):
    folder = tmp_path / "mesh"
    folder.mkdir()
    (folder / "mesh.yaml").write_text(MESH)
    return folder


def test_validate_stdin_is_located_as_stdin_with_snippets():
    result = invoke("validate", "-", input=MESH.replace("name: greeter", "name: Greeter"))
    assert result.exit_code == 1
    line = MESH.splitlines().index("  name: greeter") + 1
    assert result.output.splitlines()[:4] == [
        f"<stdin>:{line}:9: error[bad-value]: metadata.name: \"Greeter\" is not allowed here",
        "   |", f"{line} |   name: Greeter", "   |         ^~~~~~~"]
    assert result.output.endswith("<stdin>: invalid (1 error, 0 warnings)\n")


def test_validate_stdin_valid_json_and_sarif():
    assert invoke("validate", "-", input=MESH).output == "<stdin>: valid (0 errors, 0 warnings)\n"
    report = json.loads(invoke("validate", "--format", "json", "-", input=MESH + "---\nkind: Nope\n").output)
    assert report["meshes"][0]["path"] == "<stdin>"
    assert {d["file"] for d in report["meshes"][0]["diagnostics"]} == {"<stdin>"}
    log = json.loads(invoke("validate", "--format", "sarif", "-", input="a: [\n").output)
    assert log["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"] == {
        "uri": "%3Cstdin%3E"
    }


def test_validate_stdin_with_other_paths(mesh):
    result = invoke("validate", mesh, "-", input="kind: [\n")
    assert result.exit_code == 1
    assert f"{mesh}: valid (0 errors, 0 warnings)\n" in result.output
    assert "<stdin>: invalid (1 error, 0 warnings)\n" in result.output


@pytest.mark.parametrize(("data", "expect"), [
    (b"kind: \xff\n", "<stdin>:1:7: error[not-text]: file is not UTF-8 text (byte 0xff)"),
    (b"# " + b"x" * (8 * 1024 * 1024),
     "<stdin>:1:1: error[file-too-large]: file is larger than the 8 MiB limit"),
    (b"", "<stdin>:1:1: error[empty-file]: file holds no YAML document"),
])
def test_validate_stdin_bad_bytes(data, expect):
    result = CliRunner().invoke(main, ["validate", "--format", "short", "-"], input=data)
    assert result.exit_code == 1
    assert result.output.startswith(expect)


def test_stdin_is_read_once(mesh):
    result = invoke("validate", "-", "-", input=MESH)
    assert result.exit_code == 2
    assert "standard input (-) can be read only once" in result.output
    result = invoke("run", "-", "--events", "-", input=MESH)
    assert result.exit_code == 2
    assert "give the mesh or the events as a file" in result.output


def test_render_and_run_a_mesh_from_stdin(mesh):
    drawn = invoke("render", "-", "--format", "mermaid", input=MESH)
    assert drawn.exit_code == 0 and "greeter" in drawn.output
    (mesh / "events.jsonl").write_text(EVENTS)
    ran = invoke("run", "-", "--events", mesh / "events.jsonl", "--format", "json", input=MESH)
    assert ran.exit_code == 0
    assert json.loads(ran.output)["emitted"] == 3
    bad = invoke("run", "-", "--events", mesh / "events.jsonl", input="kind: Nope\n")
    assert bad.exit_code == 1
    assert bad.stderr.startswith("<stdin>:1:")


def test_run_events_from_stdin(mesh, tmp_path):
    dlq = tmp_path / "dlq.jsonl"
    done = meshctl_process("run", mesh, "--events", "-", "--format", "json", "--dlq-out", dlq,
                           input=EVENTS + "not json\n")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert (summary["events_in"], summary["emitted"], summary["dead_lettered"]) == (4, 3, 1)
    (record,) = [json.loads(line) for line in dlq.read_text().splitlines()]
    assert record["event"]["location"] == "/dev/stdin:4:1"


def test_run_events_from_a_closed_stdin_is_a_usage_error(mesh):
    done = meshctl_process("run", mesh, "--events", "-", shell_suffix="<&-")
    assert done.returncode == 2
    assert "- reads standard input, which is closed" in done.stderr


def test_publish_checks_events_from_stdin_before_sending(mesh):
    bad = EVENTS + '{"type": "greeting.sent", "data": {"name": "x", "text": "y"}}\n'
    done = meshctl_process("publish", mesh, "-", "--url", "http://127.0.0.1:9", input=bad)
    assert done.returncode == 1
    assert done.stderr.startswith("/dev/stdin:4:1: error[rejected-event]: ")


def test_render_a_trace_from_stdin(mesh, tmp_path):
    (mesh / "events.jsonl").write_text(EVENTS)
    trace = tmp_path / "trace.jsonl"
    assert invoke("run", mesh, "--events", mesh / "events.jsonl", "--trace", trace).exit_code == 0
    done = meshctl_process("render", "--trace", "-", "--format", "mermaid", input=trace.read_text())
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith('---\ntitle: "Run trace: standard input"\n---\nsequenceDiagram\n')
    assert "greeting.sent" in done.stdout
