"""An event's identity, and the names made from it (dedup keys, run ids).

CloudEvents 1.0 says an event is identified by ``source`` and ``id`` together: two producers
may well use the same id, and a consumer must treat two events with the same ``source`` and
``id`` as duplicates, and only those. Everything meshctl keys by "the event" (dedup records,
ids of derived events, dead-letter ids, archive replay copies, orchestration runs) uses
:func:`identity`, never the id alone.

The key is ``<length of source>:<source>|<id>``: the length prefix makes it unambiguous
whatever characters the two strings hold (a separator alone could occur inside either), and
it costs one small f-string per delivery.

>>> identity({"source": "/shop/checkout", "id": "chk-1"})
'14:/shop/checkout|chk-1'
>>> identity({"source": "a|b", "id": "c"}) != identity({"source": "a", "id": "b|c"})
True

An orchestration run is named ``<orchestration>:<id>@<source>``, readable and unique per
(orchestration, source, id): the orchestration's name has no ``:`` (names are
``[a-z0-9._-]``), and ``%`` and ``@`` inside the id are written ``%25`` and ``%40``, so the
first ``@`` after the name ends the id. Where one source is in play, ``<orchestration>:<id>``
is enough to find a run (``meshctl runs show``, ``runs redrive``).

>>> run_id("fulfil-order", {"source": "/shop/checkout", "id": "chk-1"})
'fulfil-order:chk-1@/shop/checkout'
>>> run_id("o", {"source": "s", "id": "a@b%"})
'o:a%40b%25@s'
"""
from __future__ import annotations

_last: tuple = (None, "")  # (event, its key): the same event is asked about several times in a row


def identity(event: dict) -> str:
    """The key of an event's identity, (``source``, ``id``), as one unambiguous string.

    Events from outside always have a non-empty source (inputs get ``meshctl/input`` when they
    have none); a dict without one, made inside meshctl or by a test, counts as source ``""``.
    It is asked for on every delivery, mostly of the event asked about just before (its dedup
    check, then its record; one consumer after another), so the last answer is kept: an event
    is never changed once made (engine/runtime/events.py), and the kept reference keeps the
    dict alive, so ``is`` cannot mistake another dict for it. One tuple, replaced whole: safe
    across threads.
    """
    global _last
    last = _last
    if last[0] is event:
        return last[1]
    source = event.get("source", "")
    key = f"{len(source)}:{source}|{event['id']}"
    _last = (event, key)
    return key


def run_id(orchestration: str, event: dict) -> str:
    """The id of the run *event* triggers in *orchestration* (see the module docstring)."""
    event_id = event["id"]
    if "@" in event_id or "%" in event_id:
        event_id = event_id.replace("%", "%25").replace("@", "%40")
    return f"{orchestration}:{event_id}@{event.get('source', '')}"
