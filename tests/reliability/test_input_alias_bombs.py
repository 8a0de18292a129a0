"""T13: "billion laughs" and recursive aliases are refused at once, in bounded memory.

A 9-level bomb is about 500 bytes and stands for 9**9 (387 million) nodes; the 30-level one
for 9**30. PyYAML loads both cheaply (aliases are shared), so the danger is whatever walks
the expanded tree afterwards. The loader counts the expanded size on the composed node graph
(memoised, so counting is linear in the *text*) and refuses past 1,000,000 nodes before
anything is constructed; a recursive alias is refused by the same walk. The figures are the
time and the peak of Python allocations (``tracemalloc``) of each refusal.
"""
from __future__ import annotations

import json
import time
import tracemalloc

import pytest

from engine.analysis.validate import check_mesh
from engine.language.source import load_documents

MAX_PEAK = 10 * 1024 * 1024


def laughs(levels: int, width: int = 9) -> str:
    """The classic bomb: each level a list of *width* aliases to the level below."""
    lines = [f"l0: &l0 [{', '.join(['lol'] * width)}]"]
    lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * width)}]" for i in range(1, levels + 1)]
    return "\n".join(lines) + "\n"


def merges(levels: int) -> str:
    """The same with merge keys: each mapping merges nine copies of the one before."""
    lines = ["m0: &m0 {x: 1, y: 2}"]
    lines += [f"m{i}: &m{i} {{<<: [{', '.join([f'*m{i - 1}'] * 9)}]}}" for i in range(1, levels + 1)]
    return "\n".join(lines) + "\n"


BOMBS = {
    "9-level": (laughs(9), "alias-bomb"),
    "30-level": (laughs(30), "alias-bomb"),
    "wide-2-level": (laughs(2, width=1500), "alias-bomb"),  # 2.25 M nodes from 22 KB, no depth at all
    "merge-keys": (merges(12), "alias-bomb"),
    "recursive-seq": ("a: &a [*a]\n", "recursive-alias"),
    "recursive-map": ("a: &a {b: *a}\n", "recursive-alias"),
    "recursive-deep": ("a: &a [[[{b: [*a]}]]]\n", "recursive-alias"),
}


@pytest.mark.parametrize("name", BOMBS)
def test_bomb_is_refused_fast_in_bounded_memory(name):
    text, code = BOMBS[name]
    tracemalloc.start()
    started = time.perf_counter()
    documents, diagnostics = load_documents(text, "bomb.yaml")
    seconds = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(json.dumps({"test": "T13", "case": name, "bytes": len(text), "ms": round(seconds * 1000, 1),
                      "peak_kib": peak // 1024, "codes": [d.code for d in diagnostics]}))
    assert documents == []
    assert [d.code for d in diagnostics] == [code]
    assert diagnostics[0].loc.line is not None
    assert peak < MAX_PEAK


def test_validate_refuses_a_bomb_with_a_located_error(tmp_path, meshctl):
    path = tmp_path / "mesh.yaml"
    path.write_text(laughs(9))
    result = meshctl("validate", path)
    assert result.exit_code == 1
    assert f"{path}:7:5: error[alias-bomb]" in result.output  # l6, the first level past 1,000,000 nodes
    assert "Traceback" not in result.output
    assert check_mesh(str(path)).mesh is None


@pytest.mark.slow
def test_shared_values_within_the_limit_still_load():
    """Anchors that share, rather than multiply, are ordinary YAML."""
    documents, diagnostics = load_documents(laughs(5), "ok.yaml")  # 9**5 = 59,049 nodes
    assert diagnostics == [] and len(documents) == 1
