"""T40: loop analysis never hides a real loop, checked against runs of generated meshes.

Each of 150 small meshes (fixed seed) has three event types and four to six subscriptions.
A subscription filters on `data.v` (none, a `match` list, a `when` comparison ``==`` /
``!=`` / ``in``, an ``or``, a `$or` pattern, or a filter `when` nobody reasons about), emits
a type with `v` constant or templated, and may also run a Python handler that emits a type
it declares with a constant `v`. Every subscription declares `loop: {max_hops: 2}`, so a
loop `validate` finds is a warning (`bounded-loop`) and `meshctl run` accepts the mesh: the
guard then dead-letters (`loop-detected`) exactly the chains that pass one consumer twice.
The run is fed every type with every value of `v`, which covers every state the mesh can
be in. The guarantee checked: a run that loops was flagged by `validate` (pruning is sound).
The corpus must also exercise pruning: meshes where a loop of the plain graph was pruned
and the run indeed did not loop.
"""
from __future__ import annotations

import json
import random

import pytest

from cli import main

pytestmark = pytest.mark.slow

MESHES = 150
TYPES = ("e0", "e1", "e2")
VALUES = ("a", "b", "c")
FILTERS = (
    lambda v: "",
    lambda v: f"      match: {{data: {{v: [{v}]}}}}\n",
    lambda v: f"      when: \"data.v == '{v}'\"\n",
    lambda v: f"      when: \"data.v != '{v}'\"\n",
    lambda v: f"      when: \"data.v in ['{v}', 'z']\"\n",
    lambda v: f"      when: \"data.v == '{v}' or data.v == 'z'\"\n",
    lambda v: f"      match: {{data: {{$or: [{{v: [{v}]}}, {{w: [1]}}]}}}}\n",
    lambda v: f"      when: \"data.v|upper == '{v.upper()}'\"\n",
)
HANDLERS = "".join(f"def emit_{t}_{v}(event, context):\n    context.emit({t!r}, {{'v': {v!r}}})\n\n"
                   for t in TYPES for v in VALUES)


def _mesh(rng: random.Random) -> str:
    docs = [f"apiVersion: meshctl/v1\nkind: EventType\nmetadata: {{name: {t}}}\nspec: {{external: true}}\n"
            for t in TYPES]
    for s in range(rng.randint(4, 6)):
        on, to = rng.choice(TYPES), rng.choice(TYPES)
        value = rng.choice(('"{{ data.v }}"', *VALUES))
        actions = [f"{{emit: {{type: {to}, data: {{v: {value}}}}}}}"]
        emits = {to}
        if rng.random() < 0.3:
            other = rng.choice(TYPES)
            actions.insert(rng.randrange(2), f"{{call: {{python: 'h:emit_{other}_{rng.choice(VALUES)}'}}}}")
            emits.add(other)
        docs.append(
            f"apiVersion: meshctl/v1\nkind: Service\nmetadata: {{name: s{s}}}\nspec:\n  subscriptions:\n"
            f"    - on: {on}\n{rng.choice(FILTERS)(rng.choice(VALUES))}"
            f"      emits: [{', '.join(sorted(emits))}]\n      loop: {{max_hops: 2}}\n"
            f"      do: [{', '.join(actions)}]\n"
        )
    return "---\n".join(docs)


def _codes(runner, folder) -> list[str]:
    result = runner.invoke(main, ["validate", "--format", "json", str(folder)], catch_exceptions=False)
    return [d["code"] for m in json.loads(result.output)["meshes"] for d in m["diagnostics"]]


def test_no_run_loops_where_validate_saw_no_loop(runner, tmp_path):
    rng = random.Random(40)
    events = [{"type": t, "id": f"{t}-{v}", "source": "t40", "data": {"v": v}} for t in TYPES for v in VALUES]
    tally = {"flagged and looped": 0, "flagged, no loop in the run": 0, "pruned and no loop": 0, "no loop": 0}
    for n in range(MESHES):
        folder = tmp_path / f"m{n}"
        folder.mkdir()
        (folder / "mesh.yaml").write_text(_mesh(rng))
        (folder / "h.py").write_text(HANDLERS)
        (folder / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
        codes = _codes(runner, folder)
        assert "event-cycle" not in codes and not {"error"} & set(codes), codes
        run = runner.invoke(main, ["run", str(folder), "--events", str(folder / "events.jsonl"), "--format",
                                   "json"],
                            catch_exceptions=False)
        assert run.exit_code == 0, run.output
        looped = "loop-detected" in json.loads(run.output)["dead_lettered_by_reason"]
        flagged = "bounded-loop" in codes
        assert flagged or not looped, (
            f"mesh {n} loops at run time, validate saw no loop:\n{_mesh_text(folder)}"
        )
        if flagged:
            tally["flagged and looped" if looped else "flagged, no loop in the run"] += 1
        else:
            tally["pruned and no loop" if "pruned-edge" in codes else "no loop"] += 1
    print(json.dumps({"test": "T40", "meshes": MESHES, **tally}))
    assert tally["flagged and looped"] >= 10 and tally["pruned and no loop"] >= 10, tally


def _mesh_text(folder) -> str:
    return (folder / "mesh.yaml").read_text()


@pytest.fixture
def runner():
    from click.testing import CliRunner
    return CliRunner()
