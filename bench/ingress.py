"""The HTTP ingress (`meshctl serve`): single events, batches, and twice its capacity offered.

    python -m bench.ingress [--seconds 6] [--workers 2] [--quick] [--write]
    python -m bench ingress

Every figure comes from one run, against one Redis, with the load generated in this process
(asyncio over raw sockets, cheap per request) and the servers in child processes:

- *single-event* and *batch ingest*: POST /events as fast as 32 keep-alive connections get
  answers, for ``--seconds``, with no workers and no backlog limit: events accepted per
  second. The same app (:class:`engine.cluster.ingress.Ingress`) is served by uvicorn, as
  `meshctl serve` runs it, and by waitress (``Ingress.wsgi``, the best of 4 and 8 threads):
  the peer column, the measurement that chose the server.
- *refusal cost*: the serve process's CPU time (``/proc``) per request while every request
  is refused (the input queue filled to ``--max-backlog`` beforehand, nothing draining it),
  over its CPU time per request while every one is accepted: single events, the same bytes
  on the wire. Target ≤ 10 %.
- *2× overload*: `meshctl serve --max-backlog 2000` and ``--workers`` `meshctl worker`
  processes, the input queue filled to the limit beforehand (a deployment behind: what it
  accepts is what its workers free). First its capacity: single events from clients that
  wait 0.1 s after a 503, events processed by the workers per second once warm. Right after,
  on the same deployment, an open-loop offer of twice that (each request sent when due,
  whatever happened to the others; a refused one is dropped): events accepted per second
  once warm, against the capacity. Target ≥ 80 %. Beside it: the share refused, the answer
  latency, and the workers' processing rate during the overload (a stall would show there).

``--write`` saves the result to bench/results/ingress.json, from which docs/performance.md
takes its ingress section.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .common import REPO, Row, fmt_rate, log
from .e2e import generate
from .scaleout import ARENA, REDIS, meshctl

RESULTS = REPO / "bench" / "results"
STRUCTURED, BATCH = "application/cloudevents+json", "application/cloudevents-batch+json"
CONNECTIONS = 32
OVERLOAD_BACKLOG = 2000
WARMUP = 1.5  # seconds of each deployment phase not counted: workers start, caches fill


# --- the servers ------------------------------------------------------------------------------


class Server:
    """`meshctl serve` (uvicorn) or the waitress peer on a free port, in a child process."""

    def __init__(self, url: str, workdir: Path, kind: str = "uvicorn", threads: int = 4,
                 max_backlog: int = 0):
        if kind == "uvicorn":
            command = meshctl("serve", str(ARENA), "--store", url, "--port", "0",
                              f"--max-backlog={max_backlog}", f"--threads={threads}")
        else:
            command = [sys.executable, "-m", "bench.ingress", "--waitress-peer", url, str(threads),
                       str(max_backlog)]
        self.log = open(workdir / f"{kind}.log", "w")
        self.proc = subprocess.Popen(command, cwd=REPO, stdout=self.log, stderr=subprocess.PIPE, text=True)
        for line in self.proc.stderr:
            if "listening on " in line:
                address = line.split("listening on http://", 1)[1].strip()
                self.host, port = address.rsplit(":", 1)
                self.port = int(port)
                break
        else:
            raise RuntimeError(f"{kind} did not start: exit {self.proc.wait()}")
        threading.Thread(target=lambda: [None for _ in self.proc.stderr], daemon=True).start()

    def cpu_seconds(self) -> float:
        """User + system CPU of the server process so far (all its threads)."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self.log.close()


def waitress_peer(url: str, threads: int, max_backlog: int) -> None:
    """The peer: the same Ingress as `meshctl serve`, as a WSGI app under waitress."""
    import waitress

    from engine.analysis.validate import require_valid
    from engine.commands.deploy import broker_store, ingress

    store = broker_store(url, "serve")
    app = ingress(require_valid(str(ARENA)).mesh, store, max_backlog=max_backlog or None)
    server = waitress.create_server(app.wsgi, host="127.0.0.1", port=0, threads=threads,
                                    connection_limit=1000, backlog=2048, asyncore_use_poll=True)
    print(f"waitress: listening on http://127.0.0.1:{server.effective_port}", file=sys.stderr, flush=True)
    server.run()


# --- the load -----------------------------------------------------------------------------------


def request(body: bytes, media: str) -> bytes:
    return (b"POST /events HTTP/1.1\r\nHost: bench\r\nContent-Type: " + media.encode()
            + b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)


class Load:
    """Requests from a list of bodies, over keep-alive connections, closed or open loop."""

    def __init__(self, bodies: list[bytes], media: str):
        self.bodies, self.media, self.next = bodies, media, 0

    def take(self) -> bytes:
        body = self.bodies[self.next % len(self.bodies)]
        self.next += 1
        return request(body, self.media)

    def drive(self, server: Server, seconds: float, rate: float | None = None, warmup: float = 0.0,
              connections: int = CONNECTIONS, backoff: float = 0.0) -> dict:
        """Send for *warmup* + *seconds*; count and time the answers of the last *seconds* only.
        Closed loop (*rate* None) a connection waits *backoff* seconds after a 503, as a
        client that honours Retry-After would; open loop a refused request is dropped."""
        # a thread of its own: the caller's thread may have an event loop running already (a
        # test session that drove a browser through playwright's sync API keeps one)
        with ThreadPoolExecutor(max_workers=1) as thread:
            return thread.submit(
                asyncio.run, self._drive(server, seconds, rate, warmup, connections, backoff)
            ).result()

    async def _drive(self, server, seconds, rate, warmup, connections, backoff) -> dict:  # noqa: C901
        loop = asyncio.get_running_loop()
        start = loop.time()
        counted_from, stop_at = start + warmup, start + warmup + seconds
        tokens = asyncio.Queue() if rate else None
        answers: dict[int, list[float]] = {}
        offered = 0

        async def pace():
            nonlocal offered
            while loop.time() < stop_at:
                due = int((loop.time() - start) * rate)
                while offered < due:
                    offered += 1
                    tokens.put_nowait(loop.time())
                await asyncio.sleep(0.002)

        async def connection():
            reader, writer = await asyncio.open_connection(server.host, server.port)
            try:
                while loop.time() < stop_at:
                    due = await tokens.get() if tokens else loop.time()
                    writer.write(self.take())
                    head = await reader.readuntil(b"\r\n\r\n")
                    length = 0
                    for line in head.split(b"\r\n"):
                        if line[:15].lower() == b"content-length:":
                            length = int(line[15:])
                    await reader.readexactly(length)
                    status = int(head[9:12])
                    if loop.time() >= counted_from:
                        answers.setdefault(status, []).append(loop.time() - due)
                    if status == 503 and backoff:
                        await asyncio.sleep(backoff)
            finally:
                writer.close()

        pacer = asyncio.ensure_future(pace()) if rate else None
        workers = [asyncio.ensure_future(connection()) for _ in range(connections)]
        await asyncio.sleep(max(0.0, stop_at - loop.time()))
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        if pacer:
            pacer.cancel()
        return {"seconds": seconds, "answers": answers, "offered": offered}


def summary(result: dict, per_request: int = 1) -> dict:
    seconds, answers = result["seconds"], result["answers"]
    waits = sorted(t for times in answers.values() for t in times)
    out = {f"status_{code}": len(times) for code, times in sorted(answers.items())}
    out["accepted_per_s"] = round(len(answers.get(202, [])) * per_request / seconds, 1)
    out["answered_per_s"] = round(len(waits) / seconds, 1)
    if waits:
        out["p50_ms"] = round(waits[len(waits) // 2] * 1e3, 2)
        out["p99_ms"] = round(waits[min(len(waits) - 1, int(len(waits) * 0.99))] * 1e3, 2)
    return out


# --- the phases ---------------------------------------------------------------------------------


class Prefix:
    """A Redis prefix of its own, its keys deleted afterwards."""

    def __enter__(self) -> str:
        from engine.storage import open_broker

        self.url = f"{REDIS}?prefix=ingress-{uuid.uuid4().hex[:10]}"
        self.broker = open_broker(self.url)
        return self.url

    def __exit__(self, *exc) -> None:
        self.broker.store.drop()
        self.broker.close()


def ingest(load: Load, seconds: float, workdir: Path, kind: str, threads: int, per_request: int) -> dict:
    """Accepted events per second, no workers and no backlog limit; the server's CPU per request."""
    with Prefix() as url:
        server = Server(url, workdir, kind, threads)
        try:
            cpu = server.cpu_seconds()
            result = summary(load.drive(server, seconds, warmup=0.5), per_request)
            requests = result.get("status_202", 0)
            result["cpu_ms_per_request"] = round((server.cpu_seconds() - cpu) / max(1, requests) * 1e3, 3)
        finally:
            server.stop()
    return result


def refusals(load: Load, seconds: float, workdir: Path, events: list[dict]) -> dict:
    """The same requests while the backlog is full: every one refused; the server's CPU per request."""
    limit = 100
    with Prefix() as url:
        from engine.storage import open_broker

        broker = open_broker(url)
        broker.ingest(events[:limit])  # nothing drains it: the limit is reached from the start
        broker.close()
        server = Server(url, workdir, "uvicorn", 4, max_backlog=limit)
        try:
            cpu = server.cpu_seconds()
            result = summary(load.drive(server, seconds, warmup=0.5))
            answered = sum(v for k, v in result.items() if k.startswith("status_"))
            result["cpu_ms_per_request"] = round((server.cpu_seconds() - cpu) / max(1, answered) * 1e3, 3)
        finally:
            server.stop()
    return result


def overload(load: Load, seconds: float, workdir: Path, workers: int, backlog: list[dict]) -> dict:
    """serve + workers on one store whose input queue is first filled to the limit with
    *backlog* (the steady state of a deployment behind: what it accepts is what its workers
    free). Its capacity: polite clients (closed loop, 0.1 s after a 503), events processed
    per second. Right after, on the same deployment, twice that offered open loop."""
    from .soak_redis import Deployment

    with Prefix() as url:
        from engine.storage import open_broker

        broker = open_broker(url)
        for start in range(0, len(backlog), 500):
            broker.ingest(backlog[start:start + 500])
        crew = Deployment(url, workdir, reclaim_after=10.0, faults=[])
        for _ in range(workers):
            crew.start()
        server = Server(url, workdir, "uvicorn", 4, max_backlog=OVERLOAD_BACKLOG)

        def phase(rate: float | None) -> dict:
            counted = {}

            def sample() -> None:  # events_in when the counted window opens and closes
                time.sleep(WARMUP)
                counted["start"] = broker.counters().get("events_in", 0)
                time.sleep(seconds)
                counted["end"] = broker.counters().get("events_in", 0)

            sampler = threading.Thread(target=sample)
            sampler.start()
            cpu = {"server": server.cpu_seconds(), "client": time.process_time()}
            # open loop, enough connections that a request due rarely waits for a free one
            result = summary(load.drive(server, seconds, rate=rate, warmup=WARMUP,
                                        connections=256 if rate else 64, backoff=0.0 if rate else 0.1))
            sampler.join()
            # the cores the ingress and this load generator took (warm-up included), beside the workers'
            spent = seconds + WARMUP
            result["server_cores"] = round((server.cpu_seconds() - cpu["server"]) / spent, 2)
            result["client_cores"] = round((time.process_time() - cpu["client"]) / spent, 2)
            result["processed_per_s"] = round((counted["end"] - counted["start"]) / seconds, 1)
            result["backlog_after"] = broker.backlog()
            if rate:
                result["offered_per_s"] = round(rate, 1)
            return result

        try:
            time.sleep(1.0)  # the workers load the mesh
            capacity = phase(None)
            log(f"ingress capacity: {json.dumps(capacity)}")
            overloaded = phase(2 * capacity["processed_per_s"])
            log(f"ingress overload: {json.dumps(overloaded)}")
        finally:
            server.stop()
            crew.stop()
            broker.close()
    return {"capacity": capacity, "overload": overloaded}


def arena_bodies(n: int, workdir: Path) -> tuple[list[bytes], list[dict]]:
    """*n* generated events as JSON lines to send, and OVERLOAD_BACKLOG more (other ids) as events."""
    path = workdir / "events.jsonl"
    generate(str(path), n + OVERLOAD_BACKLOG, players=1000)
    lines = path.read_bytes().splitlines()
    return lines[:n], [json.loads(line) for line in lines[n:]]


def measure(seconds: float, workers: int, quick: bool) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        lines, events = arena_bodies(60_000 if quick else 200_000, workdir)
        single = Load(lines, STRUCTURED)
        batches = Load([b"[" + b",".join(lines[i:i + 100]) + b"]" for i in range(0, len(lines), 100)], BATCH)
        result: dict = {"seconds": seconds, "workers": workers, "connections": CONNECTIONS}
        peers = (4,) if quick else (4, 8)
        for name, load, per_request in (("single", single, 1), ("batch", batches, 100)):
            result[name] = {"uvicorn": ingest(load, seconds, workdir, "uvicorn", 4, per_request)}
            for threads in peers:
                result[name][f"waitress-{threads}"] = ingest(load, seconds, workdir, "waitress", threads,
                                                             per_request)
            log(f"ingress {name}: {json.dumps(result[name])}")
        for name, load in (("single", single), ("batch", batches)):
            result[name]["refused"] = refusals(load, seconds, workdir, events)
            log(f"ingress {name} refused: {json.dumps(result[name]['refused'])}")
        result.update(overload(single, seconds, workdir, workers, events))
    return result


# --- rows -----------------------------------------------------------------------------------------


def statuses(figures: dict) -> set[str]:
    return {k for k in figures if k.startswith("status_")}


def best_waitress(figures: dict) -> tuple[str, dict]:
    return max(((k, v) for k, v in figures.items() if k.startswith("waitress")),
               key=lambda item: item[1]["accepted_per_s"])


def table_rows(result: dict) -> list[Row]:
    rows = []
    for name, case in (("single", "single-event ingest (uvicorn vs waitress)"),
                       ("batch", "batch ingest, 100 events (uvicorn vs waitress)")):
        ours = result[name]["uvicorn"]
        peer_name, peer = best_waitress(result[name])
        rows.append(Row("ingress", case, fmt_rate(ours["accepted_per_s"]),
                        f"{fmt_rate(peer['accepted_per_s'])} ({peer_name} threads)",
                        ours["accepted_per_s"] / peer["accepted_per_s"], "speed-up",
                        extra={"uvicorn": ours, "waitress": result[name]}))
    for name, case in (("single", "refusal cost, single event (server CPU)"),
                       ("batch", "refusal cost, batch of 100 (server CPU)")):
        accept_cpu = result[name]["uvicorn"]["cpu_ms_per_request"]
        refused = result[name]["refused"]
        refuse_cpu = refused["cpu_ms_per_request"]
        rows.append(Row("ingress", case, f"{refuse_cpu:.3f} ms", f"{accept_cpu:.3f} ms accepted",
                        refuse_cpu / accept_cpu, "of acceptance", "≤ 10 % of acceptance",
                        refuse_cpu / accept_cpu <= 0.10,
                        "all 503" if statuses(refused) == {"status_503"} else "NOT all refused",
                        extra=refused))
    capacity, overload = result["capacity"]["processed_per_s"], result["overload"]
    share = overload["accepted_per_s"] / capacity
    refused = overload.get("status_503", 0) / max(1, sum(overload[k] for k in statuses(overload)))
    rows.append(Row("ingress", f"2× overload ({overload['offered_per_s']:,.0f} ev/s offered, "
                               f"{result['workers']} workers)",
                    fmt_rate(overload["accepted_per_s"]), f"{fmt_rate(capacity)} capacity", share,
                    "of capacity", "≥ 80 % of capacity", share >= 0.80,
                    f"{refused:.0%} refused, p50 {overload.get('p50_ms', 0):.0f} ms, processing "
                    f"{fmt_rate(overload['processed_per_s'])}; cores: serve {overload['server_cores']}, "
                    f"load {overload['client_cores']}",
                    extra={"capacity": result["capacity"], "overload": overload}))
    return rows


def rows(quick: bool = False) -> list[Row]:
    return table_rows(measure(3.0 if quick else 6.0, 2, quick))


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--waitress-peer":
        waitress_peer(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=6.0, help="length of each measured phase")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="fewer events generated, one waitress peer")
    parser.add_argument("--write", action="store_true",
                        help="save to bench/results/ingress.json (for the docs)")
    args = parser.parse_args()
    result = measure(args.seconds, args.workers, args.quick)
    from .common import machine, table

    print(table(table_rows(result)))
    print(json.dumps(result))
    if args.write:
        command = "python -m bench.ingress " + " ".join(sys.argv[1:])
        saved = {"command": command, "date": time.strftime("%Y-%m-%d"), "machine": machine(),
                 "result": result}
        (RESULTS / "ingress.json").write_text(json.dumps(saved, indent=1) + "\n")
        print(f"wrote {(RESULTS / 'ingress.json').relative_to(REPO)}")


if __name__ == "__main__":
    main()
