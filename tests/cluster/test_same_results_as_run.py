"""Issue 18, "same results as run": a deployment drained by 2 workers stamps events as `meshctl run` does.

The game mesh of workflows/arena-orchestrated: every match report starts a `settle-match`
run, whose steps emit each player's score into the `leaderboard` stream (one-minute windows
of event time, 10 s lateness). The input is published at once and drained by two `meshctl
worker --exit-when-idle` processes, so the runs' steps are done in whatever order the workers
take them, seconds of wall-clock time after the matches' event times. The counters of `meshctl
status` and the outputs (every emitted event with its `time`, every dead letter) must equal
those of `meshctl run` on the same input and faults: a derived event's time follows its
cause (docs/streams.md, "Event time of derived events"), never the clock of whoever
processed it, and the leaderboard, which takes the scores the orchestration emits, is judged
by partition watermarks (docs/streams.md, "Windows fed by the mesh's own events"): which
scores are late, and when a window closes, follow the input order of each partition, never
the order the workers finish their work in.
"""
from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent.parent
MESH = REPO / "workflows" / "arena-orchestrated"
START = 1_714_824_000  # 2024-05-04T12:00:00Z, the day of the example's events.jsonl
PLAYERS = [f"p-{name}" for name in ("alice", "bruno", "chen", "dana", "emil", "fatima", "gus", "hana")]
# update_ratings fails its first attempt in every run: retried 0.25-0.5 s later (jitter: equal),
# so what comes after it (offer_rematch, on_success) is stamped that much after the report
FAULTS = ["orchestration:settle-match/update_ratings=1:Timeout"]
COUNTERS = ("events_in", "emitted", "dead_lettered", "windows_emitted", "late_events", "filtered",
            "runs_started", "runs_completed", "runs_failed", "runs_compensated", "retries",
            "dead_lettered_by_reason")


def generate(path: Path, matches: int, seed: int = 7) -> None:
    """Match reports 3 to 20 s apart; some draws (the run fails and is compensated), some aborted
    (no run), some rematches, and one in twelve reported 30 s to 10 min late (most of its scores
    are late: behind the earlier reports of its partition)."""
    rng = random.Random(seed)
    clock, lines = START, []
    for n in range(1, matches + 1):
        clock += rng.randint(3, 20)
        when = clock - rng.randint(30, 600) if rng.random() < 1 / 12 else clock
        winner, loser = rng.sample(PLAYERS, 2)
        draw = rng.random() < 0.1
        lines.append({
            "specversion": "1.0", "id": f"gs-{n:04d}", "source": "/game-servers/eu-west",
            "type": "match.result.reported", "subject": f"m-{n}",
            "time": datetime.fromtimestamp(when, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "data": {"match_id": f"m-{n}", "status": "aborted" if rng.random() < 0.05 else "completed",
                     "region": "eu-west", "mode": "ranked" if rng.random() < 0.7 else "casual", "round": 1,
                     "players": [{"player_id": winner, "score": rng.randint(0, 2000), "won": not draw},
                                 {"player_id": loser, "score": rng.randint(0, 900), "won": False}],
                     "winner_id": None if draw else winner, "loser_id": None if draw else loser,
                     "rematch_requested": rng.random() < 0.3},
        })
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))


def _cli(*args) -> list[str]:
    return [sys.executable, "-c", "import sys; from cli import main; sys.exit(main())", *map(str, args)]


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _outputs(emitted: list[dict], dead: list[dict]) -> dict[str, list[str]]:
    """Emitted events (time included) and dead letters (without when they failed), in a fixed order."""
    letters = [{**{k: d[k] for k in ("id", "queue", "reason", "consumer", "attempts", "error_type")},
                "event": d["event"]} for d in dead]
    return {"emitted": sorted(json.dumps(e, sort_keys=True) for e in emitted),
            "dead": sorted(json.dumps(d, sort_keys=True) for d in letters)}


def _run(events: Path, workdir: Path) -> tuple[dict, dict]:
    out, dlq = workdir / "run.out", workdir / "run.dlq"
    proc = subprocess.run(_cli("run", MESH, "--events", events, "--output", out, "--dlq-out", dlq,
                               "--format=json", *(f"--fault={f}" for f in FAULTS)),
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    return {k: summary.get(k) for k in COUNTERS}, _outputs(_jsonl(out), _jsonl(dlq))


def _deployment(events: Path, url: str, workers: int) -> tuple[dict, dict]:
    from engine.storage import open_broker

    published = subprocess.run(_cli("publish", MESH, events, "--store", url), cwd=REPO, capture_output=True,
                               text=True, timeout=120)
    assert published.returncode == 0, published.stderr
    procs = [subprocess.Popen(_cli("worker", MESH, "--store", url, "--name", f"w{i}", "--exit-when-idle",
                                   "--http=simulate", "--format=json", *(f"--fault={f}" for f in FAULTS)),
                              cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(1, workers + 1)]
    done = [proc.communicate(timeout=300) for proc in procs]
    assert [proc.returncode for proc in procs] == [0] * workers, [err[-2000:] for _, err in done]
    status = subprocess.run(_cli("status", MESH, "--store", url, "--format=json"), cwd=REPO,
                            capture_output=True, text=True, timeout=60)
    assert status.returncode == 0, status.stderr
    counters = json.loads(status.stdout)["summary"]
    broker = open_broker(url)
    try:
        emitted = list(broker.store.records("emitted"))
        dead = [record.as_dict() for record in broker.store.dead_letters()]
        # drained: no pending work left behind to hold windows back
        assert {p: low for p, (_, low) in broker.watermarks().items()} == dict.fromkeys(range(8))
        # the leaderboard is split by player: several partitions keep windows of theirs
        store = broker.store
        shares = [p for p in range(8) if store.client.exists(store.key(f"state:window:leaderboard@{p}", p))]
        assert len(shares) > 1, shares
    finally:
        broker.close()
    return {k: counters.get(k) for k in COUNTERS}, _outputs(emitted, dead)


def _scores_counted(outputs: dict) -> int:
    """Scores that reached the leaderboard: those in its windows' results, and the late ones."""
    windows = [json.loads(e) for e in outputs["emitted"] if json.loads(e)["type"] == "leaderboard.window"]
    late = [d for d in outputs["dead"] if json.loads(d)["reason"] == "late-event"]
    return sum(w["data"]["games"] for w in windows) + len(late)


@pytest.mark.slow
def test_two_workers_give_what_run_gives(redis_url, tmp_path):
    """Every event the orchestration, the services and the leaderboard make carries the time
    `run` gives it, every run ends as in `run`, and the leaderboard's windows and late scores
    are `run`'s: the counters and the outputs are equal."""
    events = tmp_path / "events.jsonl"
    generate(events, 120)
    run_counters, run_outputs = _run(events, tmp_path)
    deployed_counters, deployed_outputs = _deployment(events, redis_url, workers=2)
    # the input exercises what the rules are about: windows, late scores, retries, compensations
    assert run_counters["windows_emitted"] > 50 and run_counters["late_events"] > 0
    assert run_counters["retries"] > 50 and run_counters["runs_compensated"] > 0
    assert deployed_counters == run_counters
    assert deployed_outputs == run_outputs
    scores = sum(1 for e in run_outputs["emitted"] if json.loads(e)["type"] == "score.recorded")
    assert scores > 100
    assert _scores_counted(deployed_outputs) == scores


@pytest.mark.slow
def test_windows_close_while_the_workers_run(redis_url, tmp_path):
    """A worker that does not drain closes the leaderboard's windows as the partitions' progress
    and the pending work allow, not at the end: once its queues are empty, every window but the
    last few (which no partition's input has passed yet) has been emitted."""
    events = tmp_path / "events.jsonl"
    generate(events, 60)
    run_counters, _ = _run(events, tmp_path)
    published = subprocess.run(_cli("publish", MESH, events, "--store", redis_url), cwd=REPO,
                               capture_output=True, text=True, timeout=120)
    assert published.returncode == 0, published.stderr
    worker = subprocess.Popen(_cli("worker", MESH, "--store", redis_url, "--name", "w1", "--http=simulate",
                                   *(f"--fault={f}" for f in FAULTS)),
                              cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            status = subprocess.run(_cli("status", MESH, "--store", redis_url, "--format=json"), cwd=REPO,
                                    capture_output=True, text=True, timeout=60)
            doc = json.loads(status.stdout)
            if doc["summary"]["events_in"] == 60 and doc["delayed"] == 0 and \
                    not any(q["backlog"] for q in doc["queues"].values()):
                break
            time.sleep(0.5)
        time.sleep(1.0)  # a look at the watermarks after the last unit
        closed = json.loads(subprocess.run(_cli("status", MESH, "--store", redis_url, "--format=json"),
                                           cwd=REPO, capture_output=True, text=True, timeout=60).stdout)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.communicate(timeout=60)
    emitted = closed["summary"]["windows_emitted"]
    assert 0 < emitted < run_counters["windows_emitted"]
    # status shows why the rest wait: every partition's input progress, and no pending work
    marks = [(info["progress"], info["pending_from"]) for info in closed["partitions"].values()]
    assert all(progress and progress.startswith("2024-05-04T") and pending is None
               for progress, pending in marks)
