"""A deployment seen from outside its workers: what `status`, `dlq` and `runs` ask of it.

A deployment is a store with a broker (engine/storage/broker.py) that workers share
(``meshctl worker``). Unlike a SQLite store written by ``meshctl run``, it holds no runtime
checkpoint: its clock is the real one and its schedule is the queues. So commands that change
it (redrives) hand tasks to the workers instead of running the mesh themselves.
"""
from __future__ import annotations

import time
from typing import Any

from ..core import eventtime
from ..core.deadletter import DeadLetter
from ..core.errors import RunStateError, UsageError
from ..language import model as m
from ..language.model import DEFAULT_RETENTION
from ..runtime.trace import EARLY_END_KEYS, OPTIONAL_KEYS, SUMMARY_KEYS
from ..runtime.waits import RUN_CANCEL, RUN_SIGNAL, signal_problem
from ..runtime.watermarks import stream_inputs
from ..storage import Store, broker_for, broker_forms, open_broker
from ..storage.broker import INPUT, TASKS, Broker, Task, partition_key

REDRIVE = "dlq-redrive"  # the task that takes one dead letter back into the mesh
REPLAY = "archive-replay"  # the task that re-injects a copy of an archived event
RUN_REDRIVE = "run-redrive"  # the task that runs a failed orchestration run again from its failed step
OFFER = "offer"  # an event offered to an ordered consumer, in the partition of its ordering key


def broker_store(url: str, command: str, mesh: m.Mesh | None = None) -> Broker:
    """The broker at *url*, or a usage error saying *command* needs one; with the *mesh*, set
    up for it: its store applies the mesh's retention to what it writes, and a deployment
    started with another number of partitions is a usage error."""
    broker = open_broker(url, mesh.retention if mesh is not None else DEFAULT_RETENTION)
    if broker is None:
        forms = " or ".join(broker_forms())
        raise UsageError(f"{command} needs a broker store: --store {forms} (got {url!r})")
    if mesh is not None:
        try:
            broker.configure(mesh.partitions, stream_inputs(mesh))
        except UsageError:
            broker.close()
            raise
    return broker


def is_deployment(store: Store) -> bool:
    """A store with a broker, worked by `meshctl worker` (no `run` checkpoint in it)."""
    return broker_for(store) is not None and store.checkpoint() is None


def commit_changes(store: Store) -> None:
    """Commit what a command changed in a deployment's store (it takes no checkpoint: giving it
    one would make it a run's store)."""
    _broker(store).commit_unit()


def deployment_summary(broker: Broker) -> dict:
    """The counters of every worker of a deployment together, in `meshctl run`'s summary shape."""
    raw = broker.counters()
    out = {key: raw.get(key, 0) for key in SUMMARY_KEYS}
    out.update({key: raw[key] for key in EARLY_END_KEYS if raw.get(key)})
    out.update({key: raw[key] for key in OPTIONAL_KEYS if key in raw})
    out["dead_lettered_by_reason"] = {k[5:]: v for k, v in sorted(raw.items()) if k.startswith("dead:")}
    return out


def queue_tasks(store: Store, tasks: list[tuple[str, dict]], spacing: float = 0.0) -> int:
    """Hand tasks to the workers of the deployment whose store this is, in one commit (one per
    partition on a Redis Cluster), each to the partition that holds what it works on. With a
    *spacing* (seconds, ``--rate``), task *n* is due *n* × spacing from now: it waits in its
    partition's delayed tasks, so the workers take them at that rate, even if this command
    has long ended (or a worker restarts meanwhile)."""
    broker = _broker(store)
    broker.ensure_lanes([TASKS])
    if tasks:
        homes = [_home(broker, kind, payload) for kind, payload in tasks]
        start = time.time()
        due = [start + n * spacing if spacing > 0 and n else None for n in range(len(tasks))]
        broker.begin_unit()
        broker.commit_unit(tasks=[Task(TASKS, kind, payload, when, partition=home)
                                  for (kind, payload), home, when in zip(tasks, homes, due)])
    return len(tasks)


def _home(broker: Broker, kind: str, payload: dict) -> int:
    """The partition a command's task goes to: a redrive to the one holding the dead letter or
    the run (a run lives in one partition), a replay to its event's."""
    if kind == REDRIVE:
        found = broker.home(f"dlq:{payload['id']}")
    elif kind in (RUN_REDRIVE, RUN_SIGNAL, RUN_CANCEL):
        found = broker.home(f"state:run:{payload['run']}")
    else:
        found = broker.partition_for(partition_key(payload.get("event", {})))
    return found or 0


def signal_deployment_run(store: Store, given: str, name: str, data: Any, by: str | None) -> dict:
    """Queue signal *name* for the run *given* names (its whole id, or ``ORCHESTRATION:ID`` when
    one source has that id): the worker holding the run delivers it. UsageError if there is no
    such run, RunStateError if it does not wait for that signal (from *by*). The run, as read."""
    run = store.get_state(f"run:{given}")
    if run is None and "@" not in given:
        found = store.state_keys(f"run:{given}@")
        run = store.get_state(found[0]) if len(found) == 1 else None
    if run is None:
        raise UsageError(f"no run {given!r} (give its whole id, ORCHESTRATION:ID@SOURCE)")
    problem = signal_problem(run, name, by)
    if problem is not None:
        raise RunStateError(problem)
    queue_tasks(store, [(RUN_SIGNAL, {"run": run["id"], "name": name, "data": data, "by": by})])
    return run


def queue_redrive(store: Store, records: list[DeadLetter], spacing: float = 0.0) -> int:
    """Each dead letter becomes a task that removes it from its queue and delivers its event
    again, in one commit of the worker that takes it (one every *spacing* seconds if given)."""
    return queue_tasks(store, [(REDRIVE, record.as_dict()) for record in records], spacing)


def queue_lanes(streams: list[str]) -> list[str]:
    """Every queue of a deployment of a mesh with these windowed streams."""
    return [INPUT, TASKS] + [f"stream:{name}" for name in streams]


def status(broker: Broker, streams: list[str]) -> dict:
    """Backlog and lag of every queue, each partition's holder and backlog, dead letters per
    queue, live workers, the counters, and what the deployment holds in Redis per class of key
    (an estimate: sampled)."""
    lanes = queue_lanes(streams)
    backlog, pending = broker.lane_backlog(lanes), broker.pending(lanes)
    holders, per_partition, marks = broker.holders(), broker.partition_backlog(lanes), broker.watermarks()
    partitions = {str(p): {"holder": holders.get(p), "backlog": per_partition.get(p, 0),
                           **_watermarks(*marks.get(p, (None, None)))}
                  for p in sorted(holders)}
    dead: dict[str, int] = {}
    for record in broker.store.dead_letters():
        dead[record.queue] = dead.get(record.queue, 0) + 1
    return {"queues": {lane: {"backlog": backlog[lane], "in_hand": pending[lane],
                              "waiting": backlog[lane] - pending[lane]} for lane in lanes},
            "delayed": backlog["delayed"], "partitions": partitions, "dead_letters": dead,
            "workers": broker.workers(), "summary": deployment_summary(broker), "memory": broker.memory()}


def _watermarks(progress: float | None, pending: float | None) -> dict:
    """A partition's input progress and the earliest event time of its pending work, as times
    (streams fed by the mesh's own events close their windows by them; None: none)."""
    return {"progress": None if progress is None else eventtime.format(progress),
            "pending_from": None if pending is None or pending == float("inf") else _time_or_unknown(pending)}


def _time_or_unknown(t: float) -> str:
    """A pending task of unknown event time holds every window back until it is done."""
    return "unknown" if t == float("-inf") else eventtime.format(t)


def _broker(store: Store) -> Broker:
    broker = broker_for(store)
    if broker is None:
        raise UsageError("this store is not a deployment's: it has no broker")
    return broker
