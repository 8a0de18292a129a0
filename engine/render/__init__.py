"""Diagrams of a mesh: Mermaid and DOT text, and SVG/HTML drawn by meshctl itself.

Build a view, then render it::

    view = flow_view(mesh, build_flow_graph(mesh), cycles=cycle_edges)
    view = orchestration_view(mesh, "fulfil-order")
    text = render(view, "svg")          # "mermaid" | "dot" | "svg" | "html"

``RENDERERS`` is the registry of formats (name -> renderer with ``suffix`` and ``render``).
"""
from __future__ import annotations

from ..core.errors import MeshError
from .base import Renderer
from .dot import DotRenderer
from .html import HtmlRenderer
from .mermaid import MermaidRenderer
from .svg import SvgRenderer
from .view import RenderView, ViewEdge, ViewNode, flow_view, orchestration_view

RENDERERS: dict[str, Renderer] = {
    r.name: r for r in (MermaidRenderer(), DotRenderer(), SvgRenderer(), HtmlRenderer())
}


class UnknownFormat(MeshError):
    """A render format that is not in :data:`RENDERERS` (a usage error: exit code 2)."""

    exit_code = 2

    def __init__(self, fmt: str, choices: list[str]):
        self.fmt, self.choices = fmt, choices
        super().__init__(f"unknown format {fmt!r}; choose one of: {', '.join(choices)}")


def render(view: RenderView, fmt: str) -> str:
    """The text of *view* in format *fmt*; raises UnknownFormat listing the choices."""
    renderer = RENDERERS.get(fmt)
    if renderer is None:
        raise UnknownFormat(fmt, sorted(RENDERERS))
    return renderer.render(view)


# A run's trace as a sequence diagram (mermaid, svg, html); after UnknownFormat, which it raises.
from .trace import TraceView, load_trace, render_trace, trace_view  # noqa: E402

__all__ = [
    "RENDERERS", "RenderView", "Renderer", "TraceView", "UnknownFormat", "ViewEdge", "ViewNode",
    "flow_view", "load_trace", "orchestration_view", "render", "render_trace", "trace_view",
]
