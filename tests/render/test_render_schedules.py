"""A schedule is drawn as a source node emitting its event type, in every format."""
from __future__ import annotations

MESH = """
apiVersion: meshctl/v1
kind: EventType
metadata: {name: report.due}
---
apiVersion: meshctl/v1
kind: Service
metadata: {name: reports}
spec:
  subscriptions: [{on: report.due, do: [{log: hi}]}]
---
apiVersion: meshctl/v1
kind: Schedule
metadata: {name: nightly}
spec:
  cron: "30 2 * * MON-FRI"
  timezone: Europe/Paris
  emit: {type: report.due}
---
apiVersion: meshctl/v1
kind: Schedule
metadata: {name: often}
spec: {every: 15m, emit: {type: report.due}, catch_up: fire_once}
"""


def render(meshctl, path, fmt: str) -> str:
    result = meshctl("render", path, "--format", fmt)
    assert result.exit_code == 0, result.output
    return result.output


def test_mermaid_and_dot_draw_each_schedule_as_a_source(meshctl, write):
    path = write(MESH)
    mermaid = render(meshctl, path, "mermaid")
    assert 'n_schedule_nightly[/"nightly<br/>cron 30 2 * * MON-FRI Europe/Paris"\\]' in mermaid
    assert 'n_schedule_often[/"often<br/>every 15m"\\]' in mermaid
    assert "n_schedule_nightly --> n_event_report_due" in mermaid
    assert "classDef schedule" in mermaid
    dot = render(meshctl, path, "dot")
    assert '"schedule:often" [label="often\\nevery 15m", shape=cds' in dot
    assert '"schedule:nightly" -> "event:report.due"' in dot


def test_svg_and_html_have_the_schedule_its_legend_and_its_table(meshctl, write, tmp_path):
    path = write(MESH)
    svg, html = tmp_path / "flow.svg", tmp_path / "flow.html"
    assert meshctl("render", path, "--format", "svg", "-o", svg).exit_code == 0
    assert meshctl("render", path, "--format", "html", "-o", html).exit_code == 0
    drawn = svg.read_text()
    assert "every 15m" in drawn and ">schedule<" in drawn  # the node, and its legend entry
    page = html.read_text()
    assert "Schedules" in page and "fire_once, grace 1m" in page and "2 schedules" in page
