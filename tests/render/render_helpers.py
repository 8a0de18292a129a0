"""Helpers shared by the render tests (a plain module: tests/ is not a package)."""
from __future__ import annotations

from pathlib import Path

from engine.analysis.graph import build_flow_graph
from engine.analysis.rules import cycle_edges
from engine.language.loader import load_mesh
from engine.render import flow_view, orchestration_view

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
SHOP = HERE / "fixtures" / "shop"
GOLDEN = HERE / "golden"


def example_dirs() -> list[Path]:
    """Every example under workflows/ (the fixtures when there are none yet)."""
    found = sorted(p for p in (REPO / "workflows").glob("*") if p.is_dir() and not p.name.startswith("."))
    return found or sorted(p for p in (HERE / "fixtures").iterdir() if p.is_dir())


def views_of(path: Path):
    """The flow view (cycles marked) and every orchestration view of the mesh at *path*."""
    mesh, _ = load_mesh(str(path))
    graph = build_flow_graph(mesh)
    yield "flow", flow_view(mesh, graph, cycles=cycle_edges(graph))
    for name in mesh.orchestrations:
        yield name, orchestration_view(mesh, name)


def replicated(records: list[dict], copies: int) -> list[dict]:
    """*records* (a run's trace) over and over, each copy's events and runs renamed and its
    times moved after the copy before: a long trace of the same shape as a real one."""
    from engine.core import eventtime

    start = eventtime.parse_or_none(records[0]["t"])
    span = eventtime.parse_or_none(records[-1]["t"]) - start + 60
    names = {v for r in records for k,
             v in r.items() if k in ("event", "cause", "run") and isinstance(v, str)}
    out = []
    for copy in range(copies):
        for r in records:
            moved = {k: (f"{v}~{copy}" if v in names else v) for k, v in r.items()}
            moved["seq"] = len(out) + 1
            moved["t"] = eventtime.format(eventtime.parse_or_none(r["t"]) + copy * span)
            out.append(moved)
    return out
