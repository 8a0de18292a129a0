"""Per-key resequencing for subscriptions with ``ordering: {key, sequence, ...}``.

Events of one key reach the consumer in ``sequence`` order, one at a time: the next is only
attempted once the previous one is settled (done, filtered or dead-lettered), so retries
never let a later event overtake. A missing number is waited for ``gap_timeout``; then the
gap is recorded and the buffered events go on (``on_gap: deliver``) or are dead-lettered as
``sequence-gap`` (``on_gap: dead_letter``). A number seen again is a duplicate (skipped and
counted); a number that arrives after its gap was given up is dead-lettered as ``late-event``.

State per (consumer, key) lives in the store under ``order:<consumer>:<key>``, and the gap
timers are scheduled tasks, so resequencing survives a crash like everything else.
"""
from __future__ import annotations

import json
from typing import Any, Callable

from ..language import model as m
from .consumers import Consumer
from .ports import Host

_MISSING = object()


def ordering_key(event: dict, ordering: m.Ordering) -> str | None:
    """An event's ordering key as text, as its resequencer state is named (None: it has none)."""
    key = field(event, ordering.key)
    return None if key is _MISSING else json.dumps(key, sort_keys=True)


def field(event: dict, path: str) -> Any:
    node: Any = event
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return _MISSING
        node = node[part]
    return node


class Resequencer:
    def __init__(self, runtime: Host):
        self.rt = runtime

    def tasks(self) -> dict[str, Callable[[dict], None]]:
        return {"order-gap": self._gap_expired}

    def offer(self, event: dict, consumer: Consumer, producer: str) -> None:
        """Buffer the event under its key and release whatever is next in line."""
        ordering: m.Ordering = consumer.element.ordering
        key, seq = field(event, ordering.key), field(event, ordering.sequence)
        if key is _MISSING or not isinstance(seq, int) or isinstance(seq, bool):
            self.rt.dead_letter(consumer.id, event, "schema-invalid", "OrderingFieldMissing",
                                f"ordering needs {ordering.key} and an integer {ordering.sequence}",
                                queue=consumer.policy.queue)
            return
        state = self._state(consumer, key)
        if seq < state["expected"] or str(seq) in state["buffer"]:
            self._too_old(event, consumer, seq, state)
            return
        state["buffer"][str(seq)] = {"event": event, "producer": producer}
        self.rt.watermarks.hold(self._held(consumer, key, seq), event)  # pending while buffered
        self._save(consumer, key, state)
        self._release(consumer, key, state)

    def settled(self, consumer_id: str, key: Any) -> None:
        """The in-flight event of this key is settled: let the next one go."""
        consumer = self.rt.by_id[consumer_id]
        state = self._state(consumer, key)
        state["busy"] = False
        self._release(consumer, key, state)

    # --- internals ---------------------------------------------------------------------
    def _state_key(self, consumer: Consumer, key: Any) -> str:
        return f"order:{consumer.id}:{json.dumps(key, sort_keys=True)}"

    def _state(self, consumer: Consumer, key: Any) -> dict:
        state = self.rt.store.get_state(self._state_key(consumer, key))
        if state is None:
            state = {"expected": consumer.element.ordering.start, "buffer": {}, "gaps": [], "busy": False,
                     "timer": None}
        return state

    def _held(self, consumer: Consumer, key: Any, seq: Any) -> str:
        """The name a buffered event is held under in the pending work (partition watermarks)."""
        return f"{self._state_key(consumer, key)}:{seq}"

    def _save(self, consumer: Consumer, key: Any, state: dict) -> None:
        self.rt.store.put_state(self._state_key(consumer, key), state)

    def _too_old(self, event: dict, consumer: Consumer, seq: int, state: dict) -> None:
        if any(low <= seq <= high for low, high in state["gaps"]):
            self.rt.dead_letter(
                consumer.id,
                event,
                "late-event",
                "SequenceGapClosed",
                f"sequence {seq} arrived after its gap was given up",
                queue=consumer.policy.queue,
            )
            return
        self.rt.trace.count("duplicates")
        self.rt.trace.record(
            self.rt.clock.now(),
            "filtered",
            event=event["id"],
            type=event["type"],
            consumer=consumer.id,
            why="duplicate-sequence",
        )

    def _release(self, consumer: Consumer, key: Any, state: dict) -> None:
        expected = str(state["expected"])
        if not state["busy"] and expected in state["buffer"]:
            entry = state["buffer"].pop(expected)
            self.rt.watermarks.release(self._held(consumer, key, expected))
            state["busy"] = True
            state["expected"] += 1
            self._save(consumer, key, state)
            self.rt.schedule_attempt(entry["event"], consumer, entry["producer"], order_key=key)
            return
        if state["buffer"] and not state["busy"] and state["timer"] is None:
            state["timer"] = state["expected"]  # waiting for this number
            gap_timeout = consumer.element.ordering.gap_timeout
            self.rt.scheduler.at(
                self.rt.clock.now() + gap_timeout,
                "order-gap",
                {"consumer": consumer.id, "key": key, "expected": state["expected"]},
            )
        self._save(consumer, key, state)

    def _gap_expired(self, task: dict) -> None:
        consumer = self.rt.by_id[task["consumer"]]
        key, state = task["key"], self._state(consumer, task["key"])
        state["timer"] = None
        if state["expected"] != task["expected"] or state["busy"] or not state["buffer"]:
            self._release(consumer, key, state)  # the gap closed meanwhile; wait afresh for any new one
            return
        numbers = sorted(int(n) for n in state["buffer"])
        state["gaps"].append([state["expected"], numbers[0] - 1])
        self.rt.trace.count("sequence_gaps")
        self.rt.trace.record(
            self.rt.clock.now(),
            "gap",
            consumer=consumer.id,
            key=key,
            missing=[state["expected"], numbers[0] - 1],
        )
        if consumer.element.ordering.on_gap == "deliver":
            state["expected"] = numbers[0]
        else:
            for n in numbers:
                entry = state["buffer"].pop(str(n))
                self.rt.watermarks.release(self._held(consumer, key, n))
                self.rt.dead_letter(
                    consumer.id,
                    entry["event"],
                    "sequence-gap",
                    "SequenceGap",
                    f"sequence {state['expected']} never arrived within the gap timeout",
                    queue=consumer.policy.queue,
                )
            state["gaps"][-1] = [state["expected"], numbers[-1]]
            state["expected"] = numbers[-1] + 1
        self._release(consumer, key, state)
