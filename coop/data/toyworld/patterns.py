"""Texture patterns: each maps (x, y, rng, scale in [0, 1]) to a boolean mask (PATTERNS, by texture name).

toy_textures draws them in two contrasting colours; photo backgrounds reuse some at low contrast.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np

from coop.data.toyworld.canvas import frac, rotate


def _striped(x: np.ndarray, y: np.ndarray, rng: np.random.Generator, scale: float) -> np.ndarray:
    a, _ = rotate(x, y, rng.uniform(0, np.pi))
    p = 0.30 + 0.25 * scale
    return frac(a / np.float32(p) + np.float32(rng.uniform())) < np.float32(rng.uniform(0.4, 0.6))


def _wavy(x: np.ndarray, y: np.ndarray, rng: np.random.Generator, scale: float) -> np.ndarray:
    a, b = rotate(x, y, rng.uniform(0, np.pi))
    p = 0.36 + 0.2 * scale
    q, amp = p * rng.uniform(2.2, 3.2), p * rng.uniform(0.3, 0.42)
    a = a + np.float32(amp) * np.sin(b * np.float32(2 * np.pi / q) + np.float32(rng.uniform(0, 7)))
    return frac(a / np.float32(p) + np.float32(rng.uniform())) < 0.5


def _zigzagged(x: np.ndarray, y: np.ndarray, rng: np.random.Generator, scale: float) -> np.ndarray:
    a, b = rotate(x, y, rng.uniform(0, np.pi))
    p = 0.36 + 0.2 * scale
    q, amp = p * rng.uniform(1.1, 1.5), p * rng.uniform(0.5, 0.7)
    tri = 2 * np.abs(2 * frac(b / np.float32(q) + np.float32(rng.uniform())) - 1) - 1
    return frac((a + np.float32(amp) * tri) / np.float32(p) + np.float32(rng.uniform())) < 0.5


def _checkered(x: np.ndarray, y: np.ndarray, rng: np.random.Generator, scale: float) -> np.ndarray:
    a, b = rotate(x, y, rng.uniform(0, np.pi / 2))
    p = np.float32(0.25 + 0.2 * scale)
    half = np.float32(0.5) / p  # one period of frac(a * half) spans two cells
    return (frac(a * half + np.float32(rng.uniform())) < 0.5) ^ (
        frac(b * half + np.float32(rng.uniform())) < 0.5)


def _dotted(x: np.ndarray, y: np.ndarray, rng: np.random.Generator, scale: float) -> np.ndarray:
    a, b = rotate(x, y, rng.uniform(0, np.pi / 2))
    p = np.float32(0.32 + 0.18 * scale)
    rad = np.float32(rng.uniform(0.22, 0.32))
    bv = b / p + np.float32(rng.uniform())
    shift = np.float32(0.5 * rng.integers(2)) * (frac(bv * 0.5) >= 0.5)  # hex lattice half the time
    au = frac(a / p + np.float32(rng.uniform()) + shift) - 0.5
    return au * au + (frac(bv) - 0.5) ** 2 < rad * rad


def _grid_lines(x: np.ndarray, y: np.ndarray, rng: np.random.Generator, scale: float) -> np.ndarray:
    a, b = rotate(x, y, rng.uniform(-0.17, 0.17))  # kept near axis-aligned: unlike crosshatched
    p = np.float32(0.36 + 0.2 * scale)
    w = np.float32(rng.uniform(0.13, 0.2))
    return (frac(a / p + np.float32(rng.uniform())) < w) | (frac(b / p + np.float32(rng.uniform())) < w)


def _crosshatched(x: np.ndarray, y: np.ndarray, rng: np.random.Generator, scale: float) -> np.ndarray:
    base, half = rng.uniform(0, np.pi), rng.uniform(0.5, 0.65)  # two line families ~60-75 deg apart
    a1, _ = rotate(x, y, base + half)
    a2, _ = rotate(x, y, base - half)
    p = np.float32(0.2 + 0.1 * scale)
    w = np.float32(rng.uniform(0.28, 0.36))
    return (frac(a1 / p + np.float32(rng.uniform())) < w) | (frac(a2 / p + np.float32(rng.uniform())) < w)


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
