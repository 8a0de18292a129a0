"""What a Redis deployment holds, per class of key: how many keys and about how many bytes.

Used by ``meshctl status`` and by ``python -m bench.redis_memory``. Cheap on purpose: one
``SCAN`` over at most ``limit`` keys of the database (a key count beyond it is extrapolated
from ``DBSIZE``: SCAN walks the hash table, in no order of names) and ``MEMORY USAGE`` of at
most ``sample`` keys per class (the mean times the count), so the bytes are an estimate. Redis's
own ``MEMORY USAGE`` samples the nodes of big aggregates too (a stream, a hash: up to
:data:`NESTED_SAMPLES` of them), and counts the key and its value with their allocations, not
the server's own tables (its entries in the key and expiry hash tables): ``used_memory`` grows
by about 120 bytes per key more (on the orders example, 760 bytes per order of six keys).
"""
from __future__ import annotations

import random
from typing import Iterable

import redis

# The classes, by the first part of a key's name after the prefix (see the key list of
# engine/storage/redisstore.py): the order is the order `meshctl status` prints them in.
CLASSES = {
    "j:input": "archive: input",
    "j:emitted": "archive: emitted",
    "j:trace": "trace journal",
    "done": "dedup records",
    "state:run:": "runs",
    "runs": "runs",
    "state:": "state",
    "statekeys": "state",
    "dlq": "dead letters",
    "input": "queues",
    "tasks": "queues",
    "lane": "queues",
    "delayed": "queues",
    "pending": "queues",  # pending work by event time (partition watermarks)
    "meshes": "deployed meshes",
    "mesh": "deployed meshes",
}
OTHER = "leases, workers, counters"
# nodes of an aggregate MEMORY USAGE looks at: Redis's default (5) takes a stream's first nodes
# only, and a journal's early entries (small commits) made it a third of the truth
NESTED_SAMPLES = 1000
ORDER = list(dict.fromkeys([*CLASSES.values(), OTHER]))


def key_class(prefix: str, key: str) -> str | None:
    """The class of *key*, or None if it is not one of *prefix*'s. Keys may carry a hash tag:
    ``P:rest``, ``{P}:rest`` or ``{P:tag}:rest``."""
    if key.startswith(prefix + ":"):
        rest = key[len(prefix) + 1:]
    elif key.startswith("{" + prefix) and key[len(prefix) + 1:len(prefix) + 2] in ("}", ":"):
        close = key.find("}:")
        if close < 0:
            return None
        rest = key[close + 2:]
    else:
        return None
    for head, name in CLASSES.items():
        if rest.startswith(head) and (head.endswith(":") or rest[len(head):len(head) + 1] in ("", ":")):
            return name
    return OTHER


def memory_usage(client: redis.Redis, prefix: str, limit: int = 200_000, sample: int = 16,
                 rng: random.Random | None = None) -> dict:
    """Keys and estimated bytes per class of *prefix*'s keys.

    Returns ``{"classes": {class: {"keys": n, "bytes": b}}, "keys": n, "bytes": b,
    "exact_counts": bool, "scanned": n}``: ``exact_counts`` False when the scan stopped at
    *limit* keys and the counts were extrapolated.
    """
    rng = rng or random.Random(0)
    seen: dict[str, list[str]] = {}
    cursor, scanned = 0, 0
    while True:
        cursor, keys = client.scan(cursor, count=1000)
        scanned += len(keys)
        for key in keys:
            name = key_class(prefix, key if isinstance(key, str) else key.decode())
            if name is not None:
                seen.setdefault(name, []).append(key)
        if cursor == 0 or scanned >= limit:
            break
    complete = cursor == 0
    scale = 1.0 if complete or not scanned else max(client.dbsize(), scanned) / scanned
    classes = {}
    for name in sorted(seen, key=ORDER.index):
        keys = seen[name]
        count = round(len(keys) * scale)
        mean = _mean_usage(client, _sample(keys, sample, rng))
        classes[name] = {"keys": count, "bytes": round(mean * count)}
    return {"classes": classes, "keys": sum(c["keys"] for c in classes.values()),
            "bytes": sum(c["bytes"] for c in classes.values()), "exact_counts": complete, "scanned": scanned}


def _sample(keys: list[str], size: int, rng: random.Random) -> list[str]:
    return keys if len(keys) <= size else rng.sample(keys, size)


def _mean_usage(client: redis.Redis, keys: Iterable[str]) -> float:
    pipe = client.pipeline(transaction=False)
    keys = list(keys)
    for key in keys:
        pipe.memory_usage(key, samples=NESTED_SAMPLES)
    sizes = [size for size in pipe.execute() if size is not None]  # a key may expire meanwhile
    return sum(sizes) / len(sizes) if sizes else 0.0
