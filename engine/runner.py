"""Running a mesh from files: the engine side of `meshctl run` and `meshctl dlq replay`.

Opens the sinks (trace, emitted events, dead-letter file), drives a :class:`Runtime` over an
input file, and returns what the CLI prints.
"""
from __future__ import annotations

import contextlib
import json
import re
from dataclasses import dataclass, field
from typing import Callable, Iterable

from .errors import Diagnostic, LoadError, Location, UsageError
from .model import Mesh
from .runtime.deadletter import DeadLetter
from .runtime.events import read_events
from .runtime.interpreter import DEFAULT_MAX_HOPS, Fault, Runtime
from .runtime.trace import Trace
from .storage import MemoryStore

_FAULT = re.compile(r"^(?P<consumer>[^=]+?)(?:=(?P<times>always|\d+)(?::(?P<error>[A-Za-z_][A-Za-z0-9_.]*))?)?$")


@dataclass
class RunOptions:
    seed: int = 0
    http: str = "simulate"
    faults: list[Fault] = field(default_factory=list)
    max_hops: int = DEFAULT_MAX_HOPS
    trace_path: str | None = None
    output_path: str | None = None
    dlq_path: str | None = None


def parse_fault(text: str, known: Iterable[str]) -> Fault:
    """``CONSUMER[=TIMES|always][:ERROR]``, e.g. ``service:score-service/score.recorded=3:TimeoutError``."""
    found = _FAULT.match(text.strip())
    known = sorted(known)
    if not found or found.group("consumer") not in known:
        raise UsageError(f"--fault {text!r}: expected CONSUMER[=TIMES|always][:ERROR] with CONSUMER one of: "
                         + ", ".join(known))
    times = found.group("times")
    return Fault(found.group("consumer"), None if times in (None, "always") else int(times),
                 found.group("error") or "InjectedFault")


def consumer_ids(mesh: Mesh) -> list[str]:
    from .runtime.consumers import build_consumers

    return [c.id for c in build_consumers(mesh)]


def run_mesh(mesh: Mesh, events_path: str, options: RunOptions,
             progress: Callable[[Iterable], Iterable] | None = None) -> tuple[dict, list[DeadLetter]]:
    """Run the mesh on an event file; returns the summary and the dead letters."""
    with _sinks(options) as (trace, on_emit):
        runtime = Runtime(mesh, store=MemoryStore(), seed=options.seed, http=options.http, faults=options.faults,
                          max_hops=options.max_hops, trace=trace, on_emit=on_emit)
        items = read_events(events_path)
        summary = runtime.run(progress(items) if progress else items)
    dead = runtime.store.dead_letters()
    if options.dlq_path:
        write_dead_letters(options.dlq_path, dead)
    return summary, dead


def replay_dead_letters(mesh: Mesh, dlq_path: str, select: Callable[[DeadLetter], bool],
                        options: RunOptions) -> tuple[dict, list[DeadLetter]]:
    """Redeliver the selected dead letters of a DLQ file; the file keeps the others and the ones that failed again."""
    records = read_dead_letters(dlq_path)
    chosen = [r for r in records if select(r)]
    store = MemoryStore()
    for record in records:
        store.put_dead_letter(record)
    with _sinks(options) as (trace, on_emit):
        runtime = Runtime(mesh, store=store, seed=options.seed, http=options.http, faults=options.faults,
                          max_hops=options.max_hops, trace=trace, on_emit=on_emit)
        result = runtime.replay(chosen)
    remaining = store.dead_letters()
    write_dead_letters(dlq_path, remaining)
    return {**result, **runtime.trace.summary()}, remaining


@contextlib.contextmanager
def _sinks(options: RunOptions):
    with contextlib.ExitStack() as stack:
        trace_file = stack.enter_context(_open(options.trace_path)) if options.trace_path else None
        out_file = stack.enter_context(_open(options.output_path)) if options.output_path else None
        on_emit = (lambda event: out_file.write(json.dumps(event) + "\n")) if out_file else None
        yield Trace(trace_file), on_emit


def _open(path: str):
    try:
        return open(path, "w", encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from exc


def write_dead_letters(path: str, records: list[DeadLetter]) -> None:
    with _open(path) as fh:
        for record in records:
            fh.write(json.dumps(record.as_dict(), default=str) + "\n")


def read_dead_letters(path: str) -> list[DeadLetter]:
    """Dead letters from a JSON Lines file written by ``--dlq-out``; bad lines are located errors."""
    records, problems = [], []
    try:
        with open(path, encoding="utf-8") as fh:
            for number, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    records.append(DeadLetter.from_dict(json.loads(line)))
                except (ValueError, TypeError, KeyError) as exc:
                    problems.append(Diagnostic(Location(path, number, 1), "bad-dead-letter",
                                               f"not a dead-letter record: {exc}"))
    except OSError as exc:
        raise LoadError([Diagnostic(Location(path), "bad-dead-letter", f"cannot read: {exc.strerror or exc}")]) from exc
    if problems:
        raise LoadError(problems)
    return records
