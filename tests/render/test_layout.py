"""The layered layout: deterministic, left to right, no overlapping boxes, cycles survive."""
from __future__ import annotations

import doctest
import itertools
import os
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.render import layout as layout_module, render
from engine.render.layout import EdgeSpec, _pav, layered_layout
from engine.render.svg import layout_view
from render_helpers import REPO, SHOP, example_dirs, views_of

ALL_VIEWS = [(f"{p.name}-{n}", v) for p in example_dirs() + [SHOP] for n, v in views_of(p)]


def test_doctests():
    assert doctest.testmod(layout_module).failed == 0


def test_same_input_same_bytes(shop_flow):
    assert render(shop_flow, "svg") == render(shop_flow, "svg")


def test_same_bytes_across_processes_and_hash_seeds():
    """Set or dict-of-set iteration anywhere would show up as a different hash seed's output."""
    code = ("import sys; sys.path.insert(0, 'tests/render'); from render_helpers import SHOP, views_of; "
            "from engine.render import render; import hashlib; "
            "print(hashlib.sha256(''.join(render(v, 'svg') for _, v in views_of(SHOP)).encode()).hexdigest())")
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


def test_flow_runs_left_to_right_except_cycle_back_edges(shop_flow):
    lay = layout_view(shop_flow)
    backwards = [e for e in shop_flow.edges if lay.boxes[e.src].layer >= lay.boxes[e.dst].layer]
    assert len(backwards) == 1 and backwards[0].marked  # one edge closes the payment loop


def test_long_edges_route_through_every_layer_they_cross():
    nodes = ["a", "b", "c", "d"]
    sizes = {n: (60.0, 30.0) for n in nodes}
    lay = layered_layout(nodes, sizes, [EdgeSpec("a", "b"), EdgeSpec("b", "c"), EdgeSpec("c", "d"), EdgeSpec("a", "d")])
    assert [lay.boxes[n].layer for n in nodes] == [0, 1, 2, 3]
    long_route = lay.routes[3]
    assert len(long_route.points) == 2 + 2 * 2 + 2  # ports, column exits/entries, two dummies


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
