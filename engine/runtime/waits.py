"""Long-running runs: wait steps (an event or a signal), run timeouts and cancellation.

A wait step pauses its run until the first event of its type whose `correlate.event`
renders to what `correlate.run` rendered for the run (and that matches its `match`), or a
signal of its name (``meshctl runs signal``), or its `timeout`. Its output is the event's or
the signal's `data`. An event is not buffered: one that arrives before the run waits for it
is not kept for it (docs/waits.md).

How an event finds its run, with any number of workers: each wait step is a consumer,
``wait:ORCHESTRATION/STEP``, whose deliveries are keyed by the correlation value (so they all
go to one partition); a run that starts waiting sends a ``wait-register`` task to that same
partition, which records the run there (``waiters:<key>``). A delivery finds the runs
waiting for its value and sends each a ``wait-resume`` task to the partition of the run. A
task payload's ``to_key`` (partition of that key) or ``to_partition`` tells a worker where
it goes; ``meshctl run`` has one store and ignores both.

Event time: a wait ends at the awaited event's time (not before it began), at the clock when a
signal arrives, or at its start plus its timeout; a run timeout at the run's start plus it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from ..core import eventtime
from ..language import model as m
from ..language.templates import RenderError, compile_string, compile_value
from .actions import Attempt
from .events import WATERMARK, derived_time
from .watermarks import stamp_of

RUN_SIGNAL = "run-signal"  # a signal for a run (meshctl runs signal, POST /runs/{run}/signals/{name})
RUN_CANCEL = "run-cancel"  # a cancellation of a run (meshctl runs cancel)
ACTIVE = ("running",)  # run statuses a wait, a signal or a cancel can still act on


@dataclass(frozen=True, slots=True)
class WaitTarget:
    """The element of a ``wait:`` consumer: one wait step of one orchestration."""

    orchestration: str
    step: m.Step

    @property
    def id(self) -> str:
        return f"wait:{self.orchestration}/{self.step.id}"


def wait_targets(mesh: m.Mesh) -> list[WaitTarget]:
    """Every wait step on an event, in a stable order (the consumers made of them)."""
    return [WaitTarget(o.name, s) for o in mesh.orchestrations.values() for s in o.steps
            if s.wait is not None and s.wait.event is not None]


def waiting_steps(run: dict) -> list[str]:
    """The steps of *run* waiting now."""
    return [sid for sid, state in run["steps"].items() if state["status"] == "waiting"]


def shown_status(run: dict) -> str:
    """A run's status as commands show it: ``waiting`` for a running run whose only open work
    is wait steps."""
    if run["status"] == "running" and not run.get("in_flight") and waiting_steps(run):
        return "waiting"
    return run["status"]


def signal_problem(run: dict, name: str, by: str | None) -> str | None:
    """Why *run* cannot take signal *name* from *by* now (None: it can). Read from the run alone:
    a waiting step keeps the signal it waits for and who may give it."""
    if run["status"] not in ACTIVE:
        return f"run {run['id']!r} is {run['status']}: it waits for no signal"
    waiting = [run["steps"][sid] for sid in waiting_steps(run)]
    awaited = sorted({s["signal"] for s in waiting if s.get("signal")})
    if name not in awaited:
        now = f"it waits for {', '.join(map(repr, awaited))}" if awaited else "it waits for no signal now"
        return f"run {run['id']!r} is not waiting for signal {name!r}: {now}"
    approvers = next(s.get("approvers") for s in waiting if s.get("signal") == name)
    if approvers and by not in approvers:
        return (f"signal {name!r} of run {run['id']!r} is an approval by one of {', '.join(approvers)}"
                + (f", not {by!r}" if by else ": say who with --by NAME"))
    return None


def cancel_problem(run: dict) -> str:
    return f"run {run['id']!r} is {run['status']}: only a running or waiting run can be cancelled"


class Waits:
    """The wait machinery of an :class:`~engine.runtime.orchestrator.Orchestrator` (its tasks,
    effects and the handlers of the ``wait:`` consumers)."""

    def __init__(self, orchestrator: Any):  # (the Orchestrator, which imports this module)
        self.o = orchestrator
        self.rt = orchestrator.rt
        fast = self.rt.fast_paths
        self._steps: dict[tuple[str, str], m.Wait] = {}
        self._run_keys: dict[tuple[str, str], Callable] = {}
        self._event_keys: dict[str, Callable] = {}
        self._defaults: dict[tuple[str, str], Callable] = {}
        for orch in self.rt.mesh.orchestrations.values():
            for step in orch.steps:
                wait = step.wait
                if wait is None:
                    continue
                self._steps[orch.name, step.id] = wait
                if wait.correlate is not None:
                    self._run_keys[orch.name, step.id] = compile_string(wait.correlate.run, fast)
                    self._event_keys[f"wait:{orch.name}/{step.id}"] = compile_string(
                        wait.correlate.event, fast)
                if wait.default is not None:
                    self._defaults[orch.name, step.id] = compile_value(wait.default, fast)

    # --- the runtime's hooks ----------------------------------------------------------------
    def tasks(self) -> dict[str, Callable[[dict], None]]:
        return {"wait-register": self._register, "wait-unregister": self._unregister,
                "wait-resume": self._resume, "wait-timeout": self._timeout, "run-timeout": self._run_timeout,
                RUN_SIGNAL: self._signal_task, RUN_CANCEL: self._cancel_task}

    def effects(self) -> dict[str, Callable[[dict], None]]:
        return {"wait-event": self._arrived}

    def handler(self, target: WaitTarget) -> Callable[[Attempt], None]:
        """The attempt of a ``wait:`` consumer: the event's correlation value, found at commit."""
        render = self._event_keys[target.id]

        def arrived(attempt: Attempt) -> None:
            value = render({"data": attempt.event.get("data"), "event": attempt.event})
            if value is None or value == "":
                return  # belongs to no run: nothing to resume
            attempt.effects.append(("wait-event", {"key": _key(target.orchestration, target.step.id, value),
                                                   "event": attempt.event}))
        return arrived

    def delivery_key(self, consumer_id: str, event: dict) -> str | None:
        """Where a ``wait:`` consumer's deliveries of *event* go: its correlation key's partition."""
        orchestration, step = consumer_id[len("wait:"):].split("/", 1)
        try:
            value = self._event_keys[consumer_id]({"data": event.get("data"), "event": event})
        except Exception:  # a key that does not render: the attempt reports it, wherever it runs
            return None
        return None if value is None or value == "" else _key(orchestration, step, value)

    # --- a run starts, a wait starts ------------------------------------------------------
    def started(self, run: dict) -> None:
        """Start the clock of the run's `timeout`, if its orchestration has one."""
        timeout = self.rt.mesh.orchestrations[run["orchestration"]].timeout
        if timeout is not None:
            # "at": no event the timeout makes is earlier than the run's start (watermarks.py)
            self.rt.scheduler.at(self.rt.clock.now() + timeout, "run-timeout",
                                 {"run": run["id"], "at": run["at"]})

    def begin(self, run: dict, step: m.Step) -> None:
        """The wait step *step* of *run* starts waiting (its `when` held)."""
        wait, state, now = step.wait, run["steps"][step.id], self.rt.clock.now()
        state["status"] = "waiting"
        what: dict[str, Any] = {"signal": wait.signal} if wait.signal else {"event": wait.event.name}
        if wait.signal:  # kept in the run: who may signal it is known without the mesh
            state["signal"] = wait.signal
            if wait.approvers:
                state["approvers"] = list(wait.approvers)
        if wait.correlate is not None:
            try:
                value = self._run_keys[run["orchestration"], step.id](self.o.context_of(run))
            except RenderError as exc:  # (the advance that began it goes on: no advance of its own)
                self._fail(run, step.id, f"TemplateError: {exc}", compensate=True, advance=False)
                return
            if value is None or value == "":
                self._fail(run, step.id, "TemplateError: `correlate.run` rendered nothing to correlate on",
                           compensate=True, advance=False)
                return
            key = state["key"] = _key(run["orchestration"], step.id, value)
            what["correlate"] = value
            self.rt.scheduler.at(now, "wait-register", {"key": key, "run": run["id"], "step": step.id,
                                                         "home": self._home(), "to_key": key})
        if wait.timeout is not None:
            state["until"] = eventtime.format(state["begin"] + wait.timeout)
            self.rt.scheduler.at(now + wait.timeout, "wait-timeout",
                                 {"run": run["id"], "step": step.id, "at": state["begin"] + wait.timeout})
        self.rt.trace.record(now, "wait-start", run=run["id"], orchestration=run["orchestration"],
                             step=step.id, **what)

    def _home(self) -> int | None:
        """The partition of the unit running now (a deployment's), where the run lives."""
        return getattr(self.rt.store, "partition", None)

    # --- the index of waiting runs, in the partition of their correlation key ----------------
    def _register(self, task: dict) -> None:
        name = f"waiters:{task['key']}"
        waiters = [w for w in self.rt.store.get_state(name) or [] if w["run"] != task["run"]]
        self.rt.store.put_state(name, [*waiters, {"run": task["run"], "step": task["step"],
                                                  "home": task["home"]}])

    def _unregister(self, task: dict) -> None:
        name = f"waiters:{task['key']}"
        waiters = self.rt.store.get_state(name)
        if waiters is None:
            return
        left = [w for w in waiters if w["run"] != task["run"]]
        if left:
            self.rt.store.put_state(name, left)
        else:
            self.rt.store.delete_state(name)

    def _arrived(self, payload: dict) -> None:
        """An awaited event, committed by its ``wait:`` consumer: every run waiting for its key
        resumes (each in its own partition); the event is not kept for runs that wait later."""
        name, event, now = f"waiters:{payload['key']}", payload["event"], self.rt.clock.now()
        waiters = self.rt.store.get_state(name) or []
        if not waiters:
            self.rt.trace.record(now, "wait-unmatched", event=event["id"], type=event["type"],
                                 key=payload["key"])
            return
        self.rt.store.delete_state(name)
        for w in waiters:
            self.rt.scheduler.at(now, "wait-resume", {
                "run": w["run"], "step": w["step"], "to_partition": w["home"], "output": event.get("data"),
                "received": {"event": event["id"], "source": event.get("source"), "type": event["type"],
                             "time": event.get("time")},
                "at": derived_time(event, 0.0, now), WATERMARK: event.get(WATERMARK)})

    # --- a wait ends --------------------------------------------------------------------------
    def _resume(self, task: dict) -> None:
        run = self.o.load(task["run"])
        if run is None or run["status"] not in ACTIVE or run["steps"][task["step"]]["status"] != "waiting":
            return  # it ended, timed out or was cancelled meanwhile: the event is not for it any more
        stamp = task.get(WATERMARK)
        if stamp is not None and stamp_of({WATERMARK: stamp}) > stamp_of(run["event"]):
            # what the run makes from now on follows the awaited event, whose partition had got
            # this far: judged late by it (docs/streams.md, "Windows fed by the mesh's own events")
            run["event"] = {**run["event"], WATERMARK: stamp}
        self._complete(run, task["step"], task["output"], task["at"], {"received": task["received"]}, "event")

    def signal(self, run_id: str, name: str, data: Any = None, by: str | None = None) -> dict:
        """Deliver signal *name* to the run now; ValueError if it does not wait for it."""
        run = self.o.load(run_id)
        if run is None:
            raise KeyError(run_id)
        problem = signal_problem(run, name, by)
        if problem is not None:
            raise ValueError(problem)
        self._signal_task({"run": run_id, "name": name, "data": data, "by": by})
        return self.o.load(run_id)

    def _signal_task(self, task: dict) -> None:
        run, now = self.o.load(task["run"]), self.rt.clock.now()
        problem = "no such run" if run is None else signal_problem(run, task["name"], task.get("by"))
        if problem is not None:  # it changed since the signal was sent: say so, nothing else
            self.rt.trace.record(now, "signal-refused", run=task["run"], signal=task["name"], why=problem)
            return
        sid = next(s for s in waiting_steps(run) if run["steps"][s].get("signal") == task["name"])
        at = task.get("at", now)
        record = {"signal": task["name"], "by": task.get("by"), "at": eventtime.format(at)}
        end = max(at, run["steps"][sid].get("begin", at))
        self._complete(run, sid, {**record, "data": task.get("data")}, end, {"received": record}, "signal")

    def _timeout(self, task: dict) -> None:
        run = self.o.load(task["run"])
        if run is None or run["status"] not in ACTIVE or run["steps"][task["step"]]["status"] != "waiting":
            return
        sid, state = task["step"], run["steps"][task["step"]]
        wait = self._steps[run["orchestration"], sid]
        end = state["begin"] + wait.timeout
        if wait.on_timeout == "continue":
            default = self._defaults.get((run["orchestration"], sid))
            try:
                output = default(self.o.context_of(run)) if default is not None else None
            except RenderError as exc:
                self._fail(run, sid, f"TemplateError: {exc}", compensate=True, end=end)
                return
            self._complete(run, sid, output, end, {"timed_out": True}, "timeout")
            return
        self._forget(run, sid)
        self._fail(run, sid, f"WaitTimeout: step {sid!r} waited longer than {wait.timeout:g}s",
                   compensate=wait.on_timeout == "compensate", end=end)

    def _complete(self, run: dict, sid: str, output: Any, end: float, record: dict, how: str) -> None:
        state = run["steps"][sid]
        self._forget(run, sid)
        state.update(record, end=end)
        run["last"] = max(run.get("last", end), end)
        self.rt.trace.record(self.rt.clock.now(), "wait-end", run=run["id"],
                             orchestration=run["orchestration"], step=sid, by=how)
        self.o.step_done(run, sid, output)

    def _forget(self, run: dict, sid: str) -> None:
        """The wait of step *sid* is over: take the run out of its key's index."""
        key = run["steps"][sid].pop("key", None)
        if key is not None:
            self.rt.scheduler.at(self.rt.clock.now(), "wait-unregister", {"key": key, "run": run["id"],
                                                                          "to_key": key})

    def _fail(self, run: dict, sid: str, detail: str, compensate: bool, end: float | None = None,
              advance: bool = True) -> None:
        state = run["steps"][sid]
        state["status"] = "failed"
        if end is not None:
            state["end"] = end
            run["last"] = max(run.get("last", end), end)
        self.o.fail_run(run, sid, detail)
        run["compensate"] = compensate
        if advance:
            self.o.advance(run)

    # --- the run as a whole: its timeout, a cancel, its end ---------------------------------
    def _run_timeout(self, task: dict) -> None:
        run = self.o.load(task["run"])
        if run is None or run["status"] not in ACTIVE:
            return
        orch = self.rt.mesh.orchestrations[run["orchestration"]]
        end = run["at"] + orch.timeout
        run["last"] = max(run.get("last", end), end)
        self._stop(run, "timed_out", f"run timed out after {orch.timeout:g}s",
                   orch.on_timeout == "compensate")

    def cancel(self, run_id: str, compensate: bool, by: str | None = None) -> dict:
        """Cancel the run now; ValueError if it has ended (or is ending)."""
        run = self.o.load(run_id)
        if run is None:
            raise KeyError(run_id)
        if run["status"] not in ACTIVE:
            raise ValueError(cancel_problem(run))
        self._cancel_task({"run": run_id, "compensate": compensate, "by": by})
        return self.o.load(run_id)

    def _cancel_task(self, task: dict) -> None:
        run = self.o.load(task["run"])
        if run is None or run["status"] not in ACTIVE:
            self.rt.trace.record(self.rt.clock.now(), "cancel-refused", run=task["run"],
                                 why="no such run" if run is None else f"run is {run['status']}")
            return
        by, now = task.get("by"), self.rt.clock.now()
        run["last"] = max(run.get("last", now), now)  # undone and reported when it was cancelled
        self._stop(run, "cancelled", "cancelled" + (f" by {by}" if by else ""), bool(task.get("compensate")))

    def _stop(self, run: dict, ending: str, why: str, compensate: bool) -> None:
        """End *run* early: no step starts any more, those in flight finish, then its completed
        steps are compensated (if *compensate*), `on_failure` runs and it ends *ending*."""
        for sid in waiting_steps(run):
            self._forget(run, sid)
            run["steps"][sid]["status"] = "cancelled"
        run.update(status="failing", ending=ending, error=why, compensated=[], compensate=compensate)
        self.rt.trace.record(self.rt.clock.now(), f"run-{ending.replace('_', '-')}", run=run["id"],
                             orchestration=run["orchestration"], compensate=compensate)
        for child in self.o.subruns.children(run):  # its child runs in flight stop with it (subruns.py)
            if (self.o.load(child) or {}).get("status") in ACTIVE:
                self._cancel_task({"run": child, "compensate": compensate, "by": f"parent run {run['id']}"})
        self.o.advance(run)

    def release(self, run: dict) -> None:
        """The run ends: steps still waiting (another step failed) wait no more."""
        for sid in waiting_steps(run):
            self._forget(run, sid)
            run["steps"][sid]["status"] = "cancelled"


def _key(orchestration: str, step: str, value: Any) -> str:
    """The correlation key of a wait step and a value: its partition and its index's name."""
    return f"{orchestration}/{step}={value}"
