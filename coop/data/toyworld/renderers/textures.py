"""Textures: kind "textures" (toy_textures, like DTD), a pattern mask in two contrasting named colours."""
from __future__ import annotations

import numpy as np

from coop.data.toyworld.canvas import blend, grid, solid
from coop.data.toyworld.kinds import ImageKind, register_kind
from coop.data.toyworld.palette import COLORS, color, luma, pick
from coop.data.toyworld.patterns import PATTERNS

# colours that stay easy to tell from each colour by brightness, precomputed once
TEXTURE_PARTNERS = {
    a: tuple(b for b in COLORS if abs(luma(COLORS[a]) - luma(COLORS[b])) > 0.35) for a in COLORS
}


def _render_textures(cls: str, rng: np.random.Generator, size: int) -> tuple[np.ndarray, dict[str, str]]:
    x, y = grid(size)
    c1 = pick(rng, tuple(COLORS))
    c2 = pick(rng, TEXTURE_PARTNERS[c1])
    scale = rng.random()
    mask = PATTERNS[cls](x, y, rng, scale)
    img = blend(solid(size, color(c2, rng)), color(c1, rng), mask.astype(np.float32))
    return img, {"cls": cls, "c1": c1, "c2": c2, "scale": "fine" if scale < 0.5 else "coarse"}


TEXTURES_KIND = register_kind(ImageKind(
    "textures", _render_textures, tuple(PATTERNS), pixel_noise=0.02, lighting=0.1,
    templates=(
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
    vocabulary={"c1": tuple(COLORS), "c2": tuple(COLORS), "scale": ("fine", "coarse")},
))
