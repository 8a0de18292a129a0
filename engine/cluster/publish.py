"""Publishing an events file to a deployment (``meshctl publish``): checked whole, then sent.

The whole file is read and checked first, with the ingress's own checks
(:class:`~engine.language.admission.Admission`); one bad record stops everything before anything is
sent, each problem told with its ``file:line:col`` as ``meshctl run`` tells the records it
dead-letters (:func:`~engine.language.admission.refused_input`). Records without an ``id`` get one from their
content (:class:`~engine.runtime.events.ContentIds`), so publishing the same file twice
queues the same ids and the workers' dedup makes the second time harmless — which is also
what makes sending again after a failed batch safe.

The events go either to a running ingress (``POST /events``, structured batches, with
urllib) or straight into the store's input queue (``store.ingest``), batch by batch; each
batch is all-or-nothing. A batch the ingress finds too large (413) is split in two and
sent again.
"""
from __future__ import annotations

import json
import socket
import time
from dataclasses import dataclass
from http.client import HTTPException
from typing import Callable
from urllib.error import HTTPError, URLError
from urllib.parse import urlsplit, urlunsplit
from urllib.request import Request, urlopen

from ..core.errors import Diagnostic, Location, MeshError, UsageError
from ..language.admission import Admission, refused_input
from ..runtime.events import BadInput, ContentIds, read_located_events
from .ingress import BATCH, EVENTS

DEFAULT_BATCH = 500


class PublishError(MeshError):
    """The ingress refused events, or could not be reached (exit 1)."""


class RefusedRecords(MeshError):
    """Records of the file are bad or refused (each already told): nothing was sent (exit 1)."""


@dataclass(frozen=True, slots=True)
class Checked:
    """The events of a file that passed every check, with where each was read."""

    events: list[dict]
    locations: list[Location]


def checked_events(path: str, admission: Admission, refused: Callable[[Diagnostic], None]) -> Checked:
    """Every event of the file at *path*; each problem of a bad or refused record is told to
    *refused*, located, and then RefusedRecords is raised."""
    events, locations, bad = [], [], 0
    for loc, item in read_located_events(path, ContentIds()):
        problems = [item] if isinstance(item, BadInput) else admission.rejections(item)
        for problem in problems:
            refused(refused_input(loc, problem))
        bad += bool(problems)
        events.append(item)
        locations.append(loc)
    if bad:
        raise RefusedRecords(
            f"{bad} of the {len(events)} records of {path} are bad or refused: nothing was sent"
        )
    return Checked(events, locations)


def to_store(store, checked: Checked, batch: int = DEFAULT_BATCH) -> int:
    """Queue the events in the store's input queue, *batch* at a time; how many were queued."""
    queued = 0
    for start in range(0, len(checked.events), batch):
        queued += len(store.ingest(checked.events[start : start + batch]))
    return queued


def events_url(url: str) -> str:
    """The ingress's events endpoint: ``http://HOST:PORT`` means ``http://HOST:PORT/events``."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UsageError(f"--url {url!r}: expected http://HOST:PORT (the address `meshctl serve` prints)")
    return urlunsplit(parts._replace(path=EVENTS)) if parts.path in ("", "/") else url


class Sender:
    """POSTs batches to an ingress and counts what it accepted."""

    def __init__(
        self,
        url: str,
        token: str | None = None,
        timeout: float = 30.0,
        progress: Callable[[int], None] | None = None,
    ):
        self.url, self.token, self.timeout = events_url(url), token, timeout
        self._patience = time.monotonic() + 10 * timeout  # how long 503 + Retry-After is waited out in all
        self.progress = progress or (lambda accepted: None)
        self.accepted = 0

    def send(self, checked: Checked, batch: int = DEFAULT_BATCH) -> int:
        for start in range(0, len(checked.events), batch):
            self._post(checked, start, min(start + batch, len(checked.events)))
        return self.accepted

    def _post(self, checked: Checked, start: int, end: int) -> None:
        body = json.dumps(checked.events[start:end]).encode()
        headers = {"Content-Type": BATCH, **({"Authorization": f"Bearer {self.token}"} if self.token else {})}
        try:
            with urlopen(Request(self.url, body, headers, method="POST"), timeout=self.timeout) as answer:
                reply = answer.read()
        except HTTPError as exc:
            if (
                exc.code == 503
                and exc.headers.get("Retry-After", "").isdigit()
                and time.monotonic() < self._patience
            ):
                # backpressure: the deployment is behind; a server's hint never outlasts our patience
                time.sleep(min(int(exc.headers["Retry-After"]), max(0.0, self._patience - time.monotonic())))
                self._post(checked, start, end)
                return
            if exc.code == 413 and end - start > 1:  # too large for this ingress: halve the batch
                middle = (start + end) // 2
                self._post(checked, start, middle)
                self._post(checked, middle, end)
                return
            raise PublishError(self._refusal(exc, checked, start, end)) from None
        except (URLError, HTTPException, OSError) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise PublishError(f"cannot reach the ingress at {self.url}: {reason}{self._so_far()}") from None
        try:
            self.accepted += int(json.loads(reply)["accepted"])
        except (ValueError, TypeError, KeyError):
            raise PublishError(
                f"{self.url} answered without saying how many events it accepted: is it "
                f"`meshctl serve`?{self._so_far()}"
            ) from None
        self.progress(self.accepted)

    def _refusal(self, exc: HTTPError, checked: Checked, start: int, end: int) -> str:
        """The ingress's answer, its problems pointed at the lines of the file."""
        try:
            problem = json.loads(exc.read())
        except (ValueError, OSError, socket.timeout):
            problem = {}
        lines = [
            f"the ingress at {self.url} refused events {start + 1}-{end} with HTTP {exc.code} {exc.reason}: "
            f"{problem.get('detail', '(no detail)')}{self._so_far()}"
        ]
        for p in problem.get("problems", []):
            index = p.get("index")
            where = (
                checked.locations[start + index] if isinstance(index, int) and start + index < end else "?"
            )
            lines.append(f"  {where}: {p.get('field')}: {p.get('message')}")
        return "\n".join(lines)

    def _so_far(self) -> str:
        if not self.accepted:
            return "; nothing was accepted"
        return (
            f"; {self.accepted} event{'s' if self.accepted != 1 else ''} accepted before that "
            "(publishing the file again is harmless: the events keep their ids)"
        )
