"""meshctl's engine as a library: load a YAML mesh, analyse its event flow, render it, run it.

The library API is the names below (``__all__``); every other module is internal and may
change between releases. The command line (``cli.py``) goes through :mod:`engine.commands`,
one module per use case, which build on these.

    check_mesh(path) -> CheckResult          load + graph + analysis, never raises
    load_mesh(path) -> (Mesh, warnings)      or raises LoadError with located diagnostics
    build_flow_graph(mesh) -> nx.DiGraph     the event-flow graph
    analyse(mesh, graph) -> [Diagnostic]     static checks
    flow_view(mesh, graph) / orchestration_view(mesh, name) -> RenderView
    render(view, fmt) -> str                 fmt: one of FORMAT_NAMES ("mermaid", "dot", "svg", "html")
    Runtime(mesh, ...)                       runs a mesh on a clock (engine.runtime.interpreter)
    Diagnostic, Location, MeshError, LoadError, UsageError    errors are values with a location

Importing ``engine`` is cheap: the errors and format names are plain values imported at once, and every other
name is imported on first use (module ``__getattr__``, PEP 562), so that ``import engine.core``
or ``import engine.storage`` does not pay for networkx, jinja2 and jsonschema.
"""
from __future__ import annotations

import importlib

from .core.errors import Diagnostic, LoadError, Location, MeshError, UsageError
from .render.formats import FORMAT_NAMES

_LAZY = {
    "CheckResult": "engine.analysis.validate",
    "check_mesh": "engine.analysis.validate",
    "load_mesh": "engine.language.loader",
    "build_flow_graph": "engine.analysis.graph",
    "analyse": "engine.analysis.rules",
    "flow_view": "engine.render",
    "orchestration_view": "engine.render",
    "render": "engine.render",
    "Runtime": "engine.runtime.interpreter",
}

__all__ = [
    "FORMAT_NAMES",
    "CheckResult",
    "Diagnostic",
    "LoadError",
    "Location",
    "MeshError",
    "Runtime",
    "UsageError",
    "analyse",
    "build_flow_graph",
    "check_mesh",
    "flow_view",
    "load_mesh",
    "orchestration_view",
    "render",
]


def __getattr__(name: str):
    """Import a public name's module on first use, and keep the name."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'engine' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
