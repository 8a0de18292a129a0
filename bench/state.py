"""State: a running count and sum per key, meshctl's keyed state vs bytewax vs a dict (the limit).

1,000 keys, 300,000 events (30,000 with ``--quick``), 1,000 events per second of event time,
each ``{"k": key, "v": 1..100}``. Each contender keeps ``{n, sum}`` per key and gives, for every
event, its key's running count and sum after it. The outputs are compared as a sorted list of
(key, n, sum) — a value added out of order within a key changes every sum after it — and the
final state per key as well; digest in the check column:

* **meshctl, Runtime in memory**: a ``Service`` declaring ``state: {key: "{{ data.k }}"}``
  whose subscription calls a Python handler (``tally:count``, a module written beside the
  mesh in a temporary directory) that updates ``context.state`` and emits ``bench.counted``
  with the running figures; run by :class:`~engine.runtime.interpreter.Runtime` with the default
  in-memory store and no trace sink, as ``meshctl run`` without ``--trace``. Outputs are the
  emitted events (kept as a tuple each, as the other contenders keep theirs); the final state
  is read back from the store;
* **meshctl, Runtime on SQLite**: the same with a :class:`SqliteStore` and a checkpoint commit
  every 1,000 inputs, as ``meshctl run --store sqlite:PATH`` does without ``--trace`` (each
  commit writes the keys changed since the one before, in the checkpoint's transaction);
  outputs from the store's emitted journal, final state from its ``state`` table (the file
  opened again after the run's store is closed);
* **bytewax 0.21.1**: ``TestingSource`` (batches of 1,000) → ``key_on`` → ``map_value`` (the
  event's data) → ``stateful_map`` (the same ``{n, sum}`` dict as state) → ``TestingSink``, run
  with ``run_main`` (one worker, no recovery: its state lives in memory only); the final state
  is each key's last output;
* **dict loop**: the key's ``{n, sum}`` dict looked up in a dict of them, two additions, and a
  tuple appended per event.

Every contender gets the same list of event dicts, built before timing. No target is set: the
peer keeps its state in memory only and does no delivery work per event, while each meshctl
event is an attempt that reads a copy of its key's value, is recorded for dedup and commits
its write with its emitted event (checked against the value read). The ratio measures that
price rather than a like-for-like race, and no issue has set a figure for it yet.
"""
from __future__ import annotations

import hashlib
import os
import random
import tempfile
from datetime import datetime, timezone
from pathlib import Path

from .common import Row, fmt_rate, log, run_durably, timed

BASE = 1_767_225_600  # 2026-01-01T00:00:00Z
KEYS = 1000
OWNER = "service:tally"
MESH = """apiVersion: meshctl/v1
kind: EventType
metadata: {name: bench.reading}
spec: {external: true}
---
apiVersion: meshctl/v1
kind: EventType
metadata: {name: bench.counted}
spec: {}
---
apiVersion: meshctl/v1
kind: Service
metadata: {name: tally}
spec:
  state: {key: "{{ data.k }}"}
  subscriptions:
    - on: bench.reading
      emits: [bench.counted]
      do: {call: {python: "tally:count"}}
"""
HANDLER = '''"""The handler of the state benchmark: a running count and sum per key, in `context.state`."""


def count(event, context):
    data = event["data"]
    state = context.state
    n = state["n"] = state.get("n", 0) + 1
    total = state["sum"] = state.get("sum", 0) + data["v"]
    context.emit("bench.counted", {"k": data["k"], "n": n, "sum": total})
'''

# What every contender returns: one (key, n, sum) per event, and the final {key: (n, sum)}.
Tally = tuple[list[tuple[str, int, int]], dict[str, tuple[int, int]]]


def make_events(n: int, keys: int = KEYS, seed: int = 11) -> list[dict]:
    """*n* readings over *keys* keys (drawn at random), 1,000 per second of event time."""
    rng = random.Random(seed)
    names = [f"k{i:04d}" for i in range(keys)]
    stamps: dict[int, str] = {}
    events = []
    for i in range(n):
        second = BASE + i // 1000
        stamp = stamps.get(second)
        if stamp is None:
            stamp = stamps[second] = datetime.fromtimestamp(second, timezone.utc).strftime(
                "%Y-%m-%dT%H:%M:%SZ"
            )
        events.append({"specversion": "1.0", "id": f"r{i}", "source": "bench", "type": "bench.reading",
                       "time": stamp, "data": {"k": names[rng.randrange(keys)], "v": rng.randint(1, 100)}})
    return events


def digest(result: Tally) -> str:
    outputs, final = result
    text = "".join(f"{k}|{n}|{s}\n" for k, n, s in sorted(outputs))
    text += "".join(f"{k}={n},{s}\n" for k, (n, s) in sorted(final.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def load_mesh(folder: str):
    from engine.analysis.validate import check_mesh

    Path(folder, "state.yaml").write_text(MESH)
    Path(folder, "tally.py").write_text(HANDLER)
    checked = check_mesh(folder)
    if checked.errors:
        raise RuntimeError("generated state mesh is invalid: " + checked.diagnostics[0].format())
    return checked.mesh


def _counted(emitted: list[dict]) -> list[tuple[str, int, int]]:
    return [(e["data"]["k"], e["data"]["n"], e["data"]["sum"])
            for e in emitted if e["type"] == "bench.counted"]


def stored_state(store) -> dict[str, tuple[int, int]]:
    """The final {key: (n, sum)} as the store holds it under the service's keys."""
    from engine.runtime.keyedstate import PREFIX, split_store_key

    final = {}
    for stored in store.state_keys(PREFIX):
        owner, key = split_store_key(stored)
        if owner == OWNER:
            value = store.get_state(stored)["value"]
            final[key] = (value["n"], value["sum"])
    return final


def run_memory(mesh, events: list[dict]) -> Tally:
    from engine.runtime.interpreter import Runtime
    from engine.runtime.trace import Trace

    outputs: list = []

    def on_emit(event: dict) -> None:  # kept as the other contenders keep theirs: a tuple per event
        if event["type"] == "bench.counted":
            data = event["data"]
            outputs.append((data["k"], data["n"], data["sum"]))

    runtime = Runtime(mesh, trace=Trace(), on_emit=on_emit)
    runtime.run(events)
    return outputs, stored_state(runtime.store)


def run_sqlite(mesh, events: list[dict], path: str, every: int = 1000) -> Tally:
    """As ``meshctl run --store sqlite:PATH`` without ``--trace`` (bench.common.run_durably)."""
    from engine.storage import open_store

    emitted = run_durably(mesh, events, path, every)
    reopened = open_store(f"sqlite:{path}")  # the final state as committed, not as cached
    try:
        final = stored_state(reopened)
    finally:
        reopened.close()
    return _counted(emitted), final


def run_dict(events: list[dict]) -> Tally:
    states: dict[str, dict] = {}
    outputs = []
    for event in events:
        data = event["data"]
        key = data["k"]
        state = states.get(key)
        if state is None:
            state = states[key] = {"n": 0, "sum": 0}
        state["n"] += 1
        state["sum"] += data["v"]
        outputs.append((key, state["n"], state["sum"]))
    return outputs, {k: (s["n"], s["sum"]) for k, s in states.items()}


def bytewax_available() -> str | None:
    try:
        import bytewax.operators  # noqa: F401
        import bytewax.testing  # noqa: F401
    except ImportError as exc:
        return f"not installed ({exc})"
    return None


def _mapper(state: dict | None, data: dict) -> tuple[dict, tuple[int, int]]:
    if state is None:
        state = {"n": 0, "sum": 0}
    state["n"] += 1
    state["sum"] += data["v"]
    return state, (state["n"], state["sum"])


def run_bytewax(events: list[dict]) -> Tally:
    import bytewax.operators as op
    from bytewax.dataflow import Dataflow
    from bytewax.testing import TestingSink, TestingSource, run_main

    flow = Dataflow("bench_state")
    up = op.input("in", flow, TestingSource(events, batch_size=1000))
    keyed = op.key_on("key", up, lambda e: e["data"]["k"])
    values = op.map_value("data", keyed, lambda e: e["data"])
    counted = op.stateful_map("tally", values, _mapper)
    found: list = []
    op.output("out", counted, TestingSink(found))
    run_main(flow)
    outputs = [(key, n, total) for key, (n, total) in found]
    final: dict[str, tuple[int, int]] = {}
    for key, n, total in outputs:  # the last output of a key is its state
        if n > final.get(key, (0, 0))[0]:
            final[key] = (n, total)
    return outputs, final


def rows(quick: bool = False, size: int | None = None, keys: int = KEYS) -> list[Row]:
    """The workload's rows; *size* and *keys* replace the input's size (tests run it small)."""
    n = size or (30_000 if quick else 300_000)
    log(f"state: generating {n:,} events over {keys:,} keys")
    events = make_events(n, keys)
    results: dict[str, tuple[float, Tally]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-state-") as folder:
        mesh = load_mesh(folder)
        contenders = [
            ("dict", lambda: run_dict(events)),
            ("memory", lambda: run_memory(mesh, events)),
            ("sqlite", lambda: run_sqlite(mesh, events, os.path.join(folder, "state.db"))),
        ]
        missing = bytewax_available()
        if missing is None:
            contenders.insert(1, ("bytewax", lambda: run_bytewax(events)))
        for name, fn in contenders:
            log(f"state: {name}")
            results[name] = timed(fn)
    rate = {name: n / seconds for name, (seconds, _) in results.items()}
    truth = digest(results["dict"][1])

    def check(name: str) -> str:
        outputs, final = results[name][1]
        found = digest(results[name][1])
        return f"{len(outputs):,} counts, {len(final):,} keys, digest {found}" + (
            "" if found == truth else " (DIFFERS from dict loop)"
        )

    bw = rate.get("bytewax")
    peer = f"bytewax {fmt_rate(bw)}" if bw else f"bytewax {missing}"
    limit = f"dict loop {fmt_rate(rate['dict'])}"
    out = [
        Row("state", f"Runtime in memory, {n:,} ev", fmt_rate(rate["memory"]), peer,
            rate["memory"] / bw if bw else None, "", "", None, check("memory")),
        Row("state", f"Runtime on SQLite, {n:,} ev", fmt_rate(rate["sqlite"]), peer,
            rate["sqlite"] / bw if bw else None, "", "", None, check("sqlite")),
        Row("state", "Runtime on SQLite vs in memory", fmt_rate(rate["sqlite"]),
            f"memory {fmt_rate(rate['memory'])}", rate["sqlite"] / rate["memory"], "of memory", "", None,
            check("sqlite")),
    ]
    if bw:
        out.append(Row("state", "bytewax (the peer)", fmt_rate(bw), limit, bw / rate["dict"], "of limit", "",
                       None, check("bytewax")))
    out.append(Row("state", "Runtime in memory vs the limit", fmt_rate(rate["memory"]), limit,
                   rate["memory"] / rate["dict"], "of limit", "", None, check("dict")))
    for row in out:
        row.extra = {"events": n, "keys": keys, "rates": rate}
    return out


if __name__ == "__main__":
    import sys

    from .common import table

    print(table(rows(quick="--quick" in sys.argv)))
