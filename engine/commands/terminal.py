"""How diagnostics look for a person: roles for colour, and the source line under each one with a caret.

Nothing here knows about terminals or escape codes: text is tagged with a *role* through a
style function ``style(text, role) -> str`` that the CLI supplies (:func:`plain` keeps the
text as it is). With :func:`plain`, the first line of a diagnostic is exactly
:meth:`Diagnostic.format`'s, so tools that parse ``file:line:col: error[code]: message`` keep
working. Roles: the severities (``error``, ``warning``, ``info``), ``note``, ``hint``,
``location``, ``gutter``, ``pass``, ``fail``, ``seen``, ``diff``.

A snippet is the source line with a gutter and a caret under the column, spanning the token
that starts there (``^~~~``) as far as it can be told from the line itself::

    mesh.yaml:4:8: error[unknown-key]: unknown key 'externel' in spec
      |
    4 | spec: {externel: true}
      |        ^~~~~~~~
      hint: did you mean 'external'?
"""
from __future__ import annotations

import re
import unicodedata
from typing import Callable

from ..core.errors import Diagnostic, did_you_mean, printable, printable_lines
from ..language.source import read_text

__all__ = [
    "Sources",
    "Style",
    "did_you_mean",
    "plain",
    "printable",
    "printable_lines",
    "render",
    "snippet",
    "token_length",
]

Style = Callable[[str, str], str]
WIDTH = 120  # longest part of a source line shown; longer lines show a window around the column
_LINE_BREAK = re.compile("\r\n|[\n\r\x85\u2028\u2029]")  # YAML's line breaks, as the parser counts lines


def plain(text: str, role: str) -> str:
    """The style that adds nothing."""
    return text


class Sources:
    """The lines of source files, read once each; text that is not a file (stdin) is given to :meth:`add`."""

    def __init__(self) -> None:
        self._lines: dict[str, list[str] | None] = {}

    def add(self, name: str, text: str) -> None:
        self._lines[name] = _LINE_BREAK.split(text)

    def line(self, name: str, number: int) -> str | None:
        if name not in self._lines:
            text, _ = read_text(name, name, regular_only=True)
            self._lines[name] = None if text is None else _LINE_BREAK.split(text)
        lines = self._lines[name]
        if lines is None or not 1 <= number <= len(lines):
            return None
        return lines[number - 1]


def render(diagnostic: Diagnostic, style: Style = plain, sources: Sources | None = None) -> str:
    """*diagnostic* as lines: the compiler-style line, the snippet (with *sources*), notes, hint."""
    loc, severity = diagnostic.loc, diagnostic.severity
    lines = [
        f"{style(printable(f'{loc}:'), 'location')} {style(f'{severity}[{diagnostic.code}]:', severity)} "
        f"{printable(diagnostic.message)}"
    ]
    if sources is not None and loc.line > 0:
        source = sources.line(loc.file, loc.line)
        if source is not None:
            lines += snippet(source, loc.line, loc.col, severity, style)
    for note in diagnostic.notes:
        lines.append(
            f"  {style(printable(f'{note.loc}:'), 'location')} {style('note:', 'note')} "
            f"{printable(note.message)}"
        )
    if diagnostic.hint:
        lines.append(f"  {style('hint:', 'hint')} {printable(diagnostic.hint)}")
    return "\n".join(lines)


def snippet(source: str, line: int, col: int, severity: str, style: Style = plain) -> list[str]:
    """Three lines: an empty gutter, the source line numbered, the caret under *col* (1-based)."""
    start = max(0, min(col - 1, len(source)))
    length = token_length(source, start)
    first = max(0, start - WIDTH // 2) if len(source) > WIDTH else 0
    shown = source[first : first + WIDTH]
    before = "..." if first else ""
    after = "..." if first + WIDTH < len(source) else ""
    length = max(1, min(length, first + WIDTH - start))
    offset = _width(before + printable(source[first:start]))
    under = _width(printable(source[start : start + length])) if start < len(source) else 1
    number = str(line)
    gutter = style(" " * len(number) + " |", "gutter")
    return [
        gutter,
        f"{style(number + ' |', 'gutter')} {before}{printable(shown).rstrip()}{after}".rstrip(),
        f"{gutter} {' ' * offset}{style('^' + '~' * (max(1, under) - 1), severity)}",
    ]


def token_length(line: str, start: int) -> int:
    """How many characters of *line* from *start* make the YAML token there (at least 1).

    >>> token_length("spec: {externel: true}", 7)
    8
    >>> token_length('  log: "got {{ x }"', 7)
    12
    >>> token_length("  - on: ping  # comment", 8)
    4
    """
    if start >= len(line):
        return 1
    ch = line[start]
    if ch in "\"'":
        return _quoted(line, start)
    if ch in "[{":
        return _bracketed(line, start)
    if ch in "-?:" and (start + 1 == len(line) or line[start + 1] == " "):
        return 1
    in_flow = _open_brackets(line[:start]) > 0
    stops = ",[]{}" if in_flow else ""
    end = start
    while end < len(line):
        c = line[end]
        if c == ":" and (end + 1 == len(line) or line[end + 1] in " \t" + stops):
            break
        if c == "#" and end > start and line[end - 1] in " \t":
            break
        if c in stops:
            break
        end += 1
    return max(1, len(line[start:end].rstrip()))


def _quoted(line: str, start: int) -> int:
    quote, i = line[start], start + 1
    while i < len(line):
        if quote == '"' and line[i] == "\\":
            i += 2
            continue
        if line[i] == quote:
            if quote == "'" and line[i + 1 : i + 2] == "'":
                i += 2
                continue
            return i + 1 - start
        i += 1
    return max(1, len(line.rstrip()) - start)


def _bracketed(line: str, start: int) -> int:
    depth, i = 0, start
    while i < len(line):
        c = line[i]
        if c in "\"'":
            i += _quoted(line, i)
            continue
        depth += c in "[{"
        depth -= c in "]}"
        if depth == 0:
            return i + 1 - start
        i += 1
    return 1


def _open_brackets(text: str) -> int:
    depth, i = 0, 0
    while i < len(text):
        c = text[i]
        if c in "\"'" and (i == 0 or text[i - 1] in " ,[{:"):
            i += _quoted(text, i)
            continue
        depth += c in "[{"
        depth = max(0, depth - (c in "]}"))
        i += 1
    return depth


def _width(text: str) -> int:
    """Terminal columns of *text*: wide (East Asian) characters take two, combining marks none."""
    return sum(
        0 if unicodedata.combining(c) else 2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text
    )
