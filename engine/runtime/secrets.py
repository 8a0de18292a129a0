"""The values of ``{{ secrets.NAME }}``, and their redaction from everything a run writes.

A secret is read only where a request is about to be sent (the URL and headers of an HTTP
call or route target), from the environment (``PREFIX + NAME``) or from the mesh's secrets
file (``NAME=VALUE`` lines); a variable wins over the file. This lives in the runtime, not the
language: the values belong to the process that sends (each worker of a deployment has its
own environment), and `validate` or `render` never read them.

Every value read is remembered so that :meth:`Secrets.redact` can replace it with ``***``
wherever it might still show: an error message that quotes the URL, an answer that echoes a
header, a trace record. Only values this process read can have been sent, so only those are
looked for.
"""
from __future__ import annotations

import os
import urllib.parse
from collections.abc import Mapping
from typing import Any

from ..language import model as m

MASK = "***"


class SecretProblem(Exception):
    """A secret cannot be had: not defined anywhere, or the secrets file is unreadable or malformed.
    The message names the secret and where it was looked for, never a value."""


class Secrets:
    """The secrets of one runtime: looked up when first needed, each value kept for redaction."""

    def __init__(self, sources: m.SecretSources, root: str, environ: Mapping[str, str] | None = None):
        self.sources = sources
        self.environ = os.environ if environ is None else environ
        self.path = os.path.join(root, sources.file) if sources.file else None
        self._file: dict[str, str] | None = None
        self._masks: dict[str, None] = {}  # every form of every value read, longest first once sorted
        self._order: list[str] = []

    def value(self, name: str) -> str:
        """The value of secret *name*; :class:`SecretProblem` when it has none."""
        prefix = self.sources.env
        found = self.environ.get(prefix + name) if prefix is not None else None
        if found is None and self.path is not None:
            found = self._from_file().get(name)
        if found is None:
            raise SecretProblem(f"secret {name!r} is not defined: {self.where(name)}")
        self._remember(found)
        return found

    def values(self, names: tuple[str, ...]) -> dict[str, str]:
        return {name: self.value(name) for name in names}

    def where(self, name: str) -> str:
        """Where a value of *name* may be given, for the message of a missing secret."""
        places = []
        if self.sources.env is not None:
            places.append(f"set the environment variable {self.sources.env}{name}")
        if self.sources.file is not None:
            places.append(f"add a line `{name}=...` to {self.sources.file}")
        if not places:
            return "the Mesh document's `secrets` names no source (env: false and no file)"
        return " or ".join(places)

    def _from_file(self) -> dict[str, str]:
        if self._file is None:
            try:
                with open(self.path, encoding="utf-8") as handle:
                    text = handle.read()
            except OSError as exc:
                raise SecretProblem(
                    f"cannot read the secrets file {self.sources.file}: {exc.strerror or exc}"
                ) from None
            self._file = parse_secrets_file(text, self.sources.file)
        return self._file

    def _remember(self, value: str) -> None:
        if not value or value in self._masks:
            return
        forms = {value, urllib.parse.quote(value, safe=""), urllib.parse.quote_plus(value),
                 urllib.parse.quote(value)}
        for form in forms:
            self._masks.setdefault(form, None)
        self._order = sorted(self._masks, key=len, reverse=True)

    @property
    def any_read(self) -> bool:
        return bool(self._order)

    def redact(self, text: str) -> str:
        """*text* with every value read so far (as it is, and URL-encoded) replaced by ``***``."""
        for form in self._order:
            if form in text:
                text = text.replace(form, MASK)
        return text

    def scrub(self, value: Any) -> Any:
        """*value* (JSON-like: dicts, lists, strings...) with :meth:`redact` applied to every string,
        keys included; the value itself when no secret was read."""
        if not self._order:
            return value
        return self._scrub(value)

    def _scrub(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, dict):
            return {self._scrub(k): self._scrub(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return type(value)(self._scrub(v) for v in value)
        return value


def parse_secrets_file(text: str, name: str) -> dict[str, str]:
    """``NAME=VALUE`` lines: blank lines and lines starting with ``#`` are skipped, spaces around the
    name are not part of it, the value is everything after the first ``=`` (a pair of matching
    quotes around it is removed). A malformed line is an error naming its number, not its text."""
    found: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        key, sep, value = stripped.partition("=")
        key = key.strip()
        if not sep or not (key.isascii() and key.isidentifier()):
            raise SecretProblem(
                f"{name}:{number}: expected NAME=VALUE, with NAME letters, digits and `_`"
            )
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        found[key] = value
    return found


__all__ = ["MASK", "SecretProblem", "Secrets", "parse_secrets_file"]
