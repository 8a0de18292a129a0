"""Invariants (`kind: Check`): located problems from `meshctl validate`, each form judged by
the evaluator (holding and violated), and the verdicts of `meshctl run` and `meshctl test`."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.analysis.validate import check_mesh
from engine.core.eventtime import parse
from engine.runtime.interpreter import Runtime
from engine.runtime.invariants import History, Invariants, Violation, state_of

TYPES = """
apiVersion: meshctl/v1
kind: EventType
metadata: {name: order.placed}
spec:
  external: true
  schema:
    type: object
    properties: {order_id: {type: string}, qty: {type: integer}}
    additionalProperties: false
---
apiVersion: meshctl/v1
kind: EventType
metadata: {name: order.shipped}
---
apiVersion: meshctl/v1
kind: EventType
metadata: {name: order.refunded}
spec: {external: true}
---
apiVersion: meshctl/v1
kind: Service
metadata: {name: shop}
spec:
  state: {key: "{{ data.order_id }}"}
  subscriptions:
    - on: order.placed
      emits: [order.shipped]
      do: {emit: {type: order.shipped, data: {order_id: "{{ data.order_id }}", qty: "{{ data.qty }}"}}}
    - on: order.refunded
      do: {log: refunded}
    - on: order.shipped
      do: {log: shipped}
---
"""
TYPE_LINES = TYPES.count("\n") - 1  # lines of TYPES once written (dedented, first newline dropped)


def check(invariants: str) -> str:
    """A mesh: TYPES and one Check whose `invariants:` list is *invariants* (indented 4)."""
    head = "apiVersion: meshctl/v1\nkind: Check\nmetadata: {name: orders}\nspec:\n  invariants:\n"
    return TYPES + head + invariants


def line(n: int) -> int:
    """The file line of line *n* (1-based) of the invariants text given to :func:`check`."""
    return TYPE_LINES + 5 + n


# --- validate ------------------------------------------------------------------------------------


def test_a_valid_check(write, meshctl):
    path = write(check('    - never: [order.shipped, order.refunded]\n      per: "{{ data.order_id }}"\n'))
    result = meshctl("validate", path)
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(("invariants", "expected"), [
    # an unknown type in a selector, with the closest declared one
    ("    - never: [order.shiped]\n", [(1, 15, "error", "unknown-event-type")]),
    ("    - always: {type: order.plaed}\n      that: x\n", [(1, 22, "error", "unknown-event-type")]),
    # two forms; none; a partner missing; a key of another form; `per` with `state`
    ("    - never: [order.placed]\n      always: order.placed\n      that: x\n",
     [(2, 7, "error", "invariant-form")]),
    ("    - name: nothing\n", [(1, 7, "error", "invariant-form")]),
    ("    - after: order.placed\n      within: 1h\n", [(1, 7, "error", "invariant-form")]),
    ("    - never: [order.placed]\n      within: 1h\n", [(2, 7, "error", "invariant-form")]),
    ('    - state: service:shop\n      that: "{{ value.n > 0 }}"\n      per: "{{ data.x }}"\n',
     [(3, 7, "error", "invariant-form")]),
    # a duration too short, or not a duration
    ("    - after: order.placed\n      eventually: order.shipped\n      within: 0.0001\n",
     [(3, 15, "error", "bad-value")]),
    ("    - after: order.placed\n      eventually: order.shipped\n      within: soon\n",
     [(3, 15, "error", "bad-value")]),
    # at_most below 1
    ("    - at_most: 0\n      open: order.placed\n      close: order.shipped\n",
     [(1, 16, "error", "bad-value")]),
    # two invariants of one name
    ("    - name: one\n      never: [order.placed]\n    - name: one\n      never: [order.shipped]\n",
     [(3, 7, "error", "duplicate-name")]),
    # templates that do not compile: per, when, that, value
    ('    - never: [order.placed]\n      per: "{{ data.order_id }"\n', [(2, 12, "error", "template-syntax")]),
    ("    - always: {type: order.placed, when: \"data.qty ==\"}\n      that: data.qty > 0\n",
     [(1, 42, "error", "template-syntax")]),
    ("    - always: order.placed\n      that: \"{{ data.qty > }}\"\n", [(2, 13, "error", "template-syntax")]),
    ('    - total: {of: order.placed, value: "{{ data.qty + }}"}\n'
     '      equals: {of: order.shipped, value: "{{ data.qty }}"}\n', [(1, 40, "error", "template-syntax")]),
    # a field the event type's schema cannot have
    ('    - always: order.placed\n      that: "{{ data.price > 0 }}"\n', [(2, 13, "error", "unknown-field")]),
    # a bad pattern, at its key
    ("    - never: [{type: order.placed, match: {data: {qty: [{numbr: 1}]}}}]\n",
     [(1, 58, "error", "bad-pattern")]),
    # state owners: unknown (did you mean), or without state
    ('    - state: service:shopp\n      that: "{{ value.n > 0 }}"\n',
     [(1, 14, "error", "unknown-state-owner")]),
    ('    - state: orchestration:shop\n      that: "{{ value.n > 0 }}"\n',
     [(1, 14, "error", "unknown-state-owner")]),
    # a `per` that reads nothing of the event
    ('    - never: [order.placed]\n      per: "all"\n', [(2, 12, "warning", "per-reads-nothing")]),
])
def test_each_problem_is_located(write, diagnostics, invariants, expected):
    found = [d for d in diagnostics(write(check(invariants))) if d[3] != "unconsumed-event"]
    assert found == [(line(n), col, severity, code) for n, col, severity, code in expected]


def test_messages_name_the_culprit_and_suggest(write, meshctl):
    path = write(check("    - never: [order.shiped]\n    - state: service:shopp\n      that: x\n"))
    output = meshctl("validate", path).output
    assert f"{path}:{line(1)}:15: error[unknown-event-type]: unknown event type 'order.shiped'" in output
    assert "did you mean 'order.shipped'?" in output
    assert "did you mean 'service:shop'?" in output
    path = write(check("    - after: order.placed\n      eventually: order.shipped\n"
                       "      open: order.placed\n"))
    assert f"{path}:{line(3)}:7: error[invariant-form]: `open` does not belong to an invariant of the form " \
           "`after`" in meshctl("validate", path).output


def test_a_service_without_state_is_said_so(write, meshctl):
    path = write(check('    - state: service:shop\n      that: x\n').replace(
        '  state: {key: "{{ data.order_id }}"}\n', ""))
    assert "service 'shop' declares no `state:`" in meshctl("validate", path).output


def test_the_model_keeps_forms_names_and_locations(write):
    path = write(check('    - never: [order.placed, order.refunded]\n      per: "{{ data.order_id }}"\n'
                       "    - name: settles\n      after: order.placed\n      eventually: [order.shipped]\n"
                       "      within: 1h\n"))
    mesh = check_mesh(str(path)).mesh
    first, second = mesh.checks["orders"].invariants
    assert (first.name, first.form, [s.type.name for s in first.never]) == (
        "orders#1", "never", ["order.placed", "order.refunded"])
    assert (second.name, second.form, second.within) == ("settles", "eventually", 3600.0)
    assert (first.loc.line, first.loc.col, second.loc.line) == (line(1), 7, line(3))


# --- the evaluator ---------------------------------------------------------------------------------

T0 = "2026-03-02T09:00:00Z"


def at(minutes: float) -> float:
    return parse(T0) + minutes * 60


def judged(write, invariants: str, events, end: float | None = None, state=None) -> list[Violation]:
    """Judge *invariants* on a history of (minutes after T0, id, type, data) entries."""
    mesh = check_mesh(str(write(check(invariants)))).mesh
    history = History()
    for minutes, event_id, kind, data in events:
        history.emitted(at(minutes), {"id": event_id, "type": kind, "data": data})
    last = history.records[-1][0] if history.records else at(0)
    values = state or {}
    return Invariants(mesh).check(history.records, last if end is None else end,
                                  lambda owner: values.get(owner, {}))


NEVER = '    - never: [order.shipped, order.refunded]\n      per: "{{ data.order_id }}"\n'


def test_never_holds_for_other_keys_and_breaks_for_one(write):
    events = [(0, "s1", "order.shipped", {"order_id": "a"}), (5, "r1", "order.refunded", {"order_id": "b"})]
    assert judged(write, NEVER, events) == []
    events.append((7, "r2", "order.refunded", {"order_id": "a"}))
    (violation,) = judged(write, NEVER, events)
    assert (violation.check, violation.invariant, violation.key, violation.events) == (
        "orders", "orders#1", "a", ("s1", "r2"))
    assert violation.message == ("both s1 (order.shipped at 2026-03-02T09:00:00Z) and r2 (order.refunded at "
                                 "2026-03-02T09:07:00Z) happened")
    assert (violation.loc.line, violation.loc.col) == (line(1), 7)


def test_never_of_one_selector_with_match_and_when(write):
    invariants = ("    - never:\n"
                  "        - {type: order.placed, match: {data: {qty: [{numeric: ['>', 10]}]}}, "
                  "when: \"data.order_id != 'vip'\"}\n")
    events = [(0, "p1", "order.placed", {"order_id": "vip", "qty": 50}),
              (1, "p2", "order.placed", {"order_id": "x", "qty": 5})]
    assert judged(write, invariants, events) == []
    events.append((2, "p3", "order.placed", {"order_id": "y", "qty": 11}))
    (violation,) = judged(write, invariants, events)
    assert violation.events == ("p3",) and violation.key is None
    assert violation.message == "p3 (order.placed at 2026-03-02T09:02:00Z) happened"


AT_MOST = ('    - at_most: 1\n      open: order.placed\n      close: [order.shipped, order.refunded]\n'
           '      per: "{{ data.order_id }}"\n')


def test_at_most_counts_what_is_open_per_key(write):
    events = [(0, "p1", "order.placed", {"order_id": "a"}), (1, "p2", "order.placed", {"order_id": "b"}),
              (2, "s1", "order.shipped", {"order_id": "a"}), (3, "p3", "order.placed", {"order_id": "a"})]
    assert judged(write, AT_MOST, events) == []
    (violation,) = judged(write, AT_MOST, events + [(4, "p4", "order.placed", {"order_id": "a"}),
                                                    (5, "p5", "order.placed", {"order_id": "a"})])
    assert (violation.key, violation.events) == ("a", ("p3", "p4"))  # reported once, when it first broke
    assert violation.message.startswith(
        "2 open at once, at most 1: p3 (order.placed at 2026-03-02T09:03:00Z), p4 (")


EVENTUALLY = ('    - after: order.placed\n      eventually: [order.shipped, order.refunded]\n'
              '      within: 1h\n      per: "{{ data.order_id }}"\n')


def test_eventually_within_a_bound(write):
    events = [(0, "p1", "order.placed", {"order_id": "a"}), (60, "s1", "order.shipped", {"order_id": "a"}),
              (70, "p2", "order.placed", {"order_id": "b"}), (90, "r2", "order.refunded", {"order_id": "b"})]
    assert judged(write, EVENTUALLY, events) == []


def test_eventually_too_late_and_never(write):
    events = [(0, "p1", "order.placed", {"order_id": "a"}), (1, "p2", "order.placed", {"order_id": "b"}),
              (61, "s1", "order.shipped", {"order_id": "a"}), (62, "s0", "order.shipped", {"order_id": "c"})]
    late, never = judged(write, EVENTUALLY, events, end=at(65))
    assert (late.key, late.events) == ("a", ("p1", "s1"))
    assert late.message == ("p1 (order.placed at 2026-03-02T09:00:00Z) was followed by s1 (order.shipped at "
                            "2026-03-02T10:01:00Z) only 61m later, not within 1h")
    assert (never.key, never.events) == ("b", ("p2",))
    assert never.message == ("p2 (order.placed at 2026-03-02T09:01:00Z) was not followed by order.shipped, "
                             "order.refunded by the end of the run at 2026-03-02T10:05:00Z "
                             "(64m later; within 1h)")


def test_eventually_without_within_still_needs_a_follow_up(write):
    invariants = "    - after: order.placed\n      eventually: order.shipped\n"
    events = [(0, "p1", "order.placed", {}), (600, "s1", "order.shipped", {})]
    assert judged(write, invariants, events) == []
    (violation,) = judged(write, invariants, events + [(601, "p2", "order.placed", {})], end=at(601))
    assert violation.events == ("p2",) and "by the end of the run" in violation.message


TOTAL = ('    - total: {of: order.placed, value: "{{ data.qty }}"}\n'
         '      equals: {of: order.shipped, value: "{{ data.qty }}"}\n      per: "{{ data.order_id }}"\n')


def test_total_equals_per_key(write):
    events = [(0, "p1", "order.placed", {"order_id": "a", "qty": 2}),
              (1, "p2", "order.placed", {"order_id": "a", "qty": 3}),
              (2, "s1", "order.shipped", {"order_id": "a", "qty": 5})]
    assert judged(write, TOTAL, events) == []
    (violation,) = judged(write, TOTAL, events + [(3, "p3", "order.placed", {"order_id": "b", "qty": 1})])
    assert (violation.key, violation.events) == ("b", ("p3",))
    assert violation.message == ("the sum of order.placed is 1 (1 event) but the sum of order.shipped is 0 "
                                 "(0 events)")


def test_an_event_sent_again_is_counted_once(write):
    """Same source and id: the same event, as to every consumer. Its repeat after the follow-up
    is not an order of its own, and adds nothing to a sum; another id is another event."""
    placed = {"order_id": "a", "qty": 2}
    events = [(0, "p1", "order.placed", placed), (5, "s1", "order.shipped", placed),
              (9, "p1", "order.placed", placed)]
    assert judged(write, EVENTUALLY, events) == [] and judged(write, TOTAL, events) == []
    again = events + [(10, "p2", "order.placed", placed)]
    assert [v.events for v in judged(write, EVENTUALLY, again)] == [("p2",)]
    assert [v.key for v in judged(write, TOTAL, again)] == ["a"]


def test_a_value_that_is_not_a_number_cannot_be_judged(write):
    events = [(0, "p1", "order.placed", {"order_id": "a", "qty": "two"})]
    (violation,) = judged(write, TOTAL, events)
    assert violation.message.startswith("cannot be judged on event p1 at 2026-03-02T09:00:00Z:")
    assert "`value` is 'two', not a number" in violation.message


ALWAYS = '    - always: order.placed\n      that: "{{ data.qty > 0 }}"\n'


def test_always_that(write):
    events = [(0, "p1", "order.placed", {"qty": 1}), (1, "p2", "order.placed", {"qty": 0}),
              (2, "p3", "order.placed", {"qty": -1})]
    assert judged(write, ALWAYS, events[:1]) == []
    first, second = judged(write, ALWAYS, events)
    assert (first.events, second.events) == (("p2",), ("p3",))
    assert first.message == "p2 (order.placed at 2026-03-02T09:01:00Z) does not satisfy {{ data.qty > 0 }}"


def test_a_per_that_fails_makes_the_invariant_unjudged(write):
    (violation,) = judged(write, NEVER, [(0, "s1", "order.shipped", {})])
    assert violation.message.startswith("cannot be judged on event s1 at 2026-03-02T09:00:00Z:")
    assert violation.events == ()


STATE = '    - state: service:shop\n      that: "{{ value.on_hand >= 0 }}"\n'


def test_state_that(write):
    assert judged(write, STATE, [], state={"service:shop": {"a": {"on_hand": 0}}}) == []
    found = judged(write, STATE, [], state={"service:shop": {"b": {"on_hand": -1}, "a": {"on_hand": -2}}})
    assert [(v.key, v.events) for v in found] == [("a", ()), ("b", ())]
    assert found[0].message == ('the value of service:shop key a at the end of the run '
                                '(2026-03-02T09:00:00Z) '
                                'does not satisfy {{ value.on_hand >= 0 }}: {"on_hand":-2}')


def test_violations_come_in_declaration_order_then_first_event(write):
    invariants = ALWAYS + NEVER
    events = [(0, "s1", "order.shipped", {"order_id": "b"}), (1, "s2", "order.shipped", {"order_id": "a"}),
              (2, "r2", "order.refunded", {"order_id": "a"}), (3, "r1", "order.refunded", {"order_id": "b"}),
              (4, "p1", "order.placed", {"qty": 0})]
    found = judged(write, invariants, events)
    assert [(v.invariant, v.key) for v in found] == [("orders#1", None), ("orders#2", "b"), ("orders#2", "a")]
    assert found[1].as_dict() == {
        "check": "orders", "invariant": "orders#2", "file": found[1].loc.file, "line": line(3), "col": 7,
        "key": "b", "message": found[1].message, "events": ["s1", "r1"]}


def test_one_compiled_set_judges_many_runs(write):
    mesh = check_mesh(str(write(check(NEVER + ALWAYS)))).mesh
    invariants = Invariants(mesh)
    assert invariants.declared == 2
    broken = [(at(0), "emitted", {"id": "s", "type": "order.shipped", "data": {"order_id": "a"}}),
              (at(1), "input", {"id": "r", "type": "order.refunded", "data": {"order_id": "a"}})]
    for _ in range(3):
        assert len(invariants.check(broken, at(1), lambda owner: {})) == 1
        assert invariants.check(broken[:1], at(1), lambda owner: {}) == []


def test_history_follows_a_runtime(write):
    """Inputs at the clock time they enter, emitted events at theirs; an on_emit set before still hears."""
    mesh = check_mesh(str(write(check(NEVER)))).mesh
    heard: list[dict] = []
    runtime = Runtime(mesh, on_emit=heard.append)
    history = History()
    history.follow(runtime)
    runtime.run([{"type": "order.placed", "id": "p1", "time": T0, "data": {"order_id": "a", "qty": 1}},
                 {"type": "order.refunded", "id": "r1", "time": "2026-03-02T09:30:00Z",
                  "data": {"order_id": "a"}}])
    assert [(t, origin, e["type"]) for t, origin, e in history.records] == [
        (at(0), "input", "order.placed"), (at(0), "emitted", "order.shipped"),
        (at(30), "input", "order.refunded")]
    assert [e["type"] for e in heard] == ["order.shipped"]
    now = runtime.clock.now()
    (violation,) = Invariants(mesh).check(history.records, now, state_of(runtime.store, now))
    assert violation.events[1] == "r1"


# --- meshctl run and meshctl test ------------------------------------------------------------------

REPO_EXAMPLE = "docs/examples/invariants"


def events_file(write, *records: dict):
    return write("\n".join(json.dumps(r) for r in records) + "\n", "events.jsonl")


PLACED = {"type": "order.placed", "time": T0, "data": {"order_id": "a", "qty": 1}}
REFUNDED = {"type": "order.refunded", "time": "2026-03-02T09:30:00Z", "data": {"order_id": "a"}}


def test_run_prints_the_count_and_exits_0_when_every_invariant_holds(write, meshctl):
    path = write(check(NEVER + ALWAYS))
    result = meshctl("run", path.parent, "--events", events_file(write, PLACED))
    assert result.exit_code == 0, result.output
    assert "invariants: 2 checked, 0 violated\n" in result.stdout
    assert "invariant violated" not in result.stderr


def test_run_prints_each_violation_located_and_exits_3(write, meshctl):
    path = write(check(NEVER + ALWAYS))
    empty = {**PLACED, "data": {"order_id": "a", "qty": 0}}
    result = meshctl("run", path.parent, "--events", events_file(write, empty, REFUNDED))
    assert result.exit_code == 3
    assert "invariants: 2 checked, 2 violated\n" in result.stdout
    lines = [x for x in result.stderr.splitlines() if "invariant violated" in x]
    assert lines[0].startswith(f"{path}:{line(1)}:7: invariant violated: orders/orders#1 [key a]: both ")
    assert lines[0].endswith("and input-2 (order.refunded at 2026-03-02T09:30:00Z) happened")
    assert lines[1] == (f"{path}:{line(3)}:7: invariant violated: orders/orders#2: input-1 (order.placed at "
                        "2026-03-02T09:00:00Z) does not satisfy {{ data.qty > 0 }}")


def test_run_summary_in_json_has_the_counts(write, meshctl):
    path = write(check(NEVER))
    result = meshctl("run", path.parent, "--events", events_file(write, PLACED, REFUNDED), "--format", "json")
    assert result.exit_code == 3
    assert json.loads(result.stdout)["invariants"] == {"checked": 1, "violated": 1}


def test_a_durable_run_is_judged_and_a_resumed_one_is_not(write, meshctl, tmp_path):
    path = write(check(NEVER))
    events, store = events_file(write, PLACED, REFUNDED), f"sqlite:{tmp_path / 'run.db'}"
    first = meshctl("run", path.parent, "--events", events, "--store", store)
    assert first.exit_code == 3 and "invariants: 1 checked, 1 violated" in first.stdout
    again = meshctl("run", path.parent, "--events", events, "--store", store, "--resume")
    assert again.exit_code == 0 and "invariants:" not in again.stdout
    assert "meshctl run: invariants not checked: a resumed run does not have the history" in again.stderr


def test_run_of_a_mesh_without_checks_says_nothing_of_invariants(write, meshctl):
    path = write(TYPES.rstrip("-\n") + "\n")
    result = meshctl("run", path.parent, "--events", events_file(write, PLACED, REFUNDED), "--format", "json")
    assert result.exit_code == 0 and "invariants" not in json.loads(result.stdout)


def test_run_judges_the_state_a_handler_leaves(meshctl, tmp_path):
    """The docs example: stock is kept by a Python handler; a refund of a shipped order breaks a rule."""
    from pathlib import Path

    example = Path(__file__).resolve().parent.parent / REPO_EXAMPLE
    held = meshctl("run", example, "--events", example / "events.jsonl")
    assert held.exit_code == 0, held.output
    assert "invariants: 6 checked, 0 violated" in held.stdout
    broken = meshctl("run", example, "--events", example / "refund.jsonl")
    assert broken.exit_code == 3
    assert "shop/a shipped order is never refunded [key o-1]" in broken.stderr


def test_run_of_a_negative_stock_breaks_the_state_invariant(meshctl, tmp_path):
    from pathlib import Path

    example = Path(__file__).resolve().parent.parent / REPO_EXAMPLE
    for name in ("mesh.yaml", "warehouse.py"):
        (tmp_path / name).write_text((example / name).read_text())
    handler = tmp_path / "warehouse.py"
    handler.write_text(handler.read_text().replace("if data[\"qty\"] > on_hand:", "if False:"))
    events = tmp_path / "events.jsonl"
    events.write_text(json.dumps({"type": "order.placed", "time": T0,
                                  "data": {"order_id": "o-1", "sku": "mug", "qty": 7}}) + "\n")
    result = meshctl("run", tmp_path, "--events", events)
    assert result.exit_code == 3
    assert ("shop/stock is never negative [key mug]: the value of service:warehouse key mug at the end of "
            "the run (2026-03-02T09:00:00Z) does not satisfy {{ value.on_hand >= 0 }}: {\"on_hand\":-2}"
            ) in result.stderr


TESTS = """
tests:
  - name: holds
    given: [{type: order.placed, time: "2026-03-02T09:00:00Z", data: {order_id: a, qty: 1}}]
    expect: {invariants: hold}
  - name: refunded after shipping
    given:
      - {type: order.placed, time: "2026-03-02T09:00:00Z", data: {order_id: a, qty: 1}}
      - {type: order.refunded, time: "2026-03-02T09:30:00Z", data: {order_id: a}}
    expect: {invariants: violated}
  - name: broken in the then phase
    given: [{type: order.placed, time: "2026-03-02T09:00:00Z", data: {order_id: a, qty: 1}}]
    expect: {invariants: hold}
    then:
      given: [{type: order.refunded, time: "2026-03-02T09:30:00Z", data: {order_id: a}}]
      expect: {invariants: violated}
"""


def test_meshctl_test_expects_invariants_to_hold_or_be_violated(write, meshctl):
    write(check(NEVER))
    result = meshctl("test", write(TESTS, "orders.test.yaml"))
    assert result.exit_code == 0, result.output
    assert result.output.endswith("3 passed, 0 failed\n")


def test_meshctl_test_failures_list_the_violations(write, meshctl):
    write(check(NEVER))
    swapped = TESTS.replace("{invariants: violated}", "{invariants: hold}", 1).replace(
        "expect: {invariants: hold}", "expect: {invariants: violated}", 1)
    path = write(swapped, "orders.test.yaml")
    result = meshctl("test", path)
    assert result.exit_code == 1
    output = result.output
    assert f"{path}:4:26: expect.invariants: expected an invariant to be violated, all 1 held" in output
    assert f"{path}:9:26: expect.invariants: expected every invariant to hold, 1 violation(s)" in output
    assert "      orders/orders#1 [key a]: both " in result.output


def test_meshctl_test_of_a_mesh_without_invariants(write, meshctl):
    write(TYPES.rstrip("-\n") + "\n")
    result = meshctl("test", write(TESTS, "orders.test.yaml"))
    assert result.exit_code == 1
    assert "the mesh declares no invariants (`kind: Check`) to judge" in result.output


def test_the_docs_example_tests_pass(meshctl):
    from pathlib import Path

    result = meshctl("test", Path(__file__).resolve().parent.parent / REPO_EXAMPLE)
    assert result.exit_code == 0, result.output


def test_a_history_keeps_only_what_invariants_read_and_lets_go_past_its_limit():
    history = History(frozenset({"a"}), limit=2)
    history.input(1.0, {"type": "b", "id": "1"})
    history.input(2.0, {"type": "a", "id": "2"})
    history.emitted(3.0, {"type": "a", "id": "3"})
    assert [r[2]["id"] for r in history.records] == ["2", "3"] and not history.overflowed
    history.emitted(4.0, {"type": "a", "id": "4"})
    assert history.overflowed and history.records == []
    history.emitted(5.0, {"type": "a", "id": "5"})
    assert history.records == []


def test_run_does_not_judge_a_run_too_long_to_keep_its_history(meshctl, monkeypatch, tmp_path):
    import engine.commands.runs as runs

    monkeypatch.setattr(runs, "HISTORY_LIMIT", 1)
    shop = Path(__file__).resolve().parents[1] / REPO_EXAMPLE
    result = meshctl("run", shop, "--events", shop / "refund.jsonl")  # breaks one, were it judged
    assert result.exit_code == 0, result.output
    assert "invariants not checked: the run had more than 1 events" in result.output
    assert "invariants: 6 not checked (the run was too long: see above)" in result.output
