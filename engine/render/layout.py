"""A layered (Sugiyama-style) left-to-right layout, computed with networkx only.

meshctl draws its own SVG so that no Graphviz binary is needed. The layout works on *units*:
a plain node, or a whole group (a service) whose members (its subscriptions) are stacked
inside one box. The classic four phases, on units:

1. **Break cycles** - circular events are allowed, but layering needs a DAG: a few edges,
   chosen greedily to be few and to keep entry points on the left, are laid out reversed
   and drawn backwards.
2. **Layers** - longest path from the sources; sources are then pulled next to their first
   consumer so an external event does not sit far away from what reads it.
3. **Dummies and ordering** - a forward edge spanning several layers gets one dummy node per
   layer crossed, so it routes as a polyline *between* boxes; barycenter sweeps reorder each
   layer to cut crossings.
4. **Coordinates** - column widths from box widths; within a column, units are pulled
   towards their neighbours' ports by isotonic regression (pool adjacent violators), which
   keeps the order and the minimum gaps while straightening edges. A group's members are
   then reordered by where their neighbours ended up, and the pass is run again.

Edges drawn against the flow never cross a column: between neighbouring columns they run
straight through the gap; further back they leave into the gap after their source, run
along a lane above or below every box, and come up the gap before their target. Every edge
ends in a straight run into its target, so an arrowhead always has a direction.

Everything iterates in input order, never over sets, so the same input gives the same bytes.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

import networkx as nx

from .labels import place_labels

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
    member_gap: float = 10.0
    lane_gap: float = 10.0  # between parallel lanes, and between verticals in one gap
    stub: float = 10.0      # the straight run into a target box


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
    """An edge's polyline: runs inside columns, gap crossings (drawn as S-curves), lanes."""

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
    groups: tuple[GroupBox, ...]  # one per group
    width: float
    height: float


def _dummy(a: str, b: str, i: int) -> str:
    return f"\x00{a}\x00{b}\x00{i}"


def is_dummy(node: str) -> bool:
    return node.startswith("\x00")


# --- units: plain nodes and groups ----------------------------------------------------------

@dataclass(slots=True)
class _Unit:
    """A box the layering sees: one node, or a group with its members stacked top to bottom."""

    id: str
    members: list[str]
    group: str | None = None
    w: float = 0.0
    h: float = 0.0
    offsets: dict[str, float] = field(default_factory=dict)  # member centre, from the unit's top


def _stack(unit: _Unit, sizes, sp: Spacing) -> None:
    """Size a unit from its members, in their current order."""
    if unit.group is None:
        unit.w, unit.h = sizes[unit.id]
        unit.offsets = {unit.id: unit.h / 2}
        return
    y = sp.group_title + sp.group_pad
    unit.offsets = {}
    for m in unit.members:
        unit.offsets[m] = y + sizes[m][1] / 2
        y += sizes[m][1] + sp.member_gap
    unit.h = y - sp.member_gap + sp.group_pad
    unit.w = max(sizes[m][0] for m in unit.members) + 2 * sp.group_pad


def _units(nodes, sizes, groups, sp: Spacing) -> tuple[dict[str, str], dict[str, _Unit]]:
    unit_of: dict[str, str] = {}
    units: dict[str, _Unit] = {}
    for n in nodes:
        grp = groups.get(n)
        uid = f"\x01{grp}" if grp else n
        unit_of[n] = uid
        units.setdefault(uid, _Unit(uid, [], grp)).members.append(n)
    for unit in units.values():
        _stack(unit, sizes, sp)
    return unit_of, units


# --- phase 1 and 2: a DAG and its layers --------------------------------------------------

def _dag(nodes: Sequence[str], pairs: Sequence[tuple[str, str]], first=frozenset()) -> nx.DiGraph:
    """The layering DAG over *pairs* (a, b: a before b), a few pairs reversed to break cycles.

    The node order is Eades, Lin and Smyth's greedy one for a small feedback arc set: sinks
    go to the right end, sources to the left, and when neither is left, the node in *first*
    (the mesh's entry points), then the one with most outgoing over incoming edges, goes left.
    Pairs against that order are reversed. Ties go to input order.
    """
    g = nx.DiGraph()
    g.add_nodes_from(nodes)
    g.add_edges_from((a, b) for a, b in pairs if a != b)
    index = {n: i for i, n in enumerate(nodes)}
    rest = g.copy()
    left: list[str] = []
    right: list[str] = []
    while rest:
        sinks = [n for n in rest if rest.out_degree(n) == 0]
        sources = [n for n in rest if rest.in_degree(n) == 0]
        if sinks:
            pick, side = min(sinks, key=index.__getitem__), right
        elif sources:
            pick, side = min(sources, key=index.__getitem__), left
        else:
            pick = min(rest, key=lambda n: (n not in first, rest.in_degree(n) - rest.out_degree(n), index[n]))
            side = left
        side.append(pick)
        rest.remove_node(pick)
    pos = {n: i for i, n in enumerate(left + right[::-1])}
    dag = nx.DiGraph()
    dag.add_nodes_from(nodes)
    dag.add_edges_from((a, b) if pos[a] < pos[b] else (b, a) for a, b in g.edges())
    return dag


def _layers(g: nx.DiGraph) -> dict[str, int]:
    """Longest-path layering, then sources moved right next to their nearest successor."""
    layer: dict[str, int] = {}
    for node in nx.topological_sort(g):
        layer[node] = max((layer[p] + 1 for p in g.predecessors(node)), default=0)
    for node in g:
        if g.in_degree(node) == 0 and g.out_degree(node) > 0:
            layer[node] = min(layer[s] for s in g.successors(node)) - 1
    return layer


# --- phase 3: order within layers ---------------------------------------------------------

def _crossings(h: nx.DiGraph, upper: list[str], lower: list[str]) -> int:
    pos = {n: i for i, n in enumerate(lower)}
    ends = [(i, pos[v]) for i, u in enumerate(upper) for v in h.successors(u) if v in pos]
    return sum(1 for k, (a, b) in enumerate(ends) for c, d in ends[k + 1:] if (a - c) * (b - d) < 0)


def _sort_layer(nodes: list[str], neighbours, fixed: list[str]) -> list[str]:
    """Barycenter order against the fixed neighbouring layer; nodes without neighbours keep their place."""
    pos = {n: i for i, n in enumerate(fixed)}
    bary = {}
    for i, node in enumerate(nodes):
        near = [pos[x] for x in neighbours(node) if x in pos]
        bary[node] = sum(near) / len(near) if near else i * len(fixed) / max(len(nodes), 1)
    return [node for _, node in sorted(enumerate(nodes), key=lambda item: (bary[item[1]], item[0]))]


def _order(h: nx.DiGraph, rows: list[list[str]], sweeps: int = 12) -> list[list[str]]:
    """Alternate down and up barycenter sweeps; keep the ordering with the fewest crossings."""
    def total(rs):
        return sum(_crossings(h, rs[i], rs[i + 1]) for i in range(len(rs) - 1))

    best, best_score = [list(r) for r in rows], total(rows)
    for _ in range(sweeps):
        for i in range(1, len(rows)):
            rows[i] = _sort_layer(rows[i], h.predecessors, rows[i - 1])
        for i in range(len(rows) - 2, -1, -1):
            rows[i] = _sort_layer(rows[i], h.successors, rows[i + 1])
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


def _place(desired: list[float], seps: list[float]) -> list[float]:
    offsets = [0.0]
    for s in seps:
        offsets.append(offsets[-1] + s)
    z = _pav([d - o for d, o in zip(desired, offsets)])
    return [zi + o for zi, o in zip(z, offsets)]


@dataclass(slots=True)
class _Grid:
    """The working state of phases 3 and 4: units, rows, ports and the links between them."""

    unit_of: dict[str, str]
    units: dict[str, _Unit]
    rows: list[list[str]]
    layer: dict[str, int]
    # unit -> [(own port, other port)] towards the previous and the next column
    before: dict[str, list[tuple[str, str]]]
    after: dict[str, list[tuple[str, str]]]
    y: dict[str, float] = field(default_factory=dict)  # unit (or dummy) centre

    def height(self, u: str) -> float:
        return self.units[u].h if u in self.units else 0.0

    def offset(self, port: str) -> float:
        """A port's distance below its unit's centre."""
        if is_dummy(port):
            return 0.0
        unit = self.units[self.unit_of[port]]
        return unit.offsets[port] - unit.h / 2

    def port_y(self, port: str) -> float:
        return self.y[port if is_dummy(port) else self.unit_of[port]] + self.offset(port)


def _link(grid: _Grid, ports: list[str]) -> None:
    """Record a left-to-right chain of ports (node, dummies..., node) as neighbour links."""
    for p, q in zip(ports, ports[1:]):
        up = p if is_dummy(p) else grid.unit_of[p]
        uq = q if is_dummy(q) else grid.unit_of[q]
        grid.after.setdefault(up, []).append((p, q))
        grid.before.setdefault(uq, []).append((q, p))


def _separations(grid: _Grid, row: list[str], sp: Spacing) -> list[float]:
    seps = []
    for a, b in zip(row, row[1:]):
        gap = sp.dummy_gap if is_dummy(a) or is_dummy(b) else sp.node_gap
        seps.append(grid.height(a) / 2 + grid.height(b) / 2 + gap)
    return seps


def _heights(grid: _Grid, sp: Spacing, start: bool) -> None:
    """Centre y of every unit: stacked first, then pulled towards linked ports a few times."""
    seps = [_separations(grid, r, sp) for r in grid.rows]
    if start:
        for r, s in zip(grid.rows, seps):
            grid.y.update(zip(r, _place([0.0] * len(r), s)))
    both = {u: grid.before.get(u, []) + grid.after.get(u, []) for r in grid.rows for u in r}
    passes = [grid.before, grid.after, grid.before, grid.after] + [both] * 4
    for k, links in enumerate(passes):
        order = range(len(grid.rows)) if k % 2 == 0 else range(len(grid.rows) - 1, -1, -1)
        for i in order:
            desired = []
            for u in grid.rows[i]:
                ys = [grid.port_y(other) - grid.offset(own) for own, other in links.get(u, [])]
                desired.append(sum(ys) / len(ys) if ys else grid.y[u])
            grid.y.update(zip(grid.rows[i], _place(desired, seps[i])))


def _reorder_members(grid: _Grid, sizes, sp: Spacing) -> None:
    """Sort each group's members by the mean height of the ports they link to."""
    for unit in grid.units.values():
        if unit.group is None or len(unit.members) < 2:
            continue
        links = grid.before.get(unit.id, []) + grid.after.get(unit.id, [])
        def key(item, links=links):
            i, m = item
            ys = [grid.port_y(other) for own, other in links if own == m]
            return (sum(ys) / len(ys) if ys else grid.port_y(m), i)
        unit.members = [m for _, m in sorted(enumerate(unit.members), key=key)]
        _stack(unit, sizes, sp)


# --- putting it together -------------------------------------------------------------------

@dataclass(slots=True)
class _Plan:
    """How each edge is drawn: kind, its units' layers, and (forward) its dummy chain."""

    kind: str  # "self", "inner", "forward", "back" (one gap) or "lane" (further back)
    src: str
    dst: str
    chain: list[str] = field(default_factory=list)


def _plans(edges, unit_of, layer) -> list[_Plan]:
    plans = []
    for e in edges:
        su, du = unit_of[e.src], unit_of[e.dst]
        if e.src == e.dst:
            plans.append(_Plan("self", e.src, e.dst))
        elif su == du:
            plans.append(_Plan("inner", e.src, e.dst))
        elif layer[su] < layer[du]:
            chain = [su] + [_dummy(su, du, i) for i in range(1, layer[du] - layer[su])] + [du]
            plans.append(_Plan("forward", e.src, e.dst, chain))
        else:
            plans.append(_Plan("back" if layer[su] - layer[du] == 1 else "lane", e.src, e.dst))
    return plans


def layered_layout(
    nodes: Sequence[str],
    sizes: Mapping[str, tuple[float, float]],
    edges: Sequence[EdgeSpec],
    groups: Mapping[str, str | None] | None = None,
    spacing: Spacing = Spacing(),
    first: Sequence[str] = (),
) -> Layout:
    """Boxes for *nodes* (``sizes`` gives width, height), a route per edge, one box per group.

    Where a cycle must be broken, the nodes in *first* (entry points) are kept to the left.

    Examples
    --------
    >>> lay = layered_layout(["a", "b"], {"a": (40, 20), "b": (40, 20)}, [EdgeSpec("a", "b")])
    >>> lay.boxes["a"].layer, lay.boxes["b"].layer, lay.boxes["a"].x < lay.boxes["b"].x
    (0, 1, True)
    """
    sp, groups = spacing, dict(groups or {})
    unit_of, units = _units(nodes, sizes, groups, sp)
    pairs = [(unit_of[e.dst], unit_of[e.src]) if e.backward else (unit_of[e.src], unit_of[e.dst])
             for e in edges]
    g = _dag(list(units), pairs, frozenset(unit_of[n] for n in first))
    layer = _layers(g)
    plans = _plans(edges, unit_of, layer)

    h = nx.DiGraph()
    h.add_nodes_from(units)
    for p in plans:
        if p.kind == "forward":
            for i, d in enumerate(p.chain[1:-1], start=1):
                layer[d] = layer[p.chain[0]] + i
            nx.add_path(h, p.chain)
        elif p.kind == "back":
            h.add_edge(unit_of[p.dst], unit_of[p.src])
    rows: list[list[str]] = [[] for _ in range(max(layer.values(), default=-1) + 1)]
    for u in h:  # insertion order: the units', then dummies chain by chain
        rows[layer[u]].append(u)
    grid = _Grid(unit_of, units, _order(h, rows), layer, {}, {})
    for p in plans:
        if p.kind == "forward":
            _link(grid, [p.src, *p.chain[1:-1], p.dst])
        elif p.kind == "back":
            _link(grid, [p.dst, p.src])
    _heights(grid, sp, start=True)
    _reorder_members(grid, sizes, sp)
    _heights(grid, sp, start=False)
    return _draw(grid, plans, edges, sizes, sp)


def _draw(grid: _Grid, plans: list[_Plan], edges, sizes, sp: Spacing) -> Layout:
    """Columns, boxes and routes from the placed grid; then labels, then shift to the margin."""
    verticals = _verticals(grid, plans)
    lefts, widths = _columns(grid, plans, edges, verticals, sp)
    boxes, pieces = {}, []
    for u in (u for r in grid.rows for u in r if not is_dummy(u)):
        unit, col = grid.units[u], grid.layer[u]
        x0, top = lefts[col] + (widths[col] - unit.w) / 2, grid.y[u] - unit.h / 2
        if unit.group is not None:
            pieces.append(GroupBox(unit.group, x0, top, unit.w, unit.h))
        for m in unit.members:
            w, ht = sizes[m]
            boxes[m] = Box(m, x0 + (unit.w - w) / 2, top + unit.offsets[m] - ht / 2, w, ht, col)
    router = _Router(grid, boxes, lefts, widths, verticals, sp)
    paths = _spread_ports([router.route(p) for p in plans], plans, boxes)
    obstacles = [(b.x, b.y, b.w, b.h) for b in boxes.values()] + [(p.x, p.y, p.w, p.h) for p in pieces]
    labels = place_labels(paths, [e.label_width for e in edges], obstacles)
    routes = [
        Route(tuple(pts), at, p.kind in ("back", "lane", "inner"), p.kind == "self")
        for p, pts, at in zip(plans, paths, labels)
    ]
    return _normalised(boxes, routes, pieces, sp)


def _spread_ports(paths: list[list[Point]], plans: list[_Plan], boxes) -> list[list[Point]]:
    """Give the edges meeting one side of a box their own ports, ordered by where they go.

    A path's first (last) flat run is moved to its port's height; the piece after (before)
    it bends to make up the difference, so a fan of edges leaves a box already apart.
    """
    ends: dict[tuple[str, bool], list[tuple[float, int, int, bool]]] = {}
    for i, (pts, p) in enumerate(zip(paths, plans)):
        if p.kind == "self" or len(pts) < 2:
            continue
        for node, at_start in ((p.src, True), (p.dst, False)):
            b = boxes[node]
            end = pts[0] if at_start else pts[-1]
            far = next((q[1] for q in (pts if at_start else pts[::-1]) if q[1] != end[1]), end[1])
            ends.setdefault((node, end[0] > b.x + b.w / 2), []).append(
                (far, p.kind != "forward", i, at_start)
            )
    for (node, _), items in ends.items():
        if len(items) < 2:
            continue
        b = boxes[node]
        step = min(8.0, (b.h - 10) / (len(items) - 1))
        for k, (_, _, i, at_start) in enumerate(sorted(items)):
            _move_run(paths[i], at_start, b.cy + (k - (len(items) - 1) / 2) * step)
    return paths


def _move_run(pts: list[Point], at_start: bool, y: float) -> None:
    """Move the flat run at one end of *pts* to height *y*; the last piece stays level."""
    if all(p[1] == pts[0][1] for p in pts):  # flat all along: each end moves its own part
        run = list(range(max(1, min(2, len(pts) - 2)))) if at_start else [len(pts) - 1, len(pts) - 2]
    else:
        order = list(range(len(pts))) if at_start else list(range(len(pts) - 1, -1, -1))
        run = []
        for k in order:
            if pts[k][1] != pts[order[0]][1]:
                break
            run.append(k)
    for k in run:
        pts[k] = (pts[k][0], y)


def _verticals(grid: _Grid, plans: list[_Plan]) -> dict[int, list[int]]:
    """Gap index (-1: before the first column) -> the plans with a vertical run in it."""
    out: dict[int, list[int]] = {}
    for i, p in enumerate(plans):
        if p.kind in ("lane", "inner"):
            out.setdefault(grid.layer[grid.unit_of[p.src]], []).append(i)
        if p.kind == "lane":
            out.setdefault(grid.layer[grid.unit_of[p.dst]] - 1, []).append(i)
    return out


def _columns(grid: _Grid, plans, edges, verticals, sp: Spacing) -> tuple[list[float], list[float]]:
    """Left x and width of every column; a gap widens for the labels and vertical runs in it."""
    widths = [max((grid.units[u].w for u in r if not is_dummy(u)), default=20.0) for r in grid.rows]
    gaps = {i: sp.layer_gap for i in range(len(widths) - 1)}
    for p, e in zip(plans, edges):
        if e.label_width and p.kind in ("forward", "back"):
            gi = min(grid.layer[grid.unit_of[p.src]], grid.layer[grid.unit_of[p.dst]])
            gaps[gi] = max(gaps[gi], e.label_width + 28)
    for gi, runs in verticals.items():
        gaps[gi] = max(
            gaps.get(gi, 0.0),
            2 * sp.stub + sp.lane_gap * len(runs) + (24 if 0 <= gi < len(widths) - 1 else 0),
        )
    lefts, x = [], sp.margin + gaps.get(-1, 0.0)
    for i, w in enumerate(widths):
        lefts.append(x)
        x += w + gaps.get(i, 0.0)
    return lefts, widths


class _Router:
    """The polyline of each edge kind (see the module docstring)."""

    def __init__(self, grid: _Grid, boxes, lefts, widths, verticals, sp: Spacing):
        self.grid, self.boxes, self.lefts, self.widths, self.sp = grid, boxes, lefts, widths, sp
        self.slot = {(gi, i): k for gi, runs in verticals.items() for k, i in enumerate(runs)}
        self.index = 0
        tops = [b.y for b in boxes.values()] + [grid.y[u] - grid.height(u) / 2 for r in grid.rows for u in r]
        bottoms = [b.y + b.h for b in boxes.values()] + [
            grid.y[u] + grid.height(u) / 2 for r in grid.rows for u in r
        ]
        self.top, self.bottom = min(tops, default=0.0), max(bottoms, default=0.0)
        self.lanes: dict[str, list[list[tuple[float, float]]]] = {"top": [], "bottom": []}

    def right(self, col: int) -> float:
        return self.lefts[col] + self.widths[col]

    def route(self, plan: _Plan) -> list[Point]:
        i, self.index = self.index, self.index + 1
        s, d = self.boxes[plan.src], self.boxes[plan.dst]
        if plan.kind == "self":
            return [
                (s.x + s.w * 0.7, s.y),
                (s.x + s.w * 0.7, s.y - 26),
                (s.x + s.w * 0.3, s.y - 26),
                (s.x + s.w * 0.3, s.y),
            ]
        if plan.kind == "forward":
            return self._forward(plan, s, d)
        if plan.kind == "back":  # one gap back: below the centre line, clear of a forward twin
            shift = min(10.0, s.h / 2 - 4, d.h / 2 - 4)
            return [
                (s.x, s.cy + shift),
                (self.lefts[s.layer], s.cy + shift),
                (self.right(d.layer) + self.sp.stub, d.cy + shift),
                (d.x + d.w, d.cy + shift),
            ]
        x_out = self.right(s.layer) + self.sp.stub + self.sp.lane_gap * self.slot[(s.layer, i)]
        if plan.kind == "inner":
            return [(s.x + s.w, s.cy), (x_out, s.cy), (x_out, d.cy), (d.x + d.w, d.cy)]
        x_in = self.lefts[d.layer] - self.sp.stub - self.sp.lane_gap * self.slot[(d.layer - 1, i)]
        lane_y = self._lane(x_in, x_out, (s.cy + d.cy) / 2)
        return [(s.x + s.w, s.cy), (x_out, s.cy), (x_out, lane_y), (x_in, lane_y), (x_in, d.cy), (d.x, d.cy)]

    def _forward(self, plan: _Plan, s: Box, d: Box) -> list[Point]:
        pts = [(s.x + s.w, s.cy), (self.right(s.layer), s.cy)]
        for dummy in plan.chain[1:-1]:
            col, y = self.grid.layer[dummy], self.grid.y[dummy]
            pts += [(self.lefts[col], y), (self.right(col), y)]
        pts += [(self.lefts[d.layer] - self.sp.stub, d.cy), (d.x, d.cy)]
        return [p for k, p in enumerate(pts) if k == 0 or p != pts[k - 1]]

    def _lane(self, x0: float, x1: float, mid: float) -> float:
        """The y of a free lane above or below every box (the nearer side) for the span x0..x1."""
        side = "top" if mid < (self.top + self.bottom) / 2 else "bottom"
        lanes = self.lanes[side]
        for k, used in enumerate(lanes):
            if all(x1 + self.sp.lane_gap < a or b + self.sp.lane_gap < x0 for a, b in used):
                used.append((x0, x1))
                break
        else:
            k = len(lanes)
            lanes.append([(x0, x1)])
        step = self.sp.lane_gap * 1.6
        return self.top - step * (k + 1) if side == "top" else self.bottom + step * (k + 1)


def _normalised(boxes, routes, pieces, sp: Spacing) -> Layout:
    """Shift everything so the drawing starts at the margin; size the canvas to fit."""
    xs = [b.x for b in boxes.values()] + [p.x for p in pieces] + [p[0] for r in routes for p in r.points]
    top = [b.y for b in boxes.values()] + [p.y for p in pieces] + [p[1] for r in routes for p in r.points]
    top += [r.label_at[1] - 8 for r in routes]
    dx = sp.margin - min(xs, default=0.0)
    dy = sp.margin - min(top, default=0.0)

    def mv(p):
        return (round(p[0] + dx, 1), round(p[1] + dy, 1))

    boxes = {n: Box(n, round(b.x + dx, 1), round(b.y + dy, 1), b.w, b.h, b.layer) for n, b in boxes.items()}
    routes = tuple(
        Route(tuple(mv(p) for p in r.points), mv(r.label_at), r.reversed, r.self_loop) for r in routes
    )
    pieces = tuple(GroupBox(p.name, round(p.x + dx, 1), round(p.y + dy, 1), p.w, p.h) for p in pieces)
    right = (
        [b.x + b.w for b in boxes.values()]
        + [p.x + p.w for p in pieces]
        + [p[0] for r in routes for p in r.points]
    )
    bottom = (
        [b.y + b.h for b in boxes.values()]
        + [p.y + p.h for p in pieces]
        + [p[1] for r in routes for p in r.points]
    )
    bottom += [r.label_at[1] + 8 for r in routes]
    return Layout(
        boxes,
        routes,
        pieces,
        round(max(right, default=0) + sp.margin, 1),
        round(max(bottom, default=0) + sp.margin, 1),
    )
