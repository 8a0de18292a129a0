"""`meshctl validate --format sarif`: a SARIF 2.1.0 log for GitHub code scanning.

The official SARIF 2.1.0 JSON Schema is not shipped with any dependency of the project, so the
log is checked against SUBSET below: a hand-written excerpt of what that schema requires of
the parts meshctl writes (required members, closed objects where it matters to viewers,
levels, 1-based regions).
"""
from __future__ import annotations

import json
import os

import pytest
from jsonschema import Draft7Validator

from engine.commands.sarif import sarif_log
from engine.core.errors import Diagnostic, Location, Note

MESSAGE = {"type": "object", "required": ["text"], "properties": {"text": {"type": "string", "minLength": 1}}}
LOCATION = {
    "type": "object",
    "required": ["physicalLocation"],
    "properties": {
        "id": {"type": "integer", "minimum": -1},
        "message": MESSAGE,
        "physicalLocation": {
            "type": "object",
            "required": ["artifactLocation"],
            "additionalProperties": False,
            "properties": {
                "artifactLocation": {
                    "type": "object",
                    "required": ["uri"],
                    "additionalProperties": False,
                    "properties": {
                        "uri": {"type": "string", "format": "uri-reference"},
                        "uriBaseId": {"type": "string"},
                    },
                },
                "region": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["startLine"],
                    "properties": {
                        "startLine": {"type": "integer", "minimum": 1},
                        "startColumn": {"type": "integer", "minimum": 1},
                    },
                },
            },
        },
    },
}
SUBSET = {
    "type": "object",
    "required": ["version", "runs"],
    "additionalProperties": False,
    "properties": {
        "$schema": {"type": "string", "format": "uri"},
        "version": {"const": "2.1.0"},
        "runs": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["tool", "results"],
                "properties": {
                    "columnKind": {"enum": ["utf16CodeUnits", "unicodeCodePoints"]},
                    "originalUriBaseIds": {
                        "type": "object",
                        "additionalProperties": {
                            "type": "object",
                            "required": ["uri"],
                            "properties": {"uri": {"type": "string", "pattern": "/$"}},
                        },
                    },
                    "tool": {
                        "type": "object",
                        "required": ["driver"],
                        "properties": {
                            "driver": {
                                "type": "object",
                                "required": ["name", "rules"],
                                "properties": {
                                    "name": {"const": "meshctl"},
                                    "version": {"type": "string"},
                                    "rules": {
                                        "type": "array",
                                        "items": {
                                            "type": "object",
                                            "required": ["id", "shortDescription", "fullDescription", "help"],
                                            "properties": {
                                                "id": {"type": "string"},
                                                "shortDescription": MESSAGE,
                                                "fullDescription": MESSAGE,
                                                "help": MESSAGE,
                                                "defaultConfiguration": {
                                                    "type": "object",
                                                    "properties": {
                                                        "level": {
                                                            "enum": ["none", "note", "warning", "error"]
                                                        }
                                                    },
                                                },
                                            },
                                        },
                                    },
                                },
                            }
                        },
                    },
                    "results": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["message", "ruleId", "ruleIndex", "level", "locations"],
                            "properties": {
                                "ruleId": {"type": "string"},
                                "ruleIndex": {"type": "integer", "minimum": 0},
                                "level": {"enum": ["none", "note", "warning", "error"]},
                                "message": MESSAGE,
                                "locations": {"type": "array", "minItems": 1, "items": LOCATION},
                                "relatedLocations": {"type": "array", "items": LOCATION},
                            },
                        },
                    },
                },
            },
        },
    },
}

CYCLE = """\
apiVersion: meshctl/v1
kind: EventType
metadata: {name: ping}
spec: {external: true}
---
apiVersion: meshctl/v1
kind: EventType
metadata: {name: lonely}
---
apiVersion: meshctl/v1
kind: Service
metadata: {name: echo}
spec:
  subscriptions:
    - on: ping
      emits: [ping]
      do: {emit: {type: ping}}
"""


def _check(log: dict) -> None:
    errors = sorted(Draft7Validator(SUBSET, format_checker=Draft7Validator.FORMAT_CHECKER).iter_errors(log),
                    key=str)
    assert not errors, [f"{list(e.absolute_path)}: {e.message}" for e in errors]
    run = log["runs"][0]
    rules = run["tool"]["driver"]["rules"]
    assert len({r["id"] for r in rules}) == len(rules)
    for result in run["results"]:
        assert rules[result["ruleIndex"]]["id"] == result["ruleId"]


def test_validate_sarif_through_the_cli(meshctl, tmp_path, monkeypatch):
    mesh = tmp_path / "meshes" / "echo"
    mesh.mkdir(parents=True)
    (mesh / "mesh.yaml").write_text(CYCLE)
    monkeypatch.chdir(tmp_path)
    result = meshctl("validate", "--format", "sarif", "meshes/echo")
    assert result.exit_code == 1
    log = json.loads(result.output)
    _check(log)
    run = log["runs"][0]
    assert [r["id"] for r in run["tool"]["driver"]["rules"]] == ["event-cycle", "unused-event-type"]
    assert run["tool"]["driver"]["rules"][0]["defaultConfiguration"] == {"level": "error"}
    unused, cycle = run["results"]  # in file order
    assert cycle["level"] == "error" and unused["level"] == "warning"
    assert cycle["message"]["text"].startswith("circular events: ping -> echo -> ping (hint: break the loop")
    assert cycle["locations"][0]["physicalLocation"] == {
        "artifactLocation": {"uri": "meshes/echo/mesh.yaml", "uriBaseId": "SRCROOT"},
        "region": {"startLine": 15, "startColumn": 11}}
    assert cycle["relatedLocations"][0]["message"]["text"] == "service 'echo' consumes ping"
    assert run["originalUriBaseIds"]["SRCROOT"]["uri"] == tmp_path.as_uri() + "/"


def test_sarif_of_a_valid_mesh_has_no_results(meshctl, tmp_path):
    valid = CYCLE.replace("metadata: {name: lonely}\n", "metadata: {name: pong}\nspec: {external: true}\n")
    (tmp_path / "mesh.yaml").write_text(
        valid.replace("emits: [ping]\n      do: {emit: {type: ping}}", "do: {log: hi}")
    )
    result = meshctl("validate", "--format", "sarif", "--strict", tmp_path)
    assert result.exit_code == 0
    log = json.loads(result.output)
    _check(log)
    assert log["runs"][0]["results"] == [] and log["runs"][0]["tool"]["driver"]["rules"] == []


@pytest.mark.parametrize(("file", "uri"), [
    ("a b/mesh.yaml", {"uri": "a%20b/mesh.yaml", "uriBaseId": "SRCROOT"}),
    ("odd\nname.yaml", {"uri": "odd%0Aname.yaml", "uriBaseId": "SRCROOT"}),
    ("<stdin>", {"uri": "%3Cstdin%3E"}),
    ("/elsewhere/mesh.yaml", {"uri": "file:///elsewhere/mesh.yaml"}),
    ("../up.yaml", None),
])
def test_artifact_uris(tmp_path, file, uri):
    cwd = tmp_path / "work"
    cwd.mkdir()
    diagnostic = Diagnostic(Location(file, 2, 3), "duplicate-key", "duplicate key 'a'",
                            notes=(Note(Location(file, 1, 1), "first defined here"),))
    log = sarif_log([diagnostic], "1.0", str(cwd))
    _check(log)
    found = log["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]
    assert found == (uri or {"uri": (tmp_path / "up.yaml").as_uri()})


def test_a_file_level_diagnostic_has_no_region_and_info_is_a_note(tmp_path):
    log = sarif_log([Diagnostic(Location("mesh"), "empty-mesh", "no .yaml or .yml files here"),
                     Diagnostic(Location("m.yaml", 3, 1), "pruned-edge", "pruned", severity="info")],
                    "1.0", str(tmp_path))
    _check(log)
    first, second = log["runs"][0]["results"]
    assert "region" not in first["locations"][0]["physicalLocation"]
    assert second["level"] == "note"
    assert os.path.basename(first["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]) == "mesh"
