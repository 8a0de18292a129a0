"""The geometry of drawn edges, and where their labels go.

An edge is a polyline; :func:`segments` says how each piece is drawn: horizontal and vertical
pieces as straight lines, any other piece (a gap crossing) as an S-curve with level tangents.
The SVG path and the label placement both read it, so a label is judged against the curve
that is actually drawn.

:func:`place_labels` tries a few spots along each labelled edge and keeps the one that covers
the fewest boxes, labels already placed and pieces of other edges.
"""
from __future__ import annotations

from typing import Sequence

Point = tuple[float, float]
Rect = tuple[float, float, float, float]  # x, y, w, h
LABEL_HEIGHT = 15.0

#: where along a piece a label is tried, best first (fractions of the piece)
_ALONG = (0.5, 0.35, 0.65, 0.2, 0.8)
#: label offsets from the line, best first: on it, above, below
_ACROSS = (0.0, -10.0, 10.0)


def segments(points: Sequence[Point]) -> list[tuple[Point, ...]]:
    """Each piece as ``(start, end)`` (a line) or ``(start, c1, c2, end)`` (a cubic S-curve)."""
    out: list[tuple[Point, ...]] = []
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        if y0 == y1 or x0 == x1:
            out.append(((x0, y0), (x1, y1)))
        else:
            mx = round((x0 + x1) / 2, 1)
            out.append(((x0, y0), (mx, y0), (mx, y1), (x1, y1)))
    return out


def point_at(piece: tuple[Point, ...], t: float) -> Point:
    """The point at parameter *t* of a line or cubic piece."""
    if len(piece) == 2:
        (x0, y0), (x1, y1) = piece
        return (x0 + (x1 - x0) * t, y0 + (y1 - y0) * t)
    (x0, y0), (x1, y1), (x2, y2), (x3, y3) = piece
    a, b, c, d = (1 - t) ** 3, 3 * (1 - t) ** 2 * t, 3 * (1 - t) * t * t, t ** 3
    return (a * x0 + b * x1 + c * x2 + d * x3, a * y0 + b * y1 + c * y2 + d * y3)


def sample(points: Sequence[Point], step: float = 6.0) -> list[Point]:
    """Points along the drawn edge, about *step* apart."""
    out = []
    for piece in segments(points):
        (x0, y0), (x1, y1) = piece[0], piece[-1]
        n = max(1, int((abs(x1 - x0) + abs(y1 - y0)) / step))
        out += [point_at(piece, k / n) for k in range(n + 1)]
    return out


def _overlap(a: Rect, b: Rect) -> bool:
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


def _candidates(points: Sequence[Point]) -> list[Point]:
    """Spots along an edge, best first: gap crossings, then long straight runs, then the rest."""
    pieces = segments(points)
    curves = [p for p in pieces if len(p) == 4]
    lines = sorted((p for p in pieces if len(p) == 2),
                   key=lambda p: -(abs(p[1][0] - p[0][0]) + abs(p[1][1] - p[0][1])))
    spots = []
    for piece in curves + lines:
        spots += [point_at(piece, t) for t in _ALONG]
    return spots or list(points[:1])


class _Buckets:
    """Sampled edge points in 24-pixel cells, to count those under a rectangle quickly."""

    CELL = 24.0

    def __init__(self, paths: Sequence[Sequence[Point]]):
        self.cells: dict[tuple[int, int], list[tuple[int, float, float]]] = {}
        for i, path in enumerate(paths):
            for x, y in sample(path):
                self.cells.setdefault((int(x // self.CELL), int(y // self.CELL)), []).append((i, x, y))

    def count(self, rect: Rect, skip: int) -> int:
        x, y, w, h = rect
        n = 0
        for cx in range(int(x // self.CELL), int((x + w) // self.CELL) + 1):
            for cy in range(int(y // self.CELL), int((y + h) // self.CELL) + 1):
                n += sum(1 for i, px, py in self.cells.get((cx, cy), ())
                         if i != skip and x <= px <= x + w and y <= py <= y + h)
        return n


def place_labels(
    paths: Sequence[Sequence[Point]], widths: Sequence[float], obstacles: Sequence[Rect]
) -> list[Point]:
    """A centre for each edge's label (``widths[i]`` 0: no label; its first gap crossing anyway).

    Cost of a spot: 1000 per box or placed label it covers, 3 per sampled point of another
    edge under it, and a little for being further down the list of preferred spots.
    """
    buckets = _Buckets(paths)
    placed: list[Rect] = []
    out = []
    for i, (path, width) in enumerate(zip(paths, widths)):
        spots = _candidates(path)
        if not width:
            out.append(spots[0])
            continue
        best, best_cost, rank = spots[0], float("inf"), 0
        for dy in _ACROSS:
            for x, y in spots:
                rect = (x - width / 2, y + dy - LABEL_HEIGHT / 2, width, LABEL_HEIGHT)
                cost = 1000 * sum(_overlap(rect, r) for r in (*obstacles, *placed))
                cost += 3 * buckets.count(rect, i) + 0.5 * rank
                rank += 1
                if cost < best_cost:
                    best, best_cost = (x, y + dy), cost
        out.append((round(best[0], 1), round(best[1], 1)))
        placed.append((best[0] - width / 2, best[1] - LABEL_HEIGHT / 2, width, LABEL_HEIGHT))
    return out
