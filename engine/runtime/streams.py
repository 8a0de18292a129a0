"""Stream consumers: events into keyed event-time windows, closed windows out as events."""
from __future__ import annotations

import json
from typing import Callable

from ..core import eventtime
from ..core.errors import UsageError
from ..language import model as m
from ..language.templates import compile_value
from .actions import Attempt
from .events import derive
from .ports import Host
from .watermarks import WATERMARK, partitioned_streams
from .windows import WindowOperator, window_data


class StreamRunner:
    def __init__(self, runtime: Host, fast_paths: bool = True):
        self.rt = runtime
        self.fast_paths = fast_paths  # False: the window operators count without their shortcuts
        # closed by partition watermarks (engine/runtime/watermarks.py), not by the events seen
        self.partitioned = partitioned_streams(runtime.mesh)
        self._closing = tuple(sorted(self.partitioned))  # the order advance closes them in (each check)
        self.operators = {name: self.operator(name) for name in runtime.mesh.streams}
        self._data = {
            s.name: compile_value(s.emit_data, fast_paths)
            for s in runtime.mesh.streams.values()
            if s.emit_data
        }

    def operator(self, name: str, state: dict | None = None) -> WindowOperator:
        """A stream's window operator: new, or continuing from a snapshot (ValueError if the
        snapshot is of a differently shaped stream)."""
        stream, partitioned = self.rt.mesh.streams[name], name in self.partitioned
        if state is None:
            return WindowOperator(stream, self.fast_paths, partitioned)
        return WindowOperator.restore(stream, state, self.fast_paths, partitioned)

    def handler(self, stream: m.Stream) -> Callable[[Attempt], None]:
        def handle(attempt: Attempt) -> None:
            outputs = self.operators[stream.name].process(attempt.event)  # looked up: restore replaces it
            self.output_handler(stream, outputs)(attempt)

        return handle

    def output_handler(self, stream: m.Stream, outputs: list) -> Callable[[Attempt], None]:
        """An attempt's handler that acts on *outputs*, which the stream's operator already returned."""

        def handle(attempt: Attempt) -> None:
            for output in outputs:
                self._output(stream, output, attempt)

        return handle

    def _output(self, stream: m.Stream, output, attempt: Attempt) -> None:

        if output.kind == "window":
            data = self._window_event_data(stream.name, output)
            attempt.emit(stream.emit_type.name, data, time=output.end)  # a window's result: at its end
            attempt.effects.append(
                (
                    "window-closed",
                    {"stream": stream.name, "key": output.key, "start": output.start, "end": output.end},
                )
            )
        elif output.kind == "late":
            self.rt.trace.count("late_events")
            if stream.late_emit_type is not None:
                attempt.emit(
                    stream.late_emit_type.name, output.event.get("data"), output.event.get("subject")
                )
            else:
                why = (output.reason if stream.name in self.partitioned  # which partition's progress
                       else "the event is behind the watermark: its windows have closed")
                attempt.dead.append((stream.late_dead_letter or "dlq", "late-event", output.event, why))
        elif output.kind == "error":
            raise output.error  # a collect projection's RenderError: the attempt fails as template-error
        else:
            attempt.dead.append(("dlq", "schema-invalid", output.event, output.reason))

    def _window_event_data(self, name: str, output) -> dict:
        """The default window data, or the stream's `emit.data` rendered with it (as names and as `data`)."""
        data = window_data(output)
        return self._data[name]({**data, "data": data}) if name in self._data else data

    def snapshot(self) -> dict:
        return {name: operator.state() for name, operator in self.operators.items()}

    def restore(self, state: dict) -> None:
        """Continue every stream from its snapshot; UsageError if the mesh changed a stream since."""
        for name, snap in state.items():
            stream = self.rt.mesh.streams.get(name)
            try:
                if stream is None:
                    raise ValueError(f"the mesh has no stream {name!r} any more")
                self.operators[name] = self.operator(name, snap)
            except ValueError as exc:
                raise UsageError(
                    f"cannot resume the run with this mesh: {exc}; resume it with the mesh it started "
                    "with, or start a new run in a new store"
                ) from None

    def effects(self) -> dict[str, Callable[[dict], None]]:
        return {"window-closed": self._closed}

    def _closed(self, window: dict) -> None:
        self.rt.trace.count("windows_emitted")
        self.rt.trace.record(
            self.rt.clock.now(),
            "window",
            consumer=f"stream:{window['stream']}",
            key=window["key"],
            start=eventtime.format(window["start"]),
            end=eventtime.format(window["end"]),
        )

    def flush(self) -> None:
        """End of input: close every open window and emit it."""
        for name, operator in self.operators.items():
            self._emit_closed(name, operator.flush())

    def advance(self, progress: float, pending: float, names=None) -> None:
        """Close the windows of partitioned streams (of *names*, None: all) that nothing can join
        any more: those with ``end + lateness <= progress`` (the smallest partition progress)
        and ``end <= pending`` (the smallest bound of the pending work)."""
        for name in self._closing if names is None else sorted(self.partitioned & set(names)):
            operator = self.operators[name]
            limit = min(progress - operator.stream.lateness, pending)
            if operator.next_end() <= limit:
                self._emit_closed(name, operator.advance(limit))

    def _emit_closed(self, name: str, outputs: list) -> None:
        """Emit closed windows as events of their own, each the same wherever and whenever it closed."""
        stream = self.rt.mesh.streams[name]
        consumer = f"stream:{name}"
        partitioned = name in self.partitioned
        for output in outputs:
            data = self._window_event_data(name, output)
            # unique per window; a count window's bounds may repeat, the event that opened it not
            window = f"{consumer}:{json.dumps(output.key)}:{output.start}:{output.end}"
            if output.seq is not None:
                window += f":{output.seq}"
            parent = {"id": window, "source": consumer, "correlationid": window}
            if partitioned:  # downstream, the window counts as routed when it could first close
                parent[WATERMARK] = eventtime.format(output.end + stream.lateness)
            self.rt.emit(derive(parent, consumer, 0, stream.emit_type.name, data, output.end), consumer)
            self._closed({"stream": name, "key": output.key, "start": output.start, "end": output.end})
