"""The one registry of output formats, and :func:`render`, which looks a format up in it.

Each :class:`Renderer` draws a mesh view (:class:`~engine.render.view.RenderView`) and, where
the format has sequence diagrams, a run's trace (:class:`~engine.render.trace.TraceView`):
DOT has none, so its ``trace`` is None.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..core.errors import MeshError
from .dot import render_dot
from .html import render_html
from .mermaid import render_mermaid
from .sequence_svg import render_trace_html, render_trace_svg
from .svg import render_svg
from .trace import TraceView, render_trace_mermaid
from .view import RenderView


@dataclass(frozen=True, slots=True)
class Renderer:
    """One output format: its name, the suffix of its files, and how it draws each view."""

    name: str
    suffix: str
    flow: Callable[[RenderView], str]
    trace: Callable[[TraceView], str] | None = None

    def render(self, view: RenderView | TraceView) -> str:
        """The text of *view*; raises UnknownFormat if this format cannot draw its kind."""
        return render(view, self.name)


RENDERERS: dict[str, Renderer] = {r.name: r for r in (
    Renderer("mermaid", ".mmd", render_mermaid, render_trace_mermaid),
    Renderer("dot", ".dot", render_dot),
    Renderer("svg", ".svg", render_svg, render_trace_svg),
    Renderer("html", ".html", render_html, render_trace_html),
)}


class UnknownFormat(MeshError):
    """A render format that is not in :data:`RENDERERS`, or cannot draw the view (a usage
    error: exit code 2)."""

    exit_code = 2

    def __init__(self, fmt: str, choices: list[str]):
        self.fmt, self.choices = fmt, choices
        super().__init__(f"unknown format {fmt!r}; choose one of: {', '.join(choices)}")


def _drawing(renderer: Renderer, view: RenderView | TraceView) -> Callable | None:
    return renderer.trace if isinstance(view, TraceView) else renderer.flow


def render(view: RenderView | TraceView, fmt: str) -> str:
    """The text of *view* (a mesh's or a trace's) in format *fmt*; raises UnknownFormat
    listing the formats that can draw it."""
    renderer = RENDERERS.get(fmt)
    draw = _drawing(renderer, view) if renderer is not None else None
    if draw is None:
        raise UnknownFormat(fmt, sorted(n for n, r in RENDERERS.items() if _drawing(r, view) is not None))
    return draw(view)


def render_trace(view: TraceView, fmt: str) -> str:
    """:func:`render` for a trace (``mermaid``, ``svg`` or ``html``): DOT has no sequence
    diagrams, so ``dot``, like any other name, raises UnknownFormat listing those three."""
    return render(view, fmt)
