"""CoOp's train and test image transforms (docs/PROTOCOL.md), from the model's open_clip preprocess config.

The size, mean, std, interpolation and resize mode are the model's own, as open_clip resolves them
(`model.visual.preprocess_cfg`: its defaults, OpenAI's mean/std and bicubic, under the pretrained tag's values
or those of the model's config file); `load_clip` puts them on `Clip.preprocess`. The train transform is
CoOp's augmentation (random resized crop, flip); the test transform is open_clip's (resize, center crop).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torchvision import transforms as T
from torchvision.transforms import functional as F

from coop.defaults import CROP_MIN  # noqa: F401  (re-exported)


@dataclass(frozen=True)
class Preprocess:
    """open_clip's PreprocessCfg, normalised (tuples of floats, an int size for square inputs)."""
    size: int | tuple[int, int]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str = "bicubic"   # bicubic | bilinear | random (bicubic here, as in open_clip's eval transform)
    resize_mode: str = "shortest"    # shortest | longest | squash (test transform)
    fill_color: int = 0

    @classmethod
    def from_open_clip(cls, cfg) -> "Preprocess":
        """From a PreprocessCfg or its dict (e.g. `model.visual.preprocess_cfg`)."""
        from dataclasses import asdict, is_dataclass

        d = asdict(cfg) if is_dataclass(cfg) else dict(cfg)
        size = d["size"]
        if isinstance(size, (tuple, list)):
            size = int(size[0]) if len(size) == 1 or size[0] == size[1] else (int(size[0]), int(size[1]))
        else:
            size = int(size)

        def three(v) -> tuple[float, float, float]:
            return tuple(float(x) for x in (v if isinstance(v, (tuple, list)) else (v, v, v)))

        return cls(size, three(d["mean"]), three(d["std"]), d.get("interpolation") or "bicubic",
                   d.get("resize_mode") or "shortest", int(d.get("fill_color") or 0))

    @classmethod
    def default(cls, size: int | tuple[int, int]) -> "Preprocess":
        """open_clip's default preprocessing (what a model without a tag or config values gets) at `size`."""
        from open_clip.transform import PreprocessCfg

        return cls.from_open_clip(PreprocessCfg(size=size))

    @property
    def hw(self) -> tuple[int, int]:
        return (self.size, self.size) if isinstance(self.size, int) else self.size

    @property
    def mode(self) -> T.InterpolationMode:
        return T.InterpolationMode.BILINEAR if self.interpolation == "bilinear" else T.InterpolationMode.BICUBIC


def as_preprocess(pp: Preprocess | int) -> Preprocess:
    """An int is a size with open_clip's default preprocessing (kept for callers that pass clip.image_size)."""
    return pp if isinstance(pp, Preprocess) else Preprocess.default(int(pp))


def train_transform(pp: Preprocess | int, crop_min: float = CROP_MIN) -> T.Compose:
    """The official augmentation; `crop_min` is the smallest crop area (a fraction of the image)."""
    pp = as_preprocess(pp)
    return T.Compose([
        T.RandomResizedCrop(pp.size, scale=(crop_min, 1.0), ratio=(3 / 4, 4 / 3), interpolation=pp.mode),
        T.RandomHorizontalFlip(p=0.5),
        T.ToTensor(),
        T.Normalize(pp.mean, pp.std),
    ])


def view_params(transform: T.Compose, img) -> tuple[int, int, int, int, bool]:
    """Draw one augmentation of `img` from torch's global RNG without rendering it: the crop (i, j, h, w) and the
    flip of a `train_transform`, drawn exactly as its random steps draw them (the same calls in the same order),
    so `render_view(transform, img, view_params(transform, img))` equals `transform(img)` for the same RNG state.
    Drawing costs a few microseconds; rendering is the part worth skipping for a view already encoded."""
    crop, flip = transform.transforms[0], transform.transforms[1]
    i, j, h, w = crop.get_params(img, crop.scale, crop.ratio)
    return i, j, h, w, bool(torch.rand(1) < flip.p)


def render_view(transform: T.Compose, img, params: tuple[int, int, int, int, bool]) -> torch.Tensor:
    """The pixels of the view `params` (`view_params`) of `img` under `transform`: its crop, flip and the
    deterministic steps after them (to tensor, normalise)."""
    crop, _, *rest = transform.transforms
    i, j, h, w, flipped = params
    out = F.resized_crop(img, i, j, h, w, crop.size, crop.interpolation, antialias=crop.antialias)
    if flipped:
        out = F.hflip(out)
    for step in rest:
        out = step(out)
    return out


def test_transform(pp: Preprocess | int) -> T.Compose:
    """open_clip's eval transform for the resize mode: shortest side + center crop (the default), squash, or
    longest side + pad."""
    pp = as_preprocess(pp)
    h, w = pp.hw
    if pp.resize_mode == "squash":
        resize = [T.Resize((h, w), interpolation=pp.mode)]
    elif pp.resize_mode == "longest":
        from open_clip.transform import CenterCropOrPad, ResizeKeepRatio

        resize = [ResizeKeepRatio(pp.size, interpolation=pp.mode, longest=1),
                  CenterCropOrPad(pp.size, fill=pp.fill_color)]
    elif h == w:
        resize = [T.Resize(h, interpolation=pp.mode), T.CenterCrop(h)]
    else:
        from open_clip.transform import ResizeKeepRatio

        resize = [ResizeKeepRatio((h, w), interpolation=pp.mode), T.CenterCrop((h, w))]
    return T.Compose([*resize, T.ToTensor(), T.Normalize(pp.mean, pp.std)])


def describe(transform: T.Compose) -> str:
    """A stable text key for caches, so features of different transforms never mix."""
    return " | ".join(repr(t).replace("\n", "") for t in transform.transforms)
