"""Observability of a deployment through the CLI: JSON log lines."""
from __future__ import annotations

import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ARENA = REPO / "workflows" / "arena"


def test_worker_logs_json_lines(meshctl, redis_url):
    result = meshctl("worker", ARENA, "--store", redis_url, "--exit-when-idle", "--name", "w-json",
                     "--log-format", "json", "--format=json")
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stderr.splitlines()]
    assert [line["message"] for line in lines if line["level"] == "info"][-1] == "stopped"
    assert all(line["command"] == "worker" and line["time"].endswith("Z") for line in lines)
    assert {line.get("worker") for line in lines if line["level"] == "info"} == {"w-json"}
