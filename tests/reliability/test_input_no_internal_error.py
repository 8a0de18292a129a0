"""T45: no mesh, test file or trace makes `validate`, `render` or `test` fail with an internal error.

A corpus of legal-but-extreme and hostile inputs goes through `meshctl validate`, `meshctl
render` in each format (mermaid, dot, svg, html) and `meshctl test`; every command must end
with exit 0 or 1 and no traceback, never 70. Most cases also say what must happen: a legal
extreme (every duration at `36500d`, a stream's at `3652500d`, numbers at ±1.8e308, a
thousand attempts with a thousandfold backoff) validates, renders and passes its test; a
hostile input (`.inf`, `.nan`, `1.0e+999` or a 5,000-digit integer in any numeric field,
durations past those bounds, windows of 0s, invalid UTF-8, 10,000-deep nesting,
10,000-character names) is refused with its located diagnostic. Cases that nest deeply run
in a child process, where a crash of the YAML library would be a failing return code rather
than a dead test run.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field

import pytest
from click.testing import CliRunner

from cli import main

MESH = textwrap.dedent("""\
    apiVersion: meshctl/v1
    kind: EventType
    metadata: {name: a}
    spec:
      external: true
      schema: {type: object, properties: {n: {type: number, minimum: @SCHEMA_MIN@}, k: {type: string}, seq: {type: integer}}}
    ---
    apiVersion: meshctl/v1
    kind: EventType
    metadata: {name: b}
    ---
    apiVersion: meshctl/v1
    kind: EventType
    metadata: {name: c}
    ---
    apiVersion: meshctl/v1
    kind: EventType
    metadata: {name: d}
    ---
    apiVersion: meshctl/v1
    kind: DeliveryPolicy
    metadata: {name: pol}
    spec:
      retry:
        max_attempts: @MAX_ATTEMPTS@
        backoff: exponential
        initial: @INITIAL@
        multiplier: @MULTIPLIER@
        max_delay: @MAX_DELAY@
        @AGE@
      dead_letter: dlq
      @BREAKER@
    ---
    apiVersion: meshctl/v1
    kind: Service
    metadata: {name: @SERVICE@}
    spec:
      subscriptions:
        - on: a
          match: {data: {n: [{numeric: [">=", @PATTERN@]}]}}
          emits: [b]
          delivery: pol
          rate_limit: {rate: @RATE@, per: @PER@, burst: @BURST@}
          loop: {max_hops: @HOPS@}
          ordering: {key: data.k, sequence: data.seq, gap_timeout: @GAP_TIMEOUT@, start: @START@}
          do:
            - sleep: @SLEEP@
            - emit: {type: b, data: {x: 1, constant: @CONSTANT@, n: "{{ data.n }}"}}
    ---
    apiVersion: meshctl/v1
    kind: Orchestration
    metadata: {name: o}
    spec:
      trigger: {on: b}
      steps:
        - id: @STEP@
          foreach: "{{ [1, 2] }}"
          concurrency: @CONCURRENCY@
          timeout: @STEP_TIMEOUT@
          retry: {max_attempts: @STEP_ATTEMPTS@, initial: 1s}
          do: [{set: {v: @SET@}}, {fail: {times: @TIMES@}}]
        - id: two
          do: {call: {http: "http://127.0.0.1:9/x", timeout: @CALL_TIMEOUT@}}
      on_success: {emit: {type: c, data: {v: 1}}}
    ---
    apiVersion: meshctl/v1
    kind: Stream
    metadata: {name: st}
    spec:
      from: [c]
      window: @WINDOW@
      lateness: @LATENESS@
      aggregate: {n: {count: {}}}
      emit: {type: d}
    ---
    apiVersion: meshctl/v1
    kind: Service
    metadata: {name: sink}
    spec:
      subscriptions:
        - on: d
          do: {log: "window"}
    ---
    apiVersion: meshctl/v1
    kind: Mesh
    metadata: {name: m}
    spec:
      retention: {runs: @RETENTION@, archive: @RETENTION@, dedup: 1h}
    """)  # noqa: E501 (YAML kept as written)
DEFAULTS = {
    "AGE": "max_event_age: @MAX_AGE@",
    "BREAKER": "circuit_breaker: {failure_threshold: @THRESHOLD@, reset_after: @RESET@}",
    "SCHEMA_MIN": "-1000", "MAX_ATTEMPTS": "3", "INITIAL": "1s", "MULTIPLIER": "2", "MAX_DELAY": "30s",
    "MAX_AGE": "15m", "THRESHOLD": "5", "RESET": "1m", "SERVICE": "s", "PATTERN": "-1000", "RATE": "10",
    "PER": "1s", "BURST": "5", "HOPS": "3", "GAP_TIMEOUT": "60s", "START": "1", "SLEEP": "1s",
    "CONSTANT": "1", "STEP": "one", "CONCURRENCY": "2", "STEP_TIMEOUT": "10s", "STEP_ATTEMPTS": "2",
    "SET": "1", "TIMES": "0", "CALL_TIMEOUT": "5s", "WINDOW": "{tumbling: 1m}", "LATENESS": "0s",
    "RETENTION": "7d",
}
TEST = textwrap.dedent("""\
    tests:
      - name: @NAME@
        seed: @SEED@
        given:
          - {type: a, time: "2024-01-01T00:00:00Z", data: {n: @DATA@, k: k1, seq: 1}}
        faults: [@FAULTS@]
        expect:
          emitted:
            - {type: b, data: {x: @EXPECTED@}, count: @COUNT@}
          counts: {events_in: 1}
    """)
TEST_DEFAULTS = {"NAME": "one event flows through", "SEED": "0", "DATA": "5", "FAULTS": "", "EXPECTED": "1",
                 "COUNT": "1"}
NUMERIC = ("SCHEMA_MIN", "MAX_ATTEMPTS", "INITIAL", "MULTIPLIER", "MAX_DELAY", "MAX_AGE", "THRESHOLD",
           "RESET", "PATTERN", "RATE", "PER", "BURST", "HOPS", "GAP_TIMEOUT", "START", "SLEEP", "CONSTANT",
           "CONCURRENCY", "STEP_TIMEOUT", "STEP_ATTEMPTS", "SET", "TIMES", "CALL_TIMEOUT", "LATENESS",
           "RETENTION")
# free JSON values take any finite number
BOUNDED = set(NUMERIC) - {"SCHEMA_MIN", "PATTERN", "CONSTANT", "SET"}
NOT_FINITE = (".inf", "-.Inf", ".nan", "1.0e+999")
BIG_INT = "9" * 5000  # beyond Python's 4,300-digit int <-> str limit
WINDOWS = ("{tumbling: @}", "{hopping: {size: @, every: 1s}}", "{hopping: {size: 1m, every: @}}",
           "{session: {gap: @}}")
RENDER = ("mermaid", "dot", "svg", "html")
ANY = "any"  # exit 0 or 1, whichever: only the absence of an internal error is asserted


@dataclass
class Case:
    mesh: dict = field(default_factory=dict)  # placeholders of MESH
    test: dict = field(default_factory=dict)  # placeholders of TEST
    refused: str | None = None  # the diagnostic code expected; None: legal, everything passes; ANY
    where: str = "mesh"  # the file refused: mesh.yaml or t.test.yaml
    files: dict = field(default_factory=dict)  # extra or replacing files: name -> str | bytes
    child: bool = False  # nests deeply: run in a child process


def _fill(text: str, values: dict) -> str:
    for _ in range(2):  # placeholders inside placeholders (AGE, BREAKER)
        for name, value in values.items():
            text = text.replace(f"@{name}@", value)
    return text


def _cases() -> dict[str, Case]:
    cases: dict[str, Case] = {}
    for name in NUMERIC:
        for i, value in enumerate(NOT_FINITE):
            cases[f"{name.lower()}-{value}"] = Case({name: value}, refused="non-finite-number")
        # lower bounds: the event still passes
        huge = "-1.0e+300" if name in ("SCHEMA_MIN", "PATTERN") else "1.0e+300"
        cases[f"{name.lower()}-{huge}"] = Case({name: huge}, refused="bad-value" if name in BOUNDED else None)
    for name in ("SLEEP", "THRESHOLD", "CONSTANT", "RETENTION"):
        cases[f"{name.lower()}-5000-digits"] = Case({name: BIG_INT}, refused="non-finite-number")
    cases["constant-hex-beyond-float"] = Case({"CONSTANT": "0x1" + "0" * 256}, refused="non-finite-number")
    for shape in WINDOWS:
        kind = shape.split(":")[0].strip("{") + ("-every" if "every: @" in shape else "")
        for value in (".inf", ".nan"):
            cases[f"window-{kind}-{value}"] = Case({"WINDOW": shape.replace("@", value)},
                                                   refused="non-finite-number")
        for value in ("0", "1.0e-300", "0.5ms", "3652501d", "1" + "0" * 400 + "d"):
            cases[f"window-{kind}-{value[:12]}"] = Case({"WINDOW": shape.replace("@", value)},
                                                        refused="bad-value")
    for name in ("SLEEP", "STEP_TIMEOUT", "CALL_TIMEOUT", "INITIAL", "MAX_AGE", "RESET", "GAP_TIMEOUT",
                 "RETENTION"):
        cases[f"{name.lower()}-too-long-text"] = Case({name: "99999999999d"}, refused="bad-value")
        cases[f"{name.lower()}-float-overflow-text"] = Case({name: "1" + "0" * 400 + "s"},
                                                            refused="bad-value")
    cases.update({
        "rate-one-per-century-and-more": Case({"RATE": "1.0e-300"}, refused="bad-value"),
        "rate-per-zero": Case({"PER": "0"}, refused="bad-value"),
        "threshold-beyond-int64": Case({"THRESHOLD": "99999999999999999999"}, refused="bad-value"),
        "start-beyond-2^53": Case({"START": "9007199254740992"}, refused="bad-value"),
        "lateness-beyond-event-time": Case({"LATENESS": "315576000001"}, refused="bad-value"),
        "hopping-20000-windows-per-event": Case({"WINDOW": "{hopping: {size: 20000s, every: 1s}}"},
                                                refused="too-many-windows"),
        # legal extremes: validate, render and the test all pass
        "every-duration-100-years": Case({n: "36500d" for n in ("INITIAL", "MAX_DELAY", "MAX_AGE", "RESET",
                                                                "PER",
                                                               "GAP_TIMEOUT", "SLEEP", "STEP_TIMEOUT",
                                                                "CALL_TIMEOUT",
                                                               "LATENESS", "RETENTION")}
                                        | {"WINDOW": "{tumbling: 36500d}"}),
        "stream-durations-10000-years": Case({"WINDOW": "{tumbling: 3652500d}", "LATENESS": "315576000000"}),
        "every-duration-largest-number": Case({n: "3153600000" for n in ("INITIAL", "MAX_DELAY", "SLEEP",
                                                                         "LATENESS")}
                                              | {"WINDOW": "{session: {gap: 3153600000}}"}),
        "shortest-periods": Case({"PER": "1ms", "WINDOW": "{hopping: {size: 10s, every: 1ms}}"}),
        "largest-counts": Case({"MAX_ATTEMPTS": "1000", "MULTIPLIER": "1000", "THRESHOLD": "1000000",
                                "BURST": "1000000", "RATE": "1000000", "CONCURRENCY": "1000000", "TIMES": "0",
                                "HOPS": "255", "START": "-9007199254740991"}),
        "numbers-at-float-range": Case({"CONSTANT": "1.7976931348623157e+308",
                                        "SET": "-1.7976931348623157e+308",
                                        "SCHEMA_MIN": "-1.7976931348623157e+308", "PATTERN": "-1.0e+308"}),
        "integers-at-float-range": Case({"CONSTANT": str(int(sys.float_info.max)), "SET": "0x" + "f" * 255,
                                         "SCHEMA_MIN": "-" + "9" * 300}),
        "smallest-numbers": Case({"CONSTANT": "5.0e-324", "SET": "-5.0e-324", "SLEEP": "1.0e-300"}),
        "names-at-253-characters": Case({"SERVICE": "s" * 253}),
        "step-id-of-10000-characters": Case({"STEP": "s" * 10_000}),
        "test-name-of-10000-characters": Case(test={"NAME": "n" * 10_000}),
        # a thousand attempts, the backoff growing a thousandfold (1000**999 overflows a float)
        "thousand-attempts-thousandfold-backoff": Case(
            {"MAX_ATTEMPTS": "1000", "MULTIPLIER": "1000", "INITIAL": "1ms", "MAX_DELAY": "30s", "AGE": "",
             "BREAKER": ""},
            test={"FAULTS": '{consumer: "service:s/a"}', "COUNT": "0"}),
        "uncapped-thousandfold-backoff": Case(
            {"MAX_ATTEMPTS": "1000", "MULTIPLIER": "1000", "MAX_DELAY": "36500d", "AGE": "", "BREAKER": ""},
            test={"FAULTS": '{consumer: "service:s/a"}', "COUNT": "0"}),
        # hostile names and structures
        "name-of-10000-characters": Case({"SERVICE": "s" * 10_000}, refused="bad-value"),
        "event-type-name-10000": Case(files={"more.yaml": "apiVersion: meshctl/v1\nkind: EventType\n"
                                                          f"metadata: {{name: {'e' * 10_000}}}\n"},
                                      refused="bad-value"),
        "int-tag-on-a-list": Case({"CONSTANT": "!!int [1]"}, refused="bad-value"),
        "int-tag-on-letters": Case({"CONSTANT": "!!int abc"}, refused="bad-value"),
        "float-tag-on-nothing": Case({"CONSTANT": '!!float ""'}, refused="bad-value"),
        "json-1e999-is-a-string": Case({"SLEEP": '"1e999"'}, refused="bad-value"),
        "json-nan-token-is-a-string": Case({"MULTIPLIER": "NaN"}, refused="wrong-type"),
        "mesh-invalid-utf8": Case(files={"mesh.yaml": b"apiVersion: meshctl/v1\nkind: \xff\xfe\n"},
                                  refused="not-text"),
        "mesh-flow-nesting-10000": Case({"CONSTANT": "[" * 10_000 + "]" * 10_000}, refused=ANY, child=True),
        "mesh-map-nesting-10000": Case({"CONSTANT": '{"a": ' * 10_000 + "1" + "}" * 10_000},
                                       refused="too-deep", child=True),
        "deep-or-pattern": Case({"PATTERN": "0]}], $or: " + "[{$or: " * 25 + "[{data: {n: [1]}}]" + "}]" * 25
                                 + ", x: [{numeric: ['>', 0"}, refused=ANY),
        "anything-but-prefix-pattern": Case({"PATTERN": "0]}, {anything-but: {prefix: " + "x" * 10_000
                                             + "}}, {prefix: ''}, {numeric: ['<', 1.7976931348623157e+308"},
                                            refused=ANY),
        "pattern-of-10000-values": Case({"PATTERN": "0]}, " + ", ".join(str(i) for i in range(10_000))
                                         + ", {numeric: ['>', 0"}, refused=ANY),
        "schema-deep-allof": Case({"SCHEMA_MIN": "0, " + "allOf: [{" * 28 + "minimum: 0" + "}]" * 28},
                                  refused=ANY),
        "schema-tiny-multipleof": Case({"SCHEMA_MIN": "0, multipleOf: 1.0e-300"}, test={"DATA": "1.0e+300"},
                                       refused=ANY),
        # the test file
        "test-data-nan": Case(test={"DATA": ".nan"}, refused="non-finite-number", where="test"),
        "test-expected-inf": Case(test={"EXPECTED": "-.inf"}, refused="non-finite-number", where="test"),
        "test-count-5000-digits": Case(test={"COUNT": BIG_INT}, refused="non-finite-number", where="test"),
        "test-seed-beyond-int64": Case(test={"SEED": str(2 ** 64)}, refused="bad-value", where="test"),
        # 1e300 is integral
        "test-seed-1e300": Case(test={"SEED": "1.0e+300"}, refused="bad-value", where="test"),
        "test-fault-times-huge": Case(
            test={"FAULTS": '{consumer: "service:s/a", times: 99999999999999999999}'}, refused="bad-value",
            where="test"),
        "test-data-largest": Case(test={"DATA": "1.0e+308"}, refused=ANY),
        "test-invalid-utf8": Case(files={"t.test.yaml": b"tests:\n  - name: \xc3\x28\n"}, refused="not-text",
                                  where="test"),
        "test-flow-nesting-10000": Case(test={"DATA": "[" * 10_000 + "]" * 10_000}, refused=ANY, where="test",
                                        child=True),
        "test-map-nesting-10000": Case(test={"DATA": '{"a": ' * 10_000 + "1" + "}" * 10_000},
                                       refused="too-deep", where="test", child=True),
        "test-events-file-non-finite": Case(
            test={"DATA": "1"}, refused=ANY,
            files={"t.test.yaml": "tests:\n  - name: from a file\n    events: ev.json\n    expect: {}\n",
                   "ev.json": "[{type: a, data: {n: .nan}}, {type: a, data: {n: 1.0e+999}}]\n"}),
    })
    return cases


CASES = _cases()

CHILD = textwrap.dedent("""
    import json, sys
    from click.testing import CliRunner
    from cli import main
    out = []
    for args in json.loads(sys.argv[1]):
        result = CliRunner().invoke(main, args, catch_exceptions=False)
        out.append([result.exit_code, result.output[-4000:]])
    print(json.dumps(out))
""")


def _commands(folder: str) -> list[list[str]]:
    return [["validate", folder], *(["render", "--format", f, folder] for f in RENDER), ["test", folder]]


def _invoke_all(commands: list[list[str]], child: bool) -> list[tuple[int, str]]:
    if child:
        done = subprocess.run([sys.executable, "-c", CHILD, json.dumps(commands)], capture_output=True,
                              text=True, timeout=300)
        assert done.returncode == 0, f"child died ({done.returncode}): {done.stderr[-2000:]}"
        return [tuple(each) for each in json.loads(done.stdout)]
    return [
        (r.exit_code, r.output)
        for r in (CliRunner().invoke(main, args, catch_exceptions=False) for args in commands)
    ]


def _no_internal_error(code: int, output: str, args: list[str]) -> None:
    assert code != 70 and "internal error" not in output, f"{args}: exit {code}\n{output[-2000:]}"
    assert "Traceback" not in output, f"{args}:\n{output[-2000:]}"
    assert code in (0, 1), f"{args}: exit {code}\n{output[-2000:]}"


@pytest.mark.parametrize("name", CASES)
def test_no_input_ends_in_an_internal_error(name, tmp_path):
    case = CASES[name]
    (tmp_path / "mesh.yaml").write_text(_fill(MESH, {**DEFAULTS, **case.mesh}))
    (tmp_path / "t.test.yaml").write_text(_fill(TEST, {**TEST_DEFAULTS, **case.test}))
    for file, content in case.files.items():
        (tmp_path / file).write_bytes(content if isinstance(content, bytes) else content.encode())
    commands = _commands(str(tmp_path))
    outcomes = _invoke_all(commands, case.child)
    for args, (code, output) in zip(commands, outcomes):
        _no_internal_error(code, output, args)
    if case.refused == ANY:
        return
    refused_by_mesh = case.refused is not None and case.where == "mesh"
    for args, (code, output) in zip(commands, outcomes):
        command = args[0]
        if case.refused is None or (command != "test" and not refused_by_mesh):
            assert code == 0, f"{args}: exit {code}\n{output[-2000:]}"
            continue
        assert code == 1, f"{args}: exit {code}\n{output[-2000:]}"
        culprit = r"[^\s:]+\.yaml" if refused_by_mesh else re.escape("t.test.yaml")
        assert re.search(rf"{culprit}:\d+:\d+: error\[{re.escape(case.refused)}\]", output), \
            f"{args}: no located error[{case.refused}]\n{output[-2000:]}"


GOOD_TRACE = [
    {"seq": 1, "t": "2024-01-01T00:00:00Z", "kind": "ingest", "event": "e-1", "type": "a"},
    {"seq": 2, "t": "2024-01-01T00:00:00Z", "kind": "deliver", "event": "e-1", "type": "a", "from": "ingress",
     "consumer": "service:s/a", "attempt": 1},
]
TRACES = {
    "nan-delay": ('{"seq": 3, "t": "2024-01-01T00:00:01Z", "kind": "retry", "event": "e-1", '
                  '"consumer": "service:s/a", "delay": NaN}', "bad-trace"),
    "infinite-attempt": ('{"seq": 3, "t": "2024-01-01T00:00:01Z", "kind": "ok", "event": "e-1", '
                         '"consumer": "service:s/a", "attempt": Infinity}', "bad-trace"),
    "1e999-time": ('{"seq": 3, "t": 1e999, "kind": "ok", "event": "e-1", "consumer": "service:s/a"}',
                   "bad-trace"),
    "5000-digit-attempt": ('{"seq": 3, "kind": "ok", "attempt": ' + BIG_INT + "}", "bad-trace"),
    "nesting-100000": ('{"kind": "ok", "x": ' + "[" * 100_000 + "]" * 100_000 + "}", "bad-trace"),
    "huge-finite-numbers": ('{"seq": -1e300, "t": "2024-01-01T00:00:01Z", "kind": "retry", "event": "e-1", '
                            '"consumer": "service:s/a", "attempt": 1e300, "delay": -1e300}', None),
    "years-1-and-9999": ('{"seq": 3, "t": "9999-12-31T23:59:59.999999Z", "kind": "ok", "event": "e-1", '
                         '"consumer": "service:s/a"}', None),
    "kind-of-10000-characters": ('{"kind": "' + "k" * 10_000 + '", "consumer": "' + "c" * 10_000 + '"}',
                                 None),
}


@pytest.mark.parametrize("name", TRACES)
def test_no_trace_ends_in_an_internal_error(name, tmp_path):
    line, refused = TRACES[name]
    path = tmp_path / "run.trace.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in GOOD_TRACE) + line + "\n")
    for fmt in ("mermaid", "svg", "html"):
        args = ["render", "--trace", str(path), "--format", fmt]
        result = CliRunner().invoke(main, args, catch_exceptions=False)
        _no_internal_error(result.exit_code, result.output, args)
        if refused is None:
            assert result.exit_code == 0, result.output[-2000:]
        else:
            assert result.exit_code == 1 and f"run.trace.jsonl:3:1: error[{refused}]" in result.output, (
                result.output
            )


def test_invalid_utf8_in_a_trace_is_located(tmp_path):
    path = tmp_path / "run.trace.jsonl"
    path.write_bytes(json.dumps(GOOD_TRACE[0]).encode() + b'\n{"kind": "ok", "x": "\xff"}\n')
    result = CliRunner().invoke(main, ["render", "--trace", str(path)], catch_exceptions=False)
    assert result.exit_code == 1
    assert "run.trace.jsonl:2:22: error[bad-trace]: not UTF-8 text (byte 0xff)" in result.output
