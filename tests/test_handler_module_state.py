"""`meshctl validate` warns about handler modules that keep state of their own (`handler-module-state`).

Each case is a mesh in tmp_path whose one subscription calls ``handlers:go``; the module's source
varies. The warning is located at the mutation in the module, with a note at the `call`.
"""
from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from engine.analysis.handlerstate import MUTABLE_TYPES, MUTATING_METHODS

MESH = """\
apiVersion: meshctl/v1
kind: EventType
metadata: {name: ping}
spec: {external: true}
---
apiVersion: meshctl/v1
kind: Service
metadata: {name: svc}
spec:
  subscriptions:
    - on: ping
      do: {call: {python: "handlers:go"}}
"""


@pytest.fixture
def validate(tmp_path, meshctl):
    """Write handlers.py with *source* beside MESH; [(line, col, message, notes)] of its warnings."""
    (tmp_path / "mesh.yaml").write_text(MESH, encoding="utf-8")

    def run(source: str) -> list[tuple[int, int, str, list]]:
        (tmp_path / "handlers.py").write_text(textwrap.dedent(source).lstrip("\n"), encoding="utf-8")
        result = meshctl("validate", "--format", "json", tmp_path)
        assert result.exit_code == 0, result.output  # a warning, never an error
        found = [d for mesh in json.loads(result.output)["meshes"] for d in mesh["diagnostics"]]
        assert {d["code"] for d in found} <= {"handler-module-state"}
        for d in found:
            assert (d["file"], d["severity"]) == (str(tmp_path / "handlers.py"), "warning")
            notes = [(n["file"], n["line"], n["col"]) for n in d["notes"]]
            assert notes == [(str(tmp_path / "mesh.yaml"), 12, 18)]  # the `call`
        return [(d["line"], d["col"], d["message"]) for d in found]

    return run


WARNED = {
    "subscript assignment": ("TOTALS = {}\ndef go(event, context):\n    TOTALS[event['id']] = 1\n", (3, 5)),
    "augmented subscript": ("N = dict()\ndef go(event, context):\n    N['k'] += 1\n", (3, 5)),
    "del subscript": ("SEEN = {'a': 1}\ndef go(event, context):\n    del SEEN['a']\n", (3, 9)),
    "append": ("LOG = []\ndef go(event, context):\n    LOG.append(event)\n", (3, 5)),
    "set add": ("SEEN = set()\ndef go(event, context):\n    SEEN.add(event['id'])\n", (3, 5)),
    "update": ("S: dict = {}\ndef go(event, context):\n    S.update(a=1)\n", (3, 5)),
    "setdefault then append": ("S = {}\ndef go(e, c):\n    S.setdefault('k', []).append(1)\n", (3, 5)),
    "pop": ("Q = list()\ndef go(event, context):\n    return {'x': Q.pop()}\n", (3, 18)),
    "nested subscript": ("S = {'a': {}}\ndef go(event, context):\n    S['a']['b'] = 1\n", (3, 5)),
    "method on an element": ("S = {'a': []}\ndef go(event, context):\n    S['a'].append(1)\n", (3, 5)),
    "Counter": ("import collections\nC = collections.Counter()\ndef go(e, c):\n    C[e['id']] += 1\n",
                (4, 5)),
    "defaultdict": ("from collections import defaultdict\nD = defaultdict(list)\ndef go(e, c):\n"
                    "    D[1].append(2)\n", (4, 5)),
    "deque": ("from collections import deque\nD = deque()\ndef go(e, c):\n    D.appendleft(e)\n", (4, 5)),
    "comprehension": ("S = {k: 0 for k in 'ab'}\ndef go(e, c):\n    S['a'] = 1\n", (3, 5)),
    "global counter": ("COUNT = 0\ndef go(event, context):\n    global COUNT\n    COUNT += 1\n", (4, 5)),
    "global rebinding": ("LAST = None\ndef go(event, context):\n    global LAST\n    LAST = event\n", (4, 5)),
    "in a helper function": ("S = []\ndef _keep(x):\n    S.append(x)\ndef go(e, c):\n    _keep(e)\n", (3, 5)),
    "in a nested function": ("S = []\ndef go(e, c):\n    def inner():\n        S.append(e)\n    inner()\n",
                             (4, 9)),
    "in a lambda": ("S = []\nkeep = lambda x: S.append(x)\ndef go(e, c):\n    keep(e)\n", (2, 18)),
    "in a method": ("S = {}\nclass H:\n    def put(self, k):\n        S[k] = 1\n"
                    "def go(e, c):\n    H().put(1)\n", (4, 9)),
}


@pytest.mark.parametrize("source, at", WARNED.values(), ids=WARNED.keys())
def test_each_pattern_is_warned_at_the_mutation(validate, source, at):
    found = validate(source)
    assert [(line, col) for line, col, _ in found] == [at]
    assert "module-level" in found[0][2] and "'handlers'" in found[0][2]


def test_the_message_names_the_state_and_the_function_and_the_text_output_has_the_hint(tmp_path, meshctl):
    (tmp_path / "mesh.yaml").write_text(MESH, encoding="utf-8")
    (tmp_path / "handlers.py").write_text("TOTALS = {}\n\ndef go(event, context):\n    TOTALS['a'] = 1\n")
    result = meshctl("validate", tmp_path)
    assert result.exit_code == 0
    assert f"{tmp_path / 'handlers.py'}:4:5: warning[handler-module-state]: handler module 'handlers' " \
           "changes module-level 'TOTALS' in go()" in result.output
    assert f"{tmp_path / 'mesh.yaml'}:12:18: note: the module of handler 'handlers:go'" in result.output
    assert "hint: keep it in `context.state`" in result.output and "state: {key: ...}" in result.output
    assert meshctl("validate", "--strict", tmp_path).exit_code == 1  # --strict fails on it, as on any warning


def test_every_mutation_is_reported_once_however_many_calls_name_the_module(tmp_path, meshctl):
    two = '[{call: {python: "handlers:go"}}, {call: {python: "handlers:go2"}}]'
    (tmp_path / "mesh.yaml").write_text(MESH.replace('{call: {python: "handlers:go"}}', two))
    (tmp_path / "handlers.py").write_text("S = []\ndef go(e, c):\n    S.append(1)\n"
                                          "def go2(e, c):\n    S.clear()\n")
    result = meshctl("validate", "--format", "json", tmp_path)
    lines = [d["line"] for m in json.loads(result.output)["meshes"] for d in m["diagnostics"]]
    assert lines == [3, 5]


NOT_WARNED = {
    "local variable": "def go(event, context):\n    totals = {}\n    totals['a'] = 1\n    return totals\n",
    "local shadows the module name": "S = {}\ndef go(event, context):\n    S = {}\n    S['a'] = 1\n",
    "parameter shadows the module name": "S = {}\ndef go(S, context):\n    S['a'] = 1\n",
    "constant": "LIMIT = 10\ndef go(event, context):\n    return {'limit': LIMIT}\n",
    "tuple": "NAMES = ('a', 'b')\ndef go(event, context):\n    return {'n': NAMES.index('a')}\n",
    "frozenset": "KINDS = frozenset({'a'})\ndef go(event, context):\n    return {'k': 'a' in KINDS}\n",
    "reading a module dict": "RATES = {'eur': 1.1}\ndef go(event, context):\n"
                             "    return {'r': RATES.get('eur'), 'all': dict(RATES), 'x': RATES['eur']}\n",
    "copying then changing the copy": "BASE = {'a': 1}\ndef go(e, c):\n"
                                      "    mine = dict(BASE)\n    mine['b'] = 2\n",
    "module-level setup": "S = {}\nS['a'] = 1\nL = []\nL.append(2)\ndef go(e, c):\n    return {}\n",
    "global read only": "N = 0\ndef go(e, c):\n    global N\n    return {'n': N}\n",
    "state of an object": "class Box:\n    pass\nB = Box()\ndef go(e, c):\n    B.items = [e]\n",
    "allow comment on the line": "S = {}\ndef go(e, c):\n    S['a'] = 1  # meshctl: allow-module-state\n",
    "allow comment on the definition": "CACHE = {}  # meshctl: allow-module-state (rebuilt on demand)\n"
                                       "def go(e, c):\n    CACHE['a'] = 1\n    CACHE.clear()\n",
    "allow comment on a global": "N = 0  # meshctl:allow-module-state\n"
                                 "def go(e, c):\n    global N\n    N += 1\n",
    "a module that does not parse": "def go(event, context:\n",
    "no function": "S = {}\nS.update(a=1)\n",
}


@pytest.mark.parametrize("source", NOT_WARNED.values(), ids=NOT_WARNED.keys())
def test_what_is_not_module_state_is_not_warned(validate, source):
    assert validate(source) == []


def test_the_allow_comment_silences_only_its_own_line(validate):
    found = validate("S = {}\ndef go(e, c):\n    S['a'] = 1  # meshctl: allow-module-state\n    S['b'] = 2\n")
    assert [(line, col) for line, col, _ in found] == [(4, 5)]


def test_modules_outside_the_mesh_directory_are_not_read(tmp_path, meshctl):
    (tmp_path / "mesh.yaml").write_text(MESH.replace("handlers:go", "json:dumps") + textwrap.dedent("""\
        ---
        apiVersion: meshctl/v1
        kind: Mesh
        metadata: {name: m}
        spec: {allow_modules: [json]}
        """))
    assert meshctl("validate", "--strict", tmp_path).exit_code == 0


def test_the_documented_lists_match_the_check():
    page = (Path(__file__).resolve().parent.parent / "docs" / "choreography.md").read_text()
    section = page.split("## Keep no state in the module", 1)[1].split("\n## ", 1)[0]
    names = ("Counter", "defaultdict", "deque", "OrderedDict", "append", "add", "update", "setdefault", "pop")
    for name in names:
        assert f"{name}(" in section and (name in MUTABLE_TYPES or name in MUTATING_METHODS), name
    assert "# meshctl: allow-module-state" in section


@pytest.mark.parametrize("body", [
    "y = " + "+".join(["1"] * 100_000),  # deeper than the parser's recursion limit
    "y = " + "not " * 50_000 + "1",  # the parser runs out of memory on its stack
    "y = " + "[" * 300 + "]" * 300,  # too many nested parentheses: a SyntaxError
])
def test_a_module_too_deep_to_parse_gets_no_warning_and_no_crash(validate, body):
    assert validate(f"X = {{}}\ndef f(e, c):\n    {body}\n    X[1] = 2\n") == []
