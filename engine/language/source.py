"""YAML text -> plain JSON-like data plus the source location of every node.

The only module that imports ``yaml``. Loading stops at PyYAML's *compose* stage, indexes
every node by its JSON path (the shape of ``jsonschema``'s ``absolute_path``), checks it
against our limits, and only then constructs Python data from the same node tree.

Guards, all reported as located diagnostics rather than exceptions:
- safe tags only (str, int, float, bool, null, map, seq, merge); ``!!python/...`` is refused;
- YAML 1.2 booleans (``on:``/``yes:`` stay strings); timestamps stay strings;
- duplicate keys and non-string keys;
- a byte-size cap, a nesting-depth cap, and a cap on the alias-expanded node count
  ("billion laughs" is rejected before anything walks the expanded tree);
- with ``finite_numbers`` (mesh and test files): ``.inf``, ``.nan`` and numbers beyond a
  64-bit float's range, which nothing downstream could compute with or write as JSON.
"""
from __future__ import annotations

import io
import math
import os
import re
import stat
import sys
from dataclasses import dataclass, field
from typing import Any, Iterator

import yaml
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.parser import Parser
from yaml.reader import Reader
from yaml.resolver import Resolver
from yaml.scanner import Scanner

from ..core.errors import Diagnostic, Location, Note

JsonPath = tuple  # tuple[str | int, ...]

SAFE_TAGS = frozenset(
    "tag:yaml.org,2002:" + t for t in ("str", "int", "float", "bool", "null", "map", "seq", "merge")
)


@dataclass(frozen=True, slots=True)
class Limits:
    """Caps applied to every file; documented in docs/validate.md."""

    max_bytes: int = 8 * 1024 * 1024
    max_depth: int = 64
    max_nodes: int = 1_000_000  # per document, counting every alias expansion


DEFAULT_LIMITS = Limits()


try:  # libyaml's C scanner and parser, when PyYAML was built with it: ~8x faster
    from yaml._yaml import CParser as _Parser
    _EVENTS: tuple = (_Parser,)
except ImportError:  # pure Python, same events; never fall back to an unsafe loader
    _Parser = None
    _EVENTS = (Reader, Scanner, Parser)


# the C composer recurses: use it only when nesting provably stays far below libyaml's crash
FAST_NESTING = 1000


class _CStrictLoader(*((_Parser,) if _Parser else ()), SafeConstructor, Resolver):
    """libyaml's C parser *and* composer (several times faster), for text whose nesting is bounded."""

    def __init__(self, text: str, filename: str, max_depth: int) -> None:
        stream = io.StringIO(text)
        stream.name = filename
        _Parser.__init__(self, stream)
        SafeConstructor.__init__(self)
        Resolver.__init__(self)


class _StrictLoader(Composer, *_EVENTS, SafeConstructor, Resolver):
    """Safe loading with YAML 1.2 booleans, no timestamps, and a nesting-depth cap.

    Events come from libyaml's C parser when available; composing stays in Python (the
    C composer recurses without bound and crashes on very deep input), so the depth cap
    below always applies.
    """

    def __init__(self, text: str, filename: str, max_depth: int) -> None:
        if _Parser is not None:
            stream = io.StringIO(text)
            stream.name = filename  # libyaml takes the file name for its marks from here
            _Parser.__init__(self, stream)
        else:
            Reader.__init__(self, text)
            Scanner.__init__(self)
            Parser.__init__(self)
            self.name = filename
        Composer.__init__(self)
        SafeConstructor.__init__(self)
        Resolver.__init__(self)
        self.max_depth = max_depth
        self._depth = 0

    def compose_node(self, parent, index):
        self._depth += 1
        try:
            if self._depth > self.max_depth:
                raise _TooDeep(self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


_StrictLoader.yaml_implicit_resolvers = {
    first: [
        (tag, rx)
        for tag, rx in resolvers
        if tag not in ("tag:yaml.org,2002:bool", "tag:yaml.org,2002:timestamp")
    ]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_CStrictLoader.yaml_implicit_resolvers = _StrictLoader.yaml_implicit_resolvers
_IMPLICIT = _StrictLoader.yaml_implicit_resolvers
assert None not in _IMPLICIT and not _StrictLoader.yaml_path_resolvers  # what _resolve leaves out


def _resolve(self, kind, value, implicit) -> str:
    """``Resolver.resolve`` without the path resolvers we never register: the composer calls it for
    every node, and the general version was a tenth of loading."""
    if kind is yaml.ScalarNode:
        if implicit[0]:
            for tag, regexp in _IMPLICIT.get(value[:1], ()):
                if regexp.match(value):
                    return tag
        return "tag:yaml.org,2002:str"
    return "tag:yaml.org,2002:seq" if kind is yaml.SequenceNode else "tag:yaml.org,2002:map"


_StrictLoader.resolve = _CStrictLoader.resolve = _resolve


def nesting_bound(text: str) -> int:
    """A cheap upper bound on the nesting depth of any document in *text*.

    Per document: every flow collection opens with ``[`` or ``{``; block collections nest by
    indentation (at most two levels per column: a sequence may sit at its key's indentation)
    or by indicators on one line (``- - x``, ``? ``, ``: ``).
    """
    if _ODD_BREAKS.search(text) is None:  # a coarser bound, counted by str and re methods, usually suffices
        coarse = max(map(_coarse_bound, _DOCUMENT_START.split(text)))
        if coarse < FAST_NESTING:
            return coarse
    return _line_bound(text)


def _line_bound(text: str) -> int:
    bound = opens = indent = inline = 0
    for line in text.splitlines():
        if line.startswith(("---", "...")):
            bound, opens, indent, inline = max(bound, opens + 2 * indent + inline + 2), 0, 0, 0
        opens += line.count("[") + line.count("{")
        indent = max(indent, len(line) - len(line.lstrip(" ")))
        inline = max(inline, line.count("- ") + line.count(": ") + line.count("? "))
    return max(bound, opens + 2 * indent + inline + 2)


# str.splitlines breaks there, re's ^ does not
_ODD_BREAKS = re.compile("[\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")
_DOCUMENT_START = re.compile(r"^(?=---|\.\.\.)", re.M)
_INDENT = re.compile(r"^ +", re.M)


def _coarse_bound(document: str) -> int:
    """:func:`nesting_bound` for one document, with each line's indicators (two characters each)
    bounded by half the longest line."""
    opens = document.count("[") + document.count("{")
    indent = max(map(len, _INDENT.findall(document)), default=0)
    return opens + 2 * indent + (max(map(len, document.split("\n"))) + 1) // 2 + 2


class _TooDeep(Exception):
    def __init__(self, mark):
        self.mark = mark


@dataclass(slots=True)
class SourceMap:
    """Locations of one document's nodes, keyed by JSON path.

    ``values[path]`` is where the value at *path* starts; ``keys[path]`` is where the mapping
    key that leads to *path* starts.
    """

    values: dict[JsonPath, Location] = field(default_factory=dict)
    keys: dict[JsonPath, Location] = field(default_factory=dict)

    def at(self, path: JsonPath) -> Location:
        """Where the value at *path* starts, or its nearest ancestor's location."""
        path = tuple(path)
        while path not in self.values and path:
            path = path[:-1]
        return self.values[path]

    def key(self, path: JsonPath) -> Location:
        """Where the key leading to *path* is written (falls back to the value)."""
        path = tuple(path)
        return self.keys.get(path) or self.at(path)


class NodeMap(SourceMap):
    """A :class:`SourceMap` that reads the composed node tree when asked, instead of indexing it.

    For plain trees only (no merge keys, no shared nodes, unique string keys), where a path
    names exactly one node: creating a location for every node costs more than the few
    lookups diagnostics and the model need.
    """

    __slots__ = ("root", "_maps")

    def __init__(self, root: yaml.Node) -> None:
        super().__init__()
        self.root = root
        self._maps: dict[int, dict[str, tuple[yaml.Node, yaml.Node]]] = {}

    def _find(self, path: JsonPath) -> tuple[yaml.Node, yaml.Node | None, bool]:
        """The deepest node on *path*, the key node leading to it, and whether all of *path* exists."""
        node, key = self.root, None
        for part in path:
            if type(node) is yaml.MappingNode:
                entries = self._maps.get(id(node))
                if entries is None:
                    entries = self._maps[id(node)] = {k.value: (k, v) for k, v in node.value}
                entry = entries.get(part) if type(part) is str else None
                if entry is None:
                    return node, None, False
                key, node = entry
            elif type(node) is yaml.SequenceNode and type(part) is int and 0 <= part < len(node.value):
                key, node = None, node.value[part]
            else:
                return node, None, False
        return node, key, True

    def at(self, path: JsonPath) -> Location:
        return Location.from_mark(self._find(path)[0].start_mark)

    def key(self, path: JsonPath) -> Location:
        node, key, found = self._find(path)
        return Location.from_mark(key.start_mark if found and key is not None else node.start_mark)


@dataclass(frozen=True, slots=True)
class Document:
    """One YAML document: its plain data and where each node came from."""

    data: Any
    smap: SourceMap
    loc: Location
    index: int  # 0-based position among the file's documents


def read_text(
    path: str, display: str, limits: Limits = DEFAULT_LIMITS, regular_only: bool = False
) -> tuple[str | None, list[Diagnostic]]:
    """Read a file as UTF-8 text, refusing oversize files and non-text bytes with a location.

    With *regular_only* (mesh and test files), anything but a regular file (a FIFO, a socket,
    a device) is refused unread: reading a FIFO nobody writes to would wait for ever.
    """
    not_a_file = [
        Diagnostic(
            Location(display),
            "not-a-file",
            "not a regular file (a FIFO, socket or device)",
            hint="a mesh is made of regular YAML files: remove or rename this entry",
        )
    ]
    try:
        if regular_only and not stat.S_ISREG(os.stat(path).st_mode):  # a socket cannot even be opened
            return None, not_a_file
        # O_NONBLOCK: a FIFO put in its place since would otherwise wait for a writer
        fd = os.open(path, os.O_RDONLY | (os.O_NONBLOCK if regular_only else 0))
        with os.fdopen(fd, "rb") as fh:
            if regular_only and not stat.S_ISREG(os.fstat(fd).st_mode):
                return None, not_a_file
            raw = fh.read(limits.max_bytes + 1)
    except OSError as exc:
        return None, [
            Diagnostic(Location(display), "unreadable-file", f"cannot read file: {exc.strerror or exc}")
        ]
    return decode_text(raw, display, limits)


def decode_text(
    raw: bytes, display: str, limits: Limits = DEFAULT_LIMITS
) -> tuple[str | None, list[Diagnostic]]:
    """*raw* (at most ``max_bytes + 1`` bytes of a file or stream) as text, or the located reason it is
    not."""
    if len(raw) > limits.max_bytes:
        return None, [
            Diagnostic(
                Location(display, 1, 1),
                "file-too-large",
                f"file is larger than the {limits.max_bytes // (1024 * 1024)} MiB limit",
                hint="split the mesh into several files in one directory",
            )
        ]
    try:
        return raw.decode("utf-8-sig"), []
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        col = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        return None, [
            Diagnostic(
                Location(display, line, col),
                "not-text",
                f"file is not UTF-8 text (byte 0x{raw[exc.start]:02x})",
                hint="mesh files and event files must be UTF-8 YAML or JSON",
            )
        ]


def load_documents(
    text: str, filename: str, limits: Limits = DEFAULT_LIMITS, finite_numbers: bool = False
) -> tuple[list[Document], list[Diagnostic]]:
    """Parse every document of *text*; return those that loaded and the problems found.

    Never raises for any input: every PyYAML exception (syntax errors, but also the
    ``ValueError``/``IndexError``/``RecursionError`` it can leak) becomes a diagnostic. With
    *finite_numbers*, a number that is not finite, or an integer beyond the range of a
    64-bit float, is a ``non-finite-number`` problem of its document.
    """
    documents: list[Document] = []
    diagnostics: list[Diagnostic] = []
    loader = None
    try:
        fast = _Parser is not None and nesting_bound(text) < FAST_NESTING
        loader = (_CStrictLoader if fast else _StrictLoader)(text, filename, limits.max_depth)
        index = 0
        while loader.check_node():
            node = loader.get_node()
            document = (
                None if _is_empty(node) else _fast_document(loader, node, index, limits, finite_numbers)
            )
            if document is not None:
                documents.append(document)
                index += 1
                continue
            # nesting too, for the C composer's documents
            problems = list(_check_tree(node, limits, finite_numbers))
            if problems:
                diagnostics += problems
            elif not _is_empty(node):
                documents.append(_construct(loader, node, index, diagnostics))
            index += 1
    except _TooDeep as exc:
        diagnostics.append(
            Diagnostic(
                Location.from_mark(exc.mark),
                "too-deep",
                f"nesting is deeper than the limit of {limits.max_depth} levels",
            )
        )
    except yaml.MarkedYAMLError as exc:
        diagnostics.append(_syntax_diagnostic(exc, filename))
    except yaml.YAMLError as exc:  # ReaderError: a forbidden character, with a character position
        diagnostics.append(_reader_diagnostic(exc, text, filename))
    except (RecursionError, MemoryError) as exc:
        diagnostics.append(
            Diagnostic(
                Location(filename, 1, 1),
                "too-complex",
                f"document is too complex to load ({type(exc).__name__})",
            )
        )
    finally:
        if loader is not None:
            loader.dispose()
    documents = [d for d in documents if d is not None]
    if not documents and not diagnostics:
        diagnostics.append(
            Diagnostic(
                Location(filename, 1, 1),
                "empty-file",
                "file holds no YAML document",
                hint="add a document (apiVersion, kind, metadata, spec) or remove the file",
            )
        )
    return documents, diagnostics


_STR, _MAP, _SEQ = ("tag:yaml.org,2002:" + t for t in ("str", "map", "seq"))
_SCALARS = {
    tag: SafeConstructor.yaml_constructors[tag]
    for tag in ("tag:yaml.org,2002:" + t for t in ("int", "float", "bool", "null"))
}


class _Irregular(Exception):
    """The document needs the careful path: a problem to report, an alias, a merge key, an odd tag."""


def _fast_document(  # noqa: C901 (one walk over every node of a mesh: bench validate)
    loader, root: yaml.Node, index: int, limits: Limits, finite_numbers: bool
) -> Document | None:
    """The common case in one walk: a plain tree of safe values, within the limits.

    Builds the same data PyYAML's constructor would, and a :class:`NodeMap` that finds
    locations only when asked. Returns None for anything irregular (any problem
    :func:`_check_tree` would report, a shared or recursive node, a merge key, a value the
    constructor rejects): :func:`load_documents` then takes the careful path, so diagnostics
    are exactly those of that path.
    """
    max_depth, seen = limits.max_depth, set()
    count = 1

    def value(node: yaml.Node, depth: int) -> Any:
        nonlocal count
        kind = type(node)
        if kind is yaml.ScalarNode:
            if node.tag == _STR:
                return node.value
            scalar = _SCALARS[node.tag](loader, node)  # KeyError for any other tag: careful path
            if finite_numbers and not _finite(scalar):
                raise _Irregular
            return scalar
        items, depth = node.value, depth + 1
        if (items and depth > max_depth) or id(node) in seen:  # its items would be too deep
            raise _Irregular
        seen.add(id(node))
        if kind is yaml.MappingNode and node.tag == _MAP:
            out: dict = {}
            for key, item in items:
                if type(key) is not yaml.ScalarNode or key.tag != _STR or key.value in out:
                    raise _Irregular  # merge keys, non-string and duplicate keys
                # strings inline: most nodes are, and a call per node is a third of the walk
                out[key.value] = (
                    item.value if item.tag == _STR and type(item) is yaml.ScalarNode else value(item, depth)
                )
            count += 2 * len(items)
            return out
        if kind is yaml.SequenceNode and node.tag == _SEQ:
            count += len(items)
            return [
                item.value if item.tag == _STR and type(item) is yaml.ScalarNode else value(item, depth)
                for item in items
            ]
        raise _Irregular

    try:
        if limits.max_depth < 1:
            return None
        data = value(root, 1)
    except Exception:  # _Irregular, KeyError, a constructor's ValueError, RecursionError
        return None
    if count > limits.max_nodes or len(seen) + 1 > limits.max_nodes:
        return None
    return Document(data, NodeMap(root), Location.from_mark(root.start_mark), index)


LARGEST = int(sys.float_info.max)  # ~1.8e308: an integer beyond it has no finite 64-bit float


def _finite(value: Any) -> bool:
    """False for a float that is infinite or NaN and an int beyond :data:`LARGEST` (True otherwise)."""
    kind = value.__class__
    if kind is float:
        return math.isfinite(value)
    return kind is not int or -LARGEST <= value <= LARGEST


_NUMBERS = ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")
_READER = SafeConstructor()  # constructs one scalar at a time; holds no document


def _number_problem(node: yaml.ScalarNode) -> Diagnostic | None:
    """Why a number scalar cannot be a meshctl number, located at the scalar itself."""
    written = node.value if len(node.value) <= 24 else node.value[:20] + "..."
    try:
        value = _SCALARS[node.tag](_READER, node)
    except Exception as exc:  # PyYAML leaks ValueError, IndexError... for `!!int abc`, `!!int ""`
        digits = node.value.lstrip("+-").replace("_", "")
        if not (digits.isascii() and digits.isdigit()):
            shown = node.tag.replace("tag:yaml.org,2002:", "!!")
            return Diagnostic(
                Location.from_mark(node.start_mark),
                "bad-value",
                f"cannot read {written!r} as {shown}: {exc}",
                hint="write the plain value",
            )
        value = math.inf  # a decimal integer past Python's 4,300-digit conversion limit
    if _finite(value):
        return None
    if value != value:
        what = f"{written!r} is not a number (NaN)"
    elif isinstance(value, float) and node.value.lstrip("+-").lower() in (".inf", ".infinity"):
        what = f"{written!r} is infinite"
    else:
        what = f"{written!r} is out of range: numbers lie within ±1.8e308"
    return Diagnostic(
        Location.from_mark(node.start_mark),
        "non-finite-number",
        f"number {what}",
        hint="numbers must be finite; to mean 'no limit' leave the key out (Mesh retention takes `forever`)",
    )


def _is_empty(node: yaml.Node) -> bool:
    return (
        isinstance(node, yaml.ScalarNode)
        and node.tag == "tag:yaml.org,2002:null"
        and node.value in ("", "~", "null")
    )


def _construct(
    loader: _StrictLoader, node: yaml.Node, index: int, diagnostics: list[Diagnostic]
) -> Document | None:
    smap = _index(node)
    try:
        data = loader.construct_document(node)
    except Exception as exc:  # PyYAML leaks ValueError & co. for odd explicit tags; report, never crash
        mark = getattr(exc, "problem_mark", None) or node.start_mark
        diagnostics.append(Diagnostic(Location.from_mark(mark), "bad-value", f"cannot read value: {exc}"))
        return None
    return Document(data, smap, Location.from_mark(node.start_mark), index)


def _check_tree(root: yaml.Node, limits: Limits, finite_numbers: bool = False) -> Iterator[Diagnostic]:
    """Refuse unsafe tags, bad or duplicate keys, recursive aliases and alias bombs before constructing
    (and, with *finite_numbers*, numbers that are not finite)."""
    sizes: dict[int, int] = {}  # alias-expanded node count per node, memoised (aliases share nodes)
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool, int]] = [(root, False, 1)]
    while stack:
        node, done, depth = stack.pop()
        ident = id(node)
        if done:
            on_path.discard(ident)
            sizes[ident] = 1 + sum(sizes[id(child)] for child in _children(node))
            if sizes[ident] > limits.max_nodes:
                yield Diagnostic(
                    Location.from_mark(node.start_mark),
                    "alias-bomb",
                    f"aliases expand this document past {limits.max_nodes:,} nodes",
                    hint="anchors and aliases may share values, not multiply them",
                )
                return
            continue
        if ident in sizes:
            continue
        if depth > limits.max_depth:
            yield Diagnostic(
                Location.from_mark(node.start_mark),
                "too-deep",
                f"nesting is deeper than the limit of {limits.max_depth} levels",
            )
            return
        if ident in on_path:
            yield Diagnostic(
                Location.from_mark(node.start_mark),
                "recursive-alias",
                "an alias refers to a node that contains it",
            )
            return
        if node.tag not in SAFE_TAGS:
            code = "unsafe-tag" if "python/" in node.tag else "unsupported-tag"
            shown = node.tag.replace("tag:yaml.org,2002:", "!!")
            yield Diagnostic(
                Location.from_mark(node.start_mark),
                code,
                f"tag {shown!r} is not allowed",
                hint="only plain YAML values (strings, numbers, booleans, null, maps, lists) are accepted",
            )
            return
        if isinstance(node, yaml.MappingNode):
            yield from _check_keys(node)
        elif finite_numbers and node.tag in _NUMBERS and isinstance(node, yaml.ScalarNode):
            problem = _number_problem(node)
            if problem is not None:
                yield problem
        on_path.add(ident)
        stack.append((node, True, depth))
        stack.extend((child, False, depth + 1) for child in _children(node))


def _check_keys(node: yaml.MappingNode) -> Iterator[Diagnostic]:
    first: dict[str, yaml.Node] = {}
    for key, _ in node.value:
        if key.tag == "tag:yaml.org,2002:merge":
            continue
        if not (isinstance(key, yaml.ScalarNode) and key.tag == "tag:yaml.org,2002:str"):
            yield Diagnostic(
                Location.from_mark(key.start_mark),
                "non-string-key",
                "mapping keys must be strings",
                hint="quote the key",
            )
        elif key.value in first:
            original = Location.from_mark(first[key.value].start_mark)
            yield Diagnostic(
                Location.from_mark(key.start_mark),
                "duplicate-key",
                f"duplicate key {key.value!r} (first defined at line {original.line})",
                hint="remove one of them; YAML would silently keep only the last",
                notes=(Note(original, "first defined here"),),
            )
        else:
            first[key.value] = key


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _index(root: yaml.Node) -> SourceMap:
    """Map JSON paths to locations. Runs before construction, which rewrites ``<<`` merges in place."""
    smap = SourceMap()
    stack: list[tuple[JsonPath, yaml.Node]] = [((), root)]
    while stack:
        path, node = stack.pop()
        smap.values.setdefault(path, Location.from_mark(node.start_mark))
        if isinstance(node, yaml.MappingNode):
            for name, key, value in _entries(node):
                smap.keys.setdefault((*path, name), Location.from_mark(key.start_mark))
                stack.append(((*path, name), value))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(((*path, i), item) for i, item in enumerate(node.value))
    return smap


def _entries(node: yaml.MappingNode) -> list[tuple[str, yaml.Node, yaml.Node]]:
    """A mapping's effective entries: its own keys first, then what ``<<`` merges add."""
    own = [(k.value, k, v) for k, v in node.value if k.tag != "tag:yaml.org,2002:merge"]
    names = {name for name, _, _ in own}
    merged = []
    for k, v in node.value:
        if k.tag != "tag:yaml.org,2002:merge":
            continue
        for source in v.value if isinstance(v, yaml.SequenceNode) else [v]:
            if not isinstance(source, yaml.MappingNode):
                continue
            for name, key, value in _entries(source):
                if name not in names:
                    names.add(name)
                    merged.append((name, key, value))
    return own + merged


def _syntax_diagnostic(exc: yaml.MarkedYAMLError, filename: str) -> Diagnostic:
    mark = exc.problem_mark or exc.context_mark
    loc = Location.from_mark(mark) if mark is not None else Location(filename, 1, 1)
    message = exc.problem or exc.context or "invalid YAML"
    if exc.context and exc.problem:
        message = f"{exc.problem} ({exc.context})"
    notes = ()
    if (
        exc.context_mark is not None
        and exc.problem_mark is not None
        and exc.context_mark.line != exc.problem_mark.line
    ):
        notes = (Note(Location.from_mark(exc.context_mark), exc.context or "started here"),)
    return Diagnostic(loc, "yaml-syntax", message, notes=notes)


def _reader_diagnostic(exc: yaml.YAMLError, text: str, filename: str) -> Diagnostic:
    position = getattr(exc, "position", 0) or 0
    line = text.count("\n", 0, position) + 1
    col = position - (text.rfind("\n", 0, position) + 1) + 1
    char = getattr(exc, "character", None)
    what = f"character U+{char:04X}" if isinstance(char, int) else "character"
    return Diagnostic(
        Location(filename, line, col),
        "not-text",
        f"unacceptable {what} in YAML text",
        hint="mesh files must be printable UTF-8 text",
    )
