"""A standalone SVG of a view, drawn from :mod:`.layout` through ``diagram.svg.j2``.

Python computes every coordinate and path; the template only writes elements, with XML
autoescaping, so a label can never break the markup. Text widths are estimated from
character classes (no font metrics are available without a browser), erring wide so labels
stay inside their boxes.
"""
from __future__ import annotations

from dataclasses import dataclass

from .base import render_template
from .labels import segments
from .layout import EdgeSpec, Layout, Route, layered_layout
from .style import CYCLE, DEFAULT_EDGE, DEFAULT_NODE, EDGE_STYLE, NODE_STYLE, edge_style
from .view import BACKWARD_KINDS, RenderView, ViewEdge, ViewNode

FONT = "'DejaVu Sans', Verdana, 'Helvetica Neue', Arial, sans-serif"
LABEL, SUB, BADGE, EDGE = 13.0, 11.0, 10.0, 10.5

def text_width(text: str, size: float, bold: bool = False) -> float:
    """Estimated rendered width: narrow, wide and ordinary characters at sans-serif ratios."""
    units = 0.0
    for ch in text:
        if ch in "il.,:;|!'`[]()/ " or ch == "1":
            units += 0.34
        elif ch in "mwMW@%" or ch.isupper():
            units += 0.82
        else:
            units += 0.6
    return units * size * (1.08 if bold else 1.0)


def _badges_width(badges: tuple[str, ...]) -> float:
    return sum(text_width(b, BADGE) + 12 for b in badges) + 4 * max(len(badges) - 1, 0)


def node_size(node: ViewNode) -> tuple[float, float]:
    """Width from the longest line (label, sublabel or badge row); height from the line count."""
    widths = [
        text_width(node.label, LABEL, bold=True),
        text_width(node.sublabel, SUB),
        _badges_width(node.badges),
    ]
    pad = 40 if node.kind in ("event", "trigger", "success", "failure", "route") else 24
    h = 30 + (15 if node.sublabel else 0) + (18 if node.badges else 0) + (10 if node.kind == "dlq" else 0)
    return max(96.0, round(max(widths) + pad)), float(h)


def node_shape(node: ViewNode, x: float, y: float, w: float, h: float) -> dict:
    """The outline of a node: pills for events, a cylinder for DLQs, cut corners for routes."""
    fill, stroke, _ = NODE_STYLE.get(node.kind, DEFAULT_NODE)
    shape = {"fill": fill, "stroke": stroke, "dash": "5 3" if node.kind in ("missing", "endpoint") else ""}
    if node.kind == "dlq":
        ry = 6
        body = f"M{x},{y + ry} a{w / 2},{ry} 0 0 1 {w},0 v{h - 2 * ry} a{w / 2},{ry} 0 0 1 {-w},0 z"
        rim = f"M{x},{y + ry} a{w / 2},{ry} 0 0 0 {w},0"
        return shape | {"path": body, "rim": rim}
    if node.kind == "wait":  # a hexagon: the step holds its run
        c = h / 2
        d = f"M{x + c},{y} H{x + w - c} L{x + w},{y + h / 2} L{x + w - c},{y + h} H{x + c} L{x},{y + h / 2} z"
        return shape | {"path": d}
    if node.kind == "route":
        c = 9
        d = (
            f"M{x + c},{y} H{x + w - c} L{x + w},{y + c} V{y + h - c} L{x + w - c},{y + h}"
            f" H{x + c} L{x},{y + h - c} V{y + c} z"
        )
        return shape | {"path": d}
    rx = h / 2 if node.kind in ("event", "trigger", "success", "failure") else 7
    return shape | {"rect": (x, y, w, h, min(rx, 16)), "double": node.kind == "orchestration"}


def _node_context(node: ViewNode, box) -> dict:
    """Shape and text lines (with badge chips) of one node, at its layout box."""
    x, y, w, h = box.x, box.y, box.w, box.h
    top = y + (16 if node.kind == "dlq" else 6)
    lines = [{"x": x + w / 2, "y": top + 15, "text": node.label, "cls": "label"}]
    if node.sublabel:
        lines.append({"x": x + w / 2, "y": top + 30, "text": node.sublabel, "cls": "sub"})
    chips, cx = [], x + (w - _badges_width(node.badges)) / 2
    chip_y = top + (36 if node.sublabel else 22)
    for badge in node.badges:
        cw = text_width(badge, BADGE) + 12
        chips.append({"x": round(cx, 1), "y": chip_y, "w": round(cw, 1), "text": badge})
        cx += cw + 4
    return {
        "id": node.id,
        "kind": node.kind,
        "shape": node_shape(node, x, y, w, h),
        "lines": lines,
        "chips": chips,
        "title": node_title(node),
    }


def node_title(node: ViewNode) -> str:
    """The tooltip of a node: what it is, its service, sublabel, badges and source location."""
    _, _, kind = NODE_STYLE.get(node.kind, DEFAULT_NODE)
    text = f"{node.group} / {node.label}" if node.group else node.label
    parts = [f"{text} ({kind})", node.sublabel, " · ".join(node.badges), node.loc]
    return " - ".join(p for p in parts if p)


def edge_title(edge: ViewEdge, labels: dict[str, str]) -> str:
    """The tooltip of an edge: ``a → b: consumes [match]``, and whether it is on a cycle."""
    text = f"{labels.get(edge.src, edge.src)} → {labels.get(edge.dst, edge.dst)}: {edge.kind}"
    text += f" [{edge.label}]" if edge.label else ""
    return text + (" - circular events (cycle)" if edge.marked else "")


def path_d(route: Route) -> str:
    """SVG path data: straight runs and lanes as lines, gap crossings as S-curves (see :mod:`.labels`)."""
    pts = route.points
    if route.self_loop:
        (x0, y0), (x1, y1), (x2, y2), (x3, y3) = pts
        return f"M{x0},{y0} C{x1},{y1} {x2},{y2} {x3},{y3}"
    d = [f"M{pts[0][0]},{pts[0][1]}"]
    for piece in segments(pts):
        if len(piece) == 2:
            d.append(f"L{piece[1][0]},{piece[1][1]}")
        else:
            (_, c1, c2, end) = piece
            d.append(f"C{c1[0]},{c1[1]} {c2[0]},{c2[1]} {end[0]},{end[1]}")
    return " ".join(d)


def _marker_id(colour: str) -> str:
    return "arrow-" + colour.lstrip("#")


def _edge_context(edge: ViewEdge, route: Route, labels: dict[str, str]) -> dict:
    colour, width, dash, _ = edge_style(edge)
    label = None
    if edge.label:
        lw = text_width(edge.label, EDGE) + 8
        lx, ly = route.label_at
        label = {"x": lx, "y": ly, "w": round(lw, 1), "text": edge.label}
    return {
        "d": path_d(route),
        "colour": colour,
        "width": width,
        "dash": dash,
        "marked": edge.marked,
        "marker": _marker_id(colour),
        "label": label,
        "kind": edge.kind,
        "title": edge_title(edge, labels),
    }


def layout_view(view: RenderView) -> Layout:
    """Lay out *view* with node sizes from the label text and room for edge labels."""
    sizes = {n.id: node_size(n) for n in view.nodes}
    edges = [
        EdgeSpec(e.src, e.dst, e.kind in BACKWARD_KINDS, text_width(e.label, EDGE) + 8 if e.label else 0.0)
        for e in view.edges
    ]
    return layered_layout(
        [n.id for n in view.nodes],
        sizes,
        edges,
        {n.id: n.group for n in view.nodes},
        first=[n.id for n in view.nodes if n.entry],
    )


@dataclass(frozen=True, slots=True)
class _LegendItem:
    text: str
    kind: str  # "node" or "edge"
    fill: str
    stroke: str
    width: float = 1.4
    dash: str = ""
    dlq: bool = False


def _legend_items(view: RenderView) -> list[_LegendItem]:
    """One entry per node kind and edge style actually drawn, plus the cycle marking if any."""
    items = []
    for kind in view.kinds():
        fill, stroke, text = NODE_STYLE.get(kind, DEFAULT_NODE)
        items.append(_LegendItem(text, "node", fill, stroke, dlq=kind == "dlq"))
    seen = set()
    for kind in view.edge_kinds():
        colour, width, dash, text = EDGE_STYLE.get(kind, DEFAULT_EDGE)
        if text and text not in seen:
            seen.add(text)
            items.append(_LegendItem(text, "edge", "none", colour, width, dash))
    if view.has_cycles():
        items.append(_LegendItem(CYCLE[3], "edge", "none", CYCLE[0], CYCLE[1]))
    if view.groups():
        items.append(_LegendItem("service (its subscriptions)", "group", "#f3f5f8", "#c5ccd6"))
    return items


def _place_legend(
    items: list[_LegendItem], x0: float, y0: float, max_width: float
) -> tuple[list[dict], float]:
    """Flow legend entries left to right, wrapping at *max_width*; return them and the bottom y."""
    placed, x, y = [], x0, y0
    for item in items:
        w = 30 + text_width(item.text, 11) + 18
        if x + w > max_width and x > x0:
            x, y = x0, y + 22
        placed.append({"x": round(x, 1), "y": y, "item": item})
        x += w
    return placed, y + 22


def svg_context(view: RenderView, headed: bool = True) -> dict:
    """Everything the SVG template writes, in drawing order (groups, edges, nodes, labels).

    ``headed=False`` leaves out the title and subtitle (an HTML page shows them itself).
    """
    lay = layout_view(view)
    by_id = {n.id: n for n in view.nodes}
    labels = {n.id: (f"{n.group} / {n.label}" if n.group else n.label) for n in view.nodes}
    width = max(lay.width, 520.0, text_width(view.title, 18, bold=True) + 48 if headed else 0.0)
    legend_top = (70 if view.subtitle else 52) if headed else 20
    legend, legend_bottom = _place_legend(_legend_items(view), 24, legend_top, width - 24)
    edges = [_edge_context(e, r, labels) for e, r in zip(view.edges, lay.routes)]
    markers = sorted({(e["marker"], e["colour"]) for e in edges} | {(_marker_id(CYCLE[0]), CYCLE[0])})
    return {
        "view": view,
        "headed": headed,
        "font": FONT,
        "width": round(width, 1),
        "height": round(legend_bottom + 8 + lay.height, 1),
        "offset": legend_bottom + 8,
        "legend": legend,
        "markers": markers,
        "groups": lay.groups,
        "edges": sorted(edges, key=lambda e: e["marked"]),
        "nodes": [_node_context(by_id[n], b) for n, b in lay.boxes.items()],
    }


def render_svg(view: RenderView, standalone: bool = True) -> str:
    """The SVG document; ``standalone=False`` is the inline one of an HTML page: no XML
    declaration, no title text (the page has it)."""
    return render_template("diagram.svg.j2", xml=True, standalone=standalone, **svg_context(view, standalone))
