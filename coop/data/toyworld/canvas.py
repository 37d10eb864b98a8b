"""The pixel grid and the drawing primitives: coordinates, blending, coverage, windows, light, downsampling.

Coordinates are in image units: pixel centres in [-1, 1], x right and y up. Images are built
channel-first (3, S, S): broadcasting over a trailing axis of length 3 is several times slower in numpy.
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from coop.data.toyworld.palette import RGB


@lru_cache(maxsize=8)
def grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates in [-1, 1], x right and y up, as a (1, S) row and an (S, 1) column."""
    t = (np.arange(size, dtype=np.float32) + 0.5) / size * 2 - 1
    x, y = t[None, :].copy(), -t[:, None].copy()
    x.setflags(write=False)
    y.setflags(write=False)
    return x, y


def rotate(x: np.ndarray, y: np.ndarray, angle: float) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates along (a) and across (b) the direction `angle`."""
    c, s = np.float32(math.cos(angle)), np.float32(math.sin(angle))
    return x * c + y * s, y * c - x * s


def frac(t: np.ndarray) -> np.ndarray:
    return t - np.floor(t)


def smooth_field(x: np.ndarray, y: np.ndarray, rng: np.random.Generator, amp: float) -> np.ndarray:
    """Low-frequency multiplicative variation around 1 (lighting, paper, foliage)."""
    f1, f2 = rng.uniform(1.0, 3.0, 2)
    p1, p2 = rng.uniform(0, 2 * np.pi, 2)
    return 1 + np.float32(amp) * np.sin(np.float32(f1) * x + np.float32(p1)) * np.cos(
        np.float32(f2) * y + np.float32(p2))


def blend(base: np.ndarray, color: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Paint `color` ((3,) or (3, h, w)) over `base` (3, h, w) with coverage `alpha` (h, w)."""
    if color.ndim == 1:
        color = color[:, None, None]
    return base + (color - base) * alpha


def solid(size: int, color: RGB) -> np.ndarray:
    """A (3, size, size) image of one colour."""
    out = np.empty((3, size, size), np.float32)
    out[:] = color[:, None, None]
    return out


def window(size: int, cx: float, cy: float, extent: float) -> tuple[slice, slice]:
    """Rows and columns of the pixels within `extent` image units of (cx, cy): only those are drawn."""
    def lo(c: float) -> int:
        return min(size - 1, max(0, int(math.floor((c + 1) / 2 * size))))

    def hi(c: float) -> int:
        return max(1, min(size, int(math.ceil((c + 1) / 2 * size))))

    return slice(lo(-cy - extent), hi(-cy + extent)), slice(lo(cx - extent), hi(cx + extent))


def coverage(sdf: np.ndarray, px: float) -> np.ndarray:
    """Anti-aliased coverage in [0, 1] of the region sdf < 0 (px = one pixel in image units)."""
    return np.clip(0.5 - sdf / np.float32(px), 0, 1)


def downsample(img: np.ndarray, k: int) -> np.ndarray:
    """Box filter on a (3, S, S) image: mean of each k x k block (faster than mean(axis=...))."""
    out = sum(img[:, i::k, j::k] for i in range(k) for j in range(k))
    return out * np.float32(1 / (k * k))
