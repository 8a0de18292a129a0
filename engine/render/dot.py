"""Graphviz DOT text of a view, through ``flow.dot.j2``.

Every id and label is written as a quoted DOT string, so only ``\\`` and ``"`` need escaping
(plus newlines, which become DOT's ``\\n`` line break). A service's subscriptions go into a
``cluster_`` subgraph so Graphviz draws them inside one box.
"""
from __future__ import annotations

from .base import render_template
from .mermaid import node_text
from .style import CYCLE, DASHED_KINDS, edge_style, node_style
from .view import RenderView, ViewEdge, ViewNode

#: kind -> (shape, extra style)
SHAPES = {
    "event": ("box", "rounded"), "trigger": ("box", "rounded"),
    "route": ("hexagon", ""),
    "subscription": ("box", "rounded"),
    "orchestration": ("component", ""),
    "stream": ("parallelogram", ""),
    "schedule": ("cds", ""),
    "dlq": ("cylinder", ""),
    "endpoint": ("note", ""),
    "step": ("box", ""),
    "missing": ("box", "dashed"),
    "success": ("box", "rounded"), "failure": ("box", "rounded"),
    "wait": ("hexagon", ""), "awaited": ("cds", ""),
}


def dot_escape(text: str) -> str:
    """Escape for inside a DOT double-quoted string."""
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "")


def quote(text: str) -> str:
    return f'"{dot_escape(text)}"'


def _node_attrs(node: ViewNode) -> str:
    shape, extra = SHAPES.get(node.kind, ("box", ""))
    fill, stroke, _ = node_style(node.kind)
    style = ",".join(s for s in ("filled", extra) if s)
    label = "\\n".join(node_text(node, dot_escape))
    attrs = f'label="{label}", shape={shape}, style="{style}", fillcolor="{fill}", color="{stroke}"'
    if node.loc:
        attrs += f", tooltip={quote(node.loc)}"
    return attrs


def _edge_attrs(edge: ViewEdge) -> str:
    colour, width, _, _ = edge_style(edge)
    attrs = [f'color="{colour}"', f"penwidth={width:g}"]
    if edge.label:
        attrs.append(f'label={quote(edge.label)}, fontcolor="{colour}"')
    if edge.kind in DASHED_KINDS and not edge.marked:
        attrs.append("style=dashed")
    if edge.marked:
        attrs.append("class=cycle")
    return ", ".join(attrs)


def dot_context(view: RenderView) -> dict:
    nodes = {n.id: f"{quote(n.id)} [{_node_attrs(n)}]" for n in view.nodes}
    return {
        "title": quote(view.title),
        "loose": [nodes[n.id] for n in view.nodes if n.group is None],
        "clusters": [
            {"id": quote(f"cluster_{i}"), "label": quote(name), "nodes": [nodes[n.id] for n in members]}
            for i, (name, members) in enumerate(view.groups().items(), start=1)
        ],
        "edges": [f"{quote(e.src)} -> {quote(e.dst)} [{_edge_attrs(e)}]" for e in view.edges],
        "cycle_colour": CYCLE[0] if view.has_cycles() else None,
    }


def render_dot(view: RenderView) -> str:
    return render_template("flow.dot.j2", xml=False, **dot_context(view))
