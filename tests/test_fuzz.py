"""Property tests: no input text, however odd, makes the loader or `validate` raise."""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.analysis.validate import check_mesh
from engine.language.source import load_documents

# Pieces of YAML and of our DSL, so random text often gets deep into the parser and schema.
TOKENS = [
    "apiVersion: meshctl/v1\n", "kind: ", "Route", "Service", "EventType", "Orchestration", "Stream",
    "DeliveryPolicy", "\nmetadata: {name: x}\n", "spec:", "\n  ", "- ", "{", "}", "[", "]", ": ", ", ",
    "&a ", "*a", "<<: *a", "!!int ", "!!float ", "!!timestamp ", "!!binary ", "!!python/name:os.system ",
    "!!set ", "? ", "---\n", "...\n", "|\n", ">-\n", "'", '"', "#", "\t", "on", "yes", "~", "null",
    "1e309", "0x1F", "-.inf", "2026-01-01", "\\u0000", "%YAML 1.2\n", "%TAG ! tag:x,2000:\n", "!x ",
    "from: [a]", "do: [{emit: {type: b}}]", "steps:", "id: s", "needs: [s]", "\ufeff", "\x85", "\u2028",
]

yamlish = st.lists(st.one_of(st.sampled_from(TOKENS), st.text(max_size=8)), max_size=40).map("".join)


@pytest.mark.slow
@settings(max_examples=1500, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(yamlish)
def test_loader_never_raises(text):
    documents, diagnostics = load_documents(text, "fuzz.yaml")
    assert documents or diagnostics


@pytest.mark.slow
@settings(max_examples=300, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=200) | yamlish.map(str.encode))
def test_validate_never_raises(tmp_path_factory, raw):
    path = tmp_path_factory.mktemp("fuzz") / "mesh.yaml"
    path.write_bytes(raw)
    result = check_mesh(str(path))
    assert all(d.loc.file == str(path) for d in result.diagnostics)


@pytest.mark.parametrize("text", ["!!int abc", "\n!!float\n\nb", "!!timestamp", "? [a]: b", "a: !!set {x}",
                                  "%YAML 1.1\n%YAML 1.1\n---\na", "a: *undefined", "'unterminated"])
def test_known_pyyaml_leaks_become_diagnostics(text):
    documents, diagnostics = load_documents(text, "x.yaml")
    assert diagnostics and not documents
