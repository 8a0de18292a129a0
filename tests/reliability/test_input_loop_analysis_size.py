"""T41: loop analysis is near-linear: the split graph grows with producers + consumers.

N subscriptions on one event type, each re-emitting it, are the worst case: every one is a
producer and a consumer of the same event node. Split per producer, that node cost N x N
hops (2,000 subscriptions: 22-36 s and 0.7-2.4 GB). Split into hubs by what producers emit
and how consumers filter, it costs producers + consumers + signatures x filters. Checked
on four shapes at N = 500, 1,000 and 2,000, by size, never by time: the split graph's hops
stay under 4 x (producers + consumers) and double at most (x 2.1) when N doubles; the
`pruned-edge` notes are at most one per consumer filter; each shape still reports its loop.
"""
from __future__ import annotations

import json

import pytest

from engine.analysis.feasibility import feasible_flow
from engine.analysis.graph import build_flow_graph
from engine.analysis.rules import analyse
from engine.language.loader import load_mesh

pytestmark = pytest.mark.slow

SHAPES = {  # (filter of subscription i, data it emits): how producers and consumers differ
    "all alike": ("", "{{n: '{{{{ data.n }}}}'}}"),
    "ring of constants": ("      match: {{data: {{hop: [{i}]}}}}\n", "{{hop: {j}}}"),
    "ring of whens": ("      when: \"data.hop == {i} and data.k != 'z'\"\n", "{{hop: {j}, k: a}}"),
    "a few stages": ("      match: {{data: {{stage: [s{s}]}}}}\n",
                     "{{stage: 's{t}', n: '{{{{ data.n }}}}'}}"),
}


def reemit(n: int, filter_: str, emit: str) -> str:
    docs = ["apiVersion: meshctl/v1\nkind: EventType\nmetadata: {name: x}\nspec: {external: true}\n"]
    for i in range(n):
        names = {"i": i, "j": (i + 1) % n, "s": i % 7, "t": i % 5}
        docs.append(
            f"apiVersion: meshctl/v1\nkind: Service\nmetadata: {{name: s{i:05d}}}\nspec:\n  subscriptions:\n"
            f"    - on: x\n      emits: [x]\n{filter_.format(**names)}"
            f"      do: {{emit: {{type: x, data: {emit.format(**names)}}}}}\n"
        )
    return "---\n".join(docs)


@pytest.mark.parametrize("shape", SHAPES)
def test_split_graph_grows_linearly(tmp_path, shape):
    hops = {}
    for n in (500, 1000, 2000):
        path = tmp_path / f"{n}.yaml"
        path.write_text(reemit(n, *SHAPES[shape]))
        mesh, _ = load_mesh(str(path))
        graph = build_flow_graph(mesh)
        split, pruned = feasible_flow(graph)
        hops[n] = split.number_of_edges()
        assert hops[n] <= 4 * (n + n), (n, hops[n])
        assert len(pruned) <= n
        found = analyse(mesh, graph)
        assert any(d.code == "event-cycle" for d in found)
        assert sum(d.code == "pruned-edge" for d in found) <= n
    print(json.dumps({"test": "T41", "shape": shape, "hops": hops}))
    assert hops[2000] <= 2.1 * hops[1000] and hops[1000] <= 2.1 * hops[500]
