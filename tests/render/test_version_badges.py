"""Event type versions in the diagrams (docs/versions.md): a versioned type's node shows its
current version and compatibility mode, a subscription pinned to a version shows which it reads."""
from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

PINNED = """\
apiVersion: meshctl/v1
kind: EventType
metadata: {name: parcel.booked}
spec:
  external: true
  version: 2
  compatibility: full
  schema: {type: object, properties: {id: {type: string}, note: {description: any value}}}
  previous:
    - version: 1
      schema: {type: object, properties: {id: {type: string}}}
---
apiVersion: meshctl/v1
kind: Service
metadata: {name: legacy}
spec:
  subscriptions:
    - on: parcel.booked
      version: 1
      do: {log: "{{ data.id }}"}
"""


def test_a_versioned_types_node_shows_its_version_and_mode(meshctl):
    result = meshctl("render", REPO / "workflows" / "versions", "--format", "mermaid")
    assert result.exit_code == 0, result.output
    assert "parcel.booked<br/>external<br/>[v2 backward]" in result.output
    assert "parcel.labelled<br/>[v1 backward]" in result.output


def test_a_subscription_pinned_to_a_version_shows_it(meshctl, write):
    mesh = write(PINNED)
    for fmt in ("mermaid", "dot"):
        result = meshctl("render", mesh, "--format", fmt)
        assert result.exit_code == 0, result.output
        assert "v2 full" in result.output and "reads v1" in result.output, result.output
