"""Static analysis on generated meshes: tangles of cycles, long chains, field checks."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from engine.analysis.rules import field_verdict
from engine.analysis.validate import check_mesh


def _mesh(n_types: int, edges: dict[int, list[int]], bounded: set[int] = frozenset()) -> str:
    """Event types e0..e{n-1}, external e0, and a service s{i} on e{i} emitting e{j} for j in edges[i]."""
    docs = [
        f"apiVersion: meshctl/v1\nkind: EventType\nmetadata: {{name: e{i}}}\n"
        + ("spec: {external: true}\n" if i == 0 else "")
        for i in range(n_types)
    ]
    for i, targets in edges.items():
        emits = ", ".join(f"e{j}" for j in targets)
        actions = ", ".join(f"{{emit: {{type: e{j}}}}}" for j in targets) or "{log: end}"
        loop = "      loop: {max_hops: 4}\n" if i in bounded else ""
        docs.append(
            f"apiVersion: meshctl/v1\nkind: Service\nmetadata: {{name: s{i}}}\nspec:\n  subscriptions:\n"
            f"    - on: e{i}\n      do: [{actions}]\n      emits: [{emits}]\n{loop}"
        )
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
    ({"properties": {"p": {"type": "array", "items": {"properties": {"x": {}}}}}}, ("p", 0, "y"),
     "undeclared"),
    ({"properties": {"p": {"$ref": "#/$defs/P"}},
      "$defs": {"P": {"properties": {"x": {}}, "additionalProperties": False}}},
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


@pytest.mark.parametrize(("status", "cycle"), [("ok", False), ("failed", True),
                                               ('"{{ data.status }}"', True)])
def test_hops_a_pattern_rejects_are_pruned_from_loop_detection(tmp_path, status, cycle):
    path = tmp_path / "prune.yaml"
    path.write_text(PRUNE.replace("STATUS", status))
    found = {d.code: d for d in check_mesh(str(path)).diagnostics}
    assert ("event-cycle" in found) is cycle
    assert ("pruned-edge" in found) is not cycle
    if not cycle:
        note = found["pruned-edge"]
        assert note.severity == "info"
        assert note.message == (
            "service 'checker' cannot receive job.checked from service 'checker': data.status is 'ok' "
            "in the emit; the pattern wants ['failed']; this hop is left out of loop detection"
        )


@pytest.mark.slow
def test_example_cycles_are_the_same_under_every_hash_seed(tmp_path):
    """A tangle with more cycles than are shown: the same ones are shown in every process."""
    n = 6  # 409 elementary cycles, 10 shown
    path = tmp_path / "tangle.yaml"
    path.write_text(_mesh(n, {i: [j for j in range(n) if j != i] for i in range(n)}))
    outputs = set()
    for seed in ("1", "2", "3", "4"):
        run = subprocess.run([sys.executable, "-c", "import sys; from cli import main; sys.exit(main())",
                              "validate", str(path)], capture_output=True, text=True,
                             env={**os.environ, "PYTHONHASHSEED": seed})
        assert run.returncode == 1, run.stderr[-2000:]
        outputs.add(run.stdout + run.stderr)
    assert len(outputs) == 1
    assert "cycles-truncated" in outputs.pop()


# --- loop analysis never hides a real loop (Stage 8, class 6) ------------------------------

HEAD = "apiVersion: meshctl/v1\n"
PING = HEAD + "kind: EventType\nmetadata: {name: ping}\nspec: {external: true}\n"
HANDLER = "def again(event, context):\n    context.emit('ping', {'kind': 'original'})\n"


def _echo(do: str, filter_: str = "match: {data: {kind: [original]}}") -> str:
    """A service on ping that re-emits ping with `kind: copy`; its filter wants `original`.

    Declared bounded, so that `meshctl run` accepts it when validate finds the loop: the loop
    guard then dead-letters the chain (`loop-detected`) if, and only if, it really loops.
    """
    return (
        PING + "---\n" + HEAD + "kind: Service\nmetadata: {name: echo}\nspec:\n  subscriptions:\n"
        f"    - on: ping\n      {filter_}\n      emits: [ping]\n      loop: {{max_hops: 3}}\n      do: {do}\n"
    )


def _codes(meshctl, path) -> list[str]:
    report = json.loads(meshctl("validate", "--format", "json", path).output)
    return [d["code"] for m in report["meshes"] for d in m["diagnostics"]]


def _run(meshctl, folder, events: list[dict]) -> dict:
    (folder / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    result = meshctl("run", folder, "--events", folder / "events.jsonl", "--format", "json")
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


ORIGINAL = {"type": "ping", "id": "p1", "source": "test", "data": {"kind": "original"}}


@pytest.mark.parametrize(("do", "loops"), [
    ("[{emit: {type: ping, data: {kind: copy}}}]", False),
    ("[{emit: {type: ping, data: {kind: copy}}}, {call: {python: 'h:again'}}]", True),
    ("[{call: {python: 'h:again'}}, {emit: {type: ping, data: {kind: copy}}}]", True),
    ("[{emit: {type: ping, data: {kind: copy}}}, {call: {http: 'http://example.test/x'}}]", False),
    ("[{emit: {type: ping, data: {kind: copy}}}, {log: hi}, {set: {a: 1}}]", False),
])
def test_a_handler_that_may_emit_the_type_keeps_the_hop(meshctl, write, tmp_path, do, loops):
    """The verdict of `validate` and the run agree: a pruned hop never loops, a kept one does."""
    path = write(_echo(do))
    write(HANDLER, "h.py")
    codes = _codes(meshctl, path)
    assert ("bounded-loop" in codes) is loops
    assert ("pruned-edge" in codes) is not loops
    summary = _run(meshctl, tmp_path, [ORIGINAL])
    assert ("loop-detected" in summary["dead_lettered_by_reason"]) is loops


@pytest.mark.parametrize(("filter_", "loops"), [
    ("match: {data: {kind: [original]}}", False),
    ("when: \"data.kind == 'original'\"", False),
    ("when: \"{{ data.kind == 'original' }}\"", False),
    ("when: \"data.kind in ['original', 'first']\"", False),
    ("when: \"data.kind != 'copy'\"", False),
    ("when: \"not (data.kind == 'copy')\"", False),
    ("when: \"data.kind == 'original' and data.n > 1\"", False),
    ("when: \"data.kind == 'original' or data.kind == 'copy'\"", True),
    ("when: \"data.kind|upper == 'COPY'\"", True),  # a filter: not reasoned about, never pruned
    ("when: \"data.kind != 'original'\"", True),
    ("when: \"data.kind|length > 0\"", True),
])
def test_when_filters_prune_like_match(meshctl, write, tmp_path, filter_, loops):
    path = write(_echo("{emit: {type: ping, data: {kind: copy, n: 0}}}", filter_))
    codes = _codes(meshctl, path)
    assert ("bounded-loop" in codes) is loops, codes
    assert ("pruned-edge" in codes) is not loops
    first = {**ORIGINAL, "data": {"kind": "original", "n": 5}}
    summary = _run(meshctl, tmp_path, [first, {**first, "id": "p2", "data": {"kind": "copy", "n": 0}}])
    assert ("loop-detected" in summary["dead_lettered_by_reason"]) is loops


@pytest.mark.parametrize(("when", "data", "verdict"), [
    ("data.n > 3", {"n": 2}, False),
    ("data.n >= 3", {"n": 3}, True),
    ("data.n < 3", {"n": "2"}, None),        # str against int: an error at run time, not a verdict
    ("data.s < 'b'", {"s": "a"}, True),
    ("data.a.b == 1", {"a": {"b": 1.0}}, True),
    ("data['a'].b == 2", {"a": {"b": 1}}, False),
    ("event.data.k == 'x'", {"k": "y"}, False),
    ("data.k == 'x'", {}, None),             # absent: undefined at run time, left undecided
    ("data.k in 'xyz'", {"k": "y"}, True),
    ("data.k == 'x' and data.u == 1", {"k": "x"}, None),
    ("{{ data.k }} == x", {"k": "x"}, None),  # text around the expression: not reasoned about
    ("data.k ==", {"k": "x"}, None),          # a syntax error is reported elsewhere
])
def test_condition_verdicts(when, data, verdict):
    from engine.language.conditions import condition
    unknown = object()
    assert condition(when).decide(data, unknown)[0] is verdict
    assert condition(when).decide({key: unknown for key in data}, unknown)[0] is None


STEP = PING + "---\n" + HEAD + """kind: EventType
metadata: {name: pong}
---
apiVersion: meshctl/v1
kind: Orchestration
metadata: {name: flow}
spec:
  trigger: {on: ping, match: {data: {kind: [original]}}}
  loop: {max_hops: 3}
  steps:
    - id: work
      do: [{emit: {type: EMITTED, data: {kind: copy}}}, {call: {python: 'h:again'}}]
EMITS"""
PONG = (
    HEAD + "kind: Service\nmetadata: {name: sink}\nspec:\n  subscriptions:\n    - {on: pong, do: {log: hi}}\n"
)


@pytest.mark.parametrize(("emitted", "emits", "loops"), [
    ("pong", "", False),                       # the handler's ping is undeclared: the step fails
    ("pong", "      emits: [ping]\n", True),   # declared: the handler may close the loop
    ("ping", "", True),                        # its own `emit` of ping lets the handler emit ping too
])
def test_a_step_handler_emits_only_what_the_step_declares(meshctl, write, tmp_path, emitted, emits, loops):
    """Undeclared: the handler's emit fails the step (no loop, validate clean); declared: validate
    flags it."""
    path = write(STEP.replace("EMITS", emits).replace("EMITTED", emitted) + "---\n" + PONG)
    write(HANDLER, "h.py")
    codes = _codes(meshctl, path)
    assert ("bounded-loop" in codes) is loops
    summary = _run(meshctl, tmp_path, [ORIGINAL])
    assert ("loop-detected" in summary["dead_lettered_by_reason"]) is loops
    assert summary["runs_failed"] == (0 if loops else 1)


@pytest.mark.parametrize(("emits", "loops"), [("", False), ("      emits: [ping]\n", True)])
def test_on_success_handlers_may_emit_what_steps_declare(meshctl, write, tmp_path, emits, loops):
    text = (
        STEP.replace("EMITTED", "pong").replace("EMITS", emits).replace(", {call: {python: 'h:again'}}", "")
    )
    path = write(text + "  on_success: {call: {python: 'h:again'}}\n---\n" + PONG)
    write(HANDLER, "h.py")
    assert ("bounded-loop" in _codes(meshctl, path)) is loops
    summary = _run(meshctl, tmp_path, [ORIGINAL])
    assert ("loop-detected" in summary["dead_lettered_by_reason"]) is loops


def test_step_emits_name_declared_types(meshctl, write):
    path = write(STEP.replace("EMITTED", "ping").replace("EMITS", "      emits: [pang]\n"))
    result = meshctl("validate", path)
    assert result.exit_code == 1
    assert f"{path}:19:15: error[unknown-event-type]: unknown event type 'pang'" in result.output


# --- loop analysis stays linear (class 7) ----------------------------------------------------

def _reemit(n: int, pattern: str, emit: str) -> str:
    docs = ["apiVersion: meshctl/v1\nkind: EventType\nmetadata: {name: x}\nspec: {external: true}\n"]
    for i in range(n):
        docs.append(
            f"apiVersion: meshctl/v1\nkind: Service\nmetadata: {{name: s{i:04d}}}\nspec:\n  subscriptions:\n"
            f"    - on: x\n      emits: [x]\n{pattern.format(i=i, j=(i + 1) % n)}"
            f"      do: {{emit: {{type: x, data: {emit.format(i=i, j=(i + 1) % n)}}}}}\n"
        )
    return "---\n".join(docs)


SHAPES = {  # (pattern, emit data): how producers and consumers of the one event type differ
    "same": ("", "{{n: '{{{{ data.n }}}}'}}"),
    "constant ring": ("      match: {{data: {{hop: [{i}]}}}}\n", "{{hop: {j}}}"),
    "when ring": ("      when: \"data.hop == {i}\"\n", "{{hop: {j}}}"),
    "mixed": ("      match: {{data: {{stage: [s{i}]}}}}\n", "{{stage: 's{j}', n: '{{{{ data.n }}}}'}}"),
}


@pytest.mark.parametrize("shape", SHAPES)
def test_split_graph_is_linear_in_producers_and_consumers(tmp_path, shape):
    from engine.analysis.feasibility import feasible_flow
    from engine.analysis.graph import build_flow_graph
    from engine.language.loader import load_mesh

    n = 300
    path = tmp_path / "mesh.yaml"
    path.write_text(_reemit(n, *SHAPES[shape]))
    mesh, _ = load_mesh(str(path))
    split, pruned = feasible_flow(build_flow_graph(mesh))
    assert split.number_of_edges() <= 4 * (n + n)  # n producers and n consumers of x
    assert len(pruned) <= n  # notes: at most one per group of consumers
    result = check_mesh(str(path))
    assert "event-cycle" in codes(result)  # each shape really loops (a ring, or everyone)
    assert codes(result).count("pruned-edge") <= n


# --- what the analysis prints (class 8) ------------------------------------------------------

def test_a_single_ring_bigger_than_the_listing_limit_is_not_truncated(tmp_path):
    from engine.analysis.rules import MAX_LISTED_TANGLE
    n = MAX_LISTED_TANGLE // 2 + 10  # 2n hops: past the limit; and one cycle only
    path = tmp_path / "ring.yaml"
    path.write_text(_mesh(n, {i: [(i + 1) % n] for i in range(n)}))
    result = check_mesh(str(path))
    assert codes(result).count("event-cycle") == 1
    assert "cycles-truncated" not in codes(result)
    two = tmp_path / "two.yaml"  # the same ring with one chord: more than one cycle, truncated
    two.write_text(_mesh(n, {i: [(i + 1) % n] + ([n // 2] if i == 0 else []) for i in range(n)}))
    found = {d.code: d for d in check_mesh(str(two)).diagnostics}
    assert found["cycles-truncated"].message.startswith(
        f"more circular paths exist among these {2 * n} elements"
    )


DELIVERS = HEAD + """kind: EventType
metadata: {name: a}
spec: {external: true}
---
apiVersion: meshctl/v1
kind: EventType
metadata: {name: b}
---
apiVersion: meshctl/v1
kind: Route
metadata: {name: r}
spec:
  from: [a]
  transform: {type: b}
  to: [svc]
---
apiVersion: meshctl/v1
kind: Service
metadata: {name: svc}
spec:
  subscriptions:
    - on: b
      emits: [a]
      do: {emit: {type: a}}
"""


def test_a_cycle_through_a_direct_delivery_names_the_delivered_type(meshctl, write):
    path = write(DELIVERS)
    result = meshctl("validate", path)
    assert result.exit_code == 1
    assert f"{path}:14:10: error[event-cycle]: circular events: a -> r -> b -> svc -> a\n" in result.output
    assert f"  {path}:16:8: note: route 'r' delivers b to service 'svc'\n" in result.output


def test_a_fifo_in_the_mesh_is_a_located_error(meshctl, write, tmp_path):
    write(PING)
    os.mkfifo(tmp_path / "pipe.yaml")  # nobody writes to it: reading would wait for ever
    result = meshctl("validate", tmp_path)
    assert result.exit_code == 1
    assert result.output.startswith(f"{tmp_path / 'pipe.yaml'}: error[not-a-file]: not a regular file")


@pytest.mark.parametrize("name", ["a.yaml\nb.yaml:1:1: error[forged]: x.yaml", "a\rb.yaml", "a\x1b[2Kb.yaml",
                                  "a\u2028b.yaml", "a\u202eb.yaml"])
def test_control_characters_in_paths_cannot_forge_lines(meshctl, tmp_path, name):
    (tmp_path / name).write_text(HEAD + "kind: EventType\nmetadata: {name: lonely}\n")
    result = meshctl("validate", "--format", "short", tmp_path)
    lines = result.output.splitlines()
    assert len(lines) == 3  # the warning, its hint, the summary
    snippet = meshctl("validate", tmp_path).output.splitlines()
    assert snippet[0] == lines[0] and snippet[2] == "3 | metadata: {name: lonely}" and len(snippet) == 6
    assert lines[0].endswith(
        "warning[unused-event-type]: event type 'lonely' is neither produced nor consumed"
    )
    assert lines[0].isprintable() and "error[forged]" not in lines[0].split(": warning")[1]
