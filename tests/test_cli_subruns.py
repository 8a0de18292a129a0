"""Issue 19: `run:` steps start awaited child runs; validate finds orchestrations that run
themselves; a step's circuit breaker fails attempts fast; diagrams draw the child runs.
Everything through the CLI: `meshctl run`, `validate`, `render`, `runs list|show|redrive`."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.runtime.interpreter import Runtime

REPO = Path(__file__).resolve().parent.parent
TRIPS = REPO / "workflows" / "trip-booking"

TYPES = """
apiVersion: meshctl/v1
kind: EventType
metadata: {name: job}
spec: {external: true, schema: {type: object, properties: {n: {type: integer}, items: {type: array}}}}
---
apiVersion: meshctl/v1
kind: EventType
metadata: {name: part.requested}
spec: {schema: {type: object, required: [n], properties: {n: {type: integer, minimum: 0}}}}
---
apiVersion: meshctl/v1
kind: EventType
metadata: {name: job.done}
spec: {schema: {type: object}}
---
apiVersion: meshctl/v1
kind: EventType
metadata: {name: part.undone}
spec: {schema: {type: object}}
---
apiVersion: meshctl/v1
kind: Service
metadata: {name: sink}
spec:
  subscriptions:
    - {on: job.done, do: {log: "done"}}
    - {on: part.undone, do: {log: "undone"}}
"""

PARENT_AND_CHILD = TYPES + """
---
apiVersion: meshctl/v1
kind: Orchestration
metadata: {name: parent}
spec:
  trigger: {on: job}
  steps:
    - id: first
      do: {sleep: 1s}
      compensate: {emit: {type: part.undone, data: {step: first}}}
    - id: part
      run: {orchestration: child, input: {n: "{{ input.n }}"}}
      retry: {max_attempts: 2, backoff: fixed, initial: 10s, jitter: none}
    - id: report
      do: {emit: {type: job.done, data: {total: "{{ steps.part.output.total }}"}}}
---
apiVersion: meshctl/v1
kind: Orchestration
metadata: {name: child}
spec:
  trigger: {on: part.requested}
  steps:
    - id: work
      do: [{sleep: 3s}, {set: {total: "{{ input.n * 10 }}"}}]
      compensate: {emit: {type: part.undone, data: {step: work}}}
    - id: check
      when: "{{ input.n > 5 }}"
      do: {fail: {error: TooBig}}
  output: {total: "{{ vars.total }}"}
"""


def _events(path: Path, *data: dict) -> Path:
    lines = [{"id": f"j{i}", "source": "test", "type": "job", "time": f"2026-03-01T10:0{i}:00Z", "data": d}
             for i, d in enumerate(data, 1)]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def _trace(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _run(meshctl, mesh: Path, events: Path, *extra) -> tuple[dict, list[dict]]:
    trace = mesh.parent / "trace.jsonl"
    result = meshctl("run", mesh, "--events", events, "--trace", trace, "--format", "json", *extra)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout), _trace(trace)


def test_the_child_result_is_the_step_output_at_the_child_end_time(meshctl, write, tmp_path):
    mesh = write(PARENT_AND_CHILD)
    summary, trace = _run(meshctl, mesh, _events(tmp_path / "in.jsonl", {"n": 4}), "--output",
                          tmp_path / "out.jsonl")
    assert summary["runs_started"] == 2 and summary["runs_completed"] == 2
    done = [e for e in _trace(tmp_path / "out.jsonl") if e["type"] == "job.done"]
    # first took 1s, the child 3s: the report is stamped at the child's end, not when a worker got to it
    assert [(e["data"], e["time"]) for e in done] == [({"total": 40}, "2026-03-01T10:01:04Z")]
    start = next(r for r in trace if r["kind"] == "run-start" and r["orchestration"] == "child")
    assert start["run"] == "child:j1/part#run1@test" and start["parent"] == "parent:j1@test"
    assert start["step"] == "part"


def test_a_failed_child_is_retried_as_a_new_child_then_the_parent_compensates(meshctl, write, tmp_path):
    mesh = write(PARENT_AND_CHILD)
    summary, trace = _run(meshctl, mesh, _events(tmp_path / "in.jsonl", {"n": 9}))
    ends = {r["run"]: r["status"] for r in trace if r["kind"] == "run-end"}
    assert ends == {"child:j1/part#run1@test": "compensated", "child:j1/part#run2@test": "compensated",
                    "parent:j1@test": "compensated"}
    retry = next(r for r in trace if r["kind"] == "retry")
    assert retry["consumer"] == "orchestration:parent/part" and retry["error"].startswith("ChildRunFailed: ")
    undone = [r for r in trace if r["kind"] == "compensate"]
    # each child undid its own work; then the parent undid its completed step
    assert [(r["orchestration"], r["step"]) for r in undone] == [("child", "work"), ("child", "work"),
                                                                  ("parent", "first")]
    assert summary["runs_compensated"] == 3 and summary["retries"] == 1


def test_child_runs_are_kept_with_their_parent_and_only_the_parent_is_redriven(meshctl, write, tmp_path):
    mesh, db = write(PARENT_AND_CHILD), tmp_path / "runs.db"
    _run(meshctl, mesh, _events(tmp_path / "in.jsonl", {"n": 2}, {"n": 7}), "--store", f"sqlite:{db}")
    listed = meshctl("runs", "list", "--store", f"sqlite:{db}", "--orchestration", "child").output
    listed = listed.splitlines()
    assert listed[0] == "child:j1/part#run1@test  completed    -  (child of parent:j1@test, step part)"
    assert listed[-1] == "3 runs"
    shown = json.loads(meshctl("runs", "show", "--store", f"sqlite:{db}", "parent:j1").output)
    assert shown["steps"]["part"]["output"] == {"total": 20}
    assert shown["steps"]["part"]["runs"] == ["child:j1/part#run1@test"]
    child = json.loads(meshctl("runs", "show", "--store", f"sqlite:{db}", "child:j1/part#run1").output)
    assert child["parent"]["run"] == "parent:j1@test" and child["output"] == {"total": 20}
    refused = meshctl("runs", "redrive", mesh.parent, "--store", f"sqlite:{db}", "child:j2/part#run2")
    assert refused.exit_code == 2
    assert "is a child run of 'parent:j2@test' (step 'part'): redrive that run" in refused.output
    redriven = meshctl("runs", "redrive", mesh.parent, "--store", f"sqlite:{db}", "parent:j2", "--format",
                       "json")
    children = json.loads(redriven.output)["run"]["steps"]["part"]["runs"]
    assert children[-1] == "child:j2/part#redrive1#run2@test"


def test_a_foreach_run_step_starts_a_child_per_item(meshctl, write, tmp_path):
    mesh = write(TYPES + """
---
apiVersion: meshctl/v1
kind: Orchestration
metadata: {name: fan}
spec:
  trigger: {on: job}
  steps:
    - id: parts
      foreach: "{{ input['items'] }}"
      concurrency: 2
      run: {orchestration: child, input: {n: "{{ item }}"}}
    - id: report
      do: {emit: {type: job.done, data: {totals: "{{ steps.parts.output | map(attribute='n') | list }}"}}}
---
apiVersion: meshctl/v1
kind: Orchestration
metadata: {name: child}
spec:
  trigger: {on: part.requested}
  steps:
    - {id: work, do: {sleep: 2s}}
  output: {n: "{{ input.n }}"}
""")
    summary, trace = _run(meshctl, mesh, _events(tmp_path / "in.jsonl", {"items": [3, 1, 2]}), "--output",
                          tmp_path / "out.jsonl")
    assert summary["runs_completed"] == 4
    children = [r["run"] for r in trace if r["kind"] == "run-start" and r["orchestration"] == "child"]
    assert children == ["child:j1/parts[0]#run1@test", "child:j1/parts[1]#run1@test",
                        "child:j1/parts[2]#run1@test"]
    done = [e for e in _trace(tmp_path / "out.jsonl") if e["type"] == "job.done"]
    # a `concurrency` slot is not waited for in event time: every child ran 10:01:00-10:01:02
    assert done[0]["data"] == {"totals": [3, 1, 2]} and done[0]["time"] == "2026-03-01T10:01:02Z"


def test_input_the_child_type_refuses_fails_the_step_without_a_child(meshctl, write, tmp_path):
    mesh = write(PARENT_AND_CHILD)
    summary, trace = _run(meshctl, mesh, _events(tmp_path / "in.jsonl", {"n": -1}))
    failed = next(r for r in trace if r["kind"] == "step-failed")
    assert failed["step"] == "part"
    assert failed["error"].startswith("ValidationError: input of a run of 'child'")
    assert summary["runs_started"] == 1 and summary["retries"] == 0 and summary["runs_compensated"] == 1


def test_a_recursion_is_stopped_at_the_hop_limit_and_dead_lettered(meshctl, write, tmp_path):
    mesh = write(TYPES + """
---
apiVersion: meshctl/v1
kind: Orchestration
metadata: {name: again}
spec:
  trigger: {on: job}
  loop: {max_hops: 10}
  steps:
    - id: deeper
      run: {orchestration: again, input: {n: "{{ (input.n or 0) + 1 }}"}}
""")
    dlq = tmp_path / "dlq.jsonl"
    summary, _ = _run(meshctl, mesh, _events(tmp_path / "in.jsonl", {"n": 0}), "--max-hops", "4",
                      "--dlq-out", dlq)
    assert summary["runs_started"] == 4 and summary["runs_failed"] == 4  # hop counts 0, 1, 2, 3
    (letter,) = [json.loads(line) for line in dlq.read_text().splitlines()]
    assert letter["reason"] == "loop-detected" and letter["consumer"] == "orchestration:again/deeper"
    assert letter["event"]["hopcount"] == 4 and letter["chain"] == ["orchestration:again"] * 4


def test_loop_max_hops_of_the_child_bounds_a_recursion(meshctl, write, tmp_path):
    mesh = write(TYPES + """
---
apiVersion: meshctl/v1
kind: Orchestration
metadata: {name: again}
spec:
  trigger: {on: job}
  loop: {max_hops: 2}
  steps:
    - id: deeper
      run: {orchestration: again}
""")
    summary, _ = _run(meshctl, mesh, _events(tmp_path / "in.jsonl", {"n": 0}))
    assert summary["runs_started"] == 2 and summary["dead_lettered_by_reason"] == {"loop-detected": 1}


BROKEN_STEP = TYPES + """
---
apiVersion: meshctl/v1
kind: DeliveryPolicy
metadata: {name: guarded}
spec:
  retry: {max_attempts: 1}
  circuit_breaker: {failure_threshold: 3, reset_after: 1m}
---
apiVersion: meshctl/v1
kind: Orchestration
metadata: {name: work}
spec:
  trigger: {on: job}
  steps:
    - id: flaky
      BREAKER
      do:
        - fail: {error: Down}
"""


@pytest.mark.parametrize("breaker", ["circuit_breaker: {failure_threshold: 2, reset_after: 1m}",
                                     "retry: guarded"])
def test_a_step_circuit_opens_across_runs_and_fails_attempts_fast(meshctl, write, tmp_path, breaker):
    mesh = write(BROKEN_STEP.replace("BREAKER", breaker))
    times = ["00:00", "00:01", "00:02", "00:03", "01:30", "01:31"]
    events = tmp_path / "in.jsonl"
    events.write_text("".join(json.dumps({"id": f"j{i}", "source": "t", "type": "job",
                                          "time": f"2026-03-01T10:{t}Z", "data": {}}) + "\n"
                              for i, t in enumerate(times)))
    dlq = tmp_path / "dlq.jsonl"
    summary, trace = _run(meshctl, mesh, events, "--dlq-out", dlq)
    letters = [json.loads(line) for line in dlq.read_text().splitlines()]
    threshold = 2 if breaker.startswith("circuit") else 3
    # the first `threshold` runs fail for real; then the circuit is open for a minute; at 01:30
    # one probe runs (and fails: open again), so the run after it fails fast too
    fast = [f"j{i}" for i in range(threshold, 4)] + ["j5"]
    assert [(d["reason"], d["consumer"], d["event"]["id"]) for d in letters] == \
        [("circuit-open", "orchestration:work/flaky", e) for e in fast]
    assert summary["runs_failed"] == 6
    opened = [r for r in trace if r["kind"] == "circuit-open"]
    assert [r["consumer"] for r in opened] == ["orchestration:work/flaky"] * 2
    calls = [r for r in trace if r["kind"] == "step-failed" and r["error"].startswith("Down")]
    assert len(calls) == threshold + 1


def test_validate_locates_runs_of_unknown_and_self_running_orchestrations(meshctl, write, diagnostics):
    mesh = write(TYPES + """
---
apiVersion: meshctl/v1
kind: Orchestration
metadata: {name: alpha}
spec:
  trigger: {on: job}
  steps:
    - id: to_beta
      run: {orchestration: beta}
---
apiVersion: meshctl/v1
kind: Orchestration
metadata: {name: beta}
spec:
  trigger: {on: part.requested}
  steps:
    - id: shout
      do: {emit: {type: job, data: {n: 1}}}
    - id: self
      run: {orchestration: beta, input: {n: 1}}
    - id: typo
      run: {orchestration: gama}
""")
    result = meshctl("validate", mesh)
    assert result.exit_code == 1
    found = [d for d in diagnostics(mesh) if d[3] in ("run-cycle", "unknown-orchestration")]
    assert sorted(found) == [(37, 28, "error", "run-cycle"), (48, 28, "error", "run-cycle"),
                             (50, 28, "error", "unknown-orchestration")]
    text = result.output
    assert "error[run-cycle]: orchestration runs itself: alpha -> beta -> job -> alpha" in text
    assert "note: orchestration 'beta' emits job" in text
    assert "error[run-cycle]: orchestration runs itself: beta -> beta" in text
    assert "runs unknown orchestration 'gama'" in text


def test_a_declared_loop_makes_a_run_cycle_a_warning(meshctl, write, diagnostics):
    mesh = write(TYPES + """
---
apiVersion: meshctl/v1
kind: Orchestration
metadata: {name: again}
spec:
  trigger: {on: job}
  loop: {max_hops: 3}
  steps:
    - id: deeper
      run: {orchestration: again}
""")
    assert [d for d in diagnostics(mesh) if d[2] != "warning" or d[3] == "bounded-loop"] == \
        [(38, 28, "warning", "bounded-loop")]
    assert meshctl("validate", mesh).exit_code == 0


@pytest.mark.parametrize("step, message", [
    ("{id: both, do: {log: x}, run: {orchestration: child}}",
     "a step either does actions (`do`) or runs an orchestration (`run`), not both"),
    ("{id: neither, needs: []}",
     "a step needs something to do: `do: ACTIONS`, `run: {orchestration: NAME}` or `wait: {...}`"),
])
def test_a_step_with_both_or_neither_of_do_and_run_is_refused_where_it_is(meshctl, write, step, message):
    mesh = write(TYPES + f"""
---
apiVersion: meshctl/v1
kind: Orchestration
metadata: {{name: child}}
spec:
  trigger: {{on: part.requested}}
  steps:
    - {step}
""")
    result = meshctl("validate", mesh)
    assert result.exit_code == 1
    assert f"{mesh}:36:7: error[bad-value]: " in result.output and message in result.output


@pytest.mark.parametrize("fmt", ["mermaid", "dot", "svg", "html"])
def test_render_draws_run_steps_to_their_child_orchestration(meshctl, fmt):
    flow = meshctl("render", TRIPS, "--format", fmt).output
    steps = meshctl("render", TRIPS, "--orchestration", "book-trip", "--format", fmt).output
    assert "run: flight" in flow and "run: hotel" in flow
    assert "run book-flight" in steps and "child run" in steps
    if fmt == "mermaid":
        assert 'n_orchestration_book_trip -->|"run: flight"| n_orchestration_book_flight' in flow
        assert 'n_step_flight -->|"run"| n_orchestration_book_flight' in steps
    if fmt == "dot":
        assert '"step:hotel" -> "orchestration:book-hotel"' in steps
    charge = meshctl("render", TRIPS, "--orchestration", "book-flight", "--format", fmt).output
    assert "breaker 2 → 5m" in charge


def test_a_run_resumed_while_parents_wait_for_children_ends_as_an_uninterrupted_one(
        meshctl, runner, tmp_path, monkeypatch, unjudged):
    """The parent is saved waiting and its child in the store; the child's end resumes it."""
    from cli import main

    def args(db: Path) -> list[str]:
        return [str(a) for a in ("run", TRIPS, "--events", TRIPS / "events.jsonl", "--store", f"sqlite:{db}",
                                 "--format", "json", "--checkpoint-every", "1")]

    feed, waiting = Runtime.feed, []

    def crash_at_4(self, item):  # inputs 1-3 committed; trips 2 and 3 wait for their flight children
        if self.fed == 3:
            waiting.extend(k for k in self.store.state_keys("run:book-trip:")
                           if self.store.get_state(k)["status"] == "running")
            raise SystemError("crash")
        return feed(self, item)

    with monkeypatch.context() as patch:
        patch.setattr(Runtime, "feed", crash_at_4)
        assert runner.invoke(main, args(tmp_path / "a.db")).exit_code == 70
    assert waiting == ["run:book-trip:web-002@/travel/site", "run:book-trip:web-003@/travel/site"]
    resumed = meshctl(*args(tmp_path / "a.db"), "--resume")
    whole = meshctl(*args(tmp_path / "b.db"))
    assert json.loads(resumed.stdout) == unjudged(whole.stdout)
    assert json.loads(whole.stdout)["runs_started"] == 21
    listed = [meshctl("runs", "list", "--store", f"sqlite:{tmp_path / db}").output for db in ("a.db", "b.db")]
    assert listed[0] == listed[1] and "(child of book-trip:web-002@/travel/site, step flight)" in listed[0]


def test_a_child_failed_by_a_non_retryable_error_is_not_started_again(meshctl, write, tmp_path):
    mesh = write(PARENT_AND_CHILD.replace("initial: 10s, jitter: none}",
                                          "initial: 10s, jitter: none, non_retryable: [TooBig]}"))
    summary, trace = _run(meshctl, mesh, _events(tmp_path / "in.jsonl", {"n": 9}))
    children = [r["run"] for r in trace if r["kind"] == "run-start" and r["orchestration"] == "child"]
    assert children == ["child:j1/part#run1@test"] and summary["retries"] == 0
    assert summary["runs_compensated"] == 2


def test_a_step_timeout_bounds_the_child_in_event_time(meshctl, write, tmp_path):
    mesh = write(PARENT_AND_CHILD.replace("      run: {orchestration: child,",
                                          "      timeout: 2s\n      run: {orchestration: child,"))
    summary, trace = _run(meshctl, mesh, _events(tmp_path / "in.jsonl", {"n": 1}))
    errors = [r["error"] for r in trace if r["kind"] in ("retry", "step-failed")]
    # the child took 3s: each attempt fails at 2s; the retry starts a new child, as slow
    assert errors == ["StepTimeout: child run child:j1/part#run1@test took longer than 2s",
                      "StepTimeout: child run child:j1/part#run2@test took longer than 2s"]
    assert summary["runs_completed"] == 2 and summary["runs_compensated"] == 1  # the children completed


def test_an_injected_fault_fails_the_attempt_before_its_child_starts(meshctl, write, tmp_path):
    mesh = write(PARENT_AND_CHILD)
    summary, trace = _run(meshctl, mesh, _events(tmp_path / "in.jsonl", {"n": 1}),
                          "--fault", "orchestration:parent/part=1:Boom")
    children = [r["run"] for r in trace if r["kind"] == "run-start" and r["orchestration"] == "child"]
    assert children == ["child:j1/part#run2@test"] and summary["retries"] == 1
    assert summary["runs_completed"] == 2


def test_a_wait_step_cannot_also_run_an_orchestration(meshctl, write):
    mesh = write(TYPES + """
---
apiVersion: meshctl/v1
kind: Orchestration
metadata: {name: child}
spec:
  trigger: {on: part.requested}
  steps:
    - {id: both, wait: {signal: go}, run: {orchestration: child}}
""")
    result = meshctl("validate", mesh)
    assert result.exit_code == 1 and f"{mesh}:36:7: error[bad-value]: " in result.output
    assert "A wait step runs no actions: it takes no `do`, `run`" in result.output


def test_a_parent_that_times_out_cancels_its_child_in_flight(meshctl, write, tmp_path):
    mesh = write(TYPES + """
---
apiVersion: meshctl/v1
kind: Orchestration
metadata: {name: parent}
spec:
  trigger: {on: job}
  timeout: 10m
  steps:
    - id: part
      run: {orchestration: child, input: {n: 1}}
---
apiVersion: meshctl/v1
kind: Orchestration
metadata: {name: child}
spec:
  trigger: {on: part.requested}
  steps:
    - {id: approve, wait: {signal: go}}
""")
    summary, trace = _run(meshctl, mesh, _events(tmp_path / "in.jsonl", {"n": 1}))
    ends = [(r["run"], r["status"], r["t"]) for r in trace if r["kind"] == "run-end"]
    # the child waits for a signal that never comes: the parent's timeout stops both
    assert ends == [("child:j1/part#run1@test", "cancelled", "2026-03-01T10:11:00Z"),
                    ("parent:j1@test", "timed_out", "2026-03-01T10:11:00Z")]
    assert summary["runs_cancelled"] == 1 and summary["runs_timed_out"] == 1
