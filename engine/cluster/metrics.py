"""Prometheus metrics of a deployment: ``/metrics`` of `meshctl serve` and of each `meshctl worker`.

The one module that imports ``prometheus_client`` (the extras ``serve`` and ``redis`` install
it). Nothing new is counted in the runtime's hot path: a worker's metrics come from the trace
records its runtime makes anyway (:class:`TraceMetrics` is its trace's sink, fed only while
metrics are served), from its trace counters, circuit breakers and the broker's queue depths,
read when Prometheus scrapes. Records of a unit of work that did not commit (a conflict, a
fenced or failed unit) are forgotten with it, as the trace counters are.

Names (docs/observability.md has the table):

- ``meshctl_events_in_total{type}``: input events taken from the input queue (``(invalid)``: not a CloudEvent)
- ``meshctl_deliveries_total{consumer, outcome}``: ended attempts (``ok``, ``retry``,
  ``dead-lettered``, ``filtered``, ``throttled``, ``failed``: an orchestration step that failed its run)
- ``meshctl_delivery_duration_seconds{consumer}``: an attempt from delivery to its outcome
- ``meshctl_run_duration_seconds{orchestration, status}``: an orchestration run from start to end
- ``meshctl_dead_letters_total{reason}``, ``meshctl_retries_total``, ``meshctl_runtime_total{counter}``
  (every counter of the run summary), ``meshctl_circuit_state{consumer}`` (0 closed, 1 open,
  2 half-open), ``meshctl_held_deliveries`` (held by pausing breakers, in the whole deployment),
  ``meshctl_queue_backlog{queue}``, ``meshctl_queue_in_hand{queue}``,
  ``meshctl_queue_lag{queue}`` (entries no worker has read yet), ``meshctl_queue_delayed``
- on `serve`: ``meshctl_ingress_requests_total{status}``, ``meshctl_ingress_request_duration_seconds``,
  ``meshctl_ingress_events_total{type}`` (events accepted), and the queue gauges
"""
from __future__ import annotations

import asyncio
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterable, Sequence

from ..core.errors import UsageError
from ..storage.base import StorageError
from ..storage.broker import Broker

log = logging.getLogger(__name__)
METRICS = "/metrics"
DURATION_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
RUN_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600, 6 * 3600, 86400)
OUTCOMES = {"ok": "ok", "retry": "retry", "dead-letter": "dead-lettered", "filtered": "filtered",
            "throttled": "throttled"}
STARTS_KEPT = 100_000  # attempts whose outcome another worker may commit are not remembered forever


def _client():
    try:
        import prometheus_client
        from prometheus_client import core
    except ImportError as exc:
        raise UsageError("metrics need prometheus_client: pip install 'meshctl[serve]'") from exc
    prometheus_client.disable_created_metrics()  # the _created series only double what a scrape sees
    return prometheus_client, core


class TraceMetrics:
    """A worker's metrics: a trace sink (``append``) whose records count once their unit commits."""

    def __init__(self, queues: Callable[[], Sequence[str]], broker: Broker, runtime: Callable[[], Any],
                 forward=None):
        client, core = _client()
        self._client, self._core = client, core
        self.registry = client.CollectorRegistry(auto_describe=False)
        self.events_in = client.Counter("meshctl_events_in", "Input events taken from the input queue",
                                        ["type"], registry=self.registry)
        self.deliveries = client.Counter("meshctl_deliveries", "Ended attempts by consumer and outcome",
                                         ["consumer", "outcome"], registry=self.registry)
        self.delivery_seconds = client.Histogram(
            "meshctl_delivery_duration_seconds", "An attempt from its delivery to its outcome, by consumer",
            ["consumer"], buckets=DURATION_BUCKETS, registry=self.registry)
        self.run_seconds = client.Histogram(
            "meshctl_run_duration_seconds", "Orchestration runs from start to end, on the mesh's clock",
            ["orchestration", "status"], buckets=RUN_BUCKETS, registry=self.registry)
        self.registry.register(_StateCollector(core, queues, broker, runtime))
        self.forward = forward  # the journal sink, when the worker keeps trace records too
        self.keeps_records = forward is not None  # (Trace: else it formats no times, renders no logs)
        self._unit: list[tuple] = []
        self._started: dict[tuple, float] = {}
        self._children: dict[tuple, Any] = {}  # labelled series by labels: .labels() takes a lock each time

    # --- fed by the runtime's trace ----------------------------------------------------------
    def append(self, record: dict) -> None:
        if self.forward is not None:
            self.forward.append(record)
        kind = record["kind"]
        if kind == "deliver":
            self._start((record["event"], record["consumer"]))
        elif kind == "step-start":
            self._start((record["run"], record["step"]))
        elif kind in OUTCOMES:
            consumer = record.get("consumer")
            if consumer is not None:
                self._unit.append(("delivery", consumer, OUTCOMES[kind],
                                   self._took((record.get("event"), consumer))))
        elif kind in ("step-done", "step-failed"):
            consumer = f"orchestration:{record['orchestration']}/{record['step']}"
            self._unit.append(("delivery", consumer, "ok" if kind == "step-done" else "failed",
                               self._took((record["run"], record["step"]))))
        elif kind == "ingest":
            self._unit.append(("in", record["type"] or "(invalid)"))

    def run_ended(self, orchestration: str, status: str, seconds: float | None) -> None:
        if seconds is not None:
            self._unit.append(("run", orchestration, status, seconds))

    def _start(self, key: tuple) -> None:
        if len(self._started) >= STARTS_KEPT:
            self._started.clear()
        self._started[key] = time.perf_counter()

    def _took(self, key: tuple) -> float | None:
        started = self._started.pop(key, None)
        return None if started is None else time.perf_counter() - started

    def settle(self, committed: bool) -> None:
        """The unit whose records came since the last call committed (count them) or did not."""
        observed, self._unit = self._unit, []
        if not committed:
            return
        child = self._child
        for item in observed:
            if item[0] == "delivery":
                _, consumer, outcome, took = item
                child(self.deliveries, consumer, outcome).inc()
                if took is not None:
                    child(self.delivery_seconds, consumer).observe(took)
            elif item[0] == "in":
                child(self.events_in, item[1]).inc()
            else:
                child(self.run_seconds, item[1], item[2]).observe(item[3])

    def _child(self, metric, *labels: str):
        key = (id(metric), *labels)
        series = self._children.get(key)
        if series is None:
            series = self._children[key] = metric.labels(*labels)
        return series

    def exposition(self) -> bytes:
        return self._client.generate_latest(self.registry)


class _StateCollector:
    """What is read when Prometheus scrapes: trace counters, breakers, queue depths."""

    def __init__(self, core, queues: Callable[[], Sequence[str]], broker: Broker, runtime: Callable[[], Any]):
        self.core, self.queues, self.broker, self.runtime = core, queues, broker, runtime

    def collect(self) -> Iterable:
        core, trace = self.core, self.runtime().trace
        counts, dead = dict(trace.counts), dict(trace.dead_by_reason)
        totals = core.CounterMetricFamily("meshctl_runtime", "The run summary's counters of this process",
                                          labels=["counter"])
        for key in sorted(counts):
            totals.add_metric([key], counts[key])
        yield totals
        yield core.CounterMetricFamily("meshctl_retries", "Attempts retried after a failure",
                                       value=counts.get("retries", 0))
        dead_family = core.CounterMetricFamily("meshctl_dead_letters", "Dead letters by reason",
                                               labels=["reason"])
        for reason in sorted(dead):
            dead_family.add_metric([reason], dead[reason])
        yield dead_family
        yield self._breakers()
        yield from self._held()
        yield from queue_families(core, self.broker, self.queues())

    def _breakers(self):
        state = self.core.GaugeMetricFamily(
            "meshctl_circuit_state", "Circuit breaker of a consumer: 0 closed, 1 open, 2 half-open",
            labels=["consumer"])
        runtime = self.runtime()
        now = runtime.clock.now()
        consumers = [c for c in runtime.consumers if c.policy.breaker is not None]
        breakers = dict(runtime.guards.breakers)
        for consumer in consumers:
            until = (breakers.get(consumer.id) or {}).get("open_until")
            state.add_metric([consumer.id], 0 if until is None else 1 if now < until else 2)
        return state


    def _held(self) -> Iterable:
        """Deliveries a pausing breaker holds now, in the whole deployment: its committed `held`
        and `released` counters (a held delivery is a delayed task of any partition)."""
        breakers = [c.policy.breaker for c in self.runtime().consumers if c.policy.breaker is not None]
        if not any(b.pauses for b in breakers):
            return
        try:
            counts = self.broker.counters()
        except StorageError as exc:  # the scrape still answers, without it
            log.warning("held deliveries unavailable: %s", exc)
            return
        yield self.core.GaugeMetricFamily(
            "meshctl_held_deliveries", "Deliveries held by circuit breakers with on_open: pause (deployment)",
            value=max(counts.get("held", 0) - counts.get("released", 0), 0))


def queue_families(core, broker: Broker, lanes: Sequence[str]) -> list:
    """Backlog, in hand and lag of each lane (read through the Broker protocol, so a partitioned
    lane shows as the lanes it is made of), and the delayed tasks."""
    families = [
        core.GaugeMetricFamily("meshctl_queue_backlog", "Entries not yet acknowledged", labels=["queue"]),
        core.GaugeMetricFamily("meshctl_queue_in_hand", "Entries read by a worker, not yet acknowledged",
                               labels=["queue"]),
        core.GaugeMetricFamily("meshctl_queue_lag", "Entries no worker has read yet", labels=["queue"]),
    ]
    partitions = core.GaugeMetricFamily(
        "meshctl_partition_backlog", "Entries not yet acknowledged in a partition's lanes, and its delayed "
        "tasks", labels=["partition"])
    lags = core.GaugeMetricFamily("meshctl_partition_lag", "Entries of a partition's lanes no worker has "
                                  "read", labels=["partition"])
    holders = core.GaugeMetricFamily("meshctl_partition_holder", "1 for the worker that holds a partition",
                                     labels=["partition", "worker"])
    try:
        backlog, pending = broker.lane_backlog(lanes), broker.pending(lanes)
        per_partition, held = broker.partition_backlog(lanes), broker.holders()
        lag = broker.partition_lag(lanes)
    except StorageError as exc:  # the scrape still answers, without the queues
        log.warning("queue depths unavailable: %s", exc)
        return families
    for lane in lanes:
        families[0].add_metric([lane], backlog[lane])
        families[1].add_metric([lane], pending[lane])
        families[2].add_metric([lane], max(backlog[lane] - pending[lane], 0))
    for partition, count in sorted(per_partition.items()):
        partitions.add_metric([str(partition)], count)
        lags.add_metric([str(partition)], lag.get(partition, 0))
        if held.get(partition):  # a partition nobody holds has no series: its backlog shows it waits
            holders.add_metric([str(partition), held[partition]], 1)
    return families + [core.GaugeMetricFamily("meshctl_queue_delayed", "Tasks due later (retries, timers)",
                                              value=backlog.get("delayed", 0)), partitions, lags, holders]


class IngressMetrics:
    """The metrics of `meshctl serve`: an ASGI app around the ingress that answers ``GET /metrics``
    and counts the other requests by status (and the accepted events by type, told by the ingress)."""

    def __init__(self, broker: Broker, lanes: Callable[[], Sequence[str]]):
        client, core = _client()
        self._client, self.app = client, None  # the app it wraps: set by :meth:`around`
        self.registry = client.CollectorRegistry(auto_describe=False)
        self.requests = client.Counter("meshctl_ingress_requests", "Requests answered by status", ["status"],
                                       registry=self.registry)
        self.seconds = client.Histogram("meshctl_ingress_request_duration_seconds", "Time to answer",
                                        buckets=DURATION_BUCKETS, registry=self.registry)
        self.events = client.Counter("meshctl_ingress_events", "Events accepted, by type", ["type"],
                                     registry=self.registry)
        self.registry.register(_QueueCollector(core, broker, lanes))

    def around(self, app: Any) -> IngressMetrics:
        self.app = app
        return self

    def accepted(self, events: list[dict]) -> None:
        for event in events:
            self.events.labels(event["type"]).inc()

    def __getattr__(self, name: str):  # the wrapped app's own (close, wsgi, ...)
        return getattr(self.app, name)

    async def __call__(self, scope: dict, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"] == METRICS and scope["method"] == "GET":
            # the queue depths ask the broker: off the event loop, which answers other requests
            body = await asyncio.get_running_loop().run_in_executor(
                None, self._client.generate_latest, self.registry
            )
            headers = [(b"content-type", self._client.CONTENT_TYPE_LATEST.encode()),
                       (b"content-length", str(len(body)).encode()), (b"cache-control", b"no-store")]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        started = time.perf_counter()

        async def counted(message: dict) -> None:
            if message["type"] == "http.response.start":
                self.requests.labels(str(message["status"])).inc()
            await send(message)

        try:
            await self.app(scope, receive, counted)
        finally:
            self.seconds.observe(time.perf_counter() - started)


class CountedQueue:
    """The ingress's event queue, telling :class:`IngressMetrics` of each event it took."""

    def __init__(self, queue, metrics: IngressMetrics):
        self.queue, self.metrics = queue, metrics

    def ingest(self, events: list[dict]) -> list[str]:
        ids = self.queue.ingest(events)
        self.metrics.accepted(events)
        return ids

    def __getattr__(self, name: str):
        return getattr(self.queue, name)


class _QueueCollector:
    def __init__(self, core, broker: Broker, lanes: Callable[[], Sequence[str]]):
        self.core, self.broker, self.lanes = core, broker, lanes

    def collect(self) -> Iterable:
        yield from queue_families(self.core, self.broker, self.lanes())


class MetricsServer:
    """``/metrics`` of a worker on its own port, answered by a thread (port 0: a free one)."""

    def __init__(self, metrics: TraceMetrics, host: str, port: int):
        exposition = metrics.exposition
        content_type = metrics._client.CONTENT_TYPE_LATEST

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (the name http.server calls)
                if self.path.split("?", 1)[0] != METRICS:
                    self.send_error(404, f"GET {METRICS}")
                    return
                body = exposition()
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args) -> None:  # scrapes are not news
                log.debug("metrics: " + format, *args)

        try:
            self.server = ThreadingHTTPServer((host, port), Handler)
        except OSError as exc:
            problem = exc.strerror or exc
            raise UsageError(f"--metrics-port {port}: cannot listen on {host}:{port}: {problem}") from exc
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://{host}:{self.port}{METRICS}"
        self._thread = threading.Thread(target=self.server.serve_forever, name="metrics", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
