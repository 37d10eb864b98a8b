"""The augmented-view cache: training-augmented image features of a few-shot subset, one view per image per epoch.

The view of image i at epoch e is drawn from a generator seeded by (subset hash, epoch, i) alone, so it does not
matter which method computes it first, nor in which order: every method that trains on the subset with a frozen
image encoder (CoOp, the text bias / transform baselines) reads the same views, and one fresh view per image per
epoch keeps the distribution of on-the-fly augmentation. Views are encoded in large no-grad batches with the
image encoder in eval mode and kept as a safetensors file (features (E, N, D) float32) whose metadata names the
subset, backbone, weights and transform; a file with fewer epochs than needed is extended.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch

from coop.data.datasets import Item
from coop.data.fewshot import items_hash
from coop.data.images import load_image
from coop.features import CacheError, _reason
from coop.io import atomic_path
from coop.models.names import canonical_pretrained
from coop.models.transforms import CROP_MIN, Preprocess, describe, train_transform

FORMAT = "1"


def view_seed(subset: str, epoch: int, index: int) -> int:
    """The seed of image `index`'s augmentation at `epoch` for the subset with hash `subset`."""
    digest = hashlib.sha256(f"{subset}:{epoch}:{index}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def augment(images: list, transform, subset: str, epoch: int, start: int = 0) -> torch.Tensor:
    """The augmented views at `epoch` of `images`, the subset's images `start`, `start` + 1, ...:
    (N, 3, H, W). Torch's global RNG is left as it was."""
    out = []
    with torch.random.fork_rng(devices=[]):  # torchvision's random transforms draw from the global RNG
        for i, img in enumerate(images, start):
            torch.manual_seed(view_seed(subset, epoch, i))
            out.append(transform(img))
    return torch.stack(out)


@torch.no_grad()
def encode_views(clip, images: list, subset: str, epochs: range, device: str = "cpu",
                 batch_size: int = 256, crop_min: float = CROP_MIN) -> torch.Tensor:
    """Image features of the views of `epochs`: (len(epochs), N, D) float32 on the CPU. A view whose pixels equal
    one encoded before (e.g. the same flip of an uncropped image) reuses its features: the encoder is per image
    in eval mode, so only new pixels need it."""
    transform = train_transform(clip.preprocess, crop_min)
    model = clip.model
    was_training = model.training
    model.eval()
    dim = model.text_projection.shape[-1]
    out = torch.zeros(len(epochs), len(images), dim)
    seen: dict[bytes, torch.Tensor] = {}
    for k, epoch in enumerate(epochs):
        for start in range(0, len(images), batch_size):
            chunk = images[start:start + batch_size]
            x = augment(chunk, transform, subset, epoch, start)
            keys = [hashlib.blake2b(v.numpy().tobytes(), digest_size=16).digest() for v in x]
            new = list({key: i for i, key in enumerate(keys) if key not in seen}.items())
            if new:
                feats = model.encode_image(x[[i for _, i in new]].to(device)).float().cpu()
                seen.update((key, f) for (key, _), f in zip(new, feats))
            out[k, start:start + len(chunk)] = torch.stack([seen[key] for key in keys])
    model.train(was_training)
    return out


def view_keys(items: list[Item], subset: str, backbone: str, model: str, pretrained: str,
              preprocess: Preprocess | int, crop_min: float = CROP_MIN) -> dict:
    """What a view cache must match: the subset, the images, the encoder and its weights, the transform (from
    the model's preprocess config, `Clip.preprocess`; an int: that size with open_clip's defaults)."""
    pretrained = canonical_pretrained(pretrained, model)
    return {"format": FORMAT, "subset": subset, "items_hash": items_hash(items), "backbone": backbone,
            "model": model, "pretrained": pretrained, "transform": describe(train_transform(preprocess, crop_min))}


def check_views(path: str | Path, keys: dict) -> int:
    """The number of epochs of a matching view cache (metadata and shape only, no features read); a CacheError
    names what differs and the fix."""
    from safetensors import safe_open

    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = dict(f.metadata() or {})
            shape = f.get_slice("features").get_shape()
    except Exception as e:  # safetensors raises several types for corrupt files
        raise CacheError(f"Unreadable view cache {path} ({_reason(path, e)}); caches are never unpickled. Delete "
                         "it and rerun: it is recomputed from the images.") from None
    for key, value in keys.items():
        if meta.get(key) != str(value):
            raise CacheError(f"View cache {path} has {key}={meta.get(key)!r}, expected {value!r}: it belongs to "
                             "another subset, backbone or transform. Delete it and rerun.")
    if len(shape) != 3 or str(shape[0]) != meta.get("epochs"):
        raise CacheError(f"View cache {path} is inconsistent (shape {tuple(shape)}, epochs "
                         f"{meta.get('epochs')!r}). Delete it and rerun.")
    return int(shape[0])


def load_views(path: str | Path, keys: dict) -> tuple[torch.Tensor, int]:
    """(features (E, N, D), E) of a matching view cache (`check_views`)."""
    from safetensors.torch import load_file

    epochs = check_views(path, keys)
    return load_file(str(path))["features"], epochs


def save_views(path: str | Path, feats: torch.Tensor, keys: dict) -> None:
    from safetensors.torch import save_file

    meta = {**{k: str(v) for k, v in keys.items()}, "epochs": str(feats.shape[0])}
    with atomic_path(path) as tmp:
        save_file({"features": feats.contiguous()}, str(tmp), metadata=meta)


class EpochViews:
    """The views of a cache file read one epoch at a time (`views[e]` -> (N, D)), so training holds one epoch of
    features in memory, not all of them (ImageNet at 16 shots: 16,000 x 1024 floats per epoch). The file stays
    open (memory-mapped), so another job replacing it meanwhile does not change what this one reads."""

    def __init__(self, path: str | Path, epochs: int):
        from safetensors import safe_open

        self.path = Path(path)
        self._file = safe_open(str(self.path), framework="pt")
        shape = self._file.get_slice("features").get_shape()
        self.shape = (epochs, *shape[1:])

    def __getitem__(self, epoch: int) -> torch.Tensor:
        return self._file.get_slice("features")[epoch:epoch + 1][0]


def open_views(clip, items: list[Item], image_root: str | Path, subset: str, epochs: int, path: str | Path,
               keys: dict, device: str = "cpu", log=None, crop_min: float = CROP_MIN) -> EpochViews | torch.Tensor:
    """The views of `epochs` epochs from the cache at `path` (built or extended first when short), read lazily,
    one epoch at a time."""
    if epochs <= 0:
        return train_views(clip, items, image_root, subset, epochs, crop_min=crop_min)
    have = check_views(path, keys) if Path(path).exists() else 0
    if have < epochs:
        train_views(clip, items, image_root, subset, epochs, device, path, keys, log, crop_min)
    return EpochViews(path, epochs)


def train_views(clip, items: list[Item], image_root: str | Path, subset: str, epochs: int, device: str = "cpu",
                path: str | Path | None = None, keys: dict | None = None, log=None,
                crop_min: float = CROP_MIN) -> torch.Tensor:
    """The (epochs, N, D) view features of `items`, read from `path` when it holds enough epochs, else computed
    (only the missing epochs) and written back. Without `path`, computed and not kept."""
    if epochs <= 0:  # nothing to train on: no file either
        return torch.zeros(0, len(items), clip.model.text_projection.shape[-1])
    cached, have = None, 0
    if path is not None and Path(path).exists():
        cached, have = load_views(path, keys or {})
        if have >= epochs:
            return cached[:epochs]
    images = [load_image(Path(image_root) / it.path) for it in items]
    if log:
        log(f"encoding {len(items)} x {epochs - have} augmented views" + (f" into {path}" if path else ""))
    new = encode_views(clip, images, subset, range(have, epochs), device, crop_min=crop_min)
    feats = new if cached is None else torch.cat([cached, new])
    # Another job on the same subset may have written a longer cache meanwhile: keep that one.
    if path is not None and not (Path(path).exists() and check_views(path, keys or {}) >= epochs):
        save_views(path, feats, keys or {})
    return feats


class ViewData:
    """Training pairs read from the view cache: `set_epoch(e)` selects epoch e's views, `batch(idx)` gives
    (features (B, D), labels (B,)). `fit` uses both instead of indexing images. `feats`: an (E, N, D) tensor or
    `EpochViews`."""

    def __init__(self, feats: torch.Tensor | EpochViews, labels: list[int] | np.ndarray | torch.Tensor):
        self.feats = feats
        self.labels = torch.as_tensor(np.asarray(labels), dtype=torch.long)
        self.epoch, self.current = None, None

    def __len__(self) -> int:
        return self.feats.shape[1]

    def set_epoch(self, epoch: int) -> None:
        if epoch >= self.feats.shape[0]:
            raise ValueError(f"views cover {self.feats.shape[0]} epochs, epoch {epoch} asked")
        if epoch != self.epoch:
            self.epoch, self.current = epoch, self.feats[epoch]

    def batch(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.current[idx], self.labels[idx]

    def __getitem__(self, i: int):
        return self.current[i], int(self.labels[i])
