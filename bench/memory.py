"""Memory: peak RSS of ``meshctl run`` on 100,000 and 1,000,000 input events (the arena).

The input is the generated arena stream of :mod:`bench.e2e`, written to a JSON Lines file
that ``meshctl run`` reads line by line. Each size runs in its own child process
(``python -m cli run workflows/arena --events FILE``, in memory, no trace or output file);
its peak resident set size is the child's own ``ru_maxrss`` from ``os.wait4``. The target is
peak RSS at 1M ≤ 1.5 × peak RSS at 100k: memory must not grow with the length of the input.
``--quick`` uses 10,000 and 100,000 events.
"""
from __future__ import annotations

import json
import os
import tempfile

from .common import Row, log, run_cli
from .e2e import ARENA, generate


def rows(quick: bool = False) -> list[Row]:
    sizes = (10_000, 100_000) if quick else (100_000, 1_000_000)
    peaks, walls, checks = {}, {}, {}
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as folder:
        for n in sizes:
            path = os.path.join(folder, f"arena-{n}.jsonl")
            generate(path, n)
            log(f"memory: meshctl run on {n:,} events ({os.path.getsize(path) / 1e6:,.0f} MB)")
            wall, peak, proc = run_cli(["run", ARENA, "--events", path, "--format", "json"])
            peaks[n], walls[n] = peak, wall
            if proc.returncode == 0:
                summary = json.loads(proc.stdout)
                checks[n] = f"exit 0, {summary['events_in']:,} in, {wall:,.0f} s wall"
            else:
                checks[n] = f"exit {proc.returncode}: {proc.stderr.strip()[-200:]}"
            os.remove(path)
    small, big = sizes
    growth = peaks[big] / peaks[small]
    return [
        Row("memory", f"peak RSS, {small:,} ev", f"{peaks[small] / 1024:,.0f} MiB", "", None, "", "", None, checks[small],
            {"kib": peaks[small], "wall_s": walls[small]}),
        Row("memory", f"peak RSS, {big:,} ev", f"{peaks[big] / 1024:,.0f} MiB", f"{small:,} ev: {peaks[small] / 1024:,.0f} MiB",
            growth, "growth", "≤ 1.5×", growth <= 1.5, checks[big], {"kib": peaks[big], "wall_s": walls[big]}),
    ]


if __name__ == "__main__":
    import sys

    from .common import table

    print(table(rows(quick="--quick" in sys.argv)))
