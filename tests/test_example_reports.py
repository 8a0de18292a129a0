"""workflows/reports over simulated days: the ticks expected of its two schedules, fired
across both clock changes of Europe/Paris."""
from __future__ import annotations

import json
from pathlib import Path

REPORTS = Path(__file__).resolve().parent.parent / "workflows" / "reports"


def run(meshctl, tmp_path, start: str, until: str) -> list[dict]:
    out = tmp_path / "out.jsonl"
    result = meshctl("run", REPORTS, "--from", start, "--until", until, "--output", out, "--format", "json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["dead_lettered"] == 0 and summary["events_in"] == 0
    return [json.loads(line) for line in out.read_text().splitlines()]


def test_a_simulated_day_across_spring_forward(meshctl, tmp_path):
    events = run(meshctl, tmp_path, "2026-03-28T12:00:00Z", "1d")
    beats = [e for e in events if e["type"] == "heartbeat"]
    assert len(beats) == 96 and beats[0]["time"] == "2026-03-28T12:00:00Z"
    night = {"day": "2026-03-29", "at": "2026-03-29T01:30:00Z", "missed": 1}
    assert [(e["id"], e["data"]) for e in events if e["type"] == "report.due"] == [
        ("nightly-report@2026-03-29T01:30:00Z", night)]
    [sent] = [e for e in events if e["type"] == "report.sent"]
    assert sent["data"] == {"day": "2026-03-29"}
    assert sent["causationid"] == "nightly-report@2026-03-29T01:30:00Z"


def test_a_week_across_fall_back_reports_once_a_night(meshctl, tmp_path):
    events = run(meshctl, tmp_path, "2026-10-22T00:00:00Z", "7d")
    reports = [e["time"] for e in events if e["type"] == "report.due"]
    # 02:30 CEST (00:30Z) until the 25th, whose 02:30 comes first in summer time; 01:30Z after
    assert reports == ["2026-10-22T00:30:00Z", "2026-10-23T00:30:00Z", "2026-10-24T00:30:00Z",
                       "2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z", "2026-10-27T01:30:00Z",
                       "2026-10-28T01:30:00Z"]
    assert sum(e["type"] == "heartbeat" for e in events) == 7 * 96
