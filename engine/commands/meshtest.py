"""`meshctl test`: YAML test cases for a mesh — given events, expect what it emitted, dead-lettered and
decided.

A test file (``*.test.yaml``, schema ``schemas/meshctl-test.schema.json``, reference
``docs/testing.md``) holds ``tests:``. Each test runs the mesh of the file's directory on its
``given`` events with a fresh in-memory store, on the virtual clock (instant, deterministic),
with optional injected faults, then checks its ``expect`` block against what was observed. An
optional ``then`` phase keeps the store, starts a new runtime without those faults, redrives
dead letters and/or feeds more events, and checks a second ``expect`` block against what that
phase did.

Test files are checked like meshes: every problem is a located :class:`Diagnostic`, and a file
with problems is not run. Expectation failures are values too (:class:`Failure`), each naming
what was expected and the closest things actually seen.
"""

from __future__ import annotations

import difflib
import json
import os
import re
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any, Iterable, Iterator

from ..analysis.validate import check_mesh
from ..core.deadletter import DeadLetter
from ..core.errors import (
    Diagnostic,
    Location,
    UsageError,
    has_errors,
    printable,
    sorted_diagnostics,
)
from ..explore.deviations import from_list
from ..explore.session import feed, steer
from ..language.loader import TEST_SUFFIXES
from ..language.model import Mesh
from ..language.schema import data_validator, schema_diagnostics
from ..language.source import Document, SourceMap, load_documents, read_text
from ..runtime.clock import VirtualClock
from ..runtime.events import parsed, read_events
from ..runtime.interpreter import DEFAULT_MAX_HOPS, Fault, Runtime
from ..runtime.invariants import History, Invariants, Violation, state_of
from ..runtime.trace import EARLY_END_KEYS, Trace
from ..storage import MemoryStore
from .runs import consumer_ids, parse_rate
from .terminal import Style, plain, render

REPLAY_KEYS = ("replayed", "still_dead")  # counts that exist only in a `then:` phase that redrives
PAUSE_KEYS = ("held", "released")  # counts that exist only for a mesh whose breakers pause
SHOWN = 5  # candidates listed under a failed expectation


# --- results ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Failure:
    """One expectation that did not hold: where it is written, why, and what was seen instead."""

    where: str  # the expectation's path in the test, e.g. "then.expect.emitted[1]"
    loc: Location
    message: str
    seen: tuple[str, ...] = ()

    def lines(self, style: Style = plain) -> list[str]:
        """Printable lines: the expectation's place and message, then what was seen (its difference
        marked)."""
        head = (
            f"  {style(printable(f'{self.loc}:'), 'location')} {printable(f'{self.where}: {self.message}')}"
        )
        return [head, *(f"      {_seen_line(printable(s), style)}" for s in self.seen)]

    def as_dict(self) -> dict:
        return {
            "where": self.where,
            "file": self.loc.file,
            "line": self.loc.line,
            "col": self.loc.col,
            "message": self.message,
            "seen": list(self.seen),
        }


def _seen_line(text: str, style: Style) -> str:
    """A candidate seen instead, its trailing ``(x is A, expected B)`` styled as the difference."""
    found = _DIFFERENCE.search(text)
    if found is None:
        return style(text, "seen")
    return style(text[: found.start()], "seen") + style(text[found.start() :], "diff")


_DIFFERENCE = re.compile(r"\(\S[^()]*, expected [^()]*\)$")


@dataclass(frozen=True, slots=True)
class CaseResult:
    file: str
    name: str
    loc: Location
    failures: tuple[Failure, ...]

    @property
    def passed(self) -> bool:
        return not self.failures


@dataclass(slots=True)
class Report:
    """Everything `meshctl test` prints: problems with test files, then one result per test run."""

    results: list[CaseResult] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)

    @property
    def passed(self) -> int:
        return sum(r.passed for r in self.results)

    @property
    def failed(self) -> int:
        return len(self.results) - self.passed

    @property
    def exit_code(self) -> int:
        """0 when every test ran and passed; 1 when one failed, a file was invalid, or nothing ran."""
        return 0 if self.results and not self.failed and not has_errors(self.diagnostics) else 1

    def text_lines(self, style: Style = plain) -> list[str]:
        lines = [render(d, style) for d in self.diagnostics]
        for result in self.results:
            verdict = style("PASS", "pass") if result.passed else style("FAIL", "fail")
            lines.append(f"{verdict} {printable(result.name)}")
            for failure in result.failures:
                lines += failure.lines(style)  # values from events: printable, never a line of their own
        passed = style(f"{self.passed} passed", "pass" if self.passed else "seen")
        failed = style(f"{self.failed} failed", "fail" if self.failed else "seen")
        lines.append(f"{passed}, {failed}")
        return lines

    def as_dict(self) -> dict:
        return {
            "ok": self.exit_code == 0,
            "passed": self.passed,
            "failed": self.failed,
            "diagnostics": [d.as_dict() for d in self.diagnostics],
            "tests": [
                {
                    "file": r.file,
                    "name": r.name,
                    "line": r.loc.line,
                    "passed": r.passed,
                    "failures": [f.as_dict() for f in r.failures],
                }
                for r in self.results
            ],
        }


# --- finding and checking test files -----------------------------------------------------------


def find_test_files(path: str) -> list[str]:
    """``*.test.yaml`` files: *path* itself, or every one under the directory *path* (sorted, recursive)."""
    if os.path.isfile(path):
        if not path.endswith(TEST_SUFFIXES):
            raise UsageError(f"{path}: not a test file (expected a directory or a file named *.test.yaml)")
        return [path]
    found = []
    for folder, dirs, names in os.walk(path):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [
            os.path.join(folder, n)
            for n in sorted(names)
            if n.endswith(TEST_SUFFIXES) and not n.startswith(".")
        ]
    return found


@lru_cache(maxsize=1)
def case_schema() -> dict:
    return json.loads(
        resources.files("engine").joinpath("schemas", "meshctl-test.schema.json").read_text("utf-8")
    )


@dataclass(frozen=True, slots=True)
class Case:
    """One test of a file, checked and ready to run."""

    name: str
    loc: Location
    spec: dict
    smap: SourceMap
    path: tuple  # JSON path of the test in its file
    folder: str  # where relative `events:` files are read from


@dataclass(slots=True)
class LoadedFile:
    path: str
    mesh: Mesh | None = None
    cases: list[Case] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)


def load_test_file(path: str) -> LoadedFile:
    """Read, schema-check and resolve one test file; problems become located diagnostics, never exceptions."""
    out = LoadedFile(path)
    doc, out.diagnostics = _document(path)
    if doc is None:
        return out
    folder = os.path.dirname(path) or "."
    mesh_dir = os.path.normpath(os.path.join(folder, doc.data.get("mesh", ".")))
    checked = check_mesh(mesh_dir)
    if has_errors(checked.diagnostics):
        out.diagnostics += [
            Diagnostic(
                doc.smap.key(("mesh",)) if "mesh" in doc.data else doc.loc,
                "invalid-mesh",
                f"the mesh {mesh_dir} has errors; run `meshctl validate {mesh_dir}`",
            ),
            *(d for d in checked.diagnostics if d.severity == "error"),
        ]
        return out
    out.mesh = checked.mesh
    consumers = consumer_ids(out.mesh)  # consumers and orchestration steps
    names: dict[str, Location] = {}
    for i, spec in enumerate(doc.data["tests"]):
        case = Case(spec["name"], doc.smap.at(("tests", i)), spec, doc.smap, ("tests", i), folder)
        out.diagnostics += list(_check_case(case, consumers, names))
        out.cases.append(case)
    out.diagnostics = sorted_diagnostics(out.diagnostics)
    return out


def _document(path: str) -> tuple[Document | None, list[Diagnostic]]:
    text, problems = read_text(path, path, regular_only=True)
    if text is None:
        return None, problems
    docs, problems = load_documents(text, path, finite_numbers=True)
    if problems:
        return None, problems
    if len(docs) > 1:
        return None, [
            Diagnostic(
                docs[1].loc,
                "several-documents",
                "a test file holds one YAML document",
                hint="put every test in the one `tests:` list",
            )
        ]
    doc = docs[0]
    if not isinstance(doc.data, dict):
        return None, [Diagnostic(doc.loc, "wrong-type", "a test file must be a mapping with a `tests:` list")]
    found = schema_diagnostics(data_validator(case_schema()).iter_errors(doc.data), doc.smap)
    return (None if found else doc), found


def _check_case(case: Case, consumers: list[str], names: dict[str, Location]) -> Iterator[Diagnostic]:
    """What the schema cannot say: unique names, one input form, existing files and consumers."""
    if case.name in names:
        yield Diagnostic(
            case.smap.at((*case.path, "name")),
            "duplicate-test",
            f"a test named {case.name!r} is already defined at line {names[case.name].line}",
        )
    names.setdefault(case.name, case.loc)
    yield from _check_phase(case, case.spec, case.path, consumers, needs_input=True)
    if "then" in case.spec:
        yield from _check_phase(case, case.spec["then"], (*case.path, "then"), consumers, needs_input=False)


def _check_rate(case: Case, spec: dict, path: tuple) -> Iterator[Diagnostic]:
    """``replay_rate`` reads as `dlq replay --rate` does, and only goes with a replay."""
    if "replay_rate" not in spec:
        return
    if "replay_dead_letters" not in spec:
        yield Diagnostic(case.smap.key((*path, "replay_rate")), "bad-rate",
                         "`replay_rate` paces `replay_dead_letters`, which this `then` does not have")
        return
    try:
        parse_rate(spec["replay_rate"])
    except ValueError as exc:
        yield Diagnostic(case.smap.at((*path, "replay_rate")), "bad-rate", str(exc))


def _check_phase(
    case: Case, spec: dict, path: tuple, consumers: list[str], needs_input: bool
) -> Iterator[Diagnostic]:
    inputs = [k for k in ("given", "events") if k in spec]
    if len(inputs) == 2:
        yield Diagnostic(
            case.smap.key((*path, "events")), "conflicting-input", "give either `given` or `events`, not both"
        )
    elif needs_input and not inputs:
        yield Diagnostic(
            case.smap.key(path),
            "missing-input",
            "a test needs input: `given` (inline events) or `events` (a file)",
        )
    elif not needs_input and not inputs and "replay_dead_letters" not in spec:
        yield Diagnostic(
            case.smap.key(path), "empty-then", "`then` needs `replay_dead_letters`, `given` or `events`"
        )
    yield from _check_rate(case, spec, path)
    if "events" in spec and not os.path.isfile(os.path.join(case.folder, spec["events"])):
        yield Diagnostic(
            case.smap.at((*path, "events")),
            "no-such-file",
            f"no events file {spec['events']!r} next to the test file",
        )
    for i, fault in enumerate(spec.get("faults", [])):
        if fault["consumer"] not in consumers:
            near = difflib.get_close_matches(fault["consumer"], consumers, n=1, cutoff=0.5)
            yield Diagnostic(
                case.smap.at((*path, "faults", i, "consumer")),
                "unknown-consumer",
                f"no consumer {fault['consumer']!r} in the mesh",
                hint=f"did you mean {near[0]!r}?" if near else "consumers: " + ", ".join(consumers),
            )


# --- running ------------------------------------------------------------------------------------


@dataclass(slots=True)
class Observed:
    """What one phase produced, in the shapes expectations are matched against."""

    emitted: list[dict]
    dead: list[DeadLetter]
    trace: list[dict]
    counts: dict
    runs: list[dict]
    declared: int = 0  # invariants the mesh declares (`kind: Check`)
    violations: list[Violation] = field(default_factory=list)  # of the test's run so far (every phase)
    unmet: list = field(default_factory=list)  # (index, deviation) of `choices:` whose point never came


def run_tests(path: str, select: str | None = None) -> Report:
    """Run every test under *path* (a directory or one test file) whose name contains *select*."""
    files = find_test_files(path)
    report = Report()
    if not files:
        report.diagnostics.append(
            Diagnostic(
                Location(path),
                "no-tests",
                "no *.test.yaml files here",
                hint="see docs/testing.md for the format",
            )
        )
        return report
    for file in files:
        loaded = load_test_file(file)
        report.diagnostics += loaded.diagnostics
        if loaded.mesh is None or has_errors(loaded.diagnostics):
            continue
        for case in loaded.cases:
            if select is None or select in case.name:
                report.results.append(
                    CaseResult(file, case.name, case.loc, tuple(run_case(loaded.mesh, case)))
                )
    if not report.results and not report.diagnostics:
        report.diagnostics.append(Diagnostic(Location(path), "no-tests", f"no test name contains {select!r}"))
    return report


def run_case(mesh: Mesh, case: Case) -> Iterator[Failure]:
    """Run one test (both phases) and yield every expectation that failed."""
    spec = case.spec
    seed, hops = spec.get("seed", 0), spec.get("max_hops", DEFAULT_MAX_HOPS)
    history = History()
    runtime, observed = _phase(mesh, case, spec, case.path, MemoryStore(), None, seed, hops, history)
    yield from _unmet_choices(case, observed)
    yield from check_expectations(spec.get("expect", {}), observed, case, (*case.path, "expect"))
    then = spec.get("then")
    if then is None:
        return
    _, observed = _phase(
        mesh, case, then, (*case.path, "then"), runtime.store, VirtualClock(runtime.clock.now()), seed, hops,
        history,
    )
    yield from check_expectations(then.get("expect", {}), observed, case, (*case.path, "then", "expect"))


def _unmet_choices(case: Case, observed: Observed) -> Iterator[Failure]:
    """A choice whose point never came: the test no longer makes the run it was written for."""
    for index, deviation in observed.unmet:
        where = (*case.path, "choices", index)
        yield Failure(f"choices[{index}]", case.smap.at(where),
                      f"its point never came ({deviation.describe()}): the mesh or the input changed since "
                      "the choices were written; explore again (docs/explore.md) to write a new test")


def _judged(mesh: Mesh, runtime: Runtime, history: History, observed: Observed) -> Observed:
    """*observed* with the mesh's invariants judged on the test's history so far (both phases in `then`)."""
    if mesh.checks:
        invariants, now = Invariants(mesh), runtime.clock.now()
        observed.declared = invariants.declared
        observed.violations = invariants.check(history.records, now, state_of(runtime.store, now))
    return observed


def _phase(mesh: Mesh, case: Case, spec: dict, path: tuple, store, clock, seed: int, hops: int,
           history: History):
    records: list[dict] = []
    emitted: list[dict] = []
    faults = [
        Fault(f["consumer"], f.get("times"), f.get("error", "InjectedFault")) for f in spec.get("faults", [])
    ]
    deviations = from_list(spec["choices"], "choices") if "choices" in spec else None
    runtime = Runtime(
        mesh,
        store=store,
        clock=clock,
        seed=seed,
        faults=faults,
        max_hops=hops,
        trace=Trace(records),
        on_emit=emitted.append,
        fast_paths=deviations is None,  # a steered run takes every task through the schedule
    )
    history.follow(runtime)
    extra = {}
    if "replay_dead_letters" in spec:
        chosen = [r for r in store.dead_letters() if _dead_selected(spec["replay_dead_letters"], r)]
        rate = spec.get("replay_rate")
        extra = runtime.replay(chosen, 1.0 / parse_rate(rate) if rate is not None else 0.0)
    unmet: list = []
    if deviations is None:
        summary = runtime.run(_inputs(case, spec, path))
    else:  # `choices:`, as `meshctl explore --write-test` writes them
        steering = steer(runtime, deviations)
        feed(runtime, steering, list(_inputs(case, spec, path)))
        summary = runtime.trace.summary()
        unmet = [(i, d) for i, d in enumerate(deviations) if d not in steering.taken]
    counts = {**dict.fromkeys(EARLY_END_KEYS, 0), **summary, **extra}
    observed = Observed(emitted, store.dead_letters(), records, counts, _runs(records), unmet=unmet)
    return runtime, _judged(mesh, runtime, history, observed)


def _inputs(case: Case, spec: dict, path: tuple) -> Iterable:
    if "events" in spec:
        return read_events(os.path.join(case.folder, spec["events"]))
    return [parsed(raw, case.smap.at((*path, "given", i)), i) for i, raw in enumerate(spec.get("given", []))]


def _dead_selected(selector: Any, record: DeadLetter) -> bool:
    return selector is True or (
        isinstance(selector, dict) and match_problem(selector, dead_letter_view(record)) is None
    )


def _runs(records: list[dict]) -> list[dict]:
    """Orchestration runs from the trace: started ones with their trigger, and how each ended."""
    runs: dict[str, dict] = {}
    for r in records:
        if r["kind"] == "run-start":
            runs[r["run"]] = {"orchestration": r["orchestration"], "event": r["event"], "status": "running"}
        elif r["kind"] == "run-end" and r["run"] in runs:
            runs[r["run"]].update(status=r["status"], **({"error": r["error"]} if "error" in r else {}))
    return list(runs.values())


# --- expectations: one check per key ----------------------------------------------------------


def check_expectations(expect: dict, observed: Observed, case: Case, path: tuple) -> Iterator[Failure]:
    for key, value in expect.items():  # in the order written, so failures read like the file
        yield from CHECKS[key](value, observed, _At(case.smap, (*path, key)))


@dataclass(frozen=True, slots=True)
class _At:
    """Where an expectation is written, to locate its failure."""

    smap: SourceMap
    path: tuple

    def fail(self, index: int | str | None, message: str, seen: Iterable[str] = ()) -> Failure:
        path = self.path if index is None else (*self.path, index)
        return Failure(_dotted(path[2:]), self.smap.at(path), message, tuple(seen))


def _check_emitted(entries: list, observed: Observed, at: _At) -> Iterator[Failure]:
    for i, entry in enumerate(entries):
        want = {k: v for k, v in entry.items() if k != "count"}
        hits = [e for e in observed.emitted if match_problem(want, event_view(e)) is None]
        if "count" in entry and len(hits) != entry["count"]:
            seen = (
                _listed([_show(event_view(e)) for e in hits])
                if hits
                else _seen_events(want, observed.emitted)
            )
            yield at.fail(
                i, f"expected {entry['count']} emitted event(s) matching {_show(want)}, got {len(hits)}", seen
            )
        elif "count" not in entry and not hits:
            yield at.fail(i, f"no emitted event matches {_show(want)}", _seen_events(want, observed.emitted))


def _check_not_emitted(entries: list, observed: Observed, at: _At) -> Iterator[Failure]:
    for i, entry in enumerate(entries):
        want = {"type": entry} if isinstance(entry, str) else entry
        hits = [e for e in observed.emitted if match_problem(want, event_view(e)) is None]
        if hits:
            yield at.fail(
                i,
                f"{len(hits)} emitted event(s) match {_show(want)}, expected none",
                _listed([_show(event_view(e)) for e in hits]),
            )


def _check_dead_letters(entries: list, observed: Observed, at: _At) -> Iterator[Failure]:
    views = [dead_letter_view(r) for r in observed.dead]
    for i, entry in enumerate(entries):
        want = {k: v for k, v in entry.items() if k != "count"}
        hits = [v for v in views if match_problem(want, v) is None]
        if "count" in entry and len(hits) != entry["count"]:
            seen = (
                _listed([_show(_brief_dead(v)) for v in hits])
                if hits
                else _closest(want, views, "dead letters", _brief_dead)
            )
            yield at.fail(
                i, f"expected {entry['count']} dead letter(s) matching {_show(want)}, got {len(hits)}", seen
            )
        elif "count" not in entry and not hits:
            yield at.fail(
                i, f"no dead letter matches {_show(want)}", _closest(want, views, "dead letters", _brief_dead)
            )


def _check_no_dead_letters(flag: bool, observed: Observed, at: _At) -> Iterator[Failure]:
    if flag and observed.dead:
        views = [_brief_dead(dead_letter_view(r)) for r in observed.dead]
        yield at.fail(
            None, f"expected no dead letters, found {len(views)}", _listed([_show(v) for v in views])
        )


def _check_runs(entries: list, observed: Observed, at: _At) -> Iterator[Failure]:
    for i, entry in enumerate(entries):
        want = {k: v for k, v in entry.items() if k != "count"}
        hits = [r for r in observed.runs if match_problem(want, r) is None]
        if "count" in entry and len(hits) != entry["count"]:
            seen = _listed([_show(r) for r in hits]) if hits else _closest(want, observed.runs, "runs")
            yield at.fail(
                i, f"expected {entry['count']} run(s) matching {_show(want)}, got {len(hits)}", seen
            )
        elif "count" not in entry and not hits:
            yield at.fail(
                i, f"no orchestration run matches {_show(want)}", _closest(want, observed.runs, "runs")
            )


def _check_counts(expected: dict, observed: Observed, at: _At) -> Iterator[Failure]:
    for key, value in expected.items():
        if key not in observed.counts:
            where = ("a mesh with a circuit breaker that pauses (`on_open: pause`)" if key in PAUSE_KEYS
                     else "a `then:` phase that replays dead letters")
            yield at.fail(key, f"count {key!r} exists only in {where}")
        elif observed.counts[key] != value:
            yield at.fail(key, f"expected {key} = {value}, got {observed.counts[key]}")


def _check_trace(entries: list, observed: Observed, at: _At) -> Iterator[Failure]:
    """The entries must match records in this order (other records may come between them)."""
    position = 0
    for i, entry in enumerate(entries):
        found = next(
            (
                n
                for n in range(position, len(observed.trace))
                if match_problem(entry, observed.trace[n]) is None
            ),
            None,
        )
        if found is not None:
            position = found + 1
            continue
        earlier = [r for r in observed.trace[:position] if match_problem(entry, r) is None]
        if earlier:
            yield at.fail(
                i,
                f"trace record {_show(entry)} appears only before the previous entry's match "
                f"(seq {observed.trace[position - 1]['seq']})",
                _listed([_show(r) for r in earlier]),
            )
        else:
            later = [r for r in observed.trace[position:] if r.get("kind") == entry.get("kind")]
            yield at.fail(
                i,
                f"no trace record matches {_show(entry)}" + (" after the previous entry" if i else ""),
                _closest(entry, later, f"{entry.get('kind')} records" + (" after it" if i else "")),
            )
        return  # the rest of the sequence cannot be placed


def _check_invariants(verdict: str, observed: Observed, at: _At) -> Iterator[Failure]:
    """`invariants: hold` (none of the mesh's invariants broken) or `violated` (at least one)."""
    if not observed.declared:
        yield at.fail(None, "the mesh declares no invariants (`kind: Check`) to judge")
    elif verdict == "hold" and observed.violations:
        seen = [f"{v.check}/{v.invariant}" + ("" if v.key is None else f" [key {v.key}]") + f": {v.message}"
                for v in observed.violations]
        yield at.fail(None, f"expected every invariant to hold, {len(seen)} violation(s)", _listed(seen))
    elif verdict == "violated" and not observed.violations:
        yield at.fail(None, f"expected an invariant to be violated, all {observed.declared} held")


CHECKS = {
    "emitted": _check_emitted,
    "not_emitted": _check_not_emitted,
    "dead_letters": _check_dead_letters,
    "no_dead_letters": _check_no_dead_letters,
    "runs": _check_runs,
    "counts": _check_counts,
    "trace": _check_trace,
    "invariants": _check_invariants,
}


# --- what expectations are matched against ------------------------------------------------------


def event_view(event: dict) -> dict:
    return {
        "type": event.get("type"),
        "subject": event.get("subject"),
        "data": event.get("data"),
        "source": event.get("source"),
    }


def dead_letter_view(record: DeadLetter) -> dict:
    event = record.event if isinstance(record.event, dict) else {}
    return {
        "reason": record.reason,
        "consumer": record.consumer,
        "queue": record.queue,
        "type": event.get("type"),
        "error_type": record.error_type,
        "attempts": record.attempts,
        "error": record.error,
        "event": event.get("id"),
        "data": event.get("data"),
    }


def _brief_dead(view: dict) -> dict:
    return {k: v for k, v in view.items() if k not in ("data", "error")}


# --- matching --------------------------------------------------------------------------------------


def match_problem(expected: Any, actual: Any, where: str = "") -> str | None:
    """Why *actual* does not contain *expected* (None when it does).

    Mappings match by key (extra keys in *actual* are fine), lists element by element (same
    length), scalars by equality (booleans only equal booleans; 1 equals 1.0). The key ``error``
    of a dead letter matches as a substring.

    >>> match_problem({"a": {"b": [1, 2]}}, {"a": {"b": [1, 2], "c": 3}, "d": 4}) is None
    True
    >>> match_problem({"a": {"b": 1}}, {"a": {"b": 2}})
    'a.b is 2, expected 1'
    """
    if isinstance(expected, dict):
        return _mapping_problem(expected, actual, where)
    if isinstance(expected, list):
        if not isinstance(actual, list) or len(actual) != len(expected):
            return f"{where or 'value'} is {_show(actual)}, expected {len(expected)} item(s)"
        pairs = enumerate(zip(expected, actual))
        problems = (match_problem(want, got, f"{where}[{i}]") for i, (want, got) in pairs)
        return next((problem for problem in problems if problem), None)
    if _same_scalar(expected, actual):
        return None
    return f"{where or 'value'} is {_show(actual)}, expected {_show(expected)}"


def _mapping_problem(expected: dict, actual: Any, where: str) -> str | None:
    if not isinstance(actual, dict):
        return f"{where or 'value'} is {_show(actual)}, expected a mapping"
    for key, value in expected.items():
        inner = f"{where}.{key}" if where else str(key)
        if key not in actual:
            return f"{inner} is missing"
        if key == "error" and not where and isinstance(value, str) and isinstance(actual[key], str):
            contained = value in actual[key]
            problem = None if contained else f"error {_show(actual[key])} does not contain {_show(value)}"
        else:
            problem = match_problem(value, actual[key], inner)
        if problem:
            return problem
    return None


def _same_scalar(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    return (
        type(a) is type(b)
        and a == b
        or (isinstance(a, (int, float)) and isinstance(b, (int, float)) and a == b)
    )


def _score(expected: Any, actual: Any) -> int:
    """How many leaves of *expected* *actual* already has: ranks the closest candidates."""
    if isinstance(expected, dict):
        return sum(_score(v, actual.get(k)) for k, v in expected.items()) if isinstance(actual, dict) else 0
    if isinstance(expected, list):
        if not isinstance(actual, list):
            return 0
        return sum(_score(w, g) for w, g in zip(expected, actual))
    return int(match_problem(expected, actual) is None)


def _closest(want: dict, candidates: list[dict], noun: str, brief=lambda v: v) -> list[str]:
    if not candidates:
        return [f"(no {noun} at all)"]
    ranked = sorted(candidates, key=lambda c: -_score(want, c))[:SHOWN]
    lines = [f"closest of {len(candidates)} {noun}:"]
    lines += [f"{_show(brief(c))}  ({match_problem(want, c)})" for c in ranked]
    return lines


def _seen_events(want: dict, emitted: list[dict]) -> list[str]:
    """Emitted events of the wanted type, or the types that were emitted when none has it."""
    same = [event_view(e) for e in emitted if e.get("type") == want.get("type")]
    if same:
        return _closest(want, same, f"emitted {want['type']} events")
    types: dict[str, int] = {}
    for e in emitted:
        types[e["type"]] = types.get(e["type"], 0) + 1
    if not types:
        return ["(nothing was emitted)"]
    near = difflib.get_close_matches(str(want.get("type")), list(types), n=1)
    return [
        f"no {want.get('type')} was emitted; emitted: "
        + ", ".join(f"{t} x{n}" for t, n in types.items())
        + (f" (did you mean {near[0]!r}?)" if near else "")
    ]


def _listed(lines: list[str]) -> list[str]:
    return lines[:SHOWN] + ([f"... and {len(lines) - SHOWN} more"] if len(lines) > SHOWN else [])


def _show(value: Any, limit: int = 200) -> str:
    if isinstance(value, dict):
        value = {k: v for k, v in value.items() if v is not None}
    text = json.dumps(value, default=str, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _dotted(path: tuple) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out
