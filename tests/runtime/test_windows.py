"""The window operator: window kinds, watermark and lateness, aggregates, invalid events, snapshots."""
from __future__ import annotations

import json
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.core import eventtime
from engine.core.errors import Location
from engine.language import model
from engine.runtime.windows import Output, WindowOperator, window_data

LOC = Location("t.yaml", 1, 1)
T0 = 1767225600  # 2026-01-01T00:00:00Z


def tumbling(size):
    return model.Window("tumbling", LOC, size=size)


def hopping(size, every):
    return model.Window("hopping", LOC, size=size, every=every)


def session(gap):
    return model.Window("session", LOC, gap=gap)


def make_stream(window, aggregates=(("n", "count", None),), key="data.k", lateness=0.0, time="time"):
    aggs = tuple(model.Aggregate(name, op, fld, LOC) for name, op, fld in aggregates)
    return model.Stream("s", LOC, (model.Ref("in", LOC),), window, aggs, model.Ref("out", LOC),
                        key=key, time=time, lateness=lateness)


def ev(t, k="a", **data):
    return {"id": f"{k}-{t}", "type": "in", "time": t, "data": {"k": k, **data}}


def run(op, events, flush=True):
    out = [o for e in events for o in op.process(e)]
    return out + op.flush() if flush else out


def windows(outputs):
    """(key, start, end, values) of the window outputs, relative to nothing."""
    return [(o.key, o.start, o.end, o.values) for o in outputs if o.kind == "window"]


# --- window kinds ---------------------------------------------------------------------------------

def test_tumbling_windows_align_to_the_epoch_and_close_when_the_watermark_passes():
    op = WindowOperator(make_stream(tumbling(10)))
    assert op.process(ev(1)) == [] and op.process(ev(9.5)) == []
    assert windows(op.process(ev(10))) == [("a", 0.0, 10.0, {"n": 2})]
    assert windows(op.flush()) == [("a", 10.0, 20.0, {"n": 1})]


def test_tumbling_keys_are_separate_and_emitted_in_key_order():
    op = WindowOperator(make_stream(tumbling(10)))
    out = run(op, [ev(1, "b"), ev(2, "a"), ev(3, "b"), ev(25, "c")])
    assert windows(out) == [
        ("a", 0.0, 10.0, {"n": 1}),
        ("b", 0.0, 10.0, {"n": 2}),
        ("c", 20.0, 30.0, {"n": 1}),
    ]


def test_rfc3339_times_with_offsets_and_fractions():
    op = WindowOperator(make_stream(tumbling(60)))
    out = run(
        op, [ev("2026-01-01T00:00:05Z"), ev("2026-01-01T01:00:59.999+01:00"), ev("2026-01-01t00:01:00z")]
    )
    assert windows(out) == [("a", T0 + 0.0, T0 + 60.0, {"n": 2}), ("a", T0 + 60.0, T0 + 120.0, {"n": 1})]


def test_hopping_windows_overlap():
    op = WindowOperator(make_stream(hopping(10, 5)))
    out = run(op, [ev(7), ev(12)])  # 7 is in [0, 10) and [5, 15); 12 in [5, 15) and [10, 20)
    assert windows(out) == [
        ("a", 0.0, 10.0, {"n": 1}),
        ("a", 5.0, 15.0, {"n": 2}),
        ("a", 10.0, 20.0, {"n": 1}),
    ]


def test_hopping_with_gaps_counts_events_between_windows_nowhere_but_moves_the_watermark():
    op = WindowOperator(make_stream(hopping(5, 10)))
    assert op.process(ev(3)) == []
    assert windows(op.process(ev(7))) == [("a", 0.0, 5.0, {"n": 1})]  # 7 is between [0,5) and [10,15)
    assert windows(op.flush()) == [] and op.counts["late"] == 0


def test_sessions_split_on_a_gap_and_end_gap_after_the_last_event():
    op = WindowOperator(make_stream(session(10)))
    out = run(op, [ev(0), ev(5), ev(30), ev(25, "b")])
    assert windows(out) == [
        ("a", 0.0, 15.0, {"n": 2}),
        ("b", 25.0, 35.0, {"n": 1}),
        ("a", 30.0, 40.0, {"n": 1}),
    ]


def test_events_exactly_gap_apart_are_separate_sessions():
    out = run(WindowOperator(make_stream(session(10))), [ev(0), ev(10)])
    assert windows(out) == [("a", 0.0, 10.0, {"n": 1}), ("a", 10.0, 20.0, {"n": 1})]


def test_an_event_can_join_two_sessions():
    op = WindowOperator(
        make_stream(
            session(10),
            [("n", "count", None), ("s", "sum", "data.v"), ("f", "first", "data.v"), ("l", "last", "data.v")],
            lateness=100,
        )
    )
    assert op.process(ev(0, v=1)) == [] and op.process(ev(18, v=2)) == []
    assert len(op.state()["windows"]) == 2
    out = run(op, [ev(9, v=4), ev(25, v=8)])
    assert windows(out) == [("a", 0.0, 35.0, {"n": 4, "s": 15, "f": 1, "l": 8})]


def test_a_late_arrival_can_extend_a_session_backwards():
    out = run(WindowOperator(make_stream(session(10), lateness=20)), [ev(20), ev(12)])
    assert windows(out) == [("a", 12.0, 30.0, {"n": 2})]


# --- watermark and lateness -----------------------------------------------------------------------


def test_lateness_holds_windows_open():
    op = WindowOperator(make_stream(tumbling(10), lateness=5))
    assert op.process(ev(12)) == [] and op.watermark == 7
    assert op.process(ev(4)) == []  # behind nothing: [0, 10) is still open
    assert windows(op.process(ev(15))) == [("a", 0.0, 10.0, {"n": 1})]


def test_watermark_never_moves_back_and_starts_at_minus_infinity():
    op = WindowOperator(make_stream(tumbling(10)))
    assert op.watermark == float("-inf")
    op.process(ev(15))
    op.process(ev(11))
    assert op.watermark == 15


def test_an_event_behind_the_watermark_whose_window_is_open_is_added():
    op = WindowOperator(make_stream(tumbling(10)))
    out = run(op, [ev(15), ev(11)])
    assert windows(out) == [("a", 10.0, 20.0, {"n": 2})] and op.counts["late"] == 0


def test_an_event_whose_window_closed_is_late_and_counted():
    op = WindowOperator(make_stream(tumbling(10)))
    run(op, [ev(5), ev(15)], flush=False)
    late = ev(3, "z")
    (out,) = op.process(late)
    assert (out.kind, out.key, out.event, out.start, out.end) == ("late", "z", late, None, None)
    assert "1970-01-01T00:00:03Z" in out.reason
    assert op.counts["late"] == 1
    assert windows(op.flush()) == [("a", 10.0, 20.0, {"n": 1})]  # the late event opened nothing


def test_a_hopping_event_with_one_window_closed_is_added_to_the_open_ones():
    op = WindowOperator(make_stream(hopping(10, 5)))
    out = run(op, [ev(1), ev(12), ev(7)])  # 7 is in [0, 10), closed by 12, and [5, 15)
    assert windows(out) == [
        ("a", -5.0, 5.0, {"n": 1}),
        ("a", 0.0, 10.0, {"n": 1}),
        ("a", 5.0, 15.0, {"n": 2}),
        ("a", 10.0, 20.0, {"n": 1}),
    ]
    assert op.counts["late"] == 0


def test_a_hopping_event_whose_last_window_closed_is_late():
    op = WindowOperator(make_stream(hopping(10, 5)))
    run(op, [ev(1), ev(30)], flush=False)
    assert [o.kind for o in op.process(ev(14))] == ["late"]


def test_session_lateness_is_judged_on_the_event_interval_and_open_sessions():
    op = WindowOperator(make_stream(session(10)))
    run(op, [ev(0), ev(45), ev(50)], flush=False)  # watermark 50; open session [45, 60)
    assert [o.kind for o in op.process(ev(30))] == ["late"]  # 30 + 10 <= 50, overlaps nothing open
    assert op.process(ev(38)) == []  # 38 + 10 <= 50, but [38, 48) overlaps the open session
    assert op.process(ev(42, "b")) == []  # 42 + 10 > 50: a new session for b
    assert windows(op.flush()) == [("b", 42.0, 52.0, {"n": 1}), ("a", 38.0, 60.0, {"n": 3})]


def test_flush_closes_everything_and_later_events_are_late():
    op = WindowOperator(make_stream(tumbling(10)))
    run(op, [ev(1), ev(2, "b"), ev(13), ev(14, "b")], flush=False)
    assert windows(op.flush()) == [("a", 10.0, 20.0, {"n": 1}), ("b", 10.0, 20.0, {"n": 1})]
    assert op.flush() == []
    (out,) = op.process(ev(100))
    assert out.kind == "late" and "end of input" in out.reason


def test_flush_orders_by_end_start_key():
    op = WindowOperator(make_stream(session(10), lateness=1000))
    out = run(op, [ev(5, "b"), ev(0, "b"), ev(0, "a"), ev(5, "c"), ev(3, "a")])
    assert [(o.key, o.start, o.end) for o in out] == [("a", 0.0, 13.0), ("b", 0.0, 15.0), ("c", 5.0, 15.0)]


# --- aggregates -----------------------------------------------------------------------------------

ALL_AGGS = [
    ("n", "count", None),
    ("s", "sum", "data.v"),
    ("lo", "min", "data.v"),
    ("hi", "max", "data.v"),
    ("avg", "avg", "data.v"),
    ("d", "count_distinct", "data.tag"),
    ("f", "first", "data.tag"),
    ("l", "last", "data.tag"),
]


def test_every_aggregate():
    op = WindowOperator(make_stream(tumbling(10), ALL_AGGS, lateness=100))
    out = run(
        op,
        [
            ev(5, v=3, tag="x"),
            ev(2, v=-1.5, tag={"b": 1, "a": [1]}),
            ev(8, v=10, tag="y"),
            ev(2, v=0, tag={"a": [1], "b": 1}),
            ev(8, v=2, tag="z"),
        ],
    )
    assert windows(out) == [
        (
            "a",
            0.0,
            10.0,
            {"n": 5, "s": 13.5, "lo": -1.5, "hi": 10, "avg": 2.7, "d": 4, "f": {"b": 1, "a": [1]}, "l": "z"},
        )
    ]


def test_integer_sums_stay_integers_and_avg_is_a_float():
    out = run(WindowOperator(make_stream(tumbling(10), ALL_AGGS[:5])), [ev(1, v=2, tag=0), ev(2, v=4, tag=0)])
    (values,) = [o.values for o in out]
    assert values == {"n": 2, "s": 6, "lo": 2, "hi": 4, "avg": 3.0}
    assert type(values["s"]) is int and type(values["avg"]) is float


def test_count_distinct_compares_canonical_json():
    op = WindowOperator(make_stream(tumbling(10), [("d", "count_distinct", "data.x")]))
    out = run(op, [ev(1, x=x) for x in ["1", 1, 1.0, True, None, None, [1, 2], [2, 1], {"a": 1}]])
    assert out[0].values == {"d": 8}


def test_global_group_without_key():
    op = WindowOperator(make_stream(tumbling(10), key=None))
    assert windows(run(op, [ev(1, "a"), ev(2, "b")])) == [(None, 0.0, 10.0, {"n": 2})]


def test_non_string_keys():
    op = WindowOperator(make_stream(tumbling(10)))
    out = run(op, [ev(1, k) for k in ["x", 2, True, 1, 1.0, False]])
    assert [(o.key, o.values["n"]) for o in out] == [(False, 1), (True, 1), (1, 2), (2, 1), ("x", 1)]
    assert type(out[1].key) is bool


# --- invalid events -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        ({"data": {"k": "a", "v": 1}}, "time field 'time' is missing"),
        (ev("yesterday", v=1), "'yesterday' is not an RFC 3339 date-time"),
        (ev("2026-01-01T00:00:05", v=1), "has no UTC offset"),
        (ev("2026-01-01 00:00:05Z", v=1), "separates date and time with a space"),
        (ev("2026-13-01T00:00:05Z", v=1), "has no month 13"),
        (ev("2026-01-01T00:00:60Z", v=1), "is not a leap second"),
        (ev("9999-12-31T23:30:00-01:00", v=1), "event times must lie in years 0001-9999"),
        (ev(True, v=1), "not a boolean"),
        (ev(float("nan"), v=1), "is not a finite time in years 0001-9999"),
        (ev(1e300, v=1), "is not a finite time in years 0001-9999"),
        ({"time": 1, "data": {"v": 1}}, "key field 'data.k' is missing"),
        ({"time": 1, "data": "text"}, "key field 'data.k' is missing"),
        (ev(1, None, v=1), "not null"),
        (ev(1, ["a"], v=1), "not an array"),
        (ev(1, float("inf"), v=1), "not a number"),
        (ev(1), "aggregate 's' (sum): field is missing"),
        (ev(1, v="3"), "aggregate 's' (sum): expected a finite number, got a string"),
        (ev(1, v=True), "expected a finite number, got a boolean"),
        (ev(1, v=None), "expected a finite number, got null"),
    ],
)
def test_invalid_events_are_rejected_with_a_reason_and_change_nothing(event, reason):
    op = WindowOperator(make_stream(tumbling(10), [("n", "count", None), ("s", "sum", "data.v")]))
    op.process(ev(5, v=1))
    before = op.state()
    (out,) = op.process(event)
    assert (out.kind, out.event, out.key, out.start) == ("invalid", event, None, None)
    assert reason in out.reason
    after = op.state()
    assert after.pop("counts") == {"events": 2, "windows": 0, "late": 0, "invalid": 1}
    before.pop("counts")
    assert after == before


def test_an_invalid_aggregate_value_applies_none_of_the_event():
    op = WindowOperator(
        make_stream(tumbling(10), [("n", "count", None), ("s", "sum", "data.v"), ("m", "max", "data.w")])
    )
    op.process(ev(1, v=1, w=1))
    assert op.process(ev(2, v=5, w="big"))[0].kind == "invalid"
    assert windows(op.flush()) == [("a", 0.0, 10.0, {"n": 1, "s": 1, "m": 1})]


def test_a_late_invalid_event_is_invalid():
    op = WindowOperator(make_stream(tumbling(10), [("s", "sum", "data.v")]))
    run(op, [ev(1, v=1), ev(50, v=1)], flush=False)
    assert op.process(ev(2, v="x"))[0].kind == "invalid"


def test_bad_window_shapes_are_refused_at_construction():
    with pytest.raises(ValueError, match="positive"):
        WindowOperator(make_stream(tumbling(0)))
    with pytest.raises(ValueError, match="unknown aggregate"):
        WindowOperator(make_stream(tumbling(10), [("x", "median", "data.v")]))


# --- times and default data -----------------------------------------------------------------------


def test_window_data_is_key_bounds_then_aggregates_and_bounds_win():
    out = Output("window", "p1", T0, T0 + 60.5, {"start": 1, "total": 7})
    data = window_data(out)
    assert data == {"key": "p1", "start": "2026-01-01T00:00:00Z", "end": "2026-01-01T00:01:00.5Z", "total": 7}
    assert list(data) == ["key", "start", "end", "total"]


# --- determinism, batch equivalence, snapshots ----------------------------------------------------

WINDOWS = [tumbling(10), hopping(10, 4), hopping(3, 5), session(6)]
PROPERTY_AGGS = [
    ("n", "count", None),
    ("s", "sum", "data.v"),
    ("lo", "min", "data.v"),
    ("hi", "max", "data.v"),
    ("d", "count_distinct", "data.v"),
    ("f", "first", "id"),
    ("l", "last", "id"),
]


def disordered(rng, n, disorder):
    """Events with integer-ish times in arrival order, each at most *disorder* behind the max seen."""
    times = sorted(rng.choice([rng.randrange(0, 4 * n), rng.randrange(0, 8 * n) / 4]) for _ in range(n))
    events = [
        {"id": f"e{i}", "time": t, "data": {"k": rng.choice("abc"), "v": rng.randrange(-5, 20)}}
        for i, t in enumerate(times)
    ]
    return sorted(events, key=lambda e: e["time"] + rng.uniform(0, disorder))


def reference(window, events, aggregates=PROPERTY_AGGS):
    """Brute-force batch windows: (key, start, end) -> events, computed from all events at once."""
    groups: dict = {}
    for e in sorted(events, key=lambda e: e["time"]):
        key, t = e["data"]["k"], e["time"]
        if window.kind == "session":
            groups.setdefault(key, []).append(e)
            continue
        every = window.size if window.kind == "tumbling" else window.every
        for j in range(int(t // every) - int(window.size // every) - 1, int(t // every) + 1):
            if j * every <= t < j * every + window.size:
                groups.setdefault((key, j * every, j * every + window.size), []).append(e)
    if window.kind == "session":
        sessions = {}
        for key, evs in groups.items():
            current = [evs[0]]
            for e in evs[1:]:
                if e["time"] - current[-1]["time"] < window.gap:
                    current.append(e)
                else:
                    sessions[(key, current[0]["time"], current[-1]["time"] + window.gap)] = current
                    current = [e]
            sessions[(key, current[0]["time"], current[-1]["time"] + window.gap)] = current
        groups = sessions
    out = []
    for (key, start, end), evs in sorted(groups.items(), key=lambda kv: (kv[0][2], kv[0][1], kv[0][0])):
        vs = [e["data"]["v"] for e in evs]
        out.append(
            (
                key,
                float(start),
                float(end),
                {
                    "n": len(vs),
                    "s": sum(vs),
                    "lo": min(vs),
                    "hi": max(vs),
                    "d": len(set(vs)),
                    "f": evs[0]["id"],
                    "l": evs[-1]["id"],
                },
            )
        )
    return out


@pytest.mark.parametrize("window", WINDOWS, ids=lambda w: f"{w.kind}-{w.size}-{w.every}-{w.gap}")
@pytest.mark.parametrize("seed", range(5))
def test_bounded_disorder_within_lateness_equals_the_sorted_batch(window, seed):
    rng = random.Random(seed)
    disorder = rng.choice([0, 1, 3, 7.5])
    arrived = disordered(rng, 300, disorder)
    stream = make_stream(window, PROPERTY_AGGS, lateness=disorder + rng.choice([0, 2]))
    live = run(WindowOperator(stream), arrived)
    batch = run(WindowOperator(stream), sorted(arrived, key=lambda e: e["time"]))
    assert live == batch
    assert all(o.kind == "window" for o in live)
    assert windows(live) == reference(window, arrived)


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(WINDOWS), st.integers(0, 2**32), st.integers(1, 60), st.sampled_from([0, 1, 4]))
def test_bounded_disorder_property(window, seed, n, disorder):
    rng = random.Random(seed)
    arrived = disordered(rng, n, disorder)
    stream = make_stream(window, PROPERTY_AGGS, lateness=disorder)
    assert run(WindowOperator(stream), arrived) == run(
        WindowOperator(stream), sorted(arrived, key=lambda e: e["time"])
    )


def _since_t0(time):
    return eventtime.parse(time) - T0 if type(time) is str else time


def messy(rng, n):
    """Events with heavy disorder, late events, invalid ones and mixed time formats."""
    events = []
    for i in range(n):
        t = rng.randrange(0, 5 * n) / 2
        event = {
            "id": f"e{i}",
            "time": t,
            "data": {"k": rng.choice(["a", "b", 3, True]), "v": rng.randrange(9)},
        }
        if rng.random() < 0.3:
            event["time"] = eventtime.format(T0 + t)
        if rng.random() < 0.05:
            event["data"]["v"] = "nope"
        events.append(event)
    events.sort(key=lambda e: rng.random() * 40 + _since_t0(e["time"]))
    return events


@pytest.mark.parametrize("window", WINDOWS, ids=lambda w: f"{w.kind}-{w.size}-{w.every}-{w.gap}")
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_snapshot_restore_at_random_cuts_continues_identically(window, seed):
    rng = random.Random(seed)
    stream = make_stream(
        window,
        ALL_AGGS[:5] + [("d", "count_distinct", "id"), ("f", "first", "id"), ("l", "last", "id")],
        lateness=rng.choice([0, 5, 15]),
    )
    events = messy(rng, 400)
    whole = run(WindowOperator(stream), events)
    assert {o.kind for o in whole} == {"window", "late", "invalid"}
    for cut in sorted(rng.sample(range(len(events) + 1), 6)) + [0, len(events)]:
        op = WindowOperator(stream)
        first = run(op, events[:cut], flush=False)
        snapshot = json.loads(json.dumps(op.state()))
        restored = WindowOperator.restore(stream, snapshot)
        assert restored.state() == snapshot
        assert first + run(restored, events[cut:]) == whole
        assert restored.counts == {
            "events": 400,
            "windows": sum(o.kind == "window" for o in whole),
            "late": sum(o.kind == "late" for o in whole),
            "invalid": sum(o.kind == "invalid" for o in whole),
        }


def test_snapshot_is_plain_deterministic_json():
    stream = make_stream(session(5), ALL_AGGS)
    events = [ev(t, k, v=t, tag=str(t % 3)) for t, k in [(1, "b"), (2, "a"), (30, "a"), (3, True), (31, 2)]]
    one, two = WindowOperator(stream), WindowOperator(stream)
    run(one, events, flush=False)
    run(two, events, flush=False)
    state = one.state()
    assert state == two.state()
    assert json.dumps(state) == json.dumps(json.loads(json.dumps(state)))
    # per open session: key, start, last event time, the accumulator's slots (avg: sum and count;
    # count_distinct: the canonical texts, sorted; first and last: time and value)
    assert state["windows"] == [
        ["a", 30.0, 30.0, [1, 30, 30, 30, 30, 1, ['"0"'], 30.0, "0", 30.0, "0"]],
        [2, 31.0, 31.0, [1, 31, 31, 31, 31, 1, ['"1"'], 31.0, "1", 31.0, "1"]],
    ]
    assert state["max_time"] == 31.0 and state["flushed"] is False


def test_restore_refuses_a_snapshot_of_another_shape():
    state = WindowOperator(make_stream(tumbling(10))).state()
    with pytest.raises(ValueError, match="window"):
        WindowOperator.restore(make_stream(session(10)), state)
    with pytest.raises(ValueError, match="aggregates"):
        WindowOperator.restore(make_stream(tumbling(10), [("s", "sum", "data.v")]), state)


def test_flushed_state_survives_restore():
    stream = make_stream(tumbling(10))
    op = WindowOperator(stream)
    run(op, [ev(1)])
    restored = WindowOperator.restore(stream, json.loads(json.dumps(op.state())))
    assert restored.process(ev(500))[0].kind == "late"


def test_runs_are_deterministic():
    stream = make_stream(hopping(10, 3), ALL_AGGS[:5], lateness=4)
    events = messy(random.Random(9), 300)
    assert run(WindowOperator(stream), events) == run(WindowOperator(stream), events)


@pytest.mark.parametrize("window", WINDOWS, ids=lambda w: f"{w.kind}-{w.size}-{w.every}-{w.gap}")
def test_snapshots_taken_again_and_again_equal_a_fresh_operators_and_resume_identically(window):
    """state() reuses the entry of a window no event changed since the last call: every such
    snapshot equals the one of an operator snapshotted for the first time, earlier snapshots
    stay as they were, and a restore from any of them continues as the uninterrupted run."""
    rng = random.Random(5)
    stream = make_stream(window, PROPERTY_AGGS, lateness=30)  # lateness: many windows stay open, few change
    events = messy(rng, 400)
    whole = run(WindowOperator(stream), events)
    op, taken = WindowOperator(stream), []
    for cut in range(0, len(events) + 1, 7):
        run(op, events[max(0, cut - 7) : cut], flush=False)
        twin = WindowOperator(stream)
        run(twin, events[:cut], flush=False)
        snapshot = op.state()
        assert snapshot == twin.state()
        taken.append((cut, snapshot, json.dumps(snapshot)))
    for cut, snapshot, text in taken:
        assert json.dumps(snapshot) == text  # not changed by the events after it
        restored = WindowOperator.restore(stream, json.loads(text))
        assert run(WindowOperator(stream), events[:cut], flush=False) + run(restored, events[cut:]) == whole


def test_snapshots_share_nothing_with_the_operator_or_the_events():
    stream = make_stream(tumbling(10), ALL_AGGS)
    op = WindowOperator(stream)
    run(op, [ev(1, v=1, tag="x")], flush=False)
    snapshot = op.state()
    text = json.dumps(snapshot)
    restored = WindowOperator.restore(stream, snapshot)
    deep = ev(3, v=3, tag={"deep": [2]})
    run(restored, [ev(2, v=5, tag="y"), deep], flush=False)
    assert json.dumps(snapshot) == text  # the restored operator took copies
    later = restored.state()
    deep["data"]["tag"]["deep"].append(3)  # an event changed after the snapshot
    assert later["windows"][0][2][:5] == [3, 9, 1, 5, 9]  # count, sum, min, max, avg's sum
    assert later["windows"][0][2][-1] == {"deep": [2]}  # last: a copy of the value
    assert restored.state() == later


def test_a_snapshot_of_another_version_is_refused():
    stream = make_stream(tumbling(10), ALL_AGGS)
    snapshot = {**WindowOperator(stream).state(), "version": 1}
    with pytest.raises(ValueError, match="snapshot version is 1, stream 's' needs 3"):
        WindowOperator.restore(stream, snapshot)


@pytest.mark.parametrize(
    "window", [tumbling(10), hopping(10, 5), session(4)], ids=["tumbling", "hopping", "session"]
)
def test_streams_of_counts_only_count_as_streams_that_also_read_a_field(window):
    """Counts alone read nothing: the same counts as when a sum is read too, and a single
    count (counted inline in tumbling windows, a shortcut) the same without shortcuts."""
    rng = random.Random(3)
    events = [ev(rng.randrange(100), rng.choice("abc"), v=1) for _ in range(300)]
    counts_only = make_stream(window, (("n", "count", None), ("m", "count", None)))
    with_sum = make_stream(window, (("n", "count", None), ("m", "count", None), ("v", "sum", "data.v")))
    counts = windows(run(WindowOperator(counts_only), events))
    general = [
        (k, s, e, {"n": v["n"], "m": v["m"]}) for k, s, e, v in windows(run(WindowOperator(with_sum), events))
    ]
    one = windows(run(WindowOperator(make_stream(window)), events))
    assert counts == general and counts
    assert all(v["n"] == v["m"] > 0 for *_, v in counts)
    assert one == [(k, s, e, {"n": v["n"]}) for k, s, e, v in counts]
    assert windows(run(WindowOperator(make_stream(window), fast_paths=False), events)) == one


def test_a_snapshot_whose_slots_do_not_fit_its_keys_is_refused():
    stream = make_stream(tumbling(10), [("n", "count", None), ("s", "sum", "data.v")])
    op = WindowOperator(stream)
    run(op, [ev(1, "a", v=1), ev(2, "b", v=2)], flush=False)
    state = json.loads(json.dumps(op.state()))
    assert state["windows"] == [[0, ["a", "b"], [1, 1, 1, 2]]]  # per key: count, sum
    state["windows"][0][2].pop()
    with pytest.raises(ValueError, match="3 slots for 2 keys, not 2 each"):
        WindowOperator.restore(stream, state)
