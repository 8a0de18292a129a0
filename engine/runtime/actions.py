"""Running the actions of one delivery attempt: emit, call, set, log, fail, sleep.

Actions are compiled once per consumer (templates included). An attempt runs them in order
against an :class:`Attempt`; emitted events go to the attempt's outbox and are published
only if the whole attempt succeeds, so a retried attempt never emits twice.
"""
from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import os
import types
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import Any, Callable

from ..core.identity import identity
from ..language import model as m
from ..language.handlers import allowed_by, local_module
from ..language.templates import SECRETS, RenderError, compile_string, compile_value, secret_reads
from .secrets import MASK, SecretProblem, Secrets
from .timelimit import TimeLimitExceeded, run_within


class ActionFailed(Exception):
    """An action failed. ``error_type`` is matched against ``non_retryable``."""

    retryable = True

    def __init__(self, error_type: str, message: str, retryable: bool = True):
        super().__init__(f"{error_type}: {message}")
        self.error_type = error_type
        self.message = message
        self.retryable = retryable


class UndeclaredEmit(ActionFailed):
    def __init__(self, type_: str, consumer: str, where: Any = None):
        place = f"{where}: " if where is not None else ""
        super().__init__(
            "UndeclaredEmit", f"{place}{consumer} emitted {type_!r}, which its `emits` does not list", False
        )


@dataclass(slots=True)
class Attempt:
    """What one attempt sees and produces."""

    consumer: str
    event: dict
    number: int
    now: float
    context: dict  # the template context: data, event, vars, ...
    declared: frozenset[str] | None  # types it may emit (None: any)
    # (type, data, subject, source[, event time])
    outbox: list[tuple] = field(default_factory=list)
    # route -> (type, data, subject, service)
    direct: list[tuple[str, Any, str | None, str]] = field(default_factory=list)
    dead: list[tuple[str, str, Any, str]] = field(default_factory=list)  # (queue, reason, event, detail)
    effects: list[tuple[str, dict]] = field(default_factory=list)  # (kind, payload) applied when it commits
    logs: list[tuple[str, str]] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)
    elapsed: float = 0.0
    output: Any = None
    where: Any = None  # location of the action running now, for error messages
    state: Any = None  # the keyed state slot of its owner (engine.runtime.keyedstate), if it declares state
    state_write: dict | None = None  # what it read and writes of that state, checked when it commits
    at: float = 0.0  # the event time it starts at (engine.runtime.events.derived_time); `sleep` adds to it

    @property
    def vars(self) -> dict:
        return self.context.setdefault("vars", {})

    def emit(
        self, type_: str, data: Any = None, subject: str | None = None, source: str | None = None,
        time: float | None = None,
    ) -> None:
        """Put an event in the outbox; its event time is *time* if given (a window's end), else
        the attempt's end (:func:`~engine.runtime.events.derived_time`)."""
        if self.declared is not None and type_ not in self.declared:
            raise UndeclaredEmit(type_, self.consumer, self.where)
        entry = (type_, data, subject, source)
        self.outbox.append(entry if time is None else (*entry, time))

    def outcome(self, error: Exception | None) -> dict:
        """Everything the attempt produced, as plain data: it may wait in the (durable) schedule."""
        return {
            "outbox": [list(x) for x in self.outbox],
            "direct": [list(x) for x in self.direct],
            "dead": [list(x) for x in self.dead],
            "effects": [list(x) for x in self.effects],
            "logs": [list(x) for x in self.logs],
            "calls": list(self.calls),
            "vars": dict(self.context.get("vars", {})),
            "output": self.output,
            "elapsed": self.elapsed,
            "error": error_data(error),
            "state_write": self.state_write,
        }


def error_data(error: Exception | None) -> dict | None:
    """An attempt's failure as data: type (matched by non_retryable), detail, and whether to retry."""
    if error is None:
        return None
    if isinstance(error, RenderError):  # a template error names its location and is never retried
        return {"type": "TemplateError", "detail": str(error), "retryable": False, "template": True}
    return {
        "type": error.error_type,
        "detail": error.message,
        "retryable": error.retryable,
        "template": False,
    }


Step = Callable[[Attempt], None]


class HandlerContext:
    """The second argument of a Python handler: ``handler(event, context)``."""

    def __init__(self, attempt: Attempt, args: dict):
        self._attempt = attempt
        self.args = args
        self.attempt = attempt.number
        self.consumer = attempt.consumer
        # Stable across retries and restarts; the event by its identity (source and id), so two
        # sources' events that share an id do not look like one repeated delivery downstream.
        self.idempotency_key = f"{identity(attempt.event)}:{attempt.consumer}"
        self.vars = attempt.vars
        self.now = attempt.now + attempt.elapsed

    @property
    def state(self) -> dict:
        """The value of this attempt's state key, to read and change in place (written when the
        attempt commits; ``clear()`` removes the key). Only where the service or orchestration
        declares ``state:``."""
        slot = self._attempt.state
        if slot is None:
            raise ActionFailed(
                "NoStateDeclared",
                f"{self.consumer} has no `state:`: declare `state: {{key: ...}}` in its service "
                "or orchestration to use context.state",
                retryable=False,
            )
        return slot.value

    def emit(self, type: str, data: Any = None, subject: str | None = None) -> None:
        """Emit an event (published only if the attempt succeeds); the type must be declared."""
        self._attempt.emit(type, data, subject)

    def log(self, message: str, level: str = "info") -> None:
        self._attempt.logs.append((level, str(message)))


class Toolbox:
    """What actions need from outside: user modules and the HTTP mode. One per runtime."""

    def __init__(
        self,
        root: str,
        http: str = "simulate",
        logging: bool = True,
        allow: tuple[str, ...] = (),
        fast: bool = True,
        secrets: Secrets | None = None,
    ):
        self.root = os.path.abspath(root)
        self.fast = fast  # False: templates compile without their shortcuts (Runtime(fast_paths=False))
        self.http = http
        self.logging = logging  # False when nothing records the trace: `log` templates are not even rendered
        # modules outside the mesh directory that handlers may use (engine.language.handlers)
        self.allow = allow
        self._modules: dict[str, types.ModuleType] = {}
        # `{{ secrets.NAME }}` of request URLs and headers; read only when a request is sent
        self.secrets = secrets if secrets is not None else Secrets(m.DEFAULT_SECRETS, root)

    def function(self, ref: str) -> Callable:
        """Resolve ``module:function`` from the mesh directory, else from a module the mesh allows."""
        module_name, _, func = ref.partition(":")
        if func.startswith("_"):  # `h:__class__` and the like: a handler is a public function
            raise ActionFailed(
                "HandlerNotAllowed", f"{func!r} is private: a handler is a public function", retryable=False
            )
        module = self._modules.get(module_name) or self._load(module_name)
        target = getattr(module, func, None)
        if not callable(target):
            raise ActionFailed(
                "HandlerNotFound", f"{module_name!r} has no function {func!r}", retryable=False
            )
        return target

    def _load(self, name: str) -> types.ModuleType:
        top = name.split(".")[0]
        path = local_module(self.root, name)
        if path is None and allowed_by(name, self.allow) is None:  # refused before anything is imported
            raise ActionFailed(
                "HandlerNotAllowed",
                f"module {name!r} is neither in the mesh directory nor in the "
                "`allow_modules` of its Mesh document",
                retryable=False,
            )
        try:
            if path is None:
                module = importlib.import_module(name)
            else:  # a private copy per runtime: module state never leaks between runs
                spec = importlib.util.spec_from_file_location(f"meshctl_user_{id(self)}.{name}", path)
                module = importlib.util.module_from_spec(spec)
                spec.loader.exec_module(module)
        except Exception as exc:  # the user's module itself is broken: report it as the error
            raise ActionFailed(
                "HandlerImportError",
                f"cannot import {name!r} ({top}): {type(exc).__name__}: {exc}",
                retryable=False,
            ) from exc
        self._modules[name] = module
        return module

    def post(
        self, url: str, event: dict, headers: dict, timeout: float | None, shown: str | None = None
    ) -> int:
        """POST an event (a route's `to: {http: URL}`): the answer's status."""
        return self.request("POST", url, event, headers, timeout, shown=shown)[0]

    def request(
        self, method: str, url: str, body: Any, headers: dict, timeout: float | None, event: bool = True,
        shown: str | None = None,
    ) -> tuple[int, Any]:
        """Send one HTTP request: ``(status, answer)``, the answer parsed if JSON, else text.

        ``body`` None sends none; ``event`` says it is a CloudEvent (structured mode), else plain
        JSON. With ``http="simulate"`` nothing is sent: every call answers 202 with no body.
        ``shown`` is the URL its errors quote (secrets masked: :class:`Request`); as a safety net,
        any secret value read so far that shows in an error or in the answer reads ``***``."""
        if self.http == "simulate":
            return 202, None
        if not self.secrets.any_read:
            return self._send(method, url, shown or url, body, headers, timeout, event)
        try:
            status, answer = self._send(method, url, shown or url, body, headers, timeout, event)
        except ActionFailed as exc:
            raise ActionFailed(exc.error_type, self.secrets.redact(exc.message), exc.retryable) from None
        return status, self.secrets.scrub(answer)

    def _send(
        self, method: str, url: str, shown: str, body: Any, headers: dict, timeout: float | None, event: bool
    ) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        kind = "application/cloudevents+json" if event else "application/json"
        try:
            request = urllib.request.Request(
                url,
                data=data,
                method=method,
                headers={**({"Content-Type": kind} if data is not None else {}), **headers},
            )
            with urllib.request.urlopen(request, timeout=timeout or 10.0) as response:
                return response.status, _answer(method, shown, response)
        except urllib.error.HTTPError as exc:
            retryable = exc.code >= 500 or exc.code == 429
            raise ActionFailed("HttpError", f"{method} {shown} answered {exc.code}", retryable) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ActionFailed("HttpUnreachable", f"{method} {shown}: {reason}") from None
        except ValueError as exc:  # a URL or header urllib refuses (its message may quote it)
            raise ActionFailed("HttpBadRequest", f"{method} {shown}: {exc}", retryable=False) from None


MAX_ANSWER = 1 << 20  # bytes of an HTTP answer kept as the call's output


def _answer(method: str, url: str, response: Any) -> Any:
    """An answer's body: parsed JSON for a JSON content type, else text; None when empty."""
    raw = response.read(MAX_ANSWER + 1)
    if len(raw) > MAX_ANSWER:  # a bigger answer is not what a step's output is for: never retried
        raise ActionFailed(
            "HttpAnswerTooLarge", f"{method} {url} answered more than {MAX_ANSWER} bytes", retryable=False
        )
    if not raw:
        return None
    charset = response.headers.get_content_charset() or "utf-8"
    text = raw.decode(charset, errors="replace")
    content_type = response.headers.get_content_type()
    if content_type == "application/json" or content_type.endswith("+json"):
        try:
            return json.loads(text)
        except ValueError as exc:
            raise ActionFailed(
                "HttpBadAnswer", f"{method} {url} answered invalid JSON: {exc}", retryable=False
            ) from exc
    return text


_QUOTED_MASK = urllib.parse.quote(MASK, safe="")


class Request:
    """The URL and headers of an HTTP request, compiled: they may read ``{{ secrets.NAME }}``.

    :meth:`render` gives the URL to send, the URL to show (secrets as ``***``: for traces and
    messages) and the headers. Secrets are read only when the request is really sent: with
    ``--http simulate`` they are shown masked and need not be defined.
    """

    def __init__(self, url: m.TemplateString, headers: m.TemplateValue | None, tools: Toolbox):
        self.tools = tools
        self.text = url.text
        texts = [url.text, *(t.text for t in (headers.strings if headers is not None else ()))]
        reads = [secret_reads(text) for text in texts]
        self.names = tuple(dict.fromkeys(name for r in reads for name in r.names))
        templated = "{{" in url.text or "{%" in url.text
        self.url = compile_string(url, tools.fast) if templated else None
        self.headers = compile_value(headers, tools.fast) if headers is not None else None
        self.masked = {name: MASK for name in self.names}

    def render(self, ctx: dict) -> tuple[str, str, dict[str, str]]:
        """``(url to send, url to show, headers)`` for the template context *ctx*."""
        if not self.names:
            url = self.text if self.url is None else str(self.url(ctx))
            return url, url, self._headers(ctx)
        shown = self.text
        if self.url is not None:  # `| urlencode` encodes the mask as well: shown as it is all the same
            shown = str(self.url({**ctx, SECRETS: self.masked})).replace(_QUOTED_MASK, MASK)
        if self.tools.http == "simulate":  # nothing is sent: no value is needed
            return shown, shown, self._headers({**ctx, SECRETS: self.masked})
        secrets = self.tools.secrets
        try:
            real = {**ctx, SECRETS: secrets.values(self.names)}
        except SecretProblem as exc:
            raise ActionFailed("SecretMissing", str(exc), retryable=False) from None
        try:
            url = str(self.url(real)) if self.url is not None else self.text
            return url, shown, self._headers(real)
        except RenderError as exc:  # its message may quote what it rendered
            raise RenderError(secrets.redact(exc.detail), exc.loc) from None

    def _headers(self, ctx: dict) -> dict[str, str]:
        return {k: str(v) for k, v in self.headers(ctx).items()} if self.headers is not None else {}


def idempotency_key(event: dict, consumer: str, position: int) -> str:
    """The ``Idempotency-Key`` of an HTTP call: the same for every attempt of one delivery
    (retries, a resumed run) and different for each call action, consumer and event."""
    return hashlib.sha256(f"{identity(event)}\n{consumer}\n{position}".encode()).hexdigest()


def compile_actions(
    actions: tuple[m.Action, ...], tools: Toolbox, step_timeout: float | None = None
) -> list[tuple[Any, Step]]:
    """Each action's step; *step_timeout* (an orchestration step's `timeout`) also limits the
    real time of each Python handler, as its own `timeout` does (the smaller wins)."""
    return [(action.loc, _compile(action, tools, i, step_timeout)) for i, action in enumerate(actions)]


def _compile(action: m.Action, tools: Toolbox, position: int, step_timeout: float | None) -> Step:
    if isinstance(action, m.CallAction):  # its position in the list is part of its idempotency key
        if action.python:
            return _call_python(action, tools, step_timeout)
        return _call(action, tools, position)
    return _COMPILERS[type(action)](action, tools)


def run_actions(steps: list[tuple[Any, Step]], attempt: Attempt) -> None:
    for loc, step in steps:
        attempt.where = loc
        step(attempt)


def _emit(action: m.EmitAction, tools: Toolbox) -> Step:
    data = compile_value(action.data, tools.fast) if action.data is not None else (lambda ctx: None)
    subject = compile_string(action.subject, tools.fast) if action.subject is not None else None
    source = compile_string(action.source, tools.fast) if action.source is not None else None
    type_ = action.type.name

    def emit(attempt: Attempt) -> None:
        ctx = attempt.context
        rendered = data(ctx)
        attempt.emit(
            type_,
            rendered,
            None if subject is None else str(subject(ctx)),
            None if source is None else str(source(ctx)),
        )
        attempt.output = {"type": type_}

    return emit


def _call_python(action: m.CallAction, tools: Toolbox, step_timeout: float | None) -> Step:
    args = compile_value(action.args, tools.fast) if action.args is not None else (lambda ctx: {})
    ref = action.python
    label = f"python:{ref}"
    limit, whose = _handler_limit(action.timeout, step_timeout)

    def call_python(attempt: Attempt) -> None:
        attempt.calls.append(label)
        function = tools.function(ref)
        try:
            context = HandlerContext(attempt, args(attempt.context))
            attempt.output = run_within(lambda: function(attempt.event, context), limit)
        except TimeLimitExceeded as exc:  # retried like any failure; the attempt's emits are dropped
            raise ActionFailed("HandlerTimeout", _timed_out(ref, exc, whose)) from None
        except ActionFailed:
            raise
        except Exception as exc:  # the user's handler failed: that is the delivery's failure
            raise ActionFailed(type(exc).__name__, str(exc), getattr(exc, "retryable", True)) from exc

    return call_python


def _handler_limit(own: float | None, step: float | None) -> tuple[float | None, str]:
    """The real-time limit of a Python handler, and whose it is: the call's `timeout` or its
    step's, the smaller of the two; none when neither is set."""
    if step is not None and (own is None or step < own):
        return step, "its step's timeout"
    return own, "its timeout"


_HOW = {
    "interrupted": "",
    "caught": " (it caught the interruption and went on: failed when it returned)",
    "measured": " (off the main thread it cannot be interrupted: failed when it returned)",
}


def _timed_out(ref: str, exc: TimeLimitExceeded, whose: str) -> str:
    return f"handler {ref!r} ran longer than {whose} of {exc.limit:g}s{_HOW[exc.how]}"


def _call(action: m.CallAction, tools: Toolbox, position: int) -> Step:
    url_template = action.url or m.TemplateString(action.http, action.loc)
    request, method = Request(url_template, action.headers, tools), action.method
    sends = method not in ("GET", "DELETE")
    body = compile_value(action.body, tools.fast) if action.body is not None else None

    def call_http(attempt: Attempt) -> None:
        ctx = attempt.context
        url, shown, sent = request.render(ctx)
        attempt.calls.append(shown)
        sent.setdefault("Idempotency-Key", idempotency_key(attempt.event, attempt.consumer, position))
        payload = (attempt.event if body is None else body(ctx)) if sends else None
        status, answer = tools.request(
            method, url, payload, sent, action.timeout, event=body is None, shown=shown
        )
        # the output, and `response` for the actions after it in this attempt
        attempt.output = ctx["response"] = {"status": status, "body": answer}

    return call_http


def _set(action: m.SetAction, tools: Toolbox) -> Step:
    values = compile_value(action.values, tools.fast)

    def set_vars(attempt: Attempt) -> None:
        rendered = values(attempt.context)
        attempt.vars.update(rendered)
        attempt.output = rendered

    return set_vars


def _log(action: m.LogAction, tools: Toolbox) -> Step:
    message = compile_string(action.message, tools.fast)

    def log(attempt: Attempt) -> None:
        if tools.logging:
            attempt.logs.append((action.level, str(message(attempt.context))))

    return log


def _fail(action: m.FailAction, tools: Toolbox) -> Step:
    def fail(attempt: Attempt) -> None:
        if action.times is None or attempt.number <= action.times:
            raise ActionFailed(action.error, action.message or f"injected fault (attempt {attempt.number})")

    return fail


def _sleep(action: m.SleepAction, tools: Toolbox) -> Step:
    def sleep(attempt: Attempt) -> None:
        attempt.elapsed += action.seconds

    return sleep


_COMPILERS: dict[type, Callable[[Any, Toolbox], Step]] = {
    m.EmitAction: _emit,
    m.SetAction: _set,
    m.LogAction: _log,
    m.FailAction: _fail,
    m.SleepAction: _sleep,
}

__all__ = [
    "ActionFailed",
    "Attempt",
    "HandlerContext",
    "RenderError",
    "Request",
    "Toolbox",
    "UndeclaredEmit",
    "compile_actions",
    "idempotency_key",
    "run_actions",
]
