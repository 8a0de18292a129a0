"""`meshctl explore`, `meshctl run --replay-choices` and `choices:` in test files, through the CLI:
the planted bug of workflows/buggy-checkout is found, minimised, replayed and turned into a
regression test; the fixed mesh (workflows/checkout) spends the same bound with no violation."""
from __future__ import annotations

import json
import shutil

import pytest
from checkout_runs import REPO

BUGGY, FIXED = REPO / "workflows" / "buggy-checkout", REPO / "workflows" / "checkout"


def explore(meshctl, mesh, *more):
    return meshctl("explore", mesh, "--events", mesh / "events.jsonl", *more)


@pytest.fixture
def found(meshctl, tmp_path):
    """The counterexample of the buggy mesh, written to a file."""
    out = tmp_path / "ce.jsonl"
    result = explore(meshctl, BUGGY, "--counterexample", out)
    return result, out


def test_explore_finds_the_planted_bug_and_prints_a_minimised_counterexample(found):
    result, out = found
    assert result.exit_code == 3, result.output
    text = result.output
    assert "checks.yaml:8:7: invariant violated: checkout/a cancelled order is never shipped [key ord-1]" \
        in text
    assert "counterexample, minimised in" in text and "1 choice (found with 1), 1 of 2 inputs" in text
    assert "1. attempt service:gateway/payment.requested <- payment.requested" in text
    assert "failed (a failure from outside the mesh)" in text
    story = text.split("the run:")[1]
    assert story.index("emits order.cancelled") < story.index("emits order.shipped")  # the race, in order
    assert f"replay it: meshctl run {BUGGY} --replay-choices {out}" in text
    header = json.loads(out.read_text().splitlines()[0])
    assert header["kind"] == "counterexample" and len(header["choices"]) == 1 and len(header["events"]) == 1


def test_replaying_the_counterexample_breaks_the_same_invariant(meshctl, found, tmp_path):
    _, out = found
    trace = tmp_path / "again.jsonl"
    result = meshctl("run", BUGGY, "--replay-choices", out, "--trace", trace)
    assert result.exit_code == 3, result.output
    assert "replayed 1 of 1 choices" in result.output
    assert "invariant violated: checkout/a cancelled order is never shipped [key ord-1]" in result.output
    assert "invariants: 2 checked, 1 violated" in result.output
    written = [json.loads(line) for line in out.read_text().splitlines()]
    replayed = [json.loads(line) for line in trace.read_text().splitlines()]
    assert replayed == [r for r in written if "seq" in r]  # record for record, as explore saw it


def test_replay_on_the_full_input_and_on_the_fixed_mesh(meshctl, found):
    _, out = found
    full = meshctl("run", BUGGY, "--replay-choices", out, "--events", BUGGY / "events.jsonl")
    assert full.exit_code == 3 and "events in                    2" in full.output
    fixed = meshctl("run", FIXED, "--replay-choices", out)
    assert fixed.exit_code == 0, fixed.output
    assert "invariants: 2 checked, 0 violated" in fixed.output


def test_the_counterexample_is_drawn(meshctl, found, tmp_path):
    _, out = found
    page = tmp_path / "ce.html"
    result = meshctl("render", "--trace", out, "--format", "html", "-o", page)
    assert result.exit_code == 0, result.output
    assert "choice: fail" in page.read_text() and "invariant broken" in page.read_text()


def test_the_fixed_mesh_spends_the_same_bound_with_no_violation(meshctl):
    result = explore(meshctl, FIXED)
    assert result.exit_code == 0, result.output
    assert "coverage: every run within depth 2 (100%)" in result.output
    assert "no invariant broken within depth 2" in result.output


def test_a_search_cut_short_says_how_much_it_covered(meshctl):
    result = explore(meshctl, FIXED, "--max-runs", "5")
    assert result.exit_code == 0
    assert "explored 5 runs" in result.output and "(--max-runs reached" in result.output


def test_the_default_counterexample_file_is_named_after_the_mesh(meshctl, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert explore(meshctl, BUGGY).exit_code == 3
    assert (tmp_path / "buggy-checkout.counterexample.jsonl").is_file()


def test_the_regression_test_fails_on_the_bug_and_passes_once_fixed(meshctl, tmp_path):
    buggy, fixed = tmp_path / "buggy", tmp_path / "fixed"
    shutil.copytree(BUGGY, buggy)
    shutil.copytree(FIXED, fixed)
    test_file = buggy / "regression.test.yaml"
    result = explore(meshctl, buggy, "--counterexample", tmp_path / "ce.jsonl", "--write-test", test_file)
    assert result.exit_code == 3 and f"regression test: {test_file}" in result.output
    failing = meshctl("test", test_file)
    assert failing.exit_code == 1 and "expected every invariant to hold" in failing.output
    shutil.copy(test_file, fixed / "regression.test.yaml")
    passing = meshctl("test", fixed / "regression.test.yaml")
    assert passing.exit_code == 0, passing.output


def test_a_regression_test_outside_the_mesh_names_it(meshctl, tmp_path):
    outside = tmp_path / "elsewhere" / "checkout.test.yaml"
    outside.parent.mkdir()
    written = explore(meshctl, BUGGY, "--counterexample", tmp_path / "ce.jsonl", "--write-test", outside)
    assert written.exit_code == 3 and "mesh: " in outside.read_text()
    result = meshctl("test", outside)
    assert result.exit_code == 1
    assert "FAIL explore: checkout/a cancelled order is never shipped holds" in result.output


def test_a_choice_whose_point_never_comes_fails_the_test(meshctl, tmp_path):
    mesh = tmp_path / "fixed"
    shutil.copytree(FIXED, mesh)
    (mesh / "stale.test.yaml").write_text(
        "tests:\n  - name: stale\n    events: events.jsonl\n    choices:\n"
        "      - {kind: attempt, at: 'service:gateway/payment.requested <- payment.requested nope #1', "
        "choice: fail}\n    expect: {invariants: hold}\n")
    result = meshctl("test", mesh / "stale.test.yaml")
    assert result.exit_code == 1
    assert "stale.test.yaml:5:9: choices[0]: its point never came" in result.output


def test_a_bad_choice_in_a_test_file_is_located(meshctl, tmp_path):
    mesh = tmp_path / "fixed"
    shutil.copytree(FIXED, mesh)
    (mesh / "bad.test.yaml").write_text(
        "tests:\n  - name: bad\n    events: events.jsonl\n    choices:\n"
        "      - {kind: attempt, at: x, choice: explode}\n")
    result = meshctl("test", mesh / "bad.test.yaml")
    assert result.exit_code == 1
    assert "bad.test.yaml:5:" in result.output and "explode" in result.output


def test_usage_errors(meshctl, tmp_path):
    plain = tmp_path / "plain"
    shutil.copytree(FIXED, plain)
    (plain / "checks.yaml").unlink()
    no_checks = explore(meshctl, plain)
    assert no_checks.exit_code == 2 and "declares no invariants" in no_checks.output
    bad_time = explore(meshctl, FIXED, "--time", "soon")
    assert bad_time.exit_code == 2 and "--time 'soon'" in bad_time.output
    (tmp_path / "junk.json").write_text("[1]")
    junk = meshctl("run", FIXED, "--replay-choices", tmp_path / "junk.json")
    assert junk.exit_code == 2 and "junk.json:1:1: not a choices file" in junk.output
    durable = meshctl("run", FIXED, "--replay-choices", tmp_path / "junk.json", "--store", "sqlite:x.db")
    assert durable.exit_code == 2 and "drop --store" in durable.output
    (tmp_path / "no-events.json").write_text('{"choices": []}')
    missing = meshctl("run", FIXED, "--replay-choices", tmp_path / "no-events.json")
    assert missing.exit_code == 2 and "keeps no events: give --events FILE" in missing.output


def test_an_invalid_mesh_is_reported_as_by_validate(meshctl, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(FIXED, broken)
    checks = (FIXED / "checks.yaml").read_text()
    (broken / "checks.yaml").write_text(checks.replace("order.shipped", "order.shiped"))
    result = explore(meshctl, broken)
    assert result.exit_code == 1 and "checks.yaml:" in result.output and "order.shiped" in result.output


def test_choices_not_met_on_replay_are_reported(meshctl, tmp_path):
    choices = tmp_path / "choices.json"
    choices.write_text(json.dumps({"choices": [{"kind": "late", "at": "input nope", "choice": "1"}]}))
    result = meshctl("run", FIXED, "--replay-choices", choices, "--events", FIXED / "events.jsonl")
    assert result.exit_code == 0
    assert "replayed 0 of 1 choices" in result.output and "not met: input nope arrived late" in result.output


def test_a_mesh_of_schedules_is_explored_and_replayed_on_its_clock(meshctl, tmp_path):
    """No input: `--until` bounds the ticks, as for `run`, and the counterexample keeps the bounds."""
    reports = tmp_path / "reports"
    shutil.copytree(REPO / "workflows" / "reports", reports)
    (reports / "checks.yaml").write_text(
        "apiVersion: meshctl/v1\nkind: Check\nmetadata: {name: reports}\nspec:\n  invariants:\n"
        "    - name: no report on a Friday\n      always: report.due\n"
        "      that: \"{{ not data.at.startswith('2026-01-02') }}\"\n")
    out = tmp_path / "ce.jsonl"
    missing = meshctl("explore", reports)
    assert missing.exit_code == 2 and "needs --until" in missing.output
    found = meshctl("explore", reports, "--until", "3d", "--depth", "1", "--counterexample", out)
    assert found.exit_code == 3, found.output
    assert json.loads(out.read_text().splitlines()[0])["clock"]["span"] == 3 * 86400
    replayed = meshctl("run", reports, "--replay-choices", out)
    assert replayed.exit_code == 3 and "reports/no report on a Friday" in replayed.output
    no_test = meshctl("explore", reports, "--until", "3d", "--write-test", tmp_path / "t.test.yaml")
    assert no_test.exit_code == 2 and "no --from/--until yet" in no_test.output
