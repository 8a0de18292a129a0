"""The command line, through click's CliRunner: exit codes and exact messages."""
from __future__ import annotations

import json

import pytest

from engine.language.schema import dsl_schema

VALID = """
apiVersion: meshctl/v1
kind: EventType
metadata: {name: ping}
spec: {external: true}
---
apiVersion: meshctl/v1
kind: Service
metadata: {name: ponger}
spec:
  subscriptions:
    - on: ping
      do: [{log: "got {{ event.id }}"}]
"""

WARNS = VALID + """
---
apiVersion: meshctl/v1
kind: EventType
metadata: {name: lonely}
"""


@pytest.mark.parametrize(("args", "code"), [
    (["validate"], 2),                       # missing path
    (["validate", "/no/such/mesh"], 2),      # path does not exist
    (["validate", "--bogus", "x"], 2),       # unknown flag
    (["validate", "--format", "xml", "."], 2),
    (["frobnicate"], 2),                     # unknown command
    (["--help"], 0),
    (["--version"], 0),
])
def test_usage_errors_exit_2(meshctl, args, code):
    assert meshctl(*args).exit_code == code


def test_valid_mesh_exits_0_with_summary(meshctl, write):
    path = write(VALID)
    result = meshctl("validate", path)
    assert result.exit_code == 0
    assert result.output == f"{path}: valid (0 errors, 0 warnings)\n"


def test_warnings_pass_unless_strict(meshctl, write):
    path = write(WARNS)
    assert meshctl("validate", path).exit_code == 0
    strict = meshctl("validate", "--strict", path)
    assert strict.exit_code == 1
    assert (
        f"{path}:17:18: warning[unused-event-type]: event type 'lonely' is neither produced nor consumed"
        in strict.output
    )
    assert strict.output.endswith(f"{path}: invalid (0 errors, 1 warning)\n")


def test_quiet_prints_errors_only(meshctl, write):
    assert meshctl("validate", "-q", write(WARNS)).output == ""


def test_json_report_shape(meshctl, write):
    path = write(WARNS)
    report = json.loads(meshctl("validate", "--format", "json", path).output)
    assert report["valid"] is True
    (mesh,) = report["meshes"]
    assert (mesh["errors"], mesh["warnings"]) == (0, 1)
    assert mesh["diagnostics"][0] | {"notes": None} == {
        "file": str(path), "line": 17, "col": 18, "severity": "warning", "code": "unused-event-type",
        "message": "event type 'lonely' is neither produced nor consumed",
        "hint": "remove it, or mark it `external: true`", "notes": None}


def test_several_paths_fail_if_any_fails(meshctl, write, tmp_path):
    good = write(VALID, "good/mesh.yaml")
    bad = write("apiVersion: meshctl/v1\nkind: Nope\nmetadata: {name: x}\n", "bad/mesh.yaml")
    result = meshctl("validate", good.parent, bad.parent)
    assert result.exit_code == 1
    assert f"{bad}:2:7: error[unknown-kind]: unknown kind 'Nope'" in result.output
    assert f"{good.parent}: valid" in result.output


@pytest.mark.parametrize(("content", "code", "where"), [
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe", "not-text", "1:1"),
    (b"kind: Route\nname: caf\xe9\n", "not-text", "2:10"),
    (b"a: b\x00\n", "not-text", "1:5"),
    (b"", "empty-file", "1:1"),
    (b"---\n---\n", "empty-file", "1:1"),
    (b"just a string\n", "wrong-type", "1:1"),
    (b"- a\n- b\n", "wrong-type", "1:1"),
    (b"apiVersion: meshctl/v2\nkind: Route\nmetadata: {name: r}\n", "bad-api-version", "1:13"),
    (b"spec: !!binary aGVsbG8=\n", "unsupported-tag", "1:7"),
    (b"on: yes\n", "missing-key", "1:1"),
    (b"a: &x [*x]\n", "recursive-alias", "1:4"),
    (b"[" * 100 + b"]" * 100, "too-deep", "1:65"),
])
def test_bad_files_are_located_errors_never_tracebacks(meshctl, tmp_path, content, code, where):
    path = tmp_path / "bad.yaml"
    path.write_bytes(content)
    result = meshctl("validate", path)
    assert result.exit_code == 1
    assert f"{path}:{where}: error[{code}]" in result.output
    assert "Traceback" not in result.output


def test_directory_without_yaml_is_an_error(meshctl, tmp_path):
    (tmp_path / "notes.txt").write_text("hi")
    result = meshctl("validate", tmp_path)
    assert result.exit_code == 1
    assert f"{tmp_path}: error[empty-mesh]: no .yaml or .yml files here" in result.output


def test_schema_command_prints_the_shipped_schema(meshctl, tmp_path):
    assert json.loads(meshctl("schema").output) == dsl_schema()
    out = tmp_path / "s.json"
    assert meshctl("schema", "-o", out).exit_code == 0
    assert json.loads(out.read_text()) == dsl_schema()


EXAMPLE = "workflows/orders"


@pytest.fixture
def in_repo(monkeypatch):
    from pathlib import Path
    monkeypatch.chdir(Path(__file__).resolve().parent.parent)


@pytest.mark.parametrize(("fmt", "start"), [("mermaid", "flowchart LR"), ("dot", "digraph"),
                                            ("svg", "<svg"), ("html", "<!DOCTYPE html>")])
def test_render_every_format(meshctl, in_repo, fmt, start):
    result = meshctl("render", EXAMPLE, "--format", fmt)
    assert result.exit_code == 0
    assert start in result.output[:400]
    assert "order.placed" in result.output


def test_render_orchestration_to_file(meshctl, in_repo, tmp_path):
    out = tmp_path / "o.svg"
    result = meshctl("render", EXAMPLE, "--orchestration", "fulfil-order", "--format", "svg", "-o", out)
    assert result.exit_code == 0 and result.output == ""
    assert "reserve_inventory" in out.read_text()


@pytest.mark.parametrize(("args", "code", "message"), [
    (["render", EXAMPLE, "--orchestration", "fulfill"], 2,
     "meshctl: unknown orchestration 'fulfill'; did you mean 'fulfil-order'?"),
    (["render", EXAMPLE, "--format", "png"], 2, "Invalid value for '--format'"),
    (["render", "tests/cases/invalid/event-cycle.yaml"], 1,
     "tests/cases/invalid/event-cycle.yaml:17:11: error[event-cycle]: circular events"),
])
def test_render_errors(meshctl, in_repo, args, code, message):
    result = meshctl(*args)
    assert result.exit_code == code
    assert message in result.output


class _Panic(BaseException):
    """Stands for pyo3's PanicException: a Rust extension's panic is a BaseException, not an Exception."""


@pytest.mark.parametrize("failure", [RecursionError("maximum recursion depth exceeded"),
                                     _Panic("__eq__ failed!")])
def test_a_bug_is_exit_70_with_one_line_not_a_traceback(meshctl, monkeypatch, failure):
    import engine.commands.checks

    def broken(path):
        raise failure
    monkeypatch.setattr(engine.commands.checks, "check_mesh", broken)
    result = meshctl("validate", "workflows/arena")
    assert result.exit_code == 70
    assert f"meshctl: internal error: {type(failure).__name__}" in result.output
    assert "Traceback" not in result.output
