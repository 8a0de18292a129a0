"""Serving the ingress on a socket: who may listen where, and waitress running the WSGI app.

The policy: an ingress listening beyond loopback without a token would let anyone on the
network inject events, so it refuses to start (:func:`require_token`) unless told
``insecure``. waitress (the optional extra ``meshctl[serve]``: pure Python, no dependencies)
serves the app; it refuses a body over the limit before reading it, and the errors it answers
itself are problem documents like the app's. The socket is bound here, so port 0 gives a free
port and :attr:`IngressServer.url` says which. SIGTERM or Ctrl-C stops accepting, finishes
the requests in hand (waitress waits up to 5 s), and :meth:`IngressServer.serve` returns.
"""
from __future__ import annotations

import ipaddress
import json
import signal
import socket
import threading
from typing import Callable

from ..core.errors import UsageError

DEFAULT_HOST, DEFAULT_PORT, DEFAULT_THREADS = "127.0.0.1", 8080, 4


def is_loopback(host: str) -> bool:
    """True when every address *host* names is a loopback address (127.0.0.0/8, ::1)."""
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        return False
    return bool(infos) and all(ipaddress.ip_address(info[4][0].split("%")[0]).is_loopback for info in infos)


def require_token(host: str, token: str | None, insecure: bool) -> None:
    """Refuse to listen beyond loopback without a token, unless *insecure* says so on purpose."""
    if token or insecure or is_loopback(host):
        return
    raise UsageError(
        f"--host {host} is reachable from other machines: give a token (--token or MESHCTL_TOKEN), "
        "or --insecure to accept events from anyone who can connect"
    )


def bind(host: str, port: int) -> socket.socket:
    """A listening-ready TCP socket on the first address of *host* (port 0: a free port)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
    except (OSError, UnicodeError) as exc:
        raise UsageError(f"--host {host!r}: {getattr(exc, 'strerror', None) or exc}") from exc
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    return sock


def _waitress(max_body: int):
    """waitress's ``create_server`` and a channel whose own error answers are problem documents."""
    try:
        from waitress.channel import HTTPChannel
        from waitress.server import create_server
        from waitress.task import ErrorTask
    except ImportError as exc:
        raise UsageError(
            "meshctl serve needs the HTTP server waitress: pip install 'meshctl[serve]'"
        ) from exc

    class ProblemErrorTask(ErrorTask):
        """An error waitress found before the app ran (body over the limit, malformed HTTP), as JSON."""

        def execute(self) -> None:
            error = self.request.error
            detail = f"the body is larger than {max_body} bytes" if error.code == 413 else error.body
            body = json.dumps({"title": error.reason, "status": error.code, "detail": detail}).encode()
            self.status = f"{error.code} {error.reason}"
            self.response_headers.append(("Content-Type", "application/problem+json"))
            self.set_close_on_finish()
            self.content_length = len(body)
            self.write(body)

    class ProblemChannel(HTTPChannel):
        error_task_class = ProblemErrorTask

    return create_server, ProblemChannel


class IngressServer:
    """waitress on one socket: make it (checks that waitress is installed), :meth:`start` an app,
    :meth:`serve`."""

    def __init__(
        self,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        threads: int = DEFAULT_THREADS,
        max_body: int = 1024 * 1024,
    ):
        self._create, self._channel = _waitress(max_body)
        self.host, self.port, self.threads, self.max_body = host, port, threads, max_body
        self.sock: socket.socket | None = None
        self._server = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self, app: Callable) -> None:
        """Bind and listen (port 0: a free one, then in :attr:`url`); connections wait until :meth:`serve`."""
        self.sock = bind(self.host, self.port)
        self.host, self.port = self.sock.getsockname()[:2]
        # waitress refuses a declared length >= its limit, and max_body itself must pass
        self._server = self._create(
            app,
            sockets=[self.sock],
            threads=self.threads,
            ident="meshctl",
            max_request_body_size=self.max_body + 1,
            asyncore_use_poll=True,
        )
        self._server.channel_class = self._channel

    def serve(self) -> None:
        """Answer requests until SIGTERM or SIGINT (a second one stops at once), then close."""
        main = threading.current_thread() is threading.main_thread()
        previous = (
            {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGTERM, signal.SIGINT)} if main else {}
        )
        try:
            self._server.run()  # returns after an interrupt, once the requests in hand are answered
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self.close()

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
        if self.sock is not None:
            self.sock.close()


def _interrupt(signum, frame) -> None:
    signal.signal(signum, signal.SIG_DFL)
    raise KeyboardInterrupt  # waitress's loop stops on it and finishes the requests in hand
