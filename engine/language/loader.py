"""The loading pipeline: paths -> files -> YAML documents -> schema checks -> Mesh.

A mesh is one YAML file or a directory of them (searched recursively, in sorted order).
Files named ``*.test.yaml`` (``meshctl test`` cases) and hidden entries are not part of the
mesh. The DSL has no include: the directory is the whole mesh, so a symlinked mesh file whose
target lies outside it is an error, and symlinked directories are not followed. Every problem is collected;
:func:`load_mesh` raises one
:class:`LoadError` holding all of them when any is an error.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

from ..core.errors import Diagnostic, LoadError, Location, has_errors
from .build import build_mesh
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
            yield Diagnostic(
                Location(file),
                "outside-mesh",
                f"symlink to {os.path.realpath(file)}, outside the mesh",
                hint="a mesh is only the files under its directory: copy the file in instead",
            )


def load_mesh(path: str, limits: Limits = DEFAULT_LIMITS) -> tuple[Mesh, list[Diagnostic]]:
    """Load the mesh at *path*; return it with its warnings, or raise LoadError with every problem."""
    if not os.path.exists(path):
        raise LoadError([Diagnostic(Location(path), "no-such-path", "no such file or directory")])
    files = mesh_files(path)
    if not files:
        raise LoadError(
            [
                Diagnostic(
                    Location(path),
                    "empty-mesh",
                    "no .yaml or .yml files here",
                    hint="a mesh is a YAML file or a directory of YAML files",
                )
            ]
        )
    if len(files) > MAX_FILES:
        raise LoadError(
            [Diagnostic(Location(path), "too-many-files", f"more than {MAX_FILES} files in the mesh")]
        )
    escapes = list(_escapes(path, files)) if os.path.isdir(path) else []
    if escapes:
        raise LoadError(escapes)
    documents: list[Document] = []
    diagnostics: list[Diagnostic] = []
    for file in files:
        text, problems = read_text(file, file, limits, regular_only=True)
        diagnostics += problems
        if text is not None:
            diagnostics += _documents(text, file, limits, documents)
    root = path if os.path.isdir(path) else str(Path(path).parent)
    return _build(root, files, documents, diagnostics)


def load_mesh_text(
    text: str, name: str = "<stdin>", root: str = ".", limits: Limits = DEFAULT_LIMITS
) -> tuple[Mesh, list[Diagnostic]]:
    """Like :func:`load_mesh` for a mesh that is one text (read from stdin), located as *name*.

    *root* stands for the mesh directory: where the modules of Python handlers are looked up.
    """
    documents: list[Document] = []
    diagnostics = _documents(text, name, limits, documents)
    return _build(root, [name], documents, diagnostics)


def _documents(text: str, file: str, limits: Limits, documents: list[Document]) -> list[Diagnostic]:
    """Parse and schema-check the documents of one file; append the good ones, return the problems."""
    docs, diagnostics = load_documents(text, file, limits, finite_numbers=True)
    for doc in docs:
        schema_problems = check_document(doc)
        diagnostics += schema_problems
        if not schema_problems:
            documents.append(doc)
    return diagnostics


def _build(
    root: str, files: list[str], documents: list[Document], diagnostics: list[Diagnostic]
) -> tuple[Mesh, list[Diagnostic]]:
    if has_errors(diagnostics):
        raise LoadError(diagnostics)
    mesh, problems = build_mesh(root, files, documents)
    diagnostics += problems
    if has_errors(diagnostics):
        raise LoadError(diagnostics)
    return mesh, diagnostics
