"""Colours, line styles and legend words shared by every format.

One table per thing drawn, so the SVG, DOT and Mermaid outputs of a mesh use the same
colour for a dead-letter queue and the same dash for a compensation.
"""
from __future__ import annotations

from .view import ViewEdge

#: kind -> (fill, stroke, legend text)
NODE_STYLE = {
    "event": ("#e7f0fb", "#3d6fa8", "event type"),
    "route": ("#fff3dc", "#b7791f", "route"),
    "subscription": ("#e6f4ea", "#2f7d46", "subscription"),
    "orchestration": ("#efe8fa", "#6a47a8", "orchestration"),
    "stream": ("#e0f3f3", "#23807f", "stream"),
    "schedule": ("#fbf3dc", "#8a6d1f", "schedule"),
    "dlq": ("#fde7e4", "#b83227", "dead-letter queue"),
    "endpoint": ("#f0f0f0", "#6b6b6b", "HTTP endpoint"),
    "trigger": ("#e7f0fb", "#3d6fa8", "trigger event"),
    "step": ("#ffffff", "#4a4a4a", "step"),
    "wait": ("#fff8e6", "#8a6d1f", "wait step"),
    "awaited": ("#fdf1dc", "#8a6d1f", "awaited event / signal"),
    "missing": ("#ffffff", "#b83227", "unknown step"),
    "success": ("#e6f4ea", "#2f7d46", "on success"),
    "failure": ("#fde7e4", "#b83227", "on failure"),
}
DEFAULT_NODE = ("#ffffff", "#4a4a4a", "other")

#: kind -> (colour, width, dash, legend text); a marked (cycle) edge overrides all of them.
EDGE_STYLE = {
    "consumes": ("#5b6670", 1.4, "", "consumes / emits"),
    "emits": ("#5b6670", 1.4, "", "consumes / emits"),
    "delivers": ("#b7791f", 1.6, "", "route delivers"),
    "dead-letters": ("#b83227", 1.2, "5 4", "dead-letters"),
    "calls": ("#6b6b6b", 1.2, "2 3", "HTTP call"),
    "runs": ("#6a47a8", 1.6, "", "runs a child orchestration"),
    "triggers": ("#3d6fa8", 1.4, "", "starts"),
    "needs": ("#5b6670", 1.4, "", "needs"),
    "awaits": ("#8a6d1f", 1.4, "3 3", "awaited by a wait step"),
    "compensates": ("#d9822b", 1.3, "6 4", "compensation (undo)"),
    "success": ("#2f7d46", 1.3, "", "on success"),
    "failure": ("#b83227", 1.2, "5 4", "on failure"),
}
DEFAULT_EDGE = ("#5b6670", 1.4, "", "")
CYCLE = ("#d62728", 3.0, "", "circular events (cycle)")


#: Edge kinds drawn dashed in the text formats (they are not the normal flow of events).
DASHED_KINDS = frozenset(k for k, (_, _, dash, _) in EDGE_STYLE.items() if dash)


def node_style(kind: str) -> tuple[str, str, str]:
    return NODE_STYLE.get(kind, DEFAULT_NODE)


def edge_style(edge: ViewEdge) -> tuple[str, float, str, str]:
    """Colour, width, dash and legend text of an edge; a cycle edge is red and thick whatever its kind."""
    return CYCLE if edge.marked else EDGE_STYLE.get(edge.kind, DEFAULT_EDGE)
