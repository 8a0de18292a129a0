"""A run's trace as a sequence diagram: Mermaid ``sequenceDiagram`` text, SVG and HTML.

The runtime writes a trace as JSON Lines, one record per line (``seq``, ``t``, ``kind`` and
fields that depend on the kind). :func:`load_trace` reads one, :func:`trace_view` decides
what is drawn, and :func:`engine.render.render` writes it::

    view = trace_view(load_trace("run.trace.jsonl"), "Run of shop")
    text = render(view, "svg")              # "mermaid" | "svg" | "html"

Like :class:`~engine.render.view.RenderView`, a :class:`TraceView` holds the words already
chosen, so every format says the same thing. Lifelines are the mesh's consumers, one for each
participant of what is drawn, left to right in the order they first take part: all the
subscriptions of a service share the service's lifeline, and a ``DLQ`` lifeline appears when
something is dead-lettered. An ``ok`` record is not drawn on its own: it marks the delivery
it answers with a check (a failed attempt gets a cross). Unknown kinds and fields are
tolerated: an unknown record becomes a note, so a newer runtime never breaks rendering.

Time is not drawn to scale: one row per item, and where the clock jumps by
:data:`COMPRESS_AFTER` seconds or more between two items, the item carries the jump (a
"compressed time" mark), so an hour of idle time costs one thin row, not blank screens. The
figures of the subtitle are the run summary's (:func:`trace_counts`).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Iterable

from ..core import eventjson, eventtime
from ..core.errors import Diagnostic, LoadError, Location
from .base import render_template

#: Items drawn at most in SVG and Mermaid; later ones are only counted in a note. The HTML
#: page has them all, drawn a page of :data:`PAGE_ITEMS` at a time.
MAX_ITEMS = 400
#: Items in one page of the HTML diagram, and records in one page of its table.
PAGE_ITEMS = 300
PAGE_ROWS = 200
#: A clock jump between two drawn items from which it is marked as compressed time (seconds).
COMPRESS_AFTER = 5.0
#: Longest label drawn; the full text stays in the SVG tooltip and the HTML table.
MAX_LABEL = 64

INGRESS, DLQ = "ingress", "dlq"


# --- the view ------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Participant:
    """One lifeline: ``id`` is ``kind:name`` (``service:billing``), ``label`` the name shown."""

    id: str
    label: str
    kind: str


@dataclass(frozen=True, slots=True)
class TraceItem:
    """One drawn thing, top to bottom.

    ``shape`` is ``arrow`` (``src`` to ``dst``), ``self`` (a loop on ``src``), ``note`` (a box
    on ``src``) or ``ingest`` (an arrow from outside into ``src``). ``style`` picks colours
    and dashes (see :mod:`.sequence_svg`); ``mark`` is ``ok`` or ``failed`` on a delivery whose
    outcome a later record told. ``time`` is the offset from the first record, set only where
    it changed; ``jump`` is the time skipped since the item before (see :data:`COMPRESS_AFTER`).
    """

    index: int
    seq: str
    shape: str
    style: str
    src: str
    dst: str
    label: str
    detail: str = ""
    mark: str = ""
    time: str = ""
    jump: str = ""


@dataclass(frozen=True, slots=True)
class TraceRow:
    """One record as a row of the HTML table; ``tone`` colours it (``bad``, ``warn``, ``muted``).

    ``seconds`` is the offset from the first record (None: no readable time); ``root`` is the
    input event the record descends from and ``run`` the orchestration run it belongs to
    (see :func:`threads`), for the page's filters.
    """

    index: int
    seq: str
    time: str
    kind: str
    event: str
    where: str
    details: str
    tone: str = ""
    drawn: bool = True
    seconds: float | None = None
    root: str = ""
    run: str = ""


@dataclass(frozen=True, slots=True)
class TraceView:
    """Everything the trace renderers need.

    ``items`` are the first items (at most the cap), ``participants`` their lifelines and
    ``hidden`` the number of items past the cap; ``all_items`` and ``lanes`` are the same for
    the whole trace (the HTML page pages through them). ``counts`` are the figures of the
    run summary the trace tells, as (summary key, label, number).
    """

    title: str
    subtitle: str
    participants: tuple[Participant, ...]
    items: tuple[TraceItem, ...]
    rows: tuple[TraceRow, ...]
    hidden: int = 0
    all_items: tuple[TraceItem, ...] = ()
    lanes: tuple[Participant, ...] = ()
    counts: tuple[tuple[str, str, int], ...] = ()

    def participant(self, pid: str) -> Participant:
        return next(p for p in self.participants if p.id == pid)

    def styles(self) -> list[str]:
        """Item styles drawn, in first-seen order (for legends)."""
        return list(dict.fromkeys(item.style for item in self.items))


# --- loading -------------------------------------------------------------------------------

def load_trace(path: str) -> list[dict]:
    """The records of the JSON Lines trace at *path* (blank lines skipped).

    Every line that is not a JSON object with a string ``kind`` is reported, each at
    ``file:line:1`` with code ``bad-trace``, in one :class:`LoadError`. The JSON is strict, as
    the runtime writes it, by the rule of :mod:`engine.core.eventjson` for what the engine wrote: no
    ``NaN``/``Infinity``, no number beyond a float's range, at most ``WRITTEN_DEPTH`` levels deep.
    """
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        problem = Diagnostic(Location(path), "bad-trace", f"cannot read trace: {exc.strerror or exc}")
        raise LoadError([problem]) from None
    try:
        lines = raw.decode("utf-8").splitlines()
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        col = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise LoadError(
            [
                Diagnostic(
                    Location(path, line, col), "bad-trace", f"not UTF-8 text (byte 0x{raw[exc.start]:02x})"
                )
            ]
        ) from None
    records, problems = [], []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = eventjson.loads(line, eventjson.WRITTEN_DEPTH)
        except eventjson.EventJSONError as exc:
            if not exc.message.startswith("not JSON"):  # decoded, but with numbers or depth a trace never has
                problems.append(_bad_line(path, number, f"not a trace record: {exc.message}"))
            else:
                problems.append(_bad_line(path, number, f"{exc.message} (column {exc.col})"))
            continue
        if not isinstance(record, dict):
            problems.append(
                _bad_line(path, number, f"a trace record is a JSON object, not {type(record).__name__}")
            )
        elif not isinstance(record.get("kind"), str):
            problems.append(_bad_line(path, number, "a trace record needs a string \"kind\""))
        else:
            records.append(record)
    if problems:
        raise LoadError(problems)
    return records


def _bad_line(path: str, number: int, message: str) -> Diagnostic:
    return Diagnostic(
        Location(path, number, 1),
        "bad-trace",
        message,
        hint="each line of a trace is one JSON object, as written by `meshctl run --trace`",
    )


# --- words ---------------------------------------------------------------------------------

#: characters XML 1.0 cannot hold even escaped (C0 controls, lone surrogates, U+FFFE/U+FFFF).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _text(value: Any) -> str:
    """A record value as display text; anything XML could not carry becomes U+FFFD."""
    if value is None:
        return ""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True)
    return _NOT_XML.sub("\ufffd", text)


def short(text: str, limit: int = MAX_LABEL) -> str:
    """*text* on one line, cut with an ellipsis past *limit* characters."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def error_type(error: Any) -> str:
    """``TimeoutError`` of ``"TimeoutError: gateway did not answer"``; the whole text without a colon."""
    text = _text(error).strip()
    head = text.split(":", 1)[0].strip()
    return head if head and " " not in head else text


def fmt_offset(seconds: float) -> str:
    """A virtual-time offset for the margin: ``+0s``, ``+1.5s``, ``+12s``, ``+2m05s``, ``+1h02m``."""
    if seconds < 60:
        return "+" + (f"{seconds:.3f}".rstrip("0").rstrip(".") or "0") + "s"
    whole = int(round(seconds))
    if whole < 3600:
        return f"+{whole // 60}m{whole % 60:02d}s"
    return f"+{whole // 3600}h{whole % 3600 // 60:02d}m"


def fmt_delay(value: Any) -> str:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return _text(value)
    return fmt_offset(seconds)[1:] if seconds < 3600 else f"{seconds / 3600:g}h"


def participant_of(consumer: Any) -> Participant:
    """The lifeline of a consumer id: a service's subscriptions share the service's lifeline."""
    cid = _text(consumer) or "?"
    if cid == INGRESS:
        return Participant(INGRESS, "ingress", "ingress")
    prefix, _, name = cid.partition(":")
    if prefix == "service" and name:
        service = name.split("/", 1)[0] or name
        return Participant(f"service:{service}", service, "service")
    if prefix == "orchestration" and name:  # its steps (``NAME/STEP``) are drawn on its lifeline
        orchestration = name.split("/", 1)[0] or name
        return Participant(f"orchestration:{orchestration}", orchestration, "orchestration")
    if prefix in ("route", "stream") and name:
        return Participant(cid, name, prefix)
    return Participant(f"other:{cid}", cid, "other")


DLQ_PARTICIPANT = Participant(DLQ, "DLQ", DLQ)

#: record fields shown in their own table columns (everything else goes to "details", as
#: ``key=value`` joined by DETAILS_SEP).
_OWN_COLUMNS = ("seq", "t", "kind", "event")
DETAILS_SEP = " · "

#: record kind -> tone of its table row
TONES = {
    "dead-letter": "bad",
    "step-failed": "bad",
    "retry": "warn",
    "compensate": "warn",
    "filtered": "muted",
    "step-skipped": "muted",
    "choice": "warn",
    "crash": "bad",
    "violation": "bad",
}


# --- building the view ---------------------------------------------------------------------


class _Builder:
    """Walks the records once, turning each into at most one item (``ok`` folds into its delivery)."""

    def __init__(self, records: list[dict]):
        self.records = records
        self.items: list[dict] = []
        self.participants: dict[str, Participant] = {}
        self.producer: dict[str, str] = {}  # event id -> lifeline that put it in the mesh
        self.deliveries: dict[tuple, int] = {}  # (event, consumer, attempt) -> item index
        self.last_attempt: dict[tuple, int] = {}  # (event, consumer) -> latest attempt drawn
        self.tags = _run_tags(records)
        self.finished_steps = {
            (_text(r.get("run")), _text(r.get("step")))
            for r in records
            if r.get("kind") in ("step-done", "step-failed", "step-skipped")
        }
        self.step_attempt: dict[tuple, int] = {}
        self.drawn: set[int] = set()

    def lifeline(self, consumer: Any) -> str:
        p = participant_of(consumer)
        self.participants.setdefault(p.id, p)
        return p.id

    def orchestration(self, record: dict) -> str:
        return self.lifeline(f"orchestration:{_text(record.get('orchestration')) or '?'}")

    def add(
        self, index: int, shape: str, style: str, src: str, dst: str | None, label: str, detail: str = ""
    ) -> None:
        self.drawn.add(index)
        self.items.append(
            {
                "index": index,
                "shape": shape,
                "style": style,
                "src": src,
                "dst": dst or src,
                "label": short(label),
                "detail": detail or label,
                "mark": "",
            }
        )

    def run_tag(self, record: dict) -> str:
        """``[r2] `` on a run that interleaves with another, so their steps can be told apart."""
        tag = self.tags.get(_text(record.get("run")))
        return f"[{tag}] " if tag else ""

    def build(self) -> None:
        for index, record in enumerate(self.records):
            handler = getattr(self, "on_" + _text(record.get("kind")).replace("-", "_"), None)
            (handler or self.on_unknown)(index, record)

    # One method per record kind; the record's fields are read defensively (a trace is input).

    def on_ingest(self, i: int, r: dict) -> None:
        ingress = self.lifeline(INGRESS)
        if r.get("rejected") is not None:
            why = _text(r.get("rejected"))
            self.add(
                i,
                "ingest",
                "rejected",
                ingress,
                None,
                f"✗ {_text(r.get('type')) or 'input'} ({why})",
                f"an input was refused at entry: {why} (see the dead letter that follows)",
            )
            return
        self.producer[_text(r.get("event"))] = INGRESS
        self.add(
            i,
            "ingest",
            "ingest",
            ingress,
            None,
            _text(r.get("type")) or "event",
            f"{_text(r.get('type'))} entered the mesh as {_text(r.get('event'))}",
        )

    def on_deliver(self, i: int, r: dict) -> None:
        src = self.lifeline(r.get("from") or self.producer.get(_text(r.get("event")), INGRESS))
        dst = self.lifeline(r.get("consumer"))
        attempt = _attempt(r.get("attempt"))
        label = (_text(r.get("type")) or "event") + (f" #{attempt}" if attempt > 1 else "")
        detail = (
            f"{_text(r.get('event'))} {_text(r.get('type'))} → {_text(r.get('consumer'))}, attempt {attempt}"
        )
        self.deliveries[(_text(r.get("event")), _text(r.get("consumer")), attempt)] = len(self.items)
        self.last_attempt[(_text(r.get("event")), _text(r.get("consumer")))] = attempt
        self.add(i, "arrow" if src != dst else "self", "deliver", src, dst, label, detail)

    def _mark(self, r: dict, mark: str) -> bool:
        found = self.deliveries.get(
            (_text(r.get("event")), _text(r.get("consumer")), _attempt(r.get("attempt")))
        )
        if found is None:
            return False
        if not self.items[found]["mark"]:
            self.items[found]["mark"] = mark
        return True

    def on_ok(self, i: int, r: dict) -> None:
        if self._mark(r, "ok"):
            self.drawn.add(i)
            return
        self.add(i, "note", "ok", self.lifeline(r.get("consumer")), None, "ok ✓")

    def on_filtered(self, i: int, r: dict) -> None:
        dst = self.lifeline(r.get("consumer"))
        why = _text(r.get("why")) or "filtered"
        label = f"{_text(r.get('type')) or 'event'} ⊘ {why}"
        detail = (f"{_text(r.get('event'))} {_text(r.get('type'))} not delivered to "
                  f"{_text(r.get('consumer'))}: {why}")
        src = r.get("from") or self.producer.get(_text(r.get("event")))
        if src is None:
            self.add(i, "note", "filtered", dst, None, label, detail)
        else:
            src = self.lifeline(src)
            self.add(i, "arrow" if src != dst else "self", "filtered", src, dst, label, detail)

    def on_emit(self, i: int, r: dict) -> None:
        by = self.lifeline(r.get("by"))
        self.producer[_text(r.get("event"))] = by
        self.add(
            i,
            "note",
            "emit",
            by,
            None,
            f"emits {_text(r.get('type')) or 'event'}",
            f"{_text(r.get('by'))} emitted {_text(r.get('type'))} as {_text(r.get('event'))}"
            f" (caused by {_text(r.get('cause'))})",
        )

    def on_retry(self, i: int, r: dict) -> None:
        self._mark(r, "failed")
        error = error_type(r.get("error"))
        label = f"retry in {fmt_delay(r.get('delay'))}" + (f": {error}" if error else "")
        detail = (
            f"attempt {_text(r.get('attempt'))} of {_text(r.get('event'))} failed: {_text(r.get('error'))};"
            f" retry in {fmt_delay(r.get('delay'))}"
        )
        self.add(i, "self", "retry", self.lifeline(r.get("consumer")), None, label, detail)

    def on_dead_letter(self, i: int, r: dict) -> None:
        src = self.lifeline(r.get("consumer"))
        self.participants.setdefault(DLQ, DLQ_PARTICIPANT)
        key = (_text(r.get("event")), _text(r.get("consumer")))
        if key in self.last_attempt:
            self._mark({"event": key[0], "consumer": key[1], "attempt": self.last_attempt[key]}, "failed")
        reason = _text(r.get("reason")) or "dead-lettered"
        detail = (
            f"{_text(r.get('event'))} {_text(r.get('type'))} dead-lettered by {_text(r.get('consumer'))}:"
            f" {reason} after {_text(r.get('attempts'))} attempt(s); {_text(r.get('error'))}"
        )
        self.add(i, "arrow", "dead-letter", src, DLQ, reason, detail)

    def on_call(self, i: int, r: dict) -> None:
        target = _text(r.get("target"))
        self.add(
            i, "self", "call", self.lifeline(r.get("consumer")), None, f"call {target}", f"call {target}"
        )

    def on_log(self, i: int, r: dict) -> None:
        level = _text(r.get("level")) or "info"
        self.add(
            i,
            "note",
            "log",
            self.lifeline(r.get("consumer")),
            None,
            f"{level}: {_text(r.get('message'))}",
            f"log {level}: {_text(r.get('message'))}",
        )

    def on_run_start(self, i: int, r: dict) -> None:
        event, run = _text(r.get("event")), _text(r.get("run"))
        name = _run_name(run)
        self.add(
            i,
            "note",
            "run-start",
            self.orchestration(r),
            None,
            f"▶ run {name}" + (f" ({event})" if event and event != name else ""),
            f"run {run} started by {event}",
        )

    def on_step_start(self, i: int, r: dict) -> None:
        key = (_text(r.get("run")), _text(r.get("step")))
        self.step_attempt[key] = _attempt(r.get("attempt"))
        if key in self.finished_steps:
            self.drawn.add(i)  # told by the step's outcome below
            return
        self.add(i, "self", "step-start", self.orchestration(r), None, f"{self.run_tag(r)}{key[1]} …")

    def _step(self, r: dict) -> str:
        attempt = self.step_attempt.get((_text(r.get("run")), _text(r.get("step"))), 1)
        return f"{self.run_tag(r)}{_text(r.get('step'))}" + (f" #{attempt}" if attempt > 1 else "")

    def on_step_done(self, i: int, r: dict) -> None:
        self.add(i, "self", "step-done", self.orchestration(r), None, f"{self._step(r)} ✓")

    def on_step_failed(self, i: int, r: dict) -> None:
        error = error_type(r.get("error"))
        self.add(
            i,
            "self",
            "step-failed",
            self.orchestration(r),
            None,
            f"{self._step(r)} ✗ {error}".rstrip(),
            f"{self._step(r)} failed: {_text(r.get('error'))}",
        )

    def on_step_skipped(self, i: int, r: dict) -> None:
        self.add(i, "self", "step-skipped", self.orchestration(r), None, f"{self._step(r)} skipped")

    def on_compensate(self, i: int, r: dict) -> None:
        self.add(
            i,
            "self",
            "compensate",
            self.orchestration(r),
            None,
            f"{self.run_tag(r)}compensate {_text(r.get('step'))}",
        )

    def on_run_end(self, i: int, r: dict) -> None:
        status = _text(r.get("status")) or "ended"
        style = f"run-{status}" if status in ("completed", "failed", "compensated") else "run-end"
        self.add(
            i,
            "note",
            style,
            self.orchestration(r),
            None,
            f"run {_run_name(_text(r.get('run')))} {status}",
            f"run {_text(r.get('run'))} {status}" + (f": {_text(r.get('error'))}" if r.get("error") else ""),
        )

    def on_window(self, i: int, r: dict) -> None:
        key = _text(r.get("key"))
        span = f"{_clock(r.get('start'))}–{_clock(r.get('end'))}"
        self.add(
            i,
            "note",
            "window",
            self.lifeline(r.get("consumer")),
            None,
            f"window {key} closed [{span}]" if key else f"window closed [{span}]",
            f"window {key} {_text(r.get('start'))} – {_text(r.get('end'))}",
        )

    # What `meshctl explore` adds to a counterexample (engine/explore/counterexample.py).

    def on_counterexample(self, i: int, r: dict) -> None:
        self.drawn.add(i)  # the header: its choices are drawn where they were taken

    def on_choice(self, i: int, r: dict) -> None:
        kind, choice = _text(r.get("choice_kind")), _text(r.get("choice"))
        point = choice if kind == "order" else _text(r.get("at"))
        where = INGRESS if kind == "late" else _choice_consumer(point)
        label = {"order": "reordered", "late": "late input", "attempt": choice}.get(kind, kind)
        self.add(i, "note", "choice", self.lifeline(where), None, f"⚑ choice: {label}",
                 f"explored choice: {_text(r.get('why'))}")

    def on_crash(self, i: int, r: dict) -> None:
        where = r.get("consumer") if r.get("consumer") is not None else INGRESS
        self.add(i, "note", "crash", self.lifeline(where), None, "✗ crash before ack",
                 f"attempt {_text(r.get('attempt'))} of {_text(r.get('event') or r.get('run'))} crashed "
                 f"after its effects; taken again at {_text(r.get('retake')) or 'the end of the lease'}")

    def on_duplicate(self, i: int, r: dict) -> None:
        self.add(i, "note", "choice", self.lifeline(r.get("consumer")), None, "⚑ delivered twice",
                 f"a copy of {_text(r.get('event'))} to {_text(r.get('consumer'))} is due as well")

    def on_violation(self, i: int, r: dict) -> None:
        name = f"{_text(r.get('check'))}/{_text(r.get('invariant'))}"
        where = f"{_text(r.get('file'))}:{_text(r.get('line'))}:{_text(r.get('col'))}"
        self.add(i, "note", "violation", self.lifeline(INGRESS), None, f"✗ invariant broken: {name}",
                 f"{where}: {name}: {_text(r.get('message'))}")

    def on_unknown(self, i: int, r: dict) -> None:
        where = self.lifeline(r["consumer"]) if r.get("consumer") is not None else self.lifeline(INGRESS)
        extra = ", ".join(
            f"{_text(k)}={_text(v)}" for k, v in r.items() if k not in ("seq", "t", "kind", "consumer")
        )
        kind = _text(r.get("kind")) or "record"
        self.add(i, "note", "unknown", where, None, f"{kind}" + (f": {extra}" if extra else ""))


def _choice_consumer(label: str) -> str:
    """The lifeline of a choice point's label (engine.runtime.choices.task_label): the consumer of
    a delivery, the orchestration of a step."""
    if " <- " in label:
        return label.split(" <- ", 1)[0].removeprefix("complete ")
    parts = label.split(" ", 1)
    if len(parts) == 2 and parts[0].startswith(("step-", "compensate")):
        return "orchestration:" + parts[1].split(":", 1)[0]
    return INGRESS


def _run_tags(records: list[dict]) -> dict[str, str]:
    """A short tag for each run that is under way while another is: its trigger event's id
    (``chk-00001`` of ``fulfil-order:chk-00001@/shop``) where that tells it apart, else its id.
    A run lasts from its first record to its ``run-end`` (to the end of the trace without one)."""
    spans: dict[str, list[int]] = {}
    for i, r in enumerate(records):
        if r.get("run") is not None:
            span = spans.setdefault(_text(r.get("run")), [i, len(records)])
            if r.get("kind") == "run-end":
                span[1] = i
    ordered = sorted(spans.items(), key=lambda kv: kv[1][0])
    overlapping: set[str] = set()
    reach, holder = -1, None  # the furthest end so far, and its run
    for run, (start, end) in ordered:
        if start <= reach:
            overlapping |= {run, holder}
        if end > reach:
            reach, holder = end, run
    short_ids = {run: _run_name(run) for run in overlapping}
    clash = {tag for tag in short_ids.values() if list(short_ids.values()).count(tag) > 1}
    return {run: (run if tag in clash else tag) for run, tag in short_ids.items()}


def _run_name(run: str) -> str:
    """``chk-00001`` of the run id ``fulfil-order:chk-00001@/shop`` (its trigger event's id; the
    orchestration is the lifeline's name); an id of another form as it is."""
    return run.split(":", 1)[-1].split("@", 1)[0] or run


def _attempt(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):
        return 1


def _clock(value: Any) -> str:
    """``10:01:00`` of an RFC 3339 time, for window notes; the text as given when unreadable."""
    when = eventtime.parse_or_none(value)
    return eventtime.format(when)[11:19] if when is not None else _text(value)


def _seconds(records: list[dict]) -> list[float | None]:
    """Each record's time after the first record's (None when it has no readable time)."""
    times = [eventtime.parse_or_none(r.get("t")) for r in records]
    first = next((t for t in times if t is not None), None)
    return [max(t - first, 0.0) if t is not None else None for t in times]


def threads(records: list[dict]) -> tuple[list[str], list[str]]:
    """For each record, the input event it descends from and the orchestration run it belongs to.

    An input (``ingest``) is its own root; an emitted event has its cause's root. A run's
    records are those naming it (``run``), the attempts and calls of its orchestration on its
    trigger event, the events it emitted, and everything those caused. ``""`` where a record
    belongs to none (a rejected input, a window closing).
    """
    first_run: dict[tuple[str, str], str] = {}
    for r in records:
        if r.get("kind") == "run-start":
            first_run.setdefault((_text(r.get("orchestration")), _text(r.get("event"))), _text(r.get("run")))
    current = dict(first_run)  # (orchestration, trigger event) -> latest run started
    trigger: dict[str, str] = {}  # run -> its trigger event
    root: dict[str, str] = {}  # event -> input event
    event_run: dict[str, str] = {}  # event -> run that caused it
    roots, runs = [], []
    for r in records:
        kind, event = r.get("kind"), _text(r.get("event"))
        cause = _text(r.get("cause"))
        if kind == "ingest" and event:
            root.setdefault(event, event)
        elif kind == "emit" and event:
            root[event] = root.get(cause, "")
        if kind == "run-start":
            key = (_text(r.get("orchestration")), event)
            current[key] = trigger_run = _text(r.get("run"))
            trigger[trigger_run] = event
        run = _text(r.get("run"))
        who = _text(r.get("by") if kind == "emit" else r.get("consumer"))
        if not run and who.startswith("orchestration:"):
            orchestration = who[len("orchestration:") :].split("/", 1)[0]
            run = current.get((orchestration, cause if kind == "emit" else event), "")
        if not run:
            run = event_run.get(cause if kind == "emit" else event, "")
        if kind == "emit" and event and run:
            event_run[event] = run
        roots.append(root.get(event, "") or root.get(trigger.get(run, ""), ""))
        runs.append(run)
    return roots, runs


def _row(index: int, record: dict, seconds: float | None, drawn: bool, root: str, run: str) -> TraceRow:
    kind = _text(record.get("kind"))
    where = record.get("consumer") or record.get("by")
    if where is None and record.get("orchestration") is not None:
        where = f"orchestration:{_text(record.get('orchestration'))}"
    skip = set(_OWN_COLUMNS) | (
        {"consumer"} if record.get("consumer") else {"by"} if record.get("by") else set()
    )
    details = DETAILS_SEP.join(f"{_text(k)}={_text(v)}" for k, v in record.items() if k not in skip)
    return TraceRow(
        index,
        _text(record.get("seq")),
        fmt_offset(seconds) if seconds is not None else "",
        kind,
        _text(record.get("event")),
        _text(where if where is not None else (INGRESS if kind == "ingest" else "")),
        details,
        TONES.get(kind, ""),
        drawn,
        seconds,
        root,
        run,
    )


#: The run summary's figures a trace tells, in the summary's order: (key, label, record kind,
#: fields the record must have). Keys not here (matched, duplicates, unconsumed, ...) are
#: counted by the runtime without a record of their own, so a trace cannot tell them.
TRACE_COUNTS = (
    ("events_in", "events in", "ingest", {}),
    ("delivered", "delivered (attempts)", "deliver", {}),
    ("filtered", "filtered", "filtered", {"why": ("when", "loop-avoided")}),
    ("emitted", "emitted", "emit", {}),
    ("retries", "retries", "retry", {}),
    ("dead_lettered", "dead-lettered", "dead-letter", {}),
    ("runs_started", "runs started", "run-start", {}),
    ("runs_completed", "runs completed", "run-end", {"status": ("completed",)}),
    ("runs_failed", "runs failed", "run-end", {"status": ("failed",)}),
    ("runs_compensated", "runs compensated", "run-end", {"status": ("compensated",)}),
    ("windows_emitted", "windows emitted", "window", {}),
    ("sequence_gaps", "sequence gaps", "gap", {}),
)


def trace_counts(records: list[dict]) -> dict[str, int]:
    """The figures of the run summary (``meshctl run``'s counters) that *records* tell.

    Each is one record kind, some with a field value: ``filtered`` counts only what the
    summary counts (``when`` and ``loop-avoided``: a rejected ``match`` is recorded, not
    counted). Equal to the summary's for a whole trace of a run, which the tests check.
    """
    out = dict.fromkeys((key for key, *_ in TRACE_COUNTS), 0)
    by_kind: dict[str, list] = {}
    for key, _, kind, where in TRACE_COUNTS:
        by_kind.setdefault(kind, []).append((key, where))
    for r in records:
        for key, where in by_kind.get(r.get("kind"), ()):
            if all(r.get(field) in allowed for field, allowed in where.items()):
                out[key] += 1
    return out


def _counts(records: list[dict]) -> tuple[tuple[str, str, int], ...]:
    counts = trace_counts(records)
    return tuple(
        (key, label, counts[key]) for key, label, *_ in TRACE_COUNTS if counts[key] or key == "events_in"
    )


def _subtitle(records: list[dict], counts: tuple[tuple[str, str, int], ...]) -> str:
    n = len(records)
    return ", ".join(
        [f"{n} record{'s' if n != 1 else ''}"] + [f"{value} {label}" for _, label, value in counts]
    )


def _lanes(items: Iterable[dict], participants: dict[str, Participant]) -> tuple[Participant, ...]:
    """The lifelines of *items*, in the order they first take part (ingress alone if none)."""
    order = dict.fromkeys(pid for item in items for pid in (item["src"], item["dst"]))
    return tuple(participants[pid] for pid in order) or (participant_of(INGRESS),)


def _jumps(items: list[dict], seconds: list[float | None]) -> list[str]:
    """The compressed time before each item: the clock's jump since the item before, if large."""
    out, last = [], None
    for item in items:
        now = seconds[item["index"]]
        jumped = now is not None and last is not None and now - last >= COMPRESS_AFTER
        out.append(fmt_offset(now - last)[1:] if jumped else "")
        last = now if now is not None else last
    return out


def trace_view(records: list[dict], title: str, limit: int = MAX_ITEMS) -> TraceView:
    """What the sequence diagram of *records* shows; the first *limit* items are drawn in
    SVG and Mermaid, all of them (a page at a time) in HTML."""
    records = [r for r in records if isinstance(r, dict)]
    title = _text(title)
    builder = _Builder(records)
    builder.build()
    seconds = _seconds(records)
    offsets = [fmt_offset(s) if s is not None else "" for s in seconds]
    items, shown = [], None
    for item, jump in zip(builder.items, _jumps(builder.items, seconds)):
        offset = offsets[item["index"]]
        time = offset if offset and offset != shown else ""
        shown = offset or shown
        items.append(
            TraceItem(
                item["index"],
                _text(records[item["index"]].get("seq")),
                item["shape"],
                item["style"],
                item["src"],
                item["dst"],
                item["label"],
                item["detail"],
                item["mark"],
                time,
                jump,
            )
        )
    roots, runs = threads(records)
    rows = tuple(_row(i, r, seconds[i], i in builder.drawn, roots[i], runs[i]) for i, r in enumerate(records))
    counts = _counts(records)
    limit = max(limit, 0)
    return TraceView(
        title,
        _subtitle(records, counts),
        _lanes(builder.items[:limit], builder.participants),
        tuple(items[:limit]),
        rows,
        max(len(items) - limit, 0),
        tuple(items),
        _lanes(builder.items, builder.participants),
        counts,
    )


# --- Mermaid -------------------------------------------------------------------------------

#: style -> Mermaid arrow; a style not listed is drawn as a note.
MERMAID_ARROWS = {
    "deliver": "->>",
    "filtered": "--x",
    "dead-letter": "-x",
    "retry": "-->>",
    "call": "-->>",
    "step-start": "-->>",
    "step-done": "->>",
    "step-failed": "-x",
    "step-skipped": "-->>",
    "compensate": "-->>",
    "ok": "-->>",
}
#: style -> background band (``rect``) around the message, the colours of :mod:`.style`.
MERMAID_BANDS = {
    "choice": "rgba(255, 243, 196, 0.8)",
    "violation": "rgba(253, 231, 228, 0.9)",
    "dead-letter": "rgba(253, 231, 228, 0.7)",
    "step-failed": "rgba(253, 231, 228, 0.7)",
    "compensate": "rgba(253, 236, 214, 0.8)",
}
MERMAID_MARKS = {"ok": " ✓", "failed": " ✗"}


_SEQUENCE_ENTITIES = {"#": "#35;", ";": "#59;", '"': "#quot;", "<": "#lt;", ">": "#gt;"}
_SEQUENCE_ESCAPE = re.compile("[#;\"<>]")


def sequence_escape(text: str) -> str:
    """Escape message text for Mermaid: entity codes for ``#``, ``;``, quotes and angle brackets."""
    return _SEQUENCE_ESCAPE.sub(lambda m: _SEQUENCE_ENTITIES[m.group()], " ".join(text.splitlines()))


def mermaid_ids(view: TraceView) -> dict[str, str]:
    """A unique, Mermaid-safe id per lifeline (``p_service_billing``)."""
    out: dict[str, str] = {}
    for p in view.participants:
        base = "p_" + (re.sub(r"[^A-Za-z0-9_]+", "_", p.id).strip("_") or "x")
        candidate, n = base, 2
        while candidate in out.values():
            candidate, n = f"{base}_{n}", n + 1
        out[p.id] = candidate
    return out


def _mermaid_lines(view: TraceView, ids: dict[str, str]) -> Iterable[str]:
    first, last = ids[view.participants[0].id], ids[view.participants[-1].id]
    span = first if first == last else f"{first},{last}"
    for item in view.items:
        if item.jump:
            yield f"Note over {span}: ≈ {item.jump} later (time compressed)"
        if item.time:
            yield f"Note left of {first}: {item.time}"
        src, dst = ids[item.src], ids[item.dst]
        label = sequence_escape(item.label + MERMAID_MARKS.get(item.mark, ""))
        band = MERMAID_BANDS.get(item.style)
        if band:
            yield f"rect {band}"
        if item.shape == "ingest":
            line = f"Note over {src}: ⇥ {label}"
        elif item.shape in ("arrow", "self") and item.style in MERMAID_ARROWS:
            line = f"{src}{MERMAID_ARROWS[item.style]}{dst}: {label}"
        elif item.style == "emit":
            line = f"Note right of {src}: {label}"
        else:
            line = f"Note over {src}: {label}"
        yield ("    " + line) if band else line
        if band:
            yield "end"
    if view.hidden:
        yield f"Note over {span}: … {view.hidden} more records (see table)"


def mermaid_context(view: TraceView) -> dict:
    ids = mermaid_ids(view)
    return {
        "title": json.dumps(view.title, ensure_ascii=False),  # front matter is YAML
        "participants": [(ids[p.id], sequence_escape(p.label)) for p in view.participants],
        "lines": list(_mermaid_lines(view, ids)),
    }


def render_trace_mermaid(view: TraceView) -> str:
    return render_template("trace.mmd.j2", xml=False, **mermaid_context(view))
