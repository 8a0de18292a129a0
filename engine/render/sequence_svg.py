"""A trace's sequence diagram drawn as SVG (``trace.svg.j2``), and the HTML page around it.

Python computes every coordinate; the templates only write elements, with XML autoescaping.
The layout is a grid: one lifeline per participant, one row per item, top to bottom.

* Columns: two neighbouring lifelines are at least as far apart as their header boxes need;
  every arrow label should fit between its two lifelines, and every loop or note drawn to the
  right of a lifeline before the next one (the last column widens the canvas). Short spans
  are settled first so a long arrow only widens what is still too narrow. No gap grows past
  :data:`MAX_GAP`: a label that still does not fit is cut (its whole text is in the tooltip),
  so one long label cannot push the other lifelines out of sight.
* Rows: a fixed height per shape; the virtual time since the first record is written in
  the left margin where it changes, with a faint rule across. Where the clock jumped (see
  :data:`.trace.COMPRESS_AFTER`) a thin zigzag band says how much time was left out.

Headers reuse the node shapes of the flow diagram (:func:`.svg.node_shape`), so a service is the
same green box and the DLQ the same red cylinder in both pictures.
"""
from __future__ import annotations

import json
from dataclasses import replace
from typing import Iterator

from markupsafe import Markup

from .base import render_template
from .style import NODE_STYLE
from .svg import FONT, node_shape, text_width
from .trace import (
    COMPRESS_AFTER,
    DETAILS_SEP,
    PAGE_ITEMS,
    PAGE_ROWS,
    TONES,
    TraceItem,
    TraceView,
)
from .view import ViewNode

LABEL = 10.5            # message and note text size
GUTTER = 70.0           # left margin for time offsets
HEADER_H = 44.0
ROW_H = {"arrow": 34.0, "ingest": 34.0, "self": 40.0, "note": 30.0}
LOOP_W, LOOP_H = 26.0, 14.0
MIN_GAP = 130.0
MAX_GAP = 240.0         # widest gap between two lifelines (and margin left of the first)
JUMP_H = 22.0           # the compressed-time band

#: participant kind -> node kind of :data:`.style.NODE_STYLE` (shape and colours) and sublabel.
HEADER_KIND = {
    "ingress": ("trigger", "events in"), "service": ("subscription", "service"),
    "route": ("route", "route"), "orchestration": ("orchestration", "orchestration"),
    "stream": ("stream", "stream"), "dlq": ("dlq", "dead-letter queue"), "other": ("endpoint", "consumer"),
}

#: arrow and loop styles -> (colour, width, dash, legend text)
LINE_STYLE = {
    "deliver": ("#5b6670", 1.4, "", "delivery (✓ ok, ✗ failed)"),
    "filtered": ("#9aa5b1", 1.2, "4 3", "filtered out"),
    "dead-letter": ("#b83227", 1.6, "5 4", "dead-lettered"),
    "retry": ("#b7791f", 1.3, "4 3", "retry (after a delay)"),
    "call": ("#6b6b6b", 1.2, "2 3", "call"),
    "step-start": ("#6a47a8", 1.2, "2 3", "step running"),
    "step-done": ("#2f7d46", 1.4, "", "step done"),
    "step-failed": ("#b83227", 1.4, "", "step failed"),
    "step-skipped": ("#9aa5b1", 1.2, "4 3", "step skipped"),
    "compensate": ("#d9822b", 1.4, "6 4", "compensation (undo)"),
}
DEFAULT_LINE = ("#5b6670", 1.4, "", "")

#: note styles -> (fill, stroke, text colour, legend text); pills are events.
NOTE_STYLE = {
    "ingest": (*NODE_STYLE["event"][:2], "#1f2933", "event in / emitted"),
    "rejected": ("#fde7e4", "#b83227", "#8a241c", "input refused at entry"),
    "emit": (*NODE_STYLE["event"][:2], "#1f2933", "event in / emitted"),
    "log": ("#f5f7fa", "#9aa5b1", "#3e4c59", "log"),
    "run-start": (*NODE_STYLE["orchestration"][:2], "#1f2933", "run started"),
    "run-completed": (*NODE_STYLE["success"][:2], "#1f2933", "run completed"),
    "run-failed": (*NODE_STYLE["failure"][:2], "#1f2933", "run failed"),
    "run-compensated": ("#fdf0e2", "#d9822b", "#1f2933", "run compensated"),
    "run-end": (*NODE_STYLE["orchestration"][:2], "#1f2933", "run ended"),
    "window": (*NODE_STYLE["stream"][:2], "#1f2933", "window closed"),
    "ok": (*NODE_STYLE["success"][:2], "#1f2933", ""),
    "filtered": ("#f5f7fa", "#9aa5b1", "#52606d", ""),
    "unknown": ("#ffffff", "#9aa5b1", "#52606d", "unknown record"),
    "choice": ("#fff3c4", "#b7791f", "#5c3d05", "explored choice"),
    "crash": ("#fde7e4", "#b83227", "#8a241c", "crash before the acknowledgement"),
    "violation": ("#b83227", "#8a241c", "#ffffff", "invariant broken"),
}
DEFAULT_NOTE = ("#ffffff", "#9aa5b1", "#52606d", "")
PILLS = frozenset({"ingest", "emit", "rejected"})

#: styles whose row gets a tinted band across the whole diagram.
BANDS = {"dead-letter": "#fde7e4", "step-failed": "#fde7e4", "compensate": "#fdf0e2", "choice": "#fff8dc",
         "violation": "#fde7e4"}
MARKS = {"ok": ("✓", "#2f7d46"), "failed": ("✗", "#b83227")}


def _r(value: float) -> float:
    return round(value, 1)


def _text_width(text: str) -> float:
    """Message text width, a little wider than :func:`.svg.text_width` says: item text is
    full of digits, brackets and punctuation, which DejaVu Sans draws wider than the estimate."""
    return text_width(text, LABEL) * 1.1


def _label_width(item: TraceItem) -> float:
    return _text_width(item.label) + (10 if item.mark else 0)


def _note_width(item: TraceItem) -> float:
    return _text_width(item.label) + (22 if item.style in PILLS else 16)


def _extent_right(item: TraceItem) -> float:
    """How far right of its lifeline a loop or note reaches."""
    if item.shape == "self":
        return LOOP_W + 8 + _label_width(item)
    if item.style == "emit":
        return 18 + _note_width(item)
    if item.shape == "note":
        return _note_width(item) - 10
    return 0.0


def _header_width(label: str, sub: str) -> float:
    return max(96.0, round(max(text_width(label, 13, bold=True), text_width(sub, 11)) + 28))


def column_positions(view: TraceView) -> tuple[list[float], float, float]:
    """Lifeline x positions, the canvas width and the header box widths' maximum."""
    index = {p.id: i for i, p in enumerate(view.participants)}
    widths = [_header_width(p.label, HEADER_KIND.get(p.kind, HEADER_KIND["other"])[1])
              for p in view.participants]
    n = len(widths)
    gaps = [max(MIN_GAP, (widths[i] + widths[i + 1]) / 2 + 24) for i in range(n - 1)]
    right = widths[-1] / 2 + 24
    left = widths[0] / 2 + 16
    spans = []
    for item in view.items:
        a, b = index[item.src], index[item.dst]
        if item.shape == "ingest":
            left = max(left, _note_width(item) + 30)
        elif a == b or item.shape in ("self", "note"):
            need = _extent_right(item) + 28
            if a < n - 1:
                gaps[a] = max(gaps[a], need)
            else:
                right = max(right, need)
        else:
            spans.append((min(a, b), max(a, b), _label_width(item) + 36))
    for lo, hi, need in sorted(spans, key=lambda s: (s[1] - s[0], s[0], s[1])):
        short = need - sum(gaps[lo:hi])
        if short > 0:
            for k in range(lo, hi):
                gaps[k] += short / (hi - lo)
    gaps = [min(gap, max(MAX_GAP, (widths[i] + widths[i + 1]) / 2 + 24)) for i, gap in enumerate(gaps)]
    left, right = min(left, MAX_GAP), min(right, MAX_GAP)
    xs = [GUTTER + left]
    for gap in gaps:
        xs.append(xs[-1] + gap)
    return [_r(x) for x in xs], _r(xs[-1] + right), max(widths)


def _legend(view: TraceView) -> list[dict]:
    """One entry per style drawn: lines first, then notes, each in table order."""
    order: dict[str, int] = {}
    for style in [*LINE_STYLE, *NOTE_STYLE]:
        order.setdefault(style, len(order))
    entries, seen = [], set()
    for style in sorted(view.styles(), key=lambda s: order.get(s, len(order))):
        if style in LINE_STYLE:
            colour, width, dash, text = LINE_STYLE[style]
            entry = {"kind": "line", "stroke": colour, "width": width, "dash": dash, "text": text}
        else:
            fill, stroke, _, text = NOTE_STYLE.get(style, DEFAULT_NOTE)
            entry = {
                "kind": "pill" if style in PILLS else "note",
                "fill": fill,
                "stroke": stroke,
                "text": text,
            }
        if entry["text"] and entry["text"] not in seen:
            seen.add(entry["text"])
            entries.append(entry)
    return entries


def _place_legend(entries: list[dict], x0: float, y0: float, max_width: float) -> tuple[list[dict], float]:
    placed, x, y = [], x0, y0
    for entry in entries:
        w = 30 + text_width(entry["text"], 11) + 18
        if x + w > max_width and x > x0:
            x, y = x0, y + 20
        placed.append(entry | {"x": _r(x), "y": y})
        x += w
    return placed, (y + 16 if placed else y0 - 4)


def _headers(view: TraceView, xs: list[float], y: float) -> list[dict]:
    out = []
    for p, x in zip(view.participants, xs):
        kind, sub = HEADER_KIND.get(p.kind, HEADER_KIND["other"])
        w = _header_width(p.label, sub)
        shape = node_shape(ViewNode(p.id, p.label, kind), _r(x - w / 2), y, w, HEADER_H)
        label_y, sub_y = (y + 25, y + 38) if kind == "dlq" else (y + 20, y + 35)
        out.append(
            {
                "id": p.id,
                "kind": p.kind,
                "shape": shape,
                "x": x,
                "label": p.label,
                "sub": sub,
                "label_y": _r(label_y),
                "sub_y": _r(sub_y),
                "stroke": shape["stroke"],
            }
        )
    return out


def _item(item: TraceItem, xs: dict[str, float], y: float) -> dict:
    """Geometry of one item whose row starts at *y* (``y`` of the returned dict is its axis)."""
    h = ROW_H.get(item.shape, 30.0)
    axis = _r(y + h - 10) if item.shape in ("arrow", "ingest") else _r(y + h / 2)
    x0, x1 = xs[item.src], xs[item.dst]
    colour, width, dash, _ = LINE_STYLE.get(item.style, DEFAULT_LINE)
    fill, stroke, ink, _ = NOTE_STYLE.get(item.style, DEFAULT_NOTE)
    mark = MARKS.get(item.mark)
    out = {
        "item": item,
        "y": axis,
        "halo": BANDS.get(item.style, "#ffffff"),
        "colour": colour,
        "width": width,
        "dash": dash,
        "fill": fill,
        "stroke": stroke,
        "ink": ink,
        "mark": mark,
        "title": f"#{item.seq} {item.detail}".strip(),
    }
    if item.shape == "arrow":
        left_to_right = x1 >= x0
        end = x1 - 1 if left_to_right else x1 + 1
        out |= {"kind": "arrow", "x1": x0, "x2": _r(end), "tx": _r((x0 + x1) / 2), "ty": _r(axis - 6)}
    elif item.shape == "self":
        d = f"M{x0},{_r(axis - LOOP_H / 2)} H{_r(x0 + LOOP_W)} V{_r(axis + LOOP_H / 2)} H{_r(x0 + 2)}"
        out |= {"kind": "loop", "d": d, "tx": _r(x0 + LOOP_W + 8), "ty": _r(axis + 4)}
    elif item.shape == "ingest":
        w = _note_width(item)
        px = _r(x0 - 18 - w)
        out |= {
            "kind": "pill",
            "px": px,
            "pw": _r(w),
            "py": _r(axis - 9),
            "ph": 18.0,
            "tx": _r(px + w / 2),
            "ty": _r(axis + 3.6),
            "x1": _r(px + w),
            "x2": _r(x0 - 1),
        }
    elif item.style == "emit":
        w = _note_width(item)
        px = _r(x0 + 18)
        out |= {
            "kind": "pill",
            "px": px,
            "pw": _r(w),
            "py": _r(axis - 9),
            "ph": 18.0,
            "tx": _r(px + w / 2),
            "ty": _r(axis + 3.6),
            "x1": x0,
            "x2": _r(px - 1),
        }
    else:
        w = _note_width(item)
        px = _r(x0 - 10)
        out |= {
            "kind": "note",
            "px": px,
            "pw": _r(w),
            "py": _r(axis - 10),
            "ph": 20.0,
            "tx": _r(px + 8),
            "ty": _r(axis + 3.6),
            "dashed": item.style == "unknown",
        }
    return out


def fit(text: str, room: float) -> str:
    """*text* cut with an ellipsis to what :func:`_text_width` says fits in *room*."""
    if _text_width(text) <= room:
        return text
    keep = len(text)
    while keep > 1 and _text_width(text[:keep] + "…") > room:
        keep -= 1
    return text[:keep].rstrip() + "…"


def _fitted(item: TraceItem, at: dict[str, float], room: dict[str, float]) -> TraceItem:
    """*item* with its label cut to the room its lifelines leave it (the reverse of the
    needs :func:`column_positions` computed, where a gap was capped)."""
    x0, x1 = at[item.src], at[item.dst]
    mark = 10 if item.mark else 0
    if item.shape == "ingest":
        space = x0 - GUTTER - 30 - 22
    elif item.shape == "arrow" and item.src != item.dst:
        space = abs(x1 - x0) - 36 - mark
    elif item.shape == "self":
        space = room[item.src] - 28 - LOOP_W - 8 - mark
    elif item.style == "emit":
        space = room[item.src] - 28 - 18 - 22
    else:
        space = room[item.src] - 28 + 10 - 16
    label = fit(item.label, max(space, 40.0))
    return item if label == item.label else replace(item, label=label)


def svg_context(view: TraceView, links: bool = False) -> dict:
    """Everything ``trace.svg.j2`` writes; *links* makes each item a link to its table row."""
    xs, width, _ = column_positions(view)
    at = {p.id: x for p, x in zip(view.participants, xs)}
    room = {p.id: (xs[i + 1] if i + 1 < len(xs) else width) - xs[i] for i, p in enumerate(view.participants)}
    view = replace(view, items=tuple(_fitted(item, at, room) for item in view.items))
    width = max(width, 560.0, text_width(view.title, 18, bold=True) + 48, text_width(view.subtitle, 12) + 48)
    legend, legend_bottom = _place_legend(_legend(view), 24, 76 if view.subtitle else 58, width - 24)
    top = legend_bottom + 14
    y = top + HEADER_H + 14
    rows, times, bands, jumps = [], [], [], []
    for item in view.items:
        if item.jump:
            jumps.append(
                {
                    "y": _r(y + JUMP_H / 2),
                    "text": f"≈ {item.jump} later (time compressed)",
                    "zigzag": _zigzag(GUTTER - 4, width - 12, _r(y + JUMP_H / 2)),
                }
            )
            y += JUMP_H
        h = ROW_H.get(item.shape, 30.0)
        row = _item(item, at, y)
        rows.append(row)
        if item.time:
            times.append({"y": row["y"], "text": item.time, "first": not times})
        if item.style in BANDS:
            bands.append({"y": _r(y + 1), "h": _r(h - 2), "fill": BANDS[item.style]})
        y += h
    more = None
    if view.hidden:
        more = {
            "x": xs[0] - 40,
            "y": _r(y + 4),
            "w": _r(xs[-1] - xs[0] + 80),
            "h": 26.0,
            "cx": _r((xs[0] + xs[-1]) / 2),
            "text": f"… {view.hidden} more record{'s' if view.hidden != 1 else ''} (see table)",
        }
        y += 36
    bottom = _r(y + 12)
    colours = sorted({(r["colour"]) for r in rows if r["kind"] in ("arrow", "loop")} | {"#3d6fa8"})
    return {
        "view": view,
        "font": FONT,
        "width": _r(width),
        "height": _r(bottom + HEADER_H + 20),
        "legend": legend,
        "heads": _headers(view, xs, _r(top)),
        "feet": _headers(view, xs, bottom),
        "life_top": _r(top + HEADER_H),
        "life_bottom": bottom,
        "rows": rows,
        "times": times,
        "bands": bands,
        "more": more,
        "markers": [(c.lstrip("#"), c) for c in colours],
        "links": links,
        "gutter": GUTTER,
        "jumps": jumps,
    }


def _zigzag(x0: float, x1: float, y: float, step: float = 8.0, amp: float = 3.0) -> str:
    """A path of small zigzags from *x0* to *x1* around *y*: the usual mark of a cut axis."""
    points, x, up = [f"M{_r(x0)},{y}"], x0, True
    while x + step < x1:
        x += step
        points.append(f"L{_r(x)},{_r(y - amp if up else y + amp)}")
        up = not up
    points.append(f"L{_r(x1)},{y}")
    return " ".join(points)


def render_trace_svg(view: TraceView, standalone: bool = True, links: bool = False) -> str:
    """The SVG document; ``standalone=False`` leaves out the XML declaration (for inline HTML)."""
    return render_template("trace.svg.j2", xml=True, standalone=standalone, **svg_context(view, links))


class _Strings:
    """Every text of the page once: rows and items refer to texts by their index."""

    def __init__(self):
        self.index: dict[str, int] = {"": 0}

    def __call__(self, text: str) -> int:
        found = self.index.get(text)
        if found is None:
            found = self.index[text] = len(self.index)
        return found

    def texts(self) -> list[str]:
        return list(self.index)


def _deltas(rows) -> Iterator[tuple[int | str, int | None]]:
    """Each row's ``seq`` and time in milliseconds, as the difference from the row before's
    (most are 1 and 0): a seq that is not a number stays as it is, a missing time is None."""
    seq, ms = 0, 0
    for row in rows:
        if row.seq.isdigit() and len(row.seq) < 16:
            step, seq = int(row.seq) - seq, int(row.seq)
        else:
            step = row.seq
        if row.seconds is None:
            yield step, None
            continue
        now = round(row.seconds * 1000)
        yield step, now - ms
        ms = now


def page_data(view: TraceView) -> dict:
    """What the page's script draws from: the records (table rows), every item and lifeline,
    and the styles; each text once, numbers as differences (a 57,000-record trace makes a
    page of a few MB, not one of 16 MB with every row and arrow written out).

    ``rows``: ``[seq, ms, kind, event, where, [details], root, run]``, where seq and ms (the
    offset from the first record) are differences from the row before and texts are indices
    into ``strings`` (details one per field); ``items``: ``[row, shape, style, src lane,
    dst lane, label, mark]``, row as the difference from the item before's; ``lanes``:
    ``[label, kind, sublabel, fill, stroke]``.
    """
    text = _Strings()
    lane_of = {p.id: n for n, p in enumerate(view.lanes)}
    lanes = []
    for p in view.lanes:
        kind, sub = HEADER_KIND.get(p.kind, HEADER_KIND["other"])
        fill, stroke, _ = NODE_STYLE[kind]
        lanes.append([p.label, p.kind, sub, fill, stroke])
    rows = [
        [
            seq,
            ms,
            text(r.kind),
            text(r.event),
            text(r.where),
            [text(field) for field in r.details.split(DETAILS_SEP)] if r.details else [],
            text(r.root),
            text(r.run),
        ]
        for r, (seq, ms) in zip(view.rows, _deltas(view.rows))
    ]
    items, last = [], 0
    for i in view.all_items:
        items.append(
            [
                i.index - last,
                text(i.shape),
                text(i.style),
                lane_of[i.src],
                lane_of[i.dst],
                text(i.label),
                text(i.mark),
            ]
        )
        last = i.index
    config = {
        "font": FONT,
        "label": LABEL,
        "gutter": GUTTER,
        "headerH": HEADER_H,
        "rowH": ROW_H,
        "loopW": LOOP_W,
        "loopH": LOOP_H,
        "minGap": MIN_GAP,
        "maxGap": MAX_GAP,
        "jumpH": JUMP_H,
        "compressAfter": COMPRESS_AFTER,
        "pageItems": PAGE_ITEMS,
        "pageRows": PAGE_ROWS,
        "detailsSep": DETAILS_SEP,
        "line": {k: list(v[:3]) for k, v in LINE_STYLE.items()},
        "defaultLine": list(DEFAULT_LINE[:3]),
        "note": {k: list(v[:3]) for k, v in NOTE_STYLE.items()},
        "defaultNote": list(DEFAULT_NOTE[:3]),
        "pills": sorted(PILLS),
        "bands": BANDS,
        "marks": MARKS,
        "tones": TONES,
    }
    return {"strings": text.texts(), "rows": rows, "items": items, "lanes": lanes, "config": config}


def _script_json(data: dict) -> Markup:
    """*data* as JSON that is safe inside ``<script type="application/json">``."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return Markup(text.replace("<", "\\u003c").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def render_trace_html(view: TraceView) -> str:
    """A self-contained page: the diagram and the table of records, drawn by a small inline
    script from the records embedded once as JSON (a page of items and of rows at a time),
    with filters, search, zoom and pan; no network, no external resources."""
    return render_template(
        "trace.html.j2",
        xml=True,
        view=view,
        data=_script_json(page_data(view)),
        legend=_legend(replace(view, items=view.all_items)),
        page_items=PAGE_ITEMS,
        page_rows=PAGE_ROWS,
        total_items=len(view.all_items),
        compress=COMPRESS_AFTER,
    )
