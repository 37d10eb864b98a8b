"""CoOp's train and test image transforms (PROTOCOL.md), at the model's input size."""
from __future__ import annotations

from torchvision import transforms as T

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
BICUBIC = T.InterpolationMode.BICUBIC


from coop.defaults import CROP_MIN  # noqa: F401  (re-exported)


def train_transform(size: int, crop_min: float = CROP_MIN) -> T.Compose:
    """The official augmentation; `crop_min` is the smallest crop area (a fraction of the image)."""
    return T.Compose([
        T.RandomResizedCrop(size, scale=(crop_min, 1.0), ratio=(3 / 4, 4 / 3), interpolation=BICUBIC),
        T.RandomHorizontalFlip(p=0.5),
        T.ToTensor(),
        T.Normalize(CLIP_MEAN, CLIP_STD),
    ])


def test_transform(size: int) -> T.Compose:
    return T.Compose([
        T.Resize(size, interpolation=BICUBIC),
        T.CenterCrop(size),
        T.ToTensor(),
        T.Normalize(CLIP_MEAN, CLIP_STD),
    ])


def describe(transform: T.Compose) -> str:
    """A stable text key for caches, so features of different transforms never mix."""
    return " | ".join(repr(t).replace("\n", "") for t in transform.transforms)
