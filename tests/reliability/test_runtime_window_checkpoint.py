"""T08: stateful operator checkpoint equivalence. Keyed windows (tumbling and session) computed
by a run SIGKILLed at random points and resumed equal those of a run that never failed.

`meshctl run --store sqlite:` is killed from outside three times per seed, each time a
random moment after its committed input position passed a random point, so kills land
mid-batch and mid-commit. Window state lives in the checkpoint; the resumed run must emit
every window once with the same aggregates, and route the same late events, as the clean
run: its `--output` and `--dlq-out` files must be byte-identical.
"""
from __future__ import annotations

import random

import pytest
from runtime_harness import (
    START,
    iso,
    jsonl,
    meshctl,
    output_texts,
    outputs,
    run_with_sigkills,
    write_events,
    write_mesh,
)

pytestmark = pytest.mark.slow

MESH = """
apiVersion: meshctl/v1
kind: EventType
metadata: {name: reading.taken}
spec:
  external: true
  schema: {type: object, required: [sensor, value], properties: {sensor: {type: string}, value: {type: integer}}}
---
apiVersion: meshctl/v1
kind: EventType
metadata: {name: reading.window}
---
apiVersion: meshctl/v1
kind: EventType
metadata: {name: reading.burst}
---
apiVersion: meshctl/v1
kind: EventType
metadata: {name: reading.late}
---
apiVersion: meshctl/v1
kind: Stream
metadata: {name: per-minute}
spec:
  from: [reading.taken]
  key: data.sensor
  time: time
  window: {tumbling: 60s}
  lateness: 20s
  aggregate:
    n: {count: {}}
    total: {sum: data.value}
    low: {min: data.value}
    high: {max: data.value}
    mean: {avg: data.value}
    levels: {count_distinct: data.value}
    opening: {first: data.value}
    closing: {last: data.value}
  emit: {type: reading.window}
  late: {dead_letter: late-readings}
---
apiVersion: meshctl/v1
kind: Stream
metadata: {name: bursts}
spec:
  from: [reading.taken]
  key: data.sensor
  time: time
  window: {session: {gap: 20s}}
  lateness: 20s
  aggregate:
    n: {count: {}}
    total: {sum: data.value}
  emit: {type: reading.burst}
  late: {emit: {type: reading.late}}
"""  # noqa: E501 (YAML kept as written)
EVENTS = 3000


def readings(n: int, seed: int) -> list[dict]:
    """Readings of 12 sensors, arriving up to 25 s out of order; 1 % arrive minutes late."""
    rng = random.Random(seed)
    t, out = START, []
    for i in range(n):
        t += rng.expovariate(1.0)
        delay = rng.uniform(0, 25) if rng.random() > 0.01 else rng.uniform(120, 300)
        event = {"id": f"r{i}", "type": "reading.taken", "source": "sensors", "time": iso(t),
                 "data": {"sensor": f"s{rng.randrange(12)}", "value": rng.randrange(100)}}
        out.append((t + delay, event))
    return [event for _, event in sorted(out, key=lambda pair: pair[0])]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_windows_after_random_kills_equal_a_run_without_failure(tmp_path, seed):
    mesh = write_mesh(tmp_path / "mesh", MESH)
    events = write_events(tmp_path / "events.jsonl", readings(EVENTS, seed))
    common = ["run", mesh, "--events", events, "--checkpoint-every=100", "--format=json"]
    meshctl(*common, f"--store=sqlite:{tmp_path / 'clean.db'}", *outputs(tmp_path / "clean", trace=False))
    crashed = run_with_sigkills([*common, f"--store=sqlite:{tmp_path / 'killed.db'}",
                                 *outputs(tmp_path / "killed", trace=False)],
                                tmp_path / "killed.db", kills=3, rng=random.Random(seed), total=EVENTS)

    assert crashed["kills"] == 3
    clean = output_texts(tmp_path / "clean", trace=False)
    assert output_texts(tmp_path / "killed", trace=False) == clean
    windows = [e for e in jsonl(clean["out"]) if e["type"] in ("reading.window", "reading.burst")]
    late = jsonl(clean["dlq"]) + [e for e in jsonl(clean["out"]) if e["type"] == "reading.late"]
    assert (
        sum(w["data"]["n"] for w in windows if w["type"] == "reading.window") + len(jsonl(clean["dlq"]))
        == EVENTS
    )
    assert {w["type"] for w in windows} == {"reading.window", "reading.burst"}
    assert len(late) > 0  # the input does exercise both ways of routing late events
