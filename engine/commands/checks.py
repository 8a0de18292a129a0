"""The use case `validate` (and `schema`): check meshes, and the valid mesh every other
command starts from.

Thin: the pipeline is :mod:`engine.analysis.validate`; here the command line finds what it
needs in one place, standard input included.
"""
from __future__ import annotations

from ..analysis.validate import (
    STDIN,
    CheckResult,
    check_mesh,
    check_mesh_text,
    require_valid,
    valid_or_raise,
)
from ..language.schema import schema_text
from ..language.source import DEFAULT_LIMITS

#: Bytes read at most from standard input for a mesh: one more than the limit of a mesh file,
#: so that too long an input is reported as such.
STDIN_READ = DEFAULT_LIMITS.max_bytes + 1

__all__ = [
    "STDIN", "STDIN_READ", "CheckResult", "check_mesh", "check_mesh_text", "require_valid", "schema_text",
    "valid_or_raise",
]
