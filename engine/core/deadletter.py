"""Dead-letter records: what failed, where, how often, and why — an RFC 7807-style problem."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, fields
from typing import Any

from .eventjson import json_type
from .identity import identity

PROBLEM_BASE = "https://meshctl.dev/problems/"

REASONS = {
    "retries-exhausted": "Retries exhausted",
    "non-retryable": "Non-retryable error",
    "expired": "Event too old to retry",
    "schema-invalid": "Event does not match its schema",
    "template-error": "Template failed",
    "loop-detected": "Circular events stopped",
    "undeliverable": "No consumer can take this event",
    "circuit-open": "Circuit breaker open",
    "late-event": "Event behind the watermark, or after its sequence gap was given up",
    "sequence-gap": "Earlier sequence numbers never arrived",
    "rate-limited": "Over the consumer's rate limit",
}


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One dead-lettered delivery. ``id`` is stable for the same (event, consumer, reason), the
    event by its identity (source and id): a queue holds one record per such triple."""

    id: str
    queue: str
    reason: str
    consumer: str
    attempts: int
    first_attempt: str | None
    last_attempt: str | None
    error_type: str | None
    error: str
    event: Any
    chain: list[str] = field(default_factory=list)

    @classmethod
    def make(
        cls,
        queue: str,
        reason: str,
        consumer: str,
        event: Any,
        error_type: str | None,
        error: str,
        attempts: int = 0,
        first: str | None = None,
        last: str | None = None,
        chain: list[str] | None = None,
    ):
        if (
            isinstance(event, dict)
            and isinstance(event.get("id"), str)
            and isinstance(event.get("source"), str)
        ):
            key = identity(event)
        else:  # not an event (a bad input line): its content, location included, identifies it
            key = json.dumps(event, sort_keys=True, default=str)
        ident = hashlib.sha1(f"{key}|{consumer}|{reason}".encode()).hexdigest()[:16]
        return cls(
            ident, queue, reason, consumer, attempts, first, last, error_type, error, event, list(chain or [])
        )

    def problem(self) -> dict:
        """The record as an RFC 7807-like problem document (what `dlq show` prints)."""
        return {
            "type": PROBLEM_BASE + self.reason,
            "title": REASONS.get(self.reason, self.reason),
            "detail": self.error,
            "instance": f"dlq:{self.queue}/{self.id}",
            **{k: v for k, v in self.as_dict().items() if k not in ("error",)},
        }

    def as_dict(self) -> dict:
        """The record as a dict to serialise; the event is shared, not copied (events are never changed,
        and a deep copy recursed once per level of a deeply nested one)."""
        record = {name: getattr(self, name) for name in _FIELDS}
        record["chain"] = list(self.chain)
        return record

    @classmethod
    def from_dict(cls, raw: dict) -> "DeadLetter":
        """The record of :meth:`as_dict`, as a store wrote it."""
        return cls(**{k: raw[k] for k in cls.__dataclass_fields__ if k in raw})

    @classmethod
    def from_file(cls, raw: Any) -> "DeadLetter":
        """A record read from a file (``dlq --dlq``), which anyone may have edited: ValueError names
        what does not fit, so that listing or replaying it cannot fail half-way."""
        if not isinstance(raw, dict):
            raise ValueError(f"a dead letter is a JSON object, not {json_type(raw)}")
        for name, kinds in _FIELD_TYPES.items():
            if name not in raw:
                if name != "chain":
                    raise ValueError(f"{name!r} is missing")
            elif not isinstance(raw[name], kinds):
                raise ValueError(f"{name!r} must be {_KIND_NAMES[kinds]}, not {json_type(raw[name])}")
        if not all(isinstance(c, str) for c in raw.get("chain", [])):
            raise ValueError("'chain' must be a list of strings")
        event = raw["event"]
        if isinstance(event, dict):  # the loop guard reads these when the event is replayed
            for name, kinds in (("hopcount", (int,)), ("causationpath", _TEXT)):
                if name in event and not isinstance(event[name], kinds):
                    raise ValueError(
                        f"'event.{name}' must be {_KIND_NAMES[kinds]}, not {json_type(event[name])}"
                    )
        return cls.from_dict(raw)


_FIELDS = tuple(f.name for f in fields(DeadLetter))
_TEXT, _MAYBE_TEXT = (str,), (str, type(None))
_FIELD_TYPES = {
    "id": _TEXT,
    "queue": _TEXT,
    "reason": _TEXT,
    "consumer": _TEXT,
    "attempts": (int,),
    "first_attempt": _MAYBE_TEXT,
    "last_attempt": _MAYBE_TEXT,
    "error_type": _MAYBE_TEXT,
    "error": _TEXT,
    "event": (object,),
    "chain": (list,),
}
_KIND_NAMES = {
    _TEXT: "a string",
    _MAYBE_TEXT: "a string or null",
    (int,): "an integer",
    (list,): "a list",
    (object,): "any value",
}
