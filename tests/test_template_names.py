"""Filters and tests a template names must exist in the sandbox: `validate` says so at the
template, with the closest name, instead of `run` stopping with an internal error (Jinja finds
an unknown name only when it compiles). `random` is not there: runs are deterministic."""
from __future__ import annotations

import pytest

from engine.core.errors import Location
from engine.language.model import TemplateString
from engine.language.templates import compile_string, syntax_error

MESH = """
apiVersion: meshctl/v1
kind: EventType
metadata: {{name: a}}
spec: {{external: true}}
---
apiVersion: meshctl/v1
kind: EventType
metadata: {{name: b}}
---
apiVersion: meshctl/v1
kind: Service
metadata: {{name: s}}
spec:
  subscriptions:
    - on: a
      emits: [b]
      when: {when}
      do: {{emit: {{type: b, data: {{x: "{data}"}}}}}}
---
apiVersion: meshctl/v1
kind: Service
metadata: {{name: t}}
spec:
  subscriptions:
    - on: b
      do: {{log: "{{{{ data.x }}}}"}}
"""


@pytest.mark.parametrize(("when", "data", "line", "message"), [
    ('"true"', "{{ data.items | lenght }}", 18, "no filter named 'lenght'; did you mean 'length'?"),
    ('"true"', "{{ data.items | random }}", 18, "no filter named 'random': runs are deterministic"),
    ('"true"', "{{ 1 if data.n is odder else 2 }}", 18, "no test named 'odder'; did you mean 'odd'?"),
    ('"data.n | intt > 0"', "{{ data.n }}", 17, "no filter named 'intt'; did you mean 'int'?"),
    ('"{{ data.n | flot > 1 }}"', "{{ data.n }}", 17, "no filter named 'flot'; did you mean 'float'?"),
])
def test_an_unknown_filter_or_test_is_a_located_validate_error(meshctl, write, when, data, line, message):
    path = write(MESH.format(when=when, data=data))
    result = meshctl("validate", path)
    assert result.exit_code == 1
    assert f"mesh.yaml:{line}:" in result.output and message in result.output
    events = path.parent / "events.jsonl"
    events.write_text('{"type": "a", "id": "1", "data": {"n": 3, "items": [1]}}\n')
    ran = meshctl("run", path.parent, "--events", events)
    assert ran.exit_code == 1 and message in ran.output  # refused before running: never an internal error


def test_known_names_pass_and_a_compiled_text_is_shared():
    assert syntax_error("{{ data.items | length }}{{ 1 if data.n is odd }}") is None
    loc = Location("m.yaml", 1, 1)
    one = compile_string(TemplateString("{{ data.n | string ~ '!' }}", loc))
    two = compile_string(TemplateString("{{ data.n | string ~ '!' }}", loc))
    assert one({"data": {"n": 1}}) == two({"data": {"n": 1}}) == "1!"
