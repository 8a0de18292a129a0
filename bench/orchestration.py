"""Orchestration: time per executed step, meshctl's Runtime vs moto's Step Functions interpreter.

Three shapes, each written as a meshctl ``Orchestration`` (YAML generated into a temporary
directory) and as the equivalent Amazon States Language definition:

* ``chain``: 50 steps in sequence (50 ``Pass`` states);
* ``fan-out``: 8 parallel branches of 5 steps, then a join step (a ``Parallel`` state with 8
  branches of 5 ``Pass`` states, then a ``Pass``): 41 steps;
* ``foreach``: one step over a list of 100 items (a ``Map`` state over 100 items, one ``Pass``
  each): 100 steps.

meshctl runs many triggers through one :class:`~engine.runtime.interpreter.Runtime` in memory
on the virtual clock (no trace sink, as ``meshctl run`` without ``--trace``); one extra run
with a trace counts the step attempts, which must equal the expected step count. moto runs
the state machine with ``mock_aws(config={"stepfunctions": {"execute_state_machine": True}})``;
its time per execution is the execution's own ``stopDate - startDate`` (the interpreter,
without boto3's request round trips or our polling), and the status must be SUCCEEDED with
the expected number of ``*StateEntered`` events in the history.
"""
from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from collections import Counter
from pathlib import Path

from .common import Row, best_of, fmt_time, log

START = "2026-01-01T00:00:00Z"


def _event_type(name: str) -> str:
    return (f"apiVersion: meshctl/v1\nkind: EventType\nmetadata: {{name: {name}}}\n"
            f"spec:\n  external: true\n  schema: {{type: object}}\n")


def _orchestration(name: str, steps: list[str]) -> str:
    return (f"---\napiVersion: meshctl/v1\nkind: Orchestration\nmetadata: {{name: {name}}}\nspec:\n"
            f"  trigger: {{on: {name}.start}}\n  steps:\n" + "\n".join(steps) + "\n")


def _step(sid: str, value: int, needs: list[str] | None = None, foreach: str | None = None) -> str:
    lines = [f"    - id: {sid}"]
    if needs is not None:
        lines.append(f"      needs: [{', '.join(needs)}]")
    if foreach is not None:
        lines.append(f'      foreach: "{foreach}"')
    lines.append(f"      do: {{set: {{n: {value}}}}}")
    return "\n".join(lines)


def shapes() -> dict[str, dict]:
    """Per shape: the meshctl steps (YAML), the ASL definition, and the executed step count."""
    chain_steps = [_step(f"s{i}", i) for i in range(50)]
    fan_steps = []
    for b in range(8):
        for j in range(5):
            fan_steps.append(_step(f"b{b}_{j}", j, needs=[] if j == 0 else None))
    fan_steps.append(_step("join", 99, needs=[f"b{b}_4" for b in range(8)]))
    foreach_steps = [_step("each", 1, foreach="{{ input['items'] }}")]

    def pass_chain(prefix: str, n: int) -> dict:
        return {
            "StartAt": f"{prefix}0",
            "States": {
                f"{prefix}{i}": {
                    "Type": "Pass",
                    "Result": i,
                    "ResultPath": "$.n",
                    **({"Next": f"{prefix}{i + 1}"} if i < n - 1 else {"End": True}),
                }
                for i in range(n)
            },
        }

    fan_asl = {"StartAt": "fan", "States": {
        "fan": {"Type": "Parallel", "Branches": [pass_chain(f"b{b}_", 5) for b in range(8)],
                "ResultPath": "$.branches", "Next": "join"},
        "join": {"Type": "Pass", "Result": 99, "ResultPath": "$.n", "End": True}}}
    map_asl = {"StartAt": "each", "States": {
        "each": {"Type": "Map", "ItemsPath": "$.items", "ResultPath": "$.out",
                 "ItemProcessor": {"ProcessorConfig": {"Mode": "INLINE"}, "StartAt": "p",
                                   "States": {"p": {"Type": "Pass", "Result": {"n": 1}, "End": True}}},
                 "End": True}}}
    return {
        # steps: executed meshctl step attempts; asl_entered: *StateEntered events in moto's history
        "chain": {"steps": chain_steps, "asl": pass_chain("s", 50), "count": 50, "asl_entered": 50},
        "fan-out 8×5 + join": {"steps": fan_steps, "asl": fan_asl, "count": 41, "asl_entered": 42},
        "foreach 100": {"steps": foreach_steps, "asl": map_asl, "count": 100, "asl_entered": 101},
    }


def write_mesh(folder: str, shape: dict[str, dict]) -> str:
    names = {label: f"o{i}" for i, label in enumerate(shape)}
    text = "---\n".join(_event_type(f"{names[label]}.start") for label in shape)
    for label, spec in shape.items():
        text += _orchestration(names[label], spec["steps"])
    path = Path(folder) / "orchestrations.yaml"
    path.write_text(text)
    return names


def ours(label: str, name: str, mesh, runs: int) -> tuple[float, int, dict]:
    """Seconds per run (best of 3 batches of ``runs`` triggers), step attempts in one traced run, summary."""
    from engine.runtime.interpreter import Runtime
    from engine.runtime.trace import Trace

    items = list(range(100))
    events = [{"specversion": "1.0", "id": f"{name}-{i}", "source": "bench", "type": f"{name}.start",
               "time": START, "data": {"items": items}} for i in range(runs)]
    seconds, summary = best_of(lambda: Runtime(mesh, trace=Trace()).run(events), 3)
    records: list = []
    Runtime(mesh, trace=Trace(records)).run(events[:1])
    steps = Counter(r["kind"] for r in records)["step-start"]
    return seconds / runs, steps, summary


def moto(asl: dict, executions: int) -> tuple[float | None, str, int]:
    """Seconds per execution (moto's own start/stop dates; best), final status, states entered."""
    try:
        import boto3
        from moto import mock_aws
    except ImportError as exc:
        return None, f"not installed ({exc.name})", 0
    logging.getLogger("moto").setLevel(logging.CRITICAL)  # its interpreter logs every state
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        client = boto3.client("stepfunctions", region_name="us-east-1")
        arn = client.create_state_machine(name="bench", definition=json.dumps(asl),
                                          roleArn="arn:aws:iam::123456789012:role/bench")["stateMachineArn"]
        best, status, entered = float("inf"), "?", 0
        for k in range(executions):
            started = time.perf_counter()
            execution = client.start_execution(stateMachineArn=arn, name=f"run-{k}",
                                               input=json.dumps({"items": list(range(100))}))["executionArn"]
            while True:
                described = client.describe_execution(executionArn=execution)
                if described["status"] != "RUNNING" or time.perf_counter() - started > 120:
                    break
                time.sleep(0.005)
            status = described["status"]
            if "stopDate" in described:
                best = min(best, (described["stopDate"] - described["startDate"]).total_seconds())
            history = client.get_execution_history(executionArn=execution, maxResults=1000)["events"]
            entered = sum(e["type"].endswith("StateEntered") for e in history)
    return (best if best < float("inf") else None), status, entered


def rows(quick: bool = False) -> list[Row]:
    from engine.analysis.validate import check_mesh

    shape = shapes()
    out = []
    with tempfile.TemporaryDirectory(prefix="bench-orch-") as folder:
        names = write_mesh(folder, shape)
        checked = check_mesh(folder)
        if checked.errors:
            return [Row("orchestration", "-", "generated mesh invalid: " + checked.diagnostics[0].format())]
        for label, spec in shape.items():
            log(f"orchestration {label}")
            runs = 20 if quick else 200
            per_run, steps, summary = ours(label, names[label], checked.mesh, runs)
            per_step = per_run / spec["count"]
            moto_run, status, entered = moto(spec["asl"], 1 if quick else 3)
            moto_step = moto_run / spec["count"] if moto_run is not None else None
            ratio = moto_step / per_step if moto_step is not None else None
            ok = steps == spec["count"] and summary["runs_completed"] == runs
            peer_ok = status == "SUCCEEDED" and entered == spec["asl_entered"]
            check = f"{steps} steps/run, {summary['runs_completed']}/{runs} runs completed" + (
                f"; moto {status}, {entered} states entered" if moto_run is not None else f"; moto {status}"
            )
            if not ok or (moto_run is not None and not peer_ok):
                check += " (MISMATCH)"
            out.append(Row("orchestration", f"{label} ({spec['count']} steps)", f"{fmt_time(per_step)}/step",
                           f"moto {fmt_time(moto_step)}/step" if moto_step else f"moto {status}", ratio, "",
                           "≥ 50× (aim 100×)", ratio >= 50 if ratio is not None else None, check,
                           {"per_run_s": per_run, "moto_per_run_s": moto_run}))
    return out


if __name__ == "__main__":
    from .common import table

    print(table(rows()))
