"""Handler modules that keep state of their own: the `handler-module-state` warning.

A Python handler that mutates a module-level dict, list or set keeps state meshctl does not
checkpoint: a crash and ``--resume`` loses it, a replay applies the same event to it again,
and each worker of a deployment has its own copy. The check reads the module's source with
:mod:`ast` (it never imports nor runs it) and reports, from inside any function:

- ``global X`` followed by an assignment to ``X`` (``=``, ``+=``, ``del``);
- ``X[...] = ...``, ``X[...] += ...``, ``del X[...]`` and a mutating method call
  (``X.append(...)``, ``X[k].add(...)``...) where ``X`` is a module-level name bound to a
  dict/list/set literal or comprehension, or to a call of a mutable container type.

It is a heuristic: an alias (``d = X; d[k] = v``), state in a class or an instance, an object
of another module, or a container built by a function of one's own are not seen. A line (or
the module-level definition of the name) marked ``# meshctl: allow-module-state`` is an
intended cache and is not reported.
"""
from __future__ import annotations

import ast
import os
import re
from dataclasses import dataclass
from typing import Iterator

from ..core.errors import Diagnostic, Location, Note
from ..language.source import read_text

ALLOW_MARK = re.compile(r"#\s*meshctl:\s*allow-module-state\b")
MUTABLE_TYPES = frozenset({"dict", "list", "set", "bytearray", "Counter", "defaultdict", "deque",
                           "OrderedDict", "ChainMap"})
MUTATING_METHODS = frozenset({
    "append", "extend", "insert", "remove", "pop", "popitem", "clear", "sort", "reverse",
    "add", "discard", "update", "setdefault", "difference_update", "intersection_update",
    "symmetric_difference_update", "appendleft", "extendleft", "popleft", "rotate", "subtract",
    "move_to_end", "__setitem__", "__delitem__",
})
_MUTABLE_NODES = (ast.Dict, ast.List, ast.Set, ast.DictComp, ast.ListComp, ast.SetComp)
_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)


@dataclass(frozen=True, slots=True)
class Mutation:
    """One place a function changes module-level state."""

    line: int
    col: int
    name: str  # the module-level name
    function: str


def module_mutations(source: str) -> list[Mutation]:
    """Every unmarked mutation of module-level state in *source*, in source order; none if it does not parse.

    >>> [m.name for m in module_mutations("SEEN = set()\\ndef f(e, c):\\n    SEEN.add(e['id'])\\n")]
    ['SEEN']
    >>> module_mutations("SEEN = set()  # meshctl: allow-module-state\\ndef f(e, c):\\n    SEEN.add(1)\\n")
    []
    """
    try:
        tree = ast.parse(source)
        lines = source.splitlines()
        allowed = {n for n, line in _module_bindings(tree) if ALLOW_MARK.search(lines[line - 1])}
        mutable = {n for n, _ in _module_bindings(tree, mutable_only=True)} - allowed
        found = [m for fn in _functions(tree) for m in _function_mutations(fn, mutable, allowed)]
    except (SyntaxError, ValueError):  # the run reports a module that cannot be imported
        return []
    except (RecursionError, MemoryError):  # nested too deeply for Python's parser or this walk:
        return []  # a heuristic says nothing rather than fail validate (exit 70)
    found = [m for m in found if not ALLOW_MARK.search(lines[m.line - 1])]
    return sorted(found, key=lambda m: (m.line, m.col))


def _module_bindings(tree: ast.Module, mutable_only: bool = False) -> Iterator[tuple[str, int]]:
    """(name, line) of each module-level assignment (only of mutable values, if asked)."""
    for stmt in tree.body:
        if isinstance(stmt, ast.Assign):
            targets, value = stmt.targets, stmt.value
        elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
            targets, value = [stmt.target], stmt.value
        else:
            continue
        if mutable_only and not _is_mutable(value):
            continue
        for target in targets:
            if isinstance(target, ast.Name):
                yield target.id, stmt.lineno


def _is_mutable(value: ast.expr) -> bool:
    if isinstance(value, _MUTABLE_NODES):
        return True
    if isinstance(value, ast.Call):
        func = value.func
        if isinstance(func, ast.Attribute):  # collections.Counter()
            return func.attr in MUTABLE_TYPES
        return isinstance(func, ast.Name) and func.id in MUTABLE_TYPES
    return False


_Function = ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda


def _functions(tree: ast.AST) -> Iterator[_Function]:
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            yield node


def _own_nodes(fn: ast.AST) -> Iterator[ast.AST]:
    """The nodes of *fn*'s body, not those of functions or classes nested in it (their own scopes)."""
    stack = list(ast.iter_child_nodes(fn))
    while stack:
        node = stack.pop()
        yield node
        if not isinstance(node, _SCOPES):
            stack.extend(ast.iter_child_nodes(node))


def _function_mutations(fn: _Function, mutable: set[str], allowed: set[str]) -> Iterator[Mutation]:
    nodes = [n for n in _own_nodes(fn) if not isinstance(n, _SCOPES) or n is fn]
    declared = {name for n in nodes if isinstance(n, ast.Global) for name in n.names}
    args = fn.args
    params = {a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg) if a}
    stored = {n.id for n in nodes if isinstance(n, ast.Name) and isinstance(n.ctx, (ast.Store, ast.Del))}
    local = (params | stored) - declared
    state = (mutable - local) | (declared - allowed)

    def at(node: ast.AST, name: str) -> Mutation:
        return Mutation(node.lineno, node.col_offset + 1, name, getattr(fn, "name", "<lambda>"))

    for node in nodes:
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)) and node.id in declared:
            if node.id not in allowed:
                yield at(node, node.id)
        elif isinstance(node, ast.Subscript) and isinstance(node.ctx, (ast.Store, ast.Del)):
            name = _base(node)
            if name in state:
                yield at(node, name)
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr in MUTATING_METHODS):
            name = _base(node.func.value)
            if name in state:
                yield at(node, name)


def _base(node: ast.expr) -> str | None:
    """``X`` of ``X``, ``X[a]``, ``X[a][b]``; None for anything else."""
    while isinstance(node, ast.Subscript):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def module_state_diagnostics(root: str, module: str, path: str, ref_loc: Location,
                             ref: str) -> Iterator[Diagnostic]:
    """The `handler-module-state` warnings of the handler module file *path*, named at *ref_loc*."""
    display = os.path.join(root, os.path.relpath(path, os.path.realpath(root)))
    source, _ = read_text(path, display, regular_only=True)
    if source is None:
        return
    for m in module_mutations(source):
        yield Diagnostic(
            Location(display, m.line, m.col),
            "handler-module-state",
            f"handler module {module!r} changes module-level {m.name!r} in {m.function}(): "
            "a crash and --resume lose it, a replay repeats it, each worker has its own",
            severity="warning",
            hint="keep it in `context.state` (declare `state: {key: ...}` on the service or "
                 "orchestration), or aggregate in a stream window; mark an intended cache "
                 "`# meshctl: allow-module-state`",
            notes=(Note(ref_loc, f"the module of handler {ref!r}"),),
        )
