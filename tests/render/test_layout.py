"""The layered layout: deterministic, left to right, one box per service, edges around boxes."""
from __future__ import annotations

import doctest
import itertools
import os
import subprocess
import sys

import networkx as nx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from render_helpers import REPO, SHOP, example_dirs, views_of

from engine.render import layout as layout_module
from engine.render import render
from engine.render.labels import LABEL_HEIGHT, _overlap, sample
from engine.render.layout import EdgeSpec, _pav, layered_layout
from engine.render.svg import EDGE as EDGE_FONT
from engine.render.svg import layout_view, text_width
from engine.render.view import BACKWARD_KINDS

ALL_VIEWS = [(f"{p.name}-{n}", v) for p in example_dirs() + [SHOP] for n, v in views_of(p)]


def test_doctests():
    assert doctest.testmod(layout_module).failed == 0


def test_same_input_same_bytes(shop_flow):
    assert render(shop_flow, "svg") == render(shop_flow, "svg")


@pytest.mark.slow
def test_same_bytes_across_processes_and_hash_seeds():
    """Set or dict-of-set iteration anywhere would show up as a different hash seed's output."""
    code = (
        "import sys; sys.path.insert(0, 'tests/render'); from render_helpers import SHOP, views_of; "
        "from engine.render import render; import hashlib; "
        "print(hashlib.sha256(''.join(render(v, 'svg') for _, v in views_of(SHOP)).encode()).hexdigest())"
    )
    outs = {subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True,
                           env={**os.environ, "PYTHONHASHSEED": seed}).stdout for seed in ("1", "2", "3")}
    assert len(outs) == 1


@pytest.mark.parametrize(("name", "view"), ALL_VIEWS, ids=[n for n, _ in ALL_VIEWS])
def test_boxes_never_overlap(name, view):
    boxes = list(layout_view(view).boxes.values())
    for a, b in itertools.combinations(boxes, 2):
        apart = a.x + a.w <= b.x or b.x + b.w <= a.x or a.y + a.h <= b.y or b.y + b.h <= a.y
        assert apart, f"{a.id} overlaps {b.id}"


@pytest.mark.parametrize(("name", "view"), ALL_VIEWS, ids=[n for n, _ in ALL_VIEWS])
def test_groups_do_not_cover_foreign_nodes(name, view):
    lay = layout_view(view)
    group_of = {n.id: n.group for n in view.nodes}
    for piece in lay.groups:
        for box in lay.boxes.values():
            inside = piece.x < box.x + box.w / 2 < piece.x + piece.w and piece.y < box.cy < piece.y + piece.h
            assert not inside or group_of[box.id] == piece.name, f"{box.id} inside group {piece.name}"


@pytest.mark.parametrize(("name", "view"), ALL_VIEWS, ids=[n for n, _ in ALL_VIEWS])
def test_only_cycle_closing_edges_run_backwards(name, view):
    """An edge drawn right to left is a compensation, or closes a cycle between its boxes.

    Boxes are services here (one box per service), so the cycle is taken between services.
    """
    lay = layout_view(view)
    box = {n.id: n.group or n.id for n in view.nodes}
    g = nx.DiGraph((box[e.src], box[e.dst]) for e in view.edges)
    for e in view.edges:
        if lay.boxes[e.src].layer >= lay.boxes[e.dst].layer and e.kind not in BACKWARD_KINDS:
            assert box[e.src] == box[e.dst] or nx.has_path(g, box[e.dst], box[e.src]), e


def test_a_service_is_one_box_in_one_column(shop_flow):
    lay = layout_view(shop_flow)
    assert sorted(p.name for p in lay.groups) == ["billing", "gateway"]
    for piece in lay.groups:
        members = [lay.boxes[n.id] for n in shop_flow.nodes if n.group == piece.name]
        assert len({b.layer for b in members}) == 1
        for b in members:
            assert (
                piece.x < b.x
                and b.x + b.w < piece.x + piece.w
                and piece.y < b.y
                and b.y + b.h < piece.y + piece.h
            )


def test_long_edges_route_through_every_layer_they_cross():
    nodes = ["a", "b", "c", "d"]
    sizes = {n: (60.0, 30.0) for n in nodes}
    lay = layered_layout(nodes, sizes, [EdgeSpec("a", "b"), EdgeSpec("b", "c"), EdgeSpec("c", "d"),
                                        EdgeSpec("a", "d")])
    assert [lay.boxes[n].layer for n in nodes] == [0, 1, 2, 3]
    long_route = lay.routes[3].points
    for crossed in (lay.boxes["b"], lay.boxes["c"]):  # a straight run beside the box, across its column
        runs = [(p, q) for p, q in zip(long_route, long_route[1:])
                if p[1] == q[1] and p[0] <= crossed.x and q[0] >= crossed.x + crossed.w]
        assert runs and not crossed.y <= runs[0][0][1] <= crossed.y + crossed.h


@pytest.mark.parametrize(("name", "view"), ALL_VIEWS, ids=[n for n, _ in ALL_VIEWS])
def test_every_edge_ends_in_a_straight_run_into_its_target(name, view):
    """The last piece is level and at least a stub long, so the arrowhead points into the box."""
    lay = layout_view(view)
    for e, r in zip(view.edges, lay.routes):
        if r.self_loop:
            continue
        (x0, y0), (x1, y1) = r.points[-2:]
        target = lay.boxes[e.dst]
        assert y0 == y1 and abs(x1 - x0) >= 9.9, (e, r.points[-2:])
        assert x1 in (target.x, round(target.x + target.w, 1)) and target.y < y1 < target.y + target.h, e


@pytest.mark.parametrize(("name", "view"), ALL_VIEWS, ids=[n for n, _ in ALL_VIEWS])
def test_edges_go_around_boxes(name, view):
    """No drawn edge passes through a box other than its own two ends."""
    lay = layout_view(view)
    for e, r in zip(view.edges, lay.routes):
        for box in lay.boxes.values():
            if box.id in (e.src, e.dst):
                continue
            inside = [(x, y) for x, y in sample(r.points, 3.0)
                      if box.x + 1 < x < box.x + box.w - 1 and box.y + 1 < y < box.y + box.h - 1]
            assert not inside, f"{e.src} -> {e.dst} crosses {box.id} at {inside[0]}"


@pytest.mark.parametrize(("name", "view"), ALL_VIEWS, ids=[n for n, _ in ALL_VIEWS])
def test_edge_labels_sit_on_no_box_and_no_other_label(name, view):
    lay = layout_view(view)
    rects = []
    for e, r in zip(view.edges, lay.routes):
        if e.label:
            w = text_width(e.label, EDGE_FONT) + 8
            rects.append((e, (r.label_at[0] - w / 2, r.label_at[1] - LABEL_HEIGHT / 2, w, LABEL_HEIGHT)))
    boxes = [(b.x, b.y, b.w, b.h) for b in lay.boxes.values()] + [(p.x, p.y, p.w, p.h) for p in lay.groups]
    for i, (e, rect) in enumerate(rects):
        assert not any(_overlap(rect, b) for b in boxes), f"label of {e} on a box"
        assert not any(_overlap(rect, other) for _, other in rects[i + 1:]), f"label of {e} on another label"


def test_backward_edges_are_drawn_right_to_left():
    sizes = {"a": (60.0, 30.0), "b": (60.0, 30.0)}
    lay = layered_layout(["a", "b"], sizes, [EdgeSpec("a", "b"), EdgeSpec("b", "a", backward=True)])
    assert lay.boxes["a"].layer == 0 and lay.boxes["b"].layer == 1
    back = lay.routes[1]
    assert back.reversed and back.points[0][0] > back.points[-1][0]


def test_self_loop_and_empty_graph():
    lay = layered_layout(["a"], {"a": (50.0, 20.0)}, [EdgeSpec("a", "a")])
    assert lay.routes[0].self_loop
    assert layered_layout([], {}, []).boxes == {}


@given(st.lists(st.floats(-1e6, 1e6), max_size=30))
def test_pav_is_monotone_and_keeps_the_mean(values):
    out = _pav(values)
    assert len(out) == len(values)
    assert all(x <= y + 1e-6 for x, y in zip(out, out[1:]))
    if values:
        assert abs(sum(out) - sum(values)) <= 1e-6 * max(1.0, sum(abs(v) for v in values))
