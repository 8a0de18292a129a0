"""What the runtime reliability tests share: a crashing `meshctl`, logged side effects, test meshes.

Run as a script, this module *is* `meshctl` (``python runtime_harness.py run MESH ...``), with
crash points installed from ``MESHCTL_CRASH_AT=POINT:N``: the process SIGKILLs itself the
N-th time it reaches POINT, so a test can crash a run at an exact place instead of hoping
a timer hits it. The points are patched in from outside, so the engine carries no test
hooks:

========== ===================================================================================
feed       an input was read, before it is processed (``Runtime.feed``)
complete   an attempt's handler ran, before its outcome is applied (``Commits.complete``)
commit     inside the store's transaction: journal and dedup rows written, not committed
committed  right after a commit returned
export     after N lines of the outputs (--output, --trace, --dlq-out) were written
========== ===================================================================================

``MESHCTL_TIMING=FILE`` writes when the process first fed an input and from which position,
which gives the recovery time of a resumed run. Imported by the tests, the module offers
the handler module of the test meshes (:data:`EFFECTS`), whose every invocation is appended
to a log outside the store, and helpers to start, crash and resume runs.
"""
from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from engine.core.eventtime import format as iso  # the one formatter of event times
from engine.runtime.trace import Trace

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve()
KILLED = -signal.SIGKILL  # the return code of a process that died of SIGKILL
START = 1_767_225_600.0  # 2026-01-01T00:00:00Z


# --- the child side: crash points ---------------------------------------------------------

def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _wrap(owner, name: str, nth: int, after: bool = False) -> None:
    """Make ``owner.name`` kill the process on its nth call (before it runs, or after it returned)."""
    original = getattr(owner, name)
    calls = 0

    def wrapper(*args, **kwargs):
        nonlocal calls
        calls += 1
        if calls == nth and not after:
            _die()
        result = original(*args, **kwargs)
        if calls == nth and after:
            _die()
        return result
    setattr(owner, name, wrapper)


class _CountingFile:
    """A file that kills the process when the nth line of all outputs is written."""

    lines = 0

    def __init__(self, fh, nth: int):
        self._fh, self._nth = fh, nth

    def write(self, text: str) -> int:
        written = self._fh.write(text)
        _CountingFile.lines += text.count("\n")
        if _CountingFile.lines >= self._nth:
            self._fh.flush()  # a half-written output file is what a crash leaves behind
            _die()
        return written

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self._fh.close()


def install_crash_point(spec: str) -> None:
    """Patch the crash point ``POINT:N`` into the engine of this process."""
    from engine.commands import runs
    from engine.runtime.commits import Commits
    from engine.runtime.interpreter import Runtime
    from engine.storage.sqlite import SqliteStore

    point, _, nth = spec.partition(":")
    n = int(nth)
    if point == "feed":
        _wrap(Runtime, "feed", n)
    elif point == "complete":
        _wrap(Commits, "complete", n)
    elif point == "commit":
        _wrap(SqliteStore, "_write_dead_letters", n)  # runs inside BEGIN IMMEDIATE, after the journal rows
    elif point == "committed":
        _wrap(SqliteStore, "commit", n, after=True)
    elif point == "export":
        opener = runs._open
        runs._open = lambda path: _CountingFile(opener(path), n)
    else:
        raise SystemExit(f"unknown crash point {point!r}")


def install_timing(path: str) -> None:
    """Write the wall time of the first input fed in this process, and the position it resumed from."""
    from engine.runtime.interpreter import Runtime

    feed = Runtime.feed

    def timed(self, item):
        if not timed.seen:
            timed.seen = True
            Path(path).write_text(json.dumps({"first_feed": time.time(), "from": self.fed}))
        return feed(self, item)
    timed.seen = False
    Runtime.feed = timed


def main() -> None:
    if os.environ.get("MESHCTL_TIMING"):
        install_timing(os.environ["MESHCTL_TIMING"])
    if os.environ.get("MESHCTL_CRASH_AT"):
        install_crash_point(os.environ["MESHCTL_CRASH_AT"])
    from cli import main as meshctl

    meshctl()


# --- the handlers of the test meshes -------------------------------------------------------

EFFECTS = '''
"""Handlers of the reliability test meshes; every invocation is logged outside the store.

The log (the file named by MESHCTL_EFFECT_LOG) is append-only and never deduplicated, so a
test sees every invocation, also those whose effect the store's dedup made harmless. With
MESHCTL_KILL_ON=NAME:N the process SIGKILLs itself right after the N-th invocation of NAME
in this process: the side effect happened, its commit did not.
"""
import json
import os
import signal

_calls = {}


class Fatal(Exception):
    """A payload that can never succeed: listed in the policy's non_retryable."""


class Refused(Exception):
    """Not retryable by its own flag, whatever the policy lists."""

    retryable = False


def _record(name, event, context):
    line = json.dumps({"name": name, "id": event["id"], "attempt": context.attempt, "pid": os.getpid(),
                       "now": context.now})
    fd = os.open(os.environ["MESHCTL_EFFECT_LOG"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\\n").encode())
    finally:
        os.close(fd)
    _calls[name] = _calls.get(name, 0) + 1
    if os.environ.get("MESHCTL_KILL_ON") == f"{name}:{_calls[name]}":
        os.kill(os.getpid(), signal.SIGKILL)


def perform(event, context):
    """The job: fails as its payload's `kind` says."""
    _record("perform", event, context)
    kind = event["data"]["kind"]
    if kind == "flaky" and context.attempt == 1:
        raise TimeoutError("downstream timed out")
    if kind == "poison":
        raise ValueError("cannot parse the payload")
    if kind == "fatal":
        raise Fatal("the job can never be done")
    if kind == "refused":
        raise Refused("the downstream refused it")
    return {"n": event["data"]["n"]}


def note(event, context):
    """A downstream effect, named by args.name: only logged."""
    _record(context.args["name"], event, context)


def step(event, context):
    """An orchestration step (or its undo) named by args.name; fails where the order says."""
    name = context.args["name"]
    _record(name, event, context)
    if name == event["data"].get("fail_at"):
        raise Fatal(f"{name} failed for order {event['data']['order']}")
    if name == event["data"].get("flaky_at") and context.attempt == 1:
        raise TimeoutError(f"{name} timed out")
    return {"step": name, "order": event["data"]["order"]}
'''


JOBS_MESH = """
# Jobs done by a logged Python handler that takes 2s (so attempts span commits), retried by
# policy, dead-lettered when hopeless; what they produce is counted per group in windows.
apiVersion: meshctl/v1
kind: EventType
metadata: {name: job.submitted}
spec:
  external: true
  schema:
    type: object
    required: [n, group, kind]
    properties:
      n: {type: integer}
      group: {type: string}
      kind: {enum: [ok, flaky, poison, fatal, refused]}
---
apiVersion: meshctl/v1
kind: EventType
metadata: {name: job.done}
---
apiVersion: meshctl/v1
kind: EventType
metadata: {name: job.window}
---
apiVersion: meshctl/v1
kind: DeliveryPolicy
metadata: {name: patient}
spec:
  retry: {max_attempts: 3, backoff: exponential, initial: 1s, max_delay: 4s, jitter: full, non_retryable: [Fatal]}
  dead_letter: jobs-dlq
---
apiVersion: meshctl/v1
kind: Service
metadata: {name: worker}
spec:
  subscriptions:
    - on: job.submitted
      name: perform
      delivery: patient
      do:
        - call: {python: "effects:perform"}
        - sleep: 2s
        - emit: {type: job.done, data: {n: "{{ data.n }}", group: "{{ data.group }}"}}
      emits: [job.done]
---
apiVersion: meshctl/v1
kind: Stream
metadata: {name: per-group}
spec:
  from: [job.done]
  key: data.group
  time: time
  window: {tumbling: 60s}
  lateness: 5s
  aggregate:
    jobs: {count: {}}
    total: {sum: data.n}
  emit: {type: job.window}
"""  # noqa: E501 (YAML kept as written)
PERFORM = "service:worker/perform"
JOB_KINDS = ["ok"] * 85 + ["flaky"] * 8 + ["poison"] * 3 + ["fatal"] * 2 + ["refused"] * 2


def jobs(n: int, seed: int, spacing: float = 1.0) -> list[dict]:
    """*n* job events about *spacing* seconds apart, slightly out of order, of mixed kinds."""
    rng = random.Random(seed)
    return [
        {
            "id": f"job-{i}",
            "type": "job.submitted",
            "source": "reliability",
            "time": iso(START + i * spacing + rng.uniform(-1.5, 0)),
            "data": {"n": i, "group": f"g{rng.randrange(8)}", "kind": rng.choice(JOB_KINDS)},
        }
        for i in range(n)
    ]


class TimedTrace(Trace):
    """Trace records kept in a list with the exact clock time (a JSON trace rounds it to ms)."""

    def __init__(self):
        super().__init__([])

    def record(self, now: float, kind: str, **fields) -> None:
        self.sink.append({"now": now, "kind": kind, **fields})


def write_mesh(directory: Path, yaml_text: str) -> Path:
    """A mesh directory with one YAML file and the logged handlers (``effects``)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "mesh.yaml").write_text(textwrap.dedent(yaml_text).lstrip("\n"))
    (directory / "effects.py").write_text(EFFECTS.lstrip("\n"))
    return directory


def load(directory: Path, yaml_text: str):
    """The mesh of :func:`write_mesh`, loaded for a Runtime in this process."""
    from engine.language.loader import load_mesh

    mesh, _ = load_mesh(str(write_mesh(directory, yaml_text)))
    return mesh


def inputs(events: list[dict]) -> list:
    """Events as `meshctl run` reads them from a file (defaults filled in, bad ones as BadInput)."""
    from engine.core.errors import Location
    from engine.runtime.events import normalise

    return [normalise(e, Location("input", i + 1, 1), i) for i, e in enumerate(events)]


def read_log(path: Path) -> list[dict]:
    """The invocations logged by the handlers, in order (none if nothing was invoked)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def write_events(path: Path, events: list[dict]) -> Path:
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    return path


# --- the parent side: running, crashing and resuming ----------------------------------------


def command(*args) -> list[str]:
    return [sys.executable, str(HERE), *map(str, args)]


def environment(**extra: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MESHCTL_")}
    env.update({k: v for k, v in extra.items() if v is not None})
    return env


def meshctl(*args, check: bool = True, **env: str | None) -> subprocess.CompletedProcess:
    """Run the harness `meshctl` to the end; *env* sets MESHCTL_* variables (None: unset)."""
    done = subprocess.run(
        command(*args), cwd=REPO, env=environment(**env), capture_output=True, text=True, timeout=300
    )
    if check and done.returncode != 0:
        raise AssertionError(
            f"meshctl {' '.join(map(str, args))} exited {done.returncode}:\n{done.stderr[-3000:]}"
        )
    return done


def outputs(prefix: Path, trace: bool = True) -> list[str]:
    names = [f"--output={prefix}.out", f"--dlq-out={prefix}.dlq"]
    return names + ([f"--trace={prefix}.trace"] if trace else [])


def output_texts(prefix: Path, trace: bool = True) -> dict[str, str]:
    return {
        suffix: Path(f"{prefix}.{suffix}").read_text()
        for suffix in ("out", "dlq") + (("trace",) if trace else ())
    }


def jsonl(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines()]


def checkpoint_fed(db: Path) -> int:
    """The input position committed in a store (0 before the first commit), read by another connection."""
    if not db.exists():
        return 0
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1.0)
        try:
            row = conn.execute("SELECT json_extract(body, '$.fed') FROM checkpoint WHERE id = 1").fetchone()
        finally:
            conn.close()
    except sqlite3.Error:  # not created yet, or the schema is being written
        return 0
    return row[0] if row and row[0] is not None else 0


def run_with_sigkills(
    args: list, db: Path, kills: int, rng: random.Random, total: int, **env: str | None
) -> dict:
    """Run `meshctl run ... --store sqlite:DB` and SIGKILL it from outside *kills* times, each time
    shortly after its committed position passed a random point of the input (and after it
    committed at least once); resume until done.

    Returns the number of kills, starts, and the recovery time of every resumed start: from
    spawning the process to its first input fed after the restore.
    """
    targets = sorted(rng.sample(range(total // 10, total * 9 // 10), kills))
    killed, starts, recoveries = 0, 0, []
    timing = db.with_suffix(".timing")
    while True:
        resume = ["--resume"] if starts else []
        timing.unlink(missing_ok=True)
        spawned = time.time()
        proc = subprocess.Popen(
            command(*args, *resume),
            cwd=REPO,
            env=environment(MESHCTL_TIMING=str(timing), **env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        starts += 1
        if killed < len(targets):
            # and a commit of its own: no kill at start-up
            floor = max(targets[killed], checkpoint_fed(db) + 1)
            while proc.poll() is None and checkpoint_fed(db) < floor:
                time.sleep(0.005)
            if proc.poll() is None:
                time.sleep(rng.uniform(0.0, 0.05))  # anywhere after that commit: mid-batch, mid-commit
                proc.send_signal(signal.SIGKILL)
        out, err = proc.communicate(timeout=300)
        if starts > 1 and timing.exists():
            recoveries.append(json.loads(timing.read_text())["first_feed"] - spawned)
        if proc.returncode == KILLED:
            killed += 1
            continue
        if proc.returncode != 0:
            raise AssertionError(f"meshctl exited {proc.returncode}:\n{err[-3000:]}")
        return {"kills": killed, "starts": starts, "recoveries": recoveries, "summary": json.loads(out)}


if __name__ == "__main__":
    main()
