"""Awaited sub-orchestrations and step circuit breakers: what a step does besides its actions.

A step ``run: {orchestration: B, input: ...}`` starts a *child run* of B and waits for it. The
child's trigger event is made, not received: an event of B's trigger type whose data is the
rendered ``input`` (checked against that type's schema), caused by the parent's trigger event
(so its hop count and causation path grow, as an emitted event's would), with the parent's
source and the id ``<parent event id>/<step>#run<attempt>`` (so the child run's id is
``B:<parent event id>/<step>#run<attempt>@<source>``). It is never published:
no other consumer sees it, and B's ``trigger.match``/``when`` do not apply. The child run is
kept like any run (``meshctl runs list|show``), with ``parent`` naming the parent run and step.

When the child ends, the parent's attempt completes: a completed child gives its result (B's
``output:``, else each done step's output by id) as the step's output; a failed or compensated
child fails the attempt (``ChildRunFailed``), and the step's retry policy applies: a retry
starts a new child run (the failed one has compensated itself), unless the error type that
failed the child is in the step's ``non_retryable``. A child that cannot
start fails the attempt at once and is not retried: input refused by the schema
(``ValidationError``), or a chain of runs and events past the hop limit or the child's
``loop.max_hops`` (``LoopDetected``, also dead-lettered as ``loop-detected``).

A parent that times out or is cancelled (engine/runtime/waits.py) cancels its children in
flight, with the same `compensate`; their end then completes its steps in flight.

Event time: the child starts when the attempt starts, and the attempt ends when the child's
last step (or compensation) ended, so the parent's later steps start after the child's end.

A step's circuit breaker (its ``circuit_breaker``, else its ``retry`` policy's) counts failed
attempts of the step across runs; while open, an attempt fails at once (``CircuitOpen``, not
retried) and is dead-lettered as ``circuit-open``, without running.
"""
from __future__ import annotations

from typing import Any, Callable

from ..core.identity import run_id as name_run
from ..language import model as m
from ..language.admission import DataSchemas
from ..language.templates import RenderError, compile_value
from .events import chain, derive
from .ports import Host

CHILD_FAILED = "ChildRunFailed"
CIRCUIT_OPEN = "CircuitOpen"

StartRun = Callable[[m.Orchestration, dict, str, float, dict], None]


def failure(type_: str, detail: str, retryable: bool = False) -> dict:
    """An attempt's error, as :func:`~engine.runtime.actions.error_data` gives it."""
    return {"type": type_, "detail": detail, "retryable": retryable, "template": False}


def outcome(output: Any, elapsed: float, error: dict | None) -> dict:
    """The outcome of an attempt that ran no action (a child run's end, a fast failure)."""
    return {"outbox": [], "direct": [], "dead": [], "effects": [], "logs": [], "calls": [], "vars": {},
            "output": output, "elapsed": elapsed, "error": error, "state_write": None}


def _failure_type(error: str | None) -> str | None:
    """The error type that failed a run, from its `error` ("step 'ID' failed: TYPE: detail")."""
    if not error or " failed: " not in error:
        return None
    return error.split(" failed: ", 1)[1].split(":", 1)[0]


def breaker_key(orchestration: str, step: str) -> str:
    """The circuit of a step: one for all its runs, items and redrives."""
    return f"orchestration:{orchestration}/{step}"


class SubRuns:
    def __init__(self, rt: Host, start_run: StartRun):
        self.rt, self._start_run = rt, start_run
        self.schemas = DataSchemas(rt.mesh)
        fast = rt.fast_paths
        self._inputs: dict[tuple[str, str], Callable | None] = {
            (o.name, s.id): compile_value(s.run.input, fast) if s.run.input is not None else None
            for o in rt.mesh.orchestrations.values() for s in o.steps if s.run is not None
        }
        self._outputs = {o.name: compile_value(o.output, fast) for o in rt.mesh.orchestrations.values()
                         if o.output is not None}

    # --- a run step's attempt ------------------------------------------------------------
    def start(self, run: dict, step: m.Step, task: dict, ctx: dict, consumer: str, queue: str) -> dict | None:
        """Start the child run of this attempt of *step*; None once started (the attempt
        completes when the child ends), else the error that fails the attempt now."""
        child = self.rt.mesh.orchestrations[step.run.orchestration.name]
        render = self._inputs[(run["orchestration"], step.id)]
        try:
            data = render(ctx) if render is not None else run["event"].get("data")
        except RenderError as exc:
            return {"type": "TemplateError", "detail": str(exc), "retryable": False, "template": True}
        at = task.get("at", self.rt.clock.now())
        event = derive(run["event"], f"{consumer}#run{task['number']}", 0, child.trigger.on.name, data, at,
                       source=run["event"].get("source"), element=f"orchestration:{run['orchestration']}")
        # readable and unique: the parent's trigger event, the step (item, redrive) and the attempt
        event["id"] = f"{run['event']['id']}/{consumer.split('/', 1)[1]}#run{task['number']}"
        problem = self._refused(child, event)
        if problem is not None:
            return problem
        if self._too_deep(child, event, consumer, queue):
            return failure("LoopDetected", f"run of {child.name!r} stopped: {' -> '.join(chain(event))}")
        child_id = name_run(child.name, event)
        run["steps"][step.id].setdefault("runs", []).append(child_id)
        link = {"run": run["id"], "orchestration": run["orchestration"], "step": step.id,
                "task": {k: v for k, v in task.items() if k != "outcome"}}
        self._start_run(child, event, child_id, at, link)
        return None

    def _refused(self, child: m.Orchestration, event: dict) -> dict | None:
        if event["type"] not in self.rt.mesh.event_types:
            return None  # (validate refuses an unknown trigger type)
        rejection = self.schemas.check(event)
        if rejection is None:
            return None
        return failure("ValidationError", f"input of a run of {child.name!r}: {rejection}")

    def _too_deep(self, child: m.Orchestration, event: dict, consumer: str, queue: str) -> bool:
        """The runtime guard against orchestrations that run each other without end: the
        mesh's hop limit, and the child's `loop.max_hops` (runs of it along the chain)."""
        hops, limit = event["hopcount"], self.rt.max_hops
        passes = chain(event).count(f"orchestration:{child.name}")
        if hops >= limit:
            detail = f"the run would be {hops} hops from its input (limit {limit})"
        elif child.loop is not None and passes >= child.loop.max_hops:
            detail = f"{child.name} already ran {passes} times in this chain (max_hops {child.loop.max_hops})"
        else:
            return False
        self.rt.dead_letter(consumer, event, "loop-detected", "LoopDetected", detail, queue=queue)
        return True

    @staticmethod
    def children(run: dict) -> list[str]:
        """The child runs the run's `run:` steps in flight started (the ended ones included)."""
        return [child for state in run["steps"].values() if state["status"] == "running"
                for child in state.get("runs", ())]

    # --- a child's end -------------------------------------------------------------------
    def result(self, run: dict, ctx: dict) -> Any:
        """What a completed run gives its parent: its `output:`, else each done step's output."""
        render = self._outputs.get(run["orchestration"])
        if render is not None:
            return render(ctx)
        return {sid: s["output"] for sid, s in run["steps"].items() if s["status"] == "done"}

    def wants_result(self, run: dict) -> bool:
        return "parent" in run or run["orchestration"] in self._outputs

    def concluded(self, child: dict, timeout: float | None, non_retryable: tuple[str, ...]) -> None:
        """A child run ended: its parent's attempt completes now, as long as the child took. A
        failed child's attempt is retried unless what failed the child is `non_retryable`."""
        task = child["parent"]["task"]
        took = max(0.0, child.get("last", child["at"]) - child["at"])
        error = None
        if child["status"] != "completed":
            error = failure(CHILD_FAILED, f"run {child['id']} {child['status']}: {child.get('error')}",
                            _failure_type(child.get("error")) not in non_retryable)
        elif timeout is not None and took > timeout:
            error = failure("StepTimeout", f"child run {child['id']} took longer than {timeout:g}s", True)
            took = timeout
        self.rt.scheduler.at(self.rt.clock.now(), "step-complete",
                             {**task, "outcome": outcome(child.get("output") if error is None else None,
                                                         took, error)})

    # --- circuit breakers ------------------------------------------------------------------
    def circuit_open(self, run: dict, step: m.Step, breaker: m.CircuitBreaker | None, task: dict,
                     consumer: str, queue: str) -> bool:
        """Whether the step's circuit keeps this attempt from running: then it is dead-lettered
        and completes at once, failed."""
        key = breaker_key(run["orchestration"], step.id)
        now = self.rt.clock.now()
        if breaker is None or not self.rt.breaker_open(key, breaker, now):
            return False
        detail = f"circuit of {key} is open"
        self.rt.dead_letter(consumer, run["event"], "circuit-open", CIRCUIT_OPEN, detail,
                            attempts=task["number"] - 1, first=task["first"], queue=queue)
        self.rt.scheduler.at(now, "step-complete", {**task, "outcome": outcome(None, 0.0, failure(
            CIRCUIT_OPEN, detail))})
        return True

    def attempt_ended(self, run: dict, step: m.Step, breaker: m.CircuitBreaker | None, error: dict | None,
                      ) -> None:
        """Tell the step's circuit how an attempt ended (a fast failure of an open one does not count)."""
        if breaker is not None and (error is None or error["type"] != CIRCUIT_OPEN):
            self.rt.breaker_outcome(breaker_key(run["orchestration"], step.id), breaker, error is None,
                                    self.rt.clock.now())
