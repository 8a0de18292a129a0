"""T17: a mesh cannot read files outside its directory.

The DSL has no include or import: a mesh is the files under one directory (or one file).
What could still lead outside are symlinks in that directory, so the choice is: a mesh file
that is a symlink to a file outside is an error (`outside-mesh`) and is never opened; a
symlinked directory is not followed; a handler module that is a symlink to a file outside
is not a module of the mesh (`handler-not-allowed`). Symlinks that stay inside work. Each
case runs `validate` in a child process with an audit hook on ``open``, which lists every
file opened outside the mesh directory, under /etc or /proc, or through a symlink leading
there: there must be none.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

CHILD = textwrap.dedent("""
    import json, os, sys
    mesh, outside = sys.argv[1], sys.argv[2]
    opened = []
    def hook(event, args):
        path = args[0] if event == "open" else None
        if isinstance(path, str) and os.path.realpath(path).startswith((outside, "/etc/", "/proc/")):
            opened.append(path)
    sys.addaudithook(hook)
    from engine.analysis.validate import check_mesh
    result = check_mesh(mesh)
    files = [os.path.relpath(f, mesh) for f in (result.mesh.files if result.mesh else [])]
    print(json.dumps({"codes": sorted(d.code for d in result.diagnostics), "opened": opened, "files": files}))
""")

EVENT = "apiVersion: meshctl/v1\nkind: EventType\nmetadata: {name: %s}\nspec: {external: true}\n"
SERVICE = textwrap.dedent("""\
    apiVersion: meshctl/v1
    kind: Service
    metadata: {name: svc}
    spec:
      subscriptions:
        - on: ping
          do: {call: {python: "h:go"}}
""")


@pytest.fixture
def places(tmp_path):
    """A mesh directory and, beside it, a directory of files it must not reach."""
    mesh, outside = tmp_path / "mesh", tmp_path / "outside"
    mesh.mkdir()
    outside.mkdir()
    (mesh / "ping.yaml").write_text(EVENT % "ping")
    (outside / "secret.yaml").write_text(EVENT % "secret")
    (outside / "h.py").write_text("def go(event, context):\n    return {}\n")
    (outside / "more").mkdir()
    (outside / "more" / "extra.yaml").write_text(EVENT % "extra")
    return mesh, outside


def _validate(mesh, outside) -> dict:
    child = subprocess.run([sys.executable, "-c", CHILD, str(mesh), str(outside)], capture_output=True,
                           text=True, timeout=60)
    assert child.returncode == 0, child.stderr[-2000:]
    return json.loads(child.stdout)


CASES = {
    # name: (links to make {name in mesh: target}, expected codes)
    "file-outside": ({"secret.yaml": "OUT/secret.yaml"}, ["outside-mesh"]),
    "etc-passwd": ({"passwd.yaml": "/etc/passwd"}, ["outside-mesh"]),
    "proc-environ": ({"environ.yml": "/proc/self/environ"}, ["outside-mesh"]),
    "relative-dotdot": ({"up.yaml": "../outside/secret.yaml"}, ["outside-mesh"]),
    "chain-leading-out": ({"a.yaml": "b.lnk", "b.lnk": "OUT/secret.yaml"}, ["outside-mesh"]),
    "directory-outside": ({"more": "OUT/more"}, []),  # not followed: extra.yaml is not part of the mesh
    "loop": ({"x.yaml": "y.yaml", "y.yaml": "x.yaml"}, ["unreadable-file", "unreadable-file"]),
    "inside": ({"copy.yaml": ".shared/pong.yaml"}, []),
}


@pytest.mark.parametrize("name", CASES)
def test_symlink_in_the_mesh_directory(name, places):
    mesh, outside = places
    (mesh / ".shared").mkdir()
    (mesh / ".shared" / "pong.yaml").write_text(EVENT % "pong")  # hidden: read only through a link
    links, expected = CASES[name]
    for link, target in links.items():
        os.symlink(target.replace("OUT", str(outside)), mesh / link)
    outcome = _validate(mesh, outside)
    print(json.dumps({"test": "T17", "case": name, "codes": outcome["codes"],
                      "opened_outside": len(outcome["opened"])}))
    assert outcome["codes"] == expected
    assert outcome["opened"] == []
    if name == "inside":
        assert "copy.yaml" in outcome["files"]


def test_a_handler_module_linked_from_outside_is_not_the_mesh_s(places):
    mesh, outside = places
    (mesh / "svc.yaml").write_text(SERVICE)
    os.symlink(outside / "h.py", mesh / "h.py")
    outcome = _validate(mesh, outside)
    assert outcome["codes"] == ["handler-not-allowed"]
    assert outcome["opened"] == []


def test_the_cli_names_the_link(places, meshctl):
    mesh, outside = places
    os.symlink(outside / "secret.yaml", mesh / "secret.yaml")
    result = meshctl("validate", mesh)
    assert result.exit_code == 1
    assert (
        f"{mesh / 'secret.yaml'}: error[outside-mesh]: symlink to {outside / 'secret.yaml'}, outside the mesh"
        in result.output
    )


def test_the_audit_hook_does_see_what_validate_opens(places):
    """The control: validating the outside directory itself opens its files, and the hook lists them."""
    _, outside = places
    assert any(path.endswith("secret.yaml") for path in _validate(outside, outside)["opened"])
