"""T18: a `call: {python: ...}` reference reaches only the mesh's own modules or those it allows.

``os:system``, ``builtins:eval``, ``subprocess:Popen``, a module that does not exist and an
importable module outside the mesh directory are each refused: by `validate` as a located
``handler-not-allowed``, and by the runtime with ``HandlerNotAllowed`` before any import.
Everything runs in a child process that watches imports three ways: an audit hook on
``import``, ``exec``, ``open``, ``os.system`` and ``subprocess.Popen``; a finder first on
``sys.meta_path`` that records every module looked up; and a spy on
``importlib.import_module`` (the audit ``import`` event fires for ``import`` statements
only, and a missing module opens no file). The user modules also write a marker file when
imported. The control (an allowed call that does import) proves the watchers see it.
`validate` and `render` of a valid mesh with Python handlers import and execute none of its
modules (an allowed module is only looked up, to report one that is not installed); a module
of the mesh directory is only opened to be parsed, for the `handler-module-state` check.
"""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REFUSED = ["os:system", "builtins:eval", "subprocess:Popen", "no_such_module_zz:run", "outside_mod:go"]

CHILD = textwrap.dedent("""
    import json, sys
    mesh, action = sys.argv[1], sys.argv[2]
    import importlib
    seen = []
    WATCHED = ("handlers", "outside_mod", "no_such_module_zz", "subprocess", "os", "builtins")
    WATCHED_FILES = ("handlers.py", "outside_mod.py")
    WATCHED_FILES = ("handlers.py", "outside_mod.py")
    class Finder:
        @staticmethod
        def find_spec(name, path=None, target=None):
            if name.split(".")[0] in WATCHED:
                seen.append(["find", name])
    real_import_module = importlib.import_module
    def import_module(name, package=None):
        if name.split(".")[0] in WATCHED:
            seen.append(["import_module", name])
        return real_import_module(name, package)
    def hook(event, args):
        if event == "import" and str(args[0]).split(".")[0] in WATCHED:
            seen.append(["import", str(args[0])])
        elif event == "open" and isinstance(args[0], str) and args[0].endswith(WATCHED_FILES):
            seen.append(["open", args[0]])
        elif event == "exec" and getattr(args[0], "co_filename", "").endswith(WATCHED_FILES):
            seen.append(["exec", args[0].co_filename])
        elif event in ("os.system", "subprocess.Popen"):
            seen.append([event, str(args[0])])
    already = "subprocess" in sys.modules
    from engine.analysis.validate import check_mesh
    from engine.runtime.actions import ActionFailed, Toolbox
    from cli import main
    out = {"subprocess_already_imported": already}
    sys.addaudithook(hook)
    sys.meta_path.insert(0, Finder)
    importlib.import_module = import_module
    if action == "validate":
        result = check_mesh(mesh)
        out["codes"] = sorted(d.code for d in result.diagnostics)
        out["lines"] = sorted(d.loc.line for d in result.diagnostics)
    elif action == "render":
        try:
            main(["render", mesh, "--format", "mermaid", "-o", mesh + "/flow.mmd"])
        except SystemExit as e:
            out["exit"] = e.code
    else:
        allow = tuple(a for a in action.split(",")[1:] if a)
        tools = Toolbox(mesh, allow=allow)
        out["results"] = {}
        for ref in sys.argv[3:]:
            try:
                out["results"][ref] = "resolved:" + tools.function(ref).__name__
            except ActionFailed as exc:
                out["results"][ref] = exc.error_type
    out["seen"] = seen
    print(json.dumps(out))
""")

MARK = "import pathlib, os\npathlib.Path(os.environ['MARKERS'], __name__.split('.')[-1]).touch()\n"
EVENT = "apiVersion: meshctl/v1\nkind: EventType\nmetadata: {name: ping}\nspec: {external: true}\n---\n"
SERVICE = textwrap.dedent("""\
    apiVersion: meshctl/v1
    kind: Service
    metadata: {name: svc}
    spec:
      subscriptions:
        - on: ping
          do: [%s]
""")


@pytest.fixture
def setup(tmp_path):
    mesh, lib, markers = tmp_path / "mesh", tmp_path / "lib", tmp_path / "markers"
    for d in (mesh, lib, markers):
        d.mkdir()
    (mesh / "handlers.py").write_text(MARK + "def go(event, context):\n    return {}\n")
    (lib / "outside_mod.py").write_text(MARK + "def go(event, context):\n    return {}\n")
    return mesh, lib, markers


def _child(setup, action: str, *refs: str) -> dict:
    mesh, lib, markers = setup
    repo = Path(__file__).resolve().parents[2]
    env = {"PYTHONPATH": f"{lib}:{repo}", "MARKERS": str(markers), "PATH": "/usr/bin:/bin"}
    child = subprocess.run([sys.executable, "-c", CHILD, str(mesh), action, *refs], capture_output=True,
                           text=True, timeout=60, env=env)
    assert child.returncode == 0, child.stderr[-2000:]
    return json.loads(child.stdout)


def _unread(seen: list) -> list:
    """*seen* without the reading of the mesh directory's handlers.py (parsed by validate, never run)."""
    return [[kind, what] for kind, what in seen if not (kind == "open" and Path(what).name == "handlers.py")]


def _mesh(mesh: Path, refs: list[str]) -> None:
    (mesh / "mesh.yaml").write_text(EVENT + SERVICE % ", ".join(f'{{call: {{python: "{r}"}}}}' for r in refs))


def test_validate_refuses_every_reference_outside_the_allowlist_without_importing(setup):
    mesh, _, markers = setup
    _mesh(mesh, REFUSED + ["handlers:go"])
    outcome = _child(setup, "validate")
    print(json.dumps({"test": "T18", "step": "validate", "refs": len(REFUSED) + 1, "codes": outcome["codes"],
                      "audited": outcome["seen"]}))
    assert outcome["codes"] == ["handler-not-allowed"] * len(REFUSED)
    assert outcome["lines"] == [12] * len(REFUSED)  # all on the `do:` line, each at its own column
    assert _unread(outcome["seen"]) == [] and list(markers.iterdir()) == []


def test_the_runtime_refuses_them_before_any_import(setup):
    _, _, markers = setup
    outcome = _child(setup, "toolbox", *REFUSED)
    print(json.dumps({"test": "T18", "step": "runtime", "results": outcome["results"],
                      "audited": outcome["seen"]}))
    assert outcome["results"] == {ref: "HandlerNotAllowed" for ref in REFUSED}
    assert outcome["seen"] == [] and list(markers.iterdir()) == []


def test_control_allowed_modules_are_imported_and_the_hook_sees_it(setup):
    _, _, markers = setup
    outcome = _child(setup, "toolbox,outside_mod", "handlers:go", "outside_mod:go", "os:system")
    assert outcome["results"] == {"handlers:go": "resolved:go", "outside_mod:go": "resolved:go",
                                  "os:system": "HandlerNotAllowed"}
    kinds = {(kind, Path(what).name) for kind, what in outcome["seen"]}
    assert {("exec", "handlers.py"), ("import_module", "outside_mod"), ("find", "outside_mod"),
            ("exec", "outside_mod.py")} <= kinds
    assert sorted(p.name for p in markers.iterdir()) == ["handlers", "outside_mod"]


def test_validate_and_render_of_a_valid_mesh_import_no_user_code(setup):
    mesh, _, markers = setup
    _mesh(mesh, ["handlers:go", "outside_mod:go"])
    (mesh / "settings.yaml").write_text("apiVersion: meshctl/v1\nkind: Mesh\nmetadata: {name: m}\n"
                                        "spec: {allow_modules: [outside_mod]}\n")
    validated = _child(setup, "validate")
    rendered = _child(setup, "render")
    print(json.dumps({"test": "T18", "step": "validate+render",
                      "audited": validated["seen"] + rendered["seen"]}))
    assert validated["codes"] == [] and rendered.get("exit", 0) == 0
    assert (mesh / "flow.mmd").read_text().startswith("---")
    # an allowed module is looked up (does it exist?), not loaded
    for seen in (validated["seen"], rendered["seen"]):
        assert [kind for kind, what in _unread(seen) if (kind, what) != ("find", "outside_mod")] == []
        assert len(_unread(seen)) < len(seen)  # handlers.py was read, to be parsed: the watcher sees reads
    assert list(markers.iterdir()) == []


def test_a_private_function_is_refused():
    from engine.runtime.actions import ActionFailed, Toolbox

    with pytest.raises(ActionFailed) as caught:
        Toolbox("/nonexistent").function("os:_exit")
    assert caught.value.error_type == "HandlerNotAllowed"


def test_a_run_calls_an_allowed_module_and_dead_letters_a_refused_one(tmp_path, monkeypatch):
    """End to end: the runtime takes its allowlist from the mesh's `Mesh` document."""
    from engine.core.errors import Location
    from engine.language.loader import load_mesh
    from engine.runtime.events import normalise
    from engine.runtime.interpreter import Runtime
    from engine.runtime.trace import Trace

    lib, mesh_dir = tmp_path / "lib", tmp_path / "mesh"
    lib.mkdir()
    mesh_dir.mkdir()
    (lib / "t18_shared_handlers.py").write_text(
        "def go(event, context):\n    return {'n': event['data']['n']}\n"
    )
    monkeypatch.syspath_prepend(str(lib))
    _mesh(mesh_dir, ["t18_shared_handlers:go"])
    event = normalise({"id": "e1", "source": "t", "type": "ping", "data": {"n": 7}}, Location("t", 1, 1), 0)

    refused = Runtime(load_mesh(str(mesh_dir))[0])
    refused.run([event])
    assert [(d.reason, d.error_type) for d in refused.store.dead_letters()] == [
        ("non-retryable", "HandlerNotAllowed")
    ]

    (mesh_dir / "settings.yaml").write_text("apiVersion: meshctl/v1\nkind: Mesh\nmetadata: {name: m}\n"
                                            "spec: {allow_modules: [t18_shared_handlers]}\n")
    records: list[dict] = []
    allowed = Runtime(load_mesh(str(mesh_dir))[0], trace=Trace(records))
    allowed.run([event])
    assert allowed.store.dead_letters() == []
    assert [r.get("target") for r in records if r["kind"] == "call"] == ["python:t18_shared_handlers:go"]
