"""`meshctl explain`: every code the engine can emit is explained, and every example triggers its code.

The codes are found in the engine's source: the code argument of every ``Diagnostic(...)``
call, followed through local variables, conditional expressions and the parameters of the
helper that builds it. A code written some other way fails here, so a new code cannot reach
users unexplained.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from ping_mesh import PING_MESH

from engine.analysis.validate import check_mesh
from engine.commands.explanations import explanations, markdown_table
from engine.commands.meshtest import run_tests

REPO = Path(__file__).resolve().parent.parent
ENGINE = REPO / "engine"


class _Codes:
    """The diagnostic codes of one module, with the places whose code could not be followed."""

    def __init__(self, path: Path):
        self.path = path
        self.tree = ast.parse(path.read_text(encoding="utf-8"))
        self.parent = {child: node for node in ast.walk(self.tree) for child in ast.iter_child_nodes(node)}
        self.calls = [n for n in ast.walk(self.tree) if isinstance(n, ast.Call)]
        self.found: set[str] = set()
        self.unresolved: list[str] = []
        for call in self.calls:
            if _callee(call) == "Diagnostic":
                arg = _argument(call, 1, "code")
                if arg is not None:
                    self.found |= self.resolve(arg, self.function_of(call))

    def function_of(self, node: ast.AST) -> ast.FunctionDef | None:
        while node in self.parent:
            node = self.parent[node]
            if isinstance(node, ast.FunctionDef):
                return node
        return None

    def resolve(self, expr: ast.AST, func: ast.FunctionDef | None, depth: int = 0) -> set[str]:
        if isinstance(expr, ast.Constant) and isinstance(expr.value, str):
            return {expr.value}
        if isinstance(expr, ast.IfExp):
            return self.resolve(expr.body, func, depth) | self.resolve(expr.orelse, func, depth)
        if isinstance(expr, ast.Name) and func is not None and depth < 5:
            assigned = [n.value for n in ast.walk(func) if isinstance(n, ast.Assign)
                        and any(isinstance(t, ast.Name) and t.id == expr.id for t in n.targets)]
            if assigned:
                return set().union(*(self.resolve(value, func, depth + 1) for value in assigned))
            params = [a.arg for a in func.args.args]
            if expr.id in params:
                callers = [c for c in self.calls if _callee(c) == func.name]
                args = [(_argument(c, params.index(expr.id), expr.id), c) for c in callers]
                return set().union(set(), *(self.resolve(a, self.function_of(c), depth + 1)
                                             for a, c in args if a is not None))
        self.unresolved.append(f"{self.path.name}:{expr.lineno}")
        return set()


def _callee(call: ast.Call) -> str | None:
    if isinstance(call.func, ast.Name):
        return call.func.id
    return call.func.attr if isinstance(call.func, ast.Attribute) else None


def _argument(call: ast.Call, index: int, name: str) -> ast.AST | None:
    if index < len(call.args):
        return call.args[index]
    return next((k.value for k in call.keywords if k.arg == name), None)


def engine_codes() -> set[str]:
    found: set[str] = set()
    unresolved: list[str] = []
    for path in sorted(ENGINE.rglob("*.py")):
        codes = _Codes(path)
        found |= codes.found
        unresolved += codes.unresolved
    assert not unresolved, f"write these diagnostic codes as string literals: {unresolved}"
    return found


def test_the_code_finder_follows_variables_and_helpers(tmp_path):
    module = tmp_path / "checks.py"
    module.write_text(
        "def helper(loc, code):\n    return Diagnostic(loc, code, 'm')\n"
        "def a(loc, python):\n    code = 'unsafe-tag' if python else 'unsupported-tag'\n"
        "    yield Diagnostic(loc, code, 'm')\n    yield helper(loc, 'unknown-service')\n"
        "    yield helper(loc, code='unknown-policy')\n"
        "    yield Diagnostic(loc, code=CODES[0], message='m')\n"
    )
    codes = _Codes(module)
    assert codes.found == {"unsafe-tag", "unsupported-tag", "unknown-service", "unknown-policy"}
    assert len(codes.unresolved) == 1


@pytest.mark.slow
def test_every_code_the_engine_emits_is_explained():
    used = engine_codes()
    assert len(used) > 50  # the finder sees the engine at all
    missing = used - set(explanations())
    assert not missing, f"add these codes to engine/explanations.toml: {sorted(missing)}"
    assert set(explanations()) - used == set(), "explanations of codes nothing emits"


def test_docs_validate_code_table_is_generated_from_the_explanations():
    page = (REPO / "docs" / "validate.md").read_text(encoding="utf-8")
    table = re.search(r"^## Diagnostic codes\n.*?\n(\| code \|.*?\n)(?:\n|\Z)", page, re.S | re.M)
    assert table is not None
    assert table.group(1) == markdown_table(), "regenerate it: python -m engine.commands.explanations"


def test_every_test_file_code_is_in_the_table_of_docs_testing():
    page = (REPO / "docs" / "testing.md").read_text(encoding="utf-8")
    section = page.split("## Errors in test files", 1)[1]
    listed = set(re.findall(r"`([a-z]+(?:-[a-z]+)+)`", section))
    assert {e.code for e in explanations().values() if e.page == "testing"} <= listed


def test_every_entry_is_complete():
    for entry in explanations().values():
        assert entry.severity in ("error", "warning", "info"), entry.code
        assert entry.page in ("validate", "testing", "run"), entry.code
        assert (REPO / "docs" / f"{entry.page}.md").exists()
        assert entry.example_kind in ("mesh", "test", "text"), entry.code
        assert all(len(getattr(entry, f).strip()) > 10 for f in ("explanation", "example")), entry.code


MESH_EXAMPLES = [e for e in explanations().values() if e.example_kind == "mesh"]
TEST_EXAMPLES = [e for e in explanations().values() if e.example_kind == "test"]


@pytest.mark.parametrize("entry", MESH_EXAMPLES, ids=lambda e: e.code)
def test_each_mesh_example_triggers_its_code_with_its_severity(tmp_path, entry):
    (tmp_path / "mesh.yaml").write_text(entry.example.lstrip("\n"), encoding="utf-8")
    found = {(d.code, d.severity) for d in check_mesh(str(tmp_path)).diagnostics}
    assert (entry.code, entry.severity) in found


@pytest.mark.parametrize("entry", TEST_EXAMPLES, ids=lambda e: e.code)
def test_each_test_file_example_triggers_its_code(tmp_path, entry):
    (tmp_path / "mesh.yaml").write_text(PING_MESH, encoding="utf-8")
    (tmp_path / "example.test.yaml").write_text(entry.example.lstrip("\n"), encoding="utf-8")
    assert entry.code in {d.code for d in run_tests(str(tmp_path), None).diagnostics}


@pytest.mark.parametrize(("args", "code", "expect"), [
    (["explain", "event-cycle"], 0, "event-cycle (error): circular events"),
    (["explain", "bounded-loop"], 0, "Fix: intentional: the runtime stops it after N hops"),
    (["explain", "duplicate-test"], 0, "See docs/testing.md."),
    (["explain", "warning[bounded-loop]:"], 0, "bounded-loop (warning): circular events through a consumer"),
    (["explain", "wrong-typ"], 2,
     "meshctl: unknown diagnostic code 'wrong-typ': did you mean 'wrong-type'?\n"),
    (["explain", "zzzz"], 2, "`meshctl explain --list` lists them"),
    (["explain"], 2, "give a diagnostic CODE"),
])
def test_explain_command(meshctl, args, code, expect):
    result = meshctl(*args)
    assert result.exit_code == code
    assert expect in result.output


def test_explain_shows_the_example_indented(meshctl):
    output = meshctl("explain", "duplicate-key").output
    assert "Example:\n    apiVersion: meshctl/v1\n" in output
    assert "    metadata: {name: pong}\n" in output


def test_explain_list_has_one_line_per_code(meshctl):
    lines = meshctl("explain", "--list").output.splitlines()
    assert len(lines) == len(explanations())
    assert lines[0].split()[:2] == ["no-such-path", "error"]
