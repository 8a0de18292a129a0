"""Serving the ingress on a socket: who may listen where, and uvicorn running the ASGI app.

The policy: an ingress listening beyond loopback without a token would let anyone on the
network inject events, so it refuses to start (:func:`require_token`) unless told
``insecure``. uvicorn (the optional extra ``meshctl[serve]``, with httptools and uvloop where
they install) serves the app: measured against waitress it answered more requests per
second and lets the app refuse a request before its body is read (docs/ingress.md,
"Under overload"). The socket is bound here, so port 0 gives a free port and
:attr:`IngressServer.url` says which. SIGTERM or Ctrl-C stops accepting, finishes the
requests in hand (up to 5 s), and :meth:`IngressServer.serve` returns.
"""
from __future__ import annotations

import contextlib
import ipaddress
import signal
import socket
import threading
from typing import Callable

from ..core.errors import UsageError

DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 8080
LISTEN_BACKLOG = 2048  # connections the kernel holds before the server accepts them
DRAIN_SECONDS = 5  # after SIGTERM, how long the requests in hand may take


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


def _uvicorn():
    """uvicorn's ``Server``, told to stop on SIGTERM as on Ctrl-C (a second signal: at once)."""
    try:
        import uvicorn
    except ImportError as exc:
        raise UsageError("meshctl serve needs the HTTP server uvicorn: pip install 'meshctl[serve]'") from exc

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self):
            # uvicorn's own handlers re-raise the signal after the drain, which would end the
            # process with it instead of exit 0
            if threading.current_thread() is not threading.main_thread():
                yield
                return
            previous = {sig: signal.signal(sig, self._stop) for sig in (signal.SIGTERM, signal.SIGINT)}
            try:
                yield
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)

        def _stop(self, signum, frame) -> None:
            self.force_exit = self.should_exit  # the second signal: do not wait any more
            self.should_exit = True

    return uvicorn.Config, Server


class IngressServer:
    """uvicorn on one socket: make it (checks that uvicorn is installed), :meth:`start` an app,
    :meth:`serve`."""

    def __init__(self, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT):
        self._config, self._server_class = _uvicorn()
        self.host, self.port = host, port
        self.sock: socket.socket | None = None
        self._server = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self, app: Callable) -> None:
        """Bind and listen (port 0: a free one, then in :attr:`url`); connections wait until :meth:`serve`."""
        self.sock = bind(self.host, self.port)
        self.sock.listen(LISTEN_BACKLOG)
        self.host, self.port = self.sock.getsockname()[:2]
        config = self._config(
            app,
            lifespan="off",
            ws="none",
            log_config=None,  # logging is the command's, not the server's
            access_log=False,
            server_header=False,
            backlog=LISTEN_BACKLOG,
            timeout_graceful_shutdown=DRAIN_SECONDS,
        )
        self._server = self._server_class(config)

    def serve(self) -> None:
        """Answer requests until SIGTERM or SIGINT (a second one stops at once), then close."""
        try:
            self._server.run(sockets=[self.sock])  # returns once the requests in hand are answered
        finally:
            self.close()

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
