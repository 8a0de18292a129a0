"""Validation reads plain templates (text and ``{{ name.attr }}``) without Jinja; the answers,
syntax errors and fields read, must be exactly those of Jinja's parser."""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.language import templates
from engine.language.templates import referenced_fields, syntax_error

PIECES = ["{{ ", "{{", " }}", "}}", "{", "}", "{%", "%}", "{#", "#}", ".", " ", "\t", "\n", "-", "|", "[0]",
          "data", "id", "x", "a_b", "event", "input", "true", "none", "not", "if", "loop", "_", "9", "é", "'", "text"]
texts = st.lists(st.sampled_from(PIECES), max_size=14).map("".join)


def jinja_answers(text: str, monkeypatch) -> tuple:
    with monkeypatch.context() as patch:
        patch.setattr(templates, "_plain_chains", lambda text: None)
        templates._parsed.cache_clear()
        error = syntax_error(text)
        return (None if error is None else str(error)), referenced_fields(text)


def assert_same(text: str, monkeypatch) -> None:
    error = syntax_error(text)
    assert ((None if error is None else str(error)), referenced_fields(text)) == jinja_answers(text, monkeypatch)


@pytest.mark.parametrize("text", ["{{ data.id }}-r5", "plain", "", "{{ data.a }} {{ data.a.b }}", "{{data}}",
                                  "{{ true.x }}", "{{ not.x }}", "{{ data.if }}", "x {{ data.id | int }}", "{ x }",
                                  "{{ data.9 }}", "{{\tevent.data.x\t}} and {{ input.y }}", "}} {{ a.b }} {",
                                  "{{ data.player.id }} scored {{ data.score }}"])
def test_examples(text, monkeypatch):
    assert_same(text, monkeypatch)


@settings(max_examples=2000, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(texts)
def test_generated_templates(monkeypatch, text):
    assert_same(text, monkeypatch)
