"""T19: JSON Schema references never reach the network or the file system.

A plain ``Draft202012Validator`` still fetches ``http://`` references and reads ``file://``
ones. EventType data schemas come from the YAML, so each kind of reference that leaves the
document is tried against a loopback TCP listener and a real file: `validate` must report
it as a located ``remote-ref`` error, and the runtime's data validator must fail it as
unresolvable, both with 0 connections (counted by the listener and by an audit hook on
``socket.connect``) and 0 opens of the file. The child process keeps the audit hook out of
the test run.
"""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

CHILD = textwrap.dedent("""
    import json, os, socket, sys, threading
    workdir, target = sys.argv[1], sys.argv[2]
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    base = "http://127.0.0.1:%d" % listener.getsockname()[1]
    accepted = []
    def serve():
        while True:
            conn, _ = listener.accept()
            accepted.append(1)
            conn.close()
    threading.Thread(target=serve, daemon=True).start()
    events = []
    def hook(event, args):
        if event == "socket.connect":
            events.append(["connect", str(args[1])])
        elif event == "open" and isinstance(args[0], str) and args[0] == target:
            events.append(["open", args[0]])
    sys.addaudithook(hook)
    from engine.analysis.validate import check_mesh
    from engine.language.schema import data_validator
    SCHEMAS = {
        "http": {"type": "object", "properties": {"a": {"$ref": base + "/a.json"}}},
        "file": {"$ref": "file://" + target},
        "relative": {"properties": {"a": {"$ref": "other.json#/defs/x"}}},
        "dynamic": {"$dynamicRef": base + "/d.json"},
        "id-base": {"$id": base + "/root.json", "properties": {"a": {"$ref": "sibling.json"}}},
        "defs-ref": {"$defs": {"x": {"$ref": base + "/x.json"}}, "properties": {"a": {"$ref": "#/$defs/x"}}},
    }
    out = {}
    for name, schema in SCHEMAS.items():
        path = os.path.join(workdir, name + ".yaml")
        with open(path, "w") as fh:
            fh.write("apiVersion: meshctl/v1\\nkind: EventType\\nmetadata: {name: t}\\n"
                     "spec:\\n  external: true\\n"
                     "  schema: " + json.dumps(schema) + "\\n")
        result = check_mesh(path)
        try:
            list(data_validator(schema).iter_errors({"a": 1}))
            runtime = "validated"
        except Exception as exc:
            runtime = type(exc).__name__ + ": " + str(exc)[:60]
        codes = [[d.code, d.loc.line, d.loc.col] for d in result.diagnostics]
        out[name] = {"codes": codes, "runtime": runtime}
    found = {"cases": out, "accepted": len(accepted), "audited": list(events)}
    import time, warnings, jsonschema
    warnings.simplefilter("ignore")
    for ref in (base + "/c.json", "file://" + target):  # the control: jsonschema left to itself does both
        try:
            jsonschema.Draft202012Validator({"$ref": ref}).is_valid(1)
        except Exception:
            pass
    time.sleep(0.2)  # let the listener thread count the connection
    found["control"] = {"accepted": len(accepted), "audited": events[len(found["audited"]):]}
    print(json.dumps(found))
""")


@pytest.fixture(scope="module")
def outcome(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("refs")
    target = workdir / "hostname"
    target.write_text('{"type": "string"}')  # a valid schema: reading it would make the $ref resolve
    child = subprocess.run([sys.executable, "-c", CHILD, str(workdir), str(target)], capture_output=True,
                           text=True, timeout=60)
    assert child.returncode == 0, child.stderr[-2000:]
    result = json.loads(child.stdout)
    print(json.dumps({"test": "T19", "schemas": len(result["cases"]), "connections": result["accepted"],
                      "audited": result["audited"]}))
    return result


def test_nothing_was_fetched_nor_read(outcome):
    assert outcome["accepted"] == 0
    assert outcome["audited"] == []


def test_control_a_plain_validator_would_have_done_both(outcome):
    assert outcome["control"]["accepted"] >= 1
    assert {kind for kind, _ in outcome["control"]["audited"]} == {"connect", "open"}


@pytest.mark.parametrize("name", ["http", "file", "relative", "dynamic", "id-base", "defs-ref"])
def test_each_reference_is_a_located_error_and_unresolvable_at_run_time(outcome, name):
    case = outcome["cases"][name]
    assert [code for code, _, _ in case["codes"]] == ["remote-ref"]
    # at the $ref itself, on the schema line
    assert all(line == 6 and col > 10 for _, line, col in case["codes"])
    assert case["runtime"].startswith(("_WrappedReferencingError: Unresolvable", "Unresolvable"))


def test_the_cli_message(tmp_path, meshctl):
    path = tmp_path / "t.yaml"
    path.write_text("apiVersion: meshctl/v1\nkind: EventType\nmetadata: {name: t}\nspec:\n  external: true\n"
                    "  schema:\n    $ref: 'file:///etc/hostname'\n")
    result = meshctl("validate", path)
    assert result.exit_code == 1
    assert f"{path}:7:11: error[remote-ref]: $ref 'file:///etc/hostname' leaves the document" in result.output
