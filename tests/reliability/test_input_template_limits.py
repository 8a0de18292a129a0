"""T16: templates that would take gigabytes or hours are refused, in bounded memory, by a rule.

The Jinja2 sandbox bounds nothing by itself (``{{ 'a' * 10**9 }}`` builds a gigabyte). Each
payload here is rendered the way the runtime renders it; it must fail as a located
``RenderError`` caused by a ``SecurityError`` from the render budget of :mod:`engine.language.sandbox`:
a size check before a value is built, the step budget or the nesting depth, and always the
same one (no clock decides). The printed figures are the time to refusal and the peak of
Python allocations (``tracemalloc``); only the memory is asserted, loosely. The costs charged
by the size of operands are tested in ``test_input_template_costs.py``.
"""
from __future__ import annotations

import json
import time
import tracemalloc

import pytest
from jinja2.exceptions import SecurityError

from engine.core.errors import Location
from engine.language.model import TemplateString
from engine.language.sandbox import (
    CHARS_PER_STEP,
    GUARD_EVERY,
    MAX_CPU_SECONDS,
    MAX_DEPTH,
    MAX_OUTPUT,
    MAX_STEPS,
)
from engine.language.templates import RenderError, compile_string

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
    "product-doubling": "{% set ns = namespace(x=2 ** 64) %}{% for i in range(40) %}"
    "{% set ns.x = ns.x * ns.x %}{% endfor %}",
    "concat-doubling": "{% set ns = namespace(s=data.text) %}{% for i in range(40) %}"
    "{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
    "plus-doubling": "{% set ns = namespace(s=data.items) %}{% for i in range(40) %}"
    "{% set ns.s = ns.s + ns.s %}{% endfor %}",
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
    "macro-fanout": "{% macro f(n) %}{% if n < 40 %}{{ f(n + 1) }}{{ f(n + 1) }}{% endif %}{% endmacro %}"
    "{{ f(0) }}",
    "recursive-loop": "{% for x in [1, 2] recursive %}{{ loop([1, 2]) }}{% endfor %}",
    "output-flood": "{% for i in range(100000) %}{{ data.text[:100] }}{% endfor %}",
}


STEPS = f"the template ran over its budget of {MAX_STEPS:,} steps"
REFUSALS = {  # the check that stops each payload: the same one on every machine and every run
    **dict.fromkeys(["repeat-str", "repeat-list", "repeat-data"],
                    "repetition builds more than 100,000 items"),
    "repeat-nested": "repetition would build more than 1,000,000 characters",
    **dict.fromkeys(["power-tower", "power-big"], "exponent "),
    "product-doubling": "the product is larger than 6400 bits",
    "concat-doubling": "`~` would build more than 1,000,000 characters",
    "plus-doubling": "`+` builds more than 100,000 items",
    **dict.fromkeys(["printf-width", "printf-star", "format-filter"], "a `%` format takes its width"),
    "center": "center() would build", "indent": "indent() would build", "replace": "replace() would build",
    "replace-method": "replace() would build", "join-filter": "join() would build",
            "join-method": "join() would build",
    "wordwrap": "wordwrap() would build", "batch": "batch(1000000000) is over the limit",
    "slice": "slice(1000000000) is over the limit", "sum-lists": "sum() adds numbers only",
    "tojson-indent": "tojson indent 1000000 is over the limit of 8",
    **dict.fromkeys(["range-1e6", "range-1e9"], "is over the limit of 100,000"),
    **dict.fromkeys(["nested-ranges", "nested-data-loops", "triple-loop", "sort-in-loop", "macro-fanout"],
                    STEPS),
    "recursive-loop": f"the template nests macro, block or recursive-loop calls more than {MAX_DEPTH} deep",
    "output-flood": "template output is longer than 1000000 characters",
}


def refusal(text: str, context: dict = CONTEXT) -> str:
    """The SecurityError that stops *text*, as ``RenderError`` carries it, at the template's location."""
    with pytest.raises(RenderError) as caught:
        compile_string(TemplateString(text, WHERE))(context)
    assert caught.value.loc == WHERE
    assert isinstance(caught.value.__cause__, SecurityError), repr(caught.value.__cause__)
    return str(caught.value.__cause__)


@pytest.mark.slow
@pytest.mark.parametrize("name", PAYLOADS)
def test_payload_is_refused_by_its_rule_in_bounded_memory(name):
    tracemalloc.start()
    started = time.perf_counter()
    message = refusal(PAYLOADS[name])
    seconds = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(json.dumps({"test": "T16", "case": name, "ms": round(seconds * 1000, 1), "peak_kib": peak // 1024,
                      "refusal": message[:120]}))
    # Under tracemalloc a slow machine can reach the 5 s CPU guard before the step budget:
    # which of the two refuses first is a matter of speed, and a test asserts no speed.
    assert REFUSALS[name] in message or "s of CPU time (a last-resort guard" in message, message
    assert peak < MAX_PEAK


def test_every_payload_has_its_expected_refusal():
    assert set(REFUSALS) == set(PAYLOADS)


def test_budget_figures_are_the_documented_ones():
    assert (MAX_STEPS, MAX_OUTPUT, CHARS_PER_STEP, MAX_DEPTH) == (1_000_000, 1_000_000, 16, 50)
    assert (GUARD_EVERY, MAX_CPU_SECONDS) == (100_000, 5.0)


def test_a_busy_but_reasonable_template_fits_the_budget():
    """A few thousand iterations and a sizeable output are fine."""
    text = "{% for i in data.items[:5000] %}{{ i }},{% endfor %}{{ data.text[:1000]|upper|length }}"
    out = compile_string(TemplateString(text, WHERE))(CONTEXT)
    assert out.endswith(",1000") and out.count(",") == 5000
