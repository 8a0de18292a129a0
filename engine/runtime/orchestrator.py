"""Orchestrations: one run per triggering event, a step graph driven to completion or compensated.

Steps start when all their `needs` are done (or skipped) and their `when` holds; steps whose
needs are met together run concurrently (in virtual time). A `foreach` step runs once per
item, at most `concurrency` at a time, and completes when every item has. A step attempt
that sleeps past its `timeout` fails with ``StepTimeout``; a Python handler of the step that
runs past it, in real time, with ``HandlerTimeout``. A step that still fails after its
retries fails the run: no new step starts, steps in flight finish, then the completed steps
are compensated one by one in reverse completion order (saga), and `on_failure` runs.

Event time (docs/streams.md, "Event time of derived events"): a run starts at the event time
its trigger's attempt ended; a step starts when the latest of its needs ended (the run's start
for a step without needs), each attempt of it after the previous one's end plus its backoff,
and ends after the time it took (`sleep`, capped by `timeout`); `concurrency` slots are not
waited for. What a step emits is stamped with the end of its attempt; compensation starts
when the last step ended, each one after the previous; `on_success`/`on_failure` run at the
run's last end. So a run's events carry the same times whoever runs it and however fast.

Run state is a JSON-serialisable dict kept in the store under ``run:<run id>``; a run id is
``<orchestration>:<event id>@<event source>`` (:func:`~engine.core.identity.run_id`), one run
per triggering event, events being told apart by source and id.
"""
from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import Any, Callable

from ..core.identity import identity
from ..core.identity import run_id as name_run
from ..language import model as m
from ..language.templates import RenderError, compile_condition, compile_string
from . import retry as retry_delays
from .actions import ActionFailed, Attempt, compile_actions, run_actions
from .choices import CRASH, CRASH_RESTART, FAIL, OK, attempt_options, chosen_failure, step_label
from .consumers import resolve_policy
from .events import derived_time
from .ports import Host
from .retry import NO_RETRY
from .subruns import SubRuns
from .subruns import outcome as bare_outcome
from .waits import Waits


@dataclass(frozen=True, slots=True)
class CompiledStep:
    step: m.Step
    actions: list
    compensate: list
    when: Callable | None
    foreach: Callable | None
    policy: Any
    reads_steps: bool  # a template of its `when`, `foreach` or actions may read `steps` (the others' states)
    breaker: m.CircuitBreaker | None = None  # its own `circuit_breaker`, else its `retry` policy's


def _reads_steps(step: m.Step) -> bool:
    """Whether a template of the step (not its compensation) mentions `steps` at all: if none
    does, its context can go without them (building them costs as much as the run is long)."""
    templates = m.template_strings(step.when, step.foreach, *m.action_templates(step.actions),
                                   step.run.input if step.run is not None else None)
    return any("steps" in t.text for t in templates)


_FINISHED = frozenset(("done", "skipped"))  # a step others may start after
_NONE = {"status": None}  # a need naming no step of the run (validate refuses it) is never met


class Orchestrator:
    def __init__(self, runtime: Host):
        self.rt = runtime
        self._fast = runtime.fast_paths  # False: advance by full passes, every context with `steps`
        self._steps: dict[str, dict[str, CompiledStep]] = {}
        self._ends: dict[str, tuple[list, list]] = {}
        self._plans: dict[str, list[tuple[str, tuple[str, ...], CompiledStep]]] = {}
        self._dependents: dict[str, dict[str, list[int]]] = {}
        for orch in runtime.mesh.orchestrations.values():
            tools = runtime.tools
            self._steps[orch.name] = {
                s.id: CompiledStep(s, compile_actions(s.actions, tools, s.timeout),
                                   compile_actions(s.compensate, tools),
                                   compile_condition(s.when, self._fast) if s.when else None,
                                   compile_string(s.foreach, self._fast) if s.foreach else None,
                                   resolve_policy(runtime.mesh, s.retry, NO_RETRY),
                                   _reads_steps(s) or not runtime.fast_paths,
                                   s.circuit_breaker or resolve_policy(runtime.mesh, s.retry).breaker)
                for s in orch.steps}
            self._ends[orch.name] = (
                compile_actions(orch.on_success, tools),
                compile_actions(orch.on_failure, tools),
            )
            # per step in declaration order: what it needs, as names (read on every advance of every run)
            self._plans[orch.name] = [
                (s.id, tuple(n.name for n in s.needs), self._steps[orch.name][s.id]) for s in orch.steps
            ]
            # per step: the plan positions of the steps that need it (the only ones its end can start)
            dependents: dict[str, list[int]] = {s.id: [] for s in orch.steps}
            for position, (_, needs, _) in enumerate(self._plans[orch.name]):
                for need in needs:
                    dependents.get(need, []).append(position)
            self._dependents[orch.name] = dependents
        self.waits = Waits(self)  # wait steps, run timeouts, signals and cancels (engine/runtime/waits.py)
        self.subruns = SubRuns(runtime, self.start)  # `run:` steps and step circuit breakers

    # --- the runtime's hooks: tasks and effects are plain data, dispatched by name ---------
    def tasks(self) -> dict[str, Callable[[dict], None]]:
        return {
            "step-attempt": self._attempt,
            "step-complete": self._item_done,
            "compensate": self._compensate,
            "compensated": self._compensated,
            **self.waits.tasks(),
        }

    def effects(self) -> dict[str, Callable[[dict], None]]:
        return {
            "start-run": lambda p: self.start(
                self.rt.mesh.orchestrations[p["orchestration"]], p["event"], p["run"], p.get("at")
            ),
            **self.waits.effects(),
        }

    # --- starting a run ------------------------------------------------------------------
    def handler(self, orch: m.Orchestration) -> Callable[[Attempt], None]:
        def trigger(attempt: Attempt) -> None:
            run_id = name_run(orch.name, attempt.event)
            attempt.output = {"run": run_id}
            attempt.effects.append(("start-run", {"orchestration": orch.name, "event": attempt.event,
                                                  "run": run_id, "at": attempt.at + attempt.elapsed}))

        return trigger

    def start(self, orch: m.Orchestration, event: dict, run_id: str, at: float | None = None,
              parent: dict | None = None) -> None:
        """Start the run of *event*, at event time *at* (the end of its trigger's attempt);
        *parent*: the run and step attempt waiting for it (a child run, see :mod:`.subruns`)."""
        if self.rt.store.get_state(f"run:{run_id}") is not None:
            return  # this trigger already started its run
        if at is None:
            at = derived_time(event, 0.0, self.rt.clock.now())
        run = {
            "id": run_id,
            "orchestration": orch.name,
            "event": event,
            "status": "running",
            "started": self.rt.clock.now(),
            "vars": {},
            "steps": {s.id: {"status": "pending", "output": None} for s in orch.steps},
            "order": [],
            "in_flight": 0,
            "born": derived_time(event, 0.0, at),  # the trigger's time: what max_event_age counts from
            "at": at,  # event time the run started
            "last": at,  # the latest event time a step or compensation of the run ended
            "error": None,
        }
        if parent is not None:
            run["parent"] = parent
        self._save(run)
        self.rt.trace.count("runs_started")
        self.rt.trace.record(
            self.rt.clock.now(), "run-start", run=run_id, orchestration=orch.name, event=event["id"],
            **({"parent": parent["run"], "step": parent["step"]} if parent is not None else {}),
        )
        self.waits.started(run)
        self._advance(run)

    # --- the step graph --------------------------------------------------------------------
    def _advance(self, run: dict, ended: tuple[str, ...] | None = None) -> None:
        """Start every step whose needs are met; finish the run when nothing is left to do.

        Steps start in passes over the plan, in declaration order; a step that finishes at
        once (skipped, nothing to do, failed) can let others start: those declared after it
        in the same pass, those before it in the next. *ended*: the steps that ended since
        the last advance — only steps that need them can have become ready, so only those
        are looked at (a pass visits them in the same order); None: look at every step.
        """
        plan, steps = self._plans[run["orchestration"]], run["steps"]
        dependents = self._dependents[run["orchestration"]]
        passing = (
            list(range(len(plan)))
            if ended is None or not self._fast
            else sorted({i for e in ended for i in dependents[e]})
        )
        while passing and run["status"] == "running":
            later: set[int] = set()  # made ready by a step that ended at once, declared before it
            queued = set(passing)
            heapq.heapify(passing)
            while passing:
                position = heapq.heappop(passing)
                sid, needs, cs = plan[position]
                state = steps[sid]
                if state["status"] != "pending":
                    continue
                for need in needs:
                    if steps.get(need, _NONE)["status"] not in _FINISHED:
                        break
                else:
                    self._begin(run, cs)
                    if state["status"] != "running":  # ended at once
                        for other in dependents[sid]:
                            if other > position and other not in queued:
                                queued.add(other)
                                heapq.heappush(passing, other)
                            elif other < position:
                                later.add(other)
            passing = sorted(later)
        self._save(run)
        self._conclude(run)

    def _conclude(self, run: dict) -> None:
        """A run with nothing in flight ends: done when every step is, else its compensation goes on."""
        if run["in_flight"]:
            return
        if run["status"] == "running" and all(
            s["status"] in ("done", "skipped") for s in run["steps"].values()
        ):
            self._finish(run, success=True)
        elif run["status"] == "failing":
            self._compensate_next(run)

    def _context(self, run: dict, item: Any = None, steps: bool = True) -> dict:
        """What templates see. ``steps`` (every step's state: the run's size) only if they may read it."""
        event = run["event"]
        ctx = {
            "input": event.get("data"),
            "data": event.get("data"),
            "event": event,
            "vars": dict(run["vars"]),
            "item": item,
        }
        if steps:
            ctx["steps"] = {
                k: {"output": v["output"], "status": v["status"]} for k, v in run["steps"].items()
            }
        return ctx

    def _begin(self, run: dict, cs: CompiledStep) -> None:
        state, now = run["steps"][cs.step.id], self.rt.clock.now()
        # it starts when the latest of its needs ended (event time: not when a worker got to it)
        begin = max([run.get("at", now)] + [run["steps"][n.name].get("end", now) for n in cs.step.needs
                                            if n.name in run["steps"]])
        state["begin"] = state["end"] = begin  # (a step that ends at once ends when it begins)
        # the context is only read by `when` and `foreach`: most steps have neither
        ctx = (
            self._context(run, steps=cs.reads_steps)
            if cs.when is not None or cs.foreach is not None
            else None
        )
        try:
            if cs.when is not None and not cs.when(ctx):
                state["status"] = "skipped"
                self.rt.trace.record(
                    now, "step-skipped", run=run["id"], orchestration=run["orchestration"], step=cs.step.id
                )
                return
            items = cs.foreach(ctx) if cs.foreach is not None else [None]
            if not isinstance(items, list):
                raise RenderError(
                    f"foreach must give a list, not {type(items).__name__}", cs.step.foreach.loc
                )
        except RenderError as exc:
            state["status"] = "failed"
            self._fail_run(run, cs.step.id, f"TemplateError: {exc}")
            return
        if cs.step.wait is not None:
            self.waits.begin(run, cs.step)
            return
        state.update(
            status="running",
            items=items,
            pending=list(range(len(items))),
            outputs=[None] * len(items),
            done_items=0,
        )
        if not items:
            self._step_done(run, cs, [])
            return
        for _ in range(min(len(items), cs.step.concurrency or len(items))):
            self._start_item(run, cs)

    def _start_item(self, run: dict, cs: CompiledStep) -> None:
        state = run["steps"][cs.step.id]
        index = state["pending"].pop(0)
        run["in_flight"] += 1
        now = self.rt.clock.now()
        self.rt.scheduler.at(
            now,
            "step-attempt",
            {"run": run["id"], "step": cs.step.id, "index": index, "number": 1, "first": now,
             "at": state.get("begin", now)},  # a `concurrency` slot is not waited for in event time
        )

    def _attempt(self, task: dict) -> None:
        run, now = self._load(task["run"]), self.rt.clock.now()
        cs, index, number = self._steps[run["orchestration"]][task["step"]], task["index"], task["number"]
        consumer = self._consumer_id(run, cs, index)
        self.rt.trace.record(
            now,
            "step-start",
            run=run["id"],
            orchestration=run["orchestration"],
            step=cs.step.id,
            attempt=number,
            **({"item": index} if cs.foreach is not None else {}),
        )
        ctx = self._context(run, run["steps"][cs.step.id]["items"][index], cs.reads_steps)
        ctx["attempt"] = number
        attempt = Attempt(consumer, run["event"], number, now, ctx, cs.step.may_emit(),
                          at=task.get("at", now))
        if self.subruns.circuit_open(run, cs.step, cs.breaker, task, consumer, cs.policy.queue):
            return
        error: Exception | None = None
        decision = OK if self.rt.chooser is None else self._choose(run, cs, task)
        try:
            # one fault for all items
            self.rt.inject_fault(f"orchestration:{run['orchestration']}/{cs.step.id}", attempt)
            if decision is FAIL:
                raise chosen_failure(number)
            if cs.step.run is not None:
                self._run_child(run, cs, task, ctx, consumer)
                return
            self._with_state(run, attempt, cs.actions)
        except (ActionFailed, RenderError) as exc:
            error = exc
        outcome, took = attempt.outcome(error), attempt.elapsed
        if cs.step.timeout is not None and took > cs.step.timeout:
            took = outcome["elapsed"] = cs.step.timeout
            outcome["error"] = {
                "type": "StepTimeout",
                "detail": f"step {cs.step.id!r} took longer than {cs.step.timeout:g}s",
                "retryable": True,
                "template": False,
            }
        if decision is CRASH:  # its effects happened, its acknowledgement was lost: taken again later
            self.rt.trace.record(now + took, "crash", run=run["id"], consumer=consumer, attempt=number)
            self.rt.scheduler.at(now + took + CRASH_RESTART, "step-attempt", task)
            return
        self.rt.scheduler.at(now + took, "step-complete", {**task, "outcome": outcome})

    def _choose(self, run: dict, cs: CompiledStep, task: dict) -> str:
        """Ask the runtime's chooser what happens to this step attempt (not a child run's: it
        has its own attempts)."""
        if cs.step.run is not None:
            return OK
        options = attempt_options("step", task["number"], cs.policy.retry.max_attempts, False)
        index = task["index"] if cs.foreach is not None else None
        return self.rt.chooser.attempt(step_label(run["id"], cs.step.id, index, task["number"]), options)

    def _run_child(self, run: dict, cs: CompiledStep, task: dict, ctx: dict, consumer: str) -> None:
        """Start the child run of a `run:` step's attempt, which completes when the child ends
        (or now, failed, if the child cannot start)."""
        error = self.subruns.start(run, cs.step, task, ctx, consumer, cs.policy.queue)
        if error is None:
            self._save(run)  # the step lists its child runs
            return
        self.rt.scheduler.at(self.rt.clock.now(), "step-complete",
                             {**task, "outcome": bare_outcome(None, 0.0, error)})

    def _item_done(self, task: dict) -> None:
        run, now, outcome = self._load(task["run"]), self.rt.clock.now(), task["outcome"]
        cs, index = self._steps[run["orchestration"]][task["step"]], task["index"]
        consumer = self._consumer_id(run, cs, index)
        self.rt.trace_outcome(run["event"]["id"], consumer, outcome, now)
        error, end = outcome["error"], self._ended(run, task, outcome)
        self.subruns.attempt_ended(run, cs.step, cs.breaker, error)
        if error is not None and self._retry(run, cs, task, error, now, consumer, end):
            return
        if error is None and not self._state_committed(run, consumer, outcome.get("state_write"), now):
            self.rt.scheduler.at(now, "step-attempt", {k: v for k, v in task.items() if k != "outcome"})
            return
        run["in_flight"] -= 1
        state = run["steps"][cs.step.id]
        state["end"] = max(state.get("end", end), end)  # a foreach step ends with its last item
        if error is not None:
            if state["status"] == "running":
                state["status"] = "failed"
                self._fail_run(run, cs.step.id, f"{error['type']}: {error['detail']}")
            self._advance(run)
            return
        run["vars"].update(outcome["vars"])
        self.rt.publish_outbox(
            run["event"], consumer, outcome["outbox"], end, f"orchestration:{run['orchestration']}"
        )
        state["outputs"][index] = outcome["output"]
        state["done_items"] += 1
        if state["status"] == "running" and state["pending"] and run["status"] == "running":
            self._start_item(run, cs)
        ended: tuple[str, ...] = ()
        if state["status"] == "running" and state["done_items"] == len(state["items"]):
            self._step_done(run, cs, state["outputs"] if cs.foreach is not None else state["outputs"][0])
            ended = (cs.step.id,)
        self._advance(run, ended)  # any other pending step was not ready before, and still is not

    def _retry(self, run: dict, cs: CompiledStep, task: dict, error: dict, now: float, consumer: str,
               end: float) -> bool:
        spec = cs.policy.retry
        if (
            run["status"] != "running"
            or self.rt.verdict(spec, error, task["number"], run["event"], end - run.get("born", end), now,
                               consumer)
            is not None
        ):
            return False
        delay = retry_delays.delay(spec, task["number"], self.rt.seed, identity(run["event"]), consumer)
        self.rt.trace.count("retries")
        self.rt.trace.record(
            now,
            "retry",
            event=run["event"]["id"],
            consumer=consumer,
            attempt=task["number"],
            delay=round(delay, 6),
            error=f"{error['type']}: {error['detail']}",
        )
        self.rt.scheduler.at(
            now + delay,
            "step-attempt",
            {k: v for k, v in task.items() if k != "outcome"}
            | {"number": task["number"] + 1, "at": end + delay},
        )
        return True

    def _step_done(self, run: dict, cs: CompiledStep, output: Any) -> None:
        state = run["steps"][cs.step.id]
        state.update(status="done", output=output)
        for key in ("items", "pending", "outputs", "done_items"):
            state.pop(key, None)
        run["order"].append(cs.step.id)
        self.rt.trace.record(
            self.rt.clock.now(),
            "step-done",
            run=run["id"],
            orchestration=run["orchestration"],
            step=cs.step.id,
        )

    # --- failure, compensation, the end ----------------------------------------------------
    def _fail_run(self, run: dict, step_id: str, detail: str) -> None:
        self.rt.trace.record(
            self.rt.clock.now(),
            "step-failed",
            run=run["id"],
            orchestration=run["orchestration"],
            step=step_id,
            error=detail,
        )
        if run["status"] == "running":
            run.update(
                status="failing",
                error=f"step {step_id!r} failed: {detail}",
                failed_step=step_id,
                compensated=[],
            )

    def _compensate_next(self, run: dict) -> None:
        """Undo completed steps newest first; the list is taken once nothing is in flight any more,
        so a step that finished after the failure is compensated too."""
        steps = self._steps[run["orchestration"]]
        if "to_compensate" not in run:  # (a timeout or cancel may ask for no compensation)
            run["to_compensate"] = list(reversed(run["order"])) if run.get("compensate", True) else []
        while run["to_compensate"]:
            step_id = run["to_compensate"].pop(0)
            if not steps[step_id].compensate:
                continue
            self._save(run)
            now = self.rt.clock.now()
            self.rt.scheduler.at(  # after the last step (or compensation) ended, in event time
                now, "compensate",
                {"run": run["id"], "step": step_id, "number": 1, "first": now, "at": run.get("last", now)}
            )
            return
        self._finish(run, success=False)

    def _compensate(self, task: dict) -> None:
        run, now = self._load(task["run"]), self.rt.clock.now()
        cs, number = self._steps[run["orchestration"]][task["step"]], task["number"]
        consumer = f"{self._consumer_id(run, cs, None)}/compensate"
        self.rt.trace.record(
            now, "compensate", run=run["id"], orchestration=run["orchestration"], step=cs.step.id
        )
        attempt = Attempt(
            consumer, run["event"], number, now, {**self._context(run), "attempt": number},
            cs.step.may_emit(), at=task.get("at", now),
        )
        error: Exception | None = None
        try:
            self._with_state(run, attempt, cs.compensate)
        except (ActionFailed, RenderError) as exc:
            error = exc
        self.rt.scheduler.at(
            now + attempt.elapsed, "compensated", {**task, "outcome": attempt.outcome(error)}
        )

    def _compensated(self, task: dict) -> None:
        run, now, outcome = self._load(task["run"]), self.rt.clock.now(), task["outcome"]
        cs, number = self._steps[run["orchestration"]][task["step"]], task["number"]
        consumer = f"{self._consumer_id(run, cs, None)}/compensate"
        self.rt.trace_outcome(run["event"]["id"], consumer, outcome, now)
        error, end = outcome["error"], self._ended(run, task, outcome)
        if error is None and not self._state_committed(run, consumer, outcome.get("state_write"), now):
            self.rt.scheduler.at(now, "compensate", {k: v for k, v in task.items() if k != "outcome"})
            return
        if error is None:
            self.rt.publish_outbox(
                run["event"], consumer, outcome["outbox"], end, f"orchestration:{run['orchestration']}"
            )
            run["compensated"].append(cs.step.id)
            run["steps"][cs.step.id]["status"] = "compensated"
        else:
            reason = self.rt.verdict(
                cs.policy.retry, error, number, run["event"], end - run.get("born", end), now, consumer
            )
            if reason is None:
                delay = retry_delays.delay(
                    cs.policy.retry, number, self.rt.seed, identity(run["event"]), consumer
                )
                self.rt.trace.count("retries")
                self.rt.trace.record(
                    now,
                    "retry",
                    event=run["event"]["id"],
                    consumer=consumer,
                    attempt=number,
                    delay=round(delay, 6),
                    error=f"{error['type']}: {error['detail']}",
                )
                self.rt.scheduler.at(
                    now + delay,
                    "compensate",
                    {**{k: v for k, v in task.items() if k != "outcome"}, "number": number + 1,
                     "at": end + delay},
                )
                return
            self.rt.dead_letter(
                consumer,
                run["event"],
                reason,
                error["type"],
                error["detail"],
                attempts=number,
                first=task["first"],
                queue=cs.policy.queue,
            )
        self._compensate_next(run)

    def _finish(self, run: dict, success: bool) -> None:
        on_success, on_failure = self._ends[run["orchestration"]]
        status = "completed" if success else ("compensated" if run.get("compensated") else "failed")
        status = run.get("ending", status)  # cancelled, timed_out
        self.waits.release(run)
        now = self.rt.clock.now()
        at = run.get("last", now)  # the run ends when its last step or compensation ended
        consumer = f"orchestration:{run['orchestration']}/{'on_success' if success else 'on_failure'}"
        attempt = Attempt(
            consumer,
            run["event"],
            1,
            now,
            {**self._context(run), "error": run.get("error")},
            self.rt.mesh.orchestrations[run["orchestration"]].end_may_emit(),
            at=at,
        )
        try:
            if success and self.subruns.wants_result(run):
                run["output"] = self.subruns.result(run, self._context(run))
            self._with_state(run, attempt, on_success if success else on_failure)
            self.rt.trace_outcome(run["event"]["id"], consumer, attempt.outcome(None), now)
            # It commits as it runs: nothing can have written the key since it read it (another
            # worker's write makes the whole unit of work conflict, and it is done again).
            if attempt.state_write is not None:
                self.rt.state.apply(attempt.state_write, now)
        except (ActionFailed, RenderError) as exc:
            error = attempt.outcome(exc)["error"]
            self.rt.dead_letter(
                consumer,
                run["event"],
                "template-error" if error["template"] else "non-retryable",
                error["type"],
                error["detail"],
                attempts=1,
                first=now,
                queue="dlq",
            )
            status = "failed" if success else status
        else:
            self.rt.publish_outbox(
                run["event"],
                consumer,
                [list(x) for x in attempt.outbox],
                at + attempt.elapsed,
                f"orchestration:{run['orchestration']}",
            )
        run["status"] = status
        self.rt.store.retire_state(f"run:{run['id']}", run, now)  # the run reads it no more: out of memory
        if "parent" in run:  # a child run: its parent's step attempt completes
            link = run["parent"]
            waiting = self._steps[link["orchestration"]][link["step"]]
            self.subruns.concluded(run, waiting.step.timeout, waiting.policy.retry.non_retryable)
        self.rt.trace.count(f"runs_{status}")
        took = now - run["started"] if "started" in run else None  # (runs started before it was kept)
        self.rt.trace.run_ended(run["orchestration"], status, took)
        if status != "completed":
            self.rt.trace.run_failed(run["id"], status)
        self.rt.trace.record(
            now,
            "run-end",
            run=run["id"],
            orchestration=run["orchestration"],
            event=run["event"]["id"],
            status=status,
            **({"error": run["error"]} if run.get("error") else {}),
        )

    # --- keyed state ----------------------------------------------------------------------
    def _with_state(self, run: dict, attempt: Attempt, actions: list) -> None:
        """Run *actions*, with the orchestration's keyed state open if it declares one (its key
        rendered on the run's trigger event, so every step of a run has the same key)."""
        keyed = self.rt.state.of.get(f"orchestration:{run['orchestration']}")
        if keyed is None:
            run_actions(actions, attempt)
            return
        keyed.begin(attempt, {"data": run["event"].get("data"), "event": run["event"]}, attempt.now)
        run_actions(actions, attempt)
        keyed.end(attempt)

    def _state_committed(self, run: dict, consumer: str, write: dict | None, now: float) -> bool:
        """Commit an attempt's state write; False (recorded) if its key changed since it was read."""
        if write is None or self.rt.state.apply(write, now):
            return True
        self.rt.trace.count("state_conflicts")
        self.rt.trace.record(now, "state-conflict", event=run["event"]["id"], consumer=consumer,
                             key=write["key"])
        return False

    @staticmethod
    def _ended(run: dict, task: dict, outcome: dict) -> float:
        """The event time a step or compensation attempt ended (its start plus the time it took);
        the run's last end moves up to it."""
        start = task.get("at")
        if start is None:  # a task scheduled before event times were kept: the run's last end
            start = run.get("last", 0.0)
        end = start + outcome["elapsed"]
        run["last"] = max(run.get("last", end), end)
        return end

    # --- redrive ---------------------------------------------------------------------------
    def redrive(self, run_id: str) -> dict:
        """Run a failed run again from its failed step: done steps are not re-run.

        Steps that were compensated had their effects undone, so they run again too. Only
        runs that ended `failed` or `compensated` can be redriven.
        """
        run = self._load(run_id)
        if run is None:
            raise KeyError(run_id)
        if run["status"] not in ("failed", "compensated"):
            raise ValueError(
                f"run {run_id!r} is {run['status']}: only failed or compensated runs can be redriven"
            )
        if "parent" in run:  # its parent waited for it and went on: a redrive of the parent starts a new one
            link = run["parent"]
            raise ValueError(
                f"run {run_id!r} is a child run of {link['run']!r} (step {link['step']!r}): redrive that run"
            )
        for state in run["steps"].values():
            if state["status"] in ("failed", "compensated", "running", "pending", "waiting", "cancelled"):
                state.update(status="pending", output=None)
        run["order"] = [s for s in run["order"] if run["steps"][s]["status"] == "done"]
        for key in ("to_compensate", "compensated", "failed_step", "ending", "compensate"):
            run.pop(key, None)
        run.update(status="running", error=None, in_flight=0, redrives=run.get("redrives", 0) + 1)
        self.rt.trace.count("runs_redriven")
        self.rt.trace.record(
            self.rt.clock.now(),
            "run-redrive",
            run=run_id,
            orchestration=run["orchestration"],
            event=run["event"]["id"],
            rerun=[k for k, v in run["steps"].items() if v["status"] == "pending"],
        )
        self._save(run)
        self.waits.started(run)  # its `timeout` counts again from the redrive
        self._advance(run)
        return run

    # --- what the wait machinery uses (engine/runtime/waits.py) ---------------------------
    def load(self, run_id: str) -> dict | None:
        return self._load(run_id)

    def context_of(self, run: dict) -> dict:
        return self._context(run)

    def fail_run(self, run: dict, step_id: str, detail: str) -> None:
        self._fail_run(run, step_id, detail)

    def advance(self, run: dict) -> None:
        self._advance(run)

    def step_done(self, run: dict, step_id: str, output: Any) -> None:
        """A step that ended outside an attempt (a wait) is done: the run goes on."""
        self._step_done(run, self._steps[run["orchestration"]][step_id], output)
        self._advance(run, (step_id,))

    # --- state ---------------------------------------------------------------------------
    def _consumer_id(self, run: dict, cs: CompiledStep, item: int | None) -> str:
        """Names a step attempt in traces; it also seeds the ids of what the step emits, so a
        redriven run (``#redrive1``...) emits new events instead of repeats that dedup would skip."""
        base = f"orchestration:{run['orchestration']}/{cs.step.id}"
        if run.get("redrives"):
            base += f"#redrive{run['redrives']}"
        return base if item is None or cs.foreach is None else f"{base}[{item}]"

    def _save(self, run: dict) -> None:
        self.rt.store.put_state(f"run:{run['id']}", run)

    def _load(self, run_id: str) -> dict:
        return self.rt.store.get_state(f"run:{run_id}")
