"""The HTTP ingress as a WSGI application: CloudEvents in, queued in the store, then 202.

Pure WSGI, no socket: ``engine/cluster/server.py`` runs it under waitress, and tests call it
with an environ. Two routes:

- ``POST /events``: one CloudEvent in binary mode (``ce-*`` headers, the body is ``data``) or
  structured mode (``application/cloudevents+json``), or a batch
  (``application/cloudevents-batch+json``, a JSON array), as the CloudEvents HTTP binding 1.0
  defines them. Every event passes :class:`~engine.language.admission.Admission` or nothing of the
  request is queued (400, each problem with its event's index). The answer, 202 with the
  input queue's entry ids, is sent only once ``store.ingest`` has returned: an event
  acknowledged is an event the store holds.
- ``GET /healthz``: 200 when the store answers a ping, 503 when it does not. No token needed,
  so load balancers can probe it; it tells nothing but that.

With a token, ``POST /events`` needs ``Authorization: Bearer TOKEN`` (401 otherwise), compared
in constant time. Every error is a problem document (RFC 9457, ``application/problem+json``):
``{"title", "status", "detail"}``, plus ``problems: [{"index", "field", "message", "hint"}]``
when events were refused.
"""
from __future__ import annotations

import base64
import hmac
import json
import logging
import traceback
from http import HTTPStatus
from typing import Any, Callable, Iterable, Protocol
from urllib.parse import unquote

from ..core import eventjson
from ..core.eventjson import MAX_DEPTH
from ..language.admission import Admission, Rejection
from ..storage.base import StorageError

EVENTS, HEALTH = "/events", "/healthz"
STRUCTURED = "application/cloudevents+json"
BATCH = "application/cloudevents-batch+json"
DEFAULT_MAX_BODY = 1024 * 1024
DEFAULT_MAX_BATCH = 1000
MAX_PROBLEMS = 100  # problems listed in one answer; the detail line still counts them all


class EventQueue(Protocol):
    """What the ingress needs of a deployment's broker (:class:`~engine.storage.broker.Broker` has
    it): queue events durably, answer a ping, say how many wait."""

    def ingest(self, events: list[dict]) -> list[str]: ...

    def ping(self) -> bool: ...

    def backlog(self) -> int: ...


class Refused(Exception):
    """An answer other than 2xx, as a problem document."""

    def __init__(
        self, status: int, detail: str, problems: Iterable[dict] = (), headers: Iterable[tuple] = ()
    ):
        super().__init__(detail)
        self.status, self.detail = status, detail
        self.problems, self.headers = list(problems), list(headers)

    def document(self) -> dict:
        doc = {"title": HTTPStatus(self.status).phrase, "status": self.status, "detail": self.detail}
        if self.problems:
            doc["problems"] = self.problems[:MAX_PROBLEMS]
        return doc


class Ingress:
    """The WSGI application: ``Ingress(admission, store, token=...)`` is callable as ``app(environ,
    start_response)``."""

    def __init__(
        self,
        admission: Admission,
        store: EventQueue,
        *,
        token: str | None = None,
        max_body: int = DEFAULT_MAX_BODY,
        max_batch: int = DEFAULT_MAX_BATCH,
        max_backlog: int | None = None,
        log: Callable[[str], None] | None = None,
    ):
        self.admission, self.store = admission, store
        self.max_backlog = max_backlog  # refuse (503) while this many entries wait: backpressure
        self._token = token.encode() if token else None
        self.max_body, self.max_batch = max_body, max_batch
        self.log = log or logging.getLogger(__name__).error

    def __call__(self, environ: dict, start_response) -> list[bytes]:
        try:
            status, doc, headers = self._route(environ)
        except Refused as refused:
            status, doc = refused.status, refused.document()
            headers = [("Content-Type", "application/problem+json"), *refused.headers]
        except Exception as exc:  # a bug: answer 500 without details, log the traceback
            self.log(
                f"internal error on {environ.get('REQUEST_METHOD')} {environ.get('PATH_INFO')}: "
                f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"
            )
            status, doc = 500, Refused(500, "internal error in meshctl (see the server's log)").document()
            headers = [("Content-Type", "application/problem+json")]
        body = json.dumps(doc).encode()
        start_response(
            f"{status} {HTTPStatus(status).phrase}",
            [*headers, ("Content-Length", str(len(body))), ("Cache-Control", "no-store")],
        )
        return [body]

    def _route(self, environ: dict) -> tuple[int, dict, list[tuple]]:
        path, method = environ.get("PATH_INFO") or "/", environ.get("REQUEST_METHOD", "GET")
        routes = {EVENTS: ("POST", self._post_events), HEALTH: ("GET", self._health)}
        if path not in routes:
            raise Refused(404, f"no such resource {path!r}: POST events to {EVENTS}, GET {HEALTH} for health")
        allowed, handler = routes[path]
        if method != allowed:
            raise Refused(405, f"{path} takes {allowed}, not {method}", headers=[("Allow", allowed)])
        return handler(environ)

    def _health(self, environ: dict) -> tuple[int, dict, list[tuple]]:
        up = self.store.ping()
        return (
            (200 if up else 503),
            {"status": "ok" if up else "unavailable", "store": "up" if up else "down"},
            [("Content-Type", "application/json")],
        )

    def _post_events(self, environ: dict) -> tuple[int, dict, list[tuple]]:
        self._authorise(environ)
        events = self._events(environ, self._body(environ))
        problems = [
            {"index": i, **r.as_dict()} for i, e in enumerate(events) for r in self.admission.rejections(e)
        ]
        if problems:
            refused = len({p["index"] for p in problems})
            raise Refused(
                400,
                f"{refused} of {len(events)} event{_s(events)} refused ({len(problems)} "
                f"problem{_s(problems)}); nothing was accepted",
                problems,
            )
        if self.max_backlog is not None:
            waiting = self.store.backlog()
            if waiting >= self.max_backlog:
                raise Refused(
                    503,
                    f"the deployment is behind: {waiting} entries wait for the workers (limit "
                    f"{self.max_backlog}); nothing was accepted: send them again after Retry-After",
                    headers=[("Retry-After", "1")],
                )
        try:
            ids = self.store.ingest(events)
        except StorageError as exc:
            self.log(f"store refused {len(events)} event{_s(events)}: {exc}")
            raise Refused(
                503,
                "the store did not take the events; nothing is acknowledged: send them again "
                "(their ids make a repeat harmless)",
                headers=[("Retry-After", "1")],
            ) from exc
        return 202, {"accepted": len(ids), "ids": ids}, [("Content-Type", "application/json")]

    def _authorise(self, environ: dict) -> None:
        if self._token is None:
            return
        scheme, _, given = environ.get("HTTP_AUTHORIZATION", "").partition(" ")
        challenge = [("WWW-Authenticate", 'Bearer realm="meshctl"')]
        if scheme.lower() != "bearer" or not given.strip():
            raise Refused(
                401, "missing token: send the header Authorization: Bearer TOKEN", headers=challenge
            )
        if not hmac.compare_digest(given.strip().encode("latin-1"), self._token):
            raise Refused(401, "the token is not valid", headers=challenge)

    def _body(self, environ: dict) -> bytes:
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            raise Refused(400, "Content-Length is not a number") from None
        if length > self.max_body:
            raise Refused(413, f"the body has {length} bytes; at most {self.max_body} are accepted")
        body = environ["wsgi.input"].read(length) if length > 0 else b""
        if len(body) > self.max_body:
            raise Refused(413, f"the body is larger than {self.max_body} bytes")
        return body

    def _events(self, environ: dict, body: bytes) -> list[Any]:
        media, _ = media_type(environ.get("CONTENT_TYPE", ""))
        if media == STRUCTURED:
            return [parse_json(body, "event")]
        if media == BATCH:
            batch = parse_json(body, "batch", MAX_DEPTH + 1)  # the array holds events of MAX_DEPTH levels
            if not isinstance(batch, list):
                raise Refused(400, "a batch must be a JSON array of events")
            if len(batch) > self.max_batch:
                raise Refused(413, f"the batch has {len(batch)} events; at most {self.max_batch} per request")
            return batch
        if "HTTP_CE_SPECVERSION" in environ:
            return [binary_event(environ, body)]
        raise Refused(
            415,
            f"content type {media or '(none)'!r} is not a CloudEvent: send {STRUCTURED}, {BATCH}, "
            "or binary mode (ce-specversion, ce-id, ce-source, ce-type headers; the body is data)",
        )


def media_type(content_type: str) -> tuple[str, dict[str, str]]:
    """``'application/json; charset=utf-8'`` -> ``('application/json', {'charset': 'utf-8'})``."""
    media, *params = content_type.split(";")
    pairs = (p.split("=", 1) for p in params if "=" in p)
    return media.strip().lower(), {k.strip().lower(): v.strip().strip('"') for k, v in pairs}


def parse_json(body: bytes, what: str, max_depth: int = MAX_DEPTH) -> Any:
    """The body as JSON by the rule of every event input (:mod:`engine.core.eventjson`), or a 400 saying why
    not."""
    try:
        return eventjson.loads(eventjson.line_text(body), max_depth)
    except eventjson.EventJSONError as exc:
        raise Refused(400, f"the {what} is refused: {exc}") from None


def binary_event(environ: dict, body: bytes) -> dict:
    """A binary-mode event: attributes from ``ce-*`` headers (percent-decoded), data from the body.

    JSON bodies (``application/json``, ``*/*+json``, or no content type) become ``data`` as a
    value, ``text/*`` bodies a string; anything else is kept as ``data_base64``.
    """
    event: dict[str, Any] = {}
    for key, raw in environ.items():
        if key.startswith("HTTP_CE_"):
            name = key[len("HTTP_CE_") :].lower()
            event[name] = _header_value(name, raw)
    content_type = environ.get("CONTENT_TYPE", "")
    media, params = media_type(content_type)
    if content_type:
        event["datacontenttype"] = content_type
    if not body:
        return event
    if not media or media == "application/json" or media.endswith("+json"):
        event["data"] = parse_json(body, "data", MAX_DEPTH - 1)  # one level below the event
    elif media.startswith("text/"):
        try:
            event["data"] = body.decode(params.get("charset", "utf-8"))
        except (LookupError, UnicodeDecodeError) as exc:
            raise Refused(400, f"the data is not {params.get('charset', 'utf-8')} text: {exc}") from None
    else:
        event["data_base64"] = base64.b64encode(body).decode("ascii")
    return event


def _header_value(name: str, raw: str) -> str:
    """A ``ce-`` header's value: percent-encoded UTF-8, as the HTTP binding says."""
    try:
        return unquote(raw.encode("latin-1").decode("ascii"), errors="strict")
    except UnicodeError:
        problem = Rejection(name, f"header ce-{name} is not percent-encoded UTF-8")
        raise Refused(
            400, "1 of 1 event refused (1 problem); nothing was accepted", [{"index": 0, **problem.as_dict()}]
        ) from None


def _s(items: list) -> str:
    return "" if len(items) == 1 else "s"
