"""The mesh and events of the identity tests (tests/test_identity.py, tests/cluster/...).

Every kind of consumer takes ``order.placed``: a subscription (billing, which emits), an
ordered subscription (ledger), an orchestration (fulfil) and a windowed stream (tally). EU
and US share an id and differ in source; REPEAT is EU again, a true duplicate.
"""
from __future__ import annotations

import json
import textwrap
from pathlib import Path

MESH = """
apiVersion: meshctl/v1
kind: EventType
metadata: {name: order.placed}
spec:
  external: true
  schema:
    type: object
    required: [n]
    properties: {n: {type: integer}, account: {type: string}, seq: {type: integer}}
---
apiVersion: meshctl/v1
kind: EventType
metadata: {name: order.billed}
---
apiVersion: meshctl/v1
kind: EventType
metadata: {name: order.shipped}
---
apiVersion: meshctl/v1
kind: EventType
metadata: {name: order.tallied}
---
apiVersion: meshctl/v1
kind: Service
metadata: {name: billing}
spec:
  subscriptions:
    - on: order.placed
      do: [{emit: {type: order.billed, data: {n: "{{ data.n }}"}}}]
      emits: [order.billed]
---
apiVersion: meshctl/v1
kind: Service
metadata: {name: ledger}
spec:
  subscriptions:
    - on: order.placed
      do: [{log: "{{ data.n }}"}]
      ordering: {key: data.account, sequence: data.seq, gap_timeout: 10s}
---
apiVersion: meshctl/v1
kind: Orchestration
metadata: {name: fulfil}
spec:
  trigger: {on: order.placed}
  steps:
    - {id: ship, do: {emit: {type: order.shipped, data: {n: "{{ input.n }}"}}}}
---
apiVersion: meshctl/v1
kind: Stream
metadata: {name: tally}
spec:
  from: [order.placed]
  window: {tumbling: 1m}
  aggregate: {orders: {count: {}}}
  emit: {type: order.tallied}
---
apiVersion: meshctl/v1
kind: Service
metadata: {name: sink}
spec:
  subscriptions:
    - {on: order.billed, do: {log: billed}}
    - {on: order.shipped, do: {log: shipped}}
    - {on: order.tallied, do: {log: tallied}}
"""
BILLING = "service:billing/order.placed"
SHIP = "orchestration:fulfil/ship"
CONSUMERS = 4  # billing, ledger (ordered), fulfil (orchestration), tally (stream)


def placed(source: str, n: int, second: int = 0, id_: str = "o-1", **data) -> dict:
    return {"specversion": "1.0", "id": id_, "source": source, "type": "order.placed",
            "time": f"2026-01-01T00:00:{second:02d}Z", "data": {"n": n, "account": source, "seq": 1, **data}}


EU, US = placed("/shop/eu", 1), placed("/shop/us", 2, second=1)
REPEAT = {**EU, "time": "2026-01-01T00:00:02Z"}  # the same event (source and id) again


def write_mesh(tmp_path: Path) -> Path:
    folder = tmp_path / "mesh"
    folder.mkdir()
    (folder / "mesh.yaml").write_text(textwrap.dedent(MESH).lstrip(), encoding="utf-8")
    return folder


def write_events(path: Path, events: list[dict]) -> Path:
    path.write_text("".join(json.dumps(e) + "\n" for e in events), encoding="utf-8")
    return path


def ok(result) -> dict:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)  # notes (refused inputs...) go to stderr


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]
