"""Short human summaries of model parts (a retry policy, an action, a window).

Shared by the diagram (node sublabels) and the HTML tables, so both say the same thing in
the same words.
"""
from __future__ import annotations

from typing import Sequence

from ..language import model as m


def retry_summary(spec: m.DeliverySpec | None) -> str:
    """One line a reader can take in at a glance: ``retry 5x exponential, full jitter``."""
    if spec is None:
        return ""
    parts = []
    if spec.retry is not None:
        r = spec.retry
        text = f"retry {r.max_attempts}x {r.backoff}"
        if r.jitter != "none":
            text += f", {r.jitter} jitter"
        parts.append(text)
    if spec.dead_letter:
        parts.append("DLQ")
    return " → ".join(parts)


def action_summary(action: m.Action) -> str:
    """What one action does, in the words of the DSL: ``emit order.reserved``, ``call python:mod:fn``."""
    if isinstance(action, m.EmitAction):
        return f"emit {action.type.name}"
    if isinstance(action, m.CallAction):
        return f"call python:{action.python}" if action.python else f"call {action.http}"
    if isinstance(action, m.SetAction):
        return "set " + ", ".join(str(k) for k in action.values.value)
    if isinstance(action, m.LogAction):
        return "log"
    if isinstance(action, m.FailAction):
        return f"fail {action.error}"
    return type(action).__name__


def actions_summary(actions: Sequence[m.Action]) -> str:
    """The telling actions of a list (emits and calls), falling back to whatever is there."""
    telling = [a for a in actions if isinstance(a, (m.EmitAction, m.CallAction, m.FailAction))]
    return "; ".join(action_summary(a) for a in (telling or list(actions)))


def fmt_seconds(value: float) -> str:
    return f"{value:g}s" if value < 60 or value % 60 else f"{value / 60:g}m"


def schedule_summary(schedule: m.Schedule) -> str:
    """``cron 30 2 * * * Europe/Paris`` or ``every 15m``: when a schedule fires."""
    if schedule.every is not None:
        return f"every {fmt_seconds(schedule.every)}"
    zone = "" if schedule.timezone == "UTC" else f" {schedule.timezone}"
    return f"cron {schedule.cron}{zone}"


def window_summary(window: m.Window) -> str:
    if window.kind == "session":
        return f"session window, gap {fmt_seconds(window.gap or 0)}"
    if window.kind == "count":
        timeout = f", timeout {fmt_seconds(window.timeout)}" if window.timeout is not None else ""
        return f"count window {window.count}{timeout}"
    text = f"{window.kind} window {fmt_seconds(window.size or 0)}"
    return text + (f" every {fmt_seconds(window.every)}" if window.every else "")
