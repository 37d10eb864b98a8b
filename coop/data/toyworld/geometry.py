"""The shapes' geometry: signed distance functions of the ten shape classes, and where a shape goes.

Distances are negative inside, in image units where the half-width is 1. `layout` draws a shape's
size level, its jittered position on a 3x3 grid and its rotation (with the caption words for them).
"""
from __future__ import annotations

import math

import numpy as np

from coop.data.toyworld.palette import pick


def _regular(n: int, radius: float = 1.0, start: float = math.pi / 2) -> np.ndarray:
    a = start + 2 * np.pi * np.arange(n) / n
    return np.stack([radius * np.cos(a), radius * np.sin(a)], 1)


def _star_pieces(points: int, outer: float, inner: float) -> list[np.ndarray]:
    """A star as overlapping convex pieces: each arm together with the inner polygon.

    The pieces are convex while inner/outer is above the pentagram ratio (0.38 for 5 points)."""
    tips = _regular(points, outer)
    core = _regular(points, inner, np.pi / 2 + np.pi / points)  # inner vertices, between the tips
    return [np.concatenate([tips[k:k + 1], np.roll(core, -k, axis=0)]) for k in range(points)]


_ARM, _LEN = 0.3, 0.95
# Every shape but the round ones is a union of convex polygons (local units, radius ~1), which
# have a cheap signed distance; overlapping pieces keep internal seams out of sketch outlines.
CONVEX_PIECES: dict[str, list[np.ndarray]] = {
    "square": [np.array([[0.78, 0.78], [-0.78, 0.78], [-0.78, -0.78], [0.78, -0.78]])],
    "triangle": [_regular(3, 1.1) + [0.0, -0.12]],
    "hexagon": [_regular(6, 1.0)],
    "diamond": [np.array([[0.0, 1.05], [-0.62, 0.0], [0.0, -1.05], [0.62, 0.0]])],
    "five pointed star": _star_pieces(5, 1.08, 0.44),
    "cross": [np.array([[_LEN, _ARM], [-_LEN, _ARM], [-_LEN, -_ARM], [_LEN, -_ARM]]),
              np.array([[_ARM, _LEN], [-_ARM, _LEN], [-_ARM, -_LEN], [_ARM, -_LEN]])],
    "heart": [np.array([[-0.91, 0.28], [0.91, 0.28], [0.0, -0.87]])],  # plus two round lobes
}
HEART_LOBES = np.array([[-0.42, 0.36], [0.42, 0.36]])
MOON_DISCS = np.array([[0.0, 0.0], [0.5, 0.2]])
SHAPE_EXTENT = 1.22  # every shape lies within this many radii of its centre
# degrees; shapes whose identity changes when rotated far (square -> diamond) stay near upright
MAX_ROTATION = {
    "circle": 0, "ring": 0, "square": 15, "triangle": 20, "hexagon": 180, "diamond": 15,
    "five pointed star": 36, "cross": 15, "heart": 20, "crescent moon": 180,
}


def _place(pts: np.ndarray, cx: float, cy: float, r: float, angle: float) -> np.ndarray:
    """Scale by r, rotate by angle and move to (cx, cy) a (n, 2) array of local points."""
    c, s = math.cos(angle), math.sin(angle)
    x = cx + r * (pts[:, 0] * c - pts[:, 1] * s)
    y = cy + r * (pts[:, 0] * s + pts[:, 1] * c)
    return np.stack([x, y], 1).astype(np.float32)


def _sdf_circle(x: np.ndarray, y: np.ndarray, cx: float, cy: float, r: float) -> np.ndarray:
    return np.sqrt((x - np.float32(cx)) ** 2 + (y - np.float32(cy)) ** 2) - np.float32(r)


def _edge_lines(pieces: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Outward unit normals (E, 2) and offsets (E,) of all the pieces' edges, and where each piece starts."""
    normals, offsets, starts = [], [], []
    for verts in pieces:
        nxt = np.roll(verts, -1, axis=0)
        edges = nxt - verts
        if edges[:, 0] @ (nxt[:, 1] + verts[:, 1]) > 0:  # clockwise: flip so normals point out
            edges = -edges
        n = np.stack([edges[:, 1], -edges[:, 0]], 1) / np.linalg.norm(edges, axis=1)[:, None]
        starts.append(sum(len(k) for k in normals))
        normals.append(n)
        offsets.append((n * verts).sum(1))
    return np.concatenate(normals), np.concatenate(offsets), np.array(starts)


EDGE_LINES = {shape: _edge_lines(pieces) for shape, pieces in CONVEX_PIECES.items()}


def _sdf_convex_union(x: np.ndarray, y: np.ndarray, shape: str, cx: float, cy: float, r: float,
                      angle: float) -> np.ndarray:
    """Signed distance to a union of convex polygons, each the largest signed distance to its edge lines.

    Exact inside and on the edges; outside a corner it is the mitred (smaller) distance, which
    only sharpens corners by a fraction of a pixel."""
    normals, offsets, starts = EDGE_LINES[shape]
    c, s = math.cos(angle), math.sin(angle)
    n = (normals @ np.array([[c, s], [-s, c]])).astype(np.float32)  # rotated by angle
    off = (r * offsets + n @ np.array([cx, cy])).astype(np.float32)
    nx, ny, off = n[:, 0, None, None], n[:, 1, None, None], off[:, None, None]
    # x is (1, w) and y (h, 1) unless wobbled, so only the final sum has the full size
    d = (nx * x - off) + ny * y
    return np.maximum.reduceat(d, starts, axis=0).min(axis=0)


def shape_sdf(shape: str, x: np.ndarray, y: np.ndarray, cx: float, cy: float, r: float,
              angle: float) -> np.ndarray:
    """Signed distance to `shape` of radius ~r centred at (cx, cy), rotated by `angle` radians."""
    if shape == "circle":
        return _sdf_circle(x, y, cx, cy, 0.95 * r)
    if shape == "ring":
        return np.abs(_sdf_circle(x, y, cx, cy, 0.8 * r)) - np.float32(0.2 * r)
    if shape in CONVEX_PIECES:
        d = _sdf_convex_union(x, y, shape, cx, cy, r, angle)
        if shape == "heart":
            for lx, ly in _place(HEART_LOBES, cx, cy, r, angle):
                np.minimum(d, _sdf_circle(x, y, lx, ly, 0.5 * r), out=d)
        return d
    if shape == "crescent moon":
        (ax, ay), (bx, by) = _place(MOON_DISCS, cx, cy, r, angle)
        return np.maximum(_sdf_circle(x, y, ax, ay, 0.95 * r), -_sdf_circle(x, y, bx, by, 0.75 * r))
    raise ValueError(f"unknown shape {shape!r}")


POSITIONS = (
    ("top left", "top middle", "top right"),
    ("middle left", "center", "middle right"),
    ("bottom left", "bottom middle", "bottom right"),
)
POSITION_WORDS = tuple(p for row in POSITIONS for p in row)
SIZES = ("small", "large")


def layout(rng: np.random.Generator, shape: str) -> tuple[dict[str, str], float, float, float, float]:
    """Size level, a jittered 3x3 grid position and a rotation for one shape."""
    size = pick(rng, SIZES)
    gx, gy = int(rng.integers(3)), int(rng.integers(3))
    if size == "small":
        r, step, jit = rng.uniform(0.26, 0.34), 0.56, 0.06
    else:
        r, step, jit = rng.uniform(0.48, 0.58), 0.36, 0.04
    cx = (gx - 1) * step + rng.uniform(-jit, jit)
    cy = (1 - gy) * step + rng.uniform(-jit, jit)
    angle = math.radians(rng.uniform(-1, 1) * MAX_ROTATION[shape])
    return {"size": size, "pos": POSITIONS[gy][gx]}, cx, cy, r, angle
