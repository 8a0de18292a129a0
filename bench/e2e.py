"""End to end: ``meshctl run`` on the game example (workflows/arena) with generated input.

The input (JSON Lines, generated into a temporary directory) is a stream of matches: each
match is one ``match.requested`` (→ match-service emits ``match.created`` → player-service
logs it) and two ``match.finished`` (ranked ones with a score > 0 → the ``ranked-scores``
route transforms them into ``score.recorded`` → score-service's Python handler; every ranked
result also feeds the ``leaderboard`` stream, whose one-minute windows are emitted as
``leaderboard.window`` → score-service logs them). So each input is routed, transformed,
delivered to subscriptions and emits — the whole interpreter path, including JSON decoding
of the input and validation of every event against its ``EventType`` schema.

meshctl is timed in-process through :func:`engine.commands.runs.run_mesh` (the engine side of
``meshctl run``: interpreter start-up, YAML loading and validation excluded), in memory and
with ``--store sqlite:PATH``; the limit is ``json.dumps(json.loads(line))`` over the same
lines. The CLI's wall time (a fresh ``python -m cli run`` process, start-up and validation
included) is reported once.
"""
from __future__ import annotations

import json
import os
import random
import sys
import tempfile
from datetime import datetime, timezone

from .common import REPO, Row, fmt_rate, fmt_time, log, run_cli, timed

ARENA = str(REPO / "workflows" / "arena")
BASE = 1_767_225_600  # 2026-01-01T00:00:00Z
REGIONS = ["eu-west", "us-east", "us-west", "ap-south"]


def _stamp(second: float) -> str:
    return datetime.fromtimestamp(second, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def generate(path: str, n: int, seed: int = 11, players: int = 1000) -> int:
    """Write ``n`` arena input events (a third requests, two thirds results) to ``path``."""
    rng = random.Random(seed)
    names = [f"p-{i:05d}" for i in range(players)]
    written = 0
    with open(path, "w", encoding="utf-8") as fh:
        match = 0
        while written < n:
            match += 1
            a, b = rng.sample(names, 2)
            region = rng.choice(REGIONS)
            mode = "ranked" if rng.random() < 0.7 else "casual"
            mid = f"m-{match}"
            when = _stamp(BASE + match)
            records = [{"specversion": "1.0", "id": f"req-{match}", "source": f"/lobby/{region}",
                        "type": "match.requested", "time": when,
                        "data": {"request_id": mid, "players": [a, b], "region": region, "mode": mode,
                                 "round": 1}}]
            done = _stamp(BASE + match + 30)
            for i, (me, other) in enumerate(((a, b), (b, a)), start=1):
                records.append({"specversion": "1.0", "id": f"gs-{match}-{i}",
                                "source": f"/game-servers/{region}", "type": "match.finished", "time": done,
                                "subject": me,
                                "data": {"match_id": mid, "player_id": me, "opponent_id": other,
                                         "region": region, "mode": mode,
                                         "score": rng.choice((0, rng.randrange(1, 2000))), "won": i == 1,
                                         "duration_s": round(rng.uniform(20, 900), 1)}})
            for record in records[: n - written]:
                fh.write(json.dumps(record) + "\n")
                written += 1
    return written


def decode_limit(path: str) -> int:
    count = 0
    loads, dumps = json.loads, json.dumps
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            dumps(loads(line))
            count += 1
    return count


def run_inprocess(mesh, path: str, store: str | None = None) -> dict:
    from engine.commands.runs import RunOptions, run_mesh

    summary, _ = run_mesh(mesh, path, RunOptions(store=store))
    return summary


def rows(quick: bool = False) -> list[Row]:
    from engine.analysis.validate import require_valid

    n = 20_000 if quick else 100_000
    mesh = require_valid(ARENA).mesh
    out = []
    with tempfile.TemporaryDirectory(prefix="bench-e2e-") as folder:
        path = os.path.join(folder, "arena-events.jsonl")
        generate(path, n)
        log(f"e2e: decode limit, {n:,} events")
        t_decode, _ = timed(lambda: decode_limit(path))
        log("e2e: meshctl run in memory")
        t_mem, s_mem = timed(lambda: run_inprocess(mesh, path))
        log("e2e: meshctl run --store sqlite")
        db = os.path.join(folder, "e2e.db")
        t_sql, s_sql = timed(lambda: run_inprocess(mesh, path, f"sqlite:{db}"))
        log("e2e: meshctl run (CLI, once)")
        t_cli, _, proc = run_cli(["run", ARENA, "--events", path, "--format", "json"])
    r_mem, r_sql, r_dec = n / t_mem, n / t_sql, n / t_decode
    summary = (f"{s_mem['events_in']:,} in, {s_mem['delivered']:,} deliveries, {s_mem['emitted']:,} emitted, "
               f"{s_mem['filtered']:,} filtered, {s_mem['dead_lettered']:,} dead")
    same = s_mem == s_sql
    cli_ok = proc.returncode == 0 and json.loads(proc.stdout or "{}").get("emitted") == s_mem["emitted"]
    out.append(Row("e2e", f"arena, memory, {n:,} ev", fmt_rate(r_mem), f"json decode {fmt_rate(r_dec)}",
                   r_mem / r_dec, "of limit", "≥ 30 % of limit", r_mem / r_dec >= 0.30, summary,
                   {"seconds": t_mem, "summary": s_mem}))
    out.append(Row("e2e", f"arena, SQLite, {n:,} ev", fmt_rate(r_sql), f"memory {fmt_rate(r_mem)}",
                   r_sql / r_mem, "of memory", "≥ 50 % of memory", r_sql / r_mem >= 0.5,
                   "summary = memory's" if same else "summary DIFFERS from memory's", {"seconds": t_sql}))
    out.append(
        Row(
            "e2e",
            "CLI wall time (once, memory)",
            fmt_time(t_cli),
            f"in-process {fmt_time(t_mem)}",
            t_cli / t_mem,
            "vs in-process",
            "",
            None,
            "exit 0, same summary" if cli_ok else f"exit {proc.returncode}: {proc.stderr.strip()[-200:]}",
            {"seconds": t_cli},
        )
    )
    return out


if __name__ == "__main__":
    from .common import table

    print(table(rows(quick="--quick" in sys.argv)))
