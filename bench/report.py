"""Writes docs/performance.md from bench/results/latest.json (and previous.json, the run before),
and bench/results/quick.md from quick.json (a `--quick` run, never in the doc)."""
from __future__ import annotations

import json
from pathlib import Path

from .common import REPO, Row, table

DOC = REPO / "docs" / "performance.md"
RESULTS = REPO / "bench" / "results"

INTRO = """\
# Performance: meshctl against its peers

Every figure below was measured by `python -m bench`, in one run, side by side with the
tool a user would otherwise pick (or with the plain-Python limit of the same work), and is
reported as a ratio: the machine is shared and noisy, so absolute times alone mean little.
Nothing in the test suite asserts a time. The file is written by the benchmark itself
(`python -m bench --report` rewrites it from `bench/results/*.json`).

```sh
pip install -e '.[bench]'        # meshctl plus the peers: moto[events,stepfunctions]==5.2.5, bytewax==0.21.1
python -m bench                  # all twelve workloads, ~11-14 minutes on 2 cores; writes this file
python -m bench --quick          # smaller inputs, ~1-2 minutes; writes bench/results/quick.md, not this file
python -m bench stream e2e       # some workloads only (prints; does not write this file)
python -m bench.routing          # the routing workload alone, with its own columns
```

**Reading the table.** *meshctl* is our figure; *peer / limit* the other side, measured in
the same run; *ratio* is meshctl's advantage in the sense of the target: a speed-up (×) over
a peer, a percentage of a limit (`of limit`), or a growth factor when the input grows
(`growth`). *met* compares the ratio with the target of issue 6 (start-up: of issue 16; ingress: of issue 18);
*check* is the correctness column: both sides must give the same matches, windows or
summary, or it says so.
"""

METHOD = """\
## What each workload does

1. **routing** (`bench/routing.py`): the shared workload `../shared/bench/workload_routes.py`
   unchanged; each event matched against all N rules by our `PatternIndex`, by a linear scan
   of our own compiled patterns, by moto's EventBridge matcher as moto uses it
   (`EventPattern.matches_event`, which JSON-round-trips and flattens the event once per
   rule) and by moto's core (the event flattened once, then `_does_event_match` per rule).
   Matches and their digest must equal `../shared/bench/README.md`'s for every matcher.
   "time/event growth" is (time per event at N = 10,000) / (time per event at N = 10); we
   read the target "≪ N" as at most a tenth of N's growth, ≤ 100×. These rows time the index
   alone; the rows "meshctl run, N routes" time the same routing inside a real run:
   `engine.commands.runs.run_mesh` (the engine side of `meshctl run`, in memory) on a generated mesh
   of N routes on one event type (`bench/many_routes.py`), each matching one value of
   `data.sensor`, transforming the event and delivering it to a service's subscription, with
   5,000 inputs whose sensors go through the N values (each input is taken by exactly one
   route, so the work per input is the same at every N). The time per input runs from the
   first input read to the last one fed (the `progress` hook of `run_mesh`): the runtime's
   start-up, which compiles every route's templates, is reported beside it. Target: time per
   input at N = 10,000 at most 4× that at N = 10 (issue 13).
2. **orchestration** (`bench/orchestration.py`): a 50-step chain, a parallel fan-out of 8
   branches × 5 steps with a join, and a `foreach` of 100 items, generated as meshctl
   `Orchestration` YAML and as the equivalent Pass / Parallel / Map state machines; meshctl
   runs 200 triggers per shape through the `Runtime` in memory on the virtual clock; moto
   5.2.5 runs 3 executions per machine with `execute_state_machine: True`, timed by the
   execution's own `stopDate - startDate`. Per executed step = per run / steps per run.
3. **stream** (`bench/stream.py`): a keyed tumbling-window (60 s) count, 1,000 keys,
   1,000,000 events at 1,000 events per second of event time, by the `Runtime` in memory, by
   the `Runtime` on SQLite (a checkpoint every 1,000 inputs, no trace journal, as
   `meshctl run --store sqlite:PATH` without `--trace`), by `WindowOperator` alone, by bytewax 0.21.1
   (`TestingSource` in batches of 1,000, `count_window`, `EventClock`, `TumblingWindower`, one
   worker) and by a dict count; every window set must be identical (same digest).
4. **state** (`bench/state.py`): a running count and sum per key (keyed state, `context.state`),
   1,000 keys, 300,000 events, each giving its key's running figures: a `Service` with
   `state: {key: "{{ data.k }}"}` whose Python handler updates `context.state` and emits them,
   by the `Runtime` in memory and on SQLite (a checkpoint every 1,000 inputs, no trace journal),
   by bytewax 0.21.1 (`key_on` → `stateful_map`, one worker, no recovery) and by a dict loop;
   the sorted outputs and the final state per key (read back from the store for meshctl) must be
   identical (same digest). No target: the peer keeps no durable state and does no per-event
   delivery, so the ratio is the price of both, not a like-for-like race.
5. **e2e** (`bench/e2e.py`): `engine.commands.runs.run_mesh` (what `meshctl run` calls) on
   `workflows/arena` with 100,000 generated input events in a JSON Lines file (a third
   `match.requested`, two thirds `match.finished`: route + transform + subscriptions + Python
   handler + stream + emits, every event schema-checked), in memory and with
   `--store sqlite:PATH`, against `json.dumps(json.loads(line))` over the same file. The
   CLI's wall time (start-up and validation included) is measured once.
6. **validate** (`bench/validate.py`): `engine.analysis.validate.check_mesh` on generated meshes of
   1,000 and 10,000 routes + subscriptions (N/10 event types with schemas, patterns,
   templates, 2 % of elements closing cycles, half of them declared bounded).
7. **memory** (`bench/memory.py`): peak RSS (`ru_maxrss` of the child) of
   `python -m cli run MESH --events FILE`, read line by line from the file: `workflows/arena`
   on 100,000 and 1,000,000 generated events, and `workflows/orders` (an orchestration run
   per input) on 10,000, 100,000 and 1,000,000 generated orders (`bench/orders.py`). Each size
   must stay within 1.5× the size ten times smaller.
8. **pauses** (`bench/pauses.py`): `python -m cli run workflows/orders --output O --dlq-out D
   --format json` on 20,000 generated orders (`bench/orders.py`), once undisturbed and once
   while the benchmark stops the child with SIGSTOP for 0.8 s at 15 seeded random moments of
   its running time (SIGCONT after each): what a descheduling or a long garbage collection
   does to a process. The check is whether output, dead letters and summary are byte for byte
   the same; in memory and with `--store sqlite:PATH`.
9. **startup** (`bench/startup.py`): the wall time of `meshctl --help` in a child process
   (the installed script), best of 7, against `python -c pass` (the interpreter's own
   start-up); and `import engine.storage` in a child, which must load none of networkx, jinja2
   and jsonschema (stage 10 made the command line and the low layers import lazily).
10. **scale** (`bench/scale.py`, `bench/scalecost.py`): what one input event of
   `workflows/arena` (10,000 generated, no faults) costs a deployment on Redis: the worker's
   CPU (one worker in the benchmark's process, `time.process_time`), Redis's (`INFO cpu`,
   main thread), Redis commands (`INFO commandstats`, a script's inner commands included) and
   the requests the worker sent (a pipeline or a script is one). Then 1 and 2 `meshctl worker`
   processes drain the same input (`bench/scaleout.py`, results checked against a
   single-process run) and are compared with the model of [scale-out.md](scale-out.md), which
   is given the measured start-up of a worker on an empty deployment; last, the model's rates
   for 8, 32 and 128 workers on 1, 3 and 6 primaries at a 0.25 ms round trip.
11. **ingress** (`bench/ingress.py`): `meshctl serve` taking single events and batches over
   HTTP, uvicorn against waitress on the same app, the cost of a refusal, and a deployment
   offered twice its capacity (targets of issue 18); see [the ingress
   section](#ingress-meshctl-serve-under-load).
12. **explore** (`bench/explore.py`): the search of `meshctl explore` (issue 20) spending the
   whole depth-3 space of `workflows/checkout` (its two orders), as explorations per second;
   the peer column is the same mesh and input run plainly by `meshctl run`'s runtime, so the
   ratio is what a steered, hashed run costs against a plain one. Then the same search
   without state hashing (runs tried and time, both must spend the space with no violation),
   and the time to find and minimise the planted bug of `workflows/buggy-checkout`. No peer
   tool explores an event mesh; these rows have no target and are there to be kept.
"""

PEERS = """\
## Peers

| peer | version here | how it was installed |
|---|---|---|
| moto (EventBridge matcher, Step Functions interpreter) | {moto} | `pip install 'moto[events,stepfunctions]==5.2.5'` (pure-Python wheel) |
| boto3 (moto's client) | {boto3} | dependency of moto |
| bytewax | {bytewax} | `pip install bytewax==0.21.1`: a `cp311-manylinux_2_31_x86_64` wheel exists on PyPI and installs on this Debian 12 (glibc 2.36) machine |

Both peers install with `pip install -e '.[bench]'`; none had to be left out.
"""  # noqa: E501 (markdown table rows)

HOTSPOTS = """\
## Hot spots: what was done, and what would reach the missed targets

Profiles taken with cProfile on this machine (shares of the profiled time; cProfile inflates
small Python calls, so read them as proportions).

**Done since the first run** (each in its own commit; the first run, on the same machine,
measured validate 9.3 s at 10,000, e2e 6.6k ev/s in memory, memory growth 4.4×): event data checked by a schema compiled to plain Python (`engine/language/compiled_schema.py`, 30×
faster than jsonschema; jsonschema only explains failures); `{{ data.x.y }}` templates read
the event directly; `log` templates not rendered when nothing records the trace; the memory
store's dedup records expire after an hour of clock time (memory growth 4.4× → 1.0×); a
durable run journals its trace only when started with `--trace`; `validate` checks each
document against its kind's schema only, parses each template once, runs the feasibility
analysis only inside strongly connected parts with memoised leaf checks, and composes YAML
with libyaml when the nesting is provably shallow (9.3 s → 6.9 s at 10,000).

**The delivery path (issue #6, stage 5).** Interleaved runs of the code before and after, on
the same loaded machine (another process held one core): stream in memory 49k → 138k ev/s at
300,000 events and 51-57k → 87-96k at 1,000,000; stream on SQLite 19k → 29k ev/s (the bench
now runs it as `meshctl run --store sqlite:PATH` without `--trace`, which journals no trace
records; with the trace journal it measured 20k before); e2e in memory 13k → 23k ev/s (9.7 %
→ 17 % of the decode limit), e2e on SQLite 6.0k → 7.7k ev/s. In one `python -m bench stream
e2e` run after: stream 116k ev/s = 2.2× bytewax, SQLite 0.54×, e2e 14.8 % of the limit, e2e on
SQLite 43 % of memory (54-64 % in back-to-back runs of the two alone). bytewax ran there at
52k ev/s, half its 116k of the run of 26 Nov while the dict count kept its speed: it suffers
more from a busy machine, so these ratios flatter us. Nothing of a run changed: the trace of every example, with faults, retries and checkpoints, is byte for
byte the same. What was done: an attempt that takes no time commits from the `Attempt` itself
instead of a copy of it as data (one that sleeps still waits in the schedule as data; tests
compare both forms); trace records are not even built when nothing records them; a type whose
consumers have no pattern skips routing work, one with at most two patterns tests them one by
one (the index's fixed cost was higher), and a match skips the `Mapping` ABC check for dicts
and JSON scalars; loop-guard, rate-limit, breaker and ordering checks only for consumers that
have them; the last input timestamp (runtime and window operator) and recent RFC 3339 texts
are cached; `{{ path | default(LITERAL) }}` reads a present scalar directly; the SQLite store
answers dedup lookups from a Bloom filter of the pairs it read and wrote (a query only for a
likely hit: a SELECT per delivery before) and encodes journal rows with one encoder.

**Orchestration.** On 27 Nov the machine ran our side about twice as slow as the day before
(the code of the day before too: 65-109 µs per chain step in interleaved runs) while moto
ran faster, and the chain fell to 18-23× moto. A profile showed why it had no margin: each
advance of a run re-checked the needs of every pending step through a generic helper, so a
chain of 50 steps spent half its time there (quadratic in the steps). The advance now walks a
plan built once (need names per step) and makes a second pass only when a step finished at
once (skipped, empty `foreach`, failed); a step with neither `when` nor `foreach` starts
without building a template context. Interleaved on the same machine: chain 65-109 → 31-47
µs/step, fan-out 47-80 → 28-41 µs/step; the order of every record is unchanged (a test pins
the case where a step finished at once frees one declared before it).

**Second session of 27 Nov** (an Intel Xeon machine this time, on which plain Python ran
at about half the speed of the AMD machine of the runs before while bytewax kept its speed:
at the session's start the stream was 1.27× bytewax, SQLite 0.34×, e2e 13.7 % of the limit,
the chain 42-45× moto). What was done, each in its own commit with a test that compares it
with the general path it shortcuts (since stage 10 every shortcut below is off under
`Runtime(fast_paths=False)`, and tests/runtime/test_general_path.py compares both ways):
- *An input's first attempts run at once.* When nothing is due before an input and no
  consumer of its type holds offers (ordering, loop guards), its attempts run during its
  publication, in the order the schedule would have run them (what they schedule still goes
  through the schedule). For that to be the schedule's order, an input without a time, or
  behind the clock, now arrives after the work due at the clock's time, as an input at its
  own time always did (docs/run.md, "The virtual clock").
- *Inputs taken only by streams* (no schema, pattern, fault, rate limit or breaker on the
  type's consumers) run the same steps, counts and dedup records fused into one frame; a
  stream attempt that closes no window commits its dedup record without an `Attempt`.
- *Counters*: the trace's counters are a `defaultdict`: `counts[k] += 1` on a `Counter` cost
  228 ns against 55 ns, four times per input.
- *Windows*: a tumbling stream with a single count adds to its window inline (+29 % for the
  operator, +16 % end to end, measured when stage 10 removed two other counting paths); other
  streams walk the aggregate plan; window bounds reuse the runtime's cached time texts;
  snapshots are compact (one flat slot list per window) and reuse the entry of every window
  no event changed since the last checkpoint (2.94 ms → 43 µs for 1,000 keys).
- *Stores*: the memory store expires dedup records by groups of one clock time (778 → 616 ns
  per lookup and record); the SQLite store writes one journal row per journal and commit (a
  JSON array), encodes it at commit with one reused `json.JSONEncoder` before taking the
  write lock, and sizes its dedup filter for 2.8 million pairs (a million-event run rebuilt
  it, reading every pair back).
- *Per event, outside the interpreter*: one compiled check for an object schema's required
  keys and typed properties (1.30 → 1.12 µs and 1.28 → 0.90 µs per arena event); input lines
  that are already complete CloudEvents are used as decoded; `iso()` of whole seconds by
  arithmetic (4.1 → 1.9 µs); template mappings of plain lookups read inline; pattern leaves
  test numbers directly (1.29 → 0.89 µs for the arena's ranked-scores pattern).
- *Orchestration*: a step whose templates do not mention `steps` gets a context without
  every step's state (built per attempt, it made a chain quadratic again), and after a step
  ends an advance looks only at the steps that need it (random step graphs give the trace
  of full passes). Chain 39-41 → 18-26 µs/step.

Measured before/after in the same session (best of several interleaved runs; the machine's
speed varied by ±30 % from one minute to the next): stream in memory 116k → 300k ev/s at
200,000 events (1.27× → 4.4× bytewax in `python -m bench stream`), stream on SQLite 34-39k
→ 76-81k ev/s at 200,000 events (0.34× → 1.09× bytewax), e2e in memory 13.7 % → 16.4 % of
the decode limit at 30,000 events, chain 42-45× → 61-91× moto.

**Still missed, and why.**
- *e2e on SQLite* (45.6 % of memory on 6 Dec; target 50 %; 60 % on 27 Nov): the SQLite path did
  not get slower: at 15.6k ev/s it is where it was (10.6k ev/s on a machine whose JSON decode
  ran 1.44× slower), while the memory path got about 35 % faster in stage 7 (routing through
  the index, templates compiled once, the heap frozen during the input: 17.4 % → 23.3 % of the
  decode limit). Stage 7 also added to each commit what the promises need: dedup records keyed
  by source and id with their time (retention), journal batches compressed (disk per order
  7,000 → 2,240 bytes). A commit is ~21 % of the SQLite profile (encoding journal records 6 %,
  SQLite's own inserts and fsync 9 %, zlib 2 %). What would win it back: journal the input
  line as read instead of encoding the decoded event again, and keep dedup records as short
  digests instead of the full key.
- *e2e in memory* (15-18 % of the decode limit; target 30 %): no single cost is left to
  remove, and the work per input is large: each input of the arena is decoded, schema-checked,
  routed (patterns), delivered about twice (a subscription's actions, a Python handler, a
  route's transform, a stream), and causes about one emitted event, itself schema-checked and
  delivered; a window closing emits ~120 window events at once. Shares of the profile (30,000
  inputs): the delivery machinery (attempt, commit, dedup record, schedule) ~25 %, reading and
  decoding the input ~11 %, schema checks of every event ~10 %, `derive` (sha1 id, times)
  ~7 %, pattern matching ~8 %, windows and their events ~8 %, actions and templates ~8 %.
  Even free, everything but `json.loads` outside the interpreter would leave ~50 µs per input
  (~20k ev/s; 30 % needs ~33k). What would reach it: a compiled core (e.g. Rust via PyO3, or
  mypyc) for routing, schema checks and the delivery loop.
- *Thin margins.* The stream on SQLite meets its target narrowly (1.0-1.2× bytewax over
  the session's runs): per input it still encodes the event into the archive journal
  (~2.3 µs), adds its dedup pair to the filter and the `done` table (~3 µs) and shares a
  commit's fsync; `meshctl run` could journal the input line as read instead of encoding it
  again, which the bench (events given as dicts) would not show.
- *Stream in memory* (target 3×) reads 2.89× in the 6 Dec stage 8 run. Stage 8 did not touch
  that path (the window fold only gained an overflow guard, free until it fires): in four
  interleaved `python -m bench stream` runs right after it, the code before stage 8 gave
  2.81× and 3.28×, the code after 3.02× and 2.69× (bytewax itself moved 98k-122k ev/s). The
  margin is thin; the window operator alone stays at ~11× bytewax.

**Validate** (target < 3 s at 10,000; met, with little margin on a busy machine). In
interleaved runs on the loaded machine the code before took 6.8–8.7 s at 10,000 and
0.55–0.79 s at 1,000, the code after 1.9–2.5 s and 0.19–0.31 s; `python -m bench validate`
gave 1.9–2.9 s at 10,000 and growth 6.7–11.9× (noise moves the growth, not the code: each
phase grows ~10×). Done, each in its own commit: plain YAML documents (no alias of a
collection, no merge key, unique string keys, safe tags, within the limits) load in one walk
that builds the data, and their `NodeMap` finds a location only when a diagnostic or the
model asks for one (no `Location` per node); any other document takes the careful path as
before, so diagnostics are unchanged (tests compare both paths); the resolver skips the path
resolvers the loader never has, and the nesting bound is counted with `str`/`re` methods;
the cyclic garbage collector pauses during a check (a third of the time: everything it
allocates stays alive to the end) and hands the survivors to the oldest generation; the
flow-only graph is built once, directly, not copied from subgraph views; a data schema found
sound against the metaschema is not checked again (the bench's 1,000 event types share one
schema: distinct schemas still cost ~1 ms each in jsonschema); templates that are only text
and `{{ name.attr }}` are read by a regular expression instead of Jinja's parser. Left, as
shares of the time at 10,000: YAML loading ~35 % (libyaml's C parser and composer about half
of it, the resolver it calls for every scalar and the Python walk most of the rest), the
model build ~20 % (a location lookup for every reference, template string and pattern key),
the cycle analysis ~19 % (networkx graph construction, strongly connected components, the
feasibility leaf checks), field checks ~7 %, schema checks ~6 %, the flow graph ~4 %. No
single cost is left to remove; parsing files in two processes was not tried (the node trees
the locations come from would have to be pickled, and the second core is shared here).


**Partition watermarks and stage 13 (issues #18, #19).** Stamping inputs and tracking pending
work only happen in meshes with a stream fed by their own events; other meshes pay two
attribute checks per input. Measured back to back with `python -m bench stream e2e --quick`
on the code before (591aeec) and after the watermark commits: stream in memory 2.62-2.65×
against 2.63-2.80×, e2e in memory 15.0 % against 14.8 % of the limit. The window operator
alone, best of 7 by CPU time, ran at 1.55 M ev/s before and 1.46-1.53 M after. The full run's
e2e figure (15.0 %, against 18.0 % the run before) is the machine: the code before these
changes gave the same 15.0 % on it.

**Noise.** The runs were taken on a shared 2-core machine; the same plain dict count ran at
0.7 M ev/s in one run and 2.0 M ev/s in another. Ratios within one run are comparable;
absolute rates across runs much less so. The code measured is the work tree at the time of
each run.
"""  # noqa: E501 (markdown written as is to docs/performance.md)


def _rows(data: dict) -> list[Row]:
    return [Row(**row) for row in data["rows"]]


def _header(data: dict, label: str) -> str:
    m = data["machine"]
    mode = " (**quick**: smaller inputs)" if data.get("quick") else ""
    return (f"## Figures: {label}{mode}\n\n`{data['command']}` — {m['date']} — {m['nproc']} × {m['cpu']}, "
            f"{m['memory']} RAM, {m['implementation']} {m['python']} on {m['platform']} — "
            f"{data['seconds']:,.0f} s in all — code: {m.get('commit', 'commit not recorded')}\n")


def _targets(runs: list[tuple[str, dict]]) -> str:
    keyed: dict[tuple[str, str], dict[str, Row]] = {}
    order: list[tuple[str, str]] = []
    for label, data in runs:
        for row in _rows(data):
            if not row.target:
                continue
            key = (row.workload, row.case)
            if key not in keyed:
                keyed[key] = {}
                order.append(key)
            keyed[key][label] = row
    head = "| workload | case | target | " + " | ".join(label for label, _ in runs) + " |"
    lines = [head, "|" + "---|" * (3 + len(runs))]
    for key in order:
        cells = []
        for label, _ in runs:
            row = keyed[key].get(label)
            if row is None:
                cells.append("-")
                continue
            got = table([row]).splitlines()[-1].split(" | ")[4].strip()
            got = row.ours if got == "-" else got
            cells.append(f"{'met' if row.met else 'not met' if row.met is False else 'n/a'} ({got})")
        target = next(iter(keyed[key].values())).target
        lines.append(f"| {key[0]} | {key[1]} | {target} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_report() -> Path:
    latest = json.loads((RESULTS / "latest.json").read_text())
    if latest.get("quick"):  # saved by a meshctl from before quick runs were kept apart
        raise SystemExit("bench/results/latest.json holds a --quick run: run `python -m bench` in full first")
    runs = [("this run", latest)]
    previous_path = RESULTS / "previous.json"
    if previous_path.exists():
        previous = json.loads(previous_path.read_text())
        if previous.get("quick") == latest.get("quick"):
            runs.append(("the run before", previous))
    peers = {name: version or "not installed" for name, version in latest["machine"]["peers"].items()}
    parts = [INTRO, "## Targets\n",
             "Which targets of issues 6, 16 and 18 are met, in each of the runs below.\n", _targets(runs), ""]
    for label, data in runs:
        parts += [_header(data, label), table(_rows(data), markdown=True), ""]
    parts += [PEERS.format(**{k: peers.get(k, "not installed") for k in ("moto", "boto3", "bytewax")}),
              METHOD, HOTSPOTS]
    parts += [_scaleout(), _ingress(), _redis_memory()]
    DOC.write_text("\n".join(parts).rstrip() + "\n", encoding="utf-8")
    return DOC


def write_quick_report() -> Path:
    """bench/results/quick.md: the figures of the last `--quick` run, with the targets they would meet."""
    quick = json.loads((RESULTS / "quick.json").read_text())
    out = RESULTS / "quick.md"
    parts = ["# Quick benchmark (`python -m bench --quick`)\n",
             "Smaller inputs than `python -m bench`: a smoke test of the workloads, not comparable with the "
             "targets. docs/performance.md holds the figures of full runs only.\n",
             _targets([("quick run", quick)]), "", _header(quick, "quick run"),
             table(_rows(quick), markdown=True)]
    out.write_text("\n".join(parts).rstrip() + "\n", encoding="utf-8")
    return out


SCALEOUT = """\
## Scale-out: workers on Redis

`python -m bench.scaleout` (stage 4, [scale-out.md](scale-out.md)) publishes generated
game-example input into a Redis store and drains it with 1, 2 and 3 `meshctl worker`
processes (`--exit-when-idle`), against a single-process `meshctl run --store sqlite:`
on the same input: *identical* says the emitted events (apart from their processing time),
dead letters and window results are the same. *events/s* is input events per second from
the workers' start to the last one's exit, on the same machine as Redis and the workers
(2 cores shared by all of them). With faults (every `match.requested` fails once, every
`leaderboard.window` always) the drain time is mostly real retry backoff, not work;
`--no-faults` measures processing. `--kill` SIGKILLs one worker (the input lane's holder)
a third of the way in; the others take over its entries after 2 s. On this 2-core machine
the workers share the CPU with Redis (and with whatever else runs): a second worker pays,
a third competes for the same two cores, so its figure says where adding workers stops
paying here, not what a third host would add.
"""


def _scaleout() -> str:
    saved = RESULTS / "scaleout.json"
    if not saved.exists():
        return SCALEOUT + "\nNo saved run yet: `python -m bench.scaleout --write`.\n"
    parts = [SCALEOUT]
    for run in json.loads(saved.read_text())["runs"]:
        info = run["machine"]
        parts.append(f"\n`{run['command']}` ({run['date']}, {info['nproc']} × {info['cpu']}):\n")
        parts.append("| workers | events | faults | killed | seconds | events/s | identical |")
        parts.append("|---|---|---|---|---|---|---|")
        for line in run["lines"]:
            parts.append(f"| {line['workers']} | {line['events']:,} | {'yes' if line['faults'] else 'no'} | "
                         f"{line['killed'] or '-'} | {line['seconds']:.2f} | {line['events_per_s']:,.0f} | "
                         f"{'yes' if line['identical'] else 'NO: ' + ', '.join(line['different'])} |")
    return "\n".join(parts) + "\n"


INGRESS = """\
## Ingress: `meshctl serve` under load

`python -m bench.ingress` (stage 12, [ingress.md](ingress.md#under-overload); its rows are
also in `python -m bench ingress`) drives `meshctl serve` on the game example with HTTP
requests from one process (asyncio over raw sockets; 32 keep-alive connections, 64 and 256
for the deployment phases), Redis and the servers on the same 2 cores.

- *single-event* and *batch ingest*: events accepted per second with no workers and no
  backlog limit; the same app served by uvicorn (as `meshctl serve` runs it) and by waitress
  (`Ingress.wsgi`, 4 and 8 threads, the better one shown): the measurement that chose the
  server.
- *refusal cost*: the serve process's CPU per request while the backlog is full (every
  request refused, the same bytes sent) over its CPU per accepted request.
- *2× overload*: `serve --max-backlog 2000` and 2 workers, the input queue filled to the
  limit first. The capacity is the workers' processing rate while clients wait 0.1 s after a
  503; then twice that is offered open loop (a refused request is dropped) on the same
  deployment: events accepted per second, against the capacity. An answer's latency counts
  from when its request was due; *cores* is the CPU the serve process and the load generator
  took (the rest went to the workers, Redis and the machine's other work).

**Before and after.** Before stage 12 each event was parsed and validated before the backlog
was checked: at 1,000 requests/s offered, 97.8 % got 503 and 22 events/s were accepted; at
2,000/s the server answered 1,108/s with a 5.4 s median latency. Run side by side with this
workload on the same machine (two interleaved rounds of the code before, under waitress, and
of this stage's): CPU per accepted single event 0.54-0.63 → 0.27-0.31 ms, per refusal 0.46-0.47 →
0.085-0.095 ms, refusals answered 1,341-1,873 → 7,745-8,412 per second; offered twice the
capacity, the median answer 1.0-3.2 s → 0.1-0.4 s. The accepted share of the capacity under
2× overload moved between 65 % and 89 % from run to run on this busy machine (the code before:
60 % and 89 %): what the workers lose there is CPU, which the ingress, the load generator and
the other processes of the machine share with them.

**The single-event refusal misses its target**: nearly all of its cost is the HTTP server's
own work per request (a do-nothing ASGI application answering 503 took 0.067 ms per request
under uvicorn here; the ingress's refusal path itself takes ~9 µs), so a refusal cannot cost a
tenth of an acceptance that costs 0.24-0.31 ms. Refused batches meet it. granian (a Rust HTTP
server) serving `Ingress.wsgi` measured 0.065 ms per refusal against uvicorn's 0.124 ms in one
side-by-side run (and 3,363 against 2,440 single events accepted per second); it was not
adopted here because it spawns its own worker processes that import the application by name
and binds the port itself (port 0, the start-up line, the token out of `ps` would all need
rework). Writing the events of concurrent requests in one transaction (a group commit: the
requests that arrive while a write is on its way go together in the next) was tried and not
kept: with 4 threads it saved nothing measurable (CPU per accepted single event 0.24-0.28 ms
without it, 0.27-0.41 ms with it, interleaved).
"""


def _ingress() -> str:
    saved = RESULTS / "ingress.json"
    if not saved.exists():
        return INGRESS + "\nNo saved run yet: `python -m bench.ingress --write`.\n"
    from .ingress import table_rows

    run = json.loads(saved.read_text())
    info = run["machine"]
    return (INGRESS + f"\n`{run['command']}` ({run['date']}, {info['nproc']} × {info['cpu']}):\n\n"
            + table(table_rows(run["result"]), markdown=True) + "\n")


REDIS_MEMORY = """\
## Redis memory: bytes per event

`python -m bench.redis_memory` publishes generated orders (the orders example: a three-step
saga and about five emitted events per order) into a Redis store, drains them with one
`meshctl worker --exit-when-idle`, and measures what the store holds per class of key with
the function `meshctl status` uses (keys counted by SCAN, bytes by `MEMORY USAGE` of a
sample: an estimate, without the server's own tables); on a Redis of its own (`--private`)
also the growth of the server's `used_memory`, what the events really cost. *in flight*: the
orders queued, before the worker starts; *at rest*: right after the drain; *after
retention*: once the mesh's `retention` (runs, archive, dedup) has passed (a negative growth:
the server holds less than before the run). Before retention was applied on Redis (stage 12),
10,000 orders grew the server by 4,980 bytes per order at rest, for ever (what deleting each
class freed: emitted archive 1,692, runs 1,373, dedup records 1,148, input archive 620, the
state index 142). See [scale-out.md](scale-out.md#memory-and-retention).
"""


def _redis_memory() -> str:
    saved = RESULTS / "redis_memory.json"
    if not saved.exists():
        return REDIS_MEMORY + "\nNo saved run yet: `python -m bench.redis_memory --write`.\n"
    parts = [REDIS_MEMORY.rstrip("\n")]
    for run in json.loads(saved.read_text())["runs"]:
        info, result = run["machine"], run["result"]
        phases = [p for p in ("in_flight", "at_rest", "after_retention") if p in result]
        parts.append(f"\n`{run['command']}` ({run['date']}, {info['nproc']} × {info['cpu']}), "
                     f"retention {result['retention']}, drained in {result['drain_seconds']:.0f} s:\n")
        parts.append("| class of key | " + " | ".join(p.replace("_", " ") for p in phases) + " |")
        parts.append("|---|" + "---:|" * len(phases))
        names = dict.fromkeys(n for p in phases for n in result[p]["classes"])
        for name in [*names, None]:
            cells = []
            for phase in phases:
                held = result[phase] if name is None else result[phase]["classes"].get(name)
                cells.append("-" if held is None else
                             f"{_per_event(held['bytes_per_event'])} B/event ({_keys(held['keys'])})")
            parts.append(f"| {'**all**' if name is None else name} | " + " | ".join(cells) + " |")
        if all("server_bytes_per_event" in result[p] for p in phases):
            parts.append("| **the server's `used_memory` growth** | " + " | ".join(
                f"{_per_event(result[p]['server_bytes_per_event'])} B/event" for p in phases) + " |")
    return "\n".join(parts) + "\n"


def _per_event(value: float) -> str:
    return f"{value:,.0f}" if value >= 10 else f"{value:.1f}"


def _keys(n: int) -> str:
    return f"{n:,} key{'s' if n != 1 else ''}"
