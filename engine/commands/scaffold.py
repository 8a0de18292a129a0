"""`meshctl init`: a small working mesh to start from.

Two event types, a service that consumes one and emits the other, a service that consumes the
result, a ``*.test.yaml`` test and an ``events.jsonl`` input: it passes ``meshctl validate``
(with no warning), ``meshctl test`` and ``meshctl run --events`` as written. Existing files
are never overwritten unless asked.
"""
from __future__ import annotations

import os
import re

from ..core.errors import MeshError

NAME = re.compile(r"^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$")  # the DSL's names (metadata.name)


class ScaffoldError(MeshError):
    """The mesh cannot be written where asked (existing files, a bad name); exit 1."""


def default_name(directory: str) -> str:
    """A mesh name from the directory's name: lower-case, other characters as '-'; or ``my-mesh``."""
    base = os.path.basename(os.path.abspath(directory)).lower()
    name = re.sub(r"[^a-z0-9._-]+", "-", base).strip("-._")[:63].strip("-._")
    return name if NAME.match(name) else "my-mesh"


def scaffold(directory: str, name: str, force: bool = False) -> list[str]:
    """Write the starter mesh under *directory* (created if missing); the paths written, in order."""
    if not NAME.match(name):
        raise ScaffoldError(
            f"--name {name!r} is not a mesh name: lower-case letters, digits, '.', '_' and '-', "
            "starting and ending with a letter or digit (at most 63 characters)"
        )
    if os.path.exists(directory) and not os.path.isdir(directory):
        raise ScaffoldError(f"{directory} exists and is not a directory")
    paths = {file: os.path.join(directory, file) for file in FILES}
    existing = [path for path in paths.values() if os.path.lexists(path)]
    if existing and not force:
        raise ScaffoldError(
            f"{', '.join(existing)} already exist{'s' if len(existing) == 1 else ''}: "
            "nothing was written (use --force to overwrite)"
        )
    try:
        os.makedirs(directory, exist_ok=True)
        for file, path in paths.items():
            if os.path.islink(path):
                os.unlink(path)  # --force replaces the link itself, never writes through it
            with open(path, "w", encoding="utf-8") as fh:
                fh.write(FILES[file].replace("@NAME@", name))
    except OSError as exc:
        raise ScaffoldError(f"cannot write the mesh in {directory}: {exc.strerror or exc}") from exc
    return list(paths.values())


FILES = {
    "mesh.yaml": """\
# The mesh: every *.yaml file of this directory (*.test.yaml files are tests).
# Check it:  meshctl validate .     Test it:  meshctl test .
# Run it:    meshctl run . --events events.jsonl
# Every key: docs/dsl.md, or `meshctl schema` for editors.
apiVersion: meshctl/v1
kind: Mesh
metadata:
  name: @NAME@
  description: A greeting service, made by `meshctl init`.
""",
    "event-types.yaml": """\
# The event types: each event's `type` must be declared here, and its `data` is checked
# against the JSON Schema.
apiVersion: meshctl/v1
kind: EventType
metadata:
  name: greeting.requested
  description: Someone asks to be greeted.
spec:
  external: true          # comes from outside the mesh (events.jsonl, the HTTP ingress)
  schema:
    type: object
    required: [name]
    properties:
      name: {type: string, minLength: 1}
---
apiVersion: meshctl/v1
kind: EventType
metadata:
  name: greeting.sent
  description: A greeting was written.
spec:
  schema:
    type: object
    required: [name, text]
    properties:
      name: {type: string}
      text: {type: string}
""",
    "services.yaml": """\
# The services: each subscription consumes one event type and acts on it.
apiVersion: meshctl/v1
kind: Service
metadata:
  name: greeter
spec:
  subscriptions:
    - on: greeting.requested
      emits: [greeting.sent]      # every type this subscription may emit
      do:
        - log: "greeting {{ data.name }}"
        - emit:
            type: greeting.sent
            data:
              name: "{{ data.name }}"
              text: "Hello, {{ data.name }}!"
---
apiVersion: meshctl/v1
kind: Service
metadata:
  name: mailer
spec:
  subscriptions:
    - on: greeting.sent
      do:
        log: "mail to {{ data.name }}: {{ data.text }}"
""",
    "greeting.test.yaml": """\
# Tests of this mesh: `meshctl test .` runs them on the virtual clock (docs/testing.md).
tests:
  - name: a request is greeted
    given:
      - {type: greeting.requested, data: {name: Ada}}
    expect:
      emitted:
        - {type: greeting.sent, data: {name: Ada, text: "Hello, Ada!"}}
      no_dead_letters: true

  - name: every sample event is greeted
    events: events.jsonl
    expect:
      counts: {events_in: 3, emitted: 3, dead_lettered: 0}
""",
    "events.jsonl": """\
{"type": "greeting.requested", "source": "@NAME@", "id": "1", "data": {"name": "Ada"}}
{"type": "greeting.requested", "source": "@NAME@", "id": "2", "data": {"name": "Grace"}}
{"type": "greeting.requested", "source": "@NAME@", "id": "3", "data": {"name": "Edsger"}}
""",
}
