"""Shared fixtures: a click runner and a helper that writes inline YAML meshes to disk."""
from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli import main

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def meshctl(runner):
    """Run meshctl with arguments; returns click's Result (exit_code, output)."""
    def run(*args: str):
        return runner.invoke(main, [str(a) for a in args], catch_exceptions=False)
    return run


@pytest.fixture
def write(tmp_path):
    """Write dedented YAML text to a file in a temporary mesh directory and return its path."""
    def _write(text: str, name: str = "mesh.yaml") -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return path
    return _write


@pytest.fixture
def diagnostics(meshctl):
    """Validate a path and return [(line, col, severity, code)] from the JSON report."""
    def _diagnostics(path) -> list[tuple[int, int, str, str]]:
        result = meshctl("validate", "--format", "json", path)
        report = json.loads(result.output)
        return [(d["line"], d["col"], d["severity"], d["code"]) for m in report["meshes"] for d in m["diagnostics"]]
    return _diagnostics
