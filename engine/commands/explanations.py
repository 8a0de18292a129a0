"""The long explanation of every diagnostic code, read from ``explanations.toml`` beside this module.

That file is the single source: ``meshctl explain CODE`` prints an entry, and the code table of
docs/validate.md is :func:`markdown_table` of it (``python -m engine.commands.explanations`` prints the
table; a test checks that the page holds exactly that).
"""
from __future__ import annotations

import difflib
import re
import textwrap
import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from ..core.errors import UsageError

SOURCE = Path(__file__).with_name("explanations.toml")


@dataclass(frozen=True, slots=True)
class Explanation:
    """What a diagnostic code means, an example that triggers it and how to fix it."""

    code: str
    severity: str
    page: str
    summary: str
    fix: str
    explanation: str
    example: str
    example_kind: str

    def text(self) -> str:
        """The entry as `meshctl explain` prints it."""
        example = textwrap.indent(self.example.strip("\n"), "    ")
        body = textwrap.fill(" ".join(self.explanation.split()), width=88)
        return (f"{self.code} ({self.severity}): {self.summary}\n\n{body}\n\n"
                f"Example:\n{example}\n\nFix: {self.fix}\n\nSee docs/{self.page}.md.")


@cache
def explanations() -> dict[str, Explanation]:
    """Every explanation by code, in the file's order."""
    with SOURCE.open("rb") as fh:
        data = tomllib.load(fh)
    return {code: Explanation(code, **entry) for code, entry in data.items()}


def explain(code: str) -> Explanation:
    """The explanation of *code* (``error[code]`` as printed is fine too), or UsageError (exit 2) with the
    closest codes."""
    printed = re.fullmatch(r"(?:error|warning|info)\[([^\]]*)\]:?", code)
    code = printed.group(1) if printed else code
    known = explanations()
    if code in known:
        return known[code]
    close = difflib.get_close_matches(code, list(known), n=3)
    hint = (
        f"did you mean {' or '.join(repr(c) for c in close)}?"
        if close
        else "`meshctl explain --list` lists them"
    )
    raise UsageError(f"unknown diagnostic code {code!r}: {hint}")


def markdown_table(page: str = "validate") -> str:
    """The code table of docs/{page}.md: code, severity, what it means, what to do."""
    rows = ["| code | severity | what it means | what to do |", "|---|---|---|---|"]
    rows += [
        f"| `{e.code}` | {e.severity} | {_cell(e.summary)} | {_cell(e.fix)} |"
        for e in explanations().values()
        if e.page == page
    ]
    return "\n".join(rows) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")  # a table cell ends at a bare |


if __name__ == "__main__":  # pragma: no cover
    print(markdown_table(), end="")
