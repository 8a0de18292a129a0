"""A single self-contained HTML page: the SVG diagram inline, then the element tables.

Nothing is fetched: no scripts, web fonts or stylesheets from elsewhere, so the page works
offline, from a CI artifact or an e-mail attachment. Autoescaping is on; the SVG is the only
value marked safe, and it was itself produced by an autoescaping template.
"""
from __future__ import annotations

from markupsafe import Markup

from .base import render_template
from .svg import render_svg
from .view import RenderView


def html_context(view: RenderView) -> dict:
    return {"view": view, "svg": Markup(render_svg(view, standalone=False)), "tables": view.tables}


def render_html(view: RenderView) -> str:
    return render_template("page.html.j2", xml=True, **html_context(view))
