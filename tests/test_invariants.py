"""Invariants (`kind: Check`): located problems from `meshctl validate`, each form judged by
the evaluator (holding and violated), and the verdicts of `meshctl run` and `meshctl test`."""
from __future__ import annotations

import pytest

from engine.analysis.validate import check_mesh

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
