"""Image loading for feature extraction and training."""
from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image, UnidentifiedImageError

from coop.data.datasets import DatasetError, Item


def load_image(path: Path) -> Image.Image:
    try:
        with Image.open(path) as im:
            return im.convert("RGB")
    except FileNotFoundError:
        raise DatasetError(f"Image not found: {path}. The dataset is incomplete; re-extract or re-download it.") from None
    except (UnidentifiedImageError, OSError) as e:
        raise DatasetError(f"Image cannot be decoded: {path} ({e}). Replace the file or remove it from the split.") from None


class ImageDataset(torch.utils.data.Dataset):
    """(transformed image, label) pairs; images may be preloaded once when the set is small."""

    def __init__(self, root: str | Path, items: list[Item], transform, preload: bool = False):
        self.root = Path(root)
        self.items = items
        self.transform = transform
        self.cache = [load_image(self.root / it.path) for it in items] if preload else None

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        img = self.cache[i] if self.cache is not None else load_image(self.root / self.items[i].path)
        return self.transform(img), self.items[i].label
