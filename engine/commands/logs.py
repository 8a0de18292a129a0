"""Operational messages of the long-running commands (`serve`, `worker`) through Python logging.

Every engine module logs to ``logging.getLogger(__name__)``; the command line configures the
root logger once (:func:`configure`), to stderr, as text or as JSON Lines. What a command
prints for its user (diagnostics, summaries) is not logging and stays as it is.

Text: ``meshctl COMMAND[ WORKER]: [LEVEL: ]MESSAGE`` (the level is shown from warning up),
the lines the commands printed before logging existed. JSON: one object a line, with
``time`` (UTC, milliseconds), ``level``, ``logger``, ``command``, ``message``, the fields a
module gave (``worker``, ``url``...) and ``exception`` (the traceback) when there is one.
"""
from __future__ import annotations

import json
import logging
import sys
import time

FORMATS = ("text", "json")
LEVELS = ("debug", "info", "warning", "error")
# fields a module may pass with extra={...}: they are shown in JSON lines
FIELDS = ("worker", "url", "store", "run", "consumer", "port")
_installed: list[logging.Handler] = []


class TextFormatter(logging.Formatter):
    def __init__(self, command: str):
        super().__init__()
        self.command = command

    def format(self, record: logging.LogRecord) -> str:
        worker = getattr(record, "worker", None)
        who = f"meshctl {self.command} {worker}" if worker else f"meshctl {self.command}"
        level = f"{record.levelname.lower()}: " if record.levelno >= logging.WARNING else ""
        text = f"{who}: {level}{record.getMessage()}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


class JSONFormatter(logging.Formatter):
    def __init__(self, command: str):
        super().__init__()
        self.command = command

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        doc = {
            "time": f"{stamp}.{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "command": self.command,
            "message": record.getMessage(),
        }
        for name in FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                doc[name] = value
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return json.dumps(doc, ensure_ascii=False, default=str)


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is when a record comes (tests swap it)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # (StreamHandler sets it; the property always reads sys.stderr)
        pass


def configure(command: str, fmt: str = "text", level: str = "info") -> None:
    """Send the log records of this process to stderr as *fmt*, from *level* up (once per command:
    a second call replaces the first's handler)."""
    root = logging.getLogger()
    for handler in _installed:
        root.removeHandler(handler)
    _installed.clear()
    handler = _StderrHandler()
    handler.setFormatter(JSONFormatter(command) if fmt == "json" else TextFormatter(command))
    root.addHandler(handler)
    _installed.append(handler)
    numeric = getattr(logging, level.upper())
    root.setLevel(numeric)
    # waitress says at info what `serve` says itself ("Serving on ...")
    logging.getLogger("waitress").setLevel(max(numeric, logging.WARNING))
