"""The use case `render`: a valid mesh's flow or one orchestration, or a run's trace, as the
text of a diagram format (:data:`engine.render.FORMAT_NAMES`)."""
from __future__ import annotations

from ..analysis.rules import cycle_edges
from ..analysis.validate import CheckResult
from ..render import flow_view, load_trace, orchestration_view, render, trace_view


def mesh_diagram(checked: CheckResult, fmt: str, orchestration: str | None = None) -> str:
    """The checked mesh's event flow (circular events marked), or with *orchestration* that
    orchestration's step graph, in *fmt*; its warnings are kept with the view."""
    if orchestration:
        view = orchestration_view(checked.mesh, orchestration, diagnostics=checked.diagnostics)
    else:
        view = flow_view(checked.mesh, checked.graph, cycles=cycle_edges(checked.graph),
                         diagnostics=checked.diagnostics)
    return render(view, fmt)


def trace_diagram(path: str, fmt: str, title: str) -> str:
    """The trace written by `meshctl run --trace` at *path* as a sequence diagram in *fmt*."""
    return render(trace_view(load_trace(path), title=title), fmt)
