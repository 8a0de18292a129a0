"""Which runs to try: breadth first by the number of deviations, within bounds.

Level 0 is `meshctl run`'s own run. Each run records the points met after its last deviation,
and each alternative at each of them is a run of the next level: the tree holds every run
with at most ``depth`` deviations exactly once, and the first violation found has as few
deviations as any. A level larger than the runs left in the budget is tried in a random
order (``seed``), so a search cut short by its bounds samples the level rather than its first
branches.

State hashing: a run that reaches a state (engine.explore.session.fingerprint) already reached
with as many deviations left stops there; what follows from that state was, or will be,
explored from the first.
"""
from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Callable

from .deviations import Deviation
from .session import Cut, Outcome, Session
from .steering import Point


@dataclass(frozen=True)
class Bounds:
    depth: int = 2  # deviations per run at most
    max_runs: int = 20_000
    seconds: float = 60.0
    seed: int = 0
    hashing: bool = True  # cut runs at states already explored (off: to measure what it saves)


@dataclass
class Report:
    bounds: Bounds
    runs: int = 0
    cut: int = 0  # runs stopped at a state already explored
    states: int = 0  # distinct states met at choice points
    found: Outcome | None = None
    waiting: int = 0  # runs found within the bounds but not tried (budget spent, or stopped at a violation)
    per_level: list[int] = field(default_factory=list)  # runs tried with 0, 1, 2 ... deviations
    sampled: bool = False  # a level was tried in random order
    elapsed: float = 0.0
    stopped_by: str = ""  # "", "runs", "time", "violation"

    @property
    def exhausted(self) -> bool:
        """Every run within the depth was tried (or shown to repeat a state)."""
        return self.found is None and self.waiting == 0 and not self.stopped_by

    @property
    def coverage(self) -> float:
        """The share of the runs found within the bounds that were tried."""
        known = self.runs + self.waiting
        return 1.0 if known == 0 else self.runs / known

    @property
    def per_second(self) -> float:
        return self.runs / self.elapsed if self.elapsed > 0 else 0.0


def search(session: Session, bounds: Bounds, *, clock: Callable[[], float] = time.monotonic,
           progress: Callable[[Report], None] | None = None) -> Report:
    """Try runs until one breaks an invariant, the space within ``depth`` is spent, or the
    budget (runs, seconds) is."""
    report, seen, rng = Report(bounds), {}, random.Random(bounds.seed)
    started = clock()
    level: list[tuple[Deviation, ...]] = [()]
    for depth in range(bounds.depth + 1):
        if not level:
            break
        left_in_budget = bounds.max_runs - report.runs
        if len(level) > left_in_budget:
            rng.shuffle(level)
            report.sampled = True
        report.per_level.append(0)
        following: list[tuple[Deviation, ...]] = []
        for index, deviations in enumerate(level):
            stop = _budget_spent(report, bounds, clock() - started)
            if stop:
                report.stopped_by = stop
                report.waiting += len(level) - index + len(following)
                report.states, report.elapsed = len(seen), clock() - started
                return report
            cutter = _cutter(seen, bounds.depth - depth) if bounds.hashing else None
            outcome = session.run(deviations, on_point=cutter)
            report.runs += 1
            report.per_level[-1] += 1
            report.cut += outcome.cut
            if outcome.violations:
                report.found, report.stopped_by = outcome, "violation"
                report.waiting += len(level) - index - 1 + len(following)
                break
            if depth < bounds.depth and outcome.complete:
                following.extend(deviations + (d,) for point in outcome.points for d in point.deviations())
            if progress is not None and report.runs % 200 == 0:
                report.states, report.elapsed = len(seen), clock() - started
                progress(report)
        if report.found is not None:
            break
        level = following
    report.states, report.elapsed = len(seen), clock() - started
    return report


def _cutter(seen: dict[str, int], left: int) -> Callable[[str, Point], None]:
    def on_point(state: str, point: Point) -> None:
        if seen.get(state, -1) >= left:
            raise Cut
        seen[state] = left
    return on_point


def _budget_spent(report: Report, bounds: Bounds, elapsed: float) -> str:
    if report.runs >= bounds.max_runs:
        return "runs"
    if elapsed >= bounds.seconds:
        return "time"
    return ""
