"""Template shortcuts read the event directly; each must answer exactly as Jinja does.

``{{ data.x }}`` and ``{{ data.x | default(LITERAL) }}`` skip Jinja when the value is present
and plain; otherwise (missing, a list, a long string, a dict attribute name) Jinja decides,
so its value, default or error stays the answer.
"""
from __future__ import annotations

import pytest

from engine.core.errors import Location
from engine.language import templates
from engine.language.model import TemplateString
from engine.language.templates import RenderError, compile_string

TEMPLATES = ["{{ data.x }}", "{{ data.x | default(1) }}", "{{ data.x|default('none') }}",
             "{{ data.x | default(none) }}", "{{ data.items | default(-2.5) }}",
             "{{ data.x.y | default(true) }}"]
CONTEXTS = [{"data": {"x": 5, "items": 7}}, {"data": {"x": "text"}}, {"data": {}}, {"data": {"x": None}},
            {"data": {"x": True, "items": False}}, {"data": {"x": 2.5}}, {"data": {"x": [1, {"a": 2}]}},
            {"data": {"x": {"y": 3}}}, {"data": {"x": "s" * 20_000}}, {"data": "flat"}, {},
            # refused either way, with the same RenderError: too long, too long inside, not JSON
            {"data": {"x": "s" * 1_000_001}}, {"data": {"x": ["s" * 1_000_001]}}, {"data": {"x": [object()]}},
            {"data": {"x": {"y": {1, 2}}}}]


def answer(render, ctx):
    try:
        return ("value", render(ctx))
    except RenderError as exc:
        return ("error", exc.detail)


@pytest.mark.parametrize("text", TEMPLATES)
def test_a_shortcut_answers_as_jinja_does(text):
    template = TemplateString(text, Location("t.yaml", 1, 1))
    fast, slow = compile_string(template), compile_string(template, fast=False)
    for ctx in CONTEXTS:
        assert answer(fast, ctx) == answer(slow, ctx), ctx


@pytest.mark.parametrize(("expr", "taken"), [
    ("data.x | default(1)", True), ("data.x|default('a')", True), ('a.b | default("b")', True),
    ("data.x | default(-1.5)", True), ("data.x | default(None)", True),
    ("data.x | default(data.y)", False),  # an argument that is itself a lookup could fail
    ("data.x | default(1, true)", False), ("data.x | d(1)", False), ("data.x | default(1) | upper", False)])
def test_which_default_expressions_take_the_shortcut(expr, taken):
    assert bool(templates._DEFAULTED.match(expr)) is taken


MAPPING_CONTEXTS = CONTEXTS + [
    {"data": {"x": "s" * 1_000_001}}, {"data": {"x": "s" * 1_000_000, "items": "t" * 10_001}},
    {"data": {"x": 10**30, "items": -0.0}}, {"data": {"x": (1, 2)}},
    {"data": {"x": {"y": [True, None]}, "items": {}}}, {"data": {"x": {"y": "s" * 1_000_001}}},
    {"data": {"x": [object()]}}, {"data": None}, {"vars": {"x": 1}},
]


def render_or_error(render, ctx):
    try:
        return ("value", render(ctx))
    except Exception as exc:  # a shortcut's SecurityError is not a RenderError: compare whatever is raised
        return ("error", type(exc).__name__, str(exc))


def test_a_mapping_of_templates_renders_as_its_templates_one_by_one():
    """compile_value reads the shortcuts of a mapping inline: the same values and errors, in key order."""
    from engine.language.model import TemplateValue
    from engine.language.templates import compile_value

    texts = TEMPLATES + ["{{ data.x | upper }}", "plain", "{{ data.x }} and {{ data.items }}", "{{ vars.x }}",
                         "{{ data }}", "{{ data.x.y }}"]
    loc = Location("t.yaml", 1, 1)
    strings = tuple(TemplateString(text, loc) for text in texts)
    whole = compile_value(TemplateValue({f"k{i}": text for i, text in enumerate(texts)}, strings, loc))
    singles = [compile_string(s) for s in strings]

    def one_by_one(ctx):
        return {f"k{i}": render(ctx) for i, render in enumerate(singles)}
    for ctx in MAPPING_CONTEXTS:
        assert render_or_error(whole, ctx) == render_or_error(one_by_one, ctx), ctx
    for i, text in enumerate(texts):  # and each key alone, so that no key's error hides another's answer
        alone = compile_value(TemplateValue({"k": text}, (strings[i],), loc))
        for ctx in MAPPING_CONTEXTS:
            assert render_or_error(alone, ctx) == render_or_error(lambda c: {"k": singles[i](c)}, ctx), (
                text,
                ctx,
            )


def test_native_values_are_what_the_general_conversion_makes():
    """A template's value is turned into JSON values as the general conversion does it."""
    from types import MappingProxyType

    import jinja2
    from markupsafe import Markup

    class Count(int):
        pass
    values = ["s", "s" * 1_000_001, 1, 1.5, True, None, Count(3), Markup("<b>"), [1, ["a", {"b": (2, 3)}]],
              {"a": [None, {"b": "c"}]}, MappingProxyType({"a": 1}), (1, "x"), {"a": object()}, [1, b"x"],
              jinja2.StrictUndefined(name="missing"), [jinja2.Undefined()], {1: 2}]
    # `(data)` is no field read: both ways ask Jinja, then turn its value into JSON, by exact
    # types first (fast) or by the general conversion alone (the reference)
    template = TemplateString("{{ (data) }}", Location("t.yaml", 1, 1))
    fast, reference = compile_string(template), compile_string(template, fast=False)
    for value in values:
        got = render_or_error(fast, {"data": value})
        assert got == render_or_error(reference, {"data": value}), value
        if got[0] == "value" and isinstance(value, (list, dict)):
            assert got[1] is not value and type(got[1]) is type(value)  # a fresh container, as before
