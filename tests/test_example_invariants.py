"""Every example in workflows/ declares the invariants its README promises (`kind: Check`,
docs/invariants.md), and its sample run keeps them all (a planted bug, as in buggy-checkout,
takes an exploration to find: `meshctl explore`)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.analysis.validate import check_mesh
from engine.language.loader import load_mesh

WORKFLOWS = Path(__file__).resolve().parent.parent / "workflows"
EXAMPLES = sorted(p for p in WORKFLOWS.iterdir() if p.is_dir())
# how each example's sample is run: its events, or (reports, which has none) a simulated day
SAMPLE = {"reports": ["--from", "2026-03-28T12:00:00Z", "--until", "1d"]}


def declared(example: Path) -> int:
    mesh, _ = load_mesh(str(example))
    return sum(len(check.invariants) for check in mesh.checks.values())


def sample(example: Path) -> list:
    return SAMPLE.get(example.name, ["--events", example / "events.jsonl"])


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_an_example_declares_invariants_and_its_readme_says_where(example):
    assert declared(example) >= 2
    assert "`checks.yaml`" in (example / "README.md").read_text(encoding="utf-8")  # names where they are


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_an_examples_checks_add_no_diagnostic(example):
    found = check_mesh(str(example)).diagnostics
    assert [d.format() for d in found if Path(d.loc.file).name == "checks.yaml"] == []


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_an_examples_sample_run_keeps_every_invariant(example, meshctl):
    result = meshctl("run", example, *sample(example), "--format", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["invariants"] == {"checked": declared(example), "violated": 0}


@pytest.mark.slow
@pytest.mark.parametrize("example", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_exploring_an_example_one_choice_deep_breaks_no_invariant(example, meshctl, tmp_path):
    """Every run one choice away from `meshctl run`'s (a failed, crashed or repeated attempt, an
    order of deliveries, a late input) keeps the invariants; a planted bug (buggy-*) is found."""
    counterexample = tmp_path / "ce.jsonl"
    result = meshctl("explore", example, *sample(example), "--depth", "1", "--time", "10m",
                     "--counterexample", counterexample)
    if example.name.startswith("buggy-"):
        assert result.exit_code == 3 and counterexample.is_file(), result.output
    else:
        assert result.exit_code == 0, result.output
        assert "coverage: every run within depth 1 (100%)" in result.output
