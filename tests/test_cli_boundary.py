"""cli.py reaches the engine through its public API (`engine`) and use cases (`engine.commands`)."""
from __future__ import annotations

import ast
from pathlib import Path

CLI = Path(__file__).resolve().parents[1] / "cli.py"


def engine_imports(source: str) -> list[str]:
    """The engine modules imported anywhere in *source* (top level, functions, TYPE_CHECKING)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.append(node.module)
        elif isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
    return [m for m in found if m == "engine" or m.startswith("engine.")]


def test_cli_imports_only_the_public_api_and_use_cases():
    imports = engine_imports(CLI.read_text(encoding="utf-8"))
    assert imports  # the check sees the imports at all
    assert [m for m in imports if m != "engine" and not m.startswith("engine.commands.")] == []


def test_the_check_sees_an_import_inside_a_function():
    assert engine_imports("def f():\n    from engine.render import render\n") == ["engine.render"]
