"""Flowers: kind "flowers" (toy_flowers, fine-grained like Flowers102), rings of petals around a disc.

Each class is a design (FLOWER_DESIGNS): its petal rings and the size of its centre disc.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from coop.data.toyworld.canvas import blend, grid, solid
from coop.data.toyworld.geometry import SIZES
from coop.data.toyworld.kinds import ImageKind, register_kind
from coop.data.toyworld.palette import COLORS, color, dist, pick

PETAL_COLORS = ("red", "pink", "purple", "yellow", "white", "orange", "blue")
CENTER_COLORS = ("yellow", "orange", "brown", "black")
FLOWER_BACKGROUNDS: dict[str, tuple[float, float, float]] = {
    "green leaves": (0.22, 0.45, 0.18),
    "dark foliage": (0.09, 0.24, 0.11),
    "blue sky": (0.50, 0.68, 0.92),
    "brown soil": (0.40, 0.27, 0.16),
    "gray stone": (0.50, 0.50, 0.49),
}
# petal colours that stay easy to tell from each background, precomputed once
PETALS_FOR_BG = {
    bg: tuple(c for c in PETAL_COLORS if dist(c, bg, {**COLORS, **FLOWER_BACKGROUNDS}) > 0.4)
    for bg in FLOWER_BACKGROUNDS
}


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
    x, y = grid(size)
    bg_name = pick(rng, tuple(FLOWER_BACKGROUNDS))
    petal_name = pick(rng, PETALS_FOR_BG[bg_name])
    center_name = pick(rng, tuple(c for c in CENTER_COLORS if c != petal_name))
    img = solid(size, color(bg_name, rng, FLOWER_BACKGROUNDS, 0.03))
    radius = rng.uniform(0.55, 0.88)
    room = max(0.0, 1 - 0.85 * radius)
    cx, cy = rng.uniform(-room, room), rng.uniform(-room, room)
    angle = rng.uniform(0, 2 * np.pi)
    dx, dy = x - np.float32(cx), y - np.float32(cy)
    r = np.sqrt(dx * dx + dy * dy) / np.float32(radius)  # in flower radii
    theta = np.arctan2(dy, dx)
    petal_c = color(petal_name, rng)
    rings, disc = FLOWER_DESIGNS[cls]
    shade = 0.7 + 0.4 * np.minimum(r, 1)  # petals darker towards the centre
    for k, ring in enumerate(rings):
        tone = petal_c * np.float32(0.72 if k else 1.0)  # inner ring of a rose in a deeper shade
        mask = _petals(r, theta, ring, angle).astype(np.float32)
        img = blend(img, tone[:, None, None] * shade, mask)
    disc_r = disc * rng.uniform(0.9, 1.1)
    img = blend(img, color(center_name, rng), (r < np.float32(disc_r)).astype(np.float32))
    words = {"cls": cls, "color": petal_name, "center": center_name, "bg": bg_name,
             "size": "small" if radius < 0.7 else "large"}
    return img, words


FLOWERS_KIND = register_kind(ImageKind(
    "flowers", _render_flowers, tuple(FLOWER_DESIGNS), pixel_noise=0.02, lighting=0.15,
    templates=(
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
    vocabulary={"size": SIZES, "color": PETAL_COLORS, "center": CENTER_COLORS, "bg": tuple(FLOWER_BACKGROUNDS)},
))
