"""A layered (Sugiyama-style) left-to-right layout, computed with networkx only.

meshctl draws its own SVG so that no Graphviz binary is needed. The classic four phases:

1. **Break cycles** - circular events are allowed, but layering needs a DAG: edges closing a
   cycle (found by DFS from the sources) are laid out reversed and drawn backwards.
2. **Layers** - longest path from the sources; sources are then pulled next to their first
   consumer so an external event does not sit far away from what reads it.
3. **Dummies and ordering** - an edge spanning several layers gets one dummy node per layer
   crossed, so it routes as a polyline *between* boxes; barycenter sweeps reorder each layer
   to cut crossings, keeping the members of a group (a service) next to each other.
4. **Coordinates** - column widths from box widths; within a column, boxes are pulled
   towards their neighbours' heights by isotonic regression (pool adjacent violators), which
   keeps the order and the minimum gaps while straightening edges.

Everything iterates in input order, never over sets, so the same input gives the same bytes.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import networkx as nx

Point = tuple[float, float]


@dataclass(frozen=True, slots=True)
class EdgeSpec:
    """An edge to lay out; ``backward`` edges are drawn against the flow (compensation)."""

    src: str
    dst: str
    backward: bool = False
    label_width: float = 0.0


@dataclass(frozen=True, slots=True)
class Spacing:
    margin: float = 24.0
    layer_gap: float = 64.0
    node_gap: float = 22.0
    dummy_gap: float = 10.0
    group_pad: float = 10.0
    group_title: float = 18.0


@dataclass(frozen=True, slots=True)
class Box:
    """A node's rectangle (top-left corner) and its layer."""

    id: str
    x: float
    y: float
    w: float
    h: float
    layer: int

    @property
    def cy(self) -> float:
        return self.y + self.h / 2


@dataclass(frozen=True, slots=True)
class Route:
    """An edge's polyline: alternating straight runs inside columns and gaps between them."""

    points: tuple[Point, ...]
    label_at: Point
    reversed: bool = False
    self_loop: bool = False


@dataclass(frozen=True, slots=True)
class GroupBox:
    name: str
    x: float
    y: float
    w: float
    h: float


@dataclass(frozen=True, slots=True)
class Layout:
    boxes: Mapping[str, Box]
    routes: tuple[Route, ...]  # one per input edge, same order
    groups: tuple[GroupBox, ...]
    width: float
    height: float


def _dummy(a: str, b: str, i: int) -> str:
    return f"\x00{a}\x00{b}\x00{i}"


def is_dummy(node: str) -> bool:
    return node.startswith("\x00")


# --- phase 1 and 2: a DAG and its layers --------------------------------------------------

def _dag(nodes: Sequence[str], edges: Sequence[EdgeSpec]) -> tuple[nx.DiGraph, set[tuple[str, str]]]:
    """The layering DAG and the set of drawn (src, dst) pairs it holds reversed."""
    g = nx.DiGraph()
    g.add_nodes_from(nodes)
    flipped: set[tuple[str, str]] = set()
    for e in edges:
        if e.src != e.dst:
            g.add_edge(*((e.dst, e.src) if e.backward else (e.src, e.dst)))
    index = {n: i for i, n in enumerate(nodes)}
    starts = sorted(nodes, key=lambda n: (g.in_degree(n) > 0, index[n]))
    while True:
        try:
            u, v = nx.find_cycle(g, source=starts)[-1][:2]
        except nx.NetworkXNoCycle:
            break
        g.remove_edge(u, v)  # the DFS back edge closes the cycle: lay it out reversed
        g.add_edge(v, u)
        flipped.add((u, v))
    return g, flipped


def _layers(g: nx.DiGraph) -> dict[str, int]:
    """Longest-path layering, then sources moved right next to their nearest successor."""
    layer: dict[str, int] = {}
    for node in nx.topological_sort(g):
        layer[node] = max((layer[p] + 1 for p in g.predecessors(node)), default=0)
    for node in g:
        if g.in_degree(node) == 0 and g.out_degree(node) > 0:
            layer[node] = min(layer[s] for s in g.successors(node)) - 1
    return layer


def _with_dummies(g: nx.DiGraph, layer: dict[str, int]) -> tuple[nx.DiGraph, dict[tuple[str, str], list[str]]]:
    """Split every edge spanning k > 1 layers into a chain through k - 1 dummy nodes."""
    h = nx.DiGraph()
    h.add_nodes_from(g)
    chains = {}
    for a, b in g.edges():
        chain = [a] + [_dummy(a, b, i) for i in range(1, layer[b] - layer[a])] + [b]
        for i, node in enumerate(chain[1:-1], start=1):
            layer[node] = layer[a] + i
        nx.add_path(h, chain)
        chains[(a, b)] = chain
    return h, chains


# --- phase 3: order within layers ---------------------------------------------------------

def _crossings(h: nx.DiGraph, upper: list[str], lower: list[str]) -> int:
    pos = {n: i for i, n in enumerate(lower)}
    ends = [(i, pos[v]) for i, u in enumerate(upper) for v in h.successors(u) if v in pos]
    return sum(1 for k, (a, b) in enumerate(ends) for c, d in ends[k + 1:] if (a - c) * (b - d) < 0)


def _sort_layer(nodes: list[str], neighbours, fixed: list[str], groups: Mapping[str, str | None]) -> list[str]:
    """Barycenter order; a group is placed at its members' mean so it stays contiguous."""
    pos = {n: i for i, n in enumerate(fixed)}
    bary = {}
    for i, node in enumerate(nodes):
        near = [pos[x] for x in neighbours(node) if x in pos]
        bary[node] = sum(near) / len(near) if near else i * len(fixed) / max(len(nodes), 1)
    members: dict[str, list[float]] = {}
    for node in nodes:
        if groups.get(node):
            members.setdefault(groups[node], []).append(bary[node])
    def key(item):
        i, node = item
        grp = groups.get(node)
        centre = sum(members[grp]) / len(members[grp]) if grp else bary[node]
        return (centre, grp or "", bary[node], i)
    return [node for _, node in sorted(enumerate(nodes), key=key)]


def _order(h: nx.DiGraph, rows: list[list[str]], groups: Mapping[str, str | None], sweeps: int = 12) -> list[list[str]]:
    """Alternate down and up barycenter sweeps; keep the ordering with the fewest crossings."""
    def total(rs):
        return sum(_crossings(h, rs[i], rs[i + 1]) for i in range(len(rs) - 1))

    best, best_score = [list(r) for r in rows], total(rows)
    for _ in range(sweeps):
        for i in range(1, len(rows)):
            rows[i] = _sort_layer(rows[i], h.predecessors, rows[i - 1], groups)
        for i in range(len(rows) - 2, -1, -1):
            rows[i] = _sort_layer(rows[i], h.successors, rows[i + 1], groups)
        score = total(rows)
        if score < best_score:
            best, best_score = [list(r) for r in rows], score
    return best


# --- phase 4: coordinates -----------------------------------------------------------------

def _pav(targets: list[float]) -> list[float]:
    """Closest non-decreasing sequence to *targets* (least squares): pool adjacent violators."""
    blocks: list[list[float]] = []
    for t in targets:
        blocks.append([t, 1.0])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] > blocks[-1][0] / blocks[-1][1]:
            s, c = blocks.pop()
            blocks[-1][0] += s
            blocks[-1][1] += c
    return [s / c for s, c in blocks for _ in range(int(c))]


def _separations(row: list[str], sizes, groups, sp: Spacing) -> list[float]:
    """Minimum centre-to-centre distance between each pair of neighbours in a column."""
    seps = []
    for a, b in zip(row, row[1:]):
        gap = sp.dummy_gap if is_dummy(a) or is_dummy(b) else sp.node_gap
        ga, gb = groups.get(a), groups.get(b)
        if ga != gb:
            gap += (sp.group_pad if ga else 0) + (sp.group_pad + sp.group_title if gb else 0)
        seps.append(sizes[a][1] / 2 + sizes[b][1] / 2 + gap)
    return seps


def _place(row: list[str], desired: list[float], seps: list[float]) -> list[float]:
    offsets = [0.0]
    for s in seps:
        offsets.append(offsets[-1] + s)
    z = _pav([d - o for d, o in zip(desired, offsets)])
    return [zi + o for zi, o in zip(z, offsets)]


def _heights(h: nx.DiGraph, rows: list[list[str]], sizes, groups, sp: Spacing) -> dict[str, float]:
    """Centre y of every node: stacked first, then pulled towards neighbours a few times."""
    seps = [_separations(r, sizes, groups, sp) for r in rows]
    y = {}
    for r, s in zip(rows, seps):
        y.update(zip(r, _place(r, [0.0] * len(r), s)))
    passes = [h.predecessors, h.successors, h.predecessors, h.successors]
    passes += [lambda n: list(h.predecessors(n)) + list(h.successors(n))] * 4
    for k, near in enumerate(passes):
        order = range(len(rows)) if k % 2 == 0 else range(len(rows) - 1, -1, -1)
        for i in order:
            desired = []
            for node in rows[i]:
                ys = [y[x] for x in near(node)]
                desired.append(sum(ys) / len(ys) if ys else y[node])
            y.update(zip(rows[i], _place(rows[i], desired, seps[i])))
    return y


def _columns(rows, sizes, edges, layer, sp: Spacing) -> tuple[list[float], list[float]]:
    """Left x and width of every column; a gap widens to fit the edge labels starting in it."""
    widths = [max((sizes[n][0] for n in r if not is_dummy(n)), default=20.0) for r in rows]
    gaps = [sp.layer_gap] * len(rows)
    for e in edges:
        if e.label_width and e.src in layer and e.dst in layer and e.src != e.dst:
            gi = layer[e.src] if layer[e.src] < layer[e.dst] else layer[e.src] - 1
            if 0 <= gi < len(gaps):
                gaps[gi] = max(gaps[gi], e.label_width + 28)
    lefts = [sp.margin]
    for w, gap in zip(widths, gaps):
        lefts.append(lefts[-1] + w + gap)
    return lefts[:-1], widths


# --- putting it together -------------------------------------------------------------------

def layered_layout(
    nodes: Sequence[str],
    sizes: Mapping[str, tuple[float, float]],
    edges: Sequence[EdgeSpec],
    groups: Mapping[str, str | None] | None = None,
    spacing: Spacing = Spacing(),
) -> Layout:
    """Boxes for *nodes* (``sizes`` gives width, height), a route per edge, a box per group piece.

    Examples
    --------
    >>> lay = layered_layout(["a", "b"], {"a": (40, 20), "b": (40, 20)}, [EdgeSpec("a", "b")])
    >>> lay.boxes["a"].layer, lay.boxes["b"].layer, lay.boxes["a"].x < lay.boxes["b"].x
    (0, 1, True)
    """
    groups = dict(groups or {})
    g, flipped = _dag(nodes, edges)
    layer = _layers(g)
    h, chains = _with_dummies(g, layer)
    sizes = dict(sizes)
    sizes.update({n: (0.0, 0.0) for n in h if is_dummy(n)})
    rows: list[list[str]] = [[] for _ in range(max(layer.values(), default=-1) + 1)]
    for node in h:  # insertion order: the input's, then dummies chain by chain
        rows[layer[node]].append(node)
    rows = _order(h, rows, groups)
    ys = _heights(h, rows, sizes, groups, spacing)
    lefts, widths = _columns(rows, sizes, edges, layer, spacing)
    boxes = {}
    for n in nodes:
        w, ht = sizes[n]
        boxes[n] = Box(n, lefts[layer[n]] + (widths[layer[n]] - w) / 2, ys[n] - ht / 2, w, ht, layer[n])
    routes = [_route(e, boxes, chains, flipped, ys, layer, lefts, widths) for e in edges]
    pieces = _group_pieces(rows, boxes, groups, spacing)
    return _normalised(boxes, routes, pieces, spacing)


def _route(e: EdgeSpec, boxes, chains, flipped, ys, layer, lefts, widths) -> Route:
    """The polyline of one edge through its chain; reversed edges attach below the centre line."""
    if e.src == e.dst:
        b = boxes[e.src]
        pts = ((b.x + b.w * 0.7, b.y), (b.x + b.w * 0.7, b.y - 26), (b.x + b.w * 0.3, b.y - 26), (b.x + b.w * 0.3, b.y))
        return Route(pts, (b.x + b.w / 2, b.y - 30), self_loop=True)
    a, z = (e.dst, e.src) if e.backward else (e.src, e.dst)
    reverse = e.backward
    if (a, z) in flipped:
        a, z, reverse = z, a, not reverse
    chain = chains[(a, z)]
    shift = 12.0 if reverse else 0.0  # keeps a reversed edge clear of a forward twin
    first, last = boxes[chain[0]], boxes[chain[-1]]
    la, lz = layer[chain[0]], layer[chain[-1]]
    pts = [(first.x + first.w, first.cy + shift), (lefts[la] + widths[la], first.cy + shift)]
    for node in chain[1:-1]:
        col = layer[node]
        pts += [(lefts[col], ys[node] + shift), (lefts[col] + widths[col], ys[node] + shift)]
    pts += [(lefts[lz], last.cy + shift), (last.x, last.cy + shift)]
    if reverse:
        pts.reverse()
    i = 1 if not reverse else len(pts) - 3  # the gap segment next to the drawn source
    i = max(0, min(i, len(pts) - 2))
    (x0, y0), (x1, y1) = pts[i], pts[i + 1]
    below = 11.0 if reverse else 0.0  # a reversed edge's label hangs under it, away from the twin
    return Route(tuple(pts), ((x0 + x1) / 2, (y0 + y1) / 2 + below), reversed=reverse)


def _group_pieces(rows, boxes, groups, sp: Spacing) -> list[GroupBox]:
    """One background box per run of same-group nodes in a column (groups may span columns)."""
    pieces = []
    for row in rows:
        run: list[Box] = []
        for node in row + [None]:
            grp = groups.get(node) if node in boxes else None
            if run and (grp != groups.get(run[0].id)):
                x0 = min(b.x for b in run) - sp.group_pad
                x1 = max(b.x + b.w for b in run) + sp.group_pad
                y0 = min(b.y for b in run) - sp.group_pad - sp.group_title
                y1 = max(b.y + b.h for b in run) + sp.group_pad
                pieces.append(GroupBox(groups[run[0].id], x0, y0, x1 - x0, y1 - y0))
                run = []
            if grp:
                run.append(boxes[node])
    return pieces


def _normalised(boxes, routes, pieces, sp: Spacing) -> Layout:
    """Shift everything so the drawing starts at the margin; size the canvas to fit."""
    xs = [b.x for b in boxes.values()] + [p.x for p in pieces]
    top = [b.y for b in boxes.values()] + [p.y for p in pieces] + [p[1] for r in routes for p in r.points]
    top += [r.label_at[1] - 8 for r in routes]
    dx = sp.margin - min(xs, default=0.0)
    dy = sp.margin - min(top, default=0.0)
    def mv(p):
        return (round(p[0] + dx, 1), round(p[1] + dy, 1))
    boxes = {n: Box(n, round(b.x + dx, 1), round(b.y + dy, 1), b.w, b.h, b.layer) for n, b in boxes.items()}
    routes = tuple(Route(tuple(mv(p) for p in r.points), mv(r.label_at), r.reversed, r.self_loop) for r in routes)
    pieces = tuple(GroupBox(p.name, round(p.x + dx, 1), round(p.y + dy, 1), p.w, p.h) for p in pieces)
    right = [b.x + b.w for b in boxes.values()] + [p.x + p.w for p in pieces]
    bottom = [b.y + b.h for b in boxes.values()] + [p.y + p.h for p in pieces] + [p[1] for r in routes for p in r.points]
    return Layout(boxes, routes, pieces, round(max(right, default=0) + sp.margin, 1),
                  round(max(bottom, default=0) + sp.margin, 1))
