"""Pauses: a process that is stalled now and then must give the same result as one that is not.

``meshctl run workflows/orders`` on generated orders (:mod:`bench.orders`), run twice as a
child process (``python -m cli run ... --output O --dlq-out D --format json``): once
undisturbed, and once while a thread of the benchmark stops the child with SIGSTOP for
0.8 s at 15 seeded random moments of its running time, then lets it go on with SIGCONT. A
stop stands for what a busy machine does to a process anyway: a descheduling, a long
garbage collection, a swap-in. The check is whether the emitted events, the dead letters
and the summary are byte for byte the same (target: identical). Once in memory, once with
``--store sqlite:PATH`` (a fresh file per run). ``--quick`` uses 5,000 orders and 5 stops.
Linux only: the child is signalled through a pidfd.
"""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .common import REPO, Row, log
from .orders import ORDERS, generate

STOP_SECONDS = 0.8
SEED = 13


@dataclass(frozen=True)
class Result:
    """What one run left behind: its files and summary as bytes, and how it went."""

    output: bytes
    dead_letters: bytes
    summary: bytes
    code: int
    stderr: str
    wall: float
    stops: int

    def differences(self, other: Result) -> list[str]:
        pairs = (("output", self.output, other.output),
                 ("dead letters", self.dead_letters, other.dead_letters),
                 ("summary", self.summary, other.summary))
        return [name for name, mine, theirs in pairs if mine != theirs]


def _stall(proc: subprocess.Popen, signal_child: Callable[[int], None], moments: list[float],
           stopped: list[float]) -> None:
    """Stop *proc* for STOP_SECONDS at each moment (seconds of its running time, paused time excluded)."""
    ran = 0.0
    for moment in moments:
        try:
            proc.wait(timeout=moment - ran)
            return  # the run ended before this moment
        except subprocess.TimeoutExpired:
            pass
        ran = moment
        try:
            signal_child(signal.SIGSTOP)
        except ProcessLookupError:
            return
        try:
            time.sleep(STOP_SECONDS)
        finally:
            try:
                signal_child(signal.SIGCONT)
            except ProcessLookupError:
                return
        stopped.append(moment)


def run_orders(events: str, folder: str, tag: str, store: str | None, moments: list[float] = ()) -> Result:
    """One ``meshctl run`` of workflows/orders in a child process, stopped at *moments* (may be none)."""
    output, dead = os.path.join(folder, f"{tag}.out.jsonl"), os.path.join(folder, f"{tag}.dlq.jsonl")
    args = [sys.executable, "-m", "cli", "run", ORDERS, "--events", events, "--output", output, "--dlq-out",
            dead, "--format", "json"]
    if store is not None:
        args += ["--store", store]
    started = time.perf_counter()
    proc = subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    # Signals go through a pidfd, opened before the child can be reaped: once it is, they fail
    # instead of reaching whichever process got its pid next.
    handle = os.pidfd_open(proc.pid)
    stopped: list[float] = []
    stopper = threading.Thread(target=_stall, daemon=True, args=(
        proc, lambda signum: signal.pidfd_send_signal(handle, signum), list(moments), stopped))
    stopper.start()
    out, err = proc.communicate()
    stopper.join()
    os.close(handle)
    wall = time.perf_counter() - started
    return Result(_read(output), _read(dead), out, proc.returncode, err.decode(errors="replace"), wall,
                  len(stopped))


def _read(path: str) -> bytes:
    return Path(path).read_bytes() if os.path.exists(path) else b""


def _moments(rng: random.Random, seconds: float, count: int) -> list[float]:
    """``count`` sorted moments between 5 % and 60 % of a run that takes ``seconds`` undisturbed.

    Not later: the same run may go faster the second time on a shared machine, and every stop
    should fall inside it.
    """
    return sorted(rng.uniform(0.05 * seconds, 0.6 * seconds) for _ in range(count))


def _lines(data: bytes) -> int:
    return data.count(b"\n")


def _row(label: str, n: int, calm: Result, stalled: Result, wanted: int, note: str = "") -> Row:
    differs = calm.differences(stalled)
    failed = [
        json.loads(r.summary)["runs_failed"] if r.code == 0 else f"exit {r.code}" for r in (calm, stalled)
    ]
    dead = [_lines(r.dead_letters) for r in (calm, stalled)]
    check = (
        f"{stalled.stops} of {wanted} stops of {STOP_SECONDS:g} s; undisturbed / stopped: runs failed "
        f"{failed[0]} / {failed[1]}, dead letters {dead[0]:,} / {dead[1]:,}; "
        f"{_lines(calm.output):,} emitted{note}"
    )
    for result in (calm, stalled):
        if result.code != 0:
            check += f"; exit {result.code}: {result.stderr.strip()[-200:]}"
    return Row("pauses", f"orders, {label}, {n:,} ev",
               "identical" if not differs else "differs: " + ", ".join(differs), "undisturbed run", None, "",
               "identical", not differs and calm.code == 0 and stalled.stops == wanted, check,
               {"wall_s": calm.wall, "stalled_wall_s": stalled.wall, "stops": stalled.stops})


def rows(quick: bool = False) -> list[Row]:
    n, stops = (5_000, 5) if quick else (20_000, 15)
    rng = random.Random(SEED)
    out: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="bench-pauses-") as folder:
        events = os.path.join(folder, "orders.jsonl")
        generate(events, n)
        memory_summary = b""
        for label, durable in (("memory", False), ("SQLite", True)):
            def store(tag: str) -> str | None:
                return f"sqlite:{folder}/{label}-{tag}.db" if durable else None
            log(f"pauses: meshctl run workflows/orders on {n:,} orders ({label}), undisturbed")
            calm = run_orders(events, folder, f"{label}-calm", store("calm"))
            log(
                f"pauses: the same, stopped {stops} times for {STOP_SECONDS:g} s "
                f"({calm.wall:,.1f} s undisturbed)"
            )
            stalled = run_orders(events, folder, f"{label}-stalled", store("stalled"),
                                 _moments(rng, calm.wall, stops))
            if not durable:
                memory_summary = calm.summary
            note = "" if not durable else "; summary = memory's" if calm.summary == memory_summary else \
                "; summary differs from memory's"
            out.append(_row(label, n, calm, stalled, stops, note))
    return out


if __name__ == "__main__":
    from .common import table

    print(table(rows(quick="--quick" in sys.argv)))
