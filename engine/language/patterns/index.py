"""Many event patterns in one index: the keys of the patterns an event matches, without testing each.

The semantics are those of :mod:`engine.language.patterns.compiled`, which the index's tests compare it with.
"""
from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Mapping
from typing import Any

from .compiled import (
    ARRAY,
    MISSING,
    SCALAR,
    AnythingBut,
    CompiledPattern,
    EqualsIgnoreCase,
    Leaf,
    Numeric,
    ObjectPattern,
    Op,
    Prefix,
    Suffix,
    compile_pattern,
    is_number,
    scalar_key,
)

__all__ = ["PatternIndex"]

_MAX_ALTERNATIVES = 256    # $or expansions an index entry may have before it is scanned
_PEELED = 16               # set bits of a mask found one by one before its binary digits are read

# --------------------------------------------------------------------------- index
#
# Every pattern is expanded into alternatives (one per path through its $or branches), and
# each alternative gets one bit. Per field path, the index keeps the bitmask of alternatives
# that constrain the path and, for each leaf element, the bitmask of alternatives using it,
# in dictionaries keyed by exact value, by prefix or suffix, or by numeric segment. An
# ``anything-but`` is the complement of such a lookup: the alternatives negating at a path,
# minus those whose excluded value, prefix or suffix the event's value hits. Matching one
# event looks up only the values the event carries (and only the names it has), ORs the masks
# of satisfied elements, and kills every alternative that constrains a path its field did not
# satisfy: the cost grows with the number of distinct fields and satisfied elements, not with
# the number of patterns, and big-integer ORs do the per-pattern work 30 bits at a time.

class _TooManyAlternatives(Exception):
    pass


def _alternatives(obj: ObjectPattern, prefix: tuple, limit: int) -> list[tuple]:
    """The pattern as a disjunction of conjunctions of ``(path, leaf)`` constraints."""
    result: list[tuple] = [()]
    for name, node in obj.fields:
        path = prefix + (name,)
        options = [((path, node),)] if isinstance(node, Leaf) else _alternatives(node, path, limit)
        result = _product(result, options, limit)
    if obj.alternatives:
        options = [c for alt in obj.alternatives for c in _alternatives(alt, prefix, limit)]
        result = _product(result, options, limit)
    return result


def _product(left: list[tuple], right: list[tuple], limit: int) -> list[tuple]:
    if len(left) * len(right) > limit:
        raise _TooManyAlternatives
    return [a + b for a in left for b in right]


def _or_into(table: dict, key: Any, bit: int) -> None:
    table[key] = table.get(key, 0) | bit


class _Strings:
    """Masks of string operators by text: prefixes and suffixes by length, equals-ignore-case."""

    __slots__ = ("affixes", "ignore_case")

    def __init__(self) -> None:
        self.affixes: dict[str, dict[int, dict[str, int]]] = {}   # kind -> length -> text -> mask
        self.ignore_case: dict[str, int] = {}

    def __bool__(self) -> bool:
        return bool(self.affixes or self.ignore_case)

    def add(self, bit: int, op: Op) -> None:
        if isinstance(op, EqualsIgnoreCase):
            _or_into(self.ignore_case, op.text, bit)
        else:
            by_length = self.affixes.setdefault(op.kind, {})
            _or_into(by_length.setdefault(len(op.text), {}), op.text, bit)

    def mask(self, value: str) -> int:
        """Mask of the operators ``value`` passes (one lookup per kind and length)."""
        mask = 0
        lowered = value.lower() if (self.ignore_case or "prefix-ic" in self.affixes
                                    or "suffix-ic" in self.affixes) else value
        hit = self.ignore_case.get(lowered)
        if hit:
            mask |= hit
        for kind, by_length in self.affixes.items():
            text = lowered if kind.endswith("-ic") else value
            size = len(text)
            for length, table in by_length.items():
                if length <= size:
                    hit = table.get(text[:length] if kind.startswith("prefix") else text[size - length:])
                    if hit:
                        mask |= hit
        return mask


_STRING_OP_TYPES = (Prefix, Suffix, EqualsIgnoreCase)


class _Field:
    """What the index knows about one field path; every ``int`` is a bitmask of alternatives."""

    __slots__ = (
        "constrained",
        "required",
        "exists_true",
        "exists_false",
        "exact",
        "strings",
        "bounds",
        "segments",
        "negated",
        "excluded",
        "excluded_strings",
        "scanned",
    )

    def __init__(self) -> None:
        self.constrained = self.required = self.exists_true = self.exists_false = 0
        self.exact: dict = {}
        self.strings = _Strings()
        self.bounds: list = []  # sorted finite bounds of the numeric ranges
        self.segments: list = [0]  # mask per segment of the number line (see _add_range)
        self.negated = 0  # one anything-but each, satisfied unless excluded below
        self.excluded: dict = {}  # value key -> mask of the anything-buts excluding it
        self.excluded_strings = _Strings()  # anything-but prefix, suffix, equals-ignore-case
        self.scanned: dict = {}  # spec -> [op, mask]: wildcard, cidr, further anything-buts

    def add(self, bit: int, leaf: Leaf) -> None:
        self.constrained |= bit
        if leaf.exists_true:
            self.exists_true |= bit
        if leaf.exists_false:
            self.exists_false |= bit
        self.required = self.constrained & ~self.exists_false
        for key in leaf.exact:
            _or_into(self.exact, key, bit)
        for op in leaf.ops:
            self._add_op(bit, op)

    def _add_op(self, bit: int, op: Op) -> None:
        if isinstance(op, _STRING_OP_TYPES):
            self.strings.add(bit, op)
        elif isinstance(op, Numeric):
            self._add_range(bit, op)
        elif (
            isinstance(op, AnythingBut)
            and not bit & self.negated
            and all(isinstance(inner, _STRING_OP_TYPES) for inner in op.inner)
        ):
            # The complement of one lookup per alternative: a second anything-but of the same
            # alternative here (its leaf's elements are ORed) is scanned instead.
            self.negated |= bit
            for key in op.excluded or ():
                _or_into(self.excluded, key, bit)
            for inner in op.inner:
                self.excluded_strings.add(bit, inner)
        else:
            self.scanned.setdefault((op.kind, op.spec), [op, 0])[1] |= bit

    def satisfied(self, values: list) -> int:
        """Mask of alternatives whose leaf at this path accepts one of ``values``."""
        mask = self.exists_true
        exact, strings, ranges, scanned, negated = (
            self.exact,
            self.strings,
            self.bounds,
            self.scanned,
            self.negated,
        )
        for value in values:
            hit = exact.get(scalar_key(value))
            if hit:
                mask |= hit
            if isinstance(value, str):
                if strings:
                    mask |= strings.mask(value)
            elif ranges and is_number(value) and value == value:  # not NaN
                mask |= self._numeric_mask(value)
            if negated:
                mask |= negated & ~self._excluded_mask(value)
            for op, op_mask in scanned.values():
                if op.test(value):
                    mask |= op_mask
        return mask

    def _excluded_mask(self, value: Any) -> int:
        """Mask of the indexed anything-buts that exclude ``value`` (string forms: strings only)."""
        mask = self.excluded.get(scalar_key(value), 0) if self.excluded else 0
        if self.excluded_strings and isinstance(value, str):
            mask |= self.excluded_strings.mask(value)
        return mask

    def _add_range(self, bit: int, op: Numeric) -> None:
        """OR ``bit`` into every segment of the number line that ``op`` accepts.

        ``bounds`` are the sorted finite bounds of all ranges at this path; segment ``2i``
        is the open interval below ``bounds[i]`` and ``2i + 1`` is ``bounds[i]`` itself.
        A new bound splits its interval in three, each inheriting the interval's mask.
        """
        bounds, segments = self.bounds, self.segments
        for bound in op.bounds():
            i = bisect_left(bounds, bound)
            if i == len(bounds) or bounds[i] != bound:
                bounds.insert(i, bound)
                segments[2 * i : 2 * i + 1] = [segments[2 * i]] * 3
        first = 0 if op.low == -math.inf else 2 * bisect_left(bounds, op.low) + (2 if op.low_open else 1)
        last = (
            len(segments) - 1
            if op.high == math.inf
            else 2 * bisect_left(bounds, op.high) + (0 if op.high_open else 1)
        )
        for segment in range(first, last + 1):
            segments[segment] |= bit

    def _numeric_mask(self, value: float) -> int:
        i = bisect_left(self.bounds, value)
        if i < len(self.bounds) and self.bounds[i] == value:
            return self.segments[2 * i + 1]
        return self.segments[2 * i]


def _set_bits(mask: int) -> list[int]:
    """Positions of the 1 bits of ``mask``, ascending.

    An event usually matches a few patterns among thousands: the lowest bits are peeled off
    one at a time (each step costs a few machine words per 64 patterns), and only a mask
    with many bits set is read through its binary digits (a string as long as the mask).
    """
    found: list[int] = []
    while mask and len(found) < _PEELED:
        low = mask & -mask
        found.append(low.bit_length() - 1)
        mask ^= low
    if not mask:
        return found
    digits = bin(mask)[:1:-1]
    i = digits.find("1")
    while i >= 0:
        found.append(i)
        i = digits.find("1", i + 1)
    return found


class PatternIndex:
    """Many patterns under caller-chosen keys; :meth:`match` finds those an event satisfies.

    Examples
    --------
    >>> index = PatternIndex()
    >>> index.add("big", {"detail": {"total": [{"numeric": [">", 100]}]}})
    >>> index.add("eu", {"detail": {"region": [{"prefix": "eu-"}]}})
    >>> index.match({"detail": {"total": 250, "region": "eu-west"}})
    ['big', 'eu']
    """

    def __init__(self) -> None:
        self._entries: list[tuple[Any, CompiledPattern]] = []
        self._owner: list[int] = []  # alternative bit -> entry number
        self._all = 0  # every alternative
        self._free = 0  # alternatives that need no field to be present
        self._verify = 0  # alternatives the masks alone cannot decide
        self._shared_entries = False  # some entry owns several alternatives ($or)
        self._fields: list[_Field] = []
        self._field_ids: dict[tuple, int] = {}
        self._trie: dict[str, list] = {}  # name -> [field id or None, sub-trie]

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, key: Any, pattern: Mapping | CompiledPattern) -> None:
        """Index ``pattern`` (compiled or not) under ``key``; raises PatternError if malformed."""
        compiled = compile_pattern(pattern)
        entry = len(self._entries)
        self._entries.append((key, compiled))
        try:
            alternatives = _alternatives(compiled._root, (), _MAX_ALTERNATIVES)
        except _TooManyAlternatives:
            alternatives = None
        if alternatives is not None and len(alternatives) > 1:
            self._shared_entries = True
        for conjunction in alternatives if alternatives is not None else [()]:
            bit = 1 << len(self._owner)
            self._owner.append(entry)
            self._all |= bit
            if alternatives is None:
                self._verify |= bit  # unconstrained here: always a candidate, always checked
            paths = [path for path, _ in conjunction]
            if len(set(paths)) < len(paths):
                self._verify |= bit  # two leaves on one path ($or and a sibling): AND them later
            for path, leaf in conjunction:
                self._field(path).add(bit, leaf)
            if all(leaf.exists_false for _, leaf in conjunction):
                self._free |= bit

    def _field(self, path: tuple) -> _Field:
        fid = self._field_ids.get(path)
        if fid is None:
            fid = self._field_ids[path] = len(self._fields)
            self._fields.append(_Field())
            trie = self._trie
            for name in path[:-1]:
                trie = trie.setdefault(name, [None, {}])[1]
            trie.setdefault(path[-1], [None, {}])[0] = fid
        return self._fields[fid]

    def match(self, event: Any) -> list:
        """Keys of the patterns ``event`` satisfies, in the order they were added."""
        if not isinstance(event, Mapping):
            return [key for key, compiled in self._entries if compiled.matches(event)]
        found: dict[int, list] = {}
        nested = self._collect(event, self._trie, found)
        fields = self._fields
        union, kill = self._free, 0
        for fid, values in found.items():
            field = fields[fid]
            satisfied = field.satisfied(values)
            if nested:  # exists:false is judged per array element: let the check decide
                satisfied |= field.exists_false
            union |= satisfied
            kill |= field.constrained & ~satisfied
        survivors = union & ~kill  # every survivor needs no field or has a satisfied one
        absent = len(fields) - len(found)
        if absent and survivors:
            # Kill the survivors that need an absent field, unless there are so many absent
            # fields (patterns on many distinct fields) that checking survivors is cheaper.
            if absent * (1 + self._all.bit_length() // 4000) > 4 * survivors.bit_count():
                return self._keys(survivors, survivors, event)
            for fid, field in enumerate(fields):
                if fid not in found:
                    kill |= field.required
            survivors &= ~kill
        return self._keys(survivors, self._all if nested else self._verify, event)

    def _keys(self, survivors: int, verify: int, event: Any) -> list:
        bits = _set_bits(survivors)
        if not survivors & verify and not self._shared_entries:
            return [self._entries[entry][0] for entry in map(self._owner.__getitem__, bits)]
        check = set(_set_bits(survivors & verify))
        keys, last = [], -1
        for bit in bits:
            entry = self._owner[bit]
            if entry == last:
                continue
            last = entry
            key, compiled = self._entries[entry]
            if bit not in check or compiled.matches(event):
                keys.append(key)
        return keys

    def _collect(self, obj: Mapping, trie: dict, found: dict) -> bool:
        """Gather leaf values at indexed paths; True if one crossed an array of objects."""
        nested = False
        # Walk the smaller side: thousands of field names at one level of the patterns cost
        # an event only the names it has.
        for name in trie if len(trie) <= len(obj) else [name for name in obj if name in trie]:
            value = obj.get(name, MISSING)
            if value is MISSING:
                continue
            fid, sub = trie[name]
            if isinstance(value, str):
                if fid is not None:
                    found.setdefault(fid, []).append(value)
            elif self._descend(value, fid, sub, found, False):
                nested = True
        return nested

    def _descend(self, value: Any, fid: int | None, sub: dict, found: dict, in_array: bool) -> bool:
        if type(value) not in SCALAR and isinstance(value, Mapping):
            if not sub:
                return False
            return self._collect(value, sub, found) or in_array
        if isinstance(value, ARRAY):
            nested = False
            for item in value:
                nested = self._descend(item, fid, sub, found, True) or nested
            return nested
        if fid is not None:
            found.setdefault(fid, []).append(value)
        return False
