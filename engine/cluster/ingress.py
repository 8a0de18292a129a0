"""The HTTP ingress as an ASGI application: CloudEvents in, queued in the store, then 202.

No socket here: ``engine/cluster/server.py`` runs it under uvicorn, and tests call it with
ASGI messages (:meth:`Ingress.wsgi` is the same routes for a WSGI server). The routes
(:meth:`Ingress._routes`, the one place paths map to handlers):

- ``POST /events``: one CloudEvent in binary mode (``ce-*`` headers, the body is ``data``) or
  structured mode (``application/cloudevents+json``), or a batch
  (``application/cloudevents-batch+json``, a JSON array), as the CloudEvents HTTP binding 1.0
  defines them. Every event passes :class:`~engine.language.admission.Admission` or nothing of the
  request is queued (400, each problem with its event's index). The answer, 202 with the
  input queue's entry ids, is sent only once ``store.ingest`` has returned: an event
  acknowledged is an event the store holds.
- ``GET /healthz``: 200 when the store answers a ping, 503 when it does not. No token needed,
  so load balancers can probe it; it tells nothing but that.
- ``POST /runs/{run}/signals/{name}`` (when the ingress is given *signals*): signal *name* for
  the run (its id percent-encoded: ``/`` is ``%2F``), with the body's JSON as ``{"data": ...,
  "by": ...}`` (both optional). Authorised as events are; a request with a *principal*'s token
  signals as that principal (``by``, which the body may not contradict). 202 once the signal
  is queued for the workers, 404 for no such run, 409 when the run does not wait for it.

A request is judged in two steps. Before its body is read, on the event loop and without a
store round trip: route, method, token, declared length, and the backlog (the broker's
figure, read at most every few milliseconds by :class:`Backlog`). A request refused there
(401, 413, 503) costs no read and no parse, so refusing under overload stays cheap. Only then
is the body read and, in a worker thread (parsing, checking and the store are blocking
work), parsed, checked and queued.

With a token (or principals: ``{token: name}``), ``POST /events`` and signals need
``Authorization: Bearer TOKEN`` (401 otherwise), compared in constant time. Every error is a
problem document (RFC 9457, ``application/problem+json``):
``{"title", "status", "detail"}``, plus ``problems: [{"index", "field", "message", "hint"}]``
when events were refused.
"""
from __future__ import annotations

import asyncio
import base64
import hmac
import json
import logging
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Callable, Iterable, Protocol
from urllib.parse import unquote

from ..core import eventjson
from ..core.errors import RunStateError, UsageError
from ..core.eventjson import MAX_DEPTH
from ..language.admission import Admission, Rejection
from ..storage.base import StorageError

EVENTS, HEALTH = "/events", "/healthz"
SIGNALS = "/runs/{run}/signals/{name}"  # the route of signals (its path has the run and name in it)
STRUCTURED = "application/cloudevents+json"
BATCH = "application/cloudevents-batch+json"
DEFAULT_MAX_BODY = 1024 * 1024
DEFAULT_MAX_BATCH = 1000
DEFAULT_THREADS = 4
BACKLOG_REFRESH = 0.005  # seconds a backlog figure is trusted: one store round trip per 5 ms at most
MAX_PROBLEMS = 100  # problems listed in one answer; the detail line still counts them all
JSON, PROBLEM = "application/json", "application/problem+json"


class EventQueue(Protocol):
    """What the ingress needs of a deployment's broker (:class:`~engine.storage.broker.Broker` has
    it): queue events durably, answer a ping, say how many wait."""

    def ingest(self, events: list[dict]) -> list[str]: ...

    def ping(self) -> bool: ...

    def backlog(self) -> int: ...


@dataclass(frozen=True, slots=True)
class Request:
    """What the ingress reads of a request before its body: header names are lower case."""

    method: str
    path: str
    headers: dict[str, str]


@dataclass(slots=True)
class Answer:
    """A whole response: status, headers and body."""

    status: int
    body: bytes
    headers: list[tuple[str, str]] = field(default_factory=list)


def json_answer(status: int, doc: dict, headers: Iterable[tuple[str, str]] = (), media: str = JSON) -> Answer:
    return Answer(status, json.dumps(doc).encode(), [("Content-Type", media), *headers])


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

    def answer(self) -> Answer:
        return json_answer(self.status, self.document(), self.headers, PROBLEM)


@dataclass(frozen=True, slots=True)
class Route:
    """A path's method and handler. *before* runs on the event loop before the body is read
    (cheap checks without I/O: it raises :class:`Refused`; with *backlog*, the backlog figure
    is fresh when it runs); *handle* runs in a worker thread with the body (empty unless
    *reads_body*)."""

    method: str
    handle: Callable[[Request, bytes], Answer]
    before: Callable[[Request], None] | None = None
    reads_body: bool = False
    backlog: bool = False


class Backlog:
    """How many entries wait for the workers, as the ingress sees it: the broker's figure, read
    at most every *refresh* seconds, plus what this ingress queued since. Asking costs nothing
    until the figure is stale; then one caller reads it again while the others go on with the
    figure they have."""

    def __init__(self, queue: EventQueue, refresh: float = BACKLOG_REFRESH, clock=time.monotonic):
        self.queue, self.refresh_every, self.clock = queue, refresh, clock
        self._lock = threading.Lock()
        self._read, self._queued, self._read_at = 0, 0, None

    def stale(self) -> bool:
        return self._read_at is None or self.clock() - self._read_at >= self.refresh_every

    def refresh(self) -> None:
        """Read the broker's figure (one round trip), unless another thread is reading it."""
        if not self._lock.acquire(blocking=False):
            return
        try:
            try:
                waiting = self.queue.backlog()
            except StorageError:
                waiting = self.waiting()  # the write that follows will tell the client
            self._read, self._queued, self._read_at = waiting, 0, self.clock()
        finally:
            self._lock.release()

    def queued(self, count: int) -> None:
        self._queued += count  # not locked: a count lost to a race is corrected by the next read

    def waiting(self) -> int:
        return self._read + self._queued


class Ingress:
    """The ASGI application: ``Ingress(admission, store, token=...)`` is callable as ``await
    app(scope, receive, send)``; :meth:`close` stops its worker threads."""

    def __init__(
        self,
        admission: Admission,
        store: EventQueue,
        *,
        token: str | None = None,
        max_body: int = DEFAULT_MAX_BODY,
        max_batch: int = DEFAULT_MAX_BATCH,
        max_backlog: int | None = None,
        threads: int = DEFAULT_THREADS,
        log: Callable[[str], None] | None = None,
        signals: Callable[[str, str, Any, str | None], dict] | None = None,
        principals: dict[str, str] | None = None,
    ):
        self.admission, self.store = admission, store
        self.max_backlog = max_backlog  # refuse (503) while this many entries wait: backpressure
        self.backlog = Backlog(store)
        self._token = token.encode() if token else None
        # token -> who: a request with one of these tokens is that principal's
        self._principals = [(secret.encode(), name) for secret, name in (principals or {}).items()]
        self.signals = signals  # (run, name, data, by) -> the run; UsageError / RunStateError
        self.max_body, self.max_batch = max_body, max_batch
        self.log = log or logging.getLogger(__name__).error
        self._threads = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="ingress")
        self.routes = self._routes()

    def _routes(self) -> dict[str, Route]:
        routes = {
            EVENTS: Route("POST", self._post_events, self._before_events, reads_body=True, backlog=True),
            HEALTH: Route("GET", self._health),
        }
        if self.signals is not None:
            routes[SIGNALS] = Route("POST", self._post_signal, self._before_signal, reads_body=True)
        return routes

    def close(self) -> None:
        self._threads.shutdown(wait=True)

    async def __call__(self, scope: dict, receive, send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return  # websockets: the server is run without them
        request = Request(scope["method"], scope["path"], _headers(scope["headers"]))
        try:
            answer = await self._answer(request, receive)
        except Exception as exc:
            answer = self._failure(request, exc)
        await send({
            "type": "http.response.start",
            "status": answer.status,
            "headers": [(name.encode("latin-1"), value.encode("latin-1")) for name, value in _final(answer)],
        })
        await send({"type": "http.response.body", "body": answer.body})

    async def _answer(self, request: Request, receive) -> Answer:
        route = self.route(request)
        if route.backlog and self.max_backlog is not None and self.backlog.stale():
            await asyncio.get_running_loop().run_in_executor(self._threads, self.backlog.refresh)
        if route.before is not None:
            route.before(request)
        body = await self._body(request, receive) if route.reads_body else b""
        return await asyncio.get_running_loop().run_in_executor(self._threads, route.handle, request, body)

    def wsgi(self, environ: dict, start_response) -> list[bytes]:
        """The same routes as a WSGI application, each request in the server's thread (for WSGI
        servers: the tests' wsgiref, the benchmark's waitress)."""
        headers = {k[5:].lower().replace("_", "-"): v for k, v in environ.items() if k.startswith("HTTP_")}
        for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            if environ.get(key):
                headers[key.lower().replace("_", "-")] = environ[key]
        request = Request(environ.get("REQUEST_METHOD", "GET"), environ.get("PATH_INFO") or "/", headers)
        try:
            route = self.route(request)
            if route.backlog and self.max_backlog is not None and self.backlog.stale():
                self.backlog.refresh()
            if route.before is not None:
                route.before(request)
            length = int(headers.get("content-length") or 0) if route.reads_body else 0  # checked by `before`
            body = environ["wsgi.input"].read(length) if length > 0 else b""
            answer = route.handle(request, body)
        except Exception as exc:
            answer = self._failure(request, exc)
        start_response(f"{answer.status} {HTTPStatus(answer.status).phrase}", _final(answer))
        return [answer.body]

    def _failure(self, request: Request, exc: Exception) -> Answer:
        """A refusal's problem document; for anything else (a bug) a 500 without details, and
        the traceback in the log."""
        if isinstance(exc, Refused):
            return exc.answer()
        self.log(
            f"internal error on {request.method} {request.path}: "
            f"{type(exc).__name__}: {exc}\n{''.join(traceback.format_exception(exc))}"
        )
        return Refused(500, "internal error in meshctl (see the server's log)").answer()

    def route(self, request: Request) -> Route:
        """The route of the request's path, or a 404 or 405."""
        route = self.routes.get(_route_path(request.path))
        if route is None:
            raise Refused(
                404, f"no such resource {request.path!r}: POST events to {EVENTS}, GET {HEALTH} for health"
            )
        if request.method != route.method:
            allow = [("Allow", route.method)]
            raise Refused(405, f"{request.path} takes {route.method}, not {request.method}", headers=allow)
        return route

    def _before_events(self, request: Request) -> None:
        """What refuses an event request before its body is read: token, declared length, backlog."""
        self._authorise(request)
        length = request.headers.get("content-length")
        if length is not None and not (length.isascii() and length.isdigit()):
            raise Refused(400, "Content-Length is not a number")
        if length is not None and int(length) > self.max_body:
            raise Refused(413, f"the body has {length} bytes; at most {self.max_body} are accepted")
        waiting = self.backlog.waiting()
        if self.max_backlog is not None and waiting >= self.max_backlog:
            raise Refused(
                503,
                f"the deployment is behind: {waiting} entries wait for the workers (limit "
                f"{self.max_backlog}); nothing was accepted: send them again after Retry-After",
                headers=[("Retry-After", "1")],
            )

    async def _body(self, request: Request, receive) -> bytes:
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise Refused(400, "the client went away before the body was sent")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                raise Refused(413, f"the body is larger than {self.max_body} bytes")
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    def _health(self, request: Request, body: bytes) -> Answer:
        up = self.store.ping()
        return json_answer(
            200 if up else 503, {"status": "ok" if up else "unavailable", "store": "up" if up else "down"}
        )

    def _post_events(self, request: Request, body: bytes) -> Answer:
        events = self._events(request, body)
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
        self.backlog.queued(len(ids))
        return json_answer(202, {"accepted": len(ids), "ids": ids})

    def _authorise(self, request: Request) -> str | None:
        """Refuse a request without a valid token (when tokens are set); the principal whose
        token it has, if any."""
        if self._token is None and not self._principals:
            return None
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        challenge = [("WWW-Authenticate", 'Bearer realm="meshctl"')]
        if scheme.lower() != "bearer" or not given.strip():
            raise Refused(
                401, "missing token: send the header Authorization: Bearer TOKEN", headers=challenge
            )
        sent = given.strip().encode("latin-1")
        found = [name for secret, name in self._principals if hmac.compare_digest(sent, secret)]
        if found:
            return found[0]
        if self._token is None or not hmac.compare_digest(sent, self._token):
            raise Refused(401, "the token is not valid", headers=challenge)
        return None

    def _before_signal(self, request: Request) -> None:
        self._authorise(request)
        length = request.headers.get("content-length")
        if length is not None and length.isascii() and length.isdigit() and int(length) > self.max_body:
            raise Refused(413, f"the body has {length} bytes; at most {self.max_body} are accepted")

    def _post_signal(self, request: Request, body: bytes) -> Answer:
        """A signal for a run: queued for the worker holding the run (202), or why not."""
        principal = self._authorise(request)
        run, name = _signal_path(request.path)
        doc = parse_json(body, "signal") if body.strip() else {}
        if not isinstance(doc, dict) or set(doc) - {"data", "by"}:
            raise Refused(400, 'the body must be a JSON object with "data" and/or "by"')
        by = doc.get("by")
        if by is not None and not isinstance(by, str):
            raise Refused(400, '"by" must be a string')
        if principal is not None and by not in (None, principal):
            raise Refused(403, f"the token is {principal!r}'s: it cannot signal as {by!r}")
        try:
            found = self.signals(run, name, doc.get("data"), principal or by)
        except StorageError as exc:
            raise Refused(503, "the store did not take the signal: send it again",
                          headers=[("Retry-After", "1")]) from exc
        except UsageError as exc:  # no such run
            raise Refused(404, str(exc)) from None
        except RunStateError as exc:  # it does not wait for that signal (from that principal)
            raise Refused(409, str(exc)) from None
        return json_answer(202, {"run": found["id"], "signal": name, "by": principal or by, "queued": 1})

    def _events(self, request: Request, body: bytes) -> list[Any]:
        media, _ = media_type(request.headers.get("content-type", ""))
        if media == STRUCTURED:
            return [parse_json(body, "event")]
        if media == BATCH:
            batch = parse_json(body, "batch", MAX_DEPTH + 1)  # the array holds events of MAX_DEPTH levels
            if not isinstance(batch, list):
                raise Refused(400, "a batch must be a JSON array of events")
            if len(batch) > self.max_batch:
                raise Refused(413, f"the batch has {len(batch)} events; at most {self.max_batch} per request")
            return batch
        if "ce-specversion" in request.headers:
            return [binary_event(request.headers, body)]
        raise Refused(
            415,
            f"content type {media or '(none)'!r} is not a CloudEvent: send {STRUCTURED}, {BATCH}, "
            "or binary mode (ce-specversion, ce-id, ce-source, ce-type headers; the body is data)",
        )


def _route_path(path: str) -> str:
    """The route a path asks for: a signal's path names its run and signal."""
    return SIGNALS if path.startswith("/runs/") and "/signals/" in path else path


def _signal_path(path: str) -> tuple[str, str]:
    """(run, name) of ``/runs/{run}/signals/{name}`` (the run's id may hold ``/``: the name may not)."""
    run, _, name = path[len("/runs/"):].rpartition("/signals/")
    if not run or not name or "/" in name:
        raise Refused(404, f"no such resource {path!r}: POST a signal to /runs/RUN/signals/NAME")
    return run, name


def _final(answer: Answer) -> list[tuple[str, str]]:
    return [*answer.headers, ("Content-Length", str(len(answer.body))), ("Cache-Control", "no-store")]


async def _lifespan(receive, send) -> None:
    """Nothing to set up or tear down: say so to a server that runs the lifespan protocol."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def _headers(raw: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    """ASGI headers as a dict of lower-case names (a repeated header's values joined by commas)."""
    headers: dict[str, str] = {}
    for name, value in raw:
        key, text = name.decode("latin-1").lower(), value.decode("latin-1")
        headers[key] = f"{headers[key]},{text}" if key in headers else text
    return headers


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


def binary_event(headers: dict[str, str], body: bytes) -> dict:
    """A binary-mode event: attributes from ``ce-*`` headers (percent-decoded), data from the body.

    JSON bodies (``application/json``, ``*/*+json``, or no content type) become ``data`` as a
    value, ``text/*`` bodies a string; anything else is kept as ``data_base64``.
    """
    event: dict[str, Any] = {}
    for key, raw in headers.items():
        if key.startswith("ce-"):
            name = key[len("ce-") :]
            event[name] = _header_value(name, raw)
    content_type = headers.get("content-type", "")
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
