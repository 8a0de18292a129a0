"""Validation reads plain templates (text and ``{{ name.attr }}``) without Jinja; the answers,
syntax errors and fields read, must be exactly those of Jinja's parser."""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.language.templates import referenced_fields, syntax_error

PIECES = [
    "{{ ",
    "{{",
    " }}",
    "}}",
    "{",
    "}",
    "{%",
    "%}",
    "{#",
    "#}",
    ".",
    " ",
    "\t",
    "\n",
    "-",
    "|",
    "[0]",
    "data",
    "id",
    "x",
    "a_b",
    "event",
    "input",
    "true",
    "none",
    "not",
    "if",
    "loop",
    "_",
    "9",
    "é",
    "'",
    "text",
]
texts = st.lists(st.sampled_from(PIECES), max_size=14).map("".join)


def jinja_answers(text: str) -> tuple:
    """The answers by Jinja's parser alone: the reference of the reading of plain templates."""
    error = syntax_error(text, fast=False)
    return (None if error is None else str(error)), referenced_fields(text, fast=False)


def assert_same(text: str) -> None:
    error = syntax_error(text)
    assert ((None if error is None else str(error)), referenced_fields(text)) == jinja_answers(text)


@pytest.mark.parametrize(
    "text",
    [
        "{{ data.id }}-r5",
        "plain",
        "",
        "{{ data.a }} {{ data.a.b }}",
        "{{data}}",
        "{{ true.x }}",
        "{{ not.x }}",
        "{{ data.if }}",
        "x {{ data.id | int }}",
        "{ x }",
        "{{ data.9 }}",
        "{{\tevent.data.x\t}} and {{ input.y }}",
        "}} {{ a.b }} {",
        "{{ data.player.id }} scored {{ data.score }}",
    ],
)
def test_examples(text):
    assert_same(text)


@pytest.mark.slow
@settings(
    max_examples=2000,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(texts)
def test_generated_templates(text):
    assert_same(text)
