"""Crash test: kill -9 `meshctl run --store sqlite:...` at random points, resume until done, compare.

    python -m bench.crash_test [--events 3000] [--kills 5] [--seed 1]

Runs the crash-test mesh (tests/cases/crash) once uninterrupted in memory, then again on
SQLite while SIGKILLing the process at random points of its input and resuming it with
--resume until it completes. Every emitted event, every trace record (window aggregates included) and every
dead letter must be identical: nothing lost, nothing repeated. Prints one JSON line.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MESH = REPO / "tests" / "cases" / "crash"
KINDS = ["normal"] * 12 + ["flaky"] * 3 + ["broken", "fatal", "saga-fail"]


def generate(n: int, seed: int) -> list[dict]:
    """Orders over time, a little out of order, with a mix of failure kinds and some invalid ones."""
    rng = random.Random(seed)
    t, events = 1_767_225_600.0, []
    for i in range(n):
        t += rng.uniform(0, 4)
        jitter = rng.uniform(-3, 0)
        data = {"order": i, "customer": f"c{rng.randrange(50)}", "amount": round(rng.uniform(1, 500), 2),
                "kind": rng.choice(KINDS)}
        if rng.random() < 0.01:
            data["amount"] = "lots"  # schema-invalid: dead-lettered at the door
        events.append({"id": f"o{i}", "type": "order.placed", "source": "crash-test",
                       "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t + jitter)) + "Z",
                       "data": data})
    return events


def meshctl(*args: str) -> list[str]:
    return [sys.executable, "-c", "import sys; from cli import main; sys.exit(main())", *args]


def outputs(prefix: Path) -> list[str]:
    return [f"--trace={prefix}.trace", f"--output={prefix}.out", f"--dlq-out={prefix}.dlq"]


def committed(db: Path) -> int:
    """The input position a store has committed (0 before its first commit), read beside the writer."""
    if not db.exists():
        return 0
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1.0)
        try:
            row = conn.execute("SELECT json_extract(body, '$.fed') FROM checkpoint WHERE id = 1").fetchone()
        finally:
            conn.close()
    except sqlite3.Error:  # not created yet, or the schema is being written
        return 0
    return row[0] if row and row[0] is not None else 0


def run_with_kills(events: Path, db: Path, prefix: Path, kills: int, rng: random.Random, every: int,
                   total: int) -> dict:
    """Start; SIGKILL once the committed position passed a random point of the input (and the
    process committed at least once itself), soon after that commit; resume; until a run completes.

    Kills follow progress, not a timer: on a busy machine a timer can fire after the run is done.
    """
    targets = sorted(rng.sample(range(total // 10, total * 9 // 10), kills))
    killed, starts, start = 0, 0, time.perf_counter()
    while True:
        args = [
            "run",
            str(MESH),
            "--events",
            str(events),
            f"--store=sqlite:{db}",
            f"--checkpoint-every={every}",
            "--format=json",
            *outputs(prefix),
        ] + (["--resume"] if starts else [])
        starts += 1
        proc = subprocess.Popen(meshctl(*args), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if killed < len(targets):
            floor = max(targets[killed], committed(db) + 1)
            while proc.poll() is None and committed(db) < floor:
                time.sleep(0.005)
            if proc.poll() is None:
                time.sleep(rng.uniform(0.0, 0.05))  # anywhere after that commit: mid-batch, mid-commit
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
                killed += 1
                continue
        out, err = proc.communicate(timeout=600)
        if proc.returncode != 0:
            raise RuntimeError(f"meshctl run failed ({proc.returncode}): {err.decode()[-2000:]}")
        return {"kills": killed, "starts": starts, "seconds": round(time.perf_counter() - start, 2),
                "summary": json.loads(out)}


def crash_test(
    n: int = 3000, kills: int = 5, seed: int = 1, every: int = 100, workdir: str | None = None
) -> dict:
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        tmp = Path(tmp)
        events = tmp / "events.jsonl"
        events.write_text("".join(json.dumps(e) + "\n" for e in generate(n, seed)))
        reference = subprocess.run(meshctl("run", str(MESH), "--events", str(events), "--format=json",
                                           *outputs(tmp / "ref")), cwd=REPO, capture_output=True, check=True)
        crashed = run_with_kills(events, tmp / "run.db", tmp / "crash", kills, random.Random(seed), every, n)
        diffs = {name: (tmp / f"ref.{name}").read_bytes() != (tmp / f"crash.{name}").read_bytes()
                 for name in ("out", "trace", "dlq")}
        lines = {
            name: len((tmp / f"ref.{name}").read_text().splitlines()) for name in ("out", "trace", "dlq")
        }
        return {"test": "crash-resume", "events": n, "kills": crashed["kills"], "starts": crashed["starts"],
                "seconds": crashed["seconds"], "emitted": lines["out"], "trace_records": lines["trace"],
                "dead_letters": lines["dlq"], "identical": not any(diffs.values()),
                "different": sorted(k for k, v in diffs.items() if v),
                "summary_equal": json.loads(reference.stdout) == crashed["summary"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--every", type=int, default=100, help="inputs between commits")
    args = parser.parse_args()
    result = crash_test(args.events, args.kills, args.seed, args.every)
    print(json.dumps(result))
    sys.exit(0 if result["identical"] and result["summary_equal"] else 1)


if __name__ == "__main__":
    main()
