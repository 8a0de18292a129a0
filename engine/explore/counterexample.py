"""A counterexample as a file: a run's trace (JSON Lines) that `meshctl render --trace` draws,
whose first record holds what `meshctl run --replay-choices` needs to make the run again.

::

    {"kind": "counterexample", "mesh": ..., "seed": 0, "choices": [...], "events": [...], "violations": [...]}
    {"seq": 1, "t": "...", "kind": "ingest", ...}           the run's trace, with a "choice"
    ...                                                      record where each deviation was taken
    {"kind": "violation", "t": "...", "check": ..., ...}     each invariant the run broke

A choices file may also be plain JSON, ``{"choices": [...]}`` (``events`` optional).
"""
from __future__ import annotations

import json
from dataclasses import dataclass

from ..core import eventtime
from ..core.errors import UsageError
from ..runtime.events import BadInput
from .deviations import Deviation, from_list
from .minimize import Minimal

HEADER = "counterexample"


@dataclass
class Choices:
    deviations: tuple[Deviation, ...]
    events: list[dict] | None  # the input the choices were made on, if the file keeps it
    seed: int | None = None
    clock: dict | None = None  # where the clock started and the schedules stopped (explore --from/--until)


def lines(mesh_path: str, minimal: Minimal, seed: int, clock: dict | None = None) -> list[str]:
    """The counterexample file's lines."""
    outcome = minimal.outcome
    header = {"kind": HEADER, "mesh": mesh_path, "seed": seed, **({"clock": clock} if clock else {}),
              "choices": [d.as_dict() for d in minimal.deviations],
              "events": [item for item in minimal.inputs if not isinstance(item, BadInput)],
              "violations": [v.as_dict() for v in outcome.violations]}
    out = [json.dumps(header, default=str)]
    out += [json.dumps(record, default=str) for record in outcome.records or ()]
    when = eventtime.format(outcome.end)
    out += [json.dumps({"kind": "violation", "t": when, **v.as_dict()}, default=str)
            for v in outcome.violations]
    return out


def read_choices(path: str) -> Choices:
    """The deviations of a choices file or a counterexample trace; a UsageError says what is wrong."""
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"--replay-choices {path}: cannot read it ({exc})") from None
    first = text.lstrip().split("\n", 1)[0]
    try:
        whole = json.loads(text)
    except ValueError:
        whole = None
    if isinstance(whole, dict) and "choices" in whole:
        record, where = whole, path
    else:
        try:
            record = json.loads(first)
        except ValueError:
            record = None
        if not isinstance(record, dict) or record.get("kind") != HEADER:
            raise UsageError(f"{path}:1:1: not a choices file: expected a JSON object with \"choices\", or a "
                             "counterexample trace written by `meshctl explore` (its first record has "
                             "\"kind\": \"counterexample\")")
        where = f"{path}:1"
    events = record.get("events")
    if events is not None and not (isinstance(events, list) and all(isinstance(e, dict) for e in events)):
        raise UsageError(f"{where}: `events` must be a list of events")
    seed, clock = record.get("seed"), record.get("clock")
    if clock is not None and not _clock_bounds(clock):
        raise UsageError(f"{where}: `clock` holds numbers under start, until and span")
    return Choices(from_list(record.get("choices"), where), events, seed if isinstance(seed, int) else None,
                   clock)


def _clock_bounds(clock: object) -> bool:
    """A counterexample's ``clock``: numbers (seconds) under start, until and span."""
    return isinstance(clock, dict) and set(clock) <= {"start", "until", "span"} and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in clock.values())


def regression_test(minimal: Minimal, title: str, source: str, mesh: str = ".") -> str:
    """A `meshctl test` file (engine.commands.meshtest) whose one test replays the counterexample
    and expects every invariant to hold: it fails while the bug is there. *mesh*: the mesh's
    directory relative to the file's (a file outside it names it)."""
    given = [item for item in minimal.inputs if not isinstance(item, BadInput)]
    out = [f"# Written by `meshctl explore` from {source}: the run below broke an invariant.",
           "# It fails until the mesh is fixed; keep it as a regression test.",
           *([f"mesh: {json.dumps(mesh)}"] if mesh != "." else []),
           "tests:",
           f"  - name: {json.dumps(title)}",
           "    given:"]
    out += [f"      - {json.dumps(event, sort_keys=True)}" for event in given]
    out.append("    choices:" if minimal.deviations else "    choices: []")
    out += [f"      - {json.dumps(d.as_dict())}" for d in minimal.deviations]
    out += ["    expect:", "      invariants: hold", ""]
    return "\n".join(out)
