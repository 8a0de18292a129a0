"""`validate --format sarif`: diagnostics as a SARIF 2.1.0 log, for GitHub code scanning and other viewers.

One run of the tool ``meshctl``; a rule per diagnostic code used, described from
:mod:`engine.commands.explanations`; one result per diagnostic, at its file (a URI relative to the
working directory) and, when known, line and column. Notes become related locations.
"""
from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import quote

from ..core.errors import Diagnostic, Location
from .explanations import explanations

SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
LEVELS = {"error": "error", "warning": "warning", "info": "note"}


def sarif_log(diagnostics: list[Diagnostic], version: str, cwd: str | None = None) -> dict:
    """The SARIF log of *diagnostics*, paths relative to *cwd* (the working directory by default)."""
    cwd = cwd or os.getcwd()
    codes = sorted({d.code for d in diagnostics})
    index = {code: i for i, code in enumerate(codes)}
    driver = {"name": "meshctl", "version": version, "rules": [_rule(code) for code in codes]}
    results = [_result(d, index[d.code], cwd) for d in diagnostics]
    return {"$schema": SCHEMA, "version": "2.1.0",
            "runs": [{"tool": {"driver": driver}, "columnKind": "unicodeCodePoints",
                      "originalUriBaseIds": {"SRCROOT": {"uri": Path(os.path.abspath(cwd)).as_uri() + "/"}},
                      "results": results}]}


def _rule(code: str) -> dict:
    rule: dict = {"id": code, "name": "".join(part.title() for part in code.split("-"))}
    entry = explanations().get(code)
    if entry is not None:
        rule |= {"shortDescription": {"text": _sentence(entry.summary)},
                 "fullDescription": {"text": " ".join(entry.explanation.split())},
                 "help": {"text": f"{_sentence(entry.fix)} Run `meshctl explain {code}` for an example."},
                 "defaultConfiguration": {"level": LEVELS.get(entry.severity, "warning")}}
    return rule


def _result(d: Diagnostic, rule_index: int, cwd: str) -> dict:
    text = d.message + (f" (hint: {d.hint})" if d.hint else "")
    result = {"ruleId": d.code, "ruleIndex": rule_index, "level": LEVELS.get(d.severity, "warning"),
              "message": {"text": text}, "locations": [_location(d.loc, cwd)]}
    if d.notes:
        result["relatedLocations"] = [{**_location(n.loc, cwd), "id": i, "message": {"text": n.message}}
                                      for i, n in enumerate(d.notes)]
    return result


def _location(loc: Location, cwd: str) -> dict:
    physical: dict = {"artifactLocation": _artifact(loc.file, cwd)}
    if loc.line > 0:
        physical["region"] = {"startLine": loc.line, "startColumn": max(loc.col, 1)}
    return {"physicalLocation": physical}


def _artifact(file: str, cwd: str) -> dict:
    """A relative URI under %SRCROOT% (the working directory), or an absolute file URI outside it."""
    if file.startswith("<"):  # not a file: <stdin>
        return {"uri": quote(file, safe="")}
    absolute = os.path.abspath(os.path.join(cwd, file))
    relative = os.path.relpath(absolute, cwd)
    if relative == ".." or relative.startswith("../"):
        return {"uri": Path(absolute).as_uri()}
    return {"uri": quote(Path(relative).as_posix()), "uriBaseId": "SRCROOT"}


def _sentence(text: str) -> str:
    text = text.strip()
    return text[:1].upper() + text[1:] + ("" if text.endswith((".", "?", "!")) else ".")
