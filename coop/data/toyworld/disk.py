"""Writing a toy dataset to disk (`coop data toy`): the images, split file, captions and meta, atomically.

`generate` builds the dataset in a hidden sibling folder, then renames it into place:

    root/<name>/images/<class_folder>/<split>_<index>.png
    root/<name>/split_zhou_<SplitName>.json   {"train"|"val"|"test": [[rel_path, label, classname], ...]}
    root/<name>/captions.json                 {rel_path: caption}
    root/<name>/meta.json                     the arguments it was generated with

The same arguments give byte-identical files (on the same numpy build and CPU family).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from coop.data.errors import ToyDatasetExistsError
from coop.io import temp_prefix
from coop.data.toyworld.captions import make_caption
from coop.data.toyworld.registry import SPLITS, TOY_DATASETS, ToySpec
from coop.data.toyworld.sampling import item_seed, sample_image

FORMAT_VERSION = 1


def class_folder(classname: str) -> str:
    return classname.replace(" ", "_")


def split_path(name: str, root: str | Path) -> Path:
    return Path(root) / name / TOY_DATASETS[name].split_file


def is_complete(name: str, root: str | Path) -> bool:
    """True when root/<name> holds a readable split file with all three splits."""
    try:
        with open(split_path(name, root)) as f:
            split = json.load(f)
    except (OSError, ValueError):
        return False
    return isinstance(split, dict) and all(isinstance(split.get(k), list) for k in SPLITS)


GENERATOR = "coop.data.toyworld"  # meta.json's "generator": the folder is ours, so it may be replaced


def is_ours(name: str, root: str | Path) -> bool:
    """True when root/<name> is a toy dataset this generator wrote: its meta.json names the generator and the
    dataset. Such a folder may be replaced even without its split file (Snakemake deletes a job's output, the
    split file, before the job regenerates the dataset with other settings)."""
    try:
        meta = json.loads((Path(root) / name / "meta.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and meta.get("generator") == GENERATOR and meta.get("name") == name


def replaceable(name: str, root: str | Path) -> bool:
    """Whether `generate` may replace root/<name>: absent or empty (Snakemake makes the output's folder before
    the job runs), a complete dataset, or one of ours."""
    final = Path(root) / name
    return (not final.exists() or (final.is_dir() and not final.is_symlink() and not any(final.iterdir()))
            or is_complete(name, root) or is_ours(name, root))


def _draw_unique(name: str, split: str, label: int, index: int, seed: int, image_size: int,
                 seen: set[bytes]) -> tuple[np.ndarray, str]:
    """Draw an image whose pixels differ from every image drawn before; redraw on a collision."""
    for attempt in range(100):
        rng = np.random.default_rng(item_seed(seed, name, split, label, index, attempt))
        img, words = sample_image(name, label, rng, image_size)
        digest = hashlib.blake2b(img.tobytes(), digest_size=16).digest()
        if digest not in seen:
            seen.add(digest)
            return img, make_caption(name, words, rng)[0]
    raise RuntimeError(f"could not draw a unique image for {name}/{split}/{label}/{index}")


def _write_dataset(spec: ToySpec, folder: Path, counts: dict[str, int], image_size: int,
                   seed: int) -> None:
    images = folder / "images"
    for cls in spec.classnames:
        (images / class_folder(cls)).mkdir(parents=True)
    split: dict[str, list] = {}
    captions: dict[str, str] = {}
    seen: set[bytes] = set()
    for name in SPLITS:
        items = split[name] = []
        for label, cls in enumerate(spec.classnames):
            for i in range(counts[name]):
                img, caption = _draw_unique(spec.name, name, label, i, seed, image_size, seen)
                rel = f"{class_folder(cls)}/{name}_{i:04d}.png"
                Image.fromarray(img, "RGB").save(images / rel, format="PNG", optimize=False)
                items.append([rel, label, cls])
                captions[rel] = caption
    meta = {"generator": GENERATOR, "format_version": FORMAT_VERSION, "name": spec.name,
            "image_size": image_size, "seed": seed, **{f"n_{k}": v for k, v in counts.items()}}
    (folder / "captions.json").write_text(json.dumps(captions, indent=1) + "\n")
    (folder / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
    (folder / spec.split_file).write_text(json.dumps(split) + "\n")


def generate(name: str, root: str | Path, n_train: int = 24, n_val: int = 8, n_test: int = 40,
             image_size: int = 32, seed: int = 0) -> Path:
    """Write root/<name>/images/... PNGs, root/<name>/split_zhou_<SplitName>.json and
    root/<name>/captions.json; return the split file path. n_* are images PER CLASS.

    The dataset is built in a hidden sibling folder and renamed into place (the old folder is moved aside
    first and deleted after). An existing root/<name> is replaced only if it holds a complete split file or
    this generator wrote it (its meta.json, `is_ours`), so foreign data is never deleted; otherwise
    ToyDatasetExistsError (a FileExistsError) is raised before anything is written."""
    spec = TOY_DATASETS[name]
    if min(n_train, n_val, n_test) < 0 or image_size < 1:
        raise ValueError("counts must be >= 0 and image_size >= 1")
    root = Path(root)
    final = root / name
    if not replaceable(name, root):
        raise ToyDatasetExistsError(
            f"{final} exists but is not a toy dataset made by coop (no readable split file, and no meta.json "
            f"of {GENERATOR} naming {name}), so it is not replaced: it may hold data that is not ours. Move it "
            f"away (or delete it if nothing in it is needed) and rerun."
        )
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=temp_prefix(name), suffix=".tmp", dir=root))
    try:
        os.chmod(tmp, 0o755)
        counts = {"train": n_train, "val": n_val, "test": n_test}
        _write_dataset(spec, tmp, counts, image_size, seed)
        _move_into_place(tmp, final, name, root)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return split_path(name, root)


def _move_into_place(tmp: Path, final: Path, name: str, root: Path) -> None:
    """Rename tmp onto final; an old complete dataset is moved aside first, then deleted."""
    old = None
    if final.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".old", dir=root))
        os.rename(final, old / name)
    try:
        os.rename(tmp, final)
    except OSError:
        # a concurrent generate() won the race; its result is just as complete
        if not is_complete(name, root):
            raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
