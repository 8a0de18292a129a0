"""A Redis deployment seen from outside its workers: what `status`, `dlq` and `runs` ask of it.

A deployment is a Redis store that workers share (``meshctl worker``). Unlike a SQLite
store written by ``meshctl run``, it holds no runtime checkpoint: its clock is the real one
and its schedule is the queues. So commands that change it (redrives) hand tasks to the
workers instead of running the mesh themselves.
"""
from __future__ import annotations

import json

from ..core.deadletter import DeadLetter
from ..core.errors import UsageError
from ..runtime.trace import SUMMARY_KEYS
from ..storage import open_store
from ..storage.redisstore import RedisStore
from .queues import INPUT, WorkQueues

REDRIVE = "dlq-redrive"  # the task that takes one dead letter back into the mesh
REPLAY = "archive-replay"  # the task that re-injects a copy of an archived event
RUN_REDRIVE = "run-redrive"  # the task that runs a failed orchestration run again from its failed step


def broker_store(url: str, command: str) -> RedisStore:
    """The Redis store at *url*, or a usage error saying *command* needs one."""
    store = open_store(url)
    if not isinstance(store, RedisStore):
        raise UsageError(f"{command} needs a broker store: --store redis://HOST:PORT/DB (got {url!r})")
    return store


def is_deployment(store) -> bool:
    """A Redis store worked by `meshctl worker` (no `run` checkpoint in it)."""
    return isinstance(store, RedisStore) and store.checkpoint() is None


def deployment_summary(store: RedisStore) -> dict:
    """The counters of every worker of a deployment together, in `meshctl run`'s summary shape."""
    raw = {k: int(v) for k, v in store.r.hgetall(f"{store.p}:counters").items()}
    out = {key: raw.get(key, 0) for key in SUMMARY_KEYS}
    out["dead_lettered_by_reason"] = {k[5:]: v for k, v in sorted(raw.items()) if k.startswith("dead:")}
    return out


def queue_tasks(store: RedisStore, tasks: list[tuple[str, dict]]) -> int:
    """Hand tasks to the workers, all in one commit."""
    queues = WorkQueues(store)
    queues.ensure_groups(["tasks"])
    ops = [queues.enqueue_op("tasks", kind, payload, 0, 1) for kind, payload in tasks]
    if ops:
        store.reset()
        store.commit_unit((), ops)
    return len(ops)


def queue_redrive(store: RedisStore, records: list[DeadLetter]) -> int:
    """Each dead letter becomes a task that removes it from its queue and delivers its event
    again, in one commit of the worker that takes it."""
    return queue_tasks(store, [(REDRIVE, record.as_dict()) for record in records])


def status(store: RedisStore, streams: list[str]) -> dict:
    """Backlog and lag of every queue, dead letters per queue, live workers, and the counters."""
    queues = WorkQueues(store)
    lanes = [INPUT, "tasks"] + [f"stream:{name}" for name in streams]
    backlog, pending = queues.backlog(lanes), queues.pending(lanes)
    dead: dict[str, int] = {}
    for record in store.dead_letters():
        dead[record.queue] = dead.get(record.queue, 0) + 1
    workers = {name: json.loads(info) for name, info in sorted(store.r.hgetall(f"{store.p}:workers").items())}
    return {"queues": {lane: {"backlog": backlog[lane], "in_hand": pending[lane],
                              "waiting": backlog[lane] - pending[lane]} for lane in lanes},
            "delayed": backlog["delayed"], "dead_letters": dead, "workers": workers,
            "summary": deployment_summary(store)}
