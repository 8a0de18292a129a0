"""Documentation stays in step with the code: every diagnostic code is explained, and
examples meant to be pasted run as the page says."""
from __future__ import annotations

import re
from pathlib import Path

from cli import main

REPO = Path(__file__).resolve().parent.parent
NOT_CODES = {"dead-letters", "utf-8-sig"}  # kebab-case literals that are not diagnostic codes


def test_every_diagnostic_code_is_documented():
    pipeline = ("language/source", "language/schema", "language/build", "language/loader", "analysis/rules",
                # the modules that make diagnostics
                "analysis/validate", "analysis/feasibility", "analysis/handlerstate", "cluster/publish",
                "language/admission", "language/cron", "analysis/versions", "analysis/subruns",
                "analysis/invariants")
    source = "".join((REPO / "engine" / f"{name}.py").read_text() for name in pipeline)
    used = set(re.findall(r'"([a-z]+(?:-[a-z]+)+)"', source)) - NOT_CODES
    documented = set(re.findall(r"^\| `([a-z-]+)` \|", (REPO / "docs" / "validate.md").read_text(), re.M))
    assert used - documented == set()
    assert documented - used == set()


def _blocks_after(text: str, heading: str) -> list[str]:
    """The fenced blocks of the section that starts at *heading*, in order."""
    section = text[text.index(heading):]
    section = section[:section.find("\n### ", 1)] if "\n### " in section[1:] else section
    return re.findall(r"```[a-z]*\n(.*?)```", section, re.S)


def test_the_pruning_example_of_pitfalls_runs_as_pasted(runner, tmp_path, monkeypatch):
    blocks = _blocks_after((REPO / "docs" / "pitfalls.md").read_text(), "### 3. Pruning")
    mesh, printed, printed_when = blocks[0], blocks[1], blocks[2]
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mesh.yaml").write_text(mesh, encoding="utf-8")
    assert runner.invoke(main, ["validate", "mesh.yaml"]).output == printed
    match = "      match: {data: {status: [failed]}}\n"
    assert match in mesh
    (tmp_path / "mesh.yaml").write_text(mesh.replace(match, "      when: \"data.status == 'failed'\"\n"))
    assert runner.invoke(main, ["validate", "mesh.yaml"]).output.splitlines()[0] == printed_when.strip()
