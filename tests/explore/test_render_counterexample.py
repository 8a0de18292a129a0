"""`meshctl render --trace` draws a counterexample written by `meshctl explore`: its choices,
crashes and broken invariants are notes on the lifelines they concern."""
from __future__ import annotations

import json

import pytest
from checkout_runs import GATEWAY, Broken, gateway_attempt, session

from engine.explore import counterexample
from engine.explore.deviations import Deviation
from engine.explore.minimize import Minimal


class Located(Broken):
    def as_dict(self) -> dict:
        return {**super().as_dict(), "file": "checks.yaml", "line": 8, "col": 7, "key": "ord-1"}


@pytest.fixture
def trace_file(tmp_path):
    s = session("buggy-checkout")
    deviations = [Deviation("attempt", gateway_attempt(s, "o-1"), "fail"),
                  Deviation("attempt", gateway_attempt(s, "o-2"), "crash")]
    outcome = s.run(deviations, records=True)
    outcome.violations = [Located("checkout", "a cancelled order is never shipped", "shipped at 09:15")]
    path = tmp_path / "ce.jsonl"
    lines = counterexample.lines("workflows/buggy-checkout", Minimal(outcome.taken, s.inputs, outcome, 1), 0)
    path.write_text("\n".join(lines) + "\n")
    return path


def test_the_file_is_a_trace_with_a_header_choices_and_violations(trace_file):
    records = [json.loads(line) for line in trace_file.read_text().splitlines()]
    assert records[0]["kind"] == "counterexample" and len(records[0]["choices"]) == 2
    kinds = [r["kind"] for r in records]
    assert kinds.count("choice") == 2 and kinds.count("crash") == 1 and kinds[-1] == "violation"
    assert records[-1]["invariant"] == "a cancelled order is never shipped"


@pytest.mark.parametrize("fmt", ["mermaid", "svg", "html"])
def test_render_draws_choices_crashes_and_violations(meshctl, trace_file, fmt):
    result = meshctl("render", "--trace", trace_file, "--format", fmt)
    assert result.exit_code == 0, result.output
    out = result.output
    assert "choice: fail" in out and "choice: crash" in out
    assert "crash before ack" in out
    assert "invariant broken: checkout/a c" in out  # the label (shortened in SVG)
    whole = {"svg": "checks.yaml:8:7: checkout/a cancelled order is never shipped: shipped at 09:15",
             "html": "message=shipped at 09:15",  # the table of records (svg: the tooltip)
             "mermaid": "invariant broken"}[fmt]
    assert whole in out


def test_a_choice_is_drawn_on_the_lifeline_of_its_consumer(meshctl, trace_file):
    out = meshctl("render", "--trace", trace_file, "--format", "mermaid").output
    note = next(line for line in out.splitlines() if "choice: fail" in line)
    assert "gateway" in note and GATEWAY.split("/")[0].split(":")[1] == "gateway"
