"""Diagnostics and the exception tree.

Every phase before run time (loading, schema checks, building the model, analysis) reports
problems as :class:`Diagnostic` values that carry a :class:`Location`; nothing is raised
mid-way. A phase that cannot go on raises one exception holding all of them.

Exception tree::

    MeshError                   exit_code 1 unless said otherwise
    ├── LoadError               the mesh could not be loaded (diagnostics inside)
    ├── UsageError              bad command-line use that click itself cannot see (exit 2)
    └── RunStateError           a run's state refuses the command: a signal it does not wait for (exit 3)
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Iterable, Literal

Severity = Literal["error", "warning", "info"]  # info never fails validation


def printable(text: str) -> str:
    """*text* with every character a terminal would act on escaped (``\\n``, ``\\x1b``, ``\\u202e``).

    Paths and values come from users: a file named ``a.yaml\\nb.yaml:1:1: error...`` must not
    print a line of its own. Control, format and separator characters (and the surrogates
    undecodable file names become) are shown as Python escapes; everything else is kept.

    >>> printable("ok.yaml")
    'ok.yaml'
    >>> printable("a\\nb\\x1b[31m")
    'a\\\\nb\\\\x1b[31m'
    """
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() or ch == " " else _escape(ch) for ch in text)


def printable_lines(text: str) -> str:
    """:func:`printable` line by line: for a message whose lines the program itself composed."""
    return "\n".join(printable(line) for line in text.split("\n"))


def did_you_mean(given: str, choices: Iterable[str]) -> str | None:
    """``"did you mean 'x'?"`` for the choice *given* most likely misspells, or None.

    >>> did_you_mean("retries-exausted", ["expired", "retries-exhausted"])
    "did you mean 'retries-exhausted'?"
    """
    near = difflib.get_close_matches(given, list(choices), n=1)
    return f"did you mean {near[0]!r}?" if near else None


def _escape(ch: str) -> str:
    return {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(ch) or (
        f"\\x{ord(ch):02x}"
        if ord(ch) < 0x100
        else f"\\u{ord(ch):04x}"
        if ord(ch) < 0x10000
        else f"\\U{ord(ch):08x}"
    )


@dataclass(frozen=True, slots=True, order=True)
class Location:
    """A 1-based position in a source file.

    Built from PyYAML's 0-based marks by :meth:`from_mark`, the only place the +1 happens.
    """

    file: str
    line: int = 0
    col: int = 0

    @classmethod
    def from_mark(cls, mark) -> "Location":
        return cls(mark.name, mark.line + 1, mark.column + 1)

    def __str__(self) -> str:
        if self.line <= 0:
            return self.file
        return f"{self.file}:{self.line}:{self.col}"


@dataclass(frozen=True, slots=True)
class Note:
    """A secondary location that explains a diagnostic (an element of a cycle, a first definition)."""

    loc: Location
    message: str


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One problem found in a mesh, with the place to edit and, where it helps, a hint."""

    loc: Location
    code: str
    message: str
    severity: Severity = "error"
    hint: str | None = None
    notes: tuple[Note, ...] = field(default=())

    def sort_key(self) -> tuple:
        return (self.loc.file, self.loc.line, self.loc.col, self.code, self.message)

    def format(self) -> str:
        """Compiler style: ``file:line:col: error[code]: message``, then notes and hint."""
        lines = [f"{self.loc}: {self.severity}[{self.code}]: {self.message}"]
        lines += [f"  {note.loc}: note: {note.message}" for note in self.notes]
        if self.hint:
            lines.append(f"  hint: {self.hint}")
        return "\n".join(printable(line) for line in lines)  # one diagnostic, never a forged line

    def as_dict(self) -> dict:
        return {
            "file": self.loc.file,
            "line": self.loc.line,
            "col": self.loc.col,
            "severity": self.severity,
            "code": self.code,
            "message": self.message,
            "hint": self.hint,
            "notes": [
                {"file": n.loc.file, "line": n.loc.line, "col": n.loc.col, "message": n.message}
                for n in self.notes
            ],
        }


def sorted_diagnostics(diagnostics: Iterable[Diagnostic]) -> list[Diagnostic]:
    return sorted(diagnostics, key=Diagnostic.sort_key)


def has_errors(diagnostics: Iterable[Diagnostic]) -> bool:
    return any(d.severity == "error" for d in diagnostics)


class MeshError(Exception):
    """Root of meshctl's exceptions; carries the process exit code for the CLI."""

    exit_code = 1


class LoadError(MeshError):
    """The mesh could not be loaded; ``diagnostics`` says every reason found."""

    def __init__(self, diagnostics: Iterable[Diagnostic]):
        self.diagnostics = sorted_diagnostics(diagnostics)
        first = self.diagnostics[0].format() if self.diagnostics else "mesh could not be loaded"
        super().__init__(first)


class UsageError(MeshError):
    """A command was used wrongly in a way only meshctl can tell (unknown view name...)."""

    exit_code = 2


class RunStateError(MeshError):
    """A command about a run that the run's state refuses: a signal it does not wait for, a
    cancel of a run that has ended."""

    exit_code = 3
