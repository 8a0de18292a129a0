"""T11: 20,000 generated YAML texts through the loader and the schema check, 0 exceptions.

The text is built mostly from tokens of YAML and of the DSL (anchors, aliases, explicit
tags, directives, flow and block collections, the document kinds and their keys), mixed
with short random strings, so most examples reach deep into the parser, the composer's
guards and the schema instead of failing at the first character. Raw ``yaml.safe_load``
leaks ``IndexError`` (``!!int``), ``ValueError`` (``!!float`` on an odd scalar),
``AttributeError`` (``!!timestamp``) and ``RecursionError`` on such text; here every
outcome must be documents or located diagnostics. The seed is fixed (``derandomize``),
so CI explores the same 20,000 texts every run.
"""
from __future__ import annotations

import json
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.language.schema import check_document
from engine.language.source import load_documents

EXAMPLES = 20_000
FILE = "fuzz.yaml"

TOKENS = [
    # structure
    "\n", "\n  ", "\n    ", "- ", "? ", ": ", ", ", "{", "}", "[", "]", "---\n", "...\n", "|\n  ", ">-\n  ",
    "'", '"', "#", "\t", "\\", "%", "@", "`", "!", "&", "*",
    # anchors, aliases and merges
    "&a ", "&b ", "*a", "*b", "<<: *a", "<<: [*a, *b]", "&a [*a]", "*undefined",
    # explicit tags, safe and not
    "!!int ", "!!float ", "!!bool ", "!!null ", "!!str ", "!!timestamp ", "!!binary ", "!!set ", "!!omap ",
    "!!pairs ", "!!map ", "!!seq ", "!!merge ", "!!python/name:os.system ",
    "!!python/object/apply:os.system ", "!local ", "!<tag:yaml.org,2002:str> ", "!e!x ",
    # directives
    "%YAML 1.1\n", "%YAML 1.2\n", "%YAML 9.9\n", "%TAG ! tag:x,2000:\n", "%TAG !e! tag:e,2000:\n",
    # YAML 1.1 surprises and odd scalars
    "on", "off", "yes", "no", "y", "~", "null", "1e309", "-.inf", ".nan", "0x1F", "0o17", "017", "1_000",
    "2026-01-01", "2026-01-01T00:00:00Z", "12:30:00", "+1", "-0", "1.10",
    # numbers beyond a float's range (refused as non-finite, like .inf and .nan)
    "1.0e+999", "0x" + "f" * 300, "9" * 5000,
    # characters YAML treats specially
    "\ufeff", "\x85", "\u2028", "\u2029", "\x00", "\x07", "\ud7ff", "\U0001f600", "\r\n", "\r",
    # the DSL
    "apiVersion: meshctl/v1\n", "kind: ", "EventType", "Route", "Service", "Orchestration", "Stream",
    "DeliveryPolicy", "Mesh", "\nmetadata: {name: x}\n", "metadata:", "name: a", "spec:", "from: [a]",
    "to: [s]", "subscriptions:", "on: a", "do: [{emit: {type: b}}]", "call: {python: \"h:f\"}", "steps:",
    "id: s", "needs: [s]", "trigger: {on: a}", "schema: {$ref: \"#/x\"}", "match: {data: {a: [1]}}",
    "when: \"{{ data.x }}\"", "allow_modules: [json]", "window: {tumbling: 5s}", "retry: {max_attempts: 3}",
]

_token = st.sampled_from(TOKENS)
# control characters come as tokens
_words = st.text(st.characters(blacklist_categories=("Cc", "Cs")), max_size=6)
# three tokens to a word
yamlish = st.lists(st.one_of(_token, _token, _token, _words), max_size=48).map("".join)


def _outcome(text: str) -> tuple[int, int]:
    """Load and schema-check *text*: (documents, diagnostics). Any exception fails the test."""
    documents, diagnostics = load_documents(text, FILE, finite_numbers=True)  # as mesh and test files are
    for doc in documents:
        diagnostics += check_document(doc)
    assert documents or diagnostics
    for d in diagnostics:
        assert d.loc.file == FILE and (d.loc.line is None or d.loc.line >= 1), d
    return len(documents), len(diagnostics)


@pytest.mark.slow
def test_twenty_thousand_generated_texts_raise_nothing():
    seen = {"examples": 0, "parsed_to_documents": 0}
    started = time.perf_counter()

    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(yamlish)
    def check(text):
        seen["examples"] += 1
        seen["parsed_to_documents"] += _outcome(text)[0] > 0

    check()
    print(json.dumps({"test": "T11", **seen, "escaped_exceptions": 0,
                      "seconds": round(time.perf_counter() - started, 1)}))
    assert seen["examples"] >= EXAMPLES


def test_pyyaml_leaks_known_from_raw_safe_load_are_diagnostics():
    """The texts that make plain ``yaml.safe_load`` raise something other than ``YAMLError``."""
    for text in ("!!int", "\n!!float\n\nb", "!!timestamp", "!!int abc", "a: !!float x", "? !!binary a",
                 "[" * 600 + "]" * 600, "&a [*a]", "a: &a {b: *a}"):
        assert _outcome(text)[1] > 0, text
