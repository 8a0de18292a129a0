"""W3C trace context on events: the CloudEvents distributed-tracing extension.

An event may carry ``traceparent`` (``VERSION-TRACEID-PARENTID-FLAGS``, W3C Trace Context)
and ``tracestate``. The rule of meshctl (docs/observability.md): an event derived from a
parent that carries a valid ``traceparent`` carries the same trace id and flags, and the
parent's ``tracestate`` unchanged; its parent id is the span open around the work that
derived it when an observer (OpenTelemetry) opened one in this trace, else a span id made
from the derived event's id, so the same input gives the same events, byte for byte, in
every run. A parent without one (or with one that does not parse) gives none: meshctl
starts no trace of its own. Derived events follow ``causationid``: a window's event carries
the trace of the event whose arrival closed it, and a window closed at the end of input
(no event closed it) carries none.
"""
from __future__ import annotations

import hashlib
import re
from contextvars import ContextVar

TRACEPARENT, TRACESTATE = "traceparent", "tracestate"
_FORMAT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?\Z")
_ZERO_TRACE, _ZERO_SPAN = "0" * 32, "0" * 16

# (trace id, span id) of the span an observer has open around the work being done, if any
active_span: ContextVar[tuple[str, str] | None] = ContextVar("meshctl_active_span", default=None)


def parse(value: object) -> tuple[str, str, str] | None:
    """``(trace id, parent id, flags)`` of a traceparent value, or None if it is not a valid one.

    Version 00 has exactly four fields; a later version may add more after them (read as 00,
    as the W3C text asks); version ff and all-zero ids are invalid.
    """
    if not isinstance(value, str):
        return None
    match = _FORMAT.match(value)
    if match is None:
        return None
    version, trace_id, span_id, flags, rest = match.groups()
    if version == "ff" or (version == "00" and rest) or trace_id == _ZERO_TRACE or span_id == _ZERO_SPAN:
        return None
    return trace_id, span_id, flags


def inherited(parent: dict, child_id: str) -> dict:
    """The tracing attributes of an event with id *child_id* derived from *parent* (maybe none)."""
    parsed = parse(parent.get(TRACEPARENT))
    if parsed is None:
        return {}
    trace_id, _, flags = parsed
    span = active_span.get()
    if span is not None and span[0] == trace_id:
        span_id = span[1]
    else:
        span_id = hashlib.sha1(f"span|{child_id}".encode()).hexdigest()[:16]
        if span_id == _ZERO_SPAN:  # (one chance in 2**64)
            span_id = "0" * 15 + "1"
    out = {TRACEPARENT: f"00-{trace_id}-{span_id}-{flags}"}
    state = parent.get(TRACESTATE)
    if isinstance(state, str):
        out[TRACESTATE] = state
    return out
