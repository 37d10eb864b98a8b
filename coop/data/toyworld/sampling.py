"""Drawing one image: its kind's renderer at SUPERSAMPLE times the size, box-downsampled, lit unevenly
and noised; and the seeds of each dataset image's random stream.

Each image's random stream is seeded from (seed, dataset, split, class, index), so the same arguments
give the same pixels (on the same numpy build and CPU family).
"""
from __future__ import annotations

import zlib

import numpy as np

from coop.data.toyworld import renderers as _renderers  # noqa: F401  (registers the kinds read below)
from coop.data.toyworld.canvas import downsample, grid, smooth_field
from coop.data.toyworld.kinds import KINDS, ImageKind
from coop.data.toyworld.registry import SPLITS, TOY_DATASETS, part_of

SUPERSAMPLE = 2


def draw_image(kind: ImageKind, cls: str, rng: np.random.Generator,
               image_size: int = 32) -> tuple[np.ndarray, dict[str, str]]:
    """Draw one image of class `cls` (one of `kind.classes`): (uint8 array (H, W, 3), caption words)."""
    img, words = kind.render(cls, rng, image_size * SUPERSAMPLE)
    img = downsample(img, SUPERSAMPLE)
    x, y = grid(image_size)
    img *= smooth_field(x, y, rng, kind.lighting)  # low-frequency, so fine at low res
    img += rng.normal(0, kind.pixel_noise, img.shape).astype(np.float32)
    img = np.clip(img * 255 + 0.5, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(img.transpose(1, 2, 0)), words


def sample_image(name: str, label: int, rng: np.random.Generator,
                 image_size: int = 32) -> tuple[np.ndarray, dict[str, str]]:
    """Draw one image of class `label` of dataset `name`: (uint8 array (H, W, 3), caption words)."""
    spec = TOY_DATASETS[name]
    if spec.parts:  # drawn as the dataset the class comes from draws it
        cls = spec.classnames[label]
        part = part_of(spec, cls)
        return sample_image(part, TOY_DATASETS[part].classnames.index(cls), rng, image_size)
    return draw_image(KINDS[spec.kind], spec.classnames[label], rng, image_size)


def render_image(name: str, label: int, seed: int | list[int] = 0, image_size: int = 32) -> np.ndarray:
    """One (image_size, image_size, 3) uint8 image of class `label` of dataset `name`."""
    return sample_image(name, label, np.random.default_rng(seed), image_size)[0]


def item_seed(seed: int, name: str, split: str, label: int, index: int, attempt: int = 0) -> list[int]:
    """Entropy for one image; crc32, unlike hash(), is not salted per process."""
    return [seed, zlib.crc32(name.encode()), SPLITS.index(split), label, index, attempt]
