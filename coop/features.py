"""The image-feature cache: features of a dataset split x backbone with the test transform, computed once.

Each file is a safetensors file (no pickle) whose metadata names the dataset, split, backbone, pretrained
weights, transform and a hash of the item list; `load_features` refuses a file whose keys do not match, so
features of different splits, transforms or backbones never mix. Reading needs numpy only.
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from coop.data.datasets import Item
from coop.data.fewshot import items_hash
from coop.defaults import PRECISIONS
from coop.io import atomic_path
from coop.progress import Progress


class CacheError(ValueError):
    """A feature cache, or a file a finished run left (metrics, learned parameters), that is missing, unreadable
    or does not match what the caller expects. `path` and `why` (what is wrong with it, without the fix), when
    given, let a caller that can make the file again do so and say why (`rebuilt`)."""

    def __init__(self, message: str, path: str | Path | None = None, why: str | None = None):
        super().__init__(message)
        self.path, self.why = path, why


def rebuilt(path: str | Path, why: str) -> str:
    """The log line of a cache (features, views, checkpoint, manifest) that was stale or unreadable and is made
    again from what it is computed from."""
    return f"{path} rebuilt: {why}"


def read_tensors(path: str | Path, what: str, fix: str, framework: str = "numpy") -> dict:
    """All tensors of a safetensors file, or a CacheError that names the file and `fix`.

    Files are only ever read as safetensors: a pickle (e.g. a `torch.save` file) is refused, never unpickled.
    """
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise CacheError(f"Not found: {path} ({what}). {fix}")
    try:
        with safe_open(str(path), framework=framework) as f:
            return {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:  # safetensors raises several types for corrupt files
        raise CacheError(f"{path} ({what}) is not a readable safetensors file ({_reason(path, e)}); such files "
                         f"are never unpickled. {fix}") from None


def _reason(path: Path, e: Exception) -> str:
    try:
        with open(path, "rb") as f:
            head = f.read(2)
    except OSError:
        head = b""
    if head == b"PK" or head[:1] == b"\x80":
        return f"it looks like a pickle / torch.save file: {e}"
    return str(e)


@dataclass
class Features:
    features: np.ndarray   # (N, D) float32, unnormalised
    labels: np.ndarray     # (N,) int64
    paths: list[str]
    meta: dict[str, str]

    def select(self, items: list[Item]) -> tuple[np.ndarray, np.ndarray]:
        """Rows for `items` (by relative path), in their order."""
        index = {p: i for i, p in enumerate(self.paths)}
        missing = [it.path for it in items if it.path not in index]
        if missing:
            raise CacheError(f"{len(missing)} images are not in the feature cache (e.g. {missing[0]}); "
                             "rerun the feature rule.")
        rows = [index[it.path] for it in items]
        return self.features[rows], np.array([it.label for it in items], dtype=np.int64)


def save_features(path: str | Path, feats, items: list[Item], meta: dict[str, str]) -> None:
    """Write a feature cache (atomically; the same features and keys give the same bytes)."""
    from coop.view_cache import write_tensors

    meta = {**{k: str(v) for k, v in meta.items()}, "items_hash": items_hash(items), "n": str(len(items))}
    meta["paths"] = "\n".join(it.path for it in items)
    arrays = {
        "features": np.ascontiguousarray(np.asarray(feats, dtype=np.float32)),
        "labels": np.array([it.label for it in items], dtype=np.int64),
    }
    with atomic_path(path) as tmp:
        write_tensors(tmp, arrays, meta)


def load_features(path: str | Path, **expect: str) -> Features:
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise CacheError(f"Feature cache not found: {path}. Run `coop features` or the workflow's feature rule.")
    try:
        with safe_open(str(path), framework="numpy") as f:
            meta = dict(f.metadata() or {})
            feats, labels = f.get_tensor("features"), f.get_tensor("labels")
    except Exception as e:  # safetensors raises several types for corrupt files
        why = f"not a valid safetensors feature file ({_reason(path, e)})"
        raise CacheError(f"Unreadable feature cache {path}: {why}; caches are never unpickled. Delete it and rerun: "
                         "it is recomputed from the images.", path, why) from None
    for key, value in expect.items():
        if meta.get(key) != str(value):
            why = f"it has {key}={meta.get(key)!r}, expected {value!r}"
            raise CacheError(f"Feature cache {path}: {why}; delete it and rerun.", path, why)
    paths = meta.pop("paths").split("\n") if meta.get("paths") else []
    return Features(feats, labels, paths, meta)


def loader_workers(threads: int | None = None) -> int:
    """DataLoader workers for a job with `threads` CPU threads (default: the job's --threads, which coop.cli puts
    in OMP_NUM_THREADS, else the CPUs this process may use): one per thread, none for a single thread."""
    if threads is None:
        try:
            threads = int(os.environ.get("OMP_NUM_THREADS", ""))
        except ValueError:
            threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return threads if threads > 1 else 0


def feature_precision(precision: str, device) -> str:
    """What a run's `precision` (coop.defaults.PRECISIONS) means for feature extraction on `device`: autocast on
    CUDA only (amp: bf16 where supported, else fp16; fp16: fp16), so fp32 on the CPU whatever is asked."""
    import torch

    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if torch.device(device).type != "cuda" or precision == "fp32":
        return "fp32"
    if precision == "fp16":
        return "fp16"
    return "amp-bf16" if torch.cuda.is_bf16_supported() else "amp-fp16"


def extract_features(clip, items: list[Item], image_root: str | Path, batch_size: int = 100,
                     device: str = "cpu", num_workers: int | None = None, precision: str = "fp32",
                     log: Callable[[str], None] | None = None):
    """Encode images with the test transform (image encoder in eval mode): a (N, D) float32 tensor on the CPU,
    rows in the order of `items`. Images are decoded by `num_workers` DataLoader workers (default
    `loader_workers()`), into pinned memory on CUDA, where the encoder runs under the autocast of `precision`
    (`feature_precision`); on the CPU it runs in fp32. Progress lines (coop.progress) go to `log`."""
    import torch

    from coop.data.images import ImageDataset
    from coop.models.transforms import test_transform

    mode = feature_precision(precision, device)
    dtype = {"fp16": torch.float16, "amp-fp16": torch.float16, "amp-bf16": torch.bfloat16}.get(mode)
    cuda = torch.device(device).type == "cuda"
    workers = loader_workers() if num_workers is None else num_workers
    ds = ImageDataset(image_root, items, test_transform(clip.preprocess))
    loader = torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=False, num_workers=workers,
                                         pin_memory=cuda)
    progress = Progress("feature extraction", len(items), unit="images", log=log)
    clip.model.eval()
    out = []
    autocast = torch.autocast("cuda", dtype=dtype) if dtype is not None else contextlib.nullcontext()
    with torch.no_grad(), autocast:
        for x, _ in loader:
            out.append(clip.model.encode_image(x.to(device, non_blocking=cuda)).float().cpu())
            progress.update(len(x))
    progress.done()
    if not out:
        return torch.zeros(0, clip.model.text_projection.shape[-1])
    return torch.cat(out)
