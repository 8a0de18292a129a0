"""The loading pipeline: paths -> files -> YAML documents -> schema checks -> Mesh.

A mesh is one YAML file or a directory of them (searched recursively, in sorted order).
Files named ``*.test.yaml`` (``meshctl test`` cases) and hidden entries are not part of the
mesh. The DSL has no include: the directory is the whole mesh, so a symlinked mesh file whose
target lies outside it is an error, and symlinked directories are not followed. Every problem is collected; :func:`load_mesh` raises one
:class:`LoadError` holding all of them when any is an error.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

from .build import build_mesh
from .errors import Diagnostic, LoadError, Location, has_errors
from .handlers import inside
from .model import Mesh
from .schema import check_document
from .source import DEFAULT_LIMITS, Document, Limits, load_documents, read_text

MESH_SUFFIXES = (".yaml", ".yml")
TEST_SUFFIXES = (".test.yaml", ".test.yml")
MAX_FILES = 10_000


def mesh_files(path: str) -> list[str]:
    """The YAML files making up the mesh at *path* (a file, or a directory searched recursively)."""
    if os.path.isfile(path):
        return [path]
    found = []
    for folder, dirs, names in os.walk(path):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(names):
            if name.endswith(MESH_SUFFIXES) and not name.endswith(TEST_SUFFIXES) and not name.startswith("."):
                found.append(os.path.join(folder, name))
    return found


def _escapes(root: str, files: list[str]) -> Iterator[Diagnostic]:
    """Mesh files that are symlinks to a file outside the mesh directory (never read)."""
    for file in files:
        if os.path.islink(file) and not inside(root, file):
            yield Diagnostic(Location(file), "outside-mesh", f"symlink to {os.path.realpath(file)}, outside the mesh",
                             hint="a mesh is only the files under its directory: copy the file in instead")


def load_mesh(path: str, limits: Limits = DEFAULT_LIMITS) -> tuple[Mesh, list[Diagnostic]]:
    """Load the mesh at *path*; return it with its warnings, or raise LoadError with every problem."""
    if not os.path.exists(path):
        raise LoadError([Diagnostic(Location(path), "no-such-path", "no such file or directory")])
    files = mesh_files(path)
    if not files:
        raise LoadError([Diagnostic(Location(path), "empty-mesh", "no .yaml or .yml files here",
                                    hint="a mesh is a YAML file or a directory of YAML files")])
    if len(files) > MAX_FILES:
        raise LoadError([Diagnostic(Location(path), "too-many-files", f"more than {MAX_FILES} files in the mesh")])
    escapes = list(_escapes(path, files)) if os.path.isdir(path) else []
    if escapes:
        raise LoadError(escapes)
    documents: list[Document] = []
    diagnostics: list[Diagnostic] = []
    for file in files:
        text, problems = read_text(file, file, limits, regular_only=True)
        diagnostics += problems
        if text is None:
            continue
        docs, problems = load_documents(text, file, limits)
        diagnostics += problems
        for doc in docs:
            schema_problems = check_document(doc)
            diagnostics += schema_problems
            if not schema_problems:
                documents.append(doc)
    if has_errors(diagnostics):
        raise LoadError(diagnostics)
    root = path if os.path.isdir(path) else str(Path(path).parent)
    mesh, problems = build_mesh(root, files, documents)
    diagnostics += problems
    if has_errors(diagnostics):
        raise LoadError(diagnostics)
    return mesh, diagnostics
