"""meshctl's engine: load a YAML mesh, analyse its event flow, render it.

Public API (everything else is internal)::

    check_mesh(path) -> CheckResult          load + graph + analysis, never raises
    load_mesh(path) -> (Mesh, warnings)      or raises LoadError with located diagnostics
    build_flow_graph(mesh) -> nx.DiGraph     the event-flow graph
    analyse(mesh, graph) -> [Diagnostic]     static checks
"""
from .analysis.graph import build_flow_graph
from .analysis.rules import analyse
from .analysis.validate import CheckResult, check_mesh
from .core.errors import Diagnostic, LoadError, Location, MeshError, UsageError
from .language.loader import load_mesh

__all__ = [
    "CheckResult", "Diagnostic", "LoadError", "Location", "MeshError", "UsageError",
    "analyse", "build_flow_graph", "check_mesh", "load_mesh",
]
