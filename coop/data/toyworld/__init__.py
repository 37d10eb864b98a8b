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

Every image comes with a caption naming its attributes (and its style, for the renditions), so that
a tiny CLIP can be pretrained on the same world. Images are drawn at twice the target size with numpy
coordinate grids and box-downsampled.

The package, from the bottom up:

    registry    the toy datasets (ToySpec, TOY_DATASETS) and their class lists
    palette     named colours and colour helpers
    canvas      the pixel grid and drawing primitives
    geometry    the shapes' signed distance functions and layout
    patterns    texture masks
    kinds       ImageKind: one record per kind of image (renderer, classes, noise, captions), and KINDS
    renderers/  the renderers, one module per family, each registering its kinds
    captions    captions from a kind's templates, with occasional wrong words
    sampling    one image from a kind or a dataset; per-image seeds
    disk        `generate`: a dataset written to disk atomically (replacing one of ours), and its checks
"""
from __future__ import annotations

from coop.data.toyworld import renderers  # noqa: F401  (first: registers every image kind in KINDS)
from coop.data.toyworld.captions import CAPTION_NOISE, fill_template, make_caption, vocabulary
from coop.data.toyworld.disk import (
    FORMAT_VERSION, GENERATOR, class_folder, generate, is_complete, is_ours, split_path,
)
from coop.data.toyworld.geometry import SHAPE_EXTENT, shape_sdf
from coop.data.toyworld.kinds import CAPTION_TEMPLATES, KINDS, RENDERERS, ImageKind, register_kind
from coop.data.toyworld.patterns import PATTERNS
from coop.data.toyworld.registry import (
    CARTOON_SHAPES, FLOWERS, HARD_SHAPES, SHAPES, SPLITS, TEXTURES, TOY_DATASETS, UNION_PARTS, ToySpec,
)
from coop.data.toyworld.renderers.drawings import CARTOON_STYLES
from coop.data.toyworld.sampling import SUPERSAMPLE, draw_image, item_seed, render_image, sample_image

__all__ = [
    "CAPTION_NOISE", "CAPTION_TEMPLATES", "CARTOON_SHAPES", "CARTOON_STYLES", "FLOWERS", "FORMAT_VERSION",
    "GENERATOR", "HARD_SHAPES", "ImageKind", "KINDS", "PATTERNS", "RENDERERS", "SHAPES", "SHAPE_EXTENT", "SPLITS",
    "SUPERSAMPLE", "TEXTURES", "TOY_DATASETS", "ToySpec", "UNION_PARTS", "class_folder", "draw_image",
    "fill_template", "generate", "is_complete", "is_ours", "item_seed", "make_caption", "register_kind", "render_image",
    "sample_image", "shape_sdf", "split_path", "vocabulary",
]
