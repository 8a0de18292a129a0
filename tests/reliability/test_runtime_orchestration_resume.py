"""T10: orchestration resume. A saga of five steps, killed during step k (and during a
compensation) and resumed, never runs again a step whose completion was committed, and
ends every run exactly as a run without failure decides.

300 orders start a run each; every step calls a logged handler and then takes 2 s of
virtual time, so many runs are in flight together. Some orders fail at step 4 (steps
3, 2, 1 are compensated, newest first) or step 2, some time out once at step 3 and are
retried. The process SIGKILLs itself right after the N-th invocation of a chosen step,
four times, each time resumed. At each crash, the steps the store holds as done (or
compensated) are noted: no later process may invoke them again.
"""
from __future__ import annotations

import collections

import pytest
from runtime_harness import (
    KILLED,
    START,
    iso,
    meshctl,
    output_texts,
    outputs,
    read_log,
    write_events,
    write_mesh,
)

from engine.storage import SqliteStore

pytestmark = pytest.mark.slow

STEPS = ["s1", "s2", "s3", "s4", "s5"]


def mesh_text() -> str:
    steps = []
    for i, name in enumerate(STEPS):
        needs = f"\n      needs: [{STEPS[i - 1]}]" if i else ""
        steps.append(f"""
    - id: {name}{needs}
      retry: step-retry
      do: [{{call: {{python: "effects:step", args: {{name: {name}}}}}}}, {{sleep: 2s}}]
      compensate: [{{call: {{python: "effects:step", args: {{name: undo-{name}}}}}}}, {{sleep: 1s}}]""")
    return f"""
apiVersion: meshctl/v1
kind: EventType
metadata: {{name: order.placed}}
spec: {{external: true}}
---
apiVersion: meshctl/v1
kind: EventType
metadata: {{name: order.done}}
---
apiVersion: meshctl/v1
kind: EventType
metadata: {{name: order.undone}}
---
apiVersion: meshctl/v1
kind: DeliveryPolicy
metadata: {{name: step-retry}}
spec:
  retry: {{max_attempts: 3, initial: 1s, jitter: full, non_retryable: [Fatal]}}
---
apiVersion: meshctl/v1
kind: Orchestration
metadata: {{name: fulfil}}
spec:
  trigger: {{on: order.placed}}
  steps:{"".join(steps)}
  on_success: {{emit: {{type: order.done, data: {{order: "{{{{ input.order }}}}"}}}}}}
  on_failure: {{emit: {{type: order.undone, data: {{order: "{{{{ input.order }}}}"}}}}}}
"""


def orders(n: int) -> list[dict]:
    out = []
    for i in range(n):
        data = {"order": i}
        if i % 6 == 5:
            data["fail_at"] = "s4"
        elif i % 12 == 2:
            data["fail_at"] = "s2"
        if i % 8 == 3:
            data["flaky_at"] = "s3"
        out.append({"id": f"o{i}", "type": "order.placed", "time": iso(START + 3 * i), "data": data})
    return out


def settled_steps(db) -> set[tuple[str, str]]:
    """(order id, handler name) of every step the store holds as done, and of every undo it holds as done."""
    store = SqliteStore(str(db))
    try:
        runs = [store.get_state(key) for key in store.state_keys("run:")]
    finally:
        store.close()
    settled = set()
    for run in runs:
        for step, state in run["steps"].items():
            if state["status"] in ("done", "compensated"):
                settled.add((run["event"]["id"], step))
            if state["status"] == "compensated":
                settled.add((run["event"]["id"], f"undo-{step}"))
    return settled


def run_states(db) -> dict:
    store = SqliteStore(str(db))
    try:
        return {key: store.get_state(key) for key in store.state_keys("run:")}
    finally:
        store.close()


def test_resumed_sagas_do_not_rerun_committed_steps_and_decide_the_same(tmp_path):
    mesh = write_mesh(tmp_path / "mesh", mesh_text())
    events = write_events(tmp_path / "events.jsonl", orders(300))

    def run(name: str, *extra, **env):
        return meshctl("run", mesh, "--events", events, f"--store=sqlite:{tmp_path / name}.db",
                       "--checkpoint-every=7", "--format=json", *outputs(tmp_path / name), *extra,
                       check=False, MESHCTL_EFFECT_LOG=str(tmp_path / f"{name}.log"), **env)

    assert run("clean").returncode == 0
    crashes = []  # (log length at the crash, steps settled in the store then)
    for number, kill_on in enumerate(["s3:40", "undo-s2:4", "s5:25", "s1:60"]):
        done = run("killed", *(["--resume"] if number else []), MESHCTL_KILL_ON=kill_on)
        assert done.returncode == KILLED, (kill_on, done.stderr[-2000:])
        crashes.append((len(read_log(tmp_path / "killed.log")), settled_steps(tmp_path / "killed.db")))
    assert run("killed", "--resume").returncode == 0

    log = read_log(tmp_path / "killed.log")
    for at, settled in crashes:
        assert settled and not [r for r in log[at:] if (r["id"], r["name"]) in settled]
    assert run_states(tmp_path / "killed.db") == run_states(tmp_path / "clean.db")
    assert output_texts(tmp_path / "killed") == output_texts(tmp_path / "clean")

    clean = collections.Counter((r["id"], r["name"]) for r in read_log(tmp_path / "clean.log"))
    killed = collections.Counter((r["id"], r["name"]) for r in log)
    # repeats exist, and are not committed steps
    assert not clean - killed and sum((killed - clean).values()) > 0
    statuses = collections.Counter(s["status"] for s in run_states(tmp_path / "clean.db").values())
    assert statuses == {"completed": 225, "compensated": 75}
