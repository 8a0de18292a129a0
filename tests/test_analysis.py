"""Static analysis on generated meshes: tangles of cycles, long chains, field checks."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from engine.analysis import field_verdict
from engine.check import check_mesh


def _mesh(n_types: int, edges: dict[int, list[int]], bounded: set[int] = frozenset()) -> str:
    """Event types e0..e{n-1}, external e0, and a service s{i} on e{i} emitting e{j} for j in edges[i]."""
    docs = [f"apiVersion: meshctl/v1\nkind: EventType\nmetadata: {{name: e{i}}}\n" + ("spec: {external: true}\n" if i == 0 else "")
            for i in range(n_types)]
    for i, targets in edges.items():
        emits = ", ".join(f"e{j}" for j in targets)
        actions = ", ".join(f"{{emit: {{type: e{j}}}}}" for j in targets) or "{log: end}"
        loop = "      loop: {max_hops: 4}\n" if i in bounded else ""
        docs.append(f"apiVersion: meshctl/v1\nkind: Service\nmetadata: {{name: s{i}}}\nspec:\n  subscriptions:\n"
                    f"    - on: e{i}\n      do: [{actions}]\n      emits: [{emits}]\n{loop}")
    return "---\n".join(docs)


def codes(result) -> list[str]:
    return [d.code for d in result.diagnostics]


def test_complete_tangle_is_reported_with_bounded_output(tmp_path):
    n = 14  # every service emits every other type: millions of elementary cycles
    path = tmp_path / "tangle.yaml"
    path.write_text(_mesh(n, {i: [j for j in range(n) if j != i] for i in range(n)}))
    result = check_mesh(str(path))
    cycles = [d for d in result.diagnostics if d.code == "event-cycle"]
    assert len(cycles) == 10
    assert codes(result).count("cycles-truncated") == 1
    shortest = cycles[0].message
    assert shortest.startswith("circular events: e0 -> s0 -> e1 -> s1 -> e0") or "e0 ->" in shortest


def test_long_chain_is_valid(tmp_path):
    n = 3000
    path = tmp_path / "chain.yaml"
    path.write_text(_mesh(n, {i: [i + 1] if i + 1 < n else [] for i in range(n)}))
    result = check_mesh(str(path))
    assert result.errors == 0, result.diagnostics[:3]
    assert result.mesh is not None and len(result.mesh.services) == n


def test_loop_through_a_bounded_consumer_is_a_warning(tmp_path):
    path = tmp_path / "loop.yaml"
    path.write_text(_mesh(3, {0: [1], 1: [2], 2: [1]}, bounded={2}))
    result = check_mesh(str(path))
    (loop,) = [d for d in result.diagnostics if d.code == "bounded-loop"]
    assert loop.severity == "warning"
    assert loop.message == "circular events, declared bounded (max_hops 4): e1 -> s1 -> e2 -> s2 -> e1"
    assert result.errors == 0


@pytest.mark.parametrize(("schema", "path", "verdict"), [
    ({"type": "object", "properties": {"a": {}}}, ("a",), "ok"),
    ({"type": "object", "properties": {"a": {}}}, ("b",), "undeclared"),
    ({"type": "object", "properties": {"a": {}}, "additionalProperties": False}, ("b",), "forbidden"),
    ({"type": "object"}, ("anything",), "ok"),
    ({"properties": {"p": {"type": "array", "items": {"properties": {"x": {}}}}}}, ("p", 0, "y"), "undeclared"),
    ({"properties": {"p": {"$ref": "#/$defs/P"}}, "$defs": {"P": {"properties": {"x": {}}, "additionalProperties": False}}},
     ("p", "y"), "forbidden"),
    ({"anyOf": [{"properties": {"a": {}}}, {"properties": {"b": {}}}]}, ("c",), "ok"),
])
def test_field_verdict(schema, path, verdict):
    assert field_verdict(schema, path) == verdict


PRUNE = """
apiVersion: meshctl/v1
kind: EventType
metadata: {name: job.checked}
spec: {external: true, schema: {type: object, properties: {status: {type: string}}}}
---
apiVersion: meshctl/v1
kind: Service
metadata: {name: checker}
spec:
  subscriptions:
    - on: job.checked
      match: {data: {status: [failed]}}
      do: [{emit: {type: job.checked, data: {status: STATUS}}}]
      emits: [job.checked]
"""


@pytest.mark.parametrize(("status", "cycle"), [("ok", False), ("failed", True), ('"{{ data.status }}"', True)])
def test_hops_a_pattern_rejects_are_pruned_from_loop_detection(tmp_path, status, cycle):
    path = tmp_path / "prune.yaml"
    path.write_text(PRUNE.replace("STATUS", status))
    found = {d.code: d for d in check_mesh(str(path)).diagnostics}
    assert ("event-cycle" in found) is cycle
    assert ("pruned-edge" in found) is not cycle
    if not cycle:
        note = found["pruned-edge"]
        assert note.severity == "info"
        assert note.message == ("service 'checker' cannot receive job.checked from service 'checker': data.status is 'ok' "
                                "in the emit; the pattern wants ['failed']; this hop is left out of loop detection")


def test_example_cycles_are_the_same_under_every_hash_seed(tmp_path):
    """A tangle with more cycles than are shown: the same ones are shown in every process."""
    n = 6  # 409 elementary cycles, 10 shown
    path = tmp_path / "tangle.yaml"
    path.write_text(_mesh(n, {i: [j for j in range(n) if j != i] for i in range(n)}))
    outputs = set()
    for seed in ("1", "2", "3", "4"):
        run = subprocess.run([sys.executable, "-c", "import sys; from cli import main; sys.exit(main())", "validate",
                              str(path)], capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": seed})
        assert run.returncode == 1, run.stderr[-2000:]
        outputs.add(run.stdout + run.stderr)
    assert len(outputs) == 1
    assert "cycles-truncated" in outputs.pop()
