"""`meshctl test --junit FILE`: the report as JUnit XML, the format CI servers show test results in.

``<testsuites>`` holds one ``<testsuite>`` per test file (its path as name), each with one
``<testcase>`` per test run: ``classname`` the file, ``name`` the test's name, ``file`` and
``line`` where it is written. A failed test has one ``<failure>`` per expectation that did
not hold (``message`` the first line, the text with ``file:line:col`` and what was seen). A
problem that kept tests from running (an invalid test file or mesh, no test found) is a
``<testcase>`` holding an ``<error>`` whose ``type`` is the diagnostic code. Every text is
passed through :func:`printable`, so no control character can make the XML invalid.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET

from ..core.errors import Diagnostic, printable
from .meshtest import CaseResult, Report


def junit_xml(report: Report) -> str:
    """The XML document (with its declaration) for *report*."""
    root = ET.Element("testsuites", name="meshctl test")
    suites: dict[str, ET.Element] = {}

    def suite(file: str) -> ET.Element:
        if file not in suites:
            suites[file] = ET.SubElement(root, "testsuite", name=printable(file), file=printable(file))
        return suites[file]

    for diagnostic in report.diagnostics:
        _error(suite(diagnostic.loc.file), diagnostic)
    for result in report.results:
        _case(suite(result.file), result)
    for element in [root, *suites.values()]:
        cases = element.iter("testcase")
        counts = {"tests": 0, "failures": 0, "errors": 0}
        for case in cases:
            counts["tests"] += 1
            counts["failures"] += case.find("failure") is not None
            counts["errors"] += case.find("error") is not None
        element.attrib.update({key: str(value) for key, value in counts.items()})
        if element is not root:
            element.set("skipped", "0")
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _case(suite: ET.Element, result: CaseResult) -> None:
    case = ET.SubElement(suite, "testcase", name=printable(result.name), classname=printable(result.file),
                         file=printable(result.file), line=str(result.loc.line))
    for failure in result.failures:
        element = ET.SubElement(case, "failure", type="expectation",
                                message=printable(f"{failure.where}: {failure.message}"))
        element.text = "\n".join(line.strip() if i == 0 else line for i, line in enumerate(failure.lines()))


def _error(suite: ET.Element, diagnostic: Diagnostic) -> None:
    where = f"line {diagnostic.loc.line}" if diagnostic.loc.line > 0 else "file"
    case = ET.SubElement(suite, "testcase", name=printable(f"{diagnostic.code} ({where})"),
                         classname=printable(diagnostic.loc.file), file=printable(diagnostic.loc.file),
                         line=str(diagnostic.loc.line))
    element = ET.SubElement(case, "error", type=diagnostic.code, message=printable(diagnostic.message))
    element.text = diagnostic.format()
