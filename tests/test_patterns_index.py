"""engine.language.patterns.PatternIndex: same answers as a scan of compiled patterns, without the scan."""
from __future__ import annotations

import hashlib
import importlib.util
import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.language.model import freeze
from engine.language.patterns import (
    CompiledPattern,
    PatternError,
    PatternIndex,
    compile_pattern,
)

REPO = Path(__file__).resolve().parent.parent
WORKLOAD = REPO.parent / "shared" / "bench" / "workload_routes.py"


def scan(patterns, event):
    return [key for key, compiled in patterns if compiled.matches(event)]


# --- basics --------------------------------------------------------------------------

def test_keys_come_back_in_insertion_order():
    index = PatternIndex()
    index.add("z", {"a": [1]})
    index.add("y", {"a": [{"numeric": [">", 0]}]})
    index.add("x", {"b": ["no"]})
    index.add("w", compile_pattern({"a": [{"exists": True}]}))
    assert index.match({"a": 1}) == ["z", "y", "w"]
    assert index.match({"a": 0}) == ["w"]
    assert index.match({}) == []
    assert len(index) == 4


def test_one_key_per_entry_even_when_several_or_branches_match():
    index = PatternIndex()
    index.add("k", {"$or": [{"a": [1]}, {"b": [2]}]})
    index.add("k", {"c": [3]})                      # a key may be reused; each entry reports once
    assert index.match({"a": 1, "b": 2, "c": 3}) == ["k", "k"]


def test_patterns_added_after_matching_are_seen():
    index = PatternIndex()
    index.add("gt5", {"n": [{"numeric": [">", 5]}]})
    assert index.match({"n": 7}) == ["gt5"]
    index.add("lt10", {"n": [{"numeric": ["<", 10]}]})
    index.add("p", {"s": [{"prefix": "ab"}]})
    assert index.match({"n": 7, "s": "abc"}) == ["gt5", "lt10", "p"]
    index.add("ge7", {"n": [{"numeric": [">=", 7]}]})
    assert index.match({"n": 7}) == ["gt5", "lt10", "ge7"]


def test_add_rejects_invalid_patterns():
    index = PatternIndex()
    with pytest.raises(PatternError, match="unknown operator 'prefx'"):
        index.add("bad", {"a": [{"prefx": "x"}]})
    assert len(index) == 0 or index.match({"a": "x"}) == []


def test_non_object_events_and_empty_patterns():
    index = PatternIndex()
    index.add("all", {})
    index.add("absent", {"a": [{"exists": False}]})
    index.add("a", {"a": [1]})
    assert index.match({}) == ["all", "absent"]
    assert index.match({"a": 1}) == ["all", "a"]
    assert index.match("not an object") == ["all", "absent"]


def test_matching_does_not_scan_the_patterns(monkeypatch):
    index = PatternIndex()
    for i in range(2000):
        index.add(i, {"source": [f"s{i % 100}"], "detail": {"n": [{"numeric": [">", i % 7]}]}})
    calls = []
    monkeypatch.setattr(CompiledPattern, "matches", lambda self, event: calls.append(1) or True)
    assert index.match({"source": "s3", "detail": {"n": 4}}) == [i for i in range(3, 2000, 100) if i % 7 < 4]
    assert calls == []


@pytest.mark.slow
def test_many_distinct_fields_stay_cheap_and_correct(monkeypatch):
    rng = random.Random(3)
    patterns = [(i, {f"f{i}": [i], f"g{i % 50}": [{"exists": rng.random() < 0.5}]}) for i in range(3000)]
    index = PatternIndex()
    for key, pattern in patterns:
        index.add(key, pattern)
    compiled = [(key, compile_pattern(pattern)) for key, pattern in patterns]
    events = [{"f7": 7, "g7": 0}, {"f7": 7}, {"f8": 8, "f9": 9, "g9": 1}, {"g1": 1}, {}]
    for event in events:
        assert index.match(event) == scan(compiled, event)
    calls = []
    real = CompiledPattern.matches
    monkeypatch.setattr(CompiledPattern, "matches", lambda self, event: calls.append(1) or real(self, event))
    index.match({"f8": 8, "f9": 9, "g9": 1})
    assert len(calls) < 100          # the survivors of the present fields, not all 3000


def test_non_finite_event_numbers():
    patterns = [(0, {"n": [{"numeric": ["<", 0]}]}), (1, {"n": [{"numeric": [">=", 0]}]}),
                (2, {"n": [{"anything-but": 1}]}), (3, {"n": [{"numeric": [">", 0, "<=", 9]}]})]
    for value, expected in ((float("nan"), [2]), (float("inf"), [1, 2]), (float("-inf"), [0, 2])):
        index = PatternIndex()
        for key, pattern in patterns:
            index.add(key, pattern)
        assert index.match({"n": value}) == expected == scan([(k, compile_pattern(p)) for k, p in patterns],
                                                             {"n": value})


def test_frozen_patterns_and_events():
    index = PatternIndex()
    index.add("p", freeze({"d": {"tags": ["vip"], "$or": [{"n": [1]}, {"m": [{"exists": False}]}]}}))
    assert index.match(freeze({"d": {"tags": ["x", "vip"], "n": 1, "m": 0}})) == ["p"]
    assert index.match(freeze({"d": {"tags": ["vip"], "m": 0}})) == []


# --- random agreement with the scan ----------------------------------------------------

FIELDS = ["a", "b", "c"]
SCALARS = ["x", "xy", "yx", "XY", "", "10.0.0.7", "2001:db8::1", "a*b", 0, 1, 1.0, 2.5, -3, True, False, None]


def random_leaf(rng: random.Random) -> list:
    def element():
        kind = rng.randrange(14)
        text = rng.choice(["x", "y", "X", "", "10."])
        return [
            lambda: rng.choice(SCALARS),
            lambda: rng.choice(SCALARS),
            lambda: {"prefix": text},
            lambda: {"prefix": {"equals-ignore-case": text}},
            lambda: {"suffix": text},
            lambda: {"suffix": {"equals-ignore-case": text}},
            lambda: {"equals-ignore-case": text},
            lambda: {"wildcard": rng.choice(["*", "x*", "*y", "x*y", "a\\*b"])},
            lambda: {"numeric": rng.choice([[">", 0], ["<=", 1], ["=", 1], [">=", -3, "<", 2.5]])},
            lambda: {"exists": rng.random() < 0.5},
            lambda: {"cidr": rng.choice(["10.0.0.0/8", "2001:db8::/32"])},
            lambda: {"anything-but": rng.choice(["x", 1, ["x", "y"], [0, 1]])},
            lambda: {"anything-but": rng.choice([{"prefix": "x"}, {"suffix": "y"}, {"wildcard": ["x*"]},
                                                 {"equals-ignore-case": ["xy", "X"]}])},
            lambda: rng.choice(SCALARS),
        ][kind]()
    return [element() for _ in range(rng.randrange(1, 4))]


def random_object(rng: random.Random, depth: int) -> dict:
    obj: dict = {}
    for name in rng.sample(FIELDS, rng.randrange(1, 3)):
        obj[name] = random_object(rng, depth - 1) if depth and rng.random() < 0.3 else random_leaf(rng)
    if depth and rng.random() < 0.2:
        obj["$or"] = [random_object(rng, depth - 1) for _ in range(rng.randrange(2, 4))]
    return obj


def random_value(rng: random.Random, depth: int):
    roll = rng.random()
    if depth and roll < 0.2:
        return random_event(rng, depth - 1)
    if roll < 0.35:
        return [random_value(rng, depth) if rng.random() < 0.3 else rng.choice(SCALARS)
                for _ in range(rng.randrange(0, 3))]
    return rng.choice(SCALARS)


def random_event(rng: random.Random, depth: int = 2) -> dict:
    return {name: random_value(rng, depth) for name in FIELDS if rng.random() < 0.7}


def assert_index_agrees(patterns, events):
    index = PatternIndex()
    compiled = []
    for key, pattern in patterns:
        index.add(key, pattern)
        compiled.append((key, compile_pattern(pattern)))
    for event in events:
        assert index.match(event) == scan(compiled, event), event


@pytest.mark.slow
def test_index_agrees_with_scan_on_seeded_random_patterns():
    rng = random.Random(20260101)
    patterns = [(f"p{i}", random_object(rng, depth=2)) for i in range(2000)]
    events = [random_event(rng) for _ in range(1000)]
    assert_index_agrees(patterns, events)


@pytest.mark.slow
def test_index_agrees_with_scan_on_flat_events_only():
    rng = random.Random(7)
    patterns = [(i, random_object(rng, depth=1)) for i in range(1000)]
    events = [{name: rng.choice(SCALARS) for name in FIELDS if rng.random() < 0.8} for _ in range(1000)]
    assert_index_agrees(patterns, events)


@pytest.mark.slow
@settings(max_examples=300, derandomize=True, deadline=None)
@given(st.integers(0, 2**32), st.integers(1, 40))
def test_index_agrees_with_scan_property(seed, size):
    rng = random.Random(seed)
    patterns = [(i, random_object(rng, depth=2)) for i in range(size)]
    assert_index_agrees(patterns, [random_event(rng) for _ in range(20)])


def test_anything_but_is_indexed_as_a_complement():
    patterns = [
        ("one", {"a": [{"anything-but": ["x", 5]}]}),
        ("two in one leaf", {"a": [{"anything-but": ["x"]}, {"anything-but": ["y"]}]}),
        ("and a sibling", {"a": [{"anything-but": ["x"]}],
                           "$or": [{"a": [{"anything-but": ["y"]}]}, {"b": [1]}]}),
        ("string forms", {"a": [{"anything-but": {"prefix": "x"}}, {"anything-but": {"suffix": "y"}}]}),
        ("ignoring case", {"a": [{"anything-but": {"equals-ignore-case": ["XY", "z"]}}]}),
        ("wildcard", {"a": [{"anything-but": {"wildcard": ["x*"]}}]}),
        ("with a value", {"a": ["x", {"anything-but": {"prefix": "y"}}]}),
    ]
    events = [{"a": v} for v in ("x", "y", "xy", "Xy", "z", "Z", "yx", 5, 5.0, 6, True, None, ["x", "y"], [])]
    assert_index_agrees(patterns, events + [{"b": 1}, {"a": "y", "b": 1}, {"a": "x", "b": 1}, {}])


def test_explosive_or_patterns_are_checked_one_by_one():
    pattern = {name: {"$or": [{"a": [i]} for i in range(8)]} for name in "pqr"}   # 512 alternatives
    index = PatternIndex()
    index.add("big", pattern)
    index.add("small", {"p": {"a": [1]}})
    assert index.match({"p": {"a": 1}, "q": {"a": 7}, "r": {"a": 0}}) == ["big", "small"]
    assert index.match({"p": {"a": 1}, "q": {"a": 9}, "r": {"a": 0}}) == ["small"]


# --- the shared workload -------------------------------------------------------------

@pytest.fixture(scope="module")
def workload():
    if not WORKLOAD.exists():  # a skip even under CI=true, whose clone has ../shared beside it
        pytest.skip(f"needs {WORKLOAD} (the project's shared folder beside the repo)")
    spec = importlib.util.spec_from_file_location("workload_routes", WORKLOAD)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
@pytest.mark.parametrize(("n", "m", "count", "digest"), [
    (10, 5000, 2257, "35aba70ea9ed"),
    (100, 2000, 7962, "30a9b96999e2"),
    (1000, 300, 10530, "bb2cc529fb54"),
    (10000, 40, 14247, "2eea43da9ec6"),
])
def test_shared_workload_counts_and_digests(workload, n, m, count, digest):
    index = PatternIndex()
    for rule in workload.make_rules(n):
        index.add(rule["name"], rule["pattern"])
    lines = [f"{i}:{name}\n" for i,
             event in enumerate(workload.make_events(5000)[:m]) for name in index.match(event)]
    assert len(lines) == count
    assert hashlib.sha256("".join(lines).encode()).hexdigest()[:12] == digest
