"""Toy world: deterministic procedural image datasets laid out on disk like real CoOp datasets.

Nothing can be downloaded here, so the built-in default runs on generated datasets: shapes (a
generic object dataset, standing in for ImageNet), textures (like DTD) and flowers (fine-grained,
like Flowers102). Four shifted renderings of the shapes stand in for the domain-generalisation
targets of ImageNet (their spec's `source` is "toy_shapes"; they are for evaluation only):

    toy_shapes_v2       like ImageNet-V2: a fresh sample, paler colours, smaller shapes, busier backgrounds
    toy_shapes_sketch   like ImageNet-Sketch: black-and-white outline drawings
    toy_shapes_cartoon  like ImageNet-R: cartoon, pixel-art and embroidered renditions (7 classes)
    toy_shapes_hard     like ImageNet-A: low contrast, heavy noise, occluded or cropped shapes among
                        distractors (6 classes)

Subsets keep toy_shapes' class names and order with labels 0..n-1, as ImageNet-A/-R do; classes are
matched to a source model by name. Every image comes with a caption naming its attributes (and its
style, for the renditions), so that a tiny CLIP can be pretrained on the same world.

`generate` writes, atomically (built in a hidden sibling folder, then renamed into place):

    root/<name>/images/<class_folder>/<split>_<index>.png
    root/<name>/split_zhou_<SplitName>.json   {"train"|"val"|"test": [[rel_path, label, classname], ...]}
    root/<name>/captions.json                 {rel_path: caption}
    root/<name>/meta.json                     the arguments it was generated with

Images are drawn at twice the target size with numpy coordinate grids and box-downsampled. Each
image's random stream is seeded from (seed, dataset, split, class, index), so the same arguments
give byte-identical files (on the same numpy build and CPU family).
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import string
import tempfile
import zlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from coop.data.errors import ToyDatasetExistsError

SPLITS = ("train", "val", "test")
CAPTION_NOISE = 0.1  # fraction of captions with one wrong attribute
SUPERSAMPLE = 2
FORMAT_VERSION = 1

RGB = np.ndarray  # float32 (3,) colour in [0, 1]


@dataclass(frozen=True)
class ToySpec:
    """One generated dataset: folder name, split-file name, zero-shot template and classes."""

    name: str  # folder under the data root
    split_name: str  # split file is split_zhou_<split_name>.json
    template: str  # hand-crafted zero-shot prompt, "{}" = class name
    classnames: tuple[str, ...]
    kind: str  # renderer: "shapes" | "textures" | "flowers" | "sketch" | "v2" | "cartoon" | "hard" | "union"
    attribute: str  # what the label is about: "shape" | "texture" | "flower" | "object"
    source: str | None = None  # the dataset this one is a shifted rendering of (evaluation only)
    parts: tuple[str, ...] = ()  # kind "union": the datasets whose classes (in order) this one gathers

    @property
    def split_file(self) -> str:
        return f"split_zhou_{self.split_name}.json"


SHAPES = (
    "circle", "square", "triangle", "five pointed star", "cross",
    "heart", "crescent moon", "hexagon", "diamond", "ring",
)
TEXTURES = (
    "striped", "dotted", "checkered", "zigzagged", "wavy", "grid", "speckled", "crosshatched",
)
FLOWERS = (
    "three petal flower", "four petal flower", "five petal flower", "six petal flower",
    "eight petal flower", "round petal daisy", "pointed petal lily", "double ring rose",
)


def _subset(*names: str) -> tuple[str, ...]:
    """Some of the SHAPES, in SHAPES' order (as ImageNet-A/-R keep 200 of ImageNet's classes)."""
    if not set(names) <= set(SHAPES):
        raise ValueError(f"not shapes: {sorted(set(names) - set(SHAPES))}")
    return tuple(c for c in SHAPES if c in names)


# renditions of the shapes easy to draw in a cartoon; shapes that stay hard in a bad photo
CARTOON_SHAPES = _subset("circle", "triangle", "five pointed star", "cross", "heart",
                         "crescent moon", "diamond")
HARD_SHAPES = _subset("square", "triangle", "five pointed star", "hexagon", "crescent moon", "ring")

UNION_PARTS = ("toy_shapes", "toy_flowers", "toy_textures")
TOY_DATASETS: dict[str, ToySpec] = {
    s.name: s
    for s in (
        ToySpec("toy_shapes", "ToyShapes", "a photo of a {}.", SHAPES, "shapes", "shape"),
        ToySpec("toy_textures", "ToyTextures", "{} texture.", TEXTURES, "textures", "texture"),
        ToySpec("toy_flowers", "ToyFlowers", "a photo of a {}, a type of flower.", FLOWERS,
                "flowers", "flower"),
        # drawings of the shapes as downstream tasks of their own; the generic prompt misses their style
        ToySpec("toy_sketches", "ToySketches", "a photo of a {}.", SHAPES, "sketch", "shape"),
        ToySpec("toy_icons", "ToyIcons", "a photo of a {}.", CARTOON_SHAPES, "cartoon", "shape"),
        # objects of every kind in one dataset, like Caltech101: the shapes, flowers and textures together
        ToySpec("toy_objects", "ToyObjects", "a photo of a {}.", SHAPES + FLOWERS + TEXTURES, "union", "object",
                parts=UNION_PARTS),
        ToySpec("toy_shapes_sketch", "ToyShapesSketch", "a photo of a {}.", SHAPES, "sketch",
                "shape", source="toy_shapes"),
        ToySpec("toy_shapes_v2", "ToyShapesV2", "a photo of a {}.", SHAPES, "v2", "shape",
                source="toy_shapes"),
        ToySpec("toy_shapes_cartoon", "ToyShapesCartoon", "a photo of a {}.", CARTOON_SHAPES,
                "cartoon", "shape", source="toy_shapes"),
        ToySpec("toy_shapes_hard", "ToyShapesHard", "a photo of a {}.", HARD_SHAPES, "hard",
                "shape", source="toy_shapes"),
    )
}

# ---------------------------------------------------------------------------------------------
# colours and small helpers

COLORS: dict[str, tuple[float, float, float]] = {
    "red": (0.86, 0.13, 0.11),
    "orange": (0.96, 0.56, 0.10),
    "yellow": (0.96, 0.87, 0.16),
    "green": (0.18, 0.62, 0.22),
    "blue": (0.14, 0.32, 0.86),
    "purple": (0.52, 0.22, 0.70),
    "pink": (0.96, 0.58, 0.76),
    "brown": (0.50, 0.31, 0.13),
    "black": (0.08, 0.08, 0.09),
    "white": (0.95, 0.95, 0.94),
}
BG_COLORS = {**COLORS, "gray": (0.55, 0.55, 0.56)}
PETAL_COLORS = ("red", "pink", "purple", "yellow", "white", "orange", "blue")
CENTER_COLORS = ("yellow", "orange", "brown", "black")
FLOWER_BACKGROUNDS: dict[str, tuple[float, float, float]] = {
    "green leaves": (0.22, 0.45, 0.18),
    "dark foliage": (0.09, 0.24, 0.11),
    "blue sky": (0.50, 0.68, 0.92),
    "brown soil": (0.40, 0.27, 0.16),
    "gray stone": (0.50, 0.50, 0.49),
}
PAPERS: dict[str, tuple[float, float, float]] = {
    "white paper": (0.97, 0.97, 0.96),
    "cream paper": (0.96, 0.92, 0.82),
    "gray paper": (0.84, 0.84, 0.83),
    "lined paper": (0.97, 0.97, 0.97),
}
INKS: dict[str, tuple[float, float]] = {"black": (0.03, 0.12), "gray": (0.22, 0.38)}
POSITIONS = (
    ("top left", "top middle", "top right"),
    ("middle left", "center", "middle right"),
    ("bottom left", "bottom middle", "bottom right"),
)
SIZES = ("small", "large")
BG_PATTERNS = ("striped", "dotted", "checkered", "grid", "wavy", "speckled")
CARTOON_STYLES = ("cartoon", "pixel art", "embroidered")
CARTOON_FILLS = ("red", "orange", "yellow", "green", "blue", "purple", "pink", "white")
CARTOON_BGS = ("white", "yellow", "pink", "blue", "green", "orange", "purple")  # drawn as pastels
OUTLINE = np.array([0.04, 0.04, 0.05], np.float32)  # the renditions' black outline
HARD_FLAWS = ("occluded", "cropped", "faded")  # what, besides noise and clutter, makes it hard
HARD_CONTRAST = (0.5, 0.7)  # scene contrast kept in hard examples; faded ones keep 0.65 of it


def _color(name: str, rng: np.random.Generator, table=COLORS, jitter: float = 0.04) -> RGB:
    """A named colour with a little per-image jitter."""
    c = np.asarray(table[name], np.float32) + rng.uniform(-jitter, jitter, 3).astype(np.float32)
    return np.clip(c, 0.0, 1.0)


def _saturate(c: RGB, k: float) -> RGB:
    """Scale a colour's distance from its own grey by k (k < 1 pales it, k > 1 deepens it)."""
    if k == 1:
        return c
    grey = np.float32(_luma(c))
    return np.clip(grey + (c - grey) * np.float32(k), 0.0, 1.0)


def _pastel(name: str, rng: np.random.Generator) -> RGB:
    return _color(name, rng) * np.float32(0.45) + np.float32(0.55)


def _dist(a: str, b: str, table=BG_COLORS) -> float:
    return float(np.linalg.norm(np.subtract(table[a], table[b])))


def _luma(rgb) -> float:
    r, g, b = rgb
    return 0.299 * r + 0.587 * g + 0.114 * b


# colour pairs that stay easy to tell apart, precomputed once
BG_FOR_FILL = {f: tuple(c for c in BG_COLORS if _dist(c, f) > 0.45) for f in COLORS}
TEXTURE_PARTNERS = {
    a: tuple(b for b in COLORS if abs(_luma(COLORS[a]) - _luma(COLORS[b])) > 0.35) for a in COLORS
}
PETALS_FOR_BG = {
    bg: tuple(c for c in PETAL_COLORS if _dist(c, bg, {**COLORS, **FLOWER_BACKGROUNDS}) > 0.4)
    for bg in FLOWER_BACKGROUNDS
}


def _pick(rng: np.random.Generator, options) -> str:
    return options[int(rng.integers(len(options)))]


@lru_cache(maxsize=8)
def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates in [-1, 1], x right and y up, as a (1, S) row and an (S, 1) column."""
    t = (np.arange(size, dtype=np.float32) + 0.5) / size * 2 - 1
    x, y = t[None, :].copy(), -t[:, None].copy()
    x.setflags(write=False)
    y.setflags(write=False)
    return x, y


def _rotate(x: np.ndarray, y: np.ndarray, angle: float) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates along (a) and across (b) the direction `angle`."""
    c, s = np.float32(math.cos(angle)), np.float32(math.sin(angle))
    return x * c + y * s, y * c - x * s


def _frac(t: np.ndarray) -> np.ndarray:
    return t - np.floor(t)


def _smooth_field(x: np.ndarray, y: np.ndarray, rng: np.random.Generator, amp: float) -> np.ndarray:
    """Low-frequency multiplicative variation around 1 (lighting, paper, foliage)."""
    f1, f2 = rng.uniform(1.0, 3.0, 2)
    p1, p2 = rng.uniform(0, 2 * np.pi, 2)
    return 1 + np.float32(amp) * np.sin(np.float32(f1) * x + np.float32(p1)) * np.cos(
        np.float32(f2) * y + np.float32(p2))


# Images are built channel-first (3, S, S): broadcasting over a trailing axis of length 3 is
# several times slower in numpy.

def _blend(base: np.ndarray, color: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Paint `color` ((3,) or (3, h, w)) over `base` (3, h, w) with coverage `alpha` (h, w)."""
    if color.ndim == 1:
        color = color[:, None, None]
    return base + (color - base) * alpha


def _fill(size: int, color: RGB) -> np.ndarray:
    out = np.empty((3, size, size), np.float32)
    out[:] = color[:, None, None]
    return out


# ---------------------------------------------------------------------------------------------
# signed distance functions (negative inside), in image units where the half-width is 1

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


def _window(size: int, cx: float, cy: float, extent: float) -> tuple[slice, slice]:
    """Rows and columns of the pixels within `extent` image units of (cx, cy): only those are drawn."""
    def lo(c: float) -> int:
        return min(size - 1, max(0, int(math.floor((c + 1) / 2 * size))))

    def hi(c: float) -> int:
        return max(1, min(size, int(math.ceil((c + 1) / 2 * size))))

    return slice(lo(-cy - extent), hi(-cy + extent)), slice(lo(cx - extent), hi(cx + extent))


def _coverage(sdf: np.ndarray, px: float) -> np.ndarray:
    """Anti-aliased coverage in [0, 1] of the region sdf < 0 (px = one pixel in image units)."""
    return np.clip(0.5 - sdf / np.float32(px), 0, 1)


# ---------------------------------------------------------------------------------------------
# textures: each maps (x, y, rng, scale in [0, 1]) to a boolean mask

def _striped(x: np.ndarray, y: np.ndarray, rng: np.random.Generator, scale: float) -> np.ndarray:
    a, _ = _rotate(x, y, rng.uniform(0, np.pi))
    p = 0.30 + 0.25 * scale
    return _frac(a / np.float32(p) + np.float32(rng.uniform())) < np.float32(rng.uniform(0.4, 0.6))


def _wavy(x: np.ndarray, y: np.ndarray, rng: np.random.Generator, scale: float) -> np.ndarray:
    a, b = _rotate(x, y, rng.uniform(0, np.pi))
    p = 0.36 + 0.2 * scale
    q, amp = p * rng.uniform(2.2, 3.2), p * rng.uniform(0.3, 0.42)
    a = a + np.float32(amp) * np.sin(b * np.float32(2 * np.pi / q) + np.float32(rng.uniform(0, 7)))
    return _frac(a / np.float32(p) + np.float32(rng.uniform())) < 0.5


def _zigzagged(x: np.ndarray, y: np.ndarray, rng: np.random.Generator, scale: float) -> np.ndarray:
    a, b = _rotate(x, y, rng.uniform(0, np.pi))
    p = 0.36 + 0.2 * scale
    q, amp = p * rng.uniform(1.1, 1.5), p * rng.uniform(0.5, 0.7)
    tri = 2 * np.abs(2 * _frac(b / np.float32(q) + np.float32(rng.uniform())) - 1) - 1
    return _frac((a + np.float32(amp) * tri) / np.float32(p) + np.float32(rng.uniform())) < 0.5


def _checkered(x: np.ndarray, y: np.ndarray, rng: np.random.Generator, scale: float) -> np.ndarray:
    a, b = _rotate(x, y, rng.uniform(0, np.pi / 2))
    p = np.float32(0.25 + 0.2 * scale)
    half = np.float32(0.5) / p  # one period of _frac(a * half) spans two cells
    return (_frac(a * half + np.float32(rng.uniform())) < 0.5) ^ (
        _frac(b * half + np.float32(rng.uniform())) < 0.5)


def _dotted(x: np.ndarray, y: np.ndarray, rng: np.random.Generator, scale: float) -> np.ndarray:
    a, b = _rotate(x, y, rng.uniform(0, np.pi / 2))
    p = np.float32(0.32 + 0.18 * scale)
    rad = np.float32(rng.uniform(0.22, 0.32))
    bv = b / p + np.float32(rng.uniform())
    shift = np.float32(0.5 * rng.integers(2)) * (_frac(bv * 0.5) >= 0.5)  # hex lattice half the time
    au = _frac(a / p + np.float32(rng.uniform()) + shift) - 0.5
    return au * au + (_frac(bv) - 0.5) ** 2 < rad * rad


def _grid_lines(x: np.ndarray, y: np.ndarray, rng: np.random.Generator, scale: float) -> np.ndarray:
    a, b = _rotate(x, y, rng.uniform(-0.17, 0.17))  # kept near axis-aligned: unlike crosshatched
    p = np.float32(0.36 + 0.2 * scale)
    w = np.float32(rng.uniform(0.13, 0.2))
    return (_frac(a / p + np.float32(rng.uniform())) < w) | (_frac(b / p + np.float32(rng.uniform())) < w)


def _crosshatched(x: np.ndarray, y: np.ndarray, rng: np.random.Generator, scale: float) -> np.ndarray:
    base, half = rng.uniform(0, np.pi), rng.uniform(0.5, 0.65)  # two line families ~60-75 deg apart
    a1, _ = _rotate(x, y, base + half)
    a2, _ = _rotate(x, y, base - half)
    p = np.float32(0.2 + 0.1 * scale)
    w = np.float32(rng.uniform(0.28, 0.36))
    return (_frac(a1 / p + np.float32(rng.uniform())) < w) | (_frac(a2 / p + np.float32(rng.uniform())) < w)


def _speckled(x: np.ndarray, y: np.ndarray, rng: np.random.Generator, scale: float) -> np.ndarray:
    """Irregular specks: at most one randomly placed dot of random size per cell of a coarse grid."""
    c = np.float32(0.2 + 0.1 * scale)
    n = int(math.ceil(2 / c)) + 1
    gx, gy = (x + 1) / c, (y + 1) / c
    i, j = gx.astype(np.int64), gy.astype(np.int64)
    ox, oy = rng.uniform(0.3, 0.7, (2, n, n)).astype(np.float32)
    rad = rng.uniform(0.2, 0.42, (n, n)).astype(np.float32)
    rad *= rng.random((n, n)) < 0.65
    dx, dy = gx - i - ox[j, i], gy - j - oy[j, i]
    return dx * dx + dy * dy < rad[j, i] ** 2


PATTERNS: dict[str, Callable] = {
    "striped": _striped, "dotted": _dotted, "checkered": _checkered, "zigzagged": _zigzagged,
    "wavy": _wavy, "grid": _grid_lines, "speckled": _speckled, "crosshatched": _crosshatched,
}

# ---------------------------------------------------------------------------------------------
# renderers: (classname, rng, S) -> (float image (3, S, S), caption words)


def _layout(rng: np.random.Generator, shape: str) -> tuple[dict[str, str], float, float, float, float]:
    """Size level, a jittered 3x3 grid position and a rotation for one shape."""
    size = _pick(rng, SIZES)
    gx, gy = int(rng.integers(3)), int(rng.integers(3))
    if size == "small":
        r, step, jit = rng.uniform(0.26, 0.34), 0.56, 0.06
    else:
        r, step, jit = rng.uniform(0.48, 0.58), 0.36, 0.04
    cx = (gx - 1) * step + rng.uniform(-jit, jit)
    cy = (1 - gy) * step + rng.uniform(-jit, jit)
    angle = math.radians(rng.uniform(-1, 1) * MAX_ROTATION[shape])
    return {"size": size, "pos": POSITIONS[gy][gx]}, cx, cy, r, angle


@dataclass(frozen=True)
class _Photo:
    """How a photo of a shape is taken; the defaults are toy_shapes'."""

    scale: float = 1.0  # shape radius, relative to toy_shapes
    saturation: float = 1.0  # fill colour saturation, relative to the named colour
    pattern_p: float = 0.5  # chance of a patterned (cluttered) background
    clutter: float = 1.0  # contrast of the background pattern, relative to toy_shapes


PHOTO = _Photo()
PHOTO_V2 = _Photo(scale=0.9, saturation=0.7, pattern_p=0.7, clutter=1.3)
PHOTO_HARD = _Photo(pattern_p=1.0, clutter=1.5)


def _photo_background(rng: np.random.Generator, size: int, bg_name: str,
                      photo: _Photo) -> tuple[np.ndarray, str]:
    """A plain or (at low contrast) patterned background, and its caption word."""
    bg_c = _color(bg_name, rng, BG_COLORS)
    if rng.random() >= photo.pattern_p:
        return _fill(size, bg_c), f"plain {bg_name}"
    pattern = _pick(rng, BG_PATTERNS)
    x, y = _grid(size)
    mask = PATTERNS[pattern](x, y, rng, rng.random())
    # the same pattern as toy_textures, but at low contrast
    other = bg_c * np.float32(0.84) if _luma(bg_c) > 0.4 else bg_c * np.float32(0.85) + np.float32(0.12)
    if photo.clutter != 1:
        other = np.clip(bg_c + (other - bg_c) * np.float32(photo.clutter), 0, 1)
    return _blend(_fill(size, bg_c), other, mask.astype(np.float32)), pattern


def _paint_shape(img: np.ndarray, cls: str, rng: np.random.Generator, cx: float, cy: float,
                 r: float, angle: float, fill_name: str, saturation: float = 1.0,
                 opacity: float = 1.0) -> None:
    """Paint a shaded shape onto img (3, S, S) in place."""
    size = img.shape[-1]
    x, y = _grid(size)
    rows, cols = _window(size, cx, cy, SHAPE_EXTENT * r + 4 / size)
    xs, ys = x[:, cols], y[rows, :]
    # photo-like shading: light falls across the shape from a random direction
    light = rng.uniform(0, 2 * np.pi)
    lx, ly = np.float32(math.cos(light)), np.float32(math.sin(light))
    shade = 1 + np.float32(0.22 / r) * ((xs - np.float32(cx)) * lx + (ys - np.float32(cy)) * ly)
    fg = _saturate(_color(fill_name, rng), saturation)[:, None, None] * shade
    alpha = _coverage(shape_sdf(cls, xs, ys, cx, cy, r, angle), 2 / size)
    if opacity != 1:
        alpha *= np.float32(opacity)
    img[:, rows, cols] = _blend(img[:, rows, cols], fg, alpha)


def _render_shapes(cls: str, rng: np.random.Generator, size: int,
                   photo: _Photo = PHOTO) -> tuple[np.ndarray, dict[str, str]]:
    words, cx, cy, r, angle = _layout(rng, cls)
    fill_name = _pick(rng, tuple(COLORS))
    bg_name = _pick(rng, BG_FOR_FILL[fill_name])
    img, words["bg"] = _photo_background(rng, size, bg_name, photo)
    _paint_shape(img, cls, rng, cx, cy, r * photo.scale, angle, fill_name, photo.saturation)
    words.update(cls=cls, color=fill_name)
    return img, words


def _render_v2(cls: str, rng: np.random.Generator, size: int) -> tuple[np.ndarray, dict[str, str]]:
    """toy_shapes photographed anew: paler, smaller shapes on busier backgrounds, a colour cast."""
    img, words = _render_shapes(cls, rng, size, PHOTO_V2)
    img *= (1 + rng.uniform(-0.08, 0.08, 3)).astype(np.float32)[:, None, None]
    return img, words


def _distractors(img: np.ndarray, cls: str, rng: np.random.Generator, n: int) -> None:
    """Small, faint shapes of other classes scattered over the background, in place."""
    for _ in range(n):
        other = _pick(rng, tuple(s for s in SHAPES if s != cls))
        r = rng.uniform(0.14, 0.24)
        cx, cy = rng.uniform(-0.85, 0.85, 2)
        angle = math.radians(rng.uniform(-1, 1) * MAX_ROTATION[other])
        _paint_shape(img, other, rng, cx, cy, r, angle, _pick(rng, tuple(COLORS)), opacity=0.7)


def _to_border(rng: np.random.Generator, cx: float, cy: float, r: float) -> tuple[float, float]:
    """Move the centre towards a random border so that the image crops 20-50% of a radius off."""
    edge = (1 - r * rng.uniform(0.5, 0.8)) * (1 if rng.random() < 0.5 else -1)
    return (edge, cy) if rng.random() < 0.5 else (cx, edge)


def _occlude(img: np.ndarray, rng: np.random.Generator, cx: float, cy: float, r: float,
             fill_name: str) -> np.ndarray:
    """A bar (a post, a branch) across the shape, hiding a quarter to a half of it."""
    size = img.shape[-1]
    x, y = _grid(size)
    _, b = _rotate(x - np.float32(cx), y - np.float32(cy), rng.uniform(0, np.pi))
    half, offset = r * rng.uniform(0.25, 0.4), r * rng.uniform(-0.5, 0.5)
    bar = _coverage(np.abs(b - np.float32(offset)) - np.float32(half), 2 / size)
    return _blend(img, _color(_pick(rng, BG_FOR_FILL[fill_name]), rng, BG_COLORS), bar)


def _render_hard(cls: str, rng: np.random.Generator, size: int) -> tuple[np.ndarray, dict[str, str]]:
    """A bad photo: clutter, distractors, a hidden or cropped shape, low contrast (noise comes later)."""
    words, cx, cy, r, angle = _layout(rng, cls)
    flaw = _pick(rng, HARD_FLAWS)
    fill_name = _pick(rng, tuple(COLORS))
    img, _ = _photo_background(rng, size, _pick(rng, BG_FOR_FILL[fill_name]), PHOTO_HARD)
    _distractors(img, cls, rng, 1 + int(rng.integers(2)))
    if flaw == "cropped":
        cx, cy = _to_border(rng, cx, cy, r)
    _paint_shape(img, cls, rng, cx, cy, r, angle, fill_name)
    if flaw == "occluded":
        img = _occlude(img, rng, cx, cy, r, fill_name)
    contrast = rng.uniform(*HARD_CONTRAST) * (0.65 if flaw == "faded" else 1.0)
    haze = np.float32(rng.uniform(0.3, 0.6))
    img = haze + (img - haze) * np.float32(contrast)
    return img, {"cls": cls, "color": fill_name, "size": words["size"], "flaw": flaw}


def _cartoon_background(rng: np.random.Generator, size: int, fill_name: str) -> tuple[np.ndarray, str]:
    """A flat pastel, or a gradient from one pastel to another; and its caption word."""
    names = tuple(c for c in CARTOON_BGS if c != fill_name)
    bg_name = _pick(rng, names)
    img = _fill(size, _pastel(bg_name, rng))
    if rng.random() < 0.5:
        return img, f"plain {bg_name}"
    x, y = _grid(size)
    a, _ = _rotate(x, y, rng.uniform(0, 2 * np.pi))
    ramp = np.clip(a * np.float32(0.5) + np.float32(0.5), 0, 1)
    return _blend(img, _pastel(_pick(rng, names), rng), ramp), f"{bg_name} gradient"


def _snap(t: np.ndarray, block: float) -> np.ndarray:
    """Coordinates moved to the centre of their block: shapes drawn with them come out blocky."""
    q = np.float32(block)
    return (np.floor((t + 1) / q) + np.float32(0.5)) * q - 1


def _stitches(xs: np.ndarray, ys: np.ndarray, rng: np.random.Generator, cx: float, cy: float,
              r: float, px: float) -> tuple[np.ndarray, np.ndarray]:
    """Embroidery: the fill as a lattice of thread dots, the outline as a running stitch."""
    a, b = _rotate(xs, ys, math.pi / 4)
    p = np.float32(6 * px)
    du, dv = _frac(a / p + np.float32(rng.uniform())) - 0.5, _frac(b / p + np.float32(rng.uniform())) - 0.5
    dots = (du * du + dv * dv < np.float32(0.13)).astype(np.float32)
    n = max(8, round(2 * math.pi * r / (7 * px)))  # stitches around the outline
    theta = np.arctan2(ys - np.float32(cy), xs - np.float32(cx))
    dashes = _frac(theta * np.float32(n / (2 * np.pi)) + np.float32(rng.uniform())) < 0.7
    return np.float32(0.3) + np.float32(0.7) * dots, dashes.astype(np.float32)


def _render_cartoon(cls: str, rng: np.random.Generator, size: int) -> tuple[np.ndarray, dict[str, str]]:
    """A rendition: flat saturated fill, thick black outline; as a cartoon, pixel art or embroidery."""
    x, y = _grid(size)
    words, cx, cy, r, angle = _layout(rng, cls)
    style, fill_name = _pick(rng, CARTOON_STYLES), _pick(rng, CARTOON_FILLS)
    img, words["bg"] = _cartoon_background(rng, size, fill_name)
    px = 2 / size
    block = (4 if words["size"] == "large" else 2) * px  # pixel art: 2 x 2 or 1 x 1 output pixels
    width = max(rng.uniform(0.14, 0.22) * r, 3 * px)
    rows, cols = _window(size, cx, cy, SHAPE_EXTENT * r + 2 * width + block + 2 * px)
    xs, ys = x[:, cols], y[rows, :]
    edge, shift = px, 0.0
    if style == "pixel art":  # hard-edged blocks, the outline around the shape rather than on it
        xs, ys, edge, shift = _snap(xs, block), _snap(ys, block), 1e-4, width / 2
    sdf = shape_sdf(cls, xs, ys, cx, cy, r, angle)
    fill = _coverage(sdf, edge)
    line = _coverage(np.abs(sdf - np.float32(shift)) - np.float32(width / 2), edge)
    if style == "embroidered":
        dots, dashes = _stitches(xs, ys, rng, cx, cy, r, px)
        fill, line = fill * dots, line * dashes
    region = _blend(img[:, rows, cols], _saturate(_color(fill_name, rng), 1.3), fill)
    img[:, rows, cols] = _blend(region, OUTLINE, line)
    words.update(cls=cls, color=fill_name, style=style)
    return img, words


def _render_sketch(cls: str, rng: np.random.Generator, size: int) -> tuple[np.ndarray, dict[str, str]]:
    x, y = _grid(size)
    words, cx, cy, r, angle = _layout(rng, cls)
    paper_name, ink_name = _pick(rng, tuple(PAPERS)), _pick(rng, tuple(INKS))
    paper = _fill(size, _color(paper_name, rng, PAPERS, 0.015))
    if paper_name == "lined paper":
        a = _frac((y + np.float32(rng.uniform())) / np.float32(rng.uniform(0.3, 0.4)))
        paper = _blend(paper, np.array([0.62, 0.74, 0.92], np.float32), (a < 0.06).astype(np.float32))
    # hand-drawn wobble: bend the coordinate grid with slow sine waves
    amp, f = np.float32(rng.uniform(0.01, 0.03)), np.float32(rng.uniform(3, 7))
    p1, p2 = np.float32(rng.uniform(0, 7)), np.float32(rng.uniform(0, 7))
    px = 2 / size
    rel_width = rng.uniform(0.1, 0.22)  # relative to the shape, so small shapes stay readable
    width = max(rel_width * r, 1.8 * px)
    rows, cols = _window(size, cx, cy, SHAPE_EXTENT * r + amp + width + 2 * px)
    xs, ys = x[:, cols], y[rows, :]
    xw, yw = xs + amp * np.sin(f * ys + p1), ys + amp * np.sin(f * xs + p2)
    sdf = np.abs(shape_sdf(cls, xw, yw, cx, cy, r, angle)) - np.float32(width / 2)
    pressure = np.float32(rng.uniform(0.85, 1.0))
    ink = np.full(3, rng.uniform(*INKS[ink_name]), np.float32)
    paper[:, rows, cols] = _blend(paper[:, rows, cols], ink, _coverage(sdf, px) * pressure)
    words.update(cls=cls, ink=ink_name, paper=paper_name, stroke="thin" if rel_width < 0.16 else "thick")
    return paper, words


def _render_textures(cls: str, rng: np.random.Generator, size: int) -> tuple[np.ndarray, dict[str, str]]:
    x, y = _grid(size)
    c1 = _pick(rng, tuple(COLORS))
    c2 = _pick(rng, TEXTURE_PARTNERS[c1])
    scale = rng.random()
    mask = PATTERNS[cls](x, y, rng, scale)
    img = _blend(_fill(size, _color(c2, rng)), _color(c1, rng), mask.astype(np.float32))
    return img, {"cls": cls, "c1": c1, "c2": c2, "scale": "fine" if scale < 0.5 else "coarse"}


@dataclass(frozen=True)
class _PetalRing:
    n: int  # petals
    center: float  # petal centre distance from the flower centre, in flower radii
    length: float  # half-length along the petal axis
    width: float  # half-width across it
    pointed: bool = False
    offset: float = 0.0  # extra rotation, in petal sectors


def _ring(n: int, pointed: bool = False, center: float = 0.55, length: float = 0.45,
          offset: float = 0.0, widest: float = 0.34) -> _PetalRing:
    # petals are as wide as their sector allows, leaving a visible gap between neighbours
    width = min(widest, 0.8 * center * math.sin(math.pi / n))
    return _PetalRing(n, center, length, width, pointed, offset)


FLOWER_DESIGNS: dict[str, tuple[tuple[_PetalRing, ...], float]] = {  # petal rings, disc radius
    "three petal flower": ((_ring(3),), 0.18),
    "four petal flower": ((_ring(4),), 0.18),
    "five petal flower": ((_ring(5),), 0.18),
    "six petal flower": ((_ring(6),), 0.18),
    "eight petal flower": ((_ring(8),), 0.18),
    "round petal daisy": ((_ring(12, center=0.64, length=0.36),), 0.36),
    "pointed petal lily": ((_PetalRing(6, 0.5, 0.5, 0.3, pointed=True),), 0.12),
    "double ring rose": ((_ring(5, center=0.6, length=0.4), _ring(5, center=0.3, length=0.25,
                                                                  offset=0.5, widest=0.2)), 0.1),
}


def _petals(r: np.ndarray, theta: np.ndarray, ring: _PetalRing, angle: float) -> np.ndarray:
    """Mask of n petals, each an ellipse (or a lens pointed at both ends) along its own axis."""
    sector = 2 * np.pi / ring.n
    start = np.float32(angle + ring.offset * sector - sector / 2)
    phi = np.mod(theta - start, np.float32(sector)) - np.float32(sector / 2)
    u = (r * np.cos(phi) - np.float32(ring.center)) / np.float32(ring.length)
    v = r * np.sin(phi) / np.float32(ring.width)
    if ring.pointed:
        return np.abs(v) < 1 - u * u
    return u * u + v * v < 1


def _render_flowers(cls: str, rng: np.random.Generator, size: int) -> tuple[np.ndarray, dict[str, str]]:
    x, y = _grid(size)
    bg_name = _pick(rng, tuple(FLOWER_BACKGROUNDS))
    petal_name = _pick(rng, PETALS_FOR_BG[bg_name])
    center_name = _pick(rng, tuple(c for c in CENTER_COLORS if c != petal_name))
    img = _fill(size, _color(bg_name, rng, FLOWER_BACKGROUNDS, 0.03))
    radius = rng.uniform(0.55, 0.88)
    room = max(0.0, 1 - 0.85 * radius)
    cx, cy = rng.uniform(-room, room), rng.uniform(-room, room)
    angle = rng.uniform(0, 2 * np.pi)
    dx, dy = x - np.float32(cx), y - np.float32(cy)
    r = np.sqrt(dx * dx + dy * dy) / np.float32(radius)  # in flower radii
    theta = np.arctan2(dy, dx)
    petal_c = _color(petal_name, rng)
    rings, disc = FLOWER_DESIGNS[cls]
    shade = 0.7 + 0.4 * np.minimum(r, 1)  # petals darker towards the centre
    for k, ring in enumerate(rings):
        tone = petal_c * np.float32(0.72 if k else 1.0)  # inner ring of a rose in a deeper shade
        mask = _petals(r, theta, ring, angle).astype(np.float32)
        img = _blend(img, tone[:, None, None] * shade, mask)
    disc_r = disc * rng.uniform(0.9, 1.1)
    img = _blend(img, _color(center_name, rng), (r < np.float32(disc_r)).astype(np.float32))
    words = {"cls": cls, "color": petal_name, "center": center_name, "bg": bg_name,
             "size": "small" if radius < 0.7 else "large"}
    return img, words


RENDERERS: dict[str, Callable] = {
    "shapes": _render_shapes, "sketch": _render_sketch,
    "textures": _render_textures, "flowers": _render_flowers,
    "v2": _render_v2, "cartoon": _render_cartoon, "hard": _render_hard,
}
PIXEL_NOISE = {"shapes": 0.02, "sketch": 0.012, "textures": 0.02, "flowers": 0.02,
               "v2": 0.025, "cartoon": 0.01, "hard": 0.035}
LIGHTING = {"shapes": 0.08, "sketch": 0.03, "textures": 0.1, "flowers": 0.15,  # uneven light / paper
            "v2": 0.1, "cartoon": 0.02, "hard": 0.08}

# ---------------------------------------------------------------------------------------------
# captions

CAPTION_TEMPLATES: dict[str, tuple[str, ...]] = {
    "shapes": (
        "a photo of a {color} {cls}.",
        "a {color} {cls} on a {bg} background.",
        "a {size} {color} {cls}.",
        "a {size} {cls} in the {pos} of the image.",
        "a picture of a {cls} drawn in {color}.",
        "a {color} {cls} in the {pos}.",
        "a photo of a {size} {cls} on a {bg} background.",
        "there is a {color} {cls} in the {pos} of the picture.",
        "a {cls}, coloured {color}, on a {bg} background.",
        "a {size} {color} {cls} placed in the {pos}.",
        "an image of a {cls}.",
        "a rendering of a {size} {cls} on a {bg} background.",
        "a {color} {cls} against a {bg} backdrop.",
        "one {size} {cls} in {color}.",
        "a photo of the {cls}, which is {color}.",
        "a {size} {color} {cls} on a {bg} background, in the {pos}.",
        "close-up of a {color} {cls}.",
        "the {cls} is {color} and sits in the {pos}.",
    ),
    "sketch": (
        "a sketch of a {cls}.",
        "a sketch of a {size} {cls}.",
        "a pencil drawing of a {cls}.",
        "a {ink} line drawing of a {cls} on {paper}.",
        "a {stroke} outline of a {cls}.",
        "a doodle of a {size} {cls} in the {pos}.",
        "a hand-drawn {cls} on {paper}.",
        "an outline drawing of a {cls} in {ink} ink.",
        "a {size} sketched {cls} in the {pos} of the page.",
        "a black and white sketch of a {cls}.",
        "a drawing of a {cls} with {stroke} lines.",
        "a quick sketch of a {cls} on {paper}.",
        "an unfilled {cls} drawn with a {stroke} {ink} pen.",
        "line art of a {cls}.",
        "a sketch of the outline of a {size} {cls}.",
        "a {cls} sketched in the {pos}.",
    ),
    "textures": (
        "{cls} texture.",
        "a close-up of a {cls} pattern.",
        "a {c1} and {c2} {cls} pattern.",
        "a photo of a {cls} texture.",
        "a {scale} {cls} pattern in {c1} and {c2}.",
        "{c1} and {c2} {cls} fabric.",
        "a {cls} surface.",
        "a close-up photo of {cls} wallpaper in {c1} and {c2}.",
        "a {scale} {cls} texture.",
        "a piece of {cls} cloth, {c1} on {c2}.",
        "a {cls} design with {c1} and {c2}.",
        "a macro photo of a {scale} {cls} material.",
        "a {c1} {cls} pattern on a {c2} base.",
        "a seamless {cls} texture.",
        "this texture is {cls}.",
        "{cls} tiles in {c1} and {c2}.",
    ),
    "flowers": (
        "a photo of a {color} {cls}.",
        "a {color} {cls} with a {center} center.",
        "a {size} {cls} in front of {bg}.",
        "a close-up of a {cls}.",
        "a {cls} with {color} petals.",
        "a {size} {color} {cls} against {bg}.",
        "a blooming {cls}.",
        "a photo of a {cls} in a garden.",
        "a {color} {cls} and {bg}.",
        "a picture of a {size} {cls} with a {center} middle.",
        "a single {color} {cls}.",
        "macro shot of a {cls} with {color} petals and a {center} center.",
        "a {cls} photographed against {bg}.",
        "the {cls} has {color} petals.",
        "a {size} {cls}.",
        "a wild {color} {cls}.",
    ),
    "cartoon": (
        "a {style} {cls}.",
        "a {style} rendition of a {cls}.",
        "a {style} {color} {cls} on a {bg} background.",
        "a {size} {style} {cls}.",
        "a {style} image of a {color} {cls}.",
        "a {color} {cls} in a {style} rendition.",
        "a {style} {cls} with a thick black outline.",
        "a {style} picture of a {size} {cls}.",
        "a {style} version of a {cls}.",
        "a {style} {cls} coloured {color}.",
        "a {style} rendering of a {cls} on a {bg} background.",
        "a {size} {color} {style} {cls}.",
        "a {style} {cls} against a {bg} backdrop.",
        "a {style} sticker of a {color} {cls}.",
        "a {style} icon of a {cls}.",
        "a {style} {cls} in the {pos}.",
        "a {style} {cls} in {color} on a {bg} background.",
    ),
    "hard": (
        "a hard to see photo of a {cls}.",
        "a {flaw} photo of a {cls}.",
        "a noisy, low contrast photo of a {color} {cls}.",
        "a {flaw} {color} {cls} in a cluttered scene.",
        "a dim, grainy picture of a {size} {cls}.",
        "a {size} {cls}, {flaw}, in a noisy photo.",
        "a low contrast photo of a {flaw} {cls}.",
        "a grainy photo of a {color} {cls} among other shapes.",
        "a {flaw} {cls} next to other shapes.",
        "a {size} {color} {cls}, barely visible.",
        "a dark, noisy photo of a {cls}.",
        "a {flaw} and noisy image of a {cls}.",
        "a photo of a {color} {cls}, {flaw} and hard to see.",
        "a difficult photo of a {size} {cls}.",
        "a {cls} among distractors in a {flaw} photo.",
        "a washed out photo of a {size} {flaw} {cls}.",
    ),
}
CAPTION_TEMPLATES["v2"] = CAPTION_TEMPLATES["shapes"]  # photos too, like toy_shapes'


def _vocabulary(spec: ToySpec) -> dict[str, tuple[str, ...]]:
    """Every value each caption slot can take, for drawing a wrong one."""
    positions = tuple(p for row in POSITIONS for p in row)
    common = {"cls": spec.classnames, "size": SIZES}
    vocab = {
        "shapes": {**common, "pos": positions, "color": tuple(COLORS),
                   "bg": BG_PATTERNS + tuple(f"plain {c}" for c in BG_COLORS)},
        "cartoon": {**common, "pos": positions, "style": CARTOON_STYLES, "color": CARTOON_FILLS,
                    "bg": tuple(f"plain {c}" for c in CARTOON_BGS)
                    + tuple(f"{c} gradient" for c in CARTOON_BGS)},
        "hard": {**common, "color": tuple(COLORS), "flaw": HARD_FLAWS},
        "sketch": {**common, "pos": positions, "ink": tuple(INKS), "paper": tuple(PAPERS),
                   "stroke": ("thin", "thick")},
        "textures": {"cls": spec.classnames, "c1": tuple(COLORS), "c2": tuple(COLORS),
                     "scale": ("fine", "coarse")},
        "flowers": {**common, "color": PETAL_COLORS, "center": CENTER_COLORS,
                    "bg": tuple(FLOWER_BACKGROUNDS)},
    }
    vocab["v2"] = vocab["shapes"]
    return vocab[spec.kind]


def _part_of(spec: ToySpec, cls: str) -> str:
    """The dataset of a union (`spec.parts`) that class `cls` comes from."""
    return next(p for p in spec.parts if cls in TOY_DATASETS[p].classnames)


def make_caption(name: str, words: dict[str, str], rng: np.random.Generator,
                 noise: float = CAPTION_NOISE) -> tuple[str, bool]:
    """A caption from a random template; with probability `noise` one slot gets a wrong value.

    Returns (caption, noisy)."""
    spec = TOY_DATASETS[name]
    if spec.parts:  # the caption of the dataset the class comes from
        return make_caption(_part_of(spec, words["cls"]), words, rng, noise)
    template = _pick(rng, CAPTION_TEMPLATES[spec.kind])
    words = dict(words)
    noisy = bool(rng.random() < noise)
    if noisy:
        slots = sorted({f for _, f, _, _ in string.Formatter().parse(template) if f})
        slot = _pick(rng, slots)
        words[slot] = _pick(rng, tuple(v for v in _vocabulary(spec)[slot] if v != words[slot]))
    return fill_template(template, words), noisy


def fill_template(template: str, words: dict[str, str]) -> str:
    """Fill a caption template and fix the articles ("a orange" -> "an orange")."""
    return re.sub(r"\b([Aa]) (?=[aeiou])", r"\1n ", template.format(**words))


# ---------------------------------------------------------------------------------------------
# images

def _downsample(img: np.ndarray, k: int) -> np.ndarray:
    """Box filter on a (3, S, S) image: mean of each k x k block (faster than mean(axis=...))."""
    out = sum(img[:, i::k, j::k] for i in range(k) for j in range(k))
    return out * np.float32(1 / (k * k))


def sample_image(name: str, label: int, rng: np.random.Generator,
                 image_size: int = 32) -> tuple[np.ndarray, dict[str, str]]:
    """Draw one image of class `label`: (uint8 array (H, W, 3), caption words)."""
    spec = TOY_DATASETS[name]
    if spec.parts:  # drawn as the dataset the class comes from draws it
        cls = spec.classnames[label]
        part = _part_of(spec, cls)
        return sample_image(part, TOY_DATASETS[part].classnames.index(cls), rng, image_size)
    img, words = RENDERERS[spec.kind](spec.classnames[label], rng, image_size * SUPERSAMPLE)
    img = _downsample(img, SUPERSAMPLE)
    x, y = _grid(image_size)
    img *= _smooth_field(x, y, rng, LIGHTING[spec.kind])  # low-frequency, so fine at low res
    img += rng.normal(0, PIXEL_NOISE[spec.kind], img.shape).astype(np.float32)
    img = np.clip(img * 255 + 0.5, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(img.transpose(1, 2, 0)), words


def render_image(name: str, label: int, seed: int | list[int] = 0, image_size: int = 32) -> np.ndarray:
    """One (image_size, image_size, 3) uint8 image of class `label` of dataset `name`."""
    return sample_image(name, label, np.random.default_rng(seed), image_size)[0]


def item_seed(seed: int, name: str, split: str, label: int, index: int, attempt: int = 0) -> list[int]:
    """Entropy for one image; crc32, unlike hash(), is not salted per process."""
    return [seed, zlib.crc32(name.encode()), SPLITS.index(split), label, index, attempt]


# ---------------------------------------------------------------------------------------------
# writing a dataset


def class_folder(classname: str) -> str:
    return classname.replace(" ", "_")


def split_path(name: str, root: str | Path) -> Path:
    return Path(root) / name / TOY_DATASETS[name].split_file


def is_complete(name: str, root: str | Path) -> bool:
    """True when root/<name> holds a readable split file with all three splits."""
    try:
        with open(split_path(name, root)) as f:
            split = json.load(f)
    except (OSError, ValueError):
        return False
    return isinstance(split, dict) and all(isinstance(split.get(k), list) for k in SPLITS)


def _draw_unique(name: str, split: str, label: int, index: int, seed: int, image_size: int,
                 seen: set[bytes]) -> tuple[np.ndarray, str]:
    """Draw an image whose pixels differ from every image drawn before; redraw on a collision."""
    for attempt in range(100):
        rng = np.random.default_rng(item_seed(seed, name, split, label, index, attempt))
        img, words = sample_image(name, label, rng, image_size)
        digest = hashlib.blake2b(img.tobytes(), digest_size=16).digest()
        if digest not in seen:
            seen.add(digest)
            return img, make_caption(name, words, rng)[0]
    raise RuntimeError(f"could not draw a unique image for {name}/{split}/{label}/{index}")


def _write_dataset(spec: ToySpec, folder: Path, counts: dict[str, int], image_size: int,
                   seed: int) -> None:
    images = folder / "images"
    for cls in spec.classnames:
        (images / class_folder(cls)).mkdir(parents=True)
    split: dict[str, list] = {}
    captions: dict[str, str] = {}
    seen: set[bytes] = set()
    for name in SPLITS:
        items = split[name] = []
        for label, cls in enumerate(spec.classnames):
            for i in range(counts[name]):
                img, caption = _draw_unique(spec.name, name, label, i, seed, image_size, seen)
                rel = f"{class_folder(cls)}/{name}_{i:04d}.png"
                Image.fromarray(img, "RGB").save(images / rel, format="PNG", optimize=False)
                items.append([rel, label, cls])
                captions[rel] = caption
    meta = {"generator": "coop.data.toyworld", "format_version": FORMAT_VERSION, "name": spec.name,
            "image_size": image_size, "seed": seed, **{f"n_{k}": v for k, v in counts.items()}}
    (folder / "captions.json").write_text(json.dumps(captions, indent=1) + "\n")
    (folder / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
    (folder / spec.split_file).write_text(json.dumps(split) + "\n")


def generate(name: str, root: str | Path, n_train: int = 24, n_val: int = 8, n_test: int = 40,
             image_size: int = 32, seed: int = 0) -> Path:
    """Write root/<name>/images/... PNGs, root/<name>/split_zhou_<SplitName>.json and
    root/<name>/captions.json; return the split file path. n_* are images PER CLASS.

    The dataset is built in a hidden sibling folder and renamed into place. An existing
    root/<name> is replaced only if it holds a complete split file (so foreign data is never
    deleted); otherwise FileExistsError is raised."""
    spec = TOY_DATASETS[name]
    if min(n_train, n_val, n_test) < 0 or image_size < 1:
        raise ValueError("counts must be >= 0 and image_size >= 1")
    root = Path(root)
    final = root / name
    # Snakemake creates the output's (empty) folder before the job runs; empty is fine to replace.
    if final.exists() and any(final.iterdir()) and not is_complete(name, root):
        raise ToyDatasetExistsError(
            f"{final} exists but is not a complete toy dataset (no readable split file), so it is not replaced: "
            f"it may hold data that is not ours. Move it away (or delete it if nothing in it is needed) and rerun."
        )
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".tmp", dir=root))
    try:
        os.chmod(tmp, 0o755)
        counts = {"train": n_train, "val": n_val, "test": n_test}
        _write_dataset(spec, tmp, counts, image_size, seed)
        _move_into_place(tmp, final, name, root)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return split_path(name, root)


def _move_into_place(tmp: Path, final: Path, name: str, root: Path) -> None:
    """Rename tmp onto final; an old complete dataset is moved aside first, then deleted."""
    old = None
    if final.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".old", dir=root))
        os.rename(final, old / name)
    try:
        os.rename(tmp, final)
    except OSError:
        # a concurrent generate() won the race; its result is just as complete
        if not is_complete(name, root):
            raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
