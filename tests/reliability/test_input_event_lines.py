"""T44: one bad line of an events file loses nothing but itself, and no event input exits 70.

Every command that reads events holds them to one rule (engine/core/eventjson.py; docs/security.md,
"Event input"): UTF-8 decoded line by line, at most 64 levels of arrays and objects, finite
numbers, no unpaired surrogate escapes. For each hostile line — bytes that are not UTF-8,
nesting 100,000 and 500 levels deep, ``NaN``, ``Infinity``, ``-Infinity``, ``1e999``,
``"\\ud800"`` — set between two good lines:

* ``run`` (in memory and durable) processes both good lines and dead-letters the bad one as
  ``schema-invalid`` with ``file:line:col`` and the reason; ``dlq list`` and ``dlq replay``
  show and keep that record, from the ``--dlq-out`` file and from the SQLite store, and
  ``replay`` re-injects the two good events;
* ``meshctl test`` on such a file sees the same;
* a dead-letter file holding the line is refused at that line (exit 1) by ``dlq list`` and
  ``dlq replay``, and left as it was;
* ``publish`` refuses the file at that line (exit 1) before sending anything;
* the ingress (``serve``) answers 400 with the reason, line and column, and queues nothing
  of the request; a real ``meshctl serve`` does so too (Redis);
* ``replay --match`` refuses such a pattern (exit 2).

Lines that are hostile but readable (10 MB, 100,000-character ids, 100,000 keys, odd times,
control characters, values that are not objects, 64 levels) run and list with exit 0.
No output holds a traceback; no exit code is 70.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli import main
from engine.analysis.validate import require_valid
from engine.cluster.ingress import BATCH, STRUCTURED, Ingress
from engine.core import eventjson
from engine.core.eventjson import WRITTEN_DEPTH as DEAD_LETTER_DEPTH
from engine.language.admission import Admission

REPO = Path(__file__).resolve().parent.parent.parent
MESH = """\
apiVersion: meshctl/v1
kind: EventType
metadata: {name: ping}
spec: {external: true}
---
apiVersion: meshctl/v1
kind: Service
metadata: {name: echo}
spec:
  subscriptions:
    - {on: ping, do: {log: "got {{ id }}"}}
"""
GOOD = [json.dumps({"specversion": "1.0", "type": "ping", "id": f"g{i}", "source": "s",
                    "time": f"2026-01-01T00:00:0{i}Z"}).encode() for i in (1, 2)]
PREFIX = b'{"type": "ping", "data": '  # 25 characters: a value in data starts at column 26


def _nested(depth: int) -> bytes:
    return PREFIX + b"[" * depth + b"]" * depth + b"}"


DEEP = "nested more than {limit} levels deep"
# name: (line, message, column). Level 1 is the event object; data's arrays are levels 2, 3...
# from column 26, so level 65 (one past the limit) is the bracket at column 25 + 64.
CASES = {
    "not-utf8": (b'{"type": "ping", "id": "b\xff"}', "not UTF-8 text: invalid start byte 0xff at byte 26",
                 26),
    "deep-100000": (_nested(100_000), DEEP, 25),
    "deep-500": (_nested(500), DEEP, 25),
    "nan": (PREFIX + b'{"x": NaN}}', "NaN is not JSON: numbers must be finite", 32),
    "infinity": (PREFIX + b'{"x": Infinity}}', "Infinity is not JSON: numbers must be finite", 32),
    "-infinity": (PREFIX + b'{"x": -Infinity}}', "-Infinity is not JSON: numbers must be finite", 32),
    "1e999": (PREFIX + b'{"x": 1e999}}', "1e999 is out of range: numbers beyond about ±1.8e308 are refused",
              32),
    "10**400": (PREFIX + b'{"x": 1' + b"0" * 400 + b'}}', "100000000000... (401 characters) is out of range: "
                "numbers beyond about ±1.8e308 are refused", 32),
    "lone-surrogate": (PREFIX + b'"\\ud800"}',
                       "\\ud800 is an unpaired surrogate: strings must be Unicode text", 27),
}
NAMES = list(CASES)


def expected(name: str, limit: int = eventjson.MAX_DEPTH) -> tuple[bytes, str, int]:
    """The case's line, message and column when the depth limit is *limit*."""
    line, message, col = CASES[name]
    if message == DEEP:
        return line, DEEP.format(limit=limit), col + limit
    return line, message, col


def invoke(*args) -> tuple[int, str]:
    """Exit code, and stdout on success (what a run prints there is its summary; the lines it
    refused are told on stderr) or everything printed otherwise."""
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    assert (
        result.exit_code != 70 and "Traceback" not in result.output and "internal error" not in result.output
    )
    return result.exit_code, result.stdout if result.exit_code == 0 else result.output


@pytest.fixture
def mesh(tmp_path) -> Path:
    path = tmp_path / "mesh" / "mesh.yaml"
    path.parent.mkdir()
    path.write_text(MESH)
    return path


def events_file(folder: Path, *lines: bytes, name: str = "events.jsonl") -> Path:
    path = folder / name
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def between_good_lines(folder: Path, line: bytes) -> Path:
    """Line 1 good, line 2 *line*, line 3 blank (skipped), line 4 good."""
    return events_file(folder, GOOD[0], line, b"", GOOD[1])


# --- run, dlq list, dlq replay, replay ---------------------------------------------------------

@pytest.mark.parametrize("store", ["memory", "sqlite"])
@pytest.mark.parametrize("name", NAMES)
def test_run_takes_every_good_line_and_dead_letters_the_bad_one_located(mesh, tmp_path, name, store):
    line, message, col = expected(name)
    events, dlq, db = between_good_lines(tmp_path, line), tmp_path / "dlq.jsonl", tmp_path / "run.db"
    durable = ["--store", f"sqlite:{db}"] if store == "sqlite" else []
    code, output = invoke("run", mesh, "--events", events, "--dlq-out", dlq, "--format", "json", *durable)
    summary = json.loads(output)
    assert code == 0
    assert (summary["events_in"], summary["delivered"], summary["dead_lettered_by_reason"]) == \
           (3, 2, {"schema-invalid": 1})
    [record] = [json.loads(text) for text in dlq.read_text().splitlines()]
    assert (record["consumer"], record["error_type"]) == ("mesh", "BadInput")
    assert record["error"] == f"{events}:2:{col}: {message}"
    sources = [["--dlq", dlq]] + ([["--store", f"sqlite:{db}"]] if store == "sqlite" else [])
    for source in sources:
        code, listing = invoke("dlq", "list", *source)
        assert code == 0 and listing.endswith("1 dead letter\n")
        assert f"BadInput: {events}:2:{col}: {message}" in listing
        code, output = invoke("dlq", "replay", mesh, *source, "--format", "json")
        assert code == 0 and (json.loads(output)["replayed"], json.loads(output)["still_dead"]) == (0, 1)
    if store == "sqlite":  # the archive holds the two good inputs, and only them
        code, output = invoke("replay", mesh, "--store", f"sqlite:{db}", "--format", "json")
        assert code == 0 and (json.loads(output)["selected"], json.loads(output)["delivered"]) == (2, 2)


@pytest.mark.parametrize("name", NAMES)
def test_meshctl_test_sees_the_good_lines_and_the_located_bad_one(mesh, name):
    line, message, col = expected(name)
    between_good_lines(mesh.parent, line)
    (mesh.parent / "lines.test.yaml").write_text(
        "tests:\n  - name: one bad line\n    events: events.jsonl\n    expect:\n"
        "      counts: {events_in: 3, delivered: 2}\n"
        f"      dead_letters: [{{reason: schema-invalid, consumer: mesh, count: 1, "
        f"error: {json.dumps(f'events.jsonl:2:{col}: {message}')}}}]\n")
    code, output = invoke("test", mesh.parent)
    assert (code, output) == (0, "PASS one bad line\n1 passed, 0 failed\n")


def dead_letter(record_id: str) -> bytes:
    return json.dumps(
        {
            "id": record_id,
            "queue": "dlq",
            "reason": "retries-exhausted",
            "consumer": "service:echo/ping",
            "attempts": 1,
            "first_attempt": None,
            "last_attempt": None,
            "error_type": "TimeoutError",
            "error": "boom",
            "event": json.loads(GOOD[0]),
            "chain": [],
        }
    ).encode()


@pytest.mark.parametrize("name", NAMES)
def test_a_dead_letter_file_holding_the_line_is_refused_at_it(mesh, tmp_path, name):
    line, message, col = expected(name, DEAD_LETTER_DEPTH)
    if name == "deep-500":  # not too deep for a dead-letter file: read, then found to be no record
        message, col = "'id' is missing", 1
    dlq = events_file(tmp_path, dead_letter("r1"), line, dead_letter("r2"), name="dlq.jsonl")
    before = dlq.read_bytes()
    located = f"{dlq}:2:{col}: error[bad-dead-letter]: not a dead-letter record: {message}\n"
    assert invoke("dlq", "list", "--dlq", dlq) == (1, located)
    assert invoke("dlq", "replay", mesh, "--dlq", dlq) == (1, located)
    assert dlq.read_bytes() == before


def test_a_dead_letter_as_deep_as_a_run_can_make_reads_back(tmp_path):
    """Each hop nests the event's data five levels deeper, until the template cannot copy it."""
    (tmp_path / "mesh.yaml").write_text(MESH.replace("{on: ping, do: {log: \"got {{ id }}\"}}", """
      on: ping
      emits: [ping]
      loop: {max_hops: 255}
      do: {emit: {type: ping, data: {a: [[[["{{ data }}"]]]]}}}"""))
    dlq, db = tmp_path / "dlq.jsonl", tmp_path / "run.db"
    code, output = invoke("run", tmp_path, "--events", events_file(tmp_path, GOOD[0]), "--max-hops", "1000",
                          "--dlq-out", dlq, "--store", f"sqlite:{db}", "--format", "json")
    assert code == 0 and json.loads(output)["dead_lettered_by_reason"] == {"template-error": 1}
    depth = max(line.count("[") for line in dlq.read_text().splitlines())
    assert eventjson.MAX_DEPTH * 5 < depth < DEAD_LETTER_DEPTH  # deeper than an input may be
    for source in (["--dlq", dlq], ["--store", f"sqlite:{db}"]):
        assert invoke("dlq", "list", *source)[0] == 0
        assert (
            json.loads(invoke("dlq", "list", *source, "--format", "json")[1])[0]["reason"] == "template-error"
        )
        code, output = invoke("dlq", "replay", tmp_path, *source, "--format", "json")
        assert code == 0 and json.loads(output)["replayed"] == 1


@pytest.mark.parametrize("text", ["[1]", '"x"', "{}", '{"id": "r", "reason": {"a": 1}}',
                                  '{"id": "r", "attempts": "1"}'])
def test_a_dead_letter_of_the_wrong_shape_is_refused_at_its_line(tmp_path, text):
    dlq = events_file(tmp_path, dead_letter("r1"), text.encode(), name="dlq.jsonl")
    code, output = invoke("dlq", "list", "--dlq", dlq)
    assert code == 1 and output.startswith(f"{dlq}:2:1: error[bad-dead-letter]: not a dead-letter record: ")


def test_a_replayed_dead_letter_cannot_carry_a_loop_count_of_the_wrong_type(mesh, tmp_path):
    record = json.loads(dead_letter("r1"))
    record["event"]["hopcount"] = "x"
    dlq = events_file(tmp_path, json.dumps(record).encode(), name="dlq.jsonl")
    assert invoke("dlq", "replay", mesh, "--dlq", dlq) == \
        (1,
         f"{dlq}:1:1: error[bad-dead-letter]: not a dead-letter record: 'event.hopcount' must be an integer, "
            "not a string\n")


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        (
            '{"data": ' + "[" * 100_000 + "]" * 100_000 + "}",
            "nested more than 64 levels deep (line 1, column 73)",
        ),
        ('{"data": ' + "[" * 500 + "]" * 500 + "}", "nested more than 64 levels deep (line 1, column 73)"),
        ('{"data": {"x": [NaN]}}', "NaN is not JSON: numbers must be finite (line 1, column 17)"),
        (
            '{"data": {"x": [1e999]}}',
            "1e999 is out of range: numbers beyond about ±1.8e308 are refused (line 1, column 17)",
        ),
        (
            '{"data": {"x": ["\\udc80"]}}',
            "\\udc80 is an unpaired surrogate: strings must be Unicode text (line 1, column 18)",
        ),
        (
            '{"data": {"x": ["b\udcff"]}}',
            "not UTF-8 text: invalid start byte 0xff at byte 19 (line 1, column 19)",
        ),  # argv
    ],
)
def test_replay_refuses_a_hostile_match_pattern(mesh, tmp_path, pattern, message):
    code, output = invoke("replay", mesh, "--store", f"sqlite:{tmp_path / 'none.db'}", "--match", pattern)
    assert (
        code == 2 and f"Invalid value for '--match': not an EventBridge pattern in JSON: {message}" in output
    )


# --- publish -----------------------------------------------------------------------------------

def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("name", NAMES)
def test_publish_refuses_the_file_at_the_line_before_sending_anything(mesh, tmp_path, name):
    line, message, col = expected(name)
    events = between_good_lines(tmp_path, line)
    code, output = invoke("publish", mesh, events, "--url", f"http://127.0.0.1:{unused_port()}")
    assert (code, output) == (
        1,
        f"{events}:2:{col}: error[bad-event]: {message}\n"  # no attempt to connect
        f"meshctl: 1 of the 3 records of {events} are bad or refused: nothing was sent\n",
    )


def test_a_refusal_quotes_a_huge_value_only_in_part(mesh, tmp_path):
    mesh.write_text(MESH.replace("spec: {external: true}", "spec: {external: true, schema: {type: object}}"))
    events = events_file(tmp_path, PREFIX + json.dumps("x" * 1_000_000).encode() + b"}")
    code, output = invoke("publish", mesh, events, "--url", f"http://127.0.0.1:{unused_port()}")
    assert code == 1 and output.startswith(f"{events}:1:1: error[rejected-event]: data: 'xxx")
    # repr + " is not of..."
    assert output.splitlines()[0].endswith("... (1000026 characters)") and len(output) < 1000


@pytest.mark.parametrize("name", ["not-utf8", "deep-100000", "nan"])
def test_publish_to_a_store_queues_nothing_of_the_file(mesh, tmp_path, redis_url, name):
    import redis

    line, message, col = expected(name)
    events = between_good_lines(tmp_path, line)
    assert invoke("publish", mesh, events, "--store", redis_url) == \
        (1, f"{events}:2:{col}: error[bad-event]: {message}\n"
            f"meshctl: 1 of the 3 records of {events} are bad or refused: nothing was sent\n")
    prefix = redis_url.split("prefix=")[1]
    client = redis.Redis.from_url(redis_url.split("?")[0])
    try:
        assert client.xlen(f"{prefix}:input") == 0
    finally:
        client.close()


# --- serve: the ingress as a WSGI application, then a real server -----------------------------

class Broker:
    def __init__(self):
        self.events: list[dict] = []

    def ingest(self, events):
        self.events += events
        return [f"{len(self.events) - len(events) + i + 1}-0" for i in range(len(events))]

    def ping(self):
        return True

    def backlog(self):
        return 0


def post(app, body: bytes, content_type: str, **headers) -> tuple[int, dict]:
    import io

    environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/events", "CONTENT_LENGTH": str(len(body)),
               "CONTENT_TYPE": content_type, "wsgi.input": io.BytesIO(body), **headers}
    answer = {}
    chunks = app.wsgi(environ, lambda status, _: answer.update(status=int(status[:3])))
    return answer["status"], json.loads(b"".join(chunks))


@pytest.mark.parametrize("name", NAMES)
def test_the_ingress_refuses_the_body_with_the_reason_and_queues_nothing(mesh, name):
    broker = Broker()
    app = Ingress(Admission(require_valid(str(mesh)).mesh), broker)
    line, message, col = expected(name)
    assert post(app, line, STRUCTURED) == \
        (400, {"title": "Bad Request", "status": 400,
               "detail": f"the event is refused: {message} (line 1, column {col})"})
    _, message, _ = expected(name, eventjson.MAX_DEPTH + 1)  # the batch's array is a level of its own
    before = b"[\n" + GOOD[0] + b",\n"
    # bytes count from the body's start
    message = message.replace("at byte 26", f"at byte {len(before) + 26}")
    status, answer = post(app, before + line + b",\n" + GOOD[1] + b"\n]", BATCH)
    assert (status, answer["detail"]) == (400, f"the batch is refused: {message} (line 3, column {col})")
    assert broker.events == []
    status, answer = post(app, b"[\n" + GOOD[0] + b",\n" + GOOD[1] + b"\n]", BATCH)  # and it goes on
    assert (status, answer["accepted"]) == (202, 2)


@pytest.mark.parametrize(("data", "detail"), [
    (b"[" * 100_000, "the data is refused: nested more than 63 levels deep (line 1, column 64)"),
    (b"[" * 500 + b"]" * 500, "the data is refused: nested more than 63 levels deep (line 1, column 64)"),
    (b'{"x": NaN}', "the data is refused: NaN is not JSON: numbers must be finite (line 1, column 7)"),
    (b'{"x": -1e999}', "the data is refused: -1e999 is out of range: numbers beyond about ±1.8e308 are "
                       "refused (line 1, column 7)"),
    (b'{"x": "\xc3"}', "the data is refused: not UTF-8 text: invalid continuation byte 0xc3 at byte 8 "
                       "(line 1, column 8)"),
])
def test_binary_mode_data_is_held_to_the_rule_one_level_down(mesh, data, detail):
    broker = Broker()
    app = Ingress(Admission(require_valid(str(mesh)).mesh), broker)
    headers = {"HTTP_CE_SPECVERSION": "1.0", "HTTP_CE_ID": "b1", "HTTP_CE_SOURCE": "s",
               "HTTP_CE_TYPE": "ping"}
    status, answer = post(app, data, "application/json", **headers)
    assert (status, answer["detail"], broker.events) == (400, detail, [])


def test_a_real_serve_answers_400_and_keeps_serving(mesh, redis_url):
    env = {k: v for k, v in os.environ.items() if k != "MESHCTL_TOKEN"}
    command = [sys.executable, "-c", "import sys; from cli import main; sys.exit(main())", "serve", str(mesh),
               "--store", redis_url, "--port", "0"]
    proc = subprocess.Popen(command, cwd=REPO, env=env, text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        url = None
        for text in proc.stderr:
            if "listening on " in text:
                url = text.split("listening on ", 1)[1].strip()
                break
        assert url is not None, proc.stderr.read()
        for name in ("not-utf8", "deep-100000", "deep-500", "1e999"):
            line, message, col = expected(name)
            request = urllib.request.Request(f"{url}/events", line, {"Content-Type": STRUCTURED},
                                             method="POST")
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(request, timeout=10)
            assert refused.value.code == 400
            detail = json.loads(refused.value.read())["detail"]
            assert detail == f"the event is refused: {message} (line 1, column {col})"
        request = urllib.request.Request(f"{url}/events", GOOD[0], {"Content-Type": STRUCTURED},
                                         method="POST")
        with urllib.request.urlopen(request, timeout=10) as answer:
            assert (answer.status, json.loads(answer.read())["accepted"]) == (202, 1)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, rest = proc.communicate(timeout=20)
    assert proc.returncode == 0
    assert "Traceback" not in rest and "internal error" not in rest


# --- hostile but readable ----------------------------------------------------------------------

READABLE = {  # name: (line, dead-lettered)
    "a string": (b'"just a string"', True),
    "a number": (b"42", True),
    "an array": (b"[1, 2, 3]", True),
    "null": (b"null", True),
    "10 MB of data": (PREFIX + json.dumps("x" * 10_000_000).encode() + b"}", False),
    "an id of 100,000 characters": (json.dumps({"type": "ping", "id": "i" * 100_000}).encode(), False),
    "data with 100,000 keys": (
        PREFIX + json.dumps({f"k{i}": i for i in range(100_000)}).encode() + b"}",
        False,
    ),
    "a time that is a number": (b'{"type": "ping", "time": 1767225600}', True),
    "a time that is an object": (b'{"type": "ping", "time": {"at": 1}}', True),
    "a time in year 99999": (b'{"type": "ping", "time": "99999-01-01T00:00:00Z"}', True),
    "a time with 100,000 fraction digits": (
        b'{"type": "ping", "time": "2026-01-01T00:00:00.' + b"9" * 100_000 + b'Z"}',
        False,
    ),
    "nested extension values": (b'{"type": "ping", "myext": {"a": [1, {"b": [2]}]}}', False),
    "a type with control characters": (b'{"type": "pi\\u0000ng\\u001b[31m"}', True),
    "an id with control characters": (b'{"type": "ping", "id": "a\\r\\nb\\u001b[2J\\u202e"}', False),
    "a key with control characters": (b'{"type": "ping", "x\\u0000y": 1}', False),
    "64 levels": (_nested(63), False),
    "an integer of 5,000 digits": (PREFIX + b"9" * 5000 + b"}", True),
    "the largest integer a float holds": (PREFIX + str(int(sys.float_info.max)).encode() + b"}", False),
    "a byte order mark on line 2": (b"\xef\xbb\xbf" + GOOD[0].replace(b"g1", b"bom"), True),
    "a surrogate pair": (PREFIX + b'"\\ud83d\\ude00"}', False),
    "an escaped backslash before ud800": (PREFIX + b'"\\\\ud800"}', False),
}


@pytest.mark.parametrize("name", list(READABLE))
def test_hostile_but_readable_lines_run_and_list(mesh, tmp_path, name):
    line, dead = READABLE[name]
    events, dlq, db = between_good_lines(tmp_path, line), tmp_path / "dlq.jsonl", tmp_path / "run.db"
    code, output = invoke("run", mesh, "--events", events, "--dlq-out", dlq, "--store", f"sqlite:{db}",
                          "--format", "json")
    summary = json.loads(output)
    assert code == 0 and summary["events_in"] == 3 and summary["dead_lettered"] == int(dead)
    assert summary["delivered"] == 3 - int(dead)
    for source in (["--dlq", dlq], ["--store", f"sqlite:{db}"]):
        code, listing = invoke("dlq", "list", *source)
        assert code == 0 and listing.endswith(f"{int(dead)} dead letter{'' if dead else 's'}\n")
        assert len(listing.splitlines()) == 1 + int(dead)  # control characters are escaped: one line each
        assert invoke("dlq", "list", *source, "--format", "json")[0] == 0


def test_a_byte_order_mark_starts_the_file_only_and_crlf_ends_lines(mesh, tmp_path):
    events = events_file(tmp_path, b"\xef\xbb\xbf" + GOOD[0] + b"\r", b"\xef\xbb\xbf" + GOOD[1] + b"\r")
    dlq = tmp_path / "dlq.jsonl"
    code, output = invoke("run", mesh, "--events", events, "--dlq-out", dlq, "--format", "json")
    assert code == 0 and (json.loads(output)["delivered"], json.loads(output)["dead_lettered"]) == (1, 1)
    assert json.loads(dlq.read_text())["error"] == \
        f"{events}:2:1: not JSON: a byte order mark (U+FEFF); only a file may start with one"


def test_a_stream_adds_up_numbers_beyond_a_float_without_failing(tmp_path):
    (tmp_path / "mesh.yaml").write_text(MESH + """\
---
apiVersion: meshctl/v1
kind: EventType
metadata: {name: board}
---
apiVersion: meshctl/v1
kind: Stream
metadata: {name: totals}
spec:
  from: [ping]
  key: data.k
  time: time
  window: {tumbling: 60s}
  aggregate: {total: {sum: data.n}, mean: {avg: data.n}}
  emit: {type: board}
""")
    big = int(sys.float_info.max)  # the largest integer an input may hold: two of them add up beyond a float
    lines = [json.dumps({"type": "ping", "id": f"e{i}", "time": f"2026-01-01T00:00:0{i}Z",
                         "data": {"k": k, "n": n}})
             .encode() for i,
             (k, n) in enumerate([("a", big), ("a", big), ("b", big), ("b", big), ("b", 1.5)])]
    out = tmp_path / "out.jsonl"
    code, output = invoke("run", tmp_path, "--events", events_file(tmp_path, *lines), "--output", out,
                          "--format", "json")
    assert code == 0 and json.loads(output)["windows_emitted"] == 2
    windows = {e["data"]["key"]: e["data"] for e in map(json.loads, out.read_text().splitlines())}
    assert (windows["a"]["total"], windows["a"]["mean"]) == (2 * big, float(big))  # the sum exact: integers
    assert windows["b"]["total"] == float("inf")  # an integer beyond every float, plus a float


# --- the rule itself ---------------------------------------------------------------------------

def nested_lists(depth: int) -> list:
    value: list = []
    for _ in range(depth - 1):
        value = [value]
    return value


@pytest.mark.parametrize(("text", "value"), [
    ('{"a": "' + "[" * 100 + '"}', {"a": "[" * 100}),  # brackets inside strings are not levels
    ('{"a": "\\"[' + "[" * 100 + '"}', {"a": '"[' + "[" * 100}),  # nor after an escaped quote
    ('{"a": "\\ud83d\\ude00"}', {"a": "\U0001F600"}),  # a pair is one character
    ('{"a": 1.7e308, "b": -0.0, "c": 5e-324}', {"a": 1.7e308, "b": -0.0, "c": 5e-324}),
    ("[" * 64 + "]" * 64, nested_lists(64)),
])
def test_accepted_text(text, value):
    assert eventjson.loads(text) == value


@pytest.mark.parametrize(("value", "problem"), [
    ({"data": {"x": float("nan")}}, "data.x: nan is not a finite number"),
    ({"data": [float("-inf")]}, "data.0: -inf is not a finite number"),
    ({"data": {"n": -10 ** 400}}, "data.n: an integer beyond about ±1.8e308"),
    ({"data": {"n": int(sys.float_info.max)}}, None),
    (nested_lists(65), "nested more than 64 levels deep"),
    ({"a": "\udcff"}, "\\udcff is an unpaired surrogate: strings must be Unicode text"),
    ({"\ud800": 1}, "\\ud800 is an unpaired surrogate: strings must be Unicode text"),
    (nested_lists(64), None),
])
def test_values_parsed_elsewhere_are_held_to_the_same_rule(value, problem):
    assert eventjson.problem(value) == problem
