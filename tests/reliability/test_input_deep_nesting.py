"""T14: deep nesting, big scalars and huge files end in a located error, never a crash.

libyaml's C composer recurses without bound (it segfaults near 30,000 levels) and PyYAML's
pure-Python one raises ``RecursionError`` near 500, so each case runs `validate`'s whole
pipeline in a child process: a segfault is a failing return code, not a dead test run.
Flow (``[[[...]]]``, ``{a: {a: ...}}``) and block (``- - - x``, indentation) nesting at depths
100, 1,000, 30,000 and 1,000,000 must be refused by the depth cap (64) or the parser's own
flow limit; a 7 MB scalar is fine; a 100 MB file is refused by the size cap before it is read.
Each case prints its time and the child's peak-RSS growth.
"""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.slow

CHILD = textwrap.dedent("""
    import json, resource, sys, time
    from engine.analysis.validate import check_mesh
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    result = check_mesh(sys.argv[1])
    print(json.dumps({"codes": sorted({d.code for d in result.diagnostics}),
                      "lines": [d.loc.line for d in result.diagnostics],
                      "seconds": time.perf_counter() - started,
                      "rss_growth_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before}))
""")
DEPTHS = (100, 1_000, 30_000, 1_000_000)
TOO_DEEP = {"too-deep"}
FLOW_LIMIT = {"yaml-syntax"}  # libyaml refuses flow nesting past 1,000 levels itself, with a position
NOT_A_DOCUMENT = {"unknown-key", "missing-key"}  # loaded fine; the schema wants apiVersion, kind...


def _cases() -> dict[str, tuple[object, set[str]]]:
    cases: dict[str, tuple[object, set[str]]] = {}
    for depth in DEPTHS:
        cases[f"flow-seq-{depth}"] = ("[" * depth + "]" * depth, TOO_DEEP if depth <= 1_000 else FLOW_LIMIT)
        cases[f"flow-map-{depth}"] = ("{a: " * depth + "1" + "}" * depth, TOO_DEEP)
        cases[f"block-dash-{depth}"] = ("- " * depth + "x\n", TOO_DEEP)
    for depth in DEPTHS[:2]:  # indentation grows with depth squared: 30,000 levels would be a 450 MB file
        cases[f"block-indent-{depth}"] = (
            "".join(" " * i + "a:\n" for i in range(depth)) + " " * depth + "x\n",
            TOO_DEEP,
        )
    cases["mixed-100k"] = ("- [" * 50_000 + "]" * 50_000, FLOW_LIMIT)
    cases["scalar-7mb"] = ("a: " + "x" * 7_000_000 + "\n", NOT_A_DOCUMENT)
    cases["quoted-7mb"] = ('a: "' + "\\u00e9" * 1_000_000 + '"\n', NOT_A_DOCUMENT)
    cases["long-key"] = ("x" * 2_000 + ": 1\n", {"yaml-syntax"})  # a plain key longer than YAML's 1,024 limit
    cases["file-100mb"] = (100, {"file-too-large"})  # megabytes of `k: v` lines
    return cases


CASES = _cases()


def _write(path, content) -> None:
    if isinstance(content, int):
        line = "key: value\n" * 100_000
        with open(path, "w") as fh:
            for _ in range(content * 1024 * 1024 // len(line)):
                fh.write(line)
    else:
        path.write_text(content)


@pytest.mark.parametrize("name", CASES)
def test_nesting_and_size_end_in_a_located_error(name, tmp_path):
    content, expected = CASES[name]
    path = tmp_path / "mesh.yaml"
    _write(path, content)
    child = subprocess.run([sys.executable, "-c", CHILD, str(path)], capture_output=True, text=True,
                           timeout=120)
    assert child.returncode == 0, f"child died ({child.returncode}): {child.stderr[-2000:]}"
    outcome = json.loads(child.stdout)
    print(json.dumps({"test": "T14", "case": name, "bytes": path.stat().st_size,
                      "ms": round(outcome["seconds"] * 1000, 1), "rss_growth_kib": outcome["rss_growth_kib"],
                      "codes": outcome["codes"]}))
    assert set(outcome["codes"]) == expected
    assert all(line is not None for line in outcome["lines"])
    assert "too-complex" not in outcome["codes"]  # that would be a RecursionError caught late
