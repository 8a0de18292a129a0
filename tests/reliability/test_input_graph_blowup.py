"""T20: dense and long graphs are analysed in time linear in their size, with one path per tangle.

A complete digraph of n steps (each `needs` every other) or of n services (each emits what
every other consumes) has exponentially many elementary cycles: networkx's ``simple_cycles``
lists 10 million of them for 11 nodes. Validation reports a `needs` tangle as one
``needs-cycle`` with one example path, and an event tangle as at most 10 cycles, or as one
example path once it has more than 2,000 hops, with ``cycles-truncated`` saying there are
more. A 10,000-step chain is fine. Each case prints the load and analysis times; the
analysis bound asserted is loose, the shape of the report is exact.
"""
from __future__ import annotations

import collections
import json
import time

import pytest

from engine.analysis.graph import build_flow_graph
from engine.analysis.rules import MAX_CYCLES_PER_TANGLE, analyse
from engine.language.loader import load_mesh

pytestmark = pytest.mark.slow

HEAD = "apiVersion: meshctl/v1\n"


def steps_complete(n: int) -> str:
    ids = [f"s{i}" for i in range(n)]
    steps = "".join(
        f"    - id: {i}\n      needs: [{', '.join(x for x in ids if x != i)}]\n      do: {{log: hi}}\n"
        for i in ids
    )
    return (
        f"{HEAD}kind: EventType\nmetadata: {{name: go}}\nspec: {{external: true}}\n---\n"
        f"{HEAD}kind: Orchestration\nmetadata: {{name: o}}\nspec:\n  trigger: {{on: go}}\n  steps:\n{steps}"
    )


def steps_chain(n: int) -> str:
    steps = "".join(f"    - id: s{i}\n      do: {{log: hi}}\n" for i in range(n))
    return (
        f"{HEAD}kind: EventType\nmetadata: {{name: go}}\nspec: {{external: true}}\n---\n"
        f"{HEAD}kind: Orchestration\nmetadata: {{name: o}}\nspec:\n  trigger: {{on: go}}\n  steps:\n{steps}"
    )


def services_complete(n: int) -> str:
    docs = [f"{HEAD}kind: EventType\nmetadata: {{name: e{i}}}\n" for i in range(n)]
    for i in range(n):
        emits = [f"e{j}" for j in range(n) if j != i]
        actions = ", ".join(f"{{emit: {{type: {e}}}}}" for e in emits)
        docs.append(f"{HEAD}kind: Service\nmetadata: {{name: svc{i}}}\nspec:\n  subscriptions:\n"
                    f"    - on: e{i}\n      emits: [{', '.join(emits)}]\n      do: [{actions}]\n")
    return "---\n".join(docs)


CASES = {
    "steps-complete-12": (steps_complete, 12, {"needs-cycle": 1}),
    "steps-complete-50": (steps_complete, 50, {"needs-cycle": 1}),
    "steps-complete-200": (steps_complete, 200, {"needs-cycle": 1}),
    "steps-chain-10000": (steps_chain, 10_000, {}),
    "services-complete-12": (services_complete, 12,
                             {"event-cycle": MAX_CYCLES_PER_TANGLE, "cycles-truncated": 1}),
    "services-complete-50": (services_complete, 50, {"event-cycle": 1, "cycles-truncated": 1}),
    "services-complete-200": (services_complete, 200, {"event-cycle": 1, "cycles-truncated": 1}),
}


@pytest.mark.parametrize("name", CASES)
def test_dense_or_long_graph(name, tmp_path):
    make, n, expected = CASES[name]
    path = tmp_path / "mesh.yaml"
    path.write_text(make(n))
    started = time.perf_counter()
    mesh, _ = load_mesh(str(path))
    loaded = time.perf_counter()
    graph = build_flow_graph(mesh)
    found = analyse(mesh, graph)
    analysed = time.perf_counter()
    codes = collections.Counter(
        d.code for d in found if d.code not in ("unused-event-type", "unproduced-event")
    )
    print(json.dumps({"test": "T20", "case": name, "n": n, "bytes": path.stat().st_size,
                      "nodes": graph.number_of_nodes(), "edges": graph.number_of_edges(),
                      "load_s": round(loaded - started, 2), "analysis_s": round(analysed - loaded, 2),
                      "codes": dict(codes)}))
    assert dict(codes) == expected
    cycle = next((d for d in found if d.code in ("needs-cycle", "event-cycle")), None)
    if cycle is not None:  # one example path, every hop located
        assert " -> " in cycle.message and all(note.loc.line for note in cycle.notes)
