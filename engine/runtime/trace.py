"""What happened in a run: the trace records (JSON Lines) and the summary counters."""
from __future__ import annotations

import json
from collections import Counter, defaultdict
from typing import IO, Any, Callable

from ..core import eventtime

SUMMARY_KEYS = (
    "events_in",
    "matched",
    "delivered",
    "filtered",
    "emitted",
    "retries",
    "dead_lettered",
    "duplicates",
    "unconsumed",
    "runs_started",
    "runs_completed",
    "runs_failed",
    "runs_compensated",
    "windows_emitted",
    "late_events",
    "rate_limited",
    "sequence_gaps",
    "runs_redriven",
    "ticks",
)
# runs that ended early (engine/runtime/waits.py): in a summary only once one has
EARLY_END_KEYS = ("runs_cancelled", "runs_timed_out")
# counters a summary shows only for a mesh that has them (set, even at 0, by the stage that counts them)
OPTIONAL_KEYS = ("held", "released")
FAILED_RUNS_KEPT = 10  # ids of failed runs a summary lists


class JournalSink:
    """Trace records into a store journal, so they commit with the checkpoint they belong to."""

    def __init__(self, store, journal: str = "trace"):
        self.store, self.journal = store, journal

    def append(self, record: dict) -> None:
        self.store.append(self.journal, record)


class Trace:
    """Collects counters always, and records when a sink is given (a file, or a list for tests)."""

    def __init__(self, sink: IO[str] | list | None = None):
        self.sink = sink
        self.counts: defaultdict[str, int] = defaultdict(int)  # not a Counter: `+= 1` on one costs 4x as much
        self.dead_by_reason: Counter[str] = Counter()
        self.failed_runs: list[dict] = []  # the first FAILED_RUNS_KEPT runs that ended failed or compensated
        # the same for this process alone (a replay's own), never restored
        self.session_failed_runs: list[dict] = []
        self._seq = 0
        # applied to every record before it is written (the runtime masks secret values with it)
        self.redact: Callable[[dict], dict] | None = None

    @property
    def recording(self) -> bool:
        """Whether the records are kept (a sink that only counts them, like a worker's metrics, says
        ``keeps_records = False``: `log` actions need not render their messages for it)."""
        return self.sink is not None and getattr(self.sink, "keeps_records", True)

    def record(self, now: float, kind: str, **fields: Any) -> None:
        if self.sink is None:
            return
        self._seq += 1
        # a sink that only counts records reads no time: not formatted for it
        when = eventtime.format(now) if getattr(self.sink, "keeps_records", True) else now
        record = {"seq": self._seq, "t": when, "kind": kind, **fields}
        if self.redact is not None:
            record = self.redact(record)
        if hasattr(self.sink, "append"):  # a list, or a store journal
            self.sink.append(record)
        else:
            self.sink.write(json.dumps(record, sort_keys=False, default=str) + "\n")

    def count(self, key: str, n: int = 1) -> None:
        self.counts[key] += n

    def run_failed(self, run_id: str, status: str) -> None:
        """Keep the id of a run that ended failed or compensated (the first few: the count says the rest)."""
        if len(self.failed_runs) < FAILED_RUNS_KEPT:
            self.failed_runs.append({"id": run_id, "status": status})
        if len(self.session_failed_runs) < FAILED_RUNS_KEPT:
            self.session_failed_runs.append({"id": run_id, "status": status})

    def run_ended(self, orchestration: str, status: str, seconds: float | None) -> None:
        """Tell a sink that asks (a worker's metrics) how long a run took on the mesh's clock."""
        ended = getattr(self.sink, "run_ended", None)
        if ended is not None:
            ended(orchestration, status, seconds)

    def snapshot(self) -> dict:
        return {
            "seq": self._seq,
            "counts": dict(self.counts),
            "dead_by_reason": dict(self.dead_by_reason),
            "failed_runs": list(self.failed_runs),
        }

    def restore(self, state: dict) -> None:
        self._seq = state["seq"]
        self.counts = defaultdict(int, state["counts"])
        self.dead_by_reason = Counter(state["dead_by_reason"])
        self.failed_runs = list(state.get("failed_runs", ()))  # checkpoints from before kept none

    def summary(self) -> dict:
        out = {key: self.counts.get(key, 0) for key in SUMMARY_KEYS}
        out.update({key: self.counts[key] for key in EARLY_END_KEYS if self.counts.get(key)})
        out.update({key: self.counts[key] for key in OPTIONAL_KEYS if key in self.counts})
        out["dead_lettered_by_reason"] = dict(sorted(self.dead_by_reason.items()))
        out["failed_runs"] = list(self.failed_runs)
        return out
