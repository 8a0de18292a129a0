"""Helpers for runtime tests: a mesh from inline YAML, run on inline events, with the trace kept."""
from __future__ import annotations

import textwrap
from dataclasses import dataclass

import pytest

from engine.core.errors import Location
from engine.language.loader import load_mesh
from engine.runtime.events import normalise
from engine.runtime.interpreter import Runtime
from engine.runtime.trace import Trace

HEADER = "apiVersion: meshctl/v1\n"


@dataclass
class Outcome:
    runtime: Runtime
    summary: dict
    trace: list
    emitted: list

    def kinds(self, kind: str) -> list[dict]:
        return [r for r in self.trace if r["kind"] == kind]

    @property
    def dead(self):
        return self.runtime.store.dead_letters()


@pytest.fixture
def mesh_of(tmp_path):
    """Load a mesh from YAML documents (each given without the apiVersion line)."""
    def build(*documents: str, files: dict[str, str] | None = None):
        text = "---\n".join(HEADER + textwrap.dedent(doc).strip() + "\n" for doc in documents)
        (tmp_path / "mesh.yaml").write_text(text)
        for name, content in (files or {}).items():
            (tmp_path / name).write_text(textwrap.dedent(content))
        mesh, _ = load_mesh(str(tmp_path))
        return mesh
    return build


@pytest.fixture
def run():
    """Run a mesh on events (dicts; id/source default); returns an Outcome."""
    def go(mesh, events, **options) -> Outcome:
        records, emitted = [], []
        runtime = Runtime(mesh, trace=Trace(records), on_emit=emitted.append, **options)
        items = [normalise(e, Location("test", i + 1, 1), i) for i, e in enumerate(events)]
        summary = runtime.run(items)
        return Outcome(runtime, summary, records, emitted)
    return go
