"""T01: crash-point recovery on SQLite. A run killed at each named crash point, then resumed,
commits exactly what an uninterrupted run commits: nothing lost, no effect twice.

One run of 2,000 jobs (`runtime_harness.JOBS_MESH`: a logged Python handler taking 2 s of
virtual time, retries, three kinds of dead letters, a windowed count) is SIGKILLed nine
times, each time at a named point (see `runtime_harness`): after an input was read; after
a handler ran and before its outcome was applied; inside the commit's transaction; right
after a commit; half-way through writing the outputs. Each restart resumes with `--resume`.
The handler's invocation log lives outside the store, so repeated *invocations* are
visible (at least once, by design); the committed outputs must equal a clean run's.
"""
from __future__ import annotations

import collections

import pytest
from runtime_harness import (
    JOBS_MESH,
    KILLED,
    jobs,
    jsonl,
    meshctl,
    output_texts,
    outputs,
    read_log,
    write_events,
    write_mesh,
)

pytestmark = pytest.mark.slow

EVENTS = 2000
EVERY = 50  # inputs between commits


def test_every_crash_point_loses_nothing_and_commits_each_effect_once(tmp_path):
    mesh = write_mesh(tmp_path / "mesh", JOBS_MESH)
    events = write_events(tmp_path / "events.jsonl", jobs(EVENTS, seed=1))

    def run(name: str, *extra: str, **env: str | None):
        return meshctl("run", mesh, "--events", events, f"--store=sqlite:{tmp_path / name}.db",
                       f"--checkpoint-every={EVERY}", "--format=json", *outputs(tmp_path / name), *extra,
                       check=False, MESHCTL_EFFECT_LOG=str(tmp_path / f"{name}.log"), **env)

    assert run("clean").returncode == 0
    clean = output_texts(tmp_path / "clean")
    trace_lines = clean["trace"].count("\n")
    # Each process counts from its own start; about 950 inputs are committed before the
    # export crashes, which come after the whole input (mid-trace, then mid --output).
    crashes = ["feed:300", "complete:400", "commit:3", "committed:2", "complete:300", "feed:200", "commit:2",
               "export:1000", f"export:{trace_lines + 500}"]
    for number, point in enumerate(crashes):
        done = run("crashed", *(["--resume"] if number else []), MESHCTL_CRASH_AT=point)
        assert done.returncode == KILLED, (point, done.returncode, done.stderr[-2000:])
    assert run("crashed", "--resume").returncode == 0

    assert output_texts(tmp_path / "crashed") == clean  # emitted events, dead letters, trace: byte for byte
    emitted, dead = jsonl(clean["out"]), jsonl(clean["dlq"])
    done_per_job = collections.Counter(e["causationid"] for e in emitted if e["type"] == "job.done")
    dead_jobs = {d["event"]["id"] for d in dead}
    lost = [
        f"job-{i}" for i in range(EVENTS) if f"job-{i}" not in done_per_job and f"job-{i}" not in dead_jobs
    ]
    assert lost == []
    assert max(done_per_job.values()) == 1 and not dead_jobs & set(done_per_job)
    assert len({e["id"] for e in emitted}) == len(emitted)

    invoked = collections.Counter(r["id"] for r in read_log(tmp_path / "crashed.log"))
    clean_invoked = collections.Counter(r["id"] for r in read_log(tmp_path / "clean.log"))
    assert set(invoked) == set(clean_invoked) == {f"job-{i}" for i in range(EVENTS)}
    repeated = sum((invoked - clean_invoked).values())
    assert repeated > 0  # handlers ran again after the crashes (at least once) and the log shows it
    assert not clean_invoked - invoked
