"""Several `meshctl worker` processes on Redis against one `meshctl run` on SQLite.

The game example (workflows/arena) runs on generated input with injected faults: every
``match.requested`` fails its first attempt at match-service (retried once) and every
``leaderboard.window`` always fails at score-service (retried, then dead-lettered). The
input is published into a Redis store; N workers drain it (``--exit-when-idle``), one of
them optionally SIGKILLed mid-run. The result — emitted events with their event times, dead
letters and window results — must be identical to the single-process run.

    python -m bench.scaleout --events 3000 --workers 1 2 3 [--kill] [--no-faults] [--write]
                             [--redis redis+cluster://127.0.0.1:7000]

prints one JSON line per run: workers, seconds, events/s (inputs per second of the drain,
from the workers' start to the last one's exit), whether the results are identical, and
what was killed. ``--write`` saves the lines to bench/results/scaleout.json, from which
docs/performance.md takes its scale-out section. With faults, the drain time is mostly the
retry backoff (real seconds); ``--no-faults`` measures the processing rate.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

from .common import REPO
from .e2e import generate

ARENA = REPO / "workflows" / "arena"
REDIS = os.environ.get("MESHCTL_TEST_REDIS", "redis://127.0.0.1:6379/0")
FAULTS = ["service:match-service/match.requested=1:ConnectionError",
          "service:score-service/leaderboard.window=always:StoreDown"]


def meshctl(*args: str) -> list[str]:
    return [sys.executable, "-c", "import sys; from cli import main; sys.exit(main())", *args]


def single_process(events: Path, workdir: Path, faults: list[str]) -> dict:
    """The reference: `meshctl run` on SQLite with the same faults."""
    out, dlq = workdir / "single.out", workdir / "single.dlq"
    args = ["run", str(ARENA), "--events", str(events), f"--store=sqlite:{workdir / 'single.db'}",
            f"--output={out}", f"--dlq-out={dlq}", "--format=json", *(f"--fault={f}" for f in faults)]
    proc = subprocess.run(meshctl(*args), cwd=REPO, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"meshctl run failed: {proc.stderr}")
    emitted = [json.loads(line) for line in out.read_text().splitlines()]
    dead = [json.loads(line) for line in dlq.read_text().splitlines()]
    return outcome(emitted, dead, json.loads(proc.stdout))


def outcome(emitted: list[dict], dead: list[dict], summary: dict) -> dict:
    """What must be the same whoever ran the mesh: events (their event times too: they follow
    their causes, docs/streams.md), dead letters (not when they failed), and the counters that
    do not count attempts."""
    events = sorted(json.dumps(e, sort_keys=True) for e in emitted)
    letters = sorted(
        json.dumps(
            {
                **{k: d[k] for k in ("id", "queue", "reason", "consumer", "attempts", "error_type")},
                "event": d["event"],
            },
            sort_keys=True,
        )
        for d in dead
    )
    same = ("events_in", "emitted", "dead_lettered", "windows_emitted", "late_events", "filtered",
            "dead_lettered_by_reason")
    return {"emitted": events, "dead": letters, "summary": {k: summary.get(k) for k in same}}


def publish(events: Path, url: str) -> None:
    proc = subprocess.run(meshctl("publish", str(ARENA), str(events), "--store", url), cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        raise RuntimeError(f"meshctl publish failed: {proc.stderr}")


def deployment(events: Path, workers: int, kill: bool, workdir: Path, faults: list[str],
               reclaim_after: float = 2.0, redis: str = REDIS) -> dict:
    """Publish, then drain with *workers* processes (SIGKILLing one once a third of the input
    is in if *kill*); returns the outcome, the drain time and what was killed."""
    from engine.cluster.deployment import deployment_summary
    from engine.storage import open_broker

    url = f"{redis}?prefix=scaleout-{uuid.uuid4().hex[:10]}"
    publish(events, url)
    broker = open_broker(url)
    store = broker.store
    total = sum(1 for _ in open(events, encoding="utf-8"))
    procs, logs = {}, []
    start = time.perf_counter()
    for i in range(1, workers + 1):
        name = f"w{i}"
        log = open(workdir / f"{name}.log", "w")
        logs.append(log)
        procs[name] = subprocess.Popen(
            meshctl("worker", str(ARENA), "--store", url, "--name", name, "--exit-when-idle",
                    "--http=simulate", f"--reclaim-after={reclaim_after}", f"--lease={reclaim_after}",
                    "--format=json", *(f"--fault={f}" for f in faults)),
            cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    killed = None
    try:
        if kill:
            while time.perf_counter() - start < 300:
                if broker.counters().get("events_in", 0) >= total // 3:
                    break
                time.sleep(0.05)
            # the worker holding the most partitions: its takeover is the harder case
            held = Counter(h for h in broker.holders().values() if h in procs)
            killed = held.most_common(1)[0][0] if held else "w1"
            procs[killed].send_signal(signal.SIGKILL)
        codes = {name: proc.wait(timeout=600) for name, proc in procs.items()}
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
        for log in logs:
            log.close()
    seconds = time.perf_counter() - start
    emitted = list(store.records("emitted"))
    dead = [r.as_dict() for r in store.dead_letters()]
    result = {**outcome(emitted, dead, deployment_summary(broker)), "seconds": seconds, "killed": killed,
              "exit_codes": codes, "input": total,
              "backlog": broker.backlog()}
    store.drop()
    broker.close()
    return result


def compare(n: int, workers: int, kill: bool, workdir: Path, faults: bool = True, seed: int = 11,
            redis: str = REDIS) -> dict:
    """One deployment run against the single-process reference, on the same generated input."""
    events = workdir / "events.jsonl"
    generate(str(events), n, seed=seed, players=200)
    injected = FAULTS if faults else []
    reference = single_process(events, workdir, injected)
    run = deployment(events, workers, kill, workdir, injected, redis=redis)
    differences = [k for k in ("emitted", "dead", "summary") if run[k] != reference[k]]
    for key in differences[:2]:  # the first few records only one side has, to see why
        only_run = sorted(set(run[key]) - set(reference[key]))[:3]
        only_reference = sorted(set(reference[key]) - set(run[key]))[:3]
        differences.append({"key": key, "only_workers": only_run, "only_single": only_reference})
    return {"workers": workers, "events": n, "faults": faults, "seconds": round(run["seconds"], 2),
            "events_per_s": round(n / run["seconds"], 1), "killed": run["killed"],
            "exit_codes": run["exit_codes"], "identical": not differences, "different": differences,
            "backlog": run["backlog"], "emitted": len(run["emitted"]), "dead_letters": len(run["dead"]),
            "summary": run["summary"], "reference_summary": reference["summary"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--kill", action="store_true", help="SIGKILL one worker a third of the way in")
    parser.add_argument("--no-faults", action="store_true",
                        help="inject no faults: measure the processing rate")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--redis", default=REDIS,
                        help="the Redis server (redis://) or cluster (redis+cluster://) to run on")
    parser.add_argument("--write", action="store_true",
                        help="save to bench/results/scaleout.json (for the docs)")
    args = parser.parse_args()
    lines = []
    for _ in range(args.repeat):
        for workers in args.workers:
            with tempfile.TemporaryDirectory() as tmp:
                result = compare(args.events, workers, args.kill, Path(tmp), faults=not args.no_faults,
                                 redis=args.redis)
            lines.append({k: v for k, v in result.items() if not k.endswith("summary")})
            print(json.dumps(lines[-1]), flush=True)
    if args.write:
        from .common import save_run

        command = "python -m bench.scaleout " + " ".join(sys.argv[1:])
        saved = save_run("scaleout", command, {"lines": lines})
        print(f"wrote {saved.relative_to(REPO)}")


if __name__ == "__main__":
    main()
