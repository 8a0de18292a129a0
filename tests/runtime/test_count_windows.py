"""Count windows (`window: {count: N, timeout: D}`) and the list aggregates collect, top_n,
distinct: what closes when, what a window emits, and snapshots taken mid-window."""
from __future__ import annotations

import json
import random

import pytest

from engine.core.errors import Location
from engine.language import model
from engine.runtime.windows import WindowOperator, window_data

LOC = Location("t.yaml", 1, 1)


def count(n, timeout=None):
    return model.Window("count", LOC, count=n, timeout=timeout)


def agg(name, op, fld=None, limit=None, pick=None):
    return model.Aggregate(name, op, fld, LOC, limit, pick)


def make_stream(window, aggregates, lateness=0.0):
    return model.Stream("s", LOC, (model.Ref("in", LOC),), window, tuple(aggregates), model.Ref("out", LOC),
                        key="data.k", lateness=lateness)


def ev(t, k="a", **data):
    return {"id": f"{k}-{t}", "type": "in", "time": t, "data": {"k": k, **data}}


def data_of(outputs):
    return [window_data(o) if o.kind == "window" else (o.kind, o.event["id"]) for o in outputs]


PLAYERS = make_stream(count(3, timeout=60.0), [agg("ids", "collect", "data.p", 3), agg("n", "count")])


def test_a_count_window_closes_with_the_event_that_fills_it_in_arrival_order():
    op = WindowOperator(PLAYERS)
    assert op.process(ev(10, p="x")) == [] and op.process(ev(5, p="y")) == []
    assert op.process(ev(1, k="b", p="other")) == []
    (full,) = op.process(ev(7, p="z"))
    assert window_data(full) == {"key": "a", "start": "1970-01-01T00:00:05Z", "end": "1970-01-01T00:00:10Z",
                                 "count": 3, "complete": True, "ids": ["x", "y", "z"], "n": 3}
    assert op.process(ev(8, p="w")) == []  # opens the next window of key a


def test_a_partial_window_closes_when_the_watermark_passes_its_timeout():
    op = WindowOperator(PLAYERS)
    op.process(ev(0, p="x"))
    op.process(ev(30, p="y"))
    assert op.process(ev(59, k="b", p="q")) == []  # the watermark is 59: a's deadline (60) not passed
    (partial,) = op.process(ev(60, k="b", p="r"))
    assert (partial.key, partial.count, partial.complete) == ("a", 2, False)
    assert window_data(partial)["ids"] == ["x", "y"]
    (last,) = op.flush()
    assert (last.key, last.count, last.complete, last.values["ids"]) == ("b", 2, False, ["q", "r"])


def test_an_event_past_the_timeout_of_its_key_s_window_opens_the_next_one():
    """With lateness the watermark lags: the window has not closed yet, but the event is more than
    `timeout` after its first event, so it does not join it; it closes, and the event opens another."""
    stream = make_stream(count(3, timeout=60.0), [agg("ids", "collect", "data.p", 3)], lateness=100)
    op = WindowOperator(stream)
    op.process(ev(0, p="x"))
    (closed,) = op.process(ev(61, p="y"))
    assert (closed.complete, closed.values) == (False, {"ids": ["x"]})
    assert [(o.values, o.start) for o in op.flush()] == [({"ids": ["y"]}, 61.0)]


def test_an_event_that_would_open_a_timed_out_window_is_late_and_after_flush_every_event_is():
    op = WindowOperator(PLAYERS)
    assert op.process(ev(200, k="b", p="w")) == []  # watermark 200
    assert data_of(op.process(ev(140, p="x"))) == [("late", "a-140")]  # 140 + 60 <= 200
    assert op.process(ev(141, p="x")) == []
    op.flush()
    assert data_of(op.process(ev(500, p="y"))) == [("late", "a-500")]
    untimed = WindowOperator(make_stream(count(2), [agg("n", "count")]))
    assert untimed.process(ev(1)) == [] and untimed.process(ev(10**6, k="b")) == []  # never times out
    assert [(o.key, o.count) for o in untimed.flush()] == [("a", 1), ("b", 1)]
    assert data_of(untimed.process(ev(3))) == [("late", "a-3")]


def test_the_list_aggregates_keep_their_bound():
    stream = make_stream(count(6), [
        agg("all", "collect", "data", 2),
        agg("best", "top_n", "data.s", 3, "data.p"),
        agg("scores", "top_n", "data.s", 2),
        agg("regions", "distinct", "data.r", 2),
    ])
    op = WindowOperator(stream)
    rows = [(5, "p1", "eu"), (9, "p2", "eu"), (9, "p3", "us"),
            (1, "p4", "ap"), (9, "p5", "eu"), (7, "p6", "sa")]
    out = []
    for i, (s, p, r) in enumerate(rows):
        out += op.process(ev(100 - i, s=s, p=p, r=r))  # later arrivals have earlier times
    (window,) = out
    assert window.values["all"] == [{"k": "a", "s": 5, "p": "p1", "r": "eu"},
                                    {"k": "a", "s": 9, "p": "p2", "r": "eu"}]
    assert window.values["best"] == ["p5", "p3", "p2"]  # ties of 9: the earlier event time first
    assert window.values["scores"] == [9, 9]
    assert window.values["regions"] == ["eu", "us"]  # first seen, at most 2


def test_list_aggregates_of_merged_sessions():
    stream = make_stream(model.Window("session", LOC, gap=10.0), [
        agg("ids", "collect", "data.p", 3), agg("best", "top_n", "data.s", 2, "data.p"),
        agg("seen", "distinct", "data.p", 10)], lateness=20)
    op = WindowOperator(stream)
    for t, p, s in [(0, "a", 1), (18, "b", 5), (19, "c", 3), (9, "d", 4)]:  # d bridges two sessions
        op.process(ev(t, p=p, s=s))
    (window,) = op.flush()
    # the earlier session's values, then the later one's, then the event's (collect is full by then)
    assert window.values == {"ids": ["a", "b", "c"], "best": ["b", "d"], "seen": ["a", "b", "c", "d"]}


def test_an_event_without_a_number_to_rank_by_is_invalid():
    op = WindowOperator(make_stream(count(2), [agg("best", "top_n", "data.s", 2, "data.p")]))
    assert [o.reason for o in op.process(ev(1, s="high", p="x"))] == [
        "aggregate 'best' (top_n): `by` expected a finite number, got a string"]
    assert [o.reason for o in op.process(ev(1, s=3))] == ["aggregate 'best' (top_n): field is missing"]


def test_emitted_lists_are_not_the_operator_s_own():
    op = WindowOperator(make_stream(count(1), [agg("all", "collect", "data", 1)]))
    event = ev(1, tags=["x"])
    (window,) = op.process(event)
    window.values["all"][0]["tags"].append("changed")
    assert event["data"]["tags"] == ["x"]


def random_events(seed, n=300):
    rng = random.Random(seed)
    return [ev(i + rng.randrange(-40, 3), k=rng.choice(["a", "b", 7, True]), p=f"p{i}", s=rng.randrange(6),
               r=rng.choice(["eu", "us", "ap"])) for i in range(n)]


LISTS = [agg("n", "count"), agg("ids", "collect", "data.p", 3), agg("top", "top_n", "data.s", 2, "data"),
         agg("regions", "distinct", "data.r", 2), agg("first", "first", "data.p")]


@pytest.mark.parametrize("fast_paths", [True, False], ids=["fast", "general"])
@pytest.mark.parametrize("window",
                         [count(4, timeout=20.0), count(5), model.Window("tumbling", LOC, size=30.0)],
                         ids=["count-timeout", "count", "tumbling"])
def test_a_snapshot_at_any_event_restores_to_the_same_outputs(window, fast_paths):
    stream = make_stream(window, LISTS, lateness=15.0)
    events = random_events(5)

    def run(cut):
        op, out = WindowOperator(stream, fast_paths), []
        for i, event in enumerate(events):
            if i == cut:
                op = WindowOperator.restore(stream, json.loads(json.dumps(op.state())), fast_paths)
            out += op.process(event)
        return data_of(out + op.flush()), op.counts

    whole = run(None)
    assert len(whole[0]) > 40
    assert whole[1]["late"] > 0 or window.timeout is None and window.kind == "count"  # never late
    for cut in range(0, len(events), 7):
        assert run(cut) == whole, cut
    assert run(None) == (whole if fast_paths else run(None))


def test_the_general_path_gives_the_outputs_of_the_fast_one():
    for window in (count(4, timeout=20.0), model.Window("tumbling", LOC, size=30.0)):
        stream = make_stream(window, LISTS, lateness=15.0)
        outs = []
        for fast_paths in (True, False):
            op = WindowOperator(stream, fast_paths)
            outs.append(data_of([o for e in random_events(9) for o in op.process(e)] + op.flush()))
        assert outs[0] == outs[1]


def test_a_snapshot_of_another_count_is_refused():
    state = WindowOperator(make_stream(count(4), [agg("n", "count")])).state()
    with pytest.raises(ValueError, match=r"snapshot count is \[4, None\], stream 's' needs \[5, 30.0\]"):
        WindowOperator.restore(make_stream(count(5, timeout=30.0), [agg("n", "count")]), state)


def test_a_snapshot_lists_the_open_count_windows():
    op = WindowOperator(PLAYERS)
    op.process(ev(3, p="x"))
    op.process(ev(4, k="b", p="y"))
    op.process(ev(5, p="z"))
    state = op.state()
    assert state["version"] == 3 and state["count"] == [3, 60.0]
    assert state["windows"] == [["a", 1, 3.0, 3.0, 5.0, 2, [["x", "z"], 2]],
                                ["b", 2, 4.0, 4.0, 4.0, 1, [["y"], 1]]]
