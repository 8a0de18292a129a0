"""The use cases of a worker deployment on a Redis store: `worker`, `status`, `serve` and
`publish`.

Thin: the work is done in :mod:`engine.cluster`; here the command line finds it in one place,
with the mesh's admission (what its edges accept) built for it.
"""
from __future__ import annotations

from typing import Callable

from ..cluster.deployment import broker_store, queue_lanes, signal_deployment_run, status
from ..cluster.ingress import Ingress
from ..cluster.metrics import CountedQueue, IngressMetrics
from ..cluster.publish import Checked, Sender, checked_events, to_store
from ..cluster.server import IngressServer, require_token
from ..cluster.versions import Deployed, deploy, versions_status
from ..cluster.worker import Worker, WorkerOptions
from ..core.errors import Diagnostic
from ..language.admission import Admission
from ..language.model import Mesh

__all__ = [
    "Deployed", "IngressServer", "Sender", "Worker", "WorkerOptions", "broker_store", "check_events",
    "deploy", "deployment_status", "ingress", "require_token", "status", "to_store", "versions_status",
]


def deployment_status(broker, mesh: Mesh | None) -> dict:
    """`meshctl status`: the deployment's queues, workers, memory and counters, and its mesh
    versions; the streams (queues) of *mesh*, or without it of every deployed version."""
    if mesh is not None:
        streams = set(mesh.streams)
    else:
        deployed = Deployed(broker)
        try:
            streams = {name for each in deployed.meshes.values() for name in each.streams}
        finally:
            deployed.close()
    return {**status(broker, sorted(streams)), "versions": versions_status(broker)}


def check_events(path: str, mesh: Mesh, refused: Callable[[Diagnostic], None]) -> Checked:
    """The events of the file at *path*, each checked against *mesh* as the ingress checks it
    (each problem goes to *refused*)."""
    return checked_events(path, Admission(mesh), refused)


def ingress(mesh: Mesh, store, metrics: bool = False, **options) -> Ingress | IngressMetrics:
    """The HTTP ingress of *mesh* into *store* (options: token, principals, max_body, max_batch,
    max_backlog, threads, log); with *metrics*, answering ``GET /metrics`` too. It takes the
    signals of the deployment's runs as well (``POST /runs/{run}/signals/{name}``)."""
    options.setdefault("signals", lambda run, name, data, by: signal_deployment_run(
        store.store, run, name, data, by))
    if not metrics:
        return Ingress(Admission(mesh), store, **options)
    lanes = queue_lanes(sorted(mesh.streams))
    counted = IngressMetrics(store, lambda: lanes)
    return counted.around(Ingress(Admission(mesh), CountedQueue(store, counted), **options))
