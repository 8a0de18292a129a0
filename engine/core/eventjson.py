"""The JSON text of events from outside: one decoding rule for every entry point.

Input files of ``run`` and ``test`` (JSON Lines, line by line), ``publish``, the HTTP ingress
(``serve``), dead-letter files of ``dlq``, the ``--match`` pattern of ``replay`` and the queue
entries a worker reads all decode with :func:`loads`; YAML and JSON list files, parsed
elsewhere, are held to the same rule by :func:`problem`. The rule (docs/security.md, "Event
input"):

* **UTF-8**: bytes are decoded strictly (:func:`line_text`); a JSON Lines file line by line,
  so one line of other bytes is one bad line, located by its line and column.
* **Unicode**: an escape of half a surrogate pair (``"\\ud800"`` alone) is refused: such a
  string cannot be written as UTF-8, so every file, store and hash later fails on it.
* **Depth**: at most :data:`MAX_DEPTH` levels of arrays and objects, the event object
  itself included. Deeper text is refused before it is parsed: Python's parser raises
  ``RecursionError`` near 1,000 levels, and values a few hundred deep that parse break later
  (copies, ``json.dumps``, schemas and patterns all recurse).
* **Numbers**: within a float's range, about ±1.8e308. Python's ``json`` takes ``NaN``,
  ``Infinity`` and ``-Infinity``, which are not JSON, reads ``1e999`` as infinity and
  ``1`` followed by 400 zeros as an integer that no float holds (an average, a float sum or a
  comparison with a float overflows on it); all are refused, as in a mesh.

Each refusal is an :class:`EventJSONError` with a message and, where known, the line and
column. On a usual line the checks cost two ``str.count`` calls and a search for ``\\``: the
depth is scanned only when the text has more opening brackets than the limit, the strings
only when it has an escaped surrogate.

This module imports nothing from the rest of the engine: every layer may use it.
"""
from __future__ import annotations

import json
import math
import re
import sys
from typing import Any

__all__ = ["MAX_DEPTH", "WRITTEN_DEPTH", "EventJSONError", "json_type", "line_text", "loads", "not_utf8",
           "problem"]

MAX_DEPTH = 64
#: records the engine wrote itself (dead letters, traces) hold events of a run, which templates can
#: nest deeper than input may be (their copies stop near 490 levels)
WRITTEN_DEPTH = 512

# A JSON string (closed or running to the end of the text: never rescanned) or one bracket.
_TOKEN = re.compile(r'"[^"\\]*+(?:\\.[^"\\]*+)*+"?|[\[\]{}]', re.S)
_SURROGATE = re.compile("[\ud800-\udfff]")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


class EventJSONError(ValueError):
    """Why a text is not usable event JSON, and where: 1-based ``line`` and ``col`` (characters), if known."""

    def __init__(self, message: str, line: int | None = None, col: int | None = None):
        super().__init__(message + (f" (line {line}, column {col})" if line is not None else ""))
        self.message, self.line, self.col = message, line, col

    @classmethod
    def at(cls, message: str, text: str, offset: int | None) -> "EventJSONError":
        """The error at character *offset* of *text* (None: no position)."""
        if offset is None:
            return cls(message)
        line_start = text.rfind("\n", 0, offset) + 1
        return cls(message, text.count("\n", 0, offset) + 1, offset - line_start + 1)


class _NotFinite(ValueError):
    def __init__(self, literal: str):
        super().__init__(literal)
        self.literal = literal


def _no_constant(name: str) -> Any:
    raise _NotFinite(name)


def _finite(literal: str) -> float:
    number = float(literal)
    if math.isfinite(number):
        return number
    raise _NotFinite(literal)


def _in_range(literal: str) -> int:
    """An integer within a float's range: 308 digits always are; longer ones are compared."""
    if len(literal) < 309:
        return int(literal)
    digits = literal.lstrip("-")
    if len(digits) <= 309 and abs(int(digits)) <= _FLOAT_MAX:
        return int(literal)
    raise _NotFinite(literal)


_FLOAT_MAX = int(sys.float_info.max)
_decode = json.JSONDecoder(parse_constant=_no_constant, parse_float=_finite, parse_int=_in_range).decode


def loads(text: str, max_depth: int = MAX_DEPTH) -> Any:
    """The JSON value of *text* (Unicode, as :func:`line_text` decodes it), or :class:`EventJSONError`.

    >>> loads('{"type": "ping", "data": [1.5]}')
    {'type': 'ping', 'data': [1.5]}
    >>> loads('{"x": NaN}')
    Traceback (most recent call last):
    ...
    engine.core.eventjson.EventJSONError: NaN is not JSON: numbers must be finite (line 1, column 7)
    """
    if text.count("[") + text.count("{") > max_depth:
        offset = _too_deep(text, max_depth)
        if offset is not None:
            raise EventJSONError.at(f"nested more than {max_depth} levels deep", text, offset)
    try:
        value = _decode(text)
    except json.JSONDecodeError as exc:
        if text[exc.pos:exc.pos + 1] == "\ufeff":
            raise EventJSONError("not JSON: a byte order mark (U+FEFF); only a file may start with one",
                                 exc.lineno, exc.colno) from None
        raise EventJSONError(f"not JSON: {exc.msg}", exc.lineno, exc.colno) from None
    except _NotFinite as exc:
        raise EventJSONError.at(_not_finite(exc.literal), text, _offset_of(text, exc.literal)) from None
    except RecursionError:  # only if the caller's stack is already deep
        raise EventJSONError("nested too deeply to read") from None
    if "\\" in text and _SURROGATE_ESCAPE.search(text):  # is every escaped surrogate half of a pair?
        lone = _lone_surrogate(value)
        if lone is not None:
            escape = f"\\u{ord(lone):04x}"
            raise EventJSONError.at(_unpaired(escape), text, _offset_of_escape(text, escape))
    return value


def line_text(raw: bytes) -> str:
    """UTF-8 bytes (a line of a file, a request body) as text, or :class:`EventJSONError` at the first bad
    byte.

    >>> line_text(b'{"a": "\\xc3\\xa9"}')
    '{"a": "é"}'
    >>> line_text(b'{"a": "\\xff"}')
    Traceback (most recent call last):
    ...
    engine.core.eventjson.EventJSONError: not UTF-8 text: invalid start byte 0xff at byte 8 (line 1, column 8)
    """
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise not_utf8(raw, exc) from None


def not_utf8(raw: bytes, exc: UnicodeDecodeError) -> EventJSONError:
    """The refusal of *raw*, which failed to decode with *exc*, at the character where the bad byte is."""
    before = raw[: exc.start].decode("utf-8", "replace")
    return EventJSONError.at(
        f"not UTF-8 text: {exc.reason} 0x{raw[exc.start]:02x} at byte {exc.start + 1}", before, len(before)
    )


def problem(value: Any, max_depth: int = MAX_DEPTH) -> str | None:
    """What breaks the rule in a value parsed elsewhere (a YAML list item), or None.

    >>> problem({"data": [[1]]}, max_depth=2)
    'nested more than 2 levels deep'
    >>> problem({"data": {"x": float("nan")}})
    'data.x: nan is not a finite number'
    """
    stack: list[tuple[Any, int, str]] = [(value, 1, "")]
    while stack:
        item, depth, path = stack.pop()
        if isinstance(item, (dict, list)):
            if depth > max_depth:
                return f"nested more than {max_depth} levels deep"
            pairs = item.items() if isinstance(item, dict) else enumerate(item)
            stack.extend((v, depth + 1, f"{path}.{k}" if path else str(k)) for k, v in pairs)
        elif isinstance(item, float) and not math.isfinite(item):
            return f"{path or 'value'}: {item} is not a finite number"
        elif isinstance(item, int) and not -_FLOAT_MAX <= item <= _FLOAT_MAX:
            return f"{path or 'value'}: an integer beyond about ±1.8e308"
    lone = _lone_surrogate(value)
    return None if lone is None else _unpaired(f"\\u{ord(lone):04x}")


def _lone_surrogate(value: Any) -> str | None:
    """The first unpaired surrogate in a string (or key) of *value*, or None: it cannot be written as
    UTF-8."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if not item.isascii():
                found = _SURROGATE.search(item)
                if found:
                    return found.group()
        elif isinstance(item, dict):
            stack.extend(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return None


def _unpaired(escape: str) -> str:
    return f"{escape} is an unpaired surrogate: strings must be Unicode text"


def _too_deep(text: str, max_depth: int) -> int | None:
    """The offset of the first bracket past *max_depth* levels, strings skipped; None if none is."""
    depth = 0
    for found in _TOKEN.finditer(text):
        start = found.start()
        ch = text[start]
        if ch == "[" or ch == "{":
            depth += 1
            if depth > max_depth:
                return start
        elif ch == "]" or ch == "}":
            depth -= 1
    return None


def _not_finite(literal: str) -> str:
    if literal in ("NaN", "Infinity", "-Infinity"):
        return f"{literal} is not JSON: numbers must be finite"
    shown = literal if len(literal) <= 24 else f"{literal[:12]}... ({len(literal)} characters)"
    return f"{shown} is out of range: numbers beyond about ±1.8e308 are refused"


def _offset_of_escape(text: str, escape: str) -> int | None:
    found = re.search(re.escape(escape), text, re.I)
    return found.start() if found else None


def _offset_of(text: str, literal: str) -> int | None:
    """Where *literal* first stands outside a string."""
    outside = re.compile(
        r'"[^"\\]*+(?:\\.[^"\\]*+)*+"?|(?<![\w.+-])' + re.escape(literal) + r"(?![\w.])", re.S
    )
    for found in outside.finditer(text):
        if text[found.start()] != '"':
            return found.start()
    return None


_TYPE_NAMES = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null",
               int: "a number", float: "a number"}


def json_type(value: Any) -> str:
    """What *value* is, in JSON's words ("an object", "a number", ...), for messages; a type
    that is no JSON value is named by its Python name."""
    return _TYPE_NAMES.get(type(value), type(value).__name__)
