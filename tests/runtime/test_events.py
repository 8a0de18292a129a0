"""engine.runtime.events: reading input files, and the events the runtime derives."""
from __future__ import annotations

import hashlib
import json

import pytest

from engine.core.errors import Location
from engine.runtime.events import (
    BadInput,
    ContentIds,
    derive,
    normalise,
    read_events,
    read_located_events,
)

LINES = [
    {
        "specversion": "1.0",
        "id": "a",
        "source": "s",
        "type": "t",
        "time": "2026-01-01T00:00:00Z",
        "data": {"x": 1},
    },
    {"id": "b", "source": "s", "type": "t"},  # specversion defaults
    {"specversion": "1.0", "source": "s", "type": "t"},  # id made
    {"specversion": "1.0", "id": "d", "type": "t", "data": None},  # source defaults
    {"specversion": "0.3", "id": "e", "source": "s", "type": "t"},
    {"specversion": "1.0", "id": "", "source": "s", "type": "t"},
    {"specversion": "1.0", "id": 7, "source": "s", "type": "t"},
    {"specversion": "1.0", "id": "h", "source": "s", "type": "t", "time": None},
    {"specversion": "1.0", "id": "i", "source": "s", "type": "t", "time": 12},
    # no offset
    {"specversion": "1.0", "id": "i2", "source": "s", "type": "t", "time": "2026-01-01T00:00:00"},
    {"specversion": "1.0", "id": "i3", "source": "s", "type": "t", "time": "not-a-time"},
    # a leap second
    {"specversion": "1.0", "id": "i4", "source": "s", "type": "t", "time": "2016-12-31T23:59:60Z"},
    {"specversion": "1.0", "id": "j", "source": "s"},
    [1, 2],
    "text",
    None,
    {"type": "t", "id": "k", "specversion": "1.0", "source": "s", "subject": "z"},  # another key order
]


def reference(path, lines, make_id):
    """What reading gives, line by line, through normalise (the general path), blank lines skipped."""
    out, index = [], 0
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        loc = Location(path, number, 1)
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:  # located at the column where the line stops being JSON
            at = Location(path, number, exc.colno)
            out.append((at, BadInput(at, f"not JSON: {exc.msg}", text.rstrip("\n")[:2000])))
            continue
        out.append((loc, normalise(raw, loc, index, make_id)))
        index += 1
    return out


@pytest.mark.parametrize("make_id", [None, ContentIds], ids=["positions", "content"])
def test_json_lines_read_as_normalise_reads_them(tmp_path, make_id):
    lines = [json.dumps(x) + "\n" for x in LINES]
    lines[3:3] = ["\n", "   \t\n", "\u00a0\u2003\n", "{not json\n", "{\"a\": 1,}\n", "\x00\n"]
    path = tmp_path / "in.jsonl"
    path.write_text("".join(lines), encoding="utf-8")
    args = (str(path),) if make_id is None else (str(path), make_id())
    expected = reference(str(path), lines, ContentIds() if make_id else (lambda raw, i: f"input-{i + 1}"))
    got = list(read_located_events(*args))
    assert got == expected
    assert [list(item.items()) for _, item in got if isinstance(item, dict)] == [
        list(item.items()) for _, item in expected if isinstance(item, dict)
    ]  # key order too
    if make_id is None:
        assert list(read_events(str(path))) == [item for _, item in expected]


def test_an_unreadable_file_is_one_bad_input_and_an_undecodable_line_is_one_too(tmp_path):
    missing = str(tmp_path / "missing.jsonl")
    [(loc, item)] = read_located_events(missing)
    assert loc == item.loc == Location(missing) and item.problem.startswith("cannot read")
    assert list(read_events(missing)) == [item]
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(
        b'{"id": "a", "source": "s", "type": "t"}\n{"id": "\xc3\xa9\xff"}\n'
        b'{"id": "c", "source": "s", "type": "t"}\n'
    )
    got = list(read_located_events(str(bad)))
    assert [item["id"] for _, item in got if isinstance(item, dict)] == ["a", "c"]
    assert got[1][0] == got[1][1].loc == Location(str(bad), 2, 10)  # the character after "é"
    assert got[1][1].problem == "not UTF-8 text: invalid start byte 0xff at byte 11"
    assert got[1][1].raw == '{"id": "\xe9\\xff"}'  # the bytes that are not text, escaped
    assert list(read_events(str(bad))) == [item for _, item in got]


def test_a_list_file_reads_the_same_through_both_readers(tmp_path):
    path = tmp_path / "in.yaml"
    path.write_text("- {id: a, source: s, type: t}\n- {type: t}\n- 3\n", encoding="utf-8")
    located = list(read_located_events(str(path)))
    assert [item for _, item in located] == list(read_events(str(path)))
    assert located[1][1]["id"] == "input-2" and isinstance(located[2][1], BadInput)


def test_derive_links_the_child_to_its_parent():
    root = {"id": "in-1", "source": "/shop", "type": "a"}
    child = derive(root, "svc", 0, "b", {"x": 1}, 1767225600.0, subject="s")
    assert list(child) == [
        "specversion",
        "id",
        "source",
        "type",
        "time",
        "datacontenttype",
        "data",
        "causationid",
        "correlationid",
        "hopcount",
        "causationpath",
        "subject",
    ]
    # the parent's identity, hashed
    assert child["id"] == hashlib.sha1(b"5:/shop|in-1|svc|0").hexdigest()[:20]
    assert (
        child["source"],
        child["time"],
        child["causationid"],
        child["correlationid"],
        child["hopcount"],
        child["causationpath"],
    ) == ("meshctl/svc", "2026-01-01T00:00:00Z", "in-1", "in-1", 1, "svc")
    grandchild = derive({**child, "hopcount": "1"}, "other", 2, "c", None, 1.5, source="src", element="flow")
    assert (
        grandchild["source"],
        grandchild["correlationid"],
        grandchild["hopcount"],
        grandchild["causationpath"],
        grandchild["time"],
    ) == ("src", "in-1", 2, "svc,flow", "1970-01-01T00:00:01.5Z")
    assert "subject" not in grandchild
    assert derive({**child, "hopcount": True}, "x", 0, "c", None, 0)["hopcount"] == 2
    with pytest.raises(TypeError):
        derive({**child, "hopcount": None}, "x", 0, "c", None, 0)
