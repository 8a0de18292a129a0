"""The run view (`meshctl render --trace --format html`) in a real browser, as a reader uses it.

The page is the README quick start's: `meshctl run workflows/orders ... --trace`, then
`meshctl render --trace ... --format html`.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli import main
from engine.render import render_trace, trace_view

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "render"))
from render_helpers import replicated  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
ORDERS = REPO / "workflows" / "orders"
SIZES = [(1280, 800), (1920, 1080)]


def meshctl(*args) -> str:
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def quick_start(tmp_path_factory) -> Path:
    """The quick start's run view: its page, next to its trace."""
    where = tmp_path_factory.mktemp("quick-start")
    trace, page = where / "orders.trace.jsonl", where / "orders-run.html"
    meshctl("run", ORDERS, "--events", ORDERS / "events.jsonl", "--trace", trace)
    meshctl("render", "--trace", trace, "--format", "html", "-o", page)
    return page


@pytest.fixture(scope="module")
def long_page(quick_start, tmp_path_factory) -> Path:
    """The quick start's trace 40 times over: 11,440 records, several pages of items and rows."""
    records = [
        json.loads(line) for line in quick_start.with_name("orders.trace.jsonl").read_text().splitlines()
    ]
    page = tmp_path_factory.mktemp("long") / "long.html"
    page.write_text(render_trace(trace_view(replicated(records, 40), "long"), "html"), encoding="utf-8")
    return page


def box(locator) -> dict:
    return locator.evaluate("e => { const r = e.getBoundingClientRect(); "
                            "return {left: r.left, right: r.right, top: r.top, bottom: r.bottom}; }")


def scale_of(page) -> float:
    return page.evaluate("document.querySelector('#body svg').getBoundingClientRect().width"
                         " / document.querySelector('#body svg').viewBox.baseVal.width")


def wait_for_filter(page) -> None:
    page.wait_for_timeout(300)  # the search box waits 120 ms after the last key


@pytest.mark.parametrize(("width", "height"), SIZES)
def test_fits_the_window_with_every_lane_in_view(open_page, quick_start, width, height):
    page = open_page(quick_start, width=width, height=height)
    assert page.evaluate("document.documentElement.scrollWidth") <= width  # no sideways page scroll
    lanes = page.locator("#heads g.lane")
    kinds = [g.get_attribute("class") for g in lanes.all()]
    assert kinds[:2] == ["lane ingress", "lane orchestration"]  # by first appearance: the work is in view
    assert len(kinds) == 6
    for lane in lanes.all():
        b = box(lane)
        assert 0 <= b["left"] and b["right"] <= width and 0 <= b["top"] and b["bottom"] <= height, b
    diagram = box(page.locator("#body svg"))
    assert diagram["right"] <= width and scale_of(page) <= 1


@pytest.mark.parametrize(("width", "height"), SIZES)
def test_every_shape_of_the_first_screen_is_inside_the_window_width(open_page, quick_start, width, height):
    page = open_page(quick_start, width=width, height=height)
    outside = page.evaluate("""() => [...document.querySelectorAll('#body g.item')]
        .map(g => g.getBoundingClientRect()).filter(r => r.left < 0 || r.right > innerWidth).length""")
    assert outside == 0


def test_zoom_buttons_keys_and_wheel_change_the_scale(open_page, quick_start):
    page = open_page(quick_start)
    fitted = scale_of(page)
    page.click("#z-in")
    assert scale_of(page) == pytest.approx(fitted * 1.25, rel=0.01)
    assert page.locator("#z-level").inner_text() == f"{round(fitted * 125)}%"
    page.click("#z-out")
    page.click("#z-out")
    assert scale_of(page) == pytest.approx(fitted / 1.25, rel=0.01)
    page.focus("#viewport")
    page.keyboard.press("+")
    assert scale_of(page) == pytest.approx(fitted, rel=0.01)
    page.keyboard.press("0")
    assert scale_of(page) == pytest.approx(fitted, rel=0.01)
    b = box(page.locator("#viewport"))
    page.mouse.move(b["left"] + 200, b["top"] + 200)
    page.keyboard.down("Control")
    page.mouse.wheel(0, -200)
    page.keyboard.up("Control")
    page.wait_for_timeout(100)
    assert scale_of(page) > fitted * 1.1
    page.click("#z-fit")
    assert scale_of(page) == pytest.approx(fitted, rel=0.01)
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280


def test_keys_and_a_plain_wheel_pan(open_page, quick_start):
    page = open_page(quick_start)
    page.focus("#viewport")
    page.keyboard.press("ArrowDown")
    assert page.evaluate("document.getElementById('viewport').scrollTop") > 0
    page.click("#z-in")
    page.click("#z-in")
    page.keyboard.press("ArrowRight")
    assert page.evaluate("document.getElementById('viewport').scrollLeft") > 0


def test_hover_shows_the_record_in_a_tooltip(open_page, quick_start):
    page = open_page(quick_start)
    tip = page.locator("#tip")
    assert tip.is_hidden()
    page.locator("#body g.item.deliver").first.hover()
    assert tip.is_visible()
    text = tip.inner_text()
    assert "order.placed" in text and "deliver" in text and "chk-00001" in text


@pytest.mark.parametrize(("width", "height"), SIZES)
def test_clicking_an_arrow_shows_its_row_below_the_sticky_header(open_page, quick_start, width, height):
    page = open_page(quick_start, width=width, height=height)
    arrow = page.locator("#body g.item.deliver").nth(12)
    arrow.click()
    page.wait_for_timeout(100)
    row = page.locator("#rows tr.sel")
    assert row.count() == 1
    seq = row.locator("td").first.inner_text()
    assert arrow.get_attribute("class") == "item deliver sel"
    r, head = box(row), box(page.locator("thead th").first)
    assert head["top"] == pytest.approx(0, abs=1)  # the header is stuck at the top
    assert r["top"] >= head["bottom"] - 0.5 and r["bottom"] <= height, (r, head)
    assert row.locator("td").nth(2).inner_text() == "deliver" and int(seq) > 1


def test_a_link_to_a_record_opens_on_it(open_page, quick_start):
    page = open_page(quick_start)
    page.goto("about:blank")
    page.goto(quick_start.as_uri() + "#r-111", wait_until="load")
    row = page.locator("#rows tr.sel")
    assert row.get_attribute("id") == "r-111" and row.locator("td").first.inner_text() == "112"
    r, head = box(row), box(page.locator("thead th").first)
    assert r["top"] >= head["bottom"] - 0.5 and r["bottom"] <= 800


def test_search_and_filters_reduce_rows_and_arrows(open_page, quick_start):
    page = open_page(quick_start)
    rows, items = page.locator("#rows tr"), page.locator("#body g.item")
    all_rows, all_items = rows.count(), items.count()
    assert all_rows == 200 and all_items > 150  # the table's first page
    page.fill("#f-search", "chk-00004")
    wait_for_filter(page)
    assert 0 < rows.count() < all_rows and 0 < items.count() < all_items
    assert all("chk-00004" in row.inner_text() for row in rows.all())
    assert "of 286 records" in page.locator("#f-shown").inner_text()
    page.fill("#f-search", "")
    wait_for_filter(page)
    assert items.count() == all_items
    page.select_option("#f-input", "chk-00004")
    by_input = rows.count()
    assert 0 < by_input < all_rows and 0 < items.count() < all_items
    page.select_option("#f-input", "")
    page.select_option("#f-run", "fulfil-order:chk-00004@/shop/checkout")
    assert 0 < rows.count() < by_input  # the run is a part of what its input caused
    page.select_option("#f-run", "")
    page.select_option("#f-kind", "retry")
    assert rows.count() == 2 and items.count() == 2
    assert [g.get_attribute("class") for g in page.locator("#heads g.lane").all()] == ["lane orchestration"]


def test_a_table_row_shows_its_arrow(open_page, quick_start):
    page = open_page(quick_start)
    page.locator("#rows button[data-show]").nth(40).click()
    assert page.locator("#body g.item.sel").count() == 1
    assert page.locator("#rows tr.sel").count() == 1


def test_a_long_trace_is_paged(open_page, long_page):
    page = open_page(long_page)
    assert page.locator("#body g.item").count() == 300
    assert page.locator("#rows tr").count() == 200
    pager = page.locator("#d-pager")
    assert "1–300 of" in pager.inner_text()
    pager.locator("button", has_text="later").click()
    assert "301–600 of" in pager.inner_text()
    assert page.locator("#body g.item").count() == 300
    page.locator("#t-pager button", has_text="later").click()
    assert page.locator("#rows tr").first.locator("td").first.inner_text() == "201"
    page.fill("#f-search", "chk-00004~7")
    wait_for_filter(page)
    assert page.locator("#d-pager").inner_text() == ""  # what is left fits one page
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280
