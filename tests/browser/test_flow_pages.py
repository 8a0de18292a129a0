"""The HTML diagram pages in chromium: they fit the window on load, zoom, pan, reset, show tooltips.

Issue #15 measured, at 1280x800, 12 of 52 shapes of arena's flow page and 10 of 26 of orders'
orchestration page outside the window, and a page that scrolled sideways.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from cli import main

REPO = Path(__file__).resolve().parents[2]
PAGES = {
    "orders-flow": ["workflows/orders"],
    "orders-fulfil-order": ["workflows/orders", "--orchestration", "fulfil-order"],
    "arena-flow": ["workflows/arena"],
    # the shapes of stage 13: wait steps, child runs, schedules, breaker and version badges
    "payments-collect-payment": ["workflows/payments", "--orchestration", "collect-payment"],
    "trip-booking-flow": ["workflows/trip-booking"],
    "trip-booking-book-trip": ["workflows/trip-booking", "--orchestration", "book-trip"],
    "reports-flow": ["workflows/reports"],
    "billing-flow": ["workflows/billing"],
    "versions-flow": ["workflows/versions"],
}
SIZES = [(1280, 800), (1920, 1080)]

BOXES = """() => [...document.querySelectorAll('figure.diagram g.node')].map(g => {
    const r = g.getBoundingClientRect();
    return {id: g.querySelector('text').textContent, left: r.left, top: r.top, right: r.right,
            bottom: r.bottom, width: r.width};
})"""


def render_page(name: str, out: Path) -> Path:
    """``meshctl render ... --format html`` of one of the PAGES, written under *out*."""
    path = out / f"{name}.html"
    args = [str(REPO / PAGES[name][0]), *PAGES[name][1:], "--format", "html", "-o", str(path)]
    result = CliRunner().invoke(main, ["render", *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return path


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    out = tmp_path_factory.mktemp("pages")
    return {name: render_page(name, out) for name in PAGES}


def scale(page) -> float:
    return float(page.get_attribute("figure.diagram", "data-scale"))


def fit_scale(page) -> float:
    return float(page.get_attribute("figure.diagram", "data-fit-scale"))


def node_count(html_path: Path) -> int:
    return html_path.read_text(encoding="utf-8").count('<g class="node ')


@pytest.mark.parametrize("size", SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
@pytest.mark.parametrize("name", list(PAGES))
def test_page_fits_the_window_on_load(open_page, pages, name, size):
    page = open_page(pages[name], *size)
    assert page.evaluate("document.scrollingElement.scrollWidth <= innerWidth"), "the page scrolls sideways"
    boxes = page.evaluate(BOXES)
    assert len(boxes) == node_count(pages[name]) > 0
    width, height = size
    outside = [
        b["id"] for b in boxes if b["left"] < 0 or b["top"] < 0 or b["right"] > width or b["bottom"] > height
    ]
    assert not outside, f"{len(outside)} of {len(boxes)} boxes outside the {width}x{height} window: {outside}"
    assert scale(page) == fit_scale(page)


@pytest.mark.parametrize("name", list(PAGES))
def test_buttons_zoom_and_fit_restores_the_first_view(open_page, pages, name):
    page = open_page(pages[name])
    first, fitted = page.evaluate(BOXES), scale(page)
    page.click("button[data-zoom=in]")
    assert scale(page) == pytest.approx(fitted * 1.25, rel=1e-3)
    zoomed = page.evaluate(BOXES)
    assert zoomed[0]["width"] == pytest.approx(first[0]["width"] * 1.25, rel=0.02)
    page.click("button[data-zoom=out]")
    page.click("button[data-zoom=out]")
    assert scale(page) == pytest.approx(fitted / 1.25, rel=1e-3)
    page.click("button[data-zoom=fit]")
    assert scale(page) == fitted
    assert_same_boxes(page.evaluate(BOXES), first)


def assert_same_boxes(now: list[dict], before: list[dict]) -> None:
    assert [b["id"] for b in now] == [b["id"] for b in before]
    for a, b in zip(now, before):
        for key in ("left", "top", "right", "bottom"):
            assert a[key] == pytest.approx(b[key], abs=0.5), (a["id"], key)


@pytest.mark.parametrize("name", list(PAGES))
def test_wheel_zooms_around_the_pointer(open_page, pages, name):
    page = open_page(pages[name])
    viewer = page.locator("figure.diagram .viewer").bounding_box()
    x, y = viewer["x"] + viewer["width"] * 0.4, viewer["y"] + viewer["height"] * 0.5
    under = (
        "([x, y]) => { const svg = document.querySelector('figure.diagram svg');"
        " const p = new DOMPoint(x, y).matrixTransform(svg.getScreenCTM().inverse()); return [p.x, p.y]; }"
    )
    before, fitted = page.evaluate(under, [x, y]), scale(page)
    page.mouse.move(x, y)
    page.mouse.wheel(0, -240)
    page.wait_for_function(f"Number(document.querySelector('figure.diagram').dataset.scale) > {fitted}")
    assert scale(page) > fitted * 1.2
    assert page.evaluate(under, [x, y]) == pytest.approx(before, abs=1.0)  # the point under the pointer stays
    page.mouse.wheel(0, 480)
    page.wait_for_function(f"Number(document.querySelector('figure.diagram').dataset.scale) < {fitted}")


@pytest.mark.parametrize("name", list(PAGES))
def test_keyboard_and_drag_pan_and_zoom(open_page, pages, name):
    page = open_page(pages[name])
    first, fitted = page.evaluate(BOXES), scale(page)
    page.focus("figure.diagram")
    page.keyboard.press("+")
    assert scale(page) == pytest.approx(fitted * 1.25, rel=1e-3)
    page.keyboard.press("-")
    page.keyboard.press("-")
    assert scale(page) < fitted
    page.keyboard.press("0")
    assert scale(page) == fitted
    page.keyboard.press("ArrowRight")  # the view moves right: the drawing moves left
    moved = page.evaluate(BOXES)
    assert moved[0]["left"] == pytest.approx(first[0]["left"] - 60, abs=0.5)
    assert moved[0]["top"] == pytest.approx(first[0]["top"], abs=0.5)
    page.keyboard.press("0")
    viewer = page.locator("figure.diagram .viewer").bounding_box()
    x, y = viewer["x"] + 5, viewer["y"] + viewer["height"] - 5
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + 40, y - 30, steps=4)
    page.mouse.up()
    dragged = page.evaluate(BOXES)
    assert dragged[0]["left"] == pytest.approx(first[0]["left"] + 40, abs=0.5)
    assert dragged[0]["top"] == pytest.approx(first[0]["top"] - 30, abs=0.5)
    page.keyboard.press("0")
    assert_same_boxes(page.evaluate(BOXES), first)


# A point on the middle of an edge that nothing is drawn over (labels and boxes are on top).
EDGE_POINT = """() => {
    for (const link of document.querySelectorAll('figure.diagram g.link')) {
        const path = link.querySelector('path.edge'), length = path.getTotalLength();
        for (const f of [0.5, 0.3, 0.7, 0.2, 0.8]) {
            const p = path.getPointAtLength(length * f).matrixTransform(path.getScreenCTM());
            const hit = document.elementFromPoint(p.x, p.y);
            if (hit && hit.closest('g.link') === link) {
                return {x: p.x, y: p.y, tip: link.getAttribute('data-tip')};
            }
        }
    }
    return null;
}"""


@pytest.mark.parametrize("name", list(PAGES))
def test_hover_shows_the_tooltip_of_a_node_and_of_an_edge(open_page, pages, name):
    page = open_page(pages[name])
    tip = page.locator("figure.diagram .tip")
    assert tip.is_hidden()
    node = page.locator("figure.diagram g.node").first
    node.hover()
    assert tip.is_visible()
    label = node.locator("text").first.text_content()
    assert label in tip.text_content() and tip.text_content() == node.get_attribute("data-tip")
    edge = page.evaluate(EDGE_POINT)
    assert edge is not None, "no edge can be hovered"
    page.mouse.move(edge["x"], edge["y"])
    assert tip.is_visible() and tip.text_content() == edge["tip"] and " → " in edge["tip"]
    page.mouse.move(2, 2)  # off the diagram
    assert tip.is_hidden()
