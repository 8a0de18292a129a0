"""The invariants of a mesh (``kind: Check``) judged over one run: what happened, and what is left.

A run's *history* is every event it saw, in the order it saw them: each input as it entered
the mesh and each event the mesh emitted, with the clock time of that moment
(:class:`History` collects it from a runtime's hooks). :class:`Invariants` compiles the
invariants of a mesh once and judges any number of histories, each with the clock time the
run ended at and the keyed state it left (docs/invariants.md says what each form means).

Judging is linear in the history: each invariant sees only the events of the types its
selectors name (one dictionary lookup per event), and tests each selector's pattern and
condition only on events of its type. A template that cannot be rendered on an event (a
missing field in ``per``, a ``value`` that is not a number) makes its invariant a violation
that says so: an invariant that cannot be judged is not taken to hold.
"""
from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections import defaultdict, deque
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Sequence

from ..core.errors import Location
from ..core.eventtime import format as iso
from ..core.identity import identity
from ..language import model as m
from ..language.patterns import compile_pattern
from ..language.templates import RenderError, compile_condition, compile_string
from .keyedstate import canonical, final_state
from .ports import Pipeline

Record = tuple[float, str, dict]  # (clock time, "input" | "emitted", event)
Seen = tuple[int, float, dict]  # (position in the history, clock time, event)
State = Callable[[str], Mapping[str, Any]]
SHOWN_VALUE = 120  # characters of a state value quoted in a message


@dataclass(frozen=True, slots=True)
class Violation:
    """One way a run broke an invariant: where the invariant is declared, and the events that show it."""

    check: str  # the Check's name
    invariant: str  # the invariant's name
    loc: Location  # where the invariant is declared
    key: str | None  # the `per` value (or the state key), if any
    message: str  # one line: what happened, naming event ids and times (RFC 3339)
    events: tuple[str, ...]  # ids of the events that show it, in the order they happened

    def as_dict(self) -> dict:
        return {"check": self.check, "invariant": self.invariant, "file": self.loc.file,
                "line": self.loc.line, "col": self.loc.col, "key": self.key, "message": self.message,
                "events": list(self.events)}

    def __str__(self) -> str:
        key = "" if self.key is None else f" [key {self.key}]"
        return f"{self.loc}: invariant violated: {self.check}/{self.invariant}{key}: {self.message}"


class History:
    """The history of one run, as :meth:`Invariants.check` reads it: tell it each input as it enters
    the mesh and each event the mesh emits, with the clock time of that moment.

    *types*: only events of these types are kept (those the invariants read; None: all). *limit*:
    at most this many are kept; past it the history lets go of them all and is ``overflowed`` (a
    run of millions of events keeps its memory bounded, and is not judged)."""

    __slots__ = ("records", "types", "limit", "overflowed")

    def __init__(self, types: frozenset[str] | None = None, limit: int | None = None) -> None:
        self.records: list[Record] = []
        self.types, self.limit, self.overflowed = types, limit, False

    def input(self, at: float, event: dict) -> None:
        self._keep(at, "input", event)

    def emitted(self, at: float, event: dict) -> None:
        self._keep(at, "emitted", event)

    def _keep(self, at: float, origin: str, event: dict) -> None:
        if self.overflowed or (self.types is not None and event.get("type") not in self.types):
            return
        if self.limit is not None and len(self.records) >= self.limit:
            self.overflowed, self.records = True, []
            return
        self.records.append((at, origin, event))

    def follow(self, runtime: Pipeline) -> None:
        """Record what *runtime* takes in and emits from now on, at its clock's time (through its
        ``on_input`` and ``on_emit`` hooks; an ``on_emit`` set before is still told)."""
        told, keep = runtime.on_emit, self._keep
        runtime.on_input = lambda event: keep(runtime.clock.now(), "input", event)

        def emitted(event: dict) -> None:
            keep(runtime.clock.now(), "emitted", event)
            if told is not None:
                told(event)
        runtime.on_emit = emitted


def state_of(store: Any, now: float) -> State:
    """``state(owner)`` for :meth:`Invariants.check`: the keyed state *store* holds at *now*."""
    return lambda owner: final_state(store, owner, now)


class _Unjudgeable(Exception):
    """A template of the invariant failed on an event: the invariant cannot be judged."""

    def __init__(self, event: dict, at: float, error: RenderError):
        super().__init__(f"cannot be judged on event {event.get('id')} at {iso(at)}: {error}")


def _context(event: dict) -> dict:
    return {"data": event.get("data"), "event": event}


class _Selector:
    """One compiled selector: its type, and the pattern and condition an event of it must meet."""

    __slots__ = ("type", "label", "plain", "_pattern", "_when")

    def __init__(self, selector: m.Selector):
        self.type = selector.type.name
        self.label = selector.type.name
        self._pattern = compile_pattern(m.thaw(selector.match.value)) if selector.match is not None else None
        self._when = compile_condition(selector.when) if selector.when is not None else None
        self.plain = self._pattern is None and self._when is None  # every event of its type

    def hits(self, event: dict, ctx: dict) -> bool:
        """Whether *event* (already known to be of this type) is selected; RenderError from `when`."""
        if self._pattern is not None and not self._pattern.matches(event):
            return False
        return self._when is None or self._when(ctx)


class _Selectors:
    """A list of selectors (an event counts when any of them selects it)."""

    def __init__(self, selectors: Iterable[m.Selector]):
        each = [_Selector(s) for s in selectors]
        self.labels = ", ".join(dict.fromkeys(s.label for s in each))
        # a type some selector takes whole needs no test; the others' selectors are tested in turn
        self._whole = frozenset(s.type for s in each if s.plain)
        self._tested: dict[str, list[_Selector]] = {}
        for s in each:
            if s.type not in self._whole:
                self._tested.setdefault(s.type, []).append(s)

    def hits(self, event: dict, ctx: dict) -> bool:
        kind = event.get("type")
        if kind in self._whole:
            return True
        tested = self._tested.get(kind)
        return tested is not None and any(s.hits(event, ctx) for s in tested)


def _at(seen: Seen) -> str:
    """``ID (TYPE at TIME)`` of one event of the history."""
    _, at, event = seen
    return f"{event.get('id')} ({event.get('type')} at {iso(at)})"


def _span(seconds: float) -> str:
    """A duration as the DSL writes it: ``1h``, ``90s``, ``1.5s``, ``250ms``."""
    for unit, size in (("d", 86400.0), ("h", 3600.0), ("m", 60.0), ("s", 1.0)):
        if seconds >= size and (seconds / size).is_integer():
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s" if seconds >= 1 else f"{seconds * 1000:g}ms"


Found = list[tuple[tuple, "str | None", str, tuple[str, ...]]]  # (order, key, message, event ids)


class _Judge(ABC):
    """The compiled form of one invariant; :meth:`judge` reads the events of its types."""

    def __init__(self, check: m.Check, invariant: m.Invariant):
        self.check, self.invariant = check.name, invariant
        self._per = compile_string(invariant.per) if invariant.per is not None else None
        self.types: frozenset[str] = frozenset(s.type.name for s in invariant.selectors())

    def key(self, event: dict, ctx: dict) -> str | None:
        if self._per is None:
            return None
        value = self._per(ctx)
        return value if isinstance(value, str) else canonical(value)

    @abstractmethod
    def judge(self, seen: list[Seen], end: float, state: State) -> Found:
        """What the run broke: (order, key, message, event ids) of each violation."""

    def violations(self, seen: list[Seen], end: float, state: State) -> list[Violation]:
        inv = self.invariant
        try:
            found = sorted(self.judge(seen, end, state), key=lambda f: f[0])
        except _Unjudgeable as exc:
            return [Violation(self.check, inv.name, inv.loc, None, str(exc), ())]
        except RenderError as exc:  # a `state` invariant's `that` (no event to name)
            return [Violation(self.check, inv.name, inv.loc, None, f"cannot be judged: {exc}", ())]
        return [Violation(self.check, inv.name, inv.loc, key, message, ids) for _, key, message, ids in found]

    def _each(self, seen: list[Seen]) -> Iterable[tuple[Seen, dict, str | None]]:
        """Each event with its template context and key; a template that fails stops the judging."""
        for item in seen:
            ctx = _context(item[2])
            try:
                yield item, ctx, self.key(item[2], ctx)
            except RenderError as exc:
                raise _Unjudgeable(item[2], item[1], exc) from exc

    @staticmethod
    def _test(selectors: _Selectors, item: Seen, ctx: dict) -> bool:
        try:
            return selectors.hits(item[2], ctx)
        except RenderError as exc:
            raise _Unjudgeable(item[2], item[1], exc) from exc


class _Never(_Judge):
    """``never: [A, B...]``: for one key, not all of them happen."""

    def __init__(self, check: m.Check, invariant: m.Invariant):
        super().__init__(check, invariant)
        self._parts = [_Selectors((s,)) for s in invariant.never]

    def judge(self, seen: list[Seen], end: float, state: State) -> Found:
        parts = self._parts
        first: dict[str | None, list[Seen | None]] = defaultdict(lambda: [None] * len(parts))
        found: Found = []
        for item, ctx, key in self._each(seen):
            hits = first[key]
            if all(hits):
                continue  # reported already
            for i, part in enumerate(parts):
                if hits[i] is None and self._test(part, item, ctx):
                    hits[i] = item
            if all(hits):
                shown = sorted(hits, key=lambda h: h[0])
                found.append(((shown[0][0],), key, self._message(hits), tuple(h[2].get("id") for h in shown)))
        return found

    def _message(self, hits: list) -> str:
        if len(hits) == 1:
            return f"{_at(hits[0])} happened"
        listed = [_at(h) for h in hits]
        head = "both " if len(hits) == 2 else "all of "
        return head + ", ".join(listed[:-1]) + f" and {listed[-1]} happened"


class _AtMost(_Judge):
    """``at_most: N`` with ``open`` and ``close``: never more than N open at once for one key."""

    def __init__(self, check: m.Check, invariant: m.Invariant):
        super().__init__(check, invariant)
        self._open, self._close = _Selectors(invariant.open), _Selectors(invariant.close)

    def judge(self, seen: list[Seen], end: float, state: State) -> Found:
        opens, closes, limit = self._open, self._close, self.invariant.at_most
        held: dict[str | None, deque[Seen]] = defaultdict(deque)
        reported: set[str | None] = set()
        found: Found = []
        for item, ctx, key in self._each(seen):
            now_open = held[key]
            if now_open and self._test(closes, item, ctx):
                now_open.popleft()
            if self._test(opens, item, ctx):
                now_open.append(item)
                if len(now_open) > limit and key not in reported:
                    reported.add(key)
                    listed = ", ".join(_at(h) for h in now_open)
                    message = (f"{len(now_open)} open at once, at most {limit}: {listed}, "
                               f"none closed by {closes.labels}")
                    found.append(((item[0],), key, message, tuple(h[2].get("id") for h in now_open)))
        return found


class _Eventually(_Judge):
    """``after`` with ``eventually`` (and ``within``): each `after` event is followed, for its key."""

    def __init__(self, check: m.Check, invariant: m.Invariant):
        super().__init__(check, invariant)
        self._after, self._then = _Selectors(invariant.after), _Selectors(invariant.eventually)

    def judge(self, seen: list[Seen], end: float, state: State) -> Found:
        after, then, within = self._after, self._then, self.invariant.within
        pending: dict[str | None, list[Seen]] = defaultdict(list)
        found: Found = []
        for item, ctx, key in self._each(seen):
            waiting = pending.get(key)
            if waiting and self._test(then, item, ctx):
                for cause in waiting:
                    late = item[1] - cause[1]
                    if within is not None and late > within:
                        message = (f"{_at(cause)} was followed by {_at(item)} only {_span(late)} later, "
                                   f"not within {_span(within)}")
                        found.append(((cause[0],), key, message, (cause[2].get("id"), item[2].get("id"))))
                waiting.clear()
            if self._test(after, item, ctx):
                pending[key].append(item)
        for key, waiting in pending.items():
            for cause in waiting:
                bound = "" if within is None else f" ({_span(end - cause[1])} later; within {_span(within)})"
                message = (f"{_at(cause)} was not followed by {then.labels} by the end of the run at "
                           f"{iso(end)}{bound}")
                found.append(((cause[0],), key, message, (cause[2].get("id"),)))
        return found


class _Total(_Judge):
    """``total`` and ``equals``: per key, the two sums are equal at the end of the run."""

    def __init__(self, check: m.Check, invariant: m.Invariant):
        super().__init__(check, invariant)
        self._sides = [(_Selectors(side.of), compile_string(side.value), side.value)
                       for side in (invariant.total, invariant.equals)]

    def judge(self, seen: list[Seen], end: float, state: State) -> Found:
        sums: dict[str | None, list] = {}  # key -> [first position, [sum, count] per side, event ids]
        for item, ctx, key in self._each(seen):
            for side, (selectors, value, template) in enumerate(self._sides):
                if self._test(selectors, item, ctx):
                    entry = sums.setdefault(key, [item[0], [0, 0], [0, 0], {}])
                    entry[1 + side][0] += self._number(value, template, item, ctx)
                    entry[1 + side][1] += 1
                    entry[3][item[2].get("id")] = None  # the ids in order, each once
        found: Found = []
        for key, (first, (left, n_left), (right, n_right), ids) in sums.items():
            if not _equal(left, right):
                message = (f"the sum of {self._sides[0][0].labels} is {_shown(left)} ({_events(n_left)}) but "
                           f"the sum of {self._sides[1][0].labels} is {_shown(right)} ({_events(n_right)})")
                found.append(((first,), key, message, tuple(ids)))
        return found

    @staticmethod
    def _number(value: Callable, template: m.TemplateString, item: Seen, ctx: dict) -> float:
        try:
            number = value(ctx)
        except RenderError as exc:
            raise _Unjudgeable(item[2], item[1], exc) from exc
        if isinstance(number, bool) or not isinstance(number, (int, float)) or not math.isfinite(number):
            problem = RenderError(f"`value` is {number!r}, not a number", template.loc)
            raise _Unjudgeable(item[2], item[1], problem)
        return number


def _shown(total: float) -> str:
    return str(total) if isinstance(total, int) else f"{total:.12g}"


def _events(n: int) -> str:
    return f"{n} event" + ("" if n == 1 else "s")


def _equal(a: float, b: float) -> bool:
    if isinstance(a, int) and isinstance(b, int):
        return a == b
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


class _Always(_Judge):
    """``always`` with ``that``: every such event satisfies the condition."""

    def __init__(self, check: m.Check, invariant: m.Invariant):
        super().__init__(check, invariant)
        self._that = compile_condition(invariant.that)
        self._always = _Selectors(invariant.always)

    def judge(self, seen: list[Seen], end: float, state: State) -> Found:
        selectors, found = self._always, []
        for item, ctx, key in self._each(seen):
            if not self._test(selectors, item, ctx):
                continue
            try:
                holds = self._that(ctx)
            except RenderError as exc:
                raise _Unjudgeable(item[2], item[1], exc) from exc
            if not holds:
                found.append(((item[0],), key, f"{_at(item)} does not satisfy {self.invariant.that.text}",
                              (item[2].get("id"),)))
        return found


class _StateHolds(_Judge):
    """``state`` with ``that``: the condition holds for each key of the state the run left."""

    def __init__(self, check: m.Check, invariant: m.Invariant):
        super().__init__(check, invariant)
        self._that = compile_condition(invariant.that)
        self.owner = invariant.state.name

    def judge(self, seen: list[Seen], end: float, state: State) -> Found:
        values, found = state(self.owner), []
        for key in sorted(values):
            if not self._that({"key": key, "value": values[key]}):
                text = canonical(values[key])
                shown = text if len(text) <= SHOWN_VALUE else text[: SHOWN_VALUE - 3] + "..."
                message = (f"the value of {self.owner} key {key} at the end of the run ({iso(end)}) "
                           f"does not satisfy {self.invariant.that.text}: {shown}")
                found.append(((math.inf, key), key, message, ()))
        return found


_JUDGES: dict[str, type[_Judge]] = {
    "never": _Never, "at_most": _AtMost, "eventually": _Eventually, "total": _Total, "always": _Always,
    "state": _StateHolds,
}


class Invariants:
    """Every invariant of a mesh, compiled once; :meth:`check` judges one run (as often as asked)."""

    def __init__(self, mesh: m.Mesh):
        self._judges = [_JUDGES[inv.form](check, inv)
                        for check in mesh.checks.values() for inv in check.invariants]
        by_type: dict[str, list[int]] = defaultdict(list)
        for i, judge in enumerate(self._judges):
            for kind in sorted(judge.types):
                by_type[kind].append(i)
        self._by_type = {kind: tuple(found) for kind, found in by_type.items()}

    @property
    def types(self) -> frozenset[str]:
        """The event types some invariant reads: a history need keep no other."""
        return frozenset(self._by_type)

    @property
    def declared(self) -> int:
        """How many invariants the mesh declares."""
        return len(self._judges)

    def check(self, history: Sequence[Record], end: float, state: State) -> list[Violation]:
        """The violations of one run, by order of declaration, then of their first event.

        *history*: ``(clock time, "input" | "emitted", event)`` in the order they happened; *end*: the
        clock time the run ended at; ``state(owner)``: the final keyed state of an owner, by key.
        """
        seen: list[list[Seen]] = [[] for _ in self._judges]
        by_type = self._by_type
        met: set[str] = set()  # identities of the events counted so far
        for position, (at, _origin, event) in enumerate(history):
            judges = by_type.get(event.get("type"))
            if judges is not None:
                if "id" in event:
                    known = identity(event)
                    if known in met:
                        continue  # sent again (same source and id): the same event, counted once
                    met.add(known)
                item = (position, at, event)
                for i in judges:
                    seen[i].append(item)
        violations: list[Violation] = []
        for judge, events in zip(self._judges, seen):
            violations += judge.violations(events, end, state)
        return violations
