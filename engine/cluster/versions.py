"""Mesh versions of a deployment: `meshctl deploy` and what the workers make of it.

`meshctl deploy PATH` keeps a snapshot of the mesh — its YAML files and its Python modules —
in the deployment, under a version id (a hash of the files), and makes it the current version.
Workers started without a PATH run the deployed versions: new input goes to the current one;
every task a unit makes carries the version of the unit (:data:`TAG` in its payload), so a
delivery, a retry, an orchestration's next step all run on the version the work started on,
and a run started before a new deployment finishes on its old version.

Each version counts the work it has in the queues (``version:<id>:work``: tasks made minus
entries done, committed with the unit), and its runs in flight. A version that is no longer
the current one and has no work left is drained: it can have none again (only its own units
make its tasks), so a worker retires it (:func:`retire_drained`).
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import time
from dataclasses import dataclass
from typing import Any

from ..analysis.validate import require_valid
from ..core.errors import LoadError, UsageError
from ..language import model as m
from ..language.loader import mesh_files
from ..storage.broker import Broker

TAG = "meshversion"  # the key of a task's payload naming its version
MAX_FILE = 1024 * 1024  # bytes of one file of a snapshot
MAX_SNAPSHOT = 16 * 1024 * 1024  # bytes of all of them
log = logging.getLogger(__name__)
RUN_STARTS = ("runs_started", "runs_redriven")  # counters that start a run (again)
RUN_ENDS = ("runs_completed", "runs_failed", "runs_compensated")  # counters that end one


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The files of a mesh, by path relative to its root, and which of them is the mesh."""

    entry: str  # the mesh: "." for the whole root, else a YAML file's relative path
    files: dict[str, str]

    @property
    def version(self) -> str:
        digest = hashlib.sha256(self.entry.encode())
        for name in sorted(self.files):
            digest.update(f"\0{name}\0{len(self.files[name])}\0".encode())
            digest.update(self.files[name].encode())
        return digest.hexdigest()[:12]

    def dumps(self) -> str:
        return json.dumps({"entry": self.entry, "files": self.files}, sort_keys=True)

    @classmethod
    def loads(cls, text: str) -> "Snapshot":
        raw = json.loads(text)
        return cls(raw["entry"], raw["files"])

    def write(self, root: str) -> str:
        """The files under *root*; the path of the mesh there."""
        for name, text in self.files.items():
            path = os.path.join(root, *name.split("/"))
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w", encoding="utf-8") as fh:
                fh.write(text)
        return root if self.entry == "." else os.path.join(root, *self.entry.split("/"))


def snapshot(path: str) -> Snapshot:
    """The mesh at *path* with the Python modules of its directory (what its handlers import)."""
    root = path if os.path.isdir(path) else os.path.dirname(path) or "."
    names = set(mesh_files(path)) | set(_modules(root))
    files, total = {}, 0
    for name in sorted(names):
        rel = os.path.relpath(name, root).replace(os.sep, "/")
        size = os.path.getsize(name)
        total += size
        if size > MAX_FILE or total > MAX_SNAPSHOT:
            raise UsageError(f"{name}: a deployed mesh keeps files up to {MAX_FILE} bytes, "
                             f"{MAX_SNAPSHOT} in all: this one is too large to deploy")
        try:
            with open(name, encoding="utf-8") as fh:
                files[rel] = fh.read()
        except UnicodeDecodeError as exc:
            raise UsageError(f"{name}: not UTF-8 text, so it cannot be deployed ({exc.reason})") from exc
    entry = "." if os.path.isdir(path) else os.path.basename(path)
    return Snapshot(entry, files)


def _modules(root: str) -> list[str]:
    found = []
    for here, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d != "__pycache__")
        found += [os.path.join(here, n) for n in names if n.endswith(".py") and not n.startswith(".")]
    return found


def deploy(broker: Broker, path: str) -> tuple[str, bool]:
    """Make the mesh at *path* (valid) the deployment's current version: its id, and whether it
    was the current one already."""
    shot = snapshot(path)
    version = shot.version
    listed = broker.mesh_versions()
    if listed and listed[-1]["version"] == version:
        return version, True
    broker.deploy_mesh(version, shot.dumps(), {"path": path, "deployed": time.time(),
                                               "files": len(shot.files)})
    return version, False


def versions_status(broker: Broker) -> list[dict]:
    """Each deployed version, oldest first: current or draining, its work in the queues and its
    runs in flight."""
    counters = broker.counters()
    listed = broker.mesh_versions()
    out = []
    for i, info in enumerate(listed):
        version = info["version"]
        started = sum(counters.get(f"version:{version}:{key}", 0) for key in RUN_STARTS)
        ended = sum(counters.get(f"version:{version}:{key}", 0) for key in RUN_ENDS)
        out.append({"version": version, "state": "current" if i == len(listed) - 1 else "draining",
                    "deployed": info.get("deployed"), "path": info.get("path"),
                    "work": counters.get(f"version:{version}:work", 0), "runs_in_flight": started - ended})
    return out


def retire_drained(broker: Broker) -> list[str]:
    """Retire every version that is not the current one and has no work left; their ids."""
    retired = []
    for info in versions_status(broker)[:-1]:
        if info["work"] <= 0:
            broker.retire_mesh(info["version"])
            retired.append(info["version"])
    return retired


def version_deltas(version: str, made: int, done: int, counts: dict[str, int]) -> dict[str, int]:
    """The counters a unit of *version* adds: its work (tasks *made* minus tagged entries *done*)
    and its runs started and ended (from the unit's own counter *counts*)."""
    deltas = {f"version:{version}:work": made - done}
    for key in (*RUN_STARTS, *RUN_ENDS):
        if counts.get(key):
            deltas[f"version:{version}:{key}"] = counts[key]
    return {k: v for k, v in deltas.items() if v}


def tag_of(payload: Any) -> str | None:
    return payload.get(TAG) if isinstance(payload, dict) else None


class Deployed:
    """The deployed versions a worker runs, each loaded from its snapshot into a directory of
    this process (removed on :meth:`close`)."""

    def __init__(self, broker: Broker):
        self.broker = broker
        self._dir = tempfile.TemporaryDirectory(prefix="meshctl-versions-")
        self.meshes: dict[str, m.Mesh] = {}
        self.broken: set[str] = set()  # versions whose snapshot does not load here
        self.current: str | None = None
        self.refresh()
        if self.current is None:
            self.close()
            if self.broken:
                raise UsageError(f"the mesh deployed in this store (version {sorted(self.broken)[-1]}) "
                                 "does not load here: deploy it again with this meshctl")
            raise UsageError("nothing is deployed in this store: `meshctl deploy PATH --store URL` first, "
                             "or give the worker the mesh's PATH")

    def refresh(self) -> None:
        """Load versions deployed since, and forget retired ones."""
        listed = [info["version"] for info in self.broker.mesh_versions()]
        for version in listed:
            if version not in self.meshes and version not in self.broken:
                self._load(version)
        for version in set(self.meshes) - set(listed):
            del self.meshes[version]
        if listed and listed[-1] in self.meshes:
            self.current = listed[-1]

    def _load(self, version: str) -> None:
        text = self.broker.mesh_snapshot(version)
        if text is None:  # retired meanwhile
            return
        try:
            self.meshes[version] = require_valid(Snapshot.loads(text).write(
                os.path.join(self._dir.name, version))).mesh
        except LoadError as exc:
            # deployed by another meshctl that accepts it: this worker keeps to the versions it can run
            self.broken.add(version)
            first = exc.diagnostics[0].format().splitlines()[0] if exc.diagnostics else ""
            log.error("mesh version %s does not load here, it is not run by this worker: %s", version, first)

    def close(self) -> None:
        self._dir.cleanup()
