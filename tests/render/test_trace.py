"""A run's trace as a sequence diagram: loading, the view, Mermaid golden, SVG and HTML."""
from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from render_helpers import HERE

from engine.core import eventtime
from engine.core.errors import LoadError, Location, MeshError
from engine.render import UnknownFormat, load_trace, render_trace, trace_view
from engine.render.trace import (
    COMPRESS_AFTER,
    MAX_ITEMS,
    fmt_offset,
    sequence_escape,
    threads,
)

SAGA = HERE / "fixtures" / "saga.trace.jsonl"
SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
def saga_records():
    return load_trace(str(SAGA))


@pytest.fixture(scope="module")
def saga(saga_records):
    return trace_view(saga_records, "Run trace: saga")


def deliveries(n: int) -> list[dict]:
    return [
        {
            "seq": i + 1,
            "t": f"2024-05-01T10:00:{i % 60:02d}Z",
            "kind": "deliver",
            "event": f"e{i}",
            "type": "tick",
            "from": "ingress",
            "consumer": "service:clock/tick",
            "attempt": 1,
        }
        for i in range(n)
    ]


def svg_root(view):
    return ET.fromstring(render_trace(view, "svg").encode())


def items_of(root, style: str | None = None):
    return [
        g
        for g in root.iter(f"{SVG}g")
        if g.get("class", "").startswith("item ") and (style is None or g.get("class") == f"item {style}")
    ]


def texts(element) -> list[str]:
    return ["".join(t.itertext()) for t in element.iter(f"{SVG}text")]


# --- formats -------------------------------------------------------------------------------

def test_mermaid_golden(saga, golden):
    golden("saga-trace.mmd", render_trace(saga, "mermaid"))


def test_dot_is_not_a_trace_format(saga):
    with pytest.raises(UnknownFormat) as info:
        render_trace(saga, "dot")
    assert isinstance(info.value, MeshError) and info.value.exit_code == 2
    assert str(info.value) == "unknown format 'dot'; choose one of: html, mermaid, svg"


@pytest.mark.parametrize("fmt", ["mermaid", "svg", "html"])
def test_output_is_deterministic(saga_records, fmt):
    first = render_trace(trace_view(saga_records, "t"), fmt)
    again = render_trace(trace_view(json.loads(json.dumps(saga_records)), "t"), fmt)
    assert first == again


# --- what is drawn -------------------------------------------------------------------------

def test_lanes_are_the_participants_in_order_of_first_appearance(saga):
    assert [(p.label, p.kind) for p in saga.participants] == [
        ("ingress", "ingress"), ("eu-orders", "route"), ("inventory", "service"), ("analytics", "service"),
        ("fulfil-order", "orchestration"), ("billing", "service"), ("DLQ", "dlq"), ("leaderboard", "stream"),
    ]
    assert saga.lanes == saga.participants  # nothing past the cap here


def test_lanes_are_those_of_the_drawn_items_only():
    records = deliveries(3) + [{"seq": 4, "t": "2024-05-01T10:00:04Z", "kind": "deliver", "event": "x",
                                "type": "t", "from": "ingress", "consumer": "route:late", "attempt": 1}]
    view = trace_view(records, "t", limit=3)
    assert [p.id for p in view.participants] == ["ingress", "service:clock"]
    assert [p.id for p in view.lanes] == ["ingress", "service:clock", "route:late"]
    assert "late" not in render_trace(view, "mermaid")


def test_steps_are_drawn_on_their_orchestrations_lifeline():
    base = {"t": "2024-05-01T10:00:00Z", "event": "e1"}
    records = [base | {"seq": 1, "kind": "call", "consumer": "orchestration:o/charge",
                       "target": "python:m:f"},
               base | {"seq": 2, "kind": "retry", "consumer": "orchestration:o/charge", "attempt": 1,
                       "delay": 2}]
    view = trace_view(records, "t")
    assert [p.id for p in view.participants] == ["orchestration:o"]
    assert {i.src for i in view.items} == {"orchestration:o"}


def test_subscriptions_of_one_service_share_a_lifeline():
    records = [
        {"seq": 1, "t": "2024-05-01T10:00:00Z", "kind": "deliver", "event": "e1", "type": "a",
         "from": "ingress", "consumer": "service:billing/charge", "attempt": 1},
        {"seq": 2, "t": "2024-05-01T10:00:00Z", "kind": "deliver", "event": "e1", "type": "a",
         "from": "ingress", "consumer": "service:billing/refund", "attempt": 1},
    ]
    view = trace_view(records, "t")
    assert [p.id for p in view.participants] == ["ingress", "service:billing"]
    assert {(i.src, i.dst) for i in view.items} == {("ingress", "service:billing")}


def test_no_dlq_lifeline_without_dead_letters():
    assert [p.id for p in trace_view(deliveries(3), "t").participants] == ["ingress", "service:clock"]


def test_ok_and_failures_mark_their_delivery(saga):
    marks = [(i.label, i.mark) for i in saga.items if i.style == "deliver"]
    assert marks == [
        ("order.placed", "ok"), ("order.placed", "ok"), ("order.placed", "ok"),
        ("stock.reserved", "failed"), ("stock.reserved #2", "failed"), ("stock.reserved #3", "failed"),
        ("score.recorded", "ok"),
    ]
    assert not [i for i in saga.items if i.style == "ok"]  # every ok folded into its delivery


def test_an_ok_without_its_delivery_is_a_note():
    view = trace_view([{"seq": 1, "t": "2024-05-01T10:00:00Z", "kind": "ok", "event": "e9",
                        "consumer": "route:r", "attempt": 1}], "t")
    [item] = view.items
    assert (item.shape, item.src, item.label) == ("note", "route:r", "ok ✓")


def test_retry_dead_letter_and_saga_words(saga):
    words = [(i.style, i.label) for i in saga.items if i.style not in ("deliver", "ingest")]
    assert ("retry", "retry in 1.5s: TimeoutError") in words
    assert ("dead-letter", "retries-exhausted") in words
    assert ("step-done", "reserve ✓") in words
    assert ("step-failed", "charge ✗ PaymentDeclined") in words
    assert ("compensate", "compensate reserve") in words
    assert ("run-compensated", "run r1 compensated") in words
    assert ("filtered", "order.placed ⊘ when") in words
    [dead] = [i for i in saga.items if i.style == "dead-letter"]
    assert (dead.src, dead.dst) == ("service:billing", "dlq")
    # a started step is told by its outcome, not drawn twice
    assert not [i for i in saga.items if i.style == "step-start"]


def test_runs_one_after_another_carry_no_tag_but_name_their_event():
    base = {"t": "2024-05-01T10:00:00Z", "orchestration": "o"}
    records = []
    for n, run in enumerate(("o:e1@/src", "o:e2@/src")):
        records += [base | {"seq": 4 * n + 1, "kind": "run-start", "run": run, "event": run[2:4]},
                    base | {"seq": 4 * n + 2, "kind": "step-start", "run": run, "step": "a", "attempt": 1},
                    base | {"seq": 4 * n + 3, "kind": "step-done", "run": run, "step": "a"},
                    base | {"seq": 4 * n + 4, "kind": "run-end", "run": run, "event": run[2:4],
                            "status": "completed"}]
    assert [i.label for i in trace_view(records, "t").items] == [
        "▶ run e1", "a ✓", "run e1 completed", "▶ run e2", "a ✓", "run e2 completed"]


def test_unfinished_step_and_interleaved_runs_are_told_apart():
    base = {"t": "2024-05-01T10:00:00Z", "orchestration": "o"}
    records = [
        base | {"seq": 1, "kind": "step-start", "run": "r1", "step": "a", "attempt": 1},
        base | {"seq": 2, "kind": "step-start", "run": "r2", "step": "a", "attempt": 2},
        base | {"seq": 3, "kind": "step-done", "run": "r2", "step": "a"},
    ]
    assert [i.label for i in trace_view(records, "t").items] == ["[r1] a …", "[r2] a #2 ✓"]


def test_time_offsets_are_shown_where_they_change(saga):
    assert [i.time for i in saga.items if i.time] == [
        "+0s",
        "+0.25s",
        "+0.5s",
        "+2s",
        "+2.1s",
        "+6s",
        "+12s",
        "+1m00s",
    ]
    assert [fmt_offset(s) for s in (0, 1.5, 12, 125, 3725)] == ["+0s", "+1.5s", "+12s", "+2m05s", "+1h02m"]


def gapped(seconds: float) -> list[dict]:
    start = eventtime.parse_or_none("2024-05-01T10:00:00Z")
    records = deliveries(4)
    for n, r in enumerate(records):
        r["t"] = eventtime.format(start + (seconds if n >= 2 else 0) + n * 0.5)
    return records


def test_long_pauses_are_compressed_and_marked():
    view = trace_view(gapped(3600), "t")
    assert [i.jump for i in view.items] == ["", "", "1h00m", ""]
    assert [i.time for i in view.items] == ["+0s", "+0.5s", "+1h00m", ""]
    assert "Note over p_ingress,p_service_clock: ≈ 1h00m later (time compressed)" in render_trace(
        view, "mermaid"
    )
    root = svg_root(view)
    assert "≈ 1h00m later (time compressed)" in texts(root)
    # An hour costs the diagram what 10 seconds do: one thin band, no blank screen.
    assert root.get("height") == svg_root(trace_view(gapped(10), "t")).get("height")
    short = svg_root(trace_view(gapped(COMPRESS_AFTER - 1.5), "t"))  # under the threshold: no band
    assert "time compressed" not in " ".join(texts(short)) and float(short.get("height")) < float(
        root.get("height")
    )


def test_threads_follow_causes_and_runs(saga, saga_records):
    roots, runs = threads(saga_records)
    by_seq = {r["seq"]: (root, run) for r, root, run in zip(saga_records, roots, runs)}
    assert {root for root, _ in by_seq.values()} == {"e1", "e3", ""}
    run_records = sorted(seq for seq, (_, run) in by_seq.items() if run == "r1")
    assert [saga_records[s - 1]["kind"] for s in run_records][:3] == ["deliver", "run-start", "ok"]
    assert all(by_seq[s][0] == "e1" for s in run_records)
    assert [row.run for row in saga.rows] == runs and [row.root for row in saga.rows] == roots


def test_a_rejected_input_is_drawn_refused_at_the_ingress():
    records = [{"seq": 1, "t": "2024-05-01T10:00:00Z", "kind": "ingest", "event": None, "type": None,
                "rejected": "schema-invalid"},
               {"seq": 2, "t": "2024-05-01T10:00:00Z", "kind": "dead-letter", "event": None, "type": None,
                "consumer": "mesh", "reason": "schema-invalid", "attempts": 0, "error": "BadInput: x",
                "queue": "dlq"}]
    view = trace_view(records, "t")
    assert [(i.style, i.label) for i in view.items] == [("rejected", "✗ input (schema-invalid)"),
                                                        ("dead-letter", "schema-invalid")]
    assert view.counts == (("events_in", "events in", 1), ("dead_lettered", "dead-lettered", 1))


def test_unknown_kinds_and_fields_are_tolerated():
    records = deliveries(1)
    records[0] |= {"shard": 7, "trace_parent": {"x": 1}}  # unknown fields: ignored
    records += [
        {"seq": 2, "t": "2024-05-01T10:00:01Z", "kind": "gc-pause", "millis": 12},
        {"seq": 3, "t": "not a time", "kind": "rebalance", "consumer": "stream:board"},
        {"seq": 4, "kind": "deliver"},  # nothing but a kind
    ]
    view = trace_view(records, "t")
    assert view.items[0].label == "tick"
    notes = [(i.style, i.src, i.label) for i in view.items[1:3]]
    assert notes == [("unknown", "ingress", "gc-pause: millis=12"), ("unknown", "stream:board", "rebalance")]
    for fmt in ("mermaid", "svg", "html"):
        assert "rebalance" in render_trace(view, fmt)
    assert "Note over p_ingress: gc-pause: millis=12" in render_trace(view, "mermaid")


def test_labels_are_escaped_in_every_format():
    nasty = 'a<b>&"c"; #1'
    records = [{"seq": 1, "t": "2024-05-01T10:00:00Z", "kind": "ingest", "event": "e1", "type": nasty}]
    view = trace_view(records, nasty)
    ET.fromstring(render_trace(view, "svg").encode())
    assert nasty not in render_trace(view, "html")
    mermaid = render_trace(view, "mermaid")
    assert sequence_escape(nasty) in mermaid and "a#lt;b#gt;&#quot;c#quot;#59; #35;1" in mermaid


# --- SVG and HTML --------------------------------------------------------------------------

def test_svg_is_well_formed_with_one_group_per_item(saga):
    root = svg_root(saga)
    assert root.tag == f"{SVG}svg"
    assert len(items_of(root)) == len(saga.items)
    heads = [g for g in root.iter(f"{SVG}g") if g.get("class", "").startswith("participant head ")]
    assert [texts(g)[0] for g in heads] == [p.label for p in saga.participants]
    assert "+1m00s" in texts(root)


def test_svg_dead_letter_is_red_and_compensation_orange(saga):
    root = svg_root(saga)
    [dead] = items_of(root, "dead-letter")
    line = dead.find(f"{SVG}line")
    assert line.get("stroke") == "#b83227" and line.get("marker-end") == "url(#seq-arrow-b83227)"
    assert "retries-exhausted" in texts(dead)
    [undo] = items_of(root, "compensate")
    assert undo.find(f"{SVG}path").get("stroke") == "#d9822b"
    assert [g.get("class") for g in root.iter(f"{SVG}g") if g.get("class", "").endswith(" dlq")] == [
        "participant head dlq", "participant foot dlq"]


def page_json(html: str) -> dict:
    found = re.search(r'<script type="application/json" id="trace-data">(.*?)</script>', html, re.S)
    return json.loads(found.group(1))


def test_html_is_self_contained_with_every_record(saga, saga_records):
    html = render_trace(saga, "html")
    assert html.startswith("<!DOCTYPE html>")
    without_ns = html.replace('xmlns="http://www.w3.org/2000/svg"', "").replace(
        '"http://www.w3.org/2000/svg"', ""
    )
    assert not re.search(r"https?:", without_ns)
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*//""", without_ns)
    assert "<link" not in html and "@import" not in html and " src=" not in html
    assert len(re.findall(r"<script", html)) == 2  # the data, and the script that draws it
    data = page_json(html)
    assert len(data["rows"]) == len(saga_records) and len(data["items"]) == len(saga.all_items)
    assert [lane[0] for lane in data["lanes"]] == [p.label for p in saga.lanes]


def test_html_data_cannot_close_its_script():
    records = deliveries(1)
    records[0]["type"] = "</script><script>alert(1)</script>\u2028"
    html = render_trace(trace_view(records, "t"), "html")
    assert "</script><script>alert" not in html
    assert "type=" + records[0]["type"] in page_json(html)["strings"]


def test_html_counts_are_the_summarys_figures(saga):
    html = render_trace(saga, "html")
    for key, label, value in saga.counts:
        assert f'<b data-key="{key}">{value}</b> {label}' in html


# --- long traces ---------------------------------------------------------------------------

def test_long_traces_are_cut_with_a_visible_note():
    records = deliveries(MAX_ITEMS + 100)
    view = trace_view(records, "long")
    assert len(view.items) == MAX_ITEMS and view.hidden == 100
    assert "Note over p_ingress,p_service_clock: … 100 more records (see table)" in render_trace(
        view, "mermaid"
    )
    root = svg_root(view)
    assert len(items_of(root)) == MAX_ITEMS
    assert "… 100 more records (see table)" in texts(root)
    data = page_json(render_trace(view, "html"))  # the page has them all, paged by its script
    assert len(data["rows"]) == len(data["items"]) == MAX_ITEMS + 100


def test_a_short_trace_has_no_cut_note(saga):
    assert saga.hidden == 0
    assert "more records" not in render_trace(saga, "mermaid") + render_trace(saga, "svg")


# --- loading -------------------------------------------------------------------------------

def test_load_trace_reads_json_lines(saga_records):
    assert len(saga_records) == 29
    assert [r["seq"] for r in saga_records] == list(range(1, 30))


def test_load_trace_locates_every_bad_line(tmp_path):
    path = tmp_path / "run.trace.jsonl"
    good = json.dumps(deliveries(1)[0])
    path.write_text("\n".join([good, "", '{"seq": 2, "kind": ', good, "[1, 2]", '{"seq": 6}']) + "\n")
    with pytest.raises(LoadError) as info:
        load_trace(str(path))
    diags = info.value.diagnostics
    assert [(d.loc, d.code) for d in diags] == [
        (Location(str(path), 3, 1), "bad-trace"), (Location(str(path), 5, 1), "bad-trace"),
        (Location(str(path), 6, 1), "bad-trace"),
    ]
    assert str(info.value).startswith(f"{path}:3:1: error[bad-trace]: not JSON")
    assert "not list" in diags[1].message and '"kind"' in diags[2].message


def test_load_trace_of_a_missing_file(tmp_path):
    with pytest.raises(LoadError) as info:
        load_trace(str(tmp_path / "nope.jsonl"))
    [diag] = info.value.diagnostics
    assert diag.code == "bad-trace" and diag.loc == Location(str(tmp_path / "nope.jsonl"))


# --- any input -----------------------------------------------------------------------------

KINDS = ["ingest", "deliver", "ok", "filtered", "emit", "retry", "dead-letter", "call", "log", "run-start",
         "step-start", "step-done", "step-failed", "step-skipped", "compensate", "run-end", "window", "odd"]
VALUES = st.one_of(st.none(), st.integers(-3, 5), st.text(max_size=12), st.sampled_from(
    ["ingress", "service:a/b", "service:a/c", "route:r", "orchestration:o", "stream:s", "weird", "e1", "e2"]))
RECORDS = st.lists(st.fixed_dictionaries(
    {"kind": st.sampled_from(KINDS)},
    optional={k: VALUES for k in ("seq", "t", "event", "type", "from", "consumer", "by", "attempt", "delay",
                                  "error", "run", "orchestration", "step", "status", "reason")},
).flatmap(lambda r: st.dictionaries(st.text(max_size=6), VALUES, max_size=2).map(lambda extra: extra | r)),
    max_size=25)


@pytest.mark.slow
@settings(max_examples=60, deadline=None)
@given(RECORDS, st.integers(1, 30))
def test_any_records_render_in_every_format(records, limit):
    view = trace_view(records, "any", limit=limit)
    assert len(view.items) + view.hidden <= len(records)
    assert len(view.rows) == len(records)
    ET.fromstring(render_trace(view, "svg").encode())
    assert render_trace(view, "mermaid").startswith("---\n")
    assert render_trace(view, "html").rstrip().endswith("</html>")
