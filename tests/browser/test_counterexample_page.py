"""A counterexample of `meshctl explore`, drawn by `meshctl render --trace --format html`, in a
real browser: the reader sees where the run was steered and which invariant broke."""
from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from cli import main

REPO = Path(__file__).resolve().parents[2]
BUGGY = REPO / "workflows" / "buggy-checkout"


@pytest.fixture(scope="module")
def counterexample_page(tmp_path_factory) -> Path:
    where = tmp_path_factory.mktemp("counterexample")
    trace, page = where / "ce.jsonl", where / "ce.html"
    runner = CliRunner()
    found = runner.invoke(main, ["explore", str(BUGGY), "--events", str(BUGGY / "events.jsonl"),
                                 "--counterexample", str(trace)])
    assert found.exit_code == 3, found.output
    drawn = runner.invoke(main, ["render", "--trace", str(trace), "--format", "html", "-o", str(page)])
    assert drawn.exit_code == 0, drawn.output
    return page


def test_the_choice_and_the_broken_invariant_are_drawn_and_in_view(open_page, counterexample_page):
    page = open_page(counterexample_page)
    choice = page.locator("#body g.item.choice")
    violation = page.locator("#body g.item.violation")
    assert choice.count() == 1 and violation.count() == 1
    assert choice.first.is_visible()
    assert "choice: fail" in choice.first.text_content()
    violation.first.scroll_into_view_if_needed()
    assert violation.first.is_visible()
    assert "invariant broken" in violation.first.text_content()


def test_hovering_the_choice_tells_what_was_chosen(open_page, counterexample_page):
    page = open_page(counterexample_page)
    page.locator("#body g.item.choice").first.hover()
    tip = page.locator("#tip")
    assert tip.is_visible()
    assert "failed (a failure from outside the mesh)" in tip.inner_text()


def test_the_table_lists_the_header_choice_and_violation_records(open_page, counterexample_page):
    page = open_page(counterexample_page)
    text = page.locator("table").first.inner_text()
    assert "choice" in text and "violation" in text
    assert "a cancelled order is never shipped" in text
