"""Documentation stays in step with the code: every diagnostic code is explained."""
from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
NOT_CODES = {"dead-letters", "utf-8-sig"}  # kebab-case literals that are not diagnostic codes


def test_every_diagnostic_code_is_documented():
    pipeline = ("source", "schema", "build", "loader", "analysis", "check", "feasibility",
                "cluster/publish")  # the modules that make diagnostics
    source = "".join((REPO / "engine" / f"{name}.py").read_text() for name in pipeline)
    used = set(re.findall(r'"([a-z]+(?:-[a-z]+)+)"', source)) - NOT_CODES
    documented = set(re.findall(r"^\| `([a-z-]+)` \|", (REPO / "docs" / "validate.md").read_text(), re.M))
    assert used - documented == set()
    assert documented - used == set()
