"""T16 (continued): what a template spends grows with the size of what it touches, and no clock decides.

Each operation whose cost grows with its operands (comparisons, ``in``, filters, tests,
string methods, slices, ``~``, ``+``, printed values, macro output) runs here in a loop of
100 iterations over large data: it must be refused by the step budget, although the loop
itself is short; the same loop over small data must render. Then: the verdicts do not change
when the wall clock jumps 10 s at every reading; an ordinary render reads no clock at all;
the CPU-time guard is looked at only after ``GUARD_EVERY`` steps; calls nest at most
``MAX_DEPTH`` deep; Python's ``RecursionError`` becomes a render error; and ``meshctl run``
dead-letters an event whose template runs over its budget, with the same message every time.
"""
from __future__ import annotations

import itertools
import json
import time

import pytest
from test_input_template_limits import PAYLOADS, REFUSALS, STEPS, WHERE, refusal

from engine.language import sandbox
from engine.language.model import TemplateString, TemplateValue
from engine.language.sandbox import GUARD_EVERY, MAX_CPU_SECONDS, MAX_DEPTH
from engine.language.templates import RenderError, compile_string, compile_value


def data(n: int) -> dict:
    """Event data with lists, a mapping and records of ``n`` items, a text of 4·n characters, and a
    list of 100 references to the first list (small to walk one level, large to compare)."""
    a = list(range(n))
    return {"a": a, "b": list(range(n)), "lists": [a] * 100, "last": n - 1, "text": "ab c" * n,
            "words": [f"w{i}" for i in range(n)], "map": {f"k{i}": i for i in range(n)},
            "recs": [{"k": i % 10, "v": i} for i in range(n)]}


BIG, SMALL = {"data": data(100_000)}, {"data": data(10)}

CHARGED = {  # one operation each, evaluated 100 times
    # comparisons and `in`: compiled to Python operators, which the sandbox does not see by itself
    "eq": "data.a == data.b", "ne": "data.a != data.b", "lt": "data.a < data.b", "le": "data.a <= data.b",
    "gt": "data.a > data.b", "ge": "data.a >= data.b", "chained": "data.a == data.b == data.a",
    "in-list": "data.last in data.a", "not-in-list": "-1 not in data.a", "in-text": "'zz' in data.text",
    "not-in-text": "'zz' not in data.text", "in-generator": "data.b in data.lists|select",
    "eq-slices": "(range(1)|slice(50, data.a)|list) == (range(1)|slice(50, data.b)|list)",
    # tests
    "test-eq": "data.a is eq(data.b)", "test-in": "data.last is in(data.a)",
    "select-eq": "[data.a, data.b]|select('eq', data.b)|list", "test-upper": "data.text is upper",
    # filters
    "join": "data.words|join(',')", "sort": "data.a|sort", "unique": "data.a|unique|list",
    "dictsort": "data.map|dictsort", "sort-generator": "data.lists|select|sort",
           "slice": "data.a|slice(3)|list", "batch": "data.a|batch(3)|list",
    "map": "data.a|map('abs')|list", "select": "data.a|select('odd')|list",
           "reject": "data.a|reject('odd')|list",
    "selectattr": "data.recs|selectattr('k')|list", "groupby": "data.recs|groupby('k')", "sum": "data.a|sum",
    "min": "data.a|min", "max": "data.a|max", "tojson": "data.a|tojson", "list": "data.a|list",
    "string": "data.a|string", "reverse": "data.a|reverse|list", "items": "data.map|items|list",
    "upper": "data.text|upper", "safe": "data.text|safe", "replace": "data.text|replace('a', 'b')",
           "wordcount": "data.text|wordcount",
    # methods
    "count": "data.text.count('z')", "find": "data.text.find('z')", "split": "data.text.split()",
    "replace-method": "data.text.replace('a', 'b')", "startswith": "data.text.startswith('x')",
    "endswith": "data.text.endswith('x')", "strip": "data.text.strip()",
           "join-method": "','.join(data.words)",
    # slices, operators, globals
    "slice-list": "data.a[1:]", "slice-text": "data.text[::-1]", "concat": "data.text ~ ''",
    "plus": "data.a + []", "plus-nested": "data.lists + []", "times-nested": "[data.lists] * 2",
    "printf-nested": "'%s' % [data.lists]", "printf": "'%s' % data.text", "dict": "dict(data.map)",
           "namespace": "namespace(data.map)",
}
CHARGED_BODIES = {  # statements: what is printed into a block, and a macro's output
    "output-block": "{% set x %}{{ data.text }}{% endset %}",
    "macro-output": "{% macro m() %}{{ data.text }}{% endmacro %}{% set x = m() %}",
}


def looped(body: str) -> str:
    return "{% for i in range(100) %}" + body + "{% endfor %}"


TEMPLATES = {**{name: looped("{% set x = " + op + " %}") for name, op in CHARGED.items()},
             **{name: looped(body) for name, body in CHARGED_BODIES.items()}}


@pytest.mark.parametrize("name", TEMPLATES)
def test_an_operation_on_large_operands_is_charged_by_their_size(name):
    assert refusal(TEMPLATES[name], BIG) == STEPS


@pytest.mark.parametrize("name", TEMPLATES)
def test_the_same_operation_on_small_operands_renders(name):
    assert compile_string(TemplateString(TEMPLATES[name], WHERE))(SMALL) == ""


def test_a_comparison_with_a_literal_is_not_charged_by_the_other_side():
    """``x == 'lit'`` stops at the literal's length: it stays a plain Python operator."""
    text = looped(
        "{% set x = data.a == [1, 2] or data.text == 'abc' or data.text < 'b' or data.last in [1, 2] %}"
    )
    assert compile_string(TemplateString(text, WHERE))(BIG) == ""


def test_chained_comparisons_keep_python_semantics():
    render = compile_string(
        TemplateString(
            "{{ [data.a[1] < data.a[2] < data.a[3], 3 > data.a[2] > data.a[5], "
            "data.a[1] < data.a[0] < data.missing] }}",
            WHERE,
        )
    )
    assert render(SMALL) == [True, False, False]  # short-circuit: the missing field is never compared


def jumping(step: float):
    ticks = itertools.count(0.0, step)
    return lambda: next(ticks)


WALL_CLOCKS = ("monotonic", "perf_counter", "time")


@pytest.mark.parametrize("name", list(PAYLOADS) + list(TEMPLATES))
def test_the_verdict_is_the_same_when_the_wall_clock_jumps_10s_per_reading(monkeypatch, name):
    for clock in WALL_CLOCKS:
        monkeypatch.setattr(time, clock, jumping(10.0))
        monkeypatch.setattr(time, f"{clock}_ns", jumping(10e9))
    if name in PAYLOADS:
        assert REFUSALS[name] in refusal(PAYLOADS[name])
    else:
        assert refusal(TEMPLATES[name], BIG) == STEPS


ORDINARY = [  # the templates of workflows/orders, and busier ones still far below GUARD_EVERY steps
    "res-{{ input.order_id }}", "{{ data.total > 0 }}", "{{ input.items }}",
    "{{ 'express-air' if input.express | default(false) else 'ground' }}",
    "{% for i in input.items %}{{ i.sku }}x{{ i.qty }} {% endfor %}",
    "{{ input.items | map(attribute='qty') | sum }} {{ input.email.split('@')[1] | upper }}",
    "{% macro line(i) %}{{ i.sku ~ ':' ~ i.qty }}{% endmacro %}"
        "{% for i in input.items %}{{ line(i) }};{% endfor %}",
]
ORDER = {"input": {"order_id": "ord-1", "total": 3.5, "express": True, "email": "c1@example.org",
                   "items": [{"sku": "MUG", "qty": 2}, {"sku": "TEE", "qty": 1}]}, "data": {"total": 3.5}}


def test_an_ordinary_render_reads_no_clock(monkeypatch):
    def no_clock():
        raise AssertionError("a render read a clock")
    for clock in (*WALL_CLOCKS, "thread_time", "process_time"):
        monkeypatch.setattr(time, clock, no_clock)
        monkeypatch.setattr(time, f"{clock}_ns", no_clock)
    outputs = [compile_string(TemplateString(text, WHERE))(ORDER) for text in ORDINARY]
    assert outputs[0] == "res-ord-1" and outputs[4] == "MUGx2 TEEx1 " and outputs[5] == "3 EXAMPLE.ORG"
    # 20,000 iterations: still below GUARD_EVERY steps
    busy = "{% for i in range(20000) %}{{ i }}{% endfor %}"
    assert len(compile_string(TemplateString(busy, WHERE))({})) == sum(len(str(i)) for i in range(20000))


def test_the_cpu_guard_looks_only_every_guard_every_steps(monkeypatch):
    readings = []
    monkeypatch.setattr(time, "thread_time", lambda: readings.append(1) or 0.0)
    assert refusal("{% for a in range(1000) %}{% for b in range(1000) %}{% endfor %}{% endfor %}") == STEPS
    # at 900,000 steps left, 800,000, ..., 100,000
    assert len(readings) == sandbox.MAX_STEPS // GUARD_EVERY - 1


def test_the_cpu_guard_stops_a_render_whose_steps_did_not_reflect_its_cost(monkeypatch):
    """The last resort: were a cost missed, CPU time (not wall time) past GUARD_EVERY steps stops the
    render."""
    monkeypatch.setattr(time, "thread_time", jumping(MAX_CPU_SECONDS))
    message = refusal("{% for a in range(1000) %}{% for b in range(1000) %}{% endfor %}{% endfor %}")
    assert message.startswith(f"the template used more than {MAX_CPU_SECONDS:g}s of CPU time")


NESTING = {  # each nests DEPTH + 1 calls
    "macro": "{% macro f(n) %}{% if n > 0 %}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(DEPTH) }}",
    "caller": "{% macro f(n) %}{% if n > 0 %}{% call f(n - 1) %}{% endcall %}{{ caller() }}{% endif %}"
    "{% endmacro %}{% call f(DEPTH) %}{% endcall %}",
    "recursive-loop": "{% set ns = namespace(tree=[]) %}{% for i in range(DEPTH + 1) %}"
    "{% set ns.tree = [ns.tree] %}{% endfor %}"
    "{% for node in ns.tree recursive %}{{ loop(node) }}{% endfor %}.",
    "block": "{% set ns = namespace(n=DEPTH + 2) %}{% block b %}{% set ns.n = ns.n - 1 %}{% if ns.n > 0 %}"
    "{{ self.b() }}{% endif %}{% endblock %}",
}


@pytest.mark.parametrize("kind", NESTING)
def test_calls_nest_at_most_max_depth_deep_whatever_python_allows(kind):
    deepest = NESTING[kind].replace("DEPTH", str(MAX_DEPTH - 1))
    compile_string(TemplateString(deepest, WHERE))({})  # renders
    message = f"the template nests macro, block or recursive-loop calls more than {MAX_DEPTH} deep"
    assert refusal(NESTING[kind].replace("DEPTH", str(MAX_DEPTH))) == message
    # far past Python's own recursion limit
    assert refusal(NESTING[kind].replace("DEPTH", "10000")) == message


def nested(depth: int) -> list:
    value: list = []
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize("text", ["{{ data.deep }}", "x{{ data.deep }}", "{{ data.deep == data.other }}",
                                  "{{ data.deep|tojson }}", "{{ data.deep|string|length }}"])
def test_python_recursion_limit_becomes_a_render_error(text):
    deep = {"data": {"deep": nested(5000), "other": nested(5000)}}
    with pytest.raises(RenderError) as caught:
        compile_string(TemplateString(text, WHERE))(deep)
    assert str(caught.value) == f"{WHERE}: RecursionError: a value or a call is nested too deeply to render"


def test_a_mapping_of_lookups_reports_deep_data_as_a_render_error():
    mapping = compile_value(TemplateValue({"x": "{{ data.deep }}"},
                                          (TemplateString("{{ data.deep }}", WHERE),), WHERE))
    with pytest.raises(RenderError, match="nested too deeply"):
        mapping({"data": {"deep": nested(5000)}})


MESH = """\
apiVersion: meshctl/v1
kind: EventType
metadata: {name: ping}
spec: {external: true, schema: {type: object, properties: {a: {type: array}, b: {type: array}}}}
---
apiVersion: meshctl/v1
kind: EventType
metadata: {name: pong}
spec: {schema: {type: object}}
---
apiVersion: meshctl/v1
kind: Service
metadata: {name: svc}
spec:
  subscriptions:
    - on: ping
      do: [{emit: {type: pong, data: {same: "{{ (range(1)|slice(2000, data.a)|list) == (range(1)|slice(2000, data.b)|list) }}"}}}]
      emits: [pong]
---
apiVersion: meshctl/v1
kind: Service
metadata: {name: sink}
spec: {subscriptions: [{on: pong, do: {log: got it}}]}
"""  # noqa: E501 (YAML kept as written)


def test_run_dead_letters_a_template_over_budget_the_same_way_every_time(
    meshctl, write, tmp_path, monkeypatch
):
    """2000 × 1000 items compared: refused by steps, whatever the clock does meanwhile."""
    mesh = write(MESH)
    events = tmp_path / "events.jsonl"
    small = {"a": [1, 2], "b": [1, 2]}
    big = {"a": list(range(1000)), "b": list(range(1000))}
    events.write_text("".join(json.dumps({"id": f"e{i}", "type": "ping", "time": f"2026-01-01T00:00:0{i}Z",
                                          "data": payload}) + "\n" for i,
                              payload in enumerate([small, big, small])))
    dead_letters = []
    for attempt in range(3):
        if attempt == 2:
            for clock in WALL_CLOCKS:
                monkeypatch.setattr(time, clock, jumping(10.0))
        dlq = tmp_path / f"dlq-{attempt}.jsonl"
        result = meshctl("run", mesh.parent, "--events", events, "--dlq-out", dlq, "--format", "json")
        assert result.exit_code == 0, result.output
        summary = json.loads(result.output)
        assert (summary["emitted"], summary["dead_lettered"]) == (2, 1)
        dead_letters.append(dlq.read_bytes())
    (record,) = [json.loads(line) for line in dead_letters[0].splitlines()]
    assert record["reason"] == "template-error" and record["event"]["id"] == "e1"
    assert record["error"] == f"{mesh}:17:45: SecurityError: {STEPS}"
    assert dead_letters[0] == dead_letters[1] == dead_letters[2]
