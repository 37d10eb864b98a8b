"""Drawings of the shapes: kinds "sketch" (pen outlines on paper, like ImageNet-Sketch) and "cartoon"
(renditions as a cartoon, pixel art or embroidery with a thick black outline, like ImageNet-R).
"""
from __future__ import annotations

import math

import numpy as np

from coop.data.toyworld.canvas import blend, coverage, frac, grid, rotate, solid, window
from coop.data.toyworld.geometry import POSITION_WORDS, SHAPE_EXTENT, SIZES, layout, shape_sdf
from coop.data.toyworld.kinds import ImageKind, register_kind
from coop.data.toyworld.palette import color, pastel, pick, saturate
from coop.data.toyworld.registry import SHAPES

PAPERS: dict[str, tuple[float, float, float]] = {
    "white paper": (0.97, 0.97, 0.96),
    "cream paper": (0.96, 0.92, 0.82),
    "gray paper": (0.84, 0.84, 0.83),
    "lined paper": (0.97, 0.97, 0.97),
}
INKS: dict[str, tuple[float, float]] = {"black": (0.03, 0.12), "gray": (0.22, 0.38)}
CARTOON_STYLES = ("cartoon", "pixel art", "embroidered")
CARTOON_FILLS = ("red", "orange", "yellow", "green", "blue", "purple", "pink", "white")
CARTOON_BGS = ("white", "yellow", "pink", "blue", "green", "orange", "purple")  # drawn as pastels
OUTLINE = np.array([0.04, 0.04, 0.05], np.float32)  # the renditions' black outline


def _render_sketch(cls: str, rng: np.random.Generator, size: int) -> tuple[np.ndarray, dict[str, str]]:
    x, y = grid(size)
    words, cx, cy, r, angle = layout(rng, cls)
    paper_name, ink_name = pick(rng, tuple(PAPERS)), pick(rng, tuple(INKS))
    paper = solid(size, color(paper_name, rng, PAPERS, 0.015))
    if paper_name == "lined paper":
        a = frac((y + np.float32(rng.uniform())) / np.float32(rng.uniform(0.3, 0.4)))
        paper = blend(paper, np.array([0.62, 0.74, 0.92], np.float32), (a < 0.06).astype(np.float32))
    # hand-drawn wobble: bend the coordinate grid with slow sine waves
    amp, f = np.float32(rng.uniform(0.01, 0.03)), np.float32(rng.uniform(3, 7))
    p1, p2 = np.float32(rng.uniform(0, 7)), np.float32(rng.uniform(0, 7))
    px = 2 / size
    rel_width = rng.uniform(0.1, 0.22)  # relative to the shape, so small shapes stay readable
    width = max(rel_width * r, 1.8 * px)
    rows, cols = window(size, cx, cy, SHAPE_EXTENT * r + amp + width + 2 * px)
    xs, ys = x[:, cols], y[rows, :]
    xw, yw = xs + amp * np.sin(f * ys + p1), ys + amp * np.sin(f * xs + p2)
    sdf = np.abs(shape_sdf(cls, xw, yw, cx, cy, r, angle)) - np.float32(width / 2)
    pressure = np.float32(rng.uniform(0.85, 1.0))
    ink = np.full(3, rng.uniform(*INKS[ink_name]), np.float32)
    paper[:, rows, cols] = blend(paper[:, rows, cols], ink, coverage(sdf, px) * pressure)
    words.update(cls=cls, ink=ink_name, paper=paper_name, stroke="thin" if rel_width < 0.16 else "thick")
    return paper, words


def _cartoon_background(rng: np.random.Generator, size: int, fill_name: str) -> tuple[np.ndarray, str]:
    """A flat pastel, or a gradient from one pastel to another; and its caption word."""
    names = tuple(c for c in CARTOON_BGS if c != fill_name)
    bg_name = pick(rng, names)
    img = solid(size, pastel(bg_name, rng))
    if rng.random() < 0.5:
        return img, f"plain {bg_name}"
    x, y = grid(size)
    a, _ = rotate(x, y, rng.uniform(0, 2 * np.pi))
    ramp = np.clip(a * np.float32(0.5) + np.float32(0.5), 0, 1)
    return blend(img, pastel(pick(rng, names), rng), ramp), f"{bg_name} gradient"


def _snap(t: np.ndarray, block: float) -> np.ndarray:
    """Coordinates moved to the centre of their block: shapes drawn with them come out blocky."""
    q = np.float32(block)
    return (np.floor((t + 1) / q) + np.float32(0.5)) * q - 1


def _stitches(xs: np.ndarray, ys: np.ndarray, rng: np.random.Generator, cx: float, cy: float,
              r: float, px: float) -> tuple[np.ndarray, np.ndarray]:
    """Embroidery: the fill as a lattice of thread dots, the outline as a running stitch."""
    a, b = rotate(xs, ys, math.pi / 4)
    p = np.float32(6 * px)
    du, dv = frac(a / p + np.float32(rng.uniform())) - 0.5, frac(b / p + np.float32(rng.uniform())) - 0.5
    dots = (du * du + dv * dv < np.float32(0.13)).astype(np.float32)
    n = max(8, round(2 * math.pi * r / (7 * px)))  # stitches around the outline
    theta = np.arctan2(ys - np.float32(cy), xs - np.float32(cx))
    dashes = frac(theta * np.float32(n / (2 * np.pi)) + np.float32(rng.uniform())) < 0.7
    return np.float32(0.3) + np.float32(0.7) * dots, dashes.astype(np.float32)


def _render_cartoon(cls: str, rng: np.random.Generator, size: int) -> tuple[np.ndarray, dict[str, str]]:
    """A rendition: flat saturated fill, thick black outline; as a cartoon, pixel art or embroidery."""
    x, y = grid(size)
    words, cx, cy, r, angle = layout(rng, cls)
    style, fill_name = pick(rng, CARTOON_STYLES), pick(rng, CARTOON_FILLS)
    img, words["bg"] = _cartoon_background(rng, size, fill_name)
    px = 2 / size
    block = (4 if words["size"] == "large" else 2) * px  # pixel art: 2 x 2 or 1 x 1 output pixels
    width = max(rng.uniform(0.14, 0.22) * r, 3 * px)
    rows, cols = window(size, cx, cy, SHAPE_EXTENT * r + 2 * width + block + 2 * px)
    xs, ys = x[:, cols], y[rows, :]
    edge, shift = px, 0.0
    if style == "pixel art":  # hard-edged blocks, the outline around the shape rather than on it
        xs, ys, edge, shift = _snap(xs, block), _snap(ys, block), 1e-4, width / 2
    sdf = shape_sdf(cls, xs, ys, cx, cy, r, angle)
    fill = coverage(sdf, edge)
    line = coverage(np.abs(sdf - np.float32(shift)) - np.float32(width / 2), edge)
    if style == "embroidered":
        dots, dashes = _stitches(xs, ys, rng, cx, cy, r, px)
        fill, line = fill * dots, line * dashes
    region = blend(img[:, rows, cols], saturate(color(fill_name, rng), 1.3), fill)
    img[:, rows, cols] = blend(region, OUTLINE, line)
    words.update(cls=cls, color=fill_name, style=style)
    return img, words


SKETCH_KIND = register_kind(ImageKind(
    "sketch", _render_sketch, SHAPES, pixel_noise=0.012, lighting=0.03,
    templates=(
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
    vocabulary={"size": SIZES, "pos": POSITION_WORDS, "ink": tuple(INKS), "paper": tuple(PAPERS),
                "stroke": ("thin", "thick")},
))
CARTOON_KIND = register_kind(ImageKind(
    "cartoon", _render_cartoon, SHAPES, pixel_noise=0.01, lighting=0.02,
    templates=(
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
    vocabulary={"size": SIZES, "pos": POSITION_WORDS, "style": CARTOON_STYLES, "color": CARTOON_FILLS,
                "bg": tuple(f"plain {c}" for c in CARTOON_BGS) + tuple(f"{c} gradient" for c in CARTOON_BGS)},
))
