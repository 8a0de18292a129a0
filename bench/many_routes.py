"""A generated mesh of N consumers with patterns on one event type, and input of which each
event matches exactly one of them.

``write_mesh(folder, n, kind)`` writes ``mesh.yaml``: the external type ``reading``
(``data.sensor``, ``data.value``) and N consumers, the i-th (0-based) matching the sensor
``sensor(i)`` only. ``kind`` says which consumers:

- ``route``: routes that transform the reading into ``reading.routed`` and deliver it to
  the ``sink`` service (straight to its subscription);
- ``publish``: the same routes, publishing ``reading.routed`` on the mesh instead;
- ``subscription``: subscriptions of the ``sinks`` service, each with a ``match``;
- ``orchestration``: orchestrations whose trigger has a ``match``;
- ``stream``: streams with a ``match`` (one-minute windows counting readings);
- ``direct``: one route without a pattern delivering ``reading.routed`` to the ``sinks``
  service, whose N subscriptions to it each have a ``match``.

``write_events(path, count, n)`` writes readings one second apart whose sensors go through
the N values, so the work per event stays the same whatever N is: what grows with N is
the routing alone.
"""
from __future__ import annotations

import json
import os

from .e2e import BASE, _stamp

KINDS = ("route", "publish", "subscription", "orchestration", "stream", "direct")

_TYPE = """\
---
apiVersion: meshctl/v1
kind: EventType
metadata: {name: %(name)s}
spec:
  external: %(external)s
  schema:
    type: object
    required: [sensor, value]
    properties: {sensor: {type: string}, value: {type: number}}
"""

_SINK = """\
---
apiVersion: meshctl/v1
kind: Service
metadata: {name: sink}
spec:
  subscriptions:
    - on: reading.routed
      do: [{log: "{{ data.sensor }}"}]
"""

_ROUTE = """\
---
apiVersion: meshctl/v1
kind: Route
metadata: {name: route-%(i)05d}
spec:
  from: [reading]
  match: {data: {sensor: [%(sensor)s]}}
  transform:
    type: reading.routed
    data: {sensor: "{{ data.sensor }}", value: "{{ data.value }}"}
  to: [%(to)s]
"""

_SINKS = """\
---
apiVersion: meshctl/v1
kind: Service
metadata: {name: sinks}
spec:
  subscriptions:
"""

_SUBSCRIPTION = """\
    - name: sub-%(i)05d
      on: %(on)s
      match: {data: {sensor: [%(sensor)s]}}
      do: [{log: "{{ data.sensor }}"}]
"""

_ORCHESTRATION = """\
---
apiVersion: meshctl/v1
kind: Orchestration
metadata: {name: orchestration-%(i)05d}
spec:
  trigger: {on: reading, match: {data: {sensor: [%(sensor)s]}}}
  steps:
    - {id: note, do: {log: "{{ input.sensor }}"}}
"""

_STREAM = """\
---
apiVersion: meshctl/v1
kind: Stream
metadata: {name: stream-%(i)05d}
spec:
  from: [reading]
  match: {data: {sensor: [%(sensor)s]}}
  key: data.sensor
  window: {tumbling: 60s}
  aggregate: {readings: {count: {}}}
  emit: {type: reading.counted}
"""

_DIRECT = """\
---
apiVersion: meshctl/v1
kind: Route
metadata: {name: to-sinks}
spec:
  from: [reading]
  transform:
    type: reading.routed
    data: {sensor: "{{ data.sensor }}", value: "{{ data.value }}"}
  to: [sinks]
"""

_COUNTED = """\
---
apiVersion: meshctl/v1
kind: EventType
metadata: {name: reading.counted}
"""


def sensor(i: int) -> str:
    """The ``data.sensor`` value that consumer ``i`` (0-based) matches."""
    return f"s-{i:05d}"


def mesh_text(n: int, kind: str = "route") -> str:
    """The YAML of a mesh of ``n`` consumers of the given kind (see the module's docstring)."""
    parts = [_TYPE % {"name": "reading", "external": "true"}]
    each = [{"i": i, "sensor": sensor(i)} for i in range(n)]
    if kind in ("route", "publish"):
        to = "sink" if kind == "route" else "{publish: true}"
        parts += [_TYPE % {"name": "reading.routed", "external": "false"}, _SINK]
        parts += [_ROUTE % {**x, "to": to} for x in each]
    elif kind in ("subscription", "direct"):
        on = "reading" if kind == "subscription" else "reading.routed"
        if kind == "direct":
            parts += [_TYPE % {"name": "reading.routed", "external": "false"}, _DIRECT]
        parts += [_SINKS] + [_SUBSCRIPTION % {**x, "on": on} for x in each]
    elif kind == "orchestration":
        parts += [_ORCHESTRATION % x for x in each]
    elif kind == "stream":
        parts += [_COUNTED] + [_STREAM % x for x in each]
    else:
        raise ValueError(f"unknown kind {kind!r}: one of {', '.join(KINDS)}")
    return "".join(parts)


def write_mesh(folder: str, n: int, kind: str = "route") -> str:
    """Write the mesh of ``n`` consumers into ``folder`` (created if needed); returns ``folder``."""
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "mesh.yaml"), "w", encoding="utf-8") as fh:
        fh.write(mesh_text(n, kind))
    return folder


def reading(k: int, n: int) -> dict:
    """The ``k``-th input (0-based) for a mesh of ``n`` consumers: taken by consumer ``k * 7919 % n``."""
    return {"specversion": "1.0", "id": f"r-{k:07d}", "source": "/sensors", "type": "reading",
            "time": _stamp(BASE + k), "data": {"sensor": sensor(k * 7919 % n), "value": k % 100}}


def write_events(path: str, count: int, n: int) -> int:
    """Write ``count`` readings for a mesh of ``n`` consumers (JSON Lines); returns ``count``."""
    with open(path, "w", encoding="utf-8") as fh:
        for k in range(count):
            fh.write(json.dumps(reading(k, n)) + "\n")
    return count
