"""``python -m bench [WORKLOAD...] [--quick]``: the benchmark suite against peers, in one run.

Workloads: routing, orchestration, stream, state, e2e, validate, memory, pauses, startup, scale,
ingress, explore (default: all, ~11-14 minutes on 2 cores; ``--quick`` ~1-2 minutes with smaller inputs).
Prints one table of figures and ratios. A full run of all workloads also saves its rows to
``bench/results/latest.json`` (the previous file becomes ``previous.json``) and writes
``docs/performance.md`` with this run and the one before it. A quick run of all workloads saves
``bench/results/quick.json`` and writes ``bench/results/quick.md`` instead: its figures are not
comparable with the targets, so it never touches the doc nor the full runs' results.
``--report`` rewrites ``docs/performance.md`` from the saved results of full runs only.

Install the peers first: ``pip install -e '.[bench]'`` (moto 5.2.5, bytewax 0.21.1). A peer
that is not installed leaves its column empty; nothing fails because of it.
"""
from __future__ import annotations

import argparse
import importlib
import json
import shlex
import sys
import time

from .common import REPO, Row, log, machine, table

WORKLOADS = ("routing", "orchestration", "stream", "state", "e2e", "validate", "memory", "pauses", "startup",
             "scale", "ingress", "explore")
RESULTS = REPO / "bench" / "results"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("workloads", nargs="*", metavar="WORKLOAD",
                        help=f"any of {', '.join(WORKLOADS)} (default: all)")
    parser.add_argument("--quick", action="store_true", help="smaller inputs: about a minute or two in all")
    parser.add_argument("--no-write", action="store_true",
                        help="print only; do not save results or write the doc")
    parser.add_argument("--report", action="store_true",
                        help="only rewrite docs/performance.md from bench/results")
    args = parser.parse_args(argv)
    if args.report:
        from .report import write_report

        print(f"wrote {write_report()}")
        return 0
    unknown = [w for w in args.workloads if w not in WORKLOADS]
    if unknown:
        parser.error(f"unknown workload {', '.join(unknown)}: choose from {', '.join(WORKLOADS)}")
    chosen = args.workloads or list(WORKLOADS)
    info = machine()
    started = time.perf_counter()
    rows: list[Row] = []
    for name in chosen:
        module = importlib.import_module(f".{name}", __package__)
        begun = time.perf_counter()
        rows += module.rows(quick=args.quick)
        log(f"{name}: {time.perf_counter() - begun:,.1f} s")
    total = time.perf_counter() - started
    print(table(rows))
    print(f"\n{len(rows)} rows in {total:,.0f} s on {info['nproc']} × {info['cpu']}, Python {info['python']}")
    command = "python -m bench" + "".join(
        f" {shlex.quote(a)}" for a in (argv if argv is not None else sys.argv[1:])
    )
    if args.no_write or set(chosen) != set(WORKLOADS):
        return 0
    RESULTS.mkdir(exist_ok=True)
    latest, previous = RESULTS / ("quick.json" if args.quick else "latest.json"), RESULTS / "previous.json"
    if latest.exists() and not args.quick:
        latest.replace(previous)
    latest.write_text(json.dumps({"command": command, "quick": args.quick, "seconds": total, "machine": info,
                                  "rows": [r.as_dict() for r in rows]}, indent=1, ensure_ascii=False) + "\n")
    from .report import write_quick_report, write_report

    written = write_quick_report() if args.quick else write_report()
    print(f"wrote {latest.relative_to(REPO)} and {written.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
