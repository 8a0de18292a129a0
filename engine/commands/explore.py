"""`meshctl explore` and `meshctl run --replay-choices`: search a mesh's executions for one that
breaks a declared invariant; make a found one again, exactly.

:func:`explore` reads the input, searches (engine.explore.search), minimises the first
violation and writes it as a counterexample trace (and, if asked, as a `meshctl test` file);
the CLI prints :func:`report_lines`. :func:`replay` runs the mesh once through the choices of
a file. Both judge runs by the mesh's `Check` invariants (engine.runtime.invariants).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Callable

from ..core.errors import UsageError, printable
from ..explore import counterexample
from ..explore.minimize import Minimal, minimize
from ..explore.search import Bounds, Report, search
from ..explore.session import Outcome, Session
from ..language.build import parse_duration
from ..language.model import Mesh
from ..runtime.events import read_events
from ..runtime.invariants import Invariants, state_of

# the trace records a counterexample's story tells, each as one short line
STORY: dict[str, Callable[[dict], str]] = {
    "ingest": lambda r: f"input {r.get('type')} {r.get('event')}",
    "choice": lambda r: f"** {r.get('why')}",
    "crash": lambda r: (f"{r.get('consumer')} crashes after its effects; taken again at "
                        f"{str(r.get('retake'))[11:19]}"),
    "duplicate": lambda r: f"{r.get('consumer')} gets {r.get('event')} twice",
    "retry": lambda r: f"{r.get('consumer')} retries in {r.get('delay')}s ({r.get('error')})",
    "emit": lambda r: f"{r.get('by')} emits {r.get('type')}",
    "dead-letter": lambda r: f"{r.get('consumer')} dead-letters {r.get('event')} ({r.get('reason')})",
    "step-failed": lambda r: f"run {r.get('run')}: step {r.get('step')} fails ({r.get('error')})",
    "compensate": lambda r: f"run {r.get('run')}: compensates step {r.get('step')}",
    "run-end": lambda r: f"run {r.get('run')} ends {r.get('status')}",
    "window": lambda r: f"{r.get('consumer')} closes window {r.get('key')} ending {r.get('end')}",
}


@dataclass
class Exploration:
    report: Report
    inputs: int
    minimal: Minimal | None = None
    written: list[str] = field(default_factory=list)


def judge_of(mesh: Mesh) -> Callable:
    """The mesh's invariants as a judge of explored runs; a UsageError if it declares none."""
    invariants = Invariants(mesh)
    if not invariants.declared:
        raise UsageError("the mesh declares no invariants, so no run can break one: add a `kind: Check` "
                         "(docs/invariants.md) and explore again")
    return _judge(invariants)


def _judge(invariants: Invariants) -> Callable:
    """A session's judge: the violations of a run's history and final state."""
    return lambda history, end, store: invariants.check(history, end, state_of(store, end))


def read_input(events_path: str) -> list:
    return list(read_events(events_path))


def explore(mesh: Mesh, mesh_path: str, events_path: str | None, bounds: Bounds, *, out: str | None,
            test_path: str | None, clock: dict | None = None,
            progress: Callable[[Report], None] | None = None) -> Exploration:
    """Search; on a violation, minimise it and write the counterexample to *out* (and a test file).
    *clock*: ``start``, ``until``, ``span`` of `--from` and `--until` (a mesh's schedules)."""
    judge = judge_of(mesh)
    if test_path is not None and clock:
        raise UsageError("--write-test: a `meshctl test` case has no --from/--until yet; keep the "
                         "counterexample file and replay it with `run --replay-choices`")
    inputs = read_input(events_path) if events_path is not None else []
    clock = {key: value for key, value in (clock or {}).items() if value is not None}
    session = Session(mesh, inputs, judge, seed=bounds.seed, clock=clock)
    report = search(session, bounds, progress=progress)
    result = Exploration(report, len(inputs))
    if report.found is None:
        return result
    result.minimal = minimal = minimize(session, report.found)
    if out is not None:
        _write(out, "\n".join(counterexample.lines(mesh_path, minimal, bounds.seed, clock)) + "\n")
        result.written.append(out)
    if test_path is not None:
        first = minimal.outcome.violations[0]
        title = f"explore: {first.check}/{first.invariant} holds"
        here = os.path.relpath(os.path.abspath(mesh_path), os.path.dirname(os.path.abspath(test_path)))
        _write(test_path, counterexample.regression_test(minimal, title, out or events_path, here))
        result.written.append(test_path)
    return result


def replay(mesh: Mesh, events_path: str | None, choices_path: str, seed: int,
           trace_path: str | None) -> tuple[Outcome, counterexample.Choices]:
    """One run through the deviations of *choices_path*, on *events_path* or the events the file keeps."""
    choices = counterexample.read_choices(choices_path)
    if events_path is None and choices.events is None:
        raise UsageError(f"{choices_path} keeps no events: give --events FILE")
    inputs = read_input(events_path) if events_path is not None else choices.events
    invariants = Invariants(mesh)
    session = Session(mesh, inputs, _judge(invariants), seed=seed, clock=choices.clock)
    outcome = session.run(choices.deviations, records=trace_path is not None)
    if invariants.declared:  # the summary line `meshctl run` prints
        broken = {(v.check, v.invariant) for v in outcome.violations}
        outcome.summary["invariants"] = {"checked": invariants.declared, "violated": len(broken)}
    if trace_path is not None:
        _write(trace_path, "".join(json.dumps(r, default=str) + "\n" for r in outcome.records or ()))
    return outcome, choices


def replay_lines(outcome: Outcome) -> list[str]:
    """What the replay did with its choices, for stderr."""
    lines = [f"replayed {len(outcome.taken)} of {len(outcome.asked)} choices"]
    missed = [d for d in outcome.asked if d not in outcome.taken]
    lines += [f"  not met: {printable(d.describe())}" for d in missed]
    return lines


def violation_lines(violations: list) -> list[str]:
    out = []
    for v in violations:
        key = f" [key {v.key}]" if v.key is not None else ""
        out.append(printable(f"{v.loc}: invariant violated: {v.check}/{v.invariant}{key}: {v.message}"))
    return out


def report_lines(mesh_path: str, result: Exploration) -> list[str]:
    report, bounds = result.report, result.report.bounds
    levels = ", ".join(f"{n}: {count:,}" for n, count in enumerate(report.per_level))
    lines = [f"explored {_count(report.runs, 'run')} ({levels} by deviations) in {report.elapsed:.1f} s, "
             f"{report.per_second:,.0f} runs/s",
             f"  {report.states:,} distinct states at choice points; {_count(report.cut, 'run')} cut short "
             "at a state already explored"]
    lines.append("coverage: " + _coverage(report))
    if result.minimal is None:
        lines.append(f"no invariant broken within depth {bounds.depth}")
        return lines
    minimal, found = result.minimal, report.found
    lines += ["", *violation_lines(minimal.outcome.violations), ""]
    choices = _count(len(minimal.deviations), "choice")
    lines.append(f"counterexample, minimised in {minimal.tries} runs: {choices} (found with "
                 f"{len(found.taken)}), {len(minimal.inputs)} of {result.inputs} inputs")
    lines += [f"  {n}. {printable(d.describe())}" for n, d in enumerate(minimal.deviations, 1)]
    lines.append("the run:")
    lines += ["  " + line for line in story(minimal.outcome.records or [])]
    for path in result.written:
        if path.endswith((".yaml", ".yml")):
            lines.append(f"regression test: {path}  (meshctl test {path})")
        else:
            lines += [f"trace: {path}",
                      f"  draw it:   meshctl render --trace {path} --format html -o counterexample.html",
                      f"  replay it: meshctl run {mesh_path} --replay-choices {path}"]
    return lines


def story(records: list[dict]) -> list[str]:
    """The records of a run that tell what happened, one short line each, with the clock time."""
    return [printable(f"{str(r.get('t', ''))[11:19]}  {STORY[r['kind']](r)}") for r in records
            if r.get("kind") in STORY]


def parse_budget(text: str) -> float:
    """``--time``: a duration (``30s``, ``5m``) of at least a second."""
    try:
        seconds = parse_duration(text)
    except (ValueError, TypeError):
        raise UsageError(f"--time {text!r}: give a duration such as 30s, 5m or 1h") from None
    if seconds < 1:
        raise UsageError(f"--time {text!r}: at least 1s")
    return seconds


def _coverage(report: Report) -> str:
    depth = report.bounds.depth
    if report.exhausted:
        return f"every run within depth {depth} (100%)"
    known = report.runs + report.waiting
    why = {"runs": "--max-runs reached", "time": "--time spent", "violation": "stopped at the violation"}
    sampled = "; the last level in random order" if report.sampled else ""
    return (f"{report.coverage:.1%} of the {known:,} runs found within depth {depth} "
            f"({why.get(report.stopped_by, report.stopped_by)}{sampled})")


def _count(n: int, word: str) -> str:
    return f"{n:,} {word}" + ("" if n == 1 else "s")


def _write(path: str, text: str) -> None:
    try:
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(text)
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None


def default_out(mesh_path: str) -> str:
    """Where a counterexample goes unless --counterexample says: named after the mesh, here."""
    name = os.path.basename(os.path.normpath(mesh_path)) or "mesh"
    return f"{os.path.splitext(name)[0]}.counterexample.jsonl"
