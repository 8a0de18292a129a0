"""Mermaid ``flowchart LR`` text of a view, through ``flow.mmd.j2``.

Mermaid node ids must be plain words, so each view id gets a readable sanitised id
(``event_order_placed``), made unique in view order. Labels are always quoted and escaped
with Mermaid's entity codes; HTML escaping would be wrong here, so autoescape is off.
"""
from __future__ import annotations

import json
import re

from .base import render_template
from .style import DASHED_KINDS, EDGE_STYLE, edge_style, node_style
from .view import RenderView, ViewEdge, ViewNode

#: kind -> (opening, closing) of the Mermaid node shape.
SHAPES = {
    "event": ('(["', '"])'), "trigger": ('(["', '"])'),
    "route": ('{{"', '"}}'),
    "orchestration": ('[["', '"]]'),
    "stream": ('[/"', '"/]'),
    "schedule": ('[/"', '"\\]'),
    "dlq": ('[("', '")]'),
    "endpoint": ('>"', '"]'),
    "success": ('(["', '"])'), "failure": ('(["', '"])'),
    "wait": ('{{"', '"}}'), "awaited": ('>"', '"]'),
}
DEFAULT_SHAPE = ('["', '"]')


def mermaid_escape(text: str) -> str:
    """Escape text for a quoted Mermaid label: ``#`` first, then quotes and angle brackets."""
    text = text.replace("#", "#35;").replace('"', "#quot;")
    return text.replace("<", "#lt;").replace(">", "#gt;").replace("\n", " ")


def mermaid_ids(view: RenderView) -> dict[str, str]:
    """A unique, Mermaid-safe id per node (and ``grp_`` ids for groups never collide with them)."""
    out: dict[str, str] = {}
    used: set[str] = set()
    for node in view.nodes:
        base = "n_" + re.sub(r"[^A-Za-z0-9_]+", "_", node.id).strip("_")
        candidate, i = base, 2
        while candidate in used:
            candidate, i = f"{base}_{i}", i + 1
        used.add(candidate)
        out[node.id] = candidate
    return out


def node_text(node: ViewNode, escape) -> list[str]:
    """The lines of a node label (label, sublabel, badges), each escaped for the format."""
    lines = [node.label]
    if node.sublabel:
        lines.append(node.sublabel)
    if node.badges:
        lines.append("[" + " · ".join(node.badges) + "]")
    return [escape(line) for line in lines]


def _declaration(node: ViewNode, mid: str) -> str:
    opening, closing = SHAPES.get(node.kind, DEFAULT_SHAPE)
    return f"{mid}{opening}{'<br/>'.join(node_text(node, mermaid_escape))}{closing}"


def _arrow(edge: ViewEdge) -> str:
    arrow = "==>" if edge.marked else ("-.->" if edge.kind in DASHED_KINDS else "-->")
    return arrow + (f'|"{mermaid_escape(edge.label)}"|' if edge.label else "")


def _link_styles(view: RenderView) -> list[str]:
    """``linkStyle`` lines: one per edge colour, by the edges' index in definition order."""
    by_style: dict[str, list[str]] = {}
    for i, edge in enumerate(view.edges):
        if edge.marked or edge.kind in EDGE_STYLE:
            colour, width, _, _ = edge_style(edge)
            by_style.setdefault(f"stroke:{colour},stroke-width:{width:g}px", []).append(str(i))
    return [f"linkStyle {','.join(idx)} {style}" for style, idx in by_style.items()]


def mermaid_context(view: RenderView) -> dict:
    ids = mermaid_ids(view)
    groups = [
        {
            "id": f"grp_{i}",
            "label": mermaid_escape(name),
            "nodes": [_declaration(n, ids[n.id]) for n in members],
        }
        for i, (name, members) in enumerate(view.groups().items(), start=1)
    ]
    on_cycle = list(dict.fromkeys(ids[x] for e in view.edges if e.marked for x in (e.src, e.dst)))
    classes = {kind: [ids[n.id] for n in view.nodes if n.kind == kind] for kind in view.kinds()}
    return {
        "title": json.dumps(view.title, ensure_ascii=False),  # front matter is YAML
        "loose": [_declaration(n, ids[n.id]) for n in view.nodes if n.group is None],
        "groups": groups,
        "edges": [f"{ids[e.src]} {_arrow(e)} {ids[e.dst]}" for e in view.edges],
        "class_defs": [(kind, *node_style(kind)[:2]) for kind in classes],
        "classes": classes,
        "on_cycle": on_cycle,
        "link_styles": _link_styles(view),
    }


def render_mermaid(view: RenderView) -> str:
    return render_template("flow.mmd.j2", xml=False, **mermaid_context(view))
