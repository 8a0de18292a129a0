"""`meshctl state`: list, show and delete the keyed state of services and orchestrations.

State lives in the store of a durable run (``sqlite:PATH``, a Redis run) or of a deployment
(``redis://...``), under ``kv:<owner>:<key>`` (engine/runtime/keyedstate.py). An owner is
named as ``service:NAME`` or ``orchestration:NAME``, or by its bare name when only one owner
has it. Expiry is judged at the stored run's clock (its last checkpoint), or at the wall
clock for a deployment, whose workers run on it.
"""
from __future__ import annotations

import time

from ..cluster.deployment import commit_changes, is_deployment
from ..core.errors import UsageError, did_you_mean
from ..core.eventtime import format as iso
from ..runtime.keyedstate import PREFIX, canonical, split_store_key, store_key
from ..storage import Store
from .runs import open_durable


def _now(store: Store) -> float:
    checkpoint = store.checkpoint()
    return checkpoint["clock"] if checkpoint is not None else time.time()


def _entry(owner: str, key: str, record: dict, now: float) -> dict:
    expires = record.get("expires")
    return {
        "owner": owner,
        "key": key,
        "bytes": len(canonical(record["value"]).encode()),
        "updated": iso(record["updated"]),
        "expires": iso(expires) if expires is not None else None,
        "expired": expires is not None and expires <= now,
    }


def _owners(store: Store) -> list[str]:
    return sorted({split_store_key(k)[0] for k in store.state_keys(PREFIX)})


def _owner(store: Store, given: str) -> str:
    """The owner *given* names (``service:NAME``, ``orchestration:NAME`` or a bare NAME)."""
    known = _owners(store)
    if given in known:
        return given
    if ":" not in given:
        matches = [owner for owner in known if owner.split(":", 1)[1] == given]
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise UsageError(f"{given!r} names {' and '.join(matches)}: give one of them whole")
    hint = did_you_mean(given, known + [o.split(":", 1)[1] for o in known])
    shown = ", ".join(known) if known else "none"
    raise UsageError(f"no state of {given!r} in this store (owners with state: {shown})"
                     + (f"; {hint}" if hint else ""))


def list_state(url: str, owner: str | None = None, prefix: str = "") -> list[dict]:
    """Every key of the store's keyed state (of one owner; starting with *prefix*), in order."""
    store = open_durable(url, deployment_ok=True)
    now = _now(store)
    where = PREFIX if owner is None else store_key(_owner(store, owner), prefix)
    found = []
    for stored in store.state_keys(where):
        found_owner, key = split_store_key(stored)
        if key.startswith(prefix):
            found.append(_entry(found_owner, key, store.get_state(stored), now))
    return found


def show_state(url: str, owner: str, key: str) -> dict:
    """One key's entry (as :func:`list_state` gives it) with its whole value."""
    store = open_durable(url, deployment_ok=True)
    name = _owner(store, owner)
    record = store.get_state(store_key(name, key))
    if record is None:
        raise _no_key(store, name, key)
    return {**_entry(name, key, record, _now(store)), "value": record["value"]}


def delete_state(url: str, owner: str, key: str) -> None:
    """Remove one key, committed at once (a deployment's workers see it on their next read)."""
    store = open_durable(url, deployment_ok=True)
    name = _owner(store, owner)
    stored = store_key(name, key)
    if store.get_state(stored) is None:
        raise _no_key(store, name, key)
    store.delete_state(stored)
    if is_deployment(store):
        commit_changes(store)
    else:  # a stored run: the same checkpoint, so `--resume` goes on from where it was
        store.commit(store.checkpoint())
    store.close()


def _no_key(store: Store, owner: str, key: str) -> UsageError:
    keys = [split_store_key(k)[1] for k in store.state_keys(store_key(owner, ""))]
    hint = did_you_mean(key, keys)
    return UsageError(f"{owner} has no state key {key!r} ({len(keys)} key{'s' if len(keys) != 1 else ''})"
                      + (f"; {hint}" if hint else "; `meshctl state list` shows them"))
