"""T43: a template cannot change what it reads, nor what any other template or consumer sees.

Each payload tries to change the event, `vars`, `steps` or a nested value: methods taken from
a type (``dict.clear(data)``) by every path to it (a variable, ``|attr``, a macro argument,
``caller``, a loop, a block), the methods of the values themselves through filters
(``attr``, ``map``, ``selectattr``, ``sort``, ``groupby``, ``reverse``), namespaces, dict
views turned into lists, ``{% set %}`` of nested structures, ``range`` objects and the
``str.format`` family. After each render the context is deep-equal to a copy taken before,
and the render either fails as a located ``RenderError`` caused by a sandbox refusal or an
undefined name, or produces a value. Then: what a template produces shares no list or
mapping with its input; the templates of one render and successive renders see the
original context and the sandbox's globals and filters unchanged; ``validate`` names the
statically visible cases; and `meshctl run --output` shows a second consumer of the event,
and an orchestration's later steps, seeing the original data.
"""
from __future__ import annotations

import copy
import json

import pytest
from jinja2.exceptions import TemplateRuntimeError

from engine.core.errors import Location
from engine.language.model import TemplateString, TemplateValue
from engine.language.sandbox import environment
from engine.language.templates import (
    RenderError,
    compile_string,
    compile_value,
    syntax_error,
)

WHERE = Location("mesh.yaml", 7, 9)


def context() -> dict:
    return {"data": {"n": 1, "tags": ["x", "y"], "deep": {"inner": {"k": 1}, "list": [[1, 2], {"a": 1}]}},
            "event": {"id": "e1", "type": "ping", "data": {"n": 1}},
            "vars": {"total": 3, "seen": ["a"]},
            "steps": {"first": {"output": {"total": 1, "items": [{"sku": "a"}]}, "status": "done"}},
            "item": {"sku": "a", "qty": [1]}}


REFUSED = [
    # the reported payload, and every method of the dict type
    "{{ dict.clear(data) }}{{ dict.update(data, {'n': 666, 'forged': True}) }}",
    "{{ dict.pop(data, 'n') }}",
    "{{ dict.popitem(data) }}",
    "{{ dict.setdefault(data, 'forged', 1) }}",
    "{{ dict.__setitem__(data, 'n', 2) }}",
    "{{ dict.fromkeys(data) }}",
    "{{ dict['clear'] }}",
    "{{ dict[data] }}",
    # the type's methods by other paths: a variable, |attr, a macro argument, caller, a loop, a block
    "{% set c = dict.clear %}{{ c(data) }}",
    "{% set d = dict %}{{ d.update(data, {'n': 2}) }}",
    "{{ (dict|attr('update'))(data, {'n': 2}) }}",
    "{% macro m(f) %}{{ f.clear(data) }}{% endmacro %}{{ m(dict) }}",
    "{% macro m(x) %}{{ dict.clear(x) }}{% endmacro %}{{ m(data.deep) }}",
    "{% macro m() %}{{ caller(dict) }}{% endmacro %}"
        "{% call(d) m() %}{{ d.update(vars, {'x': 1}) }}{% endcall %}",
    "{% for k in data %}{{ loop.changed(dict.clear(data)) }}{% endfor %}",
    "{% block b %}{{ dict.update(data.deep.inner, {'k': 2}) }}{% endblock %}",
    "{{ ''.__class__.join }}{{ [].__class__.append(data.tags, 'z') }}",
    "{{ data.get.__self__.clear() }}",
    "{{ (data.tags|map('upper')).send(None) }}",
    "{{ range.__self__ }}",
    "{{ namespace.mro() }}",
    "{{ namespace|attr('__init__') }}",
    # the values' own methods, directly and through filters
    "{{ data.update({'n': 2}) }}",
    "{{ data.tags.append('z') }}",
    "{{ data.tags.sort() }}",
    "{{ data.tags.reverse() }}",
    "{{ data.deep.inner.setdefault('k', 2) }}",
    "{{ data.deep.list[0].insert(0, 9) }}",
    "{{ (data.tags|attr('append'))('z') }}",
    "{{ ([data]|map(attribute='clear')|first)() }}",
    "{{ [data]|selectattr('clear')|list }}",
    "{{ [data.tags]|sort(attribute='pop') }}{{ [data.tags]|map(attribute='pop')|map('string')|list }}",
    "{{ [data]|groupby('popitem') }}",
    "{% set r = data.tags|reverse|list %}{{ data.tags.reverse() }}",
    "{{ data.tags|map('attr', 'append')|list }}{{ (data.tags|batch(1)|first).pop() }}",
    # namespaces, dict views, {% set %} of nested structures
    "{% set ns = namespace(tags=data.tags) %}{{ ns.tags.append(1) }}",
    "{% set ns = namespace(d=data) %}{{ ns.d.clear() }}",
    "{% set data.n = 5 %}",
    "{% set v = data.values()|list %}{{ v[1].append('z') }}",
    "{{ (data.items()|list)[0][1] }}{{ (data.deep.values()|list)[0].clear() }}",
    "{{ data.items().mapping.clear() }}",
    "{% set x = {'a': data} %}{{ x.a.clear() }}",
    "{% set l = [data.tags, vars.seen] %}{{ l[1].append(1) }}",
    "{% set d = dict(data) %}{{ d.deep.inner.update({'k': 2}) }}",
    # the other names of the context
    "{{ vars.update({'x': 1}) }}",
    "{{ vars.seen.extend([1]) }}",
    "{{ event.data.clear() }}",
    "{{ steps.first.output.update({'total': 666}) }}",
    "{{ steps.first.output['items'][0].pop('sku') }}",
    "{{ item.qty.remove(1) }}",
    # range objects and the str.format family
    "{{ range(3).__class__ }}",
    "{{ (range(3)|list).append(4) }}",
    "{{ '{0.clear}'.format(data) }}",
    "{{ '{x}'.format_map(data) }}",
    "{% set f = '{0.tags.append}'.format %}{{ f(data) }}",
    "{{ 'x'|attr('format') }}",
    "{{ '%s'|format(data.tags.pop()) }}",
    # names that are not there
    "{{ cycler('a').next() }}",
    "{{ joiner() }}",
    "{{ set(data.tags).add(1) }}",
    "{{ self._TemplateReference__context.vars.update({'x': 1}) }}",
]

RENDERS = [  # run, produce a value, change nothing
    ("{% set ns = namespace(data) %}{% set ns.n = 666 %}{{ ns.n }}/{{ data.n }}", "666/1"),
    ("{% set ns = namespace(d=data) %}{% set ns.d = 0 %}{{ ns.d }}/{{ data.n }}", "0/1"),
    ("{% set data = {'n': 9} %}{{ data.n }}", "9"),
    ("{% set d = dict(data, n=5) %}{{ d.n }}/{{ data.n }}", "5/1"),
    ("{{ data.items().mapping.n }}", 1),
    ("{{ [data.tags]|sort(attribute='0')|first }}", ["x", "y"]),
    ("{% set t = data.tags + ['z'] %}{{ t|length }}/{{ data.tags|length }}", "3/2"),
    ("{{ data.tags|reverse|list }}", ["y", "x"]),
    ("{% for k, v in data|dictsort %}{{ k }}{% endfor %}", "deepntags"),
    ("{% set dict = none %}{{ dict is none }}", "True"),
]

ALL = REFUSED + [text for text, _ in RENDERS]


def _render(text: str, ctx: dict):
    return compile_string(TemplateString(text, WHERE))(ctx)


@pytest.mark.parametrize("payload", REFUSED)
def test_a_mutation_attempt_is_refused_and_changes_nothing(payload):
    ctx = context()
    before = copy.deepcopy(ctx)
    with pytest.raises(RenderError) as caught:
        _render(payload, ctx)
    assert caught.value.loc == WHERE
    assert isinstance(caught.value.__cause__, TemplateRuntimeError), repr(caught.value.__cause__)
    assert ctx == before


@pytest.mark.parametrize(("payload", "expected"), RENDERS)
def test_a_template_that_renders_changes_nothing(payload, expected):
    ctx = context()
    before = copy.deepcopy(ctx)
    assert _render(payload, ctx) == expected
    assert ctx == before


def test_the_corpus_leaves_one_shared_context_and_the_sandbox_as_they_were():
    """Every payload against the same context, one after the other: nothing any of them did
    reaches the next, a later template, or the sandbox's globals, filters and tests."""
    env = environment()
    sandbox = (dict(env.globals), dict(env.filters), dict(env.tests))
    ctx = context()
    before = copy.deepcopy(ctx)
    changed = 0
    for payload in ALL:
        try:
            _render(payload, ctx)
        except RenderError:
            pass
        changed += ctx != before
    assert (dict(env.globals), dict(env.filters), dict(env.tests)) == sandbox
    assert _render("{{ dict(a=range(2)|list) }} {{ namespace(n=1).n }}", ctx) == "{'a': [0, 1]} 1"
    print(json.dumps({"test": "T43", "payloads": len(ALL), "refused": len(REFUSED),
                      "contexts_changed": changed}))
    assert changed == 0 and ctx == before


def test_templates_of_one_render_see_the_original_context():
    """A route's transform renders its templates one after the other on one context."""
    ctx = context()
    before = copy.deepcopy(ctx)
    value = compile_value(
        TemplateValue(
            {
                "a": "{% set ns = namespace(data) %}{% set ns.n = 666 %}{{ ns.n }}",
                "b": "{{ data }}",
                "c": "{{ data.tags }}",
                "d": "{{ vars }}",
                "e": "{{ steps.first.output|default({}) }}",
            },
            tuple(
                TemplateString(t, WHERE)
                for t in (
                    "{% set ns = namespace(data) %}{% set ns.n = 666 %}{{ ns.n }}",
                    "{{ data }}",
                    "{{ data.tags }}",
                    "{{ vars }}",
                    "{{ steps.first.output|default({}) }}",
                )
            ),
            WHERE,
        )
    )
    out = value(ctx)
    assert out == {"a": "666", "b": before["data"], "c": ["x", "y"], "d": before["vars"],
                   "e": before["steps"]["first"]["output"]}
    assert ctx == before


def _containers(value, found: set[int]) -> set[int]:
    if isinstance(value, (dict, list)):
        found.add(id(value))
        for item in value.values() if isinstance(value, dict) else value:
            _containers(item, found)
    return found


@pytest.mark.parametrize("text", [
    "{{ data }}", "{{ data.deep }}", "{{ data.tags }}", "{{ data.deep.list }}", "{{ data.deep|default({}) }}",
    "{{ data if data else none }}", "{{ [data.tags, vars] }}", "{{ data.items().mapping }}",
    "{{ steps.first.output }}", "{{ steps }}", "{{ dict(data) }}", "{{ data.tags|list }}",
    "{{ namespace(x=data).x }}", "{{ (data.deep.list|first) }}", "{{ data.values()|list }}", "{{ item }}",
])
def test_what_a_template_produces_shares_nothing_with_its_input(text):
    """So a consumer that changes what it was given (a Python handler, say) changes no one else's data."""
    ctx = context()
    out = _render(text, ctx)
    assert out  # a list or mapping, at some depth
    assert not _containers(out, set()) & _containers(ctx, set())
    assert _render("{{ data }}", ctx) == context()["data"]


def test_one_render_leaves_nothing_for_the_next():
    """`{% set %}` of names and globals, namespaces and macros live in their render only."""
    ctx = context()
    texts = ["{% set dict = none %}{% set range = 1 %}{% set data = {} %}{% set vars = 0 %}",
             "{% set ns = namespace(n=1) %}{% set ns.n = 2 %}{% macro data() %}{% endmacro %}"]
    for text in texts * 3:
        _render(text, ctx)
    assert _render("{{ dict(n=data.n) }}|{{ range(2)|list }}|{{ vars.total }}|{{ namespace().n is defined }}",
                   ctx) == "{'n': 1}|[0, 1]|3|False"
    assert ctx == context()


@pytest.mark.parametrize("payload", [
    "{{ dict.clear(data) }}{{ dict.update(data, {'n': 666, 'forged': True}) }}",
    "{{ dict['clear'] }}",
    "{{ range.start }}",
    "{{ (dict|attr('update'))(data, {}) }}",
    "{% macro m(x) %}{{ dict.clear(x) }}{% endmacro %}{{ m(data) }}",
])
def test_validate_names_a_global_read_as_if_it_were_a_type(payload):
    error = syntax_error(payload)
    assert error is not None and "is a function that builds a new value" in error.message


@pytest.mark.parametrize("payload", [
    "{% set d = dict %}{{ d.clear(data) }}",  # only the runtime sees these; it refuses them (above)
    "{% set dict = data %}{{ dict.n }}",  # the template's own name
    "{{ dict(data).n }}",
])
def test_validate_does_not_guess_past_a_reassignment(payload):
    assert syntax_error(payload) is None


# --- end to end ------------------------------------------------------------------------------

MESH = """
apiVersion: meshctl/v1
kind: EventType
metadata: {name: ping}
spec:
  external: true
  schema:
    type: object
    properties: {n: {type: integer}, tags: {type: array, items: {type: string}}}
    required: [n]
    additionalProperties: false
---
apiVersion: meshctl/v1
kind: EventType
metadata: {name: seen}
spec: {external: true}
---
apiVersion: meshctl/v1
kind: Route
metadata: {name: forger}
spec:
  from: [ping]
  transform:
    type: seen
    data:
      x: "%(forge)s"
---
apiVersion: meshctl/v1
kind: Route
metadata: {name: appender}
spec:
  from: [ping]
  transform:
    type: seen
    data:
      x: "{%% set t = data.tags %%}{{ (t|attr('append'))('z') }}"
---
apiVersion: meshctl/v1
kind: Route
metadata: {name: witness}
spec:
  from: [ping]
  transform:
    type: seen
    data: {witness: "{{ data }}", n: "{{ data.n }}"}
---
apiVersion: meshctl/v1
kind: Orchestration
metadata: {name: saga}
spec:
  trigger: {on: ping}
  steps:
    - id: first
      do:
        - set: {total: "{{ input.n }}", tags: "{{ input.tags }}"}
    - id: second
      do:
        - set: {x: "{%% set d = dict %%}{{ d.update(steps.first.output, {'total': 666}) }}{{ d.clear(vars) }}"}
  on_failure:
    emit: {type: seen, data: {first: "{{ steps.first.output }}", vars: "{{ vars }}", input: "{{ input }}"}}
"""  # noqa: E501 (YAML kept as written)
FORGE_AT_RUN_TIME = "{% set d = dict %}{{ d.clear(data) }}{{ d.update(data, {'n': 666, 'forged': true}) }}"
FORGE_AS_REPORTED = "{{ dict.clear(data) }}{{ dict.update(data, {'n': 666, 'forged': True}) }}"
ORIGINAL = {"n": 1, "tags": ["a"]}


def test_a_second_consumer_and_later_steps_see_the_original_event(meshctl, write, tmp_path):
    mesh = write(MESH % {"forge": FORGE_AT_RUN_TIME})
    events = tmp_path / "e.jsonl"
    events.write_text(json.dumps({"id": "p1", "type": "ping", "data": ORIGINAL}) + "\n")
    out, dlq = tmp_path / "out.jsonl", tmp_path / "dlq.jsonl"
    result = meshctl("run", mesh, "--events", events, "--output", out, "--dlq-out", dlq, "--format", "json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert (summary["runs_failed"], summary["dead_lettered_by_reason"]) == (1, {"template-error": 2})
    emitted = {e["source"]: e["data"] for e in map(json.loads, out.read_text().splitlines())}
    assert emitted["meshctl/route:witness"] == {"witness": ORIGINAL, "n": 1}
    assert emitted["meshctl/orchestration:saga/on_failure"] == {
        "first": {"total": 1, "tags": ["a"]}, "vars": {"total": 1, "tags": ["a"]}, "input": ORIGINAL}
    dead = {d["consumer"]: d for d in map(json.loads, dlq.read_text().splitlines())}
    assert dead["route:forger"]["error"].startswith(f"{mesh}:25:10: SecurityError: templates cannot read "
                                                    "attributes of the global 'dict'")
    assert dead["route:appender"]["error"].startswith(
        f"{mesh}:35:10: SecurityError: access to attribute 'append'"
    )
    assert dead["route:forger"]["event"]["data"] == ORIGINAL


def test_the_reported_template_is_a_validate_error_at_its_place(meshctl, write, tmp_path):
    mesh = write(MESH % {"forge": FORGE_AS_REPORTED})
    result = meshctl("validate", mesh)
    assert result.exit_code == 1
    assert (
        f"{mesh}:25:10: error[template-syntax]: template error: 'dict' is a function that builds a new value"
        in result.output
    )
    events = tmp_path / "e.jsonl"
    events.write_text(json.dumps({"id": "p1", "type": "ping", "data": ORIGINAL}) + "\n")
    assert meshctl("run", mesh, "--events", events).exit_code == 1
