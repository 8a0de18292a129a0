"""Running a mesh from files: the engine side of `meshctl run` and `meshctl dlq replay`.

Opens the sinks (trace, emitted events, dead-letter file), drives a :class:`Runtime` over an
input file, and returns what the CLI prints.
"""
from __future__ import annotations

import contextlib
import gc
import hashlib
import itertools
import json
import math
import re
from dataclasses import dataclass, field, replace
from typing import Callable, Iterable, Iterator

from ..cluster.deployment import (
    REPLAY,
    RUN_CANCEL,
    RUN_REDRIVE,
    commit_changes,
    is_deployment,
    queue_redrive,
    queue_tasks,
    signal_deployment_run,
)
from ..cluster.otel import Spans, tracing
from ..core import eventjson
from ..core.deadletter import REASONS as REASONS  # re-exported: `dlq --reason` choices
from ..core.deadletter import DeadLetter
from ..core.errors import Diagnostic, LoadError, Location, RunStateError, UsageError, did_you_mean
from ..core.eventtime import format as iso
from ..core.eventtime import parse, parse_or_none
from ..core.identity import identity
from ..language.admission import refused_input
from ..language.build import parse_duration
from ..language.model import DEFAULT_RETENTION, Mesh, Retention
from ..language.patterns import PatternError, compile_pattern
from ..runtime.consumers import build_consumers
from ..runtime.events import BadInput, read_events, read_located_events
from ..runtime.interpreter import DEFAULT_MAX_HOPS, Fault, Runtime
from ..runtime.invariants import History, Invariants, Violation, state_of
from ..runtime.trace import JournalSink, Trace
from ..runtime.waits import ACTIVE, cancel_problem, signal_problem
from ..runtime.waits import shown_status as shown_status  # re-exported: `runs list|show`
from ..storage import MemoryStore, open_store

_FAULT_REST = re.compile(r"^(?:=(?P<times>always|\d+))?(?::(?P<error>[A-Za-z_][A-Za-z0-9_.]*))?$")


@dataclass
class RunOptions:
    seed: int = 0
    http: str = "simulate"
    faults: list[Fault] = field(default_factory=list)
    max_hops: int = DEFAULT_MAX_HOPS
    trace_path: str | None = None
    output_path: str | None = None
    dlq_path: str | None = None
    store: str | None = None  # memory: (default) or sqlite:PATH
    resume: bool = False
    checkpoint_every: int = 1000  # inputs between durable commits
    log: Callable[[str], None] | None = None  # what the user should know of the run (the CLI: stderr)
    refused: Callable[[Diagnostic], None] | None = None  # told of each input record dead-lettered at entry
    strict_input: bool = False  # refused input records are errors (else warnings): the CLI exits 1
    start: float | None = None  # `--from`: where the virtual clock starts (else the first input's time)
    until: float | None = None  # `--until` TIME: schedules fire their ticks before it
    span: float | None = None  # `--until` DURATION: ... for so long from the clock's start
    rate: float | None = None  # replays: events per second (--rate), None for all at once
    violated: Callable[[Violation], None] | None = None  # told of each invariant a run breaks (`kind: Check`)

    @property
    def spacing(self) -> float:
        """Seconds between two replayed events (0: all at once)."""
        return 0.0 if self.rate is None else 1.0 / self.rate


_RATE = re.compile(r"^\s*(?P<n>\d+(?:\.\d+)?)\s*/\s*(?P<per>s|m|h)\s*$")
_PER = {"s": 1.0, "m": 60.0, "h": 3600.0}
MAX_RATE = 1_000_000.0  # events per second
LONGEST_GAP = 86400.0  # a rate slower than one a day is a mistake, not a throttle


def parse_rate(text: str) -> float:
    """``--rate N/s``, ``N/m`` or ``N/h`` as events per second; ValueError says what is wrong.

    >>> parse_rate("5/s"), parse_rate("30/m"), parse_rate("0.5/s")
    (5.0, 0.5, 0.5)
    """
    found = _RATE.match(text)
    if found is None:
        raise ValueError(f"{text!r} is not a rate: give N/s, N/m or N/h (events per second, minute or "
                         "hour), e.g. 5/s")
    per_second = float(found.group("n")) / _PER[found.group("per")]
    if per_second <= 0:
        raise ValueError(f"{text!r}: the rate must be above 0")
    if per_second > MAX_RATE:
        raise ValueError(f"{text!r}: at most {MAX_RATE:,.0f}/s")
    if 1.0 / per_second > LONGEST_GAP:
        raise ValueError(f"{text!r}: at least 1 event a day (1/h is 24 a day)")
    return per_second


def parse_fault(text: str, known: Iterable[str]) -> Fault:
    """``CONSUMER[=TIMES|always][:ERROR]``, e.g. ``service:score-service/score.recorded=3:TimeoutError``.

    Consumer ids contain ``:`` themselves, so the longest known id that prefixes the text wins.
    """
    text, known = text.strip(), sorted(known)
    for consumer in sorted(known, key=len, reverse=True):
        found = _FAULT_REST.match(text[len(consumer):]) if text.startswith(consumer) else None
        if found:
            times = found.group("times")
            return Fault(
                consumer,
                None if times in (None, "always") else int(times),
                found.group("error") or "InjectedFault",
            )
    raise UsageError(
        f"--fault {text!r}: expected CONSUMER[=TIMES|always][:ERROR]" + _fault_problem(text, known)
    )


def _fault_problem(text: str, known: list[str]) -> str:
    """What is wrong with a --fault that names no consumer, or names one and then something else."""
    named = text.split("=", 1)[0]  # the consumer, when =TIMES follows it
    if named in known:
        return f"; after {named!r}, {text[len(named) :]!r} is not =TIMES|always[:ERROR]"
    error = re.search(r":[A-Za-z_][A-Za-z0-9_.]*$", named)  # an :ERROR without =TIMES, perhaps
    for candidate in ([named[: error.start()]] if error else []) + [named]:
        hint = did_you_mean(candidate, known)
        if hint:
            return f"; no consumer {candidate!r}: {hint}"
    return " with CONSUMER one of: " + ", ".join(known)


def faults_for(mesh: Mesh, texts: Iterable[str]) -> list[Fault]:
    """``--fault`` options, checked against the mesh's consumers and steps (listed once)."""
    known = consumer_ids(mesh) if texts else []
    return [parse_fault(text, known) for text in texts]


def consumer_ids(mesh: Mesh) -> list[str]:
    """Everything a fault can target: each consumer, and each orchestration step."""
    steps = [f"orchestration:{o.name}/{s.id}" for o in mesh.orchestrations.values() for s in o.steps]
    return [c.id for c in build_consumers(mesh)] + steps


def run_mesh(
    mesh: Mesh, events_path: str | None, options: RunOptions,
    progress: Callable[[Iterable], Iterable] | None = None,
) -> tuple[dict, list[DeadLetter]]:
    """Run the mesh on an event file (None: no input, only its schedules); returns the summary
    and the dead letters.

    With a durable store, effects and the input position are committed together every
    ``checkpoint_every`` inputs; ``resume`` continues from the last commit after a crash.
    Outputs (trace, emitted events, dead letters) are then exported from the store at the
    end, so they hold each record exactly once however often the run was interrupted.
    """
    store = open_store(options.store, _retention(mesh, options))
    durable = not isinstance(store, MemoryStore)
    snapshot = store.checkpoint()
    if options.resume and not durable:
        raise UsageError("--resume needs a durable store: add --store sqlite:PATH")
    if snapshot is not None and not options.resume:
        raise UsageError(
            f"store {options.store} already holds a run ({snapshot['fed']} inputs read): "
            "add --resume to continue it, or use a new file"
        )
    # A durable run keeps its trace in the store only if it was asked for from the start:
    # journaling every record costs more than the rest of a commit.
    journal = _keeps_trace(snapshot) if snapshot else bool(options.trace_path)
    if durable and options.trace_path and not journal:
        raise UsageError(f"the run in {options.store} was started without --trace, so its trace was not kept")
    with _sinks(options, None if durable else (options.trace_path, options.output_path)) as (trace, on_emit):
        if durable:
            trace = Trace(JournalSink(store) if journal else None)
        runtime = _runtime(mesh, store, options, trace, on_emit)
        history = _history(mesh, runtime, options, resumed=snapshot is not None)
        if snapshot is not None:
            runtime.restore(snapshot)
        else:
            _start(runtime, events_path, options)
        runtime.notes["journal_trace"] = journal
        start, finished = runtime.fed, runtime.finished
        if not runtime.finished:
            with _frozen_heap():
                _feed(
                    runtime,
                    store if durable else None,
                    itertools.islice(_inputs_of(events_path, runtime, options), runtime.fed, None)
                    if events_path is not None else (),
                    options.checkpoint_every,
                    progress,
                )
    if options.resume and options.log:
        options.log(_resumed(options.store, snapshot, start, finished, runtime.fed))
    if durable:
        _export(store, options)
    dead = store.dead_letters()
    if options.dlq_path:
        write_dead_letters(options.dlq_path, dead)
    summary = runtime.trace.summary()
    if history is not None:
        summary["invariants"] = judge_run(mesh, history, runtime, options.violated, options.log)
    return summary, dead


def _history(mesh: Mesh, runtime: Runtime, options: RunOptions, resumed: bool) -> History | None:
    """The history the mesh's invariants are judged on, collected from the start of the run; None
    when the mesh declares none, or for a resumed run (what came before the crash is not kept)."""
    if not mesh.checks:
        return None
    if resumed:
        if options.log:
            options.log("invariants not checked: a resumed run does not have the history of what "
                        "happened before it was interrupted")
        return None
    history = History(Invariants(mesh).types, HISTORY_LIMIT)
    history.follow(runtime)
    return history


HISTORY_LIMIT = 20_000  # events of the types invariants read that `run` keeps to judge them


def judge_run(mesh: Mesh, history: History, runtime: Runtime,
              told: Callable[[Violation], None] | None = None,
              log: Callable[[str], None] | None = None) -> dict:
    """Judge the mesh's invariants on a finished run: ``{"checked": N, "violated": M}``, M the
    invariants broken; *told* hears each violation. A run whose history overflowed is not
    judged: ``{"checked": 0, "violated": 0, "not_judged": N}``, and *log* says why."""
    invariants = Invariants(mesh)
    if history.overflowed:
        if log is not None:
            log(f"invariants not checked: the run had more than {HISTORY_LIMIT:,} events of the types "
                "they read, and keeping them all would make its memory grow with the input; judge a "
                "sample with `meshctl test` or `meshctl explore` (docs/invariants.md)")
        return {"checked": 0, "violated": 0, "not_judged": invariants.declared}
    now = runtime.clock.now()
    violations = invariants.check(history.records, now, state_of(runtime.store, now))
    for violation in violations if told is not None else ():
        told(violation)
    broken = {(v.check, v.invariant) for v in violations}
    return {"checked": invariants.declared, "violated": len(broken)}


def _start(runtime: Runtime, events_path: str | None, options: RunOptions) -> None:
    """Bound the schedules' ticks (``--until``), and start the virtual clock now if ``--from``
    says where, or if no input will (a run of schedules alone starts at the default start)."""
    runtime.schedules.limit(options.until, options.span)
    if options.start is not None or events_path is None:
        runtime.start_clock(options.start)


def _inputs_of(path: str, runtime: Runtime, options: RunOptions) -> Iterator[dict | BadInput]:
    """The input records of *path*; each the runtime refuses at entry (not an event, an undeclared
    type, data against its schema) is told to ``options.refused`` with its place in the file."""
    if options.refused is None:
        yield from read_events(path)
        return
    where: list[Location] = [Location(path)]
    severity = "error" if options.strict_input else "warning"
    runtime.on_refused = lambda problem: options.refused(refused_input(where[0], problem, severity))
    for where[0], item in read_located_events(path):
        yield item


def _resumed(store: str, snapshot: dict | None, start: int, finished: bool, fed: int) -> str:
    """What `--resume` did: started afresh, carried on from an input position, or found nothing left."""
    if snapshot is None:
        return f"nothing to resume in {store} (no run committed yet): started from the first input"
    if finished:
        return (
            f"the run in {store} had already finished ({_inputs(start)} read): nothing was left to do; "
            "the summary is the whole run's"
        )
    if fed == start:
        return (
            f"resumed the run in {store} after its last input ({start:,}): finished the work still pending "
            "(retries, timers, windows); the summary is the whole run's"
        )
    return (
        f"resumed the run in {store} after input {start:,}: read the {_inputs(fed - start)} left "
        f"({fed:,} in all); the summary is the whole run's"
    )


def _inputs(n: int) -> str:
    return f"{n:,} input" + ("" if n == 1 else "s")


def _keeps_trace(checkpoint: dict) -> bool:
    """Whether the stored run journals its trace (runs from before the note kept it always)."""
    return (checkpoint.get("notes") or {}).get("journal_trace", True)


def _retention(mesh: Mesh, options: RunOptions) -> Retention:
    """The mesh's retention, except that a durable run writing ``--output`` keeps its archive
    of emitted events: the file is exported from it when the run ends."""
    if options.output_path:
        return replace(mesh.retention, archive=math.inf)
    return mesh.retention


@contextlib.contextmanager
def _frozen_heap():
    """Keep what exists before the input (the mesh, compiled consumers, the index) out of the
    garbage collector's scans while the input runs: it lives as long as the run, and scanning
    it over and over made the cost of an event grow with the size of the mesh."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _runtime(mesh: Mesh, store, options: RunOptions, trace: Trace, on_emit=None) -> Runtime:
    runtime = Runtime(
        mesh,
        store=store,
        seed=options.seed,
        http=options.http,
        faults=options.faults,
        max_hops=options.max_hops,
        trace=trace,
        on_emit=on_emit,
    )
    spans = tracing()  # OpenTelemetry spans of each delivery and step, when configured (OTEL_*)
    if spans is not None:
        runtime.wrap_tasks(Spans(spans.tracer, runtime).wrap)
    return runtime


def _feed(runtime: Runtime, store, items: Iterable, every: int, progress) -> None:
    for item in progress(items) if progress else items:
        runtime.feed(item)
        if store is not None and runtime.fed % every == 0:
            store.commit(runtime.snapshot())
    runtime.finish()
    if store is not None:
        store.commit(runtime.snapshot())


def _export(store, options: RunOptions, skip: dict[str, int] | None = None) -> None:
    """Write the store's journals to the --trace and --output files (past the first *skip* records)."""
    for path, journal in ((options.trace_path, "trace"), (options.output_path, "emitted")):
        if path:
            with _open(path) as fh:
                for record in itertools.islice(store.records(journal), (skip or {}).get(journal, 0), None):
                    fh.write(json.dumps(record, default=str) + "\n")


class DeadLetters:
    """Where `meshctl dlq` finds dead letters: a JSON Lines file (``--dlq``) or a durable store
    (``--store``)."""

    def __init__(
        self,
        dlq_path: str | None = None,
        store_url: str | None = None,
        retention: Retention = DEFAULT_RETENTION,
    ):
        if (dlq_path is None) == (store_url is None):
            raise UsageError("give exactly one of --dlq FILE and --store URL")
        self.path = dlq_path
        if dlq_path is not None:
            self.store = MemoryStore()
            for record in read_dead_letters(dlq_path):
                self.store.put_dead_letter(record)
        else:
            self.store = open_store(store_url, retention, create=False)
            if isinstance(self.store, MemoryStore):
                raise UsageError(
                    "--store must be durable here (sqlite:PATH or redis://...): a memory store is empty"
                )

    def records(self) -> list[DeadLetter]:
        return self.store.dead_letters()

    def remove(self, ids) -> int:
        return self.store.remove_dead_letters(ids)

    def save(self, checkpoint: dict | None = None) -> None:
        if self.path is not None:
            write_dead_letters(self.path, self.store.dead_letters())
        # a deployment has no checkpoint: giving it one would make it a run's store
        elif is_deployment(self.store):
            commit_changes(self.store)
        else:
            self.store.commit(checkpoint if checkpoint is not None else (self.store.checkpoint() or {}))


def replay_dead_letters(
    mesh: Mesh, source: DeadLetters, select: Callable[[DeadLetter], bool], options: RunOptions
) -> tuple[dict, list[DeadLetter]]:
    """Redeliver the selected dead letters; those that fail again stay (updated), the others leave."""
    chosen = [r for r in source.records() if select(r)]
    if source.path is None and is_deployment(source.store):  # workers do the redrive, on their clock
        return {"queued": queue_redrive(source.store, chosen, options.spacing)}, source.records()
    if source.path is None:  # a durable store: continue its run, like `replay` and `runs redrive`
        with _session(mesh, source.store, options) as runtime:
            result = runtime.replay(chosen, options.spacing)
        return {**result, **runtime.session_summary}, source.records()
    with _sinks(options, (options.trace_path, options.output_path)) as (trace, on_emit):
        runtime = _runtime(mesh, source.store, options, trace, on_emit)
        result = runtime.replay(chosen, options.spacing)
    source.save()
    return {**result, **runtime.trace.summary()}, source.records()


def _difference(after: dict, before: dict) -> dict:
    """What a replay added to the counters of the stored run."""
    out = {k: v - before.get(k, 0) for k, v in after.items() if isinstance(v, int)}
    reasons = {
        r: n - before["dead_lettered_by_reason"].get(r, 0)
        for r, n in after["dead_lettered_by_reason"].items()
    }
    out["dead_lettered_by_reason"] = {r: n for r, n in reasons.items() if n}
    return out


@contextlib.contextmanager
def _sinks(options: RunOptions, paths: tuple[str | None, str | None] | None):
    """A Trace and an on_emit writing straight to files (None: no files, the store keeps them)."""
    trace_path, output_path = paths or (None, None)
    with contextlib.ExitStack() as stack:
        trace_file = stack.enter_context(_open(trace_path)) if trace_path else None
        out_file = stack.enter_context(_open(output_path)) if output_path else None
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
    """Dead letters from a JSON Lines file written by ``--dlq-out``; bad lines are located errors.

    Lines are read by the rule of event input (:mod:`engine.core.eventjson`), but may nest
    :data:`~engine.core.eventjson.WRITTEN_DEPTH` levels: a record holds events of the run, which may be deeper
    than
    its inputs (a template can nest an event's data in the next one's, hop after hop).
    """
    records, problems = [], []
    try:
        with open(path, "rb") as fh:
            for number, raw in enumerate(fh, start=1):
                if not raw.strip():
                    continue
                try:
                    records.append(
                        DeadLetter.from_file(
                            eventjson.loads(eventjson.line_text(raw), eventjson.WRITTEN_DEPTH)
                        )
                    )
                except eventjson.EventJSONError as exc:
                    problems.append(
                        Diagnostic(
                            Location(path, number, exc.col or 1),
                            "bad-dead-letter",
                            f"not a dead-letter record: {exc.message}",
                        )
                    )
                except ValueError as exc:
                    problems.append(
                        Diagnostic(
                            Location(path, number, 1), "bad-dead-letter", f"not a dead-letter record: {exc}"
                        )
                    )
    except OSError as exc:
        raise LoadError(
            [Diagnostic(Location(path), "bad-dead-letter", f"cannot read: {exc.strerror or exc}")]
        ) from exc
    if problems:
        raise LoadError(problems)
    return records


# --- the durable store as an archive: replay past events, inspect and redrive runs ---------


@dataclass
class ArchiveQuery:
    since: float | None = None
    until: float | None = None
    pattern: dict | None = None
    to: str | None = None  # a consumer id: deliver only to it


def time_or_span(text: str, span: bool = True) -> tuple[float | None, float | None]:
    """``run --until``: (an RFC 3339 time, None), or with *span* (None, a duration in seconds)."""
    if span:
        try:
            return None, parse_duration(text)
        except ValueError:
            pass
    try:
        return parse(text), None
    except ValueError:
        what = "an RFC 3339 time or a duration such as 1d" if span else "an RFC 3339 time"
        raise ValueError(f"{text!r} is not {what}") from None


def time_bound(text: str) -> float:
    """A bound of ``replay --since/--until`` (RFC 3339), in seconds; ValueError if it is none."""
    return parse(text)


def archive_pattern(text: str) -> dict:
    """The EventBridge pattern of ``replay --match``, read by the rule of event input (which it
    is matched against; *text* holds argv's bytes as they were given, surrogate-escaped), and
    compiled once to prove it valid. ValueError says what is wrong."""
    try:
        pattern = eventjson.loads(eventjson.line_text(text.encode("utf-8", "surrogateescape")))
        compile_pattern(pattern)
    except (ValueError, PatternError) as exc:
        raise ValueError(f"not an EventBridge pattern in JSON: {exc}") from exc
    except RecursionError:
        raise ValueError("not an EventBridge pattern in JSON: nested too deeply") from None
    return pattern


def open_durable(url: str, deployment_ok: bool = False, retention: Retention = DEFAULT_RETENTION):
    """The store of an earlier run; a Redis deployment's store too if *deployment_ok*."""
    store = open_store(url, retention, create=False)
    if deployment_ok and is_deployment(store):
        return store
    if isinstance(store, MemoryStore) or store.checkpoint() is None:
        raise UsageError(
            f"{url} holds no run: give the --store sqlite:PATH of an earlier `meshctl run --store`"
        )
    return store


@contextlib.contextmanager
def _session(mesh: Mesh, store, options: RunOptions):
    """A runtime continuing the stored run (clock, counters, windows), committed and exported at the end."""
    before = {j: sum(1 for _ in store.records(j)) for j in ("trace", "emitted")}
    checkpoint = store.checkpoint()
    # The session journals its own trace records if they are asked for, or if the stored run
    # keeps its trace: a trace costs more than counters (one record per rejected pattern).
    journal = bool(options.trace_path) or _keeps_trace(checkpoint or {})
    runtime = _runtime(mesh, store, options, Trace(JournalSink(store) if journal else None))
    if checkpoint is not None:
        runtime.restore(checkpoint)
    runtime.reset_breakers()  # an operator's action: circuits left open by the old run do not block it
    counted = runtime.trace.summary()
    yield runtime
    runtime.finish()
    store.commit(runtime.snapshot())
    _export(store, options, skip=before)
    runtime.session_summary = _difference(runtime.trace.summary(), counted)
    runtime.session_summary["failed_runs"] = list(runtime.trace.session_failed_runs)


def archived(store, query: ArchiveQuery) -> list[dict]:
    """Events of the archive (inputs and emitted events) within the query, in time order."""
    matcher = compile_pattern(query.pattern) if query.pattern else None
    found = []
    for order, event in enumerate(e for journal in ("input", "emitted") for e in store.records(journal)):
        if "replayof" in event:
            continue  # copies made by earlier replays are not archive entries of their own
        when = parse_or_none(event.get("time"))
        if (
            when is None
            or (query.since is not None and when < query.since)
            or (query.until is not None and when > query.until)
        ):
            continue
        if matcher is None or matcher.matches(event):
            found.append((when, order, event))
    return [event for _, _, event in sorted(found, key=lambda x: x[:2])]


def replay_archive(mesh: Mesh, store_url: str, query: ArchiveQuery, options: RunOptions) -> dict:
    """Re-inject archived events: each gets a new id derived from its original's identity (it
    keeps the original's source; ``replayof`` is the original's id), so replaying the same
    selection twice has no effect the second time, and originals of two sources that share an
    id get copies of their own."""
    store = open_durable(store_url, deployment_ok=True, retention=mesh.retention)
    consumers = {c.id: c for c in build_consumers(mesh)}
    if query.to is not None and query.to not in consumers:
        raise UsageError(
            f"--to {query.to!r}: not a consumer of the mesh; "
            + (did_you_mean(query.to, consumers) or f"one of: {', '.join(consumers)}")
        )
    events = archived(store, query)
    if query.to is not None:  # only what that consumer takes
        types = set(consumers[query.to].types)
        events = [e for e in events if e.get("type") in types]
    copies = []
    for original in events:
        event = {
            k: v
            for k, v in original.items()
            if k not in ("causationid", "correlationid", "hopcount", "causationpath")
        }
        event["id"] = hashlib.sha1(f"replay|{identity(original)}|{query.to or '*'}".encode()).hexdigest()[:20]
        event["replayof"] = original["id"]
        copies.append(event)
    aged = archive_aged_out(store, query)
    if is_deployment(store):  # the workers take the copies in, on their clock
        return {
            "selected": len(events),
            **aged,
            "queued": queue_tasks(store, [(REPLAY, {"event": e, "to": query.to}) for e in copies],
                                  options.spacing),
        }
    with _session(mesh, store, options) as runtime:
        runtime.reinject_all(copies, query.to, options.spacing)
    return {"selected": len(events), **aged, **runtime.session_summary}


def archive_aged_out(store, query: ArchiveQuery) -> dict:
    """``{"aged_out": TIME}`` when the query reaches back before what the archive still holds."""
    before = store.aged_out().get("archive")
    if before is None or (query.since is not None and query.since >= before):
        return {}
    return {"aged_out": iso(before)}


def list_runs(store_url: str) -> list[dict]:
    store = open_durable(store_url, deployment_ok=True)
    runs = (store.get_state(key) for key in store.state_keys("run:"))
    return [run for run in runs if run is not None]  # a finished run may age out between the two reads


def find_run(store_url: str, given: str, store=None) -> dict:
    """The run *given* names: its whole id (``<orchestration>:<id>@<source>``), or the short
    ``<orchestration>:<id>`` when exactly one run has that orchestration and event id. A
    UsageError when several have (naming them), or none (saying whether it may have aged out)."""
    store = store if store is not None else open_durable(store_url, deployment_ok=True)
    run = store.get_state(f"run:{given}")
    if run is not None:
        return run
    matches = [] if "@" in given else [k[4:] for k in store.state_keys(f"run:{given}@")]
    if len(matches) == 1:
        return store.get_state(f"run:{matches[0]}")
    if matches:
        shown = ", ".join(matches[:20]) + (f" and {len(matches) - 20} more" if len(matches) > 20 else "")
        raise UsageError(
            f"run {given!r} is ambiguous: events from {len(matches)} sources have that id: {shown}; "
            "give the whole run id, <orchestration>:<id>@<source>"
        )
    known = [k[4:] for k in store.state_keys("run:")]
    message = f"no run {given!r} in {store_url}"
    before = store.aged_out().get("runs")
    if before is not None:
        message += (
            f"; runs that ended before {iso(before)} have aged out of the store "
            "(`retention.runs` of the Mesh document)"
        )
    hint = did_you_mean(given, known)
    if hint:
        message += f"; {hint}"
    elif known:
        message += f"; runs: {', '.join(known[:20])}"
    raise UsageError(message)


def redrive_run(mesh: Mesh, store_url: str, given: str, options: RunOptions) -> tuple[dict, dict]:
    store = open_durable(store_url, deployment_ok=True, retention=mesh.retention)
    run = find_run(store_url, given, store)
    run_id = run["id"]
    if run.get("parent"):  # its parent went on when it ended: redriving the parent starts a new child
        raise UsageError(f"run {run_id!r} is a child run of {run['parent']['run']!r} "
                         f"(step {run['parent']['step']!r}): redrive that run")
    if is_deployment(store):  # a worker redrives it, on the real clock
        if run["status"] not in ("failed", "compensated"):
            raise UsageError(
                f"run {run_id!r} is {run['status']}: only failed or compensated runs can be redriven"
            )
        queue_tasks(store, [(RUN_REDRIVE, {"run": run_id})])
        return {**run, "status": "redrive queued"}, {"queued": 1}
    with _session(mesh, store, options) as runtime:
        try:
            runtime.orchestrator.redrive(run_id)
        except ValueError as exc:
            raise UsageError(str(exc)) from exc
    return store.get_state(f"run:{run_id}"), runtime.session_summary


# --- long-running runs: signals and cancellation ----------------------------------------------


def signal_run(mesh: Mesh | None, store_url: str, given: str, name: str, data, by: str | None,
               options: RunOptions) -> tuple[dict, dict]:
    """Give signal *name* (with *data*, from *by*) to a waiting run: in a deployment a task for
    the worker holding the run; in a `run --store` store at once, the run going on on *mesh*.
    RunStateError if the run does not wait for that signal (from that person)."""
    store, run = _stored_run(store_url, given, mesh)
    if is_deployment(store):
        signal_deployment_run(store, run["id"], name, data, by)
        return {**run, "status": "signal queued"}, {"queued": 1}
    problem = signal_problem(run, name, by)
    if problem is not None:
        raise RunStateError(problem)
    with _session(_needs_mesh(mesh, "signal"), store, options) as runtime:
        runtime.orchestrator.waits.signal(run["id"], name, data, by)
    return store.get_state(f"run:{run['id']}"), runtime.session_summary


def cancel_run(mesh: Mesh | None, store_url: str, given: str, compensate: bool, by: str | None,
               options: RunOptions) -> tuple[dict, dict]:
    """Cancel a running or waiting run (its completed steps compensated if *compensate*)."""
    store, run = _stored_run(store_url, given, mesh)
    if run["status"] not in ACTIVE:
        raise RunStateError(cancel_problem(run))
    if is_deployment(store):
        queue_tasks(store, [(RUN_CANCEL, {"run": run["id"], "compensate": compensate, "by": by})])
        return {**run, "status": "cancel queued"}, {"queued": 1}
    with _session(_needs_mesh(mesh, "cancel"), store, options) as runtime:
        runtime.orchestrator.waits.cancel(run["id"], compensate, by)
    return store.get_state(f"run:{run['id']}"), runtime.session_summary


def _stored_run(store_url: str, given: str, mesh: Mesh | None) -> tuple:
    store = open_durable(store_url, deployment_ok=True,
                         retention=mesh.retention if mesh is not None else DEFAULT_RETENTION)
    return store, find_run(store_url, given, store)


def _needs_mesh(mesh: Mesh | None, command: str) -> Mesh:
    """The mesh a `run --store` store's run goes on with (a deployment's workers have theirs)."""
    if mesh is None:
        raise UsageError(f"runs {command}: the run of a `meshctl run --store` store goes on here, on its "
                         "mesh: add --mesh PATH (a deployment's workers need none)")
    return mesh
