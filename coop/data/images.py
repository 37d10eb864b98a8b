"""Image loading for feature extraction and training."""
from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image

from coop.data.datasets import DatasetError, Item


_RESTORE = ("Restore it: re-download and re-extract the dataset (`coop data prepare <dataset>`; a toy dataset: "
            "regenerate it with `coop data toy --dataset <dataset>`), or copy an intact version of the file over "
            "it, or delete the file and remove its entry from the split file. Results already computed are kept.")


def load_image(path: Path) -> Image.Image:
    try:
        with Image.open(path) as im:
            return im.convert("RGB")
    except FileNotFoundError:
        raise DatasetError(f"Image not found: {path}. The dataset is incomplete. {_RESTORE}") from None
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as e:
        # UnidentifiedImageError and "image file is truncated" are OSErrors; some decoders raise the others
        raise DatasetError(
            f"Image cannot be decoded: {path} ({type(e).__name__}: {e}). The file is damaged or not an image "
            f"(an interrupted download or copy?). {_RESTORE}"
        ) from None


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
