"""Durable keyed state (``state:`` of a service or an orchestration): ``context.state``.

A Python handler reads and writes the value of one key as a dict. The value comes from the
store when the attempt begins (a copy: the attempt works on its own), and what the attempt
leaves in it is written when the attempt commits, in the same store transaction as its
other effects (emitted events, dead letters, the dedup record, the input position). So a
failed or retried attempt never leaves a write behind, and a crash loses or repeats nothing.

Work on one key is serialised by a check at commit: the value the attempt read must still be
the stored value. An attempt that read a value another attempt has replaced since (one that
took time, or another worker's) does not commit: it runs again on the new value, counted as
``state-conflicts``. In a deployment the Redis store also checks every value a unit of work
read when the unit commits, so two workers never both commit on one version of a key.

A value is a JSON object; an empty one is no value (the key is removed). Limits: the value's
compact JSON is at most ``max_bytes`` (``StateTooLarge``), it is JSON (``StateNotJSON``) and it
satisfies the declared ``schema`` (``StateInvalid``); each fails the attempt, not retried. A
key with a ``ttl`` lives that long after its last write: once expired it reads as empty, and
it is removed from the store by a sweep after commits (whenever it happens, nothing can see
the difference).

Store layout: ``kv:<owner>:<key>`` -> ``{"value": {...}, "updated": t, "expires": t | null}``,
where the owner is ``service:<name>`` or ``orchestration:<name>``.
"""
from __future__ import annotations

import heapq
import json
import math
from dataclasses import dataclass
from typing import Any, Callable

from ..language import model as m
from ..language.compiled_schema import compile_check
from ..language.schema import data_validator, first_data_error
from ..language.templates import compile_string
from ..storage import Store
from .actions import ActionFailed, Attempt

PREFIX = "kv:"


def store_key(owner: str, key: str) -> str:
    """Where the value of *key* of *owner* (``service:NAME``) lives in the store."""
    return f"{PREFIX}{owner}:{key}"


def split_store_key(stored: str) -> tuple[str, str]:
    """``(owner, key)`` of a store key made by :func:`store_key`."""
    kind, name, key = stored[len(PREFIX):].split(":", 2)
    return f"{kind}:{name}", key


# The compact JSON that the size limit counts and the commit check compares. One encoder for
# every value: json.dumps with arguments builds a new one per call.
canonical: Callable[[Any], str] = json.JSONEncoder(
    separators=(",", ":"), sort_keys=True, ensure_ascii=False, allow_nan=False
).encode


class Texts:
    """The canonical JSON of the records a store holds now, as last seen or written, so a value
    is encoded once per write rather than at every read and check. A record is never changed
    in place (a write replaces it), so the text of the same record object is still right; a
    store that reads a fresh object (Redis, each unit of work) is simply encoded again."""

    LIMIT = 4096  # keys remembered; past it the memory is dropped and refilled

    def __init__(self) -> None:
        self._texts: dict[str, tuple[Any, str]] = {}

    def of(self, stored: str, record: dict | None, now: float) -> str:
        """The canonical JSON of what *record* (the store's record at *stored*) holds at *now*."""
        if record is None:
            return "{}"
        expires = record.get("expires")
        if expires is not None and expires <= now:
            return "{}"
        seen = self._texts.get(stored)
        if seen is not None and seen[0] is record:
            return seen[1]
        text = canonical(record["value"])
        self.remember(stored, record, text)
        return text

    def remember(self, stored: str, record: dict, text: str) -> None:
        if len(self._texts) >= self.LIMIT:
            self._texts.clear()
        self._texts[stored] = (record, text)


@dataclass(slots=True)
class StateSlot:
    """The key an attempt works on: what it read (as canonical JSON) and its own copy."""

    owner: str
    key: str
    store_key: str
    read: str  # canonical JSON of the value read ("{}" when there was none)
    value: dict  # the attempt's copy: `context.state`


class KeyedState:
    """The state of one owner: opens a slot for each attempt, and checks a write at commit."""

    def __init__(self, owner: str, spec: m.StateSpec, store: Store, texts: Texts, fast: bool = True):
        self.owner, self.spec, self.store, self.texts = owner, spec, store, texts
        self.key = compile_string(spec.key, fast)
        schema = m.thaw(spec.schema) if spec.schema is not None else None
        self._valid: Callable[[Any], bool] | None = None
        self._validator = None
        if schema is not None:
            self._validator = data_validator(schema)
            self._valid = compile_check(schema) or self._validator.is_valid

    # --- the attempt ----------------------------------------------------------------------
    def begin(self, attempt: Attempt, context: dict, now: float) -> None:
        """Open the slot of the key *context* renders to (a template error fails the attempt)."""
        key = str(self.key(context))
        if not key:
            raise ActionFailed("StateKeyEmpty", f"the state key of {self.owner} rendered empty "
                               f"({self.spec.key.text!r})", retryable=False)
        stored = store_key(self.owner, key)
        read = self.texts.of(stored, self.store.get_state(stored), now)
        attempt.state = StateSlot(self.owner, key, stored, read, json.loads(read))
        attempt.context["state"] = attempt.state.value  # templates after a handler read it too

    def end(self, attempt: Attempt) -> None:
        """Check what the attempt left in its slot; the write waits for the commit."""
        slot = attempt.state
        if not isinstance(slot.value, dict):
            raise ActionFailed("StateNotJSON", f"state of {self.owner} key {slot.key!r} must stay a dict",
                               retryable=False)
        try:
            text = canonical(slot.value)
        except (TypeError, ValueError) as exc:
            raise ActionFailed("StateNotJSON", f"state of {self.owner} key {slot.key!r} is not JSON: {exc}",
                               retryable=False) from exc
        size = len(text.encode())
        if size > self.spec.max_bytes:
            raise ActionFailed("StateTooLarge", f"state of {self.owner} key {slot.key!r} would be {size} "
                               f"bytes of JSON, over its max_bytes {self.spec.max_bytes}", retryable=False)
        if text != "{}" and self._valid is not None and not self._valid(slot.value):
            path, message = first_data_error(self._validator, slot.value) or ((), "invalid")
            where = "".join(f"[{p!r}]" if isinstance(p, int) else f".{p}" for p in path)
            raise ActionFailed("StateInvalid", f"state of {self.owner} key {slot.key!r}{where}: {message} "
                               "(its `state.schema`)", retryable=False)
        attempt.state_write = {"key": slot.store_key, "read": slot.read,
                               "value": None if text == slot.read else text}


def owners(mesh: m.Mesh) -> dict[str, m.StateSpec]:
    """Every owner of keyed state in *mesh* (``service:NAME``, ``orchestration:NAME``) and its spec."""
    found = {f"service:{s.name}": s.state for s in mesh.services.values() if s.state is not None}
    found |= {f"orchestration:{o.name}": o.state for o in mesh.orchestrations.values() if o.state is not None}
    return found


def final_state(store: Store, owner: str, now: float) -> dict[str, Any]:
    """Every key *owner* (``service:NAME``) holds in *store* at *now*, with its value (what a run
    leaves behind: keys whose ``ttl`` has run out by *now* are gone)."""
    found = {}
    for stored in store.state_keys(store_key(owner, "")):
        record = store.get_state(stored)
        if record is not None and (record.get("expires") is None or record["expires"] > now):
            found[split_store_key(stored)[1]] = record["value"]
    return found


class KeyedStates:
    """The keyed state of a runtime: each owner's :class:`KeyedState`, and the commit of writes."""

    def __init__(self, mesh: m.Mesh, store: Store, fast: bool = True):
        self.store = store
        self.texts = Texts()
        specs = owners(mesh)
        self.of = {owner: KeyedState(owner, spec, store, self.texts, fast) for owner, spec in specs.items()}
        self.ttl = {owner: spec.ttl for owner, spec in specs.items() if spec.ttl is not None}
        self._expiring: list[tuple[float, str]] | None = None  # (expires, store key), built on first use

    def apply(self, write: dict, now: float) -> bool:
        """Commit one attempt's write; False (nothing written) if the key changed since it was read."""
        stored = write["key"]
        if self.texts.of(stored, self.store.get_state(stored), now) != write["read"]:
            return False
        if write["value"] is not None:
            value = json.loads(write["value"])
            if not value:
                self.store.delete_state(stored)
            else:
                ttl = self.ttl.get(split_store_key(stored)[0]) if self.ttl else None
                expires = None if ttl is None else now + ttl
                record = {"value": value, "updated": now, "expires": expires}
                self.store.put_state(stored, record)
                self.texts.remember(stored, record, write["value"])
                if expires is not None and math.isfinite(expires):
                    heapq.heappush(self._expiring_keys(), (expires, stored))
        if self.ttl:
            self.sweep(now)
        return True

    def sweep(self, now: float) -> int:
        """Remove from the store the keys whose time has run out by *now*; how many."""
        heap, removed = self._expiring_keys(), 0
        while heap and heap[0][0] <= now:
            _, stored = heapq.heappop(heap)
            record = self.store.get_state(stored)
            if record is not None and record.get("expires") is not None and record["expires"] <= now:
                self.store.delete_state(stored)
                removed += 1
        return removed

    def _expiring_keys(self) -> list[tuple[float, str]]:
        if self._expiring is None:  # keys written before this process started expire too
            self._expiring = []
            for stored in self.store.state_keys(PREFIX):
                record = self.store.get_state(stored)
                if record is not None and record.get("expires") is not None:
                    self._expiring.append((record["expires"], stored))
            heapq.heapify(self._expiring)
        return self._expiring
