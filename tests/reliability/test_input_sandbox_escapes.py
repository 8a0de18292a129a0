"""T15: a corpus of Jinja2 sandbox escapes, rendered the way the runtime renders templates: 0 escapes.

Each payload is a known way out of a template: walking ``__class__``/``__mro__``/
``__subclasses__`` to a dangerous class, reaching a function's ``__globals__`` through the
default globals (``cycler``, ``joiner``, ``lipsum``, ``namespace``), ``str.format`` and
``format_map`` field lookups (CVE-2016-10745, CVE-2019-10906), a stored ``format`` method
called later (CVE-2024-56326), ``|attr('format')`` (CVE-2025-27516), loading templates by
name (CVE-2024-56201 needs a user-chosen name), and mutating the event through its methods.
Every payload must fail as a located ``RenderError`` caused by a sandbox refusal or an
undefined name (``StrictUndefined``), never render a value; the loading ones are already
refused by `validate`.
"""
from __future__ import annotations

import json
import subprocess
import sys

import jinja2
import pytest
from jinja2.exceptions import TemplateRuntimeError, TemplateSyntaxError

from engine.core.errors import Location
from engine.language.model import TemplateString
from engine.language.templates import RenderError, compile_string, syntax_error

WHERE = Location("mesh.yaml", 7, 9)
CONTEXT = {"data": {"name": "ada", "tags": ["x", "y"]}, "event": {"id": "e1", "type": "t"}, "vars": {}}

PAYLOADS = [
    # the object graph, from any value
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ ''.__class__.__base__.__subclasses__() }}",
    "{{ ().__class__.__bases__[0].__subclasses__() }}",
    "{{ [].__class__.__base__.__subclasses__()[0] }}",
    "{{ (1).__class__.__base__ }}",
    "{{ data.__class__ }}",
    "{{ data['__class__'] }}",
    "{{ data|attr('__class__') }}",
    "{{ data.get.__self__.__class__ }}",
    "{{ event.__init__ }}",
    "{{ ''.upper.__globals__ }}",
    "{{ dict.__base__.__subclasses__() }}",
    "{{ dict.mro()[1].__subclasses__() }}",
    "{{ range.__globals__ }}",
    "{% for c in [].__class__.__base__.__subclasses__() %}{{ c }}{% endfor %}",
    "{{ data.tags|map(attribute='__class__')|list }}",
    "{{ data.tags|selectattr('__class__')|list }}",
    "{{ data.tags|sort(attribute='__class__') }}",
    "{{ ['a']|map('attr', '__class__')|list }}",
    # globals with __globals__ behind them
    "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "{{ joiner.__init__.__globals__.os }}",
    "{{ lipsum.__globals__['os'].popen('id') }}",
    "{{ namespace.__init__.__globals__ }}",
    "{{ namespace().__class__.__init__ }}",
    "{{ self.__init__.__globals__ }}",
    "{{ self._TemplateReference__context }}",
    "{{ config.items() }}",
    "{{ request.application.__globals__ }}",
    "{{ __builtins__ }}",
    "{{ getattr(data, '__class__') }}",
    # str.format and friends
    "{{ '{0.__class__}'.format(data) }}",
    "{{ '{0.__class__.__init__.__globals__}'.format(data) }}",
    "{{ '{x.__class__}'.format_map({'x': data}) }}",
    "{% set f = '{0.__class__}'.format %}{{ f(data) }}",
    "{% set f = '{0.__class__}'.format %}{{ [data]|map(f)|list }}",
    "{{ ('{0.__class__}'|attr('format'))(data) }}",
    "{{ 'x'|attr('format') }}",
    "{{ '{0:{1}}'.format(1, 10**9) }}",
    # mutating what the template was given
    "{{ data.update({'name': 'eve'}) }}",
    "{{ data.tags.append('y') }}",
    "{{ data.clear() }}",
    "{{ data.pop('name') }}",
    "{{ vars.setdefault('x', 1) }}",
    # methods that only build large strings
    "{{ 'a'.ljust(10) }}",
    "{{ 'a'.encode('utf-8') }}",
]
LOADING = [
    "{% include '/etc/passwd' %}",
    "{% import 'os' as os %}",
    "{% extends '../../etc/passwd' %}",
    "{% from 'x.html' import y %}",
    "{% include data.name %}",
]
REFUSED = TemplateRuntimeError  # SecurityError and UndefinedError are kinds of it


def _render(text: str):
    return compile_string(TemplateString(text, WHERE))(CONTEXT)


@pytest.mark.parametrize("payload", PAYLOADS)
def test_payload_is_refused(payload):
    with pytest.raises(RenderError) as caught:
        _render(payload)
    assert caught.value.loc == WHERE
    assert isinstance(caught.value.__cause__, REFUSED), repr(caught.value.__cause__)
    assert CONTEXT["data"] == {"name": "ada", "tags": ["x", "y"]} and CONTEXT["vars"] == {}


@pytest.mark.parametrize("payload", LOADING)
def test_loading_a_template_by_name_is_refused_at_validate_and_at_run(payload):
    assert isinstance(syntax_error(payload), TemplateSyntaxError)
    with pytest.raises(RenderError):
        _render(payload)


def test_corpus_summary():
    escapes = 0
    for payload in PAYLOADS + LOADING:
        try:
            _render(payload)
            escapes += 1
        except RenderError:
            pass
    print(json.dumps({"test": "T15", "payloads": len(PAYLOADS) + len(LOADING), "escapes": escapes,
                      "jinja2": jinja2.__version__}))
    assert escapes == 0


def test_ordinary_templates_still_work():
    assert (
        _render("{{ data.name|upper }}-{{ data.tags|join(',') }}-{{ '%05.1f'|format(3.14159) }}")
        == "ADA-x,y-003.1"
    )
    assert _render("{{ data.get('name') }} {{ data.keys()|list }} {{ 'A,b'.lower().split(',') }}") == \
        "ada ['name', 'tags'] ['a', 'b']"
    counted = (
        "{% set ns = namespace(n=0) %}{% for t in data.tags %}{% set ns.n = ns.n + 1 %}{% endfor %}{{ ns.n }}"
    )
    assert _render(counted) == "2"


def test_an_older_jinja2_is_refused_at_import():
    """The sandbox fixes of 3.1.5 and 3.1.6 are required; with 3.1.5 the engine does not load."""
    code = ("import jinja2; jinja2.__version__ = '3.1.5'\n"
            "try:\n    import engine.language.sandbox\nexcept ImportError as e:\n    print(e)")
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "needs Jinja2 >= 3.1.6" in child.stdout
    assert tuple(int(p) for p in jinja2.__version__.split(".")[:3]) >= (3, 1, 6)
