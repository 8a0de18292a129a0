"""The names of the output formats, as plain data: what the command line offers as choices
before anything is drawn (this module imports nothing, so listing the formats stays cheap).

:data:`engine.render.registry.RENDERERS` has one renderer for each name.
"""
from __future__ import annotations

#: Every output format: a mesh's flow or orchestration draws in all of them.
FORMAT_NAMES = ("dot", "html", "mermaid", "svg")
