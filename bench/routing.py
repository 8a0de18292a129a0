"""Routing throughput on the shared workload: PatternIndex vs a scan vs moto.

Run from the repository root::

    python -m bench.routing                 # N = 10, 100, 1000, 10000
    python -m bench.routing --sizes 10,100 --no-moto

For each N it loads ``make_rules(N)`` and the first M events of ``make_events(5000)`` from
``../shared/bench/workload_routes.py`` (M as in that directory's README), matches every
event against all N rules with each matcher, and prints events per second (index and scan
repeat the M events for at least a second; "1st pass" is the index's rate over the first
pass alone), the speed-up of the index, and the match count and digest, which must equal
the README's; the exit status is 1 if any matcher disagrees with them.
moto is optional: if ``moto`` is importable its EventBridge matcher is timed too, as moto
uses it (``matches_event``: a JSON round trip and a flattening of the event per rule) and its
core (the event flattened once per event, then ``_does_event_match`` per rule).
``python -m bench routing`` runs the same measurement inside the whole suite (:func:`rows`),
followed by the same routing inside a real run (:func:`run_rows`): ``engine.commands.runs.run_mesh``
(the engine side of ``meshctl run``) on a generated mesh of N routes on one event type, each
event taken by exactly one of them (``bench/many_routes.py``).
"""
from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from engine.language.patterns import PatternIndex, compile_pattern

REPO = Path(__file__).resolve().parent.parent
WORKLOAD = REPO.parent / "shared" / "bench" / "workload_routes.py"
EXPECTED = {  # N -> (M events, matches, digest), from the shared README
    10: (5000, 2257, "35aba70ea9ed"),
    100: (2000, 7962, "30a9b96999e2"),
    1000: (300, 10530, "bb2cc529fb54"),
    10000: (40, 14247, "2eea43da9ec6"),
}

Matcher = Callable[[dict], list]
MATCHERS = ("index", "scan", "moto", "moto_core")


def load_workload():
    spec = importlib.util.spec_from_file_location("workload_routes", WORKLOAD)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def index_matcher(rules: list[dict]) -> Matcher:
    index = PatternIndex()
    for rule in rules:
        index.add(rule["name"], rule["pattern"])
    return index.match


def scan_matcher(rules: list[dict]) -> Matcher:
    compiled = [(rule["name"], compile_pattern(rule["pattern"])) for rule in rules]
    return lambda event: [name for name, pattern in compiled if pattern.matches(event)]


def moto_matcher(rules: list[dict]) -> Matcher | None:
    try:
        from moto.events.models import EventPattern
    except ImportError:
        return None
    loaded = [(rule["name"], EventPattern.load(json.dumps(rule["pattern"]))) for rule in rules]
    return lambda event: [name for name, pattern in loaded if pattern.matches_event(event)]


def moto_core_matcher(rules: list[dict]) -> Matcher | None:
    """moto's matching core: the event flattened once, then every rule's pattern walked."""
    try:
        from moto.events.models import EventPattern
    except ImportError:
        return None
    loaded = [(rule["name"], EventPattern.load(json.dumps(rule["pattern"]))) for rule in rules]
    flatten = EventPattern._flatten_dict

    def match(event: dict) -> list:
        flat = flatten(json.loads(json.dumps(event)))
        return [name for name, pattern in loaded
                if not pattern._pattern or pattern._does_event_match(flat, pattern._pattern)]
    return match


def run(match: Matcher, events: list[dict], min_seconds: float) -> tuple[float, float, int, str]:
    """Events per second (over all passes, and in the first), matches, and their digest.

    The pass over ``events`` is repeated until ``min_seconds`` have gone by, so that short
    runs are not dominated by timer noise; count and digest come from the first pass.
    """
    digest = hashlib.sha256()
    count = passes = 0
    start = time.perf_counter()
    while True:
        for i, event in enumerate(events):
            names = match(event)
            if not passes:
                for name in names:
                    digest.update(f"{i}:{name}\n".encode())
                count += len(names)
        passes += 1
        elapsed = time.perf_counter() - start
        if passes == 1:
            first = len(events) / elapsed
        if elapsed >= min_seconds:
            return passes * len(events) / elapsed, first, count, digest.hexdigest()[:12]


def measure(
    n: int, workload: Any, events: list[dict], with_moto: bool, min_seconds: float = 1.0
) -> dict[str, Any]:
    m, expected_count, expected_digest = EXPECTED[n]
    rules = workload.make_rules(n)
    start = time.perf_counter()
    matchers = {"index": index_matcher(rules)}
    row: dict[str, Any] = {"n": n, "m": m, "build_s": time.perf_counter() - start}
    matchers["scan"] = scan_matcher(rules)
    if with_moto:
        matchers["moto"] = moto_matcher(rules)
        matchers["moto_core"] = moto_core_matcher(rules)
    for name, match in matchers.items():
        if match is None:
            continue
        rate, first, count, digest = run(match, events[:m],
                                         min_seconds=0.0 if name.startswith("moto") else min_seconds)
        row[name], row[f"{name}_first"] = rate, first
        row[f"{name}_ok"] = (count, digest) == (expected_count, expected_digest)
        row.setdefault("matches", count)
        row.setdefault("digest", digest)
    return row


def rate(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}" if value >= 100 else f"{value:,.1f}"


def ratio(a: float | None, b: float | None) -> str:
    return "-" if a is None or b is None else f"{a / b:,.1f}x"


def table(rows: list[dict[str, Any]]) -> str:
    head = ("N", "M", "index build s", "index ev/s", "index 1st pass", "scan ev/s", "moto ev/s",
            "index/scan", "index/moto", "matches", "digest", "all agree")
    lines = [head]
    for r in rows:
        agree = all(r.get(f"{k}_ok", True) for k in MATCHERS)
        lines.append((str(r["n"]), str(r["m"]), f"{r['build_s']:.3f}", rate(r["index"]),
                      rate(r["index_first"]), rate(r["scan"]),
                      rate(r.get("moto")), ratio(r["index"], r["scan"]), ratio(r["index"], r.get("moto")),
                      str(r["matches"]), r["digest"], "yes" if agree else "NO"))
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    out = [" | ".join(cell.rjust(w) for cell, w in zip(line, widths)) for line in lines]
    out.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.routing", description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,100,1000,10000",
                        help="comma-separated N (from 10,100,1000,10000)")
    parser.add_argument("--no-moto", action="store_true", help="skip moto even if it is installed")
    args = parser.parse_args(argv)
    if not WORKLOAD.exists():
        parser.error(f"shared workload not found at {WORKLOAD}")
    sizes = [int(s) for s in args.sizes.split(",")]
    unknown = [n for n in sizes if n not in EXPECTED]
    if unknown:
        parser.error(f"unknown sizes {unknown}; choose from {sorted(EXPECTED)}")
    with_moto = not args.no_moto
    if with_moto and moto_matcher([]) is None:
        print("moto not installed: its column stays empty (pip install 'moto[events]')")
        with_moto = False
    workload = load_workload()
    events = workload.make_events(5000)
    rows = [measure(n, workload, events, with_moto) for n in sizes]
    print(table(rows))
    return 0 if all(r.get(f"{k}_ok", True) for r in rows for k in MATCHERS) else 1


if __name__ == "__main__":
    raise SystemExit(main())


def rows(quick: bool = False) -> list:
    """The routing rows of ``python -m bench``: index vs moto (as used, and its core) vs our own scan."""
    from .common import Row, fmt_rate, log

    if not WORKLOAD.exists():
        return [Row("routing", "-", f"shared workload not found at {WORKLOAD}")]
    with_moto = moto_matcher([]) is not None
    workload = load_workload()
    events = workload.make_events(5000)
    sizes = [10, 1000, 10000] if quick else [10, 100, 1000, 10000]
    measured = []
    for n in sizes:
        log(f"routing N={n}")
        measured.append(measure(n, workload, events, with_moto, min_seconds=0.3 if quick else 1.0))
    out = []
    for r in measured:
        ok = all(r.get(f"{k}_ok", True) for k in MATCHERS)
        check = f"{r['matches']} matches, digest {r['digest']}: " + ("all agree" if ok else "MISMATCH")
        big = r["n"] == 10000
        extra = {k: r.get(k) for k in ("index", "index_first", "scan", "moto", "moto_core", "build_s")}
        out.append(Row("routing", f"N={r['n']:,} vs moto", fmt_rate(r["index"]),
                       f"moto {fmt_rate(r.get('moto'))}" if r.get("moto") else "moto not installed",
                       r["index"] / r["moto"] if r.get("moto") else None, "",
                       "≥ 300× (aim 1,000×)" if big else "",
                       (r["index"] / r["moto"] >= 300 if r.get("moto") else None) if big else None, check,
                       extra))
        if big and r.get("moto_core"):
            out.append(Row("routing", "N=10,000 vs moto core", fmt_rate(r["index"]),
                           f"moto core {fmt_rate(r['moto_core'])}", r["index"] / r["moto_core"], "", "", None,
                           check))
        if big:
            out.append(Row("routing", "N=10,000 vs own scan", fmt_rate(r["index"]),
                           f"scan {fmt_rate(r['scan'])}", r["index"] / r["scan"], "", "≥ 10×",
                           r["index"] / r["scan"] >= 10, check))
    by_n = {r["n"]: r for r in measured}
    if 10 in by_n and 10000 in by_n:
        growth = by_n[10]["index"] / by_n[10000]["index"]  # time per event at 10,000 / at 10
        matches = (by_n[10000]["matches"] / by_n[10000]["m"]) / (by_n[10]["matches"] / by_n[10]["m"])
        out.append(Row("routing", "time/event growth N=10→10,000", f"{growth:,.1f}× slower per event",
                       f"N ×1,000; matches/event ×{matches:,.0f}", growth, "growth",
                       "≪ N (≤ 100×)", growth <= 100, ""))
    return out + run_rows(quick)


def _feed_timer(marks: list[float]) -> Callable:
    """A ``progress`` hook for ``run_mesh``: marks the first input read and the end of the
    input, so that the runtime's construction (compiling N routes) stays out of the time."""
    def progress(items):
        for n, item in enumerate(items):
            if not n:
                marks.append(time.perf_counter())
            yield item
        marks.append(time.perf_counter())
    return progress


def run_once(n: int, events: int, folder: str) -> dict[str, Any]:
    """``run_mesh`` on a mesh of ``n`` routes and ``events`` inputs: seconds per event, the summary."""
    from engine.analysis.validate import require_valid
    from engine.commands.runs import RunOptions, run_mesh

    from .many_routes import write_events, write_mesh

    mesh_dir, path = (
        write_mesh(os.path.join(folder, f"mesh-{n}"), n),
        os.path.join(folder, f"events-{n}.jsonl"),
    )
    write_events(path, events, n)
    mesh = require_valid(mesh_dir).mesh
    marks: list[float] = []
    started = time.perf_counter()
    summary, _ = run_mesh(mesh, path, RunOptions(), progress=_feed_timer(marks))
    total = time.perf_counter() - started
    return {"per_event": (marks[1] - marks[0]) / events, "setup_s": total - (marks[1] - marks[0]),
            "summary": summary}


def run_rows(quick: bool = False) -> list:
    """"meshctl run, N routes": time per event with one match per event, and its growth."""
    from .common import Row, fmt_time, log

    events = 2_000 if quick else 5_000
    measured = {}
    with tempfile.TemporaryDirectory(prefix="bench-routes-") as folder:
        for n in (10, 100, 1000, 10000):
            log(f"routing: meshctl run, N={n}")
            measured[n] = run_once(n, events, folder)
    out = []
    for n, r in measured.items():
        s = r["summary"]
        exact = (
            s["matched"],
            s["delivered"],
            s["emitted"],
            s["filtered"],
            s["unconsumed"],
            s["dead_lettered"],
        ) == (2 * events, 2 * events, events, 0, 0, 0)
        check = (f"{s['events_in']:,} in, {s['matched']:,} matched, {s['filtered']} filtered: "
                 + ("one route per event" if exact else "UNEXPECTED summary"))
        out.append(Row("routing", f"meshctl run, N={n:,} routes", f"{fmt_time(r['per_event'])}/event",
                       f"start-up {fmt_time(r['setup_s'])}", None, "", "", None, check,
                       {"per_event_s": r["per_event"], "setup_s": r["setup_s"], "summary": s}))
    growth = measured[10000]["per_event"] / measured[10]["per_event"]
    out.append(Row("routing", "meshctl run: time/event growth N=10→10,000", f"{growth:,.2f}× per event",
                   "N ×1,000; matches/event ×1", growth, "growth", "≤ 4×", growth <= 4, ""))
    return out
