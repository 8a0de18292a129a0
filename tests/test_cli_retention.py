"""Retention through the CLI: a mesh's `retention` decides what a durable store keeps, and
`meshctl runs` / `meshctl replay` say when something asked for has aged out."""
from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

from bench.orders import order
from engine.core.eventtime import format as iso

ORDERS = Path(__file__).resolve().parent.parent / "workflows" / "orders"
START = 1_767_225_600.0  # 2026-01-01T00:00:00Z
RETENTION = """
apiVersion: meshctl/v1
kind: Mesh
metadata: {name: orders}
spec:
  retention: {runs: 1h, archive: 1h}
"""


def mesh_with_retention(tmp_path: Path) -> Path:
    mesh = tmp_path / "orders"
    shutil.copytree(ORDERS, mesh, ignore=shutil.ignore_patterns("*.test.yaml", "__pycache__"))
    (mesh / "mesh.yaml").write_text(RETENTION, encoding="utf-8")
    return mesh


def orders_every_20_minutes(path: Path, n: int) -> list[dict]:
    rng = random.Random(3)
    events = [{**order(i, rng), "time": iso(START + 1200 * i)} for i in range(1, n + 1)]
    for event in events:  # every order completes: the runs end when their orders arrive
        event["data"]["payment"]["token"] = "tok_ok"
        event["data"]["total"] = 10.0
    path.write_text("".join(json.dumps(e) + "\n" for e in events), encoding="utf-8")
    return events


def test_runs_older_than_the_retention_age_out_and_runs_show_says_so(meshctl, tmp_path):
    mesh, db = mesh_with_retention(tmp_path), f"sqlite:{tmp_path / 'o.db'}"
    events = orders_every_20_minutes(tmp_path / "orders.jsonl", 12)  # 4 hours of clock time
    ran = meshctl("run", mesh, "--events", tmp_path / "orders.jsonl", "--store", db, "--checkpoint-every",
                  "1", "--format", "json")
    assert ran.exit_code == 0, ran.output
    assert json.loads(ran.output)["runs_completed"] == 12
    kept = json.loads(meshctl("runs", "list", "--store", db, "--format", "json").output)
    triggers = {run["event"]["id"] for run in kept}
    assert 0 < len(kept) < 12 and triggers == {e["id"] for e in events[-len(kept):]}  # the newest, only
    assert all(run["status"] == "completed" for run in kept)
    gone = meshctl("runs", "show", "--store", db,
                   kept[0]["id"].replace(events[-len(kept)]["id"], events[0]["id"]))
    assert gone.exit_code == 2
    assert "have aged out of the store (`retention.runs` of the Mesh document)" in gone.output


def test_replay_says_when_the_archive_no_longer_holds_what_was_asked_for(meshctl, tmp_path):
    mesh, db = mesh_with_retention(tmp_path), f"sqlite:{tmp_path / 'o.db'}"
    orders_every_20_minutes(tmp_path / "orders.jsonl", 12)
    assert (
        meshctl(
            "run", mesh, "--events", tmp_path / "orders.jsonl", "--store", db, "--checkpoint-every", "1"
        ).exit_code
        == 0
    )
    early = meshctl("replay", mesh, "--store", db, "--since", iso(START), "--match",
                    '{"type": ["order.placed"]}', "--format", "json")
    assert early.exit_code == 0, early.output
    result = json.loads(early.output)
    assert "aged_out" in result and 0 < result["selected"] < 12
    recent = meshctl("replay", mesh, "--store", db, "--since", iso(START + 1200 * 11), "--format", "json")
    assert "aged_out" not in json.loads(recent.output)


def test_a_run_writing_output_keeps_every_emitted_event_for_it(meshctl, tmp_path):
    """`--output` of a durable run is exported from its archive at the end: the archive keeps it whole."""
    mesh, db = mesh_with_retention(tmp_path), f"sqlite:{tmp_path / 'o.db'}"
    orders_every_20_minutes(tmp_path / "orders.jsonl", 12)
    out = tmp_path / "emitted.jsonl"
    ran = meshctl("run", mesh, "--events", tmp_path / "orders.jsonl", "--store", db, "--checkpoint-every",
                  "1", "--output", out, "--format", "json")
    assert ran.exit_code == 0
    emitted = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(emitted) == json.loads(ran.output)["emitted"]
    assert sum(e["type"] == "order.completed" for e in emitted) == 12
