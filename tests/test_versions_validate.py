"""Event type versions through the command line: `validate` reports incompatible versions and
readers at their file:line:col, `run` and `publish` check each event against the version its
`dataschema` names, and events the mesh makes carry their version."""
from __future__ import annotations

import json

import pytest

from engine.language.model import DATASCHEMA

EXAMPLE = "workflows/versions"

HEAD = """\
apiVersion: meshctl/v1
kind: EventType
metadata: {name: ping}
spec:
  external: true
  version: 2
  compatibility: %s
  schema:
    type: object
    additionalProperties: false
    required: [n]
    properties:
      n: {type: %s}
  previous:
    - version: 1
      schema:
        type: object
        additionalProperties: false
        required: [n]
        properties:
          n: {type: %s}
---
apiVersion: meshctl/v1
kind: Service
metadata: {name: pong}
spec:
  subscriptions:
    - on: ping
%s      do: [{log: {message: "pong"}}]
"""


def mesh(write, mode="backward", new="number", old="number", pin=""):
    return str(write(HEAD % (mode, new, old, pin)))


def test_the_example_validates(meshctl):
    result = meshctl("validate", EXAMPLE)
    assert result.exit_code == 0, result.output


def test_narrowing_a_type_fails_backward_at_the_new_type(meshctl, write):
    path = mesh(write, new="integer", old="number")
    result = meshctl("validate", path)
    assert result.exit_code == 1
    assert f"{path}:13:17: error[incompatible-schema-version]: version 2 of 'ping' cannot read data " \
           "written with version 1 (backward compatibility): data.n: type narrowed" in result.output
    assert f"{path}:17:9: note: version 1 of the schema" in result.output
    # the subscription reads the current version, and version-1 data may come from outside
    assert f"{path}:28:11: error[version-reader-break]" in result.output


def test_widening_a_type_passes_backward_and_fails_forward(meshctl, write):
    assert meshctl("validate", mesh(write, new="number", old="integer")).exit_code == 0
    result = meshctl("validate", mesh(write, "forward", new="number", old="integer"))
    assert result.exit_code == 1
    # the old schema cannot read: the error is in version 1's type
    assert ":21:21: error[incompatible-schema-version]: version 1 of 'ping' cannot read data written " \
           "with version 2 (forward compatibility)" in result.output
    # `none` checks no history; readers are still checked against what may reach them
    result = meshctl("validate", mesh(write, "none", new="string", old="integer"))
    assert "incompatible-schema-version" not in result.output
    assert "error[version-reader-break]" in result.output


def test_a_reader_of_an_old_version_fails_on_new_data(meshctl, write):
    path = mesh(write, new="number", old="integer", pin="      version: 1\n")
    result = meshctl("validate", path, "--format", "json")
    assert result.exit_code == 1
    found = json.loads(result.output)["meshes"][0]["diagnostics"]
    (reader,) = [d for d in found if d["code"] == "version-reader-break"]
    assert (reader["line"], reader["col"]) == (29, 16)
    assert "reads version 1 of 'ping', but data of version 2 may come from outside" in reader["message"]


def test_a_reader_of_an_undeclared_version(meshctl, write):
    result = meshctl("validate", mesh(write, pin="      version: 3\n"))
    assert result.exit_code == 1
    assert ":29:16: error[bad-schema-version]: subscription pong/ping reads version 3 of 'ping', " \
           "which declares 1, 2" in result.output


def test_versions_out_of_order(meshctl, write):
    text = (HEAD % ("backward", "number", "number", "")).replace("version: 2", "version: 1", 1)
    result = meshctl("validate", str(write(text)))
    assert result.exit_code == 1
    assert "error[bad-schema-version]: event type 'ping' declares version 1 twice" in result.output


CODES = ["bad-schema-version", "incompatible-schema-version", "version-reader-break"]


@pytest.mark.parametrize("code", CODES)
def test_the_codes_are_explained(meshctl, code):
    result = meshctl("explain", code)
    assert result.exit_code == 0 and result.output.startswith(f"{code} (error)")


def _events(write, *records):
    return str(write("\n".join(json.dumps(r) for r in records) + "\n", "events.jsonl"))


def _booked(n, data, version=None):
    event = {"specversion": "1.0", "id": f"b{n}", "source": "/t", "type": "parcel.booked",
             "time": "2024-01-01T00:00:00Z", "data": data}
    if version is not None:
        event["dataschema"] = DATASCHEMA.format(type="parcel.booked", version=version)
    return event


def test_an_event_is_checked_against_the_version_it_names(meshctl, write, tmp_path):
    # version 1 is closed: `currency` is only valid under version 2 (the current one)
    events = _events(write, _booked(1, {"parcel_id": "a", "weight": 1, "currency": "GBP"}, 1),
                     _booked(2, {"parcel_id": "b", "weight": 1, "currency": "GBP"}, 2),
                     _booked(3, {"parcel_id": "c", "weight": 1, "currency": "GBP"}))
    out = tmp_path / "out.jsonl"
    result = meshctl("run", EXAMPLE, "--events", events, "--output", str(out), "--format", "json")
    summary = json.loads(result.output[result.output.index("{\n"):])
    assert summary["dead_lettered_by_reason"] == {"schema-invalid": 1}
    emitted = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(e["data"]["parcel_id"] for e in emitted) == ["b", "c"]
    assert {e["dataschema"] for e in emitted} == {"urn:meshctl:schema:parcel.labelled:1"}


def test_publish_refuses_an_undeclared_version(meshctl, write):
    events = _events(write, _booked(1, {"parcel_id": "a", "weight": 1}, 7))
    result = meshctl("publish", EXAMPLE, events, "--store", "redis://127.0.0.1:1/0")
    assert result.exit_code == 1
    assert "error[rejected-event]: dataschema: names version '7' of 'parcel.booked', which declares 1, 2" \
        in result.output


def test_every_kind_of_consumer_is_checked_against_what_reaches_it(meshctl, write):
    """With `compatibility: none` the current version need not read the old: an orchestration
    triggered by the type (which reads the current version) is told so."""
    text = (HEAD % ("none", "string", "integer", "")).split("---\napiVersion: meshctl/v1\nkind: Service")[0]
    text += """---
apiVersion: meshctl/v1
kind: Orchestration
metadata: {name: o}
spec:
  trigger: {on: ping}
  steps: [{id: s, do: {log: {message: "x"}}}]
"""
    result = meshctl("validate", str(write(text)))
    assert result.exit_code == 1
    assert ":27:17: error[version-reader-break]: orchestration o reads version 2 of 'ping', but data of " \
           "version 1 may come from outside" in result.output
