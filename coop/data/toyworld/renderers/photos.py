"""Photos of the shapes: kinds "shapes" (toy_shapes), "v2" (a fresh sample, like ImageNet-V2) and "hard"
(bad photos among distractors, like ImageNet-A).

A photo is a shaded shape on a plain or (at low contrast) patterned background; `_Photo` says how it is
taken. The hard kind adds clutter, distractor shapes, an occluding bar or a crop, and low contrast.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from coop.data.toyworld.canvas import blend, coverage, grid, rotate, solid, window
from coop.data.toyworld.geometry import MAX_ROTATION, POSITION_WORDS, SHAPE_EXTENT, SIZES, layout, shape_sdf
from coop.data.toyworld.kinds import ImageKind, register_kind
from coop.data.toyworld.palette import BG_COLORS, BG_FOR_FILL, COLORS, color, luma, pick, saturate
from coop.data.toyworld.patterns import PATTERNS
from coop.data.toyworld.registry import SHAPES

BG_PATTERNS = ("striped", "dotted", "checkered", "grid", "wavy", "speckled")
HARD_FLAWS = ("occluded", "cropped", "faded")  # what, besides noise and clutter, makes it hard
HARD_CONTRAST = (0.5, 0.7)  # scene contrast kept in hard examples; faded ones keep 0.65 of it


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
    bg_c = color(bg_name, rng, BG_COLORS)
    if rng.random() >= photo.pattern_p:
        return solid(size, bg_c), f"plain {bg_name}"
    pattern = pick(rng, BG_PATTERNS)
    x, y = grid(size)
    mask = PATTERNS[pattern](x, y, rng, rng.random())
    # the same pattern as toy_textures, but at low contrast
    other = bg_c * np.float32(0.84) if luma(bg_c) > 0.4 else bg_c * np.float32(0.85) + np.float32(0.12)
    if photo.clutter != 1:
        other = np.clip(bg_c + (other - bg_c) * np.float32(photo.clutter), 0, 1)
    return blend(solid(size, bg_c), other, mask.astype(np.float32)), pattern


def _paint_shape(img: np.ndarray, cls: str, rng: np.random.Generator, cx: float, cy: float,
                 r: float, angle: float, fill_name: str, saturation: float = 1.0,
                 opacity: float = 1.0) -> None:
    """Paint a shaded shape onto img (3, S, S) in place."""
    size = img.shape[-1]
    x, y = grid(size)
    rows, cols = window(size, cx, cy, SHAPE_EXTENT * r + 4 / size)
    xs, ys = x[:, cols], y[rows, :]
    # photo-like shading: light falls across the shape from a random direction
    light = rng.uniform(0, 2 * np.pi)
    lx, ly = np.float32(math.cos(light)), np.float32(math.sin(light))
    shade = 1 + np.float32(0.22 / r) * ((xs - np.float32(cx)) * lx + (ys - np.float32(cy)) * ly)
    fg = saturate(color(fill_name, rng), saturation)[:, None, None] * shade
    alpha = coverage(shape_sdf(cls, xs, ys, cx, cy, r, angle), 2 / size)
    if opacity != 1:
        alpha *= np.float32(opacity)
    img[:, rows, cols] = blend(img[:, rows, cols], fg, alpha)


def _render_shapes(cls: str, rng: np.random.Generator, size: int,
                   photo: _Photo = PHOTO) -> tuple[np.ndarray, dict[str, str]]:
    words, cx, cy, r, angle = layout(rng, cls)
    fill_name = pick(rng, tuple(COLORS))
    bg_name = pick(rng, BG_FOR_FILL[fill_name])
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
        other = pick(rng, tuple(s for s in SHAPES if s != cls))
        r = rng.uniform(0.14, 0.24)
        cx, cy = rng.uniform(-0.85, 0.85, 2)
        angle = math.radians(rng.uniform(-1, 1) * MAX_ROTATION[other])
        _paint_shape(img, other, rng, cx, cy, r, angle, pick(rng, tuple(COLORS)), opacity=0.7)


def _to_border(rng: np.random.Generator, cx: float, cy: float, r: float) -> tuple[float, float]:
    """Move the centre towards a random border so that the image crops 20-50% of a radius off."""
    edge = (1 - r * rng.uniform(0.5, 0.8)) * (1 if rng.random() < 0.5 else -1)
    return (edge, cy) if rng.random() < 0.5 else (cx, edge)


def _occlude(img: np.ndarray, rng: np.random.Generator, cx: float, cy: float, r: float,
             fill_name: str) -> np.ndarray:
    """A bar (a post, a branch) across the shape, hiding a quarter to a half of it."""
    size = img.shape[-1]
    x, y = grid(size)
    _, b = rotate(x - np.float32(cx), y - np.float32(cy), rng.uniform(0, np.pi))
    half, offset = r * rng.uniform(0.25, 0.4), r * rng.uniform(-0.5, 0.5)
    bar = coverage(np.abs(b - np.float32(offset)) - np.float32(half), 2 / size)
    return blend(img, color(pick(rng, BG_FOR_FILL[fill_name]), rng, BG_COLORS), bar)


def _render_hard(cls: str, rng: np.random.Generator, size: int) -> tuple[np.ndarray, dict[str, str]]:
    """A bad photo: clutter, distractors, a hidden or cropped shape, low contrast (noise comes later)."""
    words, cx, cy, r, angle = layout(rng, cls)
    flaw = pick(rng, HARD_FLAWS)
    fill_name = pick(rng, tuple(COLORS))
    img, _ = _photo_background(rng, size, pick(rng, BG_FOR_FILL[fill_name]), PHOTO_HARD)
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


SHAPES_KIND = register_kind(ImageKind(
    "shapes", _render_shapes, SHAPES, pixel_noise=0.02, lighting=0.08,
    templates=(
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
    vocabulary={"size": SIZES, "pos": POSITION_WORDS, "color": tuple(COLORS),
                "bg": BG_PATTERNS + tuple(f"plain {c}" for c in BG_COLORS)},
))
# photos too, captioned like toy_shapes'
V2_KIND = register_kind(ImageKind(
    "v2", _render_v2, SHAPES, pixel_noise=0.025, lighting=0.1,
    templates=SHAPES_KIND.templates, vocabulary=SHAPES_KIND.vocabulary,
))
HARD_KIND = register_kind(ImageKind(
    "hard", _render_hard, SHAPES, pixel_noise=0.035, lighting=0.08,
    templates=(
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
    vocabulary={"size": SIZES, "color": tuple(COLORS), "flaw": HARD_FLAWS},
))
