"""User templates (Jinja2, sandboxed): parsing, and the event fields a template reads.

The only module that compiles *user* template text; it does so from strings only, in a
``SandboxedEnvironment`` with ``StrictUndefined``. Rendering at run time builds on this.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Iterator

from jinja2 import StrictUndefined, TemplateSyntaxError, nodes
from jinja2.sandbox import SandboxedEnvironment

FieldPath = tuple  # tuple[str | int, ...]


@lru_cache(maxsize=1)
def environment() -> SandboxedEnvironment:
    return SandboxedEnvironment(undefined=StrictUndefined, autoescape=False)


def syntax_error(text: str) -> TemplateSyntaxError | None:
    """The template's syntax error, or None if it parses."""
    try:
        environment().parse(text)
    except TemplateSyntaxError as exc:
        return exc
    return None


def referenced_fields(text: str) -> list[tuple[str, FieldPath]]:
    """Every ``name.attr[...]`` chain the template reads, as (root name, path), longest chains only.

    >>> referenced_fields("{{ data.player.id }} scored {{ data['score'] | int }}")
    [('data', ('player', 'id')), ('data', ('score',))]
    """
    try:
        tree = environment().parse(text)
    except TemplateSyntaxError:
        return []
    chains = list(dict.fromkeys(_chains(tree)))
    return [c for c in chains if not any(o != c and o[0] == c[0] and o[1][: len(c[1])] == c[1] for o in chains)]


def _chains(node: nodes.Node) -> Iterator[tuple[str, FieldPath]]:
    chain = _chain(node)
    if chain is not None and chain[1]:
        yield chain
    for child in node.iter_child_nodes():
        yield from _chains(child)


def _chain(node: nodes.Node) -> tuple[str, FieldPath] | None:
    path: list = []
    while True:
        if isinstance(node, nodes.Getattr):
            path.append(node.attr)
            node = node.node
        elif isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
            path.append(node.arg.value)
            node = node.node
        elif isinstance(node, nodes.Name):
            return node.name, tuple(reversed(path))
        else:
            return None
