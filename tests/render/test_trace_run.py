"""The run view of real runs: its figures are the run summary's, and a long trace's page stays small."""
from __future__ import annotations

import json
import re

import pytest
from render_helpers import REPO, replicated

from engine.render import load_trace, render_trace, trace_view
from engine.render.trace import TRACE_COUNTS, trace_counts

WORKFLOWS = REPO / "workflows"
SCORE = "service:score-service/score.recorded"


def run(meshctl, tmp_path, mesh: str, events, *extra) -> tuple[dict, list[dict]]:
    trace = tmp_path / f"{mesh}.trace.jsonl"
    result = meshctl("run", WORKFLOWS / mesh, "--events", events, "--trace", trace, "--format", "json",
                     *extra)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout), load_trace(str(trace))


def with_bad_inputs(tmp_path, mesh: str):
    """The mesh's events, then inputs refused at entry and a repeat of the first input."""
    lines = (WORKFLOWS / mesh / "events.jsonl").read_text().splitlines()
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(lines + ["not json", "[1, 2]", '{"id": "x"}', lines[0]]) + "\n")
    return path


CASES = {
    "orders": ("orders", None, ()),
    "arena": ("arena", None, ()),
    "arena-orchestrated": ("arena-orchestrated", None, ()),
    "arena-faults": ("arena", None, ("--fault", f"{SCORE}=2:TimeoutError")),
    "arena-dead": ("arena", None, ("--fault", f"{SCORE}=always:TimeoutError")),
    "orders-bad-inputs": ("orders", with_bad_inputs, ()),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_figures_are_the_run_summarys(meshctl, tmp_path, case):
    mesh, events, extra = CASES[case]
    events = events(tmp_path, mesh) if events else WORKFLOWS / mesh / "events.jsonl"
    summary, records = run(meshctl, tmp_path, mesh, events, *extra)
    assert trace_counts(records) == {key: summary[key] for key, *_ in TRACE_COUNTS}
    view = trace_view(records, "t")
    html, svg = render_trace(view, "html"), render_trace(view, "svg")
    assert f'<b data-key="events_in">{summary["events_in"]}</b> events in' in html
    for key, label, value in view.counts:
        assert value == summary[key]
        assert f"{value} {label}" in svg


def test_rejected_inputs_count_as_events_in(meshctl, tmp_path):
    summary, records = run(meshctl, tmp_path, "orders", with_bad_inputs(tmp_path, "orders"))
    plain, _ = run(meshctl, tmp_path, "orders", WORKFLOWS / "orders" / "events.jsonl")
    assert summary["events_in"] == plain["events_in"] + 4 and summary["duplicates"] >= 1
    assert dict((k, v) for k, _, v in trace_view(records, "t").counts)["events_in"] == summary["events_in"]


#: Bytes a page of the generated 57,200-record trace may take (measured: about 3.6 MB; the
#: page that wrote every row and arrow out took 16.8 MB).
PAGE_BOUND = 6_000_000


@pytest.mark.slow
def test_a_57k_record_trace_makes_a_small_page(meshctl, tmp_path):
    _, records = run(meshctl, tmp_path, "orders", WORKFLOWS / "orders" / "events.jsonl")
    long = replicated(records, 200)
    assert len(long) == 57_200
    view = trace_view(long, "long")
    html = render_trace(view, "html")
    assert len(html.encode()) < PAGE_BOUND
    # rows and arrows are drawn by the page's script, a page at a time: none is written out
    assert not re.search(r'<tr id="r-\d', html) and not re.search(r'<g class="item [a-z-]+"', html)
    found = re.search(r'<script type="application/json" id="trace-data">(.*?)</script>', html, re.S)
    data = json.loads(found.group(1))
    assert len(data["rows"]) == 57_200 and len(data["items"]) == len(view.all_items)
    assert view.counts[0] == ("events_in", "events in", 2000)


def test_the_run_view_picture_is_shown_and_small():
    text = (REPO / "docs" / "render.md").read_text(encoding="utf-8")
    assert "](images/render-orders-run.png)" in text
    path = REPO / "docs" / "images" / "render-orders-run.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size < 300 * 1024
