"""Named colours, the colour helpers every renderer shares, and random picks from a list of options.

Colours are float32 (3,) arrays in [0, 1]; each image jitters its named colours a little.
"""
from __future__ import annotations

import numpy as np

RGB = np.ndarray  # float32 (3,) colour in [0, 1]

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


def color(name: str, rng: np.random.Generator, table=COLORS, jitter: float = 0.04) -> RGB:
    """A named colour with a little per-image jitter."""
    c = np.asarray(table[name], np.float32) + rng.uniform(-jitter, jitter, 3).astype(np.float32)
    return np.clip(c, 0.0, 1.0)


def saturate(c: RGB, k: float) -> RGB:
    """Scale a colour's distance from its own grey by k (k < 1 pales it, k > 1 deepens it)."""
    if k == 1:
        return c
    grey = np.float32(luma(c))
    return np.clip(grey + (c - grey) * np.float32(k), 0.0, 1.0)


def pastel(name: str, rng: np.random.Generator) -> RGB:
    return color(name, rng) * np.float32(0.45) + np.float32(0.55)


def dist(a: str, b: str, table=BG_COLORS) -> float:
    return float(np.linalg.norm(np.subtract(table[a], table[b])))


def luma(rgb) -> float:
    r, g, b = rgb
    return 0.299 * r + 0.587 * g + 0.114 * b


# background colours that stay easy to tell from each fill colour, precomputed once
BG_FOR_FILL = {f: tuple(c for c in BG_COLORS if dist(c, f) > 0.45) for f in COLORS}


def pick(rng: np.random.Generator, options) -> str:
    """One of `options`, drawn uniformly."""
    return options[int(rng.integers(len(options)))]
