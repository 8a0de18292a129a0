"""Streams keyed by several fields, and `collect` of templated values, through the command line."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
HARNESS = REPO / "tests" / "reliability" / "runtime_harness.py"  # meshctl with crash points

TYPES = """
apiVersion: meshctl/v1
kind: EventType
metadata: {name: player.queued}
spec:
  external: true
  schema:
    type: object
    additionalProperties: false
    properties: {region: {}, mode: {}, player_id: {type: string}, rating: {type: integer}}
---
apiVersion: meshctl/v1
kind: EventType
metadata: {name: lobby.formed}
spec: {external: true}
"""

LOBBY = TYPES + """---
apiVersion: meshctl/v1
kind: Stream
metadata: {name: lobby}
spec:
  from: [player.queued]
  key: %s
  window: %s
  aggregate:
    players: %s
  emit: {type: lobby.formed}
"""

PROJECTED = '{collect: {value: {id: "{{ data.player_id }}", rating: "{{ data.rating }}"}, max: 4}}'


def _queued(i: int, second: int, region, mode, player: str, rating: int | None = 1500) -> dict:
    data = {"region": region, "mode": mode, "player_id": player}
    if rating is not None:
        data["rating"] = rating
    return {"specversion": "1.0", "id": f"q{i}", "source": "/lobby", "type": "player.queued",
            "time": f"2024-05-04T12:{second // 60:02d}:{second % 60:02d}Z", "data": data}


def _events(path: Path, events: list[dict]) -> Path:
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    return path


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _run(meshctl, write, tmp_path, yaml: str, events: list[dict]):
    mesh = write(yaml)
    out, dlq = tmp_path / "out.jsonl", tmp_path / "dlq.jsonl"
    result = meshctl("run", mesh.parent, "--events", _events(tmp_path / "in.jsonl", events),
                     "--output", out, "--dlq-out", dlq)
    assert result.exit_code == 0, result.output
    return _lines(out), _lines(dlq), result.output


def test_a_count_window_keyed_by_region_and_mode_lists_projected_players(meshctl, write, tmp_path):
    events = [_queued(1, 0, "eu", "ranked", "p1", 1500), _queued(2, 10, "eu", "casual", "p2"),
              _queued(3, 20, "us", "ranked", "p3"), _queued(4, 30, "eu", "ranked", "p4", 1480)]
    yaml = LOBBY % ("[data.region, data.mode]", "{count: 2}", PROJECTED)
    out, dlq, _ = _run(meshctl, write, tmp_path, yaml, events)
    assert dlq == []
    assert [(e["data"]["key"], e["data"]["players"], e["data"]["complete"]) for e in out] == [
        (["eu", "ranked"], [{"id": "p1", "rating": 1500}, {"id": "p4", "rating": 1480}], True),
        (["eu", "casual"], [{"id": "p2", "rating": 1500}], False),  # open at the end, in opening order
        (["us", "ranked"], [{"id": "p3", "rating": 1500}], False),
    ]
    assert out[1]["causationid"] == 'stream:lobby:["eu", "casual"]:1714824010.0:1714824010.0:2'


def test_tumbling_windows_of_a_composite_key_close_in_the_order_of_its_json(meshctl, write, tmp_path):
    events = [_queued(1, 0, "eu", 2, "p1"), _queued(2, 1, "eu", 2.0, "p2"), _queued(3, 2, "eu", True, "p3"),
              _queued(4, 3, "eu", 1, "p4"), _queued(5, 4, "ap", 2, "p5"), _queued(6, 70, "eu", 2, "p6")]
    players = "{collect: {field: data.player_id, max: 9}}"
    yaml = LOBBY % ("[data.region, data.mode]", "{tumbling: 1m}", players)
    out, _, _ = _run(meshctl, write, tmp_path, yaml, events)
    assert [(e["data"]["key"], e["data"]["players"]) for e in out] == [
        (["ap", 2], ["p5"]),
        (["eu", 1], ["p4"]),
        (["eu", 2], ["p1", "p2"]),  # 2 and 2.0 are one part; true is not 1
        (["eu", True], ["p3"]),
        (["eu", 2], ["p6"]),
    ]


def test_emit_data_reads_the_parts_of_the_key_by_index(meshctl, write, tmp_path):
    yaml = (LOBBY % ("[data.region, data.mode]", "{count: 1}", "{count: {}}")).replace(
        "emit: {type: lobby.formed}",
        'emit: {type: lobby.formed, data: {region: "{{ key[0] }}", mode: "{{ key[1] }}", '
        'n: "{{ players }}"}}')
    out, _, _ = _run(meshctl, write, tmp_path, yaml, [_queued(1, 0, "eu", "ranked", "p1")])
    assert [e["data"] for e in out] == [{"region": "eu", "mode": "ranked", "n": 1}]


def test_an_event_without_a_part_of_the_key_is_schema_invalid(meshctl, write, tmp_path):
    events = [_queued(1, 0, "eu", None, "p1"), _queued(2, 1, "eu", "ranked", "p2")]
    del events[0]["data"]["mode"]
    events.append(_queued(3, 2, "eu", ["ranked"], "p3"))
    yaml = LOBBY % ("[data.region, data.mode]", "{count: 4}", "{count: {}}")
    out, dlq, _ = _run(meshctl, write, tmp_path, yaml, events)
    assert [(d["reason"], d["error"]) for d in dlq] == [
        ("schema-invalid", "key field 'data.mode' is missing"),
        ("schema-invalid", "key field 'data.mode' must be a string, a finite number or a bool, not an array"),
    ]
    assert [e["data"]["key"] for e in out] == [["eu", "ranked"]]


def test_a_one_field_key_written_as_a_list_is_emitted_as_a_list(meshctl, write, tmp_path):
    yaml = LOBBY % ("[data.region]", "{count: 1}", "{count: {}}")
    out, _, _ = _run(meshctl, write, tmp_path, yaml, [_queued(1, 0, "eu", "ranked", "p1")])
    assert out[0]["data"]["key"] == ["eu"]


def test_a_projection_that_fails_dead_letters_its_event_as_template_error(meshctl, write, tmp_path):
    events = [_queued(1, 0, "eu", "ranked", "p1"), _queued(2, 10, "eu", "ranked", "p2", rating=None),
              _queued(3, 20, "eu", "ranked", "p3")]
    yaml = LOBBY % ("[data.region, data.mode]", "{count: 2}", PROJECTED)
    out, dlq, summary = _run(meshctl, write, tmp_path, yaml, events)
    assert [(d["event"]["id"], d["reason"], d["error_type"]) for d in dlq] == [
        ("q2", "template-error", "TemplateError")]
    assert dlq[0]["error"] == (f"{tmp_path / 'mesh.yaml'}:24:69: UndefinedError: 'dict object' has no "
                               "attribute 'rating'")
    # nothing of q2 counted: the match is p1 and p3
    assert [e["data"]["players"] for e in out] == [
        [{"id": "p1", "rating": 1500}, {"id": "p3", "rating": 1500}]]
    assert "Traceback" not in summary


def test_a_projection_may_be_any_json_with_templates_in_its_strings(meshctl, write, tmp_path):
    value = '{collect: {value: ["{{ data.region }}/{{ data.player_id | upper }}", 7, null], max: 1}}'
    yaml = LOBBY % ("data.region", "{count: 2}", value)
    out, _, _ = _run(meshctl, write, tmp_path, yaml,
                     [_queued(1, 0, "eu", "ranked", "p1"), _queued(2, 1, "eu", "ranked", "p2")])
    assert out[0]["data"]["players"] == [["eu/P1", 7, None]]  # max: 1 keeps the first
    assert out[0]["data"]["key"] == "eu"  # a one-field key is emitted as it always was


@pytest.mark.parametrize(("key", "players", "found"), [
    ("[data.region, data.mode]", PROJECTED, []),
    ("[]", "{count: {}}", [(21, 8, "error", "bad-value")]),
    ("[data.region, data.region]", "{count: {}}", [(21, 8, "error", "bad-value")]),
    ("[a, b, c, d, e, f, g, h, i]", "{count: {}}", [(21, 8, "error", "bad-value")]),
    ("[data.region, 'not a path']", "{count: {}}", [(21, 22, "error", "bad-value")]),
    ("[data.region, 3]", "{count: {}}", [(21, 22, "error", "wrong-type")]),
    ("{region: data.region}", "{count: {}}", [(21, 8, "error", "wrong-type")]),
    ("[data.region, data.queue]", "{count: {}}", [(18, 18, "error", "unknown-field")]),
    ("data.region", '{collect: {field: data.region, value: "{{ data.mode }}", max: 4}}',
     [(24, 24, "error", "bad-value")]),
    ("data.region", '{collect: {value: "{{ data.mode ", max: 4}}', [(24, 32, "error", "template-syntax")]),
    ("data.region", '{collect: {value: {q: "{{ data.queue }}"}, max: 4}}',
     [(24, 36, "error", "unknown-field")]),
    ("data.region", '{collect: {value: "{{ data.mode }}"}}', [(24, 14, "error", "unbounded-aggregate")]),
    ("data.region", '{distinct: {value: "{{ data.mode }}", max: 4}}',
     [(24, 15, "error", "missing-key"), (24, 26, "error", "unknown-key")]),
])
def test_validate_checks_composite_keys_and_projections(write, diagnostics, key, players, found):
    errors = [d for d in diagnostics(write(LOBBY % (key, "{count: 4}", players))) if d[2] == "error"]
    assert errors == found


def test_validate_says_field_and_value_exclude_each_other(write, meshctl):
    players = '{collect: {field: data.region, value: "{{ data.mode }}", max: 4}}'
    result = meshctl("validate", write(LOBBY % ("data.region", "{count: 4}", players)))
    assert result.exit_code == 1
    assert "error[bad-value]: spec.aggregate.players.collect: `collect` takes `field` or `value`, not both" \
        in result.output


def _harness(*args, crash: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MESHCTL_")}
    if crash:
        env["MESHCTL_CRASH_AT"] = crash
    return subprocess.run([sys.executable, str(HARNESS), *map(str, args)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)


RESUMED = TYPES + """---
apiVersion: meshctl/v1
kind: Stream
metadata: {name: lobby}
spec:
  from: [player.queued]
  key: [data.region, data.mode]
  window: {count: 3}
  aggregate:
    players: %s
  emit: {type: lobby.formed}
---
apiVersion: meshctl/v1
kind: Stream
metadata: {name: minutes}
spec:
  from: [player.queued]
  key: [data.mode, data.region]
  window: {tumbling: 1m}
  aggregate:
    players: %s
  emit: {type: lobby.formed}
""" % (PROJECTED, '{collect: {value: "{{ data.player_id }}@{{ event.time }}", max: 100}}')


@pytest.mark.slow
def test_a_run_killed_and_resumed_keeps_composite_keys_and_projections(write, tmp_path):
    regions, modes = ("eu", "us", "ap"), ("ranked", "casual")
    events = [_queued(i, i * 7, regions[i % 3], modes[i % 5 % 2], f"p{i}", 1000 + i) for i in range(60)]
    mesh = write(RESUMED).parent
    source = _events(tmp_path / "in.jsonl", events)

    def run(name: str, crash: str | None = None, resume: bool = False) -> subprocess.CompletedProcess:
        return _harness("run", mesh, "--events", source, "--store", f"sqlite:{tmp_path / name}.db",
                        "--checkpoint-every", "5", "--output", tmp_path / f"{name}.out",
                        *(["--resume"] if resume else []), crash=crash)

    whole = run("whole")
    assert whole.returncode == 0, whole.stderr
    assert run("killed", crash="feed:33").returncode < 0  # SIGKILLed reading input 33: windows open
    resumed = run("killed", resume=True)
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed the run" in resumed.stderr
    assert (tmp_path / "killed.out").read_text() == (tmp_path / "whole.out").read_text()
    emitted = _lines(tmp_path / "whole.out")
    assert {tuple(e["data"]["key"]) for e in emitted if e["source"].endswith("lobby")} == {
        (r, m) for r in regions for m in modes}
    assert all(isinstance(p, dict) and set(p) == {"id", "rating"}
               for e in emitted if e["source"].endswith("lobby") for p in e["data"]["players"])


def test_a_run_does_not_resume_with_other_key_paths(meshctl, write, tmp_path):
    yaml = LOBBY % ("[data.region, data.mode]", "{count: 4}", "{count: {}}")
    source = _events(tmp_path / "in.jsonl", [_queued(1, 0, "eu", "ranked", "p1")])
    store = f"sqlite:{tmp_path / 'run.db'}"
    mesh = write(yaml).parent
    assert meshctl("run", mesh, "--events", source, "--store", store).exit_code == 0
    write(yaml.replace("[data.region, data.mode]", "[data.mode, data.region]"))
    result = meshctl("run", mesh, "--events", source, "--store", store, "--resume")
    assert result.exit_code == 2
    assert ("cannot resume the run with this mesh: snapshot key is ['data.region', 'data.mode'], "
            "stream 'lobby' needs ['data.mode', 'data.region']") in result.output
