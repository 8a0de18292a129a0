"""`meshctl run` tells the input records it refuses (and dead-letters), as `publish` tells the
records it refuses: the same lines (file:line:col, what is wrong, a did-you-mean), from the
same reporter, the first 10 and then how many more. `--strict-input` makes them errors, exit 1."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
ARENA = REPO / "workflows" / "arena"
ORDERS = REPO / "workflows" / "orders"
LINES = (ARENA / "events.jsonl").read_text().splitlines()
NOWHERE = "redis://127.0.0.1:1/0"  # publish checks the whole file before it connects: never reached
PROBLEM = re.compile(r"^\S+:\d+:\d+: (warning|error)\[|^  hint: ")


def _problems(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if PROBLEM.match(line)]


@pytest.fixture
def mixed(tmp_path) -> Path:
    """Good events, a line that is not JSON, bad data, a misspelt type, an event without a type."""
    bad_data = json.loads(LINES[1])
    bad_data["data"]["mode"] = "hardcore"
    misspelt = {**json.loads(LINES[0]), "id": "x-1", "type": "match.requestd"}
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join([LINES[0], '{"type": "match.requested",', json.dumps(bad_data), "",
                               json.dumps(misspelt), '{"id": "y-1", "source": "/s"}', LINES[2]]) + "\n")
    return path


def test_run_tells_each_refused_record_as_publish_does(meshctl, mixed):
    run = meshctl("run", ARENA, "--events", mixed)
    assert run.exit_code == 0
    told = _problems(run.stderr)
    assert re.match(rf"{re.escape(str(mixed))}:2:\d+: warning\[bad-event\]: not JSON: ", told[0])
    assert [line for line in told[1:] if not line.startswith("  ")] == [
        f"{mixed}:3:1: warning[rejected-event]: data.mode: 'hardcore' is not one of ['ranked', 'casual']",
        f"{mixed}:5:1: warning[rejected-event]: type: no event type 'match.requestd' is declared in the mesh",
        f"{mixed}:6:1: warning[bad-event]: attribute 'type' must be a non-empty string",
    ]
    assert "  hint: did you mean 'match.requested'?" in told
    assert (
        "meshctl run: 4 input records refused, dead-lettered (schema-invalid or undeliverable)" in run.stderr
    )
    assert re.search(r"^  schema-invalid +3$", run.stdout, re.M) and re.search(
        r"^  undeliverable +1$", run.stdout, re.M
    )
    strict = meshctl("run", ARENA, "--events", mixed, "--strict-input")
    assert strict.exit_code == 1
    assert _problems(strict.stderr) == [line.replace(": warning[", ": error[") for line in told]
    assert strict.stdout == run.stdout  # the run itself is the same


def test_the_lines_publish_shows_for_the_same_file(meshctl, mixed):
    publish = meshctl("publish", ARENA, mixed, "--store", NOWHERE)
    strict = meshctl("run", ARENA, "--events", mixed, "--strict-input")
    assert publish.exit_code == 1
    assert _problems(strict.stderr) == _problems(publish.stderr) and len(_problems(publish.stderr)) == 5


def test_a_file_of_prose_shows_ten_and_counts_the_rest(meshctl, tmp_path):
    prose = tmp_path / "notes.md"  # twelve lines of text, blank lines between some (they are skipped)
    prose.write_text("".join(f"line {n} of a page of prose\n" + "\n" * (n % 3 == 0) for n in range(1, 13)))
    run = meshctl("run", ORDERS, "--events", prose)
    assert run.exit_code == 0
    told = _problems(run.stderr)
    assert len(told) == 10 and all(": warning[bad-event]: not JSON: " in line for line in told)
    lines = run.stderr.splitlines()
    assert lines[10:12] == [
        "... and 2 more (12 in all)",
        "meshctl run: 12 input records refused, dead-lettered (schema-invalid or undeliverable)",
    ]
    publish = meshctl("publish", ORDERS, prose, "--store", NOWHERE)
    assert publish.stderr.splitlines()[:11] == [
        line.replace(": warning[", ": error[") for line in lines[:10]
    ] + ["... and 2 more (12 in all)"]


def test_a_yaml_list_is_located_by_its_items(meshctl, tmp_path):
    events = tmp_path / "events.yaml"
    events.write_text(
        "- type: match.requested\n  source: /lobby\n  data: {request_id: r-1}\n- type: match.requestd\n"
    )
    run = meshctl("run", ARENA, "--events", events)
    assert _problems(run.stderr) == [
        f"{events}:1:3: warning[rejected-event]: data: 'players' is a required property",
        (f"{events}:4:3: warning[rejected-event]: "
         "type: no event type 'match.requestd' is declared in the mesh"),
        "  hint: did you mean 'match.requested'?"]


def test_clean_input_tells_nothing(meshctl):
    run = meshctl("run", ARENA, "--events", ARENA / "events.jsonl", "--strict-input", "--format", "json")
    assert run.exit_code == 0 and run.stderr == ""


def test_lines_breaking_the_rule_of_event_input_are_told_each_at_its_line(meshctl, tmp_path):
    """Not UTF-8, nested too deep, NaN: each line on its own, the lines around it run."""
    events = tmp_path / "hostile.jsonl"
    events.write_bytes(
        b"\n".join(
            [
                LINES[0].encode(),
                b'{"type": "match.requested", "data": "\xff"}',
                b'{"type": "x", "data": ' + b"[" * 100 + b"]" * 100 + b"}",
                b'{"type": "match.requested", "data": {"n": NaN}}',
                LINES[1].encode(),
            ]
        )
        + b"\n"
    )
    run = meshctl("run", ARENA, "--events", events, "--strict-input", "--format", "json")
    publish = meshctl("publish", ARENA, events, "--store", NOWHERE)
    told = _problems(run.stderr)
    assert [line.split(": ", 1)[0].rsplit(":", 2)[1] for line in told] == ["2", "3", "4"]
    assert all(": error[bad-event]: " in line for line in told) and told == _problems(publish.stderr)
    assert run.exit_code == 1 and json.loads(run.stdout)["events_in"] == 5
