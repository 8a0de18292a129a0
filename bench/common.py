"""What every workload of ``python -m bench`` shares: result rows, timing, the table, the machine."""
from __future__ import annotations

import gc
import importlib.metadata
import os
import platform
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parent.parent


@dataclass
class Row:
    """One line of the table: our figure, the peer's (or the limit's), their ratio, the target.

    ``ratio`` is always "how many times better meshctl is" in the sense of the target
    (speed-up for times, fraction of the limit for throughput, growth for scaling rows);
    ``met`` is None when there is no target or the peer is missing.
    """

    workload: str
    case: str
    ours: str
    peer: str = "-"
    ratio: float | None = None
    ratio_label: str = ""
    target: str = ""
    met: bool | None = None
    check: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """Seconds taken by ``fn()`` (garbage collector settled first, then left on), and its result."""
    gc.collect()
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def best_of(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """The fastest of ``repeat`` timings of ``fn()`` (the least disturbed by a shared machine)."""
    best, result = float("inf"), None
    for _ in range(max(1, repeat)):
        seconds, result = timed(fn)
        best = min(best, seconds)
    return best, result


def fmt_rate(value: float | None, unit: str = "ev/s") -> str:
    if value is None:
        return "-"
    text = f"{value:,.0f}" if value >= 100 else f"{value:,.1f}" if value >= 10 else f"{value:,.2f}"
    return f"{text} {unit}".strip()


def fmt_time(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds >= 1:
        return f"{seconds:,.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:,.2f} ms"
    return f"{seconds * 1e6:,.1f} µs"


def fmt_ratio(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}×" if value >= 100 else f"{value:,.1f}×" if value >= 10 else f"{value:.2f}×"


def table(rows: list[Row], markdown: bool = False) -> str:
    head = ("workload", "case", "meshctl", "peer / limit", "ratio", "target", "met", "check")
    lines = [head]
    for r in rows:
        if r.ratio is not None and r.ratio_label.startswith("of "):
            ratio = f"{r.ratio * 100:.1f} % {r.ratio_label}"
        else:
            ratio = fmt_ratio(r.ratio) + (
                f" {r.ratio_label}" if r.ratio_label and r.ratio is not None else ""
            )
        met = "-" if r.met is None else "yes" if r.met else "NO"
        lines.append((r.workload, r.case, r.ours, r.peer, ratio, r.target or "-", met, r.check or "-"))
    if markdown:
        out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        out += ["| " + " | ".join(cell.replace("|", "\\|") for cell in line) + " |" for line in lines[1:]]
        return "\n".join(out)
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    out = [" | ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip() for line in lines]
    out.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(out)


def version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def machine() -> dict[str, Any]:
    """nproc, the CPU model, memory, Python, the peers' versions and the date (UTC)."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        nproc = subprocess.run(["nproc"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        nproc = str(os.cpu_count())
    try:
        date = subprocess.run(["date", "-u"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        date = time.strftime("%a %b %d %H:%M:%S UTC %Y", time.gmtime())
    memory = "unknown"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    except OSError:
        pass
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                                text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "engine", "cli.py"], cwd=REPO,
                               capture_output=True, text=True, check=True).stdout.strip()
        commit += " (with uncommitted changes to engine/ or cli.py)" if dirty else ""
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    return {"date": date, "commit": commit, "nproc": nproc, "cpu": cpu, "memory": memory,
            "python": sys.version.split()[0], "implementation": platform.python_implementation(),
            "platform": platform.platform(),
            "peers": {name: version(name) for name in ("moto", "boto3", "bytewax", "PyYAML", "jsonschema")}}


def save_run(name: str, command: str, record: dict) -> Path:
    """Keep *record* (what a run of a stand-alone benchmark found) in ``bench/results/NAME.json``
    under its *command*, replacing an earlier run of the same command; the docs are made from it."""
    import json

    saved = REPO / "bench" / "results" / f"{name}.json"
    runs = json.loads(saved.read_text())["runs"] if saved.exists() else []
    runs = [r for r in runs if r["command"] != command] + [
        {"command": command, "date": time.strftime("%Y-%m-%d"), "machine": machine(), **record}]
    saved.write_text(json.dumps({"runs": runs}, indent=1) + "\n")
    return saved


def log(message: str) -> None:
    """Progress on stderr, so the table on stdout stays clean."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# Runs the command given as arguments and writes its peak RSS (KiB) to the file named first.
# A small process of its own, so that the child's high-water mark is not the benchmark's:
# a forked child's ru_maxrss starts at its parent's resident size, before exec.
_WRAPPER = ("import resource, subprocess, sys; code = subprocess.call(sys.argv[2:]); "
            "open(sys.argv[1], 'w').write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)); "
            "sys.exit(code)")


def run_cli(args: list[str]) -> tuple[float, int, subprocess.CompletedProcess]:
    """Run ``python -m cli ARGS`` from the repository: wall seconds, its peak RSS (KiB), the result."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="bench-cli-") as folder:
        rss = os.path.join(folder, "maxrss")
        started = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", _WRAPPER, rss, sys.executable, "-m", "cli", *args],
                              cwd=REPO, capture_output=True, text=True)
        wall = time.perf_counter() - started
        peak = int(Path(rss).read_text()) if os.path.exists(rss) else 0
    return wall, peak, proc


def run_durably(mesh, events: list[dict], path: str, every: int = 1000) -> list[dict]:
    """Feed *events* as ``meshctl run --store sqlite:PATH`` without ``--trace`` does
    (engine.commands.runs.run_mesh: no trace journal, a commit every *every* inputs); the
    events it emitted, read back from the store."""
    from engine.runtime.interpreter import Runtime
    from engine.runtime.trace import Trace
    from engine.storage import open_store

    store = open_store(f"sqlite:{path}")
    try:
        runtime = Runtime(mesh, store=store, trace=Trace())
        runtime.notes["journal_trace"] = False
        for item in events:
            runtime.feed(item)
            if runtime.fed % every == 0:
                store.commit(runtime.snapshot())
        runtime.finish()
        store.commit(runtime.snapshot())
        return list(store.records("emitted"))
    finally:
        store.close()
