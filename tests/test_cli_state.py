"""Durable keyed state (`state:` and `context.state`), through `meshctl run` and `meshctl state`.

A handler's writes commit with its attempt: a retried attempt sees the state as it was
before it, a dead-lettered one leaves nothing, two attempts on one key never lose an update
(the later one runs again on the new value), limits fail clearly and a ttl expires keys; the
same on SQLite and Redis stores. tests/reliability/test_state_resume.py kills runs between
commits; tests/cluster/test_state_workers.py has workers race on one key.
"""
from __future__ import annotations

import json

import pytest

TYPES = """
apiVersion: meshctl/v1
kind: EventType
metadata: {name: point.scored}
spec:
  external: true
  schema: {type: object, required: [player], properties: {player: {type: string}}}
---
apiVersion: meshctl/v1
kind: EventType
metadata: {name: tally.counted}
---
apiVersion: meshctl/v1
kind: Service
metadata: {name: board}
spec:
  subscriptions:
    - on: tally.counted
      do: {log: "{{ data.player }} has {{ data.n }}"}
---
"""

HANDLERS = '''
def count(event, context):
    state = context.state
    state["n"] = state.get("n", 0) + 1
    if event["data"].get("fail_first") and context.attempt == 1:
        raise RuntimeError("flaky: the write of this attempt must not stay")
    if event["data"].get("always_fail"):
        raise ValueError("this one never works")
    context.emit("tally.counted", {"player": event["data"]["player"], "n": state["n"]})
    return state["n"]


def grow(event, context):
    context.state["blob"] = "x" * event["data"]["size"]


def not_json(event, context):
    context.state["when"] = object()


def wrong_shape(event, context):
    context.state["n"] = "many"


def forget(event, context):
    context.state.clear()


def undeclared(event, context):
    return context.state


def reserve(event, context):
    context.state["held"] = context.state.get("held", 0) + 1


def release(event, context):
    context.state["held"] -= 1


def failed(event, context):
    context.state["failed"] = context.state.get("failed", 0) + 1
    context.emit("tally.counted", {"player": event["data"]["player"], "n": context.state["failed"]})
'''


def _service(handler: str = "count", state: str = '{key: "{{ data.player }}"}', after: str = "") -> str:
    return f"""
apiVersion: meshctl/v1
kind: Service
metadata: {{name: scorer}}
spec:
  state: {state}
  subscriptions:
    - on: point.scored
      emits: [tally.counted]
      delivery: {{retry: {{max_attempts: 3, initial: 1s, jitter: none}}}}
      do:
        - call: {{python: "handlers:{handler}"}}
{after}"""


def _events(*specs: tuple) -> str:
    """Events from (player, second, extra data) tuples."""
    lines = []
    for i, (player, second, *extra) in enumerate(specs):
        data = {"player": player, **(extra[0] if extra else {})}
        time = f"2026-01-01T00:{second // 60:02d}:{second % 60:02d}Z"
        lines.append(json.dumps({"id": f"e{i}", "source": "test", "type": "point.scored", "time": time,
                                 "data": data}))
    return "\n".join(lines) + "\n"


@pytest.fixture
def mesh(tmp_path, write):
    def _mesh(service: str) -> str:
        (tmp_path / "handlers.py").write_text(HANDLERS)
        write(TYPES + service)
        return str(tmp_path)
    return _mesh


def _run(meshctl, tmp_path, mesh: str, events: str, *extra) -> tuple[dict, list[dict], list[dict]]:
    (tmp_path / "e.jsonl").write_text(events)
    out, dlq = tmp_path / "out.jsonl", tmp_path / "dlq.jsonl"
    result = meshctl("run", mesh, "--events", tmp_path / "e.jsonl", "--output", out, "--dlq-out", dlq,
                     "--format", "json", *extra)
    assert result.exit_code in (0, 1), result.output
    emitted = [json.loads(line) for line in out.read_text().splitlines()]
    dead = [json.loads(line) for line in dlq.read_text().splitlines()] if dlq.exists() else []
    return json.loads(result.stdout), emitted, dead


def _counts(emitted: list[dict]) -> list[tuple[str, int]]:
    return [(e["data"]["player"], e["data"]["n"]) for e in emitted if e["type"] == "tally.counted"]


def _state(meshctl, store: str, *args: str):
    result = meshctl("state", *args, "--store", store) if args[0] == "list" else \
        meshctl("state", args[0], "--store", store, *args[1:])
    assert result.exit_code == 0, result.output
    return result.output


# --- the handler's view and its writes ------------------------------------------------------------

def test_state_is_kept_per_key_across_events(meshctl, tmp_path, mesh):
    events = _events(("ann", 1), ("bob", 2), ("ann", 3), ("ann", 4), ("bob", 5))
    _, emitted, _ = _run(meshctl, tmp_path, mesh(_service()), events)
    assert _counts(emitted) == [("ann", 1), ("bob", 1), ("ann", 2), ("ann", 3), ("bob", 2)]


def test_a_retried_attempt_sees_the_state_as_it_was_before_it(meshctl, tmp_path, mesh):
    events = _events(("ann", 1), ("ann", 2, {"fail_first": True}), ("ann", 30))
    summary, emitted, _ = _run(meshctl, tmp_path, mesh(_service()), events)
    assert summary["retries"] == 1
    assert _counts(emitted) == [("ann", 1), ("ann", 2), ("ann", 3)]  # the failed attempt's +1 is gone


def test_a_dead_lettered_attempt_leaves_no_write(meshctl, tmp_path, mesh):
    events = _events(("ann", 1), ("ann", 2, {"always_fail": True}), ("ann", 30))
    _, emitted, dead = _run(meshctl, tmp_path, mesh(_service()), events)
    assert [d["reason"] for d in dead] == ["retries-exhausted"]
    assert _counts(emitted) == [("ann", 1), ("ann", 2)]


def test_templates_after_the_handler_read_the_state(meshctl, tmp_path, mesh):
    after = ('        - emit: {type: tally.counted, '
             'data: {player: "{{ data.player }}", n: "{{ state.n * 10 }}"}}')
    _, emitted, _ = _run(meshctl, tmp_path, mesh(_service(after=after)), _events(("ann", 1), ("ann", 2)))
    assert _counts(emitted) == [("ann", 1), ("ann", 10), ("ann", 2), ("ann", 20)]


def test_two_attempts_on_one_key_lose_no_update(meshctl, tmp_path, mesh):
    # Each attempt takes 5s: the second reads the key before the first commits. Without the
    # check at commit both would write n=1; the second runs again on the new value instead.
    after = "        - sleep: 5s"
    tmp = tmp_path
    summary, emitted, _ = _run(meshctl, tmp, mesh(_service(after=after)), _events(("ann", 1), ("ann", 2)),
                               "--trace", tmp / "trace.jsonl")
    assert sorted(_counts(emitted)) == [("ann", 1), ("ann", 2)]
    conflicts = [json.loads(line) for line in (tmp / "trace.jsonl").read_text().splitlines()
                 if '"state-conflict"' in line]
    assert [(c["event"], c["key"]) for c in conflicts] == [("e1", "kv:service:scorer:ann")]
    assert summary["delivered"] == 3 + 2  # two handled once, one again; two tally deliveries


def test_an_orchestration_keys_its_state_on_the_trigger_event(meshctl, tmp_path, write):
    (tmp_path / "handlers.py").write_text(HANDLERS)
    write(TYPES + """
apiVersion: meshctl/v1
kind: Orchestration
metadata: {name: tally}
spec:
  state: {key: "{{ data.player }}"}
  trigger: {on: point.scored}
  steps:
    - id: count
      emits: [tally.counted]
      do: [{call: {python: "handlers:count"}}, {sleep: 3s}]
    - id: again
      emits: [tally.counted]
      do: {call: {python: "handlers:count"}}
""")
    _, emitted, _ = _run(meshctl, tmp_path, str(tmp_path), _events(("ann", 1), ("ann", 2), ("bob", 2)))
    assert sorted(_counts(emitted)) == [("ann", n) for n in (1, 2, 3, 4)] + [("bob", 1), ("bob", 2)]


def test_compensation_and_on_failure_handlers_share_the_runs_state(meshctl, tmp_path, write):
    (tmp_path / "handlers.py").write_text(HANDLERS)
    write(TYPES + """
apiVersion: meshctl/v1
kind: Orchestration
metadata: {name: hold}
spec:
  state: {key: "{{ data.player }}"}
  trigger: {on: point.scored}
  steps:
    - id: reserve
      do: {call: {python: "handlers:reserve"}}
      compensate: {call: {python: "handlers:release"}}
    - id: charge
      do: {fail: {error: Declined}}
      retry: {max_attempts: 1}
      emits: [tally.counted]
  on_failure: {call: {python: "handlers:failed"}}
""")
    store = f"sqlite:{tmp_path / 's.db'}"
    _, emitted, _ = _run(meshctl, tmp_path, str(tmp_path), _events(("ann", 1), ("ann", 2)), "--store", store)
    assert _counts(emitted) == [("ann", 1), ("ann", 2)]  # on_failure counted both runs
    shown = json.loads(_state(meshctl, store, "show", "hold", "ann"))
    assert shown["owner"] == "orchestration:hold" and shown["value"] == {"failed": 2, "held": 0}


# --- limits ------------------------------------------------------------------------------------

@pytest.mark.parametrize("handler, state, error, words", [
    ("grow", '{key: "{{ data.player }}", max_bytes: 100}', "StateTooLarge", "over its max_bytes 100"),
    ("not_json", '{key: "{{ data.player }}"}', "StateNotJSON", "is not JSON"),
    ("wrong_shape", '{key: "{{ data.player }}", schema: {properties: {n: {type: integer}}}}', "StateInvalid",
     "'many' is not of type 'integer'"),
    ("count", '{key: "{{ data.team | default(\'\') }}"}', "StateKeyEmpty", "rendered empty"),
])
def test_a_write_over_a_limit_is_dead_lettered_not_retried(meshctl, tmp_path, mesh, handler, state, error,
                                                           words):
    events = _events(("ann", 1, {"size": 500}))
    summary, emitted, dead = _run(meshctl, tmp_path, mesh(_service(handler, state)), events)
    assert summary["retries"] == 0 and emitted == []
    assert [(d["reason"], d["error_type"]) for d in dead] == [("non-retryable", error)]
    assert words in dead[0]["error"] and "scorer" in dead[0]["error"]


def test_context_state_without_a_declaration_says_what_to_declare(meshctl, tmp_path, write):
    (tmp_path / "handlers.py").write_text(HANDLERS)
    write(TYPES + _service("undeclared").replace('  state: {key: "{{ data.player }}"}\n', ""))
    _, _, dead = _run(meshctl, tmp_path, str(tmp_path), _events(("ann", 1)))
    assert dead[0]["error_type"] == "NoStateDeclared"
    assert "declare `state: {key: ...}`" in dead[0]["error"]


def test_clearing_the_state_removes_the_key(meshctl, tmp_path, mesh):
    store = f"sqlite:{tmp_path / 's.db'}"
    _run(meshctl, tmp_path, mesh(_service()), _events(("ann", 1), ("bob", 2)), "--store", store)
    assert "2 keys" in _state(meshctl, store, "list")
    (tmp_path / "s.db").unlink()
    _run(meshctl, tmp_path, mesh(_service("forget")), _events(("ann", 1)), "--store", store)
    assert _state(meshctl, store, "list").strip() == "0 keys"


def test_a_key_expires_after_its_ttl_and_is_swept_from_the_store(meshctl, tmp_path, mesh):
    store = f"sqlite:{tmp_path / 's.db'}"
    service = _service(state='{key: "{{ data.player }}", ttl: 10m}')
    events = _events(("ann", 0), ("ann", 300), ("bob", 400), ("ann", 1000), ("bob", 2000))
    _, emitted, _ = _run(meshctl, tmp_path, mesh(service), events, "--store", store)
    # ann's key lived 10 minutes after its write at 300s: at 1000s it had expired
    assert _counts(emitted) == [("ann", 1), ("ann", 2), ("bob", 1), ("ann", 1), ("bob", 1)]
    listed = json.loads(_state(meshctl, store, "list", "--format", "json"))
    # bob's write at 2000s swept ann's key, expired since 1600s
    assert [(e["key"], e["expired"], e["expires"]) for e in listed] == [
        ("bob", False, "2026-01-01T00:43:20Z")]


def test_validate_locates_a_bad_state_declaration(tmp_path, write, diagnostics):
    (tmp_path / "handlers.py").write_text(HANDLERS)
    path = write(TYPES + _service(state='{key: "{{ data.player", schema: {type: wrong}}'))
    found = diagnostics(path)
    assert any(code == "bad-event-schema" for *_, code in found), found
    fixed = write(TYPES + _service(state='{key: "{{ data.player", ttl: 0s}'))
    found = diagnostics(fixed)
    assert [(sev, code) for _, _, sev, code in found if sev == "error"] == [("error", "bad-value")], found
    good_ttl = write(TYPES + _service(state='{key: "{{ data.player"}'))
    found = diagnostics(good_ttl)
    errors = [(sev, code) for _, _, sev, code in found if sev == "error"]
    assert errors == [("error", "template-syntax")], found
    line = (TYPES + _service()).lstrip("\n").splitlines().index('  state: {key: "{{ data.player }}"}') + 1
    assert [(ln, col) for ln, col, _, code in found if code == "template-syntax"] == [(line, 16)]


# --- meshctl state ------------------------------------------------------------------------------

def test_state_list_show_and_delete(meshctl, tmp_path, mesh):
    store = f"sqlite:{tmp_path / 's.db'}"
    _run(meshctl, tmp_path, mesh(_service()), _events(("ann", 1), ("bob", 2), ("ann", 3)), "--store", store)
    listed = _state(meshctl, store, "list").splitlines()
    assert listed[-1] == "2 keys"
    assert listed[0].startswith("service:scorer  ann  7 B  updated 2026-01-01T00:00:03Z")
    shown = json.loads(_state(meshctl, store, "show", "scorer", "ann"))
    assert shown["value"] == {"n": 2} and shown["owner"] == "service:scorer" and shown["expires"] is None
    assert "deleted" in _state(meshctl, store, "delete", "service:scorer", "ann")
    listed = json.loads(_state(meshctl, store, "list", "--format", "json", "--owner", "scorer"))
    assert [e["key"] for e in listed] == ["bob"]
    result = meshctl("state", "show", "--store", store, "scorer", "ann")
    assert result.exit_code == 2 and "has no state key 'ann'" in result.output


def test_state_commands_name_what_is_wrong(meshctl, tmp_path, mesh):
    store = f"sqlite:{tmp_path / 's.db'}"
    _run(meshctl, tmp_path, mesh(_service()), _events(("ann", 1)), "--store", store)
    result = meshctl("state", "show", "--store", store, "scorer", "anne")
    assert result.exit_code == 2 and "has no state key 'anne'" in result.output and "'ann'" in result.output
    result = meshctl("state", "delete", "--store", store, "scorr", "ann")
    assert result.exit_code == 2 and "no state of 'scorr'" in result.output and "'scorer'" in result.output
    result = meshctl("state", "list", "--store", f"sqlite:{tmp_path / 'none.db'}")
    assert result.exit_code == 2 and "none.db" in result.output


# --- durable stores -----------------------------------------------------------------------------

def test_state_on_redis_is_the_state_on_sqlite(meshctl, tmp_path, mesh, redis_url):
    events = _events(*[(p, i, {"fail_first": i % 5 == 0}) for i, p in enumerate(["ann", "bob", "cy"] * 20)])
    mesh_dir = mesh(_service(after="        - sleep: 2s"))
    _, on_sqlite, _ = _run(meshctl, tmp_path, mesh_dir, events, "--store", f"sqlite:{tmp_path / 's.db'}")
    _, on_redis, _ = _run(meshctl, tmp_path, mesh_dir, events, "--store", redis_url)
    assert on_redis == on_sqlite and len(on_sqlite) == 60
    assert _state(meshctl, redis_url, "list") == _state(meshctl, f"sqlite:{tmp_path / 's.db'}", "list")


def test_the_html_view_has_a_keyed_state_table(meshctl, tmp_path, mesh):
    path = mesh(_service(state='{key: "{{ data.player }}", ttl: 2h, max_bytes: 512, '
                              'schema: {required: [n], properties: {n: {type: integer}}}}'))
    result = meshctl("render", path, "--format", "html", "-o", tmp_path / "view.html")
    assert result.exit_code == 0, result.output
    page = (tmp_path / "view.html").read_text()
    table = page[page.index("Keyed state <small>(1)</small>"):]
    table = table[:table.index("</table>")]
    assert ("<td>service scorer</td><td>{{ data.player }}</td><td>120m</td><td>512 B</td><td>n*</td>"
            in table), table
