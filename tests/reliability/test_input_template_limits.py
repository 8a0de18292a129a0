"""T16: templates that would take gigabytes or hours are refused, fast, in bounded memory.

The Jinja2 sandbox bounds nothing by itself (``{{ 'a' * 10**9 }}`` builds a gigabyte). Each
payload here is rendered the way the runtime renders it; it must fail as a located
``RenderError`` caused by a ``SecurityError`` from the render budget of :mod:`engine.sandbox`:
a size check before a value is built, the step budget, or the deadline. The figures are the
time to refusal and the peak of Python allocations (``tracemalloc``); the assertions on them
are loose (a slow CI machine must not fail), refusal is what is asserted exactly.
"""
from __future__ import annotations

import json
import time
import tracemalloc

import pytest
from jinja2.exceptions import SecurityError

from engine.errors import Location
from engine.model import TemplateString
from engine.sandbox import MAX_OUTPUT, MAX_SECONDS, MAX_STEPS
from engine.templates import RenderError, compile_string

WHERE = Location("mesh.yaml", 3, 5)
ITEMS = list(range(100_000))
CONTEXT = {"data": {"items": ITEMS, "text": "a" * 100_000, "n": 10**9}}
MAX_PEAK = 50 * 1024 * 1024

PAYLOADS = {
    # huge values from a few characters
    "repeat-str": "{{ 'a' * 10**9 }}",
    "repeat-list": "{{ [0] * 10**9 }}",
    "repeat-data": "{{ data.text * 100 }}",
    "repeat-nested": "{{ [data.text] * 100000 }}",
    "power-tower": "{{ 9 ** (9 ** 9) }}",
    "power-big": "{{ 2 ** 100000 }}",
    "product-doubling": "{% set ns = namespace(x=2 ** 64) %}{% for i in range(40) %}{% set ns.x = ns.x * ns.x %}"
                        "{% endfor %}",
    "concat-doubling": "{% set ns = namespace(s=data.text) %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}"
                       "{% endfor %}",
    "plus-doubling": "{% set ns = namespace(s=data.items) %}{% for i in range(40) %}{% set ns.s = ns.s + ns.s %}"
                     "{% endfor %}",
    "printf-width": "{{ '%999999999d' % 1 }}",
    "printf-star": "{{ '%*d' % (10**9, 1) }}",
    "format-filter": "{{ '%0999999999d'|format(1) }}",
    "center": "{{ 'x'|center(10**9) }}",
    "indent": "{{ data.text|wordwrap(1)|indent(100000) }}",
    "replace": "{{ data.text|replace('a', data.text) }}",
    "replace-method": "{{ data.text.replace('', data.text) }}",
    "join-filter": "{{ [data.text, data.text, data.text, data.text, data.text, data.text]|join(data.text) }}",
    "join-method": "{{ data.text.join([data.text, data.text, data.text, data.text, data.text, data.text]) }}",
    "wordwrap": "{{ data.text|wordwrap(1, wrapstring=data.text) }}",
    "batch": "{{ [1]|batch(10**9, 0)|list }}",
    "slice": "{{ [1]|slice(10**9)|list }}",
    "sum-lists": "{{ [data.items, data.items]|sum(start=[]) }}",
    "tojson-indent": "{{ data|tojson(10**6) }}",
    # hours from a few characters
    "range-1e6": "{% for i in range(10**6) %}{% endfor %}",
    "range-1e9": "{{ range(10**9)|list }}",
    "nested-ranges": "{% for a in range(1000) %}{% for b in range(1000) %}{% endfor %}{% endfor %}",
    "nested-data-loops": "{% for a in data.items %}{% for b in data.items %}{% endfor %}{% endfor %}",
    "triple-loop": "{% for a in range(100) %}{% for b in range(100) %}{% for c in range(100) %}{{ '' }}"
                   "{% endfor %}{% endfor %}{% endfor %}",
    "sort-in-loop": "{% for i in range(1000) %}{% if data.items|sort|first %}{% endif %}{% endfor %}",
    "macro-fanout": "{% macro f(n) %}{% if n < 40 %}{{ f(n + 1) }}{{ f(n + 1) }}{% endif %}{% endmacro %}{{ f(0) }}",
    "recursive-loop": "{% for x in [1, 2] recursive %}{{ loop([1, 2]) }}{% endfor %}",
    "output-flood": "{% for i in range(100000) %}{{ data.text[:100] }}{% endfor %}",
}


@pytest.mark.parametrize("name", PAYLOADS)
def test_payload_is_refused_quickly_in_bounded_memory(name):
    render = compile_string(TemplateString(PAYLOADS[name], WHERE))
    tracemalloc.start()
    started = time.perf_counter()
    with pytest.raises(RenderError) as caught:
        render(CONTEXT)
    seconds = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    cause = caught.value.__cause__
    print(json.dumps({"test": "T16", "case": name, "ms": round(seconds * 1000, 1), "peak_kib": peak // 1024,
                      "refusal": f"{type(cause).__name__}: {cause}"[:120]}))
    assert caught.value.loc == WHERE
    recursion = name == "recursive-loop" and isinstance(cause, RecursionError)  # Python's own limit stops that one
    assert recursion or isinstance(cause, SecurityError), repr(cause)
    assert peak < MAX_PEAK
    assert seconds < 20 * MAX_SECONDS  # the deadline is 0.5 s; tracemalloc slows rendering down


def test_budget_figures_are_the_documented_ones():
    assert (MAX_STEPS, MAX_SECONDS, MAX_OUTPUT) == (1_000_000, 0.5, 1_000_000)


def test_a_busy_but_reasonable_template_fits_the_budget():
    """A few thousand iterations and a sizeable output are fine."""
    text = "{% for i in data.items[:5000] %}{{ i }},{% endfor %}{{ data.text[:1000]|upper|length }}"
    out = compile_string(TemplateString(text, WHERE))(CONTEXT)
    assert out.endswith(",1000") and out.count(",") == 5000
