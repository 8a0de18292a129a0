"""engine.language.patterns: EventBridge event-pattern semantics, one operator at a time, and errors."""
from __future__ import annotations

import pytest

from engine.core.errors import MeshError
from engine.language.model import freeze
from engine.language.patterns import PatternError, compile_pattern


def matches(pattern, event) -> bool:
    return compile_pattern(pattern).matches(event)


def check(pattern, hits, misses):
    """``pattern`` is put under field ``f``; every value in hits matches, none in misses."""
    compiled = compile_pattern({"f": pattern})
    for value in hits:
        assert compiled.matches({"f": value}), f"{pattern!r} should match {value!r}"
    for value in misses:
        assert not compiled.matches({"f": value}), f"{pattern!r} should not match {value!r}"
    assert not compiled.matches({}) or any(isinstance(e, dict) and e.get("exists") is False for e in pattern)


# --- exact values --------------------------------------------------------------------

def test_exact_strings_are_case_sensitive():
    check(["eu-west", "us-east"], hits=["eu-west", "us-east"], misses=["EU-WEST", "eu", "", 5, None])


def test_numbers_compare_numerically_not_as_text():
    check([5], hits=[5, 5.0], misses=["5", 5.5, True])
    check([5.0], hits=[5], misses=["5.0"])
    check([0], hits=[0, 0.0, -0.0], misses=[False, None])


def test_booleans_never_equal_numbers():
    check([True], hits=[True], misses=[1, "true", 1.0])
    check([1], hits=[1], misses=[True])
    check([False], hits=[False], misses=[0, None])


def test_null_needs_a_present_null():
    check([None], hits=[None], misses=["null", 0, False, ""])
    assert not matches({"f": [None]}, {})
    assert not matches({"f": [None]}, {"g": None})


def test_empty_string_is_a_value():
    check([""], hits=[""], misses=[None, " "])


def test_event_array_matches_if_any_element_matches():
    pattern = {"resources": ["arn:b"]}
    assert matches(pattern, {"resources": ["arn:a", "arn:b"]})
    assert not matches(pattern, {"resources": ["arn:a"]})
    assert not matches(pattern, {"resources": []})
    assert matches(pattern, {"resources": [["arn:b"]]})          # nested arrays flatten


def test_all_fields_must_match():
    pattern = {"source": ["shop"], "type": ["order.placed"]}
    assert matches(pattern, {"source": "shop", "type": "order.placed", "extra": 1})
    assert not matches(pattern, {"source": "shop", "type": "order.paid"})
    assert not matches(pattern, {"source": "shop"})


def test_nested_objects_descend():
    pattern = {"detail": {"order": {"total": [{"numeric": [">", 100]}]}}}
    assert matches(pattern, {"detail": {"order": {"total": 150}}})
    assert not matches(pattern, {"detail": {"order": {"total": 50}}})
    assert not matches(pattern, {"detail": {"order": 150}})
    assert not matches(pattern, {"detail": "order"})
    assert not matches(pattern, {})


def test_a_leaf_does_not_match_an_object():
    assert not matches({"detail": ["x"]}, {"detail": {"x": 1}})
    assert not matches({"detail": [{"exists": True}]}, {"detail": {"x": 1}})


def test_empty_top_level_pattern_matches_everything():
    assert matches({}, {}) and matches({}, {"a": 1})


def test_cloudevents_shaped_event():
    pattern = {"type": ["com.shop.order.placed"], "data": {"score": [{"numeric": [">", 0]}]}}
    event = {"specversion": "1.0", "type": "com.shop.order.placed", "source": "/shop", "id": "1",
             "data": {"score": 3}}
    assert matches(pattern, event)
    assert not matches(pattern, {**event, "data": {"score": 0}})


# --- string operators ----------------------------------------------------------------

def test_prefix():
    check([{"prefix": "eu-"}], hits=["eu-west", "eu-"], misses=["EU-west", "xeu-", 5, None, ["us"]])
    check([{"prefix": ""}], hits=["", "a"], misses=[1])


def test_prefix_ignoring_case():
    check([{"prefix": {"equals-ignore-case": "EU-"}}], hits=["eu-west", "Eu-x"], misses=["us-eu-", 1])


def test_suffix():
    check([{"suffix": ".png"}], hits=["a.png", ".png"], misses=["a.PNG", "a.png.gz", 3])


def test_suffix_ignoring_case():
    check([{"suffix": {"equals-ignore-case": ".PNG"}}], hits=["a.png", "B.Png"], misses=["a.jpg", None])


def test_equals_ignore_case():
    check([{"equals-ignore-case": "Alice"}], hits=["alice", "ALICE", "aLiCe"], misses=["alice ", "bob", 1])


def test_wildcard():
    check([{"wildcard": "dir/*.png"}], hits=["dir/a.png", "dir/.png", "dir/x/y.png"],
          misses=["dir/a.png.gz", "xdir/a.png", 5])
    check([{"wildcard": "*"}], hits=["", "anything"], misses=[1, None])
    check([{"wildcard": "a*b*c"}], hits=["abc", "aXbYc", "abbc"], misses=["acb", "ab"])
    check([{"wildcard": "a.b"}], hits=["a.b"], misses=["axb"])                 # no regex leaks


def test_wildcard_escapes():
    check([{"wildcard": "a\\*b"}], hits=["a*b"], misses=["ab", "axb"])
    check([{"wildcard": "a\\\\*"}], hits=["a\\", "a\\xyz"], misses=["a", "ab"])


def test_string_operators_never_match_non_strings():
    for op in ({"prefix": "1"}, {"suffix": "1"}, {"equals-ignore-case": "1"}, {"wildcard": "1*"}):
        check([op], hits=["1"], misses=[1, 1.0, True, None])


# --- anything-but --------------------------------------------------------------------

def test_anything_but_a_value():
    check([{"anything-but": "casual"}], hits=["ranked", "Casual", 5, None, True], misses=["casual"])


def test_anything_but_a_list():
    check([{"anything-but": ["casual", "bot"]}], hits=["ranked"], misses=["casual", "bot"])
    check([{"anything-but": [1, 2]}], hits=[3, "1", 1.5], misses=[1, 2.0])


def test_anything_but_never_matches_a_missing_field():
    assert not matches({"f": [{"anything-but": "x"}]}, {})
    assert not matches({"f": [{"anything-but": "x"}]}, {"f": []})


def test_anything_but_in_an_event_array_needs_one_element_not_excluded():
    pattern = {"f": [{"anything-but": ["a", "b"]}]}
    assert matches(pattern, {"f": ["a", "c"]})
    assert not matches(pattern, {"f": ["a", "b"]})


def test_anything_but_string_shapes():
    check([{"anything-but": {"prefix": "init"}}], hits=["running", 7], misses=["initializing", "init"])
    check([{"anything-but": {"suffix": ".tmp"}}], hits=["a.txt"], misses=["a.tmp"])
    check([{"anything-but": {"equals-ignore-case": "Bot"}}], hits=["human"], misses=["bot", "BOT"])
    check([{"anything-but": {"equals-ignore-case": ["a", "B"]}}], hits=["c"], misses=["A", "b"])
    check([{"anything-but": {"wildcard": "*.tmp"}}], hits=["a.txt"], misses=["a.tmp"])
    check([{"anything-but": {"wildcard": ["*.tmp", "~*"]}}], hits=["a.txt"], misses=["a.tmp", "~a"])


# --- numeric -------------------------------------------------------------------------

@pytest.mark.parametrize(("spec", "hits", "misses"), [
    ([">", 0], [0.001, 1, 10**20], [0, -1]),
    ([">=", 0], [0, 0.0, 3], [-0.5]),
    (["<", 10], [9.99, -5], [10, 10.0]),
    (["<=", 10], [10, 10.0], [10.01]),
    (["=", 3], [3, 3.0], [3.01, 2]),
    ([">", 0, "<=", 5], [0.1, 5], [0, 5.01]),
    ([">=", 40, "<", 60], [40, 59.9], [39, 60]),
    ([">=", -1.5, "<=", 1.5], [-1.5, 0, 1.5], [-2, 2]),
])
def test_numeric(spec, hits, misses):
    check([{"numeric": spec}], hits=hits, misses=misses)


def test_numeric_only_matches_numbers():
    check([{"numeric": [">=", 0]}], hits=[1], misses=["1", True, False, None, "abc"])


# --- exists --------------------------------------------------------------------------

def test_exists_true_needs_a_present_leaf_value():
    pattern = {"f": [{"exists": True}]}
    for present in ("x", 0, None, False, [1]):
        assert matches(pattern, {"f": present})
    for absent in ({}, {"f": []}, {"f": {"g": 1}}, {"g": 1}):
        assert not matches(pattern, absent)


def test_exists_false_needs_no_leaf_value():
    pattern = {"f": [{"exists": False}]}
    for absent in ({}, {"f": []}, {"f": {"g": 1}}, {"g": 1}):
        assert matches(pattern, absent)
    for present in ("x", 0, None, [1]):
        assert not matches(pattern, {"f": present})


def test_exists_false_under_a_missing_parent():
    assert matches({"detail": {"clan": [{"exists": False}]}}, {"source": "x"})


def test_exists_false_or_a_value():
    check([{"exists": False}, "x"], hits=["x"], misses=["y"])
    assert matches({"f": [{"exists": False}, "x"]}, {})


# --- cidr ----------------------------------------------------------------------------

def test_cidr_ipv4():
    check([{"cidr": "10.0.0.0/24"}], hits=["10.0.0.1", "10.0.0.255"],
          misses=["10.0.1.1", "10.0.0", "x", 10, "::1"])
    check([{"cidr": "192.168.1.7"}], hits=["192.168.1.7"], misses=["192.168.1.8"])


def test_cidr_ipv6():
    check([{"cidr": "2001:db8::/32"}], hits=["2001:db8::1", "2001:DB8:ffff::"],
          misses=["2001:db9::1", "10.0.0.1"])


# --- $or -----------------------------------------------------------------------------

def test_or_at_the_top_level_combines_with_siblings():
    pattern = {"source": ["shop"], "$or": [{"type": ["a"]}, {"detail": {"n": [{"numeric": [">", 5]}]}}]}
    assert matches(pattern, {"source": "shop", "type": "a"})
    assert matches(pattern, {"source": "shop", "type": "b", "detail": {"n": 6}})
    assert not matches(pattern, {"source": "shop", "type": "b", "detail": {"n": 5}})
    assert not matches(pattern, {"source": "other", "type": "a"})


def test_or_inside_a_nested_object_and_nested_or():
    pattern = {"detail": {"$or": [{"a": [1]}, {"$or": [{"b": [2]}, {"c": [3]}]}]}}
    for hit in ({"a": 1}, {"b": 2}, {"c": 3}, {"a": 0, "c": 3}):
        assert matches(pattern, {"detail": hit})
    assert not matches(pattern, {"detail": {"a": 2, "b": 3}})
    assert not matches(pattern, {"a": 1})


def test_or_may_repeat_a_sibling_field():
    pattern = {"f": ["a", "b"], "$or": [{"f": ["b", "c"]}, {"g": [1]}]}
    assert matches(pattern, {"f": "b"})
    assert matches(pattern, {"f": "a", "g": 1})
    assert not matches(pattern, {"f": "c"})
    assert not matches(pattern, {"f": "a"})


# --- arrays of objects ---------------------------------------------------------------

def test_fields_under_an_array_of_objects_come_from_one_element():
    pattern = {"items": {"sku": ["A"], "qty": [{"numeric": [">", 1]}]}}
    assert matches(pattern, {"items": [{"sku": "B", "qty": 5}, {"sku": "A", "qty": 2}]})
    assert not matches(pattern, {"items": [{"sku": "A", "qty": 1}, {"sku": "B", "qty": 5}]})
    assert not matches(pattern, {"items": []})


def test_exists_false_under_an_array_is_judged_per_element():
    pattern = {"items": {"gift": [{"exists": False}]}}
    assert matches(pattern, {"items": [{"gift": True}, {"sku": "A"}]})
    assert not matches(pattern, {"items": [{"gift": True}]})
    assert matches(pattern, {"items": []})


# --- frozen inputs -------------------------------------------------------------------

def test_frozen_patterns_and_events():
    pattern = {"source": ["shop"], "detail": {"tags": [{"prefix": "v"}], "n": [{"numeric": ["<", 3]}]},
               "$or": [{"id": [1]}, {"id": [2]}]}
    event = {"source": "shop", "id": 2, "detail": {"tags": ["x", "vip"], "n": 1}}
    assert compile_pattern(freeze(pattern)).matches(freeze(event))
    assert compile_pattern(pattern).matches(freeze(event))
    assert not compile_pattern(freeze(pattern)).matches(freeze({**event, "id": 3}))


def test_compile_pattern_accepts_a_compiled_pattern():
    compiled = compile_pattern({"a": [1]})
    assert compile_pattern(compiled) is compiled
    assert "'a': [1]" in repr(compiled)


# --- invalid patterns ----------------------------------------------------------------

@pytest.mark.parametrize(("pattern", "path", "message"), [
    (["a"], (), "an event pattern must be an object"),
    ({"data": {"score": [{"numerc": [">", 0]}]}}, ("data", "score", 0, "numerc"),
     "data.score: unknown operator 'numerc' (did you mean 'numeric'?)"),
    ({"data": {"region": "eu"}}, ("data", "region"), "data.region: a pattern leaf must be a list of values"),
    ({"data": {"region": 5}}, ("data", "region"), "data.region: a pattern leaf must be a list of values"),
    ({"a": []}, ("a",), "a: a pattern leaf must not be an empty list"),
    ({"a": {}}, ("a",), "a: an object in a pattern needs at least one field"),
    ({"a": [["x"]]}, ("a", 0), "a: nested lists are not allowed"),
    ({"a": [{"prefix": "x", "suffix": "y"}]}, ("a", 0), "a: an operator object must have exactly one key"),
    ({"a": [{}]}, ("a", 0), "a: an operator object must have exactly one key"),
    ({"a": [1.5e999]}, ("a", 0), "a: unsupported value"),
    ({"n": [{"numeric": ["=>", 3]}]}, ("n", 0, "numeric", 0),
     "n: numeric: expected comparison operator, got '=>'"),
    ({"n": [{"numeric": [">", "3"]}]}, ("n", 0, "numeric", 1), "numeric: expected a number after '>'"),
    ({"n": [{"numeric": [">", True]}]}, ("n", 0, "numeric", 1), "numeric: expected a number"),
    ({"n": [{"numeric": [">", 1, ">", 2]}]}, ("n", 0, "numeric"), "numeric: a range is a lower bound"),
    ({"n": [{"numeric": ["=", 1, "<", 2]}]}, ("n", 0, "numeric"), "numeric: a range is a lower bound"),
    ({"n": [{"numeric": [">", 5, "<", 5]}]}, ("n", 0, "numeric"), "must be below the upper bound"),
    ({"n": [{"numeric": [">"]}]}, ("n", 0, "numeric"), "numeric: expected [operator, number]"),
    ({"n": [{"numeric": 5}]}, ("n", 0, "numeric"), "numeric: expected [operator, number]"),
    ({"s": [{"prefix": 5}]}, ("s", 0, "prefix"), "s: prefix: expected a string"),
    ({"s": [{"prefix": {"equals-ignore-cas": "x"}}]}, ("s", 0, "prefix"), "prefix: expected a string or"),
    ({"s": [{"suffix": {"equals-ignore-case": 1}}]}, ("s", 0, "suffix", "equals-ignore-case"),
     "suffix: equals-ignore-case: expected a string"),
    ({"s": [{"equals-ignore-case": ["x"]}]}, ("s", 0, "equals-ignore-case"),
     "equals-ignore-case: expected a string"),
    ({"s": [{"wildcard": "a**b"}]}, ("s", 0, "wildcard"), "s: wildcard: consecutive '*'"),
    ({"s": [{"wildcard": "a\\b"}]}, ("s", 0, "wildcard"), "wildcard: '\\' must be followed by"),
    ({"s": [{"wildcard": 3}]}, ("s", 0, "wildcard"), "wildcard: expected a string"),
    ({"s": [{"exists": "yes"}]}, ("s", 0, "exists"), "s: exists: expected true or false"),
    ({"ip": [{"cidr": "10.0.0.0/33"}]}, ("ip", 0, "cidr"), "ip: cidr: '10.0.0.0/33' is not an IPv4 or IPv6"),
    ({"ip": [{"cidr": 10}]}, ("ip", 0, "cidr"), "cidr: expected a string"),
    ({"m": [{"anything-but": []}]}, ("m", 0, "anything-but"),
     "anything-but: the list of excluded values must not"),
    ({"m": [{"anything-but": [None]}]}, ("m", 0, "anything-but", 0),
     "excluded values must be strings or numbers"),
    ({"m": [{"anything-but": True}]}, ("m", 0, "anything-but"), "excluded values must be strings or numbers"),
    ({"m": [{"anything-but": {"prefx": "a"}}]}, ("m", 0, "anything-but"), "(did you mean 'prefix'?)"),
    ({"m": [{"anything-but": {"prefix": 1}}]}, ("m", 0, "anything-but", "prefix"),
     "prefix: expected a string"),
    ({"m": [{"anything-but": {"wildcard": ["a**"]}}]}, ("m", 0, "anything-but", "wildcard"),
     "consecutive '*'"),
    ({"m": [{"anything-but": {"equals-ignore-case": []}}]}, ("m", 0, "anything-but", "equals-ignore-case"),
     "must not be empty"),
    ({"$or": [{"a": [1]}]}, ("$or",), "$or must be a list of at least two object patterns"),
    ({"$or": {"a": [1]}}, ("$or",), "$or must be a list"),
    ({"d": {"$or": [{"a": [1]}, "b"]}}, ("d", "$or", 1), "d.$or[1]: each $or alternative must be an object"),
    ({"$or": [{"a": [1]}, {"b": {"c": "x"}}]}, ("$or", 1, "b", "c"),
     "$or[1].b.c: a pattern leaf must be a list"),
    ({1: [1]}, (1,), "pattern keys must be strings"),
])
def test_invalid_patterns_name_the_culprit(pattern, path, message):
    with pytest.raises(PatternError) as info:
        compile_pattern(pattern)
    assert message in str(info.value)
    assert info.value.path == path


def test_pattern_error_is_a_mesh_error_with_the_bare_message():
    with pytest.raises(MeshError) as info:
        compile_pattern({"a": {"b": [{"sufix": "x"}]}})
    assert isinstance(info.value, PatternError)
    assert info.value.message == "unknown operator 'sufix' (did you mean 'suffix'?)"
    assert str(info.value) == "a.b: " + info.value.message


def test_frozen_invalid_pattern_still_locates_the_error():
    with pytest.raises(PatternError) as info:
        compile_pattern(freeze({"a": [{"numeric": [">", 1, "<"]}]}))
    assert info.value.path == ("a", 0, "numeric")


NUMBER_LEAVES = [[5], [5.0], [0], [1], [True], [None], ["5"], [{"numeric": [">", 0]}],
                 [{"numeric": [">", -1, "<=", 5]}], [{"numeric": ["=", 1]}], [3, {"numeric": [">=", 10]}],
                 [{"exists": True}], [{"exists": False}], [{"anything-but": [5]}],
                 [{"anything-but": {"prefix": "5"}}], [{"prefix": "5"}]]
NUMBER_VALUES = [5, 5.0, 0, -0.0, 1, 1.0, True, False, -1, 10, 10.5, 2**70, float("nan"), float("inf"),
                 -float("inf")]


@pytest.mark.parametrize("leaf", NUMBER_LEAVES, ids=str)
def test_a_number_matches_as_the_array_of_itself_does(leaf):
    """Numbers take a shortcut in a leaf; a one-element array takes the general path, with the same answer."""
    pattern = compile_pattern({"data": {"n": leaf}})
    for value in NUMBER_VALUES:
        assert pattern.matches({"data": {"n": value}}) is pattern.matches({"data": {"n": [value]}}), (
            leaf,
            value,
        )
