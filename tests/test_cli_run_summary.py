"""The end of `meshctl run`'s summary: the failed runs (on stdout, deterministic) and the wall
time with the input rate (on stderr, the last line; never in JSON or in the output files)."""
from __future__ import annotations

import json
import re
from pathlib import Path

from engine.runtime.interpreter import Runtime

REPO = Path(__file__).resolve().parent.parent
ORDERS = REPO / "workflows" / "orders"
ARENA = REPO / "workflows" / "arena"
SHIP = "orchestration:fulfil-order/ship=always:CarrierDown"
ELAPSED = re.compile(r"^elapsed {15}\s*\d+\.\d\d s \((\d+) inputs? read: ([\d,]+ events/s|no input read)\)$")


def _orders_events(tmp_path: Path, copies: int) -> Path:
    """The example's 10 orders, *copies* times over with ids of their own: 10 × copies runs."""
    lines = []
    for n in range(copies):
        for line in (ORDERS / "events.jsonl").read_text().splitlines():
            event = json.loads(line)
            event["id"] = f"{event['id']}-{n}"
            lines.append(json.dumps(event))
    path = tmp_path / "orders.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_the_summary_lists_the_first_ten_failed_runs_and_counts_the_rest(meshctl, tmp_path):
    events = _orders_events(tmp_path, 2)
    result = meshctl("run", ORDERS, "--events", events, "--fault", SHIP)
    assert result.exit_code == 0
    tail = result.stdout.split("failed runs:\n", 1)[1]
    assert tail.splitlines() == [
        f"  fulfil-order:chk-{n:05d}-0@/shop/checkout  compensated" for n in range(1, 11)
    ] + ["  and 10 more", "invariants: 5 checked, 0 violated"]
    assert ELAPSED.match(result.stderr.splitlines()[-1]).group(1) == "20"
    again = meshctl("run", ORDERS, "--events", events, "--fault", SHIP)
    assert again.stdout == result.stdout  # nothing timed on stdout


def test_no_failed_runs_no_list(meshctl):
    result = meshctl("run", ARENA, "--events", ARENA / "events.jsonl")
    assert "failed runs" not in result.output
    assert result.stderr.count("\n") == 1 and ELAPSED.match(result.stderr.rstrip("\n"))


def test_json_has_the_ids_and_no_timing(meshctl, tmp_path):
    out, dlq, trace = tmp_path / "out.jsonl", tmp_path / "dlq.jsonl", tmp_path / "trace.jsonl"
    args = ["run", ORDERS, "--events", _orders_events(tmp_path, 2), "--fault", SHIP, "--output", out,
            "--dlq-out", dlq, "--trace", trace]
    result = meshctl(*args, "--format", "json")
    assert result.stderr == ""
    summary = json.loads(result.stdout)
    assert summary["runs_compensated"] == 20 and len(summary["failed_runs"]) == 10
    assert summary["failed_runs"][0] == {"id": "fulfil-order:chk-00001-0@/shop/checkout",
                                         "status": "compensated"}
    files = [p.read_bytes() for p in (out, dlq, trace)]
    assert meshctl(*args).exit_code == 0  # the text summary, with its timing, writes the same files
    assert [p.read_bytes() for p in (out, dlq, trace)] == files


def test_failed_runs_survive_a_crash_and_resume(meshctl, runner, tmp_path, monkeypatch, unjudged):
    from cli import main

    events = _orders_events(tmp_path, 2)
    args = ["run", ORDERS, "--events", events, "--fault", SHIP, "--format", "json", "--checkpoint-every", "4"]
    feed = Runtime.feed

    def crash_at_15(self, item):
        if self.fed == 14:
            raise SystemError("crash")
        return feed(self, item)

    with monkeypatch.context() as patch:
        patch.setattr(Runtime, "feed", crash_at_15)
        crashed = runner.invoke(main, [str(a) for a in args] + ["--store", f"sqlite:{tmp_path / 'a.db'}"])
        assert crashed.exit_code == 70
    resumed = meshctl(*args, "--store", f"sqlite:{tmp_path / 'a.db'}", "--resume")
    whole = meshctl(*args)
    assert json.loads(resumed.stdout) == unjudged(whole.stdout)
    assert len(json.loads(whole.stdout)["failed_runs"]) == 10
