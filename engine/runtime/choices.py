"""Where a deployment could do otherwise than `meshctl run`: the runtime's choice points.

`meshctl run` settles every one of them the same way, every time: tasks due at the same
instant run in the order they were scheduled, and an attempt succeeds unless its actions fail
(or a ``--fault`` says so). A deployment may differ at each: two workers take deliveries due
together in either order, an attempt fails for a reason outside the mesh (a timeout, a lost
connection), a worker dies after the effect of an attempt but before its acknowledgement (the
delivery is taken again after the lease), a broker delivers a copy of a task twice.

A :class:`Chooser` set on the runtime (``Runtime.steer``) is asked at each such point and
picks; ``meshctl explore`` (engine/explore) tries the alternatives, ``run --replay-choices``
makes the same picks again. Without a chooser nothing here runs.
"""
from __future__ import annotations

import hashlib
import json
from typing import Any, Protocol

from .actions import ActionFailed

OK = "ok"  # the attempt runs as it would in `meshctl run`
FAIL = "fail"  # the attempt fails for a reason outside the mesh; its retry policy takes over
CRASH = "crash"  # the attempt's effects happen, its acknowledgement is lost: taken again later
DUPLICATE = "duplicate"  # a second copy of the delivery is due at the same time
ATTEMPT_CHOICES = (FAIL, CRASH, DUPLICATE)

CRASH_RESTART = 30.0  # seconds before a crashed attempt's delivery is taken again (a worker's lease)
FAILURE = "ExploredFailure"  # the error type of a failure chosen from outside the mesh

Due = tuple[float, int, str, Any]  # a task of the schedule: (when, sequence, kind, payload)


class Chooser(Protocol):
    def order(self, due: list[Due]) -> int:
        """Which of the tasks *due* at the same instant (in the order `run` takes them) runs now."""

    def attempt(self, label: str, options: tuple[str, ...]) -> str:
        """What happens to the attempt *label*: OK or one of *options* (a subset of
        ATTEMPT_CHOICES that the delivery allows)."""


def task_label(kind: str, payload: Any) -> str:
    """A task's name, stable across runs of the same mesh and input: the consumer, the event's
    type and id, the attempt number (copies of one task share it)."""
    if kind == "attempt":
        return attempt_label(payload["consumer"], payload["event"], payload["number"])
    if kind == "complete":
        d = payload["delivery"]
        return "complete " + attempt_label(d["consumer"], d["event"], d["number"])
    if kind in ("step-attempt", "step-complete", "compensate", "compensated"):
        where = f"{payload.get('run')}/{payload.get('step')}"
        if payload.get("index") is not None:
            where += f"[{payload['index']}]"
        return f"{kind} {where} #{payload.get('number', 1)}"
    digest = hashlib.sha1(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:12]
    return f"{kind} {digest}"


def attempt_label(consumer: str, event: dict, number: int) -> str:
    return f"{consumer} <- {event.get('type')} {event.get('id')} #{number}"


def step_label(run: str, step: str, index: int | None, number: int) -> str:
    where = f"{run}/{step}" + (f"[{index}]" if index is not None else "")
    return f"step-attempt {where} #{number}"


def attempt_options(kind: str, number: int, max_attempts: int, copies: bool) -> tuple[str, ...]:
    """What may happen to attempt *number* of a consumer of *kind* besides OK: a failure only
    where the retry policy retries it, a crash where the attempt keeps its effects for the
    commit (a stream's window changes as its handler runs), a copy where *copies*."""
    options = []
    if number < max_attempts:
        options.append(FAIL)
    if kind != "stream":
        options.append(CRASH)
    if copies and kind != "stream":
        options.append(DUPLICATE)
    return tuple(options)


def chosen_failure(number: int) -> ActionFailed:
    """The failure of an attempt that a chooser made fail (retryable, as a timeout would be)."""
    return ActionFailed(FAILURE, f"attempt {number} failed by choice (a failure from outside the mesh)")
