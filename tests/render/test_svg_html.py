"""SVG and HTML output: well-formed, self-contained, with cycles, DLQs and clusters drawn."""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest
from render_helpers import REPO, example_dirs, views_of

from engine.render import RenderView, ViewEdge, ViewNode, render

SVG = "{http://www.w3.org/2000/svg}"
EXAMPLES = [(path, name, view) for path in example_dirs() for name, view in views_of(path)]


@pytest.mark.parametrize(("path", "name", "view"), EXAMPLES, ids=[f"{p.name}-{n}" for p, n, _ in EXAMPLES])
def test_every_example_renders_well_formed_svg(path, name, view):
    root = ET.fromstring(render(view, "svg").encode())
    assert root.tag == f"{SVG}svg"
    nodes = root.findall(f".//{SVG}g[@class]")
    assert sum(1 for g in nodes if g.get("class", "").startswith("node ")) == len(view.nodes)
    assert len(root.findall(f".//{SVG}path[@marker-end]")) == len(view.edges)


@pytest.mark.parametrize(("path", "name", "view"), EXAMPLES, ids=[f"{p.name}-{n}" for p, n, _ in EXAMPLES])
def test_every_example_renders_self_contained_html(path, name, view):
    html = render(view, "html")
    assert html.startswith("<!DOCTYPE html>")
    assert "<svg " in html and "</svg>" in html and "<?xml" not in html
    assert_no_external_resources(html)


def assert_no_external_resources(html: str) -> None:
    """Nothing is fetched: no src/href/url()/@import pointing at a network address."""
    without_ns = html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert not re.search(r"""(?:src|href|xlink:href|action)\s*=\s*["']?\s*(?:https?:)?//""", without_ns)
    assert not re.search(r"url\(\s*['\"]?\s*(?:https?:)?//", without_ns)
    assert "@import" not in without_ns
    assert "<link" not in without_ns
    # the one script is the diagram viewer, inline: nothing loaded from a file or the network
    assert re.findall(r"<script[^>]*>", without_ns) == ["<script>"]
    assert not re.search(r"\b(?:fetch|XMLHttpRequest|import)\s*\(", without_ns)


def test_arena_svg_draws_one_box_per_service_and_an_arrowhead_on_every_edge(tmp_path, meshctl):
    """Issue #15: arena drew match-, player- and score-service twice each, and some edges bare."""
    out = tmp_path / "arena.svg"
    assert meshctl("render", REPO / "workflows" / "arena", "--format", "svg", "-o", out).exit_code == 0
    root = ET.fromstring(out.read_bytes())
    groups = [g.find(f"{SVG}text").text for g in root.iter(f"{SVG}g") if g.get("class") == "group"]
    assert sorted(groups) == ["match-service", "matchmaker", "player-service", "score-service"]
    markers = {m.get("id") for m in root.iter(f"{SVG}marker")}
    edges = [p for p in root.iter(f"{SVG}path") if "edge" in p.get("class", "").split()]
    _, flow = next(views_of(REPO / "workflows" / "arena"))
    assert len(edges) == len(flow.edges) > 0
    for path in edges:
        assert re.fullmatch(r"url\(#([\w-]+)\)", path.get("marker-end", "")).group(1) in markers


@pytest.mark.parametrize(("path", "name", "view"), EXAMPLES, ids=[f"{p.name}-{n}" for p, n, _ in EXAMPLES])
def test_every_node_and_edge_has_a_tooltip(path, name, view):
    root = ET.fromstring(render(view, "svg").encode())
    for g in root.iter(f"{SVG}g"):
        if g.get("class", "").split()[:1] in (["node"], ["link"], ["group"]):
            assert g.find(f"{SVG}title").text.strip(), g.get("class")


def test_breakers_and_every_failing_step_are_drawn(shop_flow, shop_saga):
    assert "breaker 3 → 20s" in render(shop_flow, "svg")
    failing = {e.src for e in shop_saga.edges if e.dst == "end:on_failure"}
    assert failing == {n.id for n in shop_saga.nodes if n.kind == "step"}


def test_cycle_edges_are_red_and_thick(shop_flow):
    root = ET.fromstring(render(shop_flow, "svg").encode())
    cycle = [p for p in root.iter(f"{SVG}path") if "cycle" in p.get("class", "").split()]
    assert len(cycle) == 4
    assert {(p.get("stroke"), p.get("stroke-width")) for p in cycle} == {("#d62728", "3.0")}
    assert "circular events (cycle)" in render(shop_flow, "svg")


def test_dlq_is_a_cylinder(shop_flow):
    root = ET.fromstring(render(shop_flow, "svg").encode())
    [dlq] = [g for g in root.iter(f"{SVG}g") if g.get("class") == "node dlq"]
    assert dlq.find(f"{SVG}rect") is None  # not a box: a body path and a rim path
    assert len(dlq.findall(f"{SVG}path")) == 2


def test_services_are_drawn_as_background_clusters(shop_flow):
    root = ET.fromstring(render(shop_flow, "svg").encode())
    titles = [t.text for g in root.iter(f"{SVG}g") if g.get("class") == "group" for t in g.iter(f"{SVG}text")]
    assert set(titles) == {"billing", "gateway"}


def test_orchestration_svg_draws_compensation_dashed(shop_saga):
    root = ET.fromstring(render(shop_saga, "svg").encode())
    [undo] = [p for p in root.iter(f"{SVG}path") if "compensates" in p.get("class", "")]
    assert undo.get("stroke-dasharray")
    assert "undo: emit stock.released" in render(shop_saga, "svg")


def test_labels_are_xml_escaped():
    view = RenderView('a <b> & "c"', (ViewNode("x", "<&>", "event", sublabel='"q"', badges=("a&b",)),
                                        ViewNode("y", "y", "dlq")),
                      (ViewEdge("x", "y", "dead-letters", label="</path>"),))
    svg = render(view, "svg")
    ET.fromstring(svg.encode())
    assert "&lt;&amp;&gt;" in svg and "<&>" not in svg
    html = render(view, "html")
    assert "<title>a &lt;b&gt; &amp; &#34;c&#34;</title>" in html


def test_html_has_element_tables_with_locations(shop_flow):
    html = render(shop_flow, "html")
    for title in ("Event types", "Routes", "Services", "Orchestrations", "Delivery policies"):
        assert f">{title} <small>" in html
    assert '<td class="loc">services.yaml:6</td>' in html
    assert "order_id*, lines" in html  # schema fields, required starred


def test_html_lists_diagnostics_when_given(shop_mesh):
    from engine.analysis.graph import build_flow_graph
    from engine.core.errors import Diagnostic, Location
    from engine.render import flow_view

    diag = Diagnostic(Location(shop_mesh.root + "/services.yaml", 12, 7), "event-cycle", "a loop", "warning")
    html = render(flow_view(shop_mesh, build_flow_graph(shop_mesh), diagnostics=[diag]), "html")
    assert ">Diagnostics <small>" in html and "event-cycle" in html and "services.yaml:12" in html


def test_docs_render_pictures_exist_and_stay_small():
    text = (REPO / "docs" / "render.md").read_text(encoding="utf-8")
    images = re.findall(r"!\[[^\]]*\]\((images/[^)]+\.png)\)", text)
    assert len(images) == 4  # three mesh pages and the run view (render --trace)
    for image in images:
        path = REPO / "docs" / image
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size < 300 * 1024, image
