"""What a simple `when` condition says about an event whose data is partly known before run time.

Loop analysis prunes a hop when the consumer cannot accept what the producer emits. A `match`
pattern is one way to say so; a `when` such as ``data.status == 'failed'`` is another. This
module decides such a condition on the constant parts of an ``emit``, in three values: true,
false, or unknown (None). Only a small, exact subset is reasoned about: comparisons (``==``,
``!=``, ``in``, ``not in``, ``<``, ``<=``, ``>``, ``>=``) of one field of ``data`` (or
``event.data``) against a constant, combined with ``and``, ``or`` and ``not``. Anything else
(filters, calls, other variables, a field the emit leaves to a template or does not set) is
unknown, and an unknown condition never prunes.

>>> condition("data.kind == 'a' and data.n > 2").decide({"kind": "a", "n": 1}, object())
(False, ('data.n is 1',))
>>> condition("data.kind == 'a' or data.x|length > 2").decide({"kind": "b"}, object())
(None, ())
"""
from __future__ import annotations

import operator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable

import jinja2
from jinja2 import nodes

MAX_CONDITION = 2_000  # characters: a longer `when` is not reasoned about (unknown)

_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "eq": operator.eq, "ne": operator.ne, "lt": operator.lt, "lteq": operator.le, "gt": operator.gt,
    "gteq": operator.ge, "in": lambda a, b: a in b, "notin": lambda a, b: a not in b,
}
_ORDERED = ("lt", "lteq", "gt", "gteq")

Verdict = tuple["bool | None", tuple[str, ...]]  # (true / false / unknown, the facts that decided it)


@dataclass(frozen=True, slots=True)
class Condition:
    """A parsed `when`; :meth:`decide` judges it on an emit's data."""

    text: str
    tree: Any  # a jinja2 expression node, or None when the text is not understood

    def decide(self, data: Any, unknown: object) -> Verdict:
        """(True/False/None, facts such as ``data.kind is 'a'`` that decided it) for an event
        whose data is *data*; *unknown* marks a value only known at run time."""
        if self.tree is None:
            return None, ()
        return _decide(self.tree, data, unknown)

    def rejects(self, data: Any, unknown: object) -> str | None:
        """Why this condition is false for that data, or None if it may hold."""
        verdict, facts = self.decide(data, unknown)
        return (
            None
            if verdict is not False
            else f"{', '.join(facts)} in the emit; the `when` ({self.text}) is false"
        )

    def equality(self) -> tuple[tuple, tuple] | None:
        """``(path, constants)`` when the condition requires ``data.<path>`` to equal one of
        *constants* (``==`` or ``in [...]``, alone or as one term of an ``and``): data whose
        constant there equals none of them makes it false."""
        terms, found = [self.tree], None
        while terms and found is None:
            node = terms.pop(0)
            if isinstance(node, nodes.And):
                terms += [node.left, node.right]
            elif isinstance(node, nodes.Compare) and len(node.ops) == 1 and node.ops[0].op in ("eq", "in"):
                found = _equality(node)
        return found


def _equality(node: nodes.Compare) -> tuple[tuple, tuple] | None:
    path = _field(node.expr)
    try:
        constant = node.ops[0].expr.as_const()
    except Exception:  # noqa: BLE001 - not a constant
        return None
    constants = (constant,) if node.ops[0].op == "eq" else constant
    if path is None or not isinstance(constants, (list, tuple)):
        return None
    try:
        hash(tuple(constants))
    except TypeError:
        return None
    return path, tuple(constants)


def condition(text: str) -> Condition:
    return _parse(text.strip())


@lru_cache(maxsize=4096)
def _parse(text: str) -> Condition:
    body = text
    if body.startswith("{{") and body.endswith("}}") and body.count("{{") == 1 and "{%" not in body:
        body = body[2:-2]
    elif "{{" in body or "{%" in body:
        return Condition(text, None)  # a template with text around its expressions: not reasoned about
    if len(body) > MAX_CONDITION:
        return Condition(text, None)
    try:
        parsed = jinja2.Environment().parse("{{ " + body + " }}")  # parsed only, never run
    except (jinja2.TemplateSyntaxError, RecursionError, MemoryError):
        return Condition(text, None)  # a syntax error is reported by check_templates
    if (
        len(parsed.body) != 1
        or not isinstance(parsed.body[0], nodes.Output)
        or len(parsed.body[0].nodes) != 1
    ):
        return Condition(text, None)
    return Condition(text, parsed.body[0].nodes[0])


def _decide(node: Any, data: Any, unknown: object) -> Verdict:
    if isinstance(node, (nodes.And, nodes.Or)):
        # the value that settles it alone: true for `or`, false for `and`
        decisive = isinstance(node, nodes.Or)
        left, left_facts = _decide(node.left, data, unknown)
        if left is decisive:
            return decisive, left_facts
        right, right_facts = _decide(node.right, data, unknown)
        if right is decisive:
            return decisive, right_facts
        if left is None or right is None:
            return None, ()
        return not decisive, tuple(dict.fromkeys(left_facts + right_facts))
    if isinstance(node, nodes.Not):
        inner, facts = _decide(node.node, data, unknown)
        return (None, ()) if inner is None else (not inner, facts)
    if isinstance(node, nodes.Compare) and len(node.ops) == 1:
        return _compare(node, data, unknown)
    return None, ()


def _compare(node: nodes.Compare, data: Any, unknown: object) -> Verdict:
    path = _field(node.expr)
    operand = node.ops[0]
    if path is None or operand.op not in _COMPARE:
        return None, ()
    try:
        constant = operand.expr.as_const()
    except Exception:  # noqa: BLE001 - anything not a constant (nodes.Impossible) is unknown
        return None, ()
    value = _value(data, path, unknown)
    if value is unknown or not _comparable(operand.op, value, constant):
        return None, ()
    try:
        holds = bool(_COMPARE[operand.op](value, constant))
    except Exception:  # noqa: BLE001 - a comparison that fails at run time decides nothing here
        return None, ()
    return holds, ("data" + "".join(f".{p}" for p in path) + f" is {value!r}",)


def _field(node: Any) -> tuple | None:
    """The path under ``data`` that *node* reads (``data.a['b']``, ``event.data.a``), or None."""
    path: list = []
    while isinstance(node, (nodes.Getattr, nodes.Getitem)):
        if isinstance(node, nodes.Getattr):
            path.append(node.attr)
        elif isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, (str, int)):
            path.append(node.arg.value)
        else:
            return None
        node = node.node
    if not isinstance(node, nodes.Name):
        return None
    path.reverse()
    if node.name == "data":
        return tuple(path)
    if node.name == "event" and path[:1] == ["data"]:
        return tuple(path[1:])
    return None


def _value(data: Any, path: tuple, unknown: object) -> Any:
    """The constant at *path*, or *unknown* when a template decides it or the emit does not set it."""
    node = data
    for part in path:
        if isinstance(node, dict) and isinstance(part, str) and part in node:
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and -len(node) <= part < len(node):
            node = node[part]
        else:
            return unknown  # absent (an undefined value), or under a template
    return unknown if _holds_unknown(node, unknown) else node


def _holds_unknown(value: Any, unknown: object) -> bool:
    if value is unknown:
        return True
    if isinstance(value, dict):
        return any(_holds_unknown(v, unknown) for v in value.values())
    if isinstance(value, list):
        return any(_holds_unknown(v, unknown) for v in value)
    return False


def _comparable(op: str, value: Any, constant: Any) -> bool:
    """Whether Python's answer is the run-time answer: ordering only between two numbers or two strings."""
    if op in ("in", "notin"):
        return isinstance(constant, (list, tuple, str)) and (
            isinstance(value, str) or not isinstance(constant, str)
        )
    if op in _ORDERED:
        numbers = all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in (value, constant))
        return numbers or (isinstance(value, str) and isinstance(constant, str))
    return True
