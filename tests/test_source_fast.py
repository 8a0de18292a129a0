"""The loader's fast path (one walk, locations found on demand) agrees with its careful path.

For every text, loading with the fast path must give the same documents (data, types and
key order included), the same diagnostics, and the same location for every JSON path the
careful path indexes, and for paths that do not exist.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from yaml.resolver import BaseResolver

from engine.language import source
from engine.language.source import DEFAULT_LIMITS, Limits, load_documents

ROOT = Path(__file__).resolve().parent.parent
FILES = sorted(p for p in ROOT.glob("**/*.y*ml") if ".venv" not in p.parts and p.suffix in (".yaml", ".yml"))

TOKENS = [
    "\n", "\n  ", "\n    ", "- ", "? ", ": ", ", ", "{", "}", "[", "]", "---\n", "'", '"', "#",
    "&a ", "*a", "<<: *a", "<<: {m: 1}", "!!int ", "!!float ", "!!str ", "!!map ", "!!seq ", "!!bool ",
    "!!null ", "!!python/name:os.system ", "!x ", "on", "yes", "~", "null", "true", "1e309", "0x1F", "0o17",
    "1_000", "12:30", "-.inf", ".nan", "2026-01-01", "=", "a", "b", "a: 1", "b: [1, 2]", "c: {d: e}",
    "a: x\na: y", "0", "-1",
]
yamlish = st.lists(st.one_of(st.sampled_from(TOKENS), st.text(max_size=4)), max_size=40).map("".join)


def _careful(text: str, name: str, limits: Limits):
    fast = source._fast_document
    source._fast_document = lambda *args: None
    try:
        return load_documents(text, name, limits)
    finally:
        source._fast_document = fast


def _paths(smap) -> set[tuple]:
    known = set(smap.values) | set(smap.keys)
    probes = {(*path, extra) for path in known for extra in ("zz", 0, 1, -1, 99, "0")}
    return known | probes | {("zz",), (0,), ()}


def assert_agree(text: str, name: str = "x.yaml", limits: Limits = DEFAULT_LIMITS) -> None:
    documents, diagnostics = load_documents(text, name, limits)
    careful_documents, careful_diagnostics = _careful(text, name, limits)
    assert [d.format() for d in diagnostics] == [d.format() for d in careful_diagnostics]
    assert len(documents) == len(careful_documents)
    for doc, careful in zip(documents, careful_documents):
        assert repr(doc.data) == repr(careful.data)
        assert (doc.loc, doc.index) == (careful.loc, careful.index)
        for path in _paths(careful.smap):
            assert doc.smap.at(path) == careful.smap.at(path), path
            assert doc.smap.key(path) == careful.smap.key(path), path


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_repository_yaml_files(path):
    assert_agree(path.read_text(encoding="utf-8"), str(path))


@pytest.mark.parametrize("text", [
    "a: 1\nb: [x, {c: true, d: null}]\n", "- 1\n- 2.5\n- -.inf\n- 0x1F\n- 12:30\n", "a: &x [1]\nb: *x\n",
    "a: &s str\nb: *s\n", "base: &b {x: 1}\nm: {<<: *b, y: 2}\n", "a: 1\na: 2\n", "? [k]\n: v\n",
    "a: !!int 12\n", "a: !!str 12\n", "a: !!int abc\n", "a: !!map {}\n", "a: !!str {}\n", "= \n", "a: =\n",
    "'0': x\n", "[[[[1]]]]\n", "a: 1\n---\n---\n- b\n", "", "~\n", "a: !!python/name:os.system x\n",
])
def test_odd_documents(text):
    assert_agree(text)


@pytest.mark.parametrize("depth", [1, 2, 3])
@pytest.mark.parametrize("nodes", [1, 3, 5, 100])
@pytest.mark.parametrize("text", ["a: 1\n", "a: [1]\n", "a: {b: c}\n", "a: []\nb: {}\n", "- [x, [y]]\n",
                                  "x\n", "[]\n"])
def test_tight_limits(text, depth, nodes):
    assert_agree(text, limits=Limits(max_depth=depth, max_nodes=nodes))


@pytest.mark.slow
@settings(max_examples=1000, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
@given(yamlish)
def test_coarse_nesting_bound_is_never_below_the_line_by_line_one(text):
    assert source.nesting_bound(text) >= source._line_bound(text)


@pytest.mark.parametrize(
    "value", [tok.strip() for tok in TOKENS] + ["", "True", "FALSE", "<<", "0b1", "1.5e3", "Null"]
)
@pytest.mark.parametrize("implicit", [(True, False), (False, True), (False, False)])
def test_resolve_agrees_with_pyyaml(value, implicit):
    loader = source._StrictLoader("", "x.yaml", 64)
    for kind in (yaml.ScalarNode, yaml.SequenceNode, yaml.MappingNode):
        assert source._resolve(loader, kind, value, implicit) == BaseResolver.resolve(
            loader, kind, value, implicit
        )


def test_limits_send_documents_to_the_careful_path():
    deep = "a: " + "[" * 70 + "]" * 70 + "\n"
    assert_agree(deep)
    documents, diagnostics = load_documents(deep, "x.yaml")
    assert [d.code for d in diagnostics] == ["too-deep"] and not documents


@pytest.mark.slow
@settings(max_examples=3000, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
@given(yamlish)
def test_generated_texts(text):
    assert_agree(text)
