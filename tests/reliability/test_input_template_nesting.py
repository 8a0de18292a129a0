"""Templates too deep to compile end in a located `template-too-complex`, never a crash or exit 70.

A sum of 1,000 terms is 1,000 nested ``+`` nodes: Jinja's compiler walks them recursively
and Python's ``compile()`` refuses the 1,000 parentheses Jinja writes for them; nested
brackets and block tags make Jinja's parser recurse (13 and 4 frames a level). The sandbox
refuses such templates before anything recurses (100 levels of nodes, 40 of block tags, 20
of brackets) and turns whatever still fails to compile (Python's 20 nested loops) into the
same error. Each case runs in a child process, where a crash is a failing return code: it
runs `validate`'s pipeline, then compiles and renders the template as the runtime does,
which must give a value or a located ``RenderError``. Deepest accepted templates are
compiled 450 frames down the stack too, so that the decision does not depend on the caller.
"""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from engine.core.errors import Location
from engine.language.model import TemplateString
from engine.language.sandbox import (
    MAX_BLOCKS,
    MAX_BRACKETS,
    MAX_NESTING,
    TemplateTooComplex,
    environment,
)
from engine.language.templates import RenderError, compile_string

pytestmark = pytest.mark.slow

CHILD = textwrap.dedent("""
    import json, sys, time
    from engine.analysis.validate import check_mesh
    from engine.core.errors import Location
    from engine.language.model import TemplateString
    from engine.language.templates import RenderError, compile_condition, compile_string
    started = time.perf_counter()
    result = check_mesh(sys.argv[1])
    text, where = open(sys.argv[2]).read(), Location("t.yaml", 1, 1)
    try:
        compile = compile_condition if sys.argv[3] == "when" else compile_string
        rendered = ["value", repr(compile(TemplateString(text, where))({"data": {"n": 1, "a": 2}}))[:40]]
    except RenderError as exc:
        rendered = ["error", exc.detail, str(exc.loc)]
    located = all(d.loc.line is not None and d.loc.col is not None for d in result.diagnostics)
    print(json.dumps({"codes": sorted({d.code for d in result.diagnostics if d.severity == "error"}),
                      "located": located,
                      "rendered": rendered, "seconds": time.perf_counter() - started}))
""")


def _sum(n: int, op: str = "+") -> str:
    return "{{ " + f" {op} ".join(["data.n"] * n) + " }}"


def _nest(n: int, opening: str, closing: str, inner: str = "x") -> str:
    return opening * n + inner + closing * n


CASES: dict[str, tuple[str, str, bool]] = {  # name: (template, where it goes, compiles)
    "sum-90": (_sum(90), "data", True),
    "sum-1000": (_sum(1_000), "data", False),
    "sum-5000": (_sum(5_000), "data", False),
    "sum-100000": (_sum(100_000), "data", False),
    "sum-in-text-1000": ("total: " + _sum(1_000) + "!", "data", False),
    "and-1000-when": (" and ".join(["data.n"] * 1_000), "when", False),
    "not-500-when": ("not " * 500 + "data.n", "when", False),
    "compare-1000": (_sum(1_000, "<"), "data", False),
    "concat-1000": (_sum(1_000, "~"), "data", True),  # one flat node: fine
    # what the error advises
    "list-sum-1000": ("{{ [" + ", ".join(["data.n"] * 1_000) + "]|sum }}", "data", True),
    f"parens-{MAX_BRACKETS}": ("{{ " + _nest(MAX_BRACKETS, "(", ")", "data.n") + " }}", "data", True),
    f"parens-{MAX_BRACKETS + 1}": ("{{ " + _nest(MAX_BRACKETS + 1, "(", ")", "data.n") + " }}", "data",
                                   False),
    "parens-1000": ("{{ " + _nest(1_000, "(", ")", "1") + " }}", "data", False),
    "parens-100000": ("{{ " + _nest(100_000, "(", ")", "1") + " }}", "data", False),
    "lists-1000": ("{{ " + _nest(1_000, "[", "]", "") + " }}", "data", False),
    "dicts-1000": ("{{ " + _nest(1_000, "{'a': ", "}", "1") + " }}", "data", False),
    "filters-90": ("{{ data.n" + "|string" * 90 + " }}", "data", True),
    "filters-1000": ("{{ data.n" + "|string" * 1_000 + " }}", "data", False),
    "attributes-1000": ("{{ data" + ".a" * 1_000 + " }}", "data", False),
    "minus-1000": ("{{ " + "-" * 1_000 + "data.n }}", "data", False),
    "conditional-1000": ("{{ " + "data.n if data.a else " * 1_000 + "0 }}", "data", False),
    f"if-{MAX_BLOCKS}": (_nest(MAX_BLOCKS, "{% if data.n %}", "{% endif %}"), "data", True),
    f"if-{MAX_BLOCKS + 1}": (_nest(MAX_BLOCKS + 1, "{% if data.n %}", "{% endif %}"), "data", False),
    "if-1000": (_nest(1_000, "{% if data.n %}", "{% endif %}"), "data", False),
    "for-19": (_nest(19, "{% for x in [1] %}", "{% endfor %}"), "data", True),
    "for-21": (_nest(21, "{% for x in [1] %}", "{% endfor %}"), "data", False),  # Python's 20 nested loops
    "for-1000": (_nest(1_000, "{% for x in [1] %}", "{% endfor %}"), "data", False),
    "macro-1000": (_nest(1_000, "{% macro m() %}", "{% endmacro %}"), "data", False),
}

MESH = """\
apiVersion: meshctl/v1
kind: EventType
metadata: {name: ping}
spec: {external: true}
---
apiVersion: meshctl/v1
kind: EventType
metadata: {name: pong}
spec: {external: true}
---
apiVersion: meshctl/v1
kind: Route
metadata: {name: deep}
spec:
  from: [ping]
"""


def _mesh(template: str, where: str) -> str:
    quoted = json.dumps(template)  # a YAML double-quoted scalar
    transform = "  transform:\n    type: pong\n    data:\n      x: {}\n"
    if where == "when":
        return MESH + f"  when: {quoted}\n" + transform.format('"{{ data.n }}"')
    return MESH + transform.format(quoted)  # the template at line 19, column 10


@pytest.mark.parametrize("name", CASES)
def test_a_deep_template_is_a_located_error_or_compiles(name, tmp_path):
    template, where, compiles = CASES[name]
    mesh, text = tmp_path / "mesh.yaml", tmp_path / "template.txt"
    mesh.write_text(_mesh(template, where))
    text.write_text(template)
    child = subprocess.run([sys.executable, "-c", CHILD, str(mesh), str(text), where],
                           capture_output=True, text=True, timeout=300)
    assert child.returncode == 0, f"child died ({child.returncode}): {child.stderr[-2000:]}"
    outcome = json.loads(child.stdout)
    print(json.dumps({"test": "template-nesting", "case": name, "chars": len(template),
                      "ms": round(outcome["seconds"] * 1000, 1), "codes": outcome["codes"]}))
    assert outcome["located"]
    if compiles:
        assert outcome["codes"] == [] and outcome["rendered"][0] == "value", outcome
    else:
        assert outcome["codes"] == ["template-too-complex"], outcome
        assert outcome["rendered"][0] == "error" and outcome["rendered"][2] == "t.yaml:1:1", outcome
        assert outcome["rendered"][1].startswith("TemplateTooComplex: "), outcome


@pytest.mark.parametrize("terms", [1_000, 5_000, 100_000])
def test_validate_and_run_say_where_the_sum_is(terms, tmp_path):
    mesh = tmp_path / "mesh.yaml"
    mesh.write_text(_mesh(_sum(terms), "data"))
    events = tmp_path / "e.jsonl"
    events.write_text('{"id": "p1", "type": "ping", "data": {"n": 1}}\n')
    for args in (["validate", str(mesh)], ["run", str(mesh), "--events", str(events)]):
        child = subprocess.run([sys.executable, "-c", "from cli import main; main()", *args],
                               capture_output=True, text=True, timeout=300)
        assert child.returncode == 1, child.stdout + child.stderr
        assert (
            f"{mesh}:19:10: error[template-too-complex]: template error: "
            f"expressions and statements nest more than {MAX_NESTING} levels deep"
        ) in child.stdout + child.stderr


def _down(frames: int, action):
    return _down(frames - 1, action) if frames else action()


SHAPES = {  # a template with n levels of its construct
    "sum": _sum,
    "filters": lambda n: "{{ data.n" + "|string" * n + " }}",
    "not": lambda n: "{{ " + "not " * n + "data.n }}",
    "conditional": lambda n: "{{ " + "data.n if data.a else " * n + "0 }}",
    "ifs": lambda n: _nest(n, "{% if data.n %}", "{% endif %}"),
    "ifs-brackets": lambda n: _nest(n, "{% if data.n %}", "{% endif %}", "{{ " + "not " * 30 + _nest(
        MAX_BRACKETS, "(", ")", "data.n + data.a") + " }}"),
    "macros": lambda n: _nest(n, "{% macro m() %}", "{% endmacro %}"),
}


def _compiles(text: str) -> bool:
    try:
        environment().from_string(text)
    except TemplateTooComplex:
        return False
    return True


@pytest.mark.parametrize("name", SHAPES)
def test_what_the_limits_let_through_compiles_deep_in_the_stack(name):
    """The decision is the template's: 450 frames further down, the deepest accepted one still compiles and
    renders; and the limits are where the docs say (100 levels of nodes, 40 of blocks)."""
    shape = SHAPES[name]
    largest = next(n for n in range(MAX_NESTING + 1, 0, -1) if _compiles(shape(n)))
    assert largest >= (MAX_BLOCKS if name in ("ifs", "ifs-brackets", "macros") else MAX_NESTING - 5)
    _down(450, lambda: environment().from_string(shape(largest)))
    compile_string(TemplateString(shape(largest), Location("m.yaml", 1, 1)))({"data": {"n": 1, "a": 2}})


def test_a_template_compiled_at_run_time_fails_each_render_at_its_place():
    render = compile_string(TemplateString(_sum(1_000), Location("mesh.yaml", 9, 7)))
    for _ in range(2):
        with pytest.raises(RenderError) as caught:
            render({"data": {"n": 1}})
        assert caught.value.loc == Location("mesh.yaml", 9, 7)
        assert caught.value.detail.startswith("TemplateTooComplex: expressions and statements nest more than")
