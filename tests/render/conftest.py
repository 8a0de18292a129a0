"""Fixtures for the render tests: the shop fixture mesh, its views, and golden-file checks."""
from __future__ import annotations

import os

import pytest
from render_helpers import GOLDEN, SHOP

from engine.analysis.graph import build_flow_graph
from engine.analysis.rules import cycle_edges
from engine.language.loader import load_mesh
from engine.render import flow_view, orchestration_view


@pytest.fixture(scope="session")
def shop_mesh():
    mesh, _ = load_mesh(str(SHOP))
    return mesh


@pytest.fixture(scope="session")
def shop_flow(shop_mesh):
    graph = build_flow_graph(shop_mesh)
    return flow_view(shop_mesh, graph, cycles=cycle_edges(graph))


@pytest.fixture(scope="session")
def shop_saga(shop_mesh):
    return orchestration_view(shop_mesh, "fulfil")


@pytest.fixture
def golden():
    """Compare text with tests/render/golden/<name>; UPDATE_GOLDEN=1 rewrites the file instead."""
    def check(name: str, text: str) -> None:
        path = GOLDEN / name
        if os.environ.get("UPDATE_GOLDEN") == "1":
            path.write_text(text, encoding="utf-8")
            return
        assert path.exists(), f"no golden file {path}; run with UPDATE_GOLDEN=1 to create it"
        assert text == path.read_text(encoding="utf-8"), f"{name} changed; review, then UPDATE_GOLDEN=1"
    return check
