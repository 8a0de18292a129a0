"""OpenTelemetry spans of a worker or a run: one per delivery attempt and per orchestration step.

The one module that imports ``opentelemetry`` (the extra ``meshctl[otel]``), and only when
spans are asked for: without the extra, or without configuration, :func:`tracing` returns
None and the worker runs as before. Spans are made when the process already has an SDK
tracer provider (an embedding application's, or a test's), or when the standard variables
configure an exporter: ``OTEL_TRACES_EXPORTER`` (``otlp`` or ``console``) or
``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` (OTLP over
http/protobuf, or gRPC with ``OTEL_EXPORTER_OTLP_PROTOCOL=grpc``); ``OTEL_SDK_DISABLED=true``
turns them off. ``OTEL_SERVICE_NAME`` names the service (default ``meshctl-worker``).

Each span is a child of the trace context its event carries (``traceparent``/``tracestate``,
the CloudEvents distributed-tracing extension); an event without one starts a trace of its
own span. While a span is open, the events its work derives take its span id as their parent
id (:data:`engine.runtime.tracecontext.active_span`), so the next deliveries nest under it.
"""
from __future__ import annotations

import atexit
import logging
import os
import sys
from dataclasses import dataclass
from typing import Any, Callable

from ..runtime.tracecontext import TRACEPARENT, TRACESTATE, active_span, parse

log = logging.getLogger(__name__)
# task kinds that get a span -> the span's verb
SPANNED = {"attempt": "deliver", "complete": "deliver", "step-attempt": "step", "step-complete": "step",
           "compensate": "compensate", "compensated": "compensate"}

CONFIGURING = ("OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")


@dataclass
class Tracing:
    tracer: Any
    flush: Callable[[], Any]  # exports what is left (at a worker's stop; at exit anyway)


_built: list[Tracing] = []  # the provider built from the environment: one per process


def tracing() -> Tracing | None:
    """The tracer of this process's spans, or None when OpenTelemetry is not installed or not configured."""
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    if "opentelemetry" not in sys.modules and not any(os.environ.get(name) for name in CONFIGURING):
        return None  # nothing asks for spans: not even the import is paid
    try:
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
    except ImportError:
        return None
    provider = trace.get_tracer_provider()
    if isinstance(provider, TracerProvider):  # set by whoever runs us: theirs to shut down
        return Tracing(provider.get_tracer("meshctl"), provider.force_flush)
    if _built:
        return _built[0]
    exporter = _exporter_from_environment()
    if exporter is None:
        return None
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME") or "meshctl-worker"})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(exporter))
    atexit.register(provider.shutdown)
    _built.append(Tracing(provider.get_tracer("meshctl"), provider.force_flush))
    return _built[0]


def _exporter_from_environment():
    chosen = os.environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    endpoint = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or os.environ.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT")
    if chosen == "none" or (not chosen and not endpoint):
        return None
    if chosen == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    if chosen not in ("", "otlp"):
        log.warning("OTEL_TRACES_EXPORTER=%s is not one meshctl knows (otlp, console, none): no spans",
                    chosen)
        return None
    try:
        if os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "").strip().lower() == "grpc":
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        else:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError:
        log.warning("the OTLP exporter is not installed (pip install 'meshctl[otel]'): no spans")
        return None
    return OTLPSpanExporter()  # it reads the endpoint, headers and timeout from OTEL_* itself


class Spans:
    """Wraps a runtime's tasks (:meth:`~engine.runtime.interpreter.Runtime.wrap_tasks`): those of
    :data:`SPANNED` run each in a span."""

    def __init__(self, tracer, runtime, worker: str | None = None):
        from opentelemetry.trace import SpanKind, Status, StatusCode
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        self.tracer, self.rt, self.worker = tracer, runtime, worker
        self._kind, self._error = SpanKind.CONSUMER, (Status, StatusCode.ERROR)
        self._propagator = TraceContextTextMapPropagator()

    def wrap(self, kind: str, handler: Callable[[Any], None]) -> Callable[[Any], None]:
        verb = SPANNED.get(kind)
        if verb is None:
            return handler
        return lambda payload: self._in_span(verb, kind, handler, payload)

    def _in_span(self, verb: str, kind: str, handler: Callable[[Any], None], payload: Any) -> None:
        event, consumer, attributes = self._about(kind, payload)
        carrier = {}
        if event is not None and parse(event.get(TRACEPARENT)) is not None:
            carrier = {name: event[name] for name in (TRACEPARENT, TRACESTATE)
                       if isinstance(event.get(name), str)}
        with self.tracer.start_as_current_span(
            f"{verb} {consumer}", context=self._propagator.extract(carrier), kind=self._kind,
            attributes=attributes, record_exception=True, set_status_on_exception=True,
        ) as span:
            context = span.get_span_context()
            token = active_span.set((format(context.trace_id, "032x"), format(context.span_id, "016x")))
            try:
                handler(payload)
            finally:
                active_span.reset(token)

    def _about(self, kind: str, payload: dict) -> tuple[dict | None, str, dict]:
        """The event a task works on, its consumer, and the span's attributes."""
        attributes: dict[str, Any] = {} if self.worker is None else {"meshctl.worker": self.worker}
        if kind in ("attempt", "complete"):
            delivery = payload if kind == "attempt" else payload["delivery"]
            event, consumer = delivery["event"], delivery["consumer"]
            attributes["meshctl.attempt"] = delivery["number"]
        else:
            run = self.rt.store.get_state(f"run:{payload['run']}") or {}
            event = run.get("event")
            consumer = f"orchestration:{run.get('orchestration', '?')}/{payload['step']}"
            attributes.update({"meshctl.run": payload["run"], "meshctl.step": payload["step"],
                               "meshctl.attempt": payload.get("number", 1)})
        attributes["meshctl.consumer"] = consumer
        if isinstance(event, dict):
            for name in ("id", "source", "type", "subject"):
                if isinstance(event.get(name), str):
                    attributes[f"cloudevents.event_{name}"] = event[name]
        return event if isinstance(event, dict) else None, consumer, attributes
