"""`meshctl test`: the examples' test files pass, failures are explained, bad test files are located."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

EXAMPLES = sorted(p.name for p in (REPO / "workflows").iterdir() if list(p.glob("*.test.yaml")))

MESH = """
apiVersion: meshctl/v1
kind: EventType
metadata: {name: ping}
spec: {external: true, schema: {type: object, required: [n], properties: {n: {type: integer}}}}
---
apiVersion: meshctl/v1
kind: EventType
metadata: {name: pong}
---
apiVersion: meshctl/v1
kind: Service
metadata: {name: ponger}
spec:
  subscriptions:
    - on: ping
      emits: [pong]
      delivery: {retry: {max_attempts: 3, backoff: fixed, initial: 1s, jitter: none}}
      do: [{emit: {type: pong, data: {n: "{{ data.n }}", twice: "{{ data.n * 2 }}"}}}]
---
apiVersion: meshctl/v1
kind: Service
metadata: {name: sink}
spec:
  subscriptions:
    - {on: pong, do: {log: "got {{ data.n }}"}}
"""

PASSING = """
tests:
  - name: ping makes pong
    given: [{type: ping, time: "2026-01-01T00:00:00Z", data: {n: 2}}]
    expect:
      emitted: [{type: pong, data: {n: 2, twice: 4}, count: 1}]
      no_dead_letters: true
  - name: retried twice then dead, then redriven
    given: [{type: ping, time: "2026-01-01T00:00:00Z", data: {n: 1}}]
    faults: [{consumer: "service:ponger/ping", error: TimeoutError}]
    expect:
      trace:
        - {kind: retry, attempt: 1, delay: 1.0}
        - {kind: retry, attempt: 2, delay: 1.0, t: "2026-01-01T00:00:01Z"}
        - {kind: dead-letter, reason: retries-exhausted, attempts: 3, t: "2026-01-01T00:00:02Z"}
      dead_letters: [{reason: retries-exhausted, consumer: "service:ponger/ping", error_type: TimeoutError, attempts: 3}]
      counts: {retries: 2, dead_lettered: 1, emitted: 0}
    then:
      replay_dead_letters: {reason: retries-exhausted}
      expect:
        emitted: [{type: pong, data: {n: 1}}]
        counts: {replayed: 1, still_dead: 0}
        no_dead_letters: true
"""  # noqa: E501 (YAML kept as written)


@pytest.fixture
def mesh_dir(write):
    return write(MESH).parent


@pytest.mark.parametrize("example", EXAMPLES)
def test_every_example_passes_its_tests(meshctl, example):
    result = meshctl("test", REPO / "workflows" / example)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert all(line.startswith("PASS ") for line in lines[:-1])
    assert lines[-1] == f"{len(lines) - 1} passed, 0 failed"


def test_every_example_has_several_tests():
    assert set(EXAMPLES) >= {"arena", "arena-orchestrated", "orders"}
    for example in EXAMPLES:
        text = "".join(p.read_text() for p in (REPO / "workflows" / example).glob("*.test.yaml"))
        assert text.count("- name:") >= 5, example


def test_passing_file_exits_0(meshctl, write, mesh_dir):
    test_file = write(PASSING, "ping.test.yaml")
    result = meshctl("test", test_file)
    assert (result.exit_code, result.output) == (
        0,
        "PASS ping makes pong\nPASS retried twice then dead, then redriven\n2 passed, 0 failed\n",
    )
    assert meshctl("test", mesh_dir).output == result.output  # a directory runs the test files in it


def test_failures_are_explained_with_what_was_seen(meshctl, write, mesh_dir):
    path = write("""
        tests:
          - name: wrong expectations
            given: [{type: ping, time: "2026-01-01T00:00:00Z", data: {n: 2}}]
            expect:
              emitted: [{type: pong, data: {n: 3}}, {type: pongg}]
              not_emitted: [pong]
              dead_letters: [{reason: loop-detected}]
              counts: {emitted: 2}
              trace: [{kind: ok, consumer: "service:sink/pong"}, {kind: ok, consumer: "service:ponger/ping"}]
          - name: right
            given: [{type: ping, data: {n: 2}}]
            expect: {counts: {emitted: 1}}
        """, "bad.test.yaml")
    result = meshctl("test", path)
    assert result.exit_code == 1
    out = result.output
    assert out.startswith("FAIL wrong expectations\n")
    assert (
        f"  {path}:5:17: expect.emitted[0]: "
        "no emitted event matches {\"type\": \"pong\", \"data\": {\"n\": 3}}\n" in out
    )
    assert "closest of 1 emitted pong events:" in out
    assert "(data.n is 2, expected 3)" in out
    assert "no pong was emitted" not in out
    assert f"{path}:5:45: expect.emitted[1]: no emitted event matches {{\"type\": \"pongg\"}}" in out
    assert "no pongg was emitted; emitted: pong x1 (did you mean 'pong'?)" in out
    assert (
        f"{path}:6:21: expect.not_emitted[0]: 1 emitted event(s) match {{\"type\": \"pong\"}}, expected none"
        in out
    )
    assert (
        f"{path}:7:22: expect.dead_letters[0]: no dead letter matches {{\"reason\": \"loop-detected\"}}"
        in out
    )
    assert "(no dead letters at all)" in out
    assert f"{path}:8:25: expect.counts.emitted: expected emitted = 2, got 1" in out
    assert (
        "expect.trace[1]: trace record {\"kind\": \"ok\", \"consumer\": \"service:ponger/ping\"} "
        "appears only before "
        "the previous entry's match" in out
    )
    assert out.endswith("PASS right\n1 passed, 1 failed\n")


@pytest.mark.parametrize(("text", "expected"), [
    ("tests: []\n", ":1:8: error[bad-value]: tests: [] should be non-empty"),
    ("tests:\n  - name: x\n    given: [{type: ping}]\n    expect: {emited: []}\n",
     ":4:14: error[unknown-key]: unknown key 'emited' in tests[0].expect\n  hint: did you mean 'emitted'?"),
    ("tests:\n  - given: [{type: ping}]\n",
     ":2:5: error[missing-key]: missing required key 'name' in tests[0]"),
    ("tests:\n  - name: x\n    given: [{data: {}}]\n",
     ":3:13: error[missing-key]: missing required key 'type' in tests[0].given[0]"),
    ("tests:\n  - name: x\n    expect: {}\n", ":2:5: error[missing-input]: a test needs input"),
    ("tests:\n  - name: x\n    events: nope.jsonl\n",
     ":3:13: error[no-such-file]: no events file 'nope.jsonl'"),
    ("tests:\n  - name: x\n    given: [{type: ping}]\n    faults: [{consumer: 'service:ponger/pin'}]\n",
     ":4:25: error[unknown-consumer]: no consumer 'service:ponger/pin' in the mesh\n"
     "  hint: did you mean 'service:ponger/ping'?"),
    ("tests:\n  - name: x\n    given: [{type: ping}]\n  - name: x\n    given: [{type: ping}]\n",
     ":4:11: error[duplicate-test]: a test named 'x' is already defined at line 2"),
    ("tests:\n  - name: x\n    given: [{type: ping}]\n    then: {expect: {}}\n", ":4:5: error[empty-then]"),
    ("tests:\n  - name: x\n    given: [{type: ping}]\n    expect: {counts: {emited: 1}}\n",
     ":4:23: error[unknown-key]: unknown key 'emited' in tests[0].expect.counts"),
    ("tests: [\n", ":2:1: error[yaml-syntax]"),
])
def test_invalid_test_files_are_located(meshctl, write, mesh_dir, text, expected):
    path = write(text, "case.test.yaml")
    result = meshctl("test", path)
    assert result.exit_code == 1
    assert f"{path}{expected}" in result.output
    assert result.output.endswith("0 passed, 0 failed\n")


def test_a_misspelt_required_key_of_a_test_is_one_error(meshctl, write, mesh_dir):
    path = write("tests:\n  - nmae: x\n    given: [{type: ping}]\n", "case.test.yaml")
    result = meshctl("test", path)
    assert result.exit_code == 1
    assert result.output == (f"{path}:2:5: error[unknown-key]: unknown key 'nmae' in tests[0]\n"
                             "  hint: did you mean 'name'?\n0 passed, 0 failed\n")


def test_an_invalid_mesh_is_reported(meshctl, write):
    write("apiVersion: meshctl/v1\nkind: Nope\nmetadata: {name: x}\n")
    path = write(PASSING, "ping.test.yaml")
    result = meshctl("test", path)
    assert result.exit_code == 1
    assert "error[unknown-kind]" in result.output and "error[invalid-mesh]" in result.output


def test_k_selects_tests_by_name(meshctl, write, mesh_dir):
    write(PASSING, "ping.test.yaml")
    result = meshctl("test", "-k", "redriven", mesh_dir)
    assert (result.exit_code, result.output) == (
        0,
        "PASS retried twice then dead, then redriven\n1 passed, 0 failed\n",
    )
    none = meshctl("test", "-k", "nothing like it", mesh_dir)
    assert none.exit_code == 1
    assert "error[no-tests]: no test name contains 'nothing like it'" in none.output


def test_json_format(meshctl, write, mesh_dir):
    path = write(PASSING.replace("twice: 4", "twice: 5"), "ping.test.yaml")
    result = meshctl("test", "--format", "json", path)
    assert result.exit_code == 1
    report = json.loads(result.output)
    assert (report["ok"], report["passed"], report["failed"], report["diagnostics"]) == (False, 1, 1, [])
    first, second = report["tests"]
    assert (first["name"], first["passed"], first["file"]) == ("ping makes pong", False, str(path))
    (failure,) = first["failures"]
    assert failure["where"] == "expect.emitted[0]" and failure["line"] == 5
    assert "expected 1 emitted event(s) matching" in failure["message"]
    assert any("data.twice is 4, expected 5" in s for s in failure["seen"])
    assert second["passed"] is True and second["failures"] == []


def test_usage(meshctl, write, mesh_dir, tmp_path):
    assert meshctl("test").exit_code == 2
    assert meshctl("test", tmp_path / "missing").exit_code == 2
    not_a_test = meshctl("test", mesh_dir / "mesh.yaml")
    assert not_a_test.exit_code == 2 and "not a test file" in not_a_test.output
    empty = tmp_path / "empty"
    empty.mkdir()
    assert meshctl("test", empty).exit_code == 1


def test_an_example_expectation_fails_when_the_mesh_changes(meshctl, tmp_path):
    """The examples' expectations are real: loosen the rematch loop bound and its test fails."""
    copy = tmp_path / "arena"
    shutil.copytree(REPO / "workflows" / "arena", copy)
    services = copy / "services.yaml"
    services.write_text(services.read_text().replace("loop: {max_hops: 3}", "loop: {max_hops: 4}"))
    result = meshctl("test", "-k", "loop", copy)
    assert result.exit_code == 1
    assert "expect.dead_letters[0]: expected 1 dead letter(s) matching" in result.output
    assert result.output.endswith("0 passed, 1 failed\n")


def _keys(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "properties" and isinstance(value, dict):
                yield from value
            yield from _keys(value)
    elif isinstance(node, list):
        for value in node:
            yield from _keys(value)


def test_every_key_of_the_schema_is_documented():
    schema = json.loads((REPO / "schemas" / "meshctl-test.schema.json").read_text())
    doc = (REPO / "docs" / "testing.md").read_text()
    assert {k for k in _keys(schema) if f"`{k}`" not in doc} == set()


def test_mesh_key_and_one_document(meshctl, write, mesh_dir):
    write(PASSING.replace("tests:", "mesh: ..\ntests:", 1), "sub/ping.test.yaml")
    assert meshctl("test", mesh_dir / "sub").exit_code == 0
    path = write(PASSING + "---\n" + PASSING, "two.test.yaml")
    assert "error[several-documents]" in meshctl("test", path).output
