"""`meshctl test --junit FILE` and `--format junit`: JUnit XML read back with xml.etree."""
from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from ping_mesh import PING_MESH as MESH

TESTS = """\
tests:
  - name: one ping in
    given: [{type: ping}]
    expect: {counts: {events_in: 1}}
  - name: "two pings in \\e[31m<&>"
    given: [{type: ping}]
    expect: {counts: {events_in: 2, delivered: 3}}
"""


@pytest.fixture
def mesh(tmp_path):
    (tmp_path / "mesh.yaml").write_text(MESH)
    (tmp_path / "ping.test.yaml").write_text(TESTS)
    return tmp_path


def test_junit_file_alongside_the_text_report(meshctl, mesh, tmp_path):
    out = tmp_path / "junit.xml"
    result = meshctl("test", mesh, "--junit", out)
    assert result.exit_code == 1
    assert result.output.endswith("1 passed, 1 failed\n")  # the usual report is still printed
    root = ET.parse(out).getroot()
    assert root.tag == "testsuites"
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("2", "1", "0")
    (suite,) = root.findall("testsuite")
    test_file = str(mesh / "ping.test.yaml")
    assert suite.get("name") == test_file and suite.get("tests") == "2" and suite.get("failures") == "1"
    passed, failed = suite.findall("testcase")
    assert passed.attrib == {"name": "one ping in", "classname": test_file, "file": test_file, "line": "2"}
    assert list(passed) == []
    assert failed.get("name") == "two pings in \\x1b[31m<&>"  # control characters escaped, XML still valid
    failures = failed.findall("failure")
    assert [f.get("message") for f in failures] == ["expect.counts.events_in: expected events_in = 2, got 1",
                                                    "expect.counts.delivered: expected delivered = 3, got 1"]
    assert failures[0].text == f"{test_file}:7:34: expect.counts.events_in: expected events_in = 2, got 1"


def test_format_junit_prints_the_xml(meshctl, mesh):
    result = meshctl("test", mesh, "--format", "junit", "-k", "one")
    assert result.exit_code == 0
    assert result.output.startswith('<?xml version="1.0" encoding="UTF-8"?>\n<testsuites')
    root = ET.fromstring(result.output)
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("1", "0", "0")


def test_problems_that_kept_tests_from_running_are_errors(meshctl, mesh, tmp_path):
    (mesh / "bad.test.yaml").write_text("tests:\n  - name: x\n    expect: {}\n")
    out = tmp_path / "junit.xml"
    assert meshctl("test", mesh, "--junit", out).exit_code == 1
    root = ET.parse(out).getroot()
    assert root.get("errors") == "1"
    bad = next(s for s in root.iter("testsuite") if s.get("name").endswith("bad.test.yaml"))
    (case,) = bad.findall("testcase")
    error = case.find("error")
    assert error.get("type") == "missing-input"
    assert error.text.startswith(f"{mesh / 'bad.test.yaml'}:2:5: error[missing-input]: ")


def test_no_tests_is_an_error_in_the_xml(meshctl, tmp_path):
    (tmp_path / "mesh.yaml").write_text(MESH)
    result = meshctl("test", tmp_path, "--format", "junit")
    assert result.exit_code == 1
    error = ET.fromstring(result.output).find("testsuite/testcase/error")
    assert error.get("type") == "no-tests"


def test_unwritable_junit_file_is_a_clear_error(meshctl, mesh, tmp_path):
    result = meshctl("test", mesh, "--junit", tmp_path / "no" / "such" / "dir" / "junit.xml")
    assert result.exit_code == 1
    assert "Could not open file" in result.output and "No such file or directory" in result.output
