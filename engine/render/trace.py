"""A run's trace as a sequence diagram: Mermaid ``sequenceDiagram`` text, SVG and HTML.

The runtime writes a trace as JSON Lines, one record per line (``seq``, ``t``, ``kind`` and
fields that depend on the kind). :func:`load_trace` reads one, :func:`trace_view` decides
what is drawn, and :func:`render_trace` writes it::

    view = trace_view(load_trace("run.trace.jsonl"), "Run of shop")
    text = render_trace(view, "svg")        # "mermaid" | "svg" | "html"

Like :class:`~engine.render.view.RenderView`, a :class:`TraceView` holds the words already
chosen, so every format says the same thing. Lifelines are the mesh's consumers: all the
subscriptions of a service share the service's lifeline, and a ``DLQ`` lifeline is added
when something is dead-lettered. An ``ok`` record is not drawn on its own: it marks the
delivery it answers with a check (a failed attempt gets a cross). Unknown kinds and fields
are tolerated: an unknown record becomes a note, so a newer runtime never breaks rendering.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Iterable

from .. import eventtime
from ..errors import Diagnostic, LoadError, Location
from .base import render_template

#: Items drawn at most; later records are only counted in a note (the HTML table has all).
MAX_ITEMS = 400
#: Longest label drawn; the full text stays in the SVG tooltip and the HTML table.
MAX_LABEL = 64

#: Lifeline kinds in diagram order (left to right); a kind not listed sorts before the DLQ.
PARTICIPANT_ORDER = ("ingress", "service", "route", "orchestration", "stream", "other", "dlq")
INGRESS, DLQ = "ingress", "dlq"

FORMATS = ("html", "mermaid", "svg")


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
    it changed.
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


@dataclass(frozen=True, slots=True)
class TraceRow:
    """One record as a row of the HTML table; ``tone`` colours it (``bad``, ``warn``, ``muted``)."""

    index: int
    seq: str
    time: str
    kind: str
    event: str
    where: str
    details: str
    tone: str = ""
    drawn: bool = True


@dataclass(frozen=True, slots=True)
class TraceView:
    """Everything the trace renderers need; ``hidden`` counts records past the drawing cap."""

    title: str
    subtitle: str
    participants: tuple[Participant, ...]
    items: tuple[TraceItem, ...]
    rows: tuple[TraceRow, ...]
    hidden: int = 0

    def participant(self, pid: str) -> Participant:
        return next(p for p in self.participants if p.id == pid)

    def styles(self) -> list[str]:
        """Item styles drawn, in first-seen order (for legends)."""
        return list(dict.fromkeys(item.style for item in self.items))


# --- loading -------------------------------------------------------------------------------

def load_trace(path: str) -> list[dict]:
    """The records of the JSON Lines trace at *path* (blank lines skipped).

    Every line that is not a JSON object with a string ``kind`` is reported, each at
    ``file:line:1`` with code ``bad-trace``, in one :class:`LoadError`.
    """
    try:
        with open(path, encoding="utf-8") as fh:
            lines = fh.read().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise LoadError([Diagnostic(Location(path), "bad-trace", f"cannot read trace: {reason}")]) from None
    records, problems = [], []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.append(_bad_line(path, number, f"not JSON: {exc.msg} (column {exc.colno})"))
            continue
        if not isinstance(record, dict):
            problems.append(_bad_line(path, number, f"a trace record is a JSON object, not {type(record).__name__}"))
        elif not isinstance(record.get("kind"), str):
            problems.append(_bad_line(path, number, "a trace record needs a string \"kind\""))
        else:
            records.append(record)
    if problems:
        raise LoadError(problems)
    return records


def _bad_line(path: str, number: int, message: str) -> Diagnostic:
    return Diagnostic(Location(path, number, 1), "bad-trace", message,
                      hint="each line of a trace is one JSON object, as written by `meshctl run --trace`")


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
    if prefix in ("route", "orchestration", "stream") and name:
        return Participant(cid, name, prefix)
    return Participant(f"other:{cid}", cid, "other")


DLQ_PARTICIPANT = Participant(DLQ, "DLQ", DLQ)

#: record fields shown in their own table columns (everything else goes to "details").
_OWN_COLUMNS = ("seq", "t", "kind", "event")

_TONES = {
    "dead-letter": "bad", "step-failed": "bad", "retry": "warn", "compensate": "warn",
    "filtered": "muted", "step-skipped": "muted",
}


# --- building the view ---------------------------------------------------------------------

class _Builder:
    """Walks the records once, turning each into at most one item (``ok`` folds into its delivery)."""

    def __init__(self, records: list[dict], limit: int):
        self.records = records
        self.limit = limit
        self.items: list[dict] = []
        self.participants: dict[str, Participant] = {INGRESS: participant_of(INGRESS)}
        self.producer: dict[str, str] = {}          # event id -> lifeline that put it in the mesh
        self.deliveries: dict[tuple, int] = {}      # (event, consumer, attempt) -> item index
        self.runs = list(dict.fromkeys(_text(r.get("run")) for r in records if r.get("run") is not None))
        self.finished_steps = {
            (_text(r.get("run")), _text(r.get("step")))
            for r in records if r.get("kind") in ("step-done", "step-failed", "step-skipped")
        }
        self.step_attempt: dict[tuple, int] = {}
        self.hidden = 0
        self.drawn: set[int] = set()

    def lifeline(self, consumer: Any) -> str:
        p = participant_of(consumer)
        self.participants.setdefault(p.id, p)
        return p.id

    def orchestration(self, record: dict) -> str:
        return self.lifeline(f"orchestration:{_text(record.get('orchestration')) or '?'}")

    def add(self, index: int, shape: str, style: str, src: str, dst: str | None, label: str, detail: str = "") -> None:
        if len(self.items) >= self.limit:
            self.hidden += 1
            return
        self.drawn.add(index)
        self.items.append({"index": index, "shape": shape, "style": style, "src": src,
                           "dst": dst or src, "label": short(label), "detail": detail or label, "mark": ""})

    def run_tag(self, record: dict) -> str:
        """``[r2] `` when several runs interleave in the trace, so steps can be told apart."""
        return f"[{_text(record.get('run'))}] " if len(self.runs) > 1 else ""

    def build(self) -> None:
        for index, record in enumerate(self.records):
            handler = getattr(self, "on_" + _text(record.get("kind")).replace("-", "_"), None)
            (handler or self.on_unknown)(index, record)

    # One method per record kind; the record's fields are read defensively (a trace is input).

    def on_ingest(self, i: int, r: dict) -> None:
        self.producer[_text(r.get("event"))] = INGRESS
        self.add(i, "ingest", "ingest", INGRESS, None, _text(r.get("type")) or "event",
                 f"{_text(r.get('type'))} entered the mesh as {_text(r.get('event'))}")

    def on_deliver(self, i: int, r: dict) -> None:
        src = self.lifeline(r.get("from") or self.producer.get(_text(r.get("event")), INGRESS))
        dst = self.lifeline(r.get("consumer"))
        attempt = _attempt(r.get("attempt"))
        label = (_text(r.get("type")) or "event") + (f" #{attempt}" if attempt > 1 else "")
        detail = f"{_text(r.get('event'))} {_text(r.get('type'))} → {_text(r.get('consumer'))}, attempt {attempt}"
        if len(self.items) < self.limit:
            self.deliveries[(_text(r.get("event")), _text(r.get("consumer")), attempt)] = len(self.items)
        self.add(i, "arrow" if src != dst else "self", "deliver", src, dst, label, detail)

    def _mark(self, r: dict, mark: str) -> bool:
        found = self.deliveries.get((_text(r.get("event")), _text(r.get("consumer")), _attempt(r.get("attempt"))))
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
        detail = f"{_text(r.get('event'))} {_text(r.get('type'))} not delivered to {_text(r.get('consumer'))}: {why}"
        src = r.get("from") or self.producer.get(_text(r.get("event")))
        if src is None:
            self.add(i, "note", "filtered", dst, None, label, detail)
        else:
            src = self.lifeline(src)
            self.add(i, "arrow" if src != dst else "self", "filtered", src, dst, label, detail)

    def on_emit(self, i: int, r: dict) -> None:
        by = self.lifeline(r.get("by"))
        self.producer[_text(r.get("event"))] = by
        self.add(i, "note", "emit", by, None, f"emits {_text(r.get('type')) or 'event'}",
                 f"{_text(r.get('by'))} emitted {_text(r.get('type'))} as {_text(r.get('event'))}"
                 f" (caused by {_text(r.get('cause'))})")

    def on_retry(self, i: int, r: dict) -> None:
        self._mark(r, "failed")
        error = error_type(r.get("error"))
        label = f"retry in {fmt_delay(r.get('delay'))}" + (f": {error}" if error else "")
        detail = (f"attempt {_text(r.get('attempt'))} of {_text(r.get('event'))} failed: {_text(r.get('error'))};"
                  f" retry in {fmt_delay(r.get('delay'))}")
        self.add(i, "self", "retry", self.lifeline(r.get("consumer")), None, label, detail)

    def on_dead_letter(self, i: int, r: dict) -> None:
        src = self.lifeline(r.get("consumer"))
        self.participants.setdefault(DLQ, DLQ_PARTICIPANT)
        found = [k for k, v in self.deliveries.items() if k[:2] == (_text(r.get("event")), _text(r.get("consumer")))]
        if found:
            self._mark({"event": found[-1][0], "consumer": found[-1][1], "attempt": found[-1][2]}, "failed")
        reason = _text(r.get("reason")) or "dead-lettered"
        detail = (f"{_text(r.get('event'))} {_text(r.get('type'))} dead-lettered by {_text(r.get('consumer'))}:"
                  f" {reason} after {_text(r.get('attempts'))} attempt(s); {_text(r.get('error'))}")
        self.add(i, "arrow", "dead-letter", src, DLQ, reason, detail)

    def on_call(self, i: int, r: dict) -> None:
        target = _text(r.get("target"))
        self.add(i, "self", "call", self.lifeline(r.get("consumer")), None, f"call {target}", f"call {target}")

    def on_log(self, i: int, r: dict) -> None:
        level = _text(r.get("level")) or "info"
        self.add(i, "note", "log", self.lifeline(r.get("consumer")), None,
                 f"{level}: {_text(r.get('message'))}", f"log {level}: {_text(r.get('message'))}")

    def on_run_start(self, i: int, r: dict) -> None:
        event = _text(r.get("event"))
        self.add(i, "note", "run-start", self.orchestration(r), None,
                 f"▶ run {_text(r.get('run'))}" + (f" ({event})" if event else ""))

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
        self.add(i, "self", "step-failed", self.orchestration(r), None, f"{self._step(r)} ✗ {error}".rstrip(),
                 f"{self._step(r)} failed: {_text(r.get('error'))}")

    def on_step_skipped(self, i: int, r: dict) -> None:
        self.add(i, "self", "step-skipped", self.orchestration(r), None, f"{self._step(r)} skipped")

    def on_compensate(self, i: int, r: dict) -> None:
        self.add(i, "self", "compensate", self.orchestration(r), None,
                 f"{self.run_tag(r)}compensate {_text(r.get('step'))}")

    def on_run_end(self, i: int, r: dict) -> None:
        status = _text(r.get("status")) or "ended"
        style = f"run-{status}" if status in ("completed", "failed", "compensated") else "run-end"
        self.add(i, "note", style, self.orchestration(r), None, f"run {_text(r.get('run'))} {status}")

    def on_window(self, i: int, r: dict) -> None:
        key = _text(r.get("key"))
        span = f"{_clock(r.get('start'))}–{_clock(r.get('end'))}"
        self.add(i, "note", "window", self.lifeline(r.get("consumer")), None,
                 f"window {key} closed [{span}]" if key else f"window closed [{span}]",
                 f"window {key} {_text(r.get('start'))} – {_text(r.get('end'))}")

    def on_unknown(self, i: int, r: dict) -> None:
        where = self.lifeline(r["consumer"]) if r.get("consumer") is not None else INGRESS
        extra = ", ".join(f"{_text(k)}={_text(v)}" for k, v in r.items() if k not in ("seq", "t", "kind", "consumer"))
        kind = _text(r.get("kind")) or "record"
        self.add(i, "note", "unknown", where, None, f"{kind}" + (f": {extra}" if extra else ""))


def _attempt(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 1


def _clock(value: Any) -> str:
    """``10:01:00`` of an RFC 3339 time, for window notes; the text as given when unreadable."""
    when = eventtime.parse_or_none(value)
    return eventtime.format(when)[11:19] if when is not None else _text(value)


def _offsets(records: list[dict]) -> list[str]:
    """Each record's time after the first record's (``""`` when it has no readable time)."""
    times = [eventtime.parse_or_none(r.get("t")) for r in records]
    first = next((t for t in times if t is not None), None)
    return [fmt_offset(max(t - first, 0.0)) if t is not None else "" for t in times]


def _row(index: int, record: dict, offset: str, drawn: bool) -> TraceRow:
    kind = _text(record.get("kind"))
    where = record.get("consumer") or record.get("by")
    if where is None and record.get("orchestration") is not None:
        where = f"orchestration:{_text(record.get('orchestration'))}"
    skip = set(_OWN_COLUMNS) | ({"consumer"} if record.get("consumer") else {"by"} if record.get("by") else set())
    details = " · ".join(f"{_text(k)}={_text(v)}" for k, v in record.items() if k not in skip)
    return TraceRow(index, _text(record.get("seq")), offset, kind, _text(record.get("event")),
                    _text(where if where is not None else (INGRESS if kind == "ingest" else "")),
                    details, _TONES.get(kind, ""), drawn)


def _summary(records: list[dict]) -> str:
    def count(kind: str, **where) -> int:
        return sum(1 for r in records if r.get("kind") == kind and all(r.get(k) == v for k, v in where.items()))

    parts = [
        (len(records), "record"), (count("ingest"), "event in"), (count("deliver"), "delivery"),
        (count("emit"), "emitted"), (count("retry"), "retry"), (count("dead-letter"), "dead-lettered"),
        (count("run-end", status="completed"), "run completed"), (count("run-end", status="failed"), "run failed"),
        (count("run-end", status="compensated"), "run compensated"), (count("window"), "window"),
    ]
    plural = {"record": "records", "delivery": "deliveries", "retry": "retries", "window": "windows",
              "event in": "events in", "run completed": "runs completed", "run failed": "runs failed",
              "run compensated": "runs compensated"}
    return ", ".join(f"{n} {word if n == 1 else plural.get(word, word)}" for n, word in parts if n or word == "record")


def trace_view(records: list[dict], title: str, limit: int = MAX_ITEMS) -> TraceView:
    """What the sequence diagram of *records* shows; at most *limit* items are drawn."""
    records = [r for r in records if isinstance(r, dict)]
    title = _text(title)
    builder = _Builder(records, limit)
    builder.build()
    offsets = _offsets(records)
    rank = {kind: n for n, kind in enumerate(PARTICIPANT_ORDER)}
    used = [INGRESS] + [pid for item in builder.items for pid in (item["src"], item["dst"])]
    participants = sorted((builder.participants[pid] for pid in dict.fromkeys(used)),
                          key=lambda p: rank.get(p.kind, rank["other"]))
    items, shown = [], None
    for item in builder.items:
        offset = offsets[item["index"]]
        time = offset if offset and offset != shown else ""
        shown = offset or shown
        items.append(TraceItem(item["index"], _text(records[item["index"]].get("seq")), item["shape"],
                               item["style"], item["src"], item["dst"], item["label"], item["detail"],
                               item["mark"], time))
    rows = tuple(_row(i, r, offsets[i], i in builder.drawn) for i, r in enumerate(records))
    return TraceView(title, _summary(records), tuple(participants), tuple(items), rows, builder.hidden)


# --- Mermaid -------------------------------------------------------------------------------

#: style -> Mermaid arrow; a style not listed is drawn as a note.
MERMAID_ARROWS = {
    "deliver": "->>", "filtered": "--x", "dead-letter": "-x", "retry": "-->>", "call": "-->>",
    "step-start": "-->>", "step-done": "->>", "step-failed": "-x", "step-skipped": "-->>",
    "compensate": "-->>", "ok": "-->>",
}
#: style -> background band (``rect``) around the message, the colours of :mod:`.style`.
MERMAID_BANDS = {
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
    for item in view.items:
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
        span = first if first == last else f"{first},{last}"
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


# --- formats -------------------------------------------------------------------------------

def render_trace(view: TraceView, fmt: str) -> str:
    """The text of the trace *view* in *fmt* (``mermaid``, ``svg`` or ``html``).

    DOT has no sequence diagrams, so ``dot`` (like any other name) raises UnknownFormat
    listing the formats a trace can be drawn in.
    """
    from . import UnknownFormat  # the package imports this module; import at call time
    from .sequence_svg import render_trace_html, render_trace_svg

    renderers = {"mermaid": render_trace_mermaid, "svg": render_trace_svg, "html": render_trace_html}
    if fmt not in renderers:
        raise UnknownFormat(fmt, sorted(renderers))
    return renderers[fmt](view)
