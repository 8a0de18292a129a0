"""Every example in workflows/ validates cleanly (the only warnings allowed are declared loops)."""
from __future__ import annotations

from pathlib import Path

import pytest

from engine.analysis.validate import check_mesh

EXAMPLES = sorted(p for p in (Path(__file__).resolve().parent.parent / "workflows").iterdir() if p.is_dir())


def test_there_are_examples():
    assert len(EXAMPLES) >= 3


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_validates(example, meshctl):
    result = check_mesh(str(example))
    assert result.errors == 0, [d.format() for d in result.diagnostics]
    assert {d.code for d in result.diagnostics} <= {"bounded-loop"}
    assert meshctl("validate", example).exit_code == 0
    assert (example / "README.md").is_file()
