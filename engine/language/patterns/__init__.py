"""EventBridge-compatible event patterns: compile one, match it, or index many.

A pattern is a JSON object that mirrors the shape of the events it selects. Fields are
ANDed, nested objects descend, and every leaf is a list whose elements are ORed::

    {"source": ["game.match"], "detail": {"score": [{"numeric": [">=", 40, "<", 60]}]}}

The matcher is shape-agnostic: it works on any JSON object (an EventBridge envelope, a
CloudEvent with ``data``...). Mappings of any kind are objects, lists and tuples are
arrays, so frozen patterns and events (``engine.language.model.freeze``) work unchanged.

Public API::

    compile_pattern(pattern) -> CompiledPattern   raises PatternError naming the bad path
    CompiledPattern.matches(event) -> bool
    PatternIndex().add(key, pattern); .match(event) -> [key, ...] in insertion order

Semantics, in one place (AWS EventBridge content filtering, with choices made where the
documentation is silent):

* An event value that is an array matches a leaf when any element matches. Arrays of
  objects are matched element-wise: all fields under one array come from the same element.
* Exact values are strings, numbers (compared numerically: ``5`` matches ``5.0``),
  booleans and null. ``[null]`` needs the field present with a null value.
* ``prefix``, ``suffix``, ``equals-ignore-case`` and ``wildcard`` match strings only;
  ``numeric`` matches JSON numbers only (never numeric strings, never booleans).
* ``anything-but`` matches a present value that is not excluded; a missing field never
  matches. Its string forms (``{"prefix": ...}`` and so on) exclude only strings.
* ``exists`` looks at leaf values: ``true`` needs at least one non-object value at the
  path (null counts), ``false`` needs none (a missing field, an empty array, or an object).
* ``$or`` takes a list of at least two object patterns, each combined with its siblings.
* The empty top-level pattern ``{}`` matches every event; an empty nested object is an error.
"""
from .compiled import OPERATORS, CompiledPattern, PatternError, compile_pattern
from .index import PatternIndex

__all__ = ["CompiledPattern", "OPERATORS", "PatternError", "PatternIndex", "compile_pattern"]
