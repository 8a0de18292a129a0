"""Diagrams of a mesh: Mermaid and DOT text, and SVG/HTML drawn by meshctl itself; and a run's
trace as a sequence diagram (Mermaid, SVG, HTML).

Build a view, then render it::

    view = flow_view(mesh, build_flow_graph(mesh), cycles=cycle_edges)
    view = orchestration_view(mesh, "fulfil-order")
    view = trace_view(load_trace("run.trace.jsonl"), "Run of shop")
    text = render(view, "svg")          # "mermaid" | "dot" | "svg" | "html" (no "dot" for a trace)

``RENDERERS`` (:mod:`.registry`) is the one registry of formats: name -> renderer with
``suffix`` and what it draws. ``FORMAT_NAMES`` lists the names without loading a renderer
(jinja2, networkx): every other name here is imported on first use (PEP 562), so that the
command line can offer the formats as choices and start quickly.
"""
from __future__ import annotations

import importlib

from .formats import FORMAT_NAMES

_LAZY = {
    "RENDERERS": "registry", "Renderer": "registry", "UnknownFormat": "registry", "render": "registry",
    "render_trace": "registry",
    "RenderView": "view", "ViewEdge": "view", "ViewNode": "view", "flow_view": "view",
    "orchestration_view": "view",
    "TraceView": "trace", "load_trace": "trace", "trace_view": "trace",
}

__all__ = ["FORMAT_NAMES", *sorted(_LAZY)]


def __getattr__(name: str):
    """Import a public name's module on first use, and keep the name."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'engine.render' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
