"""Memory: peak RSS of ``meshctl run`` at growing input sizes, on two examples.

- arena (choreography, routes, a stream): 100,000 and 1,000,000 input events, the generated
  stream of :mod:`bench.e2e`;
- orders (an orchestration per input: a three-step saga with retries and compensation):
  10,000, 100,000 and 1,000,000 generated orders of :mod:`bench.orders`. Each order starts a
  run that leaves state behind: this row is what showed memory growing with work done.

Each size runs in its own child process (``python -m cli run MESH --events FILE``, in memory,
no trace or output file); its peak resident set size is the child's own ``ru_maxrss``. The
targets: peak RSS at each size ≤ 1.5 × the size ten times smaller (memory must not grow with
the length of the input). ``--quick`` uses 10,000 and 100,000 arena events and 1,000 and
10,000 orders.
"""
from __future__ import annotations

import json
import os
import tempfile

from . import orders
from .common import Row, log, run_cli
from .e2e import ARENA, generate


def rows(quick: bool = False) -> list[Row]:
    arena = (10_000, 100_000) if quick else (100_000, 1_000_000)
    saga = (1_000, 10_000) if quick else (10_000, 100_000, 1_000_000)
    return _growth("arena", ARENA, generate, arena, "ev") + _growth(
        "orders", orders.ORDERS, orders.generate, saga, "orders"
    )


def _growth(name: str, mesh: str, generate, sizes: tuple[int, ...], unit: str) -> list[Row]:
    """One row per size: peak RSS of `meshctl run MESH` on that many generated inputs, and its
    growth over the size before it."""
    out: list[Row] = []
    previous = None
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as folder:
        for n in sizes:
            path = os.path.join(folder, f"{name}-{n}.jsonl")
            generate(path, n)
            log(f"memory: meshctl run {name} on {n:,} {unit} ({os.path.getsize(path) / 1e6:,.0f} MB)")
            wall, peak, proc = run_cli(["run", mesh, "--events", path, "--format", "json"])
            os.remove(path)
            if proc.returncode == 0:
                summary = json.loads(proc.stdout)
                check = (f"exit 0, {summary['events_in']:,} in, {summary['runs_failed']:,} runs failed, "
                         f"{wall:,.0f} s wall")
            else:
                check = f"exit {proc.returncode}: {proc.stderr.strip()[-200:]}"
            case = f"{name}: peak RSS, {n:,} {unit}"
            extra = {"kib": peak, "wall_s": wall}
            if previous is None:
                out.append(Row("memory", case, f"{peak / 1024:,.0f} MiB", "", None, "", "", None, check,
                               extra))
            else:
                (m, before), growth = previous, peak / previous[1]
                out.append(Row("memory", case, f"{peak / 1024:,.0f} MiB",
                               f"{m:,} {unit}: {before / 1024:,.0f} MiB", growth, "growth", "≤ 1.5×",
                               growth <= 1.5, check, extra))
            previous = (n, peak)
    return out


if __name__ == "__main__":
    import sys

    from .common import table

    print(table(rows(quick="--quick" in sys.argv)))
