"""Every intentionally broken file under tests/cases/invalid carries its expected diagnostics.

Header lines ``# expect: LINE:COL SEVERITY CODE`` list exactly what `meshctl validate` must
report, positions included.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

CASES = sorted((Path(__file__).parent / "cases" / "invalid").glob("*.yaml"))
EXPECT = re.compile(r"^# expect: (\d+):(\d+) (error|warning) ([a-z-]+)$", re.M)


@pytest.mark.parametrize("case", CASES, ids=[c.stem for c in CASES])
def test_invalid_case_reports_exactly_its_expected_diagnostics(case, meshctl, diagnostics):
    expected = [(int(line), int(col), s, code) for line, col, s, code in EXPECT.findall(case.read_text())]
    assert expected, f"{case.name} has no '# expect:' header"
    assert sorted(diagnostics(case)) == sorted(expected)
    result = meshctl("validate", case)
    assert result.exit_code == 1
    assert "Traceback" not in result.output


def test_cycle_output_names_the_path_and_every_location(meshctl):
    case = Path(__file__).parent / "cases" / "invalid" / "event-cycle.yaml"
    out = meshctl("validate", case).output
    assert (f"{case}:17:11: error[event-cycle]: circular events: "
            "a.created -> svc-x -> b.done -> svc-y -> a.created") in out
    for note in ("17:11: note: service 'svc-x' consumes a.created",
                 "18:26: note: service 'svc-x' emits b.done", "33:11: note: service 'svc-y' consumes b.done",
                 "34:26: note: service 'svc-y' emits a.created"):
        assert f"{case}:{note}" in out
    assert "hint: break the loop, or declare it intentional with `loop: {max_hops: N}`" in out


@pytest.mark.parametrize("case", CASES, ids=[c.stem for c in CASES])
def test_invalid_case_text_output_matches_golden(case, meshctl, monkeypatch):
    """The full human output (messages, notes, hints) is pinned; UPDATE_GOLDEN=1 rewrites it."""
    repo = Path(__file__).resolve().parent.parent
    monkeypatch.chdir(repo)
    output = meshctl("validate", case.relative_to(repo)).output
    golden = case.with_suffix(".out")
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(output)
    assert output == golden.read_text()
