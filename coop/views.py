"""The augmented-view cache: training-augmented image features of a few-shot subset, one view per image per epoch.

The view of image i at epoch e is drawn from a generator seeded by (subset hash, epoch, i) alone, so it does not
matter which method computes it first, nor in which order: every method that trains on the subset with a frozen
image encoder (CoOp, the text bias / transform baselines) reads the same views, and one fresh view per image per
epoch keeps the distribution of on-the-fly augmentation. Views are encoded in no-grad batches with the image
encoder in eval mode and kept as a safetensors file (features (E, N, D) float32) whose metadata names the subset,
backbone, weights and transform, and whose name has a short hash of them (coop.store.views_key), so that a new
subset (an edited split file, regenerated data) makes a new file. A file with fewer epochs than needed is
extended; an unreadable (truncated) or stale one is rebuilt, with a log line naming it and why; once a cell's
cache is ready, the files of its other keys are removed (`remove_other_views`).

Building streams (`build_views`): the images are decoded a block of `batch_size` at a time, all the epochs' views
of that block are encoded, and each (epoch, block) of rows is written straight to its place in the file
(coop.view_cache), so a job's memory does not grow with the subset or the epochs; extending copies the old
epochs block by block. Training reads the file one epoch at a time (`EpochViews`).
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch

from coop.data.datasets import Item
from coop.data.fewshot import items_hash
from coop.data.images import load_image
from coop.features import CacheError, _reason, rebuilt
from coop.io import atomic_path
from coop.models.names import canonical_pretrained
from coop.models.transforms import CROP_MIN, Preprocess, describe, render_view, train_transform, view_params
from coop.progress import Progress
from coop.store import other_views
from coop.view_cache import ViewFileError, ViewReader, ViewWriter

FORMAT = "1"
BATCH_SIZE = 256       # images decoded and views encoded at a time
SEEN_PER_IMAGE = 4     # features of distinct views kept per image for reuse (an uncropped image has 2: as is, mirrored)
COPY_ROWS = 4096       # rows copied at a time when a cache is extended


def view_seed(subset: str, epoch: int, index: int) -> int:
    """The seed of image `index`'s augmentation at `epoch` for the subset with hash `subset`."""
    digest = hashlib.sha256(f"{subset}:{epoch}:{index}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def draw_views(images: list, transform, subset: str, epoch: int, start: int = 0) -> list[tuple]:
    """The augmentation (crop and flip, `view_params`) at `epoch` of each of `images`, the subset's images `start`,
    `start` + 1, ...: drawn from torch's CPU generator seeded by `view_seed`, nothing rendered. Torch's global RNG
    is left as it was."""
    out = []
    with torch.random.fork_rng(devices=[]):  # torchvision's random transforms draw from the global RNG
        gen = torch.random.default_generator  # seeded directly: torch.manual_seed also queues a CUDA seeding
        for i, img in enumerate(images, start):
            gen.manual_seed(view_seed(subset, epoch, i))
            out.append(view_params(transform, img))
    return out


def augment(images: list, transform, subset: str, epoch: int, start: int = 0) -> torch.Tensor:
    """The augmented views at `epoch` of `images`, the subset's images `start`, `start` + 1, ...:
    (N, 3, H, W). Torch's global RNG is left as it was."""
    params = draw_views(images, transform, subset, epoch, start)
    return torch.stack([render_view(transform, img, p) for img, p in zip(images, params)])


class _Seen:
    """Features of views already encoded, by (image, crop and flip), at most `cap` per image (the oldest go
    first)."""

    def __init__(self, cap: int):
        self.cap, self.feats, self.owned = cap, {}, {}

    def __contains__(self, key: tuple) -> bool:
        return key in self.feats

    def __getitem__(self, key: tuple) -> torch.Tensor:
        return self.feats[key]

    def add(self, image: int, key: tuple, feat: torch.Tensor) -> None:
        self.feats[key] = feat
        keys = self.owned.setdefault(image, [])
        keys.append(key)
        while len(keys) > self.cap:
            self.feats.pop(keys.pop(0), None)


@torch.no_grad()
def view_blocks(clip, images_of: Callable[[int, int], list], n: int, subset: str, epochs: range,
                device: str = "cpu", batch_size: int = BATCH_SIZE, crop_min: float = CROP_MIN,
                progress: Progress | None = None) -> Iterator[tuple[int, int, torch.Tensor]]:
    """The features of the views of `epochs` of the subset's `n` images, as (epoch, start, (m, D) float32 on the
    CPU) blocks: images start..start + m - 1 at that epoch. `images_of(start, stop)` gives the decoded images
    start..stop - 1; each block of `batch_size` images is decoded once for all epochs. Each view's crop and flip
    are drawn first (`draw_views`); only a view not encoded before for the same image (e.g. each flip of an
    uncropped image once) is rendered and encoded: the encoder is per image in eval mode, so the same pixels give
    the same features."""
    transform = train_transform(clip.preprocess, crop_min)
    model = clip.model
    was_training = model.training
    model.eval()
    try:
        for start in range(0, n, batch_size):
            chunk = images_of(start, min(n, start + batch_size))
            seen = _Seen(SEEN_PER_IMAGE)
            for epoch in epochs:
                keys = list(enumerate(draw_views(chunk, transform, subset, epoch, start)))
                new = [key for key in keys if key not in seen]
                rows = {}
                if new:
                    x = torch.stack([render_view(transform, chunk[i], p) for i, p in new])
                    rows = dict(zip(new, model.encode_image(x.to(device)).float().cpu()))
                    for key, f in rows.items():
                        seen.add(key[0], key, f)
                yield epoch, start, torch.stack([rows[key] if key in rows else seen[key] for key in keys])
                if progress is not None:
                    progress.update(len(chunk))
    finally:
        model.train(was_training)


def encode_views(clip, images: list, subset: str, epochs: range, device: str = "cpu",
                 batch_size: int = BATCH_SIZE, crop_min: float = CROP_MIN) -> torch.Tensor:
    """Image features of the views of `epochs` of decoded `images`, in memory: (len(epochs), N, D) float32 on the
    CPU (`view_blocks`; the cache file is built with `build_views`, which holds one block at a time)."""
    out = torch.zeros(len(epochs), len(images), clip.model.text_projection.shape[-1])
    first = epochs.start if len(epochs) else 0
    for epoch, start, block in view_blocks(clip, lambda a, b: images[a:b], len(images), subset, epochs, device,
                                           batch_size, crop_min):
        out[epoch - first, start:start + len(block)] = block
    return out


def view_keys(items: list[Item], subset: str, backbone: str, model: str, pretrained: str,
              preprocess: Preprocess | int, crop_min: float = CROP_MIN) -> dict:
    """What a view cache must match: the subset, the images, the encoder and its weights, the transform (from
    the model's preprocess config, `Clip.preprocess`; an int: that size with open_clip's defaults)."""
    pretrained = canonical_pretrained(pretrained, model)
    return {"format": FORMAT, "subset": subset, "items_hash": items_hash(items), "backbone": backbone,
            "model": model, "pretrained": pretrained, "transform": describe(train_transform(preprocess, crop_min))}


def _unreadable(path: Path, e: Exception) -> CacheError:
    reason = _reason(path, e)
    return CacheError(f"Unreadable view cache {path} ({reason}); caches are never unpickled. Delete "
                      "it and rerun: it is recomputed from the images.", path, f"unreadable ({reason})")


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
        raise _unreadable(path, e) from None
    for key, value in keys.items():
        if meta.get(key) != str(value):
            why = (f"it has {key}={meta.get(key)!r}, expected {value!r}: it belongs to another subset, backbone "
                   "or transform")
            raise CacheError(f"View cache {path}: {why}. Delete it and rerun.", path, why)
    if len(shape) != 3 or str(shape[0]) != meta.get("epochs"):
        why = f"it is inconsistent (shape {tuple(shape)}, epochs {meta.get('epochs')!r})"
        raise CacheError(f"View cache {path}: {why}. Delete it and rerun.", path, why)
    return int(shape[0])


def load_views(path: str | Path, keys: dict) -> tuple[torch.Tensor, int]:
    """(features (E, N, D), E) of a matching view cache (`check_views`), all epochs in memory: for tests and
    small subsets; training reads `EpochViews`."""
    from safetensors.torch import load_file

    epochs = check_views(path, keys)
    return load_file(str(path))["features"], epochs


def save_views(path: str | Path, feats: torch.Tensor, keys: dict) -> None:
    """Write in-memory (E, N, D) features as a view cache (the streaming build is `build_views`)."""
    feats = feats.detach().to(torch.float32).cpu()
    meta = {**{k: str(v) for k, v in keys.items()}, "epochs": str(feats.shape[0])}
    with atomic_path(path) as tmp:
        with ViewWriter(tmp, tuple(feats.shape), meta) as w:
            for e in range(feats.shape[0]):
                w.write(e, 0, feats[e].numpy())


class _KeepOther(Exception):
    """Another job wrote a cache with enough epochs while this one was building: keep that file."""


def build_views(clip, items: list[Item], image_root: str | Path, subset: str, epochs: int, path: str | Path,
                keys: dict, device: str = "cpu", log: Callable[[str], None] | None = None,
                crop_min: float = CROP_MIN, batch_size: int = BATCH_SIZE) -> int:
    """Make the cache at `path` hold at least `epochs` epochs of views: nothing to do when it does; else the
    missing epochs are encoded and written, with the old ones copied block by block, into a new file that
    replaces the old one only when complete (a killed build leaves the old file, or none). Holds one block of
    images and views at a time. Returns the number of epochs encoded."""
    path = Path(path)
    say = log if log is not None else (lambda s: print(s, flush=True))
    have = _usable_epochs(path, keys, say)
    if have >= epochs:
        return 0
    n, dim = len(items), clip.model.text_projection.shape[-1]
    root = Path(image_root)
    say(f"encoding {n} x {epochs - have} augmented views into {path}" + (f" (after {have} cached)" if have else ""))
    progress = Progress("view encoding", n * (epochs - have), unit="views", log=log)
    meta = {**{k: str(v) for k, v in keys.items()}, "epochs": str(epochs)}
    try:
        with atomic_path(path) as tmp:
            with ViewWriter(tmp, (epochs, n, dim), meta) as out:
                if have:
                    _copy_epochs(path, out, have)
                for epoch, start, block in view_blocks(
                        clip, lambda a, b: [load_image(root / it.path) for it in items[a:b]], n, subset,
                        range(have, epochs), device, batch_size, crop_min, progress):
                    out.write(epoch, start, block.numpy())
            # Another job on the same subset may have written a longer cache meanwhile: keep that one.
            if _usable_epochs(path, keys) >= epochs:
                raise _KeepOther
    except _KeepOther:
        say(f"{path} was extended to {epochs}+ epochs by another job meanwhile: kept that one")
    progress.done()
    return epochs - have


def _usable_epochs(path: Path, keys: dict, say: Callable[[str], None] | None = None) -> int:
    """The epochs a cache at `path` holds for `keys`: 0 when there is none, and when it is stale (another subset,
    backbone or transform: the split file or the data changed) or unreadable (truncated, not a view cache), which
    `say` reports: the build then replaces it with a new one (views are a pure function of the images)."""
    if not path.exists():
        return 0
    try:
        return check_views(path, keys)
    except CacheError as e:
        if say is not None:
            say(rebuilt(path, e.why or str(e)))
        return 0


def _copy_epochs(path: Path, out: ViewWriter, epochs: int) -> None:
    try:
        src = ViewReader(path)
    except (OSError, ViewFileError) as e:
        raise _unreadable(path, e) from None
    try:
        if src.shape[1:] != out.shape[1:]:
            raise CacheError(f"View cache {path} has {src.shape[1]} x {src.shape[2]} features per epoch, expected "
                             f"{out.shape[1]} x {out.shape[2]}. Delete it and rerun.")
        for e in range(epochs):
            for start in range(0, src.shape[1], COPY_ROWS):
                out.write(e, start, src.rows(e, start, min(src.shape[1], start + COPY_ROWS)))
    finally:
        src.close()


def remove_other_views(path: str | Path, log: Callable[[str], None] | None = None) -> list[Path]:
    """Delete the view caches of the same cell as `path` made from other keys (an earlier subset, encoder or
    transform: coop.store.other_views); a job still reading one keeps its open file. Returns what was removed."""
    gone = other_views(path)
    for p in gone:
        p.unlink(missing_ok=True)
        if log is not None:
            log(f"removed {p}: views of another subset, encoder or transform than {Path(path).name}")
    return gone


class EpochViews:
    """The views of a cache file read one epoch at a time (`views[e]` -> (N, D)), so training holds one epoch of
    features in memory, not all of them (ImageNet at 16 shots: 16,000 x 1024 floats per epoch). Reads are
    positional reads of an open file (no memory map, whose pages would add up in the job's resident memory), so
    another job replacing the file meanwhile does not change what this one reads."""

    def __init__(self, path: str | Path, epochs: int):
        self.path = Path(path)
        try:
            self._reader = ViewReader(self.path)
        except (OSError, ViewFileError) as e:
            raise _unreadable(self.path, e) from None
        if epochs > self._reader.shape[0]:
            raise CacheError(f"View cache {self.path} holds {self._reader.shape[0]} epochs, {epochs} needed. "
                             "Delete it and rerun.")
        self.shape = (epochs, *self._reader.shape[1:])

    def __getitem__(self, epoch: int) -> torch.Tensor:
        if not 0 <= epoch < self.shape[0]:
            raise IndexError(f"epoch {epoch} of views covering {self.shape[0]} epochs")
        return torch.from_numpy(self._reader.epoch(epoch))


def open_views(clip, items: list[Item], image_root: str | Path, subset: str, epochs: int, path: str | Path,
               keys: dict, device: str = "cpu", log=None, crop_min: float = CROP_MIN) -> EpochViews | torch.Tensor:
    """The views of `epochs` epochs from the cache at `path` (built or extended first when short), read lazily,
    one epoch at a time."""
    if epochs <= 0:
        return train_views(clip, items, image_root, subset, epochs, crop_min=crop_min)
    build_views(clip, items, image_root, subset, epochs, path, keys, device, log, crop_min)
    views = EpochViews(path, epochs)
    remove_other_views(path, log)
    return views


def train_views(clip, items: list[Item], image_root: str | Path, subset: str, epochs: int, device: str = "cpu",
                path: str | Path | None = None, keys: dict | None = None, log=None,
                crop_min: float = CROP_MIN) -> torch.Tensor:
    """The (epochs, N, D) view features of `items` in memory. With `path`: the cache there, built or extended
    first when short (`build_views`). Without: computed and not kept. Training on a cache uses `open_views`,
    which reads one epoch at a time."""
    if epochs <= 0:  # nothing to train on: no file either
        return torch.zeros(0, len(items), clip.model.text_projection.shape[-1])
    if path is not None:
        build_views(clip, items, image_root, subset, epochs, path, keys or {}, device, log, crop_min)
        feats, _ = load_views(path, keys or {})
        return feats[:epochs]
    if log:
        log(f"encoding {len(items)} x {epochs} augmented views")
    root = Path(image_root)
    out = torch.zeros(epochs, len(items), clip.model.text_projection.shape[-1])
    progress = Progress("view encoding", len(items) * epochs, unit="views", log=log)
    for epoch, start, block in view_blocks(clip, lambda a, b: [load_image(root / it.path) for it in items[a:b]],
                                           len(items), subset, range(epochs), device, crop_min=crop_min,
                                           progress=progress):
        out[epoch, start:start + len(block)] = block
    progress.done()
    return out
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
