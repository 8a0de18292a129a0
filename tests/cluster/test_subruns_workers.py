"""Issue 19 on Redis: parents waiting for child runs (`run:` steps) are resumed by their children's
end in a deployment drained by two workers, with the results of `meshctl run`.

A parent saved waiting, its children (and a grandchild) in the store, a child that fails and
is retried as a new child, the parent's compensation: the workers take the work in whatever
order, seconds after the events' times, and must still end every run as `run` does, emit the
same events with the same event times (derived from the causes, never from a worker's clock),
and keep the same runs, each child with its parent (`meshctl runs list`).
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # publishes and starts two worker processes

REPO = Path(__file__).resolve().parent.parent.parent
COUNTERS = ("events_in", "emitted", "dead_lettered", "runs_started", "runs_completed", "runs_failed",
            "runs_compensated", "retries")

MESH = """
apiVersion: meshctl/v1
kind: EventType
metadata: {name: order.placed}
spec:
  external: true
  key: data.order
  schema:
    type: object
    required: [order, lines, bad]
    properties: {order: {type: string}, lines: {type: array}, bad: {type: boolean}}
---
apiVersion: meshctl/v1
kind: EventType
metadata: {name: line.requested}
spec:
  schema: {type: object, required: [order, sku], properties: {order: {type: string}, sku: {type: string}}}
---
apiVersion: meshctl/v1
kind: EventType
metadata: {name: payment.requested}
spec:
  schema: {type: object, required: [order, bad], properties: {order: {type: string}, bad: {type: boolean}}}
---
apiVersion: meshctl/v1
kind: EventType
metadata: {name: price.requested}
spec: {schema: {type: object, required: [sku], properties: {sku: {type: string}}}}
---
apiVersion: meshctl/v1
kind: EventType
metadata: {name: order.done}
spec: {schema: {type: object}}
---
apiVersion: meshctl/v1
kind: EventType
metadata: {name: order.undone}
spec: {schema: {type: object}}
---
apiVersion: meshctl/v1
kind: Service
metadata: {name: ledger}
spec:
  subscriptions:
    - {on: order.done, do: {log: "done {{ data.order }}"}}
    - {on: order.undone, do: {log: "undone {{ data.order }}"}}
---
apiVersion: meshctl/v1
kind: Orchestration
metadata: {name: order}
spec:
  trigger: {on: order.placed}
  steps:
    - id: lines
      foreach: "{{ input.lines }}"
      run: {orchestration: line, input: {order: "{{ input.order }}", sku: "{{ item }}"}}
      compensate: {emit: {type: order.undone, data: {order: "{{ input.order }}"}}}
    - id: pay
      needs: []
      run: {orchestration: payment, input: {order: "{{ input.order }}", bad: "{{ input.bad }}"}}
      retry: {max_attempts: 2, backoff: fixed, initial: 200ms, jitter: none}
    - id: done
      needs: [lines, pay]
      do:
        emit:
          type: order.done
          data:
            order: "{{ input.order }}"
            prices: "{{ steps.lines.output | map(attribute='price') | list }}"
            paid: "{{ steps.pay.output.ref }}"
---
apiVersion: meshctl/v1
kind: Orchestration
metadata: {name: line}
spec:
  trigger: {on: line.requested}
  steps:
    - id: price
      run: {orchestration: pricing, input: {sku: "{{ input.sku }}"}}
    - id: hold
      do: {sleep: 150ms}
  output: {price: "{{ steps.price.output.price }}"}
---
apiVersion: meshctl/v1
kind: Orchestration
metadata: {name: pricing}
spec:
  trigger: {on: price.requested}
  steps:
    - id: look_up
      do: [{sleep: 100ms}, {set: {price: "{{ input.sku | length * 3 }}"}}]
  output: {price: "{{ vars.price }}"}
---
apiVersion: meshctl/v1
kind: Orchestration
metadata: {name: payment}
spec:
  trigger: {on: payment.requested}
  steps:
    - id: charge
      do: {sleep: 250ms}
    - id: refuse
      when: "{{ input.bad }}"
      do: {fail: {error: Refused}}
  output: {ref: "pay-{{ input.order }}"}
"""


def _cli(*args) -> list[str]:
    return [sys.executable, "-c", "import sys; from cli import main; sys.exit(main())", *map(str, args)]


def _ok(*args, timeout: float = 120) -> str:
    proc = subprocess.run(_cli(*args), cwd=REPO, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def _events(path: Path) -> None:
    lines = []
    for n in range(1, 13):
        lines.append({"specversion": "1.0", "id": f"o-{n}", "source": "/shop", "type": "order.placed",
                      "time": f"2026-02-01T12:00:{n * 3:02d}Z",
                      "data": {"order": f"ord-{n}", "lines": ["mug", "tee", "poster"][: 1 + n % 3],
                               "bad": n % 4 == 0}})
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))


def _emitted(events: list[dict]) -> list[str]:
    return sorted(json.dumps(e, sort_keys=True) for e in events)


def _runs(text: str) -> list[str]:
    return sorted(text.splitlines())


@pytest.mark.parametrize("server", ["redis_url", "redis_cluster_url"])
def test_two_workers_resume_parents_from_their_children_as_run_does(server, request, tmp_path):
    """On one Redis server, and on a Redis Cluster (a child lives in its parent's partition)."""
    from engine.storage import open_broker

    redis_url = request.getfixturevalue(server)

    mesh, events = tmp_path / "mesh", tmp_path / "events.jsonl"
    mesh.mkdir()
    (mesh / "mesh.yaml").write_text(MESH.lstrip())
    _events(events)

    out, db = tmp_path / "run.out", tmp_path / "run.db"
    reference = json.loads(_ok("run", mesh, "--events", events, "--output", out, "--store", f"sqlite:{db}",
                               "--format=json"))
    assert reference["runs_started"] == 12 + 24 + 24 + 15  # orders, lines, prices, payments (3 retried)
    # the 3 refused payments and their retries fail (nothing to undo); their orders compensate
    assert reference["runs_failed"] == 6 and reference["runs_compensated"] == 3 and reference["retries"] == 3

    _ok("publish", mesh, events, "--store", redis_url)
    workers = [subprocess.Popen(_cli("worker", mesh, "--store", redis_url, "--name", f"w{i}",
                                     "--exit-when-idle", "--format=json"),
                                cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for i in (1, 2)]
    done = [w.communicate(timeout=300) for w in workers]
    assert [w.returncode for w in workers] == [0, 0], [err[-2000:] for _, err in done]
    # (which worker did how much depends on when each started: on a busy machine one may do all)
    assert sum(json.loads(stdout)["units"]["committed"] for stdout, _ in done) > 0

    status = json.loads(_ok("status", mesh, "--store", redis_url, "--format=json"))["summary"]
    assert {k: status.get(k) for k in COUNTERS} == {k: reference.get(k) for k in COUNTERS}
    broker = open_broker(redis_url)
    try:
        emitted = list(broker.store.records("emitted"))
    finally:
        broker.close()
    reference_emitted = [json.loads(line) for line in out.read_text().splitlines()]
    assert _emitted(emitted) == _emitted(reference_emitted)
    paid = [e for e in reference_emitted if e["type"] == "order.done"]
    assert len(paid) == 9 and paid[0]["data"]["paid"] == "pay-ord-1"

    deployed_runs = _runs(_ok("runs", "list", "--store", redis_url))
    assert deployed_runs == _runs(_ok("runs", "list", "--store", f"sqlite:{db}"))
    assert ("pricing:o-2/lines[1]#run1/price#run1@/shop  completed    -  "
            "(child of line:o-2/lines[1]#run1@/shop, step price)") in deployed_runs
