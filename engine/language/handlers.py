"""Which Python code a `call: {python: module:function}` action may reach.

A handler reference is text from the YAML, so it is held to the same rule as YAML tags: it
never picks an arbitrary importable name (``os:system``, ``builtins:eval``). It resolves to

- a module file inside the mesh directory (``name.py`` or ``name/__init__.py``; a symlink
  counts only if its target stays inside), or
- a module listed in ``allow_modules`` of the mesh's ``Mesh`` document (a package allows its
  submodules).

Everything else is refused before any import. The answers come from file names alone, so
`validate` and `render` decide them without importing or even opening user code (validate's
`handler-module-state` check then parses, never runs, the modules of the mesh directory). What a
handler module itself imports is up to its author: the module is trusted code, the YAML
that names it is not.
"""
from __future__ import annotations

import difflib
import os
from typing import Iterable


def local_module(root: str, module: str) -> str | None:
    """The file of *module* inside the mesh directory *root*, or None.

    >>> local_module("/nonexistent", "os") is None
    True
    """
    base = os.path.realpath(root)
    parts = module.split(".")
    for candidate in (os.path.join(base, *parts) + ".py", os.path.join(base, *parts, "__init__.py")):
        if os.path.isfile(candidate) and inside(base, candidate):
            return candidate
    return None


def inside(base: str, path: str) -> bool:
    """Whether *path*, symlinks resolved, lies under the directory *base*."""
    return os.path.commonpath([os.path.realpath(base), os.path.realpath(path)]) == os.path.realpath(base)


def allowed_by(module: str, allow: Iterable[str]) -> str | None:
    """The entry of *allow* that admits *module*: the module itself or a package above it.

    >>> allowed_by("payments.stripe", ["json", "payments"]), allowed_by("paymentsx", ["payments"])
    ('payments', None)
    """
    return next((entry for entry in allow if module == entry or module.startswith(entry + ".")), None)


def nearby_modules(root: str, module: str) -> list[str]:
    """Modules of the mesh directory with a name close to *module* (for "did you mean")."""
    try:
        names = [name[:-3] for name in os.listdir(root) if name.endswith(".py")]
    except OSError:
        return []
    return difflib.get_close_matches(module, names, n=1)
