"""The toy datasets: their classes, zero-shot templates and the image kind that draws each (TOY_DATASETS).

Subsets keep toy_shapes' class names and order with labels 0..n-1, as ImageNet-A/-R do; classes are
matched to a source model by name. Nothing here draws: a spec names its image kind (see `kinds`).
"""
from __future__ import annotations

from dataclasses import dataclass

from coop.data.specs import zhou_split_file

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class ToySpec:
    """One generated dataset: folder name, split-file name, zero-shot template and classes."""

    name: str  # folder under the data root
    split_name: str  # split file is split_zhou_<split_name>.json
    template: str  # hand-crafted zero-shot prompt, "{}" = class name
    classnames: tuple[str, ...]
    kind: str  # the registered image kind that draws and captions it (kinds.KINDS), or "union"
    attribute: str  # what the label is about: "shape" | "texture" | "flower" | "object"
    source: str | None = None  # the dataset this one is a shifted rendering of (evaluation only)
    parts: tuple[str, ...] = ()  # kind "union": the datasets whose classes (in order) this one gathers

    @property
    def split_file(self) -> str:
        return zhou_split_file(self.split_name)


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


def part_of(spec: ToySpec, cls: str) -> str:
    """The dataset of a union (`spec.parts`) that class `cls` comes from."""
    return next(p for p in spec.parts if cls in TOY_DATASETS[p].classnames)
