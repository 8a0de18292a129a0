"""Stream: a keyed tumbling-window count, meshctl vs bytewax vs a plain-Python dict (the limit).

1,000 keys, 1,000,000 events (100,000 with ``--quick``), 1,000 events per second of event
time (so 1M events span ~17 one-minute windows per key, ~17,000 windows in all), in time
order. Each contender counts events per (key, one-minute window) and its windows are
compared as a set of (key, window start, count) — digest in the check column:

* **meshctl, Runtime in memory**: a ``Stream`` (``window: {tumbling: 60s}``, ``count``) run by
  :class:`~engine.runtime.interpreter.Runtime` with the default in-memory store and no trace
  sink, as ``meshctl run`` without ``--trace``; windows collected from the emitted events;
* **meshctl, Runtime on SQLite**: the same with a :class:`SqliteStore` and a checkpoint commit
  every 1,000 inputs, as ``meshctl run --store sqlite:PATH`` does without ``--trace`` (the
  input and emitted journals are kept, trace records are not: ``engine.commands.runs.run_mesh``);
* **WindowOperator**: ``engine/runtime/windows.py`` alone (no routing, no delivery);
* **bytewax 0.21.1**: ``TestingSource`` (batches of 1,000) → ``count_window`` with an
  ``EventClock`` (no wait; its system clock pinned so that only event time moves the
  watermark) and a ``TumblingWindower`` of 60 s aligned to the epoch → ``TestingSink``, run
  with ``run_main`` (one worker);
* **dict count**: ``datetime.fromisoformat`` of each ``time`` and ``counts[key, minute] += 1``.

Every contender gets the same list of event dicts, built before timing.
"""
from __future__ import annotations

import hashlib
import os
import random
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

from .common import Row, fmt_rate, log, run_durably, timed

BASE = 1_767_225_600  # 2026-01-01T00:00:00Z
KEYS = 1000
MESH = """apiVersion: meshctl/v1
kind: EventType
metadata: {name: bench.tick}
spec: {external: true}
---
apiVersion: meshctl/v1
kind: EventType
metadata: {name: bench.window}
spec: {}
---
apiVersion: meshctl/v1
kind: Stream
metadata: {name: ticks}
spec:
  from: [bench.tick]
  key: data.k
  time: time
  window: {tumbling: 60s}
  aggregate:
    n: {count: {}}
  emit: {type: bench.window}
"""


def make_events(n: int, seed: int = 7) -> list[dict]:
    rng = random.Random(seed)
    keys = [f"k{i:04d}" for i in range(KEYS)]
    stamps: dict[int, str] = {}
    events = []
    for i in range(n):
        second = BASE + i // 1000
        stamp = stamps.get(second)
        if stamp is None:
            stamp = stamps[second] = datetime.fromtimestamp(second, timezone.utc).strftime(
                "%Y-%m-%dT%H:%M:%SZ"
            )
        events.append({"specversion": "1.0", "id": f"t{i}", "source": "bench", "type": "bench.tick",
                       "time": stamp, "data": {"k": keys[rng.randrange(KEYS)]}})
    return events


def digest(windows: set) -> str:
    text = "".join(f"{k}|{s}|{c}\n" for k, s, c in sorted(windows))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _epoch(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp())


def load_mesh(folder: str):
    from engine.analysis.validate import check_mesh

    Path(folder, "stream.yaml").write_text(MESH)
    checked = check_mesh(folder)
    if checked.errors:
        raise RuntimeError("generated stream mesh is invalid: " + checked.diagnostics[0].format())
    return checked.mesh


def run_memory(mesh, events: list[dict]) -> set:
    from engine.runtime.interpreter import Runtime
    from engine.runtime.trace import Trace

    out: list = []
    Runtime(mesh, trace=Trace(), on_emit=out.append).run(events)
    return {(e["data"]["key"], _epoch(e["data"]["start"]), e["data"]["n"]) for e in out}


def run_sqlite(mesh, events: list[dict], path: str, every: int = 1000) -> set:
    """As ``meshctl run --store sqlite:PATH`` without ``--trace`` (bench.common.run_durably)."""
    emitted = run_durably(mesh, events, path, every)
    return {(e["data"]["key"], _epoch(e["data"]["start"]), e["data"]["n"]) for e in emitted}


def run_operator(mesh, events: list[dict]) -> set:
    from engine.runtime.windows import WindowOperator

    operator = WindowOperator(mesh.streams["ticks"])
    process = operator.process
    outputs = []
    for event in events:
        outputs += process(event)
    outputs += operator.flush()
    return {(o.key, int(o.start), o.values["n"]) for o in outputs if o.kind == "window"}


def run_dict(events: list[dict]) -> set:
    parse = datetime.fromisoformat
    counts: dict = {}
    for event in events:
        slot = (event["data"]["k"], int(parse(event["time"]).timestamp()) // 60)
        counts[slot] = counts.get(slot, 0) + 1
    return {(k, w * 60, c) for (k, w), c in counts.items()}


def bytewax_available() -> str | None:
    try:
        import bytewax.operators  # noqa: F401
        import bytewax.operators.windowing  # noqa: F401
        import bytewax.testing  # noqa: F401
    except ImportError as exc:
        return f"not installed ({exc})"
    return None


def run_bytewax(events: list[dict]) -> set:
    import bytewax.operators as op
    from bytewax.dataflow import Dataflow
    from bytewax.operators.windowing import EventClock, TumblingWindower, count_window
    from bytewax.testing import TestingSink, TestingSource, run_main

    epoch = datetime(1970, 1, 1, tzinfo=timezone.utc)
    pinned = datetime(2000, 1, 1, tzinfo=timezone.utc)
    parse = datetime.fromisoformat
    flow = Dataflow("bench_stream")
    up = op.input("in", flow, TestingSource(events, batch_size=1000))
    clock = EventClock(ts_getter=lambda e: parse(e["time"]), wait_for_system_duration=timedelta(0),
                       now_getter=lambda: pinned)
    windower = TumblingWindower(length=timedelta(seconds=60), align_to=epoch)
    counted = count_window("count", up, clock, windower, key=lambda e: e["data"]["k"])
    found: list = []
    op.output("out", counted.down, TestingSink(found))
    run_main(flow)
    # count_window's output: (key, (window id, count)); window id = windows since align_to
    return {(key, window_id * 60, count) for key, (window_id, count) in found}


def rows(quick: bool = False) -> list[Row]:
    n = 100_000 if quick else 1_000_000
    log(f"stream: generating {n:,} events")
    events = make_events(n)
    results: dict[str, tuple[float, set]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-stream-") as folder:
        mesh = load_mesh(folder)
        contenders = [
            ("dict", lambda: run_dict(events)),
            ("operator", lambda: run_operator(mesh, events)),
            ("memory", lambda: run_memory(mesh, events)),
            ("sqlite", lambda: run_sqlite(mesh, events, os.path.join(folder, "stream.db"))),
        ]
        missing = bytewax_available()
        if missing is None:
            contenders.insert(1, ("bytewax", lambda: run_bytewax(events)))
        for name, fn in contenders:
            log(f"stream: {name}")
            results[name] = timed(fn)
    rate = {name: n / seconds for name, (seconds, _) in results.items()}
    truth = results["dict"][1]
    same = {name: windows == truth for name, (_, windows) in results.items()}

    def check(name: str) -> str:
        windows = results[name][1]
        return f"{len(windows):,} windows, digest {digest(windows)}" + (
            "" if same[name] else " (DIFFERS from dict count)"
        )

    bw = rate.get("bytewax")
    peer = f"bytewax {fmt_rate(bw)}" if bw else f"bytewax {missing}"
    out = [
        Row("stream", f"Runtime in memory, {n:,} ev", fmt_rate(rate["memory"]), peer,
            rate["memory"] / bw if bw else None, "", "≥ 3× (aim 10×)",
            rate["memory"] / bw >= 3 if bw else None, check("memory")),
        Row("stream", f"Runtime on SQLite, {n:,} ev", fmt_rate(rate["sqlite"]), peer,
            rate["sqlite"] / bw if bw else None, "", "≥ 1×", rate["sqlite"] / bw >= 1 if bw else None,
            check("sqlite")),
        Row("stream", "WindowOperator alone", fmt_rate(rate["operator"]), peer,
            rate["operator"] / bw if bw else None, "", "", None, check("operator")),
    ]
    if bw:
        out.append(Row("stream", "bytewax (the peer)", fmt_rate(bw), f"dict count {fmt_rate(rate['dict'])}",
                       bw / rate["dict"], "of limit", "", None, check("bytewax")))
    out.append(Row("stream", "Runtime in memory vs the limit", fmt_rate(rate["memory"]),
                   f"dict count {fmt_rate(rate['dict'])}", rate["memory"] / rate["dict"], "of limit", "",
                   None, check("dict")))
    for row in out:
        row.extra = {"events": n, "rates": rate}
    return out


if __name__ == "__main__":
    import sys

    from .common import table

    print(table(rows(quick="--quick" in sys.argv)))
